//! Momentum and oscillators: RSI, CMO, MOM, ROC, TRIX, MACD, APO/PPO, STOCH/STOCHF, WILLR, CCI, MFI,
//! ULTOSC, BOP, AROON/AROONOSC.

use super::ma::{ema_c, sma_c};
use super::volatility::true_range;
use super::{common_len, is_zero, is_zero_scaled, pad, per_to_k, rolling_extreme_idx};

/// MACD line, its signal EMA and their difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Macd {
    /// Fast EMA minus slow EMA.
    pub macd: Vec<f64>,
    /// EMA of the MACD line.
    pub signal: Vec<f64>,
    /// MACD minus signal.
    pub hist: Vec<f64>,
}

/// Slow stochastic: SMA-smoothed %K and its SMA.
#[derive(Debug, Clone, PartialEq)]
pub struct Stoch {
    /// Slow %K.
    pub slowk: Vec<f64>,
    /// Slow %D.
    pub slowd: Vec<f64>,
}

/// Fast stochastic: raw %K and its SMA.
#[derive(Debug, Clone, PartialEq)]
pub struct StochF {
    /// Fast %K.
    pub fastk: Vec<f64>,
    /// Fast %D.
    pub fastd: Vec<f64>,
}

/// Aroon lines: 100·(n − bars since the extreme)/n.
#[derive(Debug, Clone, PartialEq)]
pub struct Aroon {
    /// Bars since the lowest low, scaled.
    pub down: Vec<f64>,
    /// Bars since the highest high, scaled.
    pub up: Vec<f64>,
}

/// Relative strength index with Wilder smoothing (0 while neither a gain nor a loss has been seen).
pub fn rsi(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n < 2 || len <= n {
        return vec![f64::NAN; len];
    }
    let inv = 1.0 / n as f64;
    let keep = (n - 1) as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    let mut out = Vec::with_capacity(len - n);
    for t in 1..len {
        let d = x[t] - x[t - 1];
        if t > n {
            loss *= keep;
            gain *= keep;
        }
        // Branch-free split, as TA-Lib: the loss is (gain part − change).
        let up = if d > 0.0 { d } else { 0.0 };
        gain += up;
        loss += up - d;
        if t >= n {
            loss *= inv;
            gain *= inv;
            let total = gain + loss;
            out.push(if total > 0.0 { 100.0 * (gain / total) } else { 0.0 });
        }
    }
    pad(len, out)
}

/// Chande momentum oscillator (TA-Lib's Wilder-smoothed form of it).
pub fn cmo(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n == 1 {
        // TA-Lib's period-1 trap: the input itself, after the one-bar lookback.
        return pad(len, x.get(1..).unwrap_or_default().to_vec());
    }
    if n == 0 || len <= n {
        return vec![f64::NAN; len];
    }
    let nf = n as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    let mut out = Vec::with_capacity(len - n);
    for t in 1..len {
        let d = x[t] - x[t - 1];
        if t > n {
            loss *= nf - 1.0;
            gain *= nf - 1.0;
        }
        if d < 0.0 {
            loss -= d;
        } else {
            gain += d;
        }
        if t >= n {
            loss /= nf;
            gain /= nf;
            let total = gain + loss;
            out.push(if total > 0.0 { 100.0 * ((gain - loss) / total) } else { 0.0 });
        }
    }
    pad(len, out)
}

/// Momentum: `x[t] − x[t−n]`.
pub fn mom(x: &[f64], n: usize) -> Vec<f64> {
    lagged(x, n, |now, then| now - then)
}

/// Rate of change in percent: `(x[t]/x[t−n] − 1)·100`, 0 where `x[t−n]` is 0.
pub fn roc(x: &[f64], n: usize) -> Vec<f64> {
    lagged(x, n, roc_pct)
}

/// TRIX: one-bar ROC (percent) of the triple EMA.
pub fn trix(x: &[f64], n: usize) -> Vec<f64> {
    let k = per_to_k(n);
    let e3 = ema_c(&ema_c(&ema_c(x, n, k), n, k), n, k);
    let out = e3.windows(2).map(|w| roc_pct(w[1], w[0]));
    pad(x.len(), out.collect())
}

/// MACD with true EMAs; the fast EMA is seeded where the slow one starts, as TA-Lib does.
pub fn macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let len = x.len();
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    let nan = || vec![f64::NAN; len];
    if fast == 0 || signal == 0 || len < slow + signal - 1 {
        return Macd { macd: nan(), signal: nan(), hist: nan() };
    }
    let slow_e = ema_c(x, slow, per_to_k(slow));
    let fast_e = ema_c(&x[slow - fast..], fast, per_to_k(fast));
    let line: Vec<f64> = fast_e.iter().zip(&slow_e).map(|(f, s)| f - s).collect();
    let sig = ema_c(&line, signal, per_to_k(signal));
    let line = &line[signal - 1..];
    let hist = line.iter().zip(&sig).map(|(m, s)| m - s).collect();
    Macd { macd: pad(len, line.to_vec()), signal: pad(len, sig), hist: pad(len, hist) }
}

/// Absolute price oscillator with simple moving averages: SMA(fast) − SMA(slow).
pub fn apo(x: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    price_osc(x, fast, slow, |f, s| f - s)
}

/// Percentage price oscillator with simple moving averages: (SMA(fast) − SMA(slow))/SMA(slow)·100.
pub fn ppo(x: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    price_osc(x, fast, slow, |f, s| if is_zero(s) { 0.0 } else { ((f - s) / s) * 100.0 })
}

/// Slow stochastic: %K over `fastk_n` bars, smoothed by SMA(`slowk_n`), then SMA(`slowd_n`).
pub fn stoch(h: &[f64], l: &[f64], c: &[f64], fastk_n: usize, slowk_n: usize, slowd_n: usize) -> Stoch {
    let len = common_len(&[h, l, c]);
    let slowk = sma_c(&fast_k(h, l, c, fastk_n), slowk_n);
    let slowd = sma_c(&slowk, slowd_n);
    let slowk = slowk[slowk.len() - slowd.len()..].to_vec();
    Stoch { slowk: pad(len, slowk), slowd: pad(len, slowd) }
}

/// Fast stochastic: %K over `fastk_n` bars and its SMA(`fastd_n`).
pub fn stochf(h: &[f64], l: &[f64], c: &[f64], fastk_n: usize, fastd_n: usize) -> StochF {
    let len = common_len(&[h, l, c]);
    let fastk = fast_k(h, l, c, fastk_n);
    let fastd = sma_c(&fastk, fastd_n);
    let fastk = fastk[fastk.len() - fastd.len()..].to_vec();
    StochF { fastk: pad(len, fastk), fastd: pad(len, fastd) }
}

/// Williams %R over `n` bars (−100..0).
pub fn willr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    let (hi, lo) = (rolling_extreme_idx(&h[..len], n, true), rolling_extreme_idx(&l[..len], n, false));
    let out = hi.iter().zip(&lo).enumerate().map(|(j, (&hi, &lo))| {
        let (hh, ll) = (h[hi], l[lo]);
        let range = hh - ll;
        if is_zero_scaled(range, hh.abs() + ll.abs()) { 0.0 } else { ((hh - c[j + n - 1]) / range) * -100.0 }
    });
    pad(len, out.collect())
}

/// Commodity channel index over `n` bars of typical price.
pub fn cci(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n == 0 || len < n {
        return vec![f64::NAN; len];
    }
    let nf = n as f64;
    // The mean absolute deviation has no running form, so each window is O(n) anyway; TA-Lib's
    // ring-buffer summation order is kept because CCI divides small differences, and both the
    // deviation from the mean and the mean deviation are zero-tested relative to the mean.
    let mut ring = vec![0.0; n];
    let mut out = Vec::with_capacity(len + 1 - n);
    for t in 0..len {
        let last = (h[t] + l[t] + c[t]) / 3.0;
        ring[t % n] = last;
        if t + 1 < n {
            continue;
        }
        let avg = ring.iter().sum::<f64>() / nf;
        let dev: f64 = ring.iter().map(|v| (v - avg).abs()).sum();
        let diff = last - avg;
        let mean_dev = dev / nf;
        let flat = is_zero_scaled(diff, avg.abs()) || is_zero_scaled(mean_dev, avg.abs());
        let denom = mean_dev * 0.015;
        out.push(if flat || denom == 0.0 { 0.0 } else { diff / denom });
    }
    pad(len, out)
}

/// Money flow index over `n` bars.
pub fn mfi(h: &[f64], l: &[f64], c: &[f64], v: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c, v]);
    if n == 0 || len <= n {
        return vec![f64::NAN; len];
    }
    let tp = |t: usize| (h[t] + l[t] + c[t]) / 3.0;
    // Ring of (positive, negative) flows with running sums, as TA-Lib keeps them.
    let mut ring = vec![(0.0, 0.0); n];
    let (mut pos, mut neg) = (0.0, 0.0);
    let mut idle_run = 0;
    let mut prev = tp(0);
    let mut out = Vec::with_capacity(len - n);
    for (t, &volume) in v.iter().enumerate().take(len).skip(1) {
        let slot = (t - 1) % n;
        if t > n {
            pos -= ring[slot].0;
            neg -= ring[slot].1;
        }
        let typical = tp(t);
        let change = typical - prev;
        // A typical price that moved by rounding noise only counts as unchanged.
        let flat = is_zero_scaled(change, typical.abs() + prev.abs());
        prev = typical;
        let flow = if flat { 0.0 } else { typical * volume };
        ring[slot] = if change < 0.0 { (0.0, flow) } else { (flow, 0.0) };
        pos += ring[slot].0;
        neg += ring[slot].1;
        // A whole window without flow means both sums are exactly 0: drop their residue.
        idle_run = if flow == 0.0 { idle_run + 1 } else { 0 };
        if idle_run >= n {
            idle_run = n;
            (pos, neg) = (0.0, 0.0);
        }
        if t >= n {
            let total = pos + neg;
            let pos_clamped = if pos < 0.0 {
                0.0
            } else if pos > total {
                total
            } else {
                pos
            };
            out.push(if total <= 0.0 { 0.0 } else { 100.0 * (pos_clamped / total) });
        }
    }
    pad(len, out)
}

/// Ultimate oscillator over three periods (weights 4, 2, 1 from shortest to longest).
pub fn ultosc(h: &[f64], l: &[f64], c: &[f64], p1: usize, p2: usize, p3: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    let mut p = [p1, p2, p3];
    p.sort_unstable();
    let start = p[2];
    if p[0] == 0 || len <= start {
        return vec![f64::NAN; len];
    }
    // Buying pressure (close − true low) and true range of bar t.
    let terms = |t: usize| {
        let true_low = l[t].min(c[t - 1]);
        (c[t] - true_low, true_range(h[t], l[t], c[t - 1]))
    };
    let mut a = [0.0; 3];
    let mut b = [0.0; 3];
    for k in 0..3 {
        for t in start + 1 - p[k]..start {
            let (bp, tr) = terms(t);
            a[k] += bp;
            b[k] += tr;
        }
    }
    // Bars with neither pressure nor range: once a window holds only those its sums are exactly 0.
    let mut idle_run = 0;
    let mut out = Vec::with_capacity(len - start);
    for t in start..len {
        let (bp, tr) = terms(t);
        idle_run = if bp == 0.0 && tr == 0.0 { idle_run + 1 } else { 0 };
        let mut osc = 0.0;
        for (k, weight) in [4.0, 2.0, 1.0].into_iter().enumerate() {
            a[k] += bp;
            b[k] += tr;
            if idle_run >= p[k] {
                (a[k], b[k]) = (0.0, 0.0);
            }
            if b[k] > 0.0 {
                osc += weight * (a[k] / b[k]);
            }
        }
        for k in 0..3 {
            let (bp, tr) = terms(t + 1 - p[k]);
            a[k] -= bp;
            b[k] -= tr;
        }
        out.push(100.0 * (osc / 7.0));
    }
    pad(len, out)
}

/// Balance of power: (close − open)/(high − low), 0 on a zero range.
pub fn bop(o: &[f64], h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    let len = common_len(&[o, h, l, c]);
    (0..len)
        .map(|t| {
            let range = h[t] - l[t];
            if range <= 0.0 { 0.0 } else { (c[t] - o[t]) / range }
        })
        .collect()
}

/// Aroon down/up over `n` bars (the window holds n+1 bars; ties pick the latest extreme).
pub fn aroon(h: &[f64], l: &[f64], n: usize) -> Aroon {
    let len = common_len(&[h, l]);
    let factor = 100.0 / n as f64;
    let scale = |idx: &[usize]| {
        let out = idx.iter().enumerate().map(|(j, &i)| factor * (n - (j + n - i)) as f64).collect();
        pad(len, out)
    };
    let (hi, lo) = extreme_idx(h, l, n, len);
    Aroon { down: scale(&lo), up: scale(&hi) }
}

/// Aroon oscillator: Aroon up − Aroon down.
pub fn aroonosc(h: &[f64], l: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l]);
    let factor = 100.0 / n as f64;
    let (hi, lo) = extreme_idx(h, l, n, len);
    let out = hi.iter().zip(&lo).map(|(&hi, &lo)| factor * (hi as f64 - lo as f64)).collect();
    pad(len, out)
}

/// Aroon's window extremes: indices of the latest high max and low min over n+1 bars.
fn extreme_idx(h: &[f64], l: &[f64], n: usize, len: usize) -> (Vec<usize>, Vec<usize>) {
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    (rolling_extreme_idx(&h[..len], n + 1, true), rolling_extreme_idx(&l[..len], n + 1, false))
}

/// Compact raw %K (first value at index n−1): (close − lowest low)/(highest high − lowest low)·100.
fn fast_k(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    let (hi, lo) = (rolling_extreme_idx(&h[..len], n, true), rolling_extreme_idx(&l[..len], n, false));
    hi.iter()
        .zip(&lo)
        .enumerate()
        .map(|(j, (&hi, &lo))| {
            let (hh, ll) = (h[hi], l[lo]);
            let range = hh - ll;
            if is_zero_scaled(range, hh.abs() + ll.abs()) { 0.0 } else { ((c[j + n - 1] - ll) / range) * 100.0 }
        })
        .collect()
}

/// Applies `f(x[t], x[t−n])` from t = n on.
fn lagged(x: &[f64], n: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    if n == 0 {
        return vec![f64::NAN; x.len()];
    }
    pad(x.len(), x.iter().skip(n).zip(x).map(|(&now, &then)| f(now, then)).collect())
}

/// TA-Lib's ROC step, guarding a zero base.
fn roc_pct(now: f64, then: f64) -> f64 {
    if then != 0.0 { ((now / then) - 1.0) * 100.0 } else { 0.0 }
}

/// APO/PPO core: both SMAs run from the first bar; `f(fast, slow)` where both exist.
fn price_osc(x: &[f64], fast: usize, slow: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    if fast == 0 || x.len() < slow {
        return vec![f64::NAN; x.len()];
    }
    let slow_ma = sma_c(x, slow);
    let fast_ma = sma_c(x, fast);
    pad(x.len(), fast_ma[slow - fast..].iter().zip(&slow_ma).map(|(&a, &b)| f(a, b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsi_of_a_steady_rise_is_100() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let out = rsi(&x, 14);
        assert!(out[13].is_nan());
        assert!(out[14..].iter().all(|&v| v == 100.0));
    }

    #[test]
    fn aroon_counts_bars_since_extreme() {
        let h = [1.0, 5.0, 2.0, 3.0, 2.0];
        let l = [1.0, 0.5, 2.0, 3.0, 2.0];
        let a = aroon(&h, &l, 3);
        assert!(a.up[2].is_nan());
        // At t=3 the window is t=0..=3: the high max is at t=1, two bars ago.
        assert!((a.up[3] - 100.0 / 3.0).abs() < 1e-12);
        assert!((aroonosc(&h, &l, 3)[3] - 0.0).abs() < 1e-12);
    }
}
