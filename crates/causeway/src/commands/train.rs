//! `train`: the built-in trainers, the search, cross-validation and external training.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use causeway_loop::Project;
use causeway_loop::pipeline::{TrainOptions, load_dataset, snapshot_id, train_and_register_with, training_set};
use causeway_types::{Clock, SystemClock};

use super::registry::promote_through_gates;
use super::{open, table};
use crate::args::ProjectArgs;

/// Which trainer `causeway train` runs.
pub(crate) enum TrainHow {
    /// `[model].trainer`, optionally cross-validated first or chosen by the search.
    BuiltIn { folds: Option<usize>, search: bool },
    /// `[model.external]`, logging to `tracking_uri` or to a server started for it.
    External { tracking_uri: Option<String> },
}

pub(crate) fn train(dir: &ProjectArgs, days: Option<u32>, promote: bool, how: TrainHow) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = project.config.model()?.clone();
    let data = load_dataset(&project, &model.dataset)?;
    let times = data.require(&model.timestamp_column)?;
    let last = (0..data.rows()).filter_map(|row| times.number(row)).fold(f64::MIN, f64::max) as i64 + 1;
    let first = match days {
        Some(days) => last - i64::from(days) * causeway_types::DAY_MS,
        None => (0..data.rows()).filter_map(|row| times.number(row)).fold(f64::MAX, f64::min) as i64,
    };
    let now = SystemClock.now_ms();
    let set = training_set(&project, &data, first, last, now, None)?;
    let snapshot = snapshot_id(&project, &model.dataset, first, last)?;
    let (folds, search) = match how {
        TrainHow::BuiltIn { folds, search } => (folds, search),
        TrainHow::External { tracking_uri } => {
            let spec = model.external.clone().ok_or_else(|| {
                anyhow::anyhow!("--external needs a [model.external] section with a `command` in causeway.toml")
            })?;
            let server = match tracking_uri {
                Some(uri) => TrackingForScript::Given(uri),
                None => TrackingForScript::started(&project)?,
            };
            println!("training with `{}` (MLflow tracking at {})", spec.command.join(" "), server.uri());
            let trained =
                causeway_loop::external::train_external(&project, &spec, &set, &snapshot, server.uri(), now, "cli")?;
            return report_trained(&project, &trained, &snapshot, promote);
        }
    };
    if let Some(folds) = folds {
        let signature = causeway_train::signature_for(project.config.features()?, &set);
        let result = causeway_train::cross_validate(
            &model.trainer,
            &signature,
            &set,
            folds,
            model.target_false_positive_rate,
            model.seed,
        )?;
        let mut output = table(&["metric", &format!("mean over {folds} folds"), "standard deviation"]);
        for name in ["roc_auc", "pr_auc", "recall", "false_positive_rate", "precision", "log_loss", "brier"] {
            if let (Some(mean), Some(deviation)) = (result.mean.get(name), result.standard_deviation.get(name)) {
                output.add_row(vec![name.to_string(), format!("{mean:.4}"), format!("{deviation:.4}")]);
            }
        }
        println!("cross-validation of {} on {} rows:\n{output}", model.trainer.family(), set.len());
    }
    let trained = train_and_register_with(&project, &set, &snapshot, now, "cli", TrainOptions { search })?;
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
    report_trained(&project, &trained, &snapshot, promote)
}

/// Prints a trained version's metrics (and its comparison baseline) and promotes it if asked.
pub(crate) fn report_trained(
    project: &Project,
    trained: &causeway_loop::pipeline::Trained,
    snapshot: &str,
    promote: bool,
) -> Result<ExitCode> {
    let model = &trained.version.model;
    let mut output = table(&["metric", &format!("v{} ({})", trained.version.version, trained.version.flavor)]);
    for (name, value) in &trained.outcome.metrics {
        output.add_row(vec![name.clone(), format!("{value:.4}")]);
    }
    println!("registered {model} version {} from run {} on {snapshot}", trained.version.version, trained.run.run_id);
    println!("{output}");
    if let Some((family, metrics)) = &trained.comparison {
        println!("{family} baseline holdout ROC-AUC {:.4}", metrics.get("roc_auc").copied().unwrap_or(f64::NAN));
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
    Started { uri: String, stop: Option<tokio::sync::oneshot::Sender<()>>, thread: Option<std::thread::JoinHandle<()>> },
}

impl TrackingForScript {
    /// Serves the project's tracking and artifact API on 127.0.0.1 (any free port).
    fn started(project: &Project) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
        let uri = format!("http://{}", listener.local_addr()?);
        let state = causeway_server::mlflow::TrackingState { meta: project.meta.clone(), clock: Arc::new(SystemClock) };
        let app =
            causeway_server::mlflow::router(state).merge(causeway_server::artifacts::router(project.blobs.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let served = runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            });
            if let Err(error) = served {
                eprintln!("warning: the tracking server for the training command failed: {error}");
            }
        });
        Ok(Self::Started { uri, stop: Some(stop), thread: Some(thread) })
    }

    fn uri(&self) -> &str {
        match self {
            Self::Given(uri) | Self::Started { uri, .. } => uri,
        }
    }
}

impl Drop for TrackingForScript {
    fn drop(&mut self) {
        if let Self::Started { stop, thread, .. } = self {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}
