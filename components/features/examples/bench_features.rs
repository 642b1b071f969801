//! Times the feature engine over a Qlib binary directory and prints the timings as one JSON object.
//!
//! `cargo run --release -p features --example bench_features -- --qlib DIR [--threads N] [--repeat R]`
//!
//! Phases, each the best of R runs, symbols spread over a rayon pool of N threads (0: all cores):
//! - `load_s`: read and align every symbol's `.bin` fields;
//! - `alpha158_s`: Alpha158 + LABEL0 over the loaded frames (default f64 precision);
//! - `alpha158_qlib_f32_s`: the same in `Precision::QlibF32` (Qlib's float32 pipeline);
//! - `indicators_s`: the 47 TA-Lib columns of `technical_set` over the same bars.

use std::hint::black_box;
use std::time::Instant;

use features::alpha::{FeatureSet, alpha158, label};
use features::expr::Precision;
use features::indicators::technical_set;
use features::qlib_bin::{FIELDS, QlibDir, SymbolFrame};
use rayon::prelude::*;

struct Args {
    qlib: String,
    threads: usize,
    repeat: usize,
    /// Hidden: write every computed Alpha158+LABEL0 value (f64 bits, little-endian; f64 then
    /// QlibF32, symbol by symbol) to this file, to check that an engine change moves no bit.
    dump: Option<String>,
}

fn args() -> Args {
    let mut a = Args { qlib: String::new(), threads: 0, repeat: 3, dump: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--qlib" => a.qlib = value,
            "--threads" => a.threads = value.parse().expect("--threads N"),
            "--repeat" => a.repeat = value.parse::<usize>().expect("--repeat R").max(1),
            "--dump" => a.dump = Some(value),
            _ => panic!("unknown flag {flag}; usage: --qlib DIR [--threads N] [--repeat R]"),
        }
    }
    assert!(!a.qlib.is_empty(), "--qlib DIR is required");
    a
}

/// Best wall time of `repeat` runs of `f`, in seconds, with the last run's result.
fn best<T>(repeat: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let r = black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("repeat >= 1"))
}

/// Computes both sets over every frame in parallel; returns the number of values produced.
fn alpha(frames: &[SymbolFrame], sets: &[FeatureSet]) -> usize {
    frames
        .par_iter()
        .map(|f| {
            let n = |s: &FeatureSet| s.compute(f).expect("compute").columns.iter().map(Vec::len).sum::<usize>();
            sets.iter().map(n).sum::<usize>()
        })
        .sum()
}

fn main() {
    let a = args();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build().expect("thread pool");
    let threads = pool.current_num_threads();
    let dir = QlibDir::open(&a.qlib).expect("qlib dir");
    let symbols: Vec<String> = dir.instruments("all").expect("instruments").into_iter().map(|i| i.symbol).collect();

    pool.install(|| {
        let (load_s, frames) =
            best(a.repeat, || symbols.par_iter().map(|s| dir.load(s, &FIELDS).expect("load")).collect::<Vec<_>>());
        let rows: usize = frames.iter().map(|f| f.dates.len()).sum();

        let f64_sets = [alpha158(), label()];
        let (alpha_s, values) = best(a.repeat, || alpha(&frames, &f64_sets));
        let f32_sets = f64_sets.clone().map(|s| s.with_precision(Precision::QlibF32));
        let (alpha_f32_s, _) = best(a.repeat, || alpha(&frames, &f32_sets));
        if let Some(path) = &a.dump {
            let mut bytes = Vec::new();
            for sets in [&f64_sets, &f32_sets] {
                for f in &frames {
                    for s in sets.iter() {
                        for col in s.compute(f).expect("compute").columns {
                            bytes.extend(col.iter().flat_map(|v| v.to_bits().to_le_bytes()));
                        }
                    }
                }
            }
            std::fs::write(path, bytes).expect("write --dump file");
        }

        let bars: Vec<_> = frames.iter().map(SymbolFrame::to_bar_series).collect();
        let (ind_s, columns) = best(a.repeat, || bars.par_iter().map(|b| technical_set(b).len()).sum::<usize>());

        let out = serde_json::json!({
            "qlib_dir": a.qlib,
            "threads": threads,
            "repeat": a.repeat,
            "symbols": symbols.len(),
            "rows": rows,
            "alpha158_values": values,
            "indicator_columns": columns,
            "load_s": load_s,
            "alpha158_s": alpha_s,
            "alpha158_qlib_f32_s": alpha_f32_s,
            "indicators_s": ind_s,
        });
        println!("{out}");
    });
}
