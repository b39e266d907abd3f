//! Profiles: per-column statistics of a dataset, stored with each version and used by monitoring
//! as the baseline that live traffic is compared with.

use std::collections::BTreeMap;

use causeway_types::Dtype;
use serde::{Deserialize, Serialize};

use crate::frame::{Column, Frame};

/// How many quantiles a numeric summary keeps (0 %, 1 %, …, 100 %).
pub const QUANTILE_POINTS: usize = 101;
/// How many equal-width histogram bins a numeric summary keeps.
pub const HISTOGRAM_BINS: usize = 20;
/// How many categories a categorical summary keeps before folding the rest into `__other__`.
pub const MAX_CATEGORIES: usize = 50;

/// The statistics of a whole dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Number of rows.
    pub rows: u64,
    /// One entry per column, in column order.
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    /// Profiles every column of a frame.
    pub fn of_frame(frame: &Frame) -> Profile {
        Profile {
            rows: frame.rows() as u64,
            columns: frame.columns().map(|(name, column)| ColumnProfile::of_column(name, column)).collect(),
        }
    }

    /// The profile of the column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// The statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Column type.
    pub dtype: Dtype,
    /// Number of non-null values.
    pub count: u64,
    /// Number of nulls (NaN counts as null).
    pub nulls: u64,
    /// For numeric columns: min, max, mean, quantiles, histogram.
    pub numeric: Option<NumericSummary>,
    /// For text and boolean columns: value frequencies, most frequent first.
    pub categories: Option<BTreeMap<String, u64>>,
}

impl ColumnProfile {
    /// Profiles one column.
    pub fn of_column(name: &str, column: &Column) -> ColumnProfile {
        let dtype = column.dtype();
        match column {
            Column::Int64(_) | Column::Float64(_) | Column::Timestamp(_) => {
                let values: Vec<f64> = (0..column.len()).filter_map(|row| column.number(row)).collect();
                let mut profile = ColumnProfile::of_numbers(name, &values, column.len());
                profile.dtype = dtype;
                profile
            }
            Column::Utf8(_) | Column::Bool(_) => {
                let texts: Vec<String> = (0..column.len()).filter_map(|row| column.text(row)).collect();
                let mut profile = ColumnProfile::of_categories(name, texts.iter().map(String::as_str), column.len());
                profile.dtype = dtype;
                profile
            }
        }
    }

    /// Profiles numbers; `total` counts nulls too. NaN values count as nulls.
    pub fn of_numbers(name: &str, values: &[f64], total: usize) -> ColumnProfile {
        let finite: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
        ColumnProfile {
            name: name.to_string(),
            dtype: Dtype::Float64,
            count: finite.len() as u64,
            nulls: total.saturating_sub(finite.len()) as u64,
            numeric: NumericSummary::of(finite),
            categories: None,
        }
    }

    /// Profiles category values; `total` counts nulls too.
    pub fn of_categories<'a>(name: &str, values: impl Iterator<Item = &'a str>, total: usize) -> ColumnProfile {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut count = 0u64;
        for value in values {
            *counts.entry(value.to_string()).or_default() += 1;
            count += 1;
        }
        if counts.len() > MAX_CATEGORIES {
            let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
            ranked.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
            let other: u64 = ranked.iter().skip(MAX_CATEGORIES).map(|(_, count)| count).sum();
            counts = ranked.into_iter().take(MAX_CATEGORIES).collect();
            counts.insert("__other__".to_string(), other);
        }
        ColumnProfile {
            name: name.to_string(),
            dtype: Dtype::Utf8,
            count,
            nulls: (total as u64).saturating_sub(count),
            numeric: None,
            categories: Some(counts),
        }
    }
}

/// Summary statistics of a numeric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (population).
    pub std: f64,
    /// Quantiles at 0 %, 1 %, …, 100 % (linear interpolation).
    pub quantiles: Vec<f64>,
    /// Equal-width histogram between min and max.
    pub histogram: Histogram,
}

/// Counts of values in equal-width bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges, one more than bins.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

impl NumericSummary {
    /// Summarizes finite values; `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<NumericSummary> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let count = values.len() as f64;
        let mean = values.iter().sum::<f64>() / count;
        let std = (values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / count).sqrt();
        let min = values[0];
        let max = values[values.len() - 1];
        let quantiles = (0..QUANTILE_POINTS).map(|index| quantile_sorted(&values, index as f64 / 100.0)).collect();
        let width = (max - min) / HISTOGRAM_BINS as f64;
        let edges: Vec<f64> = (0..=HISTOGRAM_BINS).map(|index| min + width * index as f64).collect();
        let mut counts = vec![0u64; HISTOGRAM_BINS];
        for value in &values {
            let bin = if width > 0.0 { (((value - min) / width) as usize).min(HISTOGRAM_BINS - 1) } else { 0 };
            counts[bin] += 1;
        }
        Some(NumericSummary { min, max, mean, std, quantiles, histogram: Histogram { edges, counts } })
    }
}

/// The `q` quantile (0..1) of sorted values, linearly interpolated.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        length => {
            let position = q.clamp(0.0, 1.0) * (length - 1) as f64;
            let lower = position.floor() as usize;
            let upper = (lower + 1).min(length - 1);
            let fraction = position - lower as f64;
            sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_summary_matches_hand_computed_values() {
        let values: Vec<f64> = (1..=101).map(f64::from).collect();
        let profile = ColumnProfile::of_numbers("x", &[values.clone(), vec![f64::NAN]].concat(), 102);
        assert_eq!(profile.count, 101);
        assert_eq!(profile.nulls, 1);
        let summary = profile.numeric.expect("numeric summary");
        assert_eq!(summary.min, 1.0);
        assert_eq!(summary.max, 101.0);
        assert!((summary.mean - 51.0).abs() < 1e-12);
        assert!((summary.quantiles[50] - 51.0).abs() < 1e-12);
        assert!((summary.quantiles[10] - 11.0).abs() < 1e-12);
        assert_eq!(summary.histogram.counts.iter().sum::<u64>(), 101);
    }

    #[test]
    fn categories_fold_the_long_tail() {
        let values: Vec<String> = (0..120).map(|index| format!("v{}", index % 60)).collect();
        let profile = ColumnProfile::of_categories("c", values.iter().map(String::as_str), 121);
        let categories = profile.categories.unwrap_or_default();
        assert_eq!(categories.len(), MAX_CATEGORIES + 1);
        assert_eq!(categories.get("__other__"), Some(&20));
        assert_eq!(profile.nulls, 1);
    }

    #[test]
    fn frame_profile_covers_every_column() -> crate::Result<()> {
        let frame = Frame::new()
            .with_column("a", Column::Int64(vec![Some(1), Some(3)]))?
            .with_column("b", Column::Utf8(vec![Some("x".into()), None]))?;
        let profile = Profile::of_frame(&frame);
        assert_eq!(profile.columns.len(), 2);
        assert_eq!(
            profile.column("a").and_then(|column| column.numeric.as_ref()).map(|summary| summary.mean),
            Some(2.0)
        );
        assert_eq!(profile.column("b").map(|column| column.nulls), Some(1));
        Ok(())
    }
}
