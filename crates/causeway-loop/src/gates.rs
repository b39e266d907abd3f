//! Promotion gates: the checks `[loop.gates]` declares, applied to a candidate version's holdout
//! metrics and evaluation, and to the champion's metrics when there is one. The loop, `causeway
//! promote` and `causeway train --promote` all decide through [`check`]; this module only judges,
//! it never moves an alias.

use std::collections::BTreeMap;

use causeway_models::{Task, TaskKind};
use causeway_train::Evaluation;
use causeway_types::CHAMPION;

use crate::config::Gates;
use crate::error::Result;
use crate::pipeline::{evaluate, evaluation_key, load_artifact, load_holdout};
use crate::project::Project;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateCheck {
    /// The gate (`max_false_positive_rate`, `recall_tolerance`, …).
    pub gate: &'static str,
    /// Whether it holds.
    pub passed: bool,
    /// What was compared, for people.
    pub detail: String,
}

/// Every gate's verdict for one candidate.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct GateReport {
    /// The checks, in declaration order.
    pub checks: Vec<GateCheck>,
    /// What the comparison with the champion was measured on, for people (`None` when there is
    /// no other champion).
    pub basis: Option<String>,
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

/// What [`promote`] did: the gates' verdicts, and whether the champion alias now points at
/// the version.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Promotion {
    /// Every gate's verdict.
    pub report: GateReport,
    /// Whether the version became champion (the gates passed, or it was forced).
    pub promoted: bool,
}

/// Promotes `version` of `model` by hand: checks the `[loop.gates]`, and points the champion
/// alias at it through the single rollout operation when they pass, or when `force`d (the audit
/// reason then names the failed gates). The one place a person's promotion is decided.
pub fn promote(
    project: &Project,
    model: &str,
    version: u32,
    force: bool,
    actor: &str,
    reason: &str,
    at_ms: i64,
) -> Result<Promotion> {
    let report = check_version(project, model, version)?;
    if !report.passed() && !force {
        return Ok(Promotion { report, promoted: false });
    }
    let reason = if report.passed() {
        format!("{reason} (gates passed)")
    } else {
        format!("{reason} (forced past failed gates: {})", report.failures().join("; "))
    };
    set_champion(project, model, version, actor, &reason, at_ms)?;
    Ok(Promotion { report, promoted: true })
}

/// Points `model`'s champion at `version` without judging it (a model imported or served from a
/// file has no holdout to judge): the single rollout operation, audited with `reason`.
pub fn set_champion(project: &Project, model: &str, version: u32, actor: &str, reason: &str, at_ms: i64) -> Result<()> {
    project.meta.apply_rollout(&causeway_store::Rollout {
        model,
        change: causeway_store::RolloutChange::Champion(version),
        expected_generation: None,
        actor,
        at_ms,
        reason,
    })?;
    Ok(())
}

/// Points `model`'s champion back at the version it answered with before (the alias history's
/// previous target), audited with `actor` and `reason`; returns that version. The one place a
/// person's rollback is decided (the CLI and the web UI call it).
pub fn rollback(project: &Project, model: &str, actor: &str, reason: &str, at_ms: i64) -> Result<u32> {
    Ok(project.meta.rollback_alias(model, CHAMPION, actor, at_ms, reason)?)
}

/// The gates of `[loop.gates]` applied to a registered version: its holdout metrics and stored
/// evaluation, against the current champion (when another version is champion) scored on the
/// same holdout rows — stored with every trained version. When those rows cannot be scored by
/// the champion (an imported candidate, a champion reading features the rows lack), the
/// champion's registered metrics stand in, and the report says so.
pub fn check_version(project: &Project, model: &str, version: u32) -> Result<GateReport> {
    let record = project.meta.model_version(model, version)?;
    let task = load_artifact(project, &record)?.task;
    let evaluation: Option<Evaluation> = project
        .blobs
        .get(&evaluation_key(&record.artifact_key))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let champion = match project.meta.alias(model, CHAMPION)? {
        Some(champion) if champion != version => Some(champion),
        _ => None,
    };
    let Some(champion) = champion else {
        return Ok(check(&project.config.rollout.gates, &task, &record.metrics, evaluation.as_ref(), None));
    };
    let champion_record = project.meta.model_version(model, champion)?;
    let same_rows = load_holdout(project, &record)?.and_then(|(names, holdout)| {
        let artifact = load_artifact(project, &champion_record).ok()?;
        match evaluate(&artifact, &names, &holdout, &task) {
            Ok((_, metrics)) => Some(Ok((metrics, holdout.len()))),
            Err(error) => Some(Err(error.to_string())),
        }
    });
    let (champion_metrics, basis) = match same_rows {
        Some(Ok((metrics, rows))) => {
            (metrics, format!("champion v{champion} scored on v{version}'s {rows} holdout rows"))
        }
        Some(Err(why)) => (
            champion_record.metrics.clone(),
            format!(
                "champion v{champion}'s registered metrics (measured on its own holdout: it cannot score v{version}'s: {why})"
            ),
        ),
        None => (
            champion_record.metrics.clone(),
            format!("champion v{champion}'s registered metrics (v{version} has no stored holdout rows)"),
        ),
    };
    let mut report =
        check(&project.config.rollout.gates, &task, &record.metrics, evaluation.as_ref(), Some(&champion_metrics));
    report.basis = Some(basis);
    Ok(report)
}

/// Applies `gates` to a candidate's holdout `metrics` (and its `evaluation`, for the slice gap)
/// for `task`, comparing with the `champion`'s metrics on the same rows when given. Gates of
/// other tasks do not apply; a missing or NaN metric fails its gate.
pub fn check(
    gates: &Gates,
    task: &Task,
    metrics: &BTreeMap<String, f64>,
    evaluation: Option<&Evaluation>,
    champion: Option<&BTreeMap<String, f64>>,
) -> GateReport {
    let value = |metrics: &BTreeMap<String, f64>, name: &str| metrics.get(name).copied().unwrap_or(f64::NAN);
    let mut checks = Vec::new();
    // Each gate holds only when its comparison is true, so NaN fails.
    match task.kind() {
        TaskKind::Binary => {
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
                    detail: format!(
                        "recall {recall:.3} ≥ champion's {champion_recall:.3} − {:.3}",
                        gates.recall_tolerance
                    ),
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
        }
        TaskKind::Multiclass => {
            let accuracy = value(metrics, "accuracy");
            if let Some(champion) = champion {
                let champion_accuracy = value(champion, "accuracy");
                checks.push(GateCheck {
                    gate: "accuracy_tolerance",
                    passed: accuracy >= champion_accuracy - gates.accuracy_tolerance,
                    detail: format!(
                        "accuracy {accuracy:.3} ≥ champion's {champion_accuracy:.3} − {:.3}",
                        gates.accuracy_tolerance
                    ),
                });
            }
            if let Some(minimum) = gates.min_accuracy {
                checks.push(GateCheck {
                    gate: "min_accuracy",
                    passed: accuracy >= minimum,
                    detail: format!("accuracy {accuracy:.3} ≥ {minimum:.3}"),
                });
            }
        }
        TaskKind::Regression => {
            let rmse = value(metrics, "rmse");
            if let Some(champion) = champion {
                let champion_rmse = value(champion, "rmse");
                checks.push(GateCheck {
                    gate: "rmse_tolerance",
                    passed: rmse <= champion_rmse * (1.0 + gates.rmse_tolerance),
                    detail: format!(
                        "RMSE {rmse:.4} ≤ champion's {champion_rmse:.4} × (1 + {:.3})",
                        gates.rmse_tolerance
                    ),
                });
            }
            if let Some(maximum) = gates.max_rmse {
                checks.push(GateCheck {
                    gate: "max_rmse",
                    passed: rmse <= maximum,
                    detail: format!("RMSE {rmse:.4} ≤ {maximum:.4}"),
                });
            }
        }
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
    GateReport { checks, basis: None }
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
        let good =
            check(&gates, &Task::binary(), &metrics(0.94, 0.72, 0.02), Some(&evaluation(Some(0.1))), Some(&champion));
        assert!(good.passed(), "{:?}", good.failures());
        assert_eq!(good.checks.len(), 6);
        let failing = |candidate: BTreeMap<String, f64>, gap: Option<f64>| -> Vec<&'static str> {
            check(&gates, &Task::binary(), &candidate, Some(&evaluation(gap)), Some(&champion))
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
        let report = check(&low, &Task::binary(), &metrics(0.85, 0.4, 0.02), Some(&evaluation(None)), Some(&champion));
        assert_eq!(report.failures().len(), 2, "{:?}", report.failures());
        // Without a champion the comparisons are skipped; without an evaluation the gap fails;
        // a NaN metric fails.
        let alone = check(&gates, &Task::binary(), &metrics(0.95, 0.8, f64::NAN), None, None);
        let failed: Vec<_> = alone.checks.iter().filter(|check| !check.passed).map(|check| check.gate).collect();
        assert_eq!(failed, ["max_false_positive_rate", "max_slice_gap"]);
    }

    #[test]
    fn multiclass_and_regression_gates_compare_their_own_metrics() {
        let gates =
            Gates { min_accuracy: Some(0.8), max_rmse: Some(10.0), min_roc_auc: Some(0.99), ..Gates::default() };
        let classes = Task::Multiclass { classes: vec!["a".into(), "b".into(), "c".into()] };
        let accuracy = |value: f64| BTreeMap::from([("accuracy".to_string(), value)]);
        let failed = |report: GateReport| -> Vec<&'static str> {
            report.checks.into_iter().filter(|check| !check.passed).map(|check| check.gate).collect()
        };
        assert!(failed(check(&gates, &classes, &accuracy(0.9), None, Some(&accuracy(0.905)))).is_empty());
        assert_eq!(
            failed(check(&gates, &classes, &accuracy(0.85), None, Some(&accuracy(0.9)))),
            ["accuracy_tolerance"]
        );
        assert_eq!(failed(check(&gates, &classes, &accuracy(0.7), None, None)), ["min_accuracy"]);
        let rmse = |value: f64| BTreeMap::from([("rmse".to_string(), value)]);
        let numbers = Task::Regression;
        assert!(
            failed(check(&gates, &numbers, &rmse(8.1), None, Some(&rmse(8.0)))).is_empty(),
            "1.25 % worse is tolerated"
        );
        assert_eq!(failed(check(&gates, &numbers, &rmse(8.2), None, Some(&rmse(8.0)))), ["rmse_tolerance"]);
        assert_eq!(failed(check(&gates, &numbers, &rmse(11.0), None, None)), ["max_rmse"]);
        let report = check(&gates, &numbers, &rmse(5.0), None, None);
        assert!(report.checks.iter().all(|check| check.gate != "min_roc_auc"), "binary gates do not apply");
    }
}
