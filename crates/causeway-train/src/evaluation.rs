//! A version's evaluation beyond one number: its task's metrics (at its threshold, for binary
//! models), a calibration curve (binary), and metrics per slice of every categorical feature —
//! recall, false-positive rate and precision (binary), accuracy (multi-class) or RMSE
//! (regression) — with the largest gap between comparable slices called out.
//!
//! Pure computation over scores, labels and feature values; storing and rendering are the
//! pipeline's and the model card's.

use std::collections::BTreeMap;

use causeway_models::metrics::{argmax, task_metrics};
use causeway_models::{FeatureKind, Signature, Task};
use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

use crate::TrainingSet;
use crate::metrics::Confusion;

/// Slices smaller than this are listed but not compared.
pub const MIN_SLICE_ROWS: usize = 100;
/// Slices with fewer positives than this do not enter recall comparisons.
pub const MIN_SLICE_POSITIVES: usize = 10;

/// One bin of the calibration curve: rows whose score fell in `[lower, upper)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower score bound.
    pub lower: f64,
    /// Upper score bound.
    pub upper: f64,
    /// Rows in the bin.
    pub rows: usize,
    /// Their mean score.
    pub mean_score: f64,
    /// The share of them that were positive.
    pub positive_rate: f64,
}

/// Metrics of the rows where one categorical feature has one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// The feature.
    pub feature: String,
    /// Its value (`(missing)` for missing).
    pub value: String,
    /// Rows in the slice.
    pub rows: usize,
    /// Positive rows (binary models; 0 otherwise).
    pub positives: usize,
    /// Recall at the version's threshold (binary models).
    #[serde(default)]
    pub recall: Option<f64>,
    /// False-positive rate at the threshold (binary models).
    #[serde(default)]
    pub false_positive_rate: Option<f64>,
    /// Precision at the threshold (binary models).
    #[serde(default)]
    pub precision: Option<f64>,
    /// The share of rows whose most likely class is right (multi-class models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Root-mean-square error (regression models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
}

impl Slice {
    /// The value of `metric` (`recall`, `false_positive_rate`, `precision`, `accuracy`, `rmse`).
    pub fn metric(&self, metric: &str) -> Option<f64> {
        match metric {
            "recall" => self.recall,
            "false_positive_rate" => self.false_positive_rate,
            "precision" => self.precision,
            "accuracy" => self.accuracy,
            "rmse" => self.rmse,
            _ => None,
        }
    }
}

/// The largest difference of one metric between two comparable slices of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceGap {
    /// The feature.
    pub feature: String,
    /// `recall`, `false_positive_rate`, `accuracy` or `rmse`.
    pub metric: String,
    /// The slice where the metric is best, and its value.
    pub best: (String, f64),
    /// The slice where it is worst, and its value.
    pub worst: (String, f64),
    /// `|best - worst|`.
    pub gap: f64,
}

/// The evaluation of one version on its holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The decision threshold evaluated.
    pub threshold: f64,
    /// Rows evaluated.
    pub rows: usize,
    /// ROC-AUC, PR-AUC, log loss, Brier score, precision, recall, F1, false-positive rate, …
    pub metrics: BTreeMap<String, f64>,
    /// Ten equal-width score bins (empty bins left out; binary models only).
    pub calibration: Vec<CalibrationBin>,
    /// Every value of every categorical feature.
    pub slices: Vec<Slice>,
    /// The largest recall or false-positive-rate gap between comparable slices, if any.
    pub largest_gap: Option<SliceGap>,
}

/// Evaluates a model's `outputs` on `set` (in its row order: one per row, or one per class per
/// row for multi-class), at `threshold` for binary models.
pub fn evaluate(signature: &Signature, task: &Task, set: &TrainingSet, outputs: &[f64], threshold: f64) -> Evaluation {
    let labels = &set.labels;
    let binary = matches!(task, Task::Binary { .. });
    Evaluation {
        threshold,
        rows: labels.len(),
        metrics: task_metrics(task, outputs, labels, threshold),
        calibration: if binary { calibration(outputs, labels, 10) } else { Vec::new() },
        slices: slices(signature, task, set, outputs, threshold),
        largest_gap: None,
    }
    .with_largest_gap(task)
}

/// Equal-width bins over [0, 1].
pub fn calibration(scores: &[f64], labels: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sums = vec![(0_usize, 0.0_f64, 0.0_f64); bins];
    for (score, label) in scores.iter().zip(labels) {
        if !score.is_finite() {
            continue;
        }
        let bin = ((score.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += 1;
        sums[bin].1 += score;
        sums[bin].2 += label;
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (rows, _, _))| *rows > 0)
        .map(|(bin, (rows, score_sum, positives))| CalibrationBin {
            lower: bin as f64 / bins as f64,
            upper: (bin + 1) as f64 / bins as f64,
            rows: *rows,
            mean_score: score_sum / *rows as f64,
            positive_rate: positives / *rows as f64,
        })
        .collect()
}

fn slices(signature: &Signature, task: &Task, set: &TrainingSet, outputs: &[f64], threshold: f64) -> Vec<Slice> {
    let width = task.outputs().max(1);
    let mut slices = Vec::new();
    for (column, feature) in signature.features.iter().enumerate() {
        if !matches!(feature.kind, FeatureKind::Categorical { .. }) {
            continue;
        }
        let mut groups: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for ((values, row_outputs), label) in set.values.iter().zip(outputs.chunks(width)).zip(&set.labels) {
            let value = match values.get(column) {
                Some(FeatureValue::Text(text)) => text.clone(),
                Some(FeatureValue::Number(number)) => number.to_string(),
                _ => "(missing)".to_string(),
            };
            let group = groups.entry(value).or_default();
            group.0.extend_from_slice(row_outputs);
            group.1.push(*label);
        }
        for (value, (group_outputs, group_labels)) in groups {
            let mut slice = Slice {
                feature: feature.name.clone(),
                value,
                rows: group_labels.len(),
                positives: 0,
                recall: None,
                false_positive_rate: None,
                precision: None,
                accuracy: None,
                rmse: None,
            };
            match task {
                Task::Binary { .. } => {
                    let confusion = Confusion::at(&group_outputs, &group_labels, threshold);
                    slice.positives = group_labels.iter().filter(|label| **label >= 0.5).count();
                    slice.recall = Some(confusion.recall());
                    slice.false_positive_rate = Some(confusion.false_positive_rate());
                    slice.precision = Some(confusion.precision());
                }
                Task::Multiclass { .. } => {
                    let right = group_outputs
                        .chunks(width)
                        .zip(&group_labels)
                        .filter(|(probabilities, label)| argmax(probabilities) == **label as usize)
                        .count();
                    slice.accuracy = Some(right as f64 / group_labels.len().max(1) as f64);
                }
                Task::Regression => {
                    let squared: f64 = group_outputs
                        .iter()
                        .zip(&group_labels)
                        .map(|(prediction, label)| (prediction - label).powi(2))
                        .sum();
                    slice.rmse = Some((squared / group_labels.len().max(1) as f64).sqrt());
                }
            }
            slices.push(slice);
        }
    }
    slices
}

impl Evaluation {
    fn with_largest_gap(mut self, task: &Task) -> Self {
        let mut largest: Option<SliceGap> = None;
        let features: Vec<String> = self.slices.iter().map(|slice| slice.feature.clone()).collect();
        let compared: &[&str] = match task {
            Task::Binary { .. } => &["recall", "false_positive_rate"],
            Task::Multiclass { .. } => &["accuracy"],
            Task::Regression => &["rmse"],
        };
        for feature in features.iter().collect::<std::collections::BTreeSet<_>>() {
            for metric in compared {
                let metric = *metric;
                let comparable: Vec<(&str, f64)> = self
                    .slices
                    .iter()
                    .filter(|slice| &slice.feature == feature && slice.rows >= MIN_SLICE_ROWS)
                    .filter(|slice| metric != "recall" || slice.positives >= MIN_SLICE_POSITIVES)
                    .filter_map(|slice| Some((slice.value.as_str(), slice.metric(metric)?)))
                    .collect();
                if comparable.len() < 2 {
                    continue;
                }
                let best_is_high = matches!(metric, "recall" | "accuracy");
                let by_value = |a: &&(&str, f64), b: &&(&str, f64)| a.1.total_cmp(&b.1);
                let (high, low) = match (comparable.iter().max_by(by_value), comparable.iter().min_by(by_value)) {
                    (Some(high), Some(low)) => (*high, *low),
                    _ => continue,
                };
                let gap = high.1 - low.1;
                if largest.as_ref().is_none_or(|current| gap > current.gap) {
                    let (best, worst) = if best_is_high { (high, low) } else { (low, high) };
                    largest = Some(SliceGap {
                        feature: feature.clone(),
                        metric: metric.to_string(),
                        best: (best.0.to_string(), best.1),
                        worst: (worst.0.to_string(), worst.1),
                        gap,
                    });
                }
            }
        }
        self.largest_gap = largest;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_models::FeatureSpec;

    #[test]
    fn calibration_slices_and_the_largest_gap() {
        // Channel "web" is caught (scores follow labels), channel "store" is missed half the time.
        let mut set = TrainingSet { ids: vec![], timestamps: vec![], values: vec![], labels: vec![] };
        let mut scores = Vec::new();
        for index in 0..400 {
            let web = index % 2 == 0;
            let positive = index % 4 < 2 && index % 8 != 0;
            let missed = !web && index % 3 == 0;
            set.values.push(vec![FeatureValue::Text(if web { "web" } else { "store" }.into())]);
            set.labels.push(if positive { 1.0 } else { 0.0 });
            scores.push(if positive && !missed { 0.9 } else { 0.1 });
        }
        set.ids = (0..400).map(|index| index.to_string()).collect();
        set.timestamps = vec![0; 400];
        let signature = Signature {
            features: vec![FeatureSpec {
                name: "channel".into(),
                kind: FeatureKind::Categorical { vocabulary: vec!["store".into(), "web".into()] },
                nullable: true,
            }],
        };
        let evaluation = evaluate(&signature, &Task::binary(), &set, &scores, 0.5);
        assert_eq!(evaluation.slices.len(), 2);
        assert_eq!(evaluation.calibration.iter().map(|bin| bin.rows).sum::<usize>(), 400);
        assert!(evaluation.calibration.iter().all(|bin| bin.mean_score >= bin.lower && bin.mean_score <= bin.upper));
        let gap = evaluation.largest_gap.expect("a gap");
        assert_eq!((gap.feature.as_str(), gap.metric.as_str()), ("channel", "recall"));
        assert_eq!((gap.best.0.as_str(), gap.worst.0.as_str()), ("web", "store"));
        assert!(gap.gap > 0.2, "{gap:?}");
        assert!(evaluation.metrics.contains_key("brier") && evaluation.metrics.contains_key("roc_auc"));
    }
}
