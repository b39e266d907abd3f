//! Linear models over standardized numbers and one-hot categories, with L2: logistic regression
//! fitted by Newton's method (iteratively reweighted least squares), its multinomial form (one
//! weight vector per class, each updated by a Newton step in turn), and ridge regression (solved
//! exactly).

use causeway_models::logistic::{Expansion, LogisticModel};
use causeway_models::{FeatureKind, LinearModel, Link, Signature, sigmoid};
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
    /// Weight of positive examples; `None` weighs every row alike.
    pub scale_pos_weight: Option<f64>,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self { l2: 1.0, max_iterations: 25, scale_pos_weight: None }
    }
}

/// The columns each feature expands into: numbers standardized by their training mean and
/// deviation, categories one-hot.
fn expansions_for(signature: &Signature, rows: &[Vec<f64>]) -> Vec<Expansion> {
    signature
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
        .collect()
}

/// The expanded rows, each with a final 1 for the intercept.
fn design_matrix(expansions: &[Expansion], rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut expanded = Vec::with_capacity(LogisticModel::expanded_width(expansions));
    rows.iter()
        .map(|row| {
            LogisticModel::expand(expansions, row, &mut expanded);
            let mut with_bias = expanded.clone();
            with_bias.push(1.0);
            with_bias
        })
        .collect()
}

fn check_rows(rows: &[Vec<f64>], labels: &[f64]) -> Result<()> {
    if rows.is_empty() || rows.len() != labels.len() {
        return Err(Error::Data("need as many labels as rows and at least one row".into()));
    }
    Ok(())
}

/// Fits a logistic regression on encoded rows and 0/1 labels, expanding features as the
/// signature says.
pub fn train(
    signature: &Signature,
    rows: &[Vec<f64>],
    labels: &[f64],
    params: &LogisticParams,
) -> Result<LogisticModel> {
    check_rows(rows, labels)?;
    let positives = labels.iter().filter(|label| **label > 0.5).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::Data("training needs both classes".into()));
    }
    let positive_weight = params.scale_pos_weight.unwrap_or(1.0);
    let expansions = expansions_for(signature, rows);
    let width = LogisticModel::expanded_width(&expansions);
    let dimension = width + 1;
    let mut coefficients = vec![0.0; dimension];
    let design = design_matrix(&expansions, rows);
    for _ in 0..params.max_iterations {
        let mut gradient = vec![0.0; dimension];
        let mut hessian = vec![0.0; dimension * dimension];
        for (x, label) in design.iter().zip(labels) {
            let weight = if *label > 0.5 { positive_weight } else { 1.0 };
            let margin: f64 = x.iter().zip(&coefficients).map(|(value, coefficient)| value * coefficient).sum();
            let probability = sigmoid(margin);
            let residual = (probability - label) * weight;
            let curvature = (probability * (1.0 - probability)).max(1e-10) * weight;
            accumulate(x, residual, curvature, &mut gradient, &mut hessian, dimension);
        }
        finish_newton_system(&mut gradient, &mut hessian, &coefficients, params.l2, width, dimension);
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

/// Fits a multinomial logistic regression on class-index labels `0..classes`: one weight vector
/// per class; each iteration takes one Newton step per class in turn (the others held), with L2.
pub fn train_softmax(
    signature: &Signature,
    rows: &[Vec<f64>],
    labels: &[f64],
    classes: usize,
    params: &LogisticParams,
) -> Result<LinearModel> {
    check_rows(rows, labels)?;
    if let Some(bad) = labels.iter().find(|label| label.fract() != 0.0 || **label < 0.0 || **label as usize >= classes)
    {
        return Err(Error::Data(format!("class labels must be 0..{classes}, found {bad}")));
    }
    let expansions = expansions_for(signature, rows);
    let width = LogisticModel::expanded_width(&expansions);
    let dimension = width + 1;
    let design = design_matrix(&expansions, rows);
    let mut coefficients = vec![vec![0.0; dimension]; classes];
    let mut margins = vec![vec![0.0; classes]; rows.len()];
    for _ in 0..params.max_iterations {
        let mut largest = 0.0f64;
        for class in 0..classes {
            let mut gradient = vec![0.0; dimension];
            let mut hessian = vec![0.0; dimension * dimension];
            for ((x, label), margin) in design.iter().zip(labels).zip(&margins) {
                let mut probabilities = margin.clone();
                causeway_models::linear::softmax(&mut probabilities);
                let probability = probabilities[class];
                let target = if *label as usize == class { 1.0 } else { 0.0 };
                let residual = probability - target;
                let curvature = (probability * (1.0 - probability)).max(1e-10);
                accumulate(x, residual, curvature, &mut gradient, &mut hessian, dimension);
            }
            finish_newton_system(&mut gradient, &mut hessian, &coefficients[class], params.l2, width, dimension);
            let step = solve_cholesky(&hessian, &gradient, dimension).ok_or_else(|| {
                Error::Data("multinomial logistic regression: the Hessian is not positive definite".into())
            })?;
            for (coefficient, delta) in coefficients[class].iter_mut().zip(&step) {
                *coefficient -= delta;
                largest = largest.max(delta.abs());
            }
            for (margin, x) in margins.iter_mut().zip(&design) {
                margin[class] = x.iter().zip(&coefficients[class]).map(|(value, weight)| value * weight).sum();
            }
        }
        if largest < 1e-8 {
            break;
        }
    }
    let biases = coefficients.iter_mut().map(|weights| weights.pop().unwrap_or(0.0)).collect();
    Ok(LinearModel { expansions, weights: coefficients, biases, link: Link::Softmax })
}

/// Linear-regression settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearParams {
    /// L2 penalty on the weights (not the intercept).
    pub l2: f64,
}

impl Default for LinearParams {
    fn default() -> Self {
        Self { l2: 1.0 }
    }
}

/// Fits a ridge regression on numeric labels: the exact minimizer of squared error plus `l2`
/// times the squared weights (standardized inputs, unpenalized intercept).
pub fn train_ridge(
    signature: &Signature,
    rows: &[Vec<f64>],
    labels: &[f64],
    params: &LinearParams,
) -> Result<LinearModel> {
    check_rows(rows, labels)?;
    if let Some(bad) = labels.iter().find(|label| !label.is_finite()) {
        return Err(Error::Data(format!("regression labels must be finite numbers, found {bad}")));
    }
    let expansions = expansions_for(signature, rows);
    let width = LogisticModel::expanded_width(&expansions);
    let dimension = width + 1;
    let design = design_matrix(&expansions, rows);
    let mut gradient = vec![0.0; dimension];
    let mut hessian = vec![0.0; dimension * dimension];
    for (x, label) in design.iter().zip(labels) {
        // The normal equations: XᵀX w = Xᵀy, written as one Newton step from zero.
        accumulate(x, -label, 1.0, &mut gradient, &mut hessian, dimension);
    }
    finish_newton_system(&mut gradient, &mut hessian, &vec![0.0; dimension], params.l2, width, dimension);
    let mut solution = solve_cholesky(&hessian, &gradient, dimension)
        .ok_or_else(|| Error::Data("ridge regression: the system is not positive definite".into()))?;
    solution.iter_mut().for_each(|value| *value = -*value);
    let bias = solution.pop().unwrap_or(0.0);
    Ok(LinearModel { expansions, weights: vec![solution], biases: vec![bias], link: Link::Identity })
}

/// Adds one row's contribution to a Newton system: `residual · x` to the gradient and
/// `curvature · x xᵀ` to the upper triangle of the Hessian.
fn accumulate(x: &[f64], residual: f64, curvature: f64, gradient: &mut [f64], hessian: &mut [f64], dimension: usize) {
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

/// Mirrors the Hessian's upper triangle and adds the L2 penalty (not on the intercept, which
/// gets a tiny ridge for stability).
fn finish_newton_system(
    gradient: &mut [f64],
    hessian: &mut [f64],
    coefficients: &[f64],
    l2: f64,
    width: usize,
    dimension: usize,
) {
    for i in 0..dimension {
        for j in 0..i {
            hessian[i * dimension + j] = hessian[j * dimension + i];
        }
        if i < width {
            gradient[i] += l2 * coefficients[i];
            hessian[i * dimension + i] += l2;
        } else {
            hessian[i * dimension + i] += 1e-8;
        }
    }
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

    fn numeric(names: &[&str]) -> Signature {
        Signature {
            features: names
                .iter()
                .map(|name| FeatureSpec { name: (*name).into(), kind: FeatureKind::Numeric, nullable: true })
                .collect(),
        }
    }

    #[test]
    fn ridge_recovers_coefficients_and_softmax_separates_classes() -> Result<()> {
        let mut rng = SeededRng::new(12);
        let (mut rows, mut values, mut classes) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2_000 {
            let (x, y) = (rng.normal() * 2.0 + 5.0, rng.normal());
            rows.push(vec![x, y]);
            values.push(1.5 * x - 3.0 * y + 7.0 + 0.1 * rng.normal());
            classes.push(if x > 6.0 {
                2.0
            } else if y > 0.0 {
                1.0
            } else {
                0.0
            });
        }
        let ridge = train_ridge(&numeric(&["x", "y"]), &rows, &values, &LinearParams { l2: 0.0 })?;
        let prediction = ridge.predict(&[6.0, 1.0], &mut Vec::new())[0];
        assert!((prediction - (1.5 * 6.0 - 3.0 + 7.0)).abs() < 0.05, "{prediction}");
        let softmax = train_softmax(&numeric(&["x", "y"]), &rows, &classes, 3, &LogisticParams::default())?;
        let outputs = softmax.predict_outputs(&rows);
        let names: Vec<String> = ["0", "1", "2"].iter().map(|name| name.to_string()).collect();
        let accuracy = causeway_models::metrics::multiclass_metrics(&outputs, &names, &classes)["accuracy"];
        assert!(accuracy > 0.9, "accuracy {accuracy}");
        assert!(train_softmax(&numeric(&["x", "y"]), &rows, &values, 3, &LogisticParams::default()).is_err());
        Ok(())
    }
}
