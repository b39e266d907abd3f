//! The training pipeline: stored dataset versions → labelled, point-in-time-correct training set →
//! tracked runs → registered model version with its artifact and monitoring baseline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use causeway_data::ingest::write_parquet;
use causeway_data::{Column, Expectation, ExpectationSuite, Frame};
use causeway_features::offline::compute_features;
use causeway_models::{FeatureKind, ModelArtifact, Signature, Task, TaskKind};
use causeway_monitor::ModelBaseline;
use causeway_train::{
    FitOutcome, Problem, RunTracker, SearchSpec, Trainer, TrainingSet, VALIDATION_FRACTION, fit, signature_for,
};
use causeway_types::{DatasetVersion, FeatureValue, ModelVersionRecord, RunRecord};

use crate::config::ModelSection;
use crate::error::{Error, Result};
use crate::labels::{ResolvedTask, encode_label, resolve_task};
use crate::project::Project;

/// The expectations a batch of `name` must meet: the ones `causeway.toml` declares for it, and,
/// when it is the `[model]` dataset, that every column the features read is there and every
/// numeric feature holds numbers (and that the time column is there).
pub fn ingest_suite(project: &Project, name: &str) -> Result<ExpectationSuite> {
    // With several models, the one that reads this dataset decides the columns it needs.
    let reader = project.config.models.iter().find(|model| model.dataset == name).map(|model| model.name.clone());
    let scoped;
    let project = match reader {
        Some(model) => {
            scoped = project.scoped(&model)?;
            &scoped
        }
        None => project,
    };
    let mut suite = project.config.suite(name);
    let (Some(model), Some(spec)) = (&project.config.model, &project.config.features) else { return Ok(suite) };
    if model.dataset != name {
        return Ok(suite);
    }
    let mut need = |column: &str, numeric: bool, origin: String| {
        if !suite.expectations.iter().any(|expectation| expectation.column == column && !expectation.required) {
            suite.expectations.push(Expectation {
                column: column.to_string(),
                required: true,
                numeric,
                origin: Some(origin),
                ..Expectation::default()
            });
        }
    };
    for column in &spec.numeric {
        need(column, true, "a numeric feature in [features]".into());
    }
    for column in &spec.categorical {
        need(column, false, "a categorical feature in [features]".into());
    }
    for view in &spec.views {
        need(&view.entity, false, format!("the entity of feature view `{}`", view.name));
        need(&view.timestamp, false, format!("the time of feature view `{}`", view.name));
        for source in view.source_columns().into_iter().filter(|source| !source.is_empty()) {
            need(source, true, format!("aggregated by feature view `{}`", view.name));
        }
    }
    if let Some(time) = &model.timestamp_column {
        need(time, false, "[model] timestamp_column".into());
    }
    Ok(suite)
}

/// Ingests a file as a version of dataset `name` (only `columns`, when given) against
/// [`ingest_suite`]; nothing is stored when a check fails.
pub fn ingest_file(
    project: &Project,
    name: &str,
    path: &Path,
    columns: &[String],
    at_ms: i64,
) -> Result<causeway_data::IngestOutcome> {
    let suite = ingest_suite(project, name)?;
    Ok(project.ingestor().ingest_columns(name, path, columns, &suite, at_ms)?)
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

/// Loads one stored version of a dataset, named by its version (or a unique prefix of it).
pub fn load_dataset_version(project: &Project, name: &str, version: &str) -> Result<(Frame, DatasetVersion)> {
    let versions = project.meta.dataset_versions(name)?;
    let matching: Vec<&DatasetVersion> =
        versions.iter().filter(|candidate| candidate.version.starts_with(version)).collect();
    match matching.as_slice() {
        [one] => Ok((project.ingestor().load(one)?, (*one).clone())),
        [] => Err(Error::Precondition(format!(
            "dataset `{name}` has no version {version}; `causeway datasets` lists them ({})",
            versions.iter().map(|known| known.short_version().to_string()).collect::<Vec<_>>().join(", ")
        ))),
        several => Err(Error::Precondition(format!(
            "{version} names {} versions of `{name}`; give more of its digits",
            several.len()
        ))),
    }
}

/// A stable id for the data a training set came from: the dataset's versions and the window.
pub fn snapshot_id(project: &Project, name: &str, from_ms: i64, to_ms: i64) -> Result<String> {
    let versions: Vec<String> =
        project.meta.dataset_versions(name)?.into_iter().map(|version| version.version).collect();
    Ok(snapshot_of(name, &versions, from_ms, to_ms))
}

fn snapshot_of(name: &str, versions: &[String], from_ms: i64, to_ms: i64) -> String {
    let mut hasher = blake3::Hasher::new();
    for version in versions {
        hasher.update(version.as_bytes());
    }
    hasher.update(&from_ms.to_le_bytes());
    hasher.update(&to_ms.to_le_bytes());
    format!("{name}@{}", &hasher.finalize().to_hex()[..12])
}

/// What a training run starts from: the labelled rows, the id of the data snapshot they came
/// from, and the rows to evaluate on when a holdout file was given.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The labelled training rows (all of the window; the holdout is split off later unless
    /// `holdout` is given).
    pub labelled: Labelled,
    /// The data snapshot's id (dataset versions and window).
    pub snapshot: String,
    /// Rows from a holdout file, evaluated on instead of a share of the window.
    pub holdout: Option<TrainingSet>,
    /// The dataset versions the rows came from.
    pub versions: Vec<String>,
}

/// Gathers what `causeway train` trains on: the `[model]` dataset (every version, or the one
/// `dataset_version` names), the last `days` days of it (all rows by default), its labels as of
/// `now`, and a holdout file's rows when `holdout_file` is given (read with the dataset's column
/// types, features computed from the stored rows and its own).
pub fn prepare_training(
    project: &Project,
    days: Option<u32>,
    dataset_version: Option<&str>,
    holdout_file: Option<&Path>,
    now: i64,
) -> Result<Prepared> {
    let model = project.config.model()?;
    let (data, versions) = match dataset_version {
        Some(version) => {
            let (frame, record) = load_dataset_version(project, &model.dataset, version)?;
            (frame, vec![record.version])
        }
        None => {
            let versions =
                project.meta.dataset_versions(&model.dataset)?.into_iter().map(|version| version.version).collect();
            (load_dataset(project, &model.dataset)?, versions)
        }
    };
    let (from, to) = training_window(project, &data, days)?;
    let labelled = training_set(project, &data, from, to, now)?;
    let snapshot = snapshot_of(&model.dataset, &versions, from, to);
    let holdout = match holdout_file {
        Some(path) => {
            let suite = project.config.suite(&model.dataset);
            let types = project.ingestor().column_types(&model.dataset, &suite)?;
            let options = causeway_data::ReadOptions { types, ..causeway_data::ReadOptions::default() };
            let rows = causeway_data::read_file_with(path, &options)?;
            if rows.rows() == 0 {
                return Err(Error::Precondition(format!("the holdout file {} has no rows", path.display())));
            }
            Some(file_set(project, &data, &rows, &labelled.task, true)?)
        }
        None => None,
    };
    Ok(Prepared { labelled, snapshot, holdout, versions })
}

/// The rows a `train --days DAYS` run uses, `[from, to)` in epoch milliseconds: the last `days`
/// days before the newest row, or every row (also without a time column, where `days` is an
/// error).
pub fn training_window(project: &Project, data: &Frame, days: Option<u32>) -> Result<(i64, i64)> {
    let model = project.config.model()?;
    let Some(column) = &model.timestamp_column else {
        if days.is_some() {
            return Err(Error::Config(
                "--days needs [model] timestamp_column: without a time column every row is used".into(),
            ));
        }
        return Ok((i64::MIN, i64::MAX));
    };
    let times = data.require(column)?;
    let present = (0..data.rows()).filter_map(|row| times.number(row));
    let (first, last) = present.fold((f64::MAX, f64::MIN), |(low, high), time| (low.min(time), high.max(time)));
    if first > last {
        return Err(Error::Precondition(format!("the time column `{column}` has no values")));
    }
    let last = last as i64 + 1;
    Ok(match days {
        Some(days) => (last - i64::from(days) * causeway_types::DAY_MS, last),
        None => (first as i64, last),
    })
}

/// A labelled training set with the task its labels were read for.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The rows, features and encoded labels.
    pub set: TrainingSet,
    /// The task, with its classes.
    pub task: Task,
    /// How the task was chosen, for people.
    pub task_note: String,
}

/// The task of the newest registered version of `model` that Causeway can load, if any.
fn latest_task(project: &Project, model: &str) -> Option<Task> {
    let versions = project.meta.model_versions(model).ok()?;
    versions.iter().rev().find_map(|version| load_artifact(project, version).ok().map(|artifact| artifact.task))
}

/// The task of the project's model, decided from `[model]` and every value of the label column
/// in `data` (all rows, so the classes do not change with the window). When the data holds no
/// label (they all arrive through the label store), the task is the latest version's, or the
/// declared one. Multi-class classes keep the order earlier versions gave them, new classes after:
/// stored feedback labels are class indices.
pub fn model_task(project: &Project, data: &Frame) -> Result<ResolvedTask> {
    let model = project.config.model()?;
    let previous = latest_task(project, &model.name);
    let column = data.column(&model.label).filter(|column| (0..column.len()).any(|row| !column.is_null(row)));
    let mut resolved = match column {
        Some(column) => resolve_task(model, column)?,
        None => {
            let from_store = |task: Task, how: &str| ResolvedTask {
                note: format!(
                    "{} ({how}; label `{}` holds no values in `{}`, so labels come from the label store)",
                    task.kind(),
                    model.label,
                    model.dataset
                ),
                task,
            };
            match (previous.clone(), model.task) {
                (Some(task), declared) if declared.is_none_or(|kind| kind == task.kind()) => {
                    from_store(task, "the latest version's task")
                }
                (_, Some(TaskKind::Binary)) => from_store(Task::binary(), "declared, classes 0 and 1"),
                (_, Some(TaskKind::Regression)) => from_store(Task::Regression, "declared"),
                (_, Some(TaskKind::Multiclass)) if model.classes.is_some() => from_store(
                    Task::Multiclass { classes: model.classes.clone().unwrap_or_default() },
                    "declared, with its classes",
                ),
                _ => {
                    return Err(Error::Precondition(format!(
                        "the label column `{}` is not in dataset `{}` or holds no values (columns: {}); labels may come \
                         from the label store instead, but then declare [model] task (and classes for multiclass)",
                        model.label,
                        model.dataset,
                        data.names().join(", ")
                    )));
                }
            }
        }
    };
    if let (Some(Task::Multiclass { classes: earlier }), Task::Multiclass { classes }) = (&previous, &mut resolved.task)
        && model.classes.is_none()
    {
        let mut ordered = earlier.clone();
        ordered.extend(classes.iter().filter(|class| !earlier.contains(class)).cloned());
        *classes = ordered;
    }
    Ok(resolved)
}

/// Builds the labelled training set of rows with `from_ms <= time < to_ms` (every row without a
/// time column). Labels come from the label column when present, otherwise from labels that
/// arrived by `labels_known_at` (joined by id); rows with neither are left out. Features are
/// computed point-in-time-correctly from all rows of `data`.
pub fn training_set(
    project: &Project,
    data: &Frame,
    from_ms: i64,
    to_ms: i64,
    labels_known_at: i64,
) -> Result<Labelled> {
    let model = project.config.model()?;
    let resolved = model_task(project, data)?;
    let task = &resolved.task;
    let ids = model.id_column.as_deref().map(|name| data.require(name)).transpose()?;
    let times = model.timestamp_column.as_deref().map(|name| data.require(name)).transpose()?;
    let label_column = data.column(&model.label);
    let time_of = |row: usize| -> Option<i64> {
        match times {
            Some(times) => times.number(row).map(|time| time as i64),
            None => Some(row as i64),
        }
    };
    let mut candidates: Vec<(i64, usize)> = (0..data.rows())
        .filter_map(|row| time_of(row).map(|time| (time, row)))
        .filter(|(time, _)| times.is_none() || (*time >= from_ms && *time < to_ms))
        .collect();
    candidates.sort();
    let id_of = |row: usize| -> Option<String> { ids.and_then(|ids| ids.text(row)) };
    let unlabeled: Vec<String> = candidates
        .iter()
        .filter(|(_, row)| label_column.is_none_or(|column| column.is_null(*row)))
        .filter_map(|(_, row)| id_of(*row))
        .collect();
    let stored = project.meta.labels_for(unlabeled.iter().map(String::as_str))?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (_, row) in &candidates {
        let from_column = match label_column {
            Some(column) => encode_label(task, &model.label, column, *row)?,
            None => None,
        };
        let label = from_column.or_else(|| {
            let id = id_of(*row)?;
            stored.get(&id).filter(|label| label.arrived_ms <= labels_known_at).map(|label| label.label)
        });
        let Some(label) = label else { continue };
        rows.push(*row);
        labels.push(label);
    }
    if rows.is_empty() {
        return Err(Error::Precondition(match times {
            Some(_) => format!(
                "no labelled rows between {} and {}",
                causeway_types::format_timestamp(from_ms),
                causeway_types::format_timestamp(to_ms)
            ),
            None => format!("no row of `{}` has a label in `{}`", model.dataset, model.label),
        }));
    }
    let selected = data.take(&rows);
    let spec = project.config.features()?;
    let values = match times {
        Some(times) => {
            let window_ms = spec.views.iter().map(|view| view.window_ms()).max().unwrap_or(0);
            let history_rows: Vec<usize> = (0..data.rows())
                .filter(|row| {
                    times
                        .number(*row)
                        .is_some_and(|time| (time as i64) >= from_ms.saturating_sub(window_ms) && (time as i64) < to_ms)
                })
                .collect();
            compute_features(spec, &selected, &data.take(&history_rows))?
        }
        None => compute_features(spec, &selected, data)?,
    };
    let set = TrainingSet {
        ids: rows.iter().map(|row| id_of(*row).unwrap_or_else(|| format!("row-{row}"))).collect(),
        timestamps: rows.iter().map(|row| time_of(*row).unwrap_or(0)).collect(),
        values,
        labels,
    };
    Ok(Labelled { set, task: resolved.task, task_note: resolved.note })
}

/// The rows of `file_rows` (a file that is not stored: a holdout, or rows to score) as feature
/// values, computed as of each row's time from the stored `history` and the file's own rows,
/// with their labels encoded for `task` when `labelled` (rows without a label are an error).
pub fn file_set(
    project: &Project,
    history: &Frame,
    file_rows: &Frame,
    task: &Task,
    labelled: bool,
) -> Result<TrainingSet> {
    let model = project.config.model()?;
    let spec = project.config.features()?;
    let combined = Frame::concat(&[history.clone(), file_rows.clone()])?;
    let values = compute_features(spec, file_rows, &combined)?;
    let ids = model.id_column.as_deref().and_then(|name| file_rows.column(name));
    let times = model.timestamp_column.as_deref().and_then(|name| file_rows.column(name));
    let mut labels = Vec::with_capacity(file_rows.rows());
    if labelled {
        let column = file_rows.column(&model.label).ok_or_else(|| {
            Error::Precondition(format!("the file has no label column `{}` to evaluate on", model.label))
        })?;
        for row in 0..file_rows.rows() {
            let label = encode_label(task, &model.label, column, row)?.ok_or_else(|| {
                Error::Precondition(format!("row {row} of the holdout file has no label in `{}`", model.label))
            })?;
            labels.push(label);
        }
    } else {
        labels.resize(file_rows.rows(), f64::NAN);
    }
    Ok(TrainingSet {
        ids: (0..file_rows.rows())
            .map(|row| ids.and_then(|ids| ids.text(row)).unwrap_or_else(|| format!("row-{row}")))
            .collect(),
        timestamps: (0..file_rows.rows())
            .map(|row| times.and_then(|times| times.number(row)).map_or(row as i64, |time| time as i64))
            .collect(),
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
    /// The holdout rows it was evaluated on.
    pub holdout: TrainingSet,
    /// The comparison model's holdout metrics, when one is configured.
    pub comparison: Option<(String, BTreeMap<String, f64>)>,
    /// The hyper-parameter search that chose the trainer, when one ran.
    pub search: Option<SearchSummary>,
    /// How the task was chosen.
    pub task_note: String,
    /// How many rows each part got.
    pub split: SplitSummary,
    /// Things people should know (a small holdout, …).
    pub warnings: Vec<String>,
}

/// How the rows were shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitSummary {
    /// Rows the model learnt from (fitting and validation).
    pub train: usize,
    /// Of those, the rows the trees were first fitted on.
    pub fit: usize,
    /// Of those, the rows that early-stopped the trees and picked the threshold.
    pub validation: usize,
    /// Rows held out for evaluation.
    pub holdout: usize,
}

impl std::fmt::Display for SplitSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} training rows ({} to fit, {} to early-stop and pick the threshold), {} holdout rows",
            self.train, self.fit, self.validation, self.holdout
        )
    }
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
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Run the `[model.search]` hyper-parameter search first and train its winner.
    pub search: bool,
    /// Evaluate on these rows instead of holding out a share of the window; every row of the
    /// window is then training data.
    pub holdout: Option<TrainingSet>,
    /// The dataset versions the rows came from, recorded as the run's lineage (when empty, the
    /// lineage is every version stored before the run).
    pub dataset_versions: Vec<String>,
}

/// A holdout of fewer rows than this, and under a fifth of the rows, is a warning.
pub const MIN_HOLDOUT_ROWS: usize = 200;
/// A holdout of less than this share of the rows is a warning.
pub const MIN_HOLDOUT_SHARE: f64 = 0.05;

/// Trains the configured model (and the comparison baseline) on `labelled`, tracks both runs,
/// stores the artifact and baseline, and registers a new version of the model.
pub fn train_and_register(
    project: &Project,
    labelled: &Labelled,
    snapshot: &str,
    at_ms: i64,
    actor: &str,
) -> Result<Trained> {
    train_and_register_with(project, labelled, snapshot, at_ms, actor, TrainOptions::default())
}

/// [`train_and_register`] with options: with `search`, the `[model.search]` hyper-parameter
/// search runs first on the training part (never the holdout), every trial a child run of one
/// search run, and its winner is the trainer that is fitted and registered.
pub fn train_and_register_with(
    project: &Project,
    labelled: &Labelled,
    snapshot: &str,
    at_ms: i64,
    actor: &str,
    options: TrainOptions,
) -> Result<Trained> {
    let model = project.config.model()?;
    let spec = project.config.features()?;
    let task = &labelled.task;
    let Split { train, holdout, warnings } = match options.holdout {
        Some(holdout) => Split { train: labelled.set.clone(), holdout, warnings: Vec::new() },
        None => split_holdout(model, &labelled.set, task)?,
    };
    let signature = signature_for(spec, &train);
    let problem = Problem {
        task,
        signature: &signature,
        target_false_positive_rate: model.target_false_positive_rate,
        seed: model.seed,
    };
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let comparison = match &model.baseline_trainer {
        Some(trainer) => {
            let trainer = trainer.for_task(task.kind());
            let name = format!("{}-{}", model.name, trainer.family());
            let run = tracker.start(&name, model.seed, snapshot, trainer.params(), at_ms)?;
            let outcome = fit(&trainer, &problem, &train, &holdout, BTreeMap::new())?;
            tracker.finish(&run, &outcome.metrics, at_ms)?;
            Some((trainer.family().to_string(), outcome.metrics))
        }
        None => None,
    };
    let (trainer, search) = if options.search {
        let spec = model.search.as_ref().ok_or_else(|| {
            Error::Config("--search needs a [model.search] section with a [model.search.space] in causeway.toml".into())
        })?;
        let (trainer, summary) = run_search(project, spec, &model.trainer, &problem, &train, snapshot, at_ms)?;
        (trainer, Some(summary))
    } else {
        (model.trainer.for_task(task.kind()), None)
    };
    let name = format!("{}-{}", model.name, trainer.family());
    let mut params = trainer.params();
    if let Some(search) = &search {
        params.insert("search_run".into(), search.run_id.clone());
    }
    params.insert("task".into(), task.kind().as_str().into());
    if !task.classes().is_empty() {
        params.insert("classes".into(), task.classes().join(","));
    }
    params.insert("train_rows".into(), train.len().to_string());
    params.insert("holdout_rows".into(), holdout.len().to_string());
    if !options.dataset_versions.is_empty() {
        params.insert(crate::datasets::DATASET_VERSIONS_PARAM.into(), options.dataset_versions.join(","));
    }
    let run = tracker.start(&name, model.seed, snapshot, params, at_ms)?;
    let metadata =
        BTreeMap::from([("run_id".to_string(), run.run_id.clone()), ("dataset".to_string(), snapshot.to_string())]);
    let outcome = match fit(&trainer, &problem, &train, &holdout, metadata) {
        Ok(outcome) => outcome,
        Err(error) => {
            tracker.fail(&run, at_ms)?;
            return Err(error.into());
        }
    };
    let validation = train.count_random(VALIDATION_FRACTION, model.seed);
    let split = SplitSummary { train: train.len(), fit: train.len() - validation, validation, holdout: holdout.len() };
    let (version, baseline, run) = store_and_register(
        project,
        &model.name,
        &signature,
        (&train, &holdout),
        &outcome,
        &run,
        (snapshot, at_ms, actor),
    )?;
    Ok(Trained {
        version,
        outcome,
        baseline,
        run,
        holdout,
        comparison,
        search,
        task_note: labelled.task_note.clone(),
        split,
        warnings,
    })
}

/// Cross-validates the configured trainer on `labelled` with `folds` seeded folds; registers
/// nothing.
pub fn cross_validate(project: &Project, labelled: &Labelled, folds: usize) -> Result<causeway_train::CrossValidation> {
    let model = project.config.model()?;
    let signature = signature_for(project.config.features()?, &labelled.set);
    let problem = Problem {
        task: &labelled.task,
        signature: &signature,
        target_false_positive_rate: model.target_false_positive_rate,
        seed: model.seed,
    };
    Ok(causeway_train::cross_validate(&model.trainer, &problem, &labelled.set, folds)?)
}

/// The training part and the holdout, and what people should know about them.
pub(crate) struct Split {
    pub(crate) train: TrainingSet,
    pub(crate) holdout: TrainingSet,
    pub(crate) warnings: Vec<String>,
}

/// The training part and the holdout: a seeded `holdout_fraction` of the freshest `holdout_window`
/// (with a time column) or of every row (without one). Both parts must be able to train and
/// judge the task (both classes of a binary task, two classes of a multi-class one); a holdout
/// smaller than [`MIN_HOLDOUT_ROWS`] or [`MIN_HOLDOUT_SHARE`] of the rows is a warning.
pub(crate) fn split_holdout(model: &ModelSection, set: &TrainingSet, task: &Task) -> Result<Split> {
    let (train, holdout) = match model.timestamp_column {
        Some(_) => set.split_fresh(model.holdout_window.millis(), model.holdout_fraction, model.seed),
        None => set.split_random(model.holdout_fraction, model.seed),
    };
    let classes = |part: &TrainingSet| part.labels.iter().map(|label| label.to_bits()).collect::<BTreeSet<u64>>().len();
    match task {
        Task::Binary { classes: names } => {
            let positives = |part: &TrainingSet| part.labels.iter().filter(|label| **label > 0.5).count();
            for (part, name) in [(&train, "training part"), (&holdout, "holdout")] {
                if positives(part) == 0 {
                    return Err(Error::Precondition(format!(
                        "the {name} has no rows of the positive class {:?} ({} rows in all); widen the window or \
                         change holdout_fraction / holdout_window",
                        names[1],
                        part.len()
                    )));
                }
            }
        }
        Task::Multiclass { .. } if classes(&train) < 2 => {
            return Err(Error::Precondition("the training part holds fewer than two classes".into()));
        }
        _ if holdout.is_empty() || train.is_empty() => {
            return Err(Error::Precondition(format!(
                "the split left {} training and {} holdout rows; widen the window or change holdout_fraction",
                train.len(),
                holdout.len()
            )));
        }
        _ => {}
    }
    let mut warnings = Vec::new();
    let total = set.len().max(1);
    let share = holdout.len() as f64 / total as f64;
    // A holdout the split shrank (a short freshest window, a small fraction), not a small dataset.
    if share < MIN_HOLDOUT_SHARE || (holdout.len() < MIN_HOLDOUT_ROWS && share < 0.2) {
        let fix = match model.timestamp_column {
            Some(_) => format!(
                "raise [model] holdout_window (\"{}\") or holdout_fraction ({})",
                model.holdout_window, model.holdout_fraction
            ),
            None => format!("raise [model] holdout_fraction ({})", model.holdout_fraction),
        };
        warnings.push(format!(
            "the holdout has {} of {} rows ({:.1}%), so its metrics are noisy; {fix}, or pass --holdout FILE",
            holdout.len(),
            set.len(),
            share * 100.0
        ));
    }
    Ok(Split { train, holdout, warnings })
}

/// Stores a fitted model's artifact, monitoring baseline, holdout evaluation and holdout rows
/// under its run, finishes the run with the holdout metrics, and registers the next version of
/// `model_name`.
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
    let artifact = &outcome.artifact;
    project.blobs.put(&artifact_key, &artifact.to_bytes()?)?;
    project.blobs.put(&baseline_key(&artifact_key), &serde_json::to_vec(&baseline)?)?;
    let evaluation =
        causeway_train::evaluate(signature, &artifact.task, holdout, &outcome.holdout_outputs, artifact.threshold);
    project.blobs.put(&evaluation_key(&artifact_key), &serde_json::to_vec(&evaluation)?)?;
    project.blobs.put(&holdout_key(&artifact_key), &write_parquet(&holdout_frame(signature, holdout)?)?)?;
    let run = tracker.finish(run, &outcome.metrics, at_ms)?;
    let version = project.meta.register_version(
        &ModelVersionRecord {
            model: model_name.to_string(),
            version: 0,
            run_id: run.run_id.clone(),
            dataset: snapshot.to_string(),
            artifact_key,
            flavor: artifact.model.flavor().to_string(),
            created_ms: at_ms,
            metrics: outcome.metrics.clone(),
        },
        actor,
    )?;
    Ok((version, baseline, run))
}

/// The column of holdout frames that holds the encoded label.
const HOLDOUT_LABEL: &str = "__label";
/// The column of holdout frames that holds the row id.
const HOLDOUT_ID: &str = "__id";

/// A holdout as a frame: one column per signature feature (numbers, or category text), the
/// row ids and the encoded labels, so a gate can score another version on the same rows.
fn holdout_frame(signature: &Signature, set: &TrainingSet) -> Result<Frame> {
    let mut frame = Frame::new();
    for (index, feature) in signature.features.iter().enumerate() {
        let value = |row: &Vec<FeatureValue>| row.get(index).cloned().unwrap_or(FeatureValue::Missing);
        let column = match feature.kind {
            FeatureKind::Numeric => Column::Float64(set.values.iter().map(|row| value(row).as_number()).collect()),
            FeatureKind::Categorical { .. } => Column::Utf8(
                set.values
                    .iter()
                    .map(|row| match value(row) {
                        FeatureValue::Text(text) => Some(text),
                        FeatureValue::Number(number) => Some(format!("{number}")),
                        FeatureValue::Missing => None,
                    })
                    .collect(),
            ),
        };
        frame = frame.with_column(feature.name.clone(), column)?;
    }
    frame = frame.with_column(HOLDOUT_ID, Column::Utf8(set.ids.iter().cloned().map(Some).collect()))?;
    frame
        .with_column(HOLDOUT_LABEL, Column::Float64(set.labels.iter().copied().map(Some).collect()))
        .map_err(Into::into)
}

/// The holdout rows a version was evaluated on, as feature names and a training set (labels
/// encoded for the version's task), when they were stored.
pub fn load_holdout(project: &Project, version: &ModelVersionRecord) -> Result<Option<(Vec<String>, TrainingSet)>> {
    let key = holdout_key(&version.artifact_key);
    if !project.blobs.contains(&key)? {
        return Ok(None);
    }
    let frame = causeway_data::ingest::read_parquet_bytes(project.blobs.get(&key)?, &key)?;
    let names: Vec<String> =
        frame.names().iter().filter(|name| *name != HOLDOUT_ID && *name != HOLDOUT_LABEL).cloned().collect();
    let columns: Vec<&Column> = names.iter().filter_map(|name| frame.column(name)).collect();
    let values =
        (0..frame.rows()).map(|row| columns.iter().map(|column| column.feature_value(row)).collect()).collect();
    let labels = frame.require(HOLDOUT_LABEL)?;
    let ids = frame.require(HOLDOUT_ID)?;
    let set = TrainingSet {
        ids: (0..frame.rows()).map(|row| ids.text(row).unwrap_or_default()).collect(),
        timestamps: vec![0; frame.rows()],
        values,
        labels: (0..frame.rows()).map(|row| labels.number(row).unwrap_or(f64::NAN)).collect(),
    };
    Ok(Some((names, set)))
}

/// Runs a hyper-parameter search on `train`, recording one parent run and one child run per
/// trial (metrics logged at each rung's budget as the step), and returns the winning trainer.
fn run_search(
    project: &Project,
    spec: &SearchSpec,
    base: &Trainer,
    problem: &Problem<'_>,
    train: &TrainingSet,
    snapshot: &str,
    at_ms: i64,
) -> Result<(Trainer, SearchSummary)> {
    let model = project.config.model()?;
    let task = problem.task;
    let tracker = RunTracker::new(&project.meta, &project.dir);
    let mut params = BTreeMap::from([
        ("family".to_string(), base.family().to_string()),
        ("strategy".to_string(), format!("{:?}", spec.strategy)),
        ("trials".to_string(), spec.trials.to_string()),
        ("metric".to_string(), spec.metric_for(task)),
        ("reduction".to_string(), spec.reduction.to_string()),
    ]);
    for (name, distribution) in &spec.space {
        params.insert(format!("space.{name}"), serde_json::to_string(distribution)?);
    }
    let parent = tracker.start(&format!("{}-search", model.name), model.seed, snapshot, params, at_ms)?;
    let mut children: BTreeMap<usize, RunRecord> = BTreeMap::new();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let metric = spec.metric_for(task);
    let outcome = causeway_train::search::search(spec, base, problem, train, |trial, result| {
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
                metric,
                result.metrics.get(&metric).copied().unwrap_or(f64::NAN)
            );
        }
        Ok(())
    });
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
        (format!("best_{metric}"), outcome.best_value),
        ("best_trial".to_string(), best.number as f64),
        ("evaluations".to_string(), outcome.evaluations.len() as f64),
    ]);
    tracker.finish(&parent, &metrics, at_ms)?;
    let summary = SearchSummary {
        run_id: parent.run_id.clone(),
        trials: outcome.trials.len(),
        evaluations: outcome.evaluations.len(),
        metric,
        best_value: outcome.best_value,
        best_values: best.drawn.clone(),
    };
    Ok((best.trainer.clone(), summary))
}

/// Imports an XGBoost, LightGBM or ONNX model file as the next version of `model_name`: a
/// tracked `import` run (file name, format, content hash), the original file kept beside the
/// artifact, and the version registered (not promoted). The artifact scores exactly as the
/// library does. Its task is the one its outputs fit (a probability is binary, several class
/// probabilities multi-class, anything else a number) unless `task` says otherwise where the
/// outputs allow it (a one-column ONNX graph that is a probability, say).
#[allow(clippy::too_many_arguments, reason = "one import, all of its inputs")]
pub fn import_and_register(
    project: &Project,
    file_name: &str,
    bytes: &[u8],
    model_name: &str,
    threshold: f64,
    task: Option<TaskKind>,
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
    let artifact = match task {
        Some(kind) if kind != artifact.task.kind() => {
            let wanted = match kind {
                TaskKind::Binary => Task::binary(),
                TaskKind::Regression => Task::Regression,
                TaskKind::Multiclass => Task::indexed_classes(artifact.model.outputs()),
            };
            let natural = artifact.task.kind();
            ModelArtifact::for_task(artifact.model, artifact.signature, wanted, artifact.threshold, artifact.metadata)
                .map_err(|error| {
                Error::Precondition(format!(
                    "{file_name} is a {natural} model and cannot be imported as {kind}: {error}"
                ))
            })?
        }
        _ => artifact,
    };
    params.insert("task".into(), artifact.task.kind().as_str().into());
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

/// The blob key of the holdout rows a version was evaluated on (Parquet).
pub fn holdout_key(artifact_key: &str) -> String {
    format!("{}.holdout.parquet", artifact_key.trim_end_matches(".json"))
}

/// Loads a version's artifact.
pub fn load_artifact(project: &Project, version: &ModelVersionRecord) -> Result<ModelArtifact> {
    Ok(ModelArtifact::from_bytes(&project.blobs.get(&version.artifact_key)?)?)
}

/// Loads a version's monitoring baseline.
pub fn load_baseline(project: &Project, version: &ModelVersionRecord) -> Result<ModelBaseline> {
    Ok(serde_json::from_slice(&project.blobs.get(&baseline_key(&version.artifact_key))?)?)
}

/// Scores a set whose labels are encoded for `task` with an artifact (encoding by feature name,
/// and reading the artifact's classes in `task`'s order) and returns every output and the metrics
/// of `task` (at the artifact's own threshold, for binary models). An artifact of another kind of
/// task, or without a class of `task`, cannot be compared and is an error.
pub fn evaluate(
    artifact: &ModelArtifact,
    names: &[String],
    set: &TrainingSet,
    task: &Task,
) -> Result<(Vec<f64>, BTreeMap<String, f64>)> {
    if artifact.task.kind() != task.kind() {
        return Err(Error::Precondition(format!(
            "a {} model cannot be compared with a {} model",
            artifact.task.kind(),
            task.kind()
        )));
    }
    if let (Task::Binary { classes: theirs }, Task::Binary { classes: ours }) = (&artifact.task, task)
        && theirs != ours
    {
        return Err(Error::Precondition(format!(
            "its classes ({}; positive {}) are not these ({}; positive {})",
            theirs.join(", "),
            theirs[1],
            ours.join(", "),
            ours[1]
        )));
    }
    // Scoring a model without inputs it reads (filled in as missing) would judge it unfairly.
    let absent: Vec<&str> =
        artifact.signature.names().into_iter().filter(|name| !names.iter().any(|known| known == name)).collect();
    if !absent.is_empty() {
        return Err(Error::Precondition(format!("these rows lack inputs it reads: {}", absent.join(", "))));
    }
    let positions: HashMap<&str, usize> =
        names.iter().enumerate().map(|(index, name)| (name.as_str(), index)).collect();
    let mut rows = Vec::with_capacity(set.len());
    for row in &set.values {
        let ordered: Vec<FeatureValue> = artifact
            .signature
            .features
            .iter()
            .map(|feature| {
                positions
                    .get(feature.name.as_str())
                    .and_then(|index| row.get(*index).cloned())
                    .unwrap_or(FeatureValue::Missing)
            })
            .collect();
        rows.push(artifact.signature.encode(&ordered).map_err(|error| Error::Precondition(error.to_string()))?);
    }
    let outputs = artifact.model.predict_outputs(&rows);
    let outputs = match task {
        // The artifact's class probabilities, reordered into `task`'s classes (by name).
        Task::Multiclass { classes } if artifact.task.classes() != classes.as_slice() => {
            let theirs = artifact.task.classes();
            let order: Vec<usize> = classes
                .iter()
                .map(|class| {
                    theirs
                        .iter()
                        .position(|known| known == class)
                        .ok_or_else(|| Error::Precondition(format!("the compared model has no class {class:?}")))
                })
                .collect::<Result<_>>()?;
            outputs.chunks(theirs.len().max(1)).flat_map(|row| order.iter().map(|index| row[*index])).collect()
        }
        _ => outputs,
    };
    let metrics = causeway_models::metrics::task_metrics(task, &outputs, &set.labels, artifact.threshold);
    Ok((outputs, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> ModelSection {
        toml::from_str(&format!("name = \"m\"\ndataset = \"d\"\nlabel = \"y\"\n{text}")).expect("a model section")
    }

    fn set(days: i64, rows: usize) -> TrainingSet {
        let mut set = TrainingSet::default();
        for row in 0..rows {
            set.ids.push(row.to_string());
            set.timestamps.push(row as i64 * days * causeway_types::DAY_MS / rows as i64);
            set.values.push(vec![FeatureValue::Number(row as f64)]);
            set.labels.push(f64::from(u8::from(row % 4 == 0)));
        }
        set
    }

    #[test]
    fn a_holdout_the_split_shrank_is_a_warning_that_says_how_to_widen_it() -> Result<()> {
        // A year of rows: the freshest 7 days hold 2 % of them, 30 % of which is 0.6 %.
        let timed = section("timestamp_column = \"t\"\nholdout_days = 7\nholdout_fraction = 0.3");
        let split = split_holdout(&timed, &set(365, 5_000), &Task::binary())?;
        assert!(split.holdout.len() < 60, "{}", split.holdout.len());
        assert_eq!(split.warnings.len(), 1);
        assert!(
            split.warnings[0].contains("raise [model] holdout_window (\"7d\") or holdout_fraction (0.3)"),
            "{:?}",
            split.warnings
        );
        // Without a time column the holdout is a seeded share of every row: no warning.
        let untimed = section("holdout_fraction = 0.25");
        let split = split_holdout(&untimed, &set(365, 5_000), &Task::binary())?;
        assert!((1_150..1_350).contains(&split.holdout.len()), "{}", split.holdout.len());
        assert!(split.warnings.is_empty(), "{:?}", split.warnings);
        // A small dataset is not a shrunk holdout.
        let small = split_holdout(&untimed, &set(365, 300), &Task::binary())?;
        assert!(small.warnings.is_empty(), "{:?}", small.warnings);
        Ok(())
    }
}
