//! Volatility: TRANGE, ATR, NATR, BBANDS, STDDEV, VAR.

use super::ma::sma_k;
use super::{column, common_len, put};

/// Bollinger bands: SMA ± k·population standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    /// Middle + nbdev_up·σ.
    pub upper: Vec<f64>,
    /// The SMA.
    pub middle: Vec<f64>,
    /// Middle − nbdev_dn·σ.
    pub lower: Vec<f64>,
}

accelerated! {
/// True range: max(high − low, |high − previous close|, |low − previous close|), from bar 1.
pub fn trange(h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    atr_natr_trange_core(h, l, c, 0).2
}

/// Average true range: Wilder smoothing of TRANGE (one fused step per bar, as TA-Lib), seeded with
/// its SMA over `n` bars.
pub fn atr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    atr_natr_trange_core(h, l, c, n).0
}

/// Normalised ATR: ATR/close·100.
pub fn natr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    atr_natr_trange_core(h, l, c, n).1
}

/// Bollinger bands over `n` values with separate up/down deviation multipliers.
pub fn bbands(x: &[f64], n: usize, nbdev_up: f64, nbdev_dn: f64) -> Bands {
    bbands_core(x, n, nbdev_up, nbdev_dn)
}

/// Population standard deviation over `n` values, times `nbdev`.
pub fn stddev(x: &[f64], n: usize, nbdev: f64) -> Vec<f64> {
    var_stddev_core(x, n, nbdev).1
}

/// Population variance over `n` values (TA-Lib's shifted running sums, re-anchored when needed).
pub fn var(x: &[f64], n: usize) -> Vec<f64> {
    var_k(x, n)
}
}

#[inline(always)]
pub(super) fn bbands_core(x: &[f64], n: usize, nbdev_up: f64, nbdev_dn: f64) -> Bands {
    let len = x.len();
    let middle = sma_k(x, n, len);
    let var = var_k(x, n);
    let lead = len - var_count(len, n);
    let (mut upper, mut lower) = (column(len, len - lead), column(len, len - lead));
    for t in lead..len {
        let (m, v) = (middle[t], var[t]);
        let s = if v != 0.0 { v.sqrt() } else { 0.0 };
        if nbdev_up == nbdev_dn {
            put(&mut upper, m + s * nbdev_up);
            put(&mut lower, m - s * nbdev_up);
        } else {
            // TA-Lib fuses the upper band's multiply-add (a sum), not the lower band's difference.
            put(&mut upper, s.mul_add(nbdev_up, m));
            put(&mut lower, m - s * nbdev_dn);
        }
    }
    Bands { upper, middle, lower }
}

/// (VAR, STDDEV·`nbdev`) over `n` values.
#[inline(always)]
pub(super) fn var_stddev_core(x: &[f64], n: usize, nbdev: f64) -> (Vec<f64>, Vec<f64>) {
    let var = var_k(x, n);
    let lead = x.len() - var_count(x.len(), n);
    let mut sd = column(x.len(), x.len() - lead);
    sd.extend(var[lead..].iter().map(|v| v.sqrt() * nbdev));
    (var, sd)
}

/// True range of one bar given the previous close, in TA-Lib's comparison order.
#[inline(always)]
pub(super) fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut out = high - low;
    let up = (high - prev_close).abs();
    if up > out {
        out = up;
    }
    let down = (low - prev_close).abs();
    if down > out {
        out = down;
    }
    out
}

/// (ATR, NATR, TRANGE) from one TRANGE pass; `n` = 0 leaves ATR and NATR all NaN.
#[inline(always)]
pub(super) fn atr_natr_trange_core(h: &[f64], l: &[f64], c: &[f64], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = common_len(&[h, l, c]);
    let (h, l, c) = (&h[..len], &l[..len], &c[..len]);
    let mut trange = column(len, len.saturating_sub(1));
    trange.extend((1..len).map(|t| true_range(h[t], l[t], c[t - 1])));
    let tr = &trange[len.min(1)..];
    let natr_of = |a: f64, t: usize| if c[t] != 0.0 { (a / c[t]) * 100.0 } else { 0.0 };
    if n == 1 {
        // Period 1: ATR is TRANGE itself.
        let mut natr = column(len, tr.len());
        natr.extend(tr.iter().enumerate().map(|(j, &a)| natr_of(a, j + 1)));
        return (trange.clone(), natr, trange);
    }
    if n == 0 || tr.len() < n {
        return (vec![f64::NAN; len], vec![f64::NAN; len], trange);
    }
    // The seed is TA-Lib's SMA of the first n ranges, summed as its SMA sums.
    let seed = (tr[..n - 1].iter().sum::<f64>() + tr[n - 1]) / n as f64;
    // Wilder's step as two weights summing exactly to 1 (beta first, alpha derived from it).
    let beta = (n - 1) as f64 / n as f64;
    let alpha = 1.0 - beta;
    let mut prev = seed;
    let (mut atr, mut natr) = (column(len, len - n), column(len, len - n));
    put(&mut atr, prev);
    put(&mut natr, natr_of(prev, n));
    for (j, &v) in tr.iter().enumerate().skip(n) {
        prev = beta.mul_add(prev, alpha * v);
        put(&mut atr, prev);
        put(&mut natr, natr_of(prev, j + 1));
    }
    (atr, natr, trange)
}

/// Number of values of VAR over `m` inputs.
#[inline(always)]
fn var_count(m: usize, n: usize) -> usize {
    if n == 0 || m < n { 0 } else { m + 1 - n }
}

/// Population variance (first value at index n−1, NaN before), TA-Lib 0.8's cancellation-free form:
/// the running sums are of deviations from a shift near the window, and the shift is re-anchored
/// on the window mean (with fresh two-pass sums) when the variance has shrunk below 1e-6 of the
/// mean squared deviation, when the departing value dwarfs the remaining sum, or every 32n bars.
#[inline(always)]
fn var_k(x: &[f64], n: usize) -> Vec<f64> {
    let count = var_count(x.len(), n);
    let mut out = column(x.len(), count);
    if count == 0 {
        return out;
    }
    let inv = 1.0 / n as f64;
    let mut shift = x[0];
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in &x[..n - 1] {
        let d = v - shift;
        s1 += d;
        s2 += d * d;
    }
    let reseed_every = 32 * n;
    let mut bars_left = reseed_every;
    for t in n - 1..x.len() {
        let d = x[t] - shift;
        s1 += d;
        s2 += d * d;
        let mean = s1 * inv;
        let mut variance = s2 * inv - mean * mean;
        let start = t + 1 - n;
        let d = x[start] - shift;
        s1 -= d;
        let leaving_sq = d * d;
        s2 -= leaving_sq;
        bars_left -= 1;
        if variance < 1e-6 * (s2 * inv) || leaving_sq > 1e6 * s2 || bars_left == 0 {
            bars_left = reseed_every;
            let mut total = 0.0;
            for &v in &x[start..=t] {
                total += v;
            }
            shift = total * inv;
            (s1, s2) = (0.0, 0.0);
            for &v in &x[start..=t] {
                let d = v - shift;
                s1 += d;
                s2 += d * d;
            }
            let mean = s1 * inv;
            variance = s2 * inv - mean * mean;
            // No spread the shift could resolve: the honest answer is 0 (also clamps the sign).
            if variance < 1e-12 * (s2 * inv) {
                variance = 0.0;
            }
            let d = x[start] - shift;
            s1 -= d;
            s2 -= d * d;
        }
        put(&mut out, variance);
    }
    out
}
