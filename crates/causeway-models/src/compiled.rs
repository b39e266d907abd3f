//! The fast tree engine: a [`TreeEnsemble`] laid out for scoring, in one of two layouts.
//!
//! - **Perfect trees** (most ensembles: numeric splits, trees no deeper than
//!   [`MAX_PERFECT_DEPTH`]): every tree is padded into a complete binary tree in heap order, so a
//!   split is only a threshold and a feature (8 bytes for `f32` models) and the step down is
//!   arithmetic — `2i + 1`, plus one if the row goes right — with no branch at all. Trees are
//!   padded in runs of [`TREES_TOGETHER`] to the run's deepest, so a single row walks a whole
//!   run side by side with a fixed trip count. `f32` models (XGBoost) compare in `f32`.
//! - **General** (categorical splits, LightGBM's zero-as-missing, deep trees): every tree's nodes
//!   in one array in breadth-first order with siblings adjacent (the right child is `left + 1`),
//!   16 bytes a node; special splits take a slower path through the reference node.
//!
//! Rows are scored in blocks, tree by tree, so a tree stays in cache while a block of rows walks
//! it; blocks go to threads. Either layout computes exactly what [`TreeEnsemble::predict`]
//! computes: the same comparisons, the same summation order and precision.

use rayon::prelude::*;

use crate::ensemble::{Comparison, EnsembleNode, EnsembleTree, Missing, Precision, TreeEnsemble};
use crate::error::{Error, Result};

/// Rows scored together against each tree.
const BLOCK_ROWS: usize = 64;
/// Trees one row walks side by side when scored alone.
const TREES_TOGETHER: usize = 16;
/// Rows of a block that walk a perfect tree side by side, each with its own position.
const LANES: usize = 8;
/// The deepest tree the perfect layout pads; deeper ensembles use the general layout.
pub const MAX_PERFECT_DEPTH: u32 = 10;
/// Padding may multiply an ensemble's node count by at most this; beyond, the general layout is
/// both smaller and faster.
const MAX_PADDING_FACTOR: usize = 8;

/// A [`TreeEnsemble`] compiled for scoring.
#[derive(Debug, Clone)]
pub struct CompiledEnsemble {
    layout: Layout,
    groups: Vec<u32>,
    /// Per-tree leaf factors for `f32` ensembles (DART), applied the way XGBoost does.
    weights: Vec<f32>,
    /// Some numeric split compares `x <= t` (LightGBM) rather than `x < t` (XGBoost); splits with
    /// the other comparison take the general layout's special path.
    inclusive: bool,
    reference: TreeEnsemble,
}

#[derive(Debug, Clone)]
enum Layout {
    /// Perfect trees comparing in `f32` (an `f32` ensemble whose thresholds are all `f32` values).
    Perfect32(PerfectTrees<f32>),
    /// Perfect trees comparing in `f64`.
    Perfect64(PerfectTrees<f64>),
    General(GeneralTrees),
}

impl CompiledEnsemble {
    /// Compiles a validated ensemble.
    pub fn new(ensemble: &TreeEnsemble) -> Result<Self> {
        ensemble.validate()?;
        if ensemble.features == 0 {
            return Err(Error::Unsupported("an ensemble without features (the reference evaluation scores it)".into()));
        }
        if ensemble.features > FEATURE_MASK as usize {
            return Err(Error::Unsupported(format!("{} features (at most {FEATURE_MASK})", ensemble.features)));
        }
        let inclusive = ensemble
            .trees
            .iter()
            .flat_map(|tree| &tree.nodes)
            .any(|node| matches!(node, EnsembleNode::Numeric { comparison: Comparison::LessOrEqual, .. }));
        let layout = match ensemble.precision {
            Precision::Float32 => PerfectTrees::new(ensemble, inclusive).map(Layout::Perfect32),
            Precision::Float64 => PerfectTrees::new(ensemble, inclusive).map(Layout::Perfect64),
        }
        .unwrap_or_else(|| Layout::General(GeneralTrees::new(ensemble, inclusive)));
        Ok(Self {
            layout,
            groups: ensemble.trees.iter().map(|tree| tree.group).collect(),
            weights: ensemble.trees.iter().map(|tree| tree.weight as f32).collect(),
            inclusive,
            reference: ensemble.clone(),
        })
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

    /// Which layout the ensemble was compiled into: `perfect f32`, `perfect f64` or `general`.
    pub fn layout(&self) -> &'static str {
        match self.layout {
            Layout::Perfect32(_) => "perfect f32",
            Layout::Perfect64(_) => "perfect f64",
            Layout::General(_) => "general",
        }
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

    /// Scores a block of at most [`BLOCK_ROWS`] rows in the layout's own arithmetic.
    fn predict_block(&self, rows: &[f64], out: &mut [f64]) {
        let width = self.features();
        let count = rows.len() / width;
        match &self.layout {
            Layout::Perfect32(trees) => trees.predict_block(self, rows, count, out),
            Layout::Perfect64(trees) => trees.predict_block(self, rows, count, out),
            Layout::General(trees) => {
                let rounded: Vec<f64>;
                let rows = if self.reference.precision == Precision::Float32 {
                    rounded = rows.iter().map(|value| f64::from(*value as f32)).collect();
                    &rounded[..]
                } else {
                    rows
                };
                if self.inclusive {
                    self.sum_leaves(
                        count,
                        out,
                        |tree, leaves| trees.walk_rows::<true>(tree, rows, width, leaves),
                        |first, leaves| trees.walk_trees::<true>(first, rows, leaves),
                    );
                } else {
                    self.sum_leaves(
                        count,
                        out,
                        |tree, leaves| trees.walk_rows::<false>(tree, rows, width, leaves),
                        |first, leaves| trees.walk_trees::<false>(first, rows, leaves),
                    );
                }
            }
        }
    }

    /// Adds up the leaves `count` rows reach, tree by tree in the ensemble's order and precision,
    /// and finishes each row's outputs into `out`. `walk_rows(tree, leaves)` gives every row's leaf
    /// in one tree; for a single row, `walk_trees(first, leaves)` gives its leaves in
    /// `leaves.len()` consecutive trees from `first` (a multiple of [`TREES_TOGETHER`]).
    fn sum_leaves(
        &self,
        count: usize,
        out: &mut [f64],
        mut walk_rows: impl FnMut(usize, &mut [f64]),
        mut walk_trees: impl FnMut(usize, &mut [f64]),
    ) {
        let outputs = self.outputs();
        let precision = self.reference.precision;
        let mut leaves = [0.0_f64; BLOCK_ROWS];
        let trees = self.groups.len();
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
                walk_trees(first, &mut leaves[..together]);
                for (offset, leaf) in leaves[..together].iter().enumerate() {
                    add(first + offset, 0, *leaf, out);
                }
                first += together;
            }
        } else {
            for tree in 0..trees {
                walk_rows(tree, &mut leaves[..count]);
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

/// A leaf value as the compiled layouts store it: times the tree's weight for `f64` ensembles
/// (`f32` ensembles apply the weight in `f32` when adding, as XGBoost does).
fn stored_leaf(value: f64, tree: &EnsembleTree, precision: Precision) -> f64 {
    if precision == Precision::Float64 { value * tree.weight } else { value }
}

/// The number type a perfect layout compares in.
trait Threshold: Copy + PartialOrd + Default + Send + Sync + std::fmt::Debug {
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
    fn next_up(self) -> Self;
}

impl Threshold for f32 {
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn next_up(self) -> Self {
        f32::next_up(self)
    }
}

impl Threshold for f64 {
    fn from_f64(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn next_up(self) -> Self {
        f64::next_up(self)
    }
}

/// One split of a perfect tree: a row goes to the second child when `!(value < threshold)`,
/// where `value` is the row's `feature`-th entry in its extended form (see
/// [`PerfectTrees::extend`]). The children of split `i` are `2i + 1` and `2i + 2`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PerfectSplit<T> {
    threshold: T,
    feature: u32,
}

/// The splits and the leaves of consecutive perfect trees, `SLOTS` of each per tree.
type TreeArrays<'a, T, const SLOTS: usize> = (&'a [[PerfectSplit<T>; SLOTS]], &'a [[f64; SLOTS]]);

/// Where one padded tree lies in [`PerfectTrees`].
#[derive(Debug, Clone, Copy)]
struct PerfectTree {
    /// Its first split.
    splits: usize,
    /// Its first leaf.
    leaves: usize,
    /// Levels of splits: `2^depth - 1` splits (in `2^depth` slots), `2^depth` leaves.
    depth: u32,
}

/// Trees padded into complete binary trees, every split reduced to one comparison.
///
/// Each library split (`x < t` or `x <= t`, a NaN going left or right) becomes "second child when
/// `!(v < s)`", which sends NaN to the second child by itself: a split whose NaN goes right keeps
/// its children and compares `x` (with `s` the next value above `t` for `x <= t`); one whose NaN
/// goes left swaps its children and compares `-x`, which the row carries after its own values
/// (`x < t` is `-x > -t`; `x <= t` is `-x >= -t`, that is `-x` not below the next value above
/// `-t`). A leaf above the bottom is repeated in every leaf slot below it, under splits whose
/// direction does not matter.
#[derive(Debug, Clone)]
struct PerfectTrees<T> {
    splits: Vec<PerfectSplit<T>>,
    leaves: Vec<f64>,
    trees: Vec<PerfectTree>,
    /// Input width: a row's extended form is twice this.
    width: usize,
}

// `by_depth!` has one arm per depth up to this.
const _: () = assert!(MAX_PERFECT_DEPTH == 10);

/// Calls `$self.$walk::<DEPTH, SLOTS>(..)` for a run-time depth up to [`MAX_PERFECT_DEPTH`].
macro_rules! by_depth {
    ($depth:expr, $self:ident . $walk:ident ( $($argument:expr),* )) => {
        match $depth {
            0 => $self.$walk::<0, 1>($($argument),*),
            1 => $self.$walk::<1, 2>($($argument),*),
            2 => $self.$walk::<2, 4>($($argument),*),
            3 => $self.$walk::<3, 8>($($argument),*),
            4 => $self.$walk::<4, 16>($($argument),*),
            5 => $self.$walk::<5, 32>($($argument),*),
            6 => $self.$walk::<6, 64>($($argument),*),
            7 => $self.$walk::<7, 128>($($argument),*),
            8 => $self.$walk::<8, 256>($($argument),*),
            9 => $self.$walk::<9, 512>($($argument),*),
            10 => $self.$walk::<10, 1024>($($argument),*),
            _ => unreachable!("perfect trees are at most {MAX_PERFECT_DEPTH} deep"),
        }
    };
}

/// One step down a perfect tree: 0 to the first child, 1 to the second. No branches.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord, reason = "the negation is the point: NaN compares false, so it goes second")]
fn direction<T: Threshold>(split: PerfectSplit<T>, row: &[T]) -> usize {
    usize::from(!(row[split.feature as usize] < split.threshold))
}

impl<T: Threshold> PerfectTrees<T> {
    /// Pads `ensemble`, or `None` when it does not fit the layout: categorical splits,
    /// zero-as-missing, a comparison other than the ensemble's (`inclusive`), thresholds `T`
    /// cannot hold exactly or infinite ones, trees deeper than [`MAX_PERFECT_DEPTH`] or padding
    /// beyond [`MAX_PADDING_FACTOR`].
    fn new(ensemble: &TreeEnsemble, inclusive: bool) -> Option<Self> {
        for node in ensemble.trees.iter().flat_map(|tree| &tree.nodes) {
            match node {
                EnsembleNode::Leaf { .. } => {}
                EnsembleNode::Categorical { .. } => return None,
                EnsembleNode::Numeric { threshold, comparison, missing, .. } => {
                    let exact = T::from_f64(*threshold).to_f64() == *threshold && threshold.is_finite();
                    if !exact || *missing == Missing::Zero || (*comparison == Comparison::LessOrEqual) != inclusive {
                        return None;
                    }
                }
            }
        }
        let depths: Vec<u32> = ensemble.trees.iter().map(tree_depth).collect();
        let mut padded_depths = Vec::with_capacity(depths.len());
        for run in depths.chunks(TREES_TOGETHER) {
            let deepest = run.iter().copied().max().unwrap_or(0);
            if deepest > MAX_PERFECT_DEPTH {
                return None;
            }
            padded_depths.extend(std::iter::repeat_n(deepest, run.len()));
        }
        let padded_nodes: usize = padded_depths.iter().map(|depth| (2_usize << depth) - 1).sum();
        let real_nodes: usize = ensemble.trees.iter().map(|tree| tree.nodes.len()).sum();
        if padded_nodes > MAX_PADDING_FACTOR * real_nodes {
            return None;
        }
        let width = ensemble.features;
        let mut layout = Self { splits: Vec::new(), leaves: Vec::new(), trees: Vec::new(), width };
        for (tree, depth) in ensemble.trees.iter().zip(padded_depths) {
            let placed = PerfectTree { splits: layout.splits.len(), leaves: layout.leaves.len(), depth };
            // `2^depth` slots: the last is never read, and a power of two lets indexing be masked.
            layout.splits.resize(placed.splits + (1 << depth), PerfectSplit::default());
            layout.leaves.resize(placed.leaves + (1 << depth), 0.0);
            let mut pending = vec![(0_usize, 0_usize, 0_u32)]; // (node, position, level)
            while let Some((node, position, level)) = pending.pop() {
                match &tree.nodes[node] {
                    EnsembleNode::Leaf { value } => {
                        let span = 1_usize << (depth - level);
                        let first = placed.leaves + (position + 1 - (1 << level)) * span;
                        layout.leaves[first..first + span].fill(stored_leaf(*value, tree, ensemble.precision));
                    }
                    EnsembleNode::Numeric { feature, threshold, missing, default_left, left, right, .. } => {
                        // LightGBM's `None` missing type compares a NaN as 0, always the same way.
                        let nan_left = match missing {
                            Missing::NanIsZero if inclusive => 0.0 <= *threshold,
                            Missing::NanIsZero => 0.0 < *threshold,
                            _ => *default_left,
                        };
                        let threshold = T::from_f64(*threshold);
                        let (split, first, second) = match (nan_left, inclusive) {
                            (false, false) => (PerfectSplit { threshold, feature: *feature }, left, right),
                            (false, true) => {
                                (PerfectSplit { threshold: threshold.next_up(), feature: *feature }, left, right)
                            }
                            (true, false) => {
                                let negated = T::from_f64(-threshold.to_f64()).next_up();
                                (PerfectSplit { threshold: negated, feature: *feature + width as u32 }, right, left)
                            }
                            (true, true) => {
                                let negated = T::from_f64(-threshold.to_f64());
                                (PerfectSplit { threshold: negated, feature: *feature + width as u32 }, right, left)
                            }
                        };
                        layout.splits[placed.splits + position] = split;
                        pending.push((*first as usize, 2 * position + 1, level + 1));
                        pending.push((*second as usize, 2 * position + 2, level + 1));
                    }
                    EnsembleNode::Categorical { .. } => return None,
                }
            }
            layout.trees.push(placed);
        }
        Some(layout)
    }

    /// Rows in the form splits read: each row's values in `T`, then their negations.
    fn extend(&self, rows: &[f64]) -> Vec<T> {
        let mut extended = Vec::with_capacity(rows.len() * 2);
        for row in rows.chunks_exact(self.width) {
            extended.extend(row.iter().map(|value| T::from_f64(*value)));
            extended.extend(row.iter().map(|value| T::from_f64(-*value)));
        }
        extended
    }

    fn predict_block(&self, compiled: &CompiledEnsemble, rows: &[f64], count: usize, out: &mut [f64]) {
        let rows = self.extend(rows);
        compiled.sum_leaves(
            count,
            out,
            |tree, leaves| self.walk_rows(tree, &rows, leaves),
            |first, leaves| self.walk_trees(first, &rows, leaves),
        );
    }

    /// The leaf values extended `rows` reach in tree `tree`.
    fn walk_rows(&self, tree: usize, rows: &[T], leaves: &mut [f64]) {
        let depth = self.trees[tree].depth;
        by_depth!(depth, self.walk_rows_at(tree, rows, leaves))
    }

    /// The leaf values one extended row reaches in `leaves.len()` consecutive trees from `first`
    /// (a multiple of [`TREES_TOGETHER`], so all are padded to one depth).
    fn walk_trees(&self, first: usize, row: &[T], leaves: &mut [f64]) {
        let depth = self.trees[first].depth;
        by_depth!(depth, self.walk_trees_at(first, row, leaves))
    }

    /// The splits and leaves of the `count` consecutive trees from `first`, `SLOTS` (`2^depth`)
    /// of each, as arrays, so positions below `SLOTS` index them without checks.
    #[inline(always)]
    fn arrays<const SLOTS: usize>(&self, first: usize, count: usize) -> Option<TreeArrays<'_, T, SLOTS>> {
        let PerfectTree { splits, leaves, .. } = self.trees[first];
        let (splits, _) = self.splits.get(splits..splits + count * SLOTS)?.as_chunks::<SLOTS>();
        let (leaves, _) = self.leaves.get(leaves..leaves + count * SLOTS)?.as_chunks::<SLOTS>();
        Some((splits, leaves))
    }

    /// [`PerfectTrees::walk_rows`] for trees of depth `DEPTH`: [`LANES`] rows walk down side by
    /// side so their independent loads overlap.
    #[inline(always)]
    fn walk_rows_at<const DEPTH: u32, const SLOTS: usize>(&self, tree: usize, rows: &[T], leaves: &mut [f64]) {
        let width = 2 * self.width;
        let Some(([splits], [values])) = self.arrays::<SLOTS>(tree, 1) else {
            unreachable!("every perfect tree has 2^depth split and leaf slots")
        };
        let mut row_runs = rows.chunks_exact(LANES * width);
        let mut leaf_runs = leaves.chunks_exact_mut(LANES);
        for (run, out) in (&mut row_runs).zip(&mut leaf_runs) {
            let mut positions = [0_usize; LANES];
            for _ in 0..DEPTH {
                for (lane, position) in positions.iter_mut().enumerate() {
                    let row = &run[lane * width..(lane + 1) * width];
                    *position = 2 * *position + 1 + direction(splits[*position % SLOTS], row);
                }
            }
            for (leaf, position) in out.iter_mut().zip(positions) {
                *leaf = values[(position + 1) % SLOTS];
            }
        }
        for (row, leaf) in row_runs.remainder().chunks_exact(width).zip(leaf_runs.into_remainder()) {
            let mut position = 0;
            for _ in 0..DEPTH {
                position = 2 * position + 1 + direction(splits[position % SLOTS], row);
            }
            *leaf = values[(position + 1) % SLOTS];
        }
    }

    /// [`PerfectTrees::walk_trees`] for trees of depth `DEPTH`, walked side by side.
    #[inline(always)]
    fn walk_trees_at<const DEPTH: u32, const SLOTS: usize>(&self, first: usize, row: &[T], leaves: &mut [f64]) {
        let Some((splits, values)) = self.arrays::<SLOTS>(first, leaves.len()) else {
            unreachable!("a run of perfect trees has 2^depth split and leaf slots per tree")
        };
        let mut positions = [0_usize; TREES_TOGETHER];
        for _ in 0..DEPTH {
            for (position, splits) in positions.iter_mut().zip(splits) {
                *position = 2 * *position + 1 + direction(splits[*position % SLOTS], row);
            }
        }
        for ((leaf, position), values) in leaves.iter_mut().zip(positions).zip(values) {
            *leaf = values[(position + 1) % SLOTS];
        }
    }
}

/// Levels of splits on the longest path from the root of a validated tree.
fn tree_depth(tree: &EnsembleTree) -> u32 {
    let mut deepest = 0;
    let mut pending = vec![(0_usize, 0_u32)];
    while let Some((node, level)) = pending.pop() {
        match &tree.nodes[node] {
            EnsembleNode::Leaf { .. } => deepest = deepest.max(level),
            EnsembleNode::Numeric { left, right, .. } | EnsembleNode::Categorical { left, right, .. } => {
                pending.push((*left as usize, level + 1));
                pending.push((*right as usize, level + 1));
            }
        }
    }
    deepest
}

/// The low 24 bits of a general node's `meta` hold the feature; the high 8 the flags below.
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

/// The general layout: any tree the reference evaluation scores.
#[derive(Debug, Clone)]
struct GeneralTrees {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Each tree's depth: steps from the root to its deepest leaf.
    depths: Vec<u32>,
    special: Vec<Special>,
    precision: Precision,
    features: usize,
}

impl GeneralTrees {
    fn new(ensemble: &TreeEnsemble, inclusive: bool) -> Self {
        let mut compiled = Self {
            nodes: Vec::new(),
            roots: Vec::with_capacity(ensemble.trees.len()),
            depths: ensemble.trees.iter().map(tree_depth).collect(),
            special: Vec::new(),
            precision: ensemble.precision,
            features: ensemble.features,
        };
        for tree in &ensemble.trees {
            compiled.roots.push(compiled.nodes.len() as u32);
            // Breadth-first: each split's two children are placed next to each other.
            let base = compiled.nodes.len();
            let mut order: Vec<u32> = vec![0];
            let mut position = 0;
            let mut compiled_index = vec![u32::MAX; tree.nodes.len()];
            compiled_index[0] = base as u32;
            while position < order.len() {
                let original = order[position] as usize;
                if let EnsembleNode::Numeric { left, right, .. } | EnsembleNode::Categorical { left, right, .. } =
                    &tree.nodes[original]
                {
                    for child in [*left, *right] {
                        compiled_index[child as usize] = (base + order.len()) as u32;
                        order.push(child);
                    }
                }
                position += 1;
            }
            for original in order {
                let node = &tree.nodes[original as usize];
                let compiled_node = match node {
                    EnsembleNode::Leaf { value } => {
                        Node { value: stored_leaf(*value, tree, ensemble.precision), meta: LEAF, left: 0 }
                    }
                    EnsembleNode::Numeric { feature, threshold, comparison, missing, default_left, left, .. } => {
                        let compiled_left = compiled_index[*left as usize];
                        let mut meta = *feature;
                        if *default_left {
                            meta |= DEFAULT_LEFT;
                        }
                        let other_comparison = (*comparison == Comparison::LessOrEqual) != inclusive;
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
        compiled
    }

    fn special_node(&mut self, node: &EnsembleNode, compiled_left: u32) -> Node {
        self.special.push(Special { node: node.clone(), compiled_left });
        Node { value: 0.0, meta: SPECIAL, left: (self.special.len() - 1) as u32 }
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
            return self.special_child(node.left as usize, &values[base..base + self.features]) as u32;
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
        let left = entry.node.goes_left(row, self.precision).unwrap_or(true);
        entry.compiled_left as usize + usize::from(!left)
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

    /// The leaf values one row reaches in `leaves.len()` consecutive trees from `first`, walked
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensemble::{CategoryCodes, CompiledCache, Transform};

    /// splitmix64: a seeded source of test shapes and values.
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1_u64 << 53) as f64
        }
    }

    #[derive(Clone, Copy)]
    struct Shape {
        precision: Precision,
        comparison: Comparison,
        missing: Missing,
        outputs: usize,
        max_depth: u32,
        categorical: bool,
        /// Branches may stop before `max_depth`.
        lopsided: bool,
    }

    /// A random tree of at most `max_depth` levels of splits, some of its branches stopping early.
    fn grow(numbers: &mut Numbers, shape: Shape, features: u32, level: u32, nodes: &mut Vec<EnsembleNode>) -> u32 {
        let index = nodes.len() as u32;
        let leaf = level == shape.max_depth || (shape.lopsided && level > 1 && numbers.below(4) == 0);
        if leaf {
            let value = numbers.unit() - 0.5;
            let value = if shape.precision == Precision::Float32 { f64::from(value as f32) } else { value };
            nodes.push(EnsembleNode::Leaf { value });
            return index;
        }
        nodes.push(EnsembleNode::Leaf { value: 0.0 });
        let left = grow(numbers, shape, features, level + 1, nodes);
        let right = grow(numbers, shape, features, level + 1, nodes);
        let feature = numbers.below(u64::from(features)) as u32;
        nodes[index as usize] = if shape.categorical && numbers.below(5) == 0 {
            EnsembleNode::Categorical {
                feature,
                categories: vec![numbers.next() as u32],
                codes: CategoryCodes::Lightgbm,
                in_set_left: true,
                default_left: numbers.below(2) == 0,
                left,
                right,
            }
        } else {
            // Thresholds on a coarse grid, so rows hit them exactly now and then.
            let threshold = match numbers.below(12) {
                0 => f64::from(f32::MAX),
                1 => -f64::from(f32::MAX),
                2 => f64::from(f32::from_bits(1)), // the smallest subnormal
                _ => (numbers.below(9) as f64 - 4.0) * 0.25,
            };
            EnsembleNode::Numeric {
                feature,
                threshold,
                comparison: shape.comparison,
                missing: shape.missing,
                default_left: numbers.below(2) == 0,
                left,
                right,
            }
        };
        index
    }

    fn ensemble(seed: u64, shape: Shape) -> TreeEnsemble {
        let mut numbers = Numbers(seed);
        let features = 5;
        let trees = (0..37)
            .map(|number| {
                let mut nodes = Vec::new();
                grow(&mut numbers, shape, features, 0, &mut nodes);
                let weight = if number % 3 == 0 { 0.75 } else { 1.0 };
                EnsembleTree { nodes, group: (number % shape.outputs) as u32, weight }
            })
            .collect();
        TreeEnsemble {
            features: features as usize,
            outputs: shape.outputs,
            base_margins: (0..shape.outputs).map(|output| output as f64 * 0.1).collect(),
            trees,
            precision: shape.precision,
            average_over: None,
            transform: if shape.outputs > 1 { Transform::Softmax } else { Transform::Sigmoid { scale: 1.0 } },
            source: "test".into(),
            compiled: CompiledCache::default(),
        }
    }

    /// Rows of exact grid values, values between them, NaN, signed zeros, infinities, values at and
    /// beyond the f32 range, and subnormals.
    fn rows(seed: u64, count: usize, width: usize) -> Vec<f64> {
        let mut numbers = Numbers(seed);
        (0..count * width)
            .map(|_| match numbers.below(9) {
                0 => f64::NAN,
                1 => (numbers.below(9) as f64 - 4.0) * 0.25,
                2 => (numbers.below(9) as f64 - 4.0) * 0.25 - 1e-9,
                3 => 0.0,
                4 => -0.0,
                5 => [f64::INFINITY, f64::NEG_INFINITY, 3.5e38, -3.5e38][numbers.below(4) as usize],
                6 => [f64::from(f32::MAX), -f64::from(f32::MAX), 1e-45, -1e-45, 1e-310][numbers.below(5) as usize],
                _ => numbers.unit() * 2.5 - 1.25,
            })
            .collect()
    }

    fn assert_matches_reference(ensemble: &TreeEnsemble, layout: &str, label: &str) {
        let compiled = CompiledEnsemble::new(ensemble).expect("compiles");
        assert_eq!(compiled.layout(), layout, "{label}");
        let width = ensemble.features;
        for count in [1, 5, 8, 64, 201] {
            let rows = rows(count as u64, count, width);
            let reference: Vec<f64> = rows.chunks(width).flat_map(|row| ensemble.predict(row)).collect();
            for threads in [1, 2] {
                let mut out = vec![0.0; count * ensemble.outputs];
                compiled.predict_into(&rows, &mut out, threads).expect("scores");
                for (index, (got, want)) in out.iter().zip(&reference).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{label}: {count} rows, {threads} threads, value {index}"
                    );
                }
            }
            for (row, want) in rows.chunks(width).zip(reference.chunks(ensemble.outputs)) {
                let got: Vec<u64> = compiled.predict_row(row).iter().map(|value| value.to_bits()).collect();
                let want: Vec<u64> = want.iter().map(|value| value.to_bits()).collect();
                assert_eq!(got, want, "{label}: one row {row:?}");
            }
        }
    }

    #[test]
    fn every_layout_scores_exactly_like_the_reference() {
        let base = Shape {
            precision: Precision::Float32,
            comparison: Comparison::Less,
            missing: Missing::Nan,
            outputs: 1,
            max_depth: 6,
            categorical: false,
            lopsided: true,
        };
        let cases = [
            (base, "perfect f32", "xgboost-like"),
            (Shape { outputs: 3, ..base }, "perfect f32", "multi-class"),
            (Shape { max_depth: 0, ..base }, "perfect f32", "single leaves"),
            (
                Shape { precision: Precision::Float64, comparison: Comparison::LessOrEqual, ..base },
                "perfect f64",
                "lightgbm-like",
            ),
            (
                Shape {
                    precision: Precision::Float64,
                    comparison: Comparison::LessOrEqual,
                    missing: Missing::NanIsZero,
                    ..base
                },
                "perfect f64",
                "nan is zero",
            ),
            (Shape { missing: Missing::Zero, precision: Precision::Float64, ..base }, "general", "zero as missing"),
            (Shape { categorical: true, ..base }, "general", "categorical"),
            (Shape { comparison: Comparison::LessOrEqual, ..base }, "perfect f32", "f32 with x <= t"),
            (Shape { precision: Precision::Float64, ..base }, "perfect f64", "f64 with x < t"),
            (
                Shape { max_depth: MAX_PERFECT_DEPTH, lopsided: false, ..base },
                "perfect f32",
                "complete, deepest padded",
            ),
            (Shape { max_depth: MAX_PERFECT_DEPTH + 1, lopsided: false, ..base }, "general", "complete, too deep"),
            (Shape { max_depth: 12, ..base }, "general", "lopsided, padding too costly"),
        ];
        for (seed, (shape, layout, label)) in cases.into_iter().enumerate() {
            assert_matches_reference(&ensemble(seed as u64 + 20_261_130, shape), layout, label);
        }
    }

    #[test]
    fn mixed_comparisons_take_the_general_layout() {
        let shape = Shape {
            precision: Precision::Float64,
            comparison: Comparison::LessOrEqual,
            missing: Missing::Nan,
            outputs: 1,
            max_depth: 4,
            categorical: false,
            lopsided: true,
        };
        let mut mixed = ensemble(11, shape);
        if let Some(EnsembleNode::Numeric { comparison, .. }) = mixed.trees[5].nodes.first_mut() {
            *comparison = Comparison::Less;
        }
        assert_matches_reference(&mixed, "general", "one split with x < t among x <= t");
    }

    #[test]
    fn thresholds_f32_cannot_hold_use_f64_comparisons() {
        let mut shape = ensemble(
            7,
            Shape {
                precision: Precision::Float32,
                comparison: Comparison::Less,
                missing: Missing::Nan,
                outputs: 1,
                max_depth: 3,
                categorical: false,
                lopsided: true,
            },
        );
        for node in shape.trees.iter_mut().flat_map(|tree| tree.nodes.iter_mut()) {
            if let EnsembleNode::Numeric { threshold, .. } = node {
                *threshold += 1e-12;
            }
        }
        assert_matches_reference(&shape, "general", "thresholds between f32 values");
    }
}
