//! Moving averages: SMA, EMA, WMA, DEMA, TEMA, TRIMA, KAMA.

use super::{pad, per_to_k};

/// Simple moving average over `n` values.
pub fn sma(x: &[f64], n: usize) -> Vec<f64> {
    pad(x.len(), sma_c(x, n))
}

/// Exponential moving average (k = 2/(n+1)), seeded with the SMA of the first `n` values.
pub fn ema(x: &[f64], n: usize) -> Vec<f64> {
    pad(x.len(), ema_c(x, n, per_to_k(n)))
}

/// Linearly weighted moving average (weights 1..n, newest heaviest).
pub fn wma(x: &[f64], n: usize) -> Vec<f64> {
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
    let mut out = Vec::with_capacity(len + 1 - n);
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
        out.push(sum / divider);
        sum -= sub;
    }
    pad(len, out)
}

/// Double EMA: 2·EMA − EMA(EMA).
pub fn dema(x: &[f64], n: usize) -> Vec<f64> {
    let k = per_to_k(n);
    let e1 = ema_c(x, n, k);
    let e2 = ema_c(&e1, n, k);
    let out = e2.iter().zip(&e1[e1.len() - e2.len()..]).map(|(b, a)| 2.0 * a - b);
    pad(x.len(), out.collect())
}

/// Triple EMA: 3·EMA − 3·EMA(EMA) + EMA(EMA(EMA)).
pub fn tema(x: &[f64], n: usize) -> Vec<f64> {
    let k = per_to_k(n);
    let e1 = ema_c(x, n, k);
    let e2 = ema_c(&e1, n, k);
    let e3 = ema_c(&e2, n, k);
    let (o1, o2) = (e1.len() - e3.len(), e2.len() - e3.len());
    let out = (0..e3.len()).map(|j| e3[j] + (3.0 * e1[j + o1] - 3.0 * e2[j + o2]));
    pad(x.len(), out.collect())
}

/// Triangular moving average (weights rise 1.. to the middle and fall back), O(n) running form.
pub fn trima(x: &[f64], n: usize) -> Vec<f64> {
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
    let mut out = Vec::with_capacity(len + 1 - n);
    out.push(num * factor);
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
        out.push(num * factor);
    }
    pad(len, out)
}

/// Kaufman adaptive moving average (fast 2, slow 30 smoothing bounds, efficiency over `n` bars).
pub fn kama(x: &[f64], n: usize) -> Vec<f64> {
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
    let mut out = Vec::with_capacity(len - n);
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
        out.push(prev);
    }
    pad(len, out)
}

/// TA-Lib's compact SMA (first value at index n-1), subtracting the leaving value as TA-Lib does.
pub(super) fn sma_c(x: &[f64], n: usize) -> Vec<f64> {
    if n == 0 || x.len() < n {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(x.len() + 1 - n);
    let mut total: f64 = x[..n - 1].iter().sum();
    for t in n - 1..x.len() {
        total += x[t];
        out.push(total / n as f64);
        total -= x[t + 1 - n];
    }
    out
}

/// TA-Lib's compact EMA with factor `k`, seeded with the SMA of the first `n` values; each step is
/// one fused multiply-add, as in TA-Lib. Period 1 is a copy.
pub(super) fn ema_c(x: &[f64], n: usize, k: f64) -> Vec<f64> {
    if n == 0 || x.len() < n {
        return Vec::new();
    }
    if n == 1 {
        return x.to_vec();
    }
    let mut prev = x[..n].iter().sum::<f64>() / n as f64;
    let mut out = Vec::with_capacity(x.len() + 1 - n);
    out.push(prev);
    for &v in &x[n..] {
        prev = (v - prev).mul_add(k, prev);
        out.push(prev);
    }
    out
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
