//! A [`Booster`] as an ONNX model: one `ai.onnx.ml` `TreeEnsembleRegressor` node from input
//! "features" (float32 [N, F]) to output "variable" (float32 [N, 1]).
//!
//! ONNX compares f32 inputs with f32 thresholds, so each f64 threshold `t` is written as the
//! largest f32 `t32 <= t`: for every f32 `x`, `x <= t32` exactly when `x as f64 <= t`, and the
//! ONNX model routes f32-cast rows exactly as the booster routes the same rows. Leaf values and
//! the base score are rounded to nearest f32; runtimes sum them in f32.

use prost::Message;

use super::proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use crate::gbdt::{Booster, Child, Objective, Tree};

/// Name of the graph input: float32 rows of the booster's features, in its column order.
pub const INPUT_NAME: &str = "features";
/// Name of the graph output: float32 [N, 1] predictions.
pub const OUTPUT_NAME: &str = "variable";
/// Symbolic batch dimension of input and output.
pub const BATCH_DIM: &str = "N";
/// Domain of the tree-ensemble operator.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// Operator set of the default domain (the graph uses none of its ops; runtimes want one declared).
pub const ONNX_OPSET: i64 = 13;
/// `ai.onnx.ml` operator set: 3 is read by onnxruntime and tract alike.
pub const ML_OPSET: i64 = 3;
/// IR version 8 (ONNX 1.10, the release of `ai.onnx.ml` opset 3).
pub const IR_VERSION: i64 = 8;
/// Metadata key of the JSON list of feature names.
pub const FEATURE_NAMES_KEY: &str = "feature_names";

/// The largest f32 that is `<= t` (rounding toward −∞): the threshold for which f32 comparisons
/// `x <= t32` agree with `x as f64 <= t` for every f32 `x`. Infinities map to themselves.
pub fn threshold_to_f32(t: f64) -> f32 {
    let nearest = t as f32;
    if f64::from(nearest) > t { nearest.next_down() } else { nearest }
}

/// Serialised ONNX model of `booster`.
///
/// Regression and Huber models output the raw score (post_transform NONE); a binary model
/// outputs the probability of class 1 (post_transform LOGISTIC on the raw score), as
/// [`Booster::predict`] does. A booster without trees becomes one single-leaf tree of weight 0,
/// since ONNX runtimes reject an ensemble without nodes.
pub fn export(booster: &Booster) -> Vec<u8> {
    to_model_proto(booster).encode_to_vec()
}

/// The [`ModelProto`] that [`export`] serialises.
pub fn to_model_proto(booster: &Booster) -> ModelProto {
    let num_features = booster.num_features() as i64;
    let objective = booster.objective();
    let post_transform = match objective {
        Objective::Regression | Objective::Huber => "NONE",
        Objective::Binary => "LOGISTIC",
    };
    let node = tree_ensemble_node(booster.trees(), booster.base_score(), post_transform);
    let graph = GraphProto {
        node: vec![node],
        name: "stockops_gbdt".into(),
        doc_string: format!("stockops GBDT: {} trees over {num_features} features", booster.trees().len()),
        input: vec![tensor_value(INPUT_NAME, num_features)],
        output: vec![tensor_value(OUTPUT_NAME, 1)],
        ..Default::default()
    };
    let feature_names =
        serde_json::to_string(booster.feature_names()).expect("a list of strings always serialises to JSON");
    let objective_name = serde_json::to_value(objective).ok().and_then(|v| v.as_str().map(str::to_owned));
    let metadata = [
        (FEATURE_NAMES_KEY, feature_names),
        ("objective", objective_name.unwrap_or_default()),
        ("num_trees", booster.trees().len().to_string()),
        ("base_score", format!("{:?}", booster.base_score())),
    ];
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![
            OperatorSetIdProto { domain: String::new(), version: ONNX_OPSET },
            OperatorSetIdProto { domain: ML_DOMAIN.into(), version: ML_OPSET },
        ],
        producer_name: "stockops".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "stockops".into(),
        model_version: 1,
        doc_string: format!(
            "stockops gradient-boosted trees ({objective:?} objective, output {post_transform}). Input `{INPUT_NAME}`: \
             float32 [N, {num_features}] in the order of metadata `{FEATURE_NAMES_KEY}`; NaN is a missing value. \
             Output `{OUTPUT_NAME}`: float32 [N, 1]."
        ),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
    }
}

/// A float32 tensor value of shape [N, `width`].
fn tensor_value(name: &str, width: i64) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |value| Dimension { value: Some(value), denotation: String::new() };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![dim(Value::DimParam(BATCH_DIM.into())), dim(Value::DimValue(width))],
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// Node attribute arrays of the ensemble, in ONNX's parallel-array layout.
#[derive(Default)]
struct Columns {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<Vec<u8>>,
    values: Vec<f32>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<i64>,
    target_tree_ids: Vec<i64>,
    target_node_ids: Vec<i64>,
    target_weights: Vec<f32>,
}

impl Columns {
    fn push_node(&mut self, tree: i64, id: i64, mode: &str, feature: i64, value: f32, children: (i64, i64)) {
        self.tree_ids.push(tree);
        self.node_ids.push(id);
        self.feature_ids.push(feature);
        self.modes.push(mode.as_bytes().to_vec());
        self.values.push(value);
        self.true_ids.push(children.0);
        self.false_ids.push(children.1);
        self.missing_true.push(0);
    }

    fn push_leaf(&mut self, tree: i64, id: i64, weight: f64) {
        self.push_node(tree, id, "LEAF", 0, 0.0, (0, 0));
        self.target_tree_ids.push(tree);
        self.target_node_ids.push(id);
        self.target_weights.push(weight as f32);
    }

    /// One tree: split node k has id k, leaf l has id `nodes + l`.
    fn push_tree(&mut self, t: i64, tree: &Tree) {
        let splits = tree.nodes().len() as i64;
        let id = |c: Child| match c {
            Child::Split(k) => i64::from(k),
            Child::Leaf(l) => splits + i64::from(l),
        };
        for (k, n) in tree.nodes().iter().enumerate() {
            let value = threshold_to_f32(n.threshold);
            self.push_node(t, k as i64, "BRANCH_LEQ", n.feature as i64, value, (id(n.left), id(n.right)));
            // Left is the true branch: NaN follows it iff default_left.
            *self.missing_true.last_mut().expect("just pushed") = i64::from(n.default_left);
        }
        for (l, leaf) in tree.leaves().iter().enumerate() {
            self.push_leaf(t, splits + l as i64, leaf.value);
        }
    }
}

/// The `TreeEnsembleRegressor` node of `trees` with start score `base`.
fn tree_ensemble_node(trees: &[Tree], base: f64, post_transform: &str) -> NodeProto {
    let mut c = Columns::default();
    for (t, tree) in trees.iter().enumerate() {
        c.push_tree(t as i64, tree);
    }
    if trees.is_empty() {
        c.push_leaf(0, 0, 0.0);
    }
    let target_ids = vec![0; c.target_weights.len()];
    NodeProto {
        input: vec![INPUT_NAME.into()],
        output: vec![OUTPUT_NAME.into()],
        name: "gbdt".into(),
        op_type: "TreeEnsembleRegressor".into(),
        domain: ML_DOMAIN.into(),
        attribute: vec![
            string_attr("aggregate_function", "SUM"),
            floats_attr("base_values", vec![base as f32]),
            int_attr("n_targets", 1),
            ints_attr("nodes_falsenodeids", c.false_ids),
            ints_attr("nodes_featureids", c.feature_ids),
            ints_attr("nodes_missing_value_tracks_true", c.missing_true),
            strings_attr("nodes_modes", c.modes),
            ints_attr("nodes_nodeids", c.node_ids),
            ints_attr("nodes_treeids", c.tree_ids),
            ints_attr("nodes_truenodeids", c.true_ids),
            floats_attr("nodes_values", c.values),
            string_attr("post_transform", post_transform),
            ints_attr("target_ids", target_ids),
            ints_attr("target_nodeids", c.target_node_ids),
            ints_attr("target_treeids", c.target_tree_ids),
            floats_attr("target_weights", c.target_weights),
        ],
        doc_string: String::new(),
    }
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: kind as i32, ..Default::default() }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto { i, ..attr(name, AttributeType::Int) }
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { ints, ..attr(name, AttributeType::Ints) }
}

fn floats_attr(name: &str, floats: Vec<f32>) -> AttributeProto {
    AttributeProto { floats, ..attr(name, AttributeType::Floats) }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto { s: s.as_bytes().to_vec(), ..attr(name, AttributeType::String) }
}

fn strings_attr(name: &str, strings: Vec<Vec<u8>>) -> AttributeProto {
    AttributeProto { strings, ..attr(name, AttributeType::Strings) }
}
