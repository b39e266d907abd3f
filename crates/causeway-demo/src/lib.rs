//! The demos: the fraud scenario (synthetic card transactions replayed day by day on an
//! injected clock through the whole loop) and its configuration. Production code never depends
//! on this crate; the binary's `demo` command and the tests do.

pub mod live;
pub mod processes;
pub mod scenario;

pub use causeway_loop::{Error, Result};

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
window = "30d"
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
holdout_window = "7d"
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
drift_window = "7d"
psi_threshold = 0.2
score_psi_threshold = 0.25
performance_window = "14d"
min_labeled_positives = 50
max_recall_drop = 0.15
max_auc_drop = 0.05

[loop]
retrain_on = ["performance"]
retrain_window = "28d"
cooldown = "7d"
shadow = "3d"
canary = "7d"
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
    use causeway_loop::ProjectConfig;
    use causeway_loop::config::Trigger;

    use super::FRAUD_CONFIG;

    #[test]
    fn the_demo_configuration_parses() {
        let config = ProjectConfig::parse(FRAUD_CONFIG).expect("valid");
        assert_eq!(config.model().map(|model| model.name.as_str()).ok(), Some("fraud"));
        assert_eq!(config.features().map(|features| features.feature_names().len()).ok(), Some(21));
        assert_eq!(config.suite("transactions").expectations.len(), 8);
        assert_eq!(config.rollout.retrain_on, vec![Trigger::Performance]);
    }
}
