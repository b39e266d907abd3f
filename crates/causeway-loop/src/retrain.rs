//! Retraining jobs: what the loop trains when a trigger fires (the live default: the `[model]`
//! dataset's newest rows within `[loop] retrain_window`, labels as they have arrived), and how a
//! finished job's challenger is judged by the gates against the champion on the same holdout.
//!
//! A job tags the version it registers with its number, so a job that is run again after a
//! crash finds its version instead of registering a second one.

use std::collections::BTreeMap;
use std::sync::Arc;

use causeway_models::{ModelArtifact, Task, TaskKind};
use causeway_train::TrainingSet;

use crate::config::TrainingSource;
use crate::error::{Error, Result};
use crate::machine::RetrainOutcome;
use crate::pipeline::{
    Labelled, Trained, evaluate, load_artifact, load_dataset, load_holdout, snapshot_id, train_and_register,
    training_set,
};
use crate::project::Project;

/// The version tag naming the loop job that registered a version.
pub const JOB_TAG: &str = "causeway.loop.job";

/// One queued retraining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrainJob {
    /// The registered model.
    pub model: String,
    /// The job's number (per model).
    pub job: u64,
    /// What triggered it.
    pub reason: String,
    /// When it was queued: the time its data and labels are read as of.
    pub now_ms: i64,
}

/// Trains a challenger for a job and registers it.
pub type Retrainer = Arc<dyn Fn(&Project, &RetrainJob) -> Result<Trained> + Send + Sync>;

/// The live retrainer: what `[loop] train_on` names within `[loop] retrain_window` of the job's
/// time — the `[model]` dataset (every stored version; every row without a time column) and/or
/// the champion's served predictions with their labels — labels as they had arrived by then,
/// trained and registered as `causeway train` would.
pub fn live_retrainer() -> Retrainer {
    Arc::new(|project: &Project, job: &RetrainJob| {
        let model = project.config.model()?;
        let sources = &project.config.rollout.train_on;
        let window_from = job.now_ms - project.config.rollout.retrain_window.millis();
        let mut parts: Vec<(Labelled, String)> = Vec::new();
        if sources.contains(&TrainingSource::Dataset) {
            let data = load_dataset(project, &model.dataset)?;
            let (from, to) = match model.timestamp_column {
                Some(_) => (window_from, job.now_ms + 1),
                None => (i64::MIN, i64::MAX),
            };
            let set = training_set(project, &data, from, to, job.now_ms)?;
            parts.push((set, snapshot_id(project, &model.dataset, from, to)?));
        }
        if sources.contains(&TrainingSource::Predictions) {
            parts.push(served_set(project, &job.model, window_from, job.now_ms)?);
        }
        let mut parts = parts.into_iter();
        let Some((mut labelled, mut snapshot)) = parts.next() else {
            return Err(Error::Config("[loop] train_on names nothing to train on".into()));
        };
        for (more, more_snapshot) in parts {
            labelled.set.ids.extend(more.set.ids);
            labelled.set.timestamps.extend(more.set.timestamps);
            labelled.set.values.extend(more.set.values);
            labelled.set.labels.extend(more.set.labels);
            snapshot = format!("{snapshot}+{more_snapshot}");
        }
        if labelled.set.is_empty() {
            return Err(Error::Precondition(format!(
                "no labelled rows of `{}` fall in the last {} (set [loop] retrain_window, or ingest newer data)",
                model.dataset, project.config.rollout.retrain_window
            )));
        }
        train_and_register(project, &labelled, &snapshot, job.now_ms, "loop")
    })
}

/// The champion's served predictions of `model` in `[from_ms, to_ms)` that have a label by
/// `to_ms`, as a training set: each row's features as they were served (decoded from the
/// prediction log), its label as stored. With the snapshot id `predictions@…` for lineage.
pub fn served_set(project: &Project, model: &str, from_ms: i64, to_ms: i64) -> Result<(Labelled, String)> {
    let Some(policy) = project.meta.serving_policy(model)? else {
        return Err(Error::Precondition(format!("model `{model}` has no champion: nothing was served to train on")));
    };
    let champion = load_artifact(project, &project.meta.model_version(model, policy.champion)?)?;
    let names = project.config.features()?.feature_names();
    if champion.signature.names() != names.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(Error::Precondition(format!(
            "the champion v{} of `{model}` reads other inputs than [features]; train on the dataset instead ([loop] train_on = [\"dataset\"])",
            policy.champion
        )));
    }
    let mut records = causeway_monitor::read_window(&project.blobs, from_ms, to_ms)?;
    records.retain(|record| record.model == model && record.role == causeway_monitor::Role::Served);
    let labels = project.meta.labels_for(records.iter().map(|record| record.request_id.as_str()))?;
    let mut set = TrainingSet::default();
    let mut hasher = blake3::Hasher::new();
    for record in &records {
        let Some(label) = labels.get(&record.request_id).filter(|label| label.arrived_ms <= to_ms) else { continue };
        hasher.update(record.request_id.as_bytes());
        set.ids.push(record.request_id.clone());
        set.timestamps.push(record.timestamp_ms);
        set.values.push(champion.signature.decode(&record.features));
        set.labels.push(label.label);
    }
    if set.is_empty() {
        return Err(Error::Precondition(format!(
            "no served prediction of `{model}` in the last {} has a label yet",
            project.config.rollout.retrain_window
        )));
    }
    let snapshot = format!("predictions@{}", &hasher.finalize().to_hex()[..12]);
    let task_note = format!("{} (the champion's, trained on {} served predictions)", champion.task.kind(), set.len());
    Ok((Labelled { set, task: champion.task.clone(), task_note }, snapshot))
}

/// What the gates judge: a registered candidate and its holdout rows.
struct Candidate {
    version: u32,
    dataset: String,
    run_id: String,
    train_rows: String,
    artifact: Arc<ModelArtifact>,
    metrics: BTreeMap<String, f64>,
    names: Vec<String>,
    holdout: TrainingSet,
    outputs: Vec<f64>,
}

/// Runs a job to its outcome: finds the version an earlier run of the same job registered, or
/// trains one, then judges it by the gates against `champion` on its holdout. Never fails: a
/// failure is an outcome the loop records.
pub fn run_job(project: &Project, retrainer: &Retrainer, job: &RetrainJob, champion: u32) -> RetrainOutcome {
    match candidate(project, retrainer, job).and_then(|candidate| judge(project, &job.model, champion, &candidate)) {
        Ok((version, summary, failures, details)) => {
            RetrainOutcome::Registered { job: job.job, version, summary, failures, details }
        }
        Err(error) => RetrainOutcome::Failed { job: job.job, error: error.to_string() },
    }
}

fn job_tag(job: &RetrainJob) -> String {
    job.job.to_string()
}

fn candidate(project: &Project, retrainer: &Retrainer, job: &RetrainJob) -> Result<Candidate> {
    let names = project.config.features()?.feature_names();
    let earlier = project
        .meta
        .registry_versions(Some(&job.model))?
        .into_iter()
        .find(|version| version.tags.get(JOB_TAG) == Some(&job_tag(job)));
    if let Some(earlier) = earlier {
        let record = project.meta.model_version(&job.model, earlier.version)?;
        let artifact = Arc::new(load_artifact(project, &record)?);
        let Some((names, holdout)) = load_holdout(project, &record)? else {
            return Err(Error::Precondition(format!("version {} has no stored holdout", record.version)));
        };
        let (outputs, metrics) = evaluate(&artifact, &names, &holdout, &artifact.task)?;
        let run = project.meta.run(&record.run_id).ok();
        return Ok(Candidate {
            version: record.version,
            dataset: record.dataset.clone(),
            train_rows: run.and_then(|run| run.params.get("train_rows").cloned()).unwrap_or_else(|| "?".into()),
            run_id: record.run_id.clone(),
            artifact,
            metrics,
            names,
            holdout,
            outputs,
        });
    }
    let trained = retrainer(project, job)?;
    project.meta.set_model_version_tag(
        &job.model,
        trained.version.version,
        JOB_TAG,
        Some(&job_tag(job)),
        "loop",
        job.now_ms,
    )?;
    Ok(Candidate {
        version: trained.version.version,
        dataset: trained.version.dataset.clone(),
        train_rows: trained.run.params.get("train_rows").cloned().unwrap_or_else(|| "?".into()),
        run_id: trained.run.run_id.clone(),
        artifact: Arc::new(trained.outcome.artifact),
        metrics: trained.outcome.metrics,
        names,
        holdout: trained.holdout,
        outputs: trained.outcome.holdout_outputs,
    })
}

/// The headline metrics of a task, for the sentence that describes a challenger.
fn headline(task: TaskKind, metrics: &BTreeMap<String, f64>) -> String {
    let metric = |name: &str| metrics.get(name).copied().unwrap_or(f64::NAN);
    match task {
        TaskKind::Binary => format!(
            "ROC-AUC {:.3}, recall {:.3}, FPR {:.4}",
            metric("roc_auc"),
            metric("recall"),
            metric("false_positive_rate")
        ),
        TaskKind::Multiclass => format!("accuracy {:.3}, macro F1 {:.3}", metric("accuracy"), metric("macro_f1")),
        TaskKind::Regression => format!("RMSE {:.4}, MAE {:.4}", metric("rmse"), metric("mae")),
    }
}

type Judged = (u32, String, Vec<String>, serde_json::Value);

fn judge(project: &Project, model: &str, champion: u32, candidate: &Candidate) -> Result<Judged> {
    let champion_record = project.meta.model_version(model, champion)?;
    let champion_artifact = load_artifact(project, &champion_record)?;
    let task: &Task = &candidate.artifact.task;
    // The champion on the challenger's holdout; when it cannot score those rows, its registered
    // metrics stand in.
    let champion_metrics = match evaluate(&champion_artifact, &candidate.names, &candidate.holdout, task) {
        Ok((_, metrics)) => metrics,
        Err(_) => champion_record.metrics.clone(),
    };
    let evaluation = causeway_train::evaluate(
        &candidate.artifact.signature,
        task,
        &candidate.holdout,
        &candidate.outputs,
        candidate.artifact.threshold,
    );
    let failures = crate::gates::check(
        &project.config.rollout.gates,
        task,
        &candidate.metrics,
        Some(&evaluation),
        Some(&champion_metrics),
    )
    .failures();
    let summary = format!(
        "v{} trained on {} ({} rows, run {}): holdout {}; champion v{champion} on the same holdout: {}",
        candidate.version,
        candidate.dataset,
        candidate.train_rows,
        &candidate.run_id[..8.min(candidate.run_id.len())],
        headline(task.kind(), &candidate.metrics),
        headline(task.kind(), &champion_metrics),
    );
    let details = serde_json::json!({
        "challenger": candidate.version,
        "challenger_metrics": candidate.metrics,
        "champion_metrics": champion_metrics,
    });
    Ok((candidate.version, summary, failures, details))
}
