//! Qlib's expression language: text such as `Corr($close, Log($volume+1), 10)` is parsed into a typed
//! tree ([`Expr`]), compiled with other expressions into one plan that computes each distinct
//! sub-expression once ([`Plan`]), and evaluated over one symbol's calendar-aligned columns.
//! Operators and their numerics follow Qlib 0.9.7 (see [`ops::OPERATORS`] and [`rolling`]).

mod eval;
pub mod ops;
mod parse;
pub mod rolling;

use std::fmt;
use std::str::FromStr;

use stockops_core::BarSeries;

pub use eval::Plan;
pub use ops::{Dtype, Kind, OpDef};
pub use rolling::{Span, Window};

/// A typed Qlib expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A per-row input column, written `$close` (stored lower-case, as Qlib looks fields up).
    Field(String),
    /// A numeric constant.
    Const(f64),
    /// A registered operator applied to operands.
    Call(Box<Call>),
}

/// An operator application with its checked operands and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The registry entry.
    pub op: &'static OpDef,
    /// Operand expressions, in call order.
    pub args: Vec<Expr>,
    /// Literal parameters after the operands (lag, window, quantile, span).
    pub param: Param,
}

/// The literal parameters an operator takes after its operands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    /// Element-wise operators take none.
    None,
    /// `Ref`/`Delta`: rows back (negative: forward).
    Lag(i64),
    /// Rolling operators: the window.
    Window(Window),
    /// `Quantile`: the window and the probability.
    Quantile(Window, f64),
    /// `EMA`: span or smoothing factor.
    Span(Span),
}

impl fmt::Debug for OpDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for OpDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Where intermediate values are rounded during an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Every value stays f64 from input to output: the most accurate results.
    #[default]
    F64,
    /// Qlib's pipeline, to reproduce its numbers to the last bits: fields are float32, element-wise
    /// steps on float32 operands store float32 (numpy's promotion rules, see [`Dtype`]; `Log` uses
    /// numpy's float32 SIMD kernel), window statistics are float64, and outputs are cast to float32.
    QlibF32,
}

/// A syntax or typing error in expression text, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 1-based character column in the expression text.
    pub column: usize,
    /// What the parser wanted there.
    pub expected: String,
    /// What it got.
    pub found: String,
}

/// An expression could not be evaluated over the given input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression reads a field the input does not have.
    #[error("field ${0} is not in the input")]
    MissingField(String),
    /// A field column's length differs from the input's row count.
    #[error("field ${field} has {len} rows, expected {rows}")]
    RowMismatch {
        /// The field.
        field: String,
        /// Its length.
        len: usize,
        /// The input's row count.
        rows: usize,
    },
}

/// One symbol's input columns, aligned on its calendar, that `$field` reads.
pub trait FieldSource {
    /// Number of rows of every column.
    fn rows(&self) -> usize;
    /// The column of field `name` (lower-case, without `$`), if the input has it.
    fn field(&self, name: &str) -> Option<&[f64]>;
}

impl FieldSource for BarSeries {
    fn rows(&self) -> usize {
        self.len()
    }

    fn field(&self, name: &str) -> Option<&[f64]> {
        Some(match name {
            "open" => &self.open,
            "high" => &self.high,
            "low" => &self.low,
            "close" => &self.close,
            "volume" => &self.volume,
            "vwap" => &self.vwap,
            "factor" => &self.factor,
            _ => return None,
        })
    }
}

/// Parses Qlib expression text into a typed expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    parse::parse(text)
}

impl FromStr for Expr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl Expr {
    /// Evaluates this expression alone over one symbol's columns (one value per row, NaN where Qlib
    /// gives NaN). To evaluate many expressions, compile them together into a [`Plan`].
    pub fn evaluate(&self, src: &dyn FieldSource, precision: Precision) -> Result<Vec<f64>, EvalError> {
        Ok(Plan::new([self]).evaluate(src, precision)?.into_iter().next().unwrap_or_default())
    }
}

/// Writes a number the way Python prints it in Qlib's expression strings (`5`, `0.8`, `1e-12`).
fn fmt_num(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.fract() == 0.0 && v.abs() < 1e15 { write!(f, "{}", v as i64) } else { write!(f, "{v:?}") }
}

fn fmt_window(f: &mut fmt::Formatter<'_>, w: Window) -> fmt::Result {
    match w {
        Window::Last(n) => write!(f, "{n}"),
        Window::Expanding => f.write_str("0"),
    }
}

/// Canonical text: Qlib's own `str()` form, e.g. `Div(Mean($close,5),$close)`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(name) => write!(f, "${name}"),
            Expr::Const(v) => fmt_num(f, *v),
            Expr::Call(call) => {
                write!(f, "{}(", call.op.name)?;
                for (i, a) in call.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a}")?;
                }
                match call.param {
                    Param::None => {}
                    Param::Lag(n) => write!(f, ",{n}")?,
                    Param::Window(w) => {
                        f.write_str(",")?;
                        fmt_window(f, w)?;
                    }
                    Param::Quantile(w, q) => {
                        f.write_str(",")?;
                        fmt_window(f, w)?;
                        f.write_str(",")?;
                        fmt_num(f, q)?;
                    }
                    Param::Span(Span::Rows(n)) => write!(f, ",{n}")?,
                    Param::Span(Span::Alpha(a)) => {
                        f.write_str(",")?;
                        fmt_num(f, a)?;
                    }
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> BarSeries {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let n = 6;
        BarSeries {
            symbol: "T".into(),
            dates: (0..n).map(|i| d + chrono::Days::new(i)).collect(),
            open: vec![10.0, 11.0, 12.0, 11.0, 13.0, 14.0],
            high: vec![11.0, 12.0, 13.0, 12.5, 14.0, 15.0],
            low: vec![9.5, 10.5, 11.0, 10.0, 12.5, 13.5],
            close: vec![10.5, 11.5, 12.5, 11.0, 13.5, 14.5],
            volume: vec![100.0, 200.0, 150.0, 120.0, 300.0, 250.0],
            vwap: vec![f64::NAN; n as usize],
            factor: vec![1.0; n as usize],
        }
    }

    #[test]
    fn evaluates_over_bar_series() {
        let b = bars();
        let v = parse("($close-$open)/$open").unwrap().evaluate(&b, Precision::F64).unwrap();
        assert!((v[0] - 0.05).abs() < 1e-15);
        let v = parse("Ref($close, -2)/Ref($close, -1) - 1").unwrap().evaluate(&b, Precision::F64).unwrap();
        assert!((v[0] - (12.5 / 11.5 - 1.0)).abs() < 1e-15);
        assert!(v[4].is_nan() && v[5].is_nan());
        let v = parse("Mean($close>Ref($close, 1), 5)").unwrap().evaluate(&b, Precision::F64).unwrap();
        assert_eq!(v[0], 0.0);
        assert!((v[4] - 3.0 / 5.0).abs() < 1e-15);
        assert!(parse("$vwap/$close").unwrap().evaluate(&b, Precision::F64).unwrap()[0].is_nan());
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse("$turnover + 1").unwrap().evaluate(&bars(), Precision::F64).unwrap_err();
        assert_eq!(err, EvalError::MissingField("turnover".into()));
    }

    #[test]
    fn canonical_text_is_qlibs_str() {
        let e =
            parse("Sum(Greater($close-Ref($close, 1), 0), 14)/(Sum(Abs($close-Ref($close, 1)), 14)+1e-12)").unwrap();
        assert_eq!(
            e.to_string(),
            "Div(Sum(Greater(Sub($close,Ref($close,1)),0),14),Add(Sum(Abs(Sub($close,Ref($close,1))),14),1e-12))"
        );
        assert_eq!(parse("Quantile($Close, 20, 0.8)").unwrap().to_string(), "Quantile($close,20,0.8)");
        assert_eq!(parse(&e.to_string()).unwrap(), e);
    }
}
