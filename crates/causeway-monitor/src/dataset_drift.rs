//! Drift between two datasets — a reference (what a model was trained on, last month's batch) and a
//! current one — column by column: what `causeway drift REFERENCE CURRENT` reports.
//!
//! Numbers (integers, floats) get the PSI on the reference's deciles (one bin per value when it has
//! ten values or fewer) and the exact two-sample Kolmogorov–Smirnov statistic; text and booleans
//! get the PSI over their categories and the category whose share moved most. Both count nulls as
//! their own bin. Time columns are listed, not compared: time moves on between any two batches.
//! Columns present in one dataset only, or that changed between a number and text, are reported
//! as schema changes (an integer column that became a float one is still compared as numbers).
//! This module compares frames; it does not read files or print.

use std::collections::{BTreeMap, BTreeSet};

use causeway_data::{Column, Frame};
use causeway_types::Dtype;
use serde::Serialize;

use crate::baseline::FeatureBaseline;
use crate::drift::{feature_drift, ks_two_sample, psi};

/// The conventional PSI levels: below 0.1 stable, from 0.25 drifted.
pub const MODERATE_PSI: f64 = 0.1;
/// The PSI from which a column counts as drifted, unless the caller chooses another.
pub const DRIFTED_PSI: f64 = 0.25;

/// How far a column moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// PSI below [`MODERATE_PSI`].
    Stable,
    /// PSI from [`MODERATE_PSI`] up to the drift threshold.
    Moderate,
    /// PSI at or above the drift threshold.
    Drifted,
}

/// What changed in one column present in both datasets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    /// Column name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Population stability index of the current values against the reference's bins.
    pub psi: f64,
    /// Kolmogorov–Smirnov distance (numeric columns with values on both sides).
    pub ks: Option<f64>,
    /// Share of nulls in the reference and in the current dataset.
    pub null_share: (f64, f64),
    /// Mean of the non-null values in each (numeric columns).
    pub mean: Option<(f64, f64)>,
    /// The category whose share moved most, with its share in each (categorical columns).
    pub largest_shift: Option<(String, f64, f64)>,
    /// The verdict under the threshold the comparison was made with.
    pub verdict: Verdict,
}

/// A column present in one dataset only, or a number in one and text in the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaChange {
    /// Column name.
    pub name: String,
    /// Its type in the reference, if it is there.
    pub reference: Option<String>,
    /// Its type in the current dataset, if it is there.
    pub current: Option<String>,
}

/// The comparison of two datasets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    /// Rows in the reference.
    pub reference_rows: usize,
    /// Rows in the current dataset.
    pub current_rows: usize,
    /// The PSI at which a column counts as drifted.
    pub threshold: f64,
    /// Columns in both, with comparable types, in the reference's order.
    pub columns: Vec<ColumnDrift>,
    /// Columns added, removed, or changed between a number and text.
    pub schema_changes: Vec<SchemaChange>,
    /// Time columns present in both, which are not compared.
    pub time_columns: Vec<String>,
}

impl Verdict {
    /// The verdict's name in reports: `stable`, `moderate` or `drifted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Moderate => "moderate",
            Self::Drifted => "drifted",
        }
    }
}

impl DatasetDrift {
    /// The columns that drifted.
    pub fn drifted(&self) -> impl Iterator<Item = &ColumnDrift> {
        self.columns.iter().filter(|column| column.verdict == Verdict::Drifted)
    }

    /// True when no column drifted and the schema is unchanged.
    pub fn is_stable(&self) -> bool {
        self.drifted().next().is_none() && self.schema_changes.is_empty()
    }
}

fn kind_of(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Int64 | Dtype::Float64 => "numeric",
        Dtype::Utf8 | Dtype::Bool => "categorical",
        Dtype::Timestamp => "time",
    }
}

fn numbers(column: &Column) -> Vec<f64> {
    (0..column.len()).map(|row| column.number(row).unwrap_or(f64::NAN)).collect()
}

/// Shares of each category (`None` for null) in a column.
fn category_shares(column: &Column) -> BTreeMap<Option<String>, f64> {
    let mut counts: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for row in 0..column.len() {
        *counts.entry(column.text(row)).or_default() += 1;
    }
    let total = column.len().max(1) as f64;
    counts.into_iter().map(|(category, count)| (category, count as f64 / total)).collect()
}

fn null_share(column: &Column) -> f64 {
    (0..column.len()).filter(|row| column.is_null(*row)).count() as f64 / column.len().max(1) as f64
}

fn mean(values: &[f64]) -> f64 {
    let present: Vec<f64> = values.iter().copied().filter(|value| !value.is_nan()).collect();
    if present.is_empty() { f64::NAN } else { present.iter().sum::<f64>() / present.len() as f64 }
}

/// Compares `current` with `reference`, column by column (restricted to `only` when it is not
/// empty); a column drifts when its PSI reaches `threshold`.
pub fn dataset_drift(reference: &Frame, current: &Frame, threshold: f64, only: &[String]) -> DatasetDrift {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|column| column == name);
    let mut columns = Vec::new();
    let mut schema_changes = Vec::new();
    let mut time_columns = Vec::new();
    for (name, before) in reference.columns().filter(|(name, _)| wanted(name)) {
        let Some(after) = current.column(name) else {
            schema_changes.push(SchemaChange {
                name: name.to_string(),
                reference: Some(before.dtype().as_str().to_string()),
                current: None,
            });
            continue;
        };
        let kind = kind_of(before.dtype());
        if kind != kind_of(after.dtype()) {
            schema_changes.push(SchemaChange {
                name: name.to_string(),
                reference: Some(before.dtype().as_str().to_string()),
                current: Some(after.dtype().as_str().to_string()),
            });
            continue;
        }
        if kind == "time" {
            time_columns.push(name.to_string());
            continue;
        }
        let null_share = (null_share(before), null_share(after));
        let mut drift = ColumnDrift {
            name: name.to_string(),
            kind,
            psi: 0.0,
            ks: None,
            null_share,
            mean: None,
            largest_shift: None,
            verdict: Verdict::Stable,
        };
        if kind == "numeric" {
            let (before, after) = (numbers(before), numbers(after));
            let measured = feature_drift(&FeatureBaseline::numeric(name, &before), &after);
            drift.psi = measured.psi;
            let has_values = |values: &[f64]| values.iter().any(|value| !value.is_nan());
            drift.ks = (has_values(&before) && has_values(&after)).then(|| ks_two_sample(&before, &after));
            drift.mean = Some((mean(&before), mean(&after)));
        } else {
            let (before, after) = (category_shares(before), category_shares(after));
            let categories: BTreeSet<&Option<String>> = before.keys().chain(after.keys()).collect();
            let share = |shares: &BTreeMap<Option<String>, f64>, category: &Option<String>| {
                shares.get(category).copied().unwrap_or(0.0)
            };
            let expected: Vec<f64> = categories.iter().map(|category| share(&before, category)).collect();
            let actual: Vec<f64> = categories.iter().map(|category| share(&after, category)).collect();
            drift.psi = psi(&expected, &actual);
            drift.largest_shift = categories
                .iter()
                .map(|category| (*category, share(&before, category), share(&after, category)))
                .max_by(|left, right| (left.2 - left.1).abs().total_cmp(&(right.2 - right.1).abs()))
                .map(|(category, before, after)| {
                    (category.clone().unwrap_or_else(|| "(null)".to_string()), before, after)
                });
        }
        drift.verdict = if drift.psi >= threshold {
            Verdict::Drifted
        } else if drift.psi >= MODERATE_PSI.min(threshold) {
            Verdict::Moderate
        } else {
            Verdict::Stable
        };
        columns.push(drift);
    }
    for (name, after) in current.columns().filter(|(name, _)| wanted(name)) {
        if reference.column(name).is_none() {
            schema_changes.push(SchemaChange {
                name: name.to_string(),
                reference: None,
                current: Some(after.dtype().as_str().to_string()),
            });
        }
    }
    DatasetDrift {
        reference_rows: reference.rows(),
        current_rows: current.rows(),
        threshold,
        columns,
        schema_changes,
        time_columns,
    }
}

#[cfg(test)]
mod tests {
    use causeway_types::SeededRng;

    use super::*;

    fn frame(seed: u64, rows: usize, shift: f64, online_share: f64) -> Frame {
        let mut rng = SeededRng::new(seed);
        let amount: Vec<Option<f64>> = (0..rows).map(|_| Some(rng.normal() + shift)).collect();
        let count: Vec<Option<i64>> = (0..rows).map(|row| Some((row % 7) as i64)).collect();
        let channel: Vec<Option<String>> = (0..rows)
            .map(|_| Some(if rng.uniform() < online_share { "online" } else { "store" }.to_string()))
            .collect();
        Frame::new()
            .with_column("amount", Column::Float64(amount))
            .and_then(|frame| frame.with_column("count", Column::Int64(count)))
            .and_then(|frame| frame.with_column("channel", Column::Utf8(channel)))
            .expect("columns of one length")
    }

    #[test]
    fn the_same_distribution_is_stable_and_shifts_are_named() {
        let reference = frame(1, 20_000, 0.0, 0.3);
        let same = dataset_drift(&reference, &frame(2, 10_000, 0.0, 0.3), DRIFTED_PSI, &[]);
        assert!(same.is_stable(), "{same:?}");
        assert!(same.columns.iter().all(|column| column.verdict == Verdict::Stable), "{same:?}");

        let shifted = dataset_drift(&reference, &frame(3, 10_000, 0.8, 0.6), DRIFTED_PSI, &[]);
        let drifted: Vec<&str> = shifted.drifted().map(|column| column.name.as_str()).collect();
        assert_eq!(drifted, ["amount", "channel"], "{shifted:?}");
        let amount = &shifted.columns[0];
        assert!(amount.ks.is_some_and(|ks| ks > 0.25), "{amount:?}");
        let (before, after) = amount.mean.expect("a mean");
        assert!((after - before - 0.8).abs() < 0.05, "{amount:?}");
        let (category, before, after) = shifted.columns[2].largest_shift.clone().expect("a shift");
        assert!(["online", "store"].contains(&category.as_str()));
        assert!((after - before).abs() > 0.25, "{category}: {before} -> {after}");
        assert_eq!(shifted.columns[1].verdict, Verdict::Stable, "count did not move");
        // Restricted to one column, only that one is compared.
        let only = dataset_drift(&reference, &frame(3, 10_000, 0.8, 0.6), DRIFTED_PSI, &["count".to_string()]);
        assert_eq!(only.columns.len(), 1);
        assert!(only.is_stable());
    }

    #[test]
    fn schema_changes_and_nulls_are_reported() {
        let reference = frame(1, 1_000, 0.0, 0.3);
        let mut nulls: Vec<Option<f64>> = (0..1_000).map(|row| Some(row as f64)).collect();
        nulls.iter_mut().step_by(2).for_each(|value| *value = None);
        let current = Frame::new()
            .with_column("amount", Column::Float64(nulls))
            .and_then(|frame| frame.with_column("count", Column::Utf8(vec![Some("x".into()); 1_000])))
            .and_then(|frame| frame.with_column("merchant", Column::Utf8(vec![None; 1_000])))
            .expect("columns");
        let report = dataset_drift(&reference, &current, DRIFTED_PSI, &[]);
        assert!(!report.is_stable());
        let changed: Vec<(&str, Option<&str>, Option<&str>)> = report
            .schema_changes
            .iter()
            .map(|change| (change.name.as_str(), change.reference.as_deref(), change.current.as_deref()))
            .collect();
        assert_eq!(
            changed,
            [("count", Some("int64"), Some("utf8")), ("channel", Some("utf8"), None), ("merchant", None, Some("utf8"))]
        );
        assert_eq!(report.columns.len(), 1);
        assert_eq!(report.columns[0].null_share, (0.0, 0.5));
        assert_eq!(report.columns[0].verdict, Verdict::Drifted, "the values moved and half went missing");
    }
}
