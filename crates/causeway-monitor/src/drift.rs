//! Drift statistics between a model's training baseline and a window of live traffic: the
//! population stability index (PSI) on the baseline's bins, and the Kolmogorov–Smirnov distance
//! on the baseline's quantile sketch (1 % resolution).

use serde::{Deserialize, Serialize};

use crate::baseline::{FeatureBaseline, ModelBaseline, bin_fractions, category_fractions};
use crate::predlog::PredictionRecord;

/// The floor applied to empty bins so PSI stays finite.
const EMPTY_BIN: f64 = 1e-4;

/// Drift of one feature (or the score).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Feature name.
    pub name: String,
    /// Population stability index.
    pub psi: f64,
    /// Kolmogorov–Smirnov distance (numeric features only).
    pub ks: Option<f64>,
}

/// Drift of every feature and the score over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Rows in the window.
    pub rows: usize,
    /// Per feature, in signature order.
    pub features: Vec<FeatureDrift>,
    /// The score's drift.
    pub score: FeatureDrift,
}

impl DriftReport {
    /// The feature with the largest PSI.
    pub fn worst(&self) -> Option<&FeatureDrift> {
        self.features.iter().max_by(|left, right| left.psi.total_cmp(&right.psi))
    }
}

/// PSI between two fraction vectors over the same bins.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .filter(|(expected, actual)| **expected > 0.0 || **actual > 0.0)
        .map(|(expected, actual)| {
            let (expected, actual) = (expected.max(EMPTY_BIN), actual.max(EMPTY_BIN));
            (actual - expected) * (actual / expected).ln()
        })
        .sum()
}

/// KS distance between a baseline quantile sketch and live values (NaN ignored).
pub fn ks_from_quantiles(quantiles: &[f64], values: &[f64]) -> f64 {
    let mut live: Vec<f64> = values.iter().copied().filter(|value| !value.is_nan()).collect();
    if quantiles.is_empty() || live.is_empty() {
        return 0.0;
    }
    live.sort_by(f64::total_cmp);
    let baseline_cdf = |x: f64| quantiles.partition_point(|quantile| *quantile <= x) as f64 / quantiles.len() as f64;
    let live_cdf = |x: f64| live.partition_point(|value| *value <= x) as f64 / live.len() as f64;
    quantiles.iter().chain(live.iter()).map(|x| (baseline_cdf(*x) - live_cdf(*x)).abs()).fold(0.0, f64::max)
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the empirical
/// distribution functions of `first` and `second` (NaN ignored; 0 when either has no values).
/// Exact, as `scipy.stats.ks_2samp` computes it: both samples sorted, the distance checked at
/// every observed value after all of its ties.
pub fn ks_two_sample(first: &[f64], second: &[f64]) -> f64 {
    let sorted = |values: &[f64]| {
        let mut present: Vec<f64> = values.iter().copied().filter(|value| !value.is_nan()).collect();
        present.sort_by(f64::total_cmp);
        present
    };
    let (first, second) = (sorted(first), sorted(second));
    if first.is_empty() || second.is_empty() {
        return 0.0;
    }
    let (first_count, second_count) = (first.len() as f64, second.len() as f64);
    let (mut i, mut j, mut largest) = (0usize, 0usize, 0.0f64);
    while i < first.len() && j < second.len() {
        let value = first[i].min(second[j]);
        while i < first.len() && first[i] <= value {
            i += 1;
        }
        while j < second.len() && second[j] <= value {
            j += 1;
        }
        largest = largest.max((i as f64 / first_count - j as f64 / second_count).abs());
    }
    largest
}

/// Drift of one feature given its live values.
pub fn feature_drift(baseline: &FeatureBaseline, values: &[f64]) -> FeatureDrift {
    match baseline {
        FeatureBaseline::Numeric { name, edges, expected, quantiles } => FeatureDrift {
            name: name.clone(),
            psi: psi(expected, &bin_fractions(edges, values)),
            ks: Some(ks_from_quantiles(quantiles, values)),
        },
        FeatureBaseline::Categorical { name, expected } => {
            let actual = category_fractions(values);
            let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
            let expected_fractions: Vec<f64> =
                keys.iter().map(|key| expected.get(*key).copied().unwrap_or(0.0)).collect();
            let actual_fractions: Vec<f64> = keys.iter().map(|key| actual.get(*key).copied().unwrap_or(0.0)).collect();
            FeatureDrift { name: name.clone(), psi: psi(&expected_fractions, &actual_fractions), ks: None }
        }
    }
}

/// Drift of every feature and the score of `records` (one model version's served traffic).
pub fn drift_report(baseline: &ModelBaseline, records: &[&PredictionRecord]) -> DriftReport {
    let features = baseline
        .features
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            let values: Vec<f64> =
                records.iter().map(|record| record.features.get(index).copied().unwrap_or(f64::NAN)).collect();
            feature_drift(feature, &values)
        })
        .collect();
    let scores: Vec<f64> = records.iter().map(|record| record.score).collect();
    DriftReport { rows: records.len(), features, score: feature_drift(&baseline.score, &scores) }
}

#[cfg(test)]
mod tests {
    use causeway_types::SeededRng;

    use super::*;

    fn normals(seed: u64, count: usize, shift: f64) -> Vec<f64> {
        let mut rng = SeededRng::new(seed);
        (0..count).map(|_| rng.normal() + shift).collect()
    }

    #[test]
    fn same_distribution_is_stable_shifted_one_is_not() {
        let baseline = FeatureBaseline::numeric("x", &normals(1, 20_000, 0.0));
        let same = feature_drift(&baseline, &normals(2, 10_000, 0.0));
        let shifted = feature_drift(&baseline, &normals(3, 10_000, 0.5));
        assert!(same.psi < 0.01, "{same:?}");
        assert!(same.ks.unwrap_or(1.0) < 0.03, "{same:?}");
        assert!(shifted.psi > 0.2, "{shifted:?}");
        // KS of N(0,1) vs N(0.5,1) is 2Φ(0.25) − 1 ≈ 0.197.
        assert!((shifted.ks.unwrap_or(0.0) - 0.197).abs() < 0.03, "{shifted:?}");
    }

    #[test]
    fn psi_matches_the_formula_and_categorical_mix_shift_is_seen() {
        let value = psi(&[0.5, 0.5], &[0.25, 0.75]);
        let expected = (0.25 - 0.5) * (0.25f64 / 0.5).ln() + (0.75 - 0.5) * (0.75f64 / 0.5).ln();
        assert!((value - expected).abs() < 1e-12);
        let baseline = FeatureBaseline::categorical("c", &[0.0, 0.0, 1.0, 1.0]);
        let drift = feature_drift(&baseline, &[0.0, 1.0, 2.0, 2.0]);
        assert!(drift.psi > 0.5, "{drift:?}");
        assert_eq!(drift.ks, None);
    }
}
