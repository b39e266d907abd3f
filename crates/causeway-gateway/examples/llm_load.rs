//! The gateway bench's two halves: a mock OpenAI upstream that answers at once, and a load
//! generator that measures what a gateway in front of it adds (`bench/llm/gateway-overhead.sh`
//! runs both against Causeway and LiteLLM's proxy).
//!
//! ```text
//! llm_load upstream ADDR                         # serves /v1/chat/completions until killed
//! llm_load open URL RATE SECONDS [stream]        # RATE requests a second, on schedule
//! llm_load closed URL CONCURRENCY SECONDS [BODY] # as fast as CONCURRENCY callers can go
//! ```
//!
//! The closed load posts a chat request, or the JSON in the file BODY (`bench/serving` sends OIP
//! requests with it); any 2xx answer counts.
//!
//! The upstream answers a whole request at once; a streamed one sends its first chunk at once and
//! the rest 20 ms later, so the time to the first token is the first chunk's alone. The open load
//! sends on schedule whether or not earlier answers came back (a slow gateway cannot slow the
//! load down), times each request from when it was sent, and prints one JSON line of percentiles
//! in milliseconds. Each half runs on one thread so the gateway under test keeps the other core.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, reason = "a benchmark fails loudly")]

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match arguments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["upstream", address] => runtime.block_on(upstream(address)),
        ["open", url, rate, seconds, rest @ ..] => {
            let stream = rest.first() == Some(&"stream");
            let report =
                runtime.block_on(open(url, rate.parse().expect("rate"), seconds.parse().expect("seconds"), stream));
            println!("{report}");
        }
        ["closed", url, concurrency, seconds, rest @ ..] => {
            let (body, key) = match rest.first() {
                Some(file) => (Bytes::from(std::fs::read(file).expect("the body file")), None),
                None => (request_body(false), Some(BENCH_KEY)),
            };
            let concurrency = concurrency.parse().expect("concurrency");
            let report = runtime.block_on(closed(url, concurrency, seconds.parse().expect("seconds"), body, key));
            println!("{report}");
        }
        _ => panic!(
            "usage: llm_load upstream ADDR | open URL RATE SECONDS [stream] | closed URL CONCURRENCY SECONDS [BODY_FILE]"
        ),
    }
}

// ---- the upstream ----

async fn upstream(address: &str) {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
    println!("listening {}", listener.local_addr().expect("address"));
    let router = Router::new().route("/v1/chat/completions", post(completions));
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| stream.set_nodelay(true).expect("nodelay"));
    axum::serve(listener, router).await.expect("serve");
}

const ANSWER: &str = "Paris is the capital of France.";

async fn completions(body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("bench").to_string();
    let usage = json!({"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28});
    if request["stream"].as_bool() != Some(true) {
        let answer = json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": usage,
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(answer.to_string()))
            .expect("response");
    }
    let chunk = |delta: Value, finish: Value| {
        let event = json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        Bytes::from(format!("data: {event}\n\n"))
    };
    let first = chunk(json!({"role": "assistant", "content": "Paris"}), Value::Null);
    let mut rest: Vec<Bytes> =
        ANSWER["Paris".len()..].split_inclusive(' ').map(|word| chunk(json!({"content": word}), Value::Null)).collect();
    rest.push(chunk(json!({}), json!("stop")));
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        let event = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": model, "choices": [], "usage": usage});
        rest.push(Bytes::from(format!("data: {event}\n\n")));
    }
    rest.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let (sender, receiver) = mpsc::channel(rest.len() + 1);
    sender.send(first).await.expect("first chunk");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for event in rest {
            if sender.send(event).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(Chunks(receiver)))
        .expect("response")
}

/// A channel's chunks as a body stream.
struct Chunks(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(context).map(|chunk| chunk.map(Ok))
    }
}

// ---- the load ----

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request's times, in milliseconds from its start: the whole answer, and the first content
/// token of a stream.
struct Timing {
    total: f64,
    first_token: Option<f64>,
}

fn request_body(stream: bool) -> Bytes {
    let mut body = json!({
        "model": "bench", "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    });
    if stream {
        body["stream"] = json!(true);
    }
    Bytes::from(body.to_string())
}

/// The API key chat requests carry (LiteLLM's proxy wants its master key; Causeway on loopback
/// ignores it). OIP requests from a body file carry none.
const BENCH_KEY: &str = "Bearer sk-bench-master-key-0123456789abcdef";

async fn call(
    client: &HttpClient,
    url: &str,
    body: Bytes,
    key: Option<&str>,
    started: Instant,
) -> Result<Timing, String> {
    let mut request = hyper::Request::post(url).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", key);
    }
    let request = request.body(Full::new(body)).map_err(|error| error.to_string())?;
    let response = client.request(request).await.map_err(|error| error.to_string())?;
    let status = response.status();
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let mut first_token = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| error.to_string())?;
        if let Some(data) = frame.data_ref() {
            buffer.extend_from_slice(data);
            if first_token.is_none() && has_content(&buffer) {
                first_token = Some(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&buffer)));
    }
    Ok(Timing { total: started.elapsed().as_secs_f64() * 1e3, first_token })
}

/// Whether a stream so far holds an event with content in its delta (however it is spaced).
fn has_content(buffer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buffer);
    text.split("\n\n").filter_map(|event| event.trim().strip_prefix("data:")).any(|data| {
        serde_json::from_str::<Value>(data.trim())
            .is_ok_and(|event| event["choices"][0]["delta"]["content"].as_str().is_some_and(|text| !text.is_empty()))
    })
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

fn percentiles(mut values: Vec<f64>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let at = |quantile: f64| values[((values.len() - 1) as f64 * quantile).round() as usize];
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
}

fn report(timings: Vec<Timing>, errors: Vec<String>, elapsed: Duration, extra: Value) -> Value {
    let totals = timings.iter().map(|timing| timing.total).collect();
    let first_tokens: Vec<f64> = timings.iter().filter_map(|timing| timing.first_token).collect();
    let mut report = json!({
        "ok": timings.len(), "errors": errors.len(), "first_error": errors.first(),
        "achieved_rate": timings.len() as f64 / elapsed.as_secs_f64(),
        "latency_ms": percentiles(totals),
        "first_token_ms": percentiles(first_tokens),
    });
    if let (Some(report), Some(extra)) = (report.as_object_mut(), extra.as_object()) {
        report.extend(extra.clone());
    }
    report
}

async fn open(url: &str, rate: f64, seconds: f64, stream: bool) -> Value {
    let client = client();
    let body = request_body(stream);
    let total = (rate * seconds).round() as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for index in 0..total {
        tokio::time::sleep_until((began + period.mul_f64(index as f64)).into()).await;
        let (client, body, url) = (client.clone(), body.clone(), url.to_string());
        let started = Instant::now();
        tasks.push(tokio::spawn(async move { call(&client, &url, body, Some(BENCH_KEY), started).await }));
    }
    let (mut timings, mut errors) = (Vec::with_capacity(total), Vec::new());
    for task in tasks {
        match task.await.expect("request task") {
            Ok(timing) => timings.push(timing),
            Err(error) => errors.push(error),
        }
    }
    report(timings, errors, began.elapsed(), json!({"rate": rate, "stream": stream}))
}

async fn closed(url: &str, concurrency: usize, seconds: f64, body: Bytes, key: Option<&'static str>) -> Value {
    let client = client();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let began = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let (client, body, url) = (client.clone(), body.clone(), url.to_string());
        callers.push(tokio::spawn(async move {
            let (mut timings, mut errors) = (Vec::new(), Vec::new());
            while Instant::now() < deadline {
                match call(&client, &url, body.clone(), key, Instant::now()).await {
                    Ok(timing) => timings.push(timing),
                    Err(error) => errors.push(error),
                }
            }
            (timings, errors)
        }));
    }
    let (mut timings, mut errors) = (Vec::new(), Vec::new());
    for caller in callers {
        let (more_timings, more_errors) = caller.await.expect("caller");
        timings.extend(more_timings);
        errors.extend(more_errors);
    }
    report(timings, errors, began.elapsed(), json!({"concurrency": concurrency}))
}
