//! The engine: deployments, hot swap, record scoring and logging.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use causeway_features::{FeatureSetSpec, OnlineStore, RecordFields};
use causeway_models::metrics::argmax;
use causeway_models::{InputError, ModelArtifact, Task, TaskKind};
use causeway_monitor::{PredictionLog, PredictionRecord, Role};
use causeway_store::{BlobStore, MetaStore};
use causeway_types::error::HasErrorCode;
use causeway_types::{Clock, FeatureValue, RolloutMode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::outputs::{OutputTensor, output_tensors};
use crate::routing::route;

/// One loaded model version.
#[derive(Debug, Clone)]
pub struct LoadedVersion {
    /// The version number.
    pub version: u32,
    /// The artifact.
    pub artifact: Arc<ModelArtifact>,
}

/// What serves a model right now. Requests hold an `Arc` to it, so a swap never disturbs a
/// request in flight.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The model's name.
    pub model: String,
    /// The champion.
    pub champion: LoadedVersion,
    /// The challenger, during shadow or canary.
    pub challenger: Option<LoadedVersion>,
    /// How they share traffic.
    pub mode: RolloutMode,
}

impl Deployment {
    fn version(&self, version: u32) -> Option<&LoadedVersion> {
        std::iter::once(&self.champion).chain(self.challenger.as_ref()).find(|loaded| loaded.version == version)
    }

    fn key(&self) -> (u32, Option<u32>, String) {
        (self.champion.version, self.challenger.as_ref().map(|loaded| loaded.version), format!("{:?}", self.mode))
    }
}

/// The feature set and online store used to fill record requests.
pub struct OnlineFeatures {
    /// The declared feature set.
    pub spec: FeatureSetSpec,
    /// The online store.
    pub store: Arc<OnlineStore>,
}

/// A record-style request: raw fields of one event; features are filled from the online store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// The request id (labels join on it); generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Raw fields, e.g. `customer_id`, `amount`, `merchant_category`, `timestamp`.
    pub fields: BTreeMap<String, FeatureValue>,
}

/// What a record request predicted: a class (by name) or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prediction {
    /// The predicted number (regression).
    Value(f64),
    /// The predicted class.
    Class(String),
}

/// The answer to a record request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordDecision {
    /// The request id.
    pub request_id: String,
    /// The model.
    pub model: String,
    /// The version that answered.
    pub version: u32,
    /// What the model predicts.
    pub task: TaskKind,
    /// Binary: the positive class's probability; multi-class: the predicted class's
    /// probability; regression: the prediction.
    pub score: f64,
    /// The predicted class, or the predicted number.
    pub prediction: Prediction,
    /// Binary: the version's decision threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Binary: `score >= threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<bool>,
    /// Multi-class: every class's probability, by class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probabilities: BTreeMap<String, f64>,
    /// The features the model saw, by name.
    pub features: BTreeMap<String, FeatureValue>,
    /// Categorical features whose value the model never saw in training (scored as missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_categories: Vec<String>,
}

/// The answer to a tensor request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferOutcome {
    /// The version that answered.
    pub version: u32,
    /// One score per row: the positive class's probability, the most likely class's
    /// probability, or the prediction.
    pub scores: Vec<f64>,
    /// Values per row in `values`: 1, or the class count.
    pub outputs: usize,
    /// Every output of every row, row after row.
    pub values: Vec<f64>,
    /// The version's decision threshold (binary models).
    pub threshold: f64,
    /// What the version predicts.
    pub task: Task,
}

impl InferOutcome {
    /// The answer as the task's output tensors.
    pub fn tensors(&self) -> Vec<OutputTensor> {
        output_tensors(&self.task, self.threshold, self.scores.len(), &self.values)
    }
}

/// What the prediction log records as a row's prediction: the class index (multi-class), the
/// value (regression), the positive class's probability (binary).
fn logged_prediction(task: &Task, outputs: &[f64]) -> f64 {
    match task {
        Task::Multiclass { .. } => argmax(outputs) as f64,
        _ => outputs.first().copied().unwrap_or(f64::NAN),
    }
}

struct Fields<'a>(&'a BTreeMap<String, FeatureValue>);

impl RecordFields for Fields<'_> {
    fn number(&self, name: &str) -> Option<f64> {
        self.0.get(name).and_then(FeatureValue::as_number)
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            FeatureValue::Text(text) => Some(text.clone()),
            FeatureValue::Number(number) if !number.is_nan() => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Loads deployments from the store and scores requests.
pub struct Engine {
    meta: Arc<MetaStore>,
    blobs: BlobStore,
    features: Option<OnlineFeatures>,
    clock: Arc<dyn Clock>,
    log: PredictionLog,
    deployments: RwLock<HashMap<String, Arc<Deployment>>>,
    versions: RwLock<HashMap<(String, u32), Arc<ModelArtifact>>>,
    /// Models whose wanted deployment could not be loaded, by the deployment key that failed, so
    /// each failure is reported once and retried only when what is wanted changes.
    unservable: std::sync::Mutex<HashMap<String, DeploymentKey>>,
    request_counter: AtomicU64,
    /// This replica's id in the per-version counts it reports to the store.
    replica: String,
    /// Requests and errors per version and minute, not yet reported.
    counts: std::sync::Mutex<Counts>,
}

/// Requests and errors by model, then by (version, minute): a request looks its model up
/// without allocating.
type Counts = HashMap<String, HashMap<(u32, i64), (u64, u64)>>;

/// Adds `requests` and `errors` to `counts` of `model` at `key`.
fn add_count(counts: &mut Counts, model: &str, key: (u32, i64), requests: u64, errors: u64) {
    let per_model = match counts.get_mut(model) {
        Some(per_model) => per_model,
        None => counts.entry(model.to_string()).or_default(),
    };
    let entry = per_model.entry(key).or_default();
    entry.0 += requests;
    entry.1 += errors;
}

/// (champion, challenger, rollout mode): what a deployment serves.
type DeploymentKey = (u32, Option<u32>, String);

/// What one [`Engine::refresh`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Models whose deployment changed.
    pub changed: Vec<String>,
    /// Models whose wanted versions cannot be served (a format Causeway does not serve, such as a
    /// pickled scikit-learn model logged through the MLflow API, or an unreadable artifact), with
    /// why. Each is reported once; the others keep serving.
    pub unservable: Vec<(String, String)>,
    /// Models that stopped answering because the store no longer serves them (or their wanted
    /// versions cannot be served).
    pub removed: Vec<String>,
}

impl Engine {
    /// An engine over these stores. Call [`Engine::refresh`] to load deployments.
    pub fn new(
        meta: Arc<MetaStore>,
        blobs: BlobStore,
        features: Option<OnlineFeatures>,
        clock: Arc<dyn Clock>,
        log: PredictionLog,
    ) -> Self {
        Self {
            meta,
            blobs,
            features,
            clock,
            log,
            deployments: RwLock::new(HashMap::new()),
            unservable: std::sync::Mutex::new(HashMap::new()),
            versions: RwLock::new(HashMap::new()),
            request_counter: AtomicU64::new(0),
            replica: format!("{}:{}", std::process::id(), causeway_store::random_hex(4).unwrap_or_default()),
            counts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Counts one scoring of `version` (served or shadow), failed or not.
    fn count(&self, model: &str, version: u32, failed: bool) {
        let minute = self.clock.now_ms().div_euclid(60_000) * 60_000;
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        add_count(&mut counts, model, (version, minute), 1, u64::from(failed));
    }

    /// Writes the per-version request and error counts gathered since the last report to the
    /// store, where the loop judges a challenger's error rate over every replica. Counts that
    /// cannot be written are kept for the next report.
    pub fn report_counts(&self) -> Result<()> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<causeway_store::ServingCount> = taken
            .iter()
            .flat_map(|(model, per_model)| {
                per_model.iter().map(move |((version, minute_ms), (requests, errors))| causeway_store::ServingCount {
                    model: model.clone(),
                    version: *version,
                    minute_ms: *minute_ms,
                    requests: *requests,
                    errors: *errors,
                })
            })
            .collect();
        if let Err(error) = self.meta.add_serving_counts(&self.replica, &rows) {
            let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for row in rows {
                add_count(&mut counts, &row.model, (row.version, row.minute_ms), row.requests, row.errors);
            }
            return Err(error.into());
        }
        Ok(())
    }

    /// The prediction log.
    pub fn log(&self) -> &PredictionLog {
        &self.log
    }

    /// The online features, when configured.
    pub fn online_features(&self) -> Option<&OnlineFeatures> {
        self.features.as_ref()
    }

    /// Loads an artifact (cached).
    pub fn artifact(&self, model: &str, version: u32) -> Result<Arc<ModelArtifact>> {
        let key = (model.to_string(), version);
        if let Some(artifact) = self.versions.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return Ok(artifact.clone());
        }
        let record = self.meta.model_version(model, version).map_err(|error| match error {
            causeway_store::Error::NotFound(_) => Error::NoSuchVersion { model: model.to_string(), version },
            other => Error::Store(other),
        })?;
        let bytes = self.blobs.get(&record.artifact_key)?;
        let artifact = Arc::new(ModelArtifact::from_bytes(&bytes).map_err(|cause| Error::Load {
            model: model.to_string(),
            version,
            cause,
        })?);
        self.versions.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, artifact.clone());
        Ok(artifact)
    }

    /// Re-reads what should be deployed for every registered model and swaps what changed. A model
    /// that cannot be loaded keeps its current deployment (if any) and does not stop the others.
    pub fn refresh(&self) -> Result<Refresh> {
        if let Err(error) = self.report_counts() {
            tracing::warn!(%error, "reporting serving counts to the store failed; they are kept for the next refresh");
        }
        let mut report = Refresh::default();
        let mut served = std::collections::HashSet::new();
        for model in self.meta.model_names()? {
            let policy = self.meta.serving_policy(&model)?;
            let Some(policy) = policy else { continue };
            let current = self.deployments.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&model).cloned();
            let desired_key = (policy.champion, policy.challenger, format!("{:?}", policy.mode));
            if current.as_ref().is_some_and(|deployment| deployment.key() == desired_key) {
                served.insert(model);
                continue;
            }
            let mut unservable = self.unservable.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if unservable.get(&model) == Some(&desired_key) {
                continue;
            }
            let loaded = self.artifact(&model, policy.champion).and_then(|champion| {
                let challenger = match policy.challenger {
                    Some(version) => Some(LoadedVersion { version, artifact: self.artifact(&model, version)? }),
                    None => None,
                };
                Ok((LoadedVersion { version: policy.champion, artifact: champion }, challenger))
            });
            let (champion, challenger) = match loaded {
                Ok(versions) => versions,
                Err(Error::Store(store)) if store.code() != causeway_types::ErrorCode::NotFound => {
                    return Err(Error::Store(store));
                }
                Err(error) => {
                    unservable.insert(model.clone(), desired_key);
                    report.unservable.push((model, error.to_string()));
                    continue;
                }
            };
            unservable.remove(&model);
            served.insert(model.clone());
            let deployment = Arc::new(Deployment { model: model.clone(), champion, challenger, mode: policy.mode });
            self.deployments.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(model.clone(), deployment);
            report.changed.push(model);
        }
        // What the store no longer serves (a deleted model, champion alias or champion version)
        // stops answering, as Triton unloads what was removed.
        let mut deployments = self.deployments.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let removed: Vec<String> = deployments.keys().filter(|model| !served.contains(*model)).cloned().collect();
        for model in removed {
            deployments.remove(&model);
            report.removed.push(model);
        }
        Ok(report)
    }

    /// The current deployment of `model`.
    pub fn deployment(&self, model: &str) -> Result<Arc<Deployment>> {
        self.deployments
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(model)
            .cloned()
            .ok_or_else(|| Error::NotDeployed(model.to_string()))
    }

    /// Whether `model` is deployed now.
    pub fn is_deployed(&self, model: &str) -> bool {
        self.deployments.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(model)
    }

    /// Whether scoring `model` (at `version`, or as deployed) needs nothing from the store: the
    /// model is deployed and the version, if named, is in memory.
    pub fn is_loaded(&self, model: &str, version: Option<u32>) -> bool {
        self.is_deployed(model)
            && version.is_none_or(|version| {
                self.versions
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .contains_key(&(model.to_string(), version))
            })
    }

    /// The names of deployed models.
    pub fn deployed_models(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.deployments.read().unwrap_or_else(|poisoned| poisoned.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    fn next_request_id(&self) -> String {
        format!("req-{}-{}", self.clock.now_ms(), self.request_counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Scores encoded rows (already checked against the signature by the caller or here).
    /// With `version`, that version answers; otherwise the deployment routes by request id.
    pub fn infer(
        &self,
        model: &str,
        version: Option<u32>,
        rows: &[Vec<f64>],
        request_id: Option<&str>,
    ) -> Result<InferOutcome> {
        let deployment = self.deployment(model)?;
        let request_id = request_id.map_or_else(|| self.next_request_id(), str::to_string);
        let now = self.clock.now_ms();
        let (served, shadow) = match version {
            Some(version) => {
                let loaded = match deployment.version(version) {
                    Some(loaded) => loaded.clone(),
                    None => LoadedVersion { version, artifact: self.artifact(model, version)? },
                };
                (loaded, None)
            }
            None => {
                let path = route(
                    &request_id,
                    deployment.champion.version,
                    deployment.challenger.as_ref().map(|loaded| loaded.version),
                    deployment.mode,
                );
                let pick = |version: u32| deployment.version(version).cloned();
                (pick(path.served).unwrap_or_else(|| deployment.champion.clone()), path.shadow.and_then(pick))
            }
        };
        for row in rows {
            served.artifact.signature.check_encoded(row)?;
        }
        let started = Instant::now();
        let outputs = served.artifact.model.outputs();
        let values = served.artifact.model.predict_outputs(rows);
        let scores: Vec<f64> = if outputs > 1 {
            values.chunks(outputs).map(|classes| classes.iter().copied().fold(f64::NAN, f64::max)).collect()
        } else {
            values.clone()
        };
        // A NaN would be answered as a confident label (false, or class 0): refuse instead.
        if let Some(row) = scores.iter().position(|score| score.is_nan()) {
            self.count(model, served.version, true);
            return Err(Error::NoScore { model: model.to_string(), version: served.version, row });
        }
        self.count(model, served.version, false);
        let latency_us = started.elapsed().as_micros() as u64;
        let many = rows.len() > 1;
        let width = outputs.max(1);
        for (index, (row, score)) in rows.iter().zip(&scores).enumerate() {
            let row_id = if many { format!("{request_id}/{index}") } else { request_id.clone() };
            let row_outputs = values.get(index * width..(index + 1) * width).unwrap_or_default();
            self.log.log(PredictionRecord {
                request_id: row_id.clone(),
                timestamp_ms: now,
                model: model.to_string(),
                version: served.version,
                role: Role::Served,
                score: *score,
                prediction: logged_prediction(&served.artifact.task, row_outputs),
                latency_us,
                features: row.clone(),
            });
            if let Some(shadow) = &shadow {
                let readable = shadow.artifact.signature.check_encoded(row).is_ok();
                let shadow_outputs = if readable { shadow.artifact.outputs_of(row) } else { Vec::new() };
                let failed = !readable || shadow_outputs.iter().all(|value| value.is_nan());
                self.count(model, shadow.version, failed);
                if failed {
                    continue;
                }
                self.log.log(PredictionRecord {
                    request_id: row_id,
                    timestamp_ms: now,
                    model: model.to_string(),
                    version: shadow.version,
                    role: Role::Shadow,
                    score: shadow_outputs.iter().copied().fold(f64::NAN, f64::max),
                    prediction: logged_prediction(&shadow.artifact.task, &shadow_outputs),
                    latency_us,
                    features: row.clone(),
                });
            }
        }
        Ok(InferOutcome {
            version: served.version,
            scores,
            outputs,
            values,
            threshold: served.artifact.threshold,
            task: served.artifact.task.clone(),
        })
    }

    /// Scores one record: fills its features from the online store (or, for a model that reads
    /// other inputs than the project's features, such as an imported file, takes each of its
    /// inputs from the fields), routes, scores and logs.
    pub fn score_record(&self, model: &str, request: &RecordRequest) -> Result<RecordDecision> {
        let deployment = self.deployment(model)?;
        let started = Instant::now();
        let request_id = request.request_id.clone().unwrap_or_else(|| self.next_request_id());
        let path = route(
            &request_id,
            deployment.champion.version,
            deployment.challenger.as_ref().map(|loaded| loaded.version),
            deployment.mode,
        );
        let served = deployment.version(path.served).unwrap_or(&deployment.champion);
        let by_name = self.record_inputs(&served.artifact, &request.fields)?;
        let encode = |artifact: &ModelArtifact, unknown: &mut Vec<usize>| -> Result<Vec<f64>, InputError> {
            let ordered: Vec<FeatureValue> = artifact
                .signature
                .features
                .iter()
                .map(|feature| by_name.get(&feature.name).cloned().unwrap_or(FeatureValue::Missing))
                .collect();
            artifact.signature.encode_noting(&ordered, unknown)
        };
        let mut unknown = Vec::new();
        let row = encode(&served.artifact, &mut unknown)?;
        let unknown_categories: Vec<String> = unknown
            .iter()
            .filter_map(|index| served.artifact.signature.features.get(*index).map(|feature| feature.name.clone()))
            .collect();
        let values = served.artifact.outputs_of(&row);
        let score = values.iter().copied().fold(f64::NAN, f64::max);
        if score.is_nan() {
            self.count(model, served.version, true);
            return Err(Error::NoScore { model: model.to_string(), version: served.version, row: 0 });
        }
        self.count(model, served.version, false);
        let latency_us = started.elapsed().as_micros() as u64;
        let timestamp_ms = match &self.features {
            Some(features) => self.event_time(features, &request.fields),
            None => self.clock.now_ms(),
        };
        self.log.log(PredictionRecord {
            request_id: request_id.clone(),
            timestamp_ms,
            model: model.to_string(),
            version: served.version,
            role: Role::Served,
            score,
            prediction: logged_prediction(&served.artifact.task, &values),
            latency_us,
            features: row,
        });
        let shadow = path.shadow.and_then(|version| deployment.version(version)).and_then(|shadow| {
            // A challenger that cannot read what the champion reads, or answers no number,
            // fails this request (counted, never answered).
            let scored = encode(&shadow.artifact, &mut Vec::new())
                .ok()
                .map(|row| {
                    let outputs = shadow.artifact.outputs_of(&row);
                    (row, outputs)
                })
                .filter(|(_, outputs)| !outputs.iter().all(|value| value.is_nan()));
            self.count(model, shadow.version, scored.is_none());
            scored.map(|scored| (shadow, scored))
        });
        if let Some((shadow, (shadow_row, shadow_outputs))) = shadow {
            self.log.log(PredictionRecord {
                request_id: request_id.clone(),
                timestamp_ms,
                model: model.to_string(),
                version: shadow.version,
                role: Role::Shadow,
                score: shadow_outputs.iter().copied().fold(f64::NAN, f64::max),
                prediction: logged_prediction(&shadow.artifact.task, &shadow_outputs),
                latency_us,
                features: shadow_row,
            });
        }
        let artifact = &served.artifact;
        let (prediction, threshold, positive, probabilities) = match &artifact.task {
            Task::Binary { classes } => {
                let positive = score >= artifact.threshold;
                (
                    Prediction::Class(classes[usize::from(positive)].clone()),
                    Some(artifact.threshold),
                    Some(positive),
                    BTreeMap::new(),
                )
            }
            Task::Multiclass { classes } => (
                Prediction::Class(classes[argmax(&values)].clone()),
                None,
                None,
                classes.iter().cloned().zip(values.iter().copied()).collect(),
            ),
            Task::Regression => (Prediction::Value(score), None, None, BTreeMap::new()),
        };
        Ok(RecordDecision {
            request_id,
            model: model.to_string(),
            version: served.version,
            task: artifact.task.kind(),
            score,
            prediction,
            threshold,
            positive,
            probabilities,
            features: by_name,
            unknown_categories,
        })
    }

    /// The values a record request gives `artifact`, by input name: the project's features (from
    /// the fields and the online store) when the model reads them, else each model input taken
    /// from the fields as sent — every input must be there (null for missing).
    fn record_inputs(
        &self,
        artifact: &ModelArtifact,
        fields: &BTreeMap<String, FeatureValue>,
    ) -> Result<BTreeMap<String, FeatureValue>> {
        if let Some(features) = &self.features {
            let names = features.spec.feature_names();
            if artifact.signature.features.iter().all(|feature| names.contains(&feature.name)) {
                let values = self.record_features(features, fields)?;
                return Ok(names.into_iter().zip(values).collect());
            }
        }
        let mut inputs = BTreeMap::new();
        for feature in &artifact.signature.features {
            let value = fields.get(&feature.name).ok_or_else(|| {
                InputError::new(
                    &feature.name,
                    format!(
                        "is an input of this model and missing from `fields` (inputs: {}; send null for a missing value)",
                        artifact.signature.names().join(", ")
                    ),
                )
            })?;
            inputs.insert(feature.name.clone(), value.clone());
        }
        Ok(inputs)
    }

    fn event_time(&self, features: &OnlineFeatures, fields: &BTreeMap<String, FeatureValue>) -> i64 {
        features
            .spec
            .views
            .first()
            .and_then(|view| fields.get(&view.timestamp))
            .and_then(FeatureValue::as_number)
            .map_or_else(|| self.clock.now_ms(), |value| value as i64)
    }

    /// The feature values of a record, in the feature set's order.
    pub fn record_features(
        &self,
        features: &OnlineFeatures,
        fields: &BTreeMap<String, FeatureValue>,
    ) -> Result<Vec<FeatureValue>> {
        for name in features.spec.required_fields() {
            let is_timestamp = features.spec.views.iter().any(|view| view.timestamp == name);
            if !fields.contains_key(&name) && !is_timestamp {
                return Err(InputError::new(&name, "is required and missing from `fields`").into());
            }
        }
        let record = Fields(fields);
        let at_ms = self.event_time(features, fields);
        let mut aggregates = Vec::with_capacity(features.spec.views.len());
        for view in &features.spec.views {
            let entity =
                record.text(&view.entity).ok_or_else(|| InputError::new(&view.entity, "must be a string entity id"))?;
            aggregates.push(features.store.features(view, &entity, at_ms)?);
        }
        Ok(features.spec.assemble(&record, &aggregates))
    }

    /// Records an event in the online store (ingestion), so later requests see it in windows.
    pub fn push_event(&self, fields: &BTreeMap<String, FeatureValue>) -> Result<()> {
        let features = self.features.as_ref().ok_or(Error::NoFeatures)?;
        let record = Fields(fields);
        let at_ms = self.event_time(features, fields);
        for view in &features.spec.views {
            let entity =
                record.text(&view.entity).ok_or_else(|| InputError::new(&view.entity, "must be a string entity id"))?;
            let values = view
                .source_columns()
                .iter()
                .map(|column| if column.is_empty() { f64::NAN } else { record.number(column).unwrap_or(f64::NAN) })
                .collect();
            features.store.push(view, &entity, at_ms, values)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_models::{FeatureKind, FeatureSpec, GbdtModel, Model, Node, Signature, Tree};
    use causeway_monitor::read_window;
    use causeway_types::{CHAMPION, ManualClock, ModelVersionRecord};

    use super::*;

    fn artifact(leaf: f64) -> ModelArtifact {
        let tree = Tree {
            nodes: vec![
                Node::Split { feature: 0, threshold: 0.0, left: 1, right: 2, missing_left: true },
                Node::Leaf { value: -leaf },
                Node::Leaf { value: leaf },
            ],
        };
        ModelArtifact::new(
            Model::Gbdt(GbdtModel::new(0.0, vec![tree])),
            Signature { features: vec![FeatureSpec { name: "x".into(), kind: FeatureKind::Numeric, nullable: false }] },
            0.5,
            BTreeMap::new(),
        )
        .expect("artifact")
    }

    fn register(meta: &MetaStore, blobs: &BlobStore, leaf: f64) -> u32 {
        let key = format!("models/m/{leaf}.json");
        blobs.put(&key, &artifact(leaf).to_bytes().expect("bytes")).expect("put");
        let record = ModelVersionRecord {
            model: "m".into(),
            version: 0,
            run_id: "run".into(),
            dataset: "d@v".into(),
            artifact_key: key,
            flavor: "gbdt".into(),
            created_ms: 0,
            metrics: BTreeMap::new(),
        };
        meta.register_version(&record, "test").expect("register").version
    }

    fn engine_over(meta: &Arc<MetaStore>, blobs: &BlobStore) -> Engine {
        let log = PredictionLog::start(blobs.clone(), 100, 10);
        Engine::new(meta.clone(), blobs.clone(), None, Arc::new(ManualClock::new(1_000)), log)
    }

    #[test]
    fn a_model_that_cannot_be_served_is_reported_once_and_does_not_block_the_others() {
        let directory = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(MetaStore::open_in_memory().expect("meta"));
        let blobs = BlobStore::open(directory.path()).expect("blobs");
        // "a-sklearn" sorts before "m": a pickled model logged through the MLflow API, not ours.
        let foreign = ModelVersionRecord {
            model: "a-sklearn".into(),
            version: 0,
            run_id: "run".into(),
            dataset: String::new(),
            artifact_key: "models:/m-0123".into(),
            flavor: "mlflow".into(),
            created_ms: 0,
            metrics: BTreeMap::new(),
        };
        let foreign_version = meta.register_version(&foreign, "test").expect("register").version;
        meta.set_alias("a-sklearn", CHAMPION, foreign_version, "test", 0, "").expect("alias");
        let ours = register(&meta, &blobs, 1.0);
        meta.set_alias("m", CHAMPION, ours, "test", 0, "").expect("alias");
        let engine = engine_over(&meta, &blobs);
        let first = engine.refresh().expect("refresh");
        assert_eq!(first.changed, vec!["m".to_string()]);
        assert_eq!(first.unservable.iter().map(|(model, _)| model.as_str()).collect::<Vec<_>>(), vec!["a-sklearn"]);
        assert_eq!(engine.refresh().expect("refresh"), Refresh::default(), "reported once, not on every reload");
        assert_eq!(engine.infer("m", None, &[vec![1.0]], None).expect("m serves").version, ours);
        let second = register(&meta, &blobs, 2.0);
        meta.set_alias("a-sklearn", CHAMPION, foreign_version, "test", 1, "").expect("alias");
        meta.set_alias("m", CHAMPION, second, "test", 1, "").expect("alias");
        assert_eq!(engine.refresh().expect("refresh").changed, vec!["m".to_string()]);
    }

    #[test]
    fn every_replica_reports_what_each_version_scored_and_failed() {
        let directory = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(MetaStore::open_in_memory().expect("meta"));
        let blobs = BlobStore::open(directory.path()).expect("blobs");
        let champion = register(&meta, &blobs, 1.0);
        // A challenger that reads two inputs where the champion reads one: it fails every request
        // it shadows.
        let key = "models/m/broken.json";
        let mut broken = artifact(1.0);
        broken.signature.features.push(FeatureSpec { name: "z".into(), kind: FeatureKind::Numeric, nullable: false });
        blobs.put(key, &broken.to_bytes().expect("bytes")).expect("put");
        let record = ModelVersionRecord {
            model: "m".into(),
            version: 0,
            run_id: "run".into(),
            dataset: "d@v".into(),
            artifact_key: key.into(),
            flavor: "gbdt".into(),
            created_ms: 0,
            metrics: BTreeMap::new(),
        };
        let challenger = meta.register_version(&record, "test").expect("register").version;
        meta.set_alias("m", CHAMPION, champion, "test", 0, "").expect("alias");
        let shadow = causeway_store::RolloutChange::Challenger { version: challenger, mode: RolloutMode::Shadow };
        let rollout = causeway_store::Rollout {
            model: "m",
            change: shadow,
            expected_generation: None,
            actor: "t",
            at_ms: 1,
            reason: "",
        };
        meta.apply_rollout(&rollout).expect("rollout");
        let replicas = [engine_over(&meta, &blobs), engine_over(&meta, &blobs)];
        for replica in &replicas {
            replica.refresh().expect("refresh");
            for index in 0..3 {
                let answered = replica.infer("m", None, &[vec![1.0]], Some(&format!("r{index}"))).expect("served");
                assert_eq!(answered.version, champion, "a failing shadow never fails the request");
            }
            replica.report_counts().expect("report");
        }
        assert_eq!(meta.serving_totals("m", champion, 0).expect("totals"), (6, 0));
        assert_eq!(meta.serving_totals("m", challenger, 0).expect("totals"), (6, 6));
        replicas[0].report_counts().expect("nothing new to report");
        assert_eq!(meta.serving_totals("m", champion, 0).expect("totals"), (6, 0), "counts are reported once");
    }

    #[test]
    fn swaps_deployments_from_the_store_without_disturbing_holders_of_the_old_one() {
        let directory = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(MetaStore::open_in_memory().expect("meta"));
        let blobs = BlobStore::open(directory.path()).expect("blobs");
        let first = register(&meta, &blobs, 1.0);
        let second = register(&meta, &blobs, 3.0);
        let engine = engine_over(&meta, &blobs);
        assert!(matches!(engine.infer("m", None, &[vec![1.0]], None), Err(Error::NotDeployed(_))));
        meta.set_alias("m", CHAMPION, first, "test", 0, "").expect("alias");
        assert_eq!(engine.refresh().expect("refresh").changed, vec!["m".to_string()]);
        assert!(engine.refresh().expect("refresh").changed.is_empty(), "nothing changed, nothing reloaded");
        let before = engine.infer("m", None, &[vec![1.0]], Some("a")).expect("infer");
        assert_eq!((before.version, before.scores[0]), (first, causeway_models::sigmoid(1.0)));
        let held = engine.deployment("m").expect("deployment");

        let canary =
            causeway_store::RolloutChange::Challenger { version: second, mode: RolloutMode::Canary { share: 1.0 } };
        let rollout = causeway_store::Rollout {
            model: "m",
            change: canary,
            expected_generation: None,
            actor: "test",
            at_ms: 1,
            reason: "",
        };
        meta.apply_rollout(&rollout).expect("rollout");
        engine.refresh().expect("refresh");
        let after = engine.infer("m", None, &[vec![1.0]], Some("b")).expect("infer");
        assert_eq!((after.version, after.scores[0]), (second, causeway_models::sigmoid(3.0)));
        assert_eq!(held.champion.version, first, "a request holding the old deployment keeps it");
        assert_eq!(engine.infer("m", Some(first), &[vec![1.0]], Some("c")).expect("pinned").version, first);

        let error = engine.infer("m", None, &[vec![f64::NAN]], None).expect_err("NaN is not allowed");
        assert!(error.to_string().contains("input `x`"), "{error}");

        engine.log().flush().expect("flush");
        let logged = read_window(&blobs, 0, 10_000).expect("read");
        let roles: Vec<(&str, u32, Role)> =
            logged.iter().map(|record| (record.request_id.as_str(), record.version, record.role)).collect();
        assert!(roles.contains(&("a", first, Role::Served)));
        assert!(roles.contains(&("b", second, Role::Served)));
        assert!(roles.contains(&("b", first, Role::Shadow)));
        assert!(roles.contains(&("c", first, Role::Served)));

        // What the store stops serving stops answering at the next refresh.
        meta.delete_alias("m", CHAMPION, "test", 2, "").expect("delete alias");
        assert_eq!(engine.refresh().expect("refresh").removed, vec!["m".to_string()]);
        assert!(matches!(engine.infer("m", None, &[vec![1.0]], None), Err(Error::NotDeployed(_))));
    }
}
