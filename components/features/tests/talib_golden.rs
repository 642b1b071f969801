//! Golden test: every column of `indicators::technical_set` against TA-Lib C 0.8.1 on four symbols.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use chrono::NaiveDate;
use features::indicators::{TECHNICAL_COLUMNS, technical_set};
use flate2::read::GzDecoder;
use stockops_core::BarSeries;

const REL_TOL: f64 = 1e-9;
const ABS_TOL: f64 = 1e-12;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference")
}

/// us4_ohlcv.csv as one series per symbol, in file order.
fn load_ohlcv() -> BTreeMap<String, BarSeries> {
    let mut rd = csv::Reader::from_path(reference_dir().join("us4_ohlcv.csv")).expect("open us4_ohlcv.csv");
    let mut out: BTreeMap<String, BarSeries> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.expect("csv record");
        let num = |i: usize| rec[i].parse::<f64>().expect("number");
        let s = out
            .entry(rec[0].to_string())
            .or_insert_with(|| BarSeries { symbol: rec[0].to_string(), ..Default::default() });
        s.dates.push(NaiveDate::parse_from_str(&rec[1], "%Y-%m-%d").expect("date"));
        s.open.push(num(2));
        s.high.push(num(3));
        s.low.push(num(4));
        s.close.push(num(5));
        s.volume.push(num(6));
        s.vwap.push(num(7));
        s.factor.push(1.0);
    }
    out
}

/// The reference file: column names after symbol,date, and per symbol its dates and columns.
struct Reference {
    names: Vec<String>,
    dates: BTreeMap<String, Vec<NaiveDate>>,
    columns: BTreeMap<String, Vec<Vec<f64>>>,
}

fn load_reference() -> Reference {
    let gz = GzDecoder::new(File::open(reference_dir().join("talib_us4.csv.gz")).expect("open talib_us4.csv.gz"));
    let mut rd = csv::Reader::from_reader(gz);
    let names: Vec<String> = rd.headers().expect("header").iter().skip(2).map(str::to_string).collect();
    let mut dates: BTreeMap<String, Vec<NaiveDate>> = BTreeMap::new();
    let mut columns: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.expect("csv record");
        dates
            .entry(rec[0].to_string())
            .or_default()
            .push(NaiveDate::parse_from_str(&rec[1], "%Y-%m-%d").expect("date"));
        let cols = columns.entry(rec[0].to_string()).or_insert_with(|| vec![Vec::new(); names.len()]);
        for (col, cell) in cols.iter_mut().zip(rec.iter().skip(2)) {
            col.push(if cell.is_empty() { f64::NAN } else { cell.parse().expect("number") });
        }
    }
    Reference { names, dates, columns }
}

/// Worst disagreement of one column on one symbol.
#[derive(Default, Clone, Copy)]
struct ColumnError {
    max_rel: f64,
    max_abs: f64,
    nan_mismatches: usize,
    out_of_tolerance: usize,
}

impl ColumnError {
    fn merge(&mut self, o: ColumnError) {
        self.max_rel = self.max_rel.max(o.max_rel);
        self.max_abs = self.max_abs.max(o.max_abs);
        self.nan_mismatches += o.nan_mismatches;
        self.out_of_tolerance += o.out_of_tolerance;
    }

    fn ok(&self) -> bool {
        self.nan_mismatches == 0 && self.out_of_tolerance == 0
    }
}

/// Compares one computed column with its reference: same NaN positions, values within
/// REL_TOL relative or ABS_TOL absolute.
fn compare(got: &[f64], want: &[f64]) -> ColumnError {
    let mut e = ColumnError::default();
    if got.len() != want.len() {
        e.nan_mismatches = got.len().abs_diff(want.len()).max(1);
        return e;
    }
    for (&g, &w) in got.iter().zip(want) {
        if g.is_nan() != w.is_nan() {
            e.nan_mismatches += 1;
            continue;
        }
        if w.is_nan() {
            continue;
        }
        let abs = (g - w).abs();
        // NaN-safe: a NaN difference counts as out of tolerance.
        if abs.is_nan() || abs > (REL_TOL * w.abs()).max(ABS_TOL) {
            e.out_of_tolerance += 1;
        }
        e.max_abs = e.max_abs.max(abs);
        if w != 0.0 {
            e.max_rel = e.max_rel.max(abs / w.abs());
        }
    }
    e
}

#[test]
fn technical_set_matches_talib_on_all_symbols() {
    let series = load_ohlcv();
    let Reference { names, dates, columns } = load_reference();
    assert_eq!(names, TECHNICAL_COLUMNS.to_vec(), "column order differs from the reference");
    assert_eq!(series.keys().collect::<Vec<_>>(), columns.keys().collect::<Vec<_>>());

    let mut per_column = vec![ColumnError::default(); names.len()];
    let mut failures = Vec::new();
    for (symbol, s) in &series {
        assert_eq!(s.dates, dates[symbol], "{symbol}: reference rows are not the input's bars");
        let computed = technical_set(s);
        assert_eq!(computed.len(), names.len());
        for (i, ((name, got), want)) in computed.iter().zip(&columns[symbol]).enumerate() {
            assert_eq!(*name, names[i]);
            let e = compare(got, want);
            if !e.ok() {
                failures.push(format!(
                    "{symbol} {name}: {} NaN mismatches, {} values out of tolerance",
                    e.nan_mismatches, e.out_of_tolerance
                ));
            }
            per_column[i].merge(e);
        }
    }
    println!("{:<22} {:>12} {:>12}", "column", "max rel err", "max abs err");
    for (name, e) in names.iter().zip(&per_column) {
        let flag = if e.ok() { "" } else { "  FAIL" };
        println!("{name:<22} {:>12.3e} {:>12.3e}{flag}", e.max_rel, e.max_abs);
    }
    assert!(failures.is_empty(), "columns disagree with TA-Lib:\n{}", failures.join("\n"));
}

#[test]
fn comparison_rejects_wrong_values_and_nan_positions() {
    let want = [f64::NAN, 100.0, 0.0];
    assert!(compare(&[f64::NAN, 100.0, 0.0], &want).ok());
    assert!(compare(&[f64::NAN, 100.0 + 5e-11, 5e-13], &want).ok());
    assert!(!compare(&[f64::NAN, 100.0 * (1.0 + 2e-9), 0.0], &want).ok());
    assert!(!compare(&[f64::NAN, 100.0, 2e-12], &want).ok());
    assert!(!compare(&[1.0, 100.0, 0.0], &want).ok());
    assert!(!compare(&[f64::NAN, f64::NAN, 0.0], &want).ok());
    assert!(!compare(&[f64::NAN, 100.0], &want).ok());
}
