//! Per-request model cost: loading an ONNX tree ensemble (~500 trees, 158 features) through tract
//! (parse, type, optimise, plan) versus decoding a stored `Plan`, and scoring 1 and 300 rows with
//! each. A Spin component starts fresh on every request, so the load is paid per request.
//!
//! `cargo run --release -p predict --example bench_model_load [trees] [features]`

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use predict::model::{Plan, TractModel};
use train_batch::gbdt::{Dataset, Params, train};

use train_batch::gbdt::SplitMix64 as Rng;

/// Median wall time of `runs` calls of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (trees, width) = (args.first().copied().unwrap_or(500), args.get(1).copied().unwrap_or(158));
    let rows = 3000;
    let mut rng = Rng(7);
    let values: Vec<f64> = (0..rows * width).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let labels: Vec<f64> = values
        .chunks(width)
        .map(|r| r.iter().take(20).enumerate().map(|(i, x)| x * (i as f64 - 9.5)).sum::<f64>() + rng.uniform())
        .collect();
    let names = (0..width).map(|i| format!("f{i}")).collect();
    let data = Dataset::from_row_major(names, &values, labels).unwrap();
    let params = Params { num_boost_round: trees, num_leaves: 31, learning_rate: 0.05, ..Params::default() };
    let t = Instant::now();
    let booster = train(&params, &data, None, |_| ControlFlow::Continue(())).unwrap();
    println!("trained {} trees x {width} features in {:.1?}", booster.trees().len(), t.elapsed());

    let onnx = train_batch::onnx::export(&booster);
    let plan_bytes = Plan::from_onnx(&onnx).unwrap().to_bytes();
    println!("ONNX model {} KiB, plan {} KiB", onnx.len() / 1024, plan_bytes.len() / 1024);

    let batch: Vec<f32> = values[..300 * width].iter().map(|&x| x as f32).collect();
    let one = &batch[..width];

    let tract_load = median(7, || drop(TractModel::load(&onnx).unwrap()));
    let plan_from_onnx = median(21, || drop(Plan::from_onnx(&onnx).unwrap()));
    let plan_load = median(201, || drop(Plan::from_bytes(plan_bytes.clone()).unwrap()));
    let tract = TractModel::load(&onnx).unwrap();
    let plan = Plan::from_bytes(plan_bytes.clone()).unwrap();
    let tract_1 = median(201, || drop(tract.predict(one, width).unwrap()));
    let tract_300 = median(51, || drop(tract.predict(&batch, width).unwrap()));
    let plan_1 = median(201, || drop(plan.predict(one).unwrap()));
    let plan_300 = median(51, || drop(plan.predict(&batch).unwrap()));

    let a = tract.predict(&batch, width).unwrap();
    let b = plan.predict(&batch).unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);

    println!("{:<34} {:>12}", "step (median)", "time");
    for (what, d) in [
        ("tract: parse+optimise+runnable", tract_load),
        ("plan: from_onnx (registration)", plan_from_onnx),
        ("plan: from_bytes (per request)", plan_load),
        ("tract: score 1 row", tract_1),
        ("tract: score 300 rows", tract_300),
        ("plan: score 1 row", plan_1),
        ("plan: score 300 rows", plan_300),
    ] {
        println!("{what:<34} {:>12.1?}", d);
    }
    println!(
        "per request, load + 1 row: tract {:.1?}, plan {:.1?}; max |tract - plan| = {diff:e}",
        tract_load + tract_1,
        plan_load + plan_1
    );
}
