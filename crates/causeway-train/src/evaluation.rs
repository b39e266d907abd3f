//! A version's evaluation beyond one number: metrics at its threshold, a calibration curve, and
//! metrics per slice of every categorical feature with the largest gap between slices called out.
//!
//! Pure computation over scores, labels and feature values; storing and rendering are the
//! pipeline's and the model card's.

use std::collections::BTreeMap;

use causeway_models::{FeatureKind, Signature};
use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

use crate::TrainingSet;
use crate::metrics::{Confusion, binary_metrics};

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
    /// Positive rows.
    pub positives: usize,
    /// Recall at the version's threshold.
    pub recall: f64,
    /// False-positive rate at the threshold.
    pub false_positive_rate: f64,
    /// Precision at the threshold.
    pub precision: f64,
}

/// The largest difference of one metric between two comparable slices of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceGap {
    /// The feature.
    pub feature: String,
    /// `recall` or `false_positive_rate`.
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
    /// Ten equal-width score bins (empty bins left out).
    pub calibration: Vec<CalibrationBin>,
    /// Every value of every categorical feature.
    pub slices: Vec<Slice>,
    /// The largest recall or false-positive-rate gap between comparable slices, if any.
    pub largest_gap: Option<SliceGap>,
}

/// Evaluates `scores` (in `set`'s row order) at `threshold`.
pub fn evaluate(signature: &Signature, set: &TrainingSet, scores: &[f64], threshold: f64) -> Evaluation {
    let labels = &set.labels;
    Evaluation {
        threshold,
        rows: labels.len(),
        metrics: binary_metrics(scores, labels, threshold),
        calibration: calibration(scores, labels, 10),
        slices: slices(signature, set, scores, threshold),
        largest_gap: None,
    }
    .with_largest_gap()
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

fn slices(signature: &Signature, set: &TrainingSet, scores: &[f64], threshold: f64) -> Vec<Slice> {
    let mut slices = Vec::new();
    for (column, feature) in signature.features.iter().enumerate() {
        if !matches!(feature.kind, FeatureKind::Categorical { .. }) {
            continue;
        }
        let mut groups: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for ((values, score), label) in set.values.iter().zip(scores).zip(&set.labels) {
            let value = match values.get(column) {
                Some(FeatureValue::Text(text)) => text.clone(),
                Some(FeatureValue::Number(number)) => number.to_string(),
                _ => "(missing)".to_string(),
            };
            let group = groups.entry(value).or_default();
            group.0.push(*score);
            group.1.push(*label);
        }
        for (value, (group_scores, group_labels)) in groups {
            let confusion = Confusion::at(&group_scores, &group_labels, threshold);
            slices.push(Slice {
                feature: feature.name.clone(),
                value,
                rows: group_labels.len(),
                positives: group_labels.iter().filter(|label| **label >= 0.5).count(),
                recall: confusion.recall(),
                false_positive_rate: confusion.false_positive_rate(),
                precision: confusion.precision(),
            });
        }
    }
    slices
}

impl Evaluation {
    fn with_largest_gap(mut self) -> Self {
        let mut largest: Option<SliceGap> = None;
        let features: Vec<String> = self.slices.iter().map(|slice| slice.feature.clone()).collect();
        for feature in features.iter().collect::<std::collections::BTreeSet<_>>() {
            for metric in ["recall", "false_positive_rate"] {
                let comparable: Vec<(&str, f64)> = self
                    .slices
                    .iter()
                    .filter(|slice| &slice.feature == feature && slice.rows >= MIN_SLICE_ROWS)
                    .filter(|slice| metric != "recall" || slice.positives >= MIN_SLICE_POSITIVES)
                    .map(|slice| {
                        (
                            slice.value.as_str(),
                            if metric == "recall" { slice.recall } else { slice.false_positive_rate },
                        )
                    })
                    .collect();
                if comparable.len() < 2 {
                    continue;
                }
                let best_is_high = metric == "recall";
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
        let evaluation = evaluate(&signature, &set, &scores, 0.5);
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
