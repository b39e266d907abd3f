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

use crate::error::{Error, Result};
use crate::machine::RetrainOutcome;
use crate::pipeline::{
    Trained, evaluate, load_artifact, load_dataset, load_holdout, snapshot_id, train_and_register, training_set,
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

/// The live retrainer: the `[model]` dataset (every stored version) within `[loop]
/// retrain_window` of the job's time (every row without a time column), labels that arrived by
/// then, trained and registered as `causeway train` would.
pub fn live_retrainer() -> Retrainer {
    Arc::new(|project: &Project, job: &RetrainJob| {
        let model = project.config.model()?;
        let data = load_dataset(project, &model.dataset)?;
        let (from, to) = match model.timestamp_column {
            Some(_) => (job.now_ms - project.config.rollout.retrain_window.millis(), job.now_ms + 1),
            None => (i64::MIN, i64::MAX),
        };
        let set = training_set(project, &data, from, to, job.now_ms)?;
        if set.set.is_empty() {
            return Err(Error::Precondition(format!(
                "no labelled rows of `{}` fall in the last {} (set [loop] retrain_window, or ingest newer data)",
                model.dataset, project.config.rollout.retrain_window
            )));
        }
        let snapshot = snapshot_id(project, &model.dataset, from, to)?;
        train_and_register(project, &set, &snapshot, job.now_ms, "loop")
    })
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
