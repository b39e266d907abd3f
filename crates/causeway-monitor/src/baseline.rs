//! The training baseline of a model version: how each input feature and the score were
//! distributed in training, binned the way drift statistics will bin live traffic.

use std::collections::BTreeMap;

use causeway_models::{FeatureKind, Signature};
use serde::{Deserialize, Serialize};

/// Number of quantiles kept for KS (0 %, 1 %, …, 100 %).
const QUANTILES: usize = 101;

/// The training distribution of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureBaseline {
    /// A numeric feature: PSI bins and a quantile sketch.
    Numeric {
        /// Feature name.
        name: String,
        /// Interior bin edges (bin `i` holds values in `[edges[i-1], edges[i])`).
        edges: Vec<f64>,
        /// Training fraction per bin (`edges.len() + 1` bins) and, last, the missing fraction.
        expected: Vec<f64>,
        /// Quantiles of the non-missing values.
        quantiles: Vec<f64>,
    },
    /// A categorical feature: the fraction of each code (missing as `"missing"`).
    Categorical {
        /// Feature name.
        name: String,
        /// Training fraction per category.
        expected: BTreeMap<String, f64>,
    },
}

impl FeatureBaseline {
    /// The feature's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Numeric { name, .. } | Self::Categorical { name, .. } => name,
        }
    }

    /// Builds the baseline of a numeric column (NaN is missing), with decile bins.
    pub fn numeric(name: &str, values: &[f64]) -> Self {
        let mut finite: Vec<f64> = values.iter().copied().filter(|value| !value.is_nan()).collect();
        finite.sort_by(f64::total_cmp);
        let quantiles: Vec<f64> = if finite.is_empty() {
            Vec::new()
        } else {
            (0..QUANTILES).map(|index| finite[(index * (finite.len() - 1)) / (QUANTILES - 1)]).collect()
        };
        let mut distinct = finite.clone();
        distinct.dedup();
        // Few distinct values (flags, small counts): one bin per value. Otherwise deciles.
        let mut edges: Vec<f64> = if distinct.len() <= 10 {
            distinct.iter().skip(1).copied().collect()
        } else {
            (1..10).filter_map(|decile| quantiles.get(decile * 10).copied()).collect()
        };
        edges.dedup();
        if let Some(first) = finite.first() {
            edges.retain(|edge| edge > first);
        }
        let expected = bin_fractions(&edges, values);
        Self::Numeric { name: name.to_string(), edges, expected, quantiles }
    }

    /// Builds the baseline of a categorical column of codes (NaN is missing).
    pub fn categorical(name: &str, values: &[f64]) -> Self {
        Self::Categorical { name: name.to_string(), expected: category_fractions(values) }
    }
}

/// Fractions per bin (and a final missing bin) of `values` under `edges`.
pub(crate) fn bin_fractions(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0u64; edges.len() + 2];
    for value in values {
        let bin = if value.is_nan() { edges.len() + 1 } else { edges.partition_point(|edge| *edge <= *value) };
        counts[bin] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.iter().map(|count| *count as f64 / total).collect()
}

/// Fractions per category code of `values` (NaN as `"missing"`).
pub(crate) fn category_fractions(values: &[f64]) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for value in values {
        let key = if value.is_nan() { "missing".to_string() } else { format!("{value}") };
        *counts.entry(key).or_default() += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|(key, count)| (key, count as f64 / total)).collect()
}

/// The baseline of a model version: every input feature and the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBaseline {
    /// Rows it was computed from.
    pub rows: u64,
    /// One baseline per signature feature, in order.
    pub features: Vec<FeatureBaseline>,
    /// The score's baseline (on the holdout).
    pub score: FeatureBaseline,
}

impl ModelBaseline {
    /// Builds the baseline from encoded training rows and holdout scores.
    pub fn from_rows(signature: &Signature, rows: &[Vec<f64>], scores: &[f64]) -> Self {
        let features = signature
            .features
            .iter()
            .enumerate()
            .map(|(index, feature)| {
                let column: Vec<f64> = rows.iter().map(|row| row.get(index).copied().unwrap_or(f64::NAN)).collect();
                match feature.kind {
                    FeatureKind::Numeric => FeatureBaseline::numeric(&feature.name, &column),
                    FeatureKind::Categorical { .. } => FeatureBaseline::categorical(&feature.name, &column),
                }
            })
            .collect();
        Self { rows: rows.len() as u64, features, score: FeatureBaseline::numeric("score", scores) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decile_bins_hold_a_tenth_each_for_continuous_data() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let FeatureBaseline::Numeric { edges, expected, .. } = FeatureBaseline::numeric("x", &values) else {
            panic!("numeric")
        };
        assert_eq!(edges.len(), 9);
        for fraction in &expected[..10] {
            assert!((fraction - 0.1).abs() < 0.002, "{expected:?}");
        }
        assert_eq!(expected[10], 0.0);
    }

    #[test]
    fn binary_features_get_two_bins_and_missing_is_its_own_bin() {
        let values = [0.0, 0.0, 0.0, 1.0, f64::NAN];
        let FeatureBaseline::Numeric { edges, expected, .. } = FeatureBaseline::numeric("flag", &values) else {
            panic!("numeric")
        };
        assert_eq!(edges, vec![1.0]);
        assert_eq!(expected, vec![0.6, 0.2, 0.2]);
    }
}
