//! The MLflow tracking REST API (`/api/2.0/mlflow/...`): experiments, runs, metrics, parameters,
//! tags and search, on Causeway's metadata store. GET requests carry their message as query
//! parameters, POST requests as a JSON body; `run_id` and the older `run_uuid` are both accepted;
//! errors are `{error_code, message}` with MLflow's codes and statuses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use causeway_store::search::{parse_filter, parse_order_by, search_experiments};
use causeway_store::tracking::{ACTIVE, DELETED};
use causeway_store::{
    DatasetInput, Error as StoreError, Experiment, MetaStore, MetricPoint, ModelMetricLink, NewRun, TrackedRun,
    ViewType,
};
use causeway_types::{Clock, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// MLflow's limits on one `runs/log-batch` request.
pub const MAX_BATCH_METRICS: usize = 1000;
/// Parameters per batch.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Tags per batch.
pub const MAX_BATCH_TAGS: usize = 100;
/// Entities (metrics + parameters + tags) per batch.
pub const MAX_BATCH_ENTITIES: usize = 1000;
/// Bytes per batch request.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Characters of a metric, parameter or tag key.
pub const MAX_KEY_LENGTH: usize = 250;
/// Characters of a parameter value.
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
/// Characters of a tag value.
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
/// Characters of an experiment's name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// Characters of an experiment tag's value.
pub const MAX_EXPERIMENT_TAG_VALUE_LENGTH: usize = 5000;
/// The most results one search page returns.
pub const MAX_SEARCH_RESULTS: usize = 50_000;

/// What the tracking handlers reach.
#[derive(Clone)]
pub struct TrackingState {
    /// The metadata store.
    pub meta: Arc<MetaStore>,
    /// The clock for timestamps the client did not send.
    pub clock: Arc<dyn Clock>,
    /// The artifact store, for listing a run's artifacts (none: listings are empty).
    pub blobs: Option<causeway_store::BlobStore>,
    /// How this server differs from MLflow's defaults.
    pub options: TrackingOptions,
}

impl TrackingState {
    /// The state of a tracking API with MLflow's defaults (artifacts proxied through `blobs`).
    pub fn new(meta: Arc<MetaStore>, clock: Arc<dyn Clock>, blobs: Option<causeway_store::BlobStore>) -> Self {
        Self { meta, clock, blobs, options: TrackingOptions::default() }
    }

    /// The root new experiments' artifacts go under.
    fn default_artifact_root(&self) -> &str {
        self.options.direct_artifacts.as_ref().map_or(MetaStore::PROXIED_ARTIFACT_ROOT, |direct| direct.uri.as_str())
    }
}

/// What `causeway server` can set beyond MLflow's defaults, as `mlflow server` can.
#[derive(Clone, Default)]
pub struct TrackingOptions {
    /// Where new experiments' artifacts go when clients write them themselves
    /// (`--default-artifact-root`); none: under the server's proxied `mlflow-artifacts:/`.
    pub direct_artifacts: Option<DirectArtifacts>,
    /// A pattern every new model version's source must match
    /// (`MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX`); none: any safe source.
    pub source_pattern: Option<crate::registry::SourcePattern>,
}

/// Artifacts clients write themselves, as MLflow's `--default-artifact-root URI` with
/// `--no-serve-artifacts`: new experiments get `<uri>/<id>` and clients write there directly; the
/// server reads what is there through `blobs` (opened at `uri`) to list and serve downloads.
#[derive(Clone)]
pub struct DirectArtifacts {
    /// The root URI (`s3://bucket/prefix`, `file:///path`), as experiments record it.
    pub uri: String,
    /// The same place, opened.
    pub blobs: causeway_store::BlobStore,
}

impl DirectArtifacts {
    /// Opens the root `uri` names: `s3://bucket/prefix`, `file:///absolute/path` or an absolute
    /// path (clients resolve it themselves, so a relative path would mean something else to each).
    pub fn open(uri: &str) -> Result<Self, String> {
        let local = uri.strip_prefix("file://").unwrap_or(uri);
        if !uri.starts_with("s3://") && (local.contains("://") || !std::path::Path::new(local).is_absolute()) {
            return Err("use s3://bucket/prefix, file:///absolute/path or an absolute path".into());
        }
        let blobs = causeway_store::BlobStore::open_url(uri).map_err(|error| error.to_string())?;
        Ok(Self { uri: uri.to_string(), blobs })
    }
}

/// An error in MLflow's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowError {
    status: StatusCode,
    error_code: &'static str,
    message: String,
}

impl MlflowError {
    /// An INVALID_PARAMETER_VALUE error (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error_code: "INVALID_PARAMETER_VALUE", message: message.into() }
    }

    /// MLflow's INVALID_PARAMETER_VALUE for a required parameter the request lacks (its clients
    /// and tests compare the words).
    pub fn missing(parameter: &str) -> Self {
        Self::invalid(format!(
            "Missing value for required parameter '{parameter}'. See the API docs for more information about request parameters."
        ))
    }

    /// A REQUEST_LIMIT_EXCEEDED error (413): the body is larger than the route takes.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, error_code: "REQUEST_LIMIT_EXCEEDED", message: message.into() }
    }

    /// A PERMISSION_DENIED error (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, error_code: "PERMISSION_DENIED", message: message.into() }
    }

    /// An INTERNAL_ERROR (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, error_code: "INTERNAL_ERROR", message: message.into() }
    }
}

impl From<StoreError> for MlflowError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::NotFound(_) => {
                Self { status: StatusCode::NOT_FOUND, error_code: "RESOURCE_DOES_NOT_EXIST", message }
            }
            StoreError::AlreadyExists(_) => {
                Self { status: StatusCode::BAD_REQUEST, error_code: "RESOURCE_ALREADY_EXISTS", message }
            }
            StoreError::InvalidValue(_) | StoreError::InvalidKey(_) => Self::invalid(message),
            StoreError::Conflict(_) => Self { status: StatusCode::CONFLICT, error_code: "RESOURCE_CONFLICT", message },
            // The server's own paths stay in its log, not in answers to clients.
            StoreError::Io { .. } => {
                tracing::error!(%message, "artifact storage failed");
                Self::internal("the server could not read or write its artifact storage; its log has the details")
            }
            _ => Self::internal(message),
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.error_code, message = %self.message, "tracking request failed");
        }
        (self.status, Json(json!({"error_code": self.error_code, "message": self.message}))).into_response()
    }
}

type Answer = Result<Json<Value>, MlflowError>;

/// The tracking routes under `/api/2.0/mlflow`.
pub fn router(state: TrackingState) -> Router {
    Router::new()
        .route("/api/2.0/mlflow/experiments/create", post(create_experiment))
        .route("/api/2.0/mlflow/experiments/get", get(get_experiment))
        .route("/api/2.0/mlflow/experiments/get-by-name", get(get_experiment_by_name))
        .route("/api/2.0/mlflow/experiments/search", post(search_experiments_post).get(search_experiments_get))
        .route("/api/2.0/mlflow/experiments/update", post(update_experiment))
        .route("/api/2.0/mlflow/experiments/delete", post(delete_experiment))
        .route("/api/2.0/mlflow/experiments/restore", post(restore_experiment))
        .route("/api/2.0/mlflow/experiments/set-experiment-tag", post(set_experiment_tag))
        .route("/api/2.0/mlflow/experiments/delete-experiment-tag", post(delete_experiment_tag))
        .route("/api/2.0/mlflow/runs/create", post(create_run))
        .route("/api/2.0/mlflow/runs/get", get(get_run))
        .route("/api/2.0/mlflow/runs/update", post(update_run))
        .route("/api/2.0/mlflow/runs/delete", post(delete_run))
        .route("/api/2.0/mlflow/runs/restore", post(restore_run))
        .route("/api/2.0/mlflow/runs/search", post(search_runs_post))
        .route("/api/2.0/mlflow/runs/log-metric", post(log_metric))
        .route("/api/2.0/mlflow/runs/log-parameter", post(log_parameter))
        .route("/api/2.0/mlflow/runs/log-batch", post(log_batch))
        .route("/api/2.0/mlflow/runs/set-tag", post(set_tag))
        .route("/api/2.0/mlflow/runs/delete-tag", post(delete_tag))
        .route("/api/2.0/mlflow/runs/log-inputs", post(log_inputs))
        .route("/api/2.0/mlflow/metrics/get-history", get(metric_history))
        .route("/api/2.0/mlflow/experiments/search-datasets", post(search_datasets))
        .route("/api/2.0/mlflow/artifacts/list", get(list_run_artifacts))
        .route(
            "/api/2.0/mlflow/upload-artifact",
            post(upload_run_artifact).layer(axum::extract::DefaultBodyLimit::max(MAX_UI_UPLOAD_BYTES)),
        )
        .route("/api/2.0/mlflow/{*rest}", any(unknown_endpoint))
        .route("/api/3.0/mlflow/{*rest}", any(unknown_endpoint))
        .route("/get-artifact", get(get_run_artifact))
        .route("/model-versions/get-artifact", get(get_version_artifact))
        .route("/health", get(health))
        .route("/version", get(version))
        .with_state(state.clone())
        .merge(crate::registry::router(state.clone()))
        .merge(crate::history::router(state.clone()))
        .merge(crate::logged_models::router(state.clone()))
        .merge(crate::preview::router(state))
}

/// Parses a request body; refuses strings holding U+0000, which no name or value may contain
/// (PostgreSQL cannot store it, and MLflow refuses it too).
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, MlflowError> {
    let body = if body.is_empty() { &b"{}"[..] } else { &body[..] };
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| MlflowError::invalid(format!("malformed request body: {error}")))?;
    if holds_nul(&value) {
        return Err(MlflowError::invalid(
            "the request holds a NUL character (U+0000), which no name or value may contain",
        ));
    }
    match T::deserialize(&value) {
        Ok(parsed) => Ok(parsed),
        Err(error) => Err(MlflowError::invalid(match culprit::<T>(&value) {
            Some((key, bad)) => format!("Invalid value {bad} for parameter '{key}' supplied: {error}"),
            None => format!("malformed request body: {error}"),
        })),
    }
}

/// The top-level field whose value a body fails on, found the way MLflow names it in its
/// message: the first field without which the body would parse.
fn culprit<T: for<'de> Deserialize<'de>>(value: &Value) -> Option<(String, String)> {
    let Value::Object(entries) = value else { return None };
    entries.iter().find_map(|(key, bad)| {
        let mut without = entries.clone();
        without.remove(key);
        T::deserialize(&Value::Object(without)).ok().map(|_| (key.clone(), bad.to_string()))
    })
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(entries) => entries.iter().any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// Runs store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MlflowError> + Send + 'static,
) -> Result<T, MlflowError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(MlflowError::internal(format!("request task failed: {error}"))))
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, MlflowError> {
    value.as_deref().filter(|value| !value.is_empty()).ok_or_else(|| MlflowError::missing(name))
}

fn key_value_list(entries: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    entries.iter().map(|(key, value)| json!({"key": key, "value": value})).collect()
}

fn experiment_json(experiment: &Experiment) -> Value {
    json!({
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage,
        "last_update_time": experiment.last_update_time,
        "creation_time": experiment.creation_time,
        "tags": key_value_list(&experiment.tags),
    })
}

fn run_info_json(run: &TrackedRun) -> Value {
    serde_json::to_value(RunInfoBody::of(run)).unwrap_or(Value::Null)
}

fn metric_json(key: &str, point: &MetricPoint) -> Value {
    serde_json::to_value(MetricBody { key, point }).unwrap_or(Value::Null)
}

/// JSON has no NaN or infinities: MLflow writes them as strings.
pub(crate) fn float_json(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

fn run_json(run: &TrackedRun) -> Value {
    serde_json::to_value(RunBody(run)).unwrap_or(Value::Null)
}

// A run as MLflow's JSON writes it, serialized straight from the store's record: a search answers
// up to 1,000 runs, and building `Value` trees for them cost more than the query. Fields are in
// the order `Value` objects print theirs (by name), so both forms read the same.

/// `{"data", "info", "inputs", "outputs"}` of one run.
struct RunBody<'a>(&'a TrackedRun);

impl Serialize for RunBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let run = self.0;
        let mut body = serializer.serialize_map(Some(4))?;
        body.serialize_entry(
            "data",
            &RunDataBody {
                metrics: Sequence(run.metrics.iter().map(|(key, point)| MetricBody { key, point })),
                params: KeyValues(&run.params),
                tags: KeyValues(&run.tags),
            },
        )?;
        body.serialize_entry("info", &RunInfoBody::of(run))?;
        body.serialize_entry(
            "inputs",
            &RunInputsBody {
                dataset_inputs: Sequence(run.inputs.iter().map(DatasetInputBody)),
                model_inputs: Sequence(run.model_inputs.iter().map(|model_id| ModelInputBody { model_id })),
            },
        )?;
        body.serialize_entry(
            "outputs",
            &RunOutputsBody {
                model_outputs: Sequence(
                    run.outputs.iter().map(|(model_id, step)| ModelOutputBody { model_id, step: *step }),
                ),
            },
        )?;
        body.end()
    }
}

/// Serializes an iterator as a JSON array (once; the iterator is cloned).
struct Sequence<Items>(Items);

impl<Items: Iterator<Item = Item> + Clone, Item: Serialize> Serialize for Sequence<Items> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

/// `[{"key", "value"}, …]` of parameters or tags.
struct KeyValues<'a>(&'a std::collections::BTreeMap<String, String>);

impl Serialize for KeyValues<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, value)| KeyValueBody { key, value }))
    }
}

#[derive(Serialize)]
struct KeyValueBody<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct RunDataBody<'a, Metrics: Serialize> {
    metrics: Metrics,
    params: KeyValues<'a>,
    tags: KeyValues<'a>,
}

#[derive(Serialize)]
struct RunInfoBody<'a> {
    artifact_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    experiment_id: &'a str,
    lifecycle_stage: &'a str,
    run_id: &'a str,
    run_name: &'a str,
    run_uuid: &'a str,
    start_time: i64,
    status: &'a str,
    user_id: &'a str,
}

impl<'a> RunInfoBody<'a> {
    fn of(run: &'a TrackedRun) -> Self {
        Self {
            artifact_uri: &run.artifact_uri,
            end_time: run.end_time,
            experiment_id: &run.experiment_id,
            lifecycle_stage: &run.lifecycle_stage,
            run_id: &run.run_id,
            run_name: &run.run_name,
            run_uuid: &run.run_id,
            start_time: run.start_time,
            status: run.status.as_str(),
            user_id: &run.user_id,
        }
    }
}

/// `{"key", "step", "timestamp", "value"}`, the value a number or MLflow's `"NaN"`/`"Infinity"`.
struct MetricBody<'a> {
    key: &'a str,
    point: &'a MetricPoint,
}

impl Serialize for MetricBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut metric = serializer.serialize_map(Some(4))?;
        metric.serialize_entry("key", self.key)?;
        metric.serialize_entry("step", &self.point.step)?;
        metric.serialize_entry("timestamp", &self.point.timestamp)?;
        let value = self.point.value;
        if value.is_nan() {
            metric.serialize_entry("value", "NaN")?;
        } else if value.is_infinite() {
            metric.serialize_entry("value", if value > 0.0 { "Infinity" } else { "-Infinity" })?;
        } else {
            metric.serialize_entry("value", &value)?;
        }
        metric.end()
    }
}

#[derive(Serialize)]
struct RunInputsBody<Datasets: Serialize, Models: Serialize> {
    dataset_inputs: Datasets,
    model_inputs: Models,
}

#[derive(Serialize)]
struct ModelInputBody<'a> {
    model_id: &'a str,
}

#[derive(Serialize)]
struct RunOutputsBody<Outputs: Serialize> {
    model_outputs: Outputs,
}

#[derive(Serialize)]
struct ModelOutputBody<'a> {
    model_id: &'a str,
    step: i64,
}

/// `{"dataset": {…}, "tags": [{"key", "value"}]}` of one dataset input.
struct DatasetInputBody<'a>(&'a DatasetInput);

impl Serialize for DatasetInputBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Dataset<'a> {
            digest: &'a str,
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            profile: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            schema: Option<&'a str>,
            source: &'a str,
            source_type: &'a str,
        }
        let input = self.0;
        let mut body = serializer.serialize_map(Some(2))?;
        body.serialize_entry(
            "dataset",
            &Dataset {
                digest: &input.digest,
                name: &input.name,
                profile: input.profile.as_deref(),
                schema: input.schema.as_deref(),
                source: &input.source,
                source_type: &input.source_type,
            },
        )?;
        body.serialize_entry("tags", &Sequence(input.tags.iter().map(|(key, value)| KeyValueBody { key, value })))?;
        body.end()
    }
}

// ---- experiments -------------------------------------------------------------------------

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct CreateExperiment {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create_experiment(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: CreateExperiment = parse(&body)?;
        let name = required(&request.name, "name")?;
        check_experiment_name(name)?;
        let tags: Vec<(String, String)> = request.tags.into_iter().map(|tag| (tag.key, tag.value)).collect();
        for (key, value) in &tags {
            check_key(key)?;
            check_length("experiment tag", key, value, MAX_EXPERIMENT_TAG_VALUE_LENGTH)?;
        }
        let location =
            request.artifact_location.as_deref().filter(|location| !location.is_empty()).map(absolute_location);
        let id = state.meta.create_experiment(
            name,
            location.as_deref(),
            state.default_artifact_root(),
            &tags,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({"experiment_id": id})))
    })
    .await
}

async fn get_experiment(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let id = required(&query.get("experiment_id").cloned(), "experiment_id")?.to_string();
        Ok(Json(json!({"experiment": experiment_json(&state.meta.experiment(&id)?)})))
    })
    .await
}

async fn get_experiment_by_name(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || {
        let name = required(&query.get("experiment_name").cloned(), "experiment_name")?.to_string();
        Ok(Json(json!({"experiment": experiment_json(&state.meta.experiment_by_name(&name)?)})))
    })
    .await
}

#[derive(Deserialize, Default)]
struct SearchRequest {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    max_results: Option<Value>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    view_type: Option<Value>,
    #[serde(default)]
    run_view_type: Option<Value>,
}

fn view_type(value: Option<&Value>) -> Result<ViewType, MlflowError> {
    match value {
        None | Some(Value::Null) => Ok(ViewType::ActiveOnly),
        Some(Value::String(text)) => {
            ViewType::parse(text).ok_or_else(|| MlflowError::invalid(format!("invalid view type `{text}`")))
        }
        Some(Value::Number(number)) => ViewType::parse(&number.to_string())
            .ok_or_else(|| MlflowError::invalid(format!("invalid view type `{number}`"))),
        Some(other) => Err(MlflowError::invalid(format!("invalid view type `{other}`"))),
    }
}

pub(crate) fn page(
    max_results: Option<&Value>,
    page_token: Option<&str>,
    default: usize,
) -> Result<(usize, usize), MlflowError> {
    let limit = match max_results {
        None | Some(Value::Null) => default,
        Some(Value::Number(number)) => number.as_u64().map_or(0, |value| value as usize),
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(_) => 0,
    };
    if limit == 0 || limit > MAX_SEARCH_RESULTS {
        let given = max_results.map_or_else(String::new, Value::to_string);
        return Err(MlflowError::invalid(format!(
            "Invalid value {given} for parameter 'max_results' supplied: it must be between 1 and {MAX_SEARCH_RESULTS}"
        )));
    }
    let offset = match page_token.filter(|token| !token.is_empty()) {
        None => 0,
        Some(token) => token.parse().map_err(|_| MlflowError::invalid(format!("invalid page_token `{token}`")))?,
    };
    Ok((limit, offset))
}

pub(crate) fn paginate<T>(items: Vec<T>, limit: usize, offset: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + limit < total).then(|| (offset + limit).to_string());
    (page, next)
}

fn search_experiments_with(state: &TrackingState, request: &SearchRequest) -> Answer {
    let (limit, offset) = page(request.max_results.as_ref(), request.page_token.as_deref(), 1000)?;
    let filter = parse_filter(request.filter.as_deref().unwrap_or_default())?;
    let order = parse_order_by(&request.order_by)?;
    let experiments = state.meta.experiments(view_type(request.view_type.as_ref())?)?;
    let (found, next) = paginate(search_experiments(experiments, &filter, &order), limit, offset);
    let mut answer = json!({"experiments": found.iter().map(experiment_json).collect::<Vec<_>>()});
    if let (Some(next), Some(object)) = (next, answer.as_object_mut()) {
        object.insert("next_page_token".into(), json!(next));
    }
    Ok(Json(answer))
}

async fn search_experiments_post(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || search_experiments_with(&state, &parse(&body)?)).await
}

async fn search_experiments_get(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || {
        let request = SearchRequest {
            filter: query.get("filter").cloned(),
            max_results: query.get("max_results").map(|value| json!(value)),
            order_by: query.get("order_by").map(|value| vec![value.clone()]).unwrap_or_default(),
            page_token: query.get("page_token").cloned(),
            view_type: query.get("view_type").map(|value| json!(value)),
            ..SearchRequest::default()
        };
        search_experiments_with(&state, &request)
    })
    .await
}

#[derive(Deserialize)]
struct ExperimentChange {
    experiment_id: Option<String>,
    new_name: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn update_experiment(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ExperimentChange = parse(&body)?;
        let id = required(&request.experiment_id, "experiment_id")?;
        let new_name = required(&request.new_name, "new_name")?;
        check_experiment_name(new_name)?;
        state.meta.rename_experiment(id, new_name, state.clock.now_ms())?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_experiment(State(state): State<TrackingState>, body: Bytes) -> Answer {
    change_experiment_stage(state, body, DELETED).await
}

async fn restore_experiment(State(state): State<TrackingState>, body: Bytes) -> Answer {
    change_experiment_stage(state, body, ACTIVE).await
}

async fn change_experiment_stage(state: TrackingState, body: Bytes, stage: &'static str) -> Answer {
    blocking(move || {
        let request: ExperimentChange = parse(&body)?;
        state.meta.set_experiment_stage(
            required(&request.experiment_id, "experiment_id")?,
            stage,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({})))
    })
    .await
}

async fn set_experiment_tag(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ExperimentChange = parse(&body)?;
        let key = required(&request.key, "key")?;
        check_key(key)?;
        let value = request.value.as_deref().unwrap_or_default();
        check_length("experiment tag", key, value, MAX_EXPERIMENT_TAG_VALUE_LENGTH)?;
        state.meta.set_experiment_tag(required(&request.experiment_id, "experiment_id")?, key, value)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_experiment_tag(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ExperimentChange = parse(&body)?;
        state.meta.delete_experiment_tag(
            required(&request.experiment_id, "experiment_id")?,
            required(&request.key, "key")?,
        )?;
        Ok(Json(json!({})))
    })
    .await
}

/// `GET /health`, as `mlflow server` answers it.
async fn health() -> &'static str {
    "OK"
}

/// `GET /version`: the MLflow version this server speaks for (clients compare it) — Causeway's
/// own version is in `GET /v2`.
async fn version() -> &'static str {
    MLFLOW_VERSION
}

/// The MLflow release whose REST API this server follows.
pub const MLFLOW_VERSION: &str = "3.17.2";

/// `GET /api/2.0/mlflow/artifacts/list?run_id=…&path=…`: a run's artifacts, as the R and Java
/// clients and export tools list them (files with sizes, directories without).
async fn list_run_artifacts(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || {
        let run = state.meta.tracked_run(&run_id_from(&query)?)?;
        let path = query.get("path").map(String::as_str).unwrap_or_default();
        artifact_listing(&state, &run.artifact_uri, path).map(Json)
    })
    .await
}

/// The entries of directory `path` under an artifact root, in MLflow's listing shape
/// (`{root_uri, files: [{path, is_dir, file_size}]}`, paths relative to the root). A root this server
/// cannot reach lists as empty, as MLflow lists a root it cannot reach.
pub(crate) fn artifact_listing(state: &TrackingState, root_uri: &str, path: &str) -> Result<Value, MlflowError> {
    let path = path.trim_matches('/');
    let Some((blobs, key)) = artifact_place(state, root_uri, path)? else {
        return Ok(json!({"root_uri": root_uri, "files": []}));
    };
    let files: Vec<Value> = blobs
        .list_directory(&key)?
        .into_iter()
        .map(|(name, is_dir, size)| {
            let relative = if path.is_empty() { name } else { format!("{path}/{name}") };
            if is_dir {
                json!({"path": relative, "is_dir": true})
            } else {
                json!({"path": relative, "is_dir": false, "file_size": size})
            }
        })
        .collect();
    Ok(json!({"root_uri": root_uri, "files": files}))
}

/// The most bytes `upload-artifact` (the web UI's one-file upload) takes, as MLflow caps it.
pub const MAX_UI_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// `POST /api/2.0/mlflow/upload-artifact?run_uuid=…&path=…` with the file as the body: the web UI's
/// upload of one file into a run's artifacts.
async fn upload_run_artifact(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    blocking(move || {
        let run_id = query
            .get("run_uuid")
            .or_else(|| query.get("run_id"))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| MlflowError::invalid("Request must specify run_uuid."))?;
        let path = query
            .get("path")
            .filter(|path| !path.is_empty())
            .ok_or_else(|| MlflowError::invalid("Request must specify path."))?;
        if path.starts_with('/') || path.split('/').any(|segment| segment == ".." || segment == ".") {
            return Err(MlflowError::invalid("Invalid path"));
        }
        if body.is_empty() {
            return Err(MlflowError::invalid("Request must specify data."));
        }
        let run = state.meta.tracked_run(run_id)?;
        let (blobs, key) = reachable_place(&state, &run.artifact_uri, path)?;
        blobs.put(&key, &body)?;
        Ok(Json(json!({})))
    })
    .await
}

/// Where `path` under the artifact root `root_uri` is stored, refusing paths that escape: an
/// `mlflow-artifacts:` root in the server's own store (under `mlflow-artifacts/`; a host in the URI
/// is ignored, as MLflow ignores it), a root under `--default-artifact-root` in that root's store,
/// and `None` for roots this server cannot reach (another bucket, a client's local disk).
pub(crate) fn artifact_place<'a>(
    state: &'a TrackingState,
    root_uri: &str,
    path: &str,
) -> Result<Option<(&'a causeway_store::BlobStore, String)>, MlflowError> {
    let path = path.trim_matches('/');
    if path.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(MlflowError::invalid("Invalid path"));
    }
    let join = |root: &str| {
        let root = root.trim_matches('/');
        match (root.is_empty(), path.is_empty()) {
            (_, true) => root.to_string(),
            (true, false) => path.to_string(),
            (false, false) => format!("{root}/{path}"),
        }
    };
    if let Some(rest) = root_uri.strip_prefix(MetaStore::PROXIED_ARTIFACT_ROOT) {
        let rest = match rest.strip_prefix("//") {
            Some(authority_and_path) => authority_and_path.find('/').map_or("", |slash| &authority_and_path[slash..]),
            None => rest,
        };
        let Some(blobs) = state.blobs.as_ref() else { return Ok(None) };
        return Ok(Some((blobs, crate::artifacts::artifact_key(&join(rest))?)));
    }
    if let Some(direct) = &state.options.direct_artifacts {
        let base = direct.uri.trim_end_matches('/');
        if let Some(rest) = root_uri.strip_prefix(base).filter(|rest| rest.is_empty() || rest.starts_with('/')) {
            return Ok(Some((&direct.blobs, crate::artifacts::checked_path(&join(rest))?)));
        }
    }
    Ok(None)
}

/// [`artifact_place`] for a root this server must reach (to read or write a file there).
fn reachable_place<'a>(
    state: &'a TrackingState,
    root_uri: &str,
    path: &str,
) -> Result<(&'a causeway_store::BlobStore, String), MlflowError> {
    artifact_place(state, root_uri, path)?
        .ok_or_else(|| MlflowError::invalid(format!("artifacts at `{root_uri}` are not stored on this server")))
}

/// One stored file of an artifact root, as a download.
pub(crate) fn stored_file(state: &TrackingState, root_uri: &str, path: &str) -> Result<Response, MlflowError> {
    let (blobs, key) = reachable_place(state, root_uri, path)?;
    let (reader, size) = blobs.open_read(&key)?;
    Ok(crate::artifacts::file_response(&key, reader, size))
}

/// `GET /get-artifact?run_id=…&path=…`: one file of a run, as MLflow's UI and older clients fetch it.
async fn get_run_artifact(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, MlflowError> {
    blocking(move || {
        let run = state.meta.tracked_run(&run_id_from(&query)?)?;
        let path = query.get("path").map(String::as_str).unwrap_or_default();
        stored_file(&state, &run.artifact_uri, path)
    })
    .await
}

/// `GET /model-versions/get-artifact?name=…&version=…&path=…`: one file of a model version.
async fn get_version_artifact(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, MlflowError> {
    blocking(move || {
        let name = required(&query.get("name").cloned(), "name")?.to_string();
        let version_text = required(&query.get("version").cloned(), "version")?.to_string();
        let version = version_text.parse().map_err(|_| {
            MlflowError::invalid(format!("Parameter 'version' must be an integer, got '{version_text}'."))
        })?;
        let path = query.get("path").map(String::as_str).unwrap_or_default();
        if path.split('/').any(|segment| segment == "..") {
            return Err(MlflowError::invalid("Invalid path"));
        }
        let source = crate::registry::storage_location(&state, &state.meta.registry_version(&name, version)?.source);
        stored_file(&state, &source, path)
    })
    .await
}

// ---- runs --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateRun {
    experiment_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default)]
    start_time: Option<Value>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

fn integer(value: Option<&Value>, name: &str) -> Result<Option<i64>, MlflowError> {
    let refused = |value: &Value| {
        MlflowError::invalid(format!("Invalid value {value} for parameter '{name}' supplied: it must be an integer"))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(number @ Value::Number(_)) => number.as_i64().map(Some).ok_or_else(|| refused(number)),
        Some(text @ Value::String(digits)) => digits.parse().map(Some).map_err(|_| refused(text)),
        Some(other) => Err(refused(other)),
    }
}

async fn create_run(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: CreateRun = parse(&body)?;
        let tags: Vec<(String, String)> = request.tags.into_iter().map(|tag| (tag.key, tag.value)).collect();
        for (key, value) in &tags {
            check_key(key)?;
            check_length("tag", key, value, MAX_TAG_VALUE_LENGTH)?;
        }
        let run_name = request
            .run_name
            .filter(|name| !name.is_empty())
            .or_else(|| tags.iter().find(|(key, _)| key == "mlflow.runName").map(|(_, value)| value.clone()))
            .unwrap_or_default();
        let run = state.meta.create_tracked_run(&NewRun {
            experiment_id: request.experiment_id.filter(|id| !id.is_empty()).unwrap_or_else(|| "0".into()),
            user_id: request.user_id.unwrap_or_default(),
            run_name,
            start_time: integer(request.start_time.as_ref(), "start_time")?.unwrap_or_else(|| state.clock.now_ms()),
            tags,
        })?;
        Ok(Json(json!({"run": run_json(&run)})))
    })
    .await
}

fn run_id_from(query: &HashMap<String, String>) -> Result<String, MlflowError> {
    query
        .get("run_id")
        .or_else(|| query.get("run_uuid"))
        .filter(|id| !id.is_empty())
        .cloned()
        .ok_or_else(|| MlflowError::missing("run_id"))
}

async fn get_run(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let run_id = run_id_from(&query)?;
        Ok(Json(json!({"run": run_json(&state.meta.tracked_run(&run_id)?)})))
    })
    .await
}

#[derive(Deserialize)]
struct RunRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    end_time: Option<Value>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    step: Option<Value>,
    #[serde(default)]
    metrics: Vec<MetricEntry>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
struct MetricEntry {
    key: String,
    value: Value,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    step: Option<Value>,
    /// The MLflow 3 logged model the metric also belongs to.
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

impl RunRequest {
    fn run_id(&self) -> Result<&str, MlflowError> {
        self.run_id
            .as_deref()
            .or(self.run_uuid.as_deref())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| MlflowError::missing("run_id"))
    }
}

async fn update_run(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: RunRequest = parse(&body)?;
        let status = match request.status.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                RunStatus::parse(text).ok_or_else(|| MlflowError::invalid(format!("invalid run status `{text}`")))?,
            ),
        };
        let end_time = integer(request.end_time.as_ref(), "end_time")?;
        let run = state.meta.update_tracked_run(request.run_id()?, status, end_time, request.run_name.as_deref())?;
        Ok(Json(json!({"run_info": run_info_json(&run)})))
    })
    .await
}

async fn delete_run(State(state): State<TrackingState>, body: Bytes) -> Answer {
    change_run_stage(state, body, DELETED).await
}

async fn restore_run(State(state): State<TrackingState>, body: Bytes) -> Answer {
    change_run_stage(state, body, ACTIVE).await
}

async fn change_run_stage(state: TrackingState, body: Bytes, stage: &'static str) -> Answer {
    blocking(move || {
        let request: RunRequest = parse(&body)?;
        state.meta.set_run_stage(request.run_id()?, stage)?;
        Ok(Json(json!({})))
    })
    .await
}

fn check_key(key: &str) -> Result<(), MlflowError> {
    if key.is_empty() || key.chars().count() > MAX_KEY_LENGTH {
        return Err(MlflowError::invalid(format!("key `{key}` must have 1 to {MAX_KEY_LENGTH} characters")));
    }
    if key.split('/').any(|part| part == ".." || part == ".") || key.starts_with('/') {
        return Err(MlflowError::invalid(format!("invalid key `{key}`: no `.`/`..` segments or leading `/`")));
    }
    Ok(())
}

/// Refuses experiment names MLflow refuses (longer than [`MAX_EXPERIMENT_NAME_LENGTH`]).
fn check_experiment_name(name: &str) -> Result<(), MlflowError> {
    if name.chars().count() > MAX_EXPERIMENT_NAME_LENGTH {
        return Err(MlflowError::invalid(format!(
            "'name' exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

/// An experiment's artifact location as MLflow records it: a relative local path is made absolute
/// against the server's working directory (clients elsewhere could not resolve it); URIs and
/// absolute paths are kept as given.
pub(crate) fn absolute_location(location: &str) -> String {
    let path = std::path::Path::new(location);
    if location.contains("://") || location.contains(":/") || path.is_absolute() {
        return location.to_string();
    }
    std::env::current_dir().map_or_else(|_| location.to_string(), |cwd| cwd.join(path).display().to_string())
}

fn check_length(what: &str, key: &str, value: &str, limit: usize) -> Result<(), MlflowError> {
    if value.chars().count() > limit {
        return Err(MlflowError::invalid(format!("{what} `{key}` has a value longer than {limit} characters")));
    }
    Ok(())
}

fn metric_value(value: &Value, key: &str) -> Result<f64, MlflowError> {
    match value {
        Value::Number(number) => {
            number.as_f64().ok_or_else(|| MlflowError::invalid(format!("metric `{key}` value out of range")))
        }
        Value::String(text) => match text.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| MlflowError::invalid(format!("metric `{key}` value `{other}` is not a number"))),
        },
        other => Err(MlflowError::invalid(format!("metric `{key}` value {other} is not a number"))),
    }
}

/// One metric point; `path` names the metric in errors as MLflow does (`timestamp` for
/// `log-metric`, `metrics[3].timestamp` for `log-batch`). The timestamp is required, as in MLflow:
/// a point without one could not be ordered against the client's others.
fn metric_point(
    path: &str,
    key: &str,
    value: &Value,
    timestamp: Option<&Value>,
    step: Option<&Value>,
) -> Result<(String, MetricPoint), MlflowError> {
    check_key(key)?;
    let timestamp = integer(timestamp, &format!("{path}timestamp"))?
        .ok_or_else(|| MlflowError::missing(&format!("{path}timestamp")))?;
    Ok((
        key.to_string(),
        MetricPoint {
            value: metric_value(value, key)?,
            timestamp,
            step: integer(step, &format!("{path}step"))?.unwrap_or(0),
        },
    ))
}

/// Writes a `log-batch` (or a `log-metric`, `single` naming its fields without `metrics[i].`).
fn write_batch(state: &TrackingState, request: RunRequest, single: bool) -> Answer {
    let run_id = request.run_id()?.to_string();
    let metrics: Vec<(String, MetricPoint)> = request
        .metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            let path = if single { String::new() } else { format!("metrics[{index}].") };
            metric_point(&path, &metric.key, &metric.value, metric.timestamp.as_ref(), metric.step.as_ref())
        })
        .collect::<Result<_, _>>()?;
    let params: Vec<(String, String)> =
        request.params.iter().map(|param| (param.key.clone(), param.value.clone())).collect();
    let tags: Vec<(String, String)> = request.tags.iter().map(|tag| (tag.key.clone(), tag.value.clone())).collect();
    for (key, value) in &params {
        check_key(key)?;
        check_length("param", key, value, MAX_PARAM_VALUE_LENGTH)?;
    }
    for (key, value) in &tags {
        check_key(key)?;
        check_length("tag", key, value, MAX_TAG_VALUE_LENGTH)?;
    }
    let links: Vec<ModelMetricLink> = request
        .metrics
        .iter()
        .enumerate()
        .filter_map(|(index, metric)| {
            metric.model_id.as_ref().filter(|id| !id.is_empty()).map(|model_id| ModelMetricLink {
                metric: index,
                model_id: model_id.clone(),
                dataset_name: metric.dataset_name.clone().unwrap_or_default(),
                dataset_digest: metric.dataset_digest.clone().unwrap_or_default(),
            })
        })
        .collect();
    state.meta.log_batch_linked(&run_id, &metrics, &params, &tags, &links)?;
    Ok(Json(json!({})))
}

async fn log_metric(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let mut request: RunRequest = parse(&body)?;
        let key = required(&request.key, "key")?.to_string();
        let value = request.value.take().ok_or_else(|| MlflowError::missing("value"))?;
        request.metrics = vec![MetricEntry {
            key,
            value,
            timestamp: request.timestamp.take(),
            step: request.step.take(),
            model_id: request.model_id.take(),
            dataset_name: request.dataset_name.take(),
            dataset_digest: request.dataset_digest.take(),
        }];
        write_batch(&state, request, true)
    })
    .await
}

/// A parameter or tag value: a string, as MLflow's server requires (its clients always send one).
fn text_value(value: Option<&Value>) -> Result<String, MlflowError> {
    match value {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Ok(String::new()),
        Some(other) => Err(MlflowError::invalid(format!(
            "Invalid value {other} for parameter 'value' supplied: it must be a string"
        ))),
    }
}

async fn log_parameter(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let mut request: RunRequest = parse(&body)?;
        let key = required(&request.key, "key")?.to_string();
        request.params = vec![KeyValue { key, value: text_value(request.value.as_ref())? }];
        write_batch(&state, request, true)
    })
    .await
}

async fn set_tag(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let mut request: RunRequest = parse(&body)?;
        let key = required(&request.key, "key")?.to_string();
        request.tags = vec![KeyValue { key, value: text_value(request.value.as_ref())? }];
        write_batch(&state, request, true)
    })
    .await
}

async fn log_batch(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        if body.len() > MAX_BATCH_BYTES {
            return Err(MlflowError::invalid(format!("a batch request must be at most {MAX_BATCH_BYTES} bytes, got {}", body.len())));
        }
        let request: RunRequest = parse(&body)?;
        let (metrics, params, tags) = (request.metrics.len(), request.params.len(), request.tags.len());
        if metrics > MAX_BATCH_METRICS || params > MAX_BATCH_PARAMS || tags > MAX_BATCH_TAGS || metrics + params + tags > MAX_BATCH_ENTITIES {
            return Err(MlflowError::invalid(format!(
                "a batch logging request can contain at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params, {MAX_BATCH_TAGS} tags and {MAX_BATCH_ENTITIES} entities in total; got {metrics} metrics, {params} params, {tags} tags"
            )));
        }
        write_batch(&state, request, false)
    })
    .await
}

async fn delete_tag(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: RunRequest = parse(&body)?;
        state.meta.delete_run_tag(request.run_id()?, required(&request.key, "key")?)?;
        Ok(Json(json!({})))
    })
    .await
}

#[derive(Deserialize)]
struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputEntry>,
    #[serde(default)]
    models: Vec<Value>,
}

#[derive(Deserialize)]
struct DatasetInputEntry {
    #[serde(default)]
    tags: Vec<KeyValue>,
    dataset: DatasetEntry,
}

#[derive(Deserialize)]
struct DatasetEntry {
    name: String,
    digest: String,
    #[serde(default)]
    source_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

async fn log_inputs(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: LogInputs = parse(&body)?;
        let run_id = required(&request.run_id, "run_id")?.to_string();
        let models: Vec<String> = request
            .models
            .iter()
            .map(|model| {
                model
                    .get("model_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| MlflowError::invalid("each model input needs a `model_id`"))
            })
            .collect::<Result<_, _>>()?;
        if !models.is_empty() {
            state.meta.log_model_inputs(&run_id, &models)?;
        }
        let inputs: Vec<DatasetInput> = request
            .datasets
            .into_iter()
            .map(|entry| DatasetInput {
                name: entry.dataset.name,
                digest: entry.dataset.digest,
                source_type: entry.dataset.source_type,
                source: entry.dataset.source,
                schema: entry.dataset.schema,
                profile: entry.dataset.profile,
                tags: entry.tags.into_iter().map(|tag| (tag.key, tag.value)).collect(),
            })
            .collect();
        state.meta.log_dataset_inputs(&run_id, &inputs, state.clock.now_ms())?;
        Ok(Json(json!({})))
    })
    .await
}

async fn search_runs_post(State(state): State<TrackingState>, body: Bytes) -> Result<Response, MlflowError> {
    blocking(move || {
        let request: SearchRequest = parse(&body)?;
        let (limit, offset) = page(request.max_results.as_ref(), request.page_token.as_deref(), 1000)?;
        let filter = parse_filter(request.filter.as_deref().unwrap_or_default())?;
        let order = parse_order_by(&request.order_by)?;
        let view = view_type(request.run_view_type.as_ref())?;
        let (found, more) =
            state.meta.search_tracked_runs(&request.experiment_ids, view, &filter, &order, limit, offset)?;
        #[derive(Serialize)]
        struct SearchAnswer<Runs: Serialize> {
            #[serde(skip_serializing_if = "Option::is_none")]
            next_page_token: Option<String>,
            runs: Runs,
        }
        let answer = SearchAnswer {
            next_page_token: more.then(|| (offset + limit).to_string()),
            runs: Sequence(found.iter().map(RunBody)),
        };
        Ok(Json(answer).into_response())
    })
    .await
}

async fn metric_history(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let run_id = run_id_from(&query)?;
        let key = required(&query.get("metric_key").cloned(), "metric_key")?.to_string();
        let (limit, offset) = page(
            query.get("max_results").map(|value| json!(value)).as_ref(),
            query.get("page_token").map(String::as_str),
            25_000,
        )?;
        let (points, next) = paginate(state.meta.metric_history(&run_id, &key)?, limit, offset);
        let mut answer = json!({"metrics": points.iter().map(|point| metric_json(&key, point)).collect::<Vec<_>>()});
        if let (Some(next), Some(object)) = (next, answer.as_object_mut()) {
            object.insert("next_page_token".into(), json!(next));
        }
        Ok(Json(answer))
    })
    .await
}

/// The most experiments one `experiments/search-datasets` request may name.
pub const MAX_DATASET_SEARCH_EXPERIMENTS: usize = 20;
/// The most dataset summaries it answers.
pub const MAX_DATASET_SUMMARIES: usize = 1000;

/// `POST experiments/search-datasets {experiment_ids}`: the distinct datasets the experiments' runs
/// read, with the context (`training`, `eval`) they were logged under — the web UI's dataset filter.
async fn search_datasets(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: SearchRequest = parse(&body)?;
        if request.experiment_ids.is_empty() {
            return Err(MlflowError::invalid("SearchDatasets request must specify at least one experiment_id."));
        }
        if request.experiment_ids.len() > MAX_DATASET_SEARCH_EXPERIMENTS {
            return Err(MlflowError::invalid(format!(
                "SearchDatasets request cannot specify more than {MAX_DATASET_SEARCH_EXPERIMENTS} experiment_ids. Received {} experiment_ids.",
                request.experiment_ids.len()
            )));
        }
        let mut summaries = std::collections::BTreeSet::new();
        for run in state.meta.tracked_runs(&request.experiment_ids, ViewType::All)? {
            for input in &run.inputs {
                let context = input.tags.iter().find(|(key, _)| key == "mlflow.data.context").map(|(_, value)| value.clone());
                summaries.insert((run.experiment_id.clone(), input.name.clone(), input.digest.clone(), context));
            }
        }
        let summaries: Vec<Value> = summaries
            .into_iter()
            .take(MAX_DATASET_SUMMARIES)
            .map(|(experiment_id, name, digest, context)| {
                let mut summary = json!({"experiment_id": experiment_id, "name": name, "digest": digest});
                if let (Some(context), Some(object)) = (context, summary.as_object_mut()) {
                    object.insert("context".into(), json!(context));
                }
                summary
            })
            .collect();
        Ok(Json(json!({"dataset_summaries": summaries})))
    })
    .await
}

/// Answers 404 in MLflow's shape for tracking routes Causeway does not serve.
async fn unknown_endpoint() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error_code": "ENDPOINT_NOT_FOUND", "message": "this MLflow endpoint is not served by Causeway yet"}))).into_response()
}
