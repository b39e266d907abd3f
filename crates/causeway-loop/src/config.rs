//! `causeway.toml`: the declarative description of a project, versioned in git.

use std::collections::BTreeMap;
use std::path::Path;

use causeway_data::ExpectationSuite;
use causeway_features::FeatureSetSpec;
use causeway_models::TaskKind;
use causeway_monitor::AlertRules;
use causeway_train::{GbdtParams, LogisticParams, SearchSpec, Trainer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::external::ExternalSpec;

/// The whole project description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project-wide settings.
    #[serde(default)]
    pub project: ProjectSection,
    /// Expectation suites per dataset name.
    #[serde(default)]
    pub datasets: BTreeMap<String, ExpectationSuite>,
    /// The features models read.
    #[serde(default)]
    pub features: Option<FeatureSetSpec>,
    /// The model the loop trains and serves.
    #[serde(default)]
    pub model: Option<ModelSection>,
    /// Alert thresholds.
    #[serde(default)]
    pub monitor: AlertRules,
    /// Retraining triggers and rollout.
    #[serde(default, rename = "loop")]
    pub rollout: LoopSection,
    /// Where metadata and artifacts live (default: embedded, under `.causeway/`).
    #[serde(default)]
    pub storage: StorageSection,
}

/// Where the project's stores live. Each is a URL; unset means the embedded default. The
/// `--store` / `--artifacts` options (or `CAUSEWAY_STORE` / `CAUSEWAY_ARTIFACTS`) override these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `postgresql://user@host:5432/db[?schema=NAME]` or `sqlite:///path/meta.db`.
    pub metadata: Option<String>,
    /// `s3://bucket/prefix[?endpoint=URL]` (credentials from `AWS_*`) or a local directory.
    pub artifacts: Option<String>,
}

/// Project-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSection {
    /// A name for people.
    pub name: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self { name: "causeway-project".into() }
    }
}

/// What the loop trains and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The registered model's name.
    pub name: String,
    /// The dataset rows come from.
    pub dataset: String,
    /// The label column; rows without a label take one from the label store (by id).
    pub label: String,
    /// `binary`, `multiclass` or `regression`; inferred from the label's values when absent.
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// Binary tasks: the label value that is the positive class (needed when the values are not
    /// a yes/no, true/false or 1/0 pair).
    #[serde(default)]
    pub positive_class: Option<String>,
    /// Multi-class tasks: the classes, in output order (default: the label's values, sorted).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// The row id column (the prediction request id labels join on); optional.
    #[serde(default)]
    pub id_column: Option<String>,
    /// The event-time column (a timestamp, or epoch milliseconds); optional. With it, the
    /// holdout is drawn from the freshest `holdout_days` and `train --days` picks a window;
    /// without it, the holdout is a seeded random share of the rows.
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// The champion's trainer.
    #[serde(default = "default_trainer")]
    pub trainer: Trainer,
    /// A simpler trainer fitted alongside for comparison (tracked, not deployed).
    #[serde(default = "default_baseline")]
    pub baseline_trainer: Option<Trainer>,
    /// The decision threshold is chosen for this false-positive rate on the holdout.
    #[serde(default = "default_false_positive_rate")]
    pub target_false_positive_rate: f64,
    /// The share of rows held out (seeded) for evaluation: of the most recent `holdout_days`
    /// with a time column, of all rows without one.
    #[serde(default = "default_holdout")]
    pub holdout_fraction: f64,
    /// How many of the most recent days the holdout is drawn from (with a time column).
    #[serde(default = "default_holdout_days")]
    pub holdout_days: u32,
    /// The seed recorded with every run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A hyper-parameter search over the trainer's parameters (`causeway train --search`).
    #[serde(default)]
    pub search: Option<SearchSpec>,
    /// The researcher's own training command (`causeway train --external`).
    #[serde(default)]
    pub external: Option<ExternalSpec>,
}

fn default_trainer() -> Trainer {
    Trainer::Gbdt(GbdtParams::default())
}
fn default_baseline() -> Option<Trainer> {
    Some(Trainer::Logistic(LogisticParams::default()))
}
fn default_false_positive_rate() -> f64 {
    0.01
}
fn default_holdout() -> f64 {
    0.3
}
fn default_holdout_days() -> u32 {
    7
}
fn default_seed() -> u64 {
    42
}

/// What triggers retraining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A performance rule fired.
    Performance,
    /// A drift rule fired.
    Drift,
}

/// Promotion gates. Each applies to the tasks it names; the others skip it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Binary: the challenger's false-positive rate must stay at or below this.
    pub max_false_positive_rate: f64,
    /// Binary: the challenger's recall must not be lower than the champion's (minus this).
    pub recall_tolerance: f64,
    /// Binary: the challenger's ROC-AUC must not be lower than the champion's (minus this).
    pub auc_tolerance: f64,
    /// Binary: the candidate's holdout ROC-AUC must be at least this.
    pub min_roc_auc: Option<f64>,
    /// Binary: the candidate's holdout recall must be at least this.
    pub min_recall: Option<f64>,
    /// Multi-class: the challenger's accuracy must not be lower than the champion's (minus this).
    pub accuracy_tolerance: f64,
    /// Multi-class: the candidate's holdout accuracy must be at least this.
    pub min_accuracy: Option<f64>,
    /// Regression: the challenger's RMSE must not exceed the champion's by more than this share
    /// (0.02: 2 % worse at most).
    pub rmse_tolerance: f64,
    /// Regression: the candidate's holdout RMSE must be at most this.
    pub max_rmse: Option<f64>,
    /// The largest gap between comparable slices of a categorical feature (recall or
    /// false-positive rate; accuracy; RMSE — the model card's call-out) must be at most this.
    pub max_slice_gap: Option<f64>,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            max_false_positive_rate: 0.03,
            recall_tolerance: 0.0,
            auc_tolerance: 0.01,
            min_roc_auc: None,
            min_recall: None,
            accuracy_tolerance: 0.01,
            min_accuracy: None,
            rmse_tolerance: 0.02,
            max_rmse: None,
            max_slice_gap: None,
        }
    }
}

/// Retraining and rollout settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopSection {
    /// Which firing rules start a retraining.
    pub retrain_on: Vec<Trigger>,
    /// Days of labelled data a retraining uses.
    pub retrain_window_days: u32,
    /// Days after a retraining before another may start.
    pub cooldown_days: u32,
    /// Days a challenger runs in shadow.
    pub shadow_days: u32,
    /// Days a challenger runs as canary before it may be promoted.
    pub canary_days: u32,
    /// Share of requests the canary answers.
    pub canary_share: f64,
    /// Labelled positives needed before a live decision.
    pub min_labeled_positives: u64,
    /// The gates.
    pub gates: Gates,
}

impl Default for LoopSection {
    fn default() -> Self {
        Self {
            retrain_on: vec![Trigger::Performance],
            retrain_window_days: 28,
            cooldown_days: 7,
            shadow_days: 3,
            canary_days: 7,
            canary_share: 0.05,
            min_labeled_positives: 40,
            gates: Gates::default(),
        }
    }
}

impl ProjectConfig {
    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|error| Error::Config(error.to_string()))?;
        if let Some(features) = &config.features {
            features.check().map_err(|error| Error::Config(error.to_string()))?;
        }
        if !(0.0..=1.0).contains(&config.rollout.canary_share) {
            return Err(Error::Config(format!(
                "loop.canary_share must be within 0..1, got {}",
                config.rollout.canary_share
            )));
        }
        if let Some(model) = &config.model {
            if !(0.0..0.9).contains(&model.holdout_fraction) {
                return Err(Error::Config(format!(
                    "model.holdout_fraction must be within 0..0.9, got {}",
                    model.holdout_fraction
                )));
            }
            if model.positive_class.is_some() && model.task.is_some_and(|task| task != TaskKind::Binary) {
                return Err(Error::Config("model.positive_class applies to task = \"binary\" only".into()));
            }
            if model.classes.is_some() && model.task.is_some_and(|task| task != TaskKind::Multiclass) {
                return Err(Error::Config("model.classes applies to task = \"multiclass\" only".into()));
            }
            if let Some(classes) = &model.classes
                && let Some(twice) = classes.iter().enumerate().find(|(index, class)| classes[..*index].contains(class))
            {
                return Err(Error::Config(format!("model.classes names {:?} twice", twice.1)));
            }
        }
        Ok(config)
    }

    /// Reads `causeway.toml` from a project directory.
    pub fn load(directory: &Path) -> Result<Self> {
        let path = directory.join(crate::project::CONFIG_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|cause| Error::Io { path: path.display().to_string(), cause })?;
        Self::parse(&text).map_err(|error| match error {
            Error::Config(message) => Error::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// The model section, or an error saying how to add one.
    pub fn model(&self) -> Result<&ModelSection> {
        self.model.as_ref().ok_or_else(|| Error::Config("causeway.toml has no [model] section".into()))
    }

    /// The feature set, or an error saying how to add one.
    pub fn features(&self) -> Result<&FeatureSetSpec> {
        self.features.as_ref().ok_or_else(|| Error::Config("causeway.toml has no [features] section".into()))
    }

    /// The expectation suite of a dataset (empty when none is declared).
    pub fn suite(&self, dataset: &str) -> ExpectationSuite {
        self.datasets.get(dataset).cloned().unwrap_or_default()
    }
}

/// The configuration the fraud demo writes into its project.
pub const FRAUD_CONFIG: &str = r#"# Causeway project: the fraud demo.
[project]
name = "fraud-demo"

# Every batch of `transactions` must pass these before it is stored.
[[datasets.transactions.expectations]]
column = "transaction_id"
type = "utf8"
not_null = true

[[datasets.transactions.expectations]]
column = "customer_id"
type = "utf8"
not_null = true

[[datasets.transactions.expectations]]
column = "timestamp"
type = "int64"
not_null = true

[[datasets.transactions.expectations]]
column = "amount"
type = "float64"
not_null = true
min = 0.0
max = 1000000.0

[[datasets.transactions.expectations]]
column = "merchant_category"
not_null = true
allowed = ["grocery", "restaurants", "fuel", "travel", "electronics", "fashion", "digital_goods", "gambling", "health", "utilities"]

[[datasets.transactions.expectations]]
column = "channel"
not_null = true
allowed = ["in_store", "online", "mobile_app"]

[[datasets.transactions.expectations]]
column = "hour"
type = "int64"
min = 0
max = 23

[[datasets.transactions.expectations]]
column = "is_fraud"
type = "int64"
allowed = ["0", "1"]

[features]
numeric = ["amount", "hour", "distance_from_home", "card_present", "is_new_device", "is_foreign",
           "customer_age_days", "device_trust_score", "ip_risk_score", "email_domain_risk", "num_items",
           "velocity_1h", "merchant_risk_score", "failed_logins_24h", "is_weekend"]
categorical = ["merchant_category", "channel"]

[[features.views]]
name = "customer_activity"
entity = "customer_id"
timestamp = "timestamp"
window_days = 30
aggregates = [
  { name = "customer_transactions_30d", function = "count" },
  { name = "customer_mean_amount_30d", function = "mean", column = "amount" },
  { name = "customer_max_amount_30d", function = "max", column = "amount" },
]

[[features.ratios]]
name = "amount_to_customer_mean"
numerator = "amount"
denominator = "customer_mean_amount_30d"

[model]
name = "fraud"
dataset = "transactions"
label = "is_fraud"
task = "binary"
id_column = "transaction_id"
timestamp_column = "timestamp"
trainer = { family = "gbdt", rounds = 150, learning_rate = 0.1, max_depth = 5, early_stopping_rounds = 20 }
baseline_trainer = { family = "logistic", l2 = 1.0 }
target_false_positive_rate = 0.01
holdout_fraction = 0.3
holdout_days = 7
seed = 42

# `causeway train --search` first tries configurations drawn from this space (successive halving:
# every trial on a few rounds, the best third on three times more, ...), each trial a child run.
[model.search]
trials = 9
strategy = "successive_halving"
metric = "pr_auc"

[model.search.space]
learning_rate = { log_uniform = [0.03, 0.3] }
max_depth = { integers = [3, 7] }
min_child_weight = { choice = [1.0, 3.0, 10.0] }

[monitor]
drift_window_days = 7
psi_threshold = 0.2
score_psi_threshold = 0.25
performance_window_days = 14
min_labeled_positives = 50
max_recall_drop = 0.15
max_auc_drop = 0.05

[loop]
retrain_on = ["performance"]
retrain_window_days = 28
cooldown_days = 7
shadow_days = 3
canary_days = 7
canary_share = 0.05
min_labeled_positives = 40

# A version is promoted (by the loop, `causeway promote` or `train --promote`) only through these.
[loop.gates]
max_false_positive_rate = 0.03
recall_tolerance = 0.0
auc_tolerance = 0.01
min_roc_auc = 0.85
max_slice_gap = 0.35
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_parses() {
        let config = ProjectConfig::parse(FRAUD_CONFIG).expect("valid");
        assert_eq!(config.model().map(|model| model.name.as_str()).ok(), Some("fraud"));
        assert_eq!(config.features().map(|features| features.feature_names().len()).ok(), Some(21));
        assert_eq!(config.suite("transactions").expectations.len(), 8);
        assert_eq!(config.rollout.retrain_on, vec![Trigger::Performance]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_their_name() {
        let error = ProjectConfig::parse("[loop]\ncanary_shares = 0.1\n").unwrap_err().to_string();
        assert!(error.contains("canary_shares"), "{error}");
        let error = ProjectConfig::parse("[loop]\ncanary_share = 5.0\n").unwrap_err().to_string();
        assert!(error.contains("canary_share must be within 0..1"), "{error}");
        assert!(ProjectConfig::parse("").is_ok());
    }
}
