//! Moving averages: SMA, EMA, WMA, DEMA, TEMA, TRIMA, KAMA.

use super::{column, per_to_k, put};

accelerated! {
/// Simple moving average over `n` values.
pub fn sma(x: &[f64], n: usize) -> Vec<f64> {
    sma_k(x, n, x.len())
}

/// Exponential moving average (k = 2/(n+1)), seeded with the SMA of the first `n` values.
pub fn ema(x: &[f64], n: usize) -> Vec<f64> {
    ema_core(x, n)
}

/// Linearly weighted moving average (weights 1..n, newest heaviest).
pub fn wma(x: &[f64], n: usize) -> Vec<f64> {
    wma_core(x, n)
}

/// Double EMA: 2·EMA − EMA(EMA).
pub fn dema(x: &[f64], n: usize) -> Vec<f64> {
    dema_tema_core(x, n).0
}

/// Triple EMA: 3·EMA − 3·EMA(EMA) + EMA(EMA(EMA)).
pub fn tema(x: &[f64], n: usize) -> Vec<f64> {
    dema_tema_core(x, n).1
}

/// Triangular moving average (weights rise 1.. to the middle and fall back), O(n) running form.
pub fn trima(x: &[f64], n: usize) -> Vec<f64> {
    trima_core(x, n)
}

/// Kaufman adaptive moving average (fast 2, slow 30 smoothing bounds, efficiency over `n` bars).
pub fn kama(x: &[f64], n: usize) -> Vec<f64> {
    kama_core(x, n)
}
}

#[inline(always)]
pub(super) fn ema_core(x: &[f64], n: usize) -> Vec<f64> {
    ema_k(x, n, per_to_k(n), x.len())
}

#[inline(always)]
pub(super) fn wma_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n == 0 || len < n {
        return vec![f64::NAN; len];
    }
    if n == 1 {
        return x.to_vec();
    }
    let nf = n as f64;
    let divider = nf * (n + 1) as f64 / 2.0;
    // Weighted and plain sums of the window, oldest first with weights counting up from 1.
    let window_sums = |end: usize| {
        let mut sub = 0.0;
        let mut sum = 0.0;
        for (w, &v) in x[end + 1 - n..=end].iter().enumerate() {
            sub += v;
            sum += v * (w + 1) as f64;
        }
        (sub, sum)
    };
    let (mut sub, mut sum) = (0.0, 0.0);
    for (i, &v) in x[..n - 1].iter().enumerate() {
        sub += v;
        sum += v * (i + 1) as f64;
    }
    // Running form: adding the newest value at weight n and then subtracting the plain sum lowers
    // every older weight by one. TA-Lib rebuilds both sums every 8n bars so rounding cannot pile up.
    let reseed_every = 8 * n;
    let mut bars_left = reseed_every;
    let mut out = column(len, len + 1 - n);
    let mut trailing = 0.0;
    for t in n - 1..len {
        sub += x[t];
        sub -= trailing;
        sum += x[t] * nf;
        bars_left -= 1;
        if bars_left == 0 {
            bars_left = reseed_every;
            (sub, sum) = window_sums(t);
        }
        trailing = x[t + 1 - n];
        put(&mut out, sum / divider);
        sum -= sub;
    }
    out
}

/// DEMA and TEMA over one EMA chain: EMA, EMA(EMA) and EMA(EMA(EMA)) are computed once, each in
/// place over the previous one (an EMA's value at bar t needs its input at bar t only).
#[inline(always)]
pub(super) fn dema_tema_core(x: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let len = x.len();
    let k = per_to_k(n);
    let mut e1 = x.to_vec();
    let lead1 = ema_in_place(&mut e1, 0, n, k);
    let mut e2 = e1.clone();
    let lead2 = ema_in_place(&mut e2, lead1, n, k);
    let mut e3 = e2.clone();
    let lead3 = ema_in_place(&mut e3, lead2, n, k);
    for t in lead3..len {
        e3[t] += 3.0 * e1[t] - 3.0 * e2[t];
    }
    for t in lead2..len {
        e2[t] = 2.0 * e1[t] - e2[t];
    }
    (e2, e3)
}

#[inline(always)]
pub(super) fn trima_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n == 0 || len < n {
        return vec![f64::NAN; len];
    }
    let half = n / 2;
    let odd = n % 2 == 1;
    // Weights 1..=half+1..1 (odd) or 1..=half,half..1 (even); the left half is [t, middle].
    let (factor, left_len) =
        if odd { (1.0 / ((half + 1) * (half + 1)) as f64, half + 1) } else { (1.0 / (half * (half + 1)) as f64, half) };
    let mut trailing = 0;
    let mut middle = left_len - 1;
    let mut today = n - 1;
    let (mut num, mut num_sub, mut num_add) = (0.0, 0.0, 0.0);
    for i in (trailing..=middle).rev() {
        num_sub += x[i];
        num += num_sub;
    }
    middle += 1;
    for &v in &x[middle..=today] {
        num_add += v;
        num += num_add;
    }
    let mut out = column(len, len + 1 - n);
    put(&mut out, num * factor);
    let mut leaving = x[trailing];
    trailing += 1;
    today += 1;
    // Slide: every left-half weight drops by one, every right-half weight rises by one.
    while today < len {
        num -= num_sub;
        num_sub -= leaving;
        let mid = x[middle];
        middle += 1;
        num_sub += mid;
        if odd {
            num += num_add;
            num_add -= mid;
        } else {
            num_add -= mid;
            num += num_add;
        }
        num_add += x[today];
        num += x[today];
        today += 1;
        leaving = x[trailing];
        trailing += 1;
        put(&mut out, num * factor);
    }
    out
}

#[inline(always)]
pub(super) fn kama_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n == 1 {
        return x.to_vec();
    }
    if n == 0 || len <= n {
        return vec![f64::NAN; len];
    }
    let const_max = 2.0 / (30.0 + 1.0);
    let const_diff = 2.0 / (2.0 + 1.0) - const_max;
    // Path length of the window (sum of |one-bar change|) and the run of unchanged bars: once a
    // whole window is flat the running sum is known to be exactly 0 and its residue is dropped.
    let mut path = 0.0;
    let mut flat_run = 0;
    for i in 0..n {
        let d = x[i] - x[i + 1];
        path += d.abs();
        flat_run = if d == 0.0 { flat_run + 1 } else { 0 };
    }
    let mut prev = x[n - 1];
    let mut out = column(len, len - n);
    for today in n..len {
        if today > n {
            let d = x[today] - x[today - 1];
            flat_run = if d == 0.0 { flat_run + 1 } else { 0 };
            if flat_run >= n {
                flat_run = n;
                path = 0.0;
            } else {
                path -= (x[today - n - 1] - x[today - n]).abs();
                path += d.abs();
            }
        }
        let net = x[today] - x[today - n];
        // TA-Lib compares the signed change: a net rise as large as the path means efficiency 1.
        let er = if path <= 0.0 || net >= path { 1.0 } else { (net / path).abs().min(1.0) };
        let sc = er.mul_add(const_diff, const_max);
        prev = (x[today] - prev).mul_add(sc * sc, prev);
        put(&mut out, prev);
    }
    out
}

/// Number of values of an SMA or EMA over `m` inputs (TA-Lib's compact output length).
#[inline(always)]
pub(super) fn ma_count(m: usize, n: usize) -> usize {
    if n == 0 || m < n { 0 } else { m + 1 - n }
}

/// TA-Lib's SMA (first value at input index n−1, subtracting the leaving value as TA-Lib does),
/// as a column of `total` ≥ `x.len()` slots: the values fill its end, NaN before them.
#[inline(always)]
pub(super) fn sma_k(x: &[f64], n: usize, total: usize) -> Vec<f64> {
    let count = ma_count(x.len(), n);
    let mut out = column(total, count);
    if count == 0 {
        return out;
    }
    let mut sum: f64 = x[..n - 1].iter().sum();
    for t in n - 1..x.len() {
        sum += x[t];
        put(&mut out, sum / n as f64);
        sum -= x[t + 1 - n];
    }
    out
}

/// TA-Lib's EMA with factor `k`, seeded with the SMA of the first `n` values; each step is one
/// fused multiply-add, as in TA-Lib. Period 1 is a copy. A column of `total` ≥ `x.len()` slots.
#[inline(always)]
pub(super) fn ema_k(x: &[f64], n: usize, k: f64, total: usize) -> Vec<f64> {
    let count = ma_count(x.len(), n);
    let mut out = column(total, count);
    if count == 0 {
        return out;
    }
    if n == 1 {
        out.extend_from_slice(x);
        return out;
    }
    let mut prev = x[..n].iter().sum::<f64>() / n as f64;
    put(&mut out, prev);
    for &v in &x[n..] {
        prev = (v - prev).mul_add(k, prev);
        put(&mut out, prev);
    }
    out
}

/// [`ema_k`] over `buf[lead..]`, written over it in place (bar-aligned) with NaN before its first
/// value; returns the new lead. An empty result leaves all of `buf` NaN (lead = `buf.len()`).
#[inline(always)]
pub(super) fn ema_in_place(buf: &mut [f64], lead: usize, n: usize, k: f64) -> usize {
    let len = buf.len();
    let count = ma_count(len - lead, n);
    let new_lead = len - count;
    if count > 0 && n > 1 {
        let mut prev = buf[lead..lead + n].iter().sum::<f64>() / n as f64;
        buf[new_lead] = prev;
        for v in &mut buf[new_lead + 1..] {
            prev = (*v - prev).mul_add(k, prev);
            *v = prev;
        }
    }
    buf[lead..new_lead].fill(f64::NAN);
    new_lead
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_trima(x: &[f64], n: usize, t: usize) -> f64 {
        let w: Vec<f64> = (0..n).map(|i| (i + 1).min(n - i) as f64).collect();
        let s: f64 = w.iter().sum();
        (0..n).map(|i| x[t + 1 - n + i] * w[i]).sum::<f64>() / s
    }

    #[test]
    fn trima_matches_weighted_definition_for_odd_and_even() {
        let x: Vec<f64> = (0..60).map(|i| 100.0 + ((i * 37) % 11) as f64 - 0.3 * i as f64).collect();
        for n in [1, 2, 3, 4, 7, 10, 11] {
            let out = trima(&x, n);
            for (t, got) in out.iter().enumerate().skip(n - 1) {
                assert!((got - naive_trima(&x, n, t)).abs() < 1e-10, "n={n} t={t}");
            }
            assert!(out[..n - 1].iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn wma_matches_weighted_definition() {
        let x: Vec<f64> = (0..30).map(|i| (i as f64 * 0.7).sin() + 5.0).collect();
        let out = wma(&x, 4);
        let want = (x[6] + 2.0 * x[7] + 3.0 * x[8] + 4.0 * x[9]) / 10.0;
        assert!((out[9] - want).abs() < 1e-12);
    }

    #[test]
    fn ema_seeds_with_sma() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let out = ema(&x, 3);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 2.0);
        assert_eq!(out[3], 3.0);
    }
}
