//! The loop's executor: each tick it observes one model (drift and labelled performance of its
//! traffic, the live comparison of a challenger, finished retraining jobs, queued commands),
//! asks the pure [`crate::machine::step`] what to do, and does it — events, retraining jobs, and
//! changes of who answers through the store's one rollout operation, written together with the
//! loop's state so a crash leaves both or neither.
//!
//! It changes only the store (aliases, traffic policies, events, its state); serving watches the
//! store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use causeway_models::{ModelArtifact, TaskKind};
use causeway_monitor::rules::Observation;
use causeway_monitor::{DriftReport, ModelBaseline, Notifier, TrafficSummary, VersionOutcomes};
use causeway_store::{Rollout, RolloutChange};
use causeway_types::{Event, RolloutMode, TrafficPolicy};

use crate::error::{Error, Result};
use crate::machine::{
    Action, Command, Health, LiveComparison, LoopState, Observations, RetrainOutcome, RolloutStep, Settings, Stage,
    step,
};
use crate::pipeline::{load_artifact, load_baseline};
use crate::project::Project;
use crate::retrain::{RetrainJob, Retrainer, run_job};
use crate::schedule::Cron;
use crate::windows::{Summarizer, Windows};

/// The fewest rows a drift window needs before drift is judged.
const MIN_DRIFT_ROWS: u64 = 500;

/// Where a model's loop state is stored.
pub fn state_key(model: &str) -> String {
    format!("loop/{model}")
}

/// The stored loop state of `model` (the default when the loop never ran).
pub fn load_state(project: &Project, model: &str) -> Result<LoopState> {
    match project.meta.state(&state_key(model))? {
        Some(value) => Ok(LoopState::from_stored(value)?),
        None => Ok(LoopState::default()),
    }
}

/// What one tick saw and did.
#[derive(Debug, Clone)]
pub struct TickReport {
    /// When it ran.
    pub at_ms: i64,
    /// The champion during the tick (after any promotion).
    pub champion: u32,
    /// The challenger, if any.
    pub challenger: Option<u32>,
    /// Drift of the champion's traffic, when there was enough.
    pub drift: Option<DriftReport>,
    /// Labelled outcomes per version over the performance window.
    pub outcomes: BTreeMap<u32, VersionOutcomes>,
    /// Events recorded during the tick.
    pub events: Vec<Event>,
}

/// How retraining jobs run.
pub enum Jobs {
    /// Within the tick that queued them, and the tick then decides on the result (the simulated
    /// demo and tests, whose clock only moves between ticks).
    Inline,
    /// On a thread of their own, one at a time per model; the next tick collects the result.
    /// `wake` is told when a job ends, so a scheduler can tick at once.
    Background {
        /// Told when a job ends.
        wake: Option<Sender<()>>,
    },
}

struct Running {
    job: u64,
    outcome: Receiver<RetrainOutcome>,
}

/// Drives one model's loop.
pub struct Controller {
    project: Arc<Project>,
    model: String,
    state: LoopState,
    retrainer: Retrainer,
    jobs: Jobs,
    running: Option<Running>,
    finished: Option<RetrainOutcome>,
    cron: Option<Cron>,
    notifier: Notifier,
    baselines: HashMap<u32, ModelBaseline>,
    artifacts: HashMap<u32, Arc<ModelArtifact>>,
    /// Brings the stored window summaries up to date before each tick (`None`: a caller that
    /// runs several controllers does it once for all).
    summarizer: Option<Summarizer>,
    /// The model's window summaries, kept between ticks.
    windows: Windows,
    /// The traffic generation this tick's decisions are based on: a change made meanwhile by
    /// anyone else (a person through MLflow or the CLI) makes the loop's change fail rather than
    /// overwrite it.
    generation: i64,
}

impl Controller {
    /// A controller for the project's `[model]`, running jobs inline, resuming its stored state.
    pub fn new(project: Arc<Project>, retrainer: Retrainer) -> Result<Self> {
        let model = project.config.model()?.name.clone();
        Self::for_model(project, &model, retrainer, Jobs::Inline)
    }

    /// A controller for `model`, resuming its stored state.
    pub fn for_model(project: Arc<Project>, model: &str, retrainer: Retrainer, jobs: Jobs) -> Result<Self> {
        let state = load_state(&project, model)?;
        let cron = project.config.rollout.cron()?;
        let notifier = Notifier::start(&project.config.monitor.notify, std::time::Duration::from_millis(500));
        let summarizer = Some(Summarizer::new(project.clone()));
        Ok(Self {
            project,
            model: model.to_string(),
            state,
            retrainer,
            jobs,
            running: None,
            finished: None,
            cron,
            notifier,
            baselines: HashMap::new(),
            artifacts: HashMap::new(),
            summarizer,
            windows: Windows::default(),
            generation: 0,
        })
    }

    /// Leaves bringing the window summaries up to date to the caller (who runs
    /// [`Summarizer::pass`] once before ticking several controllers).
    pub fn summarized_by_caller(mut self) -> Self {
        self.summarizer = None;
        self
    }

    /// The current state.
    pub fn state(&self) -> &LoopState {
        &self.state
    }

    /// The model it drives.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// True while a background retraining job runs.
    pub fn job_running(&self) -> bool {
        self.running.is_some()
    }

    fn baseline(&mut self, version: u32) -> Result<&ModelBaseline> {
        if !self.baselines.contains_key(&version) {
            let record = self.project.meta.model_version(&self.model, version)?;
            self.baselines.insert(version, load_baseline(&self.project, &record)?);
        }
        self.baselines.get(&version).ok_or_else(|| Error::Precondition(format!("no baseline for version {version}")))
    }

    fn artifact(&mut self, version: u32) -> Result<Arc<ModelArtifact>> {
        if let Some(artifact) = self.artifacts.get(&version) {
            return Ok(artifact.clone());
        }
        let record = self.project.meta.model_version(&self.model, version)?;
        let artifact = Arc::new(load_artifact(&self.project, &record)?);
        self.artifacts.insert(version, artifact.clone());
        Ok(artifact)
    }

    fn policy(&self) -> Result<TrafficPolicy> {
        self.project.meta.serving_policy(&self.model)?.ok_or_else(|| {
            Error::Precondition(format!("model `{}` has no champion yet: train and promote one first", self.model))
        })
    }

    /// Collects a background job that ended.
    fn poll_job(&mut self) {
        let Some(running) = &self.running else { return };
        match running.outcome.try_recv() {
            Ok(outcome) => {
                self.finished = Some(outcome);
                self.running = None;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => {
                let job = running.job;
                self.finished =
                    Some(RetrainOutcome::Failed { job, error: "the job's thread ended without a result".into() });
                self.running = None;
            }
        }
    }

    /// Starts (or, inline, runs) a retraining job.
    fn launch(&mut self, job: RetrainJob, champion: u32) {
        match &self.jobs {
            Jobs::Inline => {
                self.finished = Some(run_job(&self.project, &self.retrainer, &job, champion));
            }
            Jobs::Background { wake } => {
                let (sender, outcome) = channel();
                let (project, retrainer, wake) = (self.project.clone(), self.retrainer.clone(), wake.clone());
                let number = job.job;
                let spawned =
                    std::thread::Builder::new().name(format!("retrain-{}-{number}", job.model)).spawn(move || {
                        let _ = sender.send(run_job(&project, &retrainer, &job, champion));
                        if let Some(wake) = wake {
                            let _ = wake.send(());
                        }
                    });
                match spawned {
                    Ok(_) => self.running = Some(Running { job: number, outcome }),
                    Err(error) => {
                        self.finished = Some(RetrainOutcome::Failed {
                            job: number,
                            error: format!("cannot start its thread: {error}"),
                        })
                    }
                }
            }
        }
    }

    /// Measures, decides and acts at time `now`.
    pub fn tick(&mut self, now: i64) -> Result<TickReport> {
        if let Some(summarizer) = &mut self.summarizer {
            summarizer.pass(now)?;
        }
        let policy = self.policy()?;
        self.generation = policy.generation;
        self.state = load_state(&self.project, &self.model)?;
        self.poll_job();
        // A job the state says runs, which nothing runs (the control plane restarted): run it
        // again; it finds the version it may already have registered.
        if let Stage::Retraining { job, since_ms } = self.state.stage
            && self.running.is_none()
            && self.finished.as_ref().is_none_or(|finished| finished.job() != job)
        {
            let reason = "resumed after a restart".to_string();
            self.launch(RetrainJob { model: self.model.clone(), job, reason, now_ms: since_ms }, policy.champion);
        }
        let commands = self.take_commands()?;
        let mut events = Vec::new();
        let (mut observed, drift, outcomes) = self.observe(now, &policy)?;
        observed.commands = commands;
        observed.retrained = self.finished.take();
        loop {
            let task = self.task(observed.champion)?;
            let windowed = self.project.config.model.as_ref().is_some_and(|model| model.timestamp_column.is_some());
            let settings = Settings { section: &self.project.config.rollout, cron: self.cron.as_ref(), task, windowed };
            let decided = step(&self.state, settings, &observed);
            let launched = self.apply(decided.state, decided.actions, now, &mut events)?;
            // Inline, a job queued in this tick has already ended: decide on it at once.
            match (launched, self.finished.take()) {
                (true, Some(outcome)) => {
                    let policy = self.policy()?;
                    observed = Observations::quiet(now, policy.champion, policy.challenger);
                    observed.retrained = Some(outcome);
                }
                (_, finished) => {
                    self.finished = finished;
                    break;
                }
            }
        }
        let policy = self.project.meta.serving_policy(&self.model)?;
        Ok(TickReport {
            at_ms: now,
            champion: policy.as_ref().map_or(observed.champion, |policy| policy.champion),
            challenger: policy.and_then(|policy| policy.challenger),
            drift,
            outcomes,
            events,
        })
    }

    fn task(&mut self, champion: u32) -> Result<TaskKind> {
        Ok(self.artifact(champion)?.task.kind())
    }

    fn take_commands(&self) -> Result<Vec<Command>> {
        let mut commands = Vec::new();
        for queued in self.project.meta.take_loop_commands(&self.model)? {
            match serde_json::from_str::<Command>(&queued.command) {
                Ok(command) => commands.push(command),
                Err(error) => tracing::warn!(command = %queued.command, %error, "ignoring a malformed loop command"),
            }
        }
        Ok(commands)
    }

    /// Applies a step's actions and stores its state (with the rollout change, when there is
    /// one, in the same transaction). Returns whether a retraining job was launched.
    fn apply(&mut self, state: LoopState, actions: Vec<Action>, now: i64, events: &mut Vec<Event>) -> Result<bool> {
        let key = state_key(&self.model);
        let value = serde_json::to_value(&state)?;
        let mut stored = false;
        let mut jobs = Vec::new();
        for action in actions {
            match action {
                Action::Record { kind, actor, message, details } => {
                    let mut event =
                        Event { id: 0, at_ms: now, kind, actor, subject: self.model.clone(), message, details };
                    event.id = self.project.meta.record_event(&event)?;
                    self.notifier.notify(&event);
                    events.push(event);
                }
                Action::Roll { step, reason } => {
                    let change = match step {
                        RolloutStep::Shadow(version) => {
                            RolloutChange::Challenger { version, mode: RolloutMode::Shadow }
                        }
                        RolloutStep::Canary(version, share) => {
                            RolloutChange::Challenger { version, mode: RolloutMode::Canary { share } }
                        }
                        RolloutStep::Promote(version) => RolloutChange::Champion(version),
                        RolloutStep::RollBack => RolloutChange::EndRollout,
                    };
                    let rollout = Rollout {
                        model: &self.model,
                        change,
                        expected_generation: Some(self.generation),
                        actor: "loop",
                        at_ms: now,
                        reason,
                    };
                    let policy = self.project.meta.apply_rollout_with_state(&rollout, &key, &value)?;
                    self.generation = policy.map_or(self.generation + 1, |policy| policy.generation);
                    stored = true;
                }
                Action::Retrain { job, reason } => {
                    jobs.push(RetrainJob { model: self.model.clone(), job, reason, now_ms: now })
                }
            }
        }
        if !stored {
            self.project.meta.put_state(&key, &value)?;
        }
        self.state = state;
        // Jobs start only once the state that names them is stored: a crash before leaves no job,
        // a crash after finds it in the state and runs it again.
        let launched = !jobs.is_empty();
        if launched {
            let champion = self.policy()?.champion;
            for job in jobs {
                self.launch(job, champion);
            }
        }
        Ok(launched)
    }

    /// Reads the windows of predictions and labels from their stored summaries and measures what
    /// the step decides on.
    fn observe(
        &mut self,
        now: i64,
        policy: &TrafficPolicy,
    ) -> Result<(Observations, Option<DriftReport>, BTreeMap<u32, VersionOutcomes>)> {
        let rules = self.project.config.monitor.clone();
        let champion = policy.champion;
        let mut observed = Observations::quiet(now, champion, policy.challenger);
        let drift_from = now - rules.drift_window.millis();
        let performance_from = now - rules.performance_window.millis();
        let shadow_since = match self.state.stage {
            Stage::Canary { shadow_since_ms, .. } => Some(shadow_since_ms),
            Stage::Shadow { since_ms, .. } => Some(since_ms),
            _ => None,
        };
        let earliest = rules
            .alerts
            .iter()
            .map(|rule| now - rule.window.millis())
            .chain([drift_from, performance_from, shadow_since.unwrap_or(now)])
            .min()
            .unwrap_or(now);
        self.windows.refresh(&self.project, &self.model, earliest)?;
        let windows = std::mem::take(&mut self.windows);
        // Each distinct window is added up once (the drift and performance windows, and rules'
        // windows, are often the same).
        let mut traffic_from: HashMap<i64, BTreeMap<u32, (TrafficSummary, i64)>> = HashMap::new();
        let mut outcomes_from: HashMap<i64, BTreeMap<u32, VersionOutcomes>> = HashMap::new();
        for from in rules.alerts.iter().map(|rule| now - rule.window.millis()).chain([drift_from, performance_from]) {
            if let std::collections::hash_map::Entry::Vacant(entry) = traffic_from.entry(from) {
                let traffic = entry.insert(windows.traffic(from, false));
                outcomes_from.insert(from, self.outcomes(&windows, traffic, from));
            }
        }

        // Drift of the champion's traffic against its training baseline, judged only over a
        // full window, so a partial first day is not compared with a week.
        let drift = match traffic_from.get(&drift_from).and_then(|traffic| traffic.get(&champion)) {
            Some((traffic, first_ms))
                if traffic.predictions >= MIN_DRIFT_ROWS
                    && *first_ms <= drift_from + rules.drift_window.millis() / 10 =>
            {
                Some(traffic.drift_report(self.baseline(champion)?))
            }
            _ => None,
        };
        let mut monitor: Vec<Observation> = drift.as_ref().map(|report| rules.check_drift(report)).unwrap_or_default();

        // Labelled performance per version over the performance window.
        let outcomes = outcomes_from.get(&performance_from).cloned().unwrap_or_default();
        if let Some(champion_outcomes) = outcomes.get(&champion) {
            let holdout = self.project.meta.model_version(&self.model, champion)?.metrics;
            monitor.extend(rules.check_performance(champion_outcomes, &holdout));
        }
        // Rules of the project's own, on the champion's traffic of each rule's window.
        for rule in &rules.alerts {
            let from = now - rule.window.millis();
            let empty = TrafficSummary::default();
            let traffic = traffic_from.get(&from).and_then(|traffic| traffic.get(&champion)).map_or(&empty, |(t, _)| t);
            let outcomes = outcomes_from.get(&from).and_then(|outcomes| outcomes.get(&champion));
            monitor.extend(rule.observe(traffic, outcomes));
        }
        observed.monitor = monitor;

        if let (Some(since), Some(challenger)) = (shadow_since, self.state.stage.challenger()) {
            let scored =
                windows.traffic(since, true).remove(&challenger).map(|(traffic, _)| traffic).unwrap_or_default();
            observed.shadow_predictions = scored.predictions;
            let p99 = scored.latency.quantile_ms(0.99);
            let (requests, errors) = self.project.meta.serving_totals(&self.model, challenger, since)?;
            observed.challenger_health = Health {
                requests,
                errors,
                predictions: scored.predictions,
                p99_latency_ms: if p99.is_nan() { 0.0 } else { p99 },
            };
            observed.live = self.live_comparison(&windows, since, champion, challenger)?;
        }
        if self.project.config.rollout.volume.is_some() {
            let trained_ms = self.project.meta.model_version(&self.model, champion)?.created_ms;
            observed.labels_since_champion = self.project.meta.labels_arrived_between(trained_ms, now)?;
        }
        self.windows = windows;
        Ok((observed, drift, outcomes))
    }

    /// Labelled outcomes per version over the buckets from `from_ms` on (`traffic`: their
    /// traffic over the same buckets).
    fn outcomes(
        &mut self,
        windows: &Windows,
        traffic: &BTreeMap<u32, (TrafficSummary, i64)>,
        from_ms: i64,
    ) -> BTreeMap<u32, VersionOutcomes> {
        let labelled = windows.outcomes(from_ms, false);
        let mut outcomes = BTreeMap::new();
        for (version, (summary, _)) in traffic {
            let task = self.artifact(*version).map_or(TaskKind::Binary, |artifact| artifact.task.kind());
            let labelled = labelled.get(version).cloned().unwrap_or_default();
            outcomes.insert(*version, labelled.outcomes(*version, summary.predictions, task));
        }
        outcomes
    }

    /// The labelled outcomes of champion and challenger on the requests both scored since `since`.
    fn live_comparison(
        &mut self,
        windows: &Windows,
        since: i64,
        champion: u32,
        challenger: u32,
    ) -> Result<Option<LiveComparison>> {
        let sums = windows.paired(champion, challenger, since);
        if sums.counts.pairs == 0 {
            return Ok(None);
        }
        let task = |controller: &mut Self, version| {
            controller.artifact(version).map_or(TaskKind::Binary, |artifact| artifact.task.kind())
        };
        let (champion_task, challenger_task) = (task(self, champion), task(self, challenger));
        Ok(Some(LiveComparison {
            champion: sums.champion.outcomes(champion, sums.counts.pairs, champion_task),
            challenger: sums.challenger.outcomes(challenger, sums.counts.pairs, challenger_task),
            paired: sums.evidence(),
        }))
    }
}

/// What a command sent to the loop changed, when it was applied at once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Applied {
    /// The command took effect: the sentence the loop recorded.
    Done(String),
    /// It changed nothing (resuming a loop that was not paused, …).
    Unchanged(String),
    /// A control plane runs the loop: it applies the command at its next tick.
    Queued {
        /// The control plane holding the lease.
        leader: String,
    },
    /// No control plane runs the loop and the command needs a tick (a retraining): it is queued
    /// for the next one (`causeway loop run --once` runs one now).
    NeedsTick,
}

/// Sends `command` to `model`'s loop. When a control plane runs the loop (holds the lease), the
/// command is queued for its next tick; otherwise pause and resume are applied to the stored
/// state at once, and a retraining is queued for the next tick ([`Applied::NeedsTick`]).
pub fn send_command(project: &Project, model: &str, command: &Command, now: i64) -> Result<Applied> {
    let text = serde_json::to_string(command)?;
    if let Some(lease) = project.meta.lease(crate::live::LEASE)?
        && lease.expires_ms > now
    {
        project.meta.queue_loop_command(model, &text, now)?;
        return Ok(Applied::Queued { leader: lease.holder });
    }
    if matches!(command, Command::Retrain { .. }) {
        project.meta.queue_loop_command(model, &text, now)?;
        return Ok(Applied::NeedsTick);
    }
    let state = load_state(project, model)?;
    let outcome = crate::machine::command(&state, command, now);
    let message = outcome.actions.iter().find_map(|action| match action {
        Action::Record { message, .. } => Some(message.clone()),
        _ => None,
    });
    for action in &outcome.actions {
        if let Action::Record { kind, actor, message, details } = action {
            project.meta.record_event(&Event {
                id: 0,
                at_ms: now,
                kind: *kind,
                actor: actor.clone(),
                subject: model.to_string(),
                message: message.clone(),
                details: details.clone(),
            })?;
        }
    }
    project.meta.put_state(&state_key(model), &serde_json::to_value(&outcome.state)?)?;
    Ok(match message {
        Some(message) => Applied::Done(message),
        None => Applied::Unchanged(match command {
            Command::Pause { .. } => "the loop was already paused; nothing changed".into(),
            Command::Resume { .. } => "retraining was not paused; nothing changed".into(),
            Command::Retrain { .. } => String::new(),
        }),
    })
}
