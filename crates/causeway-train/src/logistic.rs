//! Logistic regression fitted by Newton's method (iteratively reweighted least squares) with L2.

use causeway_models::logistic::{Expansion, LogisticModel};
use causeway_models::{FeatureKind, Signature, sigmoid};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Trainer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// L2 penalty on the weights (not the intercept).
    pub l2: f64,
    /// Maximum Newton iterations.
    pub max_iterations: usize,
    /// Weight of positive examples; `None` uses sqrt(negatives / positives).
    pub scale_pos_weight: Option<f64>,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self { l2: 1.0, max_iterations: 25, scale_pos_weight: None }
    }
}

/// Fits a logistic regression on encoded rows, expanding features as the signature says.
pub fn train(
    signature: &Signature,
    rows: &[Vec<f64>],
    labels: &[f64],
    params: &LogisticParams,
) -> Result<LogisticModel> {
    if rows.is_empty() || rows.len() != labels.len() {
        return Err(Error::Data("need as many labels as rows and at least one row".into()));
    }
    let positives = labels.iter().filter(|label| **label > 0.5).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::Data("training needs both classes".into()));
    }
    let positive_weight =
        params.scale_pos_weight.unwrap_or_else(|| ((labels.len() - positives) as f64 / positives as f64).sqrt());
    let expansions: Vec<Expansion> = signature
        .features
        .iter()
        .enumerate()
        .map(|(index, feature)| match &feature.kind {
            FeatureKind::Numeric => {
                let values: Vec<f64> =
                    rows.iter().filter_map(|row| row.get(index).copied()).filter(|value| !value.is_nan()).collect();
                let mean = if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 };
                let variance = if values.is_empty() {
                    0.0
                } else {
                    values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / values.len() as f64
                };
                Expansion::Standardized { mean, scale: variance.sqrt().max(1e-9) }
            }
            FeatureKind::Categorical { vocabulary } => Expansion::OneHot { categories: vocabulary.len() },
        })
        .collect();
    let width = LogisticModel::expanded_width(&expansions);
    let dimension = width + 1;
    let mut coefficients = vec![0.0; dimension];
    let mut expanded = Vec::with_capacity(width);
    let design: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            LogisticModel::expand(&expansions, row, &mut expanded);
            let mut with_bias = expanded.clone();
            with_bias.push(1.0);
            with_bias
        })
        .collect();
    for _ in 0..params.max_iterations {
        let mut gradient = vec![0.0; dimension];
        let mut hessian = vec![0.0; dimension * dimension];
        for (x, label) in design.iter().zip(labels) {
            let weight = if *label > 0.5 { positive_weight } else { 1.0 };
            let margin: f64 = x.iter().zip(&coefficients).map(|(value, coefficient)| value * coefficient).sum();
            let probability = sigmoid(margin);
            let residual = (probability - label) * weight;
            let curvature = (probability * (1.0 - probability)).max(1e-10) * weight;
            for (i, xi) in x.iter().enumerate() {
                if *xi == 0.0 {
                    continue;
                }
                gradient[i] += residual * xi;
                let row = &mut hessian[i * dimension..(i + 1) * dimension];
                for (j, xj) in x.iter().enumerate().skip(i) {
                    row[j] += curvature * xi * xj;
                }
            }
        }
        for i in 0..dimension {
            for j in 0..i {
                hessian[i * dimension + j] = hessian[j * dimension + i];
            }
            if i < width {
                gradient[i] += params.l2 * coefficients[i];
                hessian[i * dimension + i] += params.l2;
            } else {
                hessian[i * dimension + i] += 1e-8;
            }
        }
        let step = solve_cholesky(&hessian, &gradient, dimension)
            .ok_or_else(|| Error::Data("logistic regression: the Hessian is not positive definite".into()))?;
        let mut largest = 0.0f64;
        for (coefficient, delta) in coefficients.iter_mut().zip(&step) {
            *coefficient -= delta;
            largest = largest.max(delta.abs());
        }
        if largest < 1e-8 {
            break;
        }
    }
    let bias = coefficients.pop().unwrap_or(0.0);
    Ok(LogisticModel { expansions, weights: coefficients, bias })
}

/// Solves `matrix · x = vector` for a symmetric positive-definite matrix.
fn solve_cholesky(matrix: &[f64], vector: &[f64], size: usize) -> Option<Vec<f64>> {
    let mut lower = vec![0.0; size * size];
    for i in 0..size {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| lower[i * size + k] * lower[j * size + k]).sum();
            if i == j {
                let diagonal = matrix[i * size + i] - sum;
                if diagonal <= 0.0 {
                    return None;
                }
                lower[i * size + i] = diagonal.sqrt();
            } else {
                lower[i * size + j] = (matrix[i * size + j] - sum) / lower[j * size + j];
            }
        }
    }
    let mut forward = vec![0.0; size];
    for i in 0..size {
        let sum: f64 = (0..i).map(|k| lower[i * size + k] * forward[k]).sum();
        forward[i] = (vector[i] - sum) / lower[i * size + i];
    }
    let mut solution = vec![0.0; size];
    for i in (0..size).rev() {
        let sum: f64 = (i + 1..size).map(|k| lower[k * size + i] * solution[k]).sum();
        solution[i] = (forward[i] - sum) / lower[i * size + i];
    }
    Some(solution)
}

#[cfg(test)]
mod tests {
    use causeway_models::{FeatureSpec, Predictor};
    use causeway_types::SeededRng;

    use super::*;
    use crate::metrics::roc_auc;

    #[test]
    fn recovers_a_linear_rule_with_a_category() -> Result<()> {
        let signature = Signature {
            features: vec![
                FeatureSpec { name: "x".into(), kind: FeatureKind::Numeric, nullable: true },
                FeatureSpec {
                    name: "c".into(),
                    kind: FeatureKind::Categorical { vocabulary: vec!["a".into(), "b".into()] },
                    nullable: true,
                },
            ],
        };
        let mut rng = SeededRng::new(5);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..3_000 {
            let x = rng.normal() * 3.0 + 10.0;
            let category = rng.below(2) as f64;
            let margin = (x - 10.0) + 2.0 * category - 1.0;
            labels.push(f64::from(u8::from(rng.chance(sigmoid(margin)))));
            rows.push(vec![x, category]);
        }
        let model = train(
            &signature,
            &rows,
            &labels,
            &LogisticParams { scale_pos_weight: Some(1.0), ..LogisticParams::default() },
        )?;
        let scores = model.predict_rows(&rows);
        assert!(roc_auc(&scores, &labels) > 0.85);
        // Coefficient of x per unit is about 1: the standardized weight divided by the scale.
        if let Expansion::Standardized { scale, .. } = model.expansions[0] {
            assert!((model.weights[0] / scale - 1.0).abs() < 0.15, "{}", model.weights[0] / scale);
        }
        assert!((model.weights[2] - model.weights[1] - 2.0).abs() < 0.3);
        Ok(())
    }
}
