//! Behaviour of the GBDT trainer through its public API: determinism, convergence, splits, missing
//! values, early stopping, errors, serialisation, and accuracy on Friedman #1 against a linear fit.

use std::ops::ControlFlow;

use serde_json::json;
use train_batch::gbdt::{Booster, Child, Dataset, Objective, ParamError, Params, StopReason, TrainError, train};

use train_batch::gbdt::SplitMix64 as TestRng;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

fn params(v: serde_json::Value) -> Params {
    serde_json::from_value(v).unwrap()
}

fn no_callback(_: &train_batch::gbdt::RoundEval) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Friedman #1: y = 10 sin(π x0 x1) + 20 (x2 - 0.5)² + 10 x3 + 5 x4 + N(0, 1); x5..x9 are noise.
fn friedman(rows: usize, seed: u64) -> Dataset {
    let mut rng = TestRng(seed);
    let mut values = Vec::with_capacity(rows * 10);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x: Vec<f64> = (0..10).map(|_| rng.uniform()).collect();
        let y =
            10.0 * (std::f64::consts::PI * x[0] * x[1]).sin() + 20.0 * (x[2] - 0.5).powi(2) + 10.0 * x[3] + 5.0 * x[4];
        labels.push(y + rng.normal());
        values.extend(x);
    }
    Dataset::from_row_major(names(10), &values, labels).unwrap()
}

fn mse(pred: &[f64], labels: &[f64]) -> f64 {
    pred.iter().zip(labels).map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / labels.len() as f64
}

/// Ordinary least squares with intercept by normal equations (Gauss–Jordan), for the baseline.
fn linear_fit_mse(train: &Dataset, test: &Dataset) -> f64 {
    let k = train.num_features() + 1;
    let row = |d: &Dataset, r: usize| -> Vec<f64> {
        std::iter::once(1.0).chain((0..d.num_features()).map(|f| d.columns()[f][r])).collect()
    };
    let mut a = vec![vec![0.0; k + 1]; k];
    for r in 0..train.num_rows() {
        let x = row(train, r);
        for i in 0..k {
            for j in 0..k {
                a[i][j] += x[i] * x[j];
            }
            a[i][k] += x[i] * train.labels()[r];
        }
    }
    for c in 0..k {
        let pivot = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
        a.swap(c, pivot);
        let pivot_row = a[c].clone();
        for (_, row) in a.iter_mut().enumerate().filter(|(i, _)| *i != c) {
            let f = row[c] / pivot_row[c];
            for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                *x -= f * p;
            }
        }
    }
    let beta: Vec<f64> = (0..k).map(|i| a[i][k] / a[i][i]).collect();
    let pred: Vec<f64> =
        (0..test.num_rows()).map(|r| row(test, r).iter().zip(&beta).map(|(x, b)| x * b).sum()).collect();
    mse(&pred, test.labels())
}

#[test]
fn same_seed_gives_bit_identical_models_on_any_thread_count() {
    let data = friedman(3000, 1);
    let base = json!({"num_boost_round": 20, "bagging_fraction": 0.7, "bagging_freq": 1,
        "feature_fraction": 0.6, "seed": 42, "num_leaves": 15});
    let mut models = Vec::new();
    for threads in [1, 2, 1, 0] {
        let mut p = base.clone();
        p["num_threads"] = json!(threads);
        let model = train(&params(p), &data, None, no_callback).unwrap();
        // Compare everything but the thread count recorded in the params.
        models.push(serde_json::to_string(model.trees()).unwrap());
    }
    assert!(models.windows(2).all(|w| w[0] == w[1]));
    let other_seed = train(
        &params(json!({"num_boost_round": 20, "bagging_fraction": 0.7,
        "bagging_freq": 1, "feature_fraction": 0.6, "seed": 43, "num_leaves": 15})),
        &data,
        None,
        no_callback,
    )
    .unwrap();
    assert_ne!(serde_json::to_string(other_seed.trees()).unwrap(), models[0]);
}

#[test]
fn big_leaves_train_identically_on_any_thread_count() {
    // Enough rows for the parallel row passes (sums, gather, partition) to split into blocks.
    let data = friedman(140_000, 15);
    let fit = |threads: usize| {
        let p = params(json!({"num_boost_round": 4, "bagging_fraction": 0.9, "bagging_freq": 1,
            "num_threads": threads}));
        serde_json::to_string(train(&p, &data, None, no_callback).unwrap().trees()).unwrap()
    };
    assert_eq!(fit(1), fit(3));
}

#[test]
fn l2_training_loss_never_increases_without_bagging() {
    let data = friedman(2000, 2);
    let mut losses = Vec::new();
    let p = params(json!({"num_boost_round": 60, "lambda_l2": 1.0, "feature_fraction": 0.5}));
    train(&p, &data, None, |e| {
        losses.push(e.train_metric);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(losses.len(), 60);
    assert!(losses.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-12)), "{losses:?}");
    assert!(losses[59] < losses[0] * 0.5);
}

#[test]
fn one_split_recovers_a_step() {
    let mut rng = TestRng(3);
    let x: Vec<f64> = (0..500).map(|_| rng.uniform() * 10.0).collect();
    let y: Vec<f64> = x.iter().map(|&v| if v <= 3.7 { 1.0 } else { 4.0 }).collect();
    let below = x.iter().copied().filter(|&v| v <= 3.7).fold(f64::MIN, f64::max);
    let above = x.iter().copied().filter(|&v| v > 3.7).fold(f64::MAX, f64::min);
    let data = Dataset::from_columns(names(1), vec![x], y).unwrap();
    let p = params(json!({"num_boost_round": 1, "num_leaves": 2, "learning_rate": 1.0, "min_data_in_leaf": 1}));
    let model = train(&p, &data, None, no_callback).unwrap();
    let tree = &model.trees()[0];
    let node = &tree.nodes()[0];
    assert_eq!(node.feature, 0);
    assert!(node.threshold >= below && node.threshold < above, "{} not in [{below}, {above})", node.threshold);
    // Gradients are f32, as LightGBM's: the leaf values are the step's levels to f32 precision.
    assert!((model.predict(&[1.0]) - 1.0).abs() < 1e-6);
    assert!((model.predict(&[9.0]) - 4.0).abs() < 1e-6);
    // Covers: the root saw every row; leaves split them.
    assert_eq!(node.cover.count, 500);
    assert_eq!(tree.leaves().iter().map(|l| l.cover.count).sum::<u64>(), 500);
}

#[test]
fn nan_rows_learn_their_own_direction() {
    for nan_label in [-5.0, 0.0, 3.0] {
        let mut rng = TestRng(4);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..2000 {
            if i % 5 == 0 {
                x.push(f64::NAN);
                y.push(nan_label);
            } else {
                let v = rng.uniform();
                x.push(v);
                y.push(if v < 0.5 { 0.0 } else { 3.0 });
            }
        }
        let data = Dataset::from_columns(names(1), vec![x], y).unwrap();
        let model = train(
            &params(json!({"num_boost_round": 30, "num_leaves": 4, "learning_rate": 0.5})),
            &data,
            None,
            no_callback,
        )
        .unwrap();
        let got = model.predict(&[f64::NAN]);
        assert!((got - nan_label).abs() < 0.1, "NaN rows labelled {nan_label} predicted {got}");
        assert!((model.predict(&[0.2])).abs() < 0.1);
        assert!((model.predict(&[0.8]) - 3.0).abs() < 0.1);
    }
}

#[test]
fn early_stopping_keeps_the_best_iteration() {
    let train_set = friedman(400, 5);
    // A validation set from a different function: overfitting soon makes it worse.
    let valid = {
        let other = friedman(400, 6);
        let labels: Vec<f64> = other.labels().iter().map(|y| y * 0.3).collect();
        Dataset::from_columns(names(10), other.columns().to_vec(), labels).unwrap()
    };
    let p = params(json!({"num_boost_round": 500, "early_stopping_rounds": 5, "num_leaves": 31,
        "min_data_in_leaf": 2, "learning_rate": 0.3}));
    let mut history = Vec::new();
    let model = train(&p, &train_set, Some(&valid), |e| {
        history.push(e.valid_metric.unwrap());
        ControlFlow::Continue(())
    })
    .unwrap();
    let info = model.info();
    assert_eq!(info.stop_reason, StopReason::EarlyStopping);
    let best = info.best_iteration.unwrap();
    assert_eq!(info.rounds, best + 5);
    assert_eq!(history.len(), info.rounds);
    assert_eq!(model.trees().len(), best);
    let min = history.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(history[best - 1], min);
    assert_eq!(info.valid_metric, Some(min));
    // The kept model reproduces the best validation metric (which, as LightGBM's, sees the labels at f32 precision).
    let pred = model.predict_dataset(&valid).unwrap();
    let labels_f32: Vec<f64> = valid.labels().iter().map(|&y| f64::from(y as f32)).collect();
    assert!((mse(&pred, &labels_f32) - min).abs() < 1e-9);
}

#[test]
fn callback_can_interrupt() {
    let data = friedman(500, 7);
    let model = train(&Params::default(), &data, None, |e| {
        if e.round == 5 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    assert_eq!(model.trees().len(), 5);
    assert_eq!(model.info().stop_reason, StopReason::Callback);
}

#[test]
fn bad_params_and_data_are_typed_errors() {
    let bad = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => Params::from_map(&m).unwrap_err(),
        _ => unreachable!("objects only"),
    };
    assert_eq!(bad(json!({"num_leaves": 1})).parameter(), "num_leaves");
    assert_eq!(bad(json!({"learning_rate": -0.1})).parameter(), "learning_rate");
    assert_eq!(bad(json!({"colsample_bytree": 1.2})).parameter(), "feature_fraction");
    assert_eq!(bad(json!({"bagging_fraction": 0.0})).parameter(), "bagging_fraction");
    assert_eq!(bad(json!({"lambda_l2": "big"})).parameter(), "lambda_l2");
    assert_eq!(bad(json!({"boosting": "dart"})), ParamError::Unknown("boosting".into()));

    let data = friedman(100, 8);
    let es = params(json!({"early_stopping_rounds": 3}));
    assert_eq!(train(&es, &data, None, no_callback).unwrap_err(), TrainError::EarlyStoppingWithoutValid);
    let binary = params(json!({"objective": "binary"}));
    assert!(matches!(train(&binary, &data, None, no_callback), Err(TrainError::BinaryLabel { row: 0, .. })));
    let narrow = Dataset::from_columns(names(1), vec![vec![0.0; 100]], vec![0.0; 100]).unwrap();
    assert!(matches!(train(&Params::default(), &data, Some(&narrow), no_callback), Err(TrainError::Dataset(_))));
    let empty = Dataset::from_columns(names(1), vec![vec![]], vec![]).unwrap();
    assert_eq!(train(&Params::default(), &empty, None, no_callback).unwrap_err(), TrainError::EmptyTrainingSet);
}

#[test]
fn friedman_beats_a_linear_baseline() {
    let train_set = friedman(16_000, 9);
    let test = friedman(4_000, 10);
    let model = train(&Params::default(), &train_set, None, no_callback).unwrap();
    let gbdt = mse(&model.predict_dataset(&test).unwrap(), test.labels());
    let linear = linear_fit_mse(&train_set, &test);
    eprintln!("Friedman #1 test MSE: gbdt {gbdt:.3}, linear {linear:.3}");
    assert!(gbdt < 0.5 * linear, "gbdt {gbdt} vs linear {linear}");
    // Informative features x0..x4 carry more gain than every noise feature.
    let imp = model.feature_importance();
    let noise_max = imp[5..].iter().map(|i| i.gain).fold(0.0, f64::max);
    assert!(imp[..5].iter().all(|i| i.gain > noise_max), "{imp:?}");
    assert_eq!(
        imp.iter().map(|i| i.splits).sum::<u64>(),
        model.trees().iter().map(|t| t.nodes().len() as u64).sum::<u64>()
    );
}

#[test]
fn json_round_trip_and_batch_predictions_agree() {
    let data = friedman(1000, 11);
    let p = params(json!({"num_boost_round": 15, "bagging_fraction": 0.8, "bagging_freq": 2}));
    let model = train(&p, &data, None, no_callback).unwrap();
    let text = serde_json::to_string(&model).unwrap();
    let back: Booster = serde_json::from_str(&text).unwrap();
    assert!(back == model, "model changed through JSON");
    let batch = model.predict_dataset(&data).unwrap();
    let mut row_major = Vec::new();
    for (r, &expected) in batch.iter().enumerate() {
        let row: Vec<f64> = (0..10).map(|f| data.columns()[f][r]).collect();
        assert_eq!(back.predict(&row), expected);
        row_major.extend(row);
    }
    assert_eq!(model.predict_rows(&row_major).unwrap(), batch);
    assert!(model.predict_rows(&row_major[..7]).is_err());
    // A model whose split names a feature it does not have is refused.
    let mut broken: serde_json::Value = serde_json::from_str(&text).unwrap();
    broken["trees"][0]["nodes"][0]["feature"] = json!(99);
    let err = serde_json::from_value::<Booster>(broken).unwrap_err();
    assert!(err.to_string().contains("feature 99"), "{err}");
}

#[test]
fn binary_logloss_learns_probabilities() {
    let mut rng = TestRng(12);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..4000 {
        let v = rng.uniform() * 6.0 - 3.0;
        let p = 1.0 / (1.0 + (-2.0 * v).exp());
        x.push(v);
        y.push(if rng.uniform() < p { 1.0 } else { 0.0 });
    }
    let data = Dataset::from_columns(names(1), vec![x], y).unwrap();
    let mut losses = Vec::new();
    let model = train(&params(json!({"objective": "binary", "num_boost_round": 50})), &data, None, |e| {
        losses.push(e.train_metric);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(model.objective(), Objective::Binary);
    assert!(losses[49] < losses[0]);
    let (lo, hi) = (model.predict(&[-2.5]), model.predict(&[2.5]));
    assert!(lo < 0.1 && hi > 0.9, "{lo} {hi}");
}

#[test]
fn huber_resists_outliers() {
    let mut rng = TestRng(13);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..3000 {
        let v = rng.uniform();
        x.push(v);
        y.push(if i % 50 == 0 { 1000.0 } else { 2.0 * v });
    }
    let data = Dataset::from_columns(names(1), vec![x], y).unwrap();
    let fit = |objective: &str| {
        let p = params(json!({"objective": objective, "alpha": 1.0, "num_boost_round": 200}));
        let m = train(&p, &data, None, no_callback).unwrap();
        (m.predict(&[0.5]) - 1.0).abs()
    };
    let (huber, l2) = (fit("huber"), fit("regression"));
    assert!(huber < l2, "huber error {huber} vs l2 error {l2}");
}

#[test]
fn max_depth_and_num_leaves_bound_trees() {
    let data = friedman(2000, 14);
    let model =
        train(&params(json!({"num_boost_round": 5, "max_depth": 2, "num_leaves": 31})), &data, None, no_callback)
            .unwrap();
    for t in model.trees() {
        assert!(t.num_leaves() <= 4);
        fn depth(t: &train_batch::gbdt::Tree, c: Child) -> usize {
            match c {
                Child::Leaf(_) => 0,
                Child::Split(k) => 1 + depth(t, t.nodes()[k as usize].left).max(depth(t, t.nodes()[k as usize].right)),
            }
        }
        assert!(depth(t, t.root()) <= 2);
    }
    let model = train(&params(json!({"num_boost_round": 5, "num_leaves": 7})), &data, None, no_callback).unwrap();
    assert!(model.trees().iter().all(|t| t.num_leaves() == 7));
}

/// LightGBM 4.7.0's own model on a small set with every random draw on (feature_fraction, bagging, a bin
/// sample smaller than the data, a seed), NaN, a few-valued feature and one LightGBM's pre-filter drops:
/// same parameters, same trees, same predictions. Fixture made by scripts/make_lightgbm_fixture.sh.
#[test]
fn same_model_as_lightgbm_with_its_random_draws() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}lightgbm_parity.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(format!("{dir}lightgbm_parity.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let features = header.len() - 2;
    let (mut train_rows, mut test_rows, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let row = cells[1..=features].iter().map(|c| if c.is_empty() { f64::NAN } else { c.parse().unwrap() });
        if cells[0] == "train" {
            train_rows.extend(row);
            labels.push(cells[features + 1].parse::<f64>().unwrap());
        } else {
            test_rows.extend(row);
        }
    }
    let data = Dataset::from_row_major(names(features), &train_rows, labels).unwrap();
    let model = train(&params(expected["params"].clone()), &data, None, no_callback).unwrap();
    assert_eq!(model.trees().len() as u64, expected["num_trees"].as_u64().unwrap());
    let ours = model.predict_rows(&test_rows).unwrap();
    let theirs: Vec<f64> = expected["predictions"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(ours.len(), theirs.len());
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-12, "largest difference from LightGBM's predictions: {worst}");
}
