//! The command line: every command, its arguments and its help text (clap only; the commands
//! themselves are in `commands/`).

use std::net::SocketAddr;
use std::path::PathBuf;

use causeway_loop::StorageSection;
use causeway_models::TaskKind;
use clap::{Args, Parser, Subcommand};

/// Causeway: data, features, training, registry, serving, monitoring and the retraining loop in
/// one program.
#[derive(Debug, Parser)]
#[command(name = "causeway", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// The stores these arguments name (unset ones fall back to causeway.toml, then the defaults).
    pub fn storage(&self) -> StorageSection {
        StorageSection { metadata: self.store.clone(), artifacts: self.artifacts.clone() }
    }
}

/// Options of `server` alone: the MLflow tracking API.
#[derive(Debug, Clone, Default, Args)]
pub struct TrackingArgs {
    /// Where new experiments keep their artifacts when clients should write them there themselves,
    /// as MLflow's `--default-artifact-root` with `--no-serve-artifacts` (`s3://bucket/prefix`,
    /// `file:///path`): experiments get `<URI>/<id>`, and the server reads the same place to list
    /// and download [default: through this server, as `mlflow-artifacts:/<id>` in --artifacts].
    #[arg(long, env = "CAUSEWAY_DEFAULT_ARTIFACT_ROOT", value_name = "URI")]
    pub default_artifact_root: Option<String>,
    /// A regular expression every new model version's source must match somewhere, as MLflow's
    /// `MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX` (also read): `^mlflow-artifacts:/`
    /// keeps versions to artifacts this server holds.
    #[arg(long, env = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX", value_name = "REGEX")]
    pub model_version_source_pattern: Option<String>,
}

/// Options of `server` alone: the live loop beside the API.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerLoopArgs {
    /// Do not run the loop (monitoring, retraining, rollouts) in this server; `causeway loop run`
    /// can run it elsewhere.
    #[arg(long)]
    pub no_loop: bool,
    /// Time between the loop's ticks, e.g. 30s or 5m [default: [loop] tick of causeway.toml, 1m].
    #[arg(long, value_name = "DURATION")]
    pub loop_tick: Option<causeway_types::Span>,
}

/// Options shared by `serve` and `server`.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Seconds between checks for promotions and rollbacks in the store.
    #[arg(long, default_value_t = 2)]
    pub reload_seconds: u64,
    /// The longest a prediction waits before its segment of the prediction log is written to the
    /// store, where the loop reads it (segments also close every 10,000 predictions).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub log_flush: causeway_types::Span,
    /// Serve a non-loopback address without requiring API tokens.
    #[arg(long, conflicts_with = "require_tokens")]
    pub insecure: bool,
    /// Require an API token on every request, even on a loopback address (behind a reverse
    /// proxy, or to have the web UI ask for a token).
    #[arg(long)]
    pub require_tokens: bool,
    /// Host names the server answers to besides loopback names, private addresses and the bound
    /// address (comma-separated; `*` wildcards; `*` alone allows any host): requests naming
    /// another host are refused, which stops DNS-rebinding pages.
    #[arg(long, env = "CAUSEWAY_ALLOWED_HOSTS", value_delimiter = ',', value_name = "HOSTS")]
    pub allowed_hosts: Vec<String>,
    /// Web origins that may write besides loopback pages and the server's own (comma-separated,
    /// `*` wildcards): writes from other origins are refused, even those browsers send without
    /// asking (`Content-Type: text/plain`).
    #[arg(long, env = "CAUSEWAY_CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_name = "ORIGINS")]
    pub cors_allowed_origins: Vec<String>,
    /// The URL clients reach this server at, for the upload URLs of multipart artifact uploads
    /// [default: the bound address; loopback when bound to 0.0.0.0].
    #[arg(long, env = "CAUSEWAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Connections held at once; more wait to be accepted [default: 1024, or the open-file limit
    /// less 64 when that is lower].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// A connection that has not sent a whole request head this long after it opened or after
    /// its last answer (a half-sent header, nothing, an idle keep-alive) is closed.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: causeway_types::Span,
    #[command(flatten)]
    pub dir: ProjectArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create causeway.toml and the embedded stores (.causeway/) in a project directory.
    ///
    /// With --from FILE --label COLUMN, the project is drafted for that file: its columns become
    /// typed expectations, numeric and categorical features, an id and a time column when one
    /// plausibly is; the task is inferred from the label (or --task); the file is ingested.
    ///
    /// Example: causeway init --dir my-project
    ///
    /// Example: causeway init --from churn.csv --label churn --dir churn
    Init {
        /// Draft the project for this CSV or Parquet file, and ingest it.
        #[arg(long, value_name = "FILE", requires = "label")]
        from: Option<PathBuf>,
        /// The column to predict.
        #[arg(long, value_name = "COLUMN", requires = "from")]
        label: Option<String>,
        /// The label value that is the positive class of a binary task (when it is not a
        /// yes/no, true/false or 1/0 pair).
        #[arg(long, value_name = "VALUE", requires = "from")]
        positive: Option<String>,
        /// binary, multiclass or regression (default: inferred from the label's values).
        #[arg(long, value_name = "TASK", requires = "from")]
        task: Option<TaskKind>,
        /// The dataset and model name (default: the file name without its extension).
        #[arg(long, requires = "from")]
        name: Option<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
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
        /// Read only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// List dataset versions, or delete one.
    ///
    /// Example: causeway datasets --dir my-project
    ///
    /// Example: causeway datasets delete 1e50b503 --dir my-project
    Datasets {
        #[command(subcommand)]
        action: Option<DatasetAction>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
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
        /// Only cross-validate the trainer on FOLDS seeded folds of the window and print each
        /// metric's mean and standard deviation; nothing is registered.
        #[arg(long, value_name = "FOLDS", conflicts_with_all = ["promote", "search"])]
        folds: Option<usize>,
        /// Train on this version of the dataset only (`causeway datasets` lists them; a unique
        /// prefix is enough) instead of every version.
        #[arg(long, value_name = "VERSION")]
        dataset_version: Option<String>,
        /// Evaluate on the labelled rows of this CSV or Parquet file (not stored) instead of
        /// holding out a share of the window; every row of the window then trains.
        #[arg(long, value_name = "FILE")]
        holdout: Option<PathBuf>,
        /// First run the [model.search] hyper-parameter search (random or successive halving,
        /// every trial a child run) and train its winner.
        #[arg(long)]
        search: bool,
        /// Train with the [model.external] command instead (the researcher's own script), which
        /// logs through MLflow to a tracking server this command starts on loopback.
        #[arg(long, conflicts_with_all = ["search", "folds", "holdout"])]
        external: bool,
        /// With --external: the MLflow tracking URI to give the script (default: a server this
        /// command runs for the script's lifetime on 127.0.0.1, on this project's stores).
        #[arg(long, value_name = "URI", requires = "external")]
        tracking_uri: Option<String>,
        /// Which model of causeway.toml to train, when it declares several ([[models]]).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Score every row of a CSV or Parquet file with the champion (or a version) and write the
    /// predictions: the id column (when [model] names one), `score` (binary: the positive class's
    /// probability), `prediction` (the class or the value) and, for multi-class models,
    /// `probability_<class>`.
    ///
    /// Example: causeway predict customers.csv --output scored.csv --dir churn
    Predict {
        /// The rows to score (the features are computed as serving computes them).
        file: PathBuf,
        /// Where to write the predictions (.csv or .parquet).
        #[arg(long, short = 'o', value_name = "OUT")]
        output: PathBuf,
        /// The model (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        /// The version (default: the champion).
        #[arg(long)]
        version: Option<u32>,
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
    /// Import an XGBoost (.json, .ubj), LightGBM (.txt) or ONNX (.onnx) model file as a new version.
    ///
    /// The version scores exactly as the library does (same comparisons, missing-value and
    /// category rules, float precision). Its inputs are the file's features, in order; categorical
    /// features take their category values (or integer codes). Binary, multi-class and regression
    /// models all serve; ONNX graphs other than tree ensembles need onnxruntime (ORT_DYLIB_PATH).
    ///
    /// Example: causeway import model.json --model fraud --promote
    Import {
        /// The model file.
        file: PathBuf,
        /// The registered model to add a version to (default: [model].name of causeway.toml).
        #[arg(long)]
        model: Option<String>,
        /// Binary models: scores at or above this are the positive class.
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
        /// What the model predicts, when its outputs leave it open (a one-column ONNX graph is a
        /// number unless `binary`): binary, multiclass or regression.
        #[arg(long, value_name = "TASK")]
        task: Option<TaskKind>,
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
        /// What a --model file predicts, when its outputs leave it open: binary, multiclass or
        /// regression.
        #[arg(long, value_name = "TASK", requires = "model_file")]
        task: Option<TaskKind>,
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
        #[command(flatten)]
        tracking: TrackingArgs,
        #[command(flatten)]
        live: ServerLoopArgs,
    },
    /// Open the web UI on a project: runs, models, rollouts, monitoring, datasets and the audit
    /// log in a browser, read from the project's stores (it serves no models and runs no loop;
    /// `causeway server` serves the same UI beside them).
    ///
    /// Example: causeway ui --dir my-project   (then open http://127.0.0.1:5001/)
    Ui {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port to bind (0 picks a free one).
        #[arg(long, default_value_t = 5001)]
        port: u16,
        #[command(flatten)]
        serving: ServingArgs,
    },
    /// Run the LLM gateway: an OpenAI-compatible API (`/v1/chat/completions`, streamed or not,
    /// `/v1/embeddings`, `/v1/models`) in front of OpenAI-compatible servers (vLLM, llama.cpp's
    /// server, Ollama, another gateway), recording the tokens and cost of every call.
    ///
    /// Example: causeway gateway --upstream http://127.0.0.1:8000/v1   (then point an OpenAI
    /// client at http://127.0.0.1:8090/v1; or `causeway gateway --dir my-project` for its
    /// `[gateway]` routes and prices)
    Gateway {
        /// An OpenAI-compatible base URL (ending before `/chat/completions`); every model name is
        /// forwarded to it as the caller wrote it. Repeat for fallbacks, tried in order. Without
        /// it, the `[gateway]` section of the project's causeway.toml says what to serve.
        #[arg(long)]
        upstream: Vec<String>,
        /// A GGUF chat model (SmolLM2-135M-Instruct from scripts/llm-models.sh, or any llama-architecture
        /// ChatML model in Q4_1) run in this process and served as the model `local`.
        #[arg(long, value_name = "FILE.gguf")]
        local_model: Option<String>,
        /// A sentence-embedding model's directory (all-MiniLM-L6-v2 from `scripts/llm-models.sh embedding`,
        /// or another BERT saved by sentence-transformers) run in this process and served as `local-embedding`.
        #[arg(long, value_name = "DIR")]
        local_embedding: Option<String>,
        /// Worker threads of the local models, each running one request at a time on one core.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        local_threads: u16,
        /// The project whose `[gateway]` section is served (when no --upstream or --local-* is given).
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Listen on a non-loopback address although the gateway checks no API keys yet.
        #[arg(long)]
        insecure: bool,
    },
    /// What the LLM gateway's callers used and spent, from the ledger in the metadata store.
    ///
    /// Example: causeway llm usage --since 7d --by tenant,model
    Llm {
        #[command(subcommand)]
        action: LlmAction,
    },
    /// Manage API tokens (required when a server binds a non-loopback address).
    ///
    /// Example: causeway token create --name ci --scope write
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Run, inspect and steer the loop: monitoring, retraining and rollouts of the project's
    /// models.
    ///
    /// Example: causeway loop status
    Loop {
        #[command(subcommand)]
        action: LoopAction,
    },
    /// Feed delayed ground truth to the loop.
    ///
    /// Example: causeway labels ingest labels.csv --dir my-project
    Labels {
        #[command(subcommand)]
        action: LabelsAction,
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
pub enum DatasetAction {
    /// Delete a dataset version (its record, Parquet file and profile; audited). Refused while
    /// a registered model version was trained on it, unless --force.
    ///
    /// Example: causeway datasets delete 1e50b503 --name churn
    Delete {
        /// The version (`causeway datasets` lists them; a unique prefix is enough).
        version: String,
        /// The dataset, when several hold versions starting with VERSION.
        #[arg(long)]
        name: Option<String>,
        /// Delete it even though registered model versions were trained on it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabelsAction {
    /// Store labels from a CSV or Parquet file with columns request_id, label and optionally
    /// time (when the label became known; a timestamp or epoch milliseconds, default now). Each
    /// label is checked against the deployed model's task. Malformed rows, duplicates and
    /// request ids the prediction log does not hold are counted and reported; a label that
    /// differs from a stored one is kept out unless --correct (audited).
    ///
    /// Example: causeway labels ingest labels.csv --model fraud
    Ingest {
        /// The label file.
        file: PathBuf,
        /// The model the labels are for [default: the project's only model].
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Replace stored labels that differ (each replacement is an audit event).
        #[arg(long)]
        correct: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum LlmAction {
    /// Calls, tokens (prompt, cached, completion) and cost of the gateway's calls, summed by
    /// tenant, key, route, provider and model (or the dimensions --by names), the most
    /// expensive first. Unpriced calls are counted apart, never as $0.
    ///
    /// Example: causeway llm usage --since 24h --by tenant,key
    Usage {
        /// How far back (`90m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        since: causeway_types::Span,
        /// What to sum by, comma-separated: tenant, key, route, provider, model, prompt (the
        /// prompt version a prompt-named request used).
        #[arg(long, value_delimiter = ',', default_value = "tenant,key,route,provider,model")]
        by: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// The newest calls as trace spans: when, trace id, route, provider and model, tokens,
    /// latency, finish reasons, prompt version and guardrail verdicts (`--json`: every
    /// OpenTelemetry GenAI attribute).
    ///
    /// Example: causeway llm traces --since 1h --limit 50
    Traces {
        /// How far back (`90m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        since: causeway_types::Span,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
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

/// Which model a loop command is for.
#[derive(Debug, Clone, Args)]
pub struct LoopModelArgs {
    /// The model [default: every model of causeway.toml].
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    #[command(flatten)]
    pub dir: ProjectArgs,
}

#[derive(Debug, Subcommand)]
pub enum LoopAction {
    /// Run the loop alone, on wall-clock time, until interrupted: each tick measures drift and
    /// labelled performance, raises alerts, starts retraining on its triggers and moves rollouts
    /// through shadow and canary. Several control planes on one store elect one (a lease); the
    /// others wait. `causeway server` runs the same loop unless --no-loop.
    ///
    /// Example: causeway loop run --dir my-project --tick 30s
    Run {
        /// Time between ticks, e.g. 30s or 5m [default: [loop] tick of causeway.toml, 1m].
        #[arg(long, value_name = "DURATION")]
        tick: Option<causeway_types::Span>,
        /// Run one tick (retraining inside it) and exit.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        dir: ProjectArgs,
    },
    /// Show each model's loop: champion and challenger, rollout stage and since when, the
    /// evidence against each bound, firing alerts, the next scheduled trigger and the last
    /// decision.
    ///
    /// Example: causeway loop status --json
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: LoopModelArgs,
    },
    /// Pause the loop: no trigger starts a retraining and no rollout steps forward (a
    /// regressing canary is still rolled back) until `causeway loop resume`.
    ///
    /// Example: causeway loop pause --model fraud
    Pause(LoopModelArgs),
    /// Resume the loop after a pause (the loop pauses itself after a rollback).
    ///
    /// Example: causeway loop resume --dir my-project
    Resume(LoopModelArgs),
    /// Retrain now, whatever the triggers and the cool-down say; the challenger goes through
    /// the gates, shadow and canary as any other.
    ///
    /// Example: causeway loop retrain --model fraud
    Retrain(LoopModelArgs),
}
