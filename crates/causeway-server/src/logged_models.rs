//! MLflow 3 logged models (`/api/2.0/mlflow/logged-models/...`) and run outputs, used by
//! `mlflow.<flavor>.log_model`, `register_model` and `pyfunc.load_model`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Json, Response};
use axum::routing::{delete, get, patch, post};
use causeway_store::search::{parse_filter, parse_order_by, search_registry};
use causeway_store::{LoggedModel, NewLoggedModel};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mlflow::{MlflowError, TrackingState, blocking, page, paginate, parse};

type Answer = Result<Json<Value>, MlflowError>;

/// The logged-model routes.
pub fn router(state: TrackingState) -> Router {
    Router::new()
        .route("/api/2.0/mlflow/logged-models", post(create))
        .route("/api/2.0/mlflow/logged-models/search", post(search))
        .route("/api/2.0/mlflow/logged-models/{model_id}", get(fetch).patch(finalize).delete(remove))
        .route("/api/2.0/mlflow/logged-models/{model_id}/tags", patch(set_tags))
        .route("/api/2.0/mlflow/logged-models/{model_id}/tags/{key}", delete(delete_tag))
        .route("/api/2.0/mlflow/logged-models/{model_id}/params", post(log_params))
        .route("/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", get(list_artifacts))
        .route("/api/2.0/mlflow/logged-models/{model_id}/artifacts/files", get(artifact_file))
        .route("/api/2.0/mlflow/runs/outputs", post(log_outputs))
        .with_state(state)
}

fn status_name(status: &str) -> &'static str {
    match status {
        "READY" => "LOGGED_MODEL_READY",
        "FAILED" => "LOGGED_MODEL_UPLOAD_FAILED",
        "PENDING" => "LOGGED_MODEL_PENDING",
        _ => "LOGGED_MODEL_STATUS_UNSPECIFIED",
    }
}

fn parse_status(value: Option<&Value>) -> Result<&'static str, MlflowError> {
    let text = match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => {
            return Err(MlflowError::missing("status"));
        }
    };
    match text.as_str() {
        "LOGGED_MODEL_READY" | "2" => Ok("READY"),
        "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Ok("FAILED"),
        "LOGGED_MODEL_PENDING" | "1" => Ok("PENDING"),
        other => Err(MlflowError::invalid(format!("invalid logged model status `{other}`"))),
    }
}

fn key_values(entries: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    entries.iter().map(|(key, value)| json!({"key": key, "value": value})).collect()
}

/// A logged model in MLflow's shape.
pub fn model_json(model: &LoggedModel) -> Value {
    json!({
        "info": {
            "model_id": model.model_id,
            "experiment_id": model.experiment_id,
            "name": model.name,
            "artifact_uri": model.artifact_location,
            "creation_timestamp_ms": model.creation_time,
            "last_updated_timestamp_ms": model.last_updated_time,
            "status": status_name(&model.status),
            "status_message": model.status_message,
            "model_type": model.model_type,
            "source_run_id": model.source_run_id,
            "tags": key_values(&model.tags),
        },
        "data": {
            "params": key_values(&model.params),
            "metrics": model.metrics.iter().map(|metric| {
                let mut entry = json!({
                    "key": metric.key,
                    "value": crate::mlflow::float_json(metric.value),
                    "timestamp": metric.timestamp,
                    "step": metric.step,
                    "run_id": metric.run_id,
                    "model_id": model.model_id,
                });
                if let Some(object) = entry.as_object_mut().filter(|_| !metric.dataset_name.is_empty()) {
                    object.insert("dataset_name".into(), json!(metric.dataset_name));
                    object.insert("dataset_digest".into(), json!(metric.dataset_digest));
                }
                entry
            }).collect::<Vec<_>>(),
        },
    })
}

#[derive(Deserialize, Default)]
struct ModelRequest {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    status: Option<Value>,
    run_id: Option<String>,
    #[serde(default)]
    params: Vec<Entry>,
    #[serde(default)]
    tags: Vec<Entry>,
    #[serde(default)]
    models: Vec<Output>,
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    max_results: Option<Value>,
    #[serde(default)]
    order_by: Vec<Value>,
    page_token: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetFilter>,
}

/// `search_logged_models(datasets=[…])`: models with a metric measured on this dataset.
#[derive(Deserialize)]
struct DatasetFilter {
    #[serde(default)]
    dataset_name: String,
    #[serde(default)]
    dataset_digest: Option<String>,
}

impl DatasetFilter {
    fn matches(&self, model: &LoggedModel) -> bool {
        model.metrics.iter().any(|metric| {
            metric.dataset_name == self.dataset_name
                && self
                    .dataset_digest
                    .as_deref()
                    .is_none_or(|digest| digest.is_empty() || metric.dataset_digest == digest)
        })
    }
}

#[derive(Deserialize)]
struct Entry {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct Output {
    model_id: String,
    #[serde(default)]
    step: Option<Value>,
}

async fn create(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let experiment_id =
            request.experiment_id.filter(|id| !id.is_empty()).ok_or_else(|| MlflowError::missing("experiment_id"))?;
        let model = state.meta.create_logged_model(
            &NewLoggedModel {
                experiment_id,
                name: request.name.unwrap_or_default(),
                source_run_id: request.source_run_id.unwrap_or_default(),
                model_type: request.model_type.unwrap_or_default(),
                params: request.params.into_iter().map(|entry| (entry.key, entry.value)).collect(),
                tags: request.tags.into_iter().map(|entry| (entry.key, entry.value)).collect(),
            },
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({"model": model_json(&model)})))
    })
    .await
}

async fn fetch(
    State(state): State<TrackingState>,
    Path(model_id): Path<String>,
    Query(_): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || Ok(Json(json!({"model": model_json(&state.meta.logged_model(&model_id)?)})))).await
}

/// `GET logged-models/{id}/artifacts/directories[?artifact_directory_path=…]`: a logged model's
/// files, as MLflow's web UI lists them.
async fn list_artifacts(
    State(state): State<TrackingState>,
    Path(model_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || {
        let model = state.meta.logged_model(&model_id)?;
        let path = query.get("artifact_directory_path").map(String::as_str).unwrap_or_default();
        crate::mlflow::artifact_listing(&state, &model.artifact_location, path).map(Json)
    })
    .await
}

/// `GET logged-models/{id}/artifacts/files?artifact_file_path=…`: one file of a logged model.
async fn artifact_file(
    State(state): State<TrackingState>,
    Path(model_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, MlflowError> {
    blocking(move || {
        let path = query
            .get("artifact_file_path")
            .filter(|path| !path.is_empty())
            .ok_or_else(|| MlflowError::invalid("Request must include the \"artifact_file_path\" query parameter."))?;
        let model = state.meta.logged_model(&model_id)?;
        crate::mlflow::stored_file(&state, &model.artifact_location, path)
    })
    .await
}

async fn finalize(State(state): State<TrackingState>, Path(model_id): Path<String>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let status = parse_status(request.status.as_ref())?;
        Ok(Json(
            json!({"model": model_json(&state.meta.finalize_logged_model(&model_id, status, state.clock.now_ms())?)}),
        ))
    })
    .await
}

async fn remove(State(state): State<TrackingState>, Path(model_id): Path<String>) -> Answer {
    blocking(move || {
        state.meta.delete_logged_model(&model_id)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn set_tags(State(state): State<TrackingState>, Path(model_id): Path<String>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let tags: Vec<(String, Option<String>)> =
            request.tags.into_iter().map(|entry| (entry.key, Some(entry.value))).collect();
        state.meta.set_logged_model_tags(&model_id, &tags)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_tag(State(state): State<TrackingState>, Path((model_id, key)): Path<(String, String)>) -> Answer {
    blocking(move || {
        state.meta.set_logged_model_tags(&model_id, &[(key, None)])?;
        Ok(Json(json!({})))
    })
    .await
}

async fn log_params(State(state): State<TrackingState>, Path(model_id): Path<String>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let params: Vec<(String, String)> = request.params.into_iter().map(|entry| (entry.key, entry.value)).collect();
        state.meta.log_logged_model_params(&model_id, &params)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn search(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let (limit, offset) = page(request.max_results.as_ref(), request.page_token.as_deref(), 100)?;
        let filter = parse_filter(request.filter.as_deref().unwrap_or_default())?;
        // MLflow sends order_by as objects ({field_name, ascending}); plain strings are accepted too.
        let order_text: Vec<String> = request
            .order_by
            .iter()
            .filter_map(|order| match order {
                Value::String(text) => Some(text.clone()),
                Value::Object(object) => object.get("field_name").and_then(Value::as_str).map(|field| {
                    let ascending = object.get("ascending").and_then(Value::as_bool).unwrap_or(true);
                    format!("{field} {}", if ascending { "ASC" } else { "DESC" })
                }),
                _ => None,
            })
            .collect();
        let order = parse_order_by(&order_text)?;
        if request.datasets.iter().any(|dataset| dataset.dataset_name.is_empty()) {
            return Err(MlflowError::invalid("`dataset_name` in the `datasets` clause must be specified."));
        }
        let experiments =
            if request.experiment_ids.is_empty() { vec!["0".to_string()] } else { request.experiment_ids };
        let mut models = state.meta.logged_models(&experiments)?;
        if !request.datasets.is_empty() {
            models.retain(|model| request.datasets.iter().any(|dataset| dataset.matches(model)));
        }
        let (found, next) = paginate(search_registry(models, &filter, &order), limit, offset);
        let mut answer = json!({"models": found.iter().map(model_json).collect::<Vec<_>>()});
        if let (Some(next), Some(object)) = (next, answer.as_object_mut()) {
            object.insert("next_page_token".into(), json!(next));
        }
        Ok(Json(answer))
    })
    .await
}

async fn log_outputs(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || {
        let request: ModelRequest = parse(&body)?;
        let run_id = request.run_id.filter(|id| !id.is_empty()).ok_or_else(|| MlflowError::missing("run_id"))?;
        let mut outputs = Vec::with_capacity(request.models.len());
        for output in request.models {
            state.meta.logged_model(&output.model_id)?;
            let step = match output.step {
                Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
                Some(Value::String(text)) => text.parse().unwrap_or(0),
                _ => 0,
            };
            outputs.push((output.model_id, step));
        }
        state.meta.log_run_outputs(&run_id, &outputs)?;
        Ok(Json(json!({})))
    })
    .await
}
