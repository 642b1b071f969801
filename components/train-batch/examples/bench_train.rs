//! Training benchmark: stockops GBDT against LightGBM on the same matrix (driven by `scripts/bench_train.sh`).
//!
//! bench_train prepare-us4 QLIB_DIR OUT         Alpha158 + LABEL0 of a Qlib directory, Qlib's recipe
//! bench_train prepare-synth OUT ROWS FEATURES  a synthetic set (train ROWS, valid and test ROWS/10)
//! bench_train train ENGINE DATA PARAMS THREADS [LIB_LIGHTGBM]   ENGINE: ours | lightgbm; PARAMS:
//!                                              a JSON map of LightGBM parameter names, given to both
//! bench_train report RESULTS                   the side-by-side table of the `train` lines
//!
//! A prepared directory holds, per segment (train, valid, test), `S.x` (the features, column-major
//! little-endian f64, NaN = missing), `S.y` (labels, f64) and `S.day` (the date of each row, i32
//! days from the common era), plus `features.txt`. Both engines load it with the same code, in their
//! own process; LightGBM is driven through the C API of the `lib_lightgbm.so` shipped in its PyPI
//! wheel, fed the column-major f64 matrix directly (no copy, no conversion). `train` prints one
//! tab-separated `result` line: time is from the raw matrix to the trained model (binning included,
//! with per-round validation and early stopping), RSS is the process's high-water mark (VmHWM).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate};
use features::alpha::{alpha158, label};
use features::qlib_bin::QlibDir;
use serde_json::{Map, Value};
use train_batch::gbdt::{Dataset, Params, train};
use train_batch::metrics::signal_report;

const SEGMENTS: [&str; 3] = ["train", "valid", "test"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["prepare-us4", qlib, out] => prepare_us4(Path::new(qlib), Path::new(out)),
        ["prepare-synth", out, rows, feats] => prepare_synth(Path::new(out), rows.parse()?, feats.parse()?),
        ["train", engine, data, params, threads, lib @ ..] => {
            run_train(engine, Path::new(data), Path::new(params), threads.parse()?, lib.first().copied())
        }
        ["report", results] => report(Path::new(results)),
        _ => bail!("usage: see the header of components/train-batch/examples/bench_train.rs"),
    }
}

/// One segment in memory: feature columns, labels, dates.
struct Segment {
    columns: Vec<Vec<f64>>,
    labels: Vec<f64>,
    days: Vec<i32>,
}

fn write_f64s(path: &Path, values: impl Iterator<Item = f64>) -> Result<()> {
    let mut w = BufWriter::new(File::create(path).with_context(|| format!("create {}", path.display()))?);
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(w.flush()?)
}

fn write_segment(out: &Path, name: &str, s: &Segment) -> Result<()> {
    write_f64s(&out.join(format!("{name}.x")), s.columns.iter().flatten().copied())?;
    write_f64s(&out.join(format!("{name}.y")), s.labels.iter().copied())?;
    let days: Vec<u8> = s.days.iter().flat_map(|d| d.to_le_bytes()).collect();
    Ok(std::fs::write(out.join(format!("{name}.day")), days)?)
}

/// Reads `count` f64 values, `chunk` at a time, so the file is never held twice in memory.
fn read_f64s(r: &mut impl Read, count: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; 8 << 16];
    while out.len() < count {
        let n = (count - out.len()).min(1 << 16) * 8;
        r.read_exact(&mut buf[..n])?;
        out.extend(
            buf[..n].chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
        );
    }
    Ok(out)
}

/// Reads a segment; with `flat` its matrix comes back as one column-major buffer in `columns[0]`
/// (what LightGBM's C API takes), otherwise as one `Vec` per feature (what `Dataset` takes).
fn read_segment(dir: &Path, name: &str, num_features: usize, flat: bool) -> Result<Segment> {
    let y_path = dir.join(format!("{name}.y"));
    let rows = std::fs::metadata(&y_path).with_context(|| format!("stat {}", y_path.display()))?.len() as usize / 8;
    let labels = read_f64s(&mut File::open(&y_path)?, rows)?;
    let mut x = BufReader::new(File::open(dir.join(format!("{name}.x")))?);
    let columns = if flat {
        vec![read_f64s(&mut x, rows * num_features)?]
    } else {
        (0..num_features).map(|_| read_f64s(&mut x, rows)).collect::<Result<Vec<_>>>()?
    };
    let days = std::fs::read(dir.join(format!("{name}.day")))?
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Segment { columns, labels, days })
}

/// Qlib's Alpha158 dataset recipe: every symbol's features and LABEL0 over its listed days, rows
/// ordered by (date, symbol); learn processors DropnaLabel then CSZScoreNorm of the label (per
/// date, pandas' std with ddof 1; a date whose z-score is undefined, one symbol or zero spread,
/// is dropped, as LightGBM cannot take NaN labels); segments by date, never shuffled.
fn prepare_us4(qlib: &Path, out: &Path) -> Result<()> {
    let dir = QlibDir::open(qlib)?;
    let (set, label_set) = (alpha158(), label());
    let names: Vec<String> = set.names().iter().map(|s| s.to_string()).collect();
    // (date, symbol index) → (features, raw label)
    let mut rows: BTreeMap<(NaiveDate, usize), (Vec<f64>, f64)> = BTreeMap::new();
    for (si, inst) in dir.instruments("all")?.iter().enumerate() {
        let bars = dir.load_bars(&inst.symbol)?;
        let x = set.compute(&bars)?;
        let y = label_set.compute(&bars)?;
        for (i, &date) in bars.dates.iter().enumerate() {
            let lab = y.columns[0][i];
            if date >= inst.start && date <= inst.end && !lab.is_nan() {
                rows.insert((date, si), (x.columns.iter().map(|c| c[i]).collect(), lab));
            }
        }
    }
    let bounds = [
        ("train", "2000-01-01", "2008-12-31"),
        ("valid", "2009-01-01", "2010-12-31"),
        ("test", "2011-01-01", "2013-12-31"),
    ];
    let mut segs: Vec<Segment> = (0..3)
        .map(|_| Segment { columns: vec![Vec::new(); names.len()], labels: Vec::new(), days: Vec::new() })
        .collect();
    let all: Vec<_> = rows.into_iter().collect();
    for day in all.chunk_by(|a, b| a.0.0 == b.0.0) {
        let date = day[0].0.0;
        let ys: Vec<f64> = day.iter().map(|r| r.1.1).collect();
        let n = ys.len() as f64;
        let mean = ys.iter().sum::<f64>() / n;
        let std = (ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / (n - 1.0)).sqrt();
        let Some(si) = bounds.iter().position(|(_, from, to)| {
            date >= NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap_or(NaiveDate::MAX)
                && date <= NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
        }) else {
            continue;
        };
        for (_, (x, y)) in day {
            let z = (y - mean) / std;
            if !z.is_finite() {
                continue;
            }
            let s = &mut segs[si];
            s.columns.iter_mut().zip(x).for_each(|(c, &v)| c.push(v));
            s.labels.push(z);
            s.days.push(date.num_days_from_ce());
        }
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("features.txt"), names.join("\n"))?;
    for ((name, ..), s) in bounds.iter().zip(&segs) {
        write_segment(out, name, s)?;
        let days = s.days.first().zip(s.days.last()).map(|(a, b)| {
            let d = |x: i32| NaiveDate::from_num_days_from_ce_opt(x).map_or("?".into(), |d| d.to_string());
            format!("{} .. {}", d(*a), d(*b))
        });
        println!("{name}: {} rows, {} features, {}", s.labels.len(), names.len(), days.unwrap_or_default());
    }
    Ok(())
}

/// SplitMix64: a fixed, dependency-free generator for the synthetic data.
struct SplitMix(u64);

impl SplitMix {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

/// Rows per synthetic "date" (cross-section for the daily IC).
const SYNTH_PER_DAY: usize = 500;

/// Normal features (5% NaN in feature 7), a nonlinear signal in the first ten plus unit noise.
fn synth_segment(rows: usize, feats: usize, seed: u64, first_day: i32) -> Segment {
    let mut r = SplitMix(seed);
    let mut columns = vec![vec![0.0; rows]; feats];
    let mut labels = vec![0.0; rows];
    let mut row = vec![0.0; feats];
    for i in 0..rows {
        row.iter_mut().for_each(|v| *v = r.normal());
        if r.uniform() < 0.05 {
            row[7] = f64::NAN;
        }
        let signal = 10.0 * (row[0] * row[1]).sin()
            + 5.0 * (row[2] - 0.5).powi(2)
            + 3.0 * row[3]
            + 2.0 * row[4] * f64::from(u8::from(row[5] > 0.0))
            + if row[7].is_nan() { 2.0 } else { row[7].abs() }
            + 0.5 * row[8] * row[9];
        labels[i] = signal + r.normal();
        columns.iter_mut().zip(&row).for_each(|(c, &v)| c[i] = v);
    }
    let days = (0..rows).map(|i| first_day + (i / SYNTH_PER_DAY) as i32).collect();
    Segment { columns, labels, days }
}

fn prepare_synth(out: &Path, rows: usize, feats: usize) -> Result<()> {
    if feats < 10 {
        bail!("the synthetic signal needs at least 10 features");
    }
    std::fs::create_dir_all(out)?;
    let names: Vec<String> = (0..feats).map(|f| format!("f{f}")).collect();
    std::fs::write(out.join("features.txt"), names.join("\n"))?;
    let mut first_day = 0;
    for (seed, name) in SEGMENTS.iter().enumerate() {
        let n = if *name == "train" { rows } else { rows / 10 };
        let s = synth_segment(n, feats, seed as u64 + 1, first_day);
        first_day += n.div_ceil(SYNTH_PER_DAY) as i32;
        write_segment(out, name, &s)?;
        println!("{name}: {n} rows, {feats} features");
    }
    Ok(())
}

/// A line of /proc/self/status in MiB (VmHWM: peak RSS so far; VmRSS: now).
fn status_mib(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = text.lines().find_map(|l| {
        l.strip_prefix(key)?.trim_start_matches(':').trim().strip_suffix("kB")?.trim().parse::<f64>().ok()
    });
    kb.map_or(f64::NAN, |k| k / 1024.0)
}

/// A path's file name without extension, naming a data set or parameter file in the table.
fn name_of(path: &Path) -> String {
    path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// What one engine's run gives: the model's test predictions and how training went.
struct Trained {
    predictions: Vec<f64>,
    seconds: f64,
    rounds: usize,
    best: usize,
    /// Fingerprint of the model (ours only), to check determinism across runs and builds.
    fingerprint: String,
}

fn run_train(engine: &str, dir: &Path, params: &Path, threads: usize, lib: Option<&str>) -> Result<()> {
    let names: Vec<String> = std::fs::read_to_string(dir.join("features.txt"))?.lines().map(String::from).collect();
    let mut map: Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(params)?)?;
    map.insert("num_threads".into(), threads.into());
    let flat = engine == "lightgbm";
    let [tr, va, te] = SEGMENTS.map(|s| read_segment(dir, s, names.len(), flat));
    let (tr, va, te) = (tr?, va?, te?);
    let rss_loaded = status_mib("VmHWM");
    let test_labels = te.labels.clone();
    let test_days = te.days.clone();
    let trained = match engine {
        "ours" => train_ours(&map, names, tr, va, te)?,
        "lightgbm" => {
            let lib = lib.context("lightgbm needs the path of lib_lightgbm.so")?;
            lightgbm::train(lib, &map, names.len(), &tr, &va, &te)?
        }
        _ => bail!("engine must be `ours` or `lightgbm`"),
    };
    let report = signal_report(&test_days, &trained.predictions, &test_labels)?;
    let f = |x: Option<f64>| x.map_or("nan".into(), |v| format!("{v:.6}"));
    println!(
        "result\t{}:{}\t{engine}\t{threads}\t{:.3}\t{}\t{}\t{}\t{}\t{}\t{:.0}\t{:.0}\t{}",
        name_of(dir),
        name_of(params),
        trained.seconds,
        trained.rounds,
        trained.best,
        f(report.mse),
        f(report.ic),
        f(report.rank_ic),
        rss_loaded,
        status_mib("VmHWM"),
        trained.fingerprint,
    );
    Ok(())
}

fn train_ours(map: &Map<String, Value>, names: Vec<String>, tr: Segment, va: Segment, te: Segment) -> Result<Trained> {
    let params = Params::from_map(map)?;
    let train_set = Dataset::from_columns(names.clone(), tr.columns, tr.labels)?;
    let valid_set = Dataset::from_columns(names.clone(), va.columns, va.labels)?;
    let test_set = Dataset::from_columns(names, te.columns, te.labels)?;
    let start = Instant::now();
    let model = train(&params, &train_set, Some(&valid_set), |_| ControlFlow::Continue(()))?;
    let seconds = start.elapsed().as_secs_f64();
    let json = serde_json::to_string(model.trees())?;
    let fnv = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    Ok(Trained {
        predictions: model.predict_dataset(&test_set)?,
        seconds,
        rounds: model.info().rounds,
        best: model.trees().len(),
        fingerprint: format!("{fnv:016x}"),
    })
}

/// LightGBM through its C API (`c_api.h` of v4.7.0), loaded at run time with dlopen.
mod lightgbm {
    use std::ffi::{CStr, CString, c_char, c_int, c_void};
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use serde_json::{Map, Value};

    use super::{Segment, Trained};

    unsafe extern "C" {
        fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void;
    }

    type Handle = *mut c_void;
    type CreateFromMat =
        unsafe extern "C" fn(*const c_void, c_int, i32, i32, c_int, *const c_char, Handle, *mut Handle) -> c_int;
    type SetField = unsafe extern "C" fn(Handle, *const c_char, *const c_void, c_int, c_int) -> c_int;
    type BoosterCreate = unsafe extern "C" fn(Handle, *const c_char, *mut Handle) -> c_int;
    type AddValid = unsafe extern "C" fn(Handle, Handle) -> c_int;
    type UpdateOneIter = unsafe extern "C" fn(Handle, *mut c_int) -> c_int;
    type GetEval = unsafe extern "C" fn(Handle, c_int, *mut c_int, *mut f64) -> c_int;
    type PredictForMat = unsafe extern "C" fn(
        Handle,
        *const c_void,
        c_int,
        i32,
        i32,
        c_int,
        c_int,
        c_int,
        c_int,
        *const c_char,
        *mut i64,
        *mut f64,
    ) -> c_int;
    type LastError = unsafe extern "C" fn() -> *const c_char;

    const DTYPE_F32: c_int = 0;
    const DTYPE_F64: c_int = 1;
    const COL_MAJOR: c_int = 0;
    const RTLD_NOW: c_int = 2;

    struct Lib {
        handle: *mut c_void,
        last_error: LastError,
    }

    impl Lib {
        fn open(path: &str) -> Result<Lib> {
            let c = CString::new(path)?;
            // SAFETY: dlopen with a valid C string; a null handle is checked.
            let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW) };
            if handle.is_null() {
                bail!("dlopen {path} failed");
            }
            let mut lib = Lib { handle, last_error: dummy_error };
            // SAFETY: LGBM_GetLastError has this signature in c_api.h.
            lib.last_error = unsafe { lib.sym("LGBM_GetLastError")? };
            Ok(lib)
        }

        /// # Safety
        /// `T` must be the function pointer type of `name` in c_api.h.
        unsafe fn sym<T: Copy>(&self, name: &str) -> Result<T> {
            let c = CString::new(name)?;
            // SAFETY: a valid handle and C string; a null result is checked.
            let p = unsafe { dlsym(self.handle, c.as_ptr()) };
            if p.is_null() {
                bail!("{name} not found in lib_lightgbm");
            }
            // SAFETY: per the caller's contract, `T` is a function pointer of the symbol's type.
            Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
        }

        fn check(&self, rc: c_int, what: &str) -> Result<()> {
            if rc == 0 {
                return Ok(());
            }
            // SAFETY: LGBM_GetLastError returns a NUL-terminated string owned by the library.
            let msg = unsafe { CStr::from_ptr((self.last_error)()) }.to_string_lossy().into_owned();
            bail!("{what}: {msg}")
        }
    }

    extern "C" fn dummy_error() -> *const c_char {
        c"".as_ptr()
    }

    /// LightGBM's `key=value` parameter string; boosting rounds and early stopping are driven here.
    fn param_string(map: &Map<String, Value>) -> String {
        let mut parts: Vec<String> = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "num_boost_round" | "early_stopping_rounds"))
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect();
        parts.push("verbosity=-1".into());
        parts.join(" ")
    }

    /// The one column-major buffer of a segment read with `flat`.
    fn matrix(s: &Segment, cols: usize) -> Result<&[f64]> {
        match s.columns.as_slice() {
            [x] if x.len() == s.labels.len() * cols => Ok(x),
            _ => bail!("segment not read as one {cols}-column buffer"),
        }
    }

    fn dataset(
        lib: &Lib,
        (create, set_field): (CreateFromMat, SetField),
        s: &Segment,
        cols: usize,
        params: &CString,
        reference: Handle,
    ) -> Result<Handle> {
        let rows = s.labels.len();
        let x = matrix(s, cols)?;
        let mut out: Handle = std::ptr::null_mut();
        // SAFETY: `x` holds rows × cols f64 in column-major order.
        let rc = unsafe {
            create(
                x.as_ptr().cast(),
                DTYPE_F64,
                rows as i32,
                cols as i32,
                COL_MAJOR,
                params.as_ptr(),
                reference,
                &mut out,
            )
        };
        lib.check(rc, "LGBM_DatasetCreateFromMat")?;
        // LightGBM keeps labels as f32.
        let y: Vec<f32> = s.labels.iter().map(|&v| v as f32).collect();
        // SAFETY: `y` holds `rows` f32 labels.
        let rc = unsafe { set_field(out, c"label".as_ptr(), y.as_ptr().cast(), rows as c_int, DTYPE_F32) };
        lib.check(rc, "LGBM_DatasetSetField")?;
        Ok(out)
    }

    pub(super) fn train(
        path: &str,
        map: &Map<String, Value>,
        cols: usize,
        tr: &Segment,
        va: &Segment,
        te: &Segment,
    ) -> Result<Trained> {
        let lib = Lib::open(path)?;
        // SAFETY: each type alias above matches its function's signature in c_api.h (v4.7.0).
        let (create, set_field, booster_create, add_valid, update, get_eval, predict) = unsafe {
            (
                lib.sym::<CreateFromMat>("LGBM_DatasetCreateFromMat")?,
                lib.sym::<SetField>("LGBM_DatasetSetField")?,
                lib.sym::<BoosterCreate>("LGBM_BoosterCreate")?,
                lib.sym::<AddValid>("LGBM_BoosterAddValidData")?,
                lib.sym::<UpdateOneIter>("LGBM_BoosterUpdateOneIter")?,
                lib.sym::<GetEval>("LGBM_BoosterGetEval")?,
                lib.sym::<PredictForMat>("LGBM_BoosterPredictForMat")?,
            )
        };
        let rounds = map.get("num_boost_round").and_then(Value::as_u64).context("num_boost_round")? as usize;
        let patience = map.get("early_stopping_rounds").and_then(Value::as_u64).unwrap_or(0) as usize;
        let params = CString::new(param_string(map))?;

        let start = Instant::now();
        let train_ds = dataset(&lib, (create, set_field), tr, cols, &params, std::ptr::null_mut())?;
        let valid_ds = dataset(&lib, (create, set_field), va, cols, &params, train_ds)?;
        let mut booster: Handle = std::ptr::null_mut();
        // SAFETY: valid dataset handle and parameter string.
        lib.check(unsafe { booster_create(train_ds, params.as_ptr(), &mut booster) }, "LGBM_BoosterCreate")?;
        lib.check(unsafe { add_valid(booster, valid_ds) }, "LGBM_BoosterAddValidData")?;
        // lgb.train's early_stopping callback: strict improvement of the valid l2, stop after `patience` rounds without.
        let (mut best, mut best_round, mut done) = (f64::INFINITY, 0usize, 0usize);
        let mut evals = [0.0f64; 8];
        for round in 1..=rounds {
            let mut finished: c_int = 0;
            // SAFETY: valid booster handle.
            lib.check(unsafe { update(booster, &mut finished) }, "LGBM_BoosterUpdateOneIter")?;
            if finished != 0 {
                break;
            }
            done = round;
            let mut len: c_int = 0;
            // SAFETY: `evals` has room for every metric (one here: l2).
            lib.check(unsafe { get_eval(booster, 1, &mut len, evals.as_mut_ptr()) }, "LGBM_BoosterGetEval")?;
            if evals[0] < best {
                (best, best_round) = (evals[0], round);
            }
            if patience > 0 && round - best_round >= patience {
                break;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let keep = if patience > 0 { best_round } else { done };

        let rows = te.labels.len();
        let x = matrix(te, cols)?;
        let mut predictions = vec![0.0f64; rows];
        let mut len: i64 = 0;
        // SAFETY: `x` is rows × cols column-major; `predictions` has room for `rows` results.
        let rc = unsafe {
            predict(
                booster,
                x.as_ptr().cast(),
                DTYPE_F64,
                rows as i32,
                cols as i32,
                COL_MAJOR,
                0,
                0,
                keep as c_int,
                c"".as_ptr(),
                &mut len,
                predictions.as_mut_ptr(),
            )
        };
        lib.check(rc, "LGBM_BoosterPredictForMat")?;
        Ok(Trained { predictions, seconds, rounds: done, best: keep, fingerprint: "-".into() })
    }
}

/// The `result` lines as a table, with the goals checked per dataset and thread count.
fn report(path: &Path) -> Result<()> {
    struct Row {
        data: String,
        engine: String,
        threads: usize,
        secs: f64,
        rounds: String,
        mse: f64,
        ic: f64,
        rank_ic: f64,
        rss_loaded: f64,
        rss_peak: f64,
    }
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("result\t")) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 12 {
            bail!("short result line: {line}");
        }
        rows.push(Row {
            data: f[1].into(),
            engine: f[2].into(),
            threads: f[3].parse()?,
            secs: f[4].parse()?,
            rounds: format!("{} ({})", f[6], f[5]),
            mse: f[7].parse()?,
            ic: f[8].parse()?,
            rank_ic: f[9].parse()?,
            rss_loaded: f[10].parse()?,
            rss_peak: f[11].parse()?,
        });
    }
    println!(
        "| data | engine | threads | trees kept (run) | train s | test MSE | IC | Rank IC | peak RSS MiB | RSS over data MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.6} | {:.4} | {:.4} | {:.0} | {:.0} |",
            r.data,
            r.engine,
            r.threads,
            r.rounds,
            r.secs,
            r.mse,
            r.ic,
            r.rank_ic,
            r.rss_peak,
            r.rss_peak - r.rss_loaded
        );
    }
    println!();
    for ours in rows.iter().filter(|r| r.engine == "ours") {
        let Some(lgb) =
            rows.iter().find(|r| r.engine == "lightgbm" && r.data == ours.data && r.threads == ours.threads)
        else {
            continue;
        };
        let ok = |b: bool| if b { "met" } else { "MISSED" };
        println!(
            "{} @ {} threads: MSE {:+.2}% ({}), IC {:+.4} ({}), time {:.2}x ({}), peak RSS {:.2}x ({})",
            ours.data,
            ours.threads,
            (ours.mse / lgb.mse - 1.0) * 100.0,
            ok(ours.mse <= lgb.mse * 1.01),
            ours.ic - lgb.ic,
            if ours.ic.is_nan() && lgb.ic.is_nan() {
                "n/a: constant predictions"
            } else {
                ok(ours.ic >= lgb.ic - 0.002)
            },
            ours.secs / lgb.secs,
            ok(ours.secs <= lgb.secs),
            ours.rss_peak / lgb.rss_peak,
            ok(ours.rss_peak <= lgb.rss_peak),
        );
    }
    Ok(())
}
