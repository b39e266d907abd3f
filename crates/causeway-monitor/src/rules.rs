//! Alert rules: thresholds on drift and on labelled performance, and the firing state that turns
//! each tick's observations into alert and resolution events (one event per change, not per check).

use std::collections::{BTreeMap, BTreeSet};

use causeway_types::{RuleId, RuleKind, Span};
use serde::{Deserialize, Serialize};

use crate::drift::DriftReport;
use crate::outcomes::VersionOutcomes;

/// Thresholds, as declared in `causeway.toml` under `[monitor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// Traffic compared with the baseline for drift (`"7d"`; a bare number counts days).
    #[serde(alias = "drift_window_days")]
    pub drift_window: Span,
    /// PSI above which a feature is drifting.
    pub psi_threshold: f64,
    /// PSI above which the score is drifting.
    pub score_psi_threshold: f64,
    /// Labelled traffic behind performance metrics (`"14d"`; a bare number counts days).
    #[serde(alias = "performance_window_days")]
    pub performance_window: Span,
    /// Labelled positives (binary models; labelled rows for the others) needed before
    /// performance is judged.
    pub min_labeled_positives: u64,
    /// Binary: largest allowed drop of recall below the version's holdout recall.
    pub max_recall_drop: f64,
    /// Binary: largest allowed drop of ROC-AUC below the version's holdout ROC-AUC.
    pub max_auc_drop: f64,
    /// Multi-class: largest allowed drop of accuracy below the version's holdout accuracy.
    pub max_accuracy_drop: f64,
    /// Regression: largest allowed rise of RMSE above the version's holdout RMSE, as a share
    /// (0.2: 20 % worse).
    pub max_rmse_increase: f64,
    /// How late a label may arrive after its prediction and still be counted (`"30d"`). The
    /// prediction index labels join with keeps this much, so its size follows the traffic of
    /// this span, not the log's whole history; a later label is given up on. At least
    /// `performance_window`.
    pub label_horizon: Span,
    /// Rules of your own on the champion's live metrics (`[[monitor.alerts]]`).
    pub alerts: Vec<AlertRule>,
    /// Where alerts go besides the event log (`[monitor.notify]`).
    pub notify: NotifySettings,
}

/// Where alerts and resolutions are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// A URL that gets every alert and resolution as a JSON POST.
    pub webhook: Option<String>,
    /// Attempts after the first when the webhook fails (backing off 0.5 s, 1 s, 2 s, ...).
    pub retries: u32,
    /// Also write alerts to the log (standard error), as warnings.
    pub log: bool,
}

/// One rule of your own: a live metric of the champion over a window, against a bound, broken
/// for at least `for` before it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Its name (events and `loop status` show `alert:<name>`).
    pub name: String,
    /// What is measured over the window: `predictions`, `labelled`, `latency_p50_ms`,
    /// `latency_p99_ms`, `score_mean`, or a labelled metric of the task (`recall`, `precision`,
    /// `false_positive_rate`, `roc_auc`; `accuracy`; `rmse`, `mae`, `r2`).
    pub metric: String,
    /// Fires when the value is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Fires when the value is above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// The window the metric is measured over.
    #[serde(default = "default_alert_window")]
    pub window: Span,
    /// How long the bound must be broken before the alert fires.
    #[serde(default, rename = "for")]
    pub hold: Span,
    /// Labelled metrics: the fewest labelled predictions before the rule is judged.
    #[serde(default = "default_min_labelled")]
    pub min_labelled: u64,
}

fn default_alert_window() -> Span {
    Span::seconds(3600)
}

fn default_min_labelled() -> u64 {
    30
}

/// The metrics an [`AlertRule`] can name.
pub const ALERT_METRICS: [&str; 13] = [
    "predictions",
    "labelled",
    "latency_p50_ms",
    "latency_p99_ms",
    "score_mean",
    "recall",
    "precision",
    "false_positive_rate",
    "roc_auc",
    "accuracy",
    "rmse",
    "mae",
    "r2",
];

impl AlertRules {
    /// Checks what serde cannot across the section: the label horizon covers the performance
    /// window (each rule has [`AlertRule::check`]).
    pub fn check(&self) -> Result<(), String> {
        if self.label_horizon < self.performance_window {
            return Err(format!(
                "label_horizon = \"{}\" is shorter than performance_window = \"{}\": labels of the window's older \
                 predictions could never count; raise label_horizon to at least \"{}\"",
                self.label_horizon, self.performance_window, self.performance_window
            ));
        }
        Ok(())
    }
}

impl AlertRule {
    /// Checks what serde cannot: a known metric and one bound.
    pub fn check(&self) -> Result<(), String> {
        if !ALERT_METRICS.contains(&self.metric.as_str()) {
            return Err(format!(
                "alert `{}`: unknown metric `{}` (use one of {})",
                self.name,
                self.metric,
                ALERT_METRICS.join(", ")
            ));
        }
        if self.below.is_none() == self.above.is_none() {
            return Err(format!("alert `{}`: give exactly one of below = N or above = N", self.name));
        }
        if self.window.is_zero() {
            return Err(format!("alert `{}`: window must be longer than zero, e.g. window = \"1h\"", self.name));
        }
        Ok(())
    }

    /// Measures the rule on the summary of the champion's predictions over its window (and their labelled
    /// outcomes); `None` until a labelled metric has `min_labelled` labels.
    pub fn observe(&self, traffic: &crate::TrafficSummary, outcomes: Option<&VersionOutcomes>) -> Option<Observation> {
        let latency = |quantile: f64| traffic.latency.quantile_ms(quantile);
        let value = match self.metric.as_str() {
            "predictions" => traffic.predictions as f64,
            "labelled" => outcomes.map_or(0.0, |outcomes| outcomes.labeled as f64),
            "latency_p50_ms" => latency(0.5),
            "latency_p99_ms" => latency(0.99),
            "score_mean" => traffic.score_mean(),
            metric => {
                let outcomes = outcomes.filter(|outcomes| outcomes.labeled >= self.min_labelled)?;
                match metric {
                    "recall" => outcomes.recall,
                    "precision" => outcomes.precision,
                    "false_positive_rate" => outcomes.false_positive_rate,
                    "roc_auc" => outcomes.roc_auc,
                    other => outcomes.metrics.get(other).copied().unwrap_or(f64::NAN),
                }
            }
        };
        if value.is_nan() && traffic.predictions == 0 {
            return None;
        }
        let (firing, limit, relation) = match (self.below, self.above) {
            (Some(limit), _) => (value.is_nan() || value < limit, limit, "below"),
            (None, Some(limit)) => (value.is_nan() || value > limit, limit, "above"),
            (None, None) => return None,
        };
        Some(Observation {
            rule: RuleId::Custom(self.name.clone()),
            firing,
            value,
            limit,
            message: format!(
                "{}: {} {value:.4} over the last {} (fires {relation} {limit})",
                self.name, self.metric, self.window
            ),
            hold_ms: self.hold.millis(),
            limit_is_max: self.above.is_some(),
        })
    }
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            drift_window: Span::days(7),
            psi_threshold: 0.2,
            score_psi_threshold: 0.2,
            performance_window: Span::days(14),
            min_labeled_positives: 50,
            max_recall_drop: 0.15,
            max_auc_drop: 0.05,
            max_accuracy_drop: 0.05,
            max_rmse_increase: 0.2,
            label_horizon: Span::days(30),
            alerts: Vec::new(),
            notify: NotifySettings::default(),
        }
    }
}

/// One rule checked once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The rule, e.g. `drift:amount` or `performance:recall`.
    pub rule: RuleId,
    /// Whether the rule is broken now.
    pub firing: bool,
    /// The measured value.
    pub value: f64,
    /// The limit it was compared with.
    pub limit: f64,
    /// A sentence for people.
    pub message: String,
    /// How long the rule must be broken before it fires (0: at once).
    #[serde(default)]
    pub hold_ms: i64,
    /// True when the limit is a most (drift, RMSE, `above`), false when a least.
    #[serde(default)]
    pub limit_is_max: bool,
}

/// A rule that started or stopped firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// True when the rule started firing, false when it resolved.
    pub started: bool,
    /// The observation that caused it.
    pub observation: Observation,
}

/// Which rules are firing now, and since when the ones that must hold a while are broken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    firing: BTreeSet<RuleId>,
    #[serde(default)]
    broken_since: BTreeMap<RuleId, i64>,
}

impl RuleState {
    /// Applies observations made at `now` and returns the rules that changed state. A broken
    /// rule with a hold fires only once it has been broken that long.
    pub fn update(&mut self, observations: &[Observation], now: i64) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for observation in observations {
            let was = self.firing.contains(&observation.rule);
            let held = if observation.firing {
                let since = *self.broken_since.entry(observation.rule.clone()).or_insert(now);
                now - since >= observation.hold_ms
            } else {
                self.broken_since.remove(&observation.rule);
                false
            };
            if held && !was {
                self.firing.insert(observation.rule.clone());
                transitions.push(Transition { started: true, observation: observation.clone() });
            } else if !observation.firing && was {
                self.firing.remove(&observation.rule);
                transitions.push(Transition { started: false, observation: observation.clone() });
            }
        }
        transitions
    }

    /// Forgets every firing rule (after the monitored model changed), without events.
    pub fn reset(&mut self) {
        self.firing.clear();
        self.broken_since.clear();
    }

    /// True when any rule of `kind` is firing.
    pub fn any_firing(&self, kind: RuleKind) -> bool {
        self.firing.iter().any(|rule| rule.kind() == kind)
    }

    /// The firing rules.
    pub fn firing(&self) -> Vec<RuleId> {
        self.firing.iter().cloned().collect()
    }
}

impl AlertRules {
    /// Checks every feature's and the score's PSI.
    pub fn check_drift(&self, report: &DriftReport) -> Vec<Observation> {
        let mut observations: Vec<Observation> = report
            .features
            .iter()
            .map(|feature| Observation {
                rule: RuleId::FeatureDrift(feature.name.clone()),
                firing: feature.psi > self.psi_threshold,
                value: feature.psi,
                limit: self.psi_threshold,
                message: format!(
                    "`{}` drifted: PSI {:.3} (limit {:.2}) over {} rows",
                    feature.name, feature.psi, self.psi_threshold, report.rows
                ),
                hold_ms: 0,
                limit_is_max: true,
            })
            .collect();
        observations.push(Observation {
            rule: RuleId::ScoreDrift,
            firing: report.score.psi > self.score_psi_threshold,
            value: report.score.psi,
            limit: self.score_psi_threshold,
            message: format!("the score drifted: PSI {:.3} (limit {:.2})", report.score.psi, self.score_psi_threshold),
            hold_ms: 0,
            limit_is_max: true,
        });
        observations
    }

    /// Checks labelled performance against the version's holdout metrics, for its task (told by
    /// the holdout metrics): recall and ROC-AUC (binary), accuracy (multi-class), RMSE
    /// (regression). Returns nothing until enough labels arrived.
    pub fn check_performance(&self, outcomes: &VersionOutcomes, holdout: &BTreeMap<String, f64>) -> Vec<Observation> {
        let measured = |name: &str| outcomes.metrics.get(name).copied().unwrap_or(f64::NAN);
        if let Some(expected) = holdout.get("accuracy") {
            if outcomes.labeled < self.min_labeled_positives {
                return Vec::new();
            }
            let (value, limit) = (measured("accuracy"), expected - self.max_accuracy_drop);
            return vec![Observation {
                rule: RuleId::Performance("accuracy".into()),
                // A missing (NaN) accuracy fires too.
                firing: value.is_nan() || value < limit,
                value,
                limit,
                message: format!(
                    "v{} accuracy {value:.3} on {} labelled predictions (holdout {expected:.3}, limit {limit:.3})",
                    outcomes.version, outcomes.labeled
                ),
                hold_ms: 0,
                limit_is_max: false,
            }];
        }
        if let Some(expected) = holdout.get("rmse") {
            if outcomes.labeled < self.min_labeled_positives {
                return Vec::new();
            }
            let (value, limit) = (measured("rmse"), expected * (1.0 + self.max_rmse_increase));
            return vec![Observation {
                rule: RuleId::Performance("rmse".into()),
                firing: value.is_nan() || value > limit,
                value,
                limit,
                message: format!(
                    "v{} RMSE {value:.4} on {} labelled predictions (holdout {expected:.4}, limit {limit:.4})",
                    outcomes.version, outcomes.labeled
                ),
                hold_ms: 0,
                limit_is_max: true,
            }];
        }
        if outcomes.positives < self.min_labeled_positives {
            return Vec::new();
        }
        let mut observations = Vec::new();
        if let Some(expected) = holdout.get("recall") {
            let limit = expected - self.max_recall_drop;
            observations.push(Observation {
                rule: RuleId::Performance("recall".into()),
                firing: outcomes.recall < limit,
                value: outcomes.recall,
                limit,
                message: format!(
                    "v{} recall {:.3} on {} labelled positives (holdout {:.3}, limit {:.3})",
                    outcomes.version, outcomes.recall, outcomes.positives, expected, limit
                ),
                hold_ms: 0,
                limit_is_max: false,
            });
        }
        if let Some(expected) = holdout.get("roc_auc") {
            let limit = expected - self.max_auc_drop;
            observations.push(Observation {
                rule: RuleId::Performance("roc_auc".into()),
                firing: outcomes.roc_auc < limit,
                value: outcomes.roc_auc,
                limit,
                message: format!(
                    "v{} ROC-AUC {:.3} (holdout {:.3}, limit {:.3})",
                    outcomes.version, outcomes.roc_auc, expected, limit
                ),
                hold_ms: 0,
                limit_is_max: false,
            });
        }
        observations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::FeatureDrift;

    fn report(psi: f64) -> DriftReport {
        DriftReport {
            rows: 100,
            features: vec![FeatureDrift { name: "amount".into(), psi, ks: None }],
            score: FeatureDrift { name: "score".into(), psi: 0.0, ks: None },
        }
    }

    #[test]
    fn alerts_once_when_firing_starts_and_once_when_it_stops() {
        let rules = AlertRules::default();
        let mut state = RuleState::default();
        assert!(state.update(&rules.check_drift(&report(0.05)), 0).is_empty());
        let started = state.update(&rules.check_drift(&report(0.4)), 0);
        assert_eq!(started.len(), 1);
        assert!(started[0].started);
        assert!(started[0].observation.message.contains("`amount` drifted: PSI 0.400"));
        assert!(state.update(&rules.check_drift(&report(0.5)), 0).is_empty());
        assert!(state.any_firing(RuleKind::Drift));
        let resolved = state.update(&rules.check_drift(&report(0.1)), 0);
        assert_eq!(resolved.len(), 1);
        assert!(!resolved[0].started);
    }

    #[test]
    fn a_rule_of_your_own_fires_only_after_its_hold_and_resolves_once() {
        let rule: AlertRule = toml::from_str(
            "name = \"slow\"\nmetric = \"latency_p99_ms\"\nabove = 5.0\nwindow = \"10m\"\nfor = \"2m\"\n",
        )
        .expect("parses");
        rule.check().expect("valid");
        let sketcher = crate::Sketcher::new(None);
        let traffic = |latencies: &mut dyn Iterator<Item = u64>| {
            let mut summary = sketcher.empty();
            latencies.for_each(|latency_us| sketcher.add(&mut summary, &[], 0.5, latency_us));
            summary
        };
        let slow = traffic(&mut (0..100).map(|index| if index < 98 { 1_000 } else { 9_000 }));
        let observed = rule.observe(&slow, None).expect("measured");
        assert!(observed.firing && (9.0..9.2).contains(&observed.value), "{observed:?}");
        let mut state = RuleState::default();
        assert!(state.update(std::slice::from_ref(&observed), 0).is_empty(), "not held long enough");
        assert!(state.update(std::slice::from_ref(&observed), 60_000).is_empty());
        let fired = state.update(std::slice::from_ref(&observed), 120_000);
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0].observation.message.starts_with("slow: latency_p99_ms 9.0"),
            "{}",
            fired[0].observation.message
        );
        assert!(fired[0].observation.message.contains("over the last 10m"));
        assert!(state.update(std::slice::from_ref(&observed), 180_000).is_empty(), "deduplicated");
        let fast = traffic(&mut (0..100).map(|_| 1_000));
        let resolved = state.update(&[rule.observe(&fast, None).expect("measured")], 240_000);
        assert!(resolved.len() == 1 && !resolved[0].started);
        let unknown: AlertRule = toml::from_str("name = \"x\"\nmetric = \"speed\"\nbelow = 1.0\n").expect("parses");
        assert!(unknown.check().expect_err("unknown").contains("unknown metric `speed`"));
        // A labelled metric waits for its labels.
        let recall: AlertRule = toml::from_str("name = \"r\"\nmetric = \"recall\"\nbelow = 0.5\n").expect("parses");
        assert!(recall.observe(&fast, None).is_none());
    }

    #[test]
    fn performance_waits_for_enough_labels_then_compares_with_holdout() {
        let rules = AlertRules::default();
        let holdout = BTreeMap::from([("recall".to_string(), 0.8), ("roc_auc".to_string(), 0.95)]);
        let mut outcomes = VersionOutcomes {
            version: 1,
            predictions: 1000,
            labeled: 900,
            positives: 10,
            roc_auc: 0.5,
            precision: 0.5,
            recall: 0.1,
            false_positive_rate: 0.01,
            metrics: BTreeMap::new(),
        };
        assert!(rules.check_performance(&outcomes, &holdout).is_empty());
        outcomes.positives = 100;
        let observations = rules.check_performance(&outcomes, &holdout);
        assert!(observations.iter().all(|observation| observation.firing));
        outcomes.recall = 0.7;
        outcomes.roc_auc = 0.93;
        assert!(rules.check_performance(&outcomes, &holdout).iter().all(|observation| !observation.firing));
        // A regression is judged on its RMSE, a multi-class model on its accuracy.
        let rmse = BTreeMap::from([("rmse".to_string(), 10.0)]);
        outcomes.labeled = 100;
        outcomes.metrics = BTreeMap::from([("rmse".to_string(), 13.0)]);
        let observations = rules.check_performance(&outcomes, &rmse);
        assert_eq!(observations.len(), 1);
        assert!(
            observations[0].firing && observations[0].rule == RuleId::Performance("rmse".into()),
            "{observations:?}"
        );
        outcomes.metrics.insert("rmse".into(), 11.0);
        assert!(!rules.check_performance(&outcomes, &rmse)[0].firing, "10 % worse is within the 20 % allowed");
        let accuracy = BTreeMap::from([("accuracy".to_string(), 0.9)]);
        outcomes.metrics = BTreeMap::from([("accuracy".to_string(), 0.8)]);
        assert!(rules.check_performance(&outcomes, &accuracy)[0].firing);
    }
}
