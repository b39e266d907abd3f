//! A histogram-based gradient-boosted-trees trainer for binary classification (log loss),
//! multi-class classification (softmax: one tree per class per round) and regression (squared
//! error).
//!
//! Features are cut into at most `bins` quantile bins once (categorical features keep one bin per
//! category code); each tree grows best-first, choosing for every leaf the split with the largest
//! second-order gain and learning where missing values go. Categorical features split on sets of
//! categories (ordered by gradient over hessian, as LightGBM does). Histograms are built on the
//! smaller child only and subtracted from the parent for the larger; threads take whole features,
//! never parts of the rows, so every sum, and therefore the model, is the same bit for bit on any number of
//! threads.

use causeway_models::{GbdtModel, Node, Objective, Tree, sigmoid};
use rayon::prelude::*;
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
    /// Maximum leaves per tree; `None` grows every leaf the depth and gain allow.
    pub max_leaves: Option<usize>,
    /// Minimum hessian sum in a child.
    pub min_child_weight: f64,
    /// Minimum rows in a child (approximately, from the hessian, as LightGBM's
    /// `min_data_in_leaf` counts them; exact for unweighted regression).
    pub min_child_rows: f64,
    /// L2 regularization of leaf values.
    pub lambda: f64,
    /// Minimum gain for a split.
    pub min_split_gain: f64,
    /// Maximum bins per numeric feature (2..=255).
    pub bins: usize,
    /// Weight of positive examples (binary tasks); `None` weighs every row alike, as LightGBM
    /// and XGBoost do by default. `sqrt(negatives / positives)` is a common choice for rare
    /// positives when recall matters more than calibrated probabilities.
    pub scale_pos_weight: Option<f64>,
    /// Stop when validation loss has not improved for this many rounds.
    pub early_stopping_rounds: Option<usize>,
    /// Split categorical features on sets of categories; when false their codes split as numbers.
    pub native_categorical: bool,
    /// Added to each category's hessian when categories are ordered for a set split, so rare
    /// categories do not sort to the ends on noise.
    pub categorical_smoothing: f64,
    /// After early stopping chose the rounds on the validation rows, grow the trees again on
    /// every training row (validation rows included) for that many rounds.
    pub refit: bool,
    /// Extra L2 on the leaves of categorical splits (LightGBM's `cat_l2`).
    pub categorical_l2: f64,
    /// Each side of a categorical split holds at least this many rows (approximately; like
    /// LightGBM's `min_data_per_group`, which defaults to 100, but measured better here at 20).
    pub min_category_side_rows: f64,
    /// A categorical split sends at most this many categories one way (LightGBM's
    /// `max_cat_threshold`).
    pub max_categories_per_split: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            rounds: 200,
            learning_rate: 0.1,
            max_depth: 5,
            max_leaves: None,
            min_child_weight: 1.0,
            min_child_rows: 20.0,
            lambda: 1.0,
            min_split_gain: 0.0,
            bins: 255,
            scale_pos_weight: None,
            early_stopping_rounds: Some(20),
            native_categorical: true,
            categorical_smoothing: 10.0,
            refit: true,
            categorical_l2: 10.0,
            min_category_side_rows: 20.0,
            max_categories_per_split: 32,
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

/// Histogram slots per feature: one per bin value of a `u8`.
const SLOTS: usize = 256;
/// The bin of a missing value.
const MISSING_BIN: u8 = u8::MAX;
/// The bin of a categorical code too large (or invalid) to have its own bin; never sent left.
const OTHER_CATEGORY_BIN: u8 = u8::MAX - 1;
/// Values sampled per feature to place the bin boundaries.
const CUT_SAMPLE: usize = 200_000;
/// Leaves with fewer rows are summed (and partitioned) on one thread.
const PARALLEL_ROWS: usize = 4_096;
/// Features per split-finding task.
const FEATURE_BLOCK: usize = 4;
/// Rows per chunk for element-wise passes (binning, gradients).
const ROW_CHUNK: usize = 8_192;

/// How one feature's values map to bins.
enum FeatureBins {
    /// Bin `b` holds values `v` with `cuts[b - 1] <= v < cuts[b]`.
    Numeric { cuts: Vec<f64> },
    /// Bin `c` holds category code `c`; larger or invalid codes share [`OTHER_CATEGORY_BIN`].
    Categorical,
}

/// The training rows as bin numbers, one column per feature: a leaf's rows are summed and
/// partitioned feature by feature, each pass touching one column only.
struct BinnedMatrix {
    columns: Vec<Vec<u8>>,
    width: usize,
    features: Vec<FeatureBins>,
}

impl BinnedMatrix {
    fn new(rows: &[Vec<f64>], categorical: &[bool], max_bins: usize) -> Self {
        let width = rows.first().map_or(0, Vec::len);
        let max_bins = max_bins.clamp(2, 255);
        let sample_count = rows.len().min(CUT_SAMPLE);
        let features: Vec<FeatureBins> = (0..width)
            .into_par_iter()
            .map(|feature| {
                if categorical.get(feature).copied().unwrap_or(false) {
                    return FeatureBins::Categorical;
                }
                let mut values: Vec<f64> = (0..sample_count)
                    .map(|index| rows[index * rows.len() / sample_count][feature])
                    .filter(|value| !value.is_nan())
                    .collect();
                values.sort_by(f64::total_cmp);
                FeatureBins::Numeric { cuts: quantile_cuts(&values, max_bins) }
            })
            .collect();
        let columns = features
            .par_iter()
            .enumerate()
            .map(|(feature, bins)| rows.iter().map(|row| bin_of(row[feature], bins)).collect())
            .collect();
        Self { columns, width, features }
    }
}

/// Up to `max_bins - 1` boundaries placing about as many sampled values in every bin.
fn quantile_cuts(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let Some(first) = sorted.first() else { return Vec::new() };
    let mut distinct: Vec<f64> = sorted.to_vec();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.into_iter().skip(1).collect();
    }
    let mut cuts: Vec<f64> = (1..max_bins).map(|index| sorted[index * sorted.len() / max_bins]).collect();
    cuts.dedup();
    cuts.retain(|cut| cut > first);
    cuts
}

fn bin_of(value: f64, bins: &FeatureBins) -> u8 {
    if value.is_nan() {
        return MISSING_BIN;
    }
    match bins {
        FeatureBins::Numeric { cuts } => cuts.partition_point(|cut| *cut <= value) as u8,
        // Codes are read as the model reads them at prediction time (truncated; LightGBM's rule).
        FeatureBins::Categorical if value > -1.0 && value < f64::from(OTHER_CATEGORY_BIN) => value as u8,
        FeatureBins::Categorical => OTHER_CATEGORY_BIN,
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct GradientPair {
    gradient: f64,
    hessian: f64,
}

impl GradientPair {
    fn add(&mut self, other: GradientPair) {
        self.gradient += other.gradient;
        self.hessian += other.hessian;
    }

    fn minus(self, other: GradientPair) -> GradientPair {
        GradientPair { gradient: self.gradient - other.gradient, hessian: self.hessian - other.hessian }
    }
}

/// Gradient sums per feature and bin.
type Histogram = Vec<[GradientPair; SLOTS]>;

/// The sums of `rows`' gradient pairs per feature and bin. Threads take whole features, each
/// summing its feature over the rows in order, so every sum is the same on any thread count.
fn build_histogram(matrix: &BinnedMatrix, pairs: &[GradientPair], rows: &[u32]) -> Histogram {
    let mut histogram: Histogram = vec![[GradientPair::default(); SLOTS]; matrix.width];
    // The leaf's pairs gathered once, so every feature streams them in order.
    let ordered: Vec<GradientPair> = if rows.len() < PARALLEL_ROWS {
        rows.iter().map(|row| pairs[*row as usize]).collect()
    } else {
        let mut ordered = vec![GradientPair::default(); rows.len()];
        ordered.par_chunks_mut(ROW_CHUNK).zip(rows.par_chunks(ROW_CHUNK)).for_each(|(out, rows)| {
            for (slot, row) in out.iter_mut().zip(rows) {
                *slot = pairs[*row as usize];
            }
        });
        ordered
    };
    let accumulate = |(slots, column): (&mut [GradientPair; SLOTS], &Vec<u8>)| {
        for (row, pair) in rows.iter().zip(&ordered) {
            slots[usize::from(column[*row as usize])].add(*pair);
        }
    };
    if rows.len() < PARALLEL_ROWS {
        histogram.iter_mut().zip(&matrix.columns).for_each(accumulate);
    } else {
        histogram.par_iter_mut().zip(&matrix.columns).for_each(accumulate);
    }
    histogram
}

fn subtract_histogram(parent: &mut Histogram, child: &Histogram) {
    for (parent_slots, child_slots) in parent.iter_mut().zip(child) {
        for (parent_slot, child_slot) in parent_slots.iter_mut().zip(child_slots) {
            *parent_slot = parent_slot.minus(*child_slot);
        }
    }
}

/// Which bins go left at a split.
#[derive(Debug, Clone)]
enum SplitRule {
    /// Bins up to and including this one.
    Threshold(u8),
    /// These category bins.
    Categories(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Candidate {
    gain: f64,
    feature: usize,
    rule: SplitRule,
    missing_left: bool,
}

impl Candidate {
    /// A lookup from bin to side (true = left).
    fn sides(&self) -> [bool; SLOTS] {
        let mut sides = [false; SLOTS];
        match &self.rule {
            SplitRule::Threshold(last) => sides[..=usize::from(*last)].fill(true),
            SplitRule::Categories(bins) => bins.iter().for_each(|bin| sides[usize::from(*bin)] = true),
        }
        sides[usize::from(MISSING_BIN)] = self.missing_left;
        sides
    }
}

/// What the trainer minimizes, and so what its margins mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Binary log loss on 0/1 labels.
    Logistic,
    /// Multi-class log loss on class-index labels `0..classes`, one tree per class per round.
    Softmax {
        /// The number of classes.
        classes: usize,
    },
    /// Squared error on numeric labels.
    SquaredError,
}

impl Loss {
    fn outputs(self) -> usize {
        match self {
            Self::Softmax { classes } => classes,
            _ => 1,
        }
    }

    fn objective(self) -> Objective {
        match self {
            Self::Logistic => Objective::Logistic,
            Self::Softmax { classes } => Objective::Softmax { classes },
            Self::SquaredError => Objective::SquaredError,
        }
    }
}

/// Trains a binary model on encoded rows and 0/1 labels, optionally early-stopping on a
/// validation set. `categorical[f]` marks features holding category codes (see
/// [`GbdtParams::native_categorical`]).
pub fn train(
    rows: &[Vec<f64>],
    labels: &[f64],
    categorical: &[bool],
    params: &GbdtParams,
    validation: Option<(&[Vec<f64>], &[f64])>,
) -> Result<(GbdtModel, TrainingHistory)> {
    train_loss(rows, labels, categorical, params, validation, Loss::Logistic)
}

/// Trains a model minimizing `loss` (binary, multi-class or regression).
pub fn train_loss(
    rows: &[Vec<f64>],
    labels: &[f64],
    categorical: &[bool],
    params: &GbdtParams,
    validation: Option<(&[Vec<f64>], &[f64])>,
    loss: Loss,
) -> Result<(GbdtModel, TrainingHistory)> {
    let width = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || rows.len() != labels.len() {
        return Err(Error::Data(format!(
            "need as many labels as rows and at least one row (rows {}, labels {})",
            rows.len(),
            labels.len()
        )));
    }
    if rows.len() > u32::MAX as usize {
        return Err(Error::Data(format!("{} rows is more than one training set may hold", rows.len())));
    }
    if rows.iter().any(|row| row.len() != width) {
        return Err(Error::Data("rows have different widths".into()));
    }
    let (weights, base_scores) = starting_point(labels, params, loss)?;
    let outputs = loss.outputs();
    let count = rows.len();

    let categorical: Vec<bool> = (0..width)
        .map(|feature| params.native_categorical && categorical.get(feature).copied().unwrap_or(false))
        .collect();
    let matrix = BinnedMatrix::new(rows, &categorical, params.bins);
    // Margins class after class: class `c` of row `r` is `margins[c * count + r]`.
    let mut margins: Vec<f64> = base_scores.iter().flat_map(|base| std::iter::repeat_n(*base, count)).collect();
    let mut validation_margins = validation.map(|(valid_rows, _)| {
        base_scores.iter().flat_map(|base| std::iter::repeat_n(*base, valid_rows.len())).collect::<Vec<f64>>()
    });
    let mut trees = Vec::with_capacity(params.rounds * outputs);
    let mut history = TrainingHistory::default();
    let mut best = (f64::INFINITY, 0usize);
    let mut pairs = vec![GradientPair::default(); count * outputs];
    let mut grower = TreeGrower { matrix: &matrix, params, indices: Vec::new(), scratch: Vec::new() };

    for round in 0..params.rounds {
        gradients(loss, &margins, labels, &weights, &mut pairs);
        for class in 0..outputs {
            let range = class * count..(class + 1) * count;
            let tree = grower.grow(&pairs[range.clone()], &mut margins[range]);
            if let (Some((valid_rows, _)), Some(valid_margins)) = (validation, validation_margins.as_mut()) {
                let valid_count = valid_rows.len();
                valid_margins[class * valid_count..(class + 1) * valid_count]
                    .par_iter_mut()
                    .zip(valid_rows)
                    .for_each(|(margin, row)| *margin += tree.leaf_value(row));
            }
            trees.push(tree);
        }
        history.train_loss.push(mean_loss(loss, &margins, labels, &weights));
        if let (Some((_, valid_labels)), Some(valid_margins)) = (validation, validation_margins.as_ref()) {
            let value = mean_loss(loss, valid_margins, valid_labels, &vec![1.0; valid_labels.len()]);
            history.validation_loss.push(value);
            if value < best.0 - 1e-9 {
                best = (value, round + 1);
            } else if params.early_stopping_rounds.is_some_and(|patience| round + 1 - best.1 >= patience) {
                break;
            }
        }
    }
    let keep = if validation.is_some() && best.1 > 0 { best.1 } else { trees.len() / outputs.max(1) };
    trees.truncate(keep * outputs);
    history.best_rounds = keep;
    Ok((GbdtModel::with_objective(loss.objective(), base_scores, trees), history))
}

/// Row weights and the starting margins: binary models weigh positives by `scale_pos_weight`
/// and start at the weighted log-odds; multi-class models start at each class's log share;
/// regression starts at the mean. Labels the loss cannot take are refused by name.
fn starting_point(labels: &[f64], params: &GbdtParams, loss: Loss) -> Result<(Vec<f64>, Vec<f64>)> {
    match loss {
        Loss::Logistic => {
            if let Some(bad) = labels.iter().find(|label| **label != 0.0 && **label != 1.0) {
                return Err(Error::Data(format!("binary training needs labels 0 and 1, found {bad}")));
            }
            let positives = labels.iter().filter(|label| **label > 0.5).count();
            if positives == 0 || positives == labels.len() {
                return Err(Error::Data(format!(
                    "training needs both classes; found {positives} positives in {} rows",
                    labels.len()
                )));
            }
            let negatives = labels.len() - positives;
            let positive_weight = params.scale_pos_weight.unwrap_or(1.0);
            let weights = labels.iter().map(|label| if *label > 0.5 { positive_weight } else { 1.0 }).collect();
            Ok((weights, vec![(positives as f64 * positive_weight / negatives as f64).ln()]))
        }
        Loss::Softmax { classes } => {
            let mut counts = vec![0usize; classes];
            for label in labels {
                let class = *label as usize;
                if label.fract() != 0.0 || *label < 0.0 || class >= classes {
                    return Err(Error::Data(format!("class labels must be 0..{classes}, found {label}")));
                }
                counts[class] += 1;
            }
            if counts.iter().filter(|count| **count > 0).count() < 2 {
                return Err(Error::Data("multi-class training needs at least two classes in its rows".into()));
            }
            let total = labels.len() as f64;
            let bases = counts.iter().map(|count| ((*count as f64).max(0.5) / total).ln()).collect();
            Ok((vec![1.0; labels.len()], bases))
        }
        Loss::SquaredError => {
            if let Some(bad) = labels.iter().find(|label| !label.is_finite()) {
                return Err(Error::Data(format!("regression labels must be finite numbers, found {bad}")));
            }
            let mean = labels.iter().sum::<f64>() / labels.len() as f64;
            Ok((vec![1.0; labels.len()], vec![mean]))
        }
    }
}

/// Every row's gradient pair for every output (laid out like the margins), from the margins at
/// the start of the round. Element-wise in fixed chunks, so the same on any thread count.
fn gradients(loss: Loss, margins: &[f64], labels: &[f64], weights: &[f64], pairs: &mut [GradientPair]) {
    let count = labels.len();
    match loss {
        Loss::Logistic => {
            pairs.par_chunks_mut(ROW_CHUNK).zip(margins.par_chunks(ROW_CHUNK)).enumerate().for_each(
                |(chunk, (pairs, margins))| {
                    let offset = chunk * ROW_CHUNK;
                    for (index, (pair, margin)) in pairs.iter_mut().zip(margins).enumerate() {
                        let probability = sigmoid(*margin);
                        let (label, weight) = (labels[offset + index], weights[offset + index]);
                        pair.gradient = (probability - label) * weight;
                        pair.hessian = (probability * (1.0 - probability)).max(1e-12) * weight;
                    }
                },
            );
        }
        Loss::SquaredError => {
            pairs.par_chunks_mut(ROW_CHUNK).zip(margins.par_chunks(ROW_CHUNK)).enumerate().for_each(
                |(chunk, (pairs, margins))| {
                    let offset = chunk * ROW_CHUNK;
                    for (index, (pair, margin)) in pairs.iter_mut().zip(margins).enumerate() {
                        let weight = weights[offset + index];
                        pair.gradient = (margin - labels[offset + index]) * weight;
                        pair.hessian = weight;
                    }
                },
            );
        }
        Loss::Softmax { classes } => {
            // LightGBM's factor on the hessian: classes / (classes - 1).
            let factor = classes as f64 / (classes as f64 - 1.0).max(1.0);
            let rows: Vec<Vec<(f64, f64)>> = (0..count)
                .into_par_iter()
                .with_min_len(ROW_CHUNK)
                .map(|row| {
                    let mut probabilities: Vec<f64> = (0..classes).map(|class| margins[class * count + row]).collect();
                    causeway_models::linear::softmax(&mut probabilities);
                    let label = labels[row] as usize;
                    probabilities
                        .iter()
                        .enumerate()
                        .map(|(class, probability)| {
                            let target = if class == label { 1.0 } else { 0.0 };
                            (probability - target, (factor * probability * (1.0 - probability)).max(1e-12))
                        })
                        .collect()
                })
                .collect();
            for (row, classes_of_row) in rows.iter().enumerate() {
                for (class, (gradient, hessian)) in classes_of_row.iter().enumerate() {
                    let weight = weights[row];
                    pairs[class * count + row] =
                        GradientPair { gradient: gradient * weight, hessian: hessian * weight };
                }
            }
        }
    }
}

/// The mean loss at `margins` (weighted), summed in fixed chunks (the same on any number of
/// threads): log loss, multi-class log loss, or mean squared error.
fn mean_loss(loss: Loss, margins: &[f64], labels: &[f64], weights: &[f64]) -> f64 {
    let count = labels.len();
    let partials: Vec<(f64, f64)> = (0..count.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut total = 0.0;
            let mut weight_sum = 0.0;
            for row in chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(count) {
                let (label, weight) = (labels[row], weights[row]);
                let value = match loss {
                    Loss::Logistic => {
                        let probability = sigmoid(margins[row]).clamp(1e-15, 1.0 - 1e-15);
                        -(label * probability.ln() + (1.0 - label) * (1.0 - probability).ln())
                    }
                    Loss::SquaredError => (margins[row] - label).powi(2),
                    Loss::Softmax { classes } => {
                        let mut probabilities: Vec<f64> =
                            (0..classes).map(|class| margins[class * count + row]).collect();
                        causeway_models::linear::softmax(&mut probabilities);
                        -probabilities.get(label as usize).copied().unwrap_or(0.0).clamp(1e-15, 1.0).ln()
                    }
                };
                total += weight * value;
                weight_sum += weight;
            }
            (total, weight_sum)
        })
        .collect();
    let (total, weight_sum) = partials.iter().fold((0.0, 0.0), |sum, part| (sum.0 + part.0, sum.1 + part.1));
    total / weight_sum.max(f64::MIN_POSITIVE)
}

/// A leaf of the growing tree: its rows (a range of the grower's index array) and sums.
struct GrowingLeaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    total: GradientPair,
    histogram: Option<Histogram>,
    candidate: Option<Candidate>,
}

/// Grows trees on one binned matrix, reusing its row buffers between rounds.
struct TreeGrower<'a> {
    matrix: &'a BinnedMatrix,
    params: &'a GbdtParams,
    /// Row numbers, grouped so every leaf's rows are one range (ascending within it).
    indices: Vec<u32>,
    scratch: Vec<u32>,
}

impl TreeGrower<'_> {
    /// Grows one tree best-first and adds its leaf values to `margins`.
    fn grow(&mut self, pairs: &[GradientPair], margins: &mut [f64]) -> Tree {
        let params = self.params;
        self.indices.clear();
        self.indices.extend(0..pairs.len() as u32);
        let root_histogram = build_histogram(self.matrix, pairs, &self.indices);
        let mut nodes: Vec<Node> = vec![Node::Leaf { value: 0.0 }];
        let mut leaves = vec![self.leaf(0, 0, pairs.len(), 0, root_histogram)];
        let leaf_limit = params.max_leaves.unwrap_or(usize::MAX).max(1);
        while leaves.len() < leaf_limit {
            // The leaf whose split gains most (the first such leaf on ties, for determinism).
            let mut chosen: Option<(usize, f64)> = None;
            for (position, leaf) in leaves.iter().enumerate() {
                if let Some(candidate) = &leaf.candidate
                    && chosen.is_none_or(|(_, gain)| candidate.gain > gain)
                {
                    chosen = Some((position, candidate.gain));
                }
            }
            let Some((position, _)) = chosen else { break };
            let parent = leaves.swap_remove(position);
            let (Some(candidate), Some(mut parent_histogram)) = (parent.candidate, parent.histogram) else { break };
            let middle = self.partition(parent.start, parent.end, &candidate);
            let left = nodes.len();
            nodes.push(Node::Leaf { value: 0.0 });
            nodes.push(Node::Leaf { value: 0.0 });
            nodes[parent.node] = self.split_node(&candidate, left as u32);
            // Build the smaller child's histogram; the larger one's is the parent's minus it.
            let left_smaller = middle - parent.start <= parent.end - middle;
            let small_range = if left_smaller { parent.start..middle } else { middle..parent.end };
            let small_histogram = build_histogram(self.matrix, pairs, &self.indices[small_range]);
            subtract_histogram(&mut parent_histogram, &small_histogram);
            let (left_histogram, right_histogram) =
                if left_smaller { (small_histogram, parent_histogram) } else { (parent_histogram, small_histogram) };
            leaves.push(self.leaf(left, parent.start, middle, parent.depth + 1, left_histogram));
            leaves.push(self.leaf(left + 1, middle, parent.end, parent.depth + 1, right_histogram));
        }
        for leaf in leaves {
            let value = -leaf.total.gradient / (leaf.total.hessian + params.lambda) * params.learning_rate;
            nodes[leaf.node] = Node::Leaf { value };
            for row in &self.indices[leaf.start..leaf.end] {
                margins[*row as usize] += value;
            }
        }
        Tree { nodes }
    }

    /// A leaf with its best split, keeping the histogram only while the leaf may still split.
    fn leaf(&self, node: usize, start: usize, end: usize, depth: usize, histogram: Histogram) -> GrowingLeaf {
        let total = histogram.first().map_or(GradientPair::default(), |slots| {
            slots.iter().fold(GradientPair::default(), |mut sum, slot| {
                sum.add(*slot);
                sum
            })
        });
        let candidate = if depth < self.params.max_depth && end - start >= 2 {
            best_split(self.matrix, &histogram, total, end - start, self.params)
        } else {
            None
        };
        let histogram = candidate.is_some().then_some(histogram);
        GrowingLeaf { node, start, end, depth, total, histogram, candidate }
    }

    /// Reorders `indices[start..end]` so the rows going left come first (both sides keep their
    /// order); returns where the right side starts.
    fn partition(&mut self, start: usize, end: usize, candidate: &Candidate) -> usize {
        let sides = candidate.sides();
        let column = &self.matrix.columns[candidate.feature];
        let goes_left = |row: u32| sides[usize::from(column[row as usize])];
        let range = &mut self.indices[start..end];
        if range.len() <= PARALLEL_ROWS {
            self.scratch.clear();
            let mut write = 0;
            for read in 0..range.len() {
                let row = range[read];
                if goes_left(row) {
                    range[write] = row;
                    write += 1;
                } else {
                    self.scratch.push(row);
                }
            }
            range[write..].copy_from_slice(&self.scratch);
            return start + write;
        }
        // Each chunk splits its rows into both sides; the sides are then laid out chunk by chunk.
        let parts: Vec<(Vec<u32>, Vec<u32>)> = range
            .par_chunks(PARALLEL_ROWS)
            .map(|chunk| {
                let mut sides = (Vec::with_capacity(chunk.len()), Vec::with_capacity(chunk.len()));
                for row in chunk {
                    if goes_left(*row) { sides.0.push(*row) } else { sides.1.push(*row) }
                }
                sides
            })
            .collect();
        let mut write = 0;
        for (left, _) in &parts {
            range[write..write + left.len()].copy_from_slice(left);
            write += left.len();
        }
        let middle = write;
        for (_, right) in &parts {
            range[write..write + right.len()].copy_from_slice(right);
            write += right.len();
        }
        start + middle
    }

    /// The model node for a split whose children are `left` and `left + 1`.
    fn split_node(&self, candidate: &Candidate, left: u32) -> Node {
        let (feature, right, missing_left) = (candidate.feature as u32, left + 1, candidate.missing_left);
        match &candidate.rule {
            SplitRule::Threshold(bin) => {
                let threshold = match &self.matrix.features[candidate.feature] {
                    FeatureBins::Numeric { cuts } => cuts.get(usize::from(*bin)).copied(),
                    FeatureBins::Categorical => None,
                };
                Node::Split { feature, threshold: threshold.unwrap_or(f64::INFINITY), left, right, missing_left }
            }
            SplitRule::Categories(codes) => {
                let words = codes.iter().map(|code| usize::from(*code) / 32 + 1).max().unwrap_or(0);
                let mut categories = vec![0_u32; words];
                for code in codes {
                    categories[usize::from(*code) / 32] |= 1 << (code % 32);
                }
                Node::Categorical { feature, categories, left, right, missing_left }
            }
        }
    }
}

/// The best split of a leaf over all features, if any gains more than `min_split_gain` (the
/// first feature's on ties; features are scored in parallel).
fn best_split(
    matrix: &BinnedMatrix,
    histogram: &Histogram,
    total: GradientPair,
    rows: usize,
    params: &GbdtParams,
) -> Option<Candidate> {
    let per_feature: Vec<Option<Candidate>> = histogram
        .par_iter()
        .zip(&matrix.features)
        .enumerate()
        .with_min_len(FEATURE_BLOCK)
        .map(|(feature, (slots, bins))| best_split_on(feature, slots, bins, total, rows, params))
        .collect();
    per_feature.into_iter().flatten().fold(None, |best: Option<Candidate>, candidate| match best {
        Some(current) if current.gain >= candidate.gain => Some(current),
        _ => Some(candidate),
    })
}

/// The best split on one feature's histogram.
fn best_split_on(
    feature: usize,
    slots: &[GradientPair; SLOTS],
    bins: &FeatureBins,
    total: GradientPair,
    rows: usize,
    params: &GbdtParams,
) -> Option<Candidate> {
    // Categorical splits carry extra L2, as LightGBM's `cat_l2` does: a set of categories fits
    // the training rows more easily than a threshold does.
    let lambda = match bins {
        FeatureBins::Categorical => params.lambda + params.categorical_l2,
        FeatureBins::Numeric { .. } => params.lambda,
    };
    // Rows per unit of hessian in this leaf: turns a bin's hessian into an approximate row count
    // (LightGBM's `cnt_factor`), so categorical limits can speak in rows.
    let rows_per_hessian = rows as f64 / total.hessian.max(f64::MIN_POSITIVE);
    let approximate_rows = |pair: GradientPair| pair.hessian * rows_per_hessian;
    let parent = total.gradient * total.gradient / (total.hessian + lambda);
    let missing = slots[usize::from(MISSING_BIN)];
    let directions: &[bool] = if missing.hessian > 0.0 { &[false, true] } else { &[false] };
    // The best (gain, position in the scan, missing_left) so far; the first wins ties.
    let mut best: Option<(f64, usize, bool)> = None;
    let categorical = matches!(bins, FeatureBins::Categorical);
    let mut scan = |position: usize, left: GradientPair| {
        for &missing_left in directions {
            let mut left_side = left;
            if missing_left {
                left_side.add(missing);
            }
            let right_side = total.minus(left_side);
            if left_side.hessian < params.min_child_weight
                || right_side.hessian < params.min_child_weight
                || approximate_rows(left_side) < params.min_child_rows
                || approximate_rows(right_side) < params.min_child_rows
            {
                continue;
            }
            if categorical
                && (approximate_rows(left_side) < params.min_category_side_rows
                    || approximate_rows(right_side) < params.min_category_side_rows)
            {
                continue;
            }
            let gain = left_side.gradient * left_side.gradient / (left_side.hessian + lambda)
                + right_side.gradient * right_side.gradient / (right_side.hessian + lambda)
                - parent;
            if gain > params.min_split_gain && best.is_none_or(|(current, _, _)| gain > current) {
                best = Some((gain, position, missing_left));
            }
        }
    };
    match bins {
        FeatureBins::Numeric { cuts } => {
            let mut left = GradientPair::default();
            for (bin, slot) in slots.iter().enumerate().take(cuts.len()) {
                if bin > 0 && slot.hessian == 0.0 && slot.gradient == 0.0 {
                    // An empty bin moves nothing across: the previous threshold already scored it.
                    continue;
                }
                left.add(*slot);
                scan(bin, left);
            }
            let (gain, bin, missing_left) = best?;
            Some(Candidate { gain, feature, rule: SplitRule::Threshold(bin as u8), missing_left })
        }
        FeatureBins::Categorical => {
            // Categories ordered by smoothed mean gradient; every prefix of the order, from either
            // end, is a candidate left set. The shared "other" bin always goes right.
            // Categories with fewer (approximate) rows than the smoothing are too rare to order by
            // their statistics and stay on the right with the unseen ones, as in LightGBM.
            let smoothing = params.categorical_smoothing.max(0.0);
            let mut order: Vec<(u8, f64)> = slots[..usize::from(OTHER_CATEGORY_BIN)]
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.hessian > 0.0 && approximate_rows(**slot) >= smoothing)
                .map(|(bin, slot)| (bin as u8, slot.gradient / (slot.hessian + smoothing)))
                .collect();
            order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let count = order.len();
            let largest_set = params.max_categories_per_split.max(1).min(count.div_ceil(2).max(1));
            // Positions 0..count take ascending prefixes, count..2*count descending ones.
            for descending in [false, true] {
                let mut left = GradientPair::default();
                for taken in 1..=largest_set.min(count) {
                    let index = if descending { count - taken } else { taken - 1 };
                    left.add(slots[usize::from(order[index].0)]);
                    scan(usize::from(descending) * count + taken - 1, left);
                }
            }
            let (gain, position, missing_left) = best?;
            let taken = position % count.max(1) + 1;
            let mut codes: Vec<u8> = if position < count {
                order[..taken].iter().map(|(bin, _)| *bin).collect()
            } else {
                order[count - taken..].iter().map(|(bin, _)| *bin).collect()
            };
            codes.sort_unstable();
            Some(Candidate { gain, feature, rule: SplitRule::Categories(codes), missing_left })
        }
    }
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
        let (model, history) = train(&rows, &labels, &[], &params, Some((&valid_rows, &valid_labels)))?;
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
        let (again, _) = train(&rows, &labels, &[], &params, Some((&valid_rows, &valid_labels)))?;
        assert_eq!(serde_json::to_string(&model).ok(), serde_json::to_string(&again).ok());
        Ok(())
    }

    /// Category codes 0..12 (plus missing); codes 1, 4, 7 and 10 are mostly positive, and a
    /// numeric feature adds a little signal.
    fn categorical_dataset(seed: u64, count: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = SeededRng::new(seed);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..count {
            let code = (rng.range(0.0, 12.0) as usize).min(11);
            let numeric = rng.range(-1.0, 1.0);
            let positive = [1, 4, 7, 10].contains(&code);
            let label = if rng.chance(0.85 + 0.1 * numeric.abs()) { positive } else { !positive };
            rows.push(vec![if rng.chance(0.05) { f64::NAN } else { code as f64 }, numeric]);
            labels.push(f64::from(u8::from(label)));
        }
        (rows, labels)
    }

    #[test]
    fn splits_categories_on_sets() -> Result<()> {
        let (rows, labels) = categorical_dataset(3, 6_000);
        let (valid_rows, valid_labels) = categorical_dataset(4, 3_000);
        let stump = GbdtParams { rounds: 1, max_depth: 1, learning_rate: 1.0, ..GbdtParams::default() };
        let (model, _) = train(&rows, &labels, &[true, false], &stump, None)?;
        // One split sends exactly the positive categories left.
        match &model.trees[0].nodes[0] {
            Node::Categorical { feature: 0, categories, .. } => {
                assert_eq!(categories, &vec![(1 << 1) | (1 << 4) | (1 << 7) | (1 << 10)]);
            }
            other => panic!("expected a categorical root, got {other:?}"),
        }
        let native_auc = roc_auc(&model.predict_rows(&valid_rows), &valid_labels);
        // Codes split as numbers cannot isolate the set with one split.
        let numeric = GbdtParams { native_categorical: false, ..stump };
        let (numeric_model, _) = train(&rows, &labels, &[true, false], &numeric, None)?;
        let numeric_auc = roc_auc(&numeric_model.predict_rows(&valid_rows), &valid_labels);
        assert!(native_auc > 0.8 && native_auc > numeric_auc + 0.1, "native {native_auc}, numeric {numeric_auc}");

        // Deeper models: the compiled engine scores categorical splits as the reference does,
        // including unseen codes, negative codes and missing values.
        let params = GbdtParams { rounds: 20, max_depth: 3, ..GbdtParams::default() };
        let (model, _) = train(&rows, &labels, &[true, false], &params, None)?;
        let mut probes = valid_rows.clone();
        probes.extend([vec![300.0, 0.5], vec![-0.5, 0.1], vec![-3.0, 0.1], vec![4.7, f64::NAN], vec![f64::NAN, 0.9]]);
        let scores = model.predict_rows(&probes);
        for (row, score) in probes.iter().zip(&scores) {
            assert_eq!(score.to_bits(), sigmoid(model.margin(row)).to_bits(), "row {row:?}");
        }
        Ok(())
    }

    #[test]
    fn same_model_on_any_number_of_threads_and_leaf_limits_hold() -> Result<()> {
        // More rows than one histogram chunk, so the chunked sums are exercised.
        let (rows, labels) = dataset(5, 3 * PARALLEL_ROWS + 123);
        let params = GbdtParams { rounds: 8, max_depth: 6, max_leaves: Some(9), ..GbdtParams::default() };
        let train_on = |threads: usize| -> Result<String> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|error| Error::Data(error.to_string()))?;
            let (model, _) = pool.install(|| train(&rows, &labels, &[], &params, None))?;
            for tree in &model.trees {
                let leaves = tree.nodes.iter().filter(|node| matches!(node, Node::Leaf { .. })).count();
                assert!(leaves <= 9, "{leaves} leaves");
            }
            serde_json::to_string(&model).map_err(|error| Error::Data(error.to_string()))
        };
        assert_eq!(train_on(1)?, train_on(2)?);
        assert_eq!(train_on(2)?, train_on(3)?);
        Ok(())
    }

    /// Three classes by the angle of (a, b), and a number that is a bumpy function of a and b.
    fn multi_task_dataset(seed: u64, count: usize) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let mut rng = SeededRng::new(seed);
        let (mut rows, mut classes, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            let (a, b) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
            let angle = b.atan2(a) + std::f64::consts::PI;
            let class = ((angle / (2.0 * std::f64::consts::PI / 3.0)) as usize).min(2);
            let class = if rng.chance(0.1) { (class + 1) % 3 } else { class };
            rows.push(vec![a, if rng.chance(0.05) { f64::NAN } else { b }, rng.normal()]);
            classes.push(class as f64);
            values.push(3.0 * (2.0 * a).sin() + b * b * 4.0 + 0.3 * rng.normal());
        }
        (rows, classes, values)
    }

    #[test]
    fn softmax_and_squared_error_learn_and_score_as_the_reference() -> Result<()> {
        let (rows, classes, values) = multi_task_dataset(8, 6_000);
        let (valid_rows, valid_classes, valid_values) = multi_task_dataset(9, 2_000);
        let params = GbdtParams { rounds: 80, max_depth: 4, ..GbdtParams::default() };
        let softmax = Loss::Softmax { classes: 3 };
        let (model, history) = train_loss(&rows, &classes, &[], &params, Some((&valid_rows, &valid_classes)), softmax)?;
        assert_eq!(model.trees.len(), history.best_rounds * 3, "one tree per class per round");
        let outputs = model.predict_outputs(&valid_rows);
        for (row, probabilities) in valid_rows.iter().zip(outputs.chunks(3)) {
            let reference = model.reference_outputs(row);
            for (fast, slow) in probabilities.iter().zip(&reference) {
                assert!((fast - slow).abs() < 1e-12, "{probabilities:?} vs {reference:?}");
            }
        }
        let names: Vec<String> = ["a", "b", "c"].iter().map(|name| name.to_string()).collect();
        let accuracy = causeway_models::metrics::multiclass_metrics(&outputs, &names, &valid_classes)["accuracy"];
        assert!(accuracy > 0.8, "accuracy {accuracy}");

        let (regressor, _) =
            train_loss(&rows, &values, &[], &params, Some((&valid_rows, &valid_values)), Loss::SquaredError)?;
        let predictions = regressor.predict_outputs(&valid_rows);
        let metrics = causeway_models::metrics::regression_metrics(&predictions, &valid_values);
        assert!(metrics["r2"] > 0.85, "{metrics:?}");
        for (row, prediction) in valid_rows.iter().zip(&predictions) {
            assert_eq!(prediction.to_bits(), regressor.margin(row).to_bits());
        }
        Ok(())
    }

    #[test]
    fn every_loss_gives_the_same_model_on_any_number_of_threads() -> Result<()> {
        let (rows, classes, values) = multi_task_dataset(10, 2 * PARALLEL_ROWS + 77);
        let params = GbdtParams { rounds: 5, max_depth: 5, ..GbdtParams::default() };
        for (labels, loss) in [(&classes, Loss::Softmax { classes: 3 }), (&values, Loss::SquaredError)] {
            let train_on = |threads: usize| -> Result<String> {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .map_err(|error| Error::Data(error.to_string()))?;
                let (model, _) = pool.install(|| train_loss(&rows, labels, &[], &params, None, loss))?;
                serde_json::to_string(&model).map_err(|error| Error::Data(error.to_string()))
            };
            assert_eq!(train_on(1)?, train_on(2)?, "{loss:?}");
        }
        Ok(())
    }

    #[test]
    fn labels_a_loss_cannot_take_are_named() {
        let rows = vec![vec![1.0], vec![2.0], vec![3.0]];
        let params = GbdtParams { rounds: 2, ..GbdtParams::default() };
        let error = |labels: &[f64], loss| train_loss(&rows, labels, &[], &params, None, loss).unwrap_err().to_string();
        assert!(error(&[0.0, 1.0, 2.0], Loss::Logistic).contains("labels 0 and 1, found 2"));
        assert!(error(&[0.0, 1.0, 3.0], Loss::Softmax { classes: 3 }).contains("0..3, found 3"));
        assert!(error(&[0.0, f64::NAN, 3.0], Loss::SquaredError).contains("finite numbers, found NaN"));
    }

    #[test]
    fn refuses_one_class_and_ragged_input() {
        assert!(train(&[vec![1.0], vec![2.0]], &[0.0, 0.0], &[], &GbdtParams::default(), None).is_err());
        assert!(train(&[vec![1.0], vec![2.0, 3.0]], &[0.0, 1.0], &[], &GbdtParams::default(), None).is_err());
    }
}
