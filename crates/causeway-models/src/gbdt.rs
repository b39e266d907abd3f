//! Gradient-boosted decision trees, stored as flat node arrays: binary classification (a sigmoid
//! on the margin), multi-class classification (one tree per class per round, a softmax across
//! the classes' margins) and regression (the margin is the prediction).

use serde::{Deserialize, Serialize};

use crate::Predictor;
use crate::compiled::CompiledEnsemble;
use crate::ensemble::{
    CategoryCodes, Comparison, CompiledCache, EnsembleNode, EnsembleTree, Missing, Precision, Transform, TreeEnsemble,
};
use crate::error::{Error, Result};

/// One node of a tree: a split or a leaf. Children are indices into the tree's node array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    /// Go left when `row[feature] < threshold`, right otherwise; missing values go left when
    /// `missing_left`.
    Split {
        /// Feature index.
        feature: u32,
        /// Split threshold (may be infinite).
        #[serde(with = "crate::float_text")]
        threshold: f64,
        /// Left child index.
        left: u32,
        /// Right child index.
        right: u32,
        /// Where missing values go.
        missing_left: bool,
    },
    /// Go left when `row[feature]` is a category code in `categories` (a bitset: code `c` is bit
    /// `c % 32` of word `c / 32`; codes are read as LightGBM reads them, truncated), right for any
    /// other code; missing values go left when `missing_left`.
    Categorical {
        /// Feature index.
        feature: u32,
        /// The codes that go left.
        categories: Vec<u32>,
        /// Left child index.
        left: u32,
        /// Right child index.
        right: u32,
        /// Where missing values go.
        missing_left: bool,
    },
    /// A leaf adding `value` to the margin.
    Leaf {
        /// The leaf's contribution (log-odds, or part of the prediction).
        #[serde(with = "crate::float_text")]
        value: f64,
    },
}

/// One tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes, root first.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value this tree gives `row`.
    pub fn leaf_value(&self, row: &[f64]) -> f64 {
        let mut index = 0usize;
        // A valid tree reaches a leaf in at most `nodes.len()` steps; the bound guards bad input.
        for _ in 0..=self.nodes.len() {
            match self.nodes.get(index) {
                Some(Node::Leaf { value }) => return *value,
                Some(Node::Split { feature, threshold, left, right, missing_left }) => {
                    let value = row.get(*feature as usize).copied().unwrap_or(f64::NAN);
                    let go_left = if value.is_nan() { *missing_left } else { value < *threshold };
                    index = if go_left { *left } else { *right } as usize;
                }
                Some(Node::Categorical { feature, categories, left, right, missing_left }) => {
                    let value = row.get(*feature as usize).copied().unwrap_or(f64::NAN);
                    let go_left =
                        if value.is_nan() { *missing_left } else { CategoryCodes::Lightgbm.in_set(value, categories) };
                    index = if go_left { *left } else { *right } as usize;
                }
                None => return 0.0,
            }
        }
        0.0
    }

    fn validate(&self, width: usize, tree: usize) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::Invalid(format!("tree {tree} has no nodes")));
        }
        for (index, node) in self.nodes.iter().enumerate() {
            let (feature, left, right) = match node {
                Node::Leaf { .. } => continue,
                Node::Split { feature, left, right, threshold, .. } => {
                    if threshold.is_nan() {
                        return Err(Error::Invalid(format!("tree {tree} node {index} has a NaN threshold")));
                    }
                    (feature, left, right)
                }
                Node::Categorical { feature, left, right, .. } => (feature, left, right),
            };
            if *feature as usize >= width {
                return Err(Error::Invalid(format!("tree {tree} node {index} uses feature {feature} of {width}")));
            }
            if *left as usize <= index
                || *right as usize <= index
                || *left as usize >= self.nodes.len()
                || *right as usize >= self.nodes.len()
            {
                return Err(Error::Invalid(format!("tree {tree} node {index} has children out of order or range")));
            }
        }
        Ok(())
    }
}

/// What the margins of a [`GbdtModel`] mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Objective {
    /// Log loss: the probability of the positive class is `sigmoid(margin)`.
    #[default]
    Logistic,
    /// Multi-class log loss: tree `t` adds to class `t % classes`; the classes' probabilities
    /// are the softmax of their margins.
    Softmax {
        /// The number of classes.
        classes: usize,
    },
    /// Squared error: the margin is the prediction.
    SquaredError,
}

impl Objective {
    /// Values per row.
    pub fn outputs(self) -> usize {
        match self {
            Self::Softmax { classes } => classes,
            _ => 1,
        }
    }
}

/// A boosted ensemble: margin = base score + Σ tree leaf values, summed tree by tree, turned into
/// outputs by the [`Objective`] (for binary models: probability = sigmoid(margin)). Scored by the
/// compiled engine shared with imported models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    /// The starting margin (log-odds for binary models, the mean for regression).
    pub base_score: f64,
    /// The trees.
    pub trees: Vec<Tree>,
    /// What the margins mean (binary log loss when absent, as artifacts before multi-class had).
    #[serde(default)]
    pub objective: Objective,
    /// The starting margin of each class (softmax models only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_scores: Vec<f64>,
    /// The compiled form, made on first use.
    #[serde(skip)]
    engine: CompiledCache,
}

impl GbdtModel {
    /// A binary model from its base score and trees.
    pub fn new(base_score: f64, trees: Vec<Tree>) -> Self {
        Self::with_objective(Objective::Logistic, vec![base_score], trees)
    }

    /// A model of any objective: one base score per output (one, or one per class), and trees
    /// (for softmax, round after round, one tree per class in class order).
    pub fn with_objective(objective: Objective, base_scores: Vec<f64>, trees: Vec<Tree>) -> Self {
        let base_score = base_scores.first().copied().unwrap_or(0.0);
        let base_scores = if objective.outputs() > 1 { base_scores } else { Vec::new() };
        Self { base_score, trees, objective, base_scores, engine: CompiledCache::default() }
    }

    /// Values per row: 1, or the class count.
    pub fn outputs(&self) -> usize {
        self.objective.outputs()
    }

    /// Every output of every row, row after row: class probabilities, the positive class's
    /// probability, or the prediction.
    pub fn predict_outputs(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let width = rows.first().map_or(0, Vec::len);
        self.compiled(width)
            .and_then(|engine| engine.score_rows(rows))
            .unwrap_or_else(|| rows.iter().flat_map(|row| self.reference_outputs(row)).collect())
    }

    /// One row's outputs by the reference traversal.
    pub fn reference_outputs(&self, row: &[f64]) -> Vec<f64> {
        match self.objective {
            Objective::Logistic => vec![crate::sigmoid(self.margin(row))],
            Objective::SquaredError => vec![self.margin(row)],
            Objective::Softmax { classes } => {
                let mut margins: Vec<f64> =
                    (0..classes).map(|class| self.base_scores.get(class).copied().unwrap_or(0.0)).collect();
                for (index, tree) in self.trees.iter().enumerate() {
                    margins[index % classes.max(1)] += tree.leaf_value(row);
                }
                crate::linear::softmax(&mut margins);
                margins
            }
        }
    }

    /// The same model as a [`TreeEnsemble`] of `width` inputs (`f64`, `x < t`, NaN by the
    /// learned direction, a sigmoid on the margin).
    pub fn to_ensemble(&self, width: usize) -> TreeEnsemble {
        let trees = self
            .trees
            .iter()
            .map(|tree| EnsembleTree {
                nodes: tree
                    .nodes
                    .iter()
                    .map(|node| match node {
                        Node::Leaf { value } => EnsembleNode::Leaf { value: *value },
                        Node::Split { feature, threshold, left, right, missing_left } => EnsembleNode::Numeric {
                            feature: *feature,
                            threshold: *threshold,
                            comparison: Comparison::Less,
                            missing: Missing::Nan,
                            default_left: *missing_left,
                            left: *left,
                            right: *right,
                        },
                        Node::Categorical { feature, categories, left, right, missing_left } => {
                            EnsembleNode::Categorical {
                                feature: *feature,
                                categories: categories.clone(),
                                codes: CategoryCodes::Lightgbm,
                                in_set_left: true,
                                default_left: *missing_left,
                                left: *left,
                                right: *right,
                            }
                        }
                    })
                    .collect(),
                group: 0,
                weight: 1.0,
            })
            .collect::<Vec<_>>();
        let outputs = self.outputs();
        let trees = trees
            .into_iter()
            .enumerate()
            .map(|(index, tree)| EnsembleTree { group: (index % outputs.max(1)) as u32, ..tree })
            .collect();
        let (base_margins, transform) = match self.objective {
            Objective::Logistic => (vec![self.base_score], Transform::Sigmoid { scale: 1.0 }),
            Objective::SquaredError => (vec![self.base_score], Transform::Identity),
            Objective::Softmax { classes } => (
                (0..classes).map(|class| self.base_scores.get(class).copied().unwrap_or(0.0)).collect(),
                Transform::Softmax,
            ),
        };
        TreeEnsemble {
            features: width,
            outputs,
            base_margins,
            trees,
            precision: Precision::Float64,
            average_over: None,
            transform,
            source: "causeway gbdt".into(),
            compiled: CompiledCache::default(),
        }
    }

    /// The compiled engine for rows of `width` features, made on first use.
    fn compiled(&self, width: usize) -> Option<&CompiledEnsemble> {
        self.engine.get_or_compile(|| CompiledEnsemble::new(&self.to_ensemble(width)).ok())
    }
    /// The raw margin for one row of a one-output model (log-odds, or the prediction), by the
    /// reference traversal.
    pub fn margin(&self, row: &[f64]) -> f64 {
        self.trees.iter().fold(self.base_score, |margin, tree| margin + tree.leaf_value(row))
    }

    /// Checks every tree against an input width, and the objective against the base scores.
    pub fn validate(&self, width: usize) -> Result<()> {
        if let Objective::Softmax { classes } = self.objective
            && (classes < 2 || self.base_scores.len() != classes)
        {
            return Err(Error::Invalid(format!(
                "a softmax model of {classes} classes needs {classes} base scores, has {}",
                self.base_scores.len()
            )));
        }
        self.trees.iter().enumerate().try_for_each(|(index, tree)| tree.validate(width, index))
    }
}

impl Predictor for GbdtModel {
    /// The positive class's probability, the prediction, or (multi-class) the most likely
    /// class's probability.
    fn predict_row(&self, row: &[f64]) -> f64 {
        let outputs = match self.compiled(row.len()).filter(|engine| engine.features() == row.len()) {
            Some(engine) => engine.predict_row(row),
            None => self.reference_outputs(row),
        };
        outputs.iter().copied().fold(f64::NAN, f64::max)
    }

    fn predict_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let outputs = self.outputs().max(1);
        let all = self.predict_outputs(rows);
        if outputs == 1 {
            return all;
        }
        all.chunks(outputs).map(|classes| classes.iter().copied().fold(f64::NAN, f64::max)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump(threshold: f64, missing_left: bool) -> Tree {
        Tree {
            nodes: vec![
                Node::Split { feature: 0, threshold, left: 1, right: 2, missing_left },
                Node::Leaf { value: -1.0 },
                Node::Leaf { value: 1.0 },
            ],
        }
    }

    #[test]
    fn routes_by_threshold_and_missing_direction() {
        let model = GbdtModel::new(0.5, vec![stump(2.0, true), stump(5.0, false)]);
        assert_eq!(model.margin(&[1.0]), 0.5 - 2.0);
        assert_eq!(model.margin(&[3.0]), 0.5);
        assert_eq!(model.margin(&[5.0]), 2.5);
        assert_eq!(model.margin(&[f64::NAN]), 0.5);
        assert!((model.predict_row(&[5.0]) - crate::sigmoid(2.5)).abs() < 1e-15);
    }

    #[test]
    fn rejects_out_of_range_features_and_cycles() {
        let model = GbdtModel::new(0.0, vec![stump(1.0, true)]);
        assert!(model.validate(1).is_ok());
        assert!(model.validate(0).is_err());
        let cyclic =
            Tree { nodes: vec![Node::Split { feature: 0, threshold: 1.0, left: 0, right: 0, missing_left: true }] };
        assert!(GbdtModel::new(0.0, vec![cyclic]).validate(1).is_err());
    }
}
