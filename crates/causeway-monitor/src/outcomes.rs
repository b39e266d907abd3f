//! Delayed labels joined to logged predictions by request id, and the resulting metrics per
//! model version, for its task: recall, precision, false-positive rate and ROC-AUC (binary),
//! accuracy (multi-class), RMSE and MAE (regression).

use std::collections::{BTreeMap, HashMap};

use causeway_models::TaskKind;
use causeway_models::metrics::{Confusion, regression_metrics, roc_auc};
use causeway_types::LabelRecord;
use serde::{Deserialize, Serialize};

use crate::predlog::PredictionRecord;

/// How one version's predictions are judged: its task, and its threshold (binary).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// What the version predicts.
    pub task: TaskKind,
    /// Binary versions: the decision threshold.
    pub threshold: f64,
}

impl Judging {
    /// A binary version deciding at `threshold`.
    pub fn binary(threshold: f64) -> Self {
        Self { task: TaskKind::Binary, threshold }
    }
}

/// How one model version did on the labelled part of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionOutcomes {
    /// The model version.
    pub version: u32,
    /// Predictions in the window (served and shadow).
    pub predictions: u64,
    /// Of those, how many have a label.
    pub labeled: u64,
    /// Labelled positives.
    pub positives: u64,
    /// ROC-AUC on labelled predictions.
    pub roc_auc: f64,
    /// Precision at the version's threshold.
    pub precision: f64,
    /// Recall at the version's threshold.
    pub recall: f64,
    /// False-positive rate at the version's threshold.
    pub false_positive_rate: f64,
    /// The task's metrics on the labelled predictions: `recall`, `precision`,
    /// `false_positive_rate`, `roc_auc` (binary); `accuracy` (multi-class); `rmse`, `mae`, `r2`
    /// (regression).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

impl VersionOutcomes {
    /// Fills in a binary version's metrics from its confusion counts at its threshold.
    pub(crate) fn set_binary(&mut self, confusion: &Confusion, positives: u64, roc_auc: f64) {
        self.positives = positives;
        self.roc_auc = roc_auc;
        self.precision = confusion.precision();
        self.recall = confusion.recall();
        self.false_positive_rate = confusion.false_positive_rate();
        self.metrics = BTreeMap::from([
            ("roc_auc".to_string(), self.roc_auc),
            ("precision".to_string(), self.precision),
            ("recall".to_string(), self.recall),
            ("false_positive_rate".to_string(), self.false_positive_rate),
        ]);
    }
}

/// Joins labels to predictions and computes metrics per version, for its task (binary at its
/// threshold; a version missing from `judging` is judged as binary at 0.5). Shadow predictions
/// count: they score the same requests and receive the same labels.
pub fn outcomes_by_version(
    records: &[PredictionRecord],
    labels: &HashMap<String, LabelRecord>,
    judging: &HashMap<u32, Judging>,
) -> BTreeMap<u32, VersionOutcomes> {
    /// One version's predictions, and the scores, predictions and labels of the labelled ones.
    #[derive(Default)]
    struct Joined {
        predictions: u64,
        scores: Vec<f64>,
        predicted: Vec<f64>,
        truth: Vec<f64>,
    }
    let mut grouped: BTreeMap<u32, Joined> = BTreeMap::new();
    for record in records {
        let entry = grouped.entry(record.version).or_default();
        entry.predictions += 1;
        if let Some(label) = labels.get(&record.request_id) {
            // Records from before predictions were logged: a regression's score is its
            // prediction; a multi-class record without one cannot be judged and is left out.
            let task = judging.get(&record.version).map_or(TaskKind::Binary, |judging| judging.task);
            let Some(prediction) = crate::summary::judged_prediction(task, record.score, record.prediction) else {
                continue;
            };
            entry.scores.push(record.score);
            entry.predicted.push(prediction);
            entry.truth.push(label.label);
        }
    }
    grouped
        .into_iter()
        .map(|(version, Joined { predictions, scores, predicted, truth })| {
            let judging = judging.get(&version).copied().unwrap_or(Judging::binary(0.5));
            let mut outcomes = VersionOutcomes {
                version,
                predictions,
                labeled: scores.len() as u64,
                positives: 0,
                roc_auc: f64::NAN,
                precision: f64::NAN,
                recall: f64::NAN,
                false_positive_rate: f64::NAN,
                metrics: BTreeMap::new(),
            };
            match judging.task {
                TaskKind::Binary => {
                    let confusion = Confusion::at(&scores, &truth, judging.threshold);
                    let positives = truth.iter().filter(|label| **label > 0.5).count() as u64;
                    outcomes.set_binary(&confusion, positives, roc_auc(&scores, &truth));
                }
                TaskKind::Multiclass => {
                    let right = predicted.iter().zip(&truth).filter(|(guess, label)| guess == label).count();
                    let accuracy = if truth.is_empty() { f64::NAN } else { right as f64 / truth.len() as f64 };
                    outcomes.metrics = BTreeMap::from([("accuracy".to_string(), accuracy)]);
                }
                TaskKind::Regression => {
                    let mut metrics = regression_metrics(&predicted, &truth);
                    metrics.retain(|name, _| matches!(name.as_str(), "rmse" | "mae" | "r2"));
                    outcomes.metrics = metrics;
                }
            }
            (version, outcomes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predlog::Role;

    fn record(id: &str, version: u32, score: f64) -> PredictionRecord {
        PredictionRecord {
            request_id: id.into(),
            timestamp_ms: 0,
            model: "fraud".into(),
            version,
            role: Role::Served,
            score,
            prediction: score,
            latency_us: 1,
            features: vec![],
        }
    }

    #[test]
    fn joins_by_request_id_and_splits_by_version() {
        let records = vec![
            record("a", 1, 0.9),
            record("b", 1, 0.2),
            record("c", 1, 0.7),
            record("a", 2, 0.1),
            record("z", 2, 0.9),
        ];
        let labels = HashMap::from([
            ("a".to_string(), LabelRecord { label: 1.0, arrived_ms: 5 }),
            ("b".to_string(), LabelRecord { label: 0.0, arrived_ms: 5 }),
            ("c".to_string(), LabelRecord { label: 0.0, arrived_ms: 5 }),
        ]);
        let judging = HashMap::from([(1, Judging::binary(0.5)), (2, Judging::binary(0.5))]);
        let outcomes = outcomes_by_version(&records, &labels, &judging);
        let first = &outcomes[&1];
        assert_eq!((first.predictions, first.labeled, first.positives), (3, 3, 1));
        assert_eq!(first.recall, 1.0);
        assert_eq!(first.false_positive_rate, 0.5);
        assert_eq!(first.roc_auc, 1.0);
        let second = &outcomes[&2];
        assert_eq!((second.predictions, second.labeled), (2, 1));
        assert_eq!(second.recall, 0.0);
    }

    #[test]
    fn multiclass_and_regression_versions_are_judged_on_their_predictions() {
        let mut classes = record("a", 1, 0.7);
        classes.prediction = 2.0;
        let mut wrong = record("b", 1, 0.6);
        wrong.prediction = 0.0;
        let mut price = record("a", 2, 105.0);
        price.prediction = 105.0;
        let labels = HashMap::from([
            ("a".to_string(), LabelRecord { label: 2.0, arrived_ms: 1 }),
            ("b".to_string(), LabelRecord { label: 1.0, arrived_ms: 1 }),
        ]);
        let judging = HashMap::from([
            (1, Judging { task: TaskKind::Multiclass, threshold: 0.5 }),
            (2, Judging { task: TaskKind::Regression, threshold: 0.5 }),
        ]);
        let outcomes = outcomes_by_version(&[classes, wrong, price], &labels, &judging);
        assert_eq!(outcomes[&1].metrics["accuracy"], 0.5);
        assert_eq!(outcomes[&2].metrics["rmse"], 103.0, "predicted 105, the label was 2");
    }
}
