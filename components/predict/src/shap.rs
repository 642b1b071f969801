//! Exact path-dependent TreeSHAP for our GBDT [`Booster`]: the values of Lundberg et al. 2018
//! ("Consistent Individualized Feature Attribution for Tree Ensembles", Algorithm 2), as LightGBM's
//! `pred_contrib` and SHAP's `tree_shap` compute them, by a faster route.
//!
//! A feature absent from a coalition is integrated out by following both children of its splits,
//! weighted by the share of training rows that went each way. That share is taken from the row
//! **count** of the covers (`Cover::count`), as LightGBM does with `internal_count`/`leaf_count`,
//! so our explanations match LightGBM's for the same trees; the hessian sum (XGBoost's cover) would
//! differ for the binary objective. Rows with NaN, or shorter than the model's features, follow
//! each split's `default_left`, exactly as [`Booster::predict_raw`] routes them.
//!
//! **The route.** For one leaf with value `v` whose path holds the features `F` (a feature split
//! several times on the path counts once, with its shares multiplied and its directions and-ed),
//! feature `j` has the share `z_j` of training rows that took the path's way at its splits and
//! `o_j` = 1 if the row takes that way too, else 0. The Shapley value of `i` for this leaf is
//! `v (o_i − z_i) Σ_S |S|!(|F|−|S|−1)!/|F|! Π_{j∈S} o_j Π_{j∉S, j≠i} z_j`, and since
//! `∫₀¹ t^s (1−t)^{d−1−s} dt = s!(d−1−s)!/d!` that sum is `∫₀¹ Π_{j≠i} (z_j + (o_j − z_j) t) dt`:
//! a polynomial of degree < depth, which Gauss–Legendre quadrature with ⌈depth/2⌉ points integrates
//! exactly. So one recursion carries the path's product at those points down, sums `v ×` product
//! back up per subtree, and credits each split's feature with `(o − z) Σ_k w_k B_k / f(t_k)` over
//! the leaves below it (the idea of Yu et al. 2022, "Linear TreeShap"): O(nodes × depth) per tree
//! and row, against Algorithm 2's O(leaves × depth²) with a division in its inner loop. A feature
//! split again lower down takes the leaves below that split out of the upper split's sum (their
//! factor is the merged one), via a per-split correction.

use serde::Serialize;
use thiserror::Error;
use train_batch::gbdt::{Booster, Child, Tree};

/// A row's SHAP values: `expected_value + Σ contributions` equals the model's raw score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The model's output with every feature integrated out: base score plus each tree's
    /// cover-weighted mean leaf value.
    pub expected_value: f64,
    /// One SHAP value per model feature, in the model's feature order (raw-score units).
    pub contributions: Vec<f64>,
}

/// One feature's part in a prediction, for reporting the strongest drivers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureContribution {
    /// Feature name.
    pub name: String,
    /// The row's value of the feature (NaN when missing; serialised as null).
    pub value: f64,
    /// Its SHAP value.
    pub contribution: f64,
}

/// Reusable TreeSHAP state for one model: its trees as compact bytes (with the cover fractions
/// precomputed), read in place, the expected value, each tree's quadrature, and buffers sized for its
/// deepest tree.
///
/// The bytes are what a server caches ([`Explainer::as_bytes`]) and reads back per request
/// ([`Explainer::from_bytes`]): the trees are never copied into structs, and each node is checked
/// when a walk reaches it, so reading them costs no pass of its own.
#[derive(Debug, Clone)]
pub struct Explainer {
    bytes: Vec<u8>,
    num_features: usize,
    expected_value: f64,
    /// Where the split records end and the leaf values begin in `bytes`.
    leaves_at: usize,
    /// Where the leaf values end.
    leaves_end: usize,
    /// Each tree with more than one leaf: its root and the end of its nodes (indices into the split
    /// records), and its number of quadrature points (before padding).
    trees: Vec<TreeSpan>,
    /// Gauss–Legendre rules on [0, 1]: `rules[m - 1]` has `m` points, padded.
    rules: Vec<Rule>,
    scratch: Scratch,
}

/// One tree's place among the split records, and its quadrature.
#[derive(Debug, Clone, Copy)]
struct TreeSpan {
    root: u32,
    end: u32,
    points: u32,
}

/// A split node as the recursion needs it, with no child cover to fetch and divide on the way down
/// (those loads dominated a profile). Stored as [`NODE_BYTES`] little-endian bytes.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    threshold: f64,
    /// Shares of the node's training rows that went left and right ([`child_fractions`]).
    zero_left: f64,
    zero_right: f64,
    feature: u32,
    /// Index of a split record, or of a leaf value with [`LEAF`] set.
    left: u32,
    right: u32,
    default_left: bool,
}

impl FlatNode {
    fn write(&self, out: &mut Vec<u8>) {
        for x in [self.threshold, self.zero_left, self.zero_right] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in [self.feature, self.left, self.right] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.push(u8::from(self.default_left));
    }

    fn read(b: &[u8; NODE_BYTES]) -> Self {
        let f64_at = |at: usize| f64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        FlatNode {
            threshold: f64_at(0),
            zero_left: f64_at(8),
            zero_right: f64_at(16),
            feature: u32_at(24),
            left: u32_at(28),
            right: u32_at(32),
            default_left: b[36] != 0,
        }
    }
}

/// Marks a [`FlatNode`] child as a leaf.
const LEAF: u32 = 1 << 31;

/// Quadrature points are handled in groups of this many (a multiple of the vector width).
const LANES: usize = 4;

/// The explainer's bytes do not hold together (a child out of its tree or not below its parent, a
/// feature or leaf out of range, a tree deeper than its quadrature): a corrupted cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("inconsistent TreeSHAP tables (corrupted cache entry)")]
pub struct InvalidExplainer;

/// One feature on the path from the root to the current node, with its merged fractions.
#[derive(Debug, Clone, Copy)]
struct PathFeature {
    feature: usize,
    /// Product of the path's cover shares at this feature's splits (its factor with the feature absent).
    zero: f64,
    /// 1 when the row follows the path at all of them, else 0 (its factor with the feature present).
    one: f64,
}

/// What a walk finds at a node ([`Walk::step`]).
enum Step {
    /// A leaf and its value.
    Leaf(f64),
    /// A split on `feature`, with an earlier split of it on the path, and its children as (child,
    /// zero, one): the child the row follows first, with 1 for `one` unless an earlier split turned
    /// the row away.
    Split { feature: usize, earlier: Option<Earlier>, children: [(u32, f64, f64); 2] },
}

/// The path entry of an earlier split of a node's feature, and its factors.
struct Earlier {
    entry: usize,
    zero: f64,
    one: f64,
}

/// A quadrature rule on [0, 1], padded to whole [`LANES`] with points of weight 0, which add exactly
/// 0 (every factor there is positive), so the loops over points run in whole vectors.
#[derive(Debug, Clone)]
struct Rule {
    t: Vec<f64>,
    w: Vec<f64>,
}

/// Buffers of the recursion, sized for the deepest tree and its number of points, so explaining
/// allocates nothing. Level `l`'s values at the quadrature points lie at `[l * m, (l + 1) * m)`
/// (`product` and `below` serve only [`Walk::visit`]; [`Walk::visit_fixed`] keeps them in arrays).
#[derive(Debug, Clone)]
struct Scratch {
    /// The path's features; a feature split again is pushed again, and the last one is current.
    path: Vec<PathFeature>,
    /// Per level: the product of the path's factors at each point.
    product: Vec<f64>,
    /// Per level: Σ leaf value × product at the leaf, over the leaves below.
    below: Vec<f64>,
    /// Per path entry: the `below` of the subtrees where its feature is split again.
    resplit: Vec<f64>,
}

impl Explainer {
    /// Prepares explanations of `booster`: one pass over its nodes for the compact trees and the
    /// expected value.
    ///
    /// # Panics
    /// If the model has 2³¹ or more nodes or leaves in all.
    pub fn new(booster: &Booster) -> Self {
        let mut weights = Vec::new();
        let mut expected_value = booster.base_score();
        let (mut nodes, mut leaf_values, mut roots) = (Vec::new(), Vec::new(), Vec::new());
        for tree in booster.trees() {
            expected_value += tree_expected_value(tree, &mut weights);
            if tree.nodes().is_empty() {
                // A single leaf is all expected value.
                continue;
            }
            let (node_base, leaf_base) = (nodes.len(), leaf_values.len());
            let child = |c: Child| match c {
                Child::Split(j) => index_u32(node_base + j as usize),
                Child::Leaf(j) => index_u32(leaf_base + j as usize) | LEAF,
            };
            roots.push(index_u32(node_base));
            for (k, n) in tree.nodes().iter().enumerate() {
                let (zero_left, zero_right) = child_fractions(tree, k);
                nodes.push(FlatNode {
                    threshold: n.threshold,
                    zero_left,
                    zero_right,
                    feature: u32::try_from(n.feature).expect("feature index fits u32"),
                    left: child(n.left),
                    right: child(n.right),
                    default_left: n.default_left,
                });
            }
            leaf_values.extend(tree.leaves().iter().map(|l| l.value));
        }
        // Splits on the longest path down to each node (children follow their parents). A product
        // over a path's features, less one, has degree below its depth: ⌈depth / 2⌉ points
        // integrate it exactly.
        let mut depth = vec![1u32; nodes.len()];
        for k in 0..nodes.len() {
            for c in [nodes[k].left, nodes[k].right] {
                if c & LEAF == 0 {
                    depth[c as usize] = depth[c as usize].max(depth[k] + 1);
                }
            }
        }
        let points = roots
            .iter()
            .zip(tree_ends(&roots, nodes.len()))
            .map(|(&root, end)| depth[root as usize..end].iter().max().map_or(1, |d| d.div_ceil(2)));

        let num_features = u32::try_from(booster.num_features()).expect("feature count fits u32");
        let mut bytes =
            Vec::with_capacity(HEADER_BYTES + nodes.len() * NODE_BYTES + leaf_values.len() * 8 + roots.len() * 8);
        bytes.extend_from_slice(BYTES_MAGIC);
        for n in [num_features, index_u32(nodes.len()), index_u32(leaf_values.len()), index_u32(roots.len())] {
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        bytes.extend_from_slice(&expected_value.to_le_bytes());
        for n in &nodes {
            n.write(&mut bytes);
        }
        for v in &leaf_values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for (root, points) in roots.iter().zip(points) {
            bytes.extend_from_slice(&root.to_le_bytes());
            bytes.extend_from_slice(&points.to_le_bytes());
        }
        Explainer::from_bytes(bytes).expect("an explainer's own bytes hold together")
    }

    /// The model output with no feature known (the SHAP base value).
    pub fn expected_value(&self) -> f64 {
        self.expected_value
    }

    /// SHAP values of `row`; features past its end count as missing.
    pub fn explain(&mut self, row: &[f64]) -> Result<Explanation, InvalidExplainer> {
        let mut contributions = vec![0.0; self.num_features];
        self.explain_into(row, &mut contributions)?;
        Ok(Explanation { expected_value: self.expected_value, contributions })
    }

    /// Writes the SHAP values of `row` into `out` (overwritten; one slot per model feature) without
    /// allocating, and returns the expected value. An error means the bytes this explainer was read
    /// from are inconsistent (never for one built by [`Explainer::new`]); `out` then holds garbage.
    ///
    /// # Panics
    /// If `out` is shorter than the model's feature count.
    pub fn explain_into(&mut self, row: &[f64], out: &mut [f64]) -> Result<f64, InvalidExplainer> {
        let num_features = self.num_features;
        assert!(out.len() >= num_features, "output has {} slots for {num_features} features", out.len());
        out.fill(0.0);
        let nodes = &self.bytes[HEADER_BYTES..self.leaves_at];
        let leaf_values = &self.bytes[self.leaves_at..self.leaves_end];
        for tree in &self.trees {
            let Rule { t, w } = &self.rules[tree.points as usize - 1];
            let m = t.len();
            let mut walk = Walk {
                nodes,
                leaf_values,
                end: tree.end,
                max_splits: 2 * tree.points as usize,
                num_features,
                row,
                phi: out,
                t,
                w,
                m,
                scratch: &mut self.scratch,
                broken: false,
            };
            // Trees up to 32 deep (all but the rarest) carry their points in arrays.
            match m {
                4 => _ = walk.visit_fixed::<4>(tree.root, 0, [1.0; 4]),
                8 => _ = walk.visit_fixed::<8>(tree.root, 0, [1.0; 8]),
                16 => _ = walk.visit_fixed::<16>(tree.root, 0, [1.0; 16]),
                _ => {
                    walk.scratch.product[..m].fill(1.0);
                    walk.visit(tree.root, 0);
                }
            }
            if walk.broken {
                return Err(InvalidExplainer);
            }
        }
        Ok(self.expected_value)
    }
}

/// `n` as a u32 below [`LEAF`].
///
/// # Panics
/// At 2³¹ or more.
fn index_u32(n: usize) -> u32 {
    u32::try_from(n).ok().filter(|&n| n < LEAF).expect("fewer than 2^31 nodes and leaves")
}

/// SHAP values of one row: see the module docs. For many rows, reuse an [`Explainer`].
pub fn explain(booster: &Booster, row: &[f64]) -> Explanation {
    Explainer::new(booster).explain(row).expect("an explainer's own bytes hold together")
}

/// The `k` largest contributions by magnitude (ties by name), with the row's feature values.
pub fn top_k(expl: &Explanation, feature_names: &[String], row: &[f64], k: usize) -> Vec<FeatureContribution> {
    let mut all: Vec<FeatureContribution> = expl
        .contributions
        .iter()
        .zip(feature_names)
        .enumerate()
        .map(|(i, (&contribution, name))| FeatureContribution {
            name: name.clone(),
            value: row.get(i).copied().unwrap_or(f64::NAN),
            contribution,
        })
        .collect();
    all.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()).then_with(|| a.name.cmp(&b.name)));
    all.truncate(k);
    all
}

/// Row count of a node or leaf.
fn count(tree: &Tree, child: Child) -> f64 {
    match child {
        Child::Split(j) => tree.nodes()[j as usize].cover.count as f64,
        Child::Leaf(j) => tree.leaves()[j as usize].cover.count as f64,
    }
}

/// Shares of node `k`'s training rows that went left and right. The parent's count is the
/// denominator (LightGBM's choice); a node with no rows (only in hand-made trees) splits evenly,
/// so no NaN can arise.
fn child_fractions(tree: &Tree, k: usize) -> (f64, f64) {
    let node = &tree.nodes()[k];
    let total = node.cover.count as f64;
    if total > 0.0 { (count(tree, node.left) / total, count(tree, node.right) / total) } else { (0.5, 0.5) }
}

/// Σ leaf value × product of cover fractions down its path: the tree's output with every feature
/// integrated out. It is computed with the very fractions the recursion uses, so the SHAP values
/// add up to the prediction even where a hand-made tree's counts do not add up. Children have
/// larger indices than parents, so one forward pass over the nodes suffices.
fn tree_expected_value(tree: &Tree, weights: &mut Vec<f64>) -> f64 {
    let nodes = tree.nodes();
    if nodes.is_empty() {
        return tree.leaves()[0].value;
    }
    weights.clear();
    weights.resize(nodes.len(), 0.0);
    weights[0] = 1.0;
    let mut total = 0.0;
    for (k, node) in nodes.iter().enumerate() {
        let (zl, zr) = child_fractions(tree, k);
        for (child, z) in [(node.left, zl), (node.right, zr)] {
            let w = weights[k] * z;
            match child {
                Child::Split(j) => weights[j as usize] = w,
                Child::Leaf(j) => total += w * tree.leaves()[j as usize].value,
            }
        }
    }
    total
}

/// Magic and version of [`Explainer::as_bytes`].
const BYTES_MAGIC: &[u8; 4] = b"SHP2";

/// The header: magic, feature, split, leaf and tree counts (u32 each), expected value (f64).
const HEADER_BYTES: usize = 28;

/// Bytes per serialised [`FlatNode`]: three f64, three u32, one flag.
const NODE_BYTES: usize = 37;

impl Explainer {
    /// The compact trees as bytes, so a server can cache them instead of rebuilding them from the model
    /// on every request (Spin keeps nothing between requests): the header, the split records, the
    /// leaf values (f64), then per tree its root and number of quadrature points (u32 each).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes [`Explainer::as_bytes`] back; None when the header, the lengths or the trees' roots and
    /// quadratures do not hold together. The nodes are not read here: each is checked when a walk
    /// reaches it ([`Explainer::explain`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Explainer> {
        let header = bytes.strip_prefix(BYTES_MAGIC)?;
        let u32_at = |b: &[u8], at: usize| -> Option<u32> { Some(u32::from_le_bytes(*b.get(at..)?.first_chunk()?)) };
        let num_features = u32_at(header, 0)? as usize;
        let (n_nodes, n_leaves, n_trees) =
            (u32_at(header, 4)? as usize, u32_at(header, 8)? as usize, u32_at(header, 12)? as usize);
        let expected_value = f64::from_le_bytes(*header.get(16..)?.first_chunk()?);
        let leaves_at = HEADER_BYTES.checked_add(n_nodes.checked_mul(NODE_BYTES)?)?;
        let leaves_end = leaves_at.checked_add(n_leaves.checked_mul(8)?)?;
        if bytes.len() != leaves_end.checked_add(n_trees.checked_mul(8)?)? {
            return None;
        }
        let tree_bytes = &bytes[leaves_end..];
        let mut trees: Vec<TreeSpan> = Vec::with_capacity(n_trees);
        for k in 0..n_trees {
            let (root, points) = (u32_at(tree_bytes, 8 * k)?, u32_at(tree_bytes, 8 * k + 4)?);
            // Trees follow each other from 0: each ends where the next begins.
            if (k == 0 && root != 0) || root as usize >= n_nodes {
                return None;
            }
            let end = if k + 1 < n_trees { u32_at(tree_bytes, 8 * (k + 1))? } else { n_nodes as u32 };
            // A tree of `n` splits is at most `n` deep, so it needs at most ⌈n / 2⌉ points.
            if end <= root || points == 0 || points > (end - root).div_ceil(2) {
                return None;
            }
            trees.push(TreeSpan { root, end, points });
        }
        let most = trees.iter().map(|t| t.points as usize).max().unwrap_or(0);
        let rules: Vec<_> = (1..=most)
            .map(|m| {
                let (mut t, mut w) = gauss_legendre(m);
                t.resize(padded(m), 0.5);
                w.resize(t.len(), 0.0);
                Rule { t, w }
            })
            .collect();
        let (levels, stride) = (2 * most + 1, padded(most));
        let scratch = Scratch {
            path: Vec::with_capacity(levels),
            product: vec![0.0; (levels + 1) * stride],
            below: vec![0.0; (levels + 1) * stride],
            resplit: vec![0.0; levels * stride],
        };
        Some(Explainer { bytes, num_features, expected_value, leaves_at, leaves_end, trees, rules, scratch })
    }
}

/// Points of a rule of `m` with its padding: 4, 8 or 16 (the lengths [`Walk::visit_fixed`] is compiled
/// for), else whole [`LANES`].
fn padded(m: usize) -> usize {
    match m {
        0..=4 => 4,
        5..=8 => 8,
        9..=16 => 16,
        _ => m.next_multiple_of(LANES),
    }
}

/// Where each tree's nodes end: at the next tree's root, the last at `n_nodes`.
fn tree_ends(roots: &[u32], n_nodes: usize) -> impl Iterator<Item = usize> + '_ {
    roots.iter().skip(1).map(|&r| r as usize).chain([n_nodes])
}

/// One tree's recursion for one row, adding into `phi`, with the tree's quadrature rule.
struct Walk<'t, 'r, 'p, 's> {
    /// The split records and leaf values, as bytes.
    nodes: &'t [u8],
    leaf_values: &'t [u8],
    /// The end of this tree's split records: a child split lies after its parent and before this.
    end: u32,
    /// The most splits a path may hold for the tree's quadrature to be exact.
    max_splits: usize,
    num_features: usize,
    row: &'r [f64],
    phi: &'p mut [f64],
    /// Quadrature points and weights on [0, 1], `m` of each (a multiple of [`LANES`]).
    t: &'t [f64],
    w: &'t [f64],
    m: usize,
    scratch: &'s mut Scratch,
    /// Set when a node does not hold together; the walk then stops going down.
    broken: bool,
}

impl Walk<'_, '_, '_, '_> {
    /// Split `id`, when its record holds together: a known feature, children inside the tree and
    /// after it (so no walk can leave the tree or loop).
    fn node(&self, id: u32) -> Option<FlatNode> {
        let at = id as usize * NODE_BYTES;
        let node = FlatNode::read(self.nodes.get(at..at + NODE_BYTES)?.try_into().ok()?);
        let child_ok = |c: u32| c & LEAF != 0 || (c > id && c < self.end);
        ((node.feature as usize) < self.num_features && child_ok(node.left) && child_ok(node.right)).then_some(node)
    }

    /// What both recursions do first at node `id` (a split, or a leaf with [`LEAF`]) on `level`: read
    /// and check it, and for a split, order its children (the one the row follows first) with their
    /// factors, merged with an earlier split of the same feature on the path. None, with the walk
    /// marked broken, when the node does not hold together.
    #[inline(always)]
    fn step(&mut self, id: u32, level: usize) -> Option<Step> {
        if id & LEAF != 0 {
            let at = (id & !LEAF) as usize * 8;
            let value = self.leaf_values.get(at..at + 8).and_then(|b| b.try_into().ok()).map(f64::from_le_bytes);
            self.broken |= value.is_none();
            return value.map(Step::Leaf);
        }
        let Some(node) = self.node(id).filter(|_| level < self.max_splits) else {
            self.broken = true;
            return None;
        };
        let feature = node.feature as usize;
        let x = self.row.get(feature).copied().unwrap_or(f64::NAN);
        let goes_left = if x.is_nan() { node.default_left } else { x <= node.threshold };
        let (hot, cold, hot_zero, cold_zero) = if goes_left {
            (node.left, node.right, node.zero_left, node.zero_right)
        } else {
            (node.right, node.left, node.zero_right, node.zero_left)
        };
        // A feature split again on this path: its factor becomes the merged one below this split.
        let path = &self.scratch.path;
        let earlier = path.iter().rposition(|e| e.feature == feature);
        let merged = |share: f64, follows: f64| match earlier {
            Some(e) => (path[e].zero * share, path[e].one * follows),
            None => (share, follows),
        };
        let ((hot_zero, hot_one), (cold_zero, cold_one)) = (merged(hot_zero, 1.0), merged(cold_zero, 0.0));
        Some(Step::Split {
            feature,
            earlier: earlier.map(|entry| Earlier { entry, zero: path[entry].zero, one: path[entry].one }),
            children: [(hot, hot_zero, hot_one), (cold, cold_zero, cold_one)],
        })
    }

    /// Returns `below` for node `id` (a split, or a leaf with [`LEAF`]) whose path product is
    /// `product`, crediting every split below with its features' SHAP values: the recursion for
    /// rules of `N` points, which it holds in arrays (in registers and on the stack, where [`visit`]
    /// indexes per-level buffers). The same arithmetic in the same order as `visit`.
    ///
    /// [`visit`]: Walk::visit
    fn visit_fixed<const N: usize>(&mut self, id: u32, level: usize, product: [f64; N]) -> [f64; N] {
        let (feature, earlier, children) = match self.step(id, level) {
            Some(Step::Split { feature, earlier, children }) => (feature, earlier, children),
            Some(Step::Leaf(value)) => return product.map(|p| value * p),
            None => return [0.0; N],
        };
        let t: &[f64; N] = self.t.try_into().expect("N points");
        let w: &[f64; N] = self.w.try_into().expect("N points");
        let mut below = [0.0; N];
        for (child, zero, one) in children {
            // Neither present nor reachable when absent: every product below is 0.
            if zero == 0.0 && one == 0.0 {
                continue;
            }
            let mut down = [0.0; N];
            for i in 0..N {
                down[i] = product[i] * (zero + (one - zero) * t[i]);
            }
            if let Some(e) = &earlier {
                // Never 0: the earlier entry was not (0, 0), or it would not have been visited.
                for i in 0..N {
                    down[i] /= e.zero + (e.one - e.zero) * t[i];
                }
            }
            let path = &mut self.scratch.path;
            let entry = path.len();
            path.push(PathFeature { feature, zero, one });
            self.scratch.resplit[entry * N..(entry + 1) * N].fill(0.0);
            let sub = self.visit_fixed::<N>(child, level + 1, down);
            self.scratch.path.pop();
            let resplit = &mut self.scratch.resplit;
            if one != zero {
                // The leaves below whose factor for this feature is this split's (not a lower one's).
                let own = &resplit[entry * N..(entry + 1) * N];
                self.phi[feature] += credit(t, w, &sub, own, zero, one);
            }
            if let Some(e) = &earlier {
                for (r, &b) in resplit[e.entry * N..(e.entry + 1) * N].iter_mut().zip(&sub) {
                    *r += b;
                }
            }
            for i in 0..N {
                below[i] += sub[i];
            }
        }
        below
    }

    /// Sets `below` of `level` for node `id` (a split, or a leaf with [`LEAF`]) whose path product
    /// is `product` of `level`, crediting every split below with its features' SHAP values.
    /// For rules of any length (trees deeper than 32).
    fn visit(&mut self, id: u32, level: usize) {
        let m = self.m;
        let (here, next) = (level * m..(level + 1) * m, (level + 1) * m..(level + 2) * m);
        let (feature, earlier, children) = match self.step(id, level) {
            Some(Step::Split { feature, earlier, children }) => (feature, earlier, children),
            Some(Step::Leaf(value)) => {
                let Scratch { product, below, .. } = &mut *self.scratch;
                for (b, p) in below[here.clone()].iter_mut().zip(&product[here]) {
                    *b = value * p;
                }
                return;
            }
            None => return,
        };
        self.scratch.below[here.clone()].fill(0.0);
        for (child, zero, one) in children {
            let Scratch { path, product, resplit, .. } = &mut *self.scratch;
            // Neither present nor reachable when absent: every product below is 0.
            if zero == 0.0 && one == 0.0 {
                continue;
            }
            let (up, down) = product.split_at_mut(next.start);
            for ((p, &q), &t) in down[..m].iter_mut().zip(&up[here.clone()]).zip(self.t) {
                *p = q * (zero + (one - zero) * t);
            }
            if let Some(e) = &earlier {
                // Never 0: the earlier entry was not (0, 0), or it would not have been visited.
                for (p, &t) in down[..m].iter_mut().zip(self.t) {
                    *p /= e.zero + (e.one - e.zero) * t;
                }
            }
            let entry = path.len();
            path.push(PathFeature { feature, zero, one });
            resplit[entry * m..(entry + 1) * m].fill(0.0);
            self.visit(child, level + 1);
            let Scratch { path, below, resplit, .. } = &mut *self.scratch;
            path.pop();
            let (above, sub) = below.split_at_mut(next.start);
            let sub = &sub[..m];
            if one != zero {
                // The leaves below whose factor for this feature is this split's (not a lower one's).
                let own = &resplit[entry * m..(entry + 1) * m];
                self.phi[feature] += credit(self.t, self.w, sub, own, zero, one);
            }
            if let Some(e) = &earlier {
                for (r, &b) in resplit[e.entry * m..(e.entry + 1) * m].iter_mut().zip(sub) {
                    *r += b;
                }
            }
            for (a, &b) in above[here.clone()].iter_mut().zip(sub) {
                *a += b;
            }
        }
    }
}

/// A split's SHAP credit for its feature, `(one − zero) Σ w (sub − own) / (zero + (one − zero) t)` over
/// the points: the leaves below (`sub`) less those whose factor is a lower split's (`own`), with this
/// split's factor divided out. Summed in [`LANES`] running lanes, so both recursions give the same bits.
#[inline(always)]
fn credit(t: &[f64], w: &[f64], sub: &[f64], own: &[f64], zero: f64, one: f64) -> f64 {
    let mut lanes = [0.0; LANES];
    for (k, (((&t, &w), &sub), &own)) in t.iter().zip(w).zip(sub).zip(own).enumerate() {
        lanes[k % LANES] += w * (sub - own) / (zero + (one - zero) * t);
    }
    (one - zero) * lanes.iter().sum::<f64>()
}

/// The `m`-point Gauss–Legendre rule on [0, 1] (nodes, weights): exact for polynomials of degree
/// below `2m`. Nodes are the roots of the Legendre polynomial `P_m`, found by Newton's method from
/// the usual cosine guesses, to f64 precision.
fn gauss_legendre(m: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut nodes, mut weights) = (vec![0.0; m], vec![0.0; m]);
    let n = m as f64;
    for i in 0..m.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_m(x) and P_m'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=m {
                let k = k as f64;
                (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
            }
            let p = if m == 1 { x } else { p1 };
            let p_prev = if m == 1 { 1.0 } else { p0 };
            derivative = n * (x * p - p_prev) / (x * x - 1.0);
            let step = p / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        // Symmetric pair on [-1, 1], mapped to [0, 1] (weights halve).
        let weight = 1.0 / ((1.0 - x * x) * derivative * derivative);
        nodes[i] = (1.0 - x) / 2.0;
        nodes[m - 1 - i] = (1.0 + x) / 2.0;
        weights[i] = weight;
        weights[m - 1 - i] = weight;
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use serde_json::{Value, json};
    use train_batch::gbdt::{Dataset, Params, train};

    use super::*;

    use train_batch::gbdt::SplitMix64 as TestRng;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("x{i}")).collect()
    }

    /// Rows of `features` uniform values with ~`nan_rate` missing, and a nonlinear label with
    /// interactions (so trees reuse features along paths) that also depends on missingness.
    fn data(rows: usize, features: usize, nan_rate: f64, seed: u64) -> Dataset {
        let mut rng = TestRng(seed);
        let mut values = Vec::with_capacity(rows * features);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let x: Vec<f64> =
                (0..features).map(|_| if rng.uniform() < nan_rate { f64::NAN } else { rng.uniform() }).collect();
            let g = |i: usize| if x[i % features].is_nan() { 0.7 } else { x[i % features] };
            let y = 10.0 * (3.0 * g(0) * g(1)).sin() + 8.0 * (g(2) - 0.5).powi(2) + 4.0 * g(3) + 2.0 * g(4)
                - 3.0 * (g(0) > 0.5 && g(3) < 0.3) as u8 as f64
                + rng.uniform();
            labels.push(y);
            values.extend(x);
        }
        Dataset::from_row_major(names(features), &values, labels).unwrap()
    }

    #[test]
    fn explainer_bytes_round_trip_and_reject_garbage() {
        let d = data(400, 5, 0.1, 11);
        let model = fit(json!({"num_boost_round": 30, "num_leaves": 12, "min_data_in_leaf": 5, "seed": 1}), &d);
        let mut a = Explainer::new(&model);
        let bytes = a.as_bytes().to_vec();
        let mut b = Explainer::from_bytes(bytes.clone()).expect("round trip");
        let mut rng = TestRng(5);
        let rows: Vec<Vec<f64>> = (0..20).map(|_| random_row(&mut rng, 5, 0.2)).collect();
        for row in &rows {
            let (ea, eb) = (a.explain(row).unwrap(), b.explain(row).unwrap());
            assert_eq!(ea.expected_value.to_bits(), eb.expected_value.to_bits());
            assert!(ea.contributions.iter().zip(&eb.contributions).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        // Refused when read: a wrong length or magic, trees that do not start at 0, a quadrature of
        // more points than the tree has splits.
        assert!(Explainer::from_bytes(bytes[..bytes.len() - 1].to_vec()).is_none());
        assert!(Explainer::from_bytes(b"SHP1".to_vec()).is_none());
        let trees_at = bytes.len() - 8 * b.trees.len();
        let patched = |at: usize, value: u32| {
            let mut p = bytes.clone();
            p[at..at + 4].copy_from_slice(&value.to_le_bytes());
            p
        };
        assert!(Explainer::from_bytes(patched(trees_at, 1)).is_none());
        let first_tree_splits = b.trees[0].end - b.trees[0].root;
        assert!(Explainer::from_bytes(patched(trees_at + 4, first_tree_splits.div_ceil(2) + 1)).is_none());
        // Refused when a walk reaches them: a child pointing back at its parent (it would loop), one
        // into the next tree (read with this tree's quadrature), a feature out of range, a leaf out
        // of range, a tree deeper than its quadrature allows.
        let first = HEADER_BYTES;
        let (feature, left) = (first + 24, first + 28);
        let n_leaves = (b.leaves_end - b.leaves_at) / 8;
        let deepest = b.trees.iter().position(|t| t.points > 1).expect("a tree deeper than 2");
        for broken in [
            patched(left, 0),
            patched(left, b.trees[1].root),
            patched(feature, 5),
            patched(left, LEAF | n_leaves as u32),
            patched(trees_at + 8 * deepest + 4, 1),
        ] {
            let mut e = Explainer::from_bytes(broken).expect("the header holds together");
            assert_eq!(rows.iter().map(|row| e.explain(row)).find(Result::is_err), Some(Err(InvalidExplainer)));
        }
    }

    fn fit(p: Value, d: &Dataset) -> Booster {
        let params: Params = serde_json::from_value(p).unwrap();
        train(&params, d, None, |_| ControlFlow::Continue(())).unwrap()
    }

    fn random_row(rng: &mut TestRng, features: usize, nan_rate: f64) -> Vec<f64> {
        (0..features).map(|_| if rng.uniform() < nan_rate { f64::NAN } else { rng.uniform() * 1.2 - 0.1 }).collect()
    }

    /// v(S): one tree's output when the features outside S are integrated out by following both
    /// children weighted by cover count (the path-dependent conditional expectation).
    fn tree_value(tree: &Tree, child: Child, row: &[f64], in_s: &dyn Fn(usize) -> bool) -> f64 {
        match child {
            Child::Leaf(l) => tree.leaves()[l as usize].value,
            Child::Split(k) => {
                let n = &tree.nodes()[k as usize];
                if in_s(n.feature) {
                    let x = row.get(n.feature).copied().unwrap_or(f64::NAN);
                    let left = if x.is_nan() { n.default_left } else { x <= n.threshold };
                    tree_value(tree, if left { n.left } else { n.right }, row, in_s)
                } else {
                    let c = n.cover.count as f64;
                    let (l, r) = (count(tree, n.left), count(tree, n.right));
                    l / c * tree_value(tree, n.left, row, in_s) + r / c * tree_value(tree, n.right, row, in_s)
                }
            }
        }
    }

    fn factorial(n: usize) -> f64 {
        (1..=n).map(|i| i as f64).product()
    }

    /// Exact Shapley values of v over `m` features by enumerating all coalitions.
    fn brute_force(trees: &[Tree], m: usize, row: &[f64]) -> Vec<f64> {
        let v =
            |mask: u32| -> f64 { trees.iter().map(|t| tree_value(t, t.root(), row, &|f| mask & (1 << f) != 0)).sum() };
        let mut phi = vec![0.0; m];
        for (i, p) in phi.iter_mut().enumerate() {
            for mask in 0u32..(1 << m) {
                if mask & (1 << i) != 0 {
                    continue;
                }
                let s = mask.count_ones() as usize;
                let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
                *p += weight * (v(mask | (1 << i)) - v(mask));
            }
        }
        phi
    }

    /// A Booster around hand-made trees (JSON is the only way to build one outside train-batch).
    fn booster(trees: Value, features: usize, base_score: f64) -> Booster {
        serde_json::from_value(json!({
            "objective": "regression",
            "base_score": base_score,
            "feature_names": names(features),
            "trees": trees,
            "params": {},
            "info": {"rounds": 1, "best_iteration": null, "valid_metric": null, "stop_reason": "max_rounds"},
        }))
        .unwrap()
    }

    fn split(feature: usize, threshold: f64, default_left: bool, left: Value, right: Value, count: u64) -> Value {
        json!({"feature": feature, "threshold": threshold, "default_left": default_left, "left": left,
            "right": right, "gain": 1.0, "cover": {"sum_hessian": count as f64, "count": count}})
    }

    fn leaf(value: f64, count: u64) -> Value {
        json!({"value": value, "cover": {"sum_hessian": count as f64, "count": count}})
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "feature {i}: {x} vs {y} (|diff| {})", (x - y).abs());
        }
    }

    #[test]
    fn contributions_add_up_to_the_raw_prediction() {
        let d = data(3000, 8, 0.1, 7);
        let model = fit(json!({"num_boost_round": 50, "num_leaves": 24, "min_data_in_leaf": 10, "seed": 3}), &d);
        assert_eq!(model.trees().len(), 50);
        assert!(model.trees().iter().any(|t| t.nodes().iter().any(|n| !n.default_left)));
        let mut explainer = Explainer::new(&model);
        let mut rng = TestRng(99);
        for _ in 0..500 {
            let row = random_row(&mut rng, 8, 0.2);
            let e = explainer.explain(&row).unwrap();
            let total = e.expected_value + e.contributions.iter().sum::<f64>();
            let raw = model.predict_raw(&row);
            assert!((total - raw).abs() < 1e-6, "{total} vs {raw} for {row:?}");
        }
        // A short row is all-missing past its end, as in predict_raw.
        let e = explain(&model, &[0.3]);
        assert!((e.expected_value + e.contributions.iter().sum::<f64>() - model.predict_raw(&[0.3])).abs() < 1e-6);
    }

    #[test]
    fn expected_value_is_the_cover_weighted_mean_leaf() {
        let d = data(2000, 5, 0.0, 11);
        let model = fit(json!({"num_boost_round": 10, "num_leaves": 8, "min_data_in_leaf": 20}), &d);
        let mean = model.base_score()
            + model
                .trees()
                .iter()
                .map(|t| {
                    let root = t.nodes()[0].cover.count as f64;
                    t.leaves().iter().map(|l| l.value * l.cover.count as f64 / root).sum::<f64>()
                })
                .sum::<f64>();
        assert!((explain(&model, &[0.5; 5]).expected_value - mean).abs() < 1e-9);
        // Without bagging every row is in the root: the mean of the training predictions.
        let preds = model.predict_dataset(&d).unwrap();
        let avg = preds.iter().sum::<f64>() / preds.len() as f64;
        assert!((mean - avg).abs() < 1e-9, "{mean} vs {avg}");
    }

    #[test]
    fn trained_small_trees_match_brute_force_shapley() {
        let d = data(1500, 5, 0.15, 5);
        let model = fit(
            json!({"num_boost_round": 6, "num_leaves": 12, "min_data_in_leaf": 15, "bagging_fraction": 0.8,
                "bagging_freq": 1, "seed": 1}),
            &d,
        );
        // Interactions make some path split the same feature twice; the test needs that case.
        let repeated = model.trees().iter().any(|t| {
            let mut stack = vec![(t.root(), Vec::<usize>::new())];
            let mut found = false;
            while let Some((c, seen)) = stack.pop() {
                if let Child::Split(k) = c {
                    let n = &t.nodes()[k as usize];
                    found |= seen.contains(&n.feature);
                    let mut s = seen.clone();
                    s.push(n.feature);
                    stack.push((n.left, s.clone()));
                    stack.push((n.right, s));
                }
            }
            found
        });
        assert!(repeated, "no path reuses a feature; the test would not cover merged factors");
        let mut explainer = Explainer::new(&model);
        let mut rng = TestRng(1234);
        for _ in 0..60 {
            let row = random_row(&mut rng, 5, 0.25);
            let got = explainer.explain(&row).unwrap().contributions;
            assert_close(&got, &brute_force(model.trees(), 5, &row), 1e-9);
        }
    }

    #[test]
    fn deep_trees_match_brute_force_shapley() {
        // Paths of about ten splits over 5 features: many repeats, and quadratures of more points
        // than one group of lanes.
        let d = data(3000, 5, 0.1, 8);
        let model = fit(json!({"num_boost_round": 4, "num_leaves": 60, "min_data_in_leaf": 2, "seed": 3}), &d);
        let mut explainer = Explainer::new(&model);
        let points: Vec<usize> = explainer.trees.iter().map(|t| t.points as usize).collect();
        assert!(points.iter().any(|&m| m > LANES), "points per tree: {points:?}");
        let mut rng = TestRng(99);
        for _ in 0..40 {
            let row = random_row(&mut rng, 5, 0.2);
            let got = explainer.explain(&row).unwrap().contributions;
            assert_close(&got, &brute_force(model.trees(), 5, &row), 1e-9);
            let total = explainer.expected_value() + got.iter().sum::<f64>();
            assert!((total - model.predict_raw(&row)).abs() < 1e-9);
        }
        // Staircases of 20 and 40 splits over 3 features (each split 6–14 times on the long path):
        // rules of 10 points (arrays of 16) and of 20 (the per-level buffers).
        for (depth, points) in [(20, 10), (40, 20)] {
            let (nodes, leaves): (Vec<Value>, Vec<Value>) = (0..depth)
                .map(|k| {
                    let right = if k + 1 < depth { json!({"split": k + 1}) } else { json!({"leaf": depth}) };
                    let count = 10 + 5 * (depth - 1 - k) as u64;
                    let threshold = 0.02 * k as f64 + 0.1 * (k % 3) as f64;
                    (split(k % 3, threshold, k % 2 == 0, json!({"leaf": k}), right, count), leaf((k as f64).sin(), 5))
                })
                .unzip();
            let leaves: Vec<Value> = leaves.into_iter().chain([leaf(1.5, 5)]).collect();
            let stairs = booster(json!([{"nodes": nodes, "leaves": leaves}]), 3, 0.0);
            let mut explainer = Explainer::new(&stairs);
            assert_eq!(explainer.trees.iter().map(|t| t.points).collect::<Vec<_>>(), [points]);
            for _ in 0..40 {
                let row = random_row(&mut rng, 3, 0.2);
                let got = explainer.explain(&row).unwrap().contributions;
                assert_close(&got, &brute_force(stairs.trees(), 3, &row), 1e-9);
            }
        }
    }

    #[test]
    fn hand_built_trees_match_brute_force_shapley() {
        // Tree 0 splits x0 twice on one path (x0 <= 0.5, then x0 <= 0.2 under x1), the second time
        // below another feature, and x2 once with NaN going right. Counts add up at every node.
        let t0 = json!({
            "nodes": [
                split(0, 0.5, true, json!({"split": 1}), json!({"split": 2}), 100),
                split(1, 0.3, false, json!({"split": 3}), json!({"leaf": 1}), 60),
                split(2, 0.7, false, json!({"leaf": 2}), json!({"leaf": 3}), 40),
                split(0, 0.2, true, json!({"leaf": 0}), json!({"leaf": 4}), 25),
            ],
            "leaves": [leaf(1.0, 10), leaf(-2.0, 35), leaf(0.5, 30), leaf(3.0, 10), leaf(-0.25, 15)],
        });
        // Tree 1: x3 split twice in a row (directly nested), then x4; tree 2: a lone leaf.
        let t1 = json!({
            "nodes": [
                split(3, 0.6, false, json!({"split": 1}), json!({"leaf": 1}), 50),
                split(3, 0.1, true, json!({"leaf": 0}), json!({"split": 2}), 30),
                split(4, 0.4, true, json!({"leaf": 2}), json!({"leaf": 3}), 22),
            ],
            "leaves": [leaf(0.8, 8), leaf(-1.5, 20), leaf(2.2, 12), leaf(-0.4, 10)],
        });
        let t2 = json!({"nodes": [], "leaves": [leaf(0.125, 50)]});
        let model = booster(json!([t0, t1, t2]), 5, 0.75);
        let rows = [
            vec![0.1, 0.2, 0.9, 0.05, 0.5],
            vec![0.4, 0.2, 0.1, 0.3, 0.2],
            vec![0.9, 0.8, 0.8, 0.9, 0.9],
            vec![f64::NAN, 0.1, f64::NAN, f64::NAN, f64::NAN],
            vec![0.3, f64::NAN, 0.5, 0.5, 0.5],
            vec![0.6],
        ];
        let expected_value = 0.75
            + (10.0 * 1.0 + 35.0 * -2.0 + 30.0 * 0.5 + 10.0 * 3.0 + 15.0 * -0.25) / 100.0
            + (8.0 * 0.8 + 20.0 * -1.5 + 12.0 * 2.2 + 10.0 * -0.4) / 50.0
            + 0.125;
        for row in &rows {
            let e = explain(&model, row);
            assert!((e.expected_value - expected_value).abs() < 1e-12);
            assert_close(&e.contributions, &brute_force(model.trees(), 5, row), 1e-9);
            let total = e.expected_value + e.contributions.iter().sum::<f64>();
            assert!((total - model.predict_raw(row)).abs() < 1e-12);
        }
        // Hand check, tree 1 alone, row 0 (x3 = 0.05 reaches leaf 0, 0.8; x4 = 0.5 would go right):
        // v({}) = 0.16·0.8 + 0.4·(-1.5) + 0.24·2.2 + 0.2·(-0.4) = -0.024, v({x3}) = v({x3, x4}) = 0.8,
        // v({x4}) = 0.16·0.8 + 0.4·(-1.5) + 0.44·(-0.4) = -0.648. Other features are unused, so
        // φ3 = ½(0.8 + 0.024) + ½(0.8 + 0.648) = 1.136 and φ4 = ½(-0.648 + 0.024) + ½(0.8 - 0.8) = -0.312.
        let single = booster(json!([model.trees()[1]]), 5, 0.0);
        let phi = explain(&single, &rows[0]).contributions;
        assert_close(&phi, &[0.0, 0.0, 0.0, 1.136, -0.312], 1e-12);
    }

    #[test]
    fn top_k_orders_by_magnitude_then_name() {
        let expl = Explanation { expected_value: 0.0, contributions: vec![0.5, -2.0, 0.5, 0.0, 1.0, -0.5] };
        let names: Vec<String> = ["f", "e", "d", "c", "b", "a"].iter().map(|s| s.to_string()).collect();
        let row = [1.0, 2.0, 3.0, 4.0, 5.0];
        let top = top_k(&expl, &names, &row, 5);
        let got: Vec<(&str, f64)> = top.iter().map(|c| (c.name.as_str(), c.contribution)).collect();
        assert_eq!(got, [("e", -2.0), ("b", 1.0), ("a", -0.5), ("d", 0.5), ("f", 0.5)]);
        assert_eq!(top[0].value, 2.0);
        assert_eq!(top[1].value, 5.0);
        // "a" is feature 5, past the row's end: missing.
        assert!(top[2].value.is_nan());
        assert_eq!(top_k(&expl, &names, &row, 0), []);
        assert_eq!(top_k(&expl, &names, &row, 100).len(), 6);
    }

    /// This thread's CPU time in ns (Linux schedstat), so timings on a shared machine exclude waiting.
    fn thread_cpu_ns() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
    }

    /// Timing of a 500-tree, depth-8 model; run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_500_trees_depth_8() {
        let d = data(20_000, 20, 0.05, 21);
        for num_leaves in [31, 255] {
            let model = fit(
                json!({"num_boost_round": 500, "num_leaves": num_leaves, "max_depth": 8, "min_data_in_leaf": 5,
                    "learning_rate": 0.05, "seed": 2}),
                &d,
            );
            let leaves: usize = model.trees().iter().map(Tree::num_leaves).sum();
            let mut explainer = Explainer::new(&model);
            let mut rng = TestRng(5);
            let rows: Vec<Vec<f64>> = (0..1000).map(|_| random_row(&mut rng, 20, 0.05)).collect();
            let mut out = vec![0.0; 20];
            // Minimum over 5 passes of 200 rows: the machine is shared, so take the least disturbed.
            let mut best = [f64::INFINITY; 4];
            for pass in 0..5 {
                let rows = &rows[pass * 200..(pass + 1) * 200];
                let (start, cpu) = (std::time::Instant::now(), thread_cpu_ns());
                let mut check = 0.0;
                for row in rows {
                    check += explainer.explain_into(row, &mut out).unwrap() + out.iter().sum::<f64>();
                }
                let wall = start.elapsed().as_secs_f64() / rows.len() as f64;
                let cpu = thread_cpu_ns().zip(cpu).map_or(f64::NAN, |(b, a)| (b - a) as f64 * 1e-9 / rows.len() as f64);
                let start = std::time::Instant::now();
                let mut raw = 0.0;
                for row in rows {
                    raw += model.predict_raw(row);
                }
                let predict = start.elapsed().as_secs_f64() / rows.len() as f64;
                assert!((check - raw).abs() < 1e-6 * rows.len() as f64);
                let start = std::time::Instant::now();
                let _ = Explainer::new(&model);
                let setup = start.elapsed().as_secs_f64();
                for (b, x) in best.iter_mut().zip([wall, cpu, predict, setup]) {
                    *b = b.min(x);
                }
            }
            println!(
                "num_leaves {num_leaves}: {} trees, {leaves} leaves; explain {:.1} µs/row wall ({:.1} µs CPU), \
                 predict_raw {:.2} µs/row, Explainer::new {:.1} µs (best of 5)",
                model.trees().len(),
                best[0] * 1e6,
                best[1] * 1e6,
                best[2] * 1e6,
                best[3] * 1e6
            );
        }
    }
}
