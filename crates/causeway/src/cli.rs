//! Command-line parsing and the small commands. Every command takes `--dir` (the project
//! directory, default `.`); errors go to stderr with a non-zero exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use causeway_loop::pipeline::{TrainOptions, load_dataset, snapshot_id, train_and_register_with, training_set};
use causeway_loop::{Controller, Project, StorageSection};
use causeway_monitor::PredictionLog;
use causeway_serving::{Engine, OnlineFeatures};
use causeway_types::{
    CHALLENGER, CHAMPION, Clock, EventKind, ModelVersionRecord, RolloutMode, SystemClock, TrafficPolicy,
    format_timestamp,
};
use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// Causeway: data, features, training, registry, serving, monitoring and the retraining loop in
/// one program.
#[derive(Debug, Parser)]
#[command(name = "causeway", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The project every command works in: its directory, and where its stores live when not in
/// the embedded defaults.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// The project directory (holds causeway.toml and .causeway/).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The metadata store: postgresql://USER@HOST:5432/DB[?schema=NAME] or sqlite:///PATH
    /// [default: [storage].metadata of causeway.toml, else .causeway/meta.db].
    #[arg(long, env = "CAUSEWAY_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The artifact store: s3://BUCKET/PREFIX[?endpoint=URL] (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY) or a directory [default: [storage].artifacts of causeway.toml, else
    /// .causeway/artifacts].
    #[arg(long, env = "CAUSEWAY_ARTIFACTS", value_name = "URL")]
    pub artifacts: Option<String>,
}

impl ProjectArgs {
    fn storage(&self) -> StorageSection {
        StorageSection { metadata: self.store.clone(), artifacts: self.artifacts.clone() }
    }
}

/// Options shared by `serve` and `server`.
#[derive(Debug, Clone, Args)]
struct ServingArgs {
    /// Seconds between checks for promotions and rollbacks in the store.
    #[arg(long, default_value_t = 2)]
    reload_seconds: u64,
    /// Serve a non-loopback address without requiring API tokens.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    dir: ProjectArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create causeway.toml and the embedded stores (.causeway/) in a project directory.
    ///
    /// Example: causeway init --dir my-project
    Init(ProjectArgs),
    /// Ingest a CSV or Parquet file as a new version of a dataset, after validating it.
    ///
    /// The version is the BLAKE3 hash of the content; the expectations under
    /// [datasets.NAME] in causeway.toml must pass or nothing is stored.
    ///
    /// Example: causeway ingest data/transactions.csv --name transactions
    Ingest {
        /// The CSV (with a header row) or Parquet file.
        file: PathBuf,
        /// The dataset's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// List dataset versions.
    ///
    /// Example: causeway datasets --dir my-project
    Datasets(ProjectArgs),
    /// Train the [model] of causeway.toml on the labelled rows of its dataset and register a version.
    ///
    /// Example: causeway train --dir my-project --days 30
    Train {
        /// Train on the most recent DAYS days of data (default: all).
        #[arg(long)]
        days: Option<u32>,
        /// Also point the champion alias at the new version if it passes the [loop.gates]
        /// (exit code 1 and the failed gates printed if not; the version stays registered).
        #[arg(long)]
        promote: bool,
        /// First cross-validate the trainer on FOLDS seeded folds of the window and print each
        /// metric's mean and standard deviation.
        #[arg(long, value_name = "FOLDS")]
        folds: Option<usize>,
        /// First run the [model.search] hyper-parameter search (random or successive halving,
        /// every trial a child run) and train its winner.
        #[arg(long)]
        search: bool,
        /// Train with the [model.external] command instead (the researcher's own script), which
        /// logs through MLflow to a tracking server this command starts on loopback.
        #[arg(long, conflicts_with_all = ["search", "folds"])]
        external: bool,
        /// With --external: the MLflow tracking URI to give the script (default: a server this
        /// command runs for the script's lifetime on 127.0.0.1, on this project's stores).
        #[arg(long, value_name = "URI", requires = "external")]
        tracking_uri: Option<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// List tracked runs with their reproducibility metadata and metrics.
    ///
    /// Example: causeway runs --dir my-project
    Runs(ProjectArgs),
    /// List registered model versions, their metrics and aliases.
    ///
    /// Example: causeway models --dir my-project
    Models(ProjectArgs),
    /// Import an XGBoost (.json, .ubj) or LightGBM (.txt) model file as a new version.
    ///
    /// The version scores exactly as the library does (same comparisons, missing-value and
    /// category rules, float precision). Its inputs are the file's features, in order; categorical
    /// features take their integer codes. Multi-class models are refused for serving.
    ///
    /// Example: causeway import model.json --model fraud --promote
    Import {
        /// The model file.
        file: PathBuf,
        /// The registered model to add a version to (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        /// Scores at or above this are the positive class.
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
        /// Also point the champion alias at the new version.
        #[arg(long)]
        promote: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Print a version's model card: data, training parameters, holdout metrics, calibration,
    /// metrics per slice with the largest gap, lineage.
    ///
    /// Example: causeway card --model fraud --version 2 --html card.html
    Card {
        /// The model (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        /// The version (default: the champion).
        #[arg(long)]
        version: Option<u32>,
        /// Also write the card as a self-contained HTML page here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Point a model's champion alias at a version (audited).
    ///
    /// Example: causeway promote 3 --model fraud
    Promote {
        /// The version to promote.
        version: u32,
        /// The model (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        /// Promote even if the [loop.gates] fail (the audit log records that it was forced).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Point a model's champion alias back at the version it had before (audited).
    ///
    /// Example: causeway rollback --model fraud
    Rollback {
        /// The model (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Compare two CSV or Parquet files column by column for drift: PSI (and KS for numbers),
    /// null shares, the largest change, and added, removed or retyped columns. Needs no project.
    ///
    /// Exits 0 when nothing drifted, 1 when a column drifted or the schema changed, 2 on errors.
    ///
    /// Example: causeway drift train.parquet today.csv --threshold 0.2
    Drift {
        /// The reference file (what is expected: training data, an earlier batch).
        reference: PathBuf,
        /// The file to compare with it.
        current: PathBuf,
        /// The PSI from which a column counts as drifted (0.1 moderate, 0.25 conventional).
        #[arg(long, default_value_t = causeway_monitor::dataset_drift::DRIFTED_PSI)]
        threshold: f64,
        /// Compare only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the timeline: audit log, alerts, loop steps.
    ///
    /// Example: causeway events --kind alert
    Events {
        /// Only this kind: audit, alert, resolved, loop, data.
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Serve the project's deployed models over the Open Inference Protocol v2 (REST).
    ///
    /// Routes: /v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}][/ready|/infer],
    /// /v1/models/{name}/score (record-style, features from the online store), /v1/labels,
    /// /metrics (Prometheus).
    ///
    /// With --model FILE, serves one XGBoost (.json/.ubj), LightGBM (.txt) or ONNX file alone,
    /// with no project: the file is imported into a temporary project removed on exit.
    ///
    /// Example: causeway serve --dir my-project --listen 127.0.0.1:8080
    ///
    /// Example: causeway serve --model model.ubj --listen 127.0.0.1:8080
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Serve this model file alone instead of a project's deployed models.
        #[arg(long = "model", value_name = "FILE", conflicts_with = "dir")]
        model_file: Option<PathBuf>,
        /// The name a --model file is served under [default: the file name without its extension].
        #[arg(long, requires = "model_file")]
        name: Option<String>,
        /// Scores of a --model file at or above this are the positive class.
        #[arg(long, default_value_t = 0.5, requires = "model_file")]
        threshold: f64,
        #[command(flatten)]
        serving: ServingArgs,
    },
    /// Run the control plane: the MLflow tracking REST API (/api/2.0/mlflow/...) plus the
    /// serving routes of `causeway serve`, on the project's store.
    ///
    /// Point research code at it with MLFLOW_TRACKING_URI=http://HOST:PORT; its experiments and
    /// runs become Causeway runs (`causeway runs`).
    ///
    /// Example: causeway server --dir my-project --host 127.0.0.1 --port 5000
    Server {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port to bind (0 picks a free one).
        #[arg(long, default_value_t = 5000)]
        port: u16,
        #[command(flatten)]
        serving: ServingArgs,
    },
    /// Manage API tokens (required when a server binds a non-loopback address).
    ///
    /// Example: causeway token create --name ci --scope write
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Control the retraining loop.
    ///
    /// Example: causeway loop resume
    Loop {
        #[command(subcommand)]
        action: LoopAction,
    },
    /// Run a demo end to end.
    ///
    /// Example: causeway demo fraud --seed 7
    Demo {
        #[command(subcommand)]
        demo: crate::demo::DemoCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token; its secret is printed once and never stored.
    ///
    /// Scopes: read (GET), write (also log runs, artifacts, predictions, labels), admin (also
    /// change registered models, versions and aliases).
    ///
    /// Example: causeway token create --name ci --scope write --dir my-project
    Create {
        /// A unique name; audit events show it as the actor.
        #[arg(long)]
        name: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        scope: String,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// List tokens (never their secrets).
    ///
    /// Example: causeway token list --dir my-project
    List(ProjectArgs),
    /// Revoke a token by name.
    ///
    /// Example: causeway token revoke --name ci --dir my-project
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        dir: ProjectArgs,
    },
}

#[derive(Debug, Subcommand)]
enum LoopAction {
    /// Resume retraining after the loop paused itself (it pauses after a rollback).
    ///
    /// Example: causeway loop resume --dir my-project
    Resume(ProjectArgs),
}

/// Parses arguments, runs the command, and turns errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAUSEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(dir) => init(&dir),
        Command::Ingest { file, name, dir } => ingest(&dir, &file, &name),
        Command::Datasets(dir) => datasets(&dir),
        Command::Train { days, promote, folds, search, external, tracking_uri, dir } => {
            let how = if external { TrainHow::External { tracking_uri } } else { TrainHow::BuiltIn { folds, search } };
            train(&dir, days, promote, how)
        }
        Command::Runs(dir) => runs(&dir),
        Command::Models(dir) => models(&dir),
        Command::Import { file, model, threshold, promote, dir } => import(&dir, &file, model, threshold, promote),
        Command::Card { model, version, html, dir } => card(&dir, model, version, html.as_deref()),
        Command::Promote { version, model, force, dir } => promote(&dir, model, version, force),
        Command::Rollback { model, dir } => rollback(&dir, model),
        Command::Events { kind, dir } => events(&dir, kind.as_deref()),
        Command::Drift { reference, current, threshold, columns, json } => {
            drift(&reference, &current, threshold, &columns, json)
        }
        Command::Serve { listen, model_file: Some(file), name, threshold, serving } => {
            serve_file(listen, &file, name, threshold, &serving)
        }
        Command::Serve { listen, model_file: None, serving, .. } => serve(listen, &serving, false),
        Command::Server { host, port, serving } => serve(SocketAddr::new(host, port), &serving, true),
        Command::Token { action } => token(action),
        Command::Loop { action: LoopAction::Resume(dir) } => resume(&dir),
        Command::Demo { demo } => crate::demo::run(demo),
    }
}

fn open(project: &ProjectArgs) -> Result<Project> {
    Ok(Project::open_with(&project.dir, &project.storage())?)
}

fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(headers.to_vec());
    table
}

fn init(arguments: &ProjectArgs) -> Result<ExitCode> {
    let dir = arguments.dir.as_path();
    let (project, written) = Project::init_with(dir, causeway_loop::project::INIT_TEMPLATE, &arguments.storage())?;
    if written {
        println!("created {}/causeway.toml and {}/.causeway/", dir.display(), dir.display());
    } else {
        println!("{}/causeway.toml exists; kept it and made sure .causeway/ is ready", dir.display());
    }
    println!("metadata schema version {}", project.meta.schema_version()?);
    Ok(ExitCode::SUCCESS)
}

fn ingest(dir: &ProjectArgs, file: &Path, name: &str) -> Result<ExitCode> {
    let project = open(dir)?;
    let suite = project.config.suite(name);
    let outcome = project.ingestor().ingest_file(name, file, &suite, SystemClock.now_ms())?;
    let state = if outcome.created { "stored" } else { "already stored (identical content)" };
    println!(
        "{name}@{} {state}: {} rows, {} columns; {}",
        outcome.dataset.version,
        outcome.dataset.rows,
        outcome.dataset.schema.fields.len(),
        outcome.report
    );
    Ok(ExitCode::SUCCESS)
}

fn datasets(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output = table(&["dataset", "version", "rows", "columns", "source", "ingested"]);
    for dataset in project.meta.all_datasets()? {
        output.add_row(vec![
            dataset.name.clone(),
            dataset.short_version().to_string(),
            dataset.rows.to_string(),
            dataset.schema.fields.len().to_string(),
            dataset.source.clone(),
            format_timestamp(dataset.created_ms),
        ]);
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

/// Which trainer `causeway train` runs.
enum TrainHow {
    /// `[model].trainer`, optionally cross-validated first or chosen by the search.
    BuiltIn { folds: Option<usize>, search: bool },
    /// `[model.external]`, logging to `tracking_uri` or to a server started for it.
    External { tracking_uri: Option<String> },
}

fn train(dir: &ProjectArgs, days: Option<u32>, promote: bool, how: TrainHow) -> Result<ExitCode> {
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
fn report_trained(
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

fn set_champion(project: &Project, model: &str, version: u32, actor: &str, reason: &str) -> Result<()> {
    let now = SystemClock.now_ms();
    project.meta.set_alias(model, CHAMPION, version, actor, now, reason)?;
    project.meta.set_traffic(
        &TrafficPolicy {
            model: model.to_string(),
            champion: version,
            challenger: None,
            mode: RolloutMode::ChampionOnly,
            generation: 0,
        },
        actor,
        now,
    )?;
    Ok(())
}

fn runs(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output = table(&["run", "name", "status", "started", "seed", "dataset", "git", "tool", "metrics"]);
    for run in project.meta.runs()? {
        // The headline metrics first when present, then the rest, at most five.
        let mut names: Vec<&String> = run.metrics.keys().collect();
        names.sort_by_key(|name| (!matches!(name.as_str(), "roc_auc" | "recall" | "pr_auc"), name.as_str()));
        let metrics: Vec<String> =
            names.iter().take(5).map(|name| format!("{name}={:.4}", run.metrics[*name])).collect();
        output.add_row(vec![
            run.run_id[..12.min(run.run_id.len())].to_string(),
            run.name.clone(),
            run.status.as_str().to_string(),
            format_timestamp(run.started_ms),
            run.seed.to_string(),
            run.dataset.clone(),
            run.git_commit.as_deref().map_or("–", |commit| &commit[..8.min(commit.len())]).to_string(),
            run.tool_version.clone(),
            metrics.join(" "),
        ]);
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

fn models(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output =
        table(&["model", "version", "family", "trained on", "roc_auc", "recall", "fpr", "threshold", "aliases"]);
    for name in project.meta.model_names()? {
        let aliases = project.meta.aliases(&name)?;
        for version in project.meta.model_versions(&name)? {
            let metric =
                |metric: &str| version.metrics.get(metric).map_or_else(|| "–".into(), |value| format!("{value:.4}"));
            let tags: Vec<&str> = aliases
                .iter()
                .filter(|(_, target)| **target == version.version)
                .map(|(alias, _)| alias.as_str())
                .collect();
            output.add_row(vec![
                name.clone(),
                version.version.to_string(),
                version.flavor.clone(),
                version.dataset.clone(),
                metric("roc_auc"),
                metric("recall"),
                metric("false_positive_rate"),
                metric("threshold"),
                tags.join(", "),
            ]);
        }
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}

fn model_name(project: &Project, model: Option<String>) -> Result<String> {
    match model {
        Some(model) => Ok(model),
        None => {
            Ok(project.config.model().context("pass --model NAME or declare [model] in causeway.toml")?.name.clone())
        }
    }
}

/// Reads a model file and registers it as the next version of `model` (not promoted).
fn import_file(project: &Project, file: &Path, model: &str, threshold: f64) -> Result<ModelVersionRecord> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let file_name =
        file.file_name().map_or_else(|| file.display().to_string(), |name| name.to_string_lossy().into_owned());
    Ok(causeway_loop::pipeline::import_and_register(
        project,
        &file_name,
        &bytes,
        model,
        threshold,
        "cli",
        SystemClock.now_ms(),
    )?)
}

fn import(dir: &ProjectArgs, file: &Path, model: Option<String>, threshold: f64, promote: bool) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let version =
        import_file(&project, file, &model, threshold).with_context(|| format!("cannot import {}", file.display()))?;
    println!("imported {} as {model} version {} (run {})", file.display(), version.version, version.run_id);
    if promote {
        // An imported file has no holdout evaluation here, so there is nothing to gate on.
        set_champion(&project, &model, version.version, "cli", "imported (no holdout evaluation; gates not checked)")?;
        println!(
            "{model}@champion -> version {} (imported: no holdout evaluation, gates not checked)",
            version.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn card(dir: &ProjectArgs, model: Option<String>, version: Option<u32>, html: Option<&Path>) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let version = match version {
        Some(version) => version,
        None => project
            .meta
            .alias(&model, CHAMPION)?
            .with_context(|| format!("{model} has no champion: pass --version N"))?,
    };
    let card = causeway_loop::card::model_card(&project, &model, version)?;
    print!("{}", card.markdown);
    if let Some(path) = html {
        std::fs::write(path, &card.html).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn promote(dir: &ProjectArgs, model: Option<String>, version: u32, force: bool) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    project.meta.model_version(&model, version)?;
    if !promote_through_gates(&project, &model, version, force, "promote")? {
        return Ok(ExitCode::FAILURE);
    }
    if project.meta.alias(&model, CHALLENGER)? == Some(version) {
        project.meta.delete_alias(&model, CHALLENGER, "cli", SystemClock.now_ms(), "promoted by hand")?;
    }
    println!("{model}@champion -> version {version}; running servers pick it up within their reload interval");
    Ok(ExitCode::SUCCESS)
}

/// Checks the [loop.gates] for `version`, prints every verdict, and points the champion alias at
/// it when they pass (or when `force`d, which the audit reason records). Returns whether it did.
fn promote_through_gates(project: &Project, model: &str, version: u32, force: bool, reason: &str) -> Result<bool> {
    let report = causeway_loop::gates::check_version(project, model, version)?;
    let mut output = table(&["gate", "verdict", "check"]);
    for check in &report.checks {
        output.add_row(vec![
            check.gate.to_string(),
            if check.passed { "pass" } else { "FAIL" }.to_string(),
            check.detail.clone(),
        ]);
    }
    println!("gates for {model} version {version}:\n{output}");
    if !report.passed() && !force {
        eprintln!(
            "error: {model} version {version} was not promoted: {}; fix the model or [loop.gates] in causeway.toml, or pass --force",
            report.failures().join("; ")
        );
        return Ok(false);
    }
    let reason = if report.passed() {
        format!("{reason} (gates passed)")
    } else {
        format!("{reason} (forced past failed gates: {})", report.failures().join("; "))
    };
    set_champion(project, model, version, "cli", &reason)?;
    Ok(true)
}

fn rollback(dir: &ProjectArgs, model: Option<String>) -> Result<ExitCode> {
    let project = open(dir)?;
    let model = model_name(&project, model)?;
    let now = SystemClock.now_ms();
    let version = project.meta.rollback_alias(&model, CHAMPION, "cli", now, "by hand")?;
    project.meta.set_traffic(
        &TrafficPolicy {
            model: model.clone(),
            champion: version,
            challenger: None,
            mode: RolloutMode::ChampionOnly,
            generation: 0,
        },
        "cli",
        now,
    )?;
    println!("{model}@champion rolled back to version {version}");
    Ok(ExitCode::SUCCESS)
}

fn drift(reference: &Path, current: &Path, threshold: f64, columns: &[String], json: bool) -> Result<ExitCode> {
    if !(threshold.is_finite() && threshold > 0.0) {
        anyhow::bail!("--threshold must be a positive number, not {threshold}");
    }
    let read =
        |path: &Path| causeway_data::ingest::read_file(path).with_context(|| format!("cannot read {}", path.display()));
    let (before, after) = (read(reference)?, read(current)?);
    for column in columns {
        if before.column(column).is_none() && after.column(column).is_none() {
            anyhow::bail!("neither file has a column `{column}`");
        }
    }
    let report = causeway_monitor::dataset_drift(&before, &after, threshold, columns);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let percent = |share: f64| format!("{:.1}%", share * 100.0);
        let mut output = table(&["column", "kind", "PSI", "KS", "nulls", "change", "verdict"]);
        for column in &report.columns {
            let change = match (&column.mean, &column.largest_shift) {
                (Some((before, after)), _) => format!("mean {before:.4} -> {after:.4}"),
                (None, Some((category, before, after))) => {
                    format!("{category}: {} -> {}", percent(*before), percent(*after))
                }
                (None, None) => String::new(),
            };
            output.add_row(vec![
                column.name.clone(),
                column.kind.to_string(),
                format!("{:.3}", column.psi),
                column.ks.map_or_else(String::new, |ks| format!("{ks:.3}")),
                format!("{} -> {}", percent(column.null_share.0), percent(column.null_share.1)),
                change,
                column.verdict.as_str().to_string(),
            ]);
        }
        println!("{output}");
        for change in &report.schema_changes {
            match (&change.reference, &change.current) {
                (Some(before), Some(after)) => println!("column `{}` changed type: {before} -> {after}", change.name),
                (Some(before), None) => {
                    println!("column `{}` ({before}) is missing from {}", change.name, current.display())
                }
                (None, Some(after)) => println!("column `{}` ({after}) is new in {}", change.name, current.display()),
                (None, None) => {}
            }
        }
        let drifted = report.drifted().count();
        println!(
            "{drifted} of {} columns drifted (PSI >= {threshold}), {} schema change(s); {} rows -> {} rows",
            report.columns.len(),
            report.schema_changes.len(),
            report.reference_rows,
            report.current_rows
        );
    }
    Ok(if report.is_stable() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn events(dir: &ProjectArgs, kind: Option<&str>) -> Result<ExitCode> {
    let project = open(dir)?;
    let kind = match kind {
        Some(text) => Some(
            EventKind::parse(text)
                .with_context(|| format!("unknown kind `{text}`: use audit, alert, resolved, loop or data"))?,
        ),
        None => None,
    };
    for event in project.meta.events(kind)? {
        println!("{}  {:<8} {:<8} {}", format_timestamp(event.at_ms), event.kind.as_str(), event.actor, event.message);
    }
    Ok(ExitCode::SUCCESS)
}

fn token(action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::Create { name, scope, dir } => {
            let project = open(&dir)?;
            let scope = causeway_store::Scope::parse(&scope)
                .with_context(|| format!("unknown scope `{scope}`: use read, write or admin"))?;
            let (token, secret) = project.meta.create_token(&name, scope, SystemClock.now_ms())?;
            eprintln!("created token `{}` with scope {}; its secret is shown once:", token.name, token.scope.as_str());
            println!("{secret}");
        }
        TokenAction::List(dir) => {
            let project = open(&dir)?;
            let mut output = table(&["name", "scope", "created", "state"]);
            for token in project.meta.tokens()? {
                output.add_row(vec![
                    token.name.clone(),
                    token.scope.as_str().to_string(),
                    format_timestamp(token.created_ms),
                    if token.revoked { "revoked".to_string() } else { "live".to_string() },
                ]);
            }
            println!("{output}");
        }
        TokenAction::Revoke { name, dir } => {
            let project = open(&dir)?;
            project.meta.revoke_token(&name)?;
            println!("revoked token `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn resume(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut controller =
        Controller::new(&project, Box::new(|_, _| Err(causeway_loop::Error::Precondition("not retraining".into()))))?;
    controller.resume(SystemClock.now_ms())?;
    println!("retraining resumed");
    Ok(ExitCode::SUCCESS)
}

/// Serves one model file with no project of the user's: imports it into a temporary project (removed
/// when the server stops) as the champion of `name`, then serves that project.
fn serve_file(
    listen: SocketAddr,
    file: &Path,
    name: Option<String>,
    threshold: f64,
    serving: &ServingArgs,
) -> Result<ExitCode> {
    if !listen.ip().is_loopback() && !serving.insecure {
        anyhow::bail!(
            "serving a model file on {listen} (not a loopback address) has no API tokens to check: pass --insecure, \
             or import the file into a project (`causeway import`) and create tokens there"
        );
    }
    let name = match name {
        Some(name) => name,
        None => file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| !stem.is_empty() && !stem.starts_with('.'))
            .map(str::to_string)
            .with_context(|| format!("cannot name a model after {}: pass --name", file.display()))?,
    };
    if serving.dir.store.is_some() || serving.dir.artifacts.is_some() {
        eprintln!("warning: --store and --artifacts (or CAUSEWAY_STORE, CAUSEWAY_ARTIFACTS) do not apply to --model");
    }
    let scratch = tempfile::Builder::new()
        .prefix("causeway-serve-")
        .tempdir()
        .context("cannot create a temporary project (is TMPDIR writable?)")?;
    let project_args = ProjectArgs { dir: scratch.path().to_path_buf(), store: None, artifacts: None };
    let (project, _) =
        Project::init_with(&project_args.dir, causeway_loop::project::INIT_TEMPLATE, &project_args.storage())?;
    let version =
        import_file(&project, file, &name, threshold).with_context(|| format!("cannot serve {}", file.display()))?;
    set_champion(&project, &name, version.version, "cli", "served from a file")?;
    drop(project);
    // Standard output's first line stays the server's readiness line.
    eprintln!("serving {} as model `{name}` (a temporary project, removed on exit)", file.display());
    let serving = ServingArgs { dir: project_args, ..serving.clone() };
    serve(listen, &serving, false)
}

/// Serves the data plane (OIP v2, record scoring, labels, metrics) and, with `tracking`, the
/// MLflow tracking API too.
fn serve(listen: SocketAddr, serving: &ServingArgs, tracking: bool) -> Result<ExitCode> {
    let (dir, reload_seconds, insecure) = (serving.dir.dir.as_path(), serving.reload_seconds, serving.insecure);
    let project = open(&serving.dir)?;
    let require_tokens = !listen.ip().is_loopback() && !insecure;
    if require_tokens && project.meta.tokens()?.iter().all(|token| token.revoked) {
        anyhow::bail!(
            "serving {listen} (not a loopback address) requires API tokens: create one with `causeway token create --name NAME --scope admin --dir {}`, or pass --insecure",
            dir.display()
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let online = project.online()?;
    let features = project.config.features.clone().map(|spec| OnlineFeatures { spec, store: online.clone() });
    let engine = Arc::new(Engine::new(
        project.meta.clone(),
        project.blobs.clone(),
        features,
        clock.clone(),
        PredictionLog::start(project.blobs.clone(), 100_000, 10_000),
    ));
    let report = engine.refresh()?;
    for (model, reason) in &report.unservable {
        eprintln!("warning: not serving {model}: {reason}");
    }
    if report.changed.is_empty() {
        eprintln!("warning: no model is deployed yet; /v2/health/ready answers 503 until a champion exists");
    }
    let state = causeway_server::AppState::new(engine.clone(), project.meta.clone(), clock.clone());
    let mut app = causeway_server::router(state);
    if tracking {
        let tracking_state = causeway_server::mlflow::TrackingState { meta: project.meta.clone(), clock };
        app = app
            .merge(causeway_server::mlflow::router(tracking_state))
            .merge(causeway_server::artifacts::router(project.blobs.clone()));
    }
    let auth = causeway_server::auth::AuthConfig { meta: project.meta.clone(), required: require_tokens };
    let app = app.layer(axum::middleware::from_fn_with_state(auth, causeway_server::auth::authenticate));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let tracking_note = if tracking { "; MLflow tracking API at /api/2.0/mlflow" } else { "" };
        // One line: tests and supervisors read it as the readiness signal, then may close the pipe.
        println!(
            "serving {} on http://{address} (models: {}; metadata on {}, artifacts in {}){tracking_note}",
            project.dir.display(),
            engine.deployed_models().join(", "),
            project.meta.backend(),
            project.blobs.describe()
        );
        let refresher = causeway_server::spawn_refresher(engine.clone(), Duration::from_secs(reload_seconds.max(1)));
        let result = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await;
        refresher.abort();
        if let Err(error) = engine.log().flush() {
            eprintln!("warning: flushing the prediction log failed: {error}");
        }
        if let Err(error) = online.flush() {
            eprintln!("warning: flushing the online store failed: {error}");
        }
        result.context("server failed")?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
