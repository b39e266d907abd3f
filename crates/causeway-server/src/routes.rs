//! The routes. Handlers parse, call the engine, record metrics and format; nothing else.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use causeway_models::{LabelValue, Task};
use causeway_serving::RecordRequest;
use causeway_serving::outputs::output_metadata;
use causeway_types::{ErrorCode, LabelRecord, TOOL_VERSION};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::metrics::CategoryLabels;
use crate::metrics::{ErrorLabels, RequestLabels};
use crate::oip::{InferRequest, InferResponse, OutputTensor, encode_tensors, input_metadata};
use crate::{AppState, MAX_BODY_BYTES};

/// All routes, with the body cap.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(version_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/v1/models/{name}/score", post(score_record))
        .route("/v1/labels", post(post_labels))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("request body is not valid JSON for this endpoint: {error}")))
}

/// The answer for a path no route serves, in the protocol's error shape.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let message = if path.starts_with("/api/") {
        format!("this MLflow endpoint is not served by Causeway: {path}")
    } else {
        format!("no such route: {path}; see README.md for the API")
    };
    let code = if path.starts_with("/api/") { "ENDPOINT_NOT_FOUND" } else { "NOT_FOUND" };
    crate::access::protocol_error(path, StatusCode::NOT_FOUND, code, message)
}

async fn server_metadata() -> Json<Value> {
    Json(json!({"name": "causeway", "version": TOOL_VERSION, "extensions": []}))
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.engine.deployed_models().is_empty() {
        ApiError::new(ErrorCode::Unavailable, "no model is deployed yet").into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

fn metadata(state: &AppState, name: &str, version: Option<u32>) -> Result<Json<Value>, ApiError> {
    let deployment = state.engine.deployment(name)?;
    let version = version.unwrap_or(deployment.champion.version);
    let artifact = state.engine.artifact(name, version)?;
    let versions: Vec<String> =
        state.meta.model_versions(name)?.iter().map(|record| record.version.to_string()).collect();
    Ok(Json(json!({
        "name": name,
        "versions": versions,
        "platform": format!("causeway_{}", artifact.model.flavor()),
        "inputs": input_metadata(&artifact.signature),
        "outputs": output_metadata(&artifact)
            .into_iter()
            .map(|(name, datatype, shape)| json!({"name": name, "datatype": datatype, "shape": shape}))
            .collect::<Vec<_>>(),
        "parameters": {
            "version": version.to_string(),
            "task": artifact.task.kind().as_str(),
            "classes": artifact.task.classes(),
            "threshold": artifact.threshold,
            "champion": deployment.champion.version.to_string()
        }
    })))
}

async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, None)
}

fn parse_version(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::invalid(format!("version `{text}` is not a positive integer")))
}

async fn version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, Some(parse_version(&version)?))
}

async fn model_ready(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.engine.deployment(&name)?;
    Ok(StatusCode::OK)
}

async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.deployment(&name)?;
    state.engine.artifact(&name, parse_version(&version)?)?;
    Ok(StatusCode::OK)
}

async fn infer(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    run_infer(state, name, None, body).await
}

async fn infer_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match parse_version(&version) {
        Ok(version) => run_infer(state, name, Some(version), body).await,
        Err(error) => error.into_response(),
    }
}

fn count_unknown_categories<'a>(state: &AppState, model: &str, features: impl Iterator<Item = &'a str>) {
    for feature in features {
        state
            .metrics
            .unknown_categories
            .get_or_create(&CategoryLabels { model: model.to_string(), feature: feature.to_string() })
            .inc();
    }
}

/// The `model` label of a failed request whose model is not deployed: a name taken from a URL is
/// a label only when it is deployed, so requests to random names cannot grow `/metrics`.
const NOT_DEPLOYED_LABEL: &str = "(not deployed)";

fn count_error(state: &AppState, model: &str, endpoint: &str, error: &ApiError) {
    let model = if state.engine.is_deployed(model) { model } else { NOT_DEPLOYED_LABEL };
    state
        .metrics
        .errors
        .get_or_create(&ErrorLabels {
            model: model.to_string(),
            endpoint: endpoint.to_string(),
            code: error.code.as_str().to_string(),
        })
        .inc();
}

fn count_success(state: &AppState, model: &str, version: u32, endpoint: &str, started: Instant) {
    let labels =
        RequestLabels { model: model.to_string(), version: version.to_string(), endpoint: endpoint.to_string() };
    state.metrics.requests.get_or_create(&labels).inc();
    state.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
}

/// Runs CPU and storage work off the async workers, so a large batch or a cold online-store read
/// never stalls other requests.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(ApiError::new(ErrorCode::Internal, format!("request task failed: {error}"))))
}

fn infer_now(
    state: &AppState,
    name: &str,
    version: Option<u32>,
    body: &Bytes,
) -> Result<(InferResponse, u32), ApiError> {
    let request: InferRequest = parse(body)?;
    let deployment = state.engine.deployment(name)?;
    let signature_version = version.unwrap_or(deployment.champion.version);
    let artifact = state.engine.artifact(name, signature_version)?;
    let encoded = encode_tensors(&artifact.signature, &request.inputs)?;
    count_unknown_categories(
        state,
        name,
        encoded
            .unknown_categories
            .iter()
            .map(|index| artifact.signature.features.get(*index).map_or("", |feature| feature.name.as_str())),
    );
    let outcome = state.engine.infer(name, version, &encoded.rows, request.id.as_deref())?;
    let outputs = outcome.tensors().into_iter().map(OutputTensor::from).collect();
    let response = InferResponse {
        model_name: name.to_string(),
        model_version: outcome.version.to_string(),
        id: request.id.unwrap_or_default(),
        outputs,
    };
    Ok((response, outcome.version))
}

/// Requests up to this size whose model is in memory are decoded and scored on their own task:
/// about a hundred rows, a tenth of a millisecond of work and no I/O — less than the two thread
/// hand-offs the blocking pool would add. Larger ones, and versions still to be read from the
/// store, go to the blocking pool.
const INLINE_BODY_BYTES: usize = 64 * 1024;

async fn run_infer(state: AppState, name: String, version: Option<u32>, body: Bytes) -> Response {
    let started = Instant::now();
    let outcome = if body.len() <= INLINE_BODY_BYTES && state.engine.is_loaded(&name, version) {
        infer_now(&state, &name, version, &body)
    } else {
        let (worker, model) = (state.clone(), name.clone());
        blocking(move || infer_now(&worker, &model, version, &body)).await
    };
    match outcome {
        Ok((response, version)) => {
            count_success(&state, &name, version, "infer", started);
            Json(response).into_response()
        }
        Err(error) => {
            count_error(&state, &name, "infer", &error);
            error.into_response()
        }
    }
}

async fn score_record(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let (worker, model) = (state.clone(), name.clone());
    let result = blocking(move || {
        let request: RecordRequest = parse(&body)?;
        worker.engine.score_record(&model, &request).map_err(ApiError::from)
    })
    .await;
    match result {
        Ok(decision) => {
            count_unknown_categories(&state, &name, decision.unknown_categories.iter().map(String::as_str));
            count_success(&state, &name, decision.version, "score", started);
            Json(decision).into_response()
        }
        Err(error) => {
            count_error(&state, &name, "score", &error);
            error.into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsBody {
    /// The model the labels are for (needed when several are deployed and labels are text).
    #[serde(default)]
    model: Option<String>,
    labels: Vec<LabelItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelItem {
    request_id: String,
    label: LabelValue,
}

/// The most labels one request may carry.
const MAX_LABELS: usize = 100_000;

/// The task labels are checked against: the named model's champion, or the only deployed model.
fn labels_task(state: &AppState, model: Option<&str>) -> Result<Option<Task>, ApiError> {
    let name = match model {
        Some(name) => name.to_string(),
        None => match state.engine.deployed_models().as_slice() {
            [only] => only.clone(),
            _ => return Ok(None),
        },
    };
    let deployment = state.engine.deployment(&name)?;
    Ok(Some(deployment.champion.artifact.task.clone()))
}

async fn post_labels(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: LabelsBody = parse(&body)?;
    if body.labels.len() > MAX_LABELS {
        return Err(ApiError::new(ErrorCode::TooLarge, format!("at most {MAX_LABELS} labels per request")));
    }
    if let Some(bad) = body.labels.iter().find(|item| item.request_id.is_empty()) {
        return Err(ApiError::invalid(format!("label {:?} has an empty request_id", bad.label)));
    }
    let task = labels_task(&state, body.model.as_deref())?;
    let now = state.clock.now_ms();
    let mut labels: Vec<(String, LabelRecord)> = Vec::with_capacity(body.labels.len());
    for item in body.labels {
        let encoded = match (&task, &item.label) {
            (Some(task), label) => task.encode_label(label).map_err(|why| {
                ApiError::invalid(format!("label for `{}`: {why}; nothing was stored", item.request_id))
            })?,
            (None, LabelValue::Number(value)) if value.is_finite() => *value,
            (None, label) => {
                return Err(ApiError::invalid(format!(
                    "label for `{}` is {label:?}: with several models deployed, name the model the labels are for \
                     ({{\"model\": \"NAME\", \"labels\": [...]}}) so the label can be checked; nothing was stored",
                    item.request_id
                )));
            }
        };
        labels.push((item.request_id, LabelRecord { label: encoded, arrived_ms: now }));
    }
    let meta = state.meta.clone();
    // A label that differs from a stored one is kept out: corrections go through
    // `causeway labels ingest --correct`, which audits them.
    let written = tokio::task::spawn_blocking(move || meta.record_labels(&labels, false, "api", now))
        .await
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))??;
    Ok(Json(json!({
        "stored": written.stored,
        "unchanged": written.unchanged,
        "conflicting": written.conflicting,
        "conflicting_ids": written.conflicting_ids,
    })))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let log = state.engine.log();
    let text = state.metrics.render(log.dropped(), log.written());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
