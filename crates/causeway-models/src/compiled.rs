//! The fast tree engine: a [`TreeEnsemble`] laid out for scoring. Every tree's nodes sit in one
//! array in breadth-first order with siblings adjacent (the right child is `left + 1`), 16 bytes a
//! node (threshold or leaf value, feature and flags, left child); rows are scored in blocks, tree
//! by tree, so a tree stays in cache while a block of rows walks it; blocks go to threads.
//!
//! It computes exactly what [`TreeEnsemble::predict`] computes (same comparisons, same summation
//! order and precision): categorical splits and LightGBM's zero-as-missing take a slower path
//! through the reference node, everything else the fast one.

use rayon::prelude::*;

use crate::ensemble::{Comparison, EnsembleNode, Missing, Precision, TreeEnsemble};
use crate::error::{Error, Result};

/// Rows scored together against each tree.
const BLOCK_ROWS: usize = 64;
/// Trees one row walks side by side when scored alone.
const TREES_TOGETHER: usize = 16;

/// The low 24 bits of `meta` hold the feature; the high 8 the flags below.
const FEATURE_MASK: u32 = (1 << 24) - 1;
const LEAF: u32 = 1 << 24;
const DEFAULT_LEFT: u32 = 1 << 25;
const NAN_IS_ZERO: u32 = 1 << 26;
/// Decided by the reference node in `special` (categorical, zero-as-missing).
const SPECIAL: u32 = 1 << 27;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// The threshold, or the leaf value (times the tree's weight for `f64` ensembles).
    value: f64,
    /// Feature and flags.
    meta: u32,
    /// The left child (the right is `left + 1`); for a special node, its index in `special`.
    left: u32,
}

/// A special node: the reference node and the compiled index of its left child.
#[derive(Debug, Clone, PartialEq)]
struct Special {
    node: EnsembleNode,
    compiled_left: u32,
}

/// A [`TreeEnsemble`] compiled for scoring.
#[derive(Debug, Clone)]
pub struct CompiledEnsemble {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Each tree's depth: steps from the root to its deepest leaf.
    depths: Vec<u32>,
    groups: Vec<u32>,
    /// Per-tree leaf factors for `f32` ensembles (DART), applied the way XGBoost does.
    weights: Vec<f32>,
    special: Vec<Special>,
    /// Every numeric split compares `x <= t` (LightGBM) rather than `x < t` (XGBoost).
    inclusive: bool,
    reference: TreeEnsemble,
}

impl CompiledEnsemble {
    /// Compiles a validated ensemble.
    pub fn new(ensemble: &TreeEnsemble) -> Result<Self> {
        ensemble.validate()?;
        if ensemble.features > FEATURE_MASK as usize {
            return Err(Error::Unsupported(format!("{} features (at most {FEATURE_MASK})", ensemble.features)));
        }
        let mut compiled = Self {
            nodes: Vec::new(),
            roots: Vec::with_capacity(ensemble.trees.len()),
            depths: Vec::with_capacity(ensemble.trees.len()),
            groups: ensemble.trees.iter().map(|tree| tree.group).collect(),
            weights: ensemble.trees.iter().map(|tree| tree.weight as f32).collect(),
            special: Vec::new(),
            inclusive: false,
            reference: ensemble.clone(),
        };
        let comparisons: std::collections::BTreeSet<bool> = ensemble
            .trees
            .iter()
            .flat_map(|tree| &tree.nodes)
            .filter_map(|node| match node {
                EnsembleNode::Numeric { comparison, .. } => Some(*comparison == Comparison::LessOrEqual),
                _ => None,
            })
            .collect();
        compiled.inclusive = comparisons.contains(&true);
        for tree in &ensemble.trees {
            compiled.roots.push(compiled.nodes.len() as u32);
            // Breadth-first: each split's two children are placed next to each other.
            let base = compiled.nodes.len();
            let mut order: Vec<u32> = vec![0];
            let mut position = 0;
            let mut compiled_index = vec![u32::MAX; tree.nodes.len()];
            let mut depth_of = vec![0_u32; tree.nodes.len()];
            compiled_index[0] = base as u32;
            while position < order.len() {
                let original = order[position] as usize;
                if let EnsembleNode::Numeric { left, right, .. } | EnsembleNode::Categorical { left, right, .. } =
                    &tree.nodes[original]
                {
                    for child in [*left, *right] {
                        compiled_index[child as usize] = (base + order.len()) as u32;
                        depth_of[child as usize] = depth_of[original] + 1;
                        order.push(child);
                    }
                }
                position += 1;
            }
            compiled.depths.push(order.iter().map(|index| depth_of[*index as usize]).max().unwrap_or(0));
            for original in order {
                let node = &tree.nodes[original as usize];
                let compiled_node = match node {
                    EnsembleNode::Leaf { value } => {
                        let value = if ensemble.precision == Precision::Float64 { value * tree.weight } else { *value };
                        Node { value, meta: LEAF, left: 0 }
                    }
                    EnsembleNode::Numeric { feature, threshold, comparison, missing, default_left, left, .. } => {
                        let compiled_left = compiled_index[*left as usize];
                        let mut meta = *feature;
                        if *default_left {
                            meta |= DEFAULT_LEFT;
                        }
                        let other_comparison = (*comparison == Comparison::LessOrEqual) != compiled.inclusive;
                        match missing {
                            _ if other_comparison => compiled.special_node(node, compiled_left),
                            Missing::Nan => Node { value: *threshold, meta, left: compiled_left },
                            Missing::NanIsZero => {
                                Node { value: *threshold, meta: meta | NAN_IS_ZERO, left: compiled_left }
                            }
                            Missing::Zero => compiled.special_node(node, compiled_left),
                        }
                    }
                    EnsembleNode::Categorical { left, .. } => {
                        let compiled_left = compiled_index[*left as usize];
                        compiled.special_node(node, compiled_left)
                    }
                };
                compiled.nodes.push(compiled_node);
            }
        }
        Ok(compiled)
    }

    fn special_node(&mut self, node: &EnsembleNode, compiled_left: u32) -> Node {
        self.special.push(Special { node: node.clone(), compiled_left });
        Node { value: 0.0, meta: SPECIAL, left: (self.special.len() - 1) as u32 }
    }

    /// The ensemble this was compiled from.
    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.reference
    }

    /// Input width.
    pub fn features(&self) -> usize {
        self.reference.features
    }

    /// Outputs per row.
    pub fn outputs(&self) -> usize {
        self.reference.outputs
    }

    /// One step down from node `index` for the row at `values[base..base + width]` (already
    /// rounded for `f32`); a leaf stays put. `LESS_OR_EQUAL` is the comparison of every fast-path split.
    #[inline(always)]
    fn step<const LESS_OR_EQUAL: bool>(&self, index: u32, values: &[f64], base: usize) -> u32 {
        let node = &self.nodes[index as usize];
        if node.meta & (LEAF | SPECIAL) != 0 {
            if node.meta & LEAF != 0 {
                return index;
            }
            return self.special_child(node.left as usize, &values[base..base + self.features()]) as u32;
        }
        let mut x = values[base + (node.meta & FEATURE_MASK) as usize];
        if x.is_nan() {
            if node.meta & NAN_IS_ZERO == 0 {
                return node.left + u32::from(node.meta & DEFAULT_LEFT == 0);
            }
            x = 0.0;
        }
        let go_left = if LESS_OR_EQUAL { x <= node.value } else { x < node.value };
        node.left + u32::from(!go_left)
    }

    #[cold]
    #[inline(never)]
    fn special_child(&self, special: usize, row: &[f64]) -> usize {
        let entry = &self.special[special];
        // `row` is already rounded for f32 ensembles; rounding again changes nothing.
        let left = entry.node.goes_left(row, self.reference.precision).unwrap_or(true);
        entry.compiled_left as usize + usize::from(!left)
    }

    /// Scores rows (row-major, `features()` values each; rounded to `f32` first for `f32`
    /// ensembles) into `out` (`outputs()` values per row), on up to `threads` threads.
    pub fn predict_into(&self, rows: &[f64], out: &mut [f64], threads: usize) -> Result<()> {
        let (width, outputs) = (self.features(), self.outputs());
        if width == 0 || !rows.len().is_multiple_of(width) || out.len() != rows.len() / width * outputs {
            return Err(Error::Invalid(format!(
                "{} values are not rows of {width} features, or {} outputs do not match",
                rows.len(),
                out.len()
            )));
        }
        let work = |(rows, out): (&[f64], &mut [f64])| self.predict_block(rows, out);
        let blocks = rows.chunks(BLOCK_ROWS * width).zip(out.chunks_mut(BLOCK_ROWS * outputs));
        if threads <= 1 {
            blocks.for_each(work);
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|error| Error::Invalid(format!("thread pool: {error}")))?;
            pool.install(|| {
                rows.par_chunks(BLOCK_ROWS * width).zip(out.par_chunks_mut(BLOCK_ROWS * outputs)).for_each(work)
            });
        }
        Ok(())
    }

    /// Scores rows given one `Vec` each, on one thread (a server's request); `None` when a row
    /// does not have `features()` values.
    pub fn score_rows(&self, rows: &[Vec<f64>]) -> Option<Vec<f64>> {
        if rows.iter().any(|row| row.len() != self.features()) {
            return None;
        }
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let mut out = vec![0.0; rows.len() * self.outputs()];
        self.predict_into(&flat, &mut out, 1).ok()?;
        Some(out)
    }

    /// Scores one row.
    pub fn predict_row(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![f64::NAN; self.outputs()];
        if row.len() == self.features() {
            self.predict_block(row, &mut out);
        }
        out
    }

    /// The leaf values `rows` reach in tree `tree`, walking all rows down one level at a time so
    /// their independent loads overlap.
    #[inline(always)]
    fn walk_rows<const LESS_OR_EQUAL: bool>(&self, tree: usize, rows: &[f64], width: usize, leaves: &mut [f64]) {
        let count = leaves.len();
        let mut current = [self.roots[tree]; BLOCK_ROWS];
        for _ in 0..self.depths[tree] {
            for (position, index) in current.iter_mut().enumerate().take(count) {
                *index = self.step::<LESS_OR_EQUAL>(*index, rows, position * width);
            }
        }
        for (leaf, index) in leaves.iter_mut().zip(&current) {
            *leaf = self.nodes[*index as usize].value;
        }
    }

    /// The leaf values one row reaches in `trees.len()` consecutive trees from `first`, walked
    /// side by side (for single rows, where there are no other rows to overlap with).
    #[inline(always)]
    fn walk_trees<const LESS_OR_EQUAL: bool>(&self, first: usize, row: &[f64], leaves: &mut [f64]) {
        let count = leaves.len();
        let mut current = [0_u32; TREES_TOGETHER];
        current[..count].copy_from_slice(&self.roots[first..first + count]);
        let depth = self.depths[first..first + count].iter().copied().max().unwrap_or(0);
        for _ in 0..depth {
            for index in current.iter_mut().take(count) {
                *index = self.step::<LESS_OR_EQUAL>(*index, row, 0);
            }
        }
        for (leaf, index) in leaves.iter_mut().zip(&current) {
            *leaf = self.nodes[*index as usize].value;
        }
    }

    fn predict_block(&self, rows: &[f64], out: &mut [f64]) {
        let (width, outputs) = (self.features(), self.outputs());
        let count = rows.len() / width;
        let precision = self.reference.precision;
        let rounded: Vec<f64>;
        let rows = if precision == Precision::Float32 {
            rounded = rows.iter().map(|value| f64::from(*value as f32)).collect();
            &rounded[..]
        } else {
            rows
        };
        let mut leaves = [0.0_f64; BLOCK_ROWS];
        let trees = self.roots.len();
        let mut sums32: Vec<f32> = Vec::new();
        match precision {
            Precision::Float64 => {
                for sums in out.chunks_mut(outputs).take(count) {
                    sums.copy_from_slice(&self.reference.base_margins);
                }
            }
            Precision::Float32 => {
                for _ in 0..count {
                    sums32.extend(self.reference.base_margins.iter().map(|margin| *margin as f32));
                }
            }
        }
        // Adds tree `tree`'s leaf for row `row`, in the ensemble's precision.
        let mut add = |tree: usize, row: usize, leaf: f64, out: &mut [f64]| {
            let slot = row * outputs + self.groups[tree] as usize;
            match precision {
                Precision::Float64 => out[slot] += leaf,
                Precision::Float32 => {
                    let (leaf, weight) = (leaf as f32, self.weights[tree]);
                    sums32[slot] += if weight == 1.0 { leaf } else { leaf * weight };
                }
            }
        };
        if count == 1 {
            let mut first = 0;
            while first < trees {
                let together = TREES_TOGETHER.min(trees - first);
                if self.inclusive {
                    self.walk_trees::<true>(first, rows, &mut leaves[..together]);
                } else {
                    self.walk_trees::<false>(first, rows, &mut leaves[..together]);
                }
                for (offset, leaf) in leaves[..together].iter().enumerate() {
                    add(first + offset, 0, *leaf, out);
                }
                first += together;
            }
        } else {
            for tree in 0..trees {
                if self.inclusive {
                    self.walk_rows::<true>(tree, rows, width, &mut leaves[..count]);
                } else {
                    self.walk_rows::<false>(tree, rows, width, &mut leaves[..count]);
                }
                for (row, leaf) in leaves[..count].iter().enumerate() {
                    add(tree, row, *leaf, out);
                }
            }
        }
        if precision == Precision::Float32 {
            out.iter_mut().zip(&sums32).for_each(|(value, sum)| *value = f64::from(*sum));
        }
        for sums in out.chunks_mut(outputs).take(count) {
            self.reference.finish(sums);
        }
    }
}
