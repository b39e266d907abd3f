//! Linear models with one or several outputs over the same expanded inputs as logistic
//! regression (standardized numbers, one-hot categories): ridge regression (an identity link,
//! one output) and multinomial logistic regression (a softmax over one output per class).

use serde::{Deserialize, Serialize};

use crate::Predictor;
use crate::error::{Error, Result};
use crate::logistic::{Expansion, LogisticModel};

/// How the linear outputs become predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// The output is the prediction (regression).
    Identity,
    /// A softmax across the outputs gives each class's probability.
    Softmax,
}

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// One expansion per input feature.
    pub expansions: Vec<Expansion>,
    /// One weight vector (one weight per expanded column) per output.
    pub weights: Vec<Vec<f64>>,
    /// One intercept per output.
    pub biases: Vec<f64>,
    /// How outputs become predictions.
    pub link: Link,
}

impl LinearModel {
    /// Values per row.
    pub fn outputs(&self) -> usize {
        self.biases.len()
    }

    /// The outputs of one encoded row (probabilities for a softmax, the prediction otherwise).
    pub fn predict(&self, row: &[f64], expanded: &mut Vec<f64>) -> Vec<f64> {
        LogisticModel::expand(&self.expansions, row, expanded);
        let mut outputs: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.biases)
            .map(|(weights, bias)| bias + weights.iter().zip(expanded.iter()).map(|(w, x)| w * x).sum::<f64>())
            .collect();
        if self.link == Link::Softmax {
            softmax(&mut outputs);
        }
        outputs
    }

    /// Every output of every row, row after row.
    pub fn predict_outputs(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let mut expanded = Vec::new();
        rows.iter().flat_map(|row| self.predict(row, &mut expanded)).collect()
    }

    /// Checks the model against an input width.
    pub fn validate(&self, width: usize) -> Result<()> {
        if self.expansions.len() != width {
            return Err(Error::Invalid(format!(
                "linear model has {} expansions for {width} features",
                self.expansions.len()
            )));
        }
        let expanded = LogisticModel::expanded_width(&self.expansions);
        if self.biases.is_empty()
            || self.weights.len() != self.biases.len()
            || self.weights.iter().any(|weights| weights.len() != expanded)
        {
            return Err(Error::Invalid("linear model weights do not match its expansions and outputs".into()));
        }
        if self.link == Link::Identity && self.outputs() != 1 {
            return Err(Error::Invalid("a linear regression has exactly one output".into()));
        }
        Ok(())
    }
}

/// Replaces values by their softmax, stably.
pub fn softmax(values: &mut [f64]) {
    let largest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for value in values.iter_mut() {
        *value = (*value - largest).exp();
        total += *value;
    }
    values.iter_mut().for_each(|value| *value /= total);
}

impl Predictor for LinearModel {
    /// The prediction for regression; the most likely class's probability for a softmax.
    fn predict_row(&self, row: &[f64]) -> f64 {
        let outputs = self.predict(row, &mut Vec::new());
        outputs.iter().copied().fold(f64::NAN, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_softmax_links() {
        let regression = LinearModel {
            expansions: vec![Expansion::Standardized { mean: 1.0, scale: 2.0 }],
            weights: vec![vec![3.0]],
            biases: vec![10.0],
            link: Link::Identity,
        };
        assert!(regression.validate(1).is_ok());
        assert_eq!(regression.predict_row(&[5.0]), 10.0 + 3.0 * 2.0);
        let classes = LinearModel {
            expansions: vec![Expansion::OneHot { categories: 2 }],
            weights: vec![vec![0.0, 0.0], vec![1.0, -1.0], vec![0.0, 2.0]],
            biases: vec![0.0, 0.0, 0.0],
            link: Link::Softmax,
        };
        assert!(classes.validate(1).is_ok());
        let outputs = classes.predict_outputs(&[vec![1.0]]);
        assert!((outputs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(outputs[2] > outputs[0] && outputs[0] > outputs[1], "{outputs:?}");
        assert!(LinearModel { biases: vec![0.0, 0.0], ..regression }.validate(1).is_err());
    }
}
