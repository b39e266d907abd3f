//! Delayed labels joined to logged predictions by request id, and the resulting metrics per
//! model version.

use std::collections::{BTreeMap, HashMap};

use causeway_train::metrics::{Confusion, roc_auc};
use causeway_types::LabelRecord;
use serde::{Deserialize, Serialize};

use crate::predlog::PredictionRecord;

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
}

/// Joins labels to predictions and computes metrics per version, at each version's threshold.
/// Shadow predictions count: they score the same requests and receive the same labels.
pub fn outcomes_by_version(
    records: &[PredictionRecord],
    labels: &HashMap<String, LabelRecord>,
    thresholds: &HashMap<u32, f64>,
) -> BTreeMap<u32, VersionOutcomes> {
    let mut grouped: BTreeMap<u32, (u64, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for record in records {
        let entry = grouped.entry(record.version).or_default();
        entry.0 += 1;
        if let Some(label) = labels.get(&record.request_id) {
            entry.1.push(record.score);
            entry.2.push(label.label);
        }
    }
    grouped
        .into_iter()
        .map(|(version, (predictions, scores, truth))| {
            let threshold = thresholds.get(&version).copied().unwrap_or(0.5);
            let confusion = Confusion::at(&scores, &truth, threshold);
            (
                version,
                VersionOutcomes {
                    version,
                    predictions,
                    labeled: scores.len() as u64,
                    positives: truth.iter().filter(|label| **label > 0.5).count() as u64,
                    roc_auc: roc_auc(&scores, &truth),
                    precision: confusion.precision(),
                    recall: confusion.recall(),
                    false_positive_rate: confusion.false_positive_rate(),
                },
            )
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
        let outcomes = outcomes_by_version(&records, &labels, &HashMap::from([(1, 0.5), (2, 0.5)]));
        let first = &outcomes[&1];
        assert_eq!((first.predictions, first.labeled, first.positives), (3, 3, 1));
        assert_eq!(first.recall, 1.0);
        assert_eq!(first.false_positive_rate, 0.5);
        assert_eq!(first.roc_auc, 1.0);
        let second = &outcomes[&2];
        assert_eq!((second.predictions, second.labeled), (2, 1));
        assert_eq!(second.recall, 0.0);
    }
}
