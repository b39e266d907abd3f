//! Experiment and run tracking with MLflow's semantics, on the same tables as Causeway's own runs:
//! a run logged through the MLflow API is a Causeway run, and the other way round.

use std::collections::{BTreeMap, HashMap};

use crate::db::{OptionalRow, Row, ToValue, Value, params};
use causeway_types::{RunStatus, SeededRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// `active` or `deleted`, MLflow's life-cycle stages.
pub const ACTIVE: &str = "active";
/// The stage of deleted (restorable) experiments and runs.
pub const DELETED: &str = "deleted";

/// Which life-cycle stages a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ViewType {
    /// Only active ones (the default).
    #[default]
    ActiveOnly,
    /// Only deleted ones.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses MLflow's names (`ACTIVE_ONLY`, `DELETED_ONLY`, `ALL`, or the numbers 1, 2, 3).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ACTIVE_ONLY" | "1" => Some(Self::ActiveOnly),
            "DELETED_ONLY" | "2" => Some(Self::DeletedOnly),
            "ALL" | "3" => Some(Self::All),
            _ => None,
        }
    }

    fn stages(self) -> &'static [&'static str] {
        match self {
            Self::ActiveOnly => &[ACTIVE],
            Self::DeletedOnly => &[DELETED],
            Self::All => &[ACTIVE, DELETED],
        }
    }
}

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// The id (a decimal number as text; `0` is the default experiment).
    pub experiment_id: String,
    /// The unique name.
    pub name: String,
    /// Where its runs' artifacts go.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Creation time (epoch ms).
    pub creation_time: i64,
    /// Last change (epoch ms).
    pub last_update_time: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A metric of a batch that also belongs to an MLflow 3 logged model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelMetricLink {
    /// The metric's index in the batch.
    pub metric: usize,
    /// The logged model.
    pub model_id: String,
    /// The dataset it was measured on (may be empty).
    pub dataset_name: String,
    /// That dataset's digest (may be empty).
    pub dataset_digest: String,
}

/// One logged metric value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The value.
    pub value: f64,
    /// When it was logged (epoch ms).
    pub timestamp: i64,
    /// The step.
    pub step: i64,
}

/// A dataset a run read, as MLflow's `log_input` records it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatasetInput {
    /// The dataset's name.
    pub name: String,
    /// Its content digest.
    pub digest: String,
    /// What kind of source (`local`, `s3`, `causeway`, …).
    pub source_type: String,
    /// The source, as the client describes it (often JSON).
    pub source: String,
    /// Its schema (JSON), when given.
    pub schema: Option<String>,
    /// Its profile (JSON), when given.
    pub profile: Option<String>,
    /// Input tags such as `mlflow.data.context = training`.
    pub tags: Vec<(String, String)>,
}

/// A run as the tracking API sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedRun {
    /// The run id (32 hex digits).
    pub run_id: String,
    /// The run's name.
    pub run_name: String,
    /// The experiment.
    pub experiment_id: String,
    /// Who started it.
    pub user_id: String,
    /// RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
    pub status: RunStatus,
    /// Start (epoch ms).
    pub start_time: i64,
    /// End (epoch ms).
    pub end_time: Option<i64>,
    /// Where its artifacts go.
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// The latest value of each metric (largest step, then timestamp, then value).
    pub metrics: BTreeMap<String, MetricPoint>,
    /// Parameters (immutable once logged).
    pub params: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Datasets it read, in the order they were first logged.
    pub inputs: Vec<DatasetInput>,
    /// Logged models it output, with their steps.
    pub outputs: Vec<(String, i64)>,
    /// Logged models it used as inputs.
    pub model_inputs: Vec<String>,
}

/// A new run's settings.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// The experiment (must exist and be active).
    pub experiment_id: String,
    /// Who starts it.
    pub user_id: String,
    /// Its name (generated when empty).
    pub run_name: String,
    /// Start (epoch ms).
    pub start_time: i64,
    /// Initial tags.
    pub tags: Vec<(String, String)>,
}

/// A run's attributes from `SELECT run_id, name, experiment_id, user_id, status, started_ms,
/// finished_ms, artifact_uri, lifecycle_stage`, with nothing else loaded.
fn run_attributes(row: &Row) -> Result<TrackedRun> {
    let status: String = row.get(4)?;
    Ok(TrackedRun {
        run_id: row.get(0)?,
        run_name: row.get(1)?,
        experiment_id: row.get::<i64>(2)?.to_string(),
        user_id: row.get(3)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        start_time: row.get(5)?,
        end_time: row.get(6)?,
        artifact_uri: row.get(7)?,
        lifecycle_stage: row.get(8)?,
        metrics: BTreeMap::new(),
        params: BTreeMap::new(),
        tags: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        model_inputs: Vec::new(),
    })
}

/// Reads `value, at_ms, step, is_nan` starting at column `first`.
fn metric_point(row: &Row, first: usize) -> Result<MetricPoint> {
    let is_nan: bool = row.get(first + 3)?;
    Ok(MetricPoint {
        value: if is_nan { f64::NAN } else { row.get(first)? },
        timestamp: row.get(first + 1)?,
        step: row.get(first + 2)?,
    })
}

/// Which runs [`MetaStore::load_runs`] loads.
enum RunSelection<'a> {
    /// These runs (those that exist).
    Ids(&'a [String]),
    /// The runs matching a condition on `runs`' columns, with its values.
    Where(&'a str, &'a [&'a dyn ToValue]),
}

/// The dataset inputs of the runs `subquery` (its values `values`) selects, as (run id, input),
/// in the order each run logged them.
fn dataset_inputs(
    connection: &mut crate::db::Connection,
    subquery: &str,
    values: &[&dyn ToValue],
) -> Result<Vec<(String, DatasetInput)>> {
    let sql = format!(
        "SELECT run_id, name, digest, source_type, source, schema, profile, tags_json FROM run_inputs
         WHERE run_id IN ({subquery}) ORDER BY run_id, logged_at, rowid"
    );
    connection.query_map(&sql, values, |row| {
        let tags: String = row.get(7)?;
        Ok((
            row.get::<String>(0)?,
            DatasetInput {
                name: row.get(1)?,
                digest: row.get(2)?,
                source_type: row.get(3)?,
                source: row.get(4)?,
                schema: row.get(5)?,
                profile: row.get(6)?,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
            },
        ))
    })
}

/// Values as the parameter slice queries take.
fn as_parameters(values: &[Value]) -> Vec<&dyn ToValue> {
    values.iter().map(|value| value as &dyn ToValue).collect()
}

/// True when `point` is later than `kept` in the order MLflow picks a metric's latest value by:
/// step, then timestamp, then a number over NaN, then the larger value (as stored: NaN as 0).
fn is_later(point: &MetricPoint, kept: &MetricPoint) -> bool {
    let stored = |point: &MetricPoint| if point.value.is_nan() { 0.0 } else { point.value };
    (point.step, point.timestamp, !point.value.is_nan())
        .cmp(&(kept.step, kept.timestamp, !kept.value.is_nan()))
        .then_with(|| stored(point).partial_cmp(&stored(kept)).unwrap_or(std::cmp::Ordering::Equal))
        .is_gt()
}

fn parse_id(experiment_id: &str) -> Result<i64> {
    experiment_id
        .parse::<i64>()
        .map_err(|_| Error::InvalidValue(format!("experiment id `{experiment_id}` is not a number")))
}

fn new_run_id(seed_text: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut rng =
        SeededRng::derive(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()), seed_text);
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

impl MetaStore {
    // ---- experiments ----------------------------------------------------------------------

    /// The root new experiments' artifacts go under unless told otherwise: the server's proxied
    /// artifacts (`mlflow-artifacts:/<id>`).
    pub const PROXIED_ARTIFACT_ROOT: &str = "mlflow-artifacts:";

    /// Creates an experiment; its artifacts go to `artifact_location` or, without one, to
    /// `<default_root>/<id>` (see [`MetaStore::PROXIED_ARTIFACT_ROOT`]).
    pub fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        default_root: &str,
        tags: &[(String, String)],
        at_ms: i64,
    ) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::InvalidValue("experiment name must not be empty".into()));
        }
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let exists: Option<i64> = transaction
            .query_row("SELECT experiment_id FROM experiments WHERE name = ?1", params![name], |row| row.get(0))
            .optional()?;
        if exists.is_some() {
            return Err(Error::AlreadyExists(format!("experiment `{name}`")));
        }
        let id: i64 = transaction.query_row(
            "INSERT INTO experiments (name, artifact_location, creation_time, last_update_time) VALUES (?1, '', ?2, ?2)
             RETURNING experiment_id",
            params![name, at_ms],
            |row| row.get(0),
        )?;
        let location = artifact_location
            .filter(|location| !location.is_empty())
            .map_or_else(|| format!("{}/{id}", default_root.trim_end_matches('/')), str::to_string);
        transaction
            .execute("UPDATE experiments SET artifact_location = ?2 WHERE experiment_id = ?1", params![id, location])?;
        for (key, value) in tags {
            transaction.execute(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                params![id, key, value],
            )?;
        }
        transaction.commit()?;
        Ok(id.to_string())
    }

    /// One experiment by id.
    pub fn experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_id(experiment_id)?;
        self.experiments_where("experiment_id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("experiment with id `{experiment_id}`")))
    }

    /// One experiment by name.
    pub fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.experiments_where("name = ?1", &[&name])?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("experiment `{name}`")))
    }

    /// Experiments in a view, by id.
    pub fn experiments(&self, view: ViewType) -> Result<Vec<Experiment>> {
        let stages = view.stages();
        let placeholders = vec!["?"; stages.len()].join(", ");
        let values: Vec<&dyn ToValue> = stages.iter().map(|stage| stage as &dyn ToValue).collect();
        self.experiments_where(&format!("lifecycle_stage IN ({placeholders})"), &values)
    }

    fn experiments_where(&self, condition: &str, values: &[&dyn ToValue]) -> Result<Vec<Experiment>> {
        let mut connection = self.lock();
        let mut experiments: Vec<Experiment> = connection.query_map(
            &format!(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time
                 FROM experiments WHERE {condition} ORDER BY experiment_id"
            ),
            values,
            |row| {
                Ok(Experiment {
                    experiment_id: row.get::<i64>(0)?.to_string(),
                    name: row.get(1)?,
                    artifact_location: row.get(2)?,
                    lifecycle_stage: row.get(3)?,
                    creation_time: row.get(4)?,
                    last_update_time: row.get(5)?,
                    tags: BTreeMap::new(),
                })
            },
        )?;
        for experiment in &mut experiments {
            let id: i64 = experiment.experiment_id.parse().unwrap_or(-1);
            experiment.tags = connection
                .query_pairs("SELECT key, value FROM experiment_tags WHERE experiment_id = ?1", params![id])?;
        }
        Ok(experiments)
    }

    fn change_experiment(&self, experiment_id: &str, sql: &str, value: &dyn ToValue, at_ms: i64) -> Result<()> {
        let id = parse_id(experiment_id)?;
        let changed = self.lock().execute(sql, params![id, value, at_ms])?;
        if changed == 0 {
            return Err(Error::NotFound(format!("experiment with id `{experiment_id}`")));
        }
        Ok(())
    }

    /// Renames an experiment.
    pub fn rename_experiment(&self, experiment_id: &str, new_name: &str, at_ms: i64) -> Result<()> {
        if let Ok(existing) = self.experiment_by_name(new_name)
            && existing.experiment_id != experiment_id
        {
            return Err(Error::AlreadyExists(format!("experiment `{new_name}`")));
        }
        self.change_experiment(
            experiment_id,
            "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
            &new_name,
            at_ms,
        )
    }

    /// Marks an experiment (and its runs) deleted or active again.
    pub fn set_experiment_stage(&self, experiment_id: &str, stage: &str, at_ms: i64) -> Result<()> {
        if experiment_id == "0" && stage == DELETED {
            return Err(Error::InvalidValue("the default experiment (id 0) cannot be deleted".into()));
        }
        self.change_experiment(
            experiment_id,
            "UPDATE experiments SET lifecycle_stage = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
            &stage,
            at_ms,
        )?;
        self.lock().execute(
            "UPDATE runs SET lifecycle_stage = ?2 WHERE experiment_id = ?1",
            params![parse_id(experiment_id)?, stage],
        )?;
        Ok(())
    }

    /// Removes an experiment tag; a missing one is an error, as in MLflow.
    pub fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let experiment = self.experiment(experiment_id)?;
        let removed = self.lock().execute(
            "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
            params![parse_id(&experiment.experiment_id)?, key],
        )?;
        if removed == 0 {
            return Err(Error::NotFound(format!("tag `{key}` of experiment `{experiment_id}`")));
        }
        Ok(())
    }

    /// Sets an experiment tag.
    pub fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        let experiment = self.experiment(experiment_id)?;
        self.lock().execute(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            params![parse_id(&experiment.experiment_id)?, key, value],
        )?;
        Ok(())
    }

    // ---- runs -----------------------------------------------------------------------------

    /// Creates a run in an active experiment.
    pub fn create_tracked_run(&self, run: &NewRun) -> Result<TrackedRun> {
        let experiment = self.experiment(&run.experiment_id)?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(Error::InvalidValue(format!("experiment `{}` is deleted; restore it first", experiment.name)));
        }
        let run_id = new_run_id(&run.run_name);
        let run_name = if run.run_name.is_empty() { format!("run-{}", &run_id[..8]) } else { run.run_name.clone() };
        let artifact_uri = format!("{}/{run_id}/artifacts", experiment.artifact_location.trim_end_matches('/'));
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO runs (run_id, name, status, started_ms, finished_ms, seed, dataset, git_commit, tool_version,
                               experiment_id, user_id, lifecycle_stage, artifact_uri)
             VALUES (?1, ?2, 'RUNNING', ?3, NULL, 0, '', NULL, '', ?4, ?5, 'active', ?6)",
            params![run_id, run_name, run.start_time, parse_id(&experiment.experiment_id)?, run.user_id, artifact_uri],
        )?;
        // As MLflow's server does, the run's name is also its `mlflow.runName` tag.
        let named = run.tags.iter().any(|(key, _)| key == "mlflow.runName");
        let name_tag = (!named).then(|| ("mlflow.runName".to_string(), run_name.clone()));
        for (key, value) in run.tags.iter().chain(name_tag.iter()) {
            transaction.execute(
                "INSERT INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                params![run_id, key, value],
            )?;
        }
        transaction.commit()?;
        drop(connection);
        self.tracked_run(&run_id)
    }

    /// One run with its latest metrics, parameters and tags.
    pub fn tracked_run(&self, run_id: &str) -> Result<TrackedRun> {
        self.load_runs(RunSelection::Ids(&[run_id.to_string()]))?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("Run with id={run_id}")))
    }

    /// Every run of the given experiments in a view, newest first. Loads parameters, tags and
    /// latest metrics in one query each, not one per run.
    pub fn tracked_runs(&self, experiment_ids: &[String], view: ViewType) -> Result<Vec<TrackedRun>> {
        let ids: Vec<i64> = experiment_ids.iter().map(|id| parse_id(id)).collect::<Result<_>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let stages = view.stages();
        let condition = format!(
            "experiment_id IN ({}) AND lifecycle_stage IN ({})",
            vec!["?"; ids.len()].join(", "),
            vec!["?"; stages.len()].join(", ")
        );
        let mut values: Vec<&dyn ToValue> = ids.iter().map(|id| id as &dyn ToValue).collect();
        values.extend(stages.iter().map(|stage| stage as &dyn ToValue));
        self.load_runs(RunSelection::Where(&condition, &values))
    }

    /// One page of `runs/search`: the runs of the experiments that match `filter`, in `order_by`'s
    /// order (then newest first, then by id), from `offset`, at most `limit`; and whether more
    /// follow. Only the page is loaded whole. With no filter and the default order the page is
    /// cut in SQL; otherwise the runs are read with only the columns the filter and order name
    /// (never whole metric histories or unnamed parameters), judged by the one evaluator in
    /// `search`, and the page's runs loaded after.
    pub fn search_tracked_runs(
        &self,
        experiment_ids: &[String],
        view: ViewType,
        filter: &[crate::search::Clause],
        order_by: &[crate::search::OrderBy],
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<TrackedRun>, bool)> {
        let ids: Vec<i64> = experiment_ids.iter().map(|id| parse_id(id)).collect::<Result<_>>()?;
        if ids.is_empty() || limit == 0 {
            return Ok((Vec::new(), false));
        }
        let stages = view.stages();
        let postgres = self.lock().is_postgres();
        let compiled = crate::run_search::compile(filter, order_by, postgres);
        let mut condition = format!(
            "r.experiment_id IN ({}) AND r.lifecycle_stage IN ({})",
            vec!["?"; ids.len()].join(", "),
            vec!["?"; stages.len()].join(", ")
        );
        for translated in &compiled.conditions {
            condition.push_str(" AND ");
            condition.push_str(translated);
        }
        let mut values: Vec<Value> = ids.iter().map(ToValue::to_value).collect();
        values.extend(stages.iter().map(|stage| stage.to_value()));
        values.extend(compiled.condition_values.iter().cloned());
        let mut page: Vec<String> = match &compiled.order {
            // The database filters, orders and pages: only the page is read.
            Some(order) if compiled.whole_filter => {
                self.ordered_page(&condition, &values, &order.segments, limit.saturating_add(1), offset, postgres)?
            }
            // What did not translate is judged in memory, over the runs the translated clauses kept.
            _ => {
                let entities =
                    filter.iter().map(|clause| &clause.entity).chain(order_by.iter().map(|order| &order.entity));
                let skeletons = self.run_skeletons(&condition, &as_parameters(&values), entities)?;
                crate::search::search_runs(skeletons, filter, order_by)
                    .into_iter()
                    .skip(offset)
                    .take(limit + 1)
                    .map(|run| run.run_id)
                    .collect()
            }
        };
        let more = page.len() > limit;
        page.truncate(limit);
        if page.is_empty() {
            return Ok((Vec::new(), more));
        }
        let mut loaded: HashMap<String, TrackedRun> =
            self.load_runs(RunSelection::Ids(&page))?.into_iter().map(|run| (run.run_id.clone(), run)).collect();
        Ok((page.iter().filter_map(|id| loaded.remove(id)).collect(), more))
    }

    /// The ids of `wanted` runs from `offset` among those matching `condition`, in the order of
    /// `segments` (each segment's runs in its order, then the next segment's), then newest first,
    /// then by id. A segment that ends before the page begins is counted to know where the page
    /// begins in the next.
    fn ordered_page(
        &self,
        condition: &str,
        values: &[Value],
        segments: &[crate::run_search::OrderSegment],
        wanted: usize,
        offset: usize,
        postgres: bool,
    ) -> Result<Vec<String>> {
        let mut page: Vec<String> = Vec::with_capacity(wanted.min(1024));
        let mut skip = offset;
        for (position, segment) in segments.iter().enumerate() {
            let take = wanted - page.len();
            if take == 0 {
                break;
            }
            let mut conditions = condition.to_string();
            for extra in &segment.conditions {
                conditions.push_str(" AND ");
                conditions.push_str(extra);
            }
            let from = format!("FROM runs r {} WHERE {conditions}", segment.joins.join(" "));
            let mut bound = segment.join_values.clone();
            bound.extend(values.iter().cloned());
            bound.extend(segment.condition_values.iter().cloned());
            let mut terms = segment.terms.clone();
            terms.push("r.started_ms DESC".to_string());
            terms.push(format!("r.run_id{} ASC", crate::run_search::bytewise(postgres)));
            let sql = format!("SELECT r.run_id {from} ORDER BY {} LIMIT ? OFFSET ?", terms.join(", "));
            let mut paged = bound.clone();
            paged.push((take as i64).to_value());
            paged.push((skip as i64).to_value());
            let found: Vec<String> = self.lock().query_map(&sql, &as_parameters(&paged), |row| row.get(0))?;
            let got = found.len();
            page.extend(found);
            if got == take || position + 1 == segments.len() {
                continue;
            }
            // The segment ended inside the page (the next begins at its start) or before it.
            skip = if got > 0 || skip == 0 {
                0
            } else {
                let count: i64 =
                    self.lock()
                        .query_row(&format!("SELECT COUNT(*) {from}"), &as_parameters(&bound), |row| row.get(0))?;
                skip.saturating_sub(usize::try_from(count).unwrap_or(usize::MAX))
            };
        }
        Ok(page)
    }

    /// The runs matching `condition` with their attributes and only the parameters, tags and
    /// latest metrics `entities` name: enough to filter and order them.
    fn run_skeletons<'a>(
        &self,
        condition: &str,
        values: &[&dyn ToValue],
        entities: impl Iterator<Item = &'a crate::search::Entity>,
    ) -> Result<Vec<TrackedRun>> {
        use crate::search::Entity;
        let (mut params, mut tags, mut metrics, mut datasets) = (Vec::new(), Vec::new(), Vec::new(), false);
        for entity in entities {
            match entity {
                Entity::Param(key) => params.push(key.clone()),
                Entity::Tag(key) => tags.push(key.clone()),
                Entity::Metric(key) => metrics.push(key.clone()),
                Entity::Dataset(_) => datasets = true,
                Entity::Attribute(_) => {}
            }
        }
        for keys in [&mut params, &mut tags, &mut metrics] {
            keys.sort();
            keys.dedup();
        }
        let mut connection = self.lock();
        let mut runs = connection.query_map(
            &format!(
                "SELECT r.run_id, r.name, r.experiment_id, r.user_id, r.status, r.started_ms, r.finished_ms, r.artifact_uri,
                        r.lifecycle_stage
                 FROM runs r WHERE {condition}"
            ),
            values,
            run_attributes,
        )?;
        let index: HashMap<String, usize> =
            runs.iter().enumerate().map(|(position, run)| (run.run_id.clone(), position)).collect();
        let subquery = format!("SELECT r.run_id FROM runs r WHERE {condition}");
        fn with_keys<'v>(values: &[&'v dyn ToValue], keys: &'v [String]) -> Vec<&'v dyn ToValue> {
            let mut all = values.to_vec();
            all.extend(keys.iter().map(|key| key as &dyn ToValue));
            all
        }
        let key_list = |keys: &[String]| vec!["?"; keys.len()].join(", ");
        let key_values = |row: &Row| Ok((row.get::<String>(0)?, row.get::<String>(1)?, row.get::<String>(2)?));
        for (table, keys, is_tag) in [("run_params", &params, false), ("run_tags", &tags, true)] {
            if keys.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT run_id, key, value FROM {table} WHERE run_id IN ({subquery}) AND key IN ({})",
                key_list(keys)
            );
            for (run_id, key, value) in connection.query_map(&sql, &with_keys(values, keys), key_values)? {
                if let Some(run) = index.get(&run_id).map(|position| &mut runs[*position]) {
                    if is_tag { &mut run.tags } else { &mut run.params }.insert(key, value);
                }
            }
        }
        if !metrics.is_empty() {
            let sql = format!(
                "SELECT run_id, key, value, at_ms, step, is_nan FROM run_latest_metrics
                 WHERE run_id IN ({subquery}) AND key IN ({})",
                key_list(&metrics)
            );
            let latest = connection.query_map(&sql, &with_keys(values, &metrics), |row| {
                Ok((row.get::<String>(0)?, row.get::<String>(1)?, metric_point(row, 2)?))
            })?;
            for (run_id, key, point) in latest {
                if let Some(position) = index.get(&run_id) {
                    runs[*position].metrics.insert(key, point);
                }
            }
        }
        if datasets {
            for (run_id, input) in dataset_inputs(&mut connection, &subquery, values)? {
                if let Some(position) = index.get(&run_id) {
                    runs[*position].inputs.push(input);
                }
            }
        }
        Ok(runs)
    }

    /// The runs `selection` picks, whole: attributes, parameters, tags, latest metrics, dataset
    /// inputs and logged models; newest first.
    fn load_runs(&self, selection: RunSelection<'_>) -> Result<Vec<TrackedRun>> {
        let (condition, subquery, values): (String, String, Vec<&dyn ToValue>) = match selection {
            // By id, each table is read by its own key: no join back to `runs`.
            RunSelection::Ids([]) => return Ok(Vec::new()),
            RunSelection::Ids(ids) => {
                let placeholders = vec!["?"; ids.len()].join(", ");
                let values = ids.iter().map(|id| id as &dyn ToValue).collect();
                (format!("run_id IN ({placeholders})"), placeholders, values)
            }
            RunSelection::Where(condition, values) => {
                (condition.to_string(), format!("SELECT run_id FROM runs WHERE {condition}"), values.to_vec())
            }
        };
        let (condition, values) = (condition.as_str(), values.as_slice());
        let mut connection = self.lock();
        let mut runs: Vec<TrackedRun> = connection.query_map(
            &format!(
                "SELECT run_id, name, experiment_id, user_id, status, started_ms, finished_ms, artifact_uri, lifecycle_stage
                 FROM runs WHERE {condition} ORDER BY started_ms DESC, run_id"
            ),
            values,
            run_attributes,
        )?;
        if runs.is_empty() {
            return Ok(runs);
        }
        let index: HashMap<String, usize> =
            runs.iter().enumerate().map(|(position, run)| (run.run_id.clone(), position)).collect();
        let key_values = |row: &Row| Ok((row.get::<String>(0)?, row.get::<String>(1)?, row.get::<String>(2)?));
        let params_sql = format!("SELECT run_id, key, value FROM run_params WHERE run_id IN ({subquery})");
        for (run_id, key, value) in connection.query_map(&params_sql, values, key_values)? {
            if let Some(position) = index.get(&run_id) {
                runs[*position].params.insert(key, value);
            }
        }
        let tags_sql = format!("SELECT run_id, key, value FROM run_tags WHERE run_id IN ({subquery})");
        for (run_id, key, value) in connection.query_map(&tags_sql, values, key_values)? {
            if let Some(position) = index.get(&run_id) {
                runs[*position].tags.insert(key, value);
            }
        }
        // Only each metric's latest value (largest step, then timestamp, a number over NaN, then the
        // largest value, as MLflow picks it), kept by the writers: runs may hold long histories.
        let metrics_sql = format!(
            "SELECT run_id, key, value, at_ms, step, is_nan FROM run_latest_metrics WHERE run_id IN ({subquery})"
        );
        let metrics = connection.query_map(&metrics_sql, values, |row| {
            Ok((row.get::<String>(0)?, row.get::<String>(1)?, metric_point(row, 2)?))
        })?;
        for (run_id, key, point) in metrics {
            if let Some(position) = index.get(&run_id) {
                runs[*position].metrics.insert(key, point);
            }
        }
        for (run_id, input) in dataset_inputs(&mut connection, &subquery, values)? {
            if let Some(position) = index.get(&run_id) {
                runs[*position].inputs.push(input);
            }
        }
        let outputs_sql =
            format!("SELECT run_id, model_id, step FROM run_outputs WHERE run_id IN ({subquery}) ORDER BY rowid");
        let outputs = connection.query_map(&outputs_sql, values, |row| {
            Ok((row.get::<String>(0)?, row.get::<String>(1)?, row.get::<i64>(2)?))
        })?;
        for (run_id, model_id, step) in outputs {
            if let Some(position) = index.get(&run_id) {
                runs[*position].outputs.push((model_id, step));
            }
        }
        let model_inputs_sql =
            format!("SELECT run_id, model_id FROM run_model_inputs WHERE run_id IN ({subquery}) ORDER BY model_id");
        let model_inputs = connection
            .query_map(&model_inputs_sql, values, |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)))?;
        for (run_id, model_id) in model_inputs {
            if let Some(position) = index.get(&run_id) {
                runs[*position].model_inputs.push(model_id);
            }
        }
        Ok(runs)
    }

    /// Records datasets a run read; logging the same (name, digest) again replaces its tags.
    pub fn log_dataset_inputs(&self, run_id: &str, inputs: &[DatasetInput], at_ms: i64) -> Result<()> {
        self.require_active_run(run_id)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for input in inputs {
            transaction.execute(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, tags_json, logged_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (run_id, name, digest) DO UPDATE SET tags_json = excluded.tags_json",
                params![
                    run_id,
                    input.name,
                    input.digest,
                    input.source_type,
                    input.source,
                    input.schema,
                    input.profile,
                    serde_json::to_string(&input.tags)?,
                    at_ms
                ],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn require_run(&self, run_id: &str) -> Result<(String, String)> {
        self.lock()
            .query_row("SELECT lifecycle_stage, status FROM runs WHERE run_id = ?1", params![run_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("Run with id={run_id}")))
    }

    fn require_active_run(&self, run_id: &str) -> Result<()> {
        let (stage, _) = self.require_run(run_id)?;
        if stage != ACTIVE {
            return Err(Error::InvalidValue(format!(
                "The run {run_id} must be in the 'active' state. Current state is deleted: restore it first"
            )));
        }
        Ok(())
    }

    /// Updates an active run's status, end time and name (a deleted run must be restored first,
    /// as in MLflow).
    pub fn update_tracked_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<TrackedRun> {
        self.require_active_run(run_id)?;
        {
            let mut connection = self.lock();
            if let Some(status) = status {
                connection
                    .execute("UPDATE runs SET status = ?2 WHERE run_id = ?1", params![run_id, status.as_str()])?;
            }
            if let Some(end_time) = end_time {
                connection.execute("UPDATE runs SET finished_ms = ?2 WHERE run_id = ?1", params![run_id, end_time])?;
            }
            if let Some(name) = run_name.filter(|name| !name.is_empty()) {
                connection.execute("UPDATE runs SET name = ?2 WHERE run_id = ?1", params![run_id, name])?;
            }
        }
        self.tracked_run(run_id)
    }

    /// Marks a run deleted or active again.
    pub fn set_run_stage(&self, run_id: &str, stage: &str) -> Result<()> {
        self.require_run(run_id)?;
        self.lock().execute("UPDATE runs SET lifecycle_stage = ?2 WHERE run_id = ?1", params![run_id, stage])?;
        Ok(())
    }

    /// Logs metrics, parameters and tags to an active run in one transaction. A parameter that
    /// exists with another value is rejected and nothing is written; a metric point logged twice
    /// (same key, value, step and time) is kept once, as MLflow does.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[(String, MetricPoint)],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        self.log_batch_linked(run_id, metrics, params, tags, &[])
    }

    /// [`MetaStore::log_batch`], where some metrics also belong to MLflow 3 logged models.
    pub fn log_batch_linked(
        &self,
        run_id: &str,
        metrics: &[(String, MetricPoint)],
        params: &[(String, String)],
        tags: &[(String, String)],
        links: &[ModelMetricLink],
    ) -> Result<()> {
        self.require_active_run(run_id)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        {
            // Parameters are immutable: compare with what the run has (and what this batch already set).
            let mut known: HashMap<String, String> =
                transaction.query_pairs("SELECT key, value FROM run_params WHERE run_id = ?1", params![run_id])?;
            let mut param_rows: Vec<Vec<Value>> = Vec::new();
            for (key, value) in params {
                match known.get(key) {
                    Some(old) if old != value => {
                        return Err(Error::InvalidValue(format!(
                            "changing param values is not allowed: param `{key}` of run `{run_id}` was `{old}`, new value `{value}`"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        known.insert(key.clone(), value.clone());
                        param_rows.push(vec![run_id.to_value(), key.to_value(), value.to_value()]);
                    }
                }
            }
            transaction.insert_rows(
                "INSERT INTO run_params (run_id, key, value)",
                "ON CONFLICT DO NOTHING",
                &param_rows,
            )?;
            // SQLite stores NaN as NULL: keep a flag instead.
            let metric_row = |key: &String, point: &MetricPoint| -> Vec<Value> {
                let value = if point.value.is_nan() { 0.0 } else { point.value };
                [&run_id as &dyn ToValue, key, &value, &point.step, &point.timestamp, &point.value.is_nan()]
                    .iter()
                    .map(|column| column.to_value())
                    .collect()
            };
            let metric_rows: Vec<Vec<Value>> = metrics.iter().map(|(key, point)| metric_row(key, point)).collect();
            transaction.insert_rows(
                "INSERT INTO run_metrics (run_id, key, value, step, at_ms, is_nan)",
                "ON CONFLICT DO NOTHING",
                &metric_rows,
            )?;
            // One row per key (an upsert must not touch a row twice): the batch's latest point.
            let mut latest: BTreeMap<&String, &MetricPoint> = BTreeMap::new();
            for (key, point) in metrics {
                match latest.get(key) {
                    Some(kept) if !is_later(point, kept) => {}
                    _ => {
                        latest.insert(key, point);
                    }
                }
            }
            let latest_rows: Vec<Vec<Value>> = latest.iter().map(|(key, point)| metric_row(key, point)).collect();
            transaction.insert_rows(
                "INSERT INTO run_latest_metrics (run_id, key, value, step, at_ms, is_nan)",
                crate::meta::UPSERT_LATEST_METRIC,
                &latest_rows,
            )?;
            for link in links {
                let Some((key, point)) = metrics.get(link.metric) else { continue };
                let value = if point.value.is_nan() { 0.0 } else { point.value };
                transaction.execute(
                    "INSERT INTO logged_model_metrics (model_id, run_id, key, value, step, at_ms, is_nan, dataset_name, dataset_digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                    params![
                        link.model_id,
                        run_id,
                        key,
                        value,
                        point.step,
                        point.timestamp,
                        point.value.is_nan(),
                        link.dataset_name,
                        link.dataset_digest
                    ],
                )?;
            }
            // A batch may set one tag twice; the last value wins, and one upsert must not touch a row twice.
            let latest_tags: BTreeMap<&String, &String> = tags.iter().map(|(key, value)| (key, value)).collect();
            let tag_rows: Vec<Vec<Value>> = latest_tags
                .iter()
                .map(|(key, value)| vec![run_id.to_value(), key.to_value(), value.to_value()])
                .collect();
            transaction.insert_rows(
                "INSERT INTO run_tags (run_id, key, value)",
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                &tag_rows,
            )?;
            for (key, value) in latest_tags {
                if key == "mlflow.runName" && !value.is_empty() {
                    transaction.execute("UPDATE runs SET name = ?2 WHERE run_id = ?1", params![run_id, value])?;
                }
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Records MLflow 3 logged models as inputs of a run.
    pub fn log_model_inputs(&self, run_id: &str, model_ids: &[String]) -> Result<()> {
        self.require_active_run(run_id)?;
        for model_id in model_ids {
            self.logged_model(model_id)?;
        }
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        for model_id in model_ids {
            transaction.execute(
                "INSERT INTO run_model_inputs (run_id, model_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![run_id, model_id],
            )?;
        }
        transaction.commit()
    }

    /// The logged models a run used as inputs.
    pub fn run_model_inputs(&self, run_id: &str) -> Result<Vec<String>> {
        self.lock().query_map(
            "SELECT model_id FROM run_model_inputs WHERE run_id = ?1 ORDER BY model_id",
            params![run_id],
            |row| row.get(0),
        )
    }

    /// Removes a run tag.
    pub fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.require_active_run(run_id)?;
        let removed =
            self.lock().execute("DELETE FROM run_tags WHERE run_id = ?1 AND key = ?2", params![run_id, key])?;
        if removed == 0 {
            return Err(Error::NotFound(format!("No tag with name: {key} in run with id {run_id}")));
        }
        Ok(())
    }

    /// Every value logged for one metric of a run, in (step, timestamp) order.
    pub fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<MetricPoint>> {
        self.require_run(run_id)?;
        self.lock().query_map(
            "SELECT value, at_ms, step, is_nan FROM run_metrics WHERE run_id = ?1 AND key = ?2
             ORDER BY step, at_ms, rowid",
            params![run_id, key],
            |row| metric_point(row, 0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn experiments_have_a_default_unique_names_and_a_life_cycle(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        assert_eq!(store.experiment("0")?.name, "Default");
        let id = store.create_experiment(
            "fraud",
            None,
            MetaStore::PROXIED_ARTIFACT_ROOT,
            &[("team".into(), "risk".into())],
            5,
        )?;
        assert_eq!(id, "1");
        let experiment = store.experiment_by_name("fraud")?;
        assert_eq!(experiment.artifact_location, "mlflow-artifacts:/1");
        assert_eq!(experiment.tags["team"], "risk");
        assert!(matches!(
            store.create_experiment("fraud", None, MetaStore::PROXIED_ARTIFACT_ROOT, &[], 6),
            Err(Error::AlreadyExists(_))
        ));
        store.rename_experiment(&id, "fraud-v2", 7)?;
        assert!(matches!(store.rename_experiment(&id, "Default", 7), Err(Error::AlreadyExists(_))));
        store.set_experiment_stage(&id, DELETED, 8)?;
        assert_eq!(store.experiments(ViewType::ActiveOnly)?.len(), 1);
        assert_eq!(store.experiments(ViewType::DeletedOnly)?[0].name, "fraud-v2");
        store.set_experiment_stage(&id, ACTIVE, 9)?;
        assert_eq!(store.experiments(ViewType::All)?.len(), 2);
        assert!(store.set_experiment_stage("0", DELETED, 10).is_err());
        assert!(matches!(store.experiment("42"), Err(Error::NotFound(_))));
        Ok(())
    }

    fn runs_log_batches_keep_params_immutable_and_report_latest_metrics(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let run = store.create_tracked_run(&NewRun {
            experiment_id: "0".into(),
            user_id: "ada".into(),
            run_name: "first".into(),
            start_time: 100,
            tags: vec![("source".into(), "test".into())],
        })?;
        assert_eq!(run.status, RunStatus::Running);
        assert!(run.artifact_uri.starts_with("mlflow-artifacts:/0/"), "{}", run.artifact_uri);
        let point = |value, timestamp, step| MetricPoint { value, timestamp, step };
        store.log_batch(
            &run.run_id,
            &[("loss".into(), point(0.9, 1, 0)), ("loss".into(), point(0.5, 2, 1)), ("loss".into(), point(0.7, 3, 1))],
            &[("lr".into(), "0.1".into())],
            &[("mlflow.runName".into(), "renamed".into())],
        )?;
        store.log_batch(&run.run_id, &[], &[("lr".into(), "0.1".into())], &[])?;
        let error =
            store.log_batch(&run.run_id, &[("loss".into(), point(0.1, 9, 9))], &[("lr".into(), "0.2".into())], &[]);
        assert!(matches!(error, Err(Error::InvalidValue(_))));
        let loaded = store.tracked_run(&run.run_id)?;
        assert_eq!(loaded.run_name, "renamed");
        assert_eq!(loaded.metrics["loss"], point(0.7, 3, 1), "latest is the largest step, then timestamp");
        assert_eq!(store.metric_history(&run.run_id, "loss")?.len(), 3, "the rejected batch wrote nothing");
        let finished = store.update_tracked_run(&run.run_id, Some(RunStatus::Finished), Some(200), None)?;
        assert_eq!((finished.status, finished.end_time), (RunStatus::Finished, Some(200)));
        store.set_run_stage(&run.run_id, DELETED)?;
        assert!(store.tracked_runs(&["0".into()], ViewType::ActiveOnly)?.is_empty());
        assert!(matches!(store.log_batch(&run.run_id, &[], &[], &[]), Err(Error::InvalidValue(_))));
        assert_eq!(store.tracked_runs(&["0".into()], ViewType::All)?.len(), 1);
        // A tracked run is a Causeway run too.
        assert_eq!(store.run(&run.run_id)?.params["lr"], "0.1");
        Ok(())
    }

    #[test]
    fn a_store_written_by_schema_version_1_is_upgraded_in_place() -> Result<()> {
        let directory = tempfile::tempdir()
            .map_err(|source| crate::blob::io_error("tempdir", std::path::Path::new("."), source))?;
        let path = directory.path().join("old.db");
        {
            let connection = rusqlite::Connection::open(&path)?;
            connection.execute_batch(crate::meta::MIGRATION_1)?;
            connection.pragma_update(None, "user_version", 1)?;
            connection.execute(
                "INSERT INTO runs (run_id, name, status, started_ms, seed, dataset, tool_version) VALUES ('old', 'gbdt', 'FINISHED', 1, 7, 'd@v', '0.0.1')",
                [],
            )?;
        }
        let store = MetaStore::open(&path)?;
        assert_eq!(store.schema_version()?, crate::SCHEMA_VERSION);
        let old = store.tracked_run("old")?;
        assert_eq!((old.experiment_id.as_str(), old.lifecycle_stage.as_str()), ("0", ACTIVE));
        assert_eq!(store.run("old")?.seed, 7);
        Ok(())
    }

    fn large_batches_span_several_inserts_and_keep_mlflow_semantics(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let run = store.create_tracked_run(&NewRun { experiment_id: "0".into(), ..NewRun::default() })?;
        let metrics: Vec<(String, MetricPoint)> = (0..1_000)
            .map(|step| {
                let value = if step == 7 {
                    f64::NAN
                } else if step == 8 {
                    f64::INFINITY
                } else {
                    step as f64
                };
                ("loss".to_string(), MetricPoint { value, timestamp: 1_000 + step, step })
            })
            .collect();
        let tags = vec![("stage".to_string(), "first".to_string()), ("stage".to_string(), "last".to_string())];
        let params: Vec<(String, String)> = (0..100).map(|index| (format!("p{index}"), index.to_string())).collect();
        store.log_batch(&run.run_id, &metrics, &params, &tags)?;
        let history = store.metric_history(&run.run_id, "loss")?;
        assert_eq!(history.len(), 1_000);
        assert!(history[7].value.is_nan() && history[8].value == f64::INFINITY && history[999].value == 999.0);
        let loaded = store.tracked_run(&run.run_id)?;
        assert_eq!((loaded.params.len(), loaded.tags["stage"].as_str()), (100, "last"));
        // The same key twice in one batch with two values is a change, and nothing is written.
        let conflicting = vec![("q".to_string(), "1".to_string()), ("q".to_string(), "2".to_string())];
        let extra = [("loss".to_string(), MetricPoint { value: 1.0, timestamp: 1, step: 5_000 })];
        assert!(matches!(store.log_batch(&run.run_id, &extra, &conflicting, &[]), Err(Error::InvalidValue(_))));
        assert_eq!(store.metric_history(&run.run_id, "loss")?.len(), 1_000);
        assert!(!store.tracked_run(&run.run_id)?.params.contains_key("q"));
        Ok(())
    }

    /// `search_tracked_runs` (a page cut in SQL, or skeletons judged then hydrated) must answer
    /// what the in-memory evaluator answers over every whole run, page by page: seeded runs with
    /// missing, NaN and equal values, equal start times, seeded filters and orders.
    fn paged_search_equals_the_evaluator_over_every_run(location: &TestStore) -> Result<()> {
        use crate::search::{parse_filter, parse_order_by, search_runs};
        let store = location.open()?;
        let mut rng = SeededRng::new(17);
        let experiment = store.create_experiment("oracle", None, MetaStore::PROXIED_ARTIFACT_ROOT, &[], 1)?;
        for index in 0..90i64 {
            let run = store.create_tracked_run(&NewRun {
                experiment_id: experiment.clone(),
                user_id: if index % 3 == 0 { "ada" } else { "bob" }.into(),
                run_name: format!("run-{}", index % 40),
                start_time: 1_000 + (index / 3) * 10,
                tags: vec![],
            })?;
            let mut metrics = Vec::new();
            if rng.uniform() < 0.85 {
                let value = if rng.uniform() < 0.05 { f64::NAN } else { (rng.uniform() * 10.0).round() / 10.0 };
                metrics.push(("rmse".to_string(), MetricPoint { value, timestamp: 5, step: 0 }));
            }
            metrics.push(("auc".to_string(), MetricPoint { value: 0.5, timestamp: 5, step: 0 }));
            metrics.push(("auc".to_string(), MetricPoint { value: rng.uniform(), timestamp: 6, step: 1 }));
            let mut params = vec![("model".to_string(), if index % 2 == 0 { "gbdt" } else { "logistic" }.to_string())];
            if index % 5 != 0 {
                params.push(("depth".to_string(), (index % 7).to_string()));
            }
            // Values with LIKE's and GLOB's wildcards, brackets and letters whose case folds outside ASCII.
            let notes = ["a*b", "a?b", "[x]", "É", "é", "a%b", "a_b", "axb", "AXB", "10", "9"];
            if index % 6 != 1 {
                params.push(("note".to_string(), notes[index as usize % notes.len()].to_string()));
            }
            let tags = if index % 4 == 0 { vec![("team".to_string(), "risk".to_string())] } else { vec![] };
            store.log_batch(&run.run_id, &metrics, &params, &tags)?;
            if index % 4 == 1 {
                store.update_tracked_run(&run.run_id, Some(RunStatus::Finished), Some(2_000 + index), None)?;
            }
            if index % 3 != 2 {
                let context = if index % 2 == 0 { "training" } else { "eval" };
                let input = DatasetInput {
                    name: format!("table-{}", index % 4),
                    digest: format!("d{}", index % 5),
                    source_type: "local".into(),
                    source: "{}".into(),
                    tags: vec![("mlflow.data.context".to_string(), context.to_string())],
                    ..DatasetInput::default()
                };
                store.log_dataset_inputs(&run.run_id, &[input], 1)?;
            }
            if index % 9 == 0 {
                store.set_run_stage(&run.run_id, DELETED)?;
            }
        }
        let some_ids: Vec<String> = store
            .tracked_runs(std::slice::from_ref(&experiment), ViewType::All)?
            .iter()
            .step_by(4)
            .map(|run| format!("'{}'", run.run_id))
            .collect();
        let in_ids = format!("attributes.run_id IN ({})", some_ids.join(", "));
        let not_in_ids = format!("run_id NOT IN ({}) and params.depth IS NOT NULL", some_ids[..3].join(","));
        let filters = [
            in_ids.as_str(),
            not_in_ids.as_str(),
            "params.depth IS NULL",
            "tags.team IS NOT NULL and metrics.rmse > 0.2",
            "tags.team IS NULL",
            "datasets.name = 'table-1'",
            "datasets.digest IN ('d1', 'd3') and params.model = 'gbdt'",
            "datasets.context != 'training'",
            "dataset.name NOT IN ('table-0')",
            "datasets.context ILIKE 'TRAIN%'",
            "",
            "metrics.rmse < 0.5",
            "params.model = 'gbdt' and metrics.rmse >= 0.3",
            "params.depth != '3'",
            "tags.team = 'risk'",
            "attributes.user_id = 'ada' and metrics.auc > 0.2",
            "params.model LIKE 'g%'",
            "attributes.run_name ILIKE 'RUN-1%'",
            "params.note LIKE 'a_b'",
            "params.note LIKE '%*%'",
            "params.note LIKE '[x]'",
            "params.note = 'É'",
            "params.note ILIKE 'é'",
            "params.note < 'a'",
            "params.note >= '9'",
            "params.note > 5",
            "tags.team != 'risk'",
            "metrics.rmse != 0.5 and attributes.start_time > 1100",
            "attributes.end_time >= 2010",
            "attributes.status = 'FINISHED' and attributes.run_name LIKE 'run-1%'",
            "attributes.start_time <= '1050'",
        ];
        let orders: [&[&str]; 11] = [
            &[],
            &["metrics.rmse"],
            &["metrics.rmse DESC"],
            &["params.depth", "attributes.start_time"],
            &["attributes.run_name DESC"],
            &["attributes.start_time"],
            &["params.note DESC", "metrics.auc"],
            &["tags.team", "attributes.end_time DESC"],
            &["attributes.experiment_id", "attributes.user_id"],
            &["attributes.status", "metrics.rmse DESC", "params.depth DESC"],
            &["metrics.rmse DESC", "params.note", "attributes.run_name"],
        ];
        let ids = [experiment.clone()];
        for view in [ViewType::ActiveOnly, ViewType::All] {
            let every = store.tracked_runs(&ids, view)?;
            for filter in filters {
                for order in orders {
                    let clauses = parse_filter(filter)?;
                    let order_by = parse_order_by(&order.iter().map(|text| text.to_string()).collect::<Vec<_>>())?;
                    let expected: Vec<String> =
                        search_runs(every.clone(), &clauses, &order_by).into_iter().map(|run| run.run_id).collect();
                    // Pages of 3 and 7 begin past the end of an order's segments (runs with a
                    // number for the metric, with NaN, without it) as well as inside them.
                    for limit in [3, 7, 100] {
                        let (mut offset, mut got) = (0, Vec::new());
                        loop {
                            let (page, more) =
                                store.search_tracked_runs(&ids, view, &clauses, &order_by, limit, offset)?;
                            assert!(page.len() <= limit);
                            got.extend(page.into_iter().map(|run| {
                                assert!(run.metrics.contains_key("auc"), "the page's runs are loaded whole");
                                run.run_id
                            }));
                            offset += limit;
                            if !more {
                                break;
                            }
                        }
                        assert_eq!(got, expected, "filter `{filter}`, order {order:?}, pages of {limit}, {view:?}");
                    }
                }
            }
        }
        Ok(())
    }

    /// The latest value of each metric the writers keep must be the one MLflow picks from the whole
    /// history (largest step, then timestamp, then a number over NaN, then the largest value),
    /// whatever order and batches the points came in, through both writers.
    fn latest_metrics_follow_the_whole_history(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let mut rng = SeededRng::new(23);
        let experiment = store.create_experiment("latest", None, MetaStore::PROXIED_ARTIFACT_ROOT, &[], 1)?;
        let mut run_ids = Vec::new();
        for index in 0..6 {
            let run = store.create_tracked_run(&NewRun {
                experiment_id: experiment.clone(),
                user_id: "ada".into(),
                run_name: format!("run-{index}"),
                start_time: 1,
                tags: vec![],
            })?;
            run_ids.push(run.run_id);
        }
        let pick = |rng: &mut SeededRng, choices: usize| (rng.uniform() * choices as f64) as usize % choices;
        for _ in 0..60 {
            let run_id = &run_ids[pick(&mut rng, run_ids.len())];
            let points: Vec<(String, MetricPoint)> = (0..1 + pick(&mut rng, 8))
                .map(|_| {
                    let value = match pick(&mut rng, 6) {
                        0 => f64::NAN,
                        1 => 0.0,
                        _ => (rng.uniform() * 4.0).round() - 2.0,
                    };
                    let point =
                        MetricPoint { value, timestamp: pick(&mut rng, 3) as i64, step: pick(&mut rng, 3) as i64 };
                    (["loss", "auc"][pick(&mut rng, 2)].to_string(), point)
                })
                .collect();
            if rng.uniform() < 0.2 {
                let (key, point) = &points[0];
                let values = BTreeMap::from([(key.clone(), point.value)]);
                store.log_metrics(run_id, &values, point.step, point.timestamp)?;
            } else {
                store.log_batch(run_id, &points, &[], &[])?;
            }
        }
        let point_row = |row: &Row| {
            Ok(format!(
                "{:?}",
                (
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<f64>(2)?,
                    row.get::<i64>(3)?,
                    row.get::<i64>(4)?,
                    row.get::<i64>(5)?
                )
            ))
        };
        let ranked = store.lock().query_map(
            "SELECT run_id, key, value, step, at_ms, is_nan FROM (
                 SELECT run_id, key, value, step, at_ms, is_nan, ROW_NUMBER() OVER (
                     PARTITION BY run_id, key ORDER BY step DESC, at_ms DESC, is_nan ASC, value DESC) AS position
                 FROM run_metrics) AS ranked
             WHERE position = 1 ORDER BY run_id, key",
            params![],
            point_row,
        )?;
        let kept = store.lock().query_map(
            "SELECT run_id, key, value, step, at_ms, is_nan FROM run_latest_metrics ORDER BY run_id, key",
            params![],
            point_row,
        )?;
        assert!(ranked.len() >= 10, "the history covers several runs and keys: {ranked:?}");
        assert_eq!(kept, ranked);
        Ok(())
    }

    on_both_backends!(
        latest_metrics_follow_the_whole_history,
        paged_search_equals_the_evaluator_over_every_run,
        large_batches_span_several_inserts_and_keep_mlflow_semantics,
        experiments_have_a_default_unique_names_and_a_life_cycle,
        runs_log_batches_keep_params_immutable_and_report_latest_metrics
    );
}
