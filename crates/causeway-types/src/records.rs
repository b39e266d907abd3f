//! The records that cross crate boundaries through the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

/// The alias serving answers with.
pub const CHAMPION: &str = "champion";
/// The alias of the version under evaluation in shadow or canary.
pub const CHALLENGER: &str = "challenger";

/// One stored, immutable version of a named dataset, identified by the BLAKE3 hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    /// The dataset's name (for example `transactions`).
    pub name: String,
    /// Hex BLAKE3 of the canonical content; equal content gives an equal version.
    pub version: String,
    /// Number of rows.
    pub rows: u64,
    /// The blob key of the stored Parquet file.
    pub blob_key: String,
    /// The blob key of the stored profile (JSON).
    pub profile_key: String,
    /// The columns.
    pub schema: Schema,
    /// Where the data came from (a file path, `generator`, …).
    pub source: String,
    /// When it was ingested (epoch ms).
    pub created_ms: i64,
}

impl DatasetVersion {
    /// The first 12 hex digits of the version, for humans.
    pub fn short_version(&self) -> &str {
        self.version.get(..12).unwrap_or(&self.version)
    }
}

/// The life cycle of a tracked run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Started and not finished.
    Running,
    /// Finished successfully.
    Finished,
    /// Ended with an error.
    Failed,
    /// Created but not started (MLflow's SCHEDULED).
    Scheduled,
    /// Stopped before it finished (MLflow's KILLED).
    Killed,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Scheduled => "SCHEDULED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RUNNING" => Some(Self::Running),
            "FINISHED" => Some(Self::Finished),
            "FAILED" => Some(Self::Failed),
            "SCHEDULED" => Some(Self::Scheduled),
            "KILLED" => Some(Self::Killed),
            _ => None,
        }
    }
}

/// A training run with everything needed to reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id (hex).
    pub run_id: String,
    /// Human name, e.g. `gbdt-fraud`.
    pub name: String,
    /// Life-cycle state.
    pub status: RunStatus,
    /// Start time (epoch ms).
    pub started_ms: i64,
    /// End time (epoch ms), when finished.
    pub finished_ms: Option<i64>,
    /// The random seed the run used.
    pub seed: u64,
    /// The dataset version(s) trained on, as `name@version`.
    pub dataset: String,
    /// The git commit of the project directory, when it is a git checkout.
    pub git_commit: Option<String>,
    /// The Causeway version that ran it.
    pub tool_version: String,
    /// Hyper-parameters.
    pub params: BTreeMap<String, String>,
    /// Final metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// One registered version of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionRecord {
    /// The registered model's name, e.g. `fraud`.
    pub model: String,
    /// Version number, from 1.
    pub version: u32,
    /// The run that produced it.
    pub run_id: String,
    /// The dataset it was trained on (`name@version`).
    pub dataset: String,
    /// The blob key of the model artifact.
    pub artifact_key: String,
    /// The model family (`gbdt`, `logistic`).
    pub flavor: String,
    /// Registration time (epoch ms).
    pub created_ms: i64,
    /// Holdout metrics at registration.
    pub metrics: BTreeMap<String, f64>,
}

/// What an event in the timeline is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A change to models, versions, aliases or traffic (who, when, what).
    Audit,
    /// A monitoring rule started firing.
    Alert,
    /// A monitoring rule stopped firing.
    Resolved,
    /// A step of the loop: retraining, gates, shadow, canary, promotion, rollback.
    Loop,
    /// Data arrived: ingest, validation, materialization.
    Data,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Alert => "alert",
            Self::Resolved => "resolved",
            Self::Loop => "loop",
            Self::Data => "data",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "audit" => Some(Self::Audit),
            "alert" => Some(Self::Alert),
            "resolved" => Some(Self::Resolved),
            "loop" => Some(Self::Loop),
            "data" => Some(Self::Data),
            _ => None,
        }
    }
}

/// One entry of the timeline and audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number assigned by the store (0 before storing).
    pub id: i64,
    /// When it happened (epoch ms, from the injected clock).
    pub at_ms: i64,
    /// What kind of event.
    pub kind: EventKind,
    /// Who caused it (`loop`, `cli`, a user).
    pub actor: String,
    /// What it is about, e.g. `fraud` or `fraud/amount`.
    pub subject: String,
    /// A short sentence for people.
    pub message: String,
    /// Structured details for machines.
    pub details: serde_json::Value,
}

/// How a model's traffic is split between its champion and a challenger.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RolloutMode {
    /// Only the champion is scored.
    ChampionOnly,
    /// The challenger scores every request too, logged but never returned.
    Shadow,
    /// The challenger answers `share` of requests (0..1) and shadows the rest.
    Canary {
        /// The share of requests answered by the challenger.
        share: f64,
    },
}

/// The serving state of one model; serving watches it through its `generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficPolicy {
    /// The registered model.
    pub model: String,
    /// The version answering by default.
    pub champion: u32,
    /// The version under evaluation, if any.
    pub challenger: Option<u32>,
    /// How the two share traffic.
    pub mode: RolloutMode,
    /// Increases with every change so serving knows when to reload.
    pub generation: i64,
}

/// One delayed ground-truth label for a prediction, joined by request id.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelRecord {
    /// The label (0 or 1 for binary classification).
    pub label: f64,
    /// When the label arrived (epoch ms).
    pub arrived_ms: i64,
}

/// One input value of a model before encoding: a number, a category, or missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// A numeric value (NaN is treated as missing).
    Number(f64),
    /// A categorical value.
    Text(String),
    /// No value.
    Missing,
}

impl FeatureValue {
    /// The value as a number, when it is one and not NaN.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(value) if !value.is_nan() => Some(*value),
            _ => None,
        }
    }
}
