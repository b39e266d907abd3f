//! The OpenAI API of the LLM gateway: `POST /v1/chat/completions` (whole or streamed as
//! server-sent events), `POST /v1/embeddings`, `GET /v1/models`. Decodes, calls
//! `causeway_gateway::Gateway`, encodes; errors in OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`), which its clients read.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use causeway_gateway::{ChatAnswer, Gateway};
use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;
use serde_json::json;

use crate::auth::Caller;
use crate::connections::ConnectionLimits;
use crate::error::Error;

/// The largest request body the gateway reads (a long conversation with images as data URLs).
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(gateway)
}

/// Whether `path` is one of the gateway's OpenAI routes (their errors take OpenAI's shape).
pub fn is_openai_route(path: &str) -> bool {
    matches!(path.trim_end_matches('/'), "/v1/chat/completions" | "/v1/embeddings" | "/v1/models")
}

/// OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, with the type its
/// clients expect for `status`.
pub fn error_body(status: StatusCode, code: &str, message: &str) -> serde_json::Value {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        502 => "upstream_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// A gateway error in OpenAI's shape.
struct OpenAiError(causeway_gateway::Error);

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = match code {
            ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        };
        let mut response = (status, axum::Json(error_body(status, code.as_str(), &self.0.to_string()))).into_response();
        if let causeway_gateway::Error::Limited { retry_after_seconds, .. } = &self.0 {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        response
    }
}

fn json_answer(status: u16, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The API key's name: the token the auth middleware found, or `anonymous` (none required, or
/// `causeway gateway` alone, which checks no keys).
fn key_name(caller: Option<&Extension<Caller>>) -> &str {
    caller.map_or(ANONYMOUS, |Extension(caller)| caller.name.as_str())
}

/// The key name of callers who sent no token.
const ANONYMOUS: &str = "anonymous";

async fn chat(
    State(gateway): State<Arc<Gateway>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    match gateway.chat(key_name(caller.as_ref()), &body).await.map_err(OpenAiError)? {
        ChatAnswer::Whole { status, body } => Ok(json_answer(status, body)),
        ChatAnswer::Stream(events) => {
            let mut response = Response::new(Body::from_stream(events));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        }
    }
}

async fn embeddings(
    State(gateway): State<Arc<Gateway>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let (status, body) = gateway.embeddings(key_name(caller.as_ref()), &body).await.map_err(OpenAiError)?;
    Ok(json_answer(status, body))
}

async fn models(State(gateway): State<Arc<Gateway>>) -> Response {
    axum::Json(gateway.models()).into_response()
}

/// Serves the gateway alone on `listen` until SIGINT or SIGTERM; `on_started` gets the bound
/// address (the readiness signal).
pub fn run_gateway(gateway: Gateway, listen: SocketAddr, on_started: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|cause| Error::Bind { address: listen, cause })?;
        let address = listener.local_addr()?;
        on_started(address);
        let gateway = Arc::new(gateway);
        let metrics = gateway.clone();
        let ledger = gateway.clone();
        let app = router(gateway).route("/health", get(|| async { "OK" })).route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    metrics.metrics().render(),
                )
            }),
        );
        let served =
            crate::connections::serve(listener, app, ConnectionLimits::default(), crate::run::shutdown_signal())
                .await
                .map_err(Error::from);
        let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
        served
    })
}
