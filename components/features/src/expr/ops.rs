//! The operator registry: one table entry per Qlib operator, keyed by its Qlib name, giving how it is
//! called, the kernel that computes it and the dtype Qlib gives its result. Adding an operator is adding one entry (and, for a new
//! statistic, its kernel in `rolling`).

use super::rolling::{self, Span, Window};

/// How an operator is called, with the kernel that computes it.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Element-wise on one operand: `Abs($x)`.
    Unary(fn(f64) -> f64),
    /// Element-wise on two operands, series or constants: `Greater($x, 0)`, `$x + 1`.
    Binary(fn(f64, f64) -> f64),
    /// Element-wise on three operands: `If(cond, a, b)`.
    Ternary(fn(f64, f64, f64) -> f64),
    /// A series and an integer lag of any sign: `Ref($x, 5)`.
    Lag(fn(&[f64], i64) -> Vec<f64>),
    /// A series and a window (`0` = expanding): `Mean($x, 20)`.
    Rolling(fn(&[f64], Window) -> Vec<f64>),
    /// A series, a window and a probability in [0, 1]: `Quantile($x, 20, 0.8)`.
    RollingQuantile(fn(&[f64], Window, f64) -> Vec<f64>),
    /// Two series and a window: `Corr($x, $y, 20)`.
    Pair(fn(&[f64], &[f64], Window) -> Vec<f64>),
    /// A series and a span (integer ≥ 1) or smoothing factor in (0, 1): `EMA($x, 12)`.
    Smoothing(fn(&[f64], Span) -> Vec<f64>),
}

/// The numpy dtype Qlib's implementation gives an operator's result; it decides where Qlib rounds
/// to float32 (see [`super::Precision::QlibF32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// numpy promotion of the value operands: float32 if all are float32, bool or Python numbers.
    Promote,
    /// Always float32 (Qlib's `Sign` casts its input first).
    Float32,
    /// Always float64 (pandas windows, Qlib's Cython loops).
    Float64,
    /// A boolean mask (comparisons, `And`/`Or`/`Not`).
    Bool,
}

/// One registered operator.
pub struct OpDef {
    /// Qlib's operator name, as written in expressions.
    pub name: &'static str,
    /// Call shape and kernel.
    pub kind: Kind,
    /// Dtype of the result in Qlib.
    pub dtype: Dtype,
    /// numpy's float32 loop, where it is not simply the f64 result rounded (numpy's SIMD `log`).
    pub numpy_f32: Option<fn(f32) -> f32>,
}

/// A registry entry whose float32 result is the rounded f64 result.
const fn op(name: &'static str, kind: Kind, dtype: Dtype) -> OpDef {
    OpDef { name, kind, dtype, numpy_f32: None }
}

/// numpy truthiness of a float: anything but 0 (NaN included) is true.
fn truthy(v: f64) -> bool {
    v != 0.0
}

/// numpy bool → float.
pub(super) fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// `np.sign`: -1, 0 or 1, NaN stays NaN.
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v
    }
}

/// `np.maximum`/`np.minimum` propagate NaN, unlike `f64::max`.
pub(super) fn greater(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

pub(super) fn less(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// numpy's float32 `log` on x86 with AVX2/FMA3 or AVX-512F (`simd_log_FLOAT`): a rational
/// approximation on the mantissa evaluated with float32 FMAs, up to ~4 ULP from the true value.
/// Qlib's `Log` of float32 data goes through it, so reproducing Qlib's numbers needs it too.
fn numpy_log_f32(x: f32) -> f32 {
    // numpy's NPY_COEFF_{P,Q}{0..5}_LOGf, as float32 bit patterns.
    const P: [u32; 6] = [0x0000_0000, 0x3F80_0000, 0x4007_361C, 0x3FBD_70A9, 0x3EC3_0333, 0x3CD4_2BCD];
    const Q: [u32; 6] = [0x3F80_0000, 0x4027_361C, 0x401C_FE0D, 0x3F7C_8AE4, 0x3E1E_5BF3, 0x3BC0_83DF];
    // Horner's rule with fused multiply-adds, highest power first.
    let horner = |c: &[u32; 6], y: f32| {
        c[..5].iter().rev().fold(f32::from_bits(c[5]), |acc, &k| acc.mul_add(y, f32::from_bits(k)))
    };
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    // Subnormals are scaled by 2^100 first, as the kernel does.
    let (x, bias) = if x < f32::MIN_POSITIVE { (x * f32::from_bits(0x7180_0000), 100.0) } else { (x, 0.0) };
    let bits = x.to_bits();
    let mut e = ((bits >> 23) as i32 - 126) as f32 - bias;
    // Mantissa in [0.5, 1), then moved into (sqrt(1/2), sqrt(2)].
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | (126 << 23));
    if m <= std::f32::consts::FRAC_1_SQRT_2 {
        m += m;
        e -= 1.0;
    }
    let y = m - 1.0;
    e.mul_add(std::f32::consts::LN_2, horner(&P, y) / horner(&Q, y))
}

/// The registry, in Qlib's documentation order. Infix syntax maps onto these names
/// (`+` Add, `-` Sub, `*` Mul, `/` Div, `**` Power, `>` Gt, `>=` Ge, `<` Lt, `<=` Le, `==` Eq,
/// `!=` Ne, `&` And, `|` Or, unary `-` Neg). Comparisons give 1.0/0.0 with numpy's NaN rules
/// (false, except `!=`).
pub static OPERATORS: &[OpDef] = &[
    op("Ref", Kind::Lag(rolling::shift), Dtype::Promote),
    op("Delta", Kind::Lag(rolling::delta), Dtype::Promote),
    op("Mean", Kind::Rolling(rolling::mean), Dtype::Float64),
    op("Sum", Kind::Rolling(rolling::sum), Dtype::Float64),
    op("Std", Kind::Rolling(rolling::std), Dtype::Float64),
    op("Var", Kind::Rolling(rolling::var), Dtype::Float64),
    op("Max", Kind::Rolling(rolling::max), Dtype::Float64),
    op("Min", Kind::Rolling(rolling::min), Dtype::Float64),
    op("IdxMax", Kind::Rolling(rolling::idxmax), Dtype::Float64),
    op("IdxMin", Kind::Rolling(rolling::idxmin), Dtype::Float64),
    op("Med", Kind::Rolling(rolling::median), Dtype::Float64),
    op("Mad", Kind::Rolling(rolling::mad), Dtype::Float64),
    op("Count", Kind::Rolling(rolling::count), Dtype::Float64),
    op("Rank", Kind::Rolling(rolling::rank), Dtype::Float64),
    op("Quantile", Kind::RollingQuantile(rolling::quantile), Dtype::Float64),
    op("Slope", Kind::Rolling(rolling::slope), Dtype::Float64),
    op("Rsquare", Kind::Rolling(rolling::rsquare), Dtype::Float64),
    op("Resi", Kind::Rolling(rolling::resi), Dtype::Float64),
    op("WMA", Kind::Rolling(rolling::wma), Dtype::Float64),
    op("EMA", Kind::Smoothing(rolling::ema), Dtype::Float64),
    op("Corr", Kind::Pair(rolling::corr), Dtype::Float64),
    op("Cov", Kind::Pair(rolling::cov), Dtype::Float64),
    op("Abs", Kind::Unary(f64::abs), Dtype::Promote),
    op("Sign", Kind::Unary(sign), Dtype::Float32),
    OpDef { numpy_f32: Some(numpy_log_f32), ..op("Log", Kind::Unary(f64::ln), Dtype::Promote) },
    op("Neg", Kind::Unary(|a| -a), Dtype::Promote),
    op("Not", Kind::Unary(|a| flag(!truthy(a))), Dtype::Bool),
    op("Add", Kind::Binary(|a, b| a + b), Dtype::Promote),
    op("Sub", Kind::Binary(|a, b| a - b), Dtype::Promote),
    op("Mul", Kind::Binary(|a, b| a * b), Dtype::Promote),
    op("Div", Kind::Binary(|a, b| a / b), Dtype::Promote),
    op("Power", Kind::Binary(f64::powf), Dtype::Promote),
    op("Greater", Kind::Binary(greater), Dtype::Promote),
    op("Less", Kind::Binary(less), Dtype::Promote),
    op("Gt", Kind::Binary(|a, b| flag(a > b)), Dtype::Bool),
    op("Ge", Kind::Binary(|a, b| flag(a >= b)), Dtype::Bool),
    op("Lt", Kind::Binary(|a, b| flag(a < b)), Dtype::Bool),
    op("Le", Kind::Binary(|a, b| flag(a <= b)), Dtype::Bool),
    op("Eq", Kind::Binary(|a, b| flag(a == b)), Dtype::Bool),
    op("Ne", Kind::Binary(|a, b| flag(a != b)), Dtype::Bool),
    op("And", Kind::Binary(|a, b| flag(truthy(a) && truthy(b))), Dtype::Bool),
    op("Or", Kind::Binary(|a, b| flag(truthy(a) || truthy(b))), Dtype::Bool),
    op("If", Kind::Ternary(|c, a, b| if truthy(c) { a } else { b }), Dtype::Promote),
];

/// The operator registered under `name` (case-sensitive, as in Qlib).
pub fn lookup(name: &str) -> Option<&'static OpDef> {
    OPERATORS.iter().find(|op| op.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, op) in OPERATORS.iter().enumerate() {
            assert!(OPERATORS[..i].iter().all(|o| o.name != op.name), "{} twice", op.name);
            assert!(std::ptr::eq(lookup(op.name).unwrap(), op));
        }
        assert!(lookup("mean").is_none());
    }

    #[test]
    fn numpy_log_is_within_a_few_ulp() {
        let r = std::f32::consts::FRAC_1_SQRT_2;
        for x in [1e-40f32, 1e-3, 0.5, r, f32::from_bits(r.to_bits() + 1), 1.5, 2.0, 17.25, 3.3e7, 1e30] {
            let got = numpy_log_f32(x);
            let want = f64::from(x).ln();
            let ulp = f64::from(f32::from_bits(got.to_bits() + 1) - got).abs();
            assert!((f64::from(got) - want).abs() <= 4.0 * ulp, "log({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn elementwise_nan_rules_follow_numpy() {
        let nan = f64::NAN;
        let bin = |name: &str, a: f64, b: f64| match lookup(name).unwrap().kind {
            Kind::Binary(f) => f(a, b),
            _ => unreachable!(),
        };
        assert_eq!(bin("Gt", nan, 1.0), 0.0);
        assert_eq!(bin("Ne", nan, 1.0), 1.0);
        assert!(bin("Greater", nan, 1.0).is_nan());
        assert!(bin("Less", 1.0, nan).is_nan());
        assert_eq!(bin("Greater", -1.0, 0.0), 0.0);
        assert!(sign(nan).is_nan());
        assert!(numpy_log_f32(-1.0).is_nan() && numpy_log_f32(nan as f32).is_nan());
        assert_eq!(numpy_log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(numpy_log_f32(1.0), 0.0);
        assert_eq!(sign(-3.0), -1.0);
    }
}
