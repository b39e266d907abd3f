//! Logistic regression over standardized numeric features and one-hot categories.

use serde::{Deserialize, Serialize};

use crate::Predictor;
use crate::error::{Error, Result};

/// How one input feature expands into model columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expansion {
    /// `(x - mean) / scale`; missing becomes 0 (the mean).
    Standardized {
        /// Training mean.
        mean: f64,
        /// Training standard deviation (at least a small positive number).
        scale: f64,
    },
    /// One column per category code; missing or unknown sets none.
    OneHot {
        /// Number of categories.
        categories: usize,
    },
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// One expansion per input feature.
    pub expansions: Vec<Expansion>,
    /// One weight per expanded column.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl LogisticModel {
    /// The number of expanded columns the expansions produce.
    pub fn expanded_width(expansions: &[Expansion]) -> usize {
        expansions
            .iter()
            .map(|expansion| match expansion {
                Expansion::Standardized { .. } => 1,
                Expansion::OneHot { categories } => *categories,
            })
            .sum()
    }

    /// Expands one encoded row into model columns.
    pub fn expand(expansions: &[Expansion], row: &[f64], into: &mut Vec<f64>) {
        into.clear();
        for (expansion, value) in expansions.iter().zip(row) {
            match expansion {
                Expansion::Standardized { mean, scale } => {
                    into.push(if value.is_nan() { 0.0 } else { (value - mean) / scale })
                }
                Expansion::OneHot { categories } => {
                    let start = into.len();
                    into.resize(start + categories, 0.0);
                    if !value.is_nan() && *value >= 0.0 && (*value as usize) < *categories {
                        into[start + *value as usize] = 1.0;
                    }
                }
            }
        }
    }

    /// The margin for an expanded row.
    pub fn margin_expanded(&self, expanded: &[f64]) -> f64 {
        self.bias + self.weights.iter().zip(expanded).map(|(weight, value)| weight * value).sum::<f64>()
    }

    /// Checks the model against an input width.
    pub fn validate(&self, width: usize) -> Result<()> {
        if self.expansions.len() != width {
            return Err(Error::Invalid(format!(
                "logistic model has {} expansions for {width} features",
                self.expansions.len()
            )));
        }
        if Self::expanded_width(&self.expansions) != self.weights.len() {
            return Err(Error::Invalid("logistic model weights do not match its expansions".into()));
        }
        Ok(())
    }
}

impl Predictor for LogisticModel {
    fn predict_row(&self, row: &[f64]) -> f64 {
        let mut expanded = Vec::with_capacity(self.weights.len());
        Self::expand(&self.expansions, row, &mut expanded);
        crate::sigmoid(self.margin_expanded(&expanded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_standardizes_and_one_hots() {
        let model = LogisticModel {
            expansions: vec![Expansion::Standardized { mean: 10.0, scale: 2.0 }, Expansion::OneHot { categories: 3 }],
            weights: vec![1.0, 0.0, 2.0, -1.0],
            bias: 0.5,
        };
        assert!(model.validate(2).is_ok());
        assert!((model.predict_row(&[12.0, 1.0]) - crate::sigmoid(0.5 + 1.0 + 2.0)).abs() < 1e-15);
        assert!((model.predict_row(&[f64::NAN, f64::NAN]) - crate::sigmoid(0.5)).abs() < 1e-15);
        assert!(model.validate(3).is_err());
    }
}
