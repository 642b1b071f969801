//! A regression tree (the serialised model part) and its leaf-wise growth from gradient histograms.
//!
//! Growth keeps one array of the bagged row indices; each leaf owns a contiguous range of it, which
//! a split partitions in place (stable). Only the smaller child's histogram is built from rows; the
//! larger one is the parent's minus it. Histograms come from a pool, so no histogram is allocated per node.
//!
//! As in LightGBM, a feature on which a leaf has no valid split (no threshold meets the child
//! minimums with a gain above the parent's plus `min_gain_to_split`) is not considered again in that
//! leaf's descendants within the same tree: it is neither histogrammed nor scanned there. With heavy
//! `lambda_l1` this matters: a split that a feature could not pay for higher up is not sought deeper.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::binning::{BinnedData, MAX_BINS};
use super::histogram::{self, BinStats, HistLayout, HistogramPool, LeafHist, Rows, Target};
use super::split::{self, SplitCandidate, SplitRules};

/// A child of a split node: another split node or a leaf, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Child {
    /// Index into [`Tree::nodes`].
    Split(u32),
    /// Index into [`Tree::leaves`].
    Leaf(u32),
}

/// Training rows that reached a node or leaf (in-bag rows only): for TreeSHAP and ONNX export.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cover {
    /// Sum of hessians (the row count for regression objectives).
    pub sum_hessian: f64,
    /// Number of rows.
    pub count: u64,
}

/// An internal node: `value <= threshold` goes left, NaN goes left iff `default_left`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitNode {
    /// Feature index (column of the training [`Dataset`](super::Dataset)).
    pub feature: usize,
    /// Split value; ±inf are written as the strings "inf" / "-inf" in JSON.
    #[serde(with = "threshold_serde")]
    pub threshold: f64,
    /// Where rows with NaN in `feature` go.
    pub default_left: bool,
    /// Subtree for `value <= threshold`.
    pub left: Child,
    /// Subtree for `value > threshold`.
    pub right: Child,
    /// Loss reduction of the split (children's gains minus the parent's), for importance.
    pub gain: f64,
    /// Rows that reached the node.
    pub cover: Cover,
}

/// A leaf: its output (shrinkage already applied) and its cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Added to the raw score of rows reaching this leaf.
    pub value: f64,
    /// Rows that reached the leaf.
    pub cover: Cover,
}

/// A binary regression tree. Invariants (checked on deserialisation): node 0 is the root when
/// there are nodes, otherwise the single leaf 0 is; every child index is in range and a child
/// node's index is greater than its parent's; every node but the root and every leaf is reached
/// exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TreeRepr")]
pub struct Tree {
    nodes: Vec<SplitNode>,
    leaves: Vec<Leaf>,
}

/// The unchecked serialised form of a [`Tree`].
#[derive(Deserialize)]
struct TreeRepr {
    nodes: Vec<SplitNode>,
    leaves: Vec<Leaf>,
}

/// A deserialised tree breaks a structural invariant.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TreeError {
    /// The node and leaf counts do not form a binary tree.
    #[error("a tree with {nodes} split nodes must have {} leaves, found {leaves}", nodes + 1)]
    Shape {
        /// Split nodes.
        nodes: usize,
        /// Leaves.
        leaves: usize,
    },
    /// A child index is out of range, points backwards, or is reached twice.
    #[error("split node {node} has an invalid child")]
    BadChild {
        /// The node at fault.
        node: usize,
    },
    /// A threshold is NaN.
    #[error("split node {node} has a NaN threshold")]
    NanThreshold {
        /// The node at fault.
        node: usize,
    },
}

impl TryFrom<TreeRepr> for Tree {
    type Error = TreeError;

    fn try_from(repr: TreeRepr) -> Result<Self, TreeError> {
        let TreeRepr { nodes, leaves } = repr;
        if leaves.len() != nodes.len() + 1 {
            return Err(TreeError::Shape { nodes: nodes.len(), leaves: leaves.len() });
        }
        let mut node_seen = vec![false; nodes.len()];
        let mut leaf_seen = vec![false; leaves.len()];
        for (i, node) in nodes.iter().enumerate() {
            if node.threshold.is_nan() {
                return Err(TreeError::NanThreshold { node: i });
            }
            for child in [node.left, node.right] {
                let seen = match child {
                    Child::Split(j) if (j as usize) > i && (j as usize) < nodes.len() => &mut node_seen[j as usize],
                    Child::Leaf(j) if (j as usize) < leaves.len() => &mut leaf_seen[j as usize],
                    _ => return Err(TreeError::BadChild { node: i }),
                };
                if std::mem::replace(seen, true) {
                    return Err(TreeError::BadChild { node: i });
                }
            }
        }
        // 2n distinct child references onto n-1 non-root nodes and n+1 leaves reach each exactly once.
        Ok(Tree { nodes, leaves })
    }
}

impl Tree {
    /// Split nodes; node 0 is the root when there is any.
    pub fn nodes(&self) -> &[SplitNode] {
        &self.nodes
    }

    /// Leaves.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The root: node 0, or leaf 0 for a tree without splits.
    pub fn root(&self) -> Child {
        if self.nodes.is_empty() { Child::Leaf(0) } else { Child::Split(0) }
    }

    /// Number of leaves.
    pub fn num_leaves(&self) -> usize {
        self.leaves.len()
    }

    /// The leaf a row falls in; `value(f)` gives the row's value of feature `f`.
    pub fn leaf_index_by(&self, value: impl Fn(usize) -> f64) -> usize {
        let mut child = self.root();
        loop {
            match child {
                Child::Leaf(l) => return l as usize,
                Child::Split(k) => {
                    let node = &self.nodes[k as usize];
                    let v = value(node.feature);
                    let left = if v.is_nan() { node.default_left } else { v <= node.threshold };
                    child = if left { node.left } else { node.right };
                }
            }
        }
    }

    /// The leaf a row falls in; features past the row's end are treated as missing (NaN).
    pub fn leaf_index(&self, row: &[f64]) -> usize {
        self.leaf_index_by(|f| row.get(f).copied().unwrap_or(f64::NAN))
    }

    /// This tree's contribution to the raw score of a row.
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.leaves[self.leaf_index(row)].value
    }

    /// The leaf a training row falls in, read from its bins; `split_bins[k]` is node k's bin threshold.
    pub(crate) fn leaf_index_binned(&self, split_bins: &[u8], data: &BinnedData, row: usize) -> usize {
        let mut child = self.root();
        loop {
            match child {
                Child::Leaf(l) => return l as usize,
                Child::Split(k) => {
                    let node = &self.nodes[k as usize];
                    let b = data.columns[node.feature][row];
                    let left = if data.mappers[node.feature].nan_bin() == Some(b) {
                        node.default_left
                    } else {
                        b <= split_bins[k as usize]
                    };
                    child = if left { node.left } else { node.right };
                }
            }
        }
    }
}

/// JSON has no infinities: finite thresholds are numbers, ±inf the strings "inf" / "-inf".
mod threshold_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else if *x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(x) => Ok(x),
            Repr::Text(t) if t == "inf" => Ok(f64::INFINITY),
            Repr::Text(t) if t == "-inf" => Ok(f64::NEG_INFINITY),
            Repr::Text(t) => Err(serde::de::Error::custom(format!("invalid threshold `{t}`"))),
        }
    }
}

/// Settings of one tree's growth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowConfig {
    pub(crate) num_leaves: usize,
    /// Maximum depth; None for no limit.
    pub(crate) max_depth: Option<usize>,
    pub(crate) rules: SplitRules,
    pub(crate) learning_rate: f64,
    pub(crate) unit_hessian: bool,
}

/// Everything one tree is grown from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowInput<'a> {
    pub(crate) data: &'a BinnedData,
    pub(crate) grad: &'a [f64],
    pub(crate) hess: &'a [f64],
    /// Bagged rows, ascending; None for all rows.
    pub(crate) bag: Option<&'a [u32]>,
    /// Features this tree may split on.
    pub(crate) active: &'a [bool],
    pub(crate) cfg: &'a GrowConfig,
}

/// A grown tree and each node's split as a bin threshold (to route training rows by bins).
#[derive(Debug)]
pub(crate) struct GrownTree {
    pub(crate) tree: Tree,
    pub(crate) split_bins: Vec<u8>,
}

/// A leaf during growth.
#[derive(Debug)]
struct LeafState {
    /// Range of `Grower::indices` holding its rows.
    begin: usize,
    end: usize,
    sums: BinStats,
    depth: usize,
    /// Parent node and whether this leaf is its left child.
    parent: Option<(usize, bool)>,
    /// Its histograms while it may still be split.
    hist: Option<LeafHist>,
    best: Option<SplitCandidate>,
}

/// Rows per block in parallel row passes (partition, gather, sums). Fixed, so results and their
/// order never depend on the thread count; leaves smaller than two blocks are done sequentially.
const ROW_BLOCK: usize = 1 << 14;

/// Reusable buffers for growing trees over one binned training set.
#[derive(Debug)]
pub(crate) struct Grower {
    layout: HistLayout,
    indices: Vec<u32>,
    scratch: Vec<u32>,
    /// Rows going left in each block of a parallel partition.
    block_left: Vec<usize>,
    ordered_grad: Vec<f64>,
    ordered_hess: Vec<f64>,
    pool: HistogramPool,
    leaves: Vec<LeafState>,
    /// Per leaf (row `leaf * num_features`), the features its split search may use: the tree's
    /// active features at the root, then those on which every ancestor had a valid split.
    split_features: Vec<bool>,
    num_features: usize,
    scan: ScanBuffers,
}

impl Grower {
    /// Buffers for `data`, with histograms laid out for its bins.
    pub(crate) fn new(data: &BinnedData, unit_hessian: bool) -> Self {
        Grower {
            layout: HistLayout::new(data.mappers.iter().map(|m| m.num_bins()), unit_hessian),
            indices: Vec::new(),
            scratch: Vec::new(),
            block_left: Vec::new(),
            ordered_grad: Vec::new(),
            ordered_hess: Vec::new(),
            pool: HistogramPool::default(),
            leaves: Vec::new(),
            split_features: Vec::new(),
            num_features: data.mappers.len(),
            scan: ScanBuffers::default(),
        }
    }

    /// Rows (in-bag) of leaf `leaf` of the tree just grown.
    pub(crate) fn leaf_rows(&self, leaf: usize) -> &[u32] {
        let l = &self.leaves[leaf];
        &self.indices[l.begin..l.end]
    }

    /// Grows one tree leaf-wise (best gain first) over the bagged rows and active features,
    /// until `num_leaves` leaves or no split gains.
    pub(crate) fn grow(&mut self, input: &GrowInput<'_>) -> GrownTree {
        let GrowInput { data, grad, hess, bag, cfg, .. } = *input;
        self.indices.clear();
        match bag {
            Some(rows) => self.indices.extend_from_slice(rows),
            None => self.indices.extend(0..data.num_rows as u32),
        }
        let block_sums: Vec<(f64, f64)> = self
            .indices
            .par_chunks(ROW_BLOCK)
            .map(|rows| {
                rows.iter().fold((0.0, 0.0), |(g, h), &r| {
                    (g + grad[r as usize], h + if cfg.unit_hessian { 1.0 } else { hess[r as usize] })
                })
            })
            .collect();
        // Block sums are added in block order: the same total on any thread count.
        let (g, h) = block_sums.iter().fold((0.0, 0.0), |(g, h), &(bg, bh)| (g + bg, h + bh));
        let root_sums = BinStats { grad: g, hess: h, count: self.indices.len() as u32 };
        for leaf in self.leaves.drain(..) {
            if let Some(h) = leaf.hist {
                self.pool.give(h);
            }
        }
        self.leaves.push(LeafState {
            begin: 0,
            end: self.indices.len(),
            sums: root_sums,
            depth: 0,
            parent: None,
            hist: None,
            best: None,
        });
        let nf = self.num_features;
        self.split_features.clear();
        self.split_features.resize(cfg.num_leaves * nf, false);
        if self.splittable(0, cfg) {
            let mut h = self.pool.take(self.layout.len());
            let rows = if bag.is_none() {
                Rows::All { grad, hess }
            } else {
                gather(&mut self.ordered_grad, &self.indices, grad);
                if !cfg.unit_hessian {
                    gather(&mut self.ordered_hess, &self.indices, hess);
                }
                Rows::Subset { rows: &self.indices, grad: &self.ordered_grad, hess: &self.ordered_hess }
            };
            self.leaves[0].best = self.scan.scan_leaf(&self.layout, &mut h, input, rows, root_sums);
            self.leaves[0].hist = Some(h);
            for (ok, best) in self.split_features[..nf].iter_mut().zip(&self.scan.root_splits) {
                *ok = best.is_some();
            }
        }

        let mut nodes: Vec<SplitNode> = Vec::with_capacity(cfg.num_leaves - 1);
        let mut split_bins: Vec<u8> = Vec::with_capacity(cfg.num_leaves - 1);
        while self.leaves.len() < cfg.num_leaves {
            // Best leaf; ties go to the lower leaf index (as LightGBM's ArgMax).
            let mut chosen: Option<(usize, SplitCandidate)> = None;
            for (i, l) in self.leaves.iter().enumerate() {
                if let Some(c) = l.best
                    && chosen.is_none_or(|(_, b)| c.gain > b.gain)
                {
                    chosen = Some((i, c));
                }
            }
            let Some((l, split)) = chosen else { break };
            let node = nodes.len();
            let new_leaf = self.leaves.len();
            let parent_state = &self.leaves[l];
            if let Some((p, is_left)) = parent_state.parent {
                let link = Child::Split(node as u32);
                if is_left { nodes[p].left = link } else { nodes[p].right = link }
            }
            let mapper = &data.mappers[split.feature];
            nodes.push(SplitNode {
                feature: split.feature,
                threshold: mapper.threshold(split.bin),
                default_left: split.default_left,
                left: Child::Leaf(l as u32),
                right: Child::Leaf(new_leaf as u32),
                gain: split.gain,
                cover: cover(parent_state.sums),
            });
            split_bins.push(split.bin);

            let (begin, end, depth) = (parent_state.begin, parent_state.end, parent_state.depth + 1);
            let mid = self.partition(
                begin,
                end,
                &data.columns[split.feature],
                split.bin,
                mapper.nan_bin(),
                split.default_left,
            );
            let parent_hist = self.leaves[l].hist.take();
            // Both children start from the parent's splittable features.
            self.split_features.copy_within(l * nf..(l + 1) * nf, new_leaf * nf);
            self.leaves[l] = LeafState {
                begin,
                end: mid,
                sums: split.left,
                depth,
                parent: Some((node, true)),
                hist: None,
                best: None,
            };
            self.leaves.push(LeafState {
                begin: mid,
                end,
                sums: split.right,
                depth,
                parent: Some((node, false)),
                hist: None,
                best: None,
            });
            if let Some(h) = parent_hist {
                // The last split needs no child histograms: the tree is full.
                if self.leaves.len() < cfg.num_leaves {
                    self.prepare_children(l, new_leaf, h, input);
                } else {
                    self.pool.give(h);
                }
            }
        }

        let leaves = self
            .leaves
            .iter_mut()
            .map(|l| {
                if let Some(h) = l.hist.take() {
                    self.pool.give(h);
                }
                Leaf { value: cfg.rules.leaf_output(l.sums) * cfg.learning_rate, cover: cover(l.sums) }
            })
            .collect();
        GrownTree { tree: Tree { nodes, leaves }, split_bins }
    }

    /// Whether leaf `l` may still be split: depth limit, and room for two children meeting the minimums.
    fn splittable(&self, l: usize, cfg: &GrowConfig) -> bool {
        let leaf = &self.leaves[l];
        cfg.max_depth.is_none_or(|d| leaf.depth < d) && cfg.rules.can_split(leaf.sums)
    }

    /// Builds the smaller child's histograms, derives the larger's from the parent's, and finds
    /// the best split of each child that may split.
    fn prepare_children(&mut self, left: usize, right: usize, mut parent_hist: LeafHist, input: &GrowInput<'_>) {
        let GrowInput { grad, hess, cfg, .. } = *input;
        let (left_ok, right_ok) = (self.splittable(left, cfg), self.splittable(right, cfg));
        if !left_ok && !right_ok {
            self.pool.give(parent_hist);
            return;
        }
        let left_rows = self.leaves[left].end - self.leaves[left].begin;
        let right_rows = self.leaves[right].end - self.leaves[right].begin;
        let (small, large, small_ok, large_ok) =
            if left_rows <= right_rows { (left, right, left_ok, right_ok) } else { (right, left, right_ok, left_ok) };
        let mut small_hist = self.pool.take(self.layout.len());
        let rows = &self.indices[self.leaves[small].begin..self.leaves[small].end];
        // Ordered gradients: gathered once per leaf, then read sequentially by every feature.
        gather(&mut self.ordered_grad, rows, grad);
        if !cfg.unit_hessian {
            gather(&mut self.ordered_hess, rows, hess);
        }
        let rows = Rows::Subset { rows, grad: &self.ordered_grad, hess: &self.ordered_hess };
        let sums = (small_ok.then_some(self.leaves[small].sums), large_ok.then_some(self.leaves[large].sums));
        // Both children hold the parent's splittable features (copied at the split).
        let nf = self.num_features;
        let features = &self.split_features[small * nf..(small + 1) * nf];
        let (best_small, best_large) =
            self.scan.scan_children(&self.layout, (&mut small_hist, &mut parent_hist), input, features, rows, sums);
        // A feature stays splittable in a child only if the child has a valid split on it.
        for (f, (s, l)) in self.scan.child_splits.iter().enumerate() {
            self.split_features[small * nf + f] = s.is_some();
            self.split_features[large * nf + f] = l.is_some();
        }
        for (leaf, hist, ok, best) in
            [(small, small_hist, small_ok, best_small), (large, parent_hist, large_ok, best_large)]
        {
            if ok {
                self.leaves[leaf].best = best;
                self.leaves[leaf].hist = Some(hist);
            } else {
                self.pool.give(hist);
            }
        }
    }

    /// Stable partition of `indices[begin..end]`, rows going left first; returns the boundary.
    /// Blocks are split in parallel into scratch, then copied back lefts-then-rights in block order.
    fn partition(
        &mut self,
        begin: usize,
        end: usize,
        col: &[u8],
        bin: u8,
        nan_bin: Option<u8>,
        default_left: bool,
    ) -> usize {
        let goes_left = |r: u32| {
            let b = col[r as usize];
            if Some(b) == nan_bin { default_left } else { b <= bin }
        };
        let len = end - begin;
        if self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
        let (src, dst) = (&self.indices[begin..end], &mut self.scratch[..len]);
        // One pass without branches on the direction: lefts fill `d` from the front, rights from
        // the back (each row is written at both ends; the slots between the two fronts are free, so
        // the stray write is overwritten later or lands on the row's own slot at the end), then the
        // rights are reversed back into row order.
        let split_block = |(s, d): (&[u32], &mut [u32])| {
            let (mut lw, mut rw) = (0, d.len());
            for &r in s {
                let left = goes_left(r);
                d[lw] = r;
                d[rw - 1] = r;
                lw += usize::from(left);
                rw -= usize::from(!left);
            }
            d[lw..].reverse();
            lw
        };
        if len >= 2 * ROW_BLOCK {
            src.par_chunks(ROW_BLOCK)
                .zip(dst.par_chunks_mut(ROW_BLOCK))
                .map(split_block)
                .collect_into_vec(&mut self.block_left);
        } else {
            self.block_left.clear();
            self.block_left.push(split_block((src, dst)));
        }
        let block = if len >= 2 * ROW_BLOCK { ROW_BLOCK } else { len.max(1) };
        let mid = begin + self.block_left.iter().sum::<usize>();
        // Each block's lefts and rights have their own places (lefts, then rights, in block order), so
        // the blocks are copied back in parallel too: a serial copy of every row at every split was a
        // part of each tree that more threads could not shorten.
        let (mut lefts_to, mut rights_to) = self.indices[begin..end].split_at_mut(mid - begin);
        let mut copies = Vec::with_capacity(self.block_left.len());
        for (chunk, &lefts) in self.scratch[..len].chunks(block).zip(&self.block_left) {
            let (l, rest) = std::mem::take(&mut lefts_to).split_at_mut(lefts);
            lefts_to = rest;
            let (r, rest) = std::mem::take(&mut rights_to).split_at_mut(chunk.len() - lefts);
            rights_to = rest;
            copies.push((chunk, l, r));
        }
        let copy = |(chunk, l, r): (&[u32], &mut [u32], &mut [u32])| {
            let (lefts, rights) = chunk.split_at(l.len());
            l.copy_from_slice(lefts);
            r.copy_from_slice(rights);
        };
        if copies.len() > 1 {
            copies.into_par_iter().for_each(copy)
        } else {
            copies.into_iter().for_each(copy)
        }
        mid
    }
}

/// `out[i] = values[rows[i]]`, in parallel blocks for large leaves.
fn gather(out: &mut Vec<f64>, rows: &[u32], values: &[f64]) {
    out.resize(rows.len(), 0.0);
    let fill = |(o, rs): (&mut [f64], &[u32])| {
        for (o, &r) in o.iter_mut().zip(rs) {
            *o = values[r as usize];
        }
    };
    if rows.len() >= 2 * ROW_BLOCK {
        out.par_chunks_mut(ROW_BLOCK).zip(rows.par_chunks(ROW_BLOCK)).for_each(fill);
    } else {
        fill((out, rows));
    }
}

/// Below this much work (rows plus a split scan, times features) a leaf is done on the calling
/// thread: spawning tasks would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// Whether a pass over `rows` rows of the `active` features is worth running in parallel.
fn worth_parallel(rows: usize, active: &[bool]) -> bool {
    (rows + 2 * MAX_BINS) * active.iter().filter(|&&a| a).count() >= PARALLEL_MIN_WORK
}

/// Features one histogram task fills in a single pass over a leaf's rows: enough that each row's
/// bins are fetched once for many histograms, few enough that their histograms stay in L2 cache.
const TASK_FEATURES: usize = 24;

/// `features` (ascending) cut into contiguous runs of about [`TASK_FEATURES`], as many runs as a
/// multiple of the pool's threads so that they balance. How features are grouped changes no sum.
fn feature_tasks<T>(features: Vec<T>) -> Vec<Vec<T>> {
    let threads = rayon::current_num_threads();
    let k = (features.len().div_ceil(TASK_FEATURES).div_ceil(threads) * threads).clamp(1, features.len().max(1));
    let (base, extra) = (features.len() / k, features.len() % k);
    let mut rest = features.into_iter();
    (0..k).map(|i| rest.by_ref().take(base + usize::from(i < extra)).collect()).collect()
}

/// Runs `task` over `tasks`, in parallel when `parallel`; results in task order.
fn run_tasks<T: Send, R: Send>(tasks: Vec<T>, parallel: bool, task: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if parallel { tasks.into_par_iter().map(task).collect() } else { tasks.into_iter().map(task).collect() }
}

/// One feature's histograms in [`ScanBuffers::scan_children`]: its index, the smaller child's, the parent's.
type ChildHists<'a> = (usize, &'a mut [f64], &'a mut [f64]);

/// Reusable per-leaf buffers of per-feature best splits.
#[derive(Debug, Default)]
struct ScanBuffers {
    root_splits: Vec<Option<SplitCandidate>>,
    child_splits: Vec<(Option<SplitCandidate>, Option<SplitCandidate>)>,
}

impl ScanBuffers {
    /// Fills a leaf's histograms of the `active` features over `rows` and returns its best split for
    /// totals `sums`: one pass over the rows per task of features, tasks in parallel.
    fn scan_leaf(
        &mut self,
        layout: &HistLayout,
        hist: &mut LeafHist,
        input: &GrowInput<'_>,
        rows: Rows<'_>,
        sums: BinStats,
    ) -> Option<SplitCandidate> {
        let GrowInput { data, active, cfg, .. } = *input;
        let targets: Vec<Target> = layout.split_mut(hist).into_iter().enumerate().filter(|&(f, _)| active[f]).collect();
        let task = |mut targets: Vec<Target>| {
            histogram::fill(&mut targets, data.rows(), rows, cfg.unit_hessian);
            let best =
                |(f, h): Target| (f, split::best_for_feature(f, layout.view(h), &data.mappers[f], sums, &cfg.rules));
            targets.into_iter().map(best).collect::<Vec<_>>()
        };
        let done = run_tasks(feature_tasks(targets), worth_parallel(rows.len(), active), task);
        self.root_splits.clear();
        self.root_splits.resize(active.len(), None);
        for (f, best) in done.into_iter().flatten() {
            self.root_splits[f] = best;
        }
        split::pick_best(self.root_splits.iter().copied())
    }

    /// Builds the smaller child's histograms from `rows`, turns the parent's into the larger child's,
    /// and returns the best split of each child whose totals are given in `sums` (smaller,
    /// larger; None: may not split): tasks of the features marked in `features`, in parallel (the
    /// others' histograms are left stale: no descendant reads them).
    fn scan_children(
        &mut self,
        layout: &HistLayout,
        (small, parent): (&mut LeafHist, &mut LeafHist),
        input: &GrowInput<'_>,
        features: &[bool],
        rows: Rows<'_>,
        sums: (Option<BinStats>, Option<BinStats>),
    ) -> (Option<SplitCandidate>, Option<SplitCandidate>) {
        let GrowInput { data, cfg, .. } = *input;
        let marked: Vec<ChildHists> = (layout.split_mut(small).into_iter().zip(layout.split_mut(parent)))
            .enumerate()
            .filter(|&(f, _)| features[f])
            .map(|(f, (s, p))| (f, s, p))
            .collect();
        let task = |mut group: Vec<ChildHists>| {
            let mut targets: Vec<Target> = group.iter_mut().map(|(f, s, _)| (*f, &mut **s)).collect();
            histogram::fill(&mut targets, data.rows(), rows, cfg.unit_hessian);
            drop(targets);
            group
                .into_iter()
                .map(|(f, s, p)| {
                    histogram::subtract_feature(p, s);
                    let best = |h: &[f64], sums: Option<BinStats>| {
                        sums.and_then(|sums| {
                            split::best_for_feature(f, layout.view(h), &data.mappers[f], sums, &cfg.rules)
                        })
                    };
                    (f, best(s, sums.0), best(p, sums.1))
                })
                .collect::<Vec<_>>()
        };
        let done = run_tasks(feature_tasks(marked), worth_parallel(rows.len(), features), task);
        self.child_splits.clear();
        self.child_splits.resize(features.len(), (None, None));
        for (f, s, l) in done.into_iter().flatten() {
            self.child_splits[f] = (s, l);
        }
        (
            split::pick_best(self.child_splits.iter().map(|c| c.0)),
            split::pick_best(self.child_splits.iter().map(|c| c.1)),
        )
    }
}

/// The cover of a leaf or node with these sums.
fn cover(s: BinStats) -> Cover {
    Cover { sum_hessian: s.hess, count: u64::from(s.count) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(value: f64) -> Leaf {
        Leaf { value, cover: Cover { sum_hessian: 1.0, count: 1 } }
    }

    fn node(threshold: f64, default_left: bool, left: Child, right: Child) -> SplitNode {
        SplitNode {
            feature: 0,
            threshold,
            default_left,
            left,
            right,
            gain: 1.0,
            cover: Cover { sum_hessian: 2.0, count: 2 },
        }
    }

    #[test]
    fn routing_and_json_round_trip_with_infinite_threshold() {
        let tree = Tree {
            nodes: vec![
                node(1.5, true, Child::Leaf(0), Child::Split(1)),
                node(f64::INFINITY, false, Child::Leaf(1), Child::Leaf(2)),
            ],
            leaves: vec![leaf(-1.0), leaf(2.0), leaf(3.0)],
        };
        assert_eq!(tree.predict(&[1.0]), -1.0);
        assert_eq!(tree.predict(&[f64::NAN]), -1.0);
        assert_eq!(tree.predict(&[7.0]), 2.0);
        assert_eq!(tree.predict(&[]), -1.0);
        let json = serde_json::to_string(&tree).unwrap();
        assert!(json.contains("\"inf\""));
        let back: Tree = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tree);
    }

    /// x1 acts only through its interaction with x2 (±3, the sign flipping with x2) plus a 0.1
    /// step, so at the root an x1 split moves gradient sums of ±1 only: with lambda_l1 = 5 it gains
    /// nothing, although within either x2 child an x1 split would gain (about 140). As in LightGBM,
    /// x1 is then closed to the root's descendants and the tree is a single x2 split. LightGBM 4.7
    /// on these rows (learning_rate 1, num_leaves 4, min_data_in_leaf 1, min_sum_hessian 0,
    /// min_data_in_bin 1, 3 rounds): one 2-leaf tree, then no split; training MSE 9.064999925494217
    /// (labels such as 13.1 at f32 precision, as LightGBM holds them). With lambda_l1 = 0 its first
    /// tree has 4 leaves.
    #[test]
    fn a_feature_without_a_valid_split_is_closed_to_descendants() {
        use crate::gbdt::{Dataset, Params, StopReason, train};
        let (mut x1, mut x2, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for a in [-1.0, 1.0] {
            for b in [-1.0, 1.0] {
                for _ in 0..10 {
                    let (hi, up) = (a > 0.0, b > 0.0);
                    let sign = if hi == up { 1.0 } else { -1.0 };
                    x1.push(b);
                    x2.push(a);
                    y.push(10.0 * f64::from(u8::from(hi)) + 3.0 * sign + 0.1 * f64::from(u8::from(up)));
                }
            }
        }
        let data = Dataset::from_columns(vec!["x1".into(), "x2".into()], vec![x1, x2], y).unwrap();
        let fit = |lambda_l1: f64| {
            let params = Params {
                learning_rate: 1.0,
                num_leaves: 4,
                min_data_in_leaf: 1,
                min_sum_hessian_in_leaf: 0.0,
                min_data_in_bin: 1,
                lambda_l1,
                num_boost_round: 3,
                ..Params::default()
            };
            train(&params, &data, None, |_| std::ops::ControlFlow::Continue(())).unwrap()
        };
        assert_eq!(fit(0.0).trees()[0].num_leaves(), 4);
        let l1 = fit(5.0);
        let leaves: Vec<usize> = l1.trees().iter().map(Tree::num_leaves).collect();
        assert_eq!(leaves, [2]);
        assert_eq!(l1.trees()[0].nodes()[0].feature, 1);
        assert_eq!(l1.info().stop_reason, StopReason::NoSplit);
        let pred = l1.predict_dataset(&data).unwrap();
        let mse = pred.iter().zip(data.labels()).map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / 40.0;
        assert_eq!(mse, 9.064999925494217);
    }

    #[test]
    fn malformed_trees_are_rejected() {
        let cyclic = r#"{"nodes":[{"feature":0,"threshold":1.0,"default_left":true,"left":{"split":0},
            "right":{"leaf":0},"gain":0.0,"cover":{"sum_hessian":1.0,"count":1}}],
            "leaves":[{"value":0.0,"cover":{"sum_hessian":1.0,"count":1}},{"value":0.0,"cover":{"sum_hessian":1.0,"count":1}}]}"#;
        assert!(serde_json::from_str::<Tree>(cyclic).unwrap_err().to_string().contains("invalid child"));
        let shape = r#"{"nodes":[],"leaves":[]}"#;
        assert!(serde_json::from_str::<Tree>(shape).is_err());
        let twice = r#"{"nodes":[{"feature":0,"threshold":1.0,"default_left":true,"left":{"leaf":0},
            "right":{"leaf":0},"gain":0.0,"cover":{"sum_hessian":1.0,"count":1}}],
            "leaves":[{"value":0.0,"cover":{"sum_hessian":1.0,"count":1}},{"value":0.0,"cover":{"sum_hessian":1.0,"count":1}}]}"#;
        assert!(serde_json::from_str::<Tree>(twice).is_err());
    }
}
