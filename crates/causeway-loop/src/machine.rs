//! The loop's decisions as a pure state machine: [`step`] takes the stored [`LoopState`], what
//! was observed this tick ([`Observations`]) and the settings, and returns the next state and
//! the [`Action`]s to apply. It does no IO and reads no clock, so every transition is tested
//! step by step; [`crate::controller::Controller`] gathers the observations and applies the
//! actions (through the store's one rollout operation).
//!
//! Stages: idle → retraining (a queued job) → shadow → canary → promoted (idle again) or rolled
//! back (idle and paused). A pause (after a rollback, or by a person) stops triggers and every
//! step forward; a canary that regresses is still rolled back while paused.

use causeway_models::TaskKind;
use causeway_monitor::rules::{Observation, RuleState};
use causeway_monitor::{PairedEvidence, VersionOutcomes};
use causeway_types::{EventKind, RuleKind, Span, format_date};
use serde::{Deserialize, Serialize};

use crate::config::{Gates, LoopSection, Trigger};
use crate::schedule::Cron;

/// Where a model's rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Only the champion serves; the loop watches for triggers.
    Idle,
    /// A retraining job runs (queued off the tick); its result decides what comes next.
    Retraining {
        /// The job's number (per model).
        job: u64,
        /// When it was queued.
        since_ms: i64,
    },
    /// The challenger scores every request in shadow.
    Shadow {
        /// The challenger version.
        challenger: u32,
        /// When shadow started.
        since_ms: i64,
    },
    /// The challenger answers a share of requests.
    Canary {
        /// The challenger version.
        challenger: u32,
        /// When canary started.
        since_ms: i64,
        /// When shadow started (the live comparison covers both).
        shadow_since_ms: i64,
    },
}

impl Stage {
    /// The challenger the loop is rolling out, if any.
    pub fn challenger(self) -> Option<u32> {
        match self {
            Self::Shadow { challenger, .. } | Self::Canary { challenger, .. } => Some(challenger),
            Self::Idle | Self::Retraining { .. } => None,
        }
    }

    /// When the stage began (`None` when idle).
    pub fn since_ms(self) -> Option<i64> {
        match self {
            Self::Idle => None,
            Self::Retraining { since_ms, .. } | Self::Shadow { since_ms, .. } | Self::Canary { since_ms, .. } => {
                Some(since_ms)
            }
        }
    }

    /// The stage's name for people and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Retraining { .. } => "retraining",
            Self::Shadow { .. } => "shadow",
            Self::Canary { .. } => "canary",
        }
    }
}

/// Who paused the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// The loop itself, after rolling a challenger back.
    Rollback,
    /// A person (`causeway loop pause`).
    Person,
}

/// A pause: no trigger starts a retraining and no rollout steps forward until it is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When it began.
    pub since_ms: i64,
    /// Who paused.
    pub cause: PauseCause,
}

/// The last decision the loop took, for `causeway loop status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When.
    pub at_ms: i64,
    /// What and why, for people.
    pub message: String,
}

/// One measured value against the bound it is judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// What is measured (`recall`, `drift:amount`, `shadow predictions`, …).
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The bound.
    pub bound: f64,
    /// True when the value must be at least the bound, false when at most.
    pub at_least: bool,
    /// Whether the value is on the right side of the bound (live comparisons: or not
    /// significantly beyond it).
    pub passing: bool,
    /// Live comparisons: the one-sided p-value that the bound is broken by chance.
    #[serde(default)]
    pub p_value: Option<f64>,
}

/// What the loop had seen at its last tick, for `causeway loop status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it was seen.
    pub at_ms: i64,
    /// Labelled outcomes behind the live comparison (the challenger's), or the champion's.
    pub labelled: u64,
    /// Each check's value against its bound.
    pub measures: Vec<Measure>,
}

/// One model's durable loop state (stored under `loop/<model>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// The rollout stage.
    pub stage: Stage,
    /// Set while the loop is paused.
    #[serde(default)]
    pub paused: Option<Pause>,
    /// When the last retraining started.
    pub last_retrain_ms: Option<i64>,
    /// Firing alert rules.
    pub rules: RuleState,
    /// Rollbacks so far.
    pub rollbacks: u32,
    /// The number the next retraining job gets.
    #[serde(default)]
    pub next_job: u64,
    /// Until when the schedule has been considered (its next due time is after this).
    #[serde(default)]
    pub schedule_checked_ms: Option<i64>,
    /// The last decision.
    #[serde(default)]
    pub last_decision: Option<Decision>,
    /// What the last tick saw.
    #[serde(default)]
    pub evidence: Evidence,
}

impl Default for LoopState {
    fn default() -> Self {
        Self {
            stage: Stage::Idle,
            paused: None,
            last_retrain_ms: None,
            rules: RuleState::default(),
            rollbacks: 0,
            next_job: 1,
            schedule_checked_ms: None,
            last_decision: None,
            evidence: Evidence::default(),
        }
    }
}

impl LoopState {
    /// Reads a stored state, also one written before pauses and jobs existed (whose stage could
    /// be `paused`).
    pub fn from_stored(mut value: serde_json::Value) -> serde_json::Result<Self> {
        let legacy_pause = value.pointer("/stage/stage").and_then(serde_json::Value::as_str) == Some("paused");
        if legacy_pause {
            let since_ms = value.pointer("/stage/since_ms").cloned().unwrap_or(serde_json::Value::from(0));
            value["stage"] = serde_json::json!({"stage": "idle"});
            value["paused"] = serde_json::json!({"since_ms": since_ms, "cause": "rollback"});
        }
        let mut state: Self = serde_json::from_value(value)?;
        state.next_job = state.next_job.max(1);
        Ok(state)
    }

    /// When the schedule next comes due, given the state.
    pub fn next_scheduled_ms(&self, cron: Option<&Cron>) -> Option<i64> {
        cron.and_then(|cron| cron.next_after(self.schedule_checked_ms?))
    }
}

/// What a person asked of the loop (`causeway loop pause|resume|retrain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Stop triggers and every step forward.
    Pause {
        /// Who asked.
        by: String,
    },
    /// Undo a pause (the loop's own or a person's).
    Resume {
        /// Who asked.
        by: String,
    },
    /// Retrain now, whatever the triggers and cool-down say.
    Retrain {
        /// Who asked.
        by: String,
    },
}

impl Command {
    /// The command for people: `pause by cli`.
    pub fn describe(&self) -> String {
        match self {
            Self::Pause { by } => format!("pause by {by}"),
            Self::Resume { by } => format!("resume by {by}"),
            Self::Retrain { by } => format!("retrain by {by}"),
        }
    }
}

/// How a retraining job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RetrainOutcome {
    /// A challenger was registered and judged by the gates.
    Registered {
        /// The job.
        job: u64,
        /// The new version.
        version: u32,
        /// What it is and how it compares, for people.
        summary: String,
        /// Failed gates (empty: it passed).
        failures: Vec<String>,
        /// The metrics behind the summary (for the event's details).
        details: serde_json::Value,
    },
    /// The job failed before a version was registered.
    Failed {
        /// The job.
        job: u64,
        /// Why.
        error: String,
    },
}

impl RetrainOutcome {
    /// The job it ends.
    pub fn job(&self) -> u64 {
        match self {
            Self::Registered { job, .. } | Self::Failed { job, .. } => *job,
        }
    }
}

/// Labelled outcomes of champion and challenger on the same requests (since shadow began).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveComparison {
    /// The champion's outcomes.
    pub champion: VersionOutcomes,
    /// The challenger's outcomes.
    pub challenger: VersionOutcomes,
    /// Where they disagree on the same requests.
    pub paired: PairedEvidence,
}

/// What the controller observed for one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// The tick's time.
    pub now_ms: i64,
    /// The stored champion.
    pub champion: u32,
    /// The stored challenger.
    pub challenger: Option<u32>,
    /// Monitoring rules checked this tick.
    pub monitor: Vec<Observation>,
    /// Predictions the challenger scored since its shadow began.
    pub shadow_predictions: u64,
    /// The live comparison, while a challenger runs.
    pub live: Option<LiveComparison>,
    /// A retraining job that ended since the last tick.
    pub retrained: Option<RetrainOutcome>,
    /// What people asked for since the last tick.
    pub commands: Vec<Command>,
    /// Labelled predictions that arrived after the champion was trained.
    pub labels_since_champion: u64,
    /// The challenger's health since its shadow began, as the serving replicas measured it.
    pub challenger_health: Health,
}

/// Requests, errors and latency of a version, over every serving replica.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// Requests it scored.
    pub requests: u64,
    /// Of those, how many failed.
    pub errors: u64,
    /// Logged predictions behind the latency.
    pub predictions: u64,
    /// The 99th percentile of their scoring latency, in milliseconds.
    pub p99_latency_ms: f64,
}

impl Observations {
    /// A tick that saw nothing but the stored policy.
    pub fn quiet(now_ms: i64, champion: u32, challenger: Option<u32>) -> Self {
        Self {
            now_ms,
            champion,
            challenger,
            monitor: Vec::new(),
            shadow_predictions: 0,
            live: None,
            retrained: None,
            commands: Vec::new(),
            labels_since_champion: 0,
            challenger_health: Health::default(),
        }
    }
}

/// The settings a step decides by.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// `[loop]`.
    pub section: &'a LoopSection,
    /// `[loop] schedule`, parsed.
    pub cron: Option<&'a Cron>,
    /// The model's task (its live metrics).
    pub task: TaskKind,
    /// Whether retraining reads a window of time (a time column) or every row.
    pub windowed: bool,
}

/// A change of who answers, which the executor applies through the store's rollout operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RolloutStep {
    /// The challenger scores every request, never answers.
    Shadow(u32),
    /// The challenger answers `share` of requests.
    Canary(u32, f64),
    /// The challenger becomes the champion.
    Promote(u32),
    /// The challenger is dropped.
    RollBack,
}

/// What the executor does after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Change who answers.
    Roll {
        /// The change.
        step: RolloutStep,
        /// Why, for the audit event.
        reason: &'static str,
    },
    /// Queue a retraining job.
    Retrain {
        /// Its number.
        job: u64,
        /// What triggered it.
        reason: String,
    },
    /// Write an event.
    Record {
        /// Its kind.
        kind: EventKind,
        /// Who acted (`loop`, `monitor`, or the person).
        actor: String,
        /// A sentence for people.
        message: String,
        /// Structured details.
        details: serde_json::Value,
    },
}

/// The next state and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state after the step.
    pub state: LoopState,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

struct Stepper {
    state: LoopState,
    actions: Vec<Action>,
    now: i64,
}

impl Stepper {
    fn record(&mut self, kind: EventKind, actor: &str, message: String, details: serde_json::Value) {
        if kind == EventKind::Loop {
            self.state.last_decision = Some(Decision { at_ms: self.now, message: message.clone() });
        }
        self.actions.push(Action::Record { kind, actor: actor.into(), message, details });
    }

    fn roll(&mut self, step: RolloutStep, reason: &'static str) {
        self.actions.push(Action::Roll { step, reason });
    }
}

/// Decides one tick: the next state and the actions, from the state, what was observed and the
/// settings. Pure: no IO, no clock.
pub fn step(state: &LoopState, settings: Settings<'_>, observed: &Observations) -> Step {
    let mut stepper = Stepper { state: state.clone(), actions: Vec::new(), now: observed.now_ms };
    reconcile(&mut stepper, observed);
    let mut manual = None;
    for command in &observed.commands {
        if let Some(by) = apply_command(&mut stepper, command) {
            manual = Some(by);
        }
    }
    alerts(&mut stepper, observed);
    // A stage entered by a finished job is not stepped again in the same tick.
    let before = stepper.state.stage;
    retrained(&mut stepper, observed);
    if stepper.state.stage == before {
        match stepper.state.stage {
            Stage::Idle => triggers(&mut stepper, settings, observed, manual.take()),
            Stage::Retraining { .. } => {}
            Stage::Shadow { challenger, since_ms } => shadow(&mut stepper, settings, observed, challenger, since_ms),
            Stage::Canary { challenger, since_ms, .. } => {
                canary(&mut stepper, settings, observed, challenger, since_ms);
            }
        }
    }
    if let Some(by) = manual {
        let stage = stepper.state.stage.name();
        stepper.record(
            EventKind::Loop,
            &by,
            format!("the retraining {by} asked for was not started: the loop is in {stage}; it retrains when idle"),
            serde_json::json!({"refused": "retrain", "stage": stage}),
        );
    }
    Step { state: stepper.state, actions: stepper.actions }
}

/// A rollout the loop was running that someone else ended or changed: the loop lets it go.
fn reconcile(stepper: &mut Stepper, observed: &Observations) {
    let Some(challenger) = stepper.state.stage.challenger() else { return };
    if observed.challenger == Some(challenger) {
        return;
    }
    stepper.state.stage = Stage::Idle;
    stepper.record(
        EventKind::Loop,
        "loop",
        format!(
            "the rollout of v{challenger} was ended outside the loop (champion is now v{}); the loop starts over from there",
            observed.champion
        ),
        serde_json::json!({"ended": challenger, "champion": observed.champion}),
    );
}

/// Applies one command alone, outside a tick (no control plane runs): pause and resume change
/// the state; a retraining is left for a tick (it needs the job queue).
pub fn command(state: &LoopState, command: &Command, now: i64) -> Step {
    let mut stepper = Stepper { state: state.clone(), actions: Vec::new(), now };
    apply_command(&mut stepper, command);
    Step { state: stepper.state, actions: stepper.actions }
}

/// Applies pause and resume; returns who asked for a retraining, if the command is one.
fn apply_command(stepper: &mut Stepper, command: &Command) -> Option<String> {
    match command {
        Command::Pause { by } => {
            if stepper.state.paused.is_none() {
                stepper.state.paused = Some(Pause { since_ms: stepper.now, cause: PauseCause::Person });
                stepper.record(
                    EventKind::Loop,
                    by,
                    format!(
                        "loop paused by {by}: no retraining starts and no rollout steps forward until `causeway loop resume`"
                    ),
                    serde_json::json!({"paused": true}),
                );
            }
            None
        }
        Command::Resume { by } => {
            if stepper.state.paused.take().is_some() {
                stepper.state.last_retrain_ms = None;
                stepper.record(EventKind::Loop, by, "retraining resumed".into(), serde_json::json!({"paused": false}));
            }
            None
        }
        Command::Retrain { by } => Some(by.clone()),
    }
}

fn alerts(stepper: &mut Stepper, observed: &Observations) {
    for transition in stepper.state.rules.update(&observed.monitor, stepper.now) {
        let (kind, verb) =
            if transition.started { (EventKind::Alert, "alert") } else { (EventKind::Resolved, "resolved") };
        let details = serde_json::to_value(&transition.observation).unwrap_or(serde_json::Value::Null);
        stepper.actions.push(Action::Record {
            kind,
            actor: "monitor".into(),
            message: format!("{verb}: {}", transition.observation.message),
            details,
        });
    }
    if !observed.monitor.is_empty() && stepper.state.stage.challenger().is_none() {
        stepper.state.evidence = Evidence {
            at_ms: stepper.now,
            labelled: 0,
            measures: observed
                .monitor
                .iter()
                .map(|observation| Measure {
                    name: observation.rule.to_string(),
                    value: observation.value,
                    bound: observation.limit,
                    at_least: !observation.limit_is_max,
                    passing: !observation.firing,
                    p_value: None,
                })
                .collect(),
        };
    }
}

fn retrained(stepper: &mut Stepper, observed: &Observations) {
    let Stage::Retraining { job, .. } = stepper.state.stage else { return };
    let Some(outcome) = observed.retrained.as_ref().filter(|outcome| outcome.job() == job) else { return };
    stepper.state.stage = Stage::Idle;
    match outcome {
        RetrainOutcome::Failed { error, .. } => {
            let message = format!("retraining job {job} failed: {error}; the champion v{} stays", observed.champion);
            stepper.state.last_decision = Some(Decision { at_ms: stepper.now, message: message.clone() });
            stepper.record(EventKind::Alert, "loop", message, serde_json::json!({"job": job, "error": error}));
        }
        RetrainOutcome::Registered { version, summary, failures, details, .. } => {
            stepper.record(EventKind::Loop, "loop", format!("challenger {summary}"), details.clone());
            if failures.is_empty() {
                stepper.roll(RolloutStep::Shadow(*version), "passed gates");
                stepper.state.stage = Stage::Shadow { challenger: *version, since_ms: stepper.now };
                stepper.record(
                    EventKind::Loop,
                    "loop",
                    format!("gates passed: v{version} enters shadow (scored on every request, never returned)"),
                    serde_json::json!({"stage": "shadow", "challenger": version}),
                );
            } else {
                stepper.record(
                    EventKind::Loop,
                    "loop",
                    format!(
                        "gates failed: v{version} rejected ({}); champion v{} stays",
                        failures.join("; "),
                        observed.champion
                    ),
                    serde_json::json!({"rejected": version, "failures": failures}),
                );
            }
        }
    }
}

/// In idle: starts a retraining when a trigger fires (or a person asked), outside the cool-down.
fn triggers(stepper: &mut Stepper, settings: Settings<'_>, observed: &Observations, manual: Option<String>) {
    let section = settings.section;
    let now = stepper.now;
    let mut reasons: Vec<String> = Vec::new();
    let wants = |trigger: Trigger| section.retrain_on.contains(&trigger);
    for rule in stepper.state.rules.firing() {
        let kind = rule.kind();
        if (kind == RuleKind::Performance && wants(Trigger::Performance))
            || (kind == RuleKind::Drift && wants(Trigger::Drift))
        {
            reasons.push(rule.to_string());
        }
    }
    // The schedule: due when its next time after the last check has come.
    if let Some(cron) = settings.cron {
        match stepper.state.schedule_checked_ms {
            None => stepper.state.schedule_checked_ms = Some(now),
            Some(checked) => {
                if cron.next_after(checked).is_some_and(|due| due <= now) {
                    if wants(Trigger::Schedule) {
                        reasons.push(format!("schedule `{cron}`"));
                    }
                    stepper.state.schedule_checked_ms = Some(now);
                }
            }
        }
    }
    if let Some(volume) = section.volume.filter(|_| wants(Trigger::Volume))
        && observed.labels_since_champion >= volume
    {
        reasons.push(format!(
            "volume ({} labelled predictions since the champion was trained)",
            observed.labels_since_champion
        ));
    }
    let manual_reason = manual.map(|by| format!("manual request by {by}"));
    if manual_reason.is_none() {
        if reasons.is_empty() || stepper.state.paused.is_some() {
            return;
        }
        if stepper.state.last_retrain_ms.is_some_and(|last| now - last < section.cooldown.millis()) {
            return;
        }
    }
    let reason = match manual_reason {
        Some(manual) => manual,
        None => reasons.join(", "),
    };
    let job = stepper.state.next_job.max(1);
    stepper.state.next_job = job + 1;
    stepper.state.last_retrain_ms = Some(now);
    stepper.state.stage = Stage::Retraining { job, since_ms: now };
    stepper.actions.push(Action::Retrain { job, reason: reason.clone() });
    stepper.record(
        EventKind::Loop,
        "loop",
        if settings.windowed {
            format!(
                "retraining triggered by {reason} on the last {} of labelled data",
                describe(section.retrain_window)
            )
        } else {
            format!("retraining triggered by {reason} on every labelled row")
        },
        serde_json::json!({"triggers": reasons, "job": job, "reason": reason}),
    );
}

/// `30d` as "30 days", `90s` as "90s".
pub fn describe(span: Span) -> String {
    let days = span.millis() / causeway_types::DAY_MS;
    if span.millis() % causeway_types::DAY_MS == 0 {
        return format!("{days} day{}", if days == 1 { "" } else { "s" });
    }
    span.to_string()
}

/// The fewest requests before a challenger's error rate is judged.
const MIN_HEALTH_REQUESTS: u64 = 20;
/// The fewest predictions before a challenger's latency is judged.
const MIN_LATENCY_PREDICTIONS: u64 = 100;

/// Why the challenger's error rate over every replica ends its rollout, if it does: above
/// `max_error_rate`, and significantly so.
fn error_rate_breach(section: &LoopSection, health: &Health) -> Option<String> {
    if health.requests < MIN_HEALTH_REQUESTS {
        return None;
    }
    let p_value =
        causeway_monitor::paired::rate_exceeds_p_value(health.errors, health.requests, section.max_error_rate);
    let rate = health.errors as f64 / health.requests as f64;
    (rate > section.max_error_rate && p_value < 1.0 - section.confidence).then(|| {
        format!(
            "its error rate {:.2}% on {} requests is above {:.2}% (p {p_value:.2e})",
            rate * 100.0,
            health.requests,
            section.max_error_rate * 100.0
        )
    })
}

/// Why the challenger's p99 latency ends its rollout, if it does.
fn latency_breach(section: &LoopSection, health: &Health) -> Option<String> {
    let bound = section.max_p99_latency_ms?;
    (health.predictions >= MIN_LATENCY_PREDICTIONS && health.p99_latency_ms > bound).then(|| {
        format!(
            "its p99 latency {:.2} ms over {} predictions is above {bound} ms",
            health.p99_latency_ms, health.predictions
        )
    })
}

/// Why the challenger's health, as the replicas measured it, ends its rollout, if it does.
fn unhealthy(section: &LoopSection, health: &Health) -> Option<String> {
    error_rate_breach(section, health).or_else(|| latency_breach(section, health))
}

fn health_measures(section: &LoopSection, health: &Health) -> Vec<Measure> {
    let mut measures = vec![Measure {
        name: "error rate".into(),
        value: health.errors as f64 / health.requests.max(1) as f64,
        bound: section.max_error_rate,
        at_least: false,
        passing: error_rate_breach(section, health).is_none(),
        p_value: None,
    }];
    if let Some(bound) = section.max_p99_latency_ms {
        measures.push(Measure {
            name: "p99 latency (ms)".into(),
            value: health.p99_latency_ms,
            bound,
            at_least: false,
            passing: latency_breach(section, health).is_none(),
            p_value: None,
        });
    }
    measures
}

fn shadow(stepper: &mut Stepper, settings: Settings<'_>, observed: &Observations, challenger: u32, since_ms: i64) {
    let section = settings.section;
    if let Some(reason) = unhealthy(section, &observed.challenger_health) {
        stepper.state.evidence.measures = health_measures(section, &observed.challenger_health);
        return roll_back(stepper, observed.champion, challenger, reason);
    }
    let elapsed = stepper.now - since_ms;
    stepper.state.evidence = Evidence {
        at_ms: stepper.now,
        labelled: observed.live.as_ref().map_or(0, |live| live.challenger.labeled),
        measures: vec![
            Measure {
                name: "time in shadow (s)".into(),
                value: elapsed as f64 / 1000.0,
                bound: section.shadow.millis() as f64 / 1000.0,
                at_least: true,
                passing: elapsed >= section.shadow.millis(),
                p_value: None,
            },
            Measure {
                name: "shadow predictions".into(),
                value: observed.shadow_predictions as f64,
                bound: section.shadow_min_predictions as f64,
                at_least: true,
                passing: observed.shadow_predictions >= section.shadow_min_predictions,
                p_value: None,
            },
        ],
    };
    stepper.state.evidence.measures.extend(health_measures(section, &observed.challenger_health));
    if stepper.state.paused.is_some()
        || elapsed < section.shadow.millis()
        || observed.shadow_predictions < section.shadow_min_predictions
    {
        return;
    }
    let share = section.canary_share;
    stepper.roll(RolloutStep::Canary(challenger, share), "shadow passed");
    stepper.state.stage = Stage::Canary { challenger, since_ms: stepper.now, shadow_since_ms: since_ms };
    stepper.record(
        EventKind::Loop,
        "loop",
        format!(
            "canary: v{challenger} now answers {:.0}% of requests (after {} in shadow)",
            share * 100.0,
            describe(section.shadow)
        ),
        serde_json::json!({"stage": "canary", "challenger": challenger, "share": share}),
    );
}

/// The verdict on a live comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveVerdict {
    /// Too few labelled outcomes to judge.
    TooFew {
        /// Labelled outcomes so far (positives for binary tasks).
        have: u64,
        /// Needed.
        need: u64,
    },
    /// The challenger regressed: why.
    Regressed(Vec<String>),
    /// The challenger holds up.
    Holds,
}

/// Judges the challenger against the champion on the same labelled requests, by the task's
/// gate metrics and paired one-sided tests at `confidence`: a metric counts as a regression only
/// when it is worse than the bound (the champion's value minus the tolerance, or the absolute
/// bound) *and* the test says so with that confidence — McNemar on the requests where the
/// versions disagree for recall and accuracy, a binomial test of the false-positive rate against
/// its bound, a paired z-test on squared errors for RMSE. ROC-AUC is shown, never decisive (a
/// rank statistic two noisy samples move a lot). Returns each check as a measure.
pub fn judge_live(
    gates: &Gates,
    task: TaskKind,
    min_labelled: u64,
    confidence: f64,
    live: &LiveComparison,
) -> (LiveVerdict, Vec<Measure>) {
    use causeway_monitor::paired::{binomial_half_tail, normal_upper_tail, rate_exceeds_p_value};
    let alpha = 1.0 - confidence;
    let (old, new, paired) = (&live.champion, &live.challenger, &live.paired);
    let metric = |outcomes: &VersionOutcomes, name: &str| outcomes.metrics.get(name).copied().unwrap_or(f64::NAN);
    let mut measures = Vec::new();
    // A measure whose bound is broken with significance `p_value` fails.
    let mut check = |name: &str, value: f64, bound: f64, at_least: bool, p_value: Option<f64>| {
        let beyond = if at_least { value < bound } else { value > bound };
        let significant = p_value.is_some_and(|p| p < alpha);
        measures.push(Measure {
            name: name.into(),
            value,
            bound,
            at_least,
            passing: !(beyond && significant),
            p_value,
        });
    };
    let have = match task {
        TaskKind::Binary => {
            let lost = paired.positives_lost;
            check(
                "recall",
                new.recall,
                old.recall - gates.recall_tolerance,
                true,
                Some(binomial_half_tail(lost, lost + paired.positives_won)),
            );
            check("roc_auc", new.roc_auc, old.roc_auc - gates.auc_tolerance, true, None);
            check(
                "false_positive_rate",
                new.false_positive_rate,
                gates.max_false_positive_rate,
                false,
                Some(rate_exceeds_p_value(
                    paired.challenger_false_alarms,
                    paired.negatives,
                    gates.max_false_positive_rate,
                )),
            );
            new.positives
        }
        TaskKind::Multiclass => {
            let lost = paired.right_lost;
            check(
                "accuracy",
                metric(new, "accuracy"),
                metric(old, "accuracy") - gates.accuracy_tolerance,
                true,
                Some(binomial_half_tail(lost, lost + paired.right_won)),
            );
            new.labeled
        }
        TaskKind::Regression => {
            let deviation = paired.error_difference_deviation / (paired.pairs.max(1) as f64).sqrt();
            let p_value = if deviation > 0.0 {
                normal_upper_tail(paired.error_difference_mean / deviation)
            } else if paired.error_difference_mean > 0.0 {
                0.0
            } else {
                1.0
            };
            check(
                "rmse",
                metric(new, "rmse"),
                metric(old, "rmse") * (1.0 + gates.rmse_tolerance),
                false,
                Some(p_value),
            );
            new.labeled
        }
    };
    if have < min_labelled {
        return (LiveVerdict::TooFew { have, need: min_labelled }, measures);
    }
    let losses: Vec<String> = measures
        .iter()
        .filter(|measure| !measure.passing)
        .map(|measure| {
            let relation = if measure.at_least { "<" } else { ">" };
            let name = match measure.name.as_str() {
                "false_positive_rate" => "false-positive rate",
                "rmse" => "RMSE",
                other => other,
            };
            let p_value = measure.p_value.map(|p| format!(", p {p:.2e}")).unwrap_or_default();
            format!("live {name} {:.4} {relation} {:.4}{p_value}", measure.value, measure.bound)
        })
        .collect();
    if losses.is_empty() { (LiveVerdict::Holds, measures) } else { (LiveVerdict::Regressed(losses), measures) }
}

fn comparison(task: TaskKind, live: &LiveComparison) -> String {
    let (old, new) = (&live.champion, &live.challenger);
    let metric = |outcomes: &VersionOutcomes, name: &str| outcomes.metrics.get(name).copied().unwrap_or(f64::NAN);
    match task {
        TaskKind::Binary => format!(
            "on {} labelled requests ({} positives): ROC-AUC {:.3} vs {:.3}, recall {:.3} vs {:.3}, FPR {:.4} vs {:.4}",
            new.labeled,
            new.positives,
            new.roc_auc,
            old.roc_auc,
            new.recall,
            old.recall,
            new.false_positive_rate,
            old.false_positive_rate
        ),
        TaskKind::Multiclass => format!(
            "on {} labelled requests: accuracy {:.3} vs {:.3}",
            new.labeled,
            metric(new, "accuracy"),
            metric(old, "accuracy")
        ),
        TaskKind::Regression => format!(
            "on {} labelled requests: RMSE {:.4} vs {:.4}",
            new.labeled,
            metric(new, "rmse"),
            metric(old, "rmse")
        ),
    }
}

fn canary(stepper: &mut Stepper, settings: Settings<'_>, observed: &Observations, challenger: u32, since_ms: i64) {
    let section = settings.section;
    let Some(live) = &observed.live else { return };
    let (verdict, mut measures) =
        judge_live(&section.gates, settings.task, section.min_labeled_positives, section.confidence, live);
    measures.extend(health_measures(section, &observed.challenger_health));
    stepper.state.evidence = Evidence { at_ms: stepper.now, labelled: live.challenger.labeled, measures };
    if let Some(reason) = unhealthy(section, &observed.challenger_health) {
        return roll_back(stepper, observed.champion, challenger, reason);
    }
    let champion = observed.champion;
    let elapsed = stepper.now - since_ms;
    match verdict {
        LiveVerdict::TooFew { .. } => {
            if elapsed >= section.canary.times(3).millis() {
                roll_back(stepper, champion, challenger, "too few labelled outcomes to judge it".into());
            }
        }
        LiveVerdict::Regressed(losses) => {
            let reason = format!("{}; {}", losses.join("; "), comparison(settings.task, live));
            roll_back(stepper, champion, challenger, reason);
        }
        LiveVerdict::Holds => {
            if stepper.state.paused.is_some() || elapsed < section.canary.millis() {
                return;
            }
            stepper.roll(RolloutStep::Promote(challenger), "won canary");
            stepper.state.stage = Stage::Idle;
            stepper.state.rules.reset();
            stepper.record(
                EventKind::Loop,
                "loop",
                format!(
                    "promoted v{challenger} to champion, replacing v{champion}: it won {}",
                    comparison(settings.task, live)
                ),
                serde_json::json!({"promoted": challenger, "replaced": champion, "challenger": live.challenger, "champion": live.champion}),
            );
        }
    }
}

fn roll_back(stepper: &mut Stepper, champion: u32, challenger: u32, reason: String) {
    stepper.roll(RolloutStep::RollBack, "rolled back");
    stepper.state.rollbacks += 1;
    stepper.state.stage = Stage::Idle;
    stepper.state.paused = Some(Pause { since_ms: stepper.now, cause: PauseCause::Rollback });
    stepper.record(
        EventKind::Loop,
        "loop",
        format!("rolled back v{challenger}: champion v{champion} answers all traffic again ({reason})"),
        serde_json::json!({"rolled_back": challenger, "champion": champion, "reason": reason}),
    );
    stepper.record(
        EventKind::Alert,
        "loop",
        format!(
            "retraining paused on {} after a rollback: check the training labels, then run `causeway loop resume`",
            format_date(stepper.now)
        ),
        serde_json::json!({"paused": true}),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use causeway_types::{DAY_MS, RuleId};

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn section() -> LoopSection {
        LoopSection {
            shadow: Span::days(3),
            canary: Span::days(7),
            cooldown: Span::days(7),
            shadow_min_predictions: 100,
            min_labeled_positives: 40,
            ..LoopSection::default()
        }
    }

    fn settings(section: &LoopSection) -> Settings<'_> {
        Settings { section, cron: None, task: TaskKind::Binary, windowed: true }
    }

    fn recall(firing: bool) -> Observation {
        Observation {
            rule: RuleId::Performance("recall".into()),
            firing,
            value: if firing { 0.4 } else { 0.8 },
            limit: 0.65,
            message: "v1 recall".into(),
            hold_ms: 0,
            limit_is_max: false,
        }
    }

    fn outcomes(version: u32, positives: u64, recall: f64, roc_auc: f64, fpr: f64) -> VersionOutcomes {
        VersionOutcomes {
            version,
            predictions: 5_000,
            labeled: 5_000,
            positives,
            roc_auc,
            precision: 0.5,
            recall,
            false_positive_rate: fpr,
            metrics: BTreeMap::new(),
        }
    }

    fn seen(now: i64) -> Observations {
        Observations::quiet(now, 1, None)
    }

    fn rolls(step: &Step) -> Vec<RolloutStep> {
        step.actions
            .iter()
            .filter_map(|action| match action {
                Action::Roll { step, .. } => Some(*step),
                _ => None,
            })
            .collect()
    }

    fn messages(step: &Step) -> Vec<String> {
        step.actions
            .iter()
            .filter_map(|action| match action {
                Action::Record { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    fn retrains(step: &Step) -> Vec<(u64, String)> {
        step.actions
            .iter()
            .filter_map(|action| match action {
                Action::Retrain { job, reason } => Some((*job, reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn registered(job: u64, version: u32, failures: &[&str]) -> RetrainOutcome {
        RetrainOutcome::Registered {
            job,
            version,
            summary: format!("v{version} trained"),
            failures: failures.iter().map(|failure| failure.to_string()).collect(),
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_firing_trigger_queues_one_job_and_the_cool_down_holds_the_next() {
        let section = section();
        let quiet = step(&LoopState::default(), settings(&section), &seen(0));
        assert!(quiet.actions.is_empty() && quiet.state.stage == Stage::Idle);

        let mut observed = seen(DAY_MS);
        observed.monitor = vec![recall(true)];
        let fired = step(&quiet.state, settings(&section), &observed);
        assert_eq!(fired.state.stage, Stage::Retraining { job: 1, since_ms: DAY_MS });
        assert_eq!(retrains(&fired), vec![(1, "performance:recall".to_string())]);
        assert_eq!(messages(&fired)[0], "alert: v1 recall", "the alert is recorded once, first");
        assert!(messages(&fired)[1].starts_with("retraining triggered by performance:recall on the last 28 days"));

        // The job fails: back to idle; the rule still fires but the cool-down holds.
        let mut failed = seen(2 * DAY_MS);
        failed.retrained = Some(RetrainOutcome::Failed { job: 1, error: "no rows".into() });
        let after = step(&fired.state, settings(&section), &failed);
        assert_eq!(after.state.stage, Stage::Idle);
        assert!(retrains(&after).is_empty(), "inside the cool-down");
        assert!(messages(&after)[0].contains("retraining job 1 failed: no rows"));
        assert!(after.state.last_decision.as_ref().is_some_and(|decision| decision.message.contains("failed")));
        let later = step(&after.state, settings(&section), &seen(8 * DAY_MS + 1));
        assert_eq!(retrains(&later), vec![(2, "performance:recall".to_string())], "the next job has the next number");
        // A result of another job changes nothing.
        let mut stray = seen(9 * DAY_MS);
        stray.retrained = Some(registered(1, 5, &[]));
        assert_eq!(step(&later.state, settings(&section), &stray).state.stage, later.state.stage);
    }

    #[test]
    fn drift_triggers_only_when_configured() {
        let mut section = section();
        let mut observed = seen(DAY_MS);
        observed.monitor = vec![Observation {
            rule: RuleId::FeatureDrift("amount".into()),
            firing: true,
            value: 0.4,
            limit: 0.2,
            message: "`amount` drifted".into(),
            hold_ms: 0,
            limit_is_max: true,
        }];
        let ignored = step(&LoopState::default(), settings(&section), &observed);
        assert!(retrains(&ignored).is_empty() && ignored.state.rules.any_firing(RuleKind::Drift));
        section.retrain_on = vec![Trigger::Drift];
        let fired = step(&LoopState::default(), settings(&section), &observed);
        assert_eq!(retrains(&fired), vec![(1, "drift:amount".to_string())]);
    }

    #[test]
    fn a_challenger_that_passes_the_gates_enters_shadow_and_one_that_fails_is_rejected() {
        let section = section();
        let retraining =
            LoopState { stage: Stage::Retraining { job: 3, since_ms: 0 }, next_job: 4, ..LoopState::default() };
        let mut observed = seen(HOUR);
        observed.retrained = Some(registered(3, 2, &[]));
        let passed = step(&retraining, settings(&section), &observed);
        assert_eq!(passed.state.stage, Stage::Shadow { challenger: 2, since_ms: HOUR });
        assert_eq!(rolls(&passed), vec![RolloutStep::Shadow(2)]);
        assert_eq!(
            messages(&passed),
            vec!["challenger v2 trained", "gates passed: v2 enters shadow (scored on every request, never returned)"]
        );

        observed.retrained = Some(registered(3, 2, &["ROC-AUC 0.70 < 0.85"]));
        let rejected = step(&retraining, settings(&section), &observed);
        assert_eq!(rejected.state.stage, Stage::Idle);
        assert!(rolls(&rejected).is_empty());
        assert!(messages(&rejected)[1].contains("gates failed: v2 rejected (ROC-AUC 0.70 < 0.85); champion v1 stays"));
    }

    #[test]
    fn shadow_waits_for_its_duration_and_its_predictions_then_becomes_the_canary() {
        let section = section();
        let shadow = LoopState { stage: Stage::Shadow { challenger: 2, since_ms: 0 }, ..LoopState::default() };
        let mut observed = Observations::quiet(2 * DAY_MS, 1, Some(2));
        observed.shadow_predictions = 5_000;
        assert!(rolls(&step(&shadow, settings(&section), &observed)).is_empty(), "too early");
        observed.now_ms = 3 * DAY_MS;
        observed.shadow_predictions = 99;
        let waiting = step(&shadow, settings(&section), &observed);
        assert!(rolls(&waiting).is_empty(), "too few predictions");
        assert!(
            waiting
                .state
                .evidence
                .measures
                .iter()
                .any(|measure| measure.name == "shadow predictions" && !measure.passing)
        );
        observed.shadow_predictions = 100;
        let canary = step(&shadow, settings(&section), &observed);
        assert_eq!(rolls(&canary), vec![RolloutStep::Canary(2, 0.05)]);
        assert_eq!(canary.state.stage, Stage::Canary { challenger: 2, since_ms: 3 * DAY_MS, shadow_since_ms: 0 });
        assert_eq!(messages(&canary), vec!["canary: v2 now answers 5% of requests (after 3 days in shadow)"]);
    }

    fn canary_state() -> LoopState {
        LoopState {
            stage: Stage::Canary { challenger: 2, since_ms: 0, shadow_since_ms: -3 * DAY_MS },
            ..LoopState::default()
        }
    }

    fn canary_seen(now: i64, champion: VersionOutcomes, challenger: VersionOutcomes) -> Observations {
        canary_paired(now, champion, challenger, PairedEvidence::default())
    }

    fn canary_paired(
        now: i64,
        champion: VersionOutcomes,
        challenger: VersionOutcomes,
        paired: PairedEvidence,
    ) -> Observations {
        let mut observed = Observations::quiet(now, 1, Some(2));
        observed.live = Some(LiveComparison { champion, challenger, paired });
        observed
    }

    /// Paired evidence of a challenger that lost `lost` positives and raised false alarms on
    /// `false_alarms` of 5,000 negatives.
    fn worse(lost: u64, false_alarms: u64) -> PairedEvidence {
        PairedEvidence {
            pairs: 5_000,
            positives: 60,
            positives_lost: lost,
            negatives: 4_940,
            challenger_false_alarms: false_alarms,
            ..PairedEvidence::default()
        }
    }

    #[test]
    fn a_canary_that_holds_is_promoted_after_its_duration() {
        let section = section();
        let old = outcomes(1, 60, 0.6, 0.90, 0.01);
        let new = outcomes(2, 60, 0.7, 0.93, 0.01);
        let early = step(&canary_state(), settings(&section), &canary_seen(6 * DAY_MS, old.clone(), new.clone()));
        assert!(rolls(&early).is_empty());
        assert!(early.state.evidence.measures.iter().all(|measure| measure.passing), "{:?}", early.state.evidence);
        let mut firing = canary_state();
        firing.rules.update(&[recall(true)], 0);
        let promoted = step(&firing, settings(&section), &canary_seen(7 * DAY_MS, old, new));
        assert_eq!(rolls(&promoted), vec![RolloutStep::Promote(2)]);
        assert_eq!(promoted.state.stage, Stage::Idle);
        assert!(!promoted.state.rules.any_firing(RuleKind::Performance), "the new champion starts with no alerts");
        assert!(
            messages(&promoted)[0]
                .starts_with("promoted v2 to champion, replacing v1: it won on 5000 labelled requests")
        );
    }

    #[test]
    fn a_canary_that_regresses_is_rolled_back_and_the_loop_pauses_until_resumed() {
        let section = section();
        let old = outcomes(1, 60, 0.7, 0.93, 0.01);
        let new = outcomes(2, 60, 0.5, 0.93, 0.05);
        let rolled = step(&canary_state(), settings(&section), &canary_paired(DAY_MS, old, new, worse(12, 247)));
        assert_eq!(rolls(&rolled), vec![RolloutStep::RollBack]);
        assert_eq!(rolled.state.stage, Stage::Idle);
        assert_eq!(rolled.state.paused, Some(Pause { since_ms: DAY_MS, cause: PauseCause::Rollback }));
        assert_eq!(rolled.state.rollbacks, 1);
        let said = messages(&rolled);
        assert!(said[0].contains("rolled back v2: champion v1 answers all traffic again (live recall 0.5000 < 0.7000, p 2.44e-4; live false-positive rate 0.0500 > 0.0300, p"), "{said:?}");
        assert!(said[1].contains("then run `causeway loop resume`"));

        // Paused: a firing rule starts nothing.
        let mut observed = seen(20 * DAY_MS);
        observed.monitor = vec![recall(true)];
        let paused = step(&rolled.state, settings(&section), &observed);
        assert!(retrains(&paused).is_empty());
        // Resumed: the cool-down is forgotten and the firing rule starts a retraining at once.
        observed.monitor = Vec::new();
        observed.commands = vec![Command::Resume { by: "cli".into() }];
        let resumed = step(&paused.state, settings(&section), &observed);
        assert_eq!(resumed.state.paused, None);
        assert_eq!(messages(&resumed)[0], "retraining resumed");
        assert_eq!(retrains(&resumed).len(), 1);
    }

    #[test]
    fn a_challenger_that_fails_requests_or_is_slow_is_rolled_back_in_shadow_or_canary() {
        let mut section = section();
        section.max_p99_latency_ms = Some(20.0);
        let shadow = LoopState { stage: Stage::Shadow { challenger: 2, since_ms: 0 }, ..LoopState::default() };
        let mut observed = Observations::quiet(DAY_MS, 1, Some(2));
        observed.challenger_health = Health { requests: 200, errors: 3, predictions: 50, p99_latency_ms: 90.0 };
        let fine = step(&shadow, settings(&section), &observed);
        assert!(rolls(&fine).is_empty(), "1.5 % of 200 is not significantly above 1 %; 50 predictions are too few");
        observed.challenger_health.errors = 12;
        let failing = step(&shadow, settings(&section), &observed);
        assert_eq!(rolls(&failing), vec![RolloutStep::RollBack]);
        assert!(
            messages(&failing)[0].contains("its error rate 6.00% on 200 requests is above 1.00%"),
            "{:?}",
            messages(&failing)
        );
        let mut slow = canary_seen(DAY_MS, outcomes(1, 60, 0.7, 0.9, 0.01), outcomes(2, 60, 0.7, 0.9, 0.01));
        slow.challenger_health = Health { requests: 500, errors: 0, predictions: 500, p99_latency_ms: 35.5 };
        let rolled = step(&canary_state(), settings(&section), &slow);
        assert_eq!(rolls(&rolled), vec![RolloutStep::RollBack]);
        assert!(messages(&rolled)[0].contains("its p99 latency 35.50 ms over 500 predictions is above 20 ms"));
        assert!(
            rolled.state.evidence.measures.iter().any(|measure| measure.name == "p99 latency (ms)" && !measure.passing)
        );
    }

    #[test]
    fn a_canary_without_enough_labels_waits_then_is_rolled_back() {
        let section = section();
        let few = |now| canary_seen(now, outcomes(1, 10, 0.7, 0.9, 0.01), outcomes(2, 10, 0.7, 0.9, 0.01));
        let waiting = step(&canary_state(), settings(&section), &few(20 * DAY_MS));
        assert!(rolls(&waiting).is_empty());
        let given_up = step(&canary_state(), settings(&section), &few(21 * DAY_MS));
        assert_eq!(rolls(&given_up), vec![RolloutStep::RollBack]);
        assert!(messages(&given_up)[0].contains("too few labelled outcomes to judge it"));
    }

    #[test]
    fn a_rollout_ended_outside_the_loop_is_let_go() {
        let section = section();
        let shadow = LoopState { stage: Stage::Shadow { challenger: 2, since_ms: 0 }, ..LoopState::default() };
        let ended = step(&shadow, settings(&section), &Observations::quiet(DAY_MS, 3, None));
        assert_eq!(ended.state.stage, Stage::Idle);
        assert!(rolls(&ended).is_empty());
        assert!(messages(&ended)[0].contains("the rollout of v2 was ended outside the loop (champion is now v3)"));
    }

    #[test]
    fn a_person_can_pause_and_ask_for_a_retraining() {
        let section = section();
        let shadow = LoopState { stage: Stage::Shadow { challenger: 2, since_ms: 0 }, ..LoopState::default() };
        let mut observed = Observations::quiet(10 * DAY_MS, 1, Some(2));
        observed.shadow_predictions = 1_000;
        observed.commands = vec![Command::Pause { by: "ana".into() }];
        let paused = step(&shadow, settings(&section), &observed);
        assert!(rolls(&paused).is_empty(), "a paused shadow does not become the canary");
        assert!(messages(&paused)[0].starts_with("loop paused by ana"));
        // A regressing canary is rolled back even while paused.
        let mut canary = canary_state();
        canary.paused = paused.state.paused;
        let regressing =
            canary_paired(DAY_MS, outcomes(1, 60, 0.7, 0.93, 0.01), outcomes(2, 60, 0.3, 0.93, 0.01), worse(24, 0));
        assert_eq!(rolls(&step(&canary, settings(&section), &regressing)), vec![RolloutStep::RollBack]);

        // A manual retraining ignores triggers and the cool-down, but not a rollout in progress.
        let mut asked = seen(DAY_MS);
        asked.commands = vec![Command::Retrain { by: "ana".into() }];
        let recent = LoopState { last_retrain_ms: Some(0), ..LoopState::default() };
        let started = step(&recent, settings(&section), &asked);
        assert_eq!(retrains(&started), vec![(1, "manual request by ana".to_string())]);
        asked.challenger = Some(2);
        let refused = step(&shadow, settings(&section), &asked);
        assert!(retrains(&refused).is_empty());
        assert!(messages(&refused)[0].contains("the retraining ana asked for was not started: the loop is in shadow"));
        // Outside a tick, pause and resume apply alone.
        let alone = command(&LoopState::default(), &Command::Pause { by: "ana".into() }, 5);
        assert_eq!(alone.state.paused, Some(Pause { since_ms: 5, cause: PauseCause::Person }));
        assert!(command(&alone.state, &Command::Pause { by: "bo".into() }, 6).actions.is_empty(), "already paused");
    }

    #[test]
    fn the_schedule_and_the_volume_trigger_retraining() {
        let mut section = section();
        section.retrain_on = vec![Trigger::Schedule];
        let cron: Cron = "0 3 * * *".parse().expect("cron");
        let settings = Settings { section: &section, cron: Some(&cron), task: TaskKind::Binary, windowed: true };
        let first = step(&LoopState::default(), settings, &seen(0));
        assert!(retrains(&first).is_empty(), "the first tick only starts the clock");
        assert_eq!(first.state.next_scheduled_ms(Some(&cron)), Some(3 * HOUR));
        let before = step(&first.state, settings, &seen(3 * HOUR - 1));
        assert!(retrains(&before).is_empty());
        let due = step(&before.state, settings, &seen(3 * HOUR + 5));
        assert_eq!(retrains(&due), vec![(1, "schedule `0 3 * * *`".to_string())]);
        assert_eq!(due.state.next_scheduled_ms(Some(&cron)), Some(DAY_MS + 3 * HOUR));

        let mut volume = section.clone();
        volume.retrain_on = vec![Trigger::Volume];
        volume.volume = Some(1_000);
        let settings = Settings { section: &volume, cron: None, task: TaskKind::Binary, windowed: true };
        let mut observed = seen(DAY_MS);
        observed.labels_since_champion = 999;
        assert!(retrains(&step(&LoopState::default(), settings, &observed)).is_empty());
        observed.labels_since_champion = 1_000;
        let fired = step(&LoopState::default(), settings, &observed);
        assert_eq!(retrains(&fired)[0].1, "volume (1000 labelled predictions since the champion was trained)");
    }

    #[test]
    fn live_judging_follows_the_task() {
        let gates = Gates::default();
        let with = |version, metric: &str, value| {
            let mut outcomes = outcomes(version, 0, 0.0, 0.0, 0.0);
            outcomes.metrics.insert(metric.into(), value);
            outcomes
        };
        let lost = PairedEvidence { pairs: 5_000, right_lost: 300, right_won: 50, ..PairedEvidence::default() };
        let accuracy =
            LiveComparison { champion: with(1, "accuracy", 0.90), challenger: with(2, "accuracy", 0.85), paired: lost };
        let (verdict, _) = judge_live(&gates, TaskKind::Multiclass, 100, 0.95, &accuracy);
        assert!(
            matches!(verdict, LiveVerdict::Regressed(ref losses) if losses[0].contains("live accuracy 0.8500 < 0.8900")),
            "{verdict:?}"
        );
        let rmse = LiveComparison {
            champion: with(1, "rmse", 10.0),
            challenger: with(2, "rmse", 10.1),
            paired: PairedEvidence::default(),
        };
        assert_eq!(
            judge_live(&gates, TaskKind::Regression, 100, 0.95, &rmse).0,
            LiveVerdict::Holds,
            "1 % worse is within 2 %"
        );
        let larger_errors = PairedEvidence {
            pairs: 5_000,
            error_difference_mean: 5.0,
            error_difference_deviation: 40.0,
            ..PairedEvidence::default()
        };
        let rmse = LiveComparison {
            champion: with(1, "rmse", 10.0),
            challenger: with(2, "rmse", 10.5),
            paired: larger_errors,
        };
        assert!(matches!(judge_live(&gates, TaskKind::Regression, 100, 0.95, &rmse).0, LiveVerdict::Regressed(_)));
        assert_eq!(
            judge_live(&gates, TaskKind::Regression, 10_000, 0.95, &rmse).0,
            LiveVerdict::TooFew { have: 5_000, need: 10_000 }
        );
        // Worse on average but within noise: the same RMSE gap with errors that vary a lot.
        let noisy = PairedEvidence { error_difference_deviation: 400.0, ..larger_errors };
        let rmse = LiveComparison { paired: noisy, ..rmse };
        assert_eq!(judge_live(&gates, TaskKind::Regression, 100, 0.95, &rmse).0, LiveVerdict::Holds);
        // Binary: a recall drop of two positives out of sixty is noise, not a regression.
        let binary = LiveComparison {
            champion: outcomes(1, 60, 0.70, 0.93, 0.01),
            challenger: outcomes(2, 60, 0.67, 0.93, 0.01),
            paired: PairedEvidence { positives: 60, positives_lost: 3, positives_won: 1, ..PairedEvidence::default() },
        };
        let (verdict, measures) = judge_live(&gates, TaskKind::Binary, 40, 0.95, &binary);
        assert_eq!(verdict, LiveVerdict::Holds, "{measures:?}");
        assert!(measures.iter().any(|measure| measure.name == "recall" && measure.p_value.is_some_and(|p| p > 0.05)));
    }

    #[test]
    fn states_stored_before_pauses_and_jobs_still_read() {
        let stored = serde_json::json!({
            "stage": {"stage": "paused", "since_ms": 42},
            "last_retrain_ms": 7,
            "rules": {"firing": ["performance:recall", "drift:amount"]},
            "rollbacks": 1
        });
        let state = LoopState::from_stored(stored).expect("reads");
        assert_eq!(state.stage, Stage::Idle);
        assert_eq!(state.paused, Some(Pause { since_ms: 42, cause: PauseCause::Rollback }));
        assert!(state.rules.any_firing(RuleKind::Performance) && state.rules.any_firing(RuleKind::Drift));
        assert_eq!(state.next_job, 1);
        let round_trip = LoopState::from_stored(serde_json::to_value(&state).expect("json")).expect("reads");
        assert_eq!(round_trip, state);
    }
}
