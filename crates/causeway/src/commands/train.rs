//! `train`: the built-in trainers, the search, cross-validation and external training.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use causeway_loop::Project;
use causeway_loop::pipeline::{TrainOptions, prepare_training, train_and_register_with};
use causeway_types::{Clock, SystemClock};

use super::registry::promote_through_gates;
use super::{open, table};
use crate::args::ProjectArgs;

/// Which trainer `causeway train` runs.
pub(crate) enum TrainHow {
    /// `[model].trainer`, or the search's winner.
    BuiltIn { search: bool },
    /// Cross-validation of `[model].trainer` only: nothing is registered.
    CrossValidate { folds: usize },
    /// `[model.external]`, logging to `tracking_uri` or to a server started for it.
    External { tracking_uri: Option<String> },
}

/// The data a `train` command reads.
pub(crate) struct TrainData<'a> {
    /// `--days`.
    pub days: Option<u32>,
    /// `--dataset-version`.
    pub dataset_version: Option<&'a str>,
    /// `--holdout FILE`.
    pub holdout: Option<&'a Path>,
    /// `--model NAME`, when causeway.toml declares several.
    pub model: Option<&'a str>,
}

pub(crate) fn train(dir: &ProjectArgs, data: TrainData<'_>, promote: bool, how: TrainHow) -> Result<ExitCode> {
    let project = open(dir)?.for_model(data.model)?;
    let model = project.config.model()?.clone();
    let now = SystemClock.now_ms();
    let prepared = prepare_training(&project, data.days, data.dataset_version, data.holdout, now)?;
    println!("task: {}", prepared.labelled.task_note);
    let search = match how {
        TrainHow::BuiltIn { search } => search,
        TrainHow::CrossValidate { folds } => {
            let labelled = &prepared.labelled;
            let result = causeway_loop::pipeline::cross_validate(&project, labelled, folds)?;
            let mut output = table(&["metric", &format!("mean over {folds} folds"), "standard deviation"]);
            for name in causeway_models::metrics::headline_metrics(&labelled.task) {
                if let (Some(mean), Some(deviation)) = (result.mean.get(*name), result.standard_deviation.get(*name)) {
                    output.add_row(vec![name.to_string(), format!("{mean:.4}"), format!("{deviation:.4}")]);
                }
            }
            println!(
                "cross-validation of {} on {} rows ({folds} folds; nothing registered):\n{output}",
                model.trainer.for_task(labelled.task.kind()).family(),
                labelled.set.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        TrainHow::External { tracking_uri } => {
            let spec = model.external.clone().ok_or_else(|| {
                anyhow::anyhow!("--external needs a [model.external] section with a `command` in causeway.toml")
            })?;
            if prepared.holdout.is_some() {
                anyhow::bail!("--holdout is not available with --external yet; the holdout is a share of the window");
            }
            let server = match tracking_uri {
                Some(uri) => TrackingForScript::Given(uri),
                None => TrackingForScript::started(&project)?,
            };
            println!("training with `{}` (MLflow tracking at {})", spec.command.join(" "), server.uri());
            let trained = causeway_loop::external::train_external(
                &project,
                &spec,
                &prepared.labelled,
                &prepared.snapshot,
                server.uri(),
                now,
                "cli",
            )?;
            return report_trained(&project, &trained, &prepared.snapshot, promote);
        }
    };
    let options =
        TrainOptions { search, holdout: prepared.holdout.clone(), dataset_versions: prepared.versions.clone() };
    let trained = train_and_register_with(&project, &prepared.labelled, &prepared.snapshot, now, "cli", options)?;
    if let Some(search) = &trained.search {
        let values: Vec<String> = search.best_values.iter().map(|(name, value)| format!("{name}={value}")).collect();
        println!(
            "search run {}: {} trials, {} evaluations; best {} {:.4} with {}",
            search.run_id,
            search.trials,
            search.evaluations,
            search.metric,
            search.best_value,
            values.join(" ")
        );
    }
    report_trained(&project, &trained, &prepared.snapshot, promote)
}

/// Prints a trained version's split, metrics (and its comparison baseline's headline metric) and
/// promotes it if asked.
pub(crate) fn report_trained(
    project: &Project,
    trained: &causeway_loop::pipeline::Trained,
    snapshot: &str,
    promote: bool,
) -> Result<ExitCode> {
    let model = &trained.version.model;
    for warning in &trained.warnings {
        eprintln!("warning: {warning}");
    }
    println!("split: {}", trained.split);
    let mut output = table(&["metric", &format!("v{} ({})", trained.version.version, trained.version.flavor)]);
    for (name, value) in &trained.outcome.metrics {
        output.add_row(vec![name.clone(), format!("{value:.4}")]);
    }
    println!("registered {model} version {} from run {} on {snapshot}", trained.version.version, trained.run.run_id);
    println!("{output}");
    if let Some((family, metrics)) = &trained.comparison {
        let (headline, _) = trained.outcome.artifact.task.kind().headline_metric();
        println!("{family} baseline holdout {headline} {:.4}", metrics.get(headline).copied().unwrap_or(f64::NAN));
    }
    if promote {
        if !promote_through_gates(project, model, trained.version.version, false, "train --promote")? {
            return Ok(ExitCode::FAILURE);
        }
        println!("{model}@champion -> version {}", trained.version.version);
    }
    Ok(ExitCode::SUCCESS)
}

/// The MLflow tracking server an external training command logs to.
enum TrackingForScript {
    /// A server the user runs.
    Given(String),
    /// One this command runs on loopback until dropped.
    Started(causeway_server::run::TrackingServer),
}

impl TrackingForScript {
    /// Serves the project's tracking and artifact API on 127.0.0.1 (any free port).
    fn started(project: &Project) -> Result<Self> {
        Ok(Self::Started(causeway_server::run::TrackingServer::start(project.meta.clone(), project.blobs.clone())?))
    }

    fn uri(&self) -> &str {
        match self {
            Self::Given(uri) => uri,
            Self::Started(server) => &server.uri,
        }
    }
}
