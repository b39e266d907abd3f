//! `causeway demo fraud --live`: the fraud story told with real processes on wall-clock time. The
//! history is ingested and the first champion trained as in the simulated demo; then a control
//! plane (`causeway loop run`) and two serving replicas (`causeway serve`) start as children on
//! loopback, and the demo becomes their client: it sends each simulated day's transactions over
//! HTTP in a couple of seconds, posts their labels to `/v1/labels` as they come due (1–5
//! simulated days late), and watches the store for what the control plane decides. Nothing in
//! this module decides anything about the loop; it only drives traffic and reads the outcome.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use causeway_data::synthetic::{Phase, Transaction};
use causeway_loop::live::LEASE;
use causeway_loop::pipeline::{load_artifact, load_baseline};
use causeway_loop::project::Project;
use causeway_loop::{Error, Result};
use causeway_models::Predictor;
use causeway_monitor::drift::drift_report;
use causeway_monitor::{PredictionRecord, Role, outcomes_by_version, read_window};
use causeway_types::{CHAMPION, DAY_MS, Event, EventKind, FeatureValue, LabelRecord, Span};
use serde_json::{Value, json};

use crate::FRAUD_CONFIG;
use crate::processes::{Process, wait_until};
use crate::scenario::{
    Check, DemoOptions, DemoOutcome, Observer, Prepared, ReportFrame, ReportPoint, Timer, binary_judging, generator,
    phases, prepare, record_fields, report_data, require_fresh, summarize_versions, write_report,
};

/// The names of the serving replicas.
const REPLICAS: [&str; 2] = ["a", "b"];
/// The loop's tick in the live demo.
const TICK: Span = Span::seconds(1);
/// Simulated days of traffic after the loop promoted or rolled back, so the result serves.
const DAYS_AFTER_DECISION: u32 = 2;

/// How the live demo runs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The story's size and phases; `concept_days` is the most the concept phase may last (the
    /// demo stops [`DAYS_AFTER_DECISION`] days after the loop's decision).
    pub demo: DemoOptions,
    /// How long a simulated day lasts on the wall clock; every window, shadow and canary length
    /// of the demo's `causeway.toml` is scaled by it.
    pub day: Duration,
    /// The `causeway` executable the children run.
    pub executable: PathBuf,
}

impl LiveOptions {
    /// The defaults: 1,000 transactions a simulated day of 2 s; 6 stable days, 6 of covariate
    /// drift, at most 30 of concept drift.
    pub fn new(executable: PathBuf) -> Self {
        Self {
            demo: DemoOptions {
                transactions_per_day: 1_000,
                stable_days: 6,
                covariate_days: 6,
                concept_days: 30,
                ..DemoOptions::default()
            },
            day: Duration::from_secs(2),
            executable,
        }
    }
}

/// What only the live demo measures.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFigures {
    /// The wall-clock length of a simulated day, in seconds.
    pub day_seconds: f64,
    /// The loop's tick, in seconds.
    pub tick_seconds: f64,
    /// The children's command lines.
    pub commands: Vec<String>,
    /// Per replica: its address, requests it answered, requests that failed.
    pub replicas: Vec<(String, u64, u64)>,
    /// Requests each version answered.
    pub answered_by_version: BTreeMap<u32, u64>,
    /// Labels posted to `/v1/labels`.
    pub labels_posted: u64,
    /// From the first performance alert to the challenger's promotion: seconds, and the
    /// control plane's ticks in between.
    pub alert_to_promotion: Option<(f64, u64)>,
}

/// The demo's `causeway.toml` with every length of time scaled to simulated days of `day`
/// wall-clock time, the tick at one second, and retraining on the served predictions (the
/// replicas' features as served, with the labels that arrived over HTTP).
pub fn live_config(day: Duration) -> Result<String> {
    let days = |count: f64| Span::from_millis((count * day.as_millis() as f64).round() as i64).to_string();
    let replacements = [
        ("drift_window = \"7d\"", format!("drift_window = \"{}\"", days(7.0))),
        ("performance_window = \"14d\"", format!("performance_window = \"{}\"", days(7.0))),
        (
            "[loop]\nretrain_on = [\"performance\"]",
            format!("[loop]\ntick = \"{TICK}\"\nretrain_on = [\"performance\"]\ntrain_on = [\"predictions\"]"),
        ),
        ("retrain_window = \"28d\"", format!("retrain_window = \"{}\"", days(10.0))),
        ("cooldown = \"7d\"", format!("cooldown = \"{}\"", days(7.0))),
        ("shadow = \"3d\"", format!("shadow = \"{}\"\nshadow_min_predictions = 200", days(2.0))),
        ("canary = \"7d\"", format!("canary = \"{}\"", days(4.0))),
        ("canary_share = 0.05", "canary_share = 0.2".to_string()),
    ];
    let mut text =
        FRAUD_CONFIG.replace("# Causeway project: the fraud demo.", "# Causeway project: the live fraud demo.");
    for (from, to) in replacements {
        if !text.contains(from) {
            return Err(Error::Config(format!("the demo configuration lost `{from}`")));
        }
        text = text.replacen(from, &to, 1);
    }
    Ok(text)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// What a sender is handed.
enum Planned {
    /// A request to send at `at`.
    Request {
        at: Instant,
        id: String,
        body: String,
        label: f64,
        /// How long after it is sent its label arrives.
        delay: Duration,
    },
    /// Answer on this channel once every request before has been sent (the end of a day).
    Mark(SyncSender<()>),
}

/// What a sender did.
#[derive(Default)]
struct Sent {
    answered: u64,
    failed: u64,
    by_version: BTreeMap<u32, u64>,
    first_error: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends each planned request to `address` at its time; hands each answered one's label to the
/// labeller.
fn sender(
    address: String,
    model: String,
    plans: Receiver<Planned>,
    labels: SyncSender<(Instant, String, f64)>,
) -> Sent {
    let agent = agent();
    let url = format!("http://{address}/v1/models/{model}/score");
    let mut sent = Sent::default();
    while let Ok(plan) = plans.recv() {
        let (at, id, body, label, delay) = match plan {
            Planned::Request { at, id, body, label, delay } => (at, id, body, label, delay),
            Planned::Mark(done) => {
                let _ = done.send(());
                continue;
            }
        };
        // Traffic is paced by the simulated clock: each request goes out at its time of day.
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let answer = agent.post(&url).header("content-type", "application/json").send(body.as_bytes());
        let outcome = answer.map_err(|error| error.to_string()).and_then(|mut response| {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().map_err(|error| error.to_string())?;
            if status == 200 { Ok(text) } else { Err(format!("{status} {text}")) }
        });
        match outcome {
            Ok(text) => {
                sent.answered += 1;
                let version = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|answer| answer["version"].as_u64())
                    .unwrap_or_default();
                *sent.by_version.entry(version as u32).or_default() += 1;
                let _ = labels.send((Instant::now() + delay, id, label));
            }
            Err(error) => {
                sent.failed += 1;
                sent.first_error.get_or_insert(error);
            }
        }
    }
    sent
}

/// A label waiting for its arrival time (earliest first in a max-heap).
struct Due(Instant, String, f64);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.cmp(&self.0)
    }
}

/// Holds labels until they are due and posts them to the replicas' `/v1/labels` in batches;
/// labels not yet due when the traffic stops never arrive (as in life). Returns how many it posted.
fn labeller(
    addresses: Vec<String>,
    model: String,
    incoming: Receiver<(Instant, String, f64)>,
) -> (u64, Option<String>) {
    let agent = agent();
    let mut waiting: BinaryHeap<Due> = BinaryHeap::new();
    let (mut posted, mut first_error, mut turn) = (0u64, None, 0usize);
    loop {
        let timeout =
            waiting.peek().map_or(Duration::from_secs(3_600), |due| due.0.saturating_duration_since(Instant::now()));
        match incoming.recv_timeout(timeout) {
            Ok((at, id, label)) => {
                waiting.push(Due(at, id, label));
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return (posted, first_error),
        }
        let now = Instant::now();
        let mut batch = Vec::new();
        while batch.len() < 5_000 && waiting.peek().is_some_and(|due| due.0 <= now) {
            if let Some(Due(_, id, label)) = waiting.pop() {
                batch.push(json!({"request_id": id, "label": label}));
            }
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let address = &addresses[turn % addresses.len()];
        turn += 1;
        let body = json!({"model": model, "labels": batch}).to_string();
        let answer = agent
            .post(&format!("http://{address}/v1/labels"))
            .header("content-type", "application/json")
            .send(body.as_bytes());
        match answer {
            Ok(response) if response.status().as_u16() == 200 => posted += count,
            Ok(mut response) => {
                let text = response.body_mut().read_to_string().unwrap_or_default();
                first_error.get_or_insert(format!("{} {text}", response.status()));
            }
            Err(error) => {
                first_error.get_or_insert(error.to_string());
            }
        }
    }
}

/// The request body of a transaction sent at `sent_ms`: its fields, with the event time the
/// wall clock's (the simulated timestamp belongs to the generator's calendar).
fn request_body(transaction: &Transaction, sent_ms: i64) -> String {
    let mut fields = record_fields(transaction);
    fields.insert("timestamp".into(), FeatureValue::Number(sent_ms as f64));
    json!({"request_id": transaction.transaction_id, "fields": fields}).to_string()
}

/// A traffic sender's thread ended before the traffic did.
fn sender_stopped() -> Error {
    Error::Precondition("a traffic sender stopped".into())
}

/// One simulated day as it happened on the wall clock.
struct LiveDay {
    day: u32,
    from_ms: i64,
    to_ms: i64,
}

/// The replicas' `causeway_prediction_log_dropped` counters, summed.
fn dropped_records(addresses: &[String]) -> u64 {
    let agent = agent();
    addresses
        .iter()
        .filter_map(|address| agent.get(&format!("http://{address}/metrics")).call().ok())
        .filter_map(|mut response| response.body_mut().read_to_string().ok())
        .map(|text| {
            text.lines()
                .filter(|line| line.starts_with("causeway_prediction_log_dropped"))
                .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum()
}

/// Creates replica `name`'s directory: the project's configuration with `[storage]` naming the
/// project's own stores (metadata and artifacts are shared), and an online feature store of its
/// own materialized from the history.
fn prepare_replica(dir: &Path, name: &str, config_text: &str, prepared: &Prepared) -> Result<PathBuf> {
    let replica = dir.join("replicas").join(name);
    let state = dir.join(causeway_loop::project::STATE_DIR);
    let text = format!(
        "{config_text}\n# Replica {name}: the project's stores, an online store of its own.\n[storage]\nmetadata = \"sqlite://{}\"\nartifacts = \"{}\"\n",
        state.join("meta.db").display(),
        state.join("artifacts").display()
    );
    let project = Project::init(&replica, &text)?.0;
    let online = project.online()?;
    for view in &project.config.features()?.views {
        online.materialize(view, &prepared.data, now_ms())?;
    }
    online.flush()?;
    Ok(replica)
}

/// Runs the live demo in `dir` (which must not hold a project yet).
pub fn run_live_demo(dir: &Path, options: &LiveOptions, observer: &mut dyn Observer) -> Result<DemoOutcome> {
    require_fresh(dir)?;
    let dir = std::path::absolute(dir).map_err(|cause| Error::Io { path: dir.display().to_string(), cause })?;
    let mut timer = Timer { started: Instant::now(), timings: Vec::new() };
    // History ends at today's midnight (UTC): the first live day is today.
    let mut demo = options.demo.clone();
    demo.start_ms = now_ms().div_euclid(DAY_MS) * DAY_MS - i64::from(demo.history_days) * DAY_MS;
    let generator = generator(&demo);
    let config_text = live_config(options.day)?;
    let prepared = prepare(&dir, &demo, &config_text, &generator, observer, &mut timer)?;
    let project = prepared.project.clone();
    let model = prepared.model_name.clone();

    observer.step("starting a control plane and two serving replicas", 0);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|cause| Error::Io { path: logs.display().to_string(), cause })?;
    let text = |path: &Path| path.display().to_string();
    let mut control = Process::start(
        "the control plane",
        &options.executable,
        &["loop", "run", "--dir", &text(&dir), "--tick", &TICK.to_string()].map(String::from),
        logs.join("control-plane.log"),
        false,
    )?;
    wait_until(&mut control, "took the loop's lease", || {
        Ok(project.meta.lease(LEASE)?.is_some_and(|lease| lease.expires_ms > now_ms()))
    })?;
    let mut replicas = Vec::new();
    let mut addresses = Vec::new();
    for name in REPLICAS {
        let replica_dir = prepare_replica(&dir, name, &config_text, &prepared)?;
        let mut process = Process::start(
            &format!("replica {name}"),
            &options.executable,
            &[
                "serve",
                "--dir",
                &text(&replica_dir),
                "--listen",
                "127.0.0.1:0",
                "--reload-seconds",
                "1",
                "--log-flush",
                "500ms",
            ]
            .map(String::from),
            logs.join(format!("replica-{name}.log")),
            true,
        )?;
        addresses.push(process.read_address()?);
        replicas.push(process);
    }
    let commands: Vec<String> =
        std::iter::once(&control).chain(&replicas).map(|process| process.command.clone()).collect();
    for (process, address) in replicas.iter().zip(&addresses) {
        observer.event(&Event {
            id: 0,
            at_ms: now_ms(),
            kind: EventKind::Audit,
            actor: "demo".into(),
            subject: model.clone(),
            message: format!("{} serves on http://{address}", process.role),
            details: Value::Null,
        });
    }
    timer.lap("start control plane and replicas");

    // Traffic: one sender per replica, one labeller.
    let (label_sender, label_receiver) = sync_channel::<(Instant, String, f64)>(100_000);
    let labeller_thread = {
        let (addresses, model) = (addresses.clone(), model.clone());
        std::thread::spawn(move || labeller(addresses, model, label_receiver))
    };
    let mut plans: Vec<SyncSender<Planned>> = Vec::new();
    let mut senders: Vec<JoinHandle<Sent>> = Vec::new();
    for address in &addresses {
        let (plan_sender, plan_receiver) = sync_channel::<Planned>(20_000);
        let (address, model, labels) = (address.clone(), model.clone(), label_sender.clone());
        senders.push(std::thread::spawn(move || sender(address, model, plan_receiver, labels)));
        plans.push(plan_sender);
    }
    drop(label_sender);

    let day_length = options.day;
    let simulated_day_ms = DAY_MS as f64;
    let mut days: Vec<LiveDay> = Vec::new();
    let mut seen_event = project.meta.events(None)?.last().map_or(0, |event| event.id);
    let mut decided_on: Option<u32> = None;
    let last_day = demo.last_day();
    observer.step("live traffic over HTTP", u64::from(demo.live_days()));
    for day in demo.first_live_day()..last_day {
        let offset = day - demo.first_live_day();
        let day_begins = Instant::now();
        let from_ms = now_ms().max(days.last().map_or(0, |last: &LiveDay| last.to_ms));
        let transactions = generator.day(day);
        let count = transactions.len().max(1) as f64;
        for (index, transaction) in transactions.iter().enumerate() {
            let at = day_begins + day_length.mul_f64(index as f64 / count);
            let sent_ms = from_ms + (day_length.as_millis() as f64 * index as f64 / count) as i64;
            let delay_days = (transaction.label_arrival_ms - transaction.timestamp) as f64 / simulated_day_ms;
            let plan = Planned::Request {
                at,
                id: transaction.transaction_id.clone(),
                body: request_body(transaction, sent_ms),
                label: f64::from(u8::from(transaction.is_fraud)),
                delay: day_length.mul_f64(delay_days.max(0.0)),
            };
            if plans[index % plans.len()].send(plan).is_err() {
                return Err(sender_stopped());
            }
        }
        // The day ends on the wall clock once its requests went out (later, when the machine is
        // too slow for the pace); then the demo reads what the control plane did.
        let (done_sender, done) = sync_channel::<()>(plans.len());
        for plan in &plans {
            if plan.send(Planned::Mark(done_sender.clone())).is_err() {
                return Err(sender_stopped());
            }
        }
        for _ in 0..plans.len() {
            if done.recv().is_err() {
                return Err(sender_stopped());
            }
        }
        let wait = (day_begins + day_length).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        days.push(LiveDay { day, from_ms, to_ms: now_ms() });
        let fresh: Vec<Event> = project.meta.events(None)?.into_iter().filter(|event| event.id > seen_event).collect();
        for event in fresh {
            seen_event = event.id;
            if event.kind == EventKind::Data {
                continue;
            }
            if event.kind == EventKind::Loop
                && (event.message.starts_with("promoted") || event.message.starts_with("rolled back"))
            {
                decided_on.get_or_insert(day);
            }
            observer.event(&event);
        }
        let champion = project.meta.alias(&model, CHAMPION)?.unwrap_or(prepared.champion);
        observer.advance(
            u64::from(offset + 1),
            &format!("day {} ({}): champion v{champion}", offset + 1, generator.phase(day).as_str()),
        );
        if control.exited() {
            return Err(Error::Precondition(format!(
                "the control plane stopped; its log {} ends with:\n{}",
                control.log.display(),
                control.log_tail()
            )));
        }
        if decided_on.is_some_and(|decided| day >= decided + DAYS_AFTER_DECISION) {
            break;
        }
    }
    drop(plans);
    let sent: Vec<Sent> = senders.into_iter().map(|handle| handle.join().unwrap_or_default()).collect();
    let (labels_posted, label_error) = labeller_thread.join().unwrap_or((0, Some("the labeller panicked".into())));
    timer.lap("live traffic");

    observer.step("stopping the replicas and the control plane", 0);
    let dropped = dropped_records(&addresses);
    // Every replica is stopped, whatever the others did.
    let stopped: Vec<bool> = replicas.iter_mut().map(Process::stop).collect();
    let replicas_stopped = stopped.iter().all(|stopped| *stopped);
    let control_stopped = control.stop();
    timer.lap("stop processes");

    observer.step("reading what the loop did", 0);
    let live_from = days.first().map_or(prepared.first_live, |day| day.from_ms);
    let live_to = days.last().map_or(live_from, |day| day.to_ms) + 1;
    let mut records = read_window(&project.blobs, live_from, live_to + 60_000)?;
    records.retain(|record| record.model == model);
    records.sort_by_key(|record| record.timestamp_ms);
    let events = project.meta.events(None)?;
    let loop_events: Vec<Event> = events.iter().filter(|event| event.kind == EventKind::Loop).cloned().collect();
    let alerts: Vec<Event> = events.iter().filter(|event| event.kind == EventKind::Alert).cloned().collect();
    let final_champion = project.meta.alias(&model, CHAMPION)?.unwrap_or(prepared.champion);
    let labels = project.meta.labels_for(records.iter().map(|record| record.request_id.as_str()))?;
    let versions = summarize_versions(&project, &model, &records, &labels)?;
    let served_offline = compare_logged_with_offline(&project, &model, &records)?;
    let phase_of = |at_ms: i64| {
        days.iter().find(|day| at_ms >= day.from_ms && at_ms < day.to_ms).map(|day| generator.phase(day.day))
    };
    let alert_to_promotion = alert_to_promotion(&alerts, &loop_events, &phase_of);
    let (answered, failed) =
        sent.iter().fold((0, 0), |(answered, failed), sent| (answered + sent.answered, failed + sent.failed));
    let mut answered_by_version: BTreeMap<u32, u64> = BTreeMap::new();
    for part in &sent {
        for (version, count) in &part.by_version {
            *answered_by_version.entry(*version).or_default() += count;
        }
    }
    let first_error = sent.iter().find_map(|part| part.first_error.clone()).or(label_error);
    let checks = live_checks(LiveVerdict {
        alerts: &alerts,
        loop_events: &loop_events,
        phase_of: &phase_of,
        final_champion,
        first_champion: prepared.champion,
        served_offline,
        answered: &sent,
        failed,
        first_error,
        stopped: replicas_stopped && control_stopped,
    });
    let points = report_points(&project, &model, &records, &labels, &days, options.day)?;
    let frame = ReportFrame {
        title: format!("Causeway live demo: fraud (seed {})", demo.seed),
        subtitle: format!(
            "A control plane and two serving replicas as real processes; {} transactions a simulated day of {} over HTTP, labels 1–5 days late over /v1/labels. Every number below was computed by the loop itself.",
            demo.transactions_per_day,
            Span::from_millis(options.day.as_millis() as i64)
        ),
        phases: live_phases(&demo, &days),
        window: "7-day window".into(),
    };
    let report_path = write_report(&dir, &report_data(frame, &points, &versions, &events, &checks))?;
    timer.lap("report");
    Ok(DemoOutcome {
        dir: dir.clone(),
        report: report_path,
        versions,
        loop_events,
        alerts,
        checks,
        served_offline,
        timings: timer.timings,
        scored: answered,
        dropped,
        final_champion,
        live: Some(LiveFigures {
            day_seconds: options.day.as_secs_f64(),
            tick_seconds: TICK.millis() as f64 / 1_000.0,
            commands,
            replicas: addresses
                .iter()
                .zip(&sent)
                .map(|(address, sent)| (address.clone(), sent.answered, sent.failed))
                .collect(),
            answered_by_version,
            labels_posted,
            alert_to_promotion,
        }),
    })
}

/// The phases' bands on the wall clock.
fn live_phases(demo: &DemoOptions, days: &[LiveDay]) -> Vec<(i64, i64, String)> {
    let start = |day: u32| {
        days.iter()
            .find(|live| live.day == day)
            .map(|live| live.from_ms)
            .or_else(|| days.last().map(|last| last.to_ms))
            .unwrap_or_default()
    };
    phases(demo, start)
}

/// Seconds (and ticks) from the first performance alert of the concept-drift phase to the
/// promotion after it.
fn alert_to_promotion(
    alerts: &[Event],
    loop_events: &[Event],
    phase_of: &dyn Fn(i64) -> Option<Phase>,
) -> Option<(f64, u64)> {
    let alert = alerts
        .iter()
        .find(|event| is_performance_alert(event) && phase_of(event.at_ms) == Some(Phase::ConceptDrift))?;
    let promotion =
        loop_events.iter().find(|event| event.message.starts_with("promoted") && event.at_ms >= alert.at_ms)?;
    let seconds = (promotion.at_ms - alert.at_ms) as f64 / 1_000.0;
    Some((seconds, (promotion.at_ms - alert.at_ms).div_euclid(TICK.millis()) as u64))
}

fn is_performance_alert(event: &Event) -> bool {
    event.message.contains("recall") || event.message.contains("ROC-AUC")
}

/// Re-scores every logged served prediction from its logged features with the artifact of the
/// version that served it, and compares with the score the replica returned.
fn compare_logged_with_offline(project: &Project, model: &str, records: &[PredictionRecord]) -> Result<(usize, f64)> {
    let mut artifacts = HashMap::new();
    let (mut compared, mut largest) = (0, 0.0f64);
    for record in records.iter().filter(|record| record.role == Role::Served) {
        let artifact = match artifacts.entry(record.version) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(load_artifact(project, &project.meta.model_version(model, record.version)?)?)
            }
        };
        largest = largest.max((artifact.model.predict_row(&record.features) - record.score).abs());
        compared += 1;
    }
    Ok((compared, largest))
}

/// At the end of each simulated day: the champion's drift and each version's labelled outcomes
/// over the seven simulated days before, as they stood then.
fn report_points(
    project: &Project,
    model: &str,
    records: &[PredictionRecord],
    labels: &HashMap<String, LabelRecord>,
    days: &[LiveDay],
    day: Duration,
) -> Result<Vec<ReportPoint>> {
    let window_ms = 7 * day.as_millis() as i64;
    let versions = project.meta.model_versions(model)?;
    let judging = binary_judging(&versions);
    let mut baselines = HashMap::new();
    for version in &versions {
        baselines.insert(version.version, load_baseline(project, version)?);
    }
    let mut points = Vec::new();
    for live in days {
        let at = live.to_ms;
        let from = records.partition_point(|record| record.timestamp_ms < at - window_ms);
        let to = records.partition_point(|record| record.timestamp_ms < at);
        let window = &records[from..to];
        let known: HashMap<String, LabelRecord> = window
            .iter()
            .filter_map(|record| {
                labels
                    .get(&record.request_id)
                    .filter(|label| label.arrived_ms <= at)
                    .map(|label| (record.request_id.clone(), *label))
            })
            .collect();
        let outcomes = outcomes_by_version(window, &known, &judging);
        let champion = window.iter().rev().find(|record| record.role == Role::Served).map(|record| record.version);
        let drift = champion.and_then(|champion| {
            let served: Vec<&PredictionRecord> =
                window.iter().filter(|record| record.role == Role::Served && record.version == champion).collect();
            baselines.get(&champion).filter(|_| served.len() >= 200).map(|baseline| drift_report(baseline, &served))
        });
        points.push(ReportPoint { at_ms: at, drift, outcomes });
    }
    Ok(points)
}

/// What the live checks judge.
struct LiveVerdict<'a> {
    alerts: &'a [Event],
    loop_events: &'a [Event],
    phase_of: &'a dyn Fn(i64) -> Option<Phase>,
    final_champion: u32,
    first_champion: u32,
    served_offline: (usize, f64),
    answered: &'a [Sent],
    failed: u64,
    first_error: Option<String>,
    stopped: bool,
}

fn live_checks(verdict: LiveVerdict<'_>) -> Vec<Check> {
    let phase_of = verdict.phase_of;
    let drift_alert_in = |phase: Phase| {
        verdict.alerts.iter().any(|event| event.message.contains("drifted") && phase_of(event.at_ms) == Some(phase))
    };
    let promoted = verdict.loop_events.iter().any(|event| event.message.starts_with("promoted"));
    let rolled_back = verdict.loop_events.iter().any(|event| event.message.starts_with("rolled back"));
    let both_answered = verdict.answered.iter().all(|sent| sent.answered > 0);
    vec![
        Check {
            expectation: match &verdict.first_error {
                None => "both replicas answered traffic and no request failed".into(),
                Some(error) => format!(
                    "both replicas answered traffic and no request failed ({} failed; first: {error})",
                    verdict.failed
                ),
            },
            passed: both_answered && verdict.failed == 0 && verdict.first_error.is_none(),
        },
        Check { expectation: "no drift alert in the stable phase".into(), passed: !drift_alert_in(Phase::Stable) },
        Check {
            expectation: "a drift alert once the inputs drift".into(),
            passed: drift_alert_in(Phase::CovariateDrift) || drift_alert_in(Phase::ConceptDrift),
        },
        Check {
            expectation: "a performance alert in the concept-drift phase".into(),
            passed: verdict
                .alerts
                .iter()
                .any(|event| is_performance_alert(event) && phase_of(event.at_ms) == Some(Phase::ConceptDrift)),
        },
        Check {
            expectation: format!(
                "served scores equal offline scoring of the logged features ({} rows compared)",
                verdict.served_offline.0
            ),
            passed: verdict.served_offline.0 > 0 && verdict.served_offline.1 <= 1e-12,
        },
        Check {
            expectation: "the retrained challenger was promoted".into(),
            passed: promoted && verdict.final_champion != verdict.first_champion,
        },
        Check { expectation: "no rollback".into(), passed: !rolled_back },
        Check { expectation: "every process stopped cleanly on SIGTERM".into(), passed: verdict.stopped },
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use causeway_loop::ProjectConfig;
    use causeway_loop::config::TrainingSource;
    use causeway_types::Span;

    use super::live_config;

    #[test]
    fn the_live_configuration_scales_every_length_of_time_to_the_simulated_day() {
        let config = ProjectConfig::parse(&live_config(Duration::from_secs(2)).expect("config")).expect("parses");
        assert_eq!(config.monitor.drift_window, Span::seconds(14));
        assert_eq!(config.monitor.performance_window, Span::seconds(14));
        let rollout = &config.rollout;
        assert_eq!(rollout.tick, Span::seconds(1));
        assert_eq!(rollout.retrain_window, Span::seconds(20));
        assert_eq!(rollout.cooldown, Span::seconds(14));
        assert_eq!(rollout.shadow, Span::seconds(4));
        assert_eq!(rollout.canary, Span::seconds(8));
        assert_eq!(rollout.canary_share, 0.2);
        assert_eq!(rollout.train_on, vec![TrainingSource::Predictions]);
        // Half-second days still read as whole milliseconds.
        let short = ProjectConfig::parse(&live_config(Duration::from_millis(500)).expect("config")).expect("parses");
        assert_eq!(short.rollout.shadow, Span::seconds(1));
        assert_eq!(short.monitor.drift_window, Span::from_millis(3_500));
    }
}
