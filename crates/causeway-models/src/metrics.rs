//! Metrics for every task: binary classification (ROC-AUC, PR-AUC, precision, recall, …, at a
//! threshold), multi-class classification (accuracy, macro-F1, log loss, recall per class) and
//! regression (RMSE, MAE, R², MAPE). Pure functions over outputs and encoded labels; training,
//! gates, cards and monitoring all measure through them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::task::Task;

/// Counts at a threshold (score ≥ threshold is positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// True positives.
    pub true_positives: u64,
    /// False positives.
    pub false_positives: u64,
    /// True negatives.
    pub true_negatives: u64,
    /// False negatives.
    pub false_negatives: u64,
}

impl Confusion {
    /// Counts outcomes at `threshold`.
    pub fn at(scores: &[f64], labels: &[f64], threshold: f64) -> Confusion {
        let mut confusion = Confusion::default();
        for (score, label) in scores.iter().zip(labels) {
            match (*score >= threshold, *label > 0.5) {
                (true, true) => confusion.true_positives += 1,
                (true, false) => confusion.false_positives += 1,
                (false, false) => confusion.true_negatives += 1,
                (false, true) => confusion.false_negatives += 1,
            }
        }
        confusion
    }

    /// TP / (TP + FP); 0 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    /// TP / (TP + FN); 0 when there are no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    /// FP / (FP + TN); 0 when there are no negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.false_positives, self.false_positives + self.true_negatives)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (precision, recall) = (self.precision(), self.recall());
        if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) }
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

/// Area under the ROC curve, with tied scores counted as half; 0.5 when a class is absent.
pub fn roc_auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().zip(labels).map(|(score, label)| (*score, *label > 0.5)).collect();
    pairs.sort_by(|left, right| left.0.total_cmp(&right.0));
    let positives = pairs.iter().filter(|pair| pair.1).count() as f64;
    let negatives = pairs.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let mut rank_sum = 0.0;
    let mut index = 0;
    while index < pairs.len() {
        let mut end = index;
        while end + 1 < pairs.len() && pairs[end + 1].0 == pairs[index].0 {
            end += 1;
        }
        let average_rank = (index + end) as f64 / 2.0 + 1.0;
        rank_sum += average_rank * pairs[index..=end].iter().filter(|pair| pair.1).count() as f64;
        index = end + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision (area under the precision–recall curve, step-wise); 0 without positives.
pub fn average_precision(scores: &[f64], labels: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().zip(labels).map(|(score, label)| (*score, *label > 0.5)).collect();
    pairs.sort_by(|left, right| right.0.total_cmp(&left.0));
    let positives = pairs.iter().filter(|pair| pair.1).count() as f64;
    if positives == 0.0 {
        return 0.0;
    }
    let (mut true_positives, mut seen, mut area) = (0.0, 0.0, 0.0);
    let mut index = 0;
    while index < pairs.len() {
        let mut end = index;
        while end + 1 < pairs.len() && pairs[end + 1].0 == pairs[index].0 {
            end += 1;
        }
        let group_positives = pairs[index..=end].iter().filter(|pair| pair.1).count() as f64;
        true_positives += group_positives;
        seen += (end - index + 1) as f64;
        area += group_positives / positives * (true_positives / seen);
        index = end + 1;
    }
    area
}

/// Mean log loss of probabilities.
pub fn log_loss(scores: &[f64], labels: &[f64]) -> f64 {
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(score, label)| {
            let probability = score.clamp(1e-15, 1.0 - 1e-15);
            -(label * probability.ln() + (1.0 - label) * (1.0 - probability).ln())
        })
        .sum();
    total / scores.len().max(1) as f64
}

/// Mean squared error of probabilities.
pub fn brier_score(scores: &[f64], labels: &[f64]) -> f64 {
    scores.iter().zip(labels).map(|(score, label)| (score - label).powi(2)).sum::<f64>() / scores.len().max(1) as f64
}

/// The lowest threshold whose false-positive rate on these labels is at most `target`.
pub fn threshold_for_false_positive_rate(scores: &[f64], labels: &[f64], target: f64) -> f64 {
    let mut negatives: Vec<f64> =
        scores.iter().zip(labels).filter(|(_, label)| **label <= 0.5).map(|(score, _)| *score).collect();
    if negatives.is_empty() {
        return 0.5;
    }
    negatives.sort_by(|left, right| right.total_cmp(left));
    let allowed = (target.clamp(0.0, 1.0) * negatives.len() as f64).floor() as usize;
    match negatives.get(allowed) {
        Some(score) => next_up(*score).min(1.0),
        None => 0.0,
    }
}

fn next_up(value: f64) -> f64 {
    if value.is_nan() || value == f64::INFINITY {
        value
    } else if value == 0.0 {
        f64::from_bits(1)
    } else if value > 0.0 {
        f64::from_bits(value.to_bits() + 1)
    } else {
        f64::from_bits(value.to_bits() - 1)
    }
}

/// The standard metric set at `threshold`, by name.
pub fn binary_metrics(scores: &[f64], labels: &[f64], threshold: f64) -> BTreeMap<String, f64> {
    let confusion = Confusion::at(scores, labels, threshold);
    BTreeMap::from([
        ("roc_auc".to_string(), roc_auc(scores, labels)),
        ("pr_auc".to_string(), average_precision(scores, labels)),
        ("precision".to_string(), confusion.precision()),
        ("recall".to_string(), confusion.recall()),
        ("f1".to_string(), confusion.f1()),
        ("false_positive_rate".to_string(), confusion.false_positive_rate()),
        ("log_loss".to_string(), log_loss(scores, labels)),
        ("brier".to_string(), brier_score(scores, labels)),
        ("threshold".to_string(), threshold),
        ("rows".to_string(), scores.len() as f64),
        ("positives".to_string(), labels.iter().filter(|label| **label > 0.5).count() as f64),
        ("true_positives".to_string(), confusion.true_positives as f64),
        ("false_positives".to_string(), confusion.false_positives as f64),
        ("true_negatives".to_string(), confusion.true_negatives as f64),
        ("false_negatives".to_string(), confusion.false_negatives as f64),
    ])
}

/// Multi-class metrics of `probabilities` (`classes` per row, row after row) against class-index
/// labels: `accuracy`, `macro_f1`, `log_loss`, and `recall_<class>` and `precision_<class>` per
/// class (named by `names`).
pub fn multiclass_metrics(probabilities: &[f64], names: &[String], labels: &[f64]) -> BTreeMap<String, f64> {
    let classes = names.len().max(1);
    let rows = labels.len();
    let mut correct = 0usize;
    let mut loss = 0.0;
    let mut true_positives = vec![0usize; classes];
    let mut predicted = vec![0usize; classes];
    let mut actual = vec![0usize; classes];
    for (row, label) in labels.iter().enumerate() {
        let Some(scores) = probabilities.get(row * classes..(row + 1) * classes) else { break };
        let guess = argmax(scores);
        let truth = *label as usize;
        predicted[guess] += 1;
        if truth < classes {
            actual[truth] += 1;
            if guess == truth {
                correct += 1;
                true_positives[truth] += 1;
            }
            loss -= scores[truth].clamp(1e-15, 1.0).ln();
        }
    }
    let mut metrics = BTreeMap::new();
    let mut f1_sum = 0.0;
    for (index, name) in names.iter().enumerate() {
        let recall = ratio(true_positives[index] as u64, actual[index] as u64);
        let precision = ratio(true_positives[index] as u64, predicted[index] as u64);
        let f1 = if recall + precision == 0.0 { 0.0 } else { 2.0 * recall * precision / (recall + precision) };
        f1_sum += f1;
        metrics.insert(format!("recall_{name}"), recall);
        metrics.insert(format!("precision_{name}"), precision);
    }
    metrics.insert("accuracy".into(), ratio(correct as u64, rows as u64));
    metrics.insert("macro_f1".into(), f1_sum / classes as f64);
    metrics.insert("log_loss".into(), loss / rows.max(1) as f64);
    metrics.insert("rows".into(), rows as f64);
    metrics.insert("classes".into(), names.len() as f64);
    metrics
}

/// The index of the largest value (the first on ties; NaN never wins).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] || values[best].is_nan() {
            best = index;
        }
    }
    best
}

/// Regression metrics of `predictions` against `labels`: `rmse`, `mae`, `r2` (1 − residual sum
/// of squares / total sum of squares; NaN for a constant label), `mape` (mean absolute percentage
/// error over labels that are not zero; NaN when all are), and the label's `mean`.
pub fn regression_metrics(predictions: &[f64], labels: &[f64]) -> BTreeMap<String, f64> {
    let rows = labels.len().min(predictions.len());
    let count = rows.max(1) as f64;
    let mean = labels.iter().take(rows).sum::<f64>() / count;
    let (mut squared, mut absolute, mut total, mut percentage, mut nonzero) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for (prediction, label) in predictions.iter().zip(labels) {
        let error = prediction - label;
        squared += error * error;
        absolute += error.abs();
        total += (label - mean) * (label - mean);
        if *label != 0.0 {
            percentage += (error / label).abs();
            nonzero += 1;
        }
    }
    BTreeMap::from([
        ("rmse".to_string(), (squared / count).sqrt()),
        ("mae".to_string(), absolute / count),
        ("r2".to_string(), if total > 0.0 { 1.0 - squared / total } else { f64::NAN }),
        ("mape".to_string(), if nonzero > 0 { percentage / nonzero as f64 } else { f64::NAN }),
        ("mean".to_string(), mean),
        ("rows".to_string(), rows as f64),
    ])
}

/// The standard metrics of `task`: `outputs` are the model's outputs (one per row, or one per
/// class per row for multi-class), `labels` encoded; `threshold` applies to binary tasks only.
pub fn task_metrics(task: &Task, outputs: &[f64], labels: &[f64], threshold: f64) -> BTreeMap<String, f64> {
    match task {
        Task::Binary { .. } => binary_metrics(outputs, labels, threshold),
        Task::Multiclass { classes } => multiclass_metrics(outputs, classes, labels),
        Task::Regression => regression_metrics(outputs, labels),
    }
}

/// The metrics people look at first for `task`, in order.
pub fn headline_metrics(task: &Task) -> &'static [&'static str] {
    match task {
        Task::Binary { .. } => {
            &["roc_auc", "pr_auc", "recall", "false_positive_rate", "precision", "log_loss", "brier"]
        }
        Task::Multiclass { .. } => &["accuracy", "macro_f1", "log_loss"],
        Task::Regression => &["rmse", "mae", "r2", "mape"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiclass_and_regression_metrics_match_hand_computed_values() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|name| name.to_string()).collect();
        // Rows: truth a (right), b (guessed c), c (right), c (guessed a).
        let probabilities = [0.7, 0.2, 0.1, 0.1, 0.3, 0.6, 0.0, 0.2, 0.8, 0.5, 0.1, 0.4];
        let metrics = multiclass_metrics(&probabilities, &names, &[0.0, 1.0, 2.0, 2.0]);
        assert_eq!(metrics["accuracy"], 0.5);
        assert_eq!((metrics["recall_a"], metrics["recall_b"], metrics["recall_c"]), (1.0, 0.0, 0.5));
        // F1: a = 2·1·0.5/1.5, b = 0, c = 2·0.5·0.5/1.
        assert!((metrics["macro_f1"] - (2.0 / 3.0 + 0.0 + 0.5) / 3.0).abs() < 1e-12);
        let loss = -(0.7_f64.ln() + 0.3_f64.ln() + 0.8_f64.ln() + 0.4_f64.ln()) / 4.0;
        assert!((metrics["log_loss"] - loss).abs() < 1e-12);

        let regression = regression_metrics(&[2.0, 4.0, 7.0], &[1.0, 4.0, 10.0]);
        assert!((regression["rmse"] - (10.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((regression["mae"] - 4.0 / 3.0).abs() < 1e-12);
        // Mean 5; total sum of squares 16 + 1 + 25 = 42; residual 10.
        assert!((regression["r2"] - (1.0 - 10.0 / 42.0)).abs() < 1e-12);
        assert!((regression["mape"] - (1.0 + 0.0 + 0.3) / 3.0).abs() < 1e-12);
        assert!(regression_metrics(&[1.0], &[0.0])["mape"].is_nan());
        assert_eq!(argmax(&[f64::NAN, 0.2, 0.9, 0.9]), 2);
    }

    #[test]
    fn auc_matches_pair_counting_with_ties() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9];
        let labels = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for (positive, _) in scores.iter().zip(&labels).filter(|(_, label)| **label == 1.0) {
            for (negative, _) in scores.iter().zip(&labels).filter(|(_, label)| **label == 0.0) {
                pairs += 1.0;
                wins += if positive > negative {
                    1.0
                } else if positive == negative {
                    0.5
                } else {
                    0.0
                };
            }
        }
        assert!((roc_auc(&scores, &labels) - wins / pairs).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.1, 0.2], &[0.0, 0.0]), 0.5);
    }

    #[test]
    fn average_precision_of_a_perfect_and_a_known_ranking() {
        assert!((average_precision(&[0.9, 0.8, 0.1], &[1.0, 1.0, 0.0]) - 1.0).abs() < 1e-12);
        // Ranking: +, -, + → AP = (1/1 + 2/3) / 2.
        assert!((average_precision(&[0.9, 0.8, 0.7], &[1.0, 0.0, 1.0]) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn confusion_and_threshold_for_target_rate() {
        let scores: Vec<f64> = (0..100).map(|index| index as f64 / 100.0).collect();
        let labels: Vec<f64> = (0..100).map(|index| f64::from(u8::from(index >= 90))).collect();
        let threshold = threshold_for_false_positive_rate(&scores, &labels, 0.1);
        let confusion = Confusion::at(&scores, &labels, threshold);
        assert!(confusion.false_positive_rate() <= 0.1);
        assert_eq!(confusion.false_positives, 9);
        assert_eq!(confusion.recall(), 1.0);
        assert!((confusion.precision() - 10.0 / 19.0).abs() < 1e-12);
        let metrics = binary_metrics(&scores, &labels, 0.9);
        assert_eq!(metrics["recall"], 1.0);
        assert_eq!(metrics["false_positive_rate"], 0.0);
    }
}
