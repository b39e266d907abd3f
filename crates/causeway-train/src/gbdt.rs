//! A histogram-based gradient-boosted-trees trainer for binary classification (log loss).
//!
//! Features are cut into at most `bins` quantile bins once; each tree grows depth-wise, choosing
//! for every node the split with the largest second-order gain, and learns where missing values go.
//! There is no randomness: the same data and parameters give the same model, bit for bit.

use causeway_models::{GbdtModel, Node, Tree, sigmoid};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Trainer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Maximum number of trees.
    pub rounds: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f64,
    /// Maximum tree depth.
    pub max_depth: usize,
    /// Minimum hessian sum in a child.
    pub min_child_weight: f64,
    /// L2 regularization of leaf values.
    pub lambda: f64,
    /// Minimum gain for a split.
    pub min_split_gain: f64,
    /// Maximum bins per feature (2..=255).
    pub bins: usize,
    /// Weight of positive examples; `None` uses sqrt(negatives / positives).
    pub scale_pos_weight: Option<f64>,
    /// Stop when validation loss has not improved for this many rounds.
    pub early_stopping_rounds: Option<usize>,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            rounds: 200,
            learning_rate: 0.1,
            max_depth: 5,
            min_child_weight: 1.0,
            lambda: 1.0,
            min_split_gain: 0.0,
            bins: 64,
            scale_pos_weight: None,
            early_stopping_rounds: Some(20),
        }
    }
}

/// What happened during training.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingHistory {
    /// Training log loss after each round.
    pub train_loss: Vec<f64>,
    /// Validation log loss after each round, when a validation set was given.
    pub validation_loss: Vec<f64>,
    /// The number of trees kept.
    pub best_rounds: usize,
}

const MISSING_BIN: u8 = u8::MAX;

struct BinnedMatrix {
    bins: Vec<u8>,
    width: usize,
    cuts: Vec<Vec<f64>>,
}

impl BinnedMatrix {
    fn new(rows: &[Vec<f64>], width: usize, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(2, 254);
        let mut cuts = Vec::with_capacity(width);
        for feature in 0..width {
            let mut values: Vec<f64> =
                rows.iter().filter_map(|row| row.get(feature).copied()).filter(|value| !value.is_nan()).collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            let feature_cuts: Vec<f64> = if values.len() <= max_bins {
                values.iter().skip(1).copied().collect()
            } else {
                let mut chosen: Vec<f64> = (1..max_bins).map(|index| values[index * values.len() / max_bins]).collect();
                chosen.dedup();
                chosen
            };
            cuts.push(feature_cuts);
        }
        let mut bins = Vec::with_capacity(rows.len() * width);
        for row in rows {
            for (feature, feature_cuts) in cuts.iter().enumerate() {
                let value = row.get(feature).copied().unwrap_or(f64::NAN);
                bins.push(if value.is_nan() {
                    MISSING_BIN
                } else {
                    feature_cuts.partition_point(|cut| *cut <= value) as u8
                });
            }
        }
        Self { bins, width, cuts }
    }

    fn bin(&self, row: usize, feature: usize) -> u8 {
        self.bins[row * self.width + feature]
    }
}

#[derive(Clone, Copy, Default)]
struct GradientPair {
    gradient: f64,
    hessian: f64,
}

struct Candidate {
    gain: f64,
    feature: usize,
    bin: usize,
    missing_left: bool,
}

/// Trains a model on encoded rows and 0/1 labels, optionally early-stopping on a validation set.
pub fn train(
    rows: &[Vec<f64>],
    labels: &[f64],
    params: &GbdtParams,
    validation: Option<(&[Vec<f64>], &[f64])>,
) -> Result<(GbdtModel, TrainingHistory)> {
    let width = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || rows.len() != labels.len() {
        return Err(Error::Data(format!(
            "need as many labels as rows and at least one row (rows {}, labels {})",
            rows.len(),
            labels.len()
        )));
    }
    if rows.iter().any(|row| row.len() != width) {
        return Err(Error::Data("rows have different widths".into()));
    }
    let positives = labels.iter().filter(|label| **label > 0.5).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::Data(format!(
            "training needs both classes; found {positives} positives in {} rows",
            labels.len()
        )));
    }
    let negatives = labels.len() - positives;
    let positive_weight = params.scale_pos_weight.unwrap_or_else(|| (negatives as f64 / positives as f64).sqrt());
    let weights: Vec<f64> = labels.iter().map(|label| if *label > 0.5 { positive_weight } else { 1.0 }).collect();
    let weighted_positives = positives as f64 * positive_weight;
    let base_score = (weighted_positives / negatives as f64).ln();

    let matrix = BinnedMatrix::new(rows, width, params.bins);
    let mut margins = vec![base_score; rows.len()];
    let mut validation_margins = validation.map(|(valid_rows, _)| vec![base_score; valid_rows.len()]);
    let mut trees = Vec::with_capacity(params.rounds);
    let mut history = TrainingHistory::default();
    let mut best = (f64::INFINITY, 0usize);
    let mut pairs = vec![GradientPair::default(); rows.len()];

    for round in 0..params.rounds {
        for (index, pair) in pairs.iter_mut().enumerate() {
            let probability = sigmoid(margins[index]);
            pair.gradient = (probability - labels[index]) * weights[index];
            pair.hessian = (probability * (1.0 - probability)).max(1e-12) * weights[index];
        }
        let tree = grow_tree(&matrix, &pairs, params, &mut margins);
        if let (Some((valid_rows, _)), Some(valid_margins)) = (validation, validation_margins.as_mut()) {
            for (margin, row) in valid_margins.iter_mut().zip(valid_rows) {
                *margin += tree.leaf_value(row);
            }
        }
        trees.push(tree);
        history.train_loss.push(weighted_log_loss(&margins, labels, &weights));
        if let (Some((_, valid_labels)), Some(valid_margins)) = (validation, validation_margins.as_ref()) {
            let loss = weighted_log_loss(valid_margins, valid_labels, &vec![1.0; valid_labels.len()]);
            history.validation_loss.push(loss);
            if loss < best.0 - 1e-9 {
                best = (loss, round + 1);
            } else if params.early_stopping_rounds.is_some_and(|patience| round + 1 - best.1 >= patience) {
                break;
            }
        }
    }
    let keep = if validation.is_some() && best.1 > 0 { best.1 } else { trees.len() };
    trees.truncate(keep);
    history.best_rounds = keep;
    Ok((GbdtModel::new(base_score, trees), history))
}

fn weighted_log_loss(margins: &[f64], labels: &[f64], weights: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut weight_sum = 0.0;
    for ((margin, label), weight) in margins.iter().zip(labels).zip(weights) {
        let probability = sigmoid(*margin).clamp(1e-15, 1.0 - 1e-15);
        total -= weight * (label * probability.ln() + (1.0 - label) * (1.0 - probability).ln());
        weight_sum += weight;
    }
    total / weight_sum.max(f64::MIN_POSITIVE)
}

/// Grows one tree depth-wise and adds its leaf values to `margins`.
fn grow_tree(matrix: &BinnedMatrix, pairs: &[GradientPair], params: &GbdtParams, margins: &mut [f64]) -> Tree {
    let mut nodes: Vec<Node> = vec![Node::Leaf { value: 0.0 }];
    // Nodes waiting to be split: (node index, rows, depth).
    let mut frontier: Vec<(usize, Vec<u32>, usize)> = vec![(0, (0..pairs.len() as u32).collect(), 0)];
    let mut leaves: Vec<(usize, Vec<u32>)> = Vec::new();
    while let Some((node_index, node_rows, depth)) = frontier.pop() {
        let total = node_rows.iter().fold(GradientPair::default(), |sum, row| {
            let pair = pairs[*row as usize];
            GradientPair { gradient: sum.gradient + pair.gradient, hessian: sum.hessian + pair.hessian }
        });
        let candidate = if depth < params.max_depth && node_rows.len() >= 2 {
            best_split(matrix, pairs, &node_rows, total, params)
        } else {
            None
        };
        match candidate {
            Some(candidate) => {
                let threshold = matrix.cuts[candidate.feature][candidate.bin];
                let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = node_rows.iter().partition(|row| {
                    let bin = matrix.bin(**row as usize, candidate.feature);
                    if bin == MISSING_BIN { candidate.missing_left } else { usize::from(bin) <= candidate.bin }
                });
                let left = nodes.len();
                nodes.push(Node::Leaf { value: 0.0 });
                nodes.push(Node::Leaf { value: 0.0 });
                nodes[node_index] = Node::Split {
                    feature: candidate.feature as u32,
                    threshold,
                    left: left as u32,
                    right: left as u32 + 1,
                    missing_left: candidate.missing_left,
                };
                frontier.push((left + 1, right_rows, depth + 1));
                frontier.push((left, left_rows, depth + 1));
            }
            None => {
                let value = -total.gradient / (total.hessian + params.lambda) * params.learning_rate;
                nodes[node_index] = Node::Leaf { value };
                leaves.push((node_index, node_rows));
            }
        }
    }
    for (node_index, node_rows) in leaves {
        if let Node::Leaf { value } = nodes[node_index] {
            for row in node_rows {
                margins[row as usize] += value;
            }
        }
    }
    Tree { nodes }
}

fn best_split(
    matrix: &BinnedMatrix,
    pairs: &[GradientPair],
    rows: &[u32],
    total: GradientPair,
    params: &GbdtParams,
) -> Option<Candidate> {
    let width = matrix.width;
    const SLOTS: usize = 256;
    let mut histogram = vec![GradientPair::default(); width * SLOTS];
    for row in rows {
        let pair = pairs[*row as usize];
        let offset = *row as usize * width;
        for (feature, bin) in matrix.bins[offset..offset + width].iter().enumerate() {
            let slot = &mut histogram[feature * SLOTS + usize::from(*bin)];
            slot.gradient += pair.gradient;
            slot.hessian += pair.hessian;
        }
    }
    let score = |pair: GradientPair| pair.gradient * pair.gradient / (pair.hessian + params.lambda);
    let parent = score(total);
    let mut best: Option<Candidate> = None;
    for feature in 0..width {
        let slots = &histogram[feature * SLOTS..(feature + 1) * SLOTS];
        let missing = slots[usize::from(MISSING_BIN)];
        let bin_count = matrix.cuts[feature].len() + 1;
        let mut left = GradientPair::default();
        for (bin, slot) in slots.iter().enumerate().take(bin_count.saturating_sub(1)) {
            left.gradient += slot.gradient;
            left.hessian += slot.hessian;
            for missing_left in [false, true] {
                let mut left_side = left;
                if missing_left {
                    left_side.gradient += missing.gradient;
                    left_side.hessian += missing.hessian;
                }
                let right_side = GradientPair {
                    gradient: total.gradient - left_side.gradient,
                    hessian: total.hessian - left_side.hessian,
                };
                if left_side.hessian < params.min_child_weight || right_side.hessian < params.min_child_weight {
                    continue;
                }
                let gain = score(left_side) + score(right_side) - parent;
                if gain > params.min_split_gain && best.as_ref().is_none_or(|current| gain > current.gain) {
                    best = Some(Candidate { gain, feature, bin, missing_left });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use causeway_models::Predictor;
    use causeway_types::SeededRng;

    use super::*;
    use crate::metrics::roc_auc;

    /// An xor-like task no linear model solves, with missing values.
    fn dataset(seed: u64, count: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = SeededRng::new(seed);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..count {
            let a = rng.range(-1.0, 1.0);
            let b = rng.range(-1.0, 1.0);
            let noise = rng.range(-1.0, 1.0);
            let positive = (a > 0.0) != (b > 0.0);
            let label = if rng.chance(0.9) { positive } else { !positive };
            rows.push(vec![a, if rng.chance(0.1) { f64::NAN } else { b }, noise]);
            labels.push(f64::from(u8::from(label)));
        }
        (rows, labels)
    }

    #[test]
    fn learns_an_interaction_and_is_deterministic() -> Result<()> {
        let (rows, labels) = dataset(1, 4_000);
        let (valid_rows, valid_labels) = dataset(2, 2_000);
        let params = GbdtParams { rounds: 60, max_depth: 3, ..GbdtParams::default() };
        let (model, history) = train(&rows, &labels, &params, Some((&valid_rows, &valid_labels)))?;
        let scores = model.predict_rows(&valid_rows);
        // The compiled engine scores exactly as the reference traversal does, in batches and alone.
        for (row, score) in valid_rows.iter().zip(&scores) {
            let reference = sigmoid(model.margin(row));
            assert_eq!(score.to_bits(), reference.to_bits());
            assert_eq!(model.predict_row(row).to_bits(), reference.to_bits());
        }
        let auc = roc_auc(&scores, &valid_labels);
        assert!(auc > 0.85, "auc {auc}");
        assert!(history.train_loss.first() > history.train_loss.last());
        let (again, _) = train(&rows, &labels, &params, Some((&valid_rows, &valid_labels)))?;
        assert_eq!(serde_json::to_string(&model).ok(), serde_json::to_string(&again).ok());
        Ok(())
    }

    #[test]
    fn refuses_one_class_and_ragged_input() {
        assert!(train(&[vec![1.0], vec![2.0]], &[0.0, 0.0], &GbdtParams::default(), None).is_err());
        assert!(train(&[vec![1.0], vec![2.0, 3.0]], &[0.0, 1.0], &GbdtParams::default(), None).is_err());
    }
}
