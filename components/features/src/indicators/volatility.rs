//! Volatility: TRANGE, ATR, NATR, BBANDS, STDDEV, VAR.

use super::ma::sma_c;
use super::{common_len, pad};

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

/// True range: max(high − low, |high − previous close|, |low − previous close|), from bar 1.
pub fn trange(h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    pad(len, trange_c(h, l, c, len))
}

/// Average true range: Wilder smoothing of TRANGE (one fused step per bar, as TA-Lib), seeded with
/// its SMA over `n` bars.
pub fn atr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    pad(len, atr_c(h, l, c, n, len).into_iter().map(|(a, _)| a).collect())
}

/// Normalised ATR: ATR/close·100.
pub fn natr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    let out =
        atr_c(h, l, c, n, len).into_iter().map(|(a, t)| if c[t] != 0.0 { (a / c[t]) * 100.0 } else { 0.0 }).collect();
    pad(len, out)
}

/// Bollinger bands over `n` values with separate up/down deviation multipliers.
pub fn bbands(x: &[f64], n: usize, nbdev_up: f64, nbdev_dn: f64) -> Bands {
    let len = x.len();
    let middle = sma_c(x, n);
    let sd: Vec<f64> = var_c(x, n).into_iter().map(|v| if v != 0.0 { v.sqrt() } else { 0.0 }).collect();
    let (upper, lower) = if nbdev_up == nbdev_dn {
        middle.iter().zip(&sd).map(|(m, s)| (m + s * nbdev_up, m - s * nbdev_up)).unzip()
    } else {
        // TA-Lib fuses the upper band's multiply-add (a sum), not the lower band's difference.
        middle.iter().zip(&sd).map(|(&m, &s)| (s.mul_add(nbdev_up, m), m - s * nbdev_dn)).unzip()
    };
    Bands { upper: pad(len, upper), middle: pad(len, middle), lower: pad(len, lower) }
}

/// Population standard deviation over `n` values, times `nbdev`.
pub fn stddev(x: &[f64], n: usize, nbdev: f64) -> Vec<f64> {
    let out = var_c(x, n).into_iter().map(|v| v.sqrt() * nbdev).collect();
    pad(x.len(), out)
}

/// Population variance over `n` values (TA-Lib's shifted running sums, re-anchored when needed).
pub fn var(x: &[f64], n: usize) -> Vec<f64> {
    pad(x.len(), var_c(x, n))
}

/// True range of one bar given the previous close, in TA-Lib's comparison order.
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

/// Compact TRANGE over the first `len` bars (first value is bar 1).
fn trange_c(h: &[f64], l: &[f64], c: &[f64], len: usize) -> Vec<f64> {
    (1..len).map(|t| true_range(h[t], l[t], c[t - 1])).collect()
}

/// Compact ATR paired with the bar index each value belongs to.
fn atr_c(h: &[f64], l: &[f64], c: &[f64], n: usize, len: usize) -> Vec<(f64, usize)> {
    let tr = trange_c(h, l, c, len);
    if n <= 1 {
        return if n == 1 { tr.into_iter().zip(1..).collect() } else { Vec::new() };
    }
    let Some(&seed) = sma_c(&tr[..n.min(tr.len())], n).first() else {
        return Vec::new();
    };
    // Wilder's step as two weights summing exactly to 1 (beta first, alpha derived from it).
    let beta = (n - 1) as f64 / n as f64;
    let alpha = 1.0 - beta;
    let mut prev = seed;
    let mut out = Vec::with_capacity(tr.len() + 1 - n);
    out.push((prev, n));
    for (j, &v) in tr.iter().enumerate().skip(n) {
        prev = beta.mul_add(prev, alpha * v);
        out.push((prev, j + 1));
    }
    out
}

/// Compact population variance (first value at index n−1), TA-Lib 0.8's cancellation-free form:
/// the running sums are of deviations from a shift near the window, and the shift is re-anchored
/// on the window mean (with fresh two-pass sums) when the variance has shrunk below 1e-6 of the
/// mean squared deviation, when the departing value dwarfs the remaining sum, or every 32n bars.
fn var_c(x: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || x.len() < n {
        return Vec::new();
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
    let mut out = Vec::with_capacity(x.len() + 1 - n);
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
        out.push(variance);
    }
    out
}
