//! Mergeable summaries of the prediction log, so a window is the sum of stored per-bucket
//! summaries and a tick never re-reads old segments.
//!
//! - [`TrafficSummary`]: one version's predictions in a time bucket — how many, their scores,
//!   latencies, and every feature sketched on the version's training baseline (PSI bins and the
//!   quantile cells KS needs), so drift over any run of buckets is exactly what reading the
//!   records would give.
//! - [`OutcomeSummary`]: one version's labelled predictions in a bucket — the confusion counts at
//!   its threshold and a score histogram per class (binary), right answers (multi-class),
//!   error sums (regression).
//! - [`PairedSums`]: the paired evidence of two versions that scored the same labelled requests.
//!
//! Summaries only add up; what they are summaries *of* (which bucket, which versions) is the
//! caller's. Latency quantiles come from a log-scale histogram (2 % wide bins, the bin's upper
//! edge reported); ROC-AUC from 1,000 score bins (ties within a bin count half). Everything
//! else is exact.

use std::collections::BTreeMap;

use causeway_models::TaskKind;
use causeway_models::metrics::Confusion;
use serde::{Deserialize, Serialize};

use crate::baseline::{FeatureBaseline, ModelBaseline};
use crate::drift::{DriftReport, FeatureDrift, psi};
use crate::outcomes::{Judging, VersionOutcomes};
use crate::paired::PairedEvidence;

/// Relative width of a latency bin.
const LATENCY_BIN_GROWTH: f64 = 1.02;

/// Distinct codes a categorical sketch keeps; codes beyond, unseen in training, are counted as
/// [`UNSEEN_CATEGORIES`].
const MAX_CATEGORIES: usize = 256;

/// The code the unseen codes beyond [`MAX_CATEGORIES`] are counted as.
const UNSEEN_CATEGORIES: &str = "unseen";

/// Score bins for ROC-AUC.
const SCORE_BINS: f64 = 1_000.0;

/// Counts of latencies on log-scale bins (bin 0 holds 0 µs; bin `b` holds up to `1.02^b` µs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    bins: BTreeMap<u32, u64>,
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn add(&mut self, latency_us: u64) {
        let bin = if latency_us == 0 { 0 } else { 1 + ((latency_us as f64).ln() / LATENCY_BIN_GROWTH.ln()) as u32 };
        *self.bins.entry(bin).or_default() += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Self) {
        for (bin, count) in &other.bins {
            *self.bins.entry(*bin).or_default() += count;
        }
    }

    /// The `quantile` (0–1) in milliseconds, as its bin's upper edge (at most 2 % above the true
    /// value); NaN when empty (the rank is `ceil(n × quantile)`).
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        let total: u64 = self.bins.values().sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((total as f64 * quantile).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, count) in &self.bins {
            seen += count;
            if seen >= rank {
                return if *bin == 0 { 0.0 } else { LATENCY_BIN_GROWTH.powi(*bin as i32) / 1000.0 };
            }
        }
        f64::NAN
    }
}

/// One feature's live values, counted on its baseline's bins. (Externally tagged: an internally
/// tagged enum makes serde buffer every body before reading it, which a tick cannot afford.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSketch {
    /// A numeric feature.
    Numeric {
        /// Counts per PSI bin of the baseline, the last one missing values.
        bins: Vec<u64>,
        /// Counts strictly between consecutive distinct baseline quantiles (`below[0]` under the
        /// first, the last one above the last).
        below: Vec<u64>,
        /// Counts equal to each distinct baseline quantile.
        equal: Vec<u64>,
    },
    /// A categorical feature: counts per code (`"missing"` for NaN).
    Categorical {
        /// Counts per code.
        counts: BTreeMap<String, u64>,
    },
}

/// The distinct quantiles of a numeric baseline, in order.
fn distinct_quantiles(quantiles: &[f64]) -> Vec<f64> {
    let mut distinct = quantiles.to_vec();
    distinct.dedup();
    distinct
}

impl FeatureSketch {
    fn empty(baseline: &FeatureBaseline) -> Self {
        match baseline {
            FeatureBaseline::Numeric { edges, quantiles, .. } => {
                let distinct = distinct_quantiles(quantiles).len();
                Self::Numeric { bins: vec![0; edges.len() + 2], below: vec![0; distinct + 1], equal: vec![0; distinct] }
            }
            FeatureBaseline::Categorical { .. } => Self::Categorical { counts: BTreeMap::new() },
        }
    }

    /// Adds another sketch of the same baseline (a sketch of another shape is ignored).
    pub fn merge(&mut self, other: &Self) {
        fn add(into: &mut [u64], from: &[u64]) {
            into.iter_mut().zip(from).for_each(|(into, from)| *into += from);
        }
        match (self, other) {
            (
                Self::Numeric { bins, below, equal },
                Self::Numeric { bins: other_bins, below: other_below, equal: other_equal },
            ) if bins.len() == other_bins.len() && below.len() == other_below.len() => {
                add(bins, other_bins);
                add(below, other_below);
                add(equal, other_equal);
            }
            (Self::Categorical { counts }, Self::Categorical { counts: other }) => {
                for (code, count) in other {
                    match counts.get_mut(code) {
                        Some(into) => *into += count,
                        None => {
                            counts.insert(code.clone(), *count);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The drift of the sketched values from `baseline`: the same PSI and KS as
    /// [`crate::drift::feature_drift`] on the values themselves.
    pub fn drift(&self, baseline: &FeatureBaseline) -> FeatureDrift {
        match (self, baseline) {
            (Self::Numeric { bins, below, equal }, FeatureBaseline::Numeric { name, expected, quantiles, .. }) => {
                let total = bins.iter().sum::<u64>().max(1) as f64;
                let actual: Vec<f64> = bins.iter().map(|count| *count as f64 / total).collect();
                FeatureDrift {
                    name: name.clone(),
                    psi: psi(expected, &actual),
                    ks: Some(ks_from_cells(quantiles, below, equal)),
                }
            }
            (Self::Categorical { counts }, FeatureBaseline::Categorical { name, expected }) => {
                let total = counts.values().sum::<u64>().max(1) as f64;
                let keys: std::collections::BTreeSet<&String> = expected.keys().chain(counts.keys()).collect();
                let expected_fractions: Vec<f64> =
                    keys.iter().map(|key| expected.get(*key).copied().unwrap_or(0.0)).collect();
                let actual: Vec<f64> =
                    keys.iter().map(|key| counts.get(*key).copied().unwrap_or(0) as f64 / total).collect();
                FeatureDrift { name: name.clone(), psi: psi(&expected_fractions, &actual), ks: None }
            }
            _ => FeatureDrift { name: baseline.name().to_string(), psi: 0.0, ks: None },
        }
    }
}

/// The KS distance [`crate::drift::ks_from_quantiles`] computes, from counts per quantile cell:
/// the baseline's distribution function is a step at each quantile, so the largest distance is
/// at a quantile or at the last live value before the next one, and both are known from the
/// cells.
fn ks_from_cells(quantiles: &[f64], below: &[u64], equal: &[u64]) -> f64 {
    let live = below.iter().sum::<u64>() + equal.iter().sum::<u64>();
    if quantiles.is_empty() || live == 0 {
        return 0.0;
    }
    let (count, live) = (quantiles.len() as f64, live as f64);
    let distinct = distinct_quantiles(quantiles);
    let mut largest: f64 = below.first().map_or(0.0, |first| *first as f64 / live);
    let mut seen = below.first().copied().unwrap_or(0);
    for (index, quantile) in distinct.iter().enumerate() {
        let baseline = quantiles.partition_point(|value| value <= quantile) as f64 / count;
        seen += equal.get(index).copied().unwrap_or(0);
        largest = largest.max((baseline - seen as f64 / live).abs());
        let between = below.get(index + 1).copied().unwrap_or(0);
        if between > 0 {
            seen += between;
            largest = largest.max((baseline - seen as f64 / live).abs());
        }
    }
    largest
}

/// How a version's features are sketched: its baseline, with each feature's distinct quantiles
/// worked out once.
pub struct Sketcher {
    baseline: Option<ModelBaseline>,
    distinct: Vec<Vec<f64>>,
    score_distinct: Vec<f64>,
}

impl Sketcher {
    /// Sketches on `baseline`; without one only counts, scores and latencies are summarised.
    pub fn new(baseline: Option<ModelBaseline>) -> Self {
        let distinct_of = |feature: &FeatureBaseline| match feature {
            FeatureBaseline::Numeric { quantiles, .. } => distinct_quantiles(quantiles),
            FeatureBaseline::Categorical { .. } => Vec::new(),
        };
        Self {
            distinct: baseline
                .as_ref()
                .map(|baseline| baseline.features.iter().map(distinct_of).collect())
                .unwrap_or_default(),
            score_distinct: baseline.as_ref().map(|baseline| distinct_of(&baseline.score)).unwrap_or_default(),
            baseline,
        }
    }

    /// An empty summary shaped for this baseline.
    pub fn empty(&self) -> TrafficSummary {
        TrafficSummary {
            predictions: 0,
            score_sum: 0.0,
            latency: LatencyHistogram::default(),
            features: self
                .baseline
                .as_ref()
                .map(|baseline| baseline.features.iter().map(FeatureSketch::empty).collect())
                .unwrap_or_default(),
            score: self.baseline.as_ref().map(|baseline| FeatureSketch::empty(&baseline.score)),
        }
    }

    /// Counts one prediction (its encoded features, score and latency) into `summary`.
    pub fn add(&self, summary: &mut TrafficSummary, features: &[f64], score: f64, latency_us: u64) {
        summary.predictions += 1;
        summary.score_sum += score;
        summary.latency.add(latency_us);
        if let Some(baseline) = &self.baseline {
            for (index, (sketch, feature)) in summary.features.iter_mut().zip(&baseline.features).enumerate() {
                let value = features.get(index).copied().unwrap_or(f64::NAN);
                count(sketch, feature, &self.distinct[index], value);
            }
            if let Some(sketch) = &mut summary.score {
                count(sketch, &baseline.score, &self.score_distinct, score);
            }
        }
    }
}

fn count(sketch: &mut FeatureSketch, baseline: &FeatureBaseline, distinct: &[f64], value: f64) {
    match (sketch, baseline) {
        (FeatureSketch::Numeric { bins, below, equal }, FeatureBaseline::Numeric { edges, .. }) => {
            if value.is_nan() {
                if let Some(missing) = bins.last_mut() {
                    *missing += 1;
                }
                return;
            }
            if let Some(bin) = bins.get_mut(edges.partition_point(|edge| *edge <= value)) {
                *bin += 1;
            }
            let cell = distinct.partition_point(|quantile| *quantile < value);
            if distinct.get(cell) == Some(&value) {
                equal[cell] += 1;
            } else if let Some(between) = below.get_mut(cell) {
                *between += 1;
            }
        }
        (FeatureSketch::Categorical { counts }, FeatureBaseline::Categorical { expected, .. }) => {
            let mut key = if value.is_nan() { "missing".to_string() } else { format!("{value}") };
            // Codes training never saw are kept apart up to a bound, then counted together, so
            // a feature gone wild cannot grow a summary without limit.
            if !expected.contains_key(&key) && !counts.contains_key(&key) && counts.len() >= MAX_CATEGORIES {
                key = UNSEEN_CATEGORIES.to_string();
            }
            *counts.entry(key).or_default() += 1;
        }
        _ => {}
    }
}

/// One version's predictions over some time: how many, their scores and latencies, and their
/// features sketched on the version's baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficSummary {
    /// Predictions (served and shadow).
    pub predictions: u64,
    /// The sum of their scores.
    pub score_sum: f64,
    /// Their scoring latencies.
    pub latency: LatencyHistogram,
    /// One sketch per baseline feature (empty without a baseline).
    pub features: Vec<FeatureSketch>,
    /// The score's sketch.
    pub score: Option<FeatureSketch>,
}

impl TrafficSummary {
    /// Adds another summary of the same version.
    pub fn merge(&mut self, other: &Self) {
        if self.predictions == 0 && self.features.is_empty() {
            *self = other.clone();
            return;
        }
        self.predictions += other.predictions;
        self.score_sum += other.score_sum;
        self.latency.merge(&other.latency);
        self.features.iter_mut().zip(&other.features).for_each(|(into, from)| into.merge(from));
        if let (Some(into), Some(from)) = (&mut self.score, &other.score) {
            into.merge(from);
        }
    }

    /// The mean score; NaN without predictions.
    pub fn score_mean(&self) -> f64 {
        if self.predictions == 0 { f64::NAN } else { self.score_sum / self.predictions as f64 }
    }

    /// Drift of every feature and the score from `baseline` (the one the summary was sketched on).
    pub fn drift_report(&self, baseline: &ModelBaseline) -> DriftReport {
        let features = baseline
            .features
            .iter()
            .enumerate()
            .map(|(index, feature)| match self.features.get(index) {
                Some(sketch) => sketch.drift(feature),
                None => FeatureDrift { name: feature.name().to_string(), psi: 0.0, ks: None },
            })
            .collect();
        let score = match &self.score {
            Some(sketch) => sketch.drift(&baseline.score),
            None => FeatureDrift { name: "score".into(), psi: 0.0, ks: None },
        };
        DriftReport { rows: self.predictions as usize, features, score }
    }
}

/// What a labelled prediction is judged on: its prediction where it has one, else its score
/// (records from before predictions were logged); a multi-class record without a prediction
/// cannot be judged (`None`).
pub fn judged_prediction(task: TaskKind, score: f64, prediction: f64) -> Option<f64> {
    match task {
        _ if !prediction.is_nan() => Some(prediction),
        TaskKind::Multiclass => None,
        _ => Some(score),
    }
}

/// Counts of scores on [`SCORE_BINS`] equal bins of [0, 1]: dense in memory (merging is adding),
/// only the non-empty bins when stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreHistogram {
    counts: Vec<u64>,
}

impl ScoreHistogram {
    fn add(&mut self, score: f64) {
        let bin = (score.clamp(0.0, 1.0) * SCORE_BINS).min(SCORE_BINS - 1.0) as usize;
        if self.counts.is_empty() {
            self.counts = vec![0; SCORE_BINS as usize];
        }
        self.counts[bin] += 1;
    }

    fn merge(&mut self, other: &Self) {
        if self.counts.is_empty() {
            self.counts = other.counts.clone();
            return;
        }
        self.counts.iter_mut().zip(&other.counts).for_each(|(into, from)| *into += from);
    }

    fn count(&self, bin: usize) -> u64 {
        self.counts.get(bin).copied().unwrap_or(0)
    }
}

impl Serialize for ScoreHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let present: BTreeMap<usize, u64> =
            self.counts.iter().enumerate().filter(|(_, count)| **count > 0).map(|(bin, count)| (bin, *count)).collect();
        present.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ScoreHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let present = BTreeMap::<usize, u64>::deserialize(deserializer)?;
        let mut histogram = Self::default();
        if !present.is_empty() {
            histogram.counts = vec![0; SCORE_BINS as usize];
            for (bin, count) in present {
                if let Some(slot) = histogram.counts.get_mut(bin) {
                    *slot += count;
                }
            }
        }
        Ok(histogram)
    }
}

/// One version's labelled predictions over some time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeSummary {
    /// Labelled predictions.
    pub labeled: u64,
    /// Binary: labelled positives.
    pub positives: u64,
    /// Binary: the confusion counts at the version's threshold.
    pub true_positives: u64,
    /// Binary.
    pub false_positives: u64,
    /// Binary.
    pub true_negatives: u64,
    /// Binary.
    pub false_negatives: u64,
    /// Binary: scores of positives.
    pub positive_scores: ScoreHistogram,
    /// Binary: scores of negatives.
    pub negative_scores: ScoreHistogram,
    /// Multi-class: right answers.
    pub right: u64,
    /// Regression: Σ error².
    pub squared_error: f64,
    /// Regression: Σ |error|.
    pub absolute_error: f64,
    /// Regression: Σ label.
    pub label_sum: f64,
    /// Regression: Σ label².
    pub label_square_sum: f64,
}

impl OutcomeSummary {
    /// Counts one labelled prediction of a version judged by `judging`.
    pub fn add(&mut self, judging: Judging, score: f64, prediction: f64, label: f64) {
        let Some(predicted) = judged_prediction(judging.task, score, prediction) else { return };
        self.labeled += 1;
        match judging.task {
            TaskKind::Binary => {
                let positive = label > 0.5;
                match (score >= judging.threshold, positive) {
                    (true, true) => self.true_positives += 1,
                    (true, false) => self.false_positives += 1,
                    (false, false) => self.true_negatives += 1,
                    (false, true) => self.false_negatives += 1,
                }
                if positive {
                    self.positives += 1;
                    self.positive_scores.add(score);
                } else {
                    self.negative_scores.add(score);
                }
            }
            TaskKind::Multiclass => self.right += u64::from(predicted == label),
            TaskKind::Regression => {
                let error = predicted - label;
                self.squared_error += error * error;
                self.absolute_error += error.abs();
                self.label_sum += label;
                self.label_square_sum += label * label;
            }
        }
    }

    /// Adds another summary of the same version.
    pub fn merge(&mut self, other: &Self) {
        self.labeled += other.labeled;
        self.positives += other.positives;
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.true_negatives += other.true_negatives;
        self.false_negatives += other.false_negatives;
        self.positive_scores.merge(&other.positive_scores);
        self.negative_scores.merge(&other.negative_scores);
        self.right += other.right;
        self.squared_error += other.squared_error;
        self.absolute_error += other.absolute_error;
        self.label_sum += other.label_sum;
        self.label_square_sum += other.label_square_sum;
    }

    /// ROC-AUC from the score histograms (0.5 without both classes).
    fn roc_auc(&self) -> f64 {
        let negatives = self.labeled - self.positives;
        if self.positives == 0 || negatives == 0 {
            return 0.5;
        }
        let mut below = 0u64;
        let mut area = 0.0;
        for bin in 0..SCORE_BINS as usize {
            let (positive, negative) = (self.positive_scores.count(bin) as f64, self.negative_scores.count(bin));
            area += positive * (below as f64 + negative as f64 / 2.0);
            below += negative;
        }
        area / (self.positives as f64 * negatives as f64)
    }

    /// The outcomes [`crate::outcomes_by_version`] reports, for `predictions` predictions of
    /// `version` judged as `task`.
    pub fn outcomes(&self, version: u32, predictions: u64, task: TaskKind) -> VersionOutcomes {
        let mut outcomes = VersionOutcomes {
            version,
            predictions,
            labeled: self.labeled,
            positives: 0,
            roc_auc: f64::NAN,
            precision: f64::NAN,
            recall: f64::NAN,
            false_positive_rate: f64::NAN,
            metrics: BTreeMap::new(),
        };
        match task {
            TaskKind::Binary => {
                let confusion = Confusion {
                    true_positives: self.true_positives,
                    false_positives: self.false_positives,
                    true_negatives: self.true_negatives,
                    false_negatives: self.false_negatives,
                };
                outcomes.set_binary(&confusion, self.positives, self.roc_auc());
            }
            TaskKind::Multiclass => {
                let accuracy = if self.labeled == 0 { f64::NAN } else { self.right as f64 / self.labeled as f64 };
                outcomes.metrics = BTreeMap::from([("accuracy".to_string(), accuracy)]);
            }
            TaskKind::Regression => {
                let count = self.labeled.max(1) as f64;
                let total = self.label_square_sum - self.label_sum * self.label_sum / count;
                outcomes.metrics = BTreeMap::from([
                    ("rmse".to_string(), (self.squared_error / count).sqrt()),
                    ("mae".to_string(), self.absolute_error / count),
                    ("r2".to_string(), if total > 0.0 { 1.0 - self.squared_error / total } else { f64::NAN }),
                ]);
            }
        }
        outcomes
    }
}

/// The paired evidence of a champion and a challenger, as sums that add up, and each one's
/// outcomes on those requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairedSums {
    /// The counts (the regression mean and deviation are left at zero here).
    pub counts: PairedEvidence,
    /// Regression: paired differences seen.
    pub differences: u64,
    /// Regression: their sum.
    pub difference_sum: f64,
    /// Regression: the sum of their squares.
    pub difference_square_sum: f64,
    /// The champion's outcomes on the paired requests.
    pub champion: OutcomeSummary,
    /// The challenger's outcomes on the paired requests.
    pub challenger: OutcomeSummary,
}

/// One side of a pair: how a version judged the request.
#[derive(Debug, Clone, Copy)]
pub struct Judged {
    /// How the version decides.
    pub judging: Judging,
    /// Its score.
    pub score: f64,
    /// Its prediction (NaN when not logged).
    pub prediction: f64,
}

impl PairedSums {
    /// Counts one labelled request both versions scored; `scale` multiplies the champion's
    /// squared error (`(1 + tolerance)²`, the regression bound). The champion's task decides.
    pub fn add(&mut self, champion: Judged, challenger: Judged, label: f64, scale: f64) {
        self.champion.add(champion.judging, champion.score, champion.prediction, label);
        self.challenger.add(challenger.judging, challenger.score, challenger.prediction, label);
        let evidence = &mut self.counts;
        evidence.pairs += 1;
        match champion.judging.task {
            TaskKind::Binary => {
                let flagged = |side: &Judged| side.score >= side.judging.threshold;
                let (was, is) = (flagged(&champion), flagged(&challenger));
                if label > 0.5 {
                    evidence.positives += 1;
                    evidence.positives_lost += u64::from(was && !is);
                    evidence.positives_won += u64::from(!was && is);
                } else {
                    evidence.negatives += 1;
                    evidence.challenger_false_alarms += u64::from(is);
                    evidence.false_alarms_added += u64::from(is && !was);
                    evidence.false_alarms_removed += u64::from(was && !is);
                }
            }
            TaskKind::Multiclass => {
                let (was, is) = (champion.prediction == label, challenger.prediction == label);
                evidence.right_lost += u64::from(was && !is);
                evidence.right_won += u64::from(!was && is);
            }
            TaskKind::Regression => {
                let error = |side: &Judged| {
                    let predicted = if side.prediction.is_nan() { side.score } else { side.prediction };
                    (predicted - label).powi(2)
                };
                let difference = error(&challenger) - scale * error(&champion);
                self.differences += 1;
                self.difference_sum += difference;
                self.difference_square_sum += difference * difference;
            }
        }
    }

    /// Adds other sums of the same pair.
    pub fn merge(&mut self, other: &Self) {
        let (into, from) = (&mut self.counts, &other.counts);
        into.pairs += from.pairs;
        into.positives += from.positives;
        into.positives_lost += from.positives_lost;
        into.positives_won += from.positives_won;
        into.negatives += from.negatives;
        into.false_alarms_added += from.false_alarms_added;
        into.false_alarms_removed += from.false_alarms_removed;
        into.challenger_false_alarms += from.challenger_false_alarms;
        into.right_lost += from.right_lost;
        into.right_won += from.right_won;
        self.differences += other.differences;
        self.difference_sum += other.difference_sum;
        self.difference_square_sum += other.difference_square_sum;
        self.champion.merge(&other.champion);
        self.challenger.merge(&other.challenger);
    }

    /// The evidence, with the regression differences' mean and standard deviation.
    pub fn evidence(&self) -> PairedEvidence {
        let mut evidence = self.counts;
        if self.differences > 0 {
            let count = self.differences as f64;
            let mean = self.difference_sum / count;
            let squares = (self.difference_square_sum - count * mean * mean).max(0.0);
            evidence.error_difference_mean = mean;
            evidence.error_difference_deviation = (squares / (count - 1.0).max(1.0)).sqrt();
        }
        evidence
    }
}

#[cfg(test)]
mod tests {
    use causeway_types::SeededRng;

    use super::*;
    use crate::drift::feature_drift;

    fn sketch_of(baseline: &FeatureBaseline, values: &[f64]) -> FeatureSketch {
        let model = ModelBaseline {
            rows: 0,
            features: vec![baseline.clone()],
            score: FeatureBaseline::numeric("score", &[0.0, 1.0]),
        };
        let sketcher = Sketcher::new(Some(model));
        let mut summary = sketcher.empty();
        // Two halves summarised apart and merged: the same as one summary.
        let (first, second) = values.split_at(values.len() / 2);
        let mut other = sketcher.empty();
        first.iter().for_each(|value| sketcher.add(&mut summary, &[*value], 0.5, 10));
        second.iter().for_each(|value| sketcher.add(&mut other, &[*value], 0.5, 10));
        summary.merge(&other);
        assert_eq!(summary.predictions, values.len() as u64);
        summary.features.remove(0)
    }

    #[test]
    fn sketched_drift_equals_drift_on_the_values() {
        let mut rng = SeededRng::new(7);
        let training: Vec<f64> = (0..5_000).map(|_| rng.normal()).collect();
        let baseline = FeatureBaseline::numeric("x", &training);
        for shift in [0.0, 0.3, 1.5, -4.0] {
            let mut live: Vec<f64> = (0..3_000).map(|_| rng.normal() + shift).collect();
            live.extend([f64::NAN, f64::NAN]);
            // Values exactly on quantiles count too.
            if let FeatureBaseline::Numeric { quantiles, .. } = &baseline {
                live.extend(quantiles.iter().step_by(7));
            }
            let exact = feature_drift(&baseline, &live);
            let sketched = sketch_of(&baseline, &live).drift(&baseline);
            assert!((exact.psi - sketched.psi).abs() < 1e-12, "{exact:?} {sketched:?}");
            assert!((exact.ks.unwrap_or(-1.0) - sketched.ks.unwrap_or(1.0)).abs() < 1e-12, "{exact:?} {sketched:?}");
        }
        // Few distinct values and categories.
        let flags = FeatureBaseline::numeric("flag", &[0.0, 0.0, 1.0, 1.0, 1.0]);
        let live = [0.0, 1.0, 1.0, 2.0, f64::NAN];
        assert_eq!(feature_drift(&flags, &live), sketch_of(&flags, &live).drift(&flags));
        let codes = FeatureBaseline::categorical("c", &[0.0, 1.0, 1.0, 2.0]);
        let live = [0.0, 0.0, 3.0, f64::NAN];
        assert_eq!(feature_drift(&codes, &live), sketch_of(&codes, &live).drift(&codes));
    }

    #[test]
    fn latency_quantiles_are_within_two_percent() {
        let mut histogram = LatencyHistogram::default();
        (1..=1000u64).for_each(|latency| histogram.add(latency * 100));
        let p99 = histogram.quantile_ms(0.99);
        assert!((99.0..=99.0 * 1.02).contains(&p99), "{p99}");
        assert!(LatencyHistogram::default().quantile_ms(0.5).is_nan());
    }

    #[test]
    fn outcomes_from_sums_match_the_joined_computation() {
        let mut rng = SeededRng::new(3);
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        let mut summary = OutcomeSummary::default();
        for _ in 0..2_000 {
            let label = f64::from(u8::from(rng.uniform() < 0.3));
            let score = (0.3 * label + 0.7 * rng.uniform()).clamp(0.0, 1.0);
            summary.add(Judging::binary(0.5), score, score, label);
            scores.push(score);
            labels.push(label);
        }
        let outcomes = summary.outcomes(1, 2_000, TaskKind::Binary);
        let confusion = Confusion::at(&scores, &labels, 0.5);
        assert_eq!(outcomes.recall, confusion.recall());
        assert_eq!(outcomes.false_positive_rate, confusion.false_positive_rate());
        let exact = causeway_models::metrics::roc_auc(&scores, &labels);
        assert!((outcomes.roc_auc - exact).abs() < 2e-3, "{} vs {exact}", outcomes.roc_auc);

        let mut regression = OutcomeSummary::default();
        let judging = Judging { task: TaskKind::Regression, threshold: 0.5 };
        let (predicted, truth) = ([1.0, 2.0, 4.0], [1.5, 2.0, 3.0]);
        predicted.iter().zip(&truth).for_each(|(guess, label)| regression.add(judging, *guess, *guess, *label));
        let metrics = causeway_models::metrics::regression_metrics(&predicted, &truth);
        let summed = regression.outcomes(2, 3, TaskKind::Regression).metrics;
        for name in ["rmse", "mae", "r2"] {
            assert!((metrics[name] - summed[name]).abs() < 1e-12, "{name}");
        }
    }
}
