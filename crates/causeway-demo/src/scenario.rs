//! The fraud demo: the whole loop on synthetic card transactions, replayed day by day on an
//! injected clock. History is ingested from CSV and a champion trained; then live traffic is
//! scored record by record through the serving engine (features from the online store, labels
//! arriving days later) while the controller monitors, alerts, retrains and rolls out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use causeway_data::ingest::write_csv;
use causeway_data::synthetic::{FraudConfig, FraudGenerator, Phase, Transaction, to_frame};
use causeway_features::offline::compute_features;
use causeway_models::Predictor;
use causeway_monitor::report::{Chart, ReportData, Series, Table, render_html};
use causeway_monitor::{PredictionLog, PredictionRecord, Role, read_window};
use causeway_serving::{Engine, OnlineFeatures, RecordRequest};
use causeway_types::{
    CHAMPION, DAY_MS, Event, EventKind, FeatureValue, LabelRecord, ManualClock, ModelVersionRecord, RuleKind,
    format_date,
};

use causeway_loop::config::Trigger;
use causeway_loop::controller::{Controller, TickReport};
use causeway_loop::pipeline::{load_dataset, snapshot_id, train_and_register, training_set};
use causeway_loop::project::{Project, STATE_DIR};
use causeway_loop::retrain::{RetrainJob, Retrainer};
use causeway_loop::{Error, Result};

use crate::FRAUD_CONFIG;

/// A deliberate labelling fault: training rows whose features match every condition get
/// `label`. The `bad-challenger` story trains on labels corrupted so; real projects never do.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFault {
    /// (categorical feature, value) pairs that must all match.
    pub conditions: Vec<(String, String)>,
    /// The label forced on matching rows.
    pub label: f64,
}

impl LabelFault {
    /// Corrupts the labels of the rows of `set` (features in `names` order) that match.
    pub fn apply(&self, names: &[String], set: &mut causeway_train::TrainingSet) {
        let positions: Vec<(usize, &str)> = self
            .conditions
            .iter()
            .filter_map(|(column, value)| {
                names.iter().position(|name| name == column).map(|index| (index, value.as_str()))
            })
            .collect();
        if positions.len() != self.conditions.len() {
            return;
        }
        for (values, label) in set.values.iter().zip(set.labels.iter_mut()) {
            let matches = positions
                .iter()
                .all(|(index, value)| matches!(values.get(*index), Some(FeatureValue::Text(text)) if text == value));
            if matches {
                *label = self.label;
            }
        }
    }
}

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Concept drift; the retrained challenger wins and is promoted.
    Fraud,
    /// Concept drift; the challenger is trained on corrupted labels and is rolled back in canary.
    BadChallenger,
}

impl Scenario {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fraud => "fraud",
            Self::BadChallenger => "bad-challenger",
        }
    }
}

/// How big and how long the demo is.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The story.
    pub scenario: Scenario,
    /// The seed of the synthetic data.
    pub seed: u64,
    /// Transactions per day.
    pub transactions_per_day: usize,
    /// Customers.
    pub customers: usize,
    /// Days of history before serving starts.
    pub history_days: u32,
    /// Days of history the first model trains on (the most recent ones).
    pub training_days: u32,
    /// Live days of stable traffic.
    pub stable_days: u32,
    /// Live days of covariate drift.
    pub covariate_days: u32,
    /// Live days of concept drift.
    pub concept_days: u32,
    /// What triggers retraining (the demo's `causeway.toml` says `["performance"]`).
    pub retrain_on: Vec<Trigger>,
    /// Midnight (UTC, epoch ms) of day 0 of the generated history.
    pub start_ms: i64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            scenario: Scenario::Fraud,
            seed: 42,
            transactions_per_day: 2_500,
            customers: 3_000,
            history_days: 45,
            training_days: 15,
            stable_days: 14,
            covariate_days: 14,
            concept_days: 30,
            retrain_on: vec![Trigger::Performance],
            start_ms: FraudConfig::default().start_ms,
        }
    }
}

impl DemoOptions {
    /// The first day of live traffic (the day after history).
    pub fn first_live_day(&self) -> u32 {
        self.history_days
    }
    /// The first day of covariate drift.
    pub fn covariate_day(&self) -> u32 {
        self.history_days + self.stable_days
    }
    /// The first day of concept drift.
    pub fn concept_day(&self) -> u32 {
        self.covariate_day() + self.covariate_days
    }
    /// The first day after the demo (its live traffic covers the days before).
    pub fn last_day(&self) -> u32 {
        self.concept_day() + self.concept_days
    }
    /// Total days simulated after history.
    pub fn live_days(&self) -> u32 {
        self.stable_days + self.covariate_days + self.concept_days
    }
}

/// Receives progress while the demo runs.
pub trait Observer {
    /// A new step starts; `total` is its number of units (0 when unknown).
    fn step(&mut self, title: &str, total: u64);
    /// Progress within the step.
    fn advance(&mut self, done: u64, message: &str);
    /// A timeline event happened.
    fn event(&mut self, event: &Event);
}

/// One check of the scenario's expected behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was expected.
    pub expectation: String,
    /// Whether it happened.
    pub passed: bool,
}

/// A model version as the summary shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSummary {
    /// The version.
    pub version: u32,
    /// The model family.
    pub flavor: String,
    /// The training snapshot.
    pub dataset: String,
    /// Holdout metrics at registration.
    pub holdout: BTreeMap<String, f64>,
    /// Live labelled metrics over the whole run (served and shadow).
    pub live_roc_auc: Option<f64>,
    /// Live recall over the whole run.
    pub live_recall: Option<f64>,
    /// Live labelled predictions.
    pub live_labeled: u64,
    /// Aliases at the end.
    pub aliases: Vec<String>,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The project directory.
    pub dir: PathBuf,
    /// The report file.
    pub report: PathBuf,
    /// Registered versions.
    pub versions: Vec<VersionSummary>,
    /// Loop events (retraining, gates, shadow, canary, promotion, rollback).
    pub loop_events: Vec<Event>,
    /// Alert events.
    pub alerts: Vec<Event>,
    /// The expectations and whether they held.
    pub checks: Vec<Check>,
    /// Rows compared between served and offline scoring, and the largest difference.
    pub served_offline: (usize, f64),
    /// Seconds per step.
    pub timings: Vec<(String, f64)>,
    /// Transactions scored live.
    pub scored: u64,
    /// Prediction-log records dropped.
    pub dropped: u64,
    /// The champion at the end.
    pub final_champion: u32,
    /// What only the live demo (`--live`) measures.
    pub live: Option<crate::live::LiveFigures>,
}

impl DemoOutcome {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }
}

pub(crate) fn record_fields(transaction: &Transaction) -> BTreeMap<String, FeatureValue> {
    let number = |value: f64| FeatureValue::Number(value);
    let text = |value: &str| FeatureValue::Text(value.to_string());
    BTreeMap::from([
        ("transaction_id".to_string(), text(&transaction.transaction_id)),
        ("customer_id".to_string(), text(&transaction.customer_id)),
        ("merchant_id".to_string(), text(&transaction.merchant_id)),
        ("device_id".to_string(), text(&transaction.device_id)),
        ("timestamp".to_string(), number(transaction.timestamp as f64)),
        ("amount".to_string(), number(transaction.amount)),
        ("merchant_category".to_string(), text(transaction.merchant_category)),
        ("channel".to_string(), text(transaction.channel)),
        ("hour".to_string(), number(transaction.hour as f64)),
        ("distance_from_home".to_string(), number(transaction.distance_from_home)),
        ("card_present".to_string(), number(transaction.card_present as f64)),
        ("is_new_device".to_string(), number(transaction.is_new_device as f64)),
        ("is_foreign".to_string(), number(transaction.is_foreign as f64)),
        ("customer_age_days".to_string(), number(transaction.customer_age_days as f64)),
        ("device_trust_score".to_string(), number(transaction.device_trust_score)),
        ("ip_risk_score".to_string(), number(transaction.ip_risk_score)),
        ("email_domain_risk".to_string(), number(transaction.email_domain_risk)),
        ("num_items".to_string(), number(transaction.num_items as f64)),
        ("velocity_1h".to_string(), number(transaction.velocity_1h as f64)),
        ("merchant_risk_score".to_string(), number(transaction.merchant_risk_score)),
        ("failed_logins_24h".to_string(), number(transaction.failed_logins_24h as f64)),
        ("is_weekend".to_string(), number(transaction.is_weekend as f64)),
    ])
}

/// The fields of a transaction as a record request, for clients and tests.
pub fn record_request(transaction: &Transaction) -> RecordRequest {
    RecordRequest { request_id: Some(transaction.transaction_id.clone()), fields: record_fields(transaction) }
}

pub(crate) struct Timer {
    pub(crate) started: Instant,
    pub(crate) timings: Vec<(String, f64)>,
}

impl Timer {
    pub(crate) fn lap(&mut self, name: &str) {
        self.timings.push((name.to_string(), self.started.elapsed().as_secs_f64()));
        self.started = Instant::now();
    }
}

/// The transaction generator the demo uses for these options.
pub fn generator(options: &DemoOptions) -> FraudGenerator {
    FraudGenerator::new(FraudConfig {
        seed: options.seed,
        start_ms: options.start_ms,
        customers: options.customers,
        transactions_per_day: options.transactions_per_day,
        covariate_drift_day: options.covariate_day(),
        concept_drift_day: options.concept_day(),
        ..FraudConfig::default()
    })
}

/// Generates the demo's history days (telling `on_day` as each is done) and writes them to
/// `dir/data/transactions_history.csv`, the file the demo ingests; returns its path.
pub fn write_history_csv(
    generator: &FraudGenerator,
    options: &DemoOptions,
    dir: &Path,
    on_day: &mut dyn FnMut(u32),
) -> Result<std::path::PathBuf> {
    let history: Vec<Transaction> = (0..options.history_days)
        .flat_map(|day| {
            on_day(day);
            generator.day(day)
        })
        .collect();
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|cause| Error::Io { path: data_dir.display().to_string(), cause })?;
    let csv_path = data_dir.join("transactions_history.csv");
    write_csv(&to_frame(&history, true)?, &csv_path)?;
    Ok(csv_path)
}

/// A demo project with its history ingested and its first champion trained and promoted.
pub(crate) struct Prepared {
    /// The project.
    pub project: Arc<Project>,
    /// The demo's model.
    pub model_name: String,
    /// The first champion.
    pub champion: u32,
    /// The history as stored (every version of `transactions`).
    pub data: causeway_data::Frame,
    /// When live traffic starts (the end of history).
    pub first_live: i64,
}

/// Refuses a directory that already holds a project.
pub(crate) fn require_fresh(dir: &Path) -> Result<()> {
    if dir.join(STATE_DIR).exists() {
        return Err(Error::Precondition(format!(
            "{} already holds a Causeway project; the demo needs a fresh directory (omit --dir to use a temporary one)",
            dir.display()
        )));
    }
    Ok(())
}

/// Creates the project in `dir` with `config_text`, generates and ingests the history, and
/// trains, registers and promotes the first champion (steps 1 and 2 of both demos).
pub(crate) fn prepare(
    dir: &Path,
    options: &DemoOptions,
    config_text: &str,
    generator: &FraudGenerator,
    observer: &mut dyn Observer,
    timer: &mut Timer,
) -> Result<Prepared> {
    let day_start = |day: u32| generator.day_start_ms(day);
    let project = Arc::new(Project::init(dir, config_text)?.0);
    let model_name = project.config.model()?.name.clone();
    let suite = project.config.suite("transactions");

    // 1. History: generate, write CSV, ingest with validation.
    observer.step("generating and ingesting history", u64::from(options.history_days));
    let csv_path = write_history_csv(generator, options, dir, &mut |day| observer.advance(u64::from(day + 1), ""))?;
    let first_live = day_start(options.first_live_day());
    let ingested = project.ingestor().ingest_file("transactions", &csv_path, &suite, first_live)?;
    let ingest_event = Event {
        id: 0,
        at_ms: first_live,
        kind: EventKind::Data,
        actor: "demo".into(),
        subject: "transactions".into(),
        message: format!(
            "ingested {} history rows from {} as transactions@{} ({} expectations passed)",
            ingested.dataset.rows,
            csv_path.file_name().and_then(|name| name.to_str()).unwrap_or("csv"),
            ingested.dataset.short_version(),
            ingested.report.checked
        ),
        details: serde_json::Value::Null,
    };
    observer.event(&ingest_event);
    timer.lap("generate and ingest history");

    // 2. Champion: point-in-time-correct features, train, track, register, promote.
    observer.step("training the first champion", 0);
    let data = load_dataset(&project, "transactions")?;
    let train_from = day_start(options.history_days - options.training_days);
    let set = training_set(&project, &data, train_from, first_live, first_live)?;
    let snapshot = snapshot_id(&project, "transactions", train_from, first_live)?;
    let trained = train_and_register(&project, &set, &snapshot, first_live, "demo")?;
    let champion = trained.version.version;
    project.meta.apply_rollout(&causeway_store::Rollout {
        model: &model_name,
        change: causeway_store::RolloutChange::Champion(champion),
        expected_generation: None,
        actor: "demo",
        at_ms: first_live,
        reason: "first model",
    })?;
    let metric = |name: &str| trained.outcome.metrics.get(name).copied().unwrap_or(f64::NAN);
    let comparison = trained
        .comparison
        .as_ref()
        .map(|(family, metrics)| {
            format!("; {family} baseline ROC-AUC {:.3}", metrics.get("roc_auc").copied().unwrap_or(f64::NAN))
        })
        .unwrap_or_default();
    observer.event(&Event {
        id: 0,
        at_ms: first_live,
        kind: EventKind::Loop,
        actor: "demo".into(),
        subject: model_name.clone(),
        message: format!(
            "trained v{champion} ({}) on {} rows: holdout ROC-AUC {:.3}, PR-AUC {:.3}, recall {:.3} at FPR {:.4}{comparison}; v{champion} is champion",
            trained.outcome.artifact.model.flavor(),
            set.set.len(),
            metric("roc_auc"),
            metric("pr_auc"),
            metric("recall"),
            metric("false_positive_rate"),
        ),
        details: serde_json::Value::Null,
    });
    timer.lap("train first champion");
    Ok(Prepared { project, model_name, champion, data, first_live })
}

/// Runs the demo in `dir` (which must not hold a project yet).
pub fn run_demo(dir: &Path, options: &DemoOptions, observer: &mut dyn Observer) -> Result<DemoOutcome> {
    require_fresh(dir)?;
    let mut timer = Timer { started: Instant::now(), timings: Vec::new() };
    let generator = generator(options);
    let day_start = |day: u32| generator.day_start_ms(day);
    let triggers: Vec<String> =
        options.retrain_on.iter().map(|trigger| serde_json::to_string(trigger).unwrap_or_default()).collect();
    let config_text = FRAUD_CONFIG
        .replace("performance_window = \"14d\"", "performance_window = \"7d\"")
        .replace("retrain_on = [\"performance\"]", &format!("retrain_on = [{}]", triggers.join(", ")));
    let Prepared { project, model_name, champion, data, first_live } =
        prepare(dir, options, &config_text, &generator, observer, &mut timer)?;
    let suite = project.config.suite("transactions");

    // 3. Online store and serving engine.
    let spec = project.config.features()?.clone();
    let online = project.online()?;
    for view in &spec.views {
        online.materialize(view, &data, first_live)?;
    }
    let clock = ManualClock::new(first_live);
    let engine = Engine::new(
        project.meta.clone(),
        project.blobs.clone(),
        Some(OnlineFeatures { spec: spec.clone(), store: online.clone() }),
        Arc::new(clock.clone()),
        PredictionLog::start(project.blobs.clone(), 200_000, 25_000),
    );
    engine.refresh()?;
    timer.lap("materialize online store");

    // 4. Live days.
    let fault = (options.scenario == Scenario::BadChallenger).then(|| LabelFault {
        conditions: vec![("merchant_category".into(), "restaurants".into()), ("channel".into(), "online".into())],
        label: 1.0,
    });
    let retrain_window = project.config.rollout.retrain_window.millis();
    let retrainer: Retrainer = Arc::new(move |project: &Project, job: &RetrainJob| {
        let now = job.now_ms;
        let data = load_dataset(project, "transactions")?;
        let from = now - retrain_window;
        let mut set = training_set(project, &data, from, now, now)?;
        if let Some(fault) = &fault {
            fault.apply(&project.config.features()?.feature_names(), &mut set.set);
        }
        let snapshot = snapshot_id(project, "transactions", from, now)?;
        train_and_register(project, &set, &snapshot, now, "loop")
    });
    let mut controller = Controller::new(project.clone(), retrainer)?;
    let mut pending_labels: Vec<(i64, String, f64)> = Vec::new();
    let mut ticks: Vec<(u32, TickReport, bool)> = Vec::new();
    let mut scored = 0u64;
    observer.step("replaying live traffic", u64::from(options.live_days()));
    for day in options.first_live_day()..options.last_day() {
        let transactions = generator.day(day);
        for transaction in &transactions {
            clock.set(transaction.timestamp);
            let request = record_request(transaction);
            engine.score_record(&model_name, &request)?;
            engine.push_event(&request.fields)?;
            pending_labels.push((
                transaction.label_arrival_ms,
                transaction.transaction_id.clone(),
                f64::from(u8::from(transaction.is_fraud)),
            ));
            scored += 1;
        }
        let day_end = day_start(day + 1);
        clock.set(day_end);
        pending_labels.sort_by_key(|(arrival, _, _)| *arrival);
        let due = pending_labels.partition_point(|(arrival, _, _)| *arrival <= day_end);
        let arrived: Vec<(String, LabelRecord)> = pending_labels
            .drain(..due)
            .map(|(arrival, id, label)| (id, LabelRecord { label, arrived_ms: arrival }))
            .collect();
        project.meta.put_labels(&arrived)?;
        let batch = to_frame(&transactions, false)?;
        project.ingestor().ingest_frame(
            "transactions",
            &batch,
            &format!("live batch {}", format_date(day_start(day))),
            &suite,
            day_end,
        )?;
        engine.log().flush()?;
        online.flush()?;
        let report = controller.tick(day_end)?;
        engine.refresh()?;
        for event in &report.events {
            observer.event(event);
        }
        let drifting = controller.state().rules.any_firing(RuleKind::Drift);
        observer.advance(
            u64::from(day - options.first_live_day() + 1),
            &format!(
                "{} {}: champion v{}",
                format_date(day_start(day)),
                generator.phase(day).as_str(),
                report.champion
            ),
        );
        ticks.push((day, report, drifting));
    }
    timer.lap("replay live traffic");

    // 5. Served scores equal offline scores for the same rows.
    observer.step("checking served scores against offline scoring", 0);
    let served_offline = compare_served_with_offline(&project, &generator, options, &model_name)?;
    timer.lap("served versus offline check");

    // 6. Summary, checks, report.
    let events = project.meta.events(None)?;
    let loop_events: Vec<Event> = events.iter().filter(|event| event.kind == EventKind::Loop).cloned().collect();
    let alerts: Vec<Event> = events.iter().filter(|event| event.kind == EventKind::Alert).cloned().collect();
    let final_champion = project.meta.alias(&model_name, CHAMPION)?.unwrap_or(champion);
    let records = read_window(&project.blobs, day_start(options.first_live_day()), day_start(options.last_day()))?;
    let labels = project.meta.labels_for(records.iter().map(|record| record.request_id.as_str()))?;
    let versions = summarize_versions(&project, &model_name, &records, &labels)?;
    let checks = check_expectations(
        options,
        &generator,
        &ticks,
        &alerts,
        &loop_events,
        final_champion,
        champion,
        served_offline,
    );
    let points: Vec<ReportPoint> = ticks
        .iter()
        .map(|(_, tick, _)| ReportPoint {
            at_ms: tick.at_ms,
            drift: tick.drift.clone(),
            outcomes: tick.outcomes.clone(),
        })
        .collect();
    let report_path =
        write_report(dir, &report_data(simulated_frame(options, &generator), &points, &versions, &events, &checks))?;
    timer.lap("report");
    Ok(DemoOutcome {
        dir: dir.to_path_buf(),
        report: report_path,
        versions,
        loop_events,
        alerts,
        checks,
        served_offline,
        timings: timer.timings,
        scored,
        dropped: engine.log().dropped(),
        final_champion,
        live: None,
    })
}

/// Re-scores the last live day offline (features from the stored dataset, point in time) with
/// the version that served each request, and compares with the logged served scores.
fn compare_served_with_offline(
    project: &Project,
    generator: &FraudGenerator,
    options: &DemoOptions,
    model: &str,
) -> Result<(usize, f64)> {
    let last = options.last_day() - 1;
    let from = generator.day_start_ms(last);
    let to = generator.day_start_ms(last + 1);
    let served: HashMap<String, (u32, f64)> = read_window(&project.blobs, from, to)?
        .into_iter()
        .filter(|record| record.role == Role::Served)
        .map(|record| (record.request_id, (record.version, record.score)))
        .collect();
    let data = load_dataset(project, "transactions")?;
    let spec = project.config.features()?;
    let times = data.require("timestamp")?;
    let rows: Vec<usize> = (0..data.rows())
        .filter(|row| times.number(*row).is_some_and(|time| (time as i64) >= from && (time as i64) < to))
        .collect();
    let selected = data.take(&rows);
    let values = compute_features(spec, &selected, &data)?;
    let ids = selected.require("transaction_id")?;
    let names = spec.feature_names();
    let mut artifacts = HashMap::new();
    let mut compared = 0;
    let mut largest = 0.0f64;
    for (row, features) in values.iter().enumerate() {
        let Some(id) = ids.text(row) else { continue };
        let Some((version, served_score)) = served.get(&id) else { continue };
        if !artifacts.contains_key(version) {
            let record = project.meta.model_version(model, *version)?;
            artifacts.insert(*version, causeway_loop::pipeline::load_artifact(project, &record)?);
        }
        let Some(artifact) = artifacts.get(version) else { continue };
        let by_name: HashMap<&str, &FeatureValue> = names.iter().map(String::as_str).zip(features).collect();
        let ordered: Vec<FeatureValue> = artifact
            .signature
            .features
            .iter()
            .map(|feature| by_name.get(feature.name.as_str()).map_or(FeatureValue::Missing, |value| (*value).clone()))
            .collect();
        let encoded = artifact.signature.encode(&ordered).map_err(|error| Error::Precondition(error.to_string()))?;
        let offline_score = artifact.model.predict_row(&encoded);
        largest = largest.max((offline_score - served_score).abs());
        compared += 1;
    }
    Ok((compared, largest))
}

/// Each version's judging as a binary model at its registered threshold (0.5 without one).
pub(crate) fn binary_judging(versions: &[ModelVersionRecord]) -> HashMap<u32, causeway_monitor::Judging> {
    versions
        .iter()
        .map(|version| {
            let threshold = version.metrics.get("threshold").copied().unwrap_or(0.5);
            (version.version, causeway_monitor::Judging::binary(threshold))
        })
        .collect()
}

/// Every registered version of `model` with its live metrics over `records` (and their `labels`)
/// and its aliases.
pub(crate) fn summarize_versions(
    project: &Project,
    model: &str,
    records: &[PredictionRecord],
    labels: &HashMap<String, LabelRecord>,
) -> Result<Vec<VersionSummary>> {
    let versions = project.meta.model_versions(model)?;
    let thresholds = binary_judging(&versions);
    let outcomes = causeway_monitor::outcomes_by_version(records, labels, &thresholds);
    let aliases = project.meta.aliases(model)?;
    Ok(versions
        .into_iter()
        .map(|version| {
            let live = outcomes.get(&version.version);
            VersionSummary {
                version: version.version,
                flavor: version.flavor.clone(),
                dataset: version.dataset.clone(),
                live_roc_auc: live.map(|outcome| outcome.roc_auc),
                live_recall: live.map(|outcome| outcome.recall),
                live_labeled: live.map_or(0, |outcome| outcome.labeled),
                aliases: aliases
                    .iter()
                    .filter(|(_, target)| **target == version.version)
                    .map(|(alias, _)| alias.clone())
                    .collect(),
                holdout: version.metrics,
            }
        })
        .collect())
}

#[expect(clippy::too_many_arguments, reason = "a single call site assembling the scenario's verdict")]
fn check_expectations(
    options: &DemoOptions,
    generator: &FraudGenerator,
    ticks: &[(u32, TickReport, bool)],
    alerts: &[Event],
    loop_events: &[Event],
    final_champion: u32,
    first_champion: u32,
    served_offline: (usize, f64),
) -> Vec<Check> {
    let phase_of = |at_ms: i64| {
        let day = ((at_ms - generator.day_start_ms(0) - 1) / DAY_MS) as u32;
        generator.phase(day)
    };
    let drifting_days =
        |phase: Phase| ticks.iter().filter(|(day, _, drifting)| *drifting && generator.phase(*day) == phase).count();
    let drift_alert_in =
        |phase: Phase| alerts.iter().any(|event| event.message.contains("drifted") && phase_of(event.at_ms) == phase);
    let largest_psi = |phase: Phase| {
        ticks
            .iter()
            .filter(|(day, _, _)| generator.phase(*day) == phase)
            .filter_map(|(_, tick, _)| tick.drift.as_ref())
            .flat_map(|drift| drift.features.iter().map(|feature| feature.psi))
            .fold(0.0, f64::max)
    };
    let performance_alert_in_concept = alerts.iter().any(|event| {
        (event.message.contains("recall") || event.message.contains("ROC-AUC"))
            && phase_of(event.at_ms) == Phase::ConceptDrift
    });
    let promoted = loop_events.iter().any(|event| event.message.starts_with("promoted"));
    let rolled_back_in_canary = loop_events.iter().any(|event| event.message.starts_with("rolled back"))
        && loop_events.iter().any(|event| event.message.starts_with("canary:"));
    let mut checks = vec![
        Check {
            expectation: format!(
                "no drift alert and no drifting day in the stable phase (largest feature PSI {:.3})",
                largest_psi(Phase::Stable)
            ),
            passed: !drift_alert_in(Phase::Stable) && drifting_days(Phase::Stable) == 0,
        },
        Check {
            expectation: format!(
                "drift detected in the covariate-drift phase (largest feature PSI {:.3})",
                largest_psi(Phase::CovariateDrift)
            ),
            passed: drift_alert_in(Phase::CovariateDrift) || drifting_days(Phase::CovariateDrift) > 0,
        },
        Check {
            expectation: format!(
                "drift detected in the concept-drift phase (largest feature PSI {:.3})",
                largest_psi(Phase::ConceptDrift)
            ),
            passed: drifting_days(Phase::ConceptDrift) > 0,
        },
        Check {
            expectation: "a performance alert in the concept-drift phase".into(),
            passed: performance_alert_in_concept,
        },
        Check {
            expectation: format!("served scores equal offline scores ({} rows compared)", served_offline.0),
            passed: served_offline.0 > 0 && served_offline.1 <= 1e-12,
        },
    ];
    match options.scenario {
        Scenario::Fraud => {
            checks.push(Check {
                expectation: "the retrained challenger was promoted".into(),
                passed: promoted && final_champion != first_champion,
            });
            checks.push(Check {
                expectation: "no rollback".into(),
                passed: !loop_events.iter().any(|event| event.message.starts_with("rolled back")),
            });
        }
        Scenario::BadChallenger => {
            checks.push(Check {
                expectation: "the corrupted challenger was rolled back during canary".into(),
                passed: rolled_back_in_canary,
            });
            checks.push(Check {
                expectation: "the first champion still serves".into(),
                passed: !promoted && final_champion == first_champion,
            });
        }
    }
    checks
}

/// What the report shows at one moment: the champion's drift and each version's labelled
/// outcomes over the window ending then.
pub(crate) struct ReportPoint {
    /// When.
    pub at_ms: i64,
    /// Drift of the champion's traffic, when there was enough.
    pub drift: Option<causeway_monitor::DriftReport>,
    /// Labelled outcomes per version.
    pub outcomes: BTreeMap<u32, causeway_monitor::VersionOutcomes>,
}

/// The report's frame: its title, subtitle and phase bands.
pub(crate) struct ReportFrame {
    /// The title.
    pub title: String,
    /// The line under it.
    pub subtitle: String,
    /// (from, to, name) of each phase.
    pub phases: Vec<(i64, i64, String)>,
    /// The window behind each point, for chart titles (`7-day window`).
    pub window: String,
}

fn simulated_frame(options: &DemoOptions, generator: &FraudGenerator) -> ReportFrame {
    let start = |day: u32| generator.day_start_ms(day);
    ReportFrame {
        title: format!("Causeway demo: {} (seed {})", options.scenario.as_str(), options.seed),
        subtitle: format!(
            "{} transactions a day for {} live days after {} days of history; labels arrive 1–5 days late. Every number below was computed by the loop itself.",
            options.transactions_per_day,
            options.live_days(),
            options.history_days
        ),
        phases: phases(options, start),
        window: "7-day window".into(),
    }
}

/// The three phases' bands, with `start` giving each day's start.
pub(crate) fn phases(options: &DemoOptions, start: impl Fn(u32) -> i64) -> Vec<(i64, i64, String)> {
    vec![
        (start(options.first_live_day()), start(options.covariate_day()), "stable".to_string()),
        (start(options.covariate_day()), start(options.concept_day()), "covariate drift".to_string()),
        (start(options.concept_day()), start(options.last_day()), "concept drift".to_string()),
    ]
}

/// Writes `data` as the self-contained `report.html` of the project in `dir`; returns its path.
pub(crate) fn write_report(dir: &Path, data: &ReportData) -> Result<PathBuf> {
    let path = dir.join("report.html");
    std::fs::write(&path, render_html(data)).map_err(|cause| Error::Io { path: path.display().to_string(), cause })?;
    Ok(path)
}

pub(crate) fn report_data(
    frame: ReportFrame,
    points: &[ReportPoint],
    versions: &[VersionSummary],
    events: &[Event],
    checks: &[Check],
) -> ReportData {
    let watched =
        ["amount", "merchant_category", "channel", "customer_mean_amount_30d", "email_domain_risk", "velocity_1h"];
    let mut drift_series: Vec<Series> =
        watched.iter().map(|name| Series { name: (*name).to_string(), points: Vec::new() }).collect();
    drift_series.push(Series { name: "score".into(), points: Vec::new() });
    let mut auc: BTreeMap<u32, Series> = BTreeMap::new();
    let mut recall: BTreeMap<u32, Series> = BTreeMap::new();
    for tick in points {
        if let Some(drift) = &tick.drift {
            for series in drift_series.iter_mut() {
                let value = if series.name == "score" {
                    Some(drift.score.psi)
                } else {
                    drift.features.iter().find(|feature| feature.name == series.name).map(|feature| feature.psi)
                };
                if let Some(value) = value {
                    series.points.push((tick.at_ms, value));
                }
            }
        }
        for (version, outcome) in &tick.outcomes {
            if outcome.positives >= 20 {
                auc.entry(*version)
                    .or_insert_with(|| Series { name: format!("v{version}"), points: Vec::new() })
                    .points
                    .push((tick.at_ms, outcome.roc_auc));
                recall
                    .entry(*version)
                    .or_insert_with(|| Series { name: format!("v{version}"), points: Vec::new() })
                    .points
                    .push((tick.at_ms, outcome.recall));
            }
        }
    }
    let format_metric = |value: Option<f64>| value.map_or_else(|| "–".to_string(), |value| format!("{value:.3}"));
    let version_rows = versions
        .iter()
        .map(|version| {
            vec![
                format!("v{}", version.version),
                version.flavor.clone(),
                version.dataset.clone(),
                format_metric(version.holdout.get("roc_auc").copied()),
                format_metric(version.holdout.get("recall").copied()),
                format_metric(version.holdout.get("false_positive_rate").copied()),
                format_metric(version.live_roc_auc),
                format_metric(version.live_recall),
                version.live_labeled.to_string(),
                version.aliases.join(", "),
            ]
        })
        .collect();
    let window = frame.window;
    ReportData {
        title: frame.title,
        subtitle: frame.subtitle,
        phases: frame.phases,
        tables: vec![
            Table {
                title: "Expectations".into(),
                headers: vec!["expectation".into(), "result".into()],
                rows: checks
                    .iter()
                    .map(|check| vec![check.expectation.clone(), if check.passed { "passed" } else { "FAILED" }.into()])
                    .collect(),
            },
            Table {
                title: "Model versions".into(),
                headers: [
                    "version",
                    "family",
                    "trained on",
                    "holdout ROC-AUC",
                    "holdout recall",
                    "holdout FPR",
                    "live ROC-AUC",
                    "live recall",
                    "live labelled",
                    "aliases",
                ]
                .map(String::from)
                .to_vec(),
                rows: version_rows,
            },
        ],
        charts: vec![
            Chart {
                title: format!("Drift of the champion's inputs and score (PSI, {window})"),
                y_label: "PSI".into(),
                series: drift_series,
                threshold: Some(0.2),
            },
            Chart {
                title: format!("Live ROC-AUC per model version (labelled, {window})"),
                y_label: "ROC-AUC".into(),
                series: auc.into_values().collect(),
                threshold: None,
            },
            Chart {
                title: format!("Live recall per model version at its threshold (labelled, {window})"),
                y_label: "recall".into(),
                series: recall.into_values().collect(),
                threshold: None,
            },
        ],
        events: events.iter().filter(|event| event.kind != EventKind::Data).cloned().collect(),
    }
}
