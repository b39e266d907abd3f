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
}

/// A rule that started or stopped firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// True when the rule started firing, false when it resolved.
    pub started: bool,
    /// The observation that caused it.
    pub observation: Observation,
}

/// Which rules are firing now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    firing: BTreeSet<RuleId>,
}

impl RuleState {
    /// Applies observations and returns the rules that changed state.
    pub fn update(&mut self, observations: &[Observation]) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for observation in observations {
            let was = self.firing.contains(&observation.rule);
            if observation.firing && !was {
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
            })
            .collect();
        observations.push(Observation {
            rule: RuleId::ScoreDrift,
            firing: report.score.psi > self.score_psi_threshold,
            value: report.score.psi,
            limit: self.score_psi_threshold,
            message: format!("the score drifted: PSI {:.3} (limit {:.2})", report.score.psi, self.score_psi_threshold),
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
        assert!(state.update(&rules.check_drift(&report(0.05))).is_empty());
        let started = state.update(&rules.check_drift(&report(0.4)));
        assert_eq!(started.len(), 1);
        assert!(started[0].started);
        assert!(started[0].observation.message.contains("`amount` drifted: PSI 0.400"));
        assert!(state.update(&rules.check_drift(&report(0.5))).is_empty());
        assert!(state.any_firing(RuleKind::Drift));
        let resolved = state.update(&rules.check_drift(&report(0.1)));
        assert_eq!(resolved.len(), 1);
        assert!(!resolved[0].started);
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
