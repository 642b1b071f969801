//! Volume: OBV, Chaikin A/D line and A/D oscillator.

use super::{common_len, pad, per_to_k};

/// On-balance volume, starting from the first bar's volume.
pub fn obv(c: &[f64], v: &[f64]) -> Vec<f64> {
    let len = common_len(&[c, v]);
    let Some((&c0, &v0)) = c.first().zip(v.first()) else {
        return Vec::new();
    };
    let (mut acc, mut prev) = (v0, c0);
    (0..len)
        .map(|t| {
            if c[t] > prev {
                acc += v[t];
            } else if c[t] < prev {
                acc -= v[t];
            }
            prev = c[t];
            acc
        })
        .collect()
}

/// Chaikin accumulation/distribution line.
pub fn ad(h: &[f64], l: &[f64], c: &[f64], v: &[f64]) -> Vec<f64> {
    let len = common_len(&[h, l, c, v]);
    let mut acc = 0.0;
    (0..len)
        .map(|t| {
            acc += ad_step(h[t], l[t], c[t], v[t]);
            acc
        })
        .collect()
}

/// Chaikin A/D oscillator: EMA(fast) − EMA(slow) of the A/D line, both seeded with its first value.
pub fn adosc(h: &[f64], l: &[f64], c: &[f64], v: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c, v]);
    let lookback = fast.max(slow).saturating_sub(1);
    if fast == 0 || slow == 0 || len <= lookback {
        return vec![f64::NAN; len];
    }
    let (fk, sk) = (per_to_k(fast), per_to_k(slow));
    let (fk_rest, sk_rest) = (1.0 - fk, 1.0 - sk);
    let (mut fast_ema, mut slow_ema) = (0.0, 0.0);
    let mut acc = 0.0;
    let mut out = Vec::with_capacity(len - lookback);
    for t in 0..len {
        acc += ad_step(h[t], l[t], c[t], v[t]);
        if t == 0 {
            (fast_ema, slow_ema) = (acc, acc);
        } else {
            // TA-Lib fuses the accumulator's product: fma(1 − k, ema, k·ad).
            fast_ema = fk_rest.mul_add(fast_ema, fk * acc);
            slow_ema = sk_rest.mul_add(slow_ema, sk * acc);
        }
        if t >= lookback {
            out.push(fast_ema - slow_ema);
        }
    }
    pad(len, out)
}

/// One bar's money-flow volume (0 on a zero range).
fn ad_step(h: f64, l: f64, c: f64, v: f64) -> f64 {
    let range = h - l;
    if range > 0.0 { (((c - l) - (h - c)) / range) * v } else { 0.0 }
}
