//! The loop controller: each tick it measures drift and labelled performance of the deployed
//! model, raises and resolves alerts, and moves the champion/challenger rollout forward:
//! retrain on a trigger → gates on a fresh holdout → shadow → canary → promote or roll back.
//!
//! It changes only the store (aliases, traffic policies, events); serving watches the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use causeway_models::ModelArtifact;
use causeway_monitor::drift::drift_report;
use causeway_monitor::rules::Observation;
use causeway_monitor::{
    DriftReport, Judging, ModelBaseline, PredictionRecord, RuleState, VersionOutcomes, outcomes_by_version, read_window,
};
use causeway_store::{Rollout, RolloutChange};
use causeway_types::{DAY_MS, Event, EventKind, RolloutMode, TrafficPolicy, format_date};
use serde::{Deserialize, Serialize};

use crate::config::Trigger;
use crate::error::{Error, Result};
use crate::pipeline::{Trained, evaluate, load_artifact, load_baseline};
use crate::project::Project;

/// The fewest rows a drift window needs before drift is judged.
const MIN_DRIFT_ROWS: usize = 500;

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Only the champion serves; the controller watches for triggers.
    Idle,
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
    /// Retraining is paused after a rollback until a person resumes it.
    Paused {
        /// Why.
        since_ms: i64,
    },
}

/// The controller's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// The rollout stage.
    pub stage: Stage,
    /// When the last retraining ran.
    pub last_retrain_ms: Option<i64>,
    /// Firing alert rules.
    pub rules: RuleState,
    /// Rollbacks so far.
    pub rollbacks: u32,
}

impl Default for LoopState {
    fn default() -> Self {
        Self { stage: Stage::Idle, last_retrain_ms: None, rules: RuleState::default(), rollbacks: 0 }
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

/// Produces a challenger when a trigger fires.
pub type Retrainer<'a> = Box<dyn Fn(&Project, i64) -> Result<Trained> + 'a>;

/// Drives one model's loop.
pub struct Controller<'a> {
    project: &'a Project,
    model: String,
    state: LoopState,
    retrainer: Retrainer<'a>,
    baselines: HashMap<u32, ModelBaseline>,
    artifacts: HashMap<u32, Arc<ModelArtifact>>,
    /// The traffic generation this tick's decisions are based on: a change made meanwhile by
    /// anyone else (a person through MLflow or the CLI) makes the loop's change fail rather than
    /// overwrite it.
    generation: i64,
}

fn state_key(model: &str) -> String {
    format!("loop/{model}")
}

impl<'a> Controller<'a> {
    /// A controller for the project's model, resuming its stored state.
    pub fn new(project: &'a Project, retrainer: Retrainer<'a>) -> Result<Self> {
        let model = project.config.model()?.name.clone();
        let state = match project.meta.state(&state_key(&model))? {
            Some(value) => serde_json::from_value(value)?,
            None => LoopState::default(),
        };
        Ok(Self {
            project,
            model,
            state,
            retrainer,
            baselines: HashMap::new(),
            artifacts: HashMap::new(),
            generation: 0,
        })
    }

    /// The current state.
    pub fn state(&self) -> &LoopState {
        &self.state
    }

    fn baseline(&mut self, version: u32) -> Result<&ModelBaseline> {
        if !self.baselines.contains_key(&version) {
            let record = self.project.meta.model_version(&self.model, version)?;
            self.baselines.insert(version, load_baseline(self.project, &record)?);
        }
        self.baselines.get(&version).ok_or_else(|| Error::Precondition(format!("no baseline for version {version}")))
    }

    fn artifact(&mut self, version: u32) -> Result<Arc<ModelArtifact>> {
        if let Some(artifact) = self.artifacts.get(&version) {
            return Ok(artifact.clone());
        }
        let record = self.project.meta.model_version(&self.model, version)?;
        let artifact = Arc::new(load_artifact(self.project, &record)?);
        self.artifacts.insert(version, artifact.clone());
        Ok(artifact)
    }

    fn record(
        &self,
        events: &mut Vec<Event>,
        at_ms: i64,
        kind: EventKind,
        actor: &str,
        message: String,
        details: serde_json::Value,
    ) -> Result<()> {
        let mut event =
            Event { id: 0, at_ms, kind, actor: actor.into(), subject: self.model.clone(), message, details };
        event.id = self.project.meta.record_event(&event)?;
        events.push(event);
        Ok(())
    }

    fn policy(&self) -> Result<Option<TrafficPolicy>> {
        Ok(self.project.meta.serving_policy(&self.model)?)
    }

    /// Changes who answers through the store's one operation, based on this tick's generation.
    fn roll(&mut self, change: RolloutChange, at_ms: i64, reason: &str) -> Result<()> {
        let rollout = Rollout {
            model: &self.model,
            change,
            expected_generation: Some(self.generation),
            actor: "loop",
            at_ms,
            reason,
        };
        let policy = self.project.meta.apply_rollout(&rollout)?;
        self.generation = policy.map_or(self.generation + 1, |policy| policy.generation);
        Ok(())
    }

    /// A rollout the loop was running that someone else ended or changed: the loop lets it go.
    fn reconcile(&mut self, policy: &TrafficPolicy, now: i64, events: &mut Vec<Event>) -> Result<()> {
        let running = match self.state.stage {
            Stage::Shadow { challenger, .. } | Stage::Canary { challenger, .. } => Some(challenger),
            _ => None,
        };
        if let Some(challenger) = running
            && policy.challenger != Some(challenger)
        {
            self.state.stage = Stage::Idle;
            self.record(
                events,
                now,
                EventKind::Loop,
                "loop",
                format!(
                    "the rollout of v{challenger} was ended outside the loop (champion is now v{}); the loop starts over from there",
                    policy.champion
                ),
                serde_json::json!({"ended": challenger, "champion": policy.champion}),
            )?;
        }
        Ok(())
    }

    /// Measures, alerts and advances the rollout at time `now`.
    pub fn tick(&mut self, now: i64) -> Result<TickReport> {
        let Some(policy) = self.policy()? else {
            return Err(Error::Precondition(format!(
                "model `{}` has no champion yet: train and promote one first",
                self.model
            )));
        };
        let rules = self.project.config.monitor.clone();
        let mut events = Vec::new();
        self.generation = policy.generation;
        self.reconcile(&policy, now, &mut events)?;
        let champion = policy.champion;
        let drift_from = now - i64::from(rules.drift_window_days) * DAY_MS;
        let performance_from = now - i64::from(rules.performance_window_days) * DAY_MS;
        let shadow_since = match self.state.stage {
            Stage::Canary { shadow_since_ms, .. } => shadow_since_ms,
            Stage::Shadow { since_ms, .. } => since_ms,
            _ => now,
        };
        let records = read_window(&self.project.blobs, drift_from.min(performance_from).min(shadow_since), now)?;
        let labels = {
            let ids: HashSet<&str> = records.iter().map(|record| record.request_id.as_str()).collect();
            let mut labels = self.project.meta.labels_for(ids)?;
            labels.retain(|_, label| label.arrived_ms <= now);
            labels
        };
        let mut thresholds = HashMap::new();
        for version in records.iter().map(|record| record.version).collect::<HashSet<_>>() {
            let artifact = self.artifact(version)?;
            thresholds.insert(version, Judging { task: artifact.task.kind(), threshold: artifact.threshold });
        }

        // Drift of the champion's traffic against its training baseline.
        let champion_window: Vec<&PredictionRecord> =
            records.iter().filter(|record| record.version == champion && record.timestamp_ms >= drift_from).collect();
        // Judge drift only over a full window, so a partial first day is not compared with a week.
        let window_covered = champion_window
            .first()
            .is_some_and(|first| first.timestamp_ms <= drift_from + i64::from(rules.drift_window_days) * DAY_MS / 10);
        let drift = if champion_window.len() >= MIN_DRIFT_ROWS && window_covered {
            let baseline = self.baseline(champion)?.clone();
            Some(drift_report(&baseline, &champion_window))
        } else {
            None
        };
        let mut observations: Vec<Observation> =
            drift.as_ref().map(|report| rules.check_drift(report)).unwrap_or_default();

        // Labelled performance per version over the performance window.
        let recent: Vec<PredictionRecord> =
            records.iter().filter(|record| record.timestamp_ms >= performance_from).cloned().collect();
        let outcomes = outcomes_by_version(&recent, &labels, &thresholds);
        if let Some(champion_outcomes) = outcomes.get(&champion) {
            let holdout = self.project.meta.model_version(&self.model, champion)?.metrics;
            observations.extend(rules.check_performance(champion_outcomes, &holdout));
        }
        for transition in self.state.rules.update(&observations) {
            let (kind, verb) =
                if transition.started { (EventKind::Alert, "alert") } else { (EventKind::Resolved, "resolved") };
            self.record(
                &mut events,
                now,
                kind,
                "monitor",
                format!("{verb}: {}", transition.observation.message),
                serde_json::to_value(&transition.observation)?,
            )?;
        }

        match self.state.stage {
            Stage::Idle => self.maybe_retrain(now, champion, &mut events)?,
            Stage::Shadow { challenger, since_ms } => {
                let shadow_days = i64::from(self.project.config.rollout.shadow_days);
                if now - since_ms >= shadow_days * DAY_MS {
                    let share = self.project.config.rollout.canary_share;
                    let canary = RolloutChange::Challenger { version: challenger, mode: RolloutMode::Canary { share } };
                    self.roll(canary, now, "shadow passed")?;
                    self.state.stage = Stage::Canary { challenger, since_ms: now, shadow_since_ms: since_ms };
                    self.record(
                        &mut events,
                        now,
                        EventKind::Loop,
                        "loop",
                        format!(
                            "canary: v{challenger} now answers {:.0}% of requests (after {shadow_days} days in shadow)",
                            share * 100.0
                        ),
                        serde_json::json!({"stage": "canary", "challenger": challenger, "share": share}),
                    )?;
                }
            }
            Stage::Canary { challenger, since_ms, shadow_since_ms } => {
                self.judge_canary(
                    now,
                    champion,
                    challenger,
                    since_ms,
                    shadow_since_ms,
                    &records,
                    &labels,
                    &thresholds,
                    &mut events,
                )?;
            }
            Stage::Paused { .. } => {}
        }
        self.project.meta.put_state(&state_key(&self.model), &serde_json::to_value(&self.state)?)?;
        let policy = self.policy()?;
        Ok(TickReport {
            at_ms: now,
            champion: policy.as_ref().map_or(champion, |policy| policy.champion),
            challenger: policy.and_then(|policy| policy.challenger),
            drift,
            outcomes,
            events,
        })
    }

    fn maybe_retrain(&mut self, now: i64, champion: u32, events: &mut Vec<Event>) -> Result<()> {
        let rollout = self.project.config.rollout.clone();
        let triggered: Vec<String> = self
            .state
            .rules
            .firing()
            .into_iter()
            .filter(|rule| {
                rollout.retrain_on.iter().any(|trigger| match trigger {
                    Trigger::Performance => rule.starts_with("performance:"),
                    Trigger::Drift => rule.starts_with("drift:"),
                })
            })
            .collect();
        if triggered.is_empty() {
            return Ok(());
        }
        if self.state.last_retrain_ms.is_some_and(|last| now - last < i64::from(rollout.cooldown_days) * DAY_MS) {
            return Ok(());
        }
        self.state.last_retrain_ms = Some(now);
        self.record(
            events,
            now,
            EventKind::Loop,
            "loop",
            format!(
                "retraining triggered by {} on the last {} days of labelled data",
                triggered.join(", "),
                rollout.retrain_window_days
            ),
            serde_json::json!({"triggers": triggered}),
        )?;
        let trained = (self.retrainer)(self.project, now)?;
        let challenger = trained.version.version;
        let champion_artifact = self.artifact(champion)?;
        let names = self.project.config.features()?.feature_names();
        let task = &trained.outcome.artifact.task;
        // The champion on the challenger's holdout; when it cannot score those rows, its
        // registered metrics stand in.
        let champion_metrics = match evaluate(&champion_artifact, &names, &trained.holdout, task) {
            Ok((_, metrics)) => metrics,
            Err(_) => self.project.meta.model_version(&self.model, champion)?.metrics,
        };
        let challenger_metrics = &trained.outcome.metrics;
        let metric = |metrics: &BTreeMap<String, f64>, name: &str| metrics.get(name).copied().unwrap_or(f64::NAN);
        let evaluation = causeway_train::evaluate(
            &trained.outcome.artifact.signature,
            task,
            &trained.holdout,
            &trained.outcome.holdout_outputs,
            trained.outcome.artifact.threshold,
        );
        let failures =
            crate::gates::check(&rollout.gates, task, challenger_metrics, Some(&evaluation), Some(&champion_metrics))
                .failures();
        let summary = format!(
            "v{challenger} trained on {} ({} rows, run {}): holdout ROC-AUC {:.3}, recall {:.3}, FPR {:.4}; champion v{champion} on the same holdout: ROC-AUC {:.3}, recall {:.3}, FPR {:.4}",
            trained.version.dataset,
            trained.run.params.get("train_rows").map_or("?", String::as_str),
            &trained.run.run_id[..8.min(trained.run.run_id.len())],
            metric(challenger_metrics, "roc_auc"),
            metric(challenger_metrics, "recall"),
            metric(challenger_metrics, "false_positive_rate"),
            metric(&champion_metrics, "roc_auc"),
            metric(&champion_metrics, "recall"),
            metric(&champion_metrics, "false_positive_rate"),
        );
        self.record(
            events,
            now,
            EventKind::Loop,
            "loop",
            format!("challenger {summary}"),
            serde_json::json!({"challenger": challenger, "challenger_metrics": challenger_metrics, "champion_metrics": champion_metrics}),
        )?;
        if failures.is_empty() {
            self.roll(
                RolloutChange::Challenger { version: challenger, mode: RolloutMode::Shadow },
                now,
                "passed gates",
            )?;
            self.state.stage = Stage::Shadow { challenger, since_ms: now };
            self.record(
                events,
                now,
                EventKind::Loop,
                "loop",
                format!("gates passed: v{challenger} enters shadow (scored on every request, never returned)"),
                serde_json::json!({"stage": "shadow", "challenger": challenger}),
            )?;
        } else {
            self.record(
                events,
                now,
                EventKind::Loop,
                "loop",
                format!("gates failed: v{challenger} rejected ({}); champion v{champion} stays", failures.join("; ")),
                serde_json::json!({"rejected": challenger, "failures": failures}),
            )?;
        }
        Ok(())
    }

    #[expect(clippy::too_many_arguments, reason = "one call site; the pieces are computed once per tick")]
    fn judge_canary(
        &mut self,
        now: i64,
        champion: u32,
        challenger: u32,
        since_ms: i64,
        shadow_since_ms: i64,
        records: &[PredictionRecord],
        labels: &HashMap<String, causeway_types::LabelRecord>,
        thresholds: &HashMap<u32, Judging>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let rollout = self.project.config.rollout.clone();
        // Compare on the same requests: those both versions scored since shadow started.
        let in_window: Vec<&PredictionRecord> =
            records.iter().filter(|record| record.timestamp_ms >= shadow_since_ms).collect();
        let scored_by = |version: u32| -> HashSet<&str> {
            in_window
                .iter()
                .filter(|record| record.version == version)
                .map(|record| record.request_id.as_str())
                .collect()
        };
        let both: HashSet<&str> = scored_by(champion).intersection(&scored_by(challenger)).copied().collect();
        let paired: Vec<PredictionRecord> = in_window
            .iter()
            .filter(|record| {
                (record.version == champion || record.version == challenger)
                    && both.contains(record.request_id.as_str())
            })
            .map(|record| (*record).clone())
            .collect();
        let outcomes = outcomes_by_version(&paired, labels, thresholds);
        let (Some(old), Some(new)) = (outcomes.get(&champion), outcomes.get(&challenger)) else { return Ok(()) };
        let gates = &rollout.gates;
        let canary_days = i64::from(rollout.canary_days);
        if new.positives < rollout.min_labeled_positives {
            if now - since_ms >= 3 * canary_days * DAY_MS {
                self.roll_back(now, champion, challenger, "too few labelled outcomes to judge it", events)?;
            }
            return Ok(());
        }
        let mut losses = Vec::new();
        if new.false_positive_rate > gates.max_false_positive_rate {
            losses.push(format!(
                "live false-positive rate {:.4} > {:.4}",
                new.false_positive_rate, gates.max_false_positive_rate
            ));
        }
        if new.recall < old.recall - gates.recall_tolerance {
            losses.push(format!("live recall {:.3} < champion's {:.3}", new.recall, old.recall));
        }
        if new.roc_auc < old.roc_auc - gates.auc_tolerance {
            losses.push(format!("live ROC-AUC {:.3} < champion's {:.3}", new.roc_auc, old.roc_auc));
        }
        let comparison = format!(
            "on {} labelled requests ({} frauds): ROC-AUC {:.3} vs {:.3}, recall {:.3} vs {:.3}, FPR {:.4} vs {:.4}",
            new.labeled,
            new.positives,
            new.roc_auc,
            old.roc_auc,
            new.recall,
            old.recall,
            new.false_positive_rate,
            old.false_positive_rate
        );
        if !losses.is_empty() {
            return self.roll_back(now, champion, challenger, &format!("{}; {comparison}", losses.join("; ")), events);
        }
        if now - since_ms >= canary_days * DAY_MS {
            self.roll(RolloutChange::Champion(challenger), now, "won canary")?;
            self.state.stage = Stage::Idle;
            self.state.rules.reset();
            self.record(
                events,
                now,
                EventKind::Loop,
                "loop",
                format!("promoted v{challenger} to champion, replacing v{champion}: it won {comparison}"),
                serde_json::json!({"promoted": challenger, "replaced": champion, "challenger": new, "champion": old}),
            )?;
        }
        Ok(())
    }

    fn roll_back(
        &mut self,
        now: i64,
        champion: u32,
        challenger: u32,
        reason: &str,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        self.roll(RolloutChange::EndRollout, now, "rolled back")?;
        self.state.rollbacks += 1;
        self.state.stage = Stage::Paused { since_ms: now };
        self.record(
            events,
            now,
            EventKind::Loop,
            "loop",
            format!("rolled back v{challenger}: champion v{champion} answers all traffic again ({reason})"),
            serde_json::json!({"rolled_back": challenger, "champion": champion, "reason": reason}),
        )?;
        self.record(
            events,
            now,
            EventKind::Alert,
            "loop",
            format!(
                "retraining paused on {} after a rollback: check the training labels, then run `causeway loop resume`",
                format_date(now)
            ),
            serde_json::json!({"paused": true}),
        )?;
        Ok(())
    }

    /// Resumes retraining after a pause.
    pub fn resume(&mut self, now: i64) -> Result<bool> {
        let paused = matches!(self.state.stage, Stage::Paused { .. });
        if paused {
            self.state.stage = Stage::Idle;
            self.state.last_retrain_ms = None;
            let mut events = Vec::new();
            self.record(
                &mut events,
                now,
                EventKind::Loop,
                "cli",
                "retraining resumed".into(),
                serde_json::Value::Null,
            )?;
            self.project.meta.put_state(&state_key(&self.model), &serde_json::to_value(&self.state)?)?;
        }
        Ok(paused)
    }
}

/// What `causeway loop resume` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Retraining was paused and now runs again.
    Resumed {
        /// When it had paused.
        paused_since_ms: i64,
    },
    /// Retraining was not paused: nothing changed.
    NotPaused,
}

/// Resumes retraining of the project's model after the loop paused itself (after a rollback).
/// Changes nothing, and says so, when it was not paused.
pub fn resume(project: &Project, now: i64) -> Result<Resumed> {
    let model = project.config.model()?.name.clone();
    let mut state: LoopState = match project.meta.state(&state_key(&model))? {
        Some(value) => serde_json::from_value(value)?,
        None => return Ok(Resumed::NotPaused),
    };
    let Stage::Paused { since_ms: paused_since_ms } = state.stage else { return Ok(Resumed::NotPaused) };
    state.stage = Stage::Idle;
    state.last_retrain_ms = None;
    project.meta.record_event(&Event {
        id: 0,
        at_ms: now,
        kind: EventKind::Loop,
        actor: "cli".into(),
        subject: model.clone(),
        message: "retraining resumed".into(),
        details: serde_json::Value::Null,
    })?;
    project.meta.put_state(&state_key(&model), &serde_json::to_value(&state)?)?;
    Ok(Resumed::Resumed { paused_since_ms })
}
