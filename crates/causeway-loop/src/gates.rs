//! Promotion gates: the checks `[loop.gates]` declares, applied to a candidate version's holdout
//! metrics and evaluation, and to the champion's metrics when there is one. The loop, `causeway
//! promote` and `causeway train --promote` all decide through [`check`]; this module only judges,
//! it never moves an alias.

use std::collections::BTreeMap;

use causeway_train::Evaluation;

use causeway_types::CHAMPION;

use crate::config::Gates;
use crate::error::Result;
use crate::pipeline::evaluation_key;
use crate::project::Project;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct GateCheck {
    /// The gate (`max_false_positive_rate`, `recall_tolerance`, …).
    pub gate: &'static str,
    /// Whether it holds.
    pub passed: bool,
    /// What was compared, for people.
    pub detail: String,
}

/// Every gate's verdict for one candidate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateReport {
    /// The checks, in declaration order.
    pub checks: Vec<GateCheck>,
}

impl GateReport {
    /// Whether every gate holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// The failed gates, each with what it needed.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| format!("{} (needs {})", check.gate, check.detail))
            .collect()
    }
}

/// The gates of `[loop.gates]` applied to a registered version: its holdout metrics and stored
/// evaluation, against the current champion's registered metrics (when another version is
/// champion). Registered metrics come from different holdouts; the loop, which has one shared
/// holdout, compares on it instead.
pub fn check_version(project: &Project, model: &str, version: u32) -> Result<GateReport> {
    let record = project.meta.model_version(model, version)?;
    let evaluation: Option<Evaluation> = project
        .blobs
        .get(&evaluation_key(&record.artifact_key))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let champion = match project.meta.alias(model, CHAMPION)? {
        Some(champion) if champion != version => Some(project.meta.model_version(model, champion)?.metrics),
        _ => None,
    };
    Ok(check(&project.config.rollout.gates, &record.metrics, evaluation.as_ref(), champion.as_ref()))
}

/// Applies `gates` to a candidate's holdout `metrics` (and its `evaluation`, for the slice gap),
/// comparing with the `champion`'s metrics when given. A missing or NaN metric fails its gate.
pub fn check(
    gates: &Gates,
    metrics: &BTreeMap<String, f64>,
    evaluation: Option<&Evaluation>,
    champion: Option<&BTreeMap<String, f64>>,
) -> GateReport {
    let value = |metrics: &BTreeMap<String, f64>, name: &str| metrics.get(name).copied().unwrap_or(f64::NAN);
    let mut checks = Vec::new();
    // Each gate holds only when its comparison is true, so NaN fails.
    let false_positive_rate = value(metrics, "false_positive_rate");
    checks.push(GateCheck {
        gate: "max_false_positive_rate",
        passed: false_positive_rate <= gates.max_false_positive_rate,
        detail: format!("false-positive rate {false_positive_rate:.4} ≤ {:.4}", gates.max_false_positive_rate),
    });
    if let Some(champion) = champion {
        let (recall, champion_recall) = (value(metrics, "recall"), value(champion, "recall"));
        checks.push(GateCheck {
            gate: "recall_tolerance",
            passed: recall >= champion_recall - gates.recall_tolerance,
            detail: format!("recall {recall:.3} ≥ champion's {champion_recall:.3} − {:.3}", gates.recall_tolerance),
        });
        let (auc, champion_auc) = (value(metrics, "roc_auc"), value(champion, "roc_auc"));
        checks.push(GateCheck {
            gate: "auc_tolerance",
            passed: auc >= champion_auc - gates.auc_tolerance,
            detail: format!("ROC-AUC {auc:.3} ≥ champion's {champion_auc:.3} − {:.3}", gates.auc_tolerance),
        });
    }
    if let Some(minimum) = gates.min_roc_auc {
        let auc = value(metrics, "roc_auc");
        checks.push(GateCheck {
            gate: "min_roc_auc",
            passed: auc >= minimum,
            detail: format!("ROC-AUC {auc:.3} ≥ {minimum:.3}"),
        });
    }
    if let Some(minimum) = gates.min_recall {
        let recall = value(metrics, "recall");
        checks.push(GateCheck {
            gate: "min_recall",
            passed: recall >= minimum,
            detail: format!("recall {recall:.3} ≥ {minimum:.3}"),
        });
    }
    if let Some(maximum) = gates.max_slice_gap {
        let check = match evaluation {
            None => GateCheck {
                gate: "max_slice_gap",
                passed: false,
                detail: "slice gap unknown: the version has no holdout evaluation".into(),
            },
            Some(Evaluation { largest_gap: None, .. }) => GateCheck {
                gate: "max_slice_gap",
                passed: true,
                detail: format!("no comparable slices (gap ≤ {maximum:.3} holds trivially)"),
            },
            Some(Evaluation { largest_gap: Some(gap), .. }) => GateCheck {
                gate: "max_slice_gap",
                passed: gap.gap <= maximum,
                detail: format!(
                    "{} gap {:.3} across {} ({} {:.3}, {} {:.3}) ≤ {maximum:.3}",
                    gap.metric, gap.gap, gap.feature, gap.best.0, gap.best.1, gap.worst.0, gap.worst.1
                ),
            },
        };
        checks.push(check);
    }
    GateReport { checks }
}

#[cfg(test)]
mod tests {
    use causeway_train::evaluation::SliceGap;

    use super::*;

    fn metrics(roc_auc: f64, recall: f64, false_positive_rate: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("roc_auc".to_string(), roc_auc),
            ("recall".to_string(), recall),
            ("false_positive_rate".to_string(), false_positive_rate),
        ])
    }

    fn evaluation(gap: Option<f64>) -> Evaluation {
        Evaluation {
            threshold: 0.5,
            rows: 1_000,
            metrics: BTreeMap::new(),
            calibration: Vec::new(),
            slices: Vec::new(),
            largest_gap: gap.map(|gap| SliceGap {
                feature: "channel".into(),
                metric: "recall".into(),
                best: ("online".into(), 0.9),
                worst: ("in_store".into(), 0.9 - gap),
                gap,
            }),
        }
    }

    #[test]
    fn every_gate_passes_and_fails_on_its_own() {
        let gates =
            Gates { min_roc_auc: Some(0.9), min_recall: Some(0.5), max_slice_gap: Some(0.2), ..Gates::default() };
        let champion = metrics(0.93, 0.7, 0.01);
        let good = check(&gates, &metrics(0.94, 0.72, 0.02), Some(&evaluation(Some(0.1))), Some(&champion));
        assert!(good.passed(), "{:?}", good.failures());
        assert_eq!(good.checks.len(), 6);
        let failing = |candidate: BTreeMap<String, f64>, gap: Option<f64>| -> Vec<&'static str> {
            check(&gates, &candidate, Some(&evaluation(gap)), Some(&champion))
                .checks
                .into_iter()
                .filter(|check| !check.passed)
                .map(|check| check.gate)
                .collect()
        };
        assert_eq!(failing(metrics(0.94, 0.72, 0.05), Some(0.1)), ["max_false_positive_rate"]);
        assert_eq!(failing(metrics(0.94, 0.69, 0.02), Some(0.1)), ["recall_tolerance"]);
        assert_eq!(failing(metrics(0.915, 0.72, 0.02), Some(0.1)), ["auc_tolerance"]);
        assert_eq!(failing(metrics(0.94, 0.72, 0.02), Some(0.25)), ["max_slice_gap"]);
        assert!(failing(metrics(0.94, 0.72, 0.02), None).is_empty());
        let low = Gates { recall_tolerance: 1.0, auc_tolerance: 1.0, ..gates.clone() };
        let report = check(&low, &metrics(0.85, 0.4, 0.02), Some(&evaluation(None)), Some(&champion));
        assert_eq!(report.failures().len(), 2, "{:?}", report.failures());
        // Without a champion the comparisons are skipped; without an evaluation the gap fails;
        // a NaN metric fails.
        let alone = check(&gates, &metrics(0.95, 0.8, f64::NAN), None, None);
        let failed: Vec<_> = alone.checks.iter().filter(|check| !check.passed).map(|check| check.gate).collect();
        assert_eq!(failed, ["max_false_positive_rate", "max_slice_gap"]);
    }
}
