//! ONNX export of trained models, so any ONNX runtime (onnxruntime, tract in `predict`) can score
//! them and an artifact carries its own feature list.
//!
//! [`proto`] holds hand-written prost messages for the needed part of `onnx.proto` (used to
//! write models here and to read them in `predict`); [`export()`] turns a [`Booster`](crate::gbdt::Booster)
//! into one `TreeEnsembleRegressor` graph whose f32 scores match the booster's on f32-cast rows.

pub mod export;
pub mod proto;

pub use export::{FEATURE_NAMES_KEY, INPUT_NAME, OUTPUT_NAME, export, threshold_to_f32, to_model_proto};

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::ControlFlow;

    use prost::Message;

    use super::proto::{AttributeProto, DataType, ModelProto, NodeProto};
    use super::*;
    use crate::gbdt::{Booster, Dataset, Objective, Params, train};

    use crate::gbdt::SplitMix64 as TestRng;

    /// Rows of 6 features (about 10% NaN in feature 1 and 4) and a non-linear label.
    fn synthetic(rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = TestRng(seed);
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let mut x: Vec<f64> = (0..6).map(|_| rng.uniform() * 4.0 - 2.0).collect();
            let y = (3.0 * x[0]).sin() + x[1] * x[2] + if x[3] > 0.3 { 1.5 } else { -0.5 } + 0.1 * rng.uniform();
            for f in [1, 4] {
                if rng.uniform() < 0.1 {
                    x[f] = f64::NAN;
                }
            }
            // NaN in feature 1 shifts the label, so learned NaN directions matter.
            labels.push(if x[1].is_nan() { y + 2.0 } else { y });
            values.extend(x);
        }
        (values, labels)
    }

    fn trained(objective: Objective, rounds: usize) -> Booster {
        let (values, mut labels) = synthetic(600, 7);
        if objective == Objective::Binary {
            labels.iter_mut().for_each(|y| *y = f64::from(*y > 0.5));
        }
        let names = (0..6).map(|i| format!("f{i}")).collect();
        let data = Dataset::from_row_major(names, &values, labels).unwrap();
        let params = Params {
            objective,
            num_boost_round: rounds,
            num_leaves: 12,
            min_data_in_leaf: 5,
            learning_rate: 0.2,
            ..Params::default()
        };
        train(&params, &data, None, |_| ControlFlow::Continue(())).unwrap()
    }

    fn attrs(node: &NodeProto) -> HashMap<&str, &AttributeProto> {
        node.attribute.iter().map(|a| (a.name.as_str(), a)).collect()
    }

    /// Scores an f32 row straight from the decoded attributes (ONNX semantics for BRANCH_LEQ).
    fn score_from_attributes(a: &HashMap<&str, &AttributeProto>, row: &[f32]) -> f32 {
        let key = |t: i64, n: i64| (t, n);
        let mut index = HashMap::new();
        for (i, (&t, &n)) in a["nodes_treeids"].ints.iter().zip(&a["nodes_nodeids"].ints).enumerate() {
            index.insert(key(t, n), i);
        }
        let mut weights = HashMap::new();
        for ((&t, &n), &w) in
            a["target_treeids"].ints.iter().zip(&a["target_nodeids"].ints).zip(&a["target_weights"].floats)
        {
            weights.insert(key(t, n), w);
        }
        let trees = a["nodes_treeids"].ints.iter().max().unwrap() + 1;
        let mut sum = a["base_values"].floats[0];
        for t in 0..trees {
            let mut i = index[&key(t, 0)];
            while a["nodes_modes"].strings[i] != b"LEAF" {
                assert_eq!(a["nodes_modes"].strings[i], b"BRANCH_LEQ");
                let x = row[a["nodes_featureids"].ints[i] as usize];
                let go_true = if x.is_nan() {
                    a["nodes_missing_value_tracks_true"].ints[i] == 1
                } else {
                    x <= a["nodes_values"].floats[i]
                };
                let next = if go_true { a["nodes_truenodeids"].ints[i] } else { a["nodes_falsenodeids"].ints[i] };
                i = index[&key(t, next)];
            }
            sum += weights[&key(t, a["nodes_nodeids"].ints[i])];
        }
        sum
    }

    #[test]
    fn export_writes_one_tree_ensemble_graph_that_scores_like_the_booster() {
        let booster = trained(Objective::Regression, 25);
        assert_eq!(booster.trees().len(), 25);
        assert!(booster.trees().iter().flat_map(|t| t.nodes()).any(|n| !n.default_left));
        assert!(booster.trees().iter().flat_map(|t| t.nodes()).any(|n| n.default_left));
        let bytes = export(&booster);
        let model = ModelProto::decode(bytes.as_slice()).unwrap();

        assert_eq!(model.producer_name, "stockops");
        assert!(!model.doc_string.is_empty());
        let opsets: HashMap<&str, i64> = model.opset_import.iter().map(|o| (o.domain.as_str(), o.version)).collect();
        assert_eq!(opsets, HashMap::from([("", 13), ("ai.onnx.ml", 3)]));
        let meta: HashMap<&str, &str> =
            model.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
        let names: Vec<String> = serde_json::from_str(meta[FEATURE_NAMES_KEY]).unwrap();
        assert_eq!(names, booster.feature_names());

        let graph = model.graph.as_ref().unwrap();
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, INPUT_NAME);
        assert_eq!(graph.input[0].tensor_shape(), Some((DataType::Float as i32, vec![None, Some(6)])));
        assert_eq!(graph.output[0].name, OUTPUT_NAME);
        assert_eq!(graph.output[0].tensor_shape(), Some((DataType::Float as i32, vec![None, Some(1)])));
        assert_eq!(graph.node.len(), 1);
        let node = &graph.node[0];
        assert_eq!((node.op_type.as_str(), node.domain.as_str()), ("TreeEnsembleRegressor", "ai.onnx.ml"));
        assert_eq!(
            (node.input.as_slice(), node.output.as_slice()),
            ([INPUT_NAME.to_owned()].as_slice(), [OUTPUT_NAME.to_owned()].as_slice())
        );

        let a = attrs(node);
        let total_nodes: usize = booster.trees().iter().map(|t| t.nodes().len() + t.leaves().len()).sum();
        let total_leaves: usize = booster.trees().iter().map(|t| t.leaves().len()).sum();
        for name in [
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
        ] {
            assert_eq!(a[name].ints.len(), total_nodes, "{name}");
        }
        assert_eq!(a["nodes_modes"].strings.len(), total_nodes);
        assert_eq!(a["nodes_values"].floats.len(), total_nodes);
        for name in ["target_ids", "target_nodeids", "target_treeids"] {
            assert_eq!(a[name].ints.len(), total_leaves, "{name}");
        }
        assert_eq!(a["target_weights"].floats.len(), total_leaves);
        assert_eq!(a["n_targets"].i, 1);
        assert_eq!(a["aggregate_function"].string(), Some("SUM"));
        assert_eq!(a["post_transform"].string(), Some("NONE"));
        assert_eq!(a["base_values"].floats, vec![booster.base_score() as f32]);

        // Split rows in booster order: thresholds rounded down, NaN direction = default_left.
        let splits: Vec<usize> = (0..total_nodes).filter(|&i| a["nodes_modes"].strings[i] != b"LEAF").collect();
        let booster_nodes: Vec<_> = booster.trees().iter().flat_map(|t| t.nodes()).collect();
        assert_eq!(splits.len(), booster_nodes.len());
        for (&i, n) in splits.iter().zip(&booster_nodes) {
            assert_eq!(a["nodes_values"].floats[i], threshold_to_f32(n.threshold));
            assert_eq!(a["nodes_featureids"].ints[i], n.feature as i64);
            assert_eq!(a["nodes_missing_value_tracks_true"].ints[i], i64::from(n.default_left));
        }

        // Held-out rows cast to f32, and rows sitting on a split's f32 neighbours of its threshold
        // (where rounding it the wrong way changes the route): scored like the booster.
        let (mut values, _) = synthetic(400, 99);
        let first = values[..6].to_vec();
        for n in booster_nodes.iter().take(60) {
            let near = n.threshold as f32;
            for v in [near, near.next_up(), near.next_down()] {
                let mut row = first.clone();
                row[n.feature] = f64::from(v);
                values.extend(row);
            }
        }
        let mut max_diff = 0f64;
        for row in values.chunks(6) {
            let row32: Vec<f32> = row.iter().map(|&x| x as f32).collect();
            let row64: Vec<f64> = row32.iter().map(|&x| f64::from(x)).collect();
            let diff = (f64::from(score_from_attributes(&a, &row32)) - booster.predict(&row64)).abs();
            max_diff = max_diff.max(diff);
        }
        assert!(max_diff <= 1e-5, "max |onnx - booster| = {max_diff}");
    }

    #[test]
    fn binary_models_output_the_probability_and_treeless_models_the_base_score() {
        let binary = trained(Objective::Binary, 5);
        let model = ModelProto::decode(export(&binary).as_slice()).unwrap();
        let a = attrs(&model.graph.as_ref().unwrap().node[0]);
        assert_eq!(a["post_transform"].string(), Some("LOGISTIC"));

        // Constant features: the first round finds no split and the booster has no trees.
        let data = Dataset::from_row_major(vec!["c".into()], &[1.0; 50], (0..50).map(f64::from).collect()).unwrap();
        let params = Params { num_boost_round: 3, min_data_in_leaf: 2, ..Params::default() };
        let empty = train(&params, &data, None, |_| ControlFlow::Continue(())).unwrap();
        assert!(empty.trees().is_empty());
        let model = ModelProto::decode(export(&empty).as_slice()).unwrap();
        let a = attrs(&model.graph.as_ref().unwrap().node[0]);
        assert_eq!(a["nodes_modes"].strings, vec![b"LEAF".to_vec()]);
        assert_eq!(a["target_weights"].floats, vec![0.0]);
        assert_eq!(score_from_attributes(&a, &[1.0]), 24.5);
    }

    /// f32 values next to `t`: where a wrong rounding direction would show.
    fn probes(t: f64) -> Vec<f32> {
        let near = t as f32;
        let mut v =
            vec![near, near.next_up(), near.next_down(), near.next_up().next_up(), near.next_down().next_down()];
        v.extend([0.0, -0.0, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE]);
        v
    }

    #[test]
    fn rounded_thresholds_compare_like_the_f64_ones_for_every_f32_input() {
        let mut rng = TestRng(42);
        let mut thresholds = vec![
            0.0,
            -0.0,
            0.1,
            -0.1,
            1.0 / 3.0,
            -1.0 / 3.0,
            1e-40,
            -1e-40,
            1e-300,
            -1e-300,
            f64::from(f32::MAX) * 1.5,
            -f64::from(f32::MAX) * 1.5,
            f64::from(f32::MAX),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from(1.5f32),
        ];
        for _ in 0..20_000 {
            let bits = rng.next_u64();
            let scale = 10f64.powi((rng.next_u64() % 20) as i32 - 10);
            thresholds.push((rng.uniform() - 0.5) * scale);
            // Midpoints between adjacent f32s: round-to-nearest goes the wrong way half the time.
            let f = f32::from_bits(bits as u32);
            if f.is_finite() {
                thresholds.push((f64::from(f) + f64::from(f.next_up())) / 2.0);
            }
        }
        let mut rounded_down = 0;
        for &t in &thresholds {
            let t32 = threshold_to_f32(t);
            assert!(f64::from(t32) <= t, "{t} -> {t32}");
            assert!(t32 == f32::INFINITY || f64::from(t32.next_up()) > t, "{t} -> {t32} is not the largest");
            if (t as f32) != t32 {
                rounded_down += 1;
            }
            for x in probes(t) {
                assert_eq!(x <= t32, f64::from(x) <= t, "x={x:e} t={t:e} t32={t32:e}");
            }
        }
        // The property must have been exercised where plain `as f32` rounds up.
        assert!(rounded_down > 1000, "{rounded_down}");
    }
}
