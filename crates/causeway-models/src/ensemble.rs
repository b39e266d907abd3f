//! Tree ensembles as other libraries define them (XGBoost, LightGBM), evaluated with their exact
//! arithmetic: the comparison each split makes, where missing and categorical values go, the
//! precision sums are kept in, and the transform from raw score to output.
//!
//! This module owns the semantics, not the file formats (see `import`) and not speed: the
//! evaluation here is the reference the compiled engine must agree with.

use serde::{Deserialize, Serialize};

use crate::compiled::CompiledEnsemble;
use crate::error::{Error, Result};

/// The arithmetic an ensemble was trained and must be scored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Inputs rounded to `f32` before comparing, leaves summed in `f32` in tree order (XGBoost).
    Float32,
    /// Everything in `f64` (LightGBM, Causeway's own trees).
    Float64,
}

/// How a numeric split compares the feature value `x` with its threshold `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Left when `x < t` (XGBoost).
    Less,
    /// Left when `x <= t` (LightGBM).
    LessOrEqual,
}

/// Which values a numeric split treats as missing, and what it does with the others' NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// NaN is missing and takes the default direction (XGBoost; LightGBM's `NaN` type).
    Nan,
    /// NaN counts as 0.0 and is compared like any value (LightGBM's `None` type).
    NanIsZero,
    /// NaN counts as 0.0, and zero (|x| ≤ 1e-35) is missing (LightGBM's `Zero` type, `zero_as_missing`).
    Zero,
}

/// How a categorical split reads a category code out of a feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryCodes {
    /// XGBoost: values below 0 or from 2^24 are invalid; the code is the value truncated.
    Xgboost,
    /// LightGBM: the code is the value truncated; a negative code is invalid.
    Lightgbm,
}

impl CategoryCodes {
    /// Whether the value `x` (not NaN) reads as a valid code that is in the bitset `categories`
    /// (code `c` is bit `c % 32` of word `c / 32`).
    pub fn in_set(self, x: f64, categories: &[u32]) -> bool {
        let code = match self {
            Self::Xgboost if (0.0..16_777_216.0).contains(&x) => Some(x as u32),
            Self::Lightgbm if x > -1.0 => Some(x.min(f64::from(u32::MAX)) as u32),
            _ => None,
        };
        code.is_some_and(|code| categories.get((code / 32) as usize).is_some_and(|word| (word >> (code % 32)) & 1 == 1))
    }
}

/// One node: a numeric split, a categorical split or a leaf. Children are node indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum EnsembleNode {
    /// Compare `x` with `threshold`.
    Numeric {
        /// Feature index.
        feature: u32,
        /// Threshold (an `f32` value widened, for `Float32` ensembles; may be infinite).
        #[serde(with = "crate::float_text")]
        threshold: f64,
        /// The comparison that sends a value left.
        comparison: Comparison,
        /// What counts as missing.
        missing: Missing,
        /// Where missing values go.
        default_left: bool,
        /// Left child.
        left: u32,
        /// Right child.
        right: u32,
    },
    /// Test the category code against a set.
    Categorical {
        /// Feature index.
        feature: u32,
        /// The set, as a bitset of 32-bit words (code `c` is bit `c % 32` of word `c / 32`).
        categories: Vec<u32>,
        /// How codes are read.
        codes: CategoryCodes,
        /// Where a code in the set goes (XGBoost: right; LightGBM: left).
        in_set_left: bool,
        /// Where NaN goes.
        default_left: bool,
        /// Left child.
        left: u32,
        /// Right child.
        right: u32,
    },
    /// A leaf adding `value` to its tree's output.
    Leaf {
        /// The contribution.
        #[serde(with = "crate::float_text")]
        value: f64,
    },
}

/// One tree, node 0 its root, adding to output `group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleTree {
    /// The nodes.
    pub nodes: Vec<EnsembleNode>,
    /// The output (class) this tree adds to.
    pub group: u32,
    /// A factor on its leaves (DART's weight drop; 1 otherwise).
    pub weight: f64,
}

/// The transform from raw scores (margins) to outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transform", rename_all = "snake_case")]
pub enum Transform {
    /// Outputs are the margins.
    Identity,
    /// `1 / (1 + exp(-scale · m))` per output.
    Sigmoid {
        /// The scale (LightGBM's `sigmoid`; 1 for XGBoost).
        scale: f64,
    },
    /// Softmax across the outputs.
    Softmax,
    /// `exp(m)` (Poisson, gamma, Tweedie).
    Exp,
}

/// A tree ensemble with its library's exact semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// Input width (the number of features).
    pub features: usize,
    /// Outputs per row (1, or the number of classes).
    pub outputs: usize,
    /// The starting margin of each output.
    pub base_margins: Vec<f64>,
    /// The trees, in the order their leaves are added.
    pub trees: Vec<EnsembleTree>,
    /// Arithmetic.
    pub precision: Precision,
    /// Divide the margins by this before the transform (LightGBM random forests: the rounds).
    pub average_over: Option<f64>,
    /// Raw score to output.
    pub transform: Transform,
    /// Where the model came from (`xgboost 3.2.0`, `lightgbm v4`), for people.
    pub source: String,
    /// The compiled form, made on first use.
    #[serde(skip)]
    pub(crate) compiled: CompiledCache,
}

/// A [`CompiledEnsemble`] made once, on first use, and shared by clones. It is derived data:
/// two caches always compare equal.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompiledCache(std::sync::Arc<std::sync::OnceLock<Option<CompiledEnsemble>>>);

impl CompiledCache {
    /// The engine, compiled by `compile` the first time.
    pub(crate) fn get_or_compile(
        &self,
        compile: impl FnOnce() -> Option<CompiledEnsemble>,
    ) -> Option<&CompiledEnsemble> {
        self.0.get_or_init(compile).as_ref()
    }
}

impl PartialEq for CompiledCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// LightGBM's zero: |x| ≤ 1e-35 (`kZeroThreshold`, an `f32` constant).
const LIGHTGBM_ZERO: f64 = 1e-35_f32 as f64;

impl EnsembleNode {
    /// The child `row` goes to, or `None` at a leaf.
    fn next(&self, row: &[f64], precision: Precision) -> Option<u32> {
        match self {
            Self::Numeric { left, right, .. } | Self::Categorical { left, right, .. } => {
                self.goes_left(row, precision).map(|left_side| if left_side { *left } else { *right })
            }
            Self::Leaf { .. } => None,
        }
    }

    /// Whether `row` goes left at this split, or `None` at a leaf.
    pub(crate) fn goes_left(&self, row: &[f64], precision: Precision) -> Option<bool> {
        match self {
            Self::Leaf { .. } => None,
            Self::Numeric { feature, threshold, comparison, missing, default_left, .. } => {
                let mut x = row.get(*feature as usize).copied().unwrap_or(f64::NAN);
                if precision == Precision::Float32 {
                    x = f64::from(x as f32);
                }
                let is_missing = match missing {
                    Missing::Nan => x.is_nan(),
                    Missing::NanIsZero => {
                        if x.is_nan() {
                            x = 0.0;
                        }
                        false
                    }
                    Missing::Zero => {
                        if x.is_nan() {
                            x = 0.0;
                        }
                        (-LIGHTGBM_ZERO..=LIGHTGBM_ZERO).contains(&x)
                    }
                };
                Some(if is_missing {
                    *default_left
                } else {
                    match comparison {
                        Comparison::Less => x < *threshold,
                        Comparison::LessOrEqual => x <= *threshold,
                    }
                })
            }
            Self::Categorical { feature, categories, codes, in_set_left, default_left, .. } => {
                let mut x = row.get(*feature as usize).copied().unwrap_or(f64::NAN);
                if precision == Precision::Float32 {
                    x = f64::from(x as f32);
                }
                Some(if x.is_nan() {
                    *default_left
                } else {
                    // A valid code outside the set, and an invalid code, go where "not in the set" goes.
                    if codes.in_set(x, categories) { *in_set_left } else { !*in_set_left }
                })
            }
        }
    }
}

impl EnsembleTree {
    /// The leaf value `row` reaches.
    pub fn leaf(&self, row: &[f64], precision: Precision) -> f64 {
        let mut index = 0_usize;
        // A valid tree reaches a leaf in fewer steps than it has nodes; the bound guards bad input.
        for _ in 0..=self.nodes.len() {
            let Some(node) = self.nodes.get(index) else { return 0.0 };
            match node.next(row, precision) {
                Some(child) => index = child as usize,
                None => {
                    return match node {
                        EnsembleNode::Leaf { value } => *value,
                        _ => 0.0,
                    };
                }
            }
        }
        0.0
    }
}

impl TreeEnsemble {
    /// Checks the structure: children in range and acyclic (every path from the root reaches a
    /// leaf), features within the width, groups within the outputs.
    pub fn validate(&self) -> Result<()> {
        if self.outputs == 0 || self.base_margins.len() != self.outputs {
            return Err(Error::Invalid(format!(
                "{} base margins for {} outputs",
                self.base_margins.len(),
                self.outputs
            )));
        }
        for (number, tree) in self.trees.iter().enumerate() {
            if tree.group as usize >= self.outputs {
                return Err(Error::Invalid(format!("tree {number} adds to output {} of {}", tree.group, self.outputs)));
            }
            if tree.nodes.is_empty() {
                return Err(Error::Invalid(format!("tree {number} has no nodes")));
            }
            // Depth-first from the root; a node seen twice means a cycle or a shared child.
            let mut seen = vec![false; tree.nodes.len()];
            let mut pending = vec![0_usize];
            while let Some(index) = pending.pop() {
                let Some(node) = tree.nodes.get(index) else {
                    return Err(Error::Invalid(format!(
                        "tree {number} points at node {index} of {}",
                        tree.nodes.len()
                    )));
                };
                if std::mem::replace(&mut seen[index], true) {
                    return Err(Error::Invalid(format!("tree {number} reaches node {index} twice")));
                }
                match node {
                    EnsembleNode::Leaf { .. } => {}
                    EnsembleNode::Numeric { feature, left, right, .. }
                    | EnsembleNode::Categorical { feature, left, right, .. } => {
                        if *feature as usize >= self.features {
                            return Err(Error::Invalid(format!(
                                "tree {number} node {index} splits on feature {feature} of {}",
                                self.features
                            )));
                        }
                        pending.push(*left as usize);
                        pending.push(*right as usize);
                    }
                }
            }
        }
        Ok(())
    }

    /// The raw scores of one row, one per output (before averaging and the transform).
    pub fn margins(&self, row: &[f64]) -> Vec<f64> {
        match self.precision {
            Precision::Float64 => {
                let mut sums = self.base_margins.clone();
                for tree in &self.trees {
                    sums[tree.group as usize] += tree.leaf(row, self.precision) * tree.weight;
                }
                sums
            }
            Precision::Float32 => {
                let mut sums: Vec<f32> = self.base_margins.iter().map(|margin| *margin as f32).collect();
                for tree in &self.trees {
                    let leaf = tree.leaf(row, self.precision) as f32;
                    let contribution = if tree.weight == 1.0 { leaf } else { leaf * tree.weight as f32 };
                    sums[tree.group as usize] += contribution;
                }
                sums.into_iter().map(f64::from).collect()
            }
        }
    }

    /// The compiled engine for this ensemble (made on first use), or `None` if it cannot be
    /// compiled (then [`TreeEnsemble::predict`] is the way to score).
    pub fn compiled(&self) -> Option<&CompiledEnsemble> {
        self.compiled.get_or_compile(|| CompiledEnsemble::new(self).ok())
    }

    /// Scores rows with the compiled engine on one thread (falling back to the reference
    /// evaluation): the outputs of each row, concatenated.
    pub fn score_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        self.compiled()
            .and_then(|compiled| compiled.score_rows(rows))
            .unwrap_or_else(|| rows.iter().flat_map(|row| self.predict(row)).collect())
    }

    /// The outputs of one row: probabilities, expected counts or values, per the objective.
    pub fn predict(&self, row: &[f64]) -> Vec<f64> {
        let mut margins = self.margins(row);
        self.finish(&mut margins);
        margins
    }

    /// Turns one row's margins into outputs in place: averaging (forests), then the transform.
    pub fn finish(&self, margins: &mut [f64]) {
        if let Some(divisor) = self.average_over {
            margins.iter_mut().for_each(|margin| *margin /= divisor);
        }
        match self.precision {
            Precision::Float64 => transform_f64(self.transform, margins),
            Precision::Float32 => transform_f32(self.transform, margins),
        }
    }
}

fn transform_f64(transform: Transform, values: &mut [f64]) {
    match transform {
        Transform::Identity => {}
        Transform::Sigmoid { scale } => {
            values.iter_mut().for_each(|value| *value = 1.0 / (1.0 + (-scale * *value).exp()))
        }
        Transform::Exp => values.iter_mut().for_each(|value| *value = value.exp()),
        Transform::Softmax => {
            let largest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut total = 0.0;
            for value in values.iter_mut() {
                *value = (*value - largest).exp();
                total += *value;
            }
            values.iter_mut().for_each(|value| *value /= total);
        }
    }
}

/// XGBoost's transforms (`common::Sigmoid`, `common::Softmax`): `f32` with `expf`, the softmax
/// denominator summed in `f64`.
fn transform_f32(transform: Transform, values: &mut [f64]) {
    match transform {
        Transform::Identity => {}
        Transform::Sigmoid { scale } => values.iter_mut().for_each(|value| {
            let margin = (scale as f32) * (*value as f32);
            let exponent = (-margin).min(88.7_f32);
            *value = f64::from(1.0_f32 / (exponent.exp() + 1.0_f32 + 1e-16_f32));
        }),
        Transform::Exp => values.iter_mut().for_each(|value| *value = f64::from((*value as f32).exp())),
        Transform::Softmax => {
            let largest = values.iter().map(|value| *value as f32).fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0_f64;
            for value in values.iter_mut() {
                let exponential = (*value as f32 - largest).exp();
                *value = f64::from(exponential);
                total += f64::from(exponential);
            }
            values.iter_mut().for_each(|value| *value = f64::from(*value as f32 / total as f32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(comparison: Comparison, missing: Missing, default_left: bool) -> EnsembleNode {
        EnsembleNode::Numeric { feature: 0, threshold: 1.0, comparison, missing, default_left, left: 1, right: 2 }
    }

    fn tree(root: EnsembleNode) -> EnsembleTree {
        EnsembleTree {
            nodes: vec![root, EnsembleNode::Leaf { value: -1.0 }, EnsembleNode::Leaf { value: 1.0 }],
            group: 0,
            weight: 1.0,
        }
    }

    #[test]
    fn comparisons_missing_values_and_categories_follow_each_library() {
        let strict = tree(numeric(Comparison::Less, Missing::Nan, false));
        assert_eq!(strict.leaf(&[1.0], Precision::Float64), 1.0, "x < t is false at t");
        assert_eq!(strict.leaf(&[f64::NAN], Precision::Float64), 1.0, "NaN takes the default (right)");
        // 0.99999999 rounds to 1.0 in f32: XGBoost compares after rounding.
        assert_eq!(strict.leaf(&[0.999_999_99], Precision::Float64), -1.0);
        assert_eq!(strict.leaf(&[0.999_999_99], Precision::Float32), 1.0);
        let inclusive = tree(numeric(Comparison::LessOrEqual, Missing::NanIsZero, false));
        assert_eq!(inclusive.leaf(&[1.0], Precision::Float64), -1.0, "x <= t holds at t");
        assert_eq!(inclusive.leaf(&[f64::NAN], Precision::Float64), -1.0, "NaN is 0 and 0 <= 1");
        let zero = tree(numeric(Comparison::LessOrEqual, Missing::Zero, false));
        assert_eq!(zero.leaf(&[1e-36], Precision::Float64), 1.0, "a LightGBM zero is missing");
        assert_eq!(zero.leaf(&[0.5], Precision::Float64), -1.0);
        let categories = |codes, in_set_left| {
            tree(EnsembleNode::Categorical {
                feature: 0,
                categories: vec![0b11010],
                codes,
                in_set_left,
                default_left: true,
                left: 1,
                right: 2,
            })
        };
        let xgboost = categories(CategoryCodes::Xgboost, false);
        let lightgbm = categories(CategoryCodes::Lightgbm, true);
        for (value, xgboost_leaf, lightgbm_leaf) in [
            (3.0, 1.0, -1.0),       // in the set {1, 3, 4}
            (2.0, -1.0, 1.0),       // not in the set
            (40.0, -1.0, 1.0),      // beyond the bitset
            (-0.5, -1.0, 1.0),      // invalid for XGBoost, code 0 for LightGBM
            (-3.0, -1.0, 1.0),      // invalid for both
            (f64::NAN, -1.0, -1.0), // the default direction
        ] {
            assert_eq!(xgboost.leaf(&[value], Precision::Float32), xgboost_leaf, "xgboost {value}");
            assert_eq!(lightgbm.leaf(&[value], Precision::Float64), lightgbm_leaf, "lightgbm {value}");
        }
    }

    #[test]
    fn sums_transforms_and_validation() {
        let ensemble = TreeEnsemble {
            features: 1,
            outputs: 1,
            base_margins: vec![0.5],
            trees: vec![tree(numeric(Comparison::Less, Missing::Nan, true)); 3],
            precision: Precision::Float64,
            average_over: None,
            transform: Transform::Sigmoid { scale: 1.0 },
            source: "test".into(),
            compiled: CompiledCache::default(),
        };
        ensemble.validate().expect("valid");
        assert_eq!(ensemble.margins(&[5.0]), vec![3.5]);
        assert!((ensemble.predict(&[5.0])[0] - 1.0 / (1.0 + (-3.5_f64).exp())).abs() < 1e-15);
        let mut cyclic = ensemble.clone();
        cyclic.trees[1].nodes[0] = EnsembleNode::Numeric {
            feature: 0,
            threshold: 0.0,
            comparison: Comparison::Less,
            missing: Missing::Nan,
            default_left: true,
            left: 0,
            right: 2,
        };
        assert!(cyclic.validate().is_err());
        let mut wide = ensemble;
        wide.features = 0;
        assert!(wide.validate().unwrap_err().to_string().contains("feature 0 of 0"));
    }
}
