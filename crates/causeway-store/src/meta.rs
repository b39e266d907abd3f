//! The metadata store on SQLite (WAL mode), with versioned migrations.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::db::{Connection, OptionalRow, PostgresConnection, Row, params};
use causeway_types::{DatasetVersion, Event, EventKind, LabelRecord, ModelVersionRecord, RunRecord, RunStatus};

use crate::error::{Error, Result};

/// Migration 1: the walking skeleton's tables.
pub(crate) const MIGRATION_1: &str = "CREATE TABLE datasets (
        name TEXT NOT NULL, version TEXT NOT NULL, rows INTEGER NOT NULL, blob_key TEXT NOT NULL,
        profile_key TEXT NOT NULL, schema_json TEXT NOT NULL, source TEXT NOT NULL, created_ms INTEGER NOT NULL,
        PRIMARY KEY (name, version));
     CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, started_ms INTEGER NOT NULL,
        finished_ms INTEGER, seed INTEGER NOT NULL, dataset TEXT NOT NULL, git_commit TEXT, tool_version TEXT NOT NULL);
     CREATE TABLE run_params (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
     CREATE TABLE run_metrics (run_id TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, step INTEGER NOT NULL,
        at_ms INTEGER NOT NULL);
     CREATE INDEX run_metrics_by_run ON run_metrics (run_id, key, step);
     CREATE TABLE model_versions (
        model TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT NOT NULL, dataset TEXT NOT NULL,
        artifact_key TEXT NOT NULL, flavor TEXT NOT NULL, created_ms INTEGER NOT NULL, metrics_json TEXT NOT NULL,
        PRIMARY KEY (model, version));
     CREATE TABLE aliases (model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
        PRIMARY KEY (model, alias));
     CREATE TABLE alias_history (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, alias TEXT NOT NULL,
        version INTEGER, at_ms INTEGER NOT NULL);
     CREATE TABLE traffic (model TEXT PRIMARY KEY, policy_json TEXT NOT NULL, generation INTEGER NOT NULL);
     CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
        actor TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL, details_json TEXT NOT NULL);
     CREATE TABLE labels (request_id TEXT PRIMARY KEY, label REAL NOT NULL, arrived_ms INTEGER NOT NULL);
     CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

/// Migration 2: MLflow-compatible tracking: experiments, run tags, run ownership and life cycle.
const MIGRATION_2: &str = "CREATE TABLE experiments (
        experiment_id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, artifact_location TEXT NOT NULL,
        lifecycle_stage TEXT NOT NULL DEFAULT 'active', creation_time INTEGER NOT NULL, last_update_time INTEGER NOT NULL);
     INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time)
        VALUES (0, 'Default', 'mlflow-artifacts:/0', 0, 0);
     CREATE TABLE experiment_tags (experiment_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (experiment_id, key));
     ALTER TABLE runs ADD COLUMN experiment_id INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE runs ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
     ALTER TABLE runs ADD COLUMN lifecycle_stage TEXT NOT NULL DEFAULT 'active';
     ALTER TABLE runs ADD COLUMN artifact_uri TEXT NOT NULL DEFAULT '';
     CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, started_ms);
     CREATE TABLE run_tags (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
     ALTER TABLE run_metrics ADD COLUMN is_nan INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE registered_models (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',
        creation_time INTEGER NOT NULL, last_updated_time INTEGER NOT NULL);
     INSERT INTO registered_models (name, creation_time, last_updated_time)
        SELECT model, MIN(created_ms), MAX(created_ms) FROM model_versions GROUP BY model;
     CREATE TABLE registered_model_tags (name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key));
     CREATE TABLE model_version_tags (name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (name, version, key));
     ALTER TABLE model_versions ADD COLUMN description TEXT NOT NULL DEFAULT '';
     ALTER TABLE model_versions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
     ALTER TABLE model_versions ADD COLUMN last_updated_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE model_versions ADD COLUMN run_link TEXT NOT NULL DEFAULT '';
     CREATE TABLE run_inputs (run_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, source_type TEXT NOT NULL,
        source TEXT NOT NULL, schema TEXT, profile TEXT, tags_json TEXT NOT NULL, logged_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, name, digest));
     CREATE TABLE logged_models (model_id TEXT PRIMARY KEY, experiment_id INTEGER NOT NULL, name TEXT NOT NULL,
        artifact_location TEXT NOT NULL, status TEXT NOT NULL, status_message TEXT NOT NULL DEFAULT '',
        source_run_id TEXT NOT NULL DEFAULT '', model_type TEXT NOT NULL DEFAULT '', creation_ms INTEGER NOT NULL,
        last_updated_ms INTEGER NOT NULL, lifecycle_stage TEXT NOT NULL DEFAULT 'active');
     CREATE INDEX logged_models_by_run ON logged_models (source_run_id);
     CREATE TABLE logged_model_tags (model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
     CREATE TABLE logged_model_params (model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
     CREATE TABLE run_outputs (run_id TEXT NOT NULL, model_id TEXT NOT NULL, step INTEGER NOT NULL, PRIMARY KEY (run_id, model_id));
     ALTER TABLE model_versions ADD COLUMN model_id TEXT NOT NULL DEFAULT '';
     CREATE TABLE api_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);";

/// Migration 3: a metric point is stored once (MLflow's clients log some twice, and MLflow keeps
/// one), metrics linked to MLflow 3 logged models, and models as run inputs.
const MIGRATION_3: &str = "DELETE FROM run_metrics WHERE rowid NOT IN
        (SELECT MIN(rowid) FROM run_metrics GROUP BY run_id, key, step, at_ms, value, is_nan);
     CREATE UNIQUE INDEX run_metrics_once ON run_metrics (run_id, key, step, at_ms, value, is_nan);
     CREATE TABLE logged_model_metrics (model_id TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL,
        value REAL NOT NULL, step INTEGER NOT NULL, at_ms INTEGER NOT NULL, is_nan INTEGER NOT NULL DEFAULT 0,
        dataset_name TEXT NOT NULL DEFAULT '', dataset_digest TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (model_id, key, step, at_ms, value, is_nan, run_id, dataset_name, dataset_digest));
     CREATE TABLE run_model_inputs (run_id TEXT NOT NULL, model_id TEXT NOT NULL, PRIMARY KEY (run_id, model_id));";

/// Migration 3 for PostgreSQL.
const POSTGRES_MIGRATION_3: &str = "DELETE FROM run_metrics WHERE rowid NOT IN
        (SELECT MIN(rowid) FROM run_metrics GROUP BY run_id, key, step, at_ms, value, is_nan);
     CREATE UNIQUE INDEX run_metrics_once ON run_metrics (run_id, key, step, at_ms, value, is_nan);
     CREATE TABLE logged_model_metrics (model_id TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL, step BIGINT NOT NULL, at_ms BIGINT NOT NULL, is_nan BIGINT NOT NULL DEFAULT 0,
        dataset_name TEXT NOT NULL DEFAULT '', dataset_digest TEXT NOT NULL DEFAULT '', rowid BIGSERIAL,
        PRIMARY KEY (model_id, key, step, at_ms, value, is_nan, run_id, dataset_name, dataset_digest));
     CREATE TABLE run_model_inputs (run_id TEXT NOT NULL, model_id TEXT NOT NULL, PRIMARY KEY (run_id, model_id));";

/// Migration 4: the highest version number a registered model ever had, so a deleted newest
/// version's number is never given to another (MLflow numbers versions so; lineage and the audit
/// log name versions by number).
const MIGRATION_4: &str = "ALTER TABLE registered_models ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
     UPDATE registered_models SET last_version =
        COALESCE((SELECT MAX(version) FROM model_versions WHERE model_versions.model = registered_models.name), 0);";

/// Migration 4 for PostgreSQL.
const POSTGRES_MIGRATION_4: &str = "ALTER TABLE registered_models ADD COLUMN last_version BIGINT NOT NULL DEFAULT 0;
     UPDATE registered_models SET last_version =
        COALESCE((SELECT MAX(version) FROM model_versions WHERE model_versions.model = registered_models.name), 0);";

/// Migration 5: the live loop's leader lease, the commands people queue for it, and the
/// per-version request and error counts serving replicas report each minute.
const MIGRATION_5: &str =
    "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL);
     CREATE TABLE loop_commands (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, command TEXT NOT NULL,
        at_ms INTEGER NOT NULL);
     CREATE TABLE serving_counts (replica TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
        minute_ms INTEGER NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL,
        PRIMARY KEY (model, version, minute_ms, replica));";

/// Migration 5 for PostgreSQL.
const POSTGRES_MIGRATION_5: &str =
    "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL);
     CREATE TABLE loop_commands (id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, command TEXT NOT NULL,
        at_ms BIGINT NOT NULL);
     CREATE TABLE serving_counts (replica TEXT NOT NULL, model TEXT NOT NULL, version BIGINT NOT NULL,
        minute_ms BIGINT NOT NULL, requests BIGINT NOT NULL, errors BIGINT NOT NULL,
        PRIMARY KEY (model, version, minute_ms, replica));";

/// Migration 6: what keeps a tick from re-reading old prediction-log segments — per-bucket
/// window summaries (each write numbered, so a reader fetches only what changed), the index of
/// logged predictions labels join with, the segments already summarised, and whether each label
/// is counted (0 not yet, 1 counted, 2 no prediction logged).
const MIGRATION_6: &str = "CREATE TABLE window_summaries (model TEXT NOT NULL, kind TEXT NOT NULL,
        version INTEGER NOT NULL, other INTEGER NOT NULL, start_ms INTEGER NOT NULL, width_ms INTEGER NOT NULL,
        body TEXT NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (model, kind, version, other, start_ms));
     CREATE INDEX window_summaries_by_time ON window_summaries (model, kind, start_ms);
     CREATE INDEX window_summaries_by_revision ON window_summaries (model, kind, revision);
     CREATE TABLE prediction_index (request_id TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
        served INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, score REAL, prediction REAL,
        PRIMARY KEY (request_id, model, version));
     CREATE INDEX prediction_index_by_time ON prediction_index (timestamp_ms);
     CREATE TABLE summarized_segments (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
     ALTER TABLE labels ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX labels_pending ON labels (arrived_ms, request_id) WHERE joined = 0;";

/// Migration 6 for PostgreSQL.
const POSTGRES_MIGRATION_6: &str = "CREATE TABLE window_summaries (model TEXT NOT NULL, kind TEXT NOT NULL,
        version BIGINT NOT NULL, other BIGINT NOT NULL, start_ms BIGINT NOT NULL, width_ms BIGINT NOT NULL,
        body TEXT NOT NULL, revision BIGINT NOT NULL, PRIMARY KEY (model, kind, version, other, start_ms));
     CREATE INDEX window_summaries_by_time ON window_summaries (model, kind, start_ms);
     CREATE INDEX window_summaries_by_revision ON window_summaries (model, kind, revision);
     CREATE TABLE prediction_index (request_id TEXT NOT NULL, model TEXT NOT NULL, version BIGINT NOT NULL,
        served BIGINT NOT NULL, timestamp_ms BIGINT NOT NULL, score DOUBLE PRECISION, prediction DOUBLE PRECISION,
        PRIMARY KEY (request_id, model, version));
     CREATE INDEX prediction_index_by_time ON prediction_index (timestamp_ms);
     CREATE TABLE summarized_segments (key TEXT PRIMARY KEY, at_ms BIGINT NOT NULL);
     ALTER TABLE labels ADD COLUMN joined BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX labels_pending ON labels (arrived_ms, request_id) WHERE joined = 0;";

/// Migrations, applied in order; the store's schema version is the number applied.
/// Migration 7: the retention of window summaries reads them by time alone (each pass forgets
/// the buckets past 90 days), which without this index scanned every stored bucket.
const MIGRATION_7: &str = "CREATE INDEX window_summaries_by_start ON window_summaries (start_ms);";

/// Migration 8: each run's latest value of each metric, kept by the writers in the transaction
/// that logs the points (runs/search filters and orders by it in SQL, and reads a page of runs
/// without ranking their whole histories); the runs index in the default order of runs/search.
const MIGRATION_8: &str =
    "CREATE TABLE run_latest_metrics (run_id TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
        step INTEGER NOT NULL, at_ms INTEGER NOT NULL, is_nan INTEGER NOT NULL, PRIMARY KEY (run_id, key));
     INSERT INTO run_latest_metrics (run_id, key, value, step, at_ms, is_nan)
        SELECT run_id, key, value, step, at_ms, is_nan FROM (
            SELECT run_id, key, value, step, at_ms, is_nan, ROW_NUMBER() OVER (
                PARTITION BY run_id, key ORDER BY step DESC, at_ms DESC, is_nan ASC, value DESC) AS position
            FROM run_metrics) AS ranked
        WHERE position = 1;
     DROP INDEX runs_by_experiment;
     CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, started_ms DESC, run_id);";

/// Migration 8 for PostgreSQL.
const POSTGRES_MIGRATION_8: &str = "CREATE TABLE run_latest_metrics (run_id TEXT NOT NULL, key TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL, step BIGINT NOT NULL, at_ms BIGINT NOT NULL, is_nan BIGINT NOT NULL,
        PRIMARY KEY (run_id, key));
     INSERT INTO run_latest_metrics (run_id, key, value, step, at_ms, is_nan)
        SELECT run_id, key, value, step, at_ms, is_nan FROM (
            SELECT run_id, key, value, step, at_ms, is_nan, ROW_NUMBER() OVER (
                PARTITION BY run_id, key ORDER BY step DESC, at_ms DESC, is_nan ASC, value DESC) AS position
            FROM run_metrics) AS ranked
        WHERE position = 1;
     DROP INDEX runs_by_experiment;
     CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, started_ms DESC, run_id COLLATE \"C\");";

/// Migration 9: runs/search ordered by a metric walks that metric's values in order and stops at
/// the page, instead of joining and sorting every run of the experiment.
const MIGRATION_9: &str = "CREATE INDEX run_latest_metrics_by_value ON run_latest_metrics (key, is_nan, value);";

/// Migration 10: the LLM gateway's ledger — one row per call, with who made it (tenant and
/// key), where it went (route, provider, model), its tokens and its cost in whole pico-dollars
/// (NULL: unpriced, never 0), the price table's version the cost comes from, and the prompt
/// version a prompt-named request used (`name/version`, or empty); each row is also the call's
/// trace span (its ids, and its OpenTelemetry GenAI attributes as JSON).
const MIGRATION_10: &str = "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL, api_key TEXT NOT NULL, route TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
        operation TEXT NOT NULL, usage_known INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_picodollars INTEGER,
        prices TEXT NOT NULL, latency_ms INTEGER NOT NULL, prompt TEXT NOT NULL DEFAULT '',
        trace_id TEXT NOT NULL DEFAULT '', span_id TEXT NOT NULL DEFAULT '', attributes_json TEXT NOT NULL DEFAULT '{}');
     CREATE INDEX llm_calls_by_time ON llm_calls (at_ms);";

/// Migration 10 for PostgreSQL.
const POSTGRES_MIGRATION_10: &str = "CREATE TABLE llm_calls (id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL, api_key TEXT NOT NULL, route TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
        operation TEXT NOT NULL, usage_known BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cost_picodollars BIGINT,
        prices TEXT NOT NULL, latency_ms BIGINT NOT NULL, prompt TEXT NOT NULL DEFAULT '',
        trace_id TEXT NOT NULL DEFAULT '', span_id TEXT NOT NULL DEFAULT '', attributes_json TEXT NOT NULL DEFAULT '{}');
     CREATE INDEX llm_calls_by_time ON llm_calls (at_ms);";

/// Keeps `run_latest_metrics` the latest point of each key: a point replaces the stored one when
/// it is later by (step, timestamp, a number over NaN, value), the order MLflow picks the latest by.
pub(crate) const UPSERT_LATEST_METRIC: &str = "ON CONFLICT (run_id, key) DO UPDATE SET
        value = excluded.value, step = excluded.step, at_ms = excluded.at_ms, is_nan = excluded.is_nan
     WHERE (excluded.step, excluded.at_ms, 1 - excluded.is_nan, excluded.value)
         > (run_latest_metrics.step, run_latest_metrics.at_ms, 1 - run_latest_metrics.is_nan, run_latest_metrics.value)";

const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
    MIGRATION_8,
    MIGRATION_9,
    MIGRATION_10,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The whole schema of version 2 for PostgreSQL (PostgreSQL stores begin at version 2; later
/// migrations get a PostgreSQL text beside the SQLite one). The same tables and columns as SQLite's,
/// with 64-bit integers throughout, and an explicit `rowid` where queries order by insertion.
const POSTGRES_SCHEMA_2: &str = "CREATE TABLE datasets (
        name TEXT NOT NULL, version TEXT NOT NULL, rows BIGINT NOT NULL, blob_key TEXT NOT NULL,
        profile_key TEXT NOT NULL, schema_json TEXT NOT NULL, source TEXT NOT NULL, created_ms BIGINT NOT NULL,
        rowid BIGSERIAL, PRIMARY KEY (name, version));
     CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, started_ms BIGINT NOT NULL,
        finished_ms BIGINT, seed BIGINT NOT NULL, dataset TEXT NOT NULL, git_commit TEXT, tool_version TEXT NOT NULL,
        experiment_id BIGINT NOT NULL DEFAULT 0, user_id TEXT NOT NULL DEFAULT '', lifecycle_stage TEXT NOT NULL DEFAULT 'active',
        artifact_uri TEXT NOT NULL DEFAULT '', rowid BIGSERIAL);
     CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, started_ms);
     CREATE TABLE run_params (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
     CREATE TABLE run_metrics (run_id TEXT NOT NULL, key TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, step BIGINT NOT NULL,
        at_ms BIGINT NOT NULL, is_nan BIGINT NOT NULL DEFAULT 0, rowid BIGSERIAL);
     CREATE INDEX run_metrics_by_run ON run_metrics (run_id, key, step);
     CREATE TABLE run_tags (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
     CREATE TABLE run_inputs (run_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, source_type TEXT NOT NULL,
        source TEXT NOT NULL, schema TEXT, profile TEXT, tags_json TEXT NOT NULL, logged_at BIGINT NOT NULL, rowid BIGSERIAL,
        PRIMARY KEY (run_id, name, digest));
     CREATE TABLE run_outputs (run_id TEXT NOT NULL, model_id TEXT NOT NULL, step BIGINT NOT NULL, rowid BIGSERIAL,
        PRIMARY KEY (run_id, model_id));
     CREATE TABLE experiments (
        experiment_id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, artifact_location TEXT NOT NULL,
        lifecycle_stage TEXT NOT NULL DEFAULT 'active', creation_time BIGINT NOT NULL, last_update_time BIGINT NOT NULL);
     INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time)
        VALUES (0, 'Default', 'mlflow-artifacts:/0', 0, 0);
     CREATE TABLE experiment_tags (experiment_id BIGINT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (experiment_id, key));
     CREATE TABLE model_versions (
        model TEXT NOT NULL, version BIGINT NOT NULL, run_id TEXT NOT NULL, dataset TEXT NOT NULL,
        artifact_key TEXT NOT NULL, flavor TEXT NOT NULL, created_ms BIGINT NOT NULL, metrics_json TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL DEFAULT '', last_updated_ms BIGINT NOT NULL DEFAULT 0,
        run_link TEXT NOT NULL DEFAULT '', model_id TEXT NOT NULL DEFAULT '', PRIMARY KEY (model, version));
     CREATE TABLE registered_models (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',
        creation_time BIGINT NOT NULL, last_updated_time BIGINT NOT NULL);
     CREATE TABLE registered_model_tags (name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key));
     CREATE TABLE model_version_tags (name TEXT NOT NULL, version BIGINT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (name, version, key));
     CREATE TABLE aliases (model TEXT NOT NULL, alias TEXT NOT NULL, version BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
        PRIMARY KEY (model, alias));
     CREATE TABLE alias_history (id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, alias TEXT NOT NULL,
        version BIGINT, at_ms BIGINT NOT NULL);
     CREATE TABLE traffic (model TEXT PRIMARY KEY, policy_json TEXT NOT NULL, generation BIGINT NOT NULL);
     CREATE TABLE events (id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL, kind TEXT NOT NULL,
        actor TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL, details_json TEXT NOT NULL);
     CREATE TABLE labels (request_id TEXT PRIMARY KEY, label DOUBLE PRECISION NOT NULL, arrived_ms BIGINT NOT NULL);
     CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE logged_models (model_id TEXT PRIMARY KEY, experiment_id BIGINT NOT NULL, name TEXT NOT NULL,
        artifact_location TEXT NOT NULL, status TEXT NOT NULL, status_message TEXT NOT NULL DEFAULT '',
        source_run_id TEXT NOT NULL DEFAULT '', model_type TEXT NOT NULL DEFAULT '', creation_ms BIGINT NOT NULL,
        last_updated_ms BIGINT NOT NULL, lifecycle_stage TEXT NOT NULL DEFAULT 'active');
     CREATE INDEX logged_models_by_run ON logged_models (source_run_id);
     CREATE TABLE logged_model_tags (model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
     CREATE TABLE logged_model_params (model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
     CREATE TABLE api_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,
        created_ms BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0);";

/// PostgreSQL migrations as (the version they bring the store to, their SQL).
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (2, POSTGRES_SCHEMA_2),
    (3, POSTGRES_MIGRATION_3),
    (4, POSTGRES_MIGRATION_4),
    (5, POSTGRES_MIGRATION_5),
    (6, POSTGRES_MIGRATION_6),
    (7, MIGRATION_7),
    (8, POSTGRES_MIGRATION_8),
    (9, MIGRATION_9),
    (10, POSTGRES_MIGRATION_10),
];

/// How SQLite makes an acknowledged write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit reaches the disk before it is acknowledged (`synchronous=FULL`): nothing
    /// acknowledged is lost on power loss, as with PostgreSQL's default `synchronous_commit=on`.
    /// The default.
    Full,
    /// Commits reach the operating system, and the disk at checkpoints (`synchronous=NORMAL`):
    /// a crash of the process loses nothing, power loss can lose the last commits. Faster for
    /// many small writes.
    Normal,
}

impl Durability {
    /// Reads `full` or `normal`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(Error::InvalidValue(format!("durability `{other}` is not `full` or `normal`"))),
        }
    }

    fn sqlite_synchronous(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// What [`MetaStore::record_labels`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabelWrite {
    /// New labels stored.
    pub stored: u64,
    /// Labels equal to the stored ones.
    pub unchanged: u64,
    /// Labels that differ from a stored one and were not stored (no `correct`).
    pub conflicting: u64,
    /// The first few of those.
    pub conflicting_ids: Vec<String>,
    /// Stored labels replaced (with `correct`).
    pub corrected: u64,
}

/// Datasets, runs, model versions, aliases, traffic policies, labels and events.
///
/// One connection behind a mutex: every method is one short transaction. Every change to models,
/// versions, aliases or traffic writes an audit event in the same transaction. The connection is
/// SQLite (a file, the default) or PostgreSQL (a server shared by several Causeway processes);
/// both answer every method the same way.
pub struct MetaStore {
    connection: Mutex<Connection>,
}

impl MetaStore {
    /// Opens (creating and migrating if needed) the SQLite store at `path`, durable as
    /// [`Durability::Full`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_sqlite(path, Durability::Full)
    }

    /// Opens the SQLite store at `path` with a chosen durability.
    pub fn open_sqlite(path: &Path, durability: Durability) -> Result<Self> {
        let connection = rusqlite::Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", durability.sqlite_synchronous())?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache (the default is 2 MiB): the loop's window summaries and the
        // prediction index are read every tick.
        connection.pragma_update(None, "cache_size", -65_536)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::migrate_sqlite(connection)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self> {
        Self::migrate_sqlite(rusqlite::Connection::open_in_memory()?)
    }

    /// Opens the store a URL names: `postgresql://…` (or `postgres://…`) for PostgreSQL,
    /// `sqlite:///path/to/meta.db[?durability=full|normal]` or a plain path for SQLite.
    pub fn open_url(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url);
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        let (path, durability) = match path.split_once("?durability=") {
            Some((path, level)) => (path, Durability::parse(level)?),
            None => (path, Durability::Full),
        };
        Self::open_sqlite(Path::new(path), durability)
    }

    /// Connects to PostgreSQL (creating and migrating the tables if needed). A `schema=NAME`
    /// parameter in the URL keeps the tables in their own schema, created if missing, so several
    /// stores can share one database.
    pub fn open_postgres(url: &str) -> Result<Self> {
        let (url, schema) = split_schema_parameter(url)?;
        let mut config: postgres::Config =
            url.parse().map_err(|error: postgres::Error| Error::Postgres(format!("invalid URL: {error}")))?;
        if config.get_application_name().is_none() {
            config.application_name("causeway");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut client = config.connect(postgres::NoTls)?;
        if let Some(schema) = &schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET search_path TO \"{schema}\""))?;
        }
        // PostgreSQL's default cost of a random page read (4, a spinning disk's) makes its planner
        // scan whole tables to read a page of runs by key; a metadata store's tables are small and
        // cached. A value an administrator chose is kept.
        let random_page_cost: String = client.query_one("SHOW random_page_cost", &[])?.try_get(0)?;
        if random_page_cost == "4" {
            client.batch_execute("SET random_page_cost = 1.1")?;
        }
        let mut connection = Connection::Postgres(Box::new(PostgresConnection::new(client)));
        {
            let mut transaction = connection.transaction()?;
            // One migrating process at a time, however many start together.
            transaction.execute_batch(
                "SELECT pg_advisory_xact_lock(7318029571);
                 CREATE TABLE IF NOT EXISTS causeway_schema (version BIGINT NOT NULL)",
            )?;
            let found: Option<i64> =
                transaction.query_row("SELECT MAX(version) FROM causeway_schema", params![], |row| row.get(0))?;
            let found = found.unwrap_or(0);
            if found > SCHEMA_VERSION {
                return Err(Error::TooNew { found, supported: SCHEMA_VERSION });
            }
            for (version, migration) in POSTGRES_MIGRATIONS.iter().filter(|(version, _)| *version > found) {
                transaction.execute_batch(migration)?;
                transaction.execute("DELETE FROM causeway_schema", params![])?;
                transaction.execute("INSERT INTO causeway_schema (version) VALUES (?1)", params![version])?;
            }
            transaction.commit()?;
        }
        Ok(Self { connection: Mutex::new(connection) })
    }

    fn migrate_sqlite(mut connection: rusqlite::Connection) -> Result<Self> {
        let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew { found, supported: SCHEMA_VERSION });
        }
        let transaction = connection.transaction()?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            transaction.execute_batch(migration)?;
            transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        }
        transaction.commit()?;
        Ok(Self { connection: Mutex::new(Connection::Sqlite(connection)) })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The database's own consistency check: SQLite's `integrity_check` (`ok` when the file is
    /// sound); on PostgreSQL, which guards its own files, `ok` once the schema answers a query.
    pub fn integrity_check(&self) -> Result<String> {
        let mut connection = self.lock();
        match &mut *connection {
            Connection::Sqlite(sqlite) => Ok(sqlite.query_row("PRAGMA integrity_check", [], |row| row.get(0))?),
            Connection::Postgres(_) => {
                connection.query_row("SELECT COUNT(*) FROM runs", params![], |row| row.get::<i64>(0))?;
                Ok("ok".to_string())
            }
        }
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64> {
        let mut connection = self.lock();
        match &mut *connection {
            Connection::Sqlite(sqlite) => Ok(sqlite.pragma_query_value(None, "user_version", |row| row.get(0))?),
            Connection::Postgres(_) => {
                connection.query_row("SELECT MAX(version) FROM causeway_schema", params![], |row| row.get(0))
            }
        }
    }

    /// `postgresql` or `sqlite`: which backend this store runs on.
    pub fn backend(&self) -> &'static str {
        if self.lock().is_postgres() { "postgresql" } else { "sqlite" }
    }

    // ---- datasets -------------------------------------------------------------------------

    /// Records a dataset version; recording the same (name, version) twice keeps the first.
    pub fn insert_dataset(&self, dataset: &DatasetVersion) -> Result<bool> {
        let inserted = self.lock().execute(
            "INSERT INTO datasets (name, version, rows, blob_key, profile_key, schema_json, source, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            params![
                dataset.name,
                dataset.version,
                dataset.rows as i64,
                dataset.blob_key,
                dataset.profile_key,
                serde_json::to_string(&dataset.schema)?,
                dataset.source,
                dataset.created_ms
            ],
        )?;
        Ok(inserted == 1)
    }

    /// All versions of `name`, oldest first.
    pub fn dataset_versions(&self, name: &str) -> Result<Vec<DatasetVersion>> {
        self.lock().query_map(
            "SELECT name, version, rows, blob_key, profile_key, schema_json, source, created_ms FROM datasets
                 WHERE name = ?1 ORDER BY created_ms, rowid",
            params![name],
            dataset_from_row,
        )
    }

    /// Every dataset version of every dataset, oldest first.
    pub fn all_datasets(&self) -> Result<Vec<DatasetVersion>> {
        self.lock().query_map(
            "SELECT name, version, rows, blob_key, profile_key, schema_json, source, created_ms FROM datasets
                 ORDER BY created_ms, rowid",
            params![],
            dataset_from_row,
        )
    }

    /// One dataset version; `version` may be a unique prefix of the hash.
    pub fn dataset(&self, name: &str, version: &str) -> Result<DatasetVersion> {
        self.dataset_versions(name)?
            .into_iter()
            .find(|dataset| dataset.version.starts_with(version))
            .ok_or_else(|| Error::NotFound(format!("dataset `{name}@{version}`")))
    }

    /// Removes one dataset version's record and writes the audit event, in one transaction; the
    /// caller deletes its blobs. The version must be named exactly.
    pub fn delete_dataset(&self, name: &str, version: &str, actor: &str, at_ms: i64, reason: &str) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let removed =
            transaction.execute("DELETE FROM datasets WHERE name = ?1 AND version = ?2", params![name, version])?;
        if removed == 0 {
            return Err(Error::NotFound(format!("dataset `{name}@{version}`")));
        }
        insert_event(
            &mut transaction,
            &audit(
                at_ms,
                actor,
                name,
                format!("deleted dataset version {name}@{}{}", short(version), reason_suffix(reason)),
                serde_json::json!({"action": "delete_dataset", "version": version, "reason": reason}),
            ),
        )?;
        transaction.commit()?;
        Ok(())
    }

    // ---- runs -----------------------------------------------------------------------------

    /// Records a new run (status RUNNING) with its parameters.
    pub fn create_run(&self, run: &RunRecord) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO runs (run_id, name, status, started_ms, finished_ms, seed, dataset, git_commit, tool_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run.run_id,
                run.name,
                run.status.as_str(),
                run.started_ms,
                run.finished_ms,
                run.seed as i64,
                run.dataset,
                run.git_commit,
                run.tool_version
            ],
        )?;
        for (key, value) in &run.params {
            transaction.execute(
                "INSERT INTO run_params (run_id, key, value) VALUES (?1, ?2, ?3)",
                params![run.run_id, key, value],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Appends metric values to a run at `step`.
    pub fn log_metrics(&self, run_id: &str, metrics: &BTreeMap<String, f64>, step: i64, at_ms: i64) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for (key, value) in metrics {
            let stored = params![run_id, key, if value.is_nan() { 0.0 } else { *value }, step, at_ms, value.is_nan()];
            transaction.execute(
                "INSERT INTO run_metrics (run_id, key, value, step, at_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
                stored,
            )?;
            transaction.execute(
                &format!(
                    "INSERT INTO run_latest_metrics (run_id, key, value, step, at_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6) {UPSERT_LATEST_METRIC}"
                ),
                stored,
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Marks a run finished or failed.
    pub fn finish_run(&self, run_id: &str, status: RunStatus, at_ms: i64) -> Result<()> {
        let changed = self.lock().execute(
            "UPDATE runs SET status = ?2, finished_ms = ?3 WHERE run_id = ?1",
            params![run_id, status.as_str(), at_ms],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("run `{run_id}`")));
        }
        Ok(())
    }

    /// One run with its parameters and the latest value of each metric.
    pub fn run(&self, run_id: &str) -> Result<RunRecord> {
        let mut connection = self.lock();
        let mut run = connection
            .query_row(
                "SELECT run_id, name, status, started_ms, finished_ms, seed, dataset, git_commit, tool_version
                 FROM runs WHERE run_id = ?1",
                params![run_id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("run `{run_id}`")))?;
        run.params = connection.query_pairs("SELECT key, value FROM run_params WHERE run_id = ?1", params![run_id])?;
        let metrics = connection.query_map(
            "SELECT key, value, is_nan FROM run_metrics WHERE run_id = ?1 ORDER BY step, rowid",
            params![run_id],
            |row| Ok((row.get::<String>(0)?, if row.get(2)? { f64::NAN } else { row.get(1)? })),
        )?;
        run.metrics.extend(metrics);
        Ok(run)
    }

    /// All runs, newest first, with parameters and latest metrics.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let ids: Vec<String> = {
            self.lock().query_map("SELECT run_id FROM runs ORDER BY started_ms DESC, rowid DESC", params![], |row| {
                row.get(0)
            })?
        };
        ids.iter().map(|id| self.run(id)).collect()
    }

    // ---- models, aliases, traffic ---------------------------------------------------------

    /// Registers the next version of `record.model` (the `version` field is ignored and assigned).
    pub fn register_version(&self, record: &ModelVersionRecord, actor: &str) -> Result<ModelVersionRecord> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        // Never a number the model had before, even if that version was deleted.
        let next: u32 = transaction.query_row(
            "SELECT MAX(highest) + 1 FROM (
                SELECT COALESCE(MAX(version), 0) AS highest FROM model_versions WHERE model = ?1
                UNION ALL SELECT last_version FROM registered_models WHERE name = ?1) AS numbers",
            params![record.model],
            |row| row.get(0),
        )?;
        let stored = ModelVersionRecord { version: next, ..record.clone() };
        transaction.execute(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, last_version) VALUES (?1, ?2, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_updated_time = excluded.last_updated_time, last_version = excluded.last_version",
            params![stored.model, stored.created_ms, stored.version],
        )?;
        transaction.execute(
            "INSERT INTO model_versions (model, version, run_id, dataset, artifact_key, flavor, created_ms, metrics_json, last_updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)",
            params![
                stored.model,
                stored.version,
                stored.run_id,
                stored.dataset,
                stored.artifact_key,
                stored.flavor,
                stored.created_ms,
                serde_json::to_string(&stored.metrics)?
            ],
        )?;
        insert_event(
            &mut transaction,
            &audit(
                stored.created_ms,
                actor,
                &stored.model,
                format!("registered {} version {} from run {}", stored.model, stored.version, short(&stored.run_id)),
                serde_json::json!({"action": "register", "version": stored.version, "run_id": stored.run_id}),
            ),
        )?;
        transaction.commit()?;
        Ok(stored)
    }

    /// One version of a model.
    pub fn model_version(&self, model: &str, version: u32) -> Result<ModelVersionRecord> {
        self.model_versions(model)?
            .into_iter()
            .find(|record| record.version == version)
            .ok_or_else(|| Error::NotFound(format!("model `{model}` version {version}")))
    }

    /// All versions of a model, oldest first.
    pub fn model_versions(&self, model: &str) -> Result<Vec<ModelVersionRecord>> {
        let rows = self.lock().query_map(
            "SELECT model, version, run_id, dataset, artifact_key, flavor, created_ms, metrics_json
             FROM model_versions WHERE model = ?1 ORDER BY version",
            params![model],
            |row| {
                Ok((
                    ModelVersionRecord {
                        model: row.get(0)?,
                        version: row.get(1)?,
                        run_id: row.get(2)?,
                        dataset: row.get(3)?,
                        artifact_key: row.get(4)?,
                        flavor: row.get(5)?,
                        created_ms: row.get(6)?,
                        metrics: BTreeMap::new(),
                    },
                    row.get::<String>(7)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(mut record, metrics)| {
                record.metrics = serde_json::from_str(&metrics)?;
                Ok(record)
            })
            .collect()
    }

    /// The names of all registered models.
    pub fn model_names(&self) -> Result<Vec<String>> {
        self.lock().query_map("SELECT DISTINCT model FROM model_versions ORDER BY model", params![], |row| row.get(0))
    }

    /// The version `alias` points at, if set.
    pub fn alias(&self, model: &str, alias: &str) -> Result<Option<u32>> {
        crate::rollout::alias_in(&mut self.lock(), model, alias)
    }

    /// All aliases of a model, by name.
    pub fn aliases(&self, model: &str) -> Result<BTreeMap<String, u32>> {
        self.lock().query_pairs("SELECT alias, version FROM aliases WHERE model = ?1", params![model])
    }

    // ---- events ---------------------------------------------------------------------------

    /// Appends an event and returns its id.
    pub fn record_event(&self, event: &Event) -> Result<i64> {
        insert_event(&mut self.lock(), event)
    }

    /// The newest events matching `filter` with ids below `before` (all when `None`), at most
    /// `limit`, newest first: a page of the audit log read by its index, never the whole log.
    pub fn events_page(&self, filter: &EventFilter, before: Option<i64>, limit: usize) -> Result<Vec<Event>> {
        let text = filter.text.as_deref().map(|text| {
            let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        self.lock().query_map(
            "SELECT id, at_ms, kind, actor, subject, message, details_json FROM events
             WHERE (CAST(?1 AS TEXT) IS NULL OR kind = CAST(?1 AS TEXT))
               AND (CAST(?2 AS TEXT) IS NULL OR subject = CAST(?2 AS TEXT)
                    OR substr(subject, 1, length(CAST(?2 AS TEXT)) + 1) = CAST(?2 AS TEXT) || '/')
               AND (CAST(?3 AS TEXT) IS NULL OR actor = CAST(?3 AS TEXT))
               AND (CAST(?4 AS TEXT) IS NULL OR LOWER(message) LIKE CAST(?4 AS TEXT) ESCAPE '\\')
               AND id < ?5
             ORDER BY id DESC LIMIT ?6",
            params![
                filter.kind.map(EventKind::as_str),
                filter.subject.as_deref(),
                filter.actor.as_deref(),
                text.as_deref(),
                before.unwrap_or(i64::MAX),
                limit.min(10_000) as i64
            ],
            event_from_row,
        )
    }

    /// Events in id order, optionally only of one kind.
    pub fn events(&self, kind: Option<EventKind>) -> Result<Vec<Event>> {
        self.lock().query_map(
            "SELECT id, at_ms, kind, actor, subject, message, details_json FROM events
             WHERE CAST(?1 AS TEXT) IS NULL OR kind = ?1 ORDER BY id",
            params![kind.map(EventKind::as_str)],
            event_from_row,
        )
    }

    // ---- labels ---------------------------------------------------------------------------

    /// Stores labels without replacing a stored one that differs unless `correct` (each
    /// correction audited, naming its old and new value), all in one transaction.
    pub fn record_labels(
        &self,
        labels: &[(String, LabelRecord)],
        correct: bool,
        actor: &str,
        at_ms: i64,
    ) -> Result<LabelWrite> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let mut outcome = LabelWrite::default();
        for (request_id, label) in labels {
            let stored: Option<f64> = transaction
                .query_row("SELECT label FROM labels WHERE request_id = ?1", params![request_id], |row| row.get(0))
                .optional()?;
            match stored {
                None => {
                    transaction.execute(
                        "INSERT INTO labels (request_id, label, arrived_ms) VALUES (?1, ?2, ?3)",
                        params![request_id, label.label, label.arrived_ms],
                    )?;
                    outcome.stored += 1;
                }
                Some(value) if value.to_bits() == label.label.to_bits() => outcome.unchanged += 1,
                Some(value) if correct => {
                    transaction.execute(
                        "UPDATE labels SET label = ?2, arrived_ms = ?3 WHERE request_id = ?1",
                        params![request_id, label.label, label.arrived_ms],
                    )?;
                    insert_audit(
                        &mut transaction,
                        at_ms,
                        actor,
                        request_id,
                        format!("corrected the label of request {request_id}: {value} → {}", label.label),
                    )?;
                    outcome.corrected += 1;
                }
                Some(_) => {
                    outcome.conflicting += 1;
                    if outcome.conflicting_ids.len() < 10 {
                        outcome.conflicting_ids.push(request_id.clone());
                    }
                }
            }
        }
        transaction.commit()?;
        Ok(outcome)
    }

    /// Stores delayed ground-truth labels by request id (a later label replaces an earlier one;
    /// the simulated demo's feed). People's labels go through [`MetaStore::record_labels`].
    pub fn put_labels(&self, labels: &[(String, LabelRecord)]) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for (request_id, label) in labels {
            transaction.execute(
                "INSERT INTO labels (request_id, label, arrived_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (request_id) DO UPDATE SET label = excluded.label, arrived_ms = excluded.arrived_ms",
                params![request_id, label.label, label.arrived_ms],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// The labels known for the given request ids.
    pub fn labels_for<'a>(
        &self,
        request_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, LabelRecord>> {
        let mut connection = self.lock();
        let mut found = HashMap::new();
        for request_id in request_ids {
            let label = connection
                .query_row("SELECT label, arrived_ms FROM labels WHERE request_id = ?1", params![request_id], |row| {
                    Ok(LabelRecord { label: row.get(0)?, arrived_ms: row.get(1)? })
                })
                .optional()?;
            if let Some(label) = label {
                found.insert(request_id.to_string(), label);
            }
        }
        Ok(found)
    }

    /// The number of labels that arrived in `(after_ms, until_ms]`.
    pub fn labels_arrived_between(&self, after_ms: i64, until_ms: i64) -> Result<u64> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM labels WHERE arrived_ms > ?1 AND arrived_ms <= ?2",
            params![after_ms, until_ms],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// The number of labels stored.
    pub fn label_count(&self) -> Result<u64> {
        Ok(self.lock().query_row("SELECT COUNT(*) FROM labels", params![], |row| row.get::<i64>(0))? as u64)
    }

    // ---- small named state ----------------------------------------------------------------

    /// Stores a small JSON document under `key` (loop state, monitor state).
    pub fn put_state(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        self.lock().execute(
            "INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, serde_json::to_string(value)?],
        )?;
        Ok(())
    }

    /// Reads the document stored under `key`.
    pub fn state(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .lock()
            .query_row("SELECT value FROM state WHERE key = ?1", params![key], |row| row.get(0))
            .optional()?;
        text.map(|text| serde_json::from_str(&text).map_err(Error::from)).transpose()
    }
}

fn dataset_from_row(row: &Row) -> Result<DatasetVersion> {
    Ok(DatasetVersion {
        name: row.get(0)?,
        version: row.get(1)?,
        rows: row.get::<i64>(2)? as u64,
        blob_key: row.get(3)?,
        profile_key: row.get(4)?,
        schema: serde_json::from_str(&row.get::<String>(5)?)?,
        source: row.get(6)?,
        created_ms: row.get(7)?,
    })
}

fn run_from_row(row: &Row) -> Result<RunRecord> {
    let status: String = row.get(2)?;
    Ok(RunRecord {
        run_id: row.get(0)?,
        name: row.get(1)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        started_ms: row.get(3)?,
        finished_ms: row.get(4)?,
        seed: row.get::<i64>(5)? as u64,
        dataset: row.get(6)?,
        git_commit: row.get(7)?,
        tool_version: row.get(8)?,
        params: BTreeMap::new(),
        metrics: BTreeMap::new(),
    })
}

pub(crate) fn insert_event(connection: &mut Connection, event: &Event) -> Result<i64> {
    connection.query_row(
        "INSERT INTO events (at_ms, kind, actor, subject, message, details_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         RETURNING id",
        params![
            event.at_ms,
            event.kind.as_str(),
            event.actor,
            event.subject,
            event.message,
            serde_json::to_string(&event.details)?
        ],
        |row| row.get(0),
    )
}

/// Splits a `schema=NAME` parameter off a PostgreSQL URL (the driver does not know it), checking
/// that the name is a plain identifier.
fn split_schema_parameter(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_string()),
            None => kept.push(pair),
        }
    }
    if let Some(name) = &schema {
        let plain = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_')
            && !name.starts_with(|character: char| character.is_ascii_digit());
        if !plain {
            return Err(Error::InvalidValue(format!(
                "schema `{name}` in the store URL must be letters, digits and underscores, not starting with a digit"
            )));
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, schema))
}

/// Records an audit event with no structured details inside an open transaction.
pub(crate) fn insert_audit(
    connection: &mut Connection,
    at_ms: i64,
    actor: &str,
    subject: &str,
    message: String,
) -> Result<i64> {
    insert_event(connection, &audit(at_ms, actor, subject, message, serde_json::Value::Null))
}

/// An event from `SELECT id, at_ms, kind, actor, subject, message, details_json`.
fn event_from_row(row: &Row) -> Result<Event> {
    let kind: String = row.get(2)?;
    let details: String = row.get(6)?;
    Ok(Event {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Data),
        actor: row.get(3)?,
        subject: row.get(4)?,
        message: row.get(5)?,
        details: serde_json::from_str(&details)?,
    })
}

pub(crate) fn audit(at_ms: i64, actor: &str, subject: &str, message: String, details: serde_json::Value) -> Event {
    Event {
        id: 0,
        at_ms,
        kind: EventKind::Audit,
        actor: actor.to_string(),
        subject: subject.to_string(),
        message,
        details,
    }
}

pub(crate) fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Which events [`MetaStore::events_page`] returns; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Only this subject, or subjects under it (`fraud` matches `fraud/amount`).
    pub subject: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only events whose message contains this text (ignoring case).
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn version(model: &str) -> ModelVersionRecord {
        ModelVersionRecord {
            model: model.into(),
            version: 0,
            run_id: "run-1".into(),
            dataset: "transactions@abc".into(),
            artifact_key: "models/fraud/1.json".into(),
            flavor: "gbdt".into(),
            created_ms: 10,
            metrics: BTreeMap::from([("auc".to_string(), 0.9)]),
        }
    }

    fn versions_aliases_rollback_and_audit(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        assert_eq!(store.register_version(&version("fraud"), "test")?.version, 1);
        assert_eq!(store.register_version(&version("fraud"), "test")?.version, 2);
        assert_eq!(store.register_version(&version("other"), "test")?.version, 1);
        store.set_alias("fraud", "champion", 1, "test", 20, "")?;
        store.set_alias("fraud", "champion", 2, "test", 30, "promote")?;
        assert_eq!(store.alias("fraud", "champion")?, Some(2));
        assert_eq!(store.rollback_alias("fraud", "champion", "test", 40, "worse")?, 1);
        assert_eq!(store.alias("fraud", "champion")?, Some(1));
        assert!(matches!(store.set_alias("fraud", "champion", 9, "test", 50, ""), Err(Error::NotFound(_))));
        store.delete_alias("fraud", "champion", "test", 60, "")?;
        assert_eq!(store.alias("fraud", "champion")?, None);
        let audits = store.events(Some(EventKind::Audit))?;
        // Three registrations; each of the four champion changes moves the alias and the traffic.
        assert_eq!(audits.len(), 3 + (3 + 1) * 2, "{audits:#?}");
        assert!(audits.iter().any(|event| event.message.contains("rollback: worse")));
        assert_eq!(store.model_versions("fraud")?[0].metrics.get("auc"), Some(&0.9));
        Ok(())
    }

    fn run_record(run_id: &str) -> RunRecord {
        RunRecord {
            run_id: run_id.into(),
            name: "gbdt".into(),
            status: RunStatus::Running,
            started_ms: 1,
            finished_ms: None,
            seed: 7,
            dataset: "d@v".into(),
            git_commit: None,
            tool_version: "0.1.0".into(),
            params: BTreeMap::from([("depth".to_string(), "4".to_string())]),
            metrics: BTreeMap::new(),
        }
    }

    fn runs_labels_and_reopen_keep_data(location: &TestStore) -> Result<()> {
        {
            let store = location.open()?;
            store.create_run(&run_record("r1"))?;
            store.log_metrics("r1", &BTreeMap::from([("auc".to_string(), 0.8)]), 0, 2)?;
            store.log_metrics("r1", &BTreeMap::from([("auc".to_string(), 0.85)]), 1, 3)?;
            store.finish_run("r1", RunStatus::Finished, 4)?;
            store.put_labels(&[("q1".to_string(), LabelRecord { label: 1.0, arrived_ms: 5 })])?;
        }
        let store = location.open()?;
        assert_eq!(store.schema_version()?, SCHEMA_VERSION);
        assert_eq!(store.integrity_check()?, "ok");
        let run = store.run("r1")?;
        assert_eq!(run.status, RunStatus::Finished);
        assert_eq!(run.metrics.get("auc"), Some(&0.85));
        assert_eq!(run.params.get("depth").map(String::as_str), Some("4"));
        let labels = store.labels_for(["q1", "q2"])?;
        assert_eq!(labels.len(), 1);
        assert_eq!(labels["q1"].label, 1.0);
        Ok(())
    }

    fn datasets_events_and_state(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let dataset = DatasetVersion {
            name: "transactions".into(),
            version: "abcdef0123".into(),
            rows: 1_000,
            blob_key: "datasets/transactions/abcdef0123.parquet".into(),
            profile_key: "profiles/abcdef0123.json".into(),
            schema: causeway_types::Schema::default(),
            source: "data.csv".into(),
            created_ms: 5,
        };
        assert!(store.insert_dataset(&dataset)?);
        assert!(!store.insert_dataset(&dataset)?, "the same version twice keeps the first");
        assert!(store.insert_dataset(&DatasetVersion {
            version: "fedcba".into(),
            created_ms: 6,
            ..dataset.clone()
        })?);
        assert_eq!(store.dataset("transactions", "abc")?, dataset);
        assert_eq!(store.all_datasets()?.len(), 2);
        assert!(matches!(store.dataset("transactions", "zzz"), Err(Error::NotFound(_))));
        store.delete_dataset("transactions", "fedcba", "ada", 7, "a bad batch")?;
        assert_eq!(store.dataset_versions("transactions")?, vec![dataset.clone()]);
        assert!(matches!(store.delete_dataset("transactions", "fedcba", "ada", 8, ""), Err(Error::NotFound(_))));
        let deleted = store.events(Some(EventKind::Audit))?;
        assert_eq!(deleted.len(), 1);
        assert!(deleted[0].message.contains("deleted dataset version transactions@fedcba (a bad batch)"));
        store.insert_dataset(&DatasetVersion { version: "fedcba".into(), created_ms: 6, ..dataset.clone() })?;
        let first = store.record_event(&audit(1, "ada", "fraud", "one".into(), serde_json::json!({"n": 1})))?;
        let mut data = audit(2, "ada", "fraud", "two".into(), serde_json::Value::Null);
        data.kind = EventKind::Data;
        let second = store.record_event(&data)?;
        assert!(second > first, "event ids grow");
        assert_eq!(store.events(None)?.len(), 3);
        let audits = store.events(Some(EventKind::Audit))?;
        assert_eq!(audits.len(), 2);
        assert!(audits.iter().any(|event| event.details["n"].as_i64() == Some(1)));
        store.put_state("loop", &serde_json::json!({"paused": true}))?;
        store.put_state("loop", &serde_json::json!({"paused": false}))?;
        assert_eq!(store.state("loop")?, Some(serde_json::json!({"paused": false})));
        assert_eq!(store.state("missing")?, None);
        let first = store.record_labels(&[("q0".into(), LabelRecord { label: 0.0, arrived_ms: 1 })], false, "t", 1)?;
        assert_eq!(first.stored, 1);
        let again = store.record_labels(
            &[
                ("q0".into(), LabelRecord { label: 0.0, arrived_ms: 2 }),
                ("q0".into(), LabelRecord { label: 1.0, arrived_ms: 2 }),
            ],
            false,
            "t",
            2,
        )?;
        assert_eq!((again.unchanged, again.conflicting, again.conflicting_ids.clone()), (1, 1, vec!["q0".to_string()]));
        assert_eq!(store.labels_for(["q0"])?["q0"].label, 0.0, "a differing label never replaces one silently");
        let corrected =
            store.record_labels(&[("q0".into(), LabelRecord { label: 1.0, arrived_ms: 3 })], true, "ana", 3)?;
        assert_eq!(corrected.corrected, 1);
        assert_eq!(store.labels_for(["q0"])?["q0"].label, 1.0);
        assert!(store.events(Some(EventKind::Audit))?.iter().any(|event| event.actor == "ana" && event.message.contains("corrected the label of request q0: 0 → 1")));
        store.put_labels(&[("q1".into(), LabelRecord { label: 0.0, arrived_ms: 1 })])?;
        store.put_labels(&[("q1".into(), LabelRecord { label: 1.0, arrived_ms: 2 })])?;
        assert_eq!((store.label_count()?, store.labels_for(["q1"])?["q1"].label), (2, 1.0));
        Ok(())
    }

    /// Many writers through one store and a second store opened on the same database: nothing lost.
    fn concurrent_writers_and_a_second_process_lose_nothing(location: &TestStore) -> Result<()> {
        let store = std::sync::Arc::new(location.open()?);
        let second = location.open()?;
        assert_eq!(second.schema_version()?, SCHEMA_VERSION, "opening an up-to-date store migrates nothing");
        store.create_run(&run_record("r"))?;
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || -> Result<()> {
                    for value in 0..25 {
                        let metrics = BTreeMap::from([(format!("m{thread}"), f64::from(value))]);
                        store.log_metrics("r", &metrics, i64::from(value), i64::from(value))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for thread in threads {
            thread.join().map_err(|_| Error::Database("writer thread panicked".into()))??;
        }
        store.register_version(&version("fraud"), "one")?;
        second.register_version(&version("fraud"), "two")?;
        assert_eq!(store.model_versions("fraud")?.len(), 2);
        for thread in 0..8 {
            let history = second.metric_history("r", &format!("m{thread}"))?;
            let steps: Vec<i64> = history.iter().map(|point| point.step).collect();
            assert_eq!(steps, (0..25).collect::<Vec<i64>>(), "thread {thread}");
        }
        Ok(())
    }

    fn a_page_of_events_matches_every_filter_newest_first(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        for index in 0..30i64 {
            let subject = match index % 3 {
                0 => "fraud".to_string(),
                1 => "fraud/amount".to_string(),
                _ => "fraudulent".to_string(),
            };
            let actor = if index % 2 == 0 { "loop" } else { "ada" };
            let mut event = audit(index, actor, &subject, format!("Event {index}: 50% of_it"), serde_json::Value::Null);
            if index % 5 == 0 {
                event.kind = EventKind::Alert;
            }
            store.record_event(&event)?;
        }
        let everything = store.events_page(&EventFilter::default(), None, 100)?;
        assert_eq!(everything.len(), 30);
        assert!(everything.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
        let page = store.events_page(&EventFilter::default(), None, 7)?;
        let next = store.events_page(&EventFilter::default(), page.last().map(|event| event.id), 7)?;
        assert_eq!(next[0].id, page[6].id - 1, "the next page starts below the last id");
        let subject = EventFilter { subject: Some("fraud".into()), ..EventFilter::default() };
        let under = store.events_page(&subject, None, 100)?;
        assert_eq!(under.len(), 20, "`fraud` and `fraud/…`, not `fraudulent`");
        assert!(under.iter().all(|event| event.subject != "fraudulent"));
        let alerts_by_ada =
            EventFilter { kind: Some(EventKind::Alert), actor: Some("ada".into()), ..EventFilter::default() };
        assert_eq!(store.events_page(&alerts_by_ada, None, 100)?.len(), 3, "indices 5, 15, 25");
        let text = |text: &str| EventFilter { text: Some(text.into()), ..EventFilter::default() };
        assert_eq!(store.events_page(&text("event 1"), None, 100)?.len(), 11, "1 and 10–19, ignoring case");
        assert_eq!(store.events_page(&text("50%"), None, 100)?.len(), 30, "% is a character, not a wildcard");
        assert_eq!(store.events_page(&text("0%"), None, 100)?.len(), 30);
        assert_eq!(store.events_page(&text("f_it"), None, 100)?.len(), 30, "_ is a character too");
        assert_eq!(store.events_page(&text("fXit"), None, 100)?.len(), 0);
        Ok(())
    }

    on_both_backends!(
        a_page_of_events_matches_every_filter_newest_first,
        versions_aliases_rollback_and_audit,
        runs_labels_and_reopen_keep_data,
        datasets_events_and_state,
        concurrent_writers_and_a_second_process_lose_nothing,
    );
}
