//! Named, versioned feature sets defined by Qlib expression text: Alpha158 (in Qlib's column order),
//! Alpha360, Qlib's label `LABEL0`, and user-defined sets read from CSV (`name,expression` lines) or
//! JSON. A set compiles its expressions into one [`Plan`], so shared sub-expressions run once.

use rustc_hash::FxHashSet;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::expr::{self, EvalError, Expr, FieldSource, ParseError, Plan, Precision};

/// Alpha158's 158 `name,expression` rows, then `LABEL0`, as read out of pyqlib 0.9.7's `Alpha158DL`.
const ALPHA158_CSV: &str = include_str!("alpha158.csv");

/// Engine semantics hashed into every version: bump it when any kernel's results change.
const ENGINE: &str = "stockops-expr/1 (qlib 0.9.7 semantics)";

/// Name of Qlib's default label column.
pub const LABEL0: &str = "LABEL0";

/// A feature set definition is invalid.
#[derive(Debug, thiserror::Error)]
pub enum FeatureSetError {
    /// An expression does not parse or type-check.
    #[error("line {line}: feature {name:?}: {source}")]
    Expression {
        /// 1-based line (CSV) or entry (list, JSON) of the definition.
        line: usize,
        /// The feature's name.
        name: String,
        /// Where and why the expression is wrong.
        source: ParseError,
    },
    /// A definition line is malformed (wrong field count, bad quoting, empty name, bad JSON).
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line (CSV, JSON text) or entry (list) of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two features share a name.
    #[error("line {line}: feature {name:?} is already defined")]
    Duplicate {
        /// 1-based line or entry of the second definition.
        line: usize,
        /// The repeated name.
        name: String,
    },
    /// The set defines no feature.
    #[error("feature set {0:?} defines no feature")]
    Empty(String),
}

/// A named list of feature columns, each a Qlib expression, with a version that changes whenever
/// any column's name or definition, the precision, or the engine's semantics does.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    name: String,
    columns: Vec<(String, Expr)>,
    precision: Precision,
    version: String,
    plan: Plan,
}

/// Hex SHA-256 of the engine version, the precision and every `name<TAB>canonical expression`.
fn version_of(columns: &[(String, Expr)], precision: Precision) -> String {
    use std::fmt::Write;
    let mut hash = Sha256::new();
    let mut line = format!("{ENGINE}\nprecision={precision:?}");
    hash.update(line.as_bytes());
    for (col, e) in columns {
        line.clear();
        write!(line, "\n{col}\t{e}").expect("writing to a String cannot fail");
        hash.update(line.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// Computed features of one symbol: one column per feature, one value per input row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumns {
    /// Feature names, in set order.
    pub names: Vec<String>,
    /// `columns[j][i]`: feature `j` at row `i` (NaN where Qlib gives NaN).
    pub columns: Vec<Vec<f64>>,
}

impl FeatureColumns {
    /// The column of feature `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.names.iter().position(|n| n == name).map(|j| self.columns[j].as_slice())
    }
}

#[derive(Deserialize)]
struct JsonSet {
    name: String,
    features: Vec<JsonFeature>,
}

#[derive(Deserialize)]
struct JsonFeature {
    name: String,
    expression: String,
}

impl FeatureSet {
    /// Builds a set from typed expressions, evaluated in f64; names must be non-empty and unique.
    pub fn new(name: impl Into<String>, columns: Vec<(String, Expr)>) -> Result<Self, FeatureSetError> {
        let name = name.into();
        if columns.is_empty() {
            return Err(FeatureSetError::Empty(name));
        }
        let mut seen = FxHashSet::default();
        for (i, (col, _)) in columns.iter().enumerate() {
            if col.trim().is_empty() || col.trim() != col {
                let message = format!("feature name {col:?} is empty or has surrounding spaces");
                return Err(FeatureSetError::Malformed { line: i + 1, message });
            }
            if !seen.insert(col.as_str()) {
                return Err(FeatureSetError::Duplicate { line: i + 1, name: col.clone() });
            }
        }
        let precision = Precision::default();
        let version = version_of(&columns, precision);
        let plan = Plan::new(columns.iter().map(|(_, e)| e));
        Ok(FeatureSet { name, columns, precision, version, plan })
    }

    /// Builds a set from `(name, expression text)` pairs; errors name the 1-based entry.
    pub fn parse<N: AsRef<str>, E: AsRef<str>>(
        name: impl Into<String>,
        defs: impl IntoIterator<Item = (N, E)>,
    ) -> Result<Self, FeatureSetError> {
        let lines =
            defs.into_iter().enumerate().map(|(i, (n, e))| (i + 1, n.as_ref().to_string(), e.as_ref().to_string()));
        Self::from_lines(name.into(), lines.collect())
    }

    /// Builds a set from CSV text of `name,expression` lines (a `name,expression` header and `#`
    /// comment lines are allowed; quote expressions that contain commas). Errors name the line.
    pub fn from_csv(name: impl Into<String>, text: &str) -> Result<Self, FeatureSetError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let mut defs = Vec::new();
        for rec in reader.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                FeatureSetError::Malformed { line, message: e.to_string() }
            })?;
            let line = rec.position().map_or(0, |p| p.line() as usize);
            match (rec.len(), rec.get(0), rec.get(1)) {
                (2, Some(n), Some(e))
                    if defs.is_empty() && n.eq_ignore_ascii_case("name") && e.eq_ignore_ascii_case("expression") => {}
                (2, Some(n), Some(e)) => defs.push((line, n.to_string(), e.to_string())),
                (k, _, _) => {
                    let message = format!("expected 2 fields `name,expression`, found {k}");
                    return Err(FeatureSetError::Malformed { line, message });
                }
            }
        }
        Self::from_lines(name.into(), defs)
    }

    /// Builds a set from JSON `{"name": …, "features": [{"name": …, "expression": …}, …]}`; errors
    /// name the JSON line, or the 1-based entry of `features`.
    pub fn from_json(text: &str) -> Result<Self, FeatureSetError> {
        let set: JsonSet = serde_json::from_str(text)
            .map_err(|e| FeatureSetError::Malformed { line: e.line(), message: e.to_string() })?;
        let defs = set.features.into_iter().enumerate().map(|(i, f)| (i + 1, f.name, f.expression)).collect();
        Self::from_lines(set.name, defs)
    }

    fn from_lines(name: String, defs: Vec<(usize, String, String)>) -> Result<Self, FeatureSetError> {
        let mut columns = Vec::with_capacity(defs.len());
        let mut seen = FxHashSet::default();
        for (line, col, text) in defs {
            if col.is_empty() {
                return Err(FeatureSetError::Malformed { line, message: "empty feature name".into() });
            }
            if !seen.insert(col.clone()) {
                return Err(FeatureSetError::Duplicate { line, name: col });
            }
            match expr::parse(&text) {
                Ok(e) => columns.push((col, e)),
                Err(source) => return Err(FeatureSetError::Expression { line, name: col, source }),
            }
        }
        Self::new(name, columns)
    }

    /// The same set evaluated with `precision` (which changes its version).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self.version = version_of(&self.columns, precision);
        self
    }

    /// Where evaluation rounds intermediate values.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The set's name (`alpha158`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Feature names with their expressions, in column order.
    pub fn columns(&self) -> &[(String, Expr)] {
        &self.columns
    }

    /// Feature names in column order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Version: hex SHA-256 of the engine version, the precision and every `name<TAB>canonical expression`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The compiled plan (distinct sub-expressions, fields read).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Computes every feature over one symbol's calendar-aligned columns.
    pub fn compute(&self, src: &dyn FieldSource) -> Result<FeatureColumns, EvalError> {
        let columns = self.plan.evaluate(src, self.precision)?;
        Ok(FeatureColumns { names: self.columns.iter().map(|(n, _)| n.clone()).collect(), columns })
    }
}

/// Rows of the embedded Alpha158 table, `LABEL0` included.
fn alpha158_rows() -> Vec<(usize, String, String)> {
    ALPHA158_CSV
        .lines()
        .enumerate()
        .skip(1)
        .filter_map(|(i, line)| {
            let (name, expr) = line.split_once(',')?;
            Some((i + 1, name.to_string(), expr.trim_matches('"').to_string()))
        })
        .collect()
}

/// Builds a set from definitions compiled into the library, which the unit tests check.
fn embedded(name: &str, defs: Vec<(usize, String, String)>) -> FeatureSet {
    match FeatureSet::from_lines(name.to_string(), defs) {
        Ok(set) => set,
        // Unreachable: the embedded definitions are fixed at build time and tested.
        Err(e) => panic!("embedded feature set {name} is invalid: {e}"),
    }
}

/// Qlib's Alpha158 (158 columns, Qlib's order; the label is separate, see [`label`]).
pub fn alpha158() -> FeatureSet {
    embedded("alpha158", alpha158_rows().into_iter().filter(|(_, n, _)| n != LABEL0).collect())
}

/// Qlib's default label: `LABEL0 = Ref($close, -2)/Ref($close, -1) - 1`.
pub fn label() -> FeatureSet {
    embedded("label", alpha158_rows().into_iter().filter(|(_, n, _)| n == LABEL0).collect())
}

/// Qlib's Alpha360 (`Alpha360DL`): for close, open, high, low, vwap then volume, lags 59 down to 0,
/// prices over today's close and volume over today's volume.
pub fn alpha360() -> FeatureSet {
    let mut defs = Vec::with_capacity(360);
    for (field, name) in
        [("close", "CLOSE"), ("open", "OPEN"), ("high", "HIGH"), ("low", "LOW"), ("vwap", "VWAP"), ("volume", "VOLUME")]
    {
        let denom = if field == "volume" { "($volume+1e-12)" } else { "$close" };
        for lag in (0..60).rev() {
            let num = if lag == 0 { format!("${field}") } else { format!("Ref(${field}, {lag})") };
            defs.push((defs.len() + 1, format!("{name}{lag}"), format!("{num}/{denom}")));
        }
    }
    embedded("alpha360", defs)
}

/// A built-in set: its name, its version (known without building the set: a feature-cache hit
/// needs only the version, and building Alpha158 — parse, plan, hash — costs more than the hit itself
/// in a component; a unit test checks each against its set's hash), and how to build it.
#[derive(Debug)]
pub struct Builtin {
    /// The set's name.
    pub name: &'static str,
    /// The hash of its definition, as [`FeatureSet::version`] computes it.
    pub version: &'static str,
    /// Builds (parses and plans) the set.
    pub build: fn() -> FeatureSet,
}

/// Every built-in set of Qlib expressions.
pub const BUILTINS: [Builtin; 3] = [
    Builtin {
        name: "alpha158",
        version: "9b6d5e197666c3e88c0ae97d6a3be3cf978bc0fc1ef926dfcd3d7a7423ff4a32",
        build: alpha158,
    },
    Builtin {
        name: "alpha360",
        version: "61f68a029cddab07e27530db42a47a9743b3e3ba412eb053f050871afc6e2fc6",
        build: alpha360,
    },
    Builtin {
        name: "label",
        version: "576d09e88bc073e122a60796102758f6fe5e955102b7fb1f877a22c864ddd51c",
        build: label,
    },
];

/// A built-in set by name: `alpha158`, `alpha360` or `label`.
pub fn builtin(name: &str) -> Option<FeatureSet> {
    BUILTINS.iter().find(|b| b.name == name).map(|b| (b.build)())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_versions_stay_put() {
        // Every trained model records the version of its feature set, and serving refuses a set whose
        // version differs: change these only with the definition or the engine's semantics.
        for b in &BUILTINS {
            let set = (b.build)();
            assert_eq!((set.name(), set.version()), (b.name, b.version));
        }
        // Alpha158's a second time, so that moving it takes two deliberate edits.
        assert_eq!(BUILTINS[0].version, "9b6d5e197666c3e88c0ae97d6a3be3cf978bc0fc1ef926dfcd3d7a7423ff4a32");
    }

    #[test]
    fn builtins_have_qlibs_columns() {
        let a = alpha158();
        assert_eq!(a.columns().len(), 158);
        assert_eq!(a.names()[..3], ["KMID", "KLEN", "KMID2"]);
        assert_eq!(a.names()[157], "VSUMD60");
        assert_eq!(a.plan().fields(), ["close", "open", "high", "low", "vwap", "volume"]);
        let l = label();
        assert_eq!(l.names(), [LABEL0]);
        assert_eq!(l.columns()[0].1.to_string(), "Sub(Div(Ref($close,-2),Ref($close,-1)),1)");
        let b = alpha360();
        assert_eq!(b.columns().len(), 360);
        assert_eq!(b.names()[0], "CLOSE59");
        assert_eq!(b.columns()[59].1.to_string(), "Div($close,$close)");
        assert_eq!(b.names()[300], "VOLUME59");
        assert_eq!(b.columns()[300].1.to_string(), "Div(Ref($volume,59),Add($volume,1e-12))");
        for n in ["alpha158", "alpha360", "label"] {
            assert_eq!(builtin(n).unwrap().name(), n);
        }
        assert!(builtin("nope").is_none());
    }

    #[test]
    fn alpha158_shares_subexpressions() {
        // 158 columns reuse Ref($close,1), Mean(...), etc.; far fewer nodes than a tree-walk would run.
        let a = alpha158();
        assert!(a.plan().node_count() < 700, "{}", a.plan().node_count());
    }

    #[test]
    fn version_tracks_the_definition() {
        let a = FeatureSet::parse("s", [("A", "$close/$open")]).unwrap();
        let b = FeatureSet::parse("other", [("A", "$close / $open")]).unwrap();
        let c = FeatureSet::parse("s", [("A", "$close/$high")]).unwrap();
        let d = FeatureSet::parse("s", [("B", "$close/$open")]).unwrap();
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
        assert_ne!(a.version(), d.version());
        assert_eq!(a.version().len(), 64);
        assert_eq!(alpha158().version(), alpha158().version());
        assert_ne!(a.version(), a.clone().with_precision(Precision::QlibF32).version());
    }

    #[test]
    fn csv_config_and_its_errors_name_lines() {
        let text = "name,expression\n# momentum\nMOM5,\"Ref($close, 5)/$close\"\nRNG, ($high-$low)/$open\n";
        let s = FeatureSet::from_csv("mine", text).unwrap();
        assert_eq!(s.names(), ["MOM5", "RNG"]);

        let e = FeatureSet::from_csv("mine", "A,$close\nB,Mean($close)\n").unwrap_err();
        assert!(matches!(&e, FeatureSetError::Expression { line: 2, name, .. } if name == "B"), "{e}");
        assert!(e.to_string().starts_with("line 2: feature \"B\": column 1: expected 2 argument(s)"), "{e}");

        let e = FeatureSet::from_csv("mine", "A,$close\nB,Ref($close, 1), 2\n").unwrap_err();
        assert!(matches!(e, FeatureSetError::Malformed { line: 2, .. }), "{e}");
        let e = FeatureSet::from_csv("mine", "A,$close\nA,$open\n").unwrap_err();
        assert!(matches!(e, FeatureSetError::Duplicate { line: 2, .. }), "{e}");
        assert!(matches!(FeatureSet::from_csv("mine", "name,expression\n"), Err(FeatureSetError::Empty(_))));
    }

    #[test]
    fn computes_named_columns() {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let n = 70;
        let close: Vec<f64> = (0..n).map(|i| 100.0 + i as f64).collect();
        let bars = stockops_core::BarSeries {
            symbol: "T".into(),
            dates: (0..n).map(|i| d + chrono::Days::new(i as u64)).collect(),
            open: close.clone(),
            high: close.iter().map(|c| c + 1.0).collect(),
            low: close.iter().map(|c| c - 1.0).collect(),
            close: close.clone(),
            volume: vec![1000.0; n],
            vwap: close.clone(),
            factor: vec![1.0; n],
        };
        let out = alpha360().compute(&bars).unwrap();
        assert_eq!(out.columns.len(), 360);
        assert!(out.get("CLOSE0").unwrap().iter().all(|&v| v == 1.0));
        let c59 = out.get("CLOSE59").unwrap();
        assert!(c59[58].is_nan() && (c59[59] - 100.0 / 159.0).abs() < 1e-15);
        assert!(out.get("NOPE").is_none());
        let a = alpha158().compute(&bars).unwrap();
        // A straight line: slope 1, perfect fit, a flat volume has no correlation.
        assert!((a.get("BETA20").unwrap()[69] - 1.0 / 169.0).abs() < 1e-12);
        assert!((a.get("RSQR20").unwrap()[69] - 1.0).abs() < 1e-12);
        assert!(a.get("CORR20").unwrap()[69].is_nan());
    }

    #[test]
    fn json_config() {
        let s = FeatureSet::from_json(r#"{"name": "j", "features": [{"name": "X", "expression": "Abs($close)"}]}"#)
            .unwrap();
        assert_eq!((s.name(), s.names()), ("j", vec!["X"]));
        let e =
            FeatureSet::from_json(r#"{"name": "j", "features": [{"name": "X", "expression": "Abs("}]}"#).unwrap_err();
        assert!(matches!(e, FeatureSetError::Expression { line: 1, .. }), "{e}");
        assert!(matches!(FeatureSet::from_json("{"), Err(FeatureSetError::Malformed { .. })));
    }
}
