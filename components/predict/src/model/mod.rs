//! Scoring ONNX regression models: [`TractModel`] runs any graph tract can (with our
//! `TreeEnsembleRegressor` op registered), [`Plan`] is the compact pre-planned form of
//! single-operator tree-ensemble and linear models for per-request use.
//!
//! Measured by `examples/bench_model_load.rs` (500 trees of 31 leaves, 158 features, release,
//! native): tract load (parse, type, optimise) ~28 ms and 3.6 ms to score one row (its tree
//! kernel is slow), against 0.4 ms to decode a plan and 0.03 ms to score one row. Request
//! handlers should store `Plan::to_bytes` at registration and fall back to tract only for graphs
//! a plan rejects as [`PlanError::Unsupported`].

mod plan;
mod tract_op;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use prost::Message;
use tract_onnx::prelude::*;
use train_batch::onnx::proto::ModelProto;

pub use plan::{Aggregate, Mode, Plan, PlanError, PostTransform};
pub use tract_op::{TreeEnsembleRegressor, onnx};

/// An ONNX model loaded, typed and optimised by tract for f32 input [N, F], N free.
#[derive(Debug, Clone)]
pub struct TractModel {
    runnable: Arc<TypedRunnableModel>,
    num_features: usize,
}

impl TractModel {
    /// Loads a model whose first input declares its width F.
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let proto = ModelProto::decode(bytes).context("decoding the ONNX model")?;
        let width = proto
            .graph
            .as_ref()
            .and_then(|g| g.input.first())
            .and_then(|i| i.tensor_shape())
            .and_then(|(_, dims)| dims.get(1).copied().flatten())
            .context("the model input does not declare its width: use TractModel::load_with_features")?;
        let width = usize::try_from(width).ok().filter(|&w| w > 0).context("invalid input width")?;
        Self::load_with_features(bytes, width)
    }

    /// Loads a model, fixing its first input to f32 [N, `num_features`] with N symbolic.
    pub fn load_with_features(bytes: &[u8], num_features: usize) -> Result<Self> {
        let mut model = onnx().model_for_read(&mut &bytes[..]).context("parsing the ONNX model with tract")?;
        let n = model.sym("N");
        model
            .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec![n.to_dim(), num_features.to_dim()]))?;
        let runnable = model.into_optimized().context("optimising the ONNX model")?.into_runnable()?;
        Ok(TractModel { runnable, num_features })
    }

    /// Features per row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The first output's values for row-major `rows` of `num_features` values each.
    pub fn predict(&self, rows: &[f32], num_features: usize) -> Result<Vec<f32>> {
        if num_features != self.num_features {
            bail!("rows have {num_features} features, the model takes {}", self.num_features);
        }
        if !rows.len().is_multiple_of(num_features) {
            bail!("{} values are not whole rows of {num_features} features", rows.len());
        }
        let n = rows.len() / num_features;
        if n == 0 {
            return Ok(Vec::new());
        }
        let input = Tensor::from_shape(&[n, num_features], rows)?;
        let outputs = self.runnable.run(tvec!(input.into_tvalue()))?;
        let y = outputs.first().context("the model has no output")?.to_plain_array_view::<f32>()?;
        if y.len() != n {
            bail!("the model output has shape {:?}, expected [{n}, 1]", y.shape());
        }
        Ok(y.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::ControlFlow;
    use std::path::{Path, PathBuf};

    use serde::Deserialize;
    use train_batch::gbdt::{Booster, Dataset, Params, train};
    use train_batch::onnx::{export, threshold_to_f32};

    use super::*;

    use train_batch::gbdt::SplitMix64 as TestRng;

    /// `rows` rows of `width` features in [-2, 2) with ~8% NaN in features 1 and 3, and a label.
    fn synthetic(rows: usize, width: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = TestRng(seed);
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let mut x: Vec<f64> = (0..width).map(|_| rng.uniform() * 4.0 - 2.0).collect();
            let mut y = (3.0 * x[0]).sin() + x[1] * x[2] + if x[3] > 0.3 { 1.5 } else { -0.5 };
            y += x.iter().skip(4).take(6).sum::<f64>() * 0.2 + 0.1 * rng.uniform();
            for f in [1, 3] {
                if rng.uniform() < 0.08 {
                    x[f] = f64::NAN;
                    y += 1.0;
                }
            }
            labels.push(y);
            values.extend(x);
        }
        (values, labels)
    }

    fn trained(width: usize, rounds: usize, leaves: usize) -> Booster {
        let (values, labels) = synthetic(800, width, 11);
        let names = (0..width).map(|i| format!("f{i}")).collect();
        let data = Dataset::from_row_major(names, &values, labels).unwrap();
        let params = Params {
            num_boost_round: rounds,
            num_leaves: leaves,
            min_data_in_leaf: 5,
            learning_rate: 0.15,
            ..Params::default()
        };
        train(&params, &data, None, |_| ControlFlow::Continue(())).unwrap()
    }

    /// Held-out rows as f32, plus rows whose value sits exactly on, just above and just below a
    /// split's f32 threshold (where a wrongly rounded threshold would route differently).
    fn probe_rows(booster: &Booster, held_out: usize, splits: usize) -> Vec<f32> {
        let width = booster.num_features();
        let (values, _) = synthetic(held_out, width, 12345);
        let mut rows: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        let base: Vec<f32> = rows[..width].to_vec();
        for n in booster.trees().iter().flat_map(|t| t.nodes()).step_by(5).take(splits) {
            let t32 = threshold_to_f32(n.threshold);
            for v in [t32, t32.next_up(), t32.next_down(), n.threshold as f32] {
                let mut r = base.clone();
                r[n.feature] = v;
                rows.extend(r);
            }
        }
        rows
    }

    fn native_f32(booster: &Booster, rows: &[f32]) -> Vec<f64> {
        rows.chunks(booster.num_features())
            .map(|r| booster.predict(&r.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()))
            .collect()
    }

    fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - y).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn exported_booster_scores_like_the_native_one_in_tract_and_plan() {
        let booster = trained(10, 40, 15);
        let bytes = export(&booster);
        let rows = probe_rows(&booster, 200, 40);
        assert!(rows.iter().any(|x| x.is_nan()));
        let native = native_f32(&booster, &rows);

        let tract = TractModel::load(&bytes).unwrap();
        assert_eq!(tract.num_features(), 10);
        let plan = Plan::from_onnx(&bytes).unwrap();
        assert_eq!((plan.num_features(), plan.num_trees()), (10, 40));

        let (t, p) = (tract.predict(&rows, 10).unwrap(), plan.predict(&rows).unwrap());
        assert!(max_abs_diff(&t, &native) <= 1e-5, "tract vs native: {}", max_abs_diff(&t, &native));
        assert!(max_abs_diff(&p, &native) <= 1e-5, "plan vs native: {}", max_abs_diff(&p, &native));
        // The plan sums the f32 weights in f64 (as onnxruntime), tract in f32: never far apart.
        let p64: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
        assert!(max_abs_diff(&t, &p64) <= 1e-5);

        // One row at a time and the empty batch go through the same model.
        assert_eq!(tract.predict(&rows[..10], 10).unwrap(), t[..1]);
        assert!(tract.predict(&[], 10).unwrap().is_empty());
        assert!(tract.predict(&rows[..15], 10).is_err());
        assert!(tract.predict(&rows[..10], 9).is_err());
        assert!(matches!(plan.predict(&rows[..15]), Err(PlanError::RaggedRows { len: 15, features: 10 })));
    }

    #[test]
    fn binary_export_outputs_probabilities() {
        let (values, labels) = synthetic(500, 6, 3);
        let labels = labels.iter().map(|&y| f64::from(y > 0.5)).collect();
        let data = Dataset::from_row_major((0..6).map(|i| format!("f{i}")).collect(), &values, labels).unwrap();
        let params = Params {
            objective: train_batch::gbdt::Objective::Binary,
            num_boost_round: 15,
            num_leaves: 7,
            min_data_in_leaf: 5,
            ..Params::default()
        };
        let booster = train(&params, &data, None, |_| ControlFlow::Continue(())).unwrap();
        let bytes = export(&booster);
        let rows = probe_rows(&booster, 100, 40);
        let native = native_f32(&booster, &rows);
        let p = Plan::from_onnx(&bytes).unwrap().predict(&rows).unwrap();
        let t = TractModel::load(&bytes).unwrap().predict(&rows, 6).unwrap();
        assert!(p.iter().all(|&x| (0.0..=1.0).contains(&x)));
        assert!(max_abs_diff(&p, &native) <= 1e-5, "plan: {}", max_abs_diff(&p, &native));
        assert!(max_abs_diff(&t, &native) <= 1e-5, "tract: {}", max_abs_diff(&t, &native));
    }

    #[test]
    fn plan_bytes_round_trip_exactly_and_reject_damage() {
        let booster = trained(10, 20, 15);
        let plan = Plan::from_onnx(&export(&booster)).unwrap();
        let bytes = plan.to_bytes();
        let back = Plan::from_bytes(bytes.clone()).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let rows = probe_rows(&booster, 50, 40);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(back.predict(&rows).unwrap()), bits(plan.predict(&rows).unwrap()));

        let fmt_err = |b: &[u8]| matches!(Plan::from_bytes(b.to_vec()), Err(PlanError::Format(_)));
        assert!(fmt_err(&bytes[..bytes.len() - 1]), "truncated");
        assert!(fmt_err(&[bytes.as_slice(), &[0]].concat()), "trailing byte");
        for at in [0, 8, 13, 40, bytes.len() / 2, bytes.len() - 20, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(fmt_err(&damaged), "flipped byte {at}");
        }
        assert!(fmt_err(b"not a plan at all, not a plan at all, not a plan"));

        // A child link pointing backwards (a loop) is refused even with a valid checksum.
        let mut looped = bytes[..bytes.len() - 8].to_vec();
        let (trees, nodes) = (plan.num_trees(), u32::from_le_bytes(bytes[28..32].try_into().unwrap()) as usize);
        let false_children = 32 + 4 * trees + 4 * nodes;
        looped[false_children..false_children + 4].copy_from_slice(&0u32.to_le_bytes());
        let sum = super::plan::checksum(&looped);
        looped.extend_from_slice(&sum.to_le_bytes());
        let looped = Plan::from_bytes(looped).unwrap();
        // Refused by the walks of a few rows (some take the looped branch) and by a batch's check of every
        // node alike.
        assert!(rows.len() / 10 >= 32);
        for rows in [&rows[..10 * 31], &rows[..]] {
            assert!(matches!(looped.predict(rows), Err(PlanError::Format(m)) if m.contains("links outside")));
        }

        // Linear plans round-trip too.
        let linear = Plan::from_onnx(&fixture_bytes("sklearn_linear.onnx")).unwrap();
        let lb = linear.to_bytes();
        assert_eq!(Plan::from_bytes(lb.clone()).unwrap().to_bytes(), lb);
    }

    #[test]
    fn plan_refuses_graphs_it_does_not_cover() {
        let booster = trained(10, 3, 4);
        let mut model = train_batch::onnx::to_model_proto(&booster);
        let graph = model.graph.as_mut().unwrap();
        let mut extra = graph.node[0].clone();
        extra.op_type = "Relu".into();
        extra.domain = String::new();
        extra.input = vec!["variable".into()];
        extra.output = vec!["relu".into()];
        extra.attribute.clear();
        graph.node.push(extra);
        graph.output[0].name = "relu".into();
        let err = Plan::from_onnx(&model.encode_to_vec()).unwrap_err();
        assert!(matches!(err, PlanError::Unsupported(ref m) if m.contains("Relu")), "{err}");

        let mut model = train_batch::onnx::to_model_proto(&booster);
        let node = &mut model.graph.as_mut().unwrap().node[0];
        node.attribute.iter_mut().find(|a| a.name == "nodes_truenodeids").unwrap().ints[0] = 999;
        assert!(matches!(Plan::from_onnx(&model.encode_to_vec()), Err(PlanError::Invalid(_))));
        assert!(matches!(Plan::from_onnx(b"\xff\xff\xff"), Err(PlanError::Decode(_))));
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
    }

    fn fixture_bytes(name: &str) -> Vec<u8> {
        std::fs::read(fixture_dir().join(name)).unwrap()
    }

    /// NAME.json written by scripts/make_onnx_fixtures.py (null = NaN).
    #[derive(Deserialize)]
    struct Fixture {
        model: String,
        num_features: usize,
        rows: Vec<Vec<Option<f64>>>,
        onnxruntime: Vec<Option<f64>>,
        native: Option<Vec<Option<f64>>>,
    }

    fn nan(v: &Option<f64>) -> f64 {
        v.unwrap_or(f64::NAN)
    }

    #[test]
    fn models_trained_elsewhere_score_as_in_onnxruntime() {
        let mut fixtures = BTreeMap::new();
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if let Some(stem) = name.strip_suffix(".json").filter(|s| !s.ends_with(".input")) {
                let f: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                fixtures.insert(stem.to_owned(), f);
            }
        }
        for expected in [
            "lightgbm_regressor",
            "xgboost_regressor",
            "sklearn_gbr",
            "sklearn_random_forest",
            "sklearn_linear",
            "handmade_sum",
            "handmade_average",
            "handmade_min",
            "handmade_max",
            "stockops_regression",
        ] {
            assert!(fixtures.contains_key(expected), "fixture {expected} is missing");
        }
        for (name, f) in &fixtures {
            let bytes = fixture_bytes(&f.model);
            let rows: Vec<f32> = f.rows.iter().flatten().map(|v| nan(v) as f32).collect();
            assert_eq!(rows.len(), f.rows.len() * f.num_features, "{name}");
            let ort: Vec<f64> = f.onnxruntime.iter().map(nan).collect();

            let plan = Plan::from_onnx(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(plan.num_features(), f.num_features, "{name}");
            let p = plan.predict(&rows).unwrap();
            assert!(max_abs_diff(&p, &ort) <= 1e-5, "{name}: plan vs onnxruntime {}", max_abs_diff(&p, &ort));
            if name == "handmade_min" || name == "handmade_max" {
                // No summation: the same comparisons must give exactly onnxruntime's values.
                assert_eq!(p.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(), ort, "{name}");
            } else if name.starts_with("handmade") {
                // onnxruntime sums f32 pairwise per thread batch, the plan in f64: an ulp apart at most.
                assert!(max_abs_diff(&p, &ort) <= 5e-7, "{name}: {}", max_abs_diff(&p, &ort));
            }

            // A batch walks the trees decoded once, rows side by side (and the rows left over one by one);
            // a row alone walks the bytes: the same bits.
            let batch_rows = f.rows.len() * (64 / f.rows.len() + 1) + 3;
            let batch: Vec<f32> = rows.iter().copied().cycle().take(batch_rows * f.num_features).collect();
            let one_by_one: Vec<u32> =
                batch.chunks(f.num_features).map(|r| plan.predict(r).unwrap()[0].to_bits()).collect();
            let together: Vec<u32> = plan.predict(&batch).unwrap().into_iter().map(f32::to_bits).collect();
            assert_eq!(together, one_by_one, "{name}");

            let tract = TractModel::load_with_features(&bytes, f.num_features);
            if name == "handmade_min" || name == "handmade_max" {
                let err = format!("{:#}", tract.unwrap_err());
                assert!(err.contains("MIN / MAX"), "{name}: {err}");
                continue;
            }
            let t = tract.unwrap_or_else(|e| panic!("{name}: {e:#}")).predict(&rows, f.num_features).unwrap();
            assert!(max_abs_diff(&t, &ort) <= 1e-5, "{name}: tract vs onnxruntime {}", max_abs_diff(&t, &ort));
            println!(
                "{name}: max |plan - ort| {:.1e}, |tract - ort| {:.1e}",
                max_abs_diff(&p, &ort),
                max_abs_diff(&t, &ort)
            );

            if name.starts_with("stockops") {
                // onnxruntime scored our export like the booster that wrote it.
                let native: Vec<f64> = f.native.as_ref().unwrap().iter().map(nan).collect();
                let ort32: Vec<f32> = ort.iter().map(|&x| x as f32).collect();
                assert!(max_abs_diff(&ort32, &native) <= 1e-5, "{name}: onnxruntime vs native booster");
            }
        }
    }

    /// Writes tests/fixtures/onnx/stockops_regression.{onnx,input.json}: a deterministic booster's
    /// export with probe rows and the booster's own scores, for scripts/make_onnx_fixtures.sh to
    /// score with onnxruntime. `REGENERATE=1 cargo test -p predict --lib regenerate -- --ignored`.
    #[test]
    #[ignore = "writes fixtures; run with REGENERATE=1"]
    fn regenerate_stockops_fixture() {
        assert!(std::env::var_os("REGENERATE").is_some(), "set REGENERATE=1 to rewrite the fixture");
        let booster = trained(8, 30, 15);
        let rows = probe_rows(&booster, 32, 16);
        let native = native_f32(&booster, &rows);
        let to_json = |x: f64| if x.is_nan() { serde_json::Value::Null } else { serde_json::json!(x) };
        let doc = serde_json::json!({
            "num_features": 8,
            "rows": rows.chunks(8).map(|r| r.iter().map(|&x| to_json(f64::from(x))).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "native": native.iter().map(|&x| to_json(x)).collect::<Vec<_>>(),
        });
        std::fs::create_dir_all(fixture_dir()).unwrap();
        std::fs::write(fixture_dir().join("stockops_regression.onnx"), export(&booster)).unwrap();
        std::fs::write(fixture_dir().join("stockops_regression.input.json"), doc.to_string()).unwrap();
    }
}
