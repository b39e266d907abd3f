//! The training pipeline: stored dataset versions → labelled, point-in-time-correct training set →
//! tracked runs → registered model version with its artifact and monitoring baseline.

use std::collections::{BTreeMap, HashMap};

use causeway_data::Frame;
use causeway_features::offline::compute_features;
use causeway_models::{ModelArtifact, Predictor, Signature};
use causeway_monitor::ModelBaseline;
use causeway_train::{FitOutcome, RunTracker, SearchSpec, Trainer, TrainingSet, fit, signature_for};
use causeway_types::{ModelVersionRecord, RunRecord};
use serde::{Deserialize, Serialize};

use crate::config::ModelSection;
use crate::error::{Error, Result};
use crate::project::Project;

/// A deliberate labelling fault: rows matching every condition get `label`. Used by the
/// `bad-challenger` demo to train on corrupted labels; never set in a real project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelFault {
    /// (column, value as text) pairs that must all match.
    pub conditions: Vec<(String, String)>,
    /// The label forced on matching rows.
    pub label: f64,
}

/// Loads every stored version of a dataset as one frame.
pub fn load_dataset(project: &Project, name: &str) -> Result<Frame> {
    let versions = project.meta.dataset_versions(name)?;
    if versions.is_empty() {
        return Err(Error::Precondition(format!("dataset `{name}` has no versions: run `causeway ingest` first")));
    }
    let ingestor = project.ingestor();
    let frames: Vec<Frame> = versions.iter().map(|version| ingestor.load(version)).collect::<Result<_, _>>()?;
    Ok(Frame::concat(&frames)?)
}

/// A stable id for the data a training set came from: the dataset's versions and the window.
pub fn snapshot_id(project: &Project, name: &str, from_ms: i64, to_ms: i64) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for version in project.meta.dataset_versions(name)? {
        hasher.update(version.version.as_bytes());
    }
    hasher.update(&from_ms.to_le_bytes());
    hasher.update(&to_ms.to_le_bytes());
    Ok(format!("{name}@{}", &hasher.finalize().to_hex()[..12]))
}

/// Builds the labelled training set of rows with `from_ms <= time < to_ms`. Labels come from the
/// label column when present, otherwise from labels that arrived by `labels_known_at`; rows with
/// neither are left out. Features are computed point-in-time-correctly from all rows of `data`.
pub fn training_set(
    project: &Project,
    data: &Frame,
    from_ms: i64,
    to_ms: i64,
    labels_known_at: i64,
    fault: Option<&LabelFault>,
) -> Result<TrainingSet> {
    let model = project.config.model()?;
    let spec = project.config.features()?;
    let ids = data.require(&model.id_column)?;
    let times = data.require(&model.timestamp_column)?;
    let label_column = data.column(&model.label);
    let mut candidates: Vec<(i64, usize)> = (0..data.rows())
        .filter_map(|row| times.number(row).map(|time| (time as i64, row)))
        .filter(|(time, _)| *time >= from_ms && *time < to_ms)
        .collect();
    candidates.sort();
    let unlabeled: Vec<String> = candidates
        .iter()
        .filter(|(_, row)| label_column.is_none_or(|column| column.is_null(*row)))
        .filter_map(|(_, row)| ids.text(*row))
        .collect();
    let stored = project.meta.labels_for(unlabeled.iter().map(String::as_str))?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (_, row) in &candidates {
        let from_column = label_column.and_then(|column| column.number(*row));
        let label = from_column.or_else(|| {
            let id = ids.text(*row)?;
            stored.get(&id).filter(|label| label.arrived_ms <= labels_known_at).map(|label| label.label)
        });
        let Some(mut label) = label else { continue };
        if let Some(fault) = fault
            && fault.conditions.iter().all(|(column, value)| {
                data.column(column).and_then(|column| column.text(*row)).as_deref() == Some(value)
            })
        {
            label = fault.label;
        }
        rows.push(*row);
        labels.push(label);
    }
    if rows.is_empty() {
        return Err(Error::Precondition(format!(
            "no labelled rows between {} and {}",
            causeway_types::format_timestamp(from_ms),
            causeway_types::format_timestamp(to_ms)
        )));
    }
    let selected = data.take(&rows);
    let window_ms = spec.views.iter().map(|view| view.window_ms()).max().unwrap_or(0);
    let history_rows: Vec<usize> = (0..data.rows())
        .filter(|row| {
            times.number(*row).is_some_and(|time| (time as i64) >= from_ms - window_ms && (time as i64) < to_ms)
        })
        .collect();
    let history = data.take(&history_rows);
    let values = compute_features(spec, &selected, &history)?;
    let selected_ids = selected.require(&model.id_column)?;
    let selected_times = selected.require(&model.timestamp_column)?;
    Ok(TrainingSet {
        ids: (0..selected.rows()).map(|row| selected_ids.text(row).unwrap_or_default()).collect(),
        timestamps: (0..selected.rows()).map(|row| selected_times.number(row).unwrap_or(0.0) as i64).collect(),
        values,
        labels,
    })
}

/// A registered model version with everything the loop needs about it.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The registry record.
    pub version: ModelVersionRecord,
    /// The fitted model and holdout evaluation.
    pub outcome: FitOutcome,
    /// The monitoring baseline.
    pub baseline: ModelBaseline,
    /// The tracked run.
    pub run: RunRecord,
    /// The holdout rows (time-split) it was evaluated on.
    pub holdout: TrainingSet,
    /// The comparison model's holdout metrics, when one is configured.
    pub comparison: Option<(String, BTreeMap<String, f64>)>,
    /// The hyper-parameter search that chose the trainer, when one ran.
    pub search: Option<SearchSummary>,
}

/// What a hyper-parameter search found, for people.
#[derive(Debug, Clone)]
pub struct SearchSummary {
    /// The search's parent run; every trial is a child run of it.
    pub run_id: String,
    /// How many configurations were drawn and how many evaluations ran.
    pub trials: usize,
    /// Evaluations across all rungs.
    pub evaluations: usize,
    /// The ranking metric and the winner's value on the search's scoring rows.
    pub metric: String,
    /// The winner's value.
    pub best_value: f64,
    /// The winner's drawn values.
    pub best_values: BTreeMap<String, String>,
}

/// How a training run is set up beyond `causeway.toml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Run the `[model.search]` hyper-parameter search first and train its winner.
    pub search: bool,
}

/// Trains the configured model (and the comparison baseline) on `set`, tracks both runs, stores
/// the artifact and baseline, and registers a new version of the model.
pub fn train_and_register(
    project: &Project,
    set: &TrainingSet,
    snapshot: &str,
    at_ms: i64,
    actor: &str,
) -> Result<Trained> {
    train_and_register_with(project, set, snapshot, at_ms, actor, TrainOptions::default())
}

/// [`train_and_register`] with options: with `search`, the `[model.search]` hyper-parameter
/// search runs first on the training part (never the holdout), every trial a child run of one
/// search run, and its winner is the trainer that is fitted and registered.
pub fn train_and_register_with(
    project: &Project,
    set: &TrainingSet,
    snapshot: &str,
    at_ms: i64,
    actor: &str,
    options: TrainOptions,
) -> Result<Trained> {
    let model = project.config.model()?;
    let spec = project.config.features()?;
    let (train, holdout) = split_holdout(model, set)?;
    let signature = signature_for(spec, &train);
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let comparison = match &model.baseline_trainer {
        Some(trainer) => {
            let name = format!("{}-{}", model.name, trainer.family());
            let run = tracker.start(&name, model.seed, snapshot, trainer.params(), at_ms)?;
            let outcome = fit(
                trainer,
                &signature,
                &train,
                &holdout,
                model.target_false_positive_rate,
                model.seed,
                BTreeMap::new(),
            )?;
            tracker.finish(&run, &outcome.metrics, at_ms)?;
            Some((trainer.family().to_string(), outcome.metrics))
        }
        None => None,
    };
    let (trainer, search) = if options.search {
        let spec = model.search.as_ref().ok_or_else(|| {
            Error::Config("--search needs a [model.search] section with a [model.search.space] in causeway.toml".into())
        })?;
        let (trainer, summary) = run_search(project, spec, &model.trainer, &signature, &train, snapshot, at_ms)?;
        (trainer, Some(summary))
    } else {
        (model.trainer.clone(), None)
    };
    let name = format!("{}-{}", model.name, trainer.family());
    let mut params = trainer.params();
    if let Some(search) = &search {
        params.insert("search_run".into(), search.run_id.clone());
    }
    params.insert("train_rows".into(), train.len().to_string());
    params.insert("holdout_rows".into(), holdout.len().to_string());
    let run = tracker.start(&name, model.seed, snapshot, params, at_ms)?;
    let metadata =
        BTreeMap::from([("run_id".to_string(), run.run_id.clone()), ("dataset".to_string(), snapshot.to_string())]);
    let outcome =
        match fit(&trainer, &signature, &train, &holdout, model.target_false_positive_rate, model.seed, metadata) {
            Ok(outcome) => outcome,
            Err(error) => {
                tracker.fail(&run, at_ms)?;
                return Err(error.into());
            }
        };
    let (version, baseline, run) = store_and_register(
        project,
        &model.name,
        &signature,
        (&train, &holdout),
        &outcome,
        &run,
        (snapshot, at_ms, actor),
    )?;
    Ok(Trained { version, outcome, baseline, run, holdout, comparison, search })
}

/// The training part and the holdout (a seeded share of the freshest `holdout_days`), both with
/// positive labels.
pub(crate) fn split_holdout(model: &ModelSection, set: &TrainingSet) -> Result<(TrainingSet, TrainingSet)> {
    let (train, holdout) =
        set.split_fresh(i64::from(model.holdout_days) * causeway_types::DAY_MS, model.holdout_fraction, model.seed);
    if holdout.labels.iter().all(|label| *label < 0.5) || train.labels.iter().all(|label| *label < 0.5) {
        return Err(Error::Precondition(
            "the training window has no positive labels in its train or holdout part".into(),
        ));
    }
    Ok((train, holdout))
}

/// Stores a fitted model's artifact, monitoring baseline and holdout evaluation under its run,
/// finishes the run with the holdout metrics, and registers the next version of `model_name`.
pub(crate) fn store_and_register(
    project: &Project,
    model_name: &str,
    signature: &Signature,
    (train, holdout): (&TrainingSet, &TrainingSet),
    outcome: &FitOutcome,
    run: &RunRecord,
    (snapshot, at_ms, actor): (&str, i64, &str),
) -> Result<(ModelVersionRecord, ModelBaseline, RunRecord)> {
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let train_rows = train.encode(signature)?;
    let baseline = ModelBaseline::from_rows(signature, &train_rows, &outcome.holdout_scores);
    let artifact_key = format!("models/{model_name}/{}.json", run.run_id);
    project.blobs.put(&artifact_key, &outcome.artifact.to_bytes()?)?;
    project.blobs.put(&baseline_key(&artifact_key), &serde_json::to_vec(&baseline)?)?;
    let evaluation = causeway_train::evaluate(signature, holdout, &outcome.holdout_scores, outcome.artifact.threshold);
    project.blobs.put(&evaluation_key(&artifact_key), &serde_json::to_vec(&evaluation)?)?;
    let run = tracker.finish(run, &outcome.metrics, at_ms)?;
    let version = project.meta.register_version(
        &ModelVersionRecord {
            model: model_name.to_string(),
            version: 0,
            run_id: run.run_id.clone(),
            dataset: snapshot.to_string(),
            artifact_key,
            flavor: outcome.artifact.model.flavor().to_string(),
            created_ms: at_ms,
            metrics: outcome.metrics.clone(),
        },
        actor,
    )?;
    Ok((version, baseline, run))
}

/// Runs a hyper-parameter search on `train`, recording one parent run and one child run per
/// trial (metrics logged at each rung's budget as the step), and returns the winning trainer.
fn run_search(
    project: &Project,
    spec: &SearchSpec,
    base: &Trainer,
    signature: &Signature,
    train: &TrainingSet,
    snapshot: &str,
    at_ms: i64,
) -> Result<(Trainer, SearchSummary)> {
    let model = project.config.model()?;
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let mut params = BTreeMap::from([
        ("family".to_string(), base.family().to_string()),
        ("strategy".to_string(), format!("{:?}", spec.strategy)),
        ("trials".to_string(), spec.trials.to_string()),
        ("metric".to_string(), spec.metric.clone()),
        ("reduction".to_string(), spec.reduction.to_string()),
    ]);
    for (name, distribution) in &spec.space {
        params.insert(format!("space.{name}"), serde_json::to_string(distribution)?);
    }
    let parent = tracker.start(&format!("{}-search", model.name), model.seed, snapshot, params, at_ms)?;
    let mut children: BTreeMap<usize, RunRecord> = BTreeMap::new();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = causeway_train::search::search(
        spec,
        base,
        signature,
        train,
        model.target_false_positive_rate,
        model.seed,
        |trial, result| {
            let run = match children.entry(trial.number) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let mut params = trial.trainer.params();
                    for (name, value) in &trial.drawn {
                        params.insert(name.clone(), value.clone());
                    }
                    let name = format!("{}-trial-{}", model.name, trial.number);
                    let run = tracker.start(&name, model.seed, snapshot, params, at_ms)?;
                    tracker.set_tags(&run, &[("mlflow.parentRunId", parent.run_id.as_str())])?;
                    entry.insert(run)
                }
            };
            let mut metrics = result.metrics.clone();
            metrics.insert("budget".into(), result.budget as f64);
            tracker.log_step(run, &metrics, result.budget as i64, at_ms)?;
            if progress {
                eprintln!(
                    "search: trial {} rung {} ({} {}) {} {:.4}",
                    trial.number,
                    result.rung,
                    result.budget,
                    if matches!(base, Trainer::Gbdt(_)) { "rounds" } else { "iterations" },
                    spec.metric,
                    result.metrics.get(&spec.metric).copied().unwrap_or(f64::NAN)
                );
            }
            Ok(())
        },
    );
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            for run in children.values() {
                tracker.fail(run, at_ms)?;
            }
            tracker.fail(&parent, at_ms)?;
            return Err(error.into());
        }
    };
    for run in children.values() {
        tracker.finish(run, &BTreeMap::new(), at_ms)?;
    }
    let best = outcome.best_trial().ok_or_else(|| Error::Precondition("the search ran no trial".into()))?;
    if let Some(best_run) = children.get(&best.number) {
        tracker.set_tags(&parent, &[("causeway.search.best_run", best_run.run_id.as_str())])?;
    }
    let metrics = BTreeMap::from([
        (format!("best_{}", spec.metric), outcome.best_value),
        ("best_trial".to_string(), best.number as f64),
        ("evaluations".to_string(), outcome.evaluations.len() as f64),
    ]);
    tracker.finish(&parent, &metrics, at_ms)?;
    let summary = SearchSummary {
        run_id: parent.run_id.clone(),
        trials: outcome.trials.len(),
        evaluations: outcome.evaluations.len(),
        metric: spec.metric.clone(),
        best_value: outcome.best_value,
        best_values: best.drawn.clone(),
    };
    Ok((best.trainer.clone(), summary))
}

/// Imports an XGBoost or LightGBM model file as the next version of `model_name`: a tracked
/// `import` run (file name, format, content hash), the original file kept beside the artifact, and
/// the version registered (not promoted). The artifact scores exactly as the library does.
pub fn import_and_register(
    project: &Project,
    file_name: &str,
    bytes: &[u8],
    model_name: &str,
    threshold: f64,
    actor: &str,
    at_ms: i64,
) -> Result<ModelVersionRecord> {
    let format = causeway_models::ModelFormat::detect(bytes)?;
    let digest = blake3::hash(bytes).to_hex().to_string();
    let metadata = BTreeMap::from([("imported_from".to_string(), file_name.to_string())]);
    let mut params = BTreeMap::from([
        ("file".to_string(), file_name.to_string()),
        ("format".to_string(), format!("{format:?}")),
        ("blake3".to_string(), digest.clone()),
    ]);
    let artifact = match causeway_models::import_as(bytes, format) {
        Ok(imported) => {
            params.insert("source".into(), imported.ensemble.source.clone());
            params.insert("trees".into(), imported.ensemble.trees.len().to_string());
            imported.into_artifact(threshold, metadata)?
        }
        // An ONNX graph that is not a tree ensemble: onnxruntime scores it.
        Err(causeway_models::Error::Unsupported(tree_reason)) if format == causeway_models::ModelFormat::Onnx => {
            let graph = causeway_models::OnnxGraph::from_bytes(bytes).map_err(|error| {
                Error::Precondition(format!(
                    "{file_name}: not a tree ensemble Causeway compiles ({tree_reason}), and onnxruntime cannot take it: {error}"
                ))
            })?;
            params.insert("source".into(), "onnx graph (onnxruntime)".into());
            let signature = causeway_models::Signature {
                features: (0..graph.features)
                    .map(|index| causeway_models::FeatureSpec {
                        name: format!("f{index}"),
                        kind: causeway_models::FeatureKind::Numeric,
                        nullable: true,
                    })
                    .collect(),
            };
            ModelArtifact::new(causeway_models::Model::Onnx(graph), signature, threshold, metadata)?
        }
        Err(error) => return Err(error.into()),
    };
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let run = tracker.start("import", 0, &format!("file:{}", &digest[..16]), params, at_ms)?;
    let artifact_key = format!("models/{model_name}/{}.json", run.run_id);
    project.blobs.put(&format!("models/{model_name}/{}.original", run.run_id), bytes)?;
    project.blobs.put(&artifact_key, &artifact.to_bytes()?)?;
    let run = tracker.finish(&run, &BTreeMap::new(), at_ms)?;
    Ok(project.meta.register_version(
        &ModelVersionRecord {
            model: model_name.to_string(),
            version: 0,
            run_id: run.run_id,
            dataset: run.dataset,
            artifact_key,
            flavor: artifact.model.flavor().to_string(),
            created_ms: at_ms,
            metrics: BTreeMap::new(),
        },
        actor,
    )?)
}

/// The blob key of a version's holdout evaluation (calibration, slices).
pub fn evaluation_key(artifact_key: &str) -> String {
    format!("{}.evaluation.json", artifact_key.trim_end_matches(".json"))
}

/// The blob key of a version's monitoring baseline.
pub fn baseline_key(artifact_key: &str) -> String {
    format!("{}.baseline.json", artifact_key.trim_end_matches(".json"))
}

/// Loads a version's artifact.
pub fn load_artifact(project: &Project, version: &ModelVersionRecord) -> Result<ModelArtifact> {
    Ok(ModelArtifact::from_bytes(&project.blobs.get(&version.artifact_key)?)?)
}

/// Loads a version's monitoring baseline.
pub fn load_baseline(project: &Project, version: &ModelVersionRecord) -> Result<ModelBaseline> {
    Ok(serde_json::from_slice(&project.blobs.get(&baseline_key(&version.artifact_key))?)?)
}

/// Scores a training set with an artifact (encoding by feature name) and returns the metrics at
/// the artifact's own threshold.
pub fn evaluate(
    artifact: &ModelArtifact,
    names: &[String],
    set: &TrainingSet,
) -> Result<(Vec<f64>, BTreeMap<String, f64>)> {
    let positions: HashMap<&str, usize> =
        names.iter().enumerate().map(|(index, name)| (name.as_str(), index)).collect();
    let mut scores = Vec::with_capacity(set.len());
    for row in &set.values {
        let ordered: Vec<causeway_types::FeatureValue> = artifact
            .signature
            .features
            .iter()
            .map(|feature| {
                positions
                    .get(feature.name.as_str())
                    .and_then(|index| row.get(*index).cloned())
                    .unwrap_or(causeway_types::FeatureValue::Missing)
            })
            .collect();
        let encoded = artifact.signature.encode(&ordered).map_err(|error| Error::Precondition(error.to_string()))?;
        scores.push(artifact.model.predict_row(&encoded));
    }
    let metrics = causeway_train::metrics::binary_metrics(&scores, &set.labels, artifact.threshold);
    Ok((scores, metrics))
}
