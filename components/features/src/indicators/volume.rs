//! Volume: OBV, Chaikin A/D line and A/D oscillator.

use super::{column, common_len, per_to_k, put};

/// On-balance volume, starting from the first bar's volume.
pub fn obv(c: &[f64], v: &[f64]) -> Vec<f64> {
    obv_core(c, v)
}

/// Chaikin accumulation/distribution line.
pub fn ad(h: &[f64], l: &[f64], c: &[f64], v: &[f64]) -> Vec<f64> {
    ad_adosc_core(h, l, c, v, 0, 0).0
}

accelerated! {
/// Chaikin A/D oscillator: EMA(fast) − EMA(slow) of the A/D line, both seeded with its first value.
pub fn adosc(h: &[f64], l: &[f64], c: &[f64], v: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    ad_adosc_core(h, l, c, v, fast, slow).1
}
}

#[inline(always)]
pub(super) fn obv_core(c: &[f64], v: &[f64]) -> Vec<f64> {
    let len = common_len(&[c, v]);
    let Some((&c0, &v0)) = c.first().zip(v.first()) else {
        return Vec::new();
    };
    let (c, v) = (&c[..len], &v[..len]);
    let (mut acc, mut prev) = (v0, c0);
    // Selects rather than branches: up and down days alternate at random.
    (0..len)
        .map(|t| {
            let (up, down) = (acc + v[t], acc - v[t]);
            acc = if c[t] > prev {
                up
            } else if c[t] < prev {
                down
            } else {
                acc
            };
            prev = c[t];
            acc
        })
        .collect()
}

/// (A/D line, A/D oscillator) from one pass over the A/D line; periods of 0 leave the oscillator
/// all NaN.
#[inline(always)]
pub(super) fn ad_adosc_core(
    h: &[f64],
    l: &[f64],
    c: &[f64],
    v: &[f64],
    fast: usize,
    slow: usize,
) -> (Vec<f64>, Vec<f64>) {
    let len = common_len(&[h, l, c, v]);
    let (h, l, c, v) = (&h[..len], &l[..len], &c[..len], &v[..len]);
    let mut acc = 0.0;
    let ad: Vec<f64> = (0..len)
        .map(|t| {
            acc += ad_step(h[t], l[t], c[t], v[t]);
            acc
        })
        .collect();
    let lookback = fast.max(slow).saturating_sub(1);
    if fast == 0 || slow == 0 || len <= lookback {
        return (ad, vec![f64::NAN; len]);
    }
    let (fk, sk) = (per_to_k(fast), per_to_k(slow));
    let (fk_rest, sk_rest) = (1.0 - fk, 1.0 - sk);
    let (mut fast_ema, mut slow_ema) = (ad[0], ad[0]);
    let mut out = column(len, len - lookback);
    if lookback == 0 {
        put(&mut out, fast_ema - slow_ema);
    }
    for (t, &acc) in ad.iter().enumerate().skip(1) {
        // TA-Lib fuses the accumulator's product: fma(1 − k, ema, k·ad).
        fast_ema = fk_rest.mul_add(fast_ema, fk * acc);
        slow_ema = sk_rest.mul_add(slow_ema, sk * acc);
        if t >= lookback {
            put(&mut out, fast_ema - slow_ema);
        }
    }
    (ad, out)
}

/// One bar's money-flow volume (0 on a zero range).
#[inline(always)]
fn ad_step(h: f64, l: f64, c: f64, v: f64) -> f64 {
    let range = h - l;
    if range > 0.0 { (((c - l) - (h - c)) / range) * v } else { 0.0 }
}
