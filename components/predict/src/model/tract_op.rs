//! `ai.onnx.ml` `TreeEnsembleRegressor` for tract, which ships only the classifier.
//!
//! The node's attributes are read by the same parser as [`Plan`](super::Plan) (tract's own
//! helpers are private), then laid out as tract's public `TreeEnsembleData`, evaluated by
//! tract's tree kernel, plus base value and post-transform as tract ops. Two tract quirks are
//! worked around: its comparator table drops `BRANCH_GTE` (turned into `BRANCH_LT` with the
//! branches swapped), and NaN at `BRANCH_NEQ` goes true as in onnxruntime. AVERAGE is a SUM
//! divided by the tree count (tract's divides by the weights met). tract's MIN / MAX start from 0
//! instead of the first tree, so those aggregates are refused (the plan has them).
//! `LinearRegressor` is in tract-onnx already.

use prost::Message;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto as TractNodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx_opl::ml::tree::{Aggregate as TractAggregate, Cmp, TreeEnsemble, TreeEnsembleData};
use tract_onnx_opl::ml::tree_ensemble_classifier::TreeEnsembleClassifier as TreeScores;
use train_batch::onnx::proto::NodeProto;

use super::plan::{self, Aggregate, Ensemble, Mode, Node, PostTransform};

/// tract's ONNX loader with `TreeEnsembleRegressor` registered.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("TreeEnsembleRegressor", tree_regressor);
    onnx
}

/// Builds the op from the node (re-read through our prost types: same wire format).
fn tree_regressor(_ctx: &ParsingContext, node: &TractNodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ours = NodeProto::decode(node.encode_to_vec().as_slice())?;
    let ensemble = plan::parse_tree_ensemble(&ours)?;
    Ok((expand(TreeEnsembleRegressor::new(&ensemble)?), vec![]))
}

/// Trees per tract ensemble op. tract finds a leaf's weights by stepping an iterator from the
/// first leaf of the whole ensemble, so its cost per tree grows with the ensemble; chunks of a
/// few trees keep that walk short (500 trees × 31 leaves, one row: 48 ms as one op, 3.6 ms in
/// chunks of 4, 4.6 ms in chunks of 1 where the extra ops cost more than the walk saves).
const TREES_PER_CHUNK: usize = 4;

/// The regressor: tract's tree scores per chunk of trees, summed, divided by the tree count for
/// AVERAGE, plus the base value, then the post-transform.
#[derive(Debug, Clone)]
pub struct TreeEnsembleRegressor {
    chunks: Vec<TreeEnsemble>,
    num_trees: usize,
    average: bool,
    base: f32,
    post_transform: PostTransform,
}

impl TreeEnsembleRegressor {
    fn new(e: &Ensemble) -> TractResult<Self> {
        let average = match e.aggregate {
            Aggregate::Sum => false,
            Aggregate::Average => true,
            Aggregate::Min | Aggregate::Max => {
                bail!("tract's MIN / MAX tree aggregates start from 0 instead of the first tree's value")
            }
        };
        let mut chunks = Vec::new();
        for first in (0..e.roots.len()).step_by(TREES_PER_CHUNK) {
            let last = (first + TREES_PER_CHUNK).min(e.roots.len());
            let start = e.roots[first] as usize;
            let end = e.roots.get(last).map_or(e.nodes.len(), |&r| r as usize);
            chunks.push(chunk(&e.nodes[start..end], &e.roots[first..last], start as u32)?);
        }
        Ok(TreeEnsembleRegressor {
            chunks,
            num_trees: e.roots.len(),
            average,
            base: e.base,
            post_transform: e.post_transform,
        })
    }
}

/// tract's ensemble (SUM, one target) of `nodes`, whose trees start at `roots` (indices of the
/// whole ensemble, `offset` being the first node's).
fn chunk(nodes: &[Node], roots: &[u32], offset: u32) -> TractResult<TreeEnsemble> {
    let mut rows: Vec<u32> = Vec::with_capacity(nodes.len() * 5);
    let mut leaves: Vec<u32> = Vec::new();
    for n in nodes {
        let (cmp, swap, nan_true) = match n.mode() {
            Mode::Leaf => {
                let start = leaves.len() as u32 / 2;
                if n.has_weight() {
                    leaves.extend([0, n.value.to_bits()]);
                }
                rows.extend([start, leaves.len() as u32 / 2, 0, 0, 0]);
                continue;
            }
            Mode::Leq => (Cmp::LessEqual, false, n.nan_true()),
            Mode::Lt => (Cmp::Less, false, n.nan_true()),
            Mode::Gt => (Cmp::Greater, false, n.nan_true()),
            Mode::Eq => (Cmp::Equal, false, n.nan_true()),
            Mode::Neq => (Cmp::NotEqual, false, true),
            // x >= t is !(x < t) for numbers; NaN keeps its branch.
            Mode::Gte => (Cmp::Less, true, !n.nan_true()),
        };
        let (t, f) = if swap { (n.false_child, n.true_child) } else { (n.true_child, n.false_child) };
        rows.extend([
            n.feature,
            t - offset,
            f - offset,
            n.value.to_bits(),
            cmp as u32 | if nan_true { 0x100 } else { 0 },
        ]);
    }
    let roots: Vec<u32> = roots.iter().map(|r| r - offset).collect();
    let max_feature = nodes.iter().filter(|n| n.mode() != Mode::Leaf).map(|n| n.feature).max().unwrap_or(0);
    let data = TreeEnsembleData {
        trees: rctensor1(&roots),
        nodes: tensor1(&rows).into_shape(&[nodes.len(), 5])?.into_arc_tensor(),
        leaves: tensor1(&leaves).into_shape(&[leaves.len() / 2, 2])?.into_arc_tensor(),
    };
    TreeEnsemble::build(data, max_feature as usize, 1, TractAggregate::Sum)
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], 1.to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let mut sum: Option<OutletId> = None;
        for (i, ensemble) in self.chunks.iter().enumerate() {
            let y =
                model.wire_node(format!("{prefix}.trees{i}"), TreeScores { ensemble: ensemble.clone() }, inputs)?[0];
            sum = Some(match sum {
                None => y,
                Some(s) => model.wire_node(format!("{prefix}.sum{i}"), tract_core::ops::math::add(), &[s, y])?[0],
            });
        }
        let mut y = tvec![sum.context("an ensemble without trees")?];
        if self.average {
            let n = model.add_const(format!("{prefix}.num_trees"), rctensor2(&[[self.num_trees as f32]]))?;
            y = model.wire_node(format!("{prefix}.average"), tract_core::ops::math::div(), &[y[0], n])?;
        }
        if self.base != 0.0 {
            let base = model.add_const(format!("{prefix}.base"), rctensor2(&[[self.base]]))?;
            y = model.wire_node(format!("{prefix}.add_base"), tract_core::ops::math::add(), &[y[0], base])?;
        }
        if self.post_transform == PostTransform::Logistic {
            y = model.wire_node(format!("{prefix}.logistic"), tract_core::ops::nn::sigmoid(), &y)?;
        }
        Ok(y)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1)
    }
}
