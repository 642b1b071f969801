//! A pre-planned form of single-operator ONNX models (`TreeEnsembleRegressor`, `LinearRegressor`)
//! for per-request scoring.
//!
//! Spin instantiates a component per request, so nothing built while loading a model survives to
//! the next request. Parsing, typing and optimising an ONNX graph with tract each time costs far
//! more than scoring a few rows; a [`Plan`] is built once (at registration), stored as compact
//! bytes, and read in place on every request. Scores follow onnxruntime's semantics for `ai.onnx.ml`
//! (branch modes, NaN, aggregates, base values, f32 comparisons); leaf weights are summed in f64 and
//! rounded once, where onnxruntime sums f32 in an order that depends on its threading (scores agree to
//! an ulp or so).

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use thiserror::Error;
use train_batch::onnx::proto::{AttributeProto, AttributeType, DataType, ModelProto, NodeProto};

/// Why a model could not be planned, or plan bytes not read.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A valid model this form does not cover: score it with tract instead.
    #[error("model not supported by the pre-planned form: {0}")]
    Unsupported(String),
    /// The model contradicts itself (lengths, tree links, feature counts).
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Plan bytes are truncated, corrupted or of another version.
    #[error("invalid plan bytes: {0}")]
    Format(String),
    /// Rows passed to [`Plan::predict`] are not whole rows.
    #[error("{len} values are not whole rows of {features} features")]
    RaggedRows {
        /// Values passed.
        len: usize,
        /// Features per row.
        features: usize,
    },
}

/// A branch comparison (`nodes_modes`), or a leaf.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A leaf.
    Leaf = 0,
    /// `x <= t`.
    Leq = 1,
    /// `x < t`.
    Lt = 2,
    /// `x >= t`.
    Gte = 3,
    /// `x > t`.
    Gt = 4,
    /// `x == t`.
    Eq = 5,
    /// `x != t`.
    Neq = 6,
}

impl Mode {
    fn parse(s: &[u8]) -> Option<Mode> {
        Some(match s {
            b"LEAF" => Mode::Leaf,
            b"BRANCH_LEQ" => Mode::Leq,
            b"BRANCH_LT" => Mode::Lt,
            b"BRANCH_GTE" => Mode::Gte,
            b"BRANCH_GT" => Mode::Gt,
            b"BRANCH_EQ" => Mode::Eq,
            b"BRANCH_NEQ" => Mode::Neq,
            _ => return None,
        })
    }

    fn from_bits(b: u8) -> Option<Mode> {
        [Mode::Leaf, Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt, Mode::Eq, Mode::Neq].get(usize::from(b)).copied()
    }

    /// Whether `x` takes the true branch: the IEEE comparison, or NaN with `nan_true` (onnxruntime's
    /// rule; so NaN goes true at BRANCH_NEQ whatever the flag says).
    #[inline]
    fn goes_true(self, x: f32, t: f32, nan_true: bool) -> bool {
        let c = match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
            Mode::Leaf => false,
        };
        c || (nan_true && x.is_nan())
    }
}

/// How tree outputs combine (`aggregate_function`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum of leaf weights.
    Sum = 0,
    /// Sum divided by the number of trees.
    Average = 1,
    /// Smallest leaf weight.
    Min = 2,
    /// Largest leaf weight.
    Max = 3,
}

impl Aggregate {
    fn from_bits(b: u8) -> Option<Self> {
        [Aggregate::Sum, Aggregate::Average, Aggregate::Min, Aggregate::Max].get(usize::from(b)).copied()
    }
}

/// Applied to the aggregated score (`post_transform`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    /// Identity.
    None = 0,
    /// `1 / (1 + e^-x)`.
    Logistic = 1,
}

impl PostTransform {
    fn parse(s: &str) -> Result<Self, PlanError> {
        match s {
            "NONE" => Ok(PostTransform::None),
            "LOGISTIC" => Ok(PostTransform::Logistic),
            other => Err(PlanError::Unsupported(format!("post_transform {other}"))),
        }
    }

    fn from_bits(b: u8) -> Option<Self> {
        [PostTransform::None, PostTransform::Logistic].get(usize::from(b)).copied()
    }

    /// onnxruntime's logistic: computed on |x| so that large negative scores do not overflow.
    #[inline]
    fn apply(self, x: f64) -> f64 {
        match self {
            PostTransform::None => x,
            PostTransform::Logistic => {
                let v = 1.0 / (1.0 + (-x.abs()).exp());
                if x < 0.0 { 1.0 - v } else { v }
            }
        }
    }
}

/// Flag bits of [`Node::flags`]: the mode in the low 3 bits.
const MODE_MASK: u8 = 0x07;
/// A branch node whose NaN inputs take the true branch.
const NAN_TRUE: u8 = 0x08;
/// A leaf that carries a weight (an ONNX leaf may have none: it adds nothing).
const HAS_WEIGHT: u8 = 0x10;

/// One tree node. Branch: compare `feature` with `value`, go to `true_child` / `false_child`
/// (absolute indices, always greater than this node's). Leaf: `value` is its weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub(crate) feature: u32,
    pub(crate) value: f32,
    pub(crate) true_child: u32,
    pub(crate) false_child: u32,
    pub(crate) flags: u8,
}

impl Node {
    pub(crate) fn mode(&self) -> Mode {
        Mode::from_bits(self.flags & MODE_MASK).unwrap_or(Mode::Leaf)
    }

    pub(crate) fn nan_true(&self) -> bool {
        self.flags & NAN_TRUE != 0
    }

    pub(crate) fn has_weight(&self) -> bool {
        self.flags & HAS_WEIGHT != 0
    }
}

/// A tree ensemble in flat arrays: tree `t` occupies `nodes[roots[t]..roots[t + 1]]`, root first,
/// nodes in pre-order (children after parents, so a walk always ends).
#[derive(Debug, Clone)]
pub(crate) struct Ensemble {
    pub(crate) roots: Vec<u32>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) base: f32,
    pub(crate) aggregate: Aggregate,
    pub(crate) post_transform: PostTransform,
}

impl Ensemble {
    /// The highest feature index a branch reads, if any.
    pub(crate) fn max_feature(&self) -> Option<u32> {
        self.nodes.iter().filter(|n| n.mode() != Mode::Leaf).map(|n| n.feature).max()
    }
}

/// A linear model: `intercept + Σ x_i · coefficients_i`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    coefficients: Vec<f32>,
    intercept: f32,
    post_transform: PostTransform,
}

impl Linear {
    fn score(&self, row: &[f32]) -> f32 {
        let dot = row.iter().zip(&self.coefficients).fold(0f32, |s, (x, c)| s + x * c);
        self.post_transform.apply(f64::from(dot + self.intercept)) as f32
    }
}

/// What a plan scores with.
#[derive(Debug, Clone)]
enum Model {
    /// Trees read in place from the plan bytes.
    Trees(TreeLayout),
    Linear(Linear),
}

/// Where a tree ensemble's arrays lie in the plan bytes: roots (u32 × trees), then one array a field
/// for every node: value bits (u32), false child (u32), feature (u16), flags (u8); see [`NODE_BYTES`].
#[derive(Debug, Clone)]
struct TreeLayout {
    trees: usize,
    nodes: usize,
    base: f32,
    aggregate: Aggregate,
    post_transform: PostTransform,
}

/// A model ready to score rows of [`Plan::num_features`] f32 values. It keeps its byte form
/// ([`Plan::to_bytes`], [`Plan::from_bytes`]) and scores trees by walking those bytes in place,
/// checking each node as a walk reaches it: a request pays for a checksum of the bytes and the nodes it
/// visits, not for decoding every node (a batch of 32 rows or more does, once).
#[derive(Debug, Clone)]
pub struct Plan {
    num_features: usize,
    bytes: Vec<u8>,
    model: Model,
}

/// Attributes of a node by name.
struct Attrs<'a>(HashMap<&'a str, &'a AttributeProto>);

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto) -> Self {
        Attrs(node.attribute.iter().map(|a| (a.name.as_str(), a)).collect())
    }

    fn get(&self, name: &str, kind: AttributeType) -> Result<Option<&'a AttributeProto>, PlanError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == kind as i32 => Ok(Some(a)),
            Some(a) => {
                Err(PlanError::Invalid(format!("attribute {name} has type {} where {kind:?} is expected", a.r#type)))
            }
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, PlanError> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i))
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, PlanError> {
        self.get(name, AttributeType::String)?
            .map(|a| a.string().ok_or_else(|| PlanError::Invalid(format!("attribute {name} is not UTF-8"))))
            .transpose()
    }

    fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, PlanError> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.as_slice()))
    }

    fn required_ints(&self, name: &str) -> Result<&'a [i64], PlanError> {
        self.ints(name)?.ok_or_else(|| PlanError::Invalid(format!("missing attribute {name}")))
    }

    fn strings(&self, name: &str) -> Result<Option<&'a [Vec<u8>]>, PlanError> {
        Ok(self.get(name, AttributeType::Strings)?.map(|a| a.strings.as_slice()))
    }

    /// A float list given as FLOATS `name` or as a FLOAT / DOUBLE tensor `name_as_tensor`.
    fn floats(&self, name: &str) -> Result<Option<Vec<f64>>, PlanError> {
        let tensor_name = format!("{name}_as_tensor");
        let attr = self.0.get(name).or_else(|| self.0.get(tensor_name.as_str()));
        attr.map(|a| {
            a.float_values().ok_or_else(|| PlanError::Invalid(format!("attribute {} is not a float list", a.name)))
        })
        .transpose()
    }
}

/// `value` as the f32 threshold that makes `mode` on f32 inputs agree with the f64 comparison
/// (thresholds from `nodes_values_as_tensor` may be doubles; f32 ones convert exactly).
fn f32_threshold(mode: Mode, t: f64) -> f32 {
    let near = t as f32;
    if t.is_nan() || f64::from(near) == t {
        return near;
    }
    let down = if f64::from(near) > t { near.next_down() } else { near };
    match mode {
        // x <= t ⇔ x <= down; x > t ⇔ x > down.
        Mode::Leq | Mode::Gt | Mode::Leaf => down,
        // x < t ⇔ x < up; x >= t ⇔ x >= up.
        Mode::Lt | Mode::Gte => down.next_up(),
        // No f32 equals t: EQ never holds and NEQ always does, as with a NaN threshold.
        Mode::Eq | Mode::Neq => f32::NAN,
    }
}

fn checked_len(name: &str, len: usize, expected: usize) -> Result<(), PlanError> {
    if len == expected {
        Ok(())
    } else {
        Err(PlanError::Invalid(format!("attribute {name} has {len} entries, expected {expected}")))
    }
}

fn index_u32(name: &str, v: i64) -> Result<u32, PlanError> {
    u32::try_from(v).map_err(|_| PlanError::Invalid(format!("{name} value {v} is out of range")))
}

/// The ensemble of a `TreeEnsembleRegressor` node (one target). Trees are taken in ascending
/// tree id; each tree's root is its one node that no branch of the tree points to.
pub(crate) fn parse_tree_ensemble(node: &NodeProto) -> Result<Ensemble, PlanError> {
    let a = Attrs::new(node);
    let n_targets = a.int("n_targets")?.unwrap_or(1);
    if n_targets != 1 {
        return Err(PlanError::Unsupported(format!("n_targets = {n_targets}")));
    }
    let tree_ids = a.required_ints("nodes_treeids")?;
    let n = tree_ids.len();
    if n == 0 {
        return Err(PlanError::Invalid("the ensemble has no nodes".into()));
    }
    let node_ids = a.required_ints("nodes_nodeids")?;
    let feature_ids = a.required_ints("nodes_featureids")?;
    let true_ids = a.required_ints("nodes_truenodeids")?;
    let false_ids = a.required_ints("nodes_falsenodeids")?;
    let modes = a.strings("nodes_modes")?.ok_or_else(|| PlanError::Invalid("missing attribute nodes_modes".into()))?;
    let values =
        a.floats("nodes_values")?.ok_or_else(|| PlanError::Invalid("missing attribute nodes_values".into()))?;
    let zeros = vec![0; n];
    let missing = a.ints("nodes_missing_value_tracks_true")?.unwrap_or(&zeros);
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", feature_ids.len()),
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
        ("nodes_missing_value_tracks_true", missing.len()),
    ] {
        checked_len(name, len, n)?;
    }
    let target_tree_ids = a.required_ints("target_treeids")?;
    let target_node_ids = a.required_ints("target_nodeids")?;
    let target_ids = a.required_ints("target_ids")?;
    let weights =
        a.floats("target_weights")?.ok_or_else(|| PlanError::Invalid("missing attribute target_weights".into()))?;
    let m = target_tree_ids.len();
    for (name, len) in
        [("target_nodeids", target_node_ids.len()), ("target_ids", target_ids.len()), ("target_weights", weights.len())]
    {
        checked_len(name, len, m)?;
    }
    if let Some(t) = target_ids.iter().find(|&&t| t != 0) {
        return Err(PlanError::Invalid(format!("target id {t} with n_targets = 1")));
    }
    let base = match a.floats("base_values")?.as_deref() {
        None | Some([]) => 0.0,
        Some([b]) => *b as f32,
        Some(more) => return Err(PlanError::Invalid(format!("{} base values for one target", more.len()))),
    };
    let aggregate = match a.string("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => return Err(PlanError::Invalid(format!("aggregate_function {other}"))),
    };
    let post_transform = PostTransform::parse(a.string("post_transform")?.unwrap_or("NONE"))?;

    // Leaf weights by (tree, node); several weights of one leaf add up.
    let mut leaf_weights: HashMap<(i64, i64), (f32, usize)> = HashMap::new();
    for i in 0..m {
        let e = leaf_weights.entry((target_tree_ids[i], target_node_ids[i])).or_insert((0.0, 0));
        e.0 += weights[i] as f32;
        e.1 += 1;
    }
    // onnxruntime compares each weight under MIN / MAX: summing them would change the result.
    if leaf_weights.values().any(|&(_, c)| c > 1) && matches!(aggregate, Aggregate::Min | Aggregate::Max) {
        return Err(PlanError::Unsupported("a leaf with several weights under MIN / MAX".into()));
    }
    // Attribute rows of each tree, by node id.
    let mut trees: BTreeMap<i64, HashMap<i64, usize>> = BTreeMap::new();
    let mut parsed_modes = Vec::with_capacity(n);
    for i in 0..n {
        let mode = Mode::parse(&modes[i])
            .ok_or_else(|| PlanError::Invalid(format!("node mode {}", String::from_utf8_lossy(&modes[i]))))?;
        parsed_modes.push(mode);
        if trees.entry(tree_ids[i]).or_default().insert(node_ids[i], i).is_some() {
            return Err(PlanError::Invalid(format!("tree {} has node {} twice", tree_ids[i], node_ids[i])));
        }
    }
    let mut used_weights = 0;
    let mut roots = Vec::with_capacity(trees.len());
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for (&tree, rows) in &trees {
        let mut is_child: HashMap<i64, bool> = rows.keys().map(|&id| (id, false)).collect();
        for &i in rows.values() {
            if parsed_modes[i] != Mode::Leaf {
                for child in [true_ids[i], false_ids[i]] {
                    *is_child.get_mut(&child).ok_or_else(|| {
                        PlanError::Invalid(format!("tree {tree} node {} points to missing node {child}", node_ids[i]))
                    })? = true;
                }
            }
        }
        let mut root_ids = is_child.iter().filter(|(_, c)| !**c).map(|(&id, _)| id);
        let (Some(root_id), None) = (root_ids.next(), root_ids.next()) else {
            return Err(PlanError::Invalid(format!("tree {tree} does not have exactly one root")));
        };
        roots.push(index_u32("node count", nodes.len() as i64)?);
        let mut seen: HashMap<i64, bool> = HashMap::new();
        // Pre-order walk; (attribute row, parent index and side) per pending node.
        let mut stack = vec![(rows[&root_id], None::<(usize, bool)>)];
        while let Some((i, parent)) = stack.pop() {
            if seen.insert(node_ids[i], true).is_some() {
                return Err(PlanError::Invalid(format!("tree {tree} reaches node {} twice", node_ids[i])));
            }
            let index = nodes.len();
            let index32 = index_u32("node count", index as i64)?;
            if let Some((p, is_true)) = parent {
                if is_true { nodes[p].true_child = index32 } else { nodes[p].false_child = index32 }
            }
            let mode = parsed_modes[i];
            if mode == Mode::Leaf {
                let weight = leaf_weights.get(&(tree, node_ids[i]));
                used_weights += weight.map_or(0, |w| w.1);
                let flags = if weight.is_some() { HAS_WEIGHT } else { 0 };
                nodes.push(Node {
                    feature: 0,
                    value: weight.map_or(0.0, |w| w.0),
                    true_child: 0,
                    false_child: 0,
                    flags,
                });
            } else {
                let feature = index_u32("nodes_featureids", feature_ids[i])?;
                let flags = mode as u8 | if missing[i] != 0 { NAN_TRUE } else { 0 };
                let value = f32_threshold(mode, values[i]);
                nodes.push(Node { feature, value, true_child: 0, false_child: 0, flags });
                stack.push((rows[&false_ids[i]], Some((index, false))));
                stack.push((rows[&true_ids[i]], Some((index, true))));
            }
        }
    }
    if used_weights != m {
        return Err(PlanError::Invalid(format!("{} target weights name no reachable leaf", m - used_weights)));
    }
    Ok(Ensemble { roots, nodes, base, aggregate, post_transform })
}

/// The linear model of a `LinearRegressor` node (one target).
fn parse_linear(node: &NodeProto) -> Result<Linear, PlanError> {
    let a = Attrs::new(node);
    let targets = a.int("targets")?.unwrap_or(1);
    if targets != 1 {
        return Err(PlanError::Unsupported(format!("targets = {targets}")));
    }
    let coefficients: Vec<f32> = a
        .floats("coefficients")?
        .ok_or_else(|| PlanError::Invalid("missing attribute coefficients".into()))?
        .into_iter()
        .map(|c| c as f32)
        .collect();
    if coefficients.is_empty() {
        return Err(PlanError::Invalid("no coefficients".into()));
    }
    let intercept = match a.floats("intercepts")?.as_deref() {
        None | Some([]) => 0.0,
        Some([b]) => *b as f32,
        Some(more) => return Err(PlanError::Invalid(format!("{} intercepts for one target", more.len()))),
    };
    let post_transform = PostTransform::parse(a.string("post_transform")?.unwrap_or("NONE"))?;
    Ok(Linear { coefficients, intercept, post_transform })
}

/// Magic header of [`Plan::to_bytes`].
const MAGIC: &[u8; 8] = b"stkplan\0";
/// Version of the byte format.
const VERSION: u32 = 2;
/// Header bytes: magic, version, kind / aggregate / post_transform / reserved, features, base, two counts.
const HEADER: usize = 32;
const KIND_TREES: u8 = 1;
const KIND_LINEAR: u8 = 2;

/// A fast 64-bit checksum of plan bytes (corruption check, not a security measure). Four independent
/// lanes over 32-byte blocks, so the multiplies overlap: plans are read on every request.
pub(super) fn checksum(bytes: &[u8]) -> u64 {
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD).rotate_left(31);
    let mut lanes = [0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64, 1, 2, 3];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, c) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = mix(*lane, u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
    }
    let mut h = lanes.iter().fold(0, |h, &l| mix(h, l));
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0xC4CE_B9FE_1A85_EC53).rotate_left(17);
    }
    h ^ (h >> 33)
}

/// The little-endian u32 at byte `at` (the caller checked the length).
#[inline]
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A parsed model before it is laid out as plan bytes.
enum Source {
    Trees(Ensemble),
    Linear(Linear),
}

/// Bytes per tree node: value (f32), false child (u32), feature (u16), flags (u8). The true child is
/// always the next node (trees are laid out in pre-order, true branch first).
const NODE_BYTES: usize = 11;

/// The versioned little-endian byte form: header, arrays, then a checksum of all before it.
fn encode(num_features: usize, source: &Source) -> Result<Vec<u8>, PlanError> {
    let mut out = Vec::with_capacity(HEADER + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    match source {
        Source::Trees(e) => {
            out.extend_from_slice(&[KIND_TREES, e.aggregate as u8, e.post_transform as u8, 0]);
            put(&mut out, num_features as u32);
            put(&mut out, e.base.to_bits());
            put(&mut out, e.roots.len() as u32);
            put(&mut out, e.nodes.len() as u32);
            if num_features > usize::from(u16::MAX) + 1 {
                return Err(PlanError::Unsupported(format!("{num_features} features (the plan holds at most 65536)")));
            }
            let branch = |n: &Node| n.mode() != Mode::Leaf;
            if e.nodes.iter().enumerate().any(|(i, n)| branch(n) && n.true_child as usize != i + 1) {
                return Err(PlanError::Invalid("a true child does not follow its parent".into()));
            }
            out.reserve(e.roots.len() * 4 + e.nodes.len() * NODE_BYTES);
            e.roots.iter().for_each(|&r| put(&mut out, r));
            e.nodes.iter().for_each(|n| put(&mut out, n.value.to_bits()));
            e.nodes.iter().for_each(|n| put(&mut out, n.false_child));
            e.nodes.iter().for_each(|n| out.extend_from_slice(&(n.feature as u16).to_le_bytes()));
            out.extend(e.nodes.iter().map(|n| n.flags));
        }
        Source::Linear(l) => {
            out.extend_from_slice(&[KIND_LINEAR, 0, l.post_transform as u8, 0]);
            put(&mut out, num_features as u32);
            put(&mut out, l.intercept.to_bits());
            put(&mut out, l.coefficients.len() as u32);
            put(&mut out, 0);
            l.coefficients.iter().for_each(|c| put(&mut out, c.to_bits()));
        }
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Reads the trees of a plan in place: node `i`'s fields are at fixed offsets of the byte arrays.
struct TreeReader<'a> {
    bytes: &'a [u8],
    trees: usize,
    nodes: usize,
    /// Where the node arrays start: values, false children, features, flags.
    values: usize,
}

impl<'a> TreeReader<'a> {
    fn new(bytes: &'a [u8], layout: &TreeLayout) -> Self {
        TreeReader { bytes, trees: layout.trees, nodes: layout.nodes, values: HEADER + 4 * layout.trees }
    }

    #[inline]
    fn root(&self, t: usize) -> usize {
        word(self.bytes, HEADER + 4 * t) as usize
    }

    #[inline]
    fn value(&self, i: usize) -> f32 {
        f32::from_bits(word(self.bytes, self.values + 4 * i))
    }

    #[inline]
    fn false_child(&self, i: usize) -> usize {
        word(self.bytes, self.values + 4 * (self.nodes + i)) as usize
    }

    #[inline]
    fn feature(&self, i: usize) -> usize {
        let at = self.values + 8 * self.nodes + 2 * i;
        usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]))
    }

    #[inline]
    fn flags(&self, i: usize) -> u8 {
        self.bytes[self.values + 10 * self.nodes + i]
    }

    /// The weight of the leaf `row` reaches in tree `t` (None: a leaf without weight). The walk checks
    /// what makes it safe as it goes (children after their parent and inside the tree, features in the
    /// row), so loading a plan never has to check every node.
    #[inline]
    fn leaf(&self, t: usize, row: &[f32]) -> Result<Option<f32>, PlanError> {
        let mut i = self.root(t);
        let end = if t + 1 < self.trees { self.root(t + 1) } else { self.nodes };
        loop {
            let flags = self.flags(i);
            let mode = Mode::from_bits(flags & MODE_MASK).ok_or_else(|| broken(i))?;
            let value = self.value(i);
            if mode == Mode::Leaf {
                return Ok((flags & HAS_WEIGHT != 0).then_some(value));
            }
            let x = *row.get(self.feature(i)).ok_or_else(|| broken(i))?;
            let child = if mode.goes_true(x, value, flags & NAN_TRUE != 0) { i + 1 } else { self.false_child(i) };
            if child <= i || child >= end {
                return Err(broken(i));
            }
            i = child;
        }
    }
}

/// Rows from which a batch decodes and checks every node once ([`FlatTrees`]) before walking: below
/// this, checking only the nodes the walks visit costs less.
const FLAT_FROM_ROWS: usize = 32;

/// One node of [`FlatTrees`] in 12 bytes: the plan's fields and flags.
#[derive(Clone, Copy)]
struct FlatNode {
    value: f32,
    false_child: u32,
    feature: u16,
    flags: u8,
}

/// The trees of a plan whose branches all test `x <= t` (LightGBM's exports and ours), decoded into one
/// record a node with every node checked once (children after their parent and inside its tree,
/// features inside the row), so that batches walk them with no checks of their own.
struct FlatTrees {
    roots: Vec<u32>,
    nodes: Vec<FlatNode>,
}

impl FlatTrees {
    /// None when a branch tests anything but `x <= t`: such plans are walked in their bytes.
    fn new(r: &TreeReader, width: usize) -> Result<Option<Self>, PlanError> {
        let roots: Vec<u32> = (0..r.trees).map(|t| r.root(t) as u32).collect();
        let mut nodes = Vec::with_capacity(r.nodes);
        for t in 0..r.trees {
            let end = if t + 1 < r.trees { r.root(t + 1) } else { r.nodes };
            for i in r.root(t)..end {
                let flags = r.flags(i);
                let (feature, false_child) = match Mode::from_bits(flags & MODE_MASK).ok_or_else(|| broken(i))? {
                    // A leaf links to itself: a walk that reached it stays there.
                    Mode::Leaf => (0, i as u32),
                    Mode::Leq => {
                        let (feature, false_child) = (r.feature(i), r.false_child(i));
                        if feature >= width || i + 1 >= end || false_child <= i || false_child >= end {
                            return Err(broken(i));
                        }
                        (feature as u16, false_child as u32)
                    }
                    _ => return Ok(None),
                };
                nodes.push(FlatNode { value: r.value(i), false_child, feature, flags });
            }
        }
        Ok(Some(FlatTrees { roots, nodes }))
    }

    /// The weights that the N rows of `block` (rows of `width` values) from row `first` reach in tree `t`
    /// ([`TreeReader::leaf`] on checked nodes), the rows walked together: each step takes every row one
    /// level down (a row at its leaf stays there) and picks children without branching, so the rows'
    /// walks overlap instead of each waiting on mispredicted branches.
    #[inline]
    fn leaves<const N: usize>(&self, t: usize, block: &[f32], width: usize, first: usize) -> [Option<f32>; N] {
        let mut at = [self.roots[t] as usize; N];
        loop {
            let mut all_leaves = true;
            for (k, i) in at.iter_mut().enumerate() {
                let n = &self.nodes[*i];
                let leaf = n.flags & MODE_MASK == Mode::Leaf as u8;
                all_leaves &= leaf;
                let x = block[(first + k) * width + usize::from(n.feature)];
                let go_true = !leaf & ((x <= n.value) | ((n.flags & NAN_TRUE != 0) & x.is_nan()));
                let (on_true, on_false) = (*i + 1, n.false_child as usize);
                *i = on_false ^ ((on_true ^ on_false) & usize::from(go_true).wrapping_neg());
            }
            if all_leaves {
                return at.map(|i| {
                    let n = &self.nodes[i];
                    (n.flags & HAS_WEIGHT != 0).then_some(n.value)
                });
            }
        }
    }
}

/// A node of unknown mode, or one that reads past the row or links outside its tree: the plan bytes are wrong.
fn broken(node: usize) -> PlanError {
    PlanError::Format(format!("node {node} has an unknown mode, links outside its tree or reads a missing feature"))
}

/// onnxruntime's aggregation of one row, with leaf weights accumulated in f64 in tree order, then the
/// base value; the result is rounded to f32 once.
#[derive(Clone, Copy, Default)]
struct Aggregation {
    score: f64,
    has: bool,
}

impl Aggregation {
    #[inline]
    fn add(&mut self, aggregate: Aggregate, w: f32) {
        let w = f64::from(w);
        self.score = match aggregate {
            Aggregate::Sum | Aggregate::Average => self.score + w,
            Aggregate::Min => {
                if !self.has || w < self.score {
                    w
                } else {
                    self.score
                }
            }
            Aggregate::Max => {
                if !self.has || w > self.score {
                    w
                } else {
                    self.score
                }
            }
        };
        self.has = true;
    }

    fn finish(self, layout: &TreeLayout) -> f32 {
        let base = f64::from(layout.base);
        let value = match layout.aggregate {
            Aggregate::Sum => self.score + base,
            Aggregate::Average => self.score / layout.trees as f64 + base,
            Aggregate::Min | Aggregate::Max if self.has => self.score + base,
            Aggregate::Min | Aggregate::Max => base,
        };
        layout.post_transform.apply(value) as f32
    }
}

/// Rows scored together, tree by tree: few enough that their values stay in the L1 cache while every
/// tree is walked for each of them (the rows' walks are independent, so they overlap).
const ROW_BLOCK: usize = 16;

/// Rows of a batch walked together by [`FlatTrees::leaves`].
const LANES: usize = 8;

/// Scores rows by walking the plan bytes, or for a batch its [`FlatTrees`]; each row adds its trees in
/// tree order either way.
fn score_trees(reader: &TreeReader, layout: &TreeLayout, rows: &[f32], width: usize) -> Result<Vec<f32>, PlanError> {
    let mut out = Vec::with_capacity(rows.len() / width);
    let flat = if rows.len() / width >= FLAT_FROM_ROWS { FlatTrees::new(reader, width)? } else { None };
    for block in rows.chunks(ROW_BLOCK * width) {
        let n = block.len() / width;
        let row = |r: usize| &block[r * width..(r + 1) * width];
        let mut acc = [Aggregation::default(); ROW_BLOCK];
        for t in 0..layout.trees {
            let mut add = |r: usize, w: Option<f32>| {
                if let Some(w) = w {
                    acc[r].add(layout.aggregate, w);
                }
            };
            match &flat {
                Some(flat) => {
                    let whole = n - n % LANES;
                    for r in (0..whole).step_by(LANES) {
                        let ws = flat.leaves::<LANES>(t, block, width, r);
                        ws.into_iter().enumerate().for_each(|(k, w)| add(r + k, w));
                    }
                    (whole..n).for_each(|r| add(r, flat.leaves::<1>(t, block, width, r)[0]));
                }
                None => {
                    for r in 0..n {
                        add(r, reader.leaf(t, row(r))?);
                    }
                }
            }
        }
        out.extend(acc.iter().take(n).map(|a| a.finish(layout)));
    }
    Ok(out)
}

impl Plan {
    /// Plans an ONNX model whose graph is one `ai.onnx.ml` `TreeEnsembleRegressor` or
    /// `LinearRegressor` node on a float32 [N, F] input (optionally followed by `Identity`
    /// nodes) with one [N, 1] output. [`PlanError::Unsupported`] means: use tract.
    pub fn from_onnx(bytes: &[u8]) -> Result<Plan, PlanError> {
        let model = ModelProto::decode(bytes)?;
        let graph = model.graph.as_ref().ok_or_else(|| PlanError::Invalid("the model has no graph".into()))?;
        let initialisers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<_> = graph.input.iter().filter(|i| !initialisers.contains(&i.name.as_str())).collect();
        let ([input], [output]) = (inputs.as_slice(), graph.output.as_slice()) else {
            return Err(PlanError::Unsupported("the graph must have one input and one output".into()));
        };
        let declared_features = match input.tensor_shape() {
            Some((elem, _)) if elem != DataType::Float as i32 => {
                return Err(PlanError::Unsupported(format!("input element type {elem} (only float32 is planned)")));
            }
            Some((_, dims)) if dims.len() != 2 => {
                return Err(PlanError::Unsupported(format!("input of rank {}", dims.len())));
            }
            Some((_, dims)) => dims[1],
            None => None,
        };
        let Some((main, rest)) = graph.node.split_first() else {
            return Err(PlanError::Invalid("the graph has no node".into()));
        };
        if main.input != [input.name.clone()] || main.output.len() != 1 {
            return Err(PlanError::Unsupported(format!("{} is not applied to the graph input alone", main.op_type)));
        }
        let mut current = &main.output[0];
        for node in rest {
            if node.op_type != "Identity" || !node.domain.is_empty() || node.input != [current.clone()] {
                return Err(PlanError::Unsupported(format!("a {} node after {}", node.op_type, main.op_type)));
            }
            current = node.output.first().ok_or_else(|| PlanError::Invalid("Identity without output".into()))?;
        }
        if *current != output.name {
            return Err(PlanError::Unsupported("the graph output is not the model node's output".into()));
        }
        if main.domain != "ai.onnx.ml" {
            return Err(PlanError::Unsupported(format!("operator {}::{}", main.domain, main.op_type)));
        }
        let declared = declared_features
            .map(|f| usize::try_from(f).ok().filter(|&f| f > 0 && f <= u32::MAX as usize))
            .map(|f| f.ok_or_else(|| PlanError::Invalid(format!("input width {declared_features:?}"))))
            .transpose()?;
        let (needed, source) = match main.op_type.as_str() {
            "TreeEnsembleRegressor" => {
                let e = parse_tree_ensemble(main)?;
                (e.max_feature().map_or(1, |f| f as usize + 1), Source::Trees(e))
            }
            "LinearRegressor" => {
                let l = parse_linear(main)?;
                if declared.is_some_and(|f| f != l.coefficients.len()) {
                    return Err(PlanError::Invalid(format!(
                        "{} coefficients for an input of width {declared:?}",
                        l.coefficients.len()
                    )));
                }
                (l.coefficients.len(), Source::Linear(l))
            }
            other => return Err(PlanError::Unsupported(format!("operator ai.onnx.ml::{other}"))),
        };
        let num_features = declared.unwrap_or(needed);
        if num_features < needed {
            return Err(PlanError::Invalid(format!(
                "the model reads feature {} of a {num_features}-wide input",
                needed - 1
            )));
        }
        Plan::from_bytes(encode(num_features, &source)?)
    }

    /// Features per row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of trees (0 for a linear model).
    pub fn num_trees(&self) -> usize {
        match &self.model {
            Model::Trees(t) => t.trees,
            Model::Linear(_) => 0,
        }
    }

    /// One score per row of `rows` (row-major, [`Plan::num_features`] values a row; NaN is missing).
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f32>, PlanError> {
        let width = self.num_features;
        if !rows.len().is_multiple_of(width) {
            return Err(PlanError::RaggedRows { len: rows.len(), features: width });
        }
        Ok(match &self.model {
            Model::Trees(layout) => score_trees(&TreeReader::new(&self.bytes, layout), layout, rows, width)?,
            Model::Linear(l) => rows.chunks_exact(width).map(|r| l.score(r)).collect(),
        })
    }

    /// The versioned little-endian byte form: header, arrays, then a checksum of all before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Takes [`Plan::to_bytes`] output, checking magic, version, exact length, checksum and tree
    /// offsets. Tree nodes stay in the bytes, nothing is copied; scoring checks each node it visits
    /// (a plan whose walk would leave its tree or the row is refused then, with [`PlanError::Format`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Plan, PlanError> {
        let bad = |what: &str| PlanError::Format(what.to_owned());
        if bytes.len() < HEADER + 8 || &bytes[..8] != MAGIC {
            return Err(bad("no plan header"));
        }
        let version = word(&bytes, 8);
        if version != VERSION {
            return Err(PlanError::Format(format!("format version {version}, this build reads {VERSION}")));
        }
        let (kind, agg, post, reserved) = (bytes[12], bytes[13], bytes[14], bytes[15]);
        let num_features = word(&bytes, 16) as usize;
        let base = f32::from_bits(word(&bytes, 20));
        let (count_a, count_b) = (word(&bytes, 24) as usize, word(&bytes, 28) as usize);
        let payload = match kind {
            KIND_TREES => {
                count_a.checked_mul(4).and_then(|r| count_b.checked_mul(NODE_BYTES).and_then(|n| r.checked_add(n)))
            }
            KIND_LINEAR => count_a.checked_mul(4),
            _ => return Err(bad("unknown model kind")),
        };
        if payload.and_then(|p| p.checked_add(HEADER + 8)) != Some(bytes.len()) {
            return Err(bad("length does not match the header"));
        }
        let body = bytes.len() - 8;
        if checksum(&bytes[..body]).to_le_bytes() != bytes[body..] {
            return Err(bad("checksum mismatch"));
        }
        let post_transform = PostTransform::from_bits(post).ok_or_else(|| bad("unknown post_transform"))?;
        if reserved != 0 {
            return Err(bad("reserved header byte is set"));
        }
        if num_features == 0 {
            return Err(bad("zero features"));
        }
        let model = if kind == KIND_LINEAR {
            if count_a != num_features || count_b != 0 {
                return Err(bad("coefficient count differs from the feature count"));
            }
            let coefficients = (0..count_a).map(|k| f32::from_bits(word(&bytes, HEADER + 4 * k))).collect();
            Model::Linear(Linear { coefficients, intercept: base, post_transform })
        } else {
            let aggregate = Aggregate::from_bits(agg).ok_or_else(|| bad("unknown aggregate"))?;
            let layout = TreeLayout { trees: count_a, nodes: count_b, base, aggregate, post_transform };
            check_roots(&TreeReader::new(&bytes, &layout))?;
            Model::Trees(layout)
        };
        Ok(Plan { num_features, bytes, model })
    }
}

/// Tree offsets must increase from 0 and leave every tree a node; the nodes themselves are checked as
/// scoring walks them.
fn check_roots(r: &TreeReader) -> Result<(), PlanError> {
    let bad = |what: &str| PlanError::Format(what.to_owned());
    if r.trees == 0 || r.root(0) != 0 || (1..r.trees).any(|t| r.root(t - 1) >= r.root(t)) {
        return Err(bad("tree offsets are not increasing from 0"));
    }
    if r.root(r.trees - 1) >= r.nodes {
        return Err(bad("a tree has no nodes"));
    }
    Ok(())
}
