//! `causeway loop status`: per model, who answers, where the rollout stands and since when, the
//! evidence the loop judged at its last tick, firing alerts, the next scheduled trigger and the
//! last decision — read from the store, so any process can show what the leader does.

use causeway_types::{CHALLENGER, RolloutMode};
use serde::Serialize;

use crate::controller::load_state;
use crate::error::Result;
use crate::live::LEASE;
use crate::machine::{Decision, Evidence, Pause, Stage};
use crate::project::Project;

/// Which control plane runs the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leader {
    /// Its lease holder id.
    pub holder: String,
    /// When its lease lapses unless renewed.
    pub expires_ms: i64,
    /// Whether the lease is still good at the time of the status.
    pub live: bool,
}

/// One model's loop, for people and `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatus {
    /// The registered model.
    pub model: String,
    /// The version that answers.
    pub champion: Option<u32>,
    /// The version being rolled out (or named `challenger`).
    pub challenger: Option<u32>,
    /// How the challenger shares traffic: `shadow`, `canary` (with `canary_share`) or none.
    pub traffic: Option<String>,
    /// The canary's share of requests.
    pub canary_share: Option<f64>,
    /// `idle`, `retraining`, `shadow` or `canary`.
    pub stage: String,
    /// When the stage began.
    pub stage_since_ms: Option<i64>,
    /// The retraining job running, in `retraining`.
    pub job: Option<u64>,
    /// Set while the loop is paused.
    pub paused: Option<Pause>,
    /// What the last tick judged.
    pub evidence: Evidence,
    /// Firing alert rules.
    pub firing: Vec<String>,
    /// When the `[loop] schedule` next comes due.
    pub next_scheduled_ms: Option<i64>,
    /// Until when the cool-down holds triggers back.
    pub cooldown_until_ms: Option<i64>,
    /// The last decision and its reason.
    pub last_decision: Option<Decision>,
    /// Commands waiting for the loop's next tick, for people (`pause by cli (sent …)`).
    pub queued_commands: Vec<String>,
}

/// The whole status: the leader and every model's loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopStatus {
    /// When it was read.
    pub at_ms: i64,
    /// The control plane running the loop, if any.
    pub leader: Option<Leader>,
    /// The models.
    pub models: Vec<ModelStatus>,
}

/// Reads the loop's status at `now` for the project's models (or only `model`).
pub fn status(project: &Project, model: Option<&str>, now: i64) -> Result<LoopStatus> {
    let leader = project.meta.lease(LEASE)?.map(|lease| Leader {
        live: lease.expires_ms > now,
        holder: lease.holder,
        expires_ms: lease.expires_ms,
    });
    let mut models = Vec::new();
    for name in project.config.loop_models(model)? {
        let scoped = project.scoped(&name)?;
        let cron = scoped.config.rollout.cron()?;
        let state = load_state(project, &name)?;
        let policy = project.meta.serving_policy(&name)?;
        let challenger = match &policy {
            Some(policy) if policy.challenger.is_some() => policy.challenger,
            _ => project.meta.alias(&name, CHALLENGER)?,
        };
        let (traffic, canary_share) = match policy.as_ref().filter(|policy| policy.challenger.is_some()) {
            Some(policy) => match policy.mode {
                RolloutMode::Shadow => (Some("shadow".to_string()), None),
                RolloutMode::Canary { share } => (Some("canary".to_string()), Some(share)),
                RolloutMode::ChampionOnly => (None, None),
            },
            None => (None, None),
        };
        let next_scheduled_ms = match state.schedule_checked_ms {
            Some(_) => state.next_scheduled_ms(cron.as_ref()),
            None => cron.as_ref().and_then(|cron| cron.next_after(now)),
        };
        let cooldown_until_ms = state
            .last_retrain_ms
            .map(|last| last + scoped.config.rollout.cooldown.millis())
            .filter(|until| *until > now);
        let queued_commands = project
            .meta
            .queued_loop_commands(&name)?
            .into_iter()
            .map(|queued| match serde_json::from_str::<crate::machine::Command>(&queued.command) {
                Ok(command) => {
                    format!("{} (sent {})", command.describe(), causeway_types::format_timestamp(queued.at_ms))
                }
                Err(_) => queued.command,
            })
            .collect();
        models.push(ModelStatus {
            model: name.clone(),
            champion: policy.as_ref().map(|policy| policy.champion),
            challenger,
            traffic,
            canary_share,
            stage: state.stage.name().to_string(),
            stage_since_ms: state.stage.since_ms(),
            job: match state.stage {
                Stage::Retraining { job, .. } => Some(job),
                _ => None,
            },
            paused: state.paused,
            evidence: state.evidence.clone(),
            firing: state.rules.firing().iter().map(ToString::to_string).collect(),
            next_scheduled_ms,
            cooldown_until_ms,
            last_decision: state.last_decision.clone(),
            queued_commands,
        });
    }
    Ok(LoopStatus { at_ms: now, leader, models })
}
