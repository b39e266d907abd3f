//! The MLflow model-registry REST API (`/api/2.0/mlflow/registered-models/...` and
//! `/model-versions/...`) on Causeway's registry: versions registered here are Causeway versions
//! and aliases are shared with `causeway promote` and the loop. Versions are READY at once.

use std::collections::HashMap;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::{delete, get, patch, post};
use causeway_store::registry::STAGE_TAG;
use causeway_store::search::{parse_filter, parse_order_by, search_model_versions, search_registered_models};
use causeway_store::{NewVersion, RegisteredModel, RegistryVersion};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, actor};
use crate::mlflow::{MlflowError, TrackingState, blocking, page, paginate, parse};

type Answer = Result<Json<Value>, MlflowError>;

/// The registry routes.
pub fn router(state: TrackingState) -> Router {
    const PREFIX: &str = "/api/2.0/mlflow";
    let route = |path: &str| format!("{PREFIX}/{path}");
    Router::new()
        .route(&route("registered-models/create"), post(create_model))
        .route(&route("registered-models/get"), get(get_model))
        .route(&route("registered-models/search"), get(search_models_get).post(search_models_post))
        .route(&route("registered-models/update"), patch(update_model))
        .route(&route("registered-models/rename"), post(rename_model))
        .route(&route("registered-models/delete"), delete(delete_model))
        .route(&route("registered-models/set-tag"), post(set_model_tag))
        .route(&route("registered-models/delete-tag"), delete(delete_model_tag))
        .route(&route("registered-models/alias"), post(set_alias).delete(delete_alias).get(get_alias))
        .route(&route("registered-models/get-latest-versions"), post(latest_versions_post).get(latest_versions_get))
        .route(&route("model-versions/create"), post(create_version))
        .route(&route("model-versions/get"), get(get_version))
        .route(&route("model-versions/search"), get(search_versions_get).post(search_versions_post))
        .route(&route("model-versions/update"), patch(update_version))
        .route(&route("model-versions/delete"), delete(delete_version))
        .route(&route("model-versions/set-tag"), post(set_version_tag))
        .route(&route("model-versions/delete-tag"), delete(delete_version_tag))
        .route(&route("model-versions/get-download-uri"), get(download_uri))
        .route(&route("model-versions/transition-stage"), post(transition_stage))
        .with_state(state)
}

#[derive(Deserialize, Default)]
struct RegistryRequest {
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
    key: Option<String>,
    value: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    run_link: Option<String>,
    model_id: Option<String>,
    #[serde(default)]
    tags: Vec<TagEntry>,
    filter: Option<String>,
    max_results: Option<Value>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}

#[derive(Deserialize)]
struct TagEntry {
    key: String,
    #[serde(default)]
    value: String,
}

impl RegistryRequest {
    fn from_query(query: &HashMap<String, String>) -> Self {
        Self {
            name: query.get("name").cloned(),
            alias: query.get("alias").cloned(),
            version: query.get("version").map(|version| json!(version)),
            filter: query.get("filter").cloned(),
            max_results: query.get("max_results").map(|value| json!(value)),
            order_by: query.get("order_by").map(|value| vec![value.clone()]).unwrap_or_default(),
            page_token: query.get("page_token").cloned(),
            stages: query
                .get("stages")
                .map(|stages| stages.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            ..Self::default()
        }
    }

    fn name(&self) -> Result<&str, MlflowError> {
        self.name.as_deref().filter(|name| !name.is_empty()).ok_or_else(|| MlflowError::missing("name"))
    }

    fn version(&self) -> Result<u32, MlflowError> {
        let text = match &self.version {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(MlflowError::missing("version"));
            }
        };
        text.parse().map_err(|_| MlflowError::invalid(format!("Parameter 'version' must be an integer, got '{text}'.")))
    }

    fn key(&self) -> Result<&str, MlflowError> {
        self.key.as_deref().filter(|key| !key.is_empty()).ok_or_else(|| MlflowError::missing("key"))
    }
}

fn version_json(version: &RegistryVersion) -> Value {
    json!({
        "name": version.name,
        "version": version.version.to_string(),
        "creation_timestamp": version.creation_time,
        "last_updated_timestamp": version.last_updated_time,
        "user_id": version.user_id,
        "current_stage": version.tags.get(STAGE_TAG).map_or("None", String::as_str),
        "description": version.description,
        "source": version.source,
        "run_id": version.run_id,
        "run_link": version.run_link,
        "model_id": version.model_id,
        "status": "READY",
        "status_message": "",
        "tags": version.tags.iter().map(|(key, value)| json!({"key": key, "value": value})).collect::<Vec<_>>(),
        "aliases": version.aliases,
    })
}

/// A version as MLflow 3 answers it: registered from a logged model, it shows that model's
/// parameters and metrics.
fn version_answer(state: &TrackingState, version: &RegistryVersion) -> Value {
    let mut answer = version_json(version);
    if version.model_id.is_empty() {
        return answer;
    }
    if let (Ok(logged), Some(object)) = (state.meta.logged_model(&version.model_id), answer.as_object_mut()) {
        let params: Vec<Value> =
            logged.params.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
        let metrics: Vec<Value> = logged
            .metrics
            .iter()
            .map(|metric| {
                json!({"key": metric.key, "value": crate::mlflow::float_json(metric.value), "timestamp": metric.timestamp,
                       "step": metric.step, "run_id": metric.run_id, "model_id": logged.model_id})
            })
            .collect();
        object.insert("params".into(), json!(params));
        object.insert("metrics".into(), json!(metrics));
    }
    answer
}

fn model_json(state: &TrackingState, model: &RegisteredModel) -> Result<Value, MlflowError> {
    // MLflow's `latest_versions`: the newest version in each stage.
    let latest: Vec<Value> = match model.latest_version {
        Some(_) => newest_per_stage(state.meta.registry_versions(Some(&model.name))?, &[])
            .iter()
            .map(|version| version_answer(state, version))
            .collect(),
        None => Vec::new(),
    };
    Ok(json!({
        "name": model.name,
        "creation_timestamp": model.creation_time,
        "last_updated_timestamp": model.last_updated_time,
        "description": model.description,
        "latest_versions": latest,
        "tags": model.tags.iter().map(|(key, value)| json!({"key": key, "value": value})).collect::<Vec<_>>(),
        "aliases": model.aliases.iter().map(|(alias, version)| json!({"alias": alias, "version": version.to_string()})).collect::<Vec<_>>(),
    }))
}

fn with_page(mut answer: Value, next: Option<String>) -> Value {
    if let (Some(next), Some(object)) = (next, answer.as_object_mut()) {
        object.insert("next_page_token".into(), json!(next));
    }
    answer
}

async fn create_model(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        let name = request.name()?;
        let tags: Vec<(String, String)> = request.tags.iter().map(|tag| (tag.key.clone(), tag.value.clone())).collect();
        state.meta.create_registered_model(
            name,
            request.description.as_deref().unwrap_or_default(),
            &tags,
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({"registered_model": model_json(&state, &state.meta.registered_model(name)?)?})))
    })
    .await
}

async fn get_model(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let request = RegistryRequest::from_query(&query);
        Ok(Json(json!({"registered_model": model_json(&state, &state.meta.registered_model(request.name()?)?)?})))
    })
    .await
}

fn search_models(state: &TrackingState, request: &RegistryRequest) -> Answer {
    let (limit, offset) = page(request.max_results.as_ref(), request.page_token.as_deref(), 100)?;
    let filter = parse_filter(request.filter.as_deref().unwrap_or_default())?;
    let order = parse_order_by(&request.order_by)?;
    let (found, next) =
        paginate(search_registered_models(state.meta.registered_models()?, &filter, &order), limit, offset);
    let models = found.iter().map(|model| model_json(state, model)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(with_page(json!({"registered_models": models}), next)))
}

async fn search_models_get(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || search_models(&state, &RegistryRequest::from_query(&query))).await
}

async fn search_models_post(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || search_models(&state, &parse(&body)?)).await
}

async fn update_model(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        let name = request.name()?;
        state.meta.describe_registered_model(
            name,
            request.description.as_deref().unwrap_or_default(),
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({"registered_model": model_json(&state, &state.meta.registered_model(name)?)?})))
    })
    .await
}

async fn rename_model(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        let new_name = request
            .new_name
            .as_deref()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| MlflowError::missing("new_name"))?;
        state.meta.rename_registered_model(request.name()?, new_name, &who, state.clock.now_ms())?;
        Ok(Json(json!({"registered_model": model_json(&state, &state.meta.registered_model(new_name)?)?})))
    })
    .await
}

async fn delete_model(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.delete_registered_model(request.name()?, &who, state.clock.now_ms())?;
        Ok(Json(json!({})))
    })
    .await
}

async fn set_model_tag(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.set_registered_model_tag(
            request.name()?,
            request.key()?,
            Some(request.value.as_deref().unwrap_or_default()),
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_model_tag(
    State(state): State<TrackingState>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.set_registered_model_tag(request.name()?, request.key()?, None, &who, state.clock.now_ms())?;
        Ok(Json(json!({})))
    })
    .await
}

fn alias_name(request: &RegistryRequest) -> Result<&str, MlflowError> {
    request.alias.as_deref().filter(|alias| !alias.is_empty()).ok_or_else(|| MlflowError::missing("alias"))
}

async fn set_alias(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.set_alias(
            request.name()?,
            alias_name(&request)?,
            request.version()?,
            &who,
            state.clock.now_ms(),
            "",
        )?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_alias(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        // The client sends DELETE parameters in the body; some proxies move them to the query.
        let request: RegistryRequest =
            if body.is_empty() { RegistryRequest::from_query(&query) } else { parse(&body)? };
        state.meta.delete_alias(request.name()?, alias_name(&request)?, &who, state.clock.now_ms(), "")?;
        Ok(Json(json!({})))
    })
    .await
}

async fn get_alias(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let request = RegistryRequest::from_query(&query);
        let (name, alias) = (request.name()?, alias_name(&request)?);
        let version = state.meta.version_by_alias(name, alias)?.ok_or_else(|| {
            MlflowError::from(causeway_store::Error::NotFound(format!("alias `{alias}` of registered model `{name}`")))
        })?;
        Ok(Json(json!({"model_version": version_answer(&state, &state.meta.registry_version(name, version)?)})))
    })
    .await
}

/// The newest version in each of MLflow's stages (of those asked for; all when none are).
fn latest_versions(state: &TrackingState, request: &RegistryRequest) -> Answer {
    let model = state.meta.registered_model(request.name()?)?;
    let wanted: Vec<String> = request.stages.iter().map(|stage| stage.to_ascii_lowercase()).collect();
    let newest = newest_per_stage(state.meta.registry_versions(Some(&model.name))?, &wanted);
    let versions: Vec<Value> = newest.iter().map(|version| version_answer(state, version)).collect();
    Ok(Json(json!({"model_versions": versions})))
}

/// The newest version in each stage (`wanted`, lower-case; every stage when empty), by stage name.
fn newest_per_stage(versions: Vec<RegistryVersion>, wanted: &[String]) -> Vec<RegistryVersion> {
    let mut newest: std::collections::BTreeMap<String, RegistryVersion> = std::collections::BTreeMap::new();
    for version in versions {
        let stage = version.tags.get(STAGE_TAG).cloned().unwrap_or_else(|| "None".to_string());
        if !wanted.is_empty() && !wanted.contains(&stage.to_ascii_lowercase()) {
            continue;
        }
        if newest.get(&stage).is_none_or(|kept| kept.version < version.version) {
            newest.insert(stage, version);
        }
    }
    newest.into_values().collect()
}

async fn latest_versions_post(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || latest_versions(&state, &parse(&body)?)).await
}

async fn latest_versions_get(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || latest_versions(&state, &RegistryRequest::from_query(&query))).await
}

async fn create_version(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        let source =
            request.source.clone().filter(|source| !source.is_empty()).ok_or_else(|| MlflowError::missing("source"))?;
        let mut run_id = request.run_id.clone().unwrap_or_default();
        let mut model_id = request.model_id.clone().unwrap_or_default();
        // A local source must lie inside the named run's or logged model's artifact directory.
        let run_home = Some(&run_id).filter(|id| !id.is_empty()).and_then(|id| state.meta.tracked_run(id).ok());
        let model_home = Some(&model_id).filter(|id| !id.is_empty()).and_then(|id| state.meta.logged_model(id).ok());
        let homes: Vec<String> = run_home
            .map(|run| run.artifact_uri)
            .into_iter()
            .chain(model_home.map(|logged| logged.artifact_location))
            .collect();
        check_source(&source, &homes)?;
        if let Some(pattern) = state.options.source_pattern.as_ref().filter(|pattern| !pattern.allows(&source)) {
            return Err(MlflowError::invalid(format!(
                "Invalid model version source: '{source}'. This server takes only sources matching `{}`.",
                pattern.text()
            )));
        }
        // A version registered from an MLflow 3 logged model carries the model and its run.
        if let Some(logged) = source.strip_prefix("models:/").filter(|rest| rest.starts_with("m-")) {
            let logged_id = logged.split('/').next().unwrap_or(logged);
            if let Ok(logged) = state.meta.logged_model(logged_id) {
                if run_id.is_empty() {
                    run_id = logged.source_run_id.clone();
                }
                if model_id.is_empty() {
                    model_id = logged.model_id.clone();
                }
            }
        }
        let version = state.meta.create_model_version(
            &NewVersion {
                name: request.name()?.to_string(),
                source,
                run_id,
                description: request.description.clone().unwrap_or_default(),
                run_link: request.run_link.clone().unwrap_or_default(),
                tags: request.tags.iter().map(|tag| (tag.key.clone(), tag.value.clone())).collect(),
                user_id: who,
                model_id,
            },
            state.clock.now_ms(),
        )?;
        if !version.model_id.is_empty() {
            record_registration(&state, &version)?;
        }
        Ok(Json(json!({"model_version": version_answer(&state, &version)})))
    })
    .await
}

async fn get_version(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let request = RegistryRequest::from_query(&query);
        Ok(Json(
            json!({"model_version": version_answer(&state, &state.meta.registry_version(request.name()?, request.version()?)?)}),
        ))
    })
    .await
}

fn search_versions(state: &TrackingState, request: &RegistryRequest) -> Answer {
    let (limit, offset) = page(request.max_results.as_ref(), request.page_token.as_deref(), 10_000)?;
    let filter = parse_filter(request.filter.as_deref().unwrap_or_default())?;
    let order = parse_order_by(&request.order_by)?;
    let (found, next) =
        paginate(search_model_versions(state.meta.registry_versions(None)?, &filter, &order), limit, offset);
    Ok(Json(with_page(
        json!({"model_versions": found.iter().map(|version| version_answer(state, version)).collect::<Vec<_>>()}),
        next,
    )))
}

async fn search_versions_get(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    blocking(move || search_versions(&state, &RegistryRequest::from_query(&query))).await
}

async fn search_versions_post(State(state): State<TrackingState>, body: Bytes) -> Answer {
    blocking(move || search_versions(&state, &parse(&body)?)).await
}

async fn update_version(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        let (name, version) = (request.name()?, request.version()?);
        state.meta.describe_model_version(
            name,
            version,
            request.description.as_deref().unwrap_or_default(),
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({"model_version": version_answer(&state, &state.meta.registry_version(name, version)?)})))
    })
    .await
}

async fn delete_version(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.delete_model_version(request.name()?, request.version()?, &who, state.clock.now_ms())?;
        Ok(Json(json!({})))
    })
    .await
}

async fn set_version_tag(State(state): State<TrackingState>, caller: Option<Extension<Caller>>, body: Bytes) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.set_model_version_tag(
            request.name()?,
            request.version()?,
            request.key()?,
            Some(request.value.as_deref().unwrap_or_default()),
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({})))
    })
    .await
}

async fn delete_version_tag(
    State(state): State<TrackingState>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: RegistryRequest = parse(&body)?;
        state.meta.set_model_version_tag(
            request.name()?,
            request.version()?,
            request.key()?,
            None,
            &who,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({})))
    })
    .await
}

async fn download_uri(State(state): State<TrackingState>, Query(query): Query<HashMap<String, String>>) -> Answer {
    blocking(move || {
        let request = RegistryRequest::from_query(&query);
        let version = state.meta.registry_version(request.name()?, request.version()?)?;
        Ok(Json(json!({"artifact_uri": storage_location(&state, &version.source)})))
    })
    .await
}

/// Where a version's files are, as MLflow's server answers `get-download-uri`: a `models:/`
/// source (a logged model, or a version it was copied from) resolved to the files themselves.
pub(crate) fn storage_location(state: &TrackingState, source: &str) -> String {
    let mut current = source.to_string();
    for _ in 0..8 {
        let Some(rest) = current.strip_prefix("models:/") else { break };
        let rest = rest.trim_matches('/').to_string();
        let next = if rest.starts_with("m-") {
            state.meta.logged_model(&rest).ok().map(|logged| logged.artifact_location)
        } else if let Some((name, version)) = rest.rsplit_once('/') {
            version
                .parse()
                .ok()
                .and_then(|version| state.meta.registry_version(name, version).ok())
                .map(|found| found.source)
        } else if let Some((name, alias)) = rest.split_once('@') {
            state
                .meta
                .version_by_alias(name, alias)
                .ok()
                .flatten()
                .and_then(|version| state.meta.registry_version(name, version).ok())
                .map(|found| found.source)
        } else {
            None
        };
        match next {
            Some(next) if next != current => current = next,
            _ => break,
        }
    }
    current
}

/// JSON as Python's `json.dumps` writes it (`", "` and `": "` between items), which is how
/// MLflow writes the tags its clients compare as text.
fn python_json(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(python_json).collect::<Vec<_>>().join(", ")),
        Value::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(key, value)| format!("{}: {}", Value::from(key.as_str()), python_json(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Lists the new version in its logged model's `mlflow.modelVersions` tag, as MLflow does.
fn record_registration(state: &TrackingState, version: &RegistryVersion) -> Result<(), MlflowError> {
    const TAG: &str = "mlflow.modelVersions";
    let Ok(logged) = state.meta.logged_model(&version.model_id) else { return Ok(()) };
    let mut registered: Vec<Value> =
        logged.tags.get(TAG).and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    registered.push(json!({"name": version.name, "version": version.version}));
    let text = python_json(&Value::Array(registered));
    state.meta.set_logged_model_tags(&version.model_id, &[(TAG.to_string(), Some(text))])?;
    Ok(())
}

/// Refuses a version source that climbs out of its directory or points at another server, as
/// MLflow's server does: the source is where `get-download-uri` sends clients. A local path (or
/// `file:` URI) is accepted only inside the artifact directory of the run or logged model the
/// request names (`homes`), and only when that directory is itself local (`--default-artifact-root`).
fn check_source(source: &str, homes: &[String]) -> Result<(), MlflowError> {
    let decoded = percent_decode(source);
    let lowered = decoded.to_ascii_lowercase();
    // MLflow's words, which its clients and tests look for.
    let escaping = || {
        MlflowError::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        ))
    };
    if decoded.contains('\0') {
        return Err(escaping());
    }
    if let Some(path) = local_path(&decoded)? {
        let inside = homes
            .iter()
            .filter_map(|uri| local_path(uri).ok().flatten())
            .any(|home| lexical_components(&path).starts_with(&lexical_components(&home)));
        if inside {
            return Ok(());
        }
        let hint = match homes.first() {
            Some(uri) if uri.starts_with("mlflow-artifacts:") => {
                " This server keeps that run's artifacts behind mlflow-artifacts:/ URIs: log the model (mlflow.<flavor>.log_model) and register its models:/ or runs:/ URI."
            }
            _ => "",
        };
        return Err(MlflowError::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version source, the run_id request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the run_id.{hint}"
        )));
    }
    if decoded.split(['/', '\\', '?']).any(|segment| segment == "..") {
        return Err(escaping());
    }
    if ["http://", "https://", "ftp://", "sftp://"].iter().any(|scheme| lowered.starts_with(scheme)) {
        return Err(MlflowError::invalid(format!(
            "invalid model version source `{source}`: sources are artifact URIs (mlflow-artifacts:, runs:/, models:/, s3://, …), not web addresses"
        )));
    }
    Ok(())
}

/// The local path a source names (`/a/b`, `./a`, `file:///a/b`), `None` for other URIs; a `file:`
/// URI naming another host is refused.
fn local_path(source: &str) -> Result<Option<String>, MlflowError> {
    if source.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:")) {
        let rest = &source[5..];
        return match rest.strip_prefix("//") {
            Some(path) if path.starts_with('/') => Ok(Some(path.to_string())),
            Some(path) if path.is_empty() || path.starts_with("localhost/") => {
                Ok(Some(path.trim_start_matches("localhost").to_string()))
            }
            Some(_) => Err(MlflowError::invalid(format!(
                "'{source}' is not a valid remote uri: a file: source must name this machine's files (file:///path)"
            ))),
            None => Ok(Some(rest.to_string())),
        };
    }
    if source.starts_with('/') || source.starts_with("./") || source.starts_with("../") || source == "." {
        return Ok(Some(crate::mlflow::absolute_location(source)));
    }
    Ok(None)
}

/// A path's components with `.` dropped and `..` applied, without touching the file system.
fn lexical_components(path: &str) -> Vec<&str> {
    let mut components: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            other => components.push(other),
        }
    }
    components
}

/// A pattern new model versions' sources must match somewhere (Python's `re.search`), as
/// MLflow's `MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX`.
#[derive(Clone)]
pub struct SourcePattern {
    text: String,
    regex: std::sync::Arc<regex_automata::dfa::regex::Regex>,
}

impl SourcePattern {
    /// Compiles `text`; the answer names what is wrong with a pattern that does not compile.
    pub fn new(text: &str) -> Result<Self, String> {
        use regex_automata::dfa::{dense, regex::Builder};
        const LIMIT: usize = 8 * 1024 * 1024;
        let config = dense::Config::new().dfa_size_limit(Some(LIMIT)).determinize_size_limit(Some(LIMIT));
        let regex = Builder::new().dense(config).build(text).map_err(|error| error.to_string())?;
        Ok(Self { text: text.to_string(), regex: std::sync::Arc::new(regex) })
    }

    /// Whether `source` matches somewhere.
    pub fn allows(&self, source: &str) -> bool {
        self.regex.is_match(source)
    }

    /// The pattern as given.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `%XX` sequences decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|byte| (*byte as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[derive(Deserialize)]
struct TransitionRequest {
    name: Option<String>,
    version: Option<Value>,
    stage: Option<String>,
    #[serde(default)]
    archive_existing_versions: Option<Value>,
}

/// MLflow's deprecated stages: Causeway keeps them as the `mlflow.stage` tag of the version
/// (`None`, `Staging`, `Production`, `Archived`); aliases are what decide who answers.
async fn transition_stage(
    State(state): State<TrackingState>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Answer {
    let who = actor(caller.as_deref());
    blocking(move || {
        let request: TransitionRequest = parse(&body)?;
        let common = RegistryRequest {
            name: request.name.clone(),
            version: request.version.clone(),
            ..RegistryRequest::default()
        };
        let (name, version) = (common.name()?, common.version()?);
        let stage = match request.stage.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("none") => "None",
            Some("staging") => "Staging",
            Some("production") => "Production",
            Some("archived") => "Archived",
            other => {
                return Err(MlflowError::invalid(format!(
                    "invalid model version stage {}: use None, Staging, Production or Archived",
                    other.map_or("(missing)".to_string(), |stage| format!("`{stage}`"))
                )));
            }
        };
        let archive = matches!(&request.archive_existing_versions, Some(Value::Bool(true)))
            || matches!(&request.archive_existing_versions, Some(Value::String(text)) if text == "true");
        state.meta.transition_model_version_stage(name, version, stage, archive, &who, state.clock.now_ms())?;
        Ok(Json(json!({"model_version": version_answer(&state, &state.meta.registry_version(name, version)?)})))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::{SourcePattern, check_source};

    #[test]
    fn a_source_pattern_is_searched_anywhere_as_pythons_re_search() {
        let pattern = SourcePattern::new(r"^mlflow-artifacts:/.*$").expect("compiles");
        assert!(pattern.allows("mlflow-artifacts:/1/r/artifacts/model"));
        assert!(!pattern.allows("s3://path/to/model"));
        let anywhere = SourcePattern::new("artifacts").expect("compiles");
        assert!(anywhere.allows("s3://bucket/artifacts/model"));
        assert!(SourcePattern::new("(unclosed").is_err());
    }

    #[test]
    fn sources_that_climb_hide_nul_or_leave_their_home_are_refused() {
        let home = vec!["file:///data/1/r/artifacts".to_string()];
        for accepted in [
            "mlflow-artifacts:/models/",
            "mlflow-artifacts://host:9000/models/artifact/..../",
            "runs:/r/model",
            "file:///data/1/r/artifacts/model/..",
            "/data/1/r/artifacts/model",
        ] {
            assert!(check_source(accepted, &home).is_ok(), "{accepted}");
        }
        for refused in [
            "mlflow-artifacts://host:9000/models/../../../",
            "mlflow-artifacts://host:9000/models/..%2f..%2fartifacts",
            "mlflow-artifacts://host:9000/models/artifact%00",
            "dbfs:/r/artifacts/a%3f/../../",
            "http://elsewhere.example/model",
            "/data/1/r/artifacts/../../other",
            "/tmp",
            "file://10.0.0.1/path",
        ] {
            assert!(check_source(refused, &home).is_err(), "{refused}");
        }
        assert!(check_source("/data/1/r/artifacts/model", &[]).is_err(), "no home named");
    }
}
