//! Gradient-boosted decision trees for binary classification, stored as flat node arrays.

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
        /// Split threshold.
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
        /// The leaf's contribution (log-odds).
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

/// A boosted ensemble: probability = sigmoid(base_score + Σ tree leaf values), summed from the
/// base score tree by tree. Scored by the compiled engine shared with imported models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    /// The starting margin (log-odds).
    pub base_score: f64,
    /// The trees.
    pub trees: Vec<Tree>,
    /// The compiled form, made on first use.
    #[serde(skip)]
    engine: CompiledCache,
}

impl GbdtModel {
    /// A model from its base score and trees.
    pub fn new(base_score: f64, trees: Vec<Tree>) -> Self {
        Self { base_score, trees, engine: CompiledCache::default() }
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
            .collect();
        TreeEnsemble {
            features: width,
            outputs: 1,
            base_margins: vec![self.base_score],
            trees,
            precision: Precision::Float64,
            average_over: None,
            transform: Transform::Sigmoid { scale: 1.0 },
            source: "causeway gbdt".into(),
            compiled: CompiledCache::default(),
        }
    }

    /// The compiled engine for rows of `width` features, made on first use.
    fn compiled(&self, width: usize) -> Option<&CompiledEnsemble> {
        self.engine.get_or_compile(|| CompiledEnsemble::new(&self.to_ensemble(width)).ok())
    }
    /// The raw margin (log-odds) for one row, by the reference traversal.
    pub fn margin(&self, row: &[f64]) -> f64 {
        self.trees.iter().fold(self.base_score, |margin, tree| margin + tree.leaf_value(row))
    }

    /// Checks every tree against an input width.
    pub fn validate(&self, width: usize) -> Result<()> {
        self.trees.iter().enumerate().try_for_each(|(index, tree)| tree.validate(width, index))
    }
}

impl Predictor for GbdtModel {
    fn predict_row(&self, row: &[f64]) -> f64 {
        match self.compiled(row.len()).filter(|engine| engine.features() == row.len()) {
            Some(engine) => engine.predict_row(row)[0],
            None => crate::sigmoid(self.margin(row)),
        }
    }

    fn predict_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let width = rows.first().map_or(0, Vec::len);
        self.compiled(width)
            .and_then(|engine| engine.score_rows(rows))
            .unwrap_or_else(|| rows.iter().map(|row| crate::sigmoid(self.margin(row))).collect())
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
