//! Momentum and oscillators: RSI, CMO, MOM, ROC, TRIX, MACD, APO/PPO, STOCH/STOCHF, WILLR, CCI, MFI,
//! ULTOSC, BOP, AROON/AROONOSC.

use super::ma::{ema_in_place, ema_k, ma_count, sma_k};
use super::volatility::true_range;
use super::{Extremes, column, common_len, is_zero, is_zero_scaled, pad, per_to_k, put};

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

accelerated! {
/// Relative strength index with Wilder smoothing (0 while neither a gain nor a loss has been seen).
pub fn rsi(x: &[f64], n: usize) -> Vec<f64> {
    rsi_core(x, n)
}

/// Chande momentum oscillator (TA-Lib's Wilder-smoothed form of it).
pub fn cmo(x: &[f64], n: usize) -> Vec<f64> {
    cmo_core(x, n)
}
}

/// Momentum: `x[t] − x[t−n]`.
pub fn mom(x: &[f64], n: usize) -> Vec<f64> {
    mom_core(x, n)
}

/// Rate of change in percent: `(x[t]/x[t−n] − 1)·100`, 0 where `x[t−n]` is 0.
pub fn roc(x: &[f64], n: usize) -> Vec<f64> {
    roc_core(x, n)
}

accelerated! {
/// TRIX: one-bar ROC (percent) of the triple EMA.
pub fn trix(x: &[f64], n: usize) -> Vec<f64> {
    trix_core(x, n)
}

/// MACD with true EMAs; the fast EMA is seeded where the slow one starts, as TA-Lib does.
pub fn macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    macd_core(x, fast, slow, signal)
}

/// Absolute price oscillator with simple moving averages: SMA(fast) − SMA(slow).
pub fn apo(x: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    ppo_apo_core(x, fast, slow).1
}

/// Percentage price oscillator with simple moving averages: (SMA(fast) − SMA(slow))/SMA(slow)·100.
pub fn ppo(x: &[f64], fast: usize, slow: usize) -> Vec<f64> {
    ppo_apo_core(x, fast, slow).0
}

/// Slow stochastic: %K over `fastk_n` bars, smoothed by SMA(`slowk_n`), then SMA(`slowd_n`).
pub fn stoch(h: &[f64], l: &[f64], c: &[f64], fastk_n: usize, slowk_n: usize, slowd_n: usize) -> Stoch {
    {
        let len = common_len(&[h, l, c]);
        let (slowk, slowd) = stoch_from_fast_k(&fast_k(h, l, c, fastk_n), slowk_n, slowd_n, len);
        Stoch { slowk, slowd }
    }
}

/// Fast stochastic: %K over `fastk_n` bars and its SMA(`fastd_n`).
pub fn stochf(h: &[f64], l: &[f64], c: &[f64], fastk_n: usize, fastd_n: usize) -> StochF {
    {
        let len = common_len(&[h, l, c]);
        let fastk = fast_k(h, l, c, fastk_n);
        let fastd = sma_k(&fastk, fastd_n, len);
        let lead = len - ma_count(fastk.len(), fastd_n);
        StochF { fastk: pad(len, &fastk[fastk.len() - (len - lead)..]), fastd }
    }
}

/// Williams %R over `n` bars (−100..0).
pub fn willr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    willr_core(h, l, c, n)
}

/// Commodity channel index over `n` bars of typical price.
pub fn cci(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    cci_core(h, l, c, n)
}

/// Money flow index over `n` bars.
pub fn mfi(h: &[f64], l: &[f64], c: &[f64], v: &[f64], n: usize) -> Vec<f64> {
    mfi_core(h, l, c, v, n)
}

/// Ultimate oscillator over three periods (weights 4, 2, 1 from shortest to longest).
pub fn ultosc(h: &[f64], l: &[f64], c: &[f64], p1: usize, p2: usize, p3: usize) -> Vec<f64> {
    ultosc_core(h, l, c, p1, p2, p3)
}
}

/// Balance of power: (close − open)/(high − low), 0 on a zero range.
pub fn bop(o: &[f64], h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    bop_core(o, h, l, c)
}

accelerated! {
/// Aroon down/up over `n` bars (the window holds n+1 bars; ties pick the latest extreme).
pub fn aroon(h: &[f64], l: &[f64], n: usize) -> Aroon {
    {
        let (down, up, _) = aroon_core(h, l, n);
        Aroon { down, up }
    }
}

/// Aroon oscillator: Aroon up − Aroon down.
pub fn aroonosc(h: &[f64], l: &[f64], n: usize) -> Vec<f64> {
    aroon_core(h, l, n).2
}
}

#[inline(always)]
pub(super) fn rsi_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n < 2 || len <= n {
        return vec![f64::NAN; len];
    }
    let inv = 1.0 / n as f64;
    let keep = (n - 1) as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    let mut out = column(len, len - n);
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
            put(&mut out, if total > 0.0 { 100.0 * (gain / total) } else { 0.0 });
        }
    }
    out
}

#[inline(always)]
pub(super) fn cmo_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    if n == 1 {
        // TA-Lib's period-1 trap: the input itself, after the one-bar lookback.
        return pad(len, x.get(1..).unwrap_or_default());
    }
    if n == 0 || len <= n {
        return vec![f64::NAN; len];
    }
    let nf = n as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    let mut out = column(len, len - n);
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
            put(&mut out, if total > 0.0 { 100.0 * ((gain - loss) / total) } else { 0.0 });
        }
    }
    out
}

#[inline(always)]
pub(super) fn mom_core(x: &[f64], n: usize) -> Vec<f64> {
    lagged(x, n, |now, then| now - then)
}

#[inline(always)]
pub(super) fn roc_core(x: &[f64], n: usize) -> Vec<f64> {
    lagged(x, n, roc_pct)
}

/// The triple EMA is built in place in one buffer, then turned into its one-bar ROC.
#[inline(always)]
pub(super) fn trix_core(x: &[f64], n: usize) -> Vec<f64> {
    let len = x.len();
    let k = per_to_k(n);
    let mut e = x.to_vec();
    let mut lead = 0;
    for _ in 0..3 {
        lead = ema_in_place(&mut e, lead, n, k);
    }
    // ROC from the newest bar back, so each step still reads the EMA of the bar before.
    for t in (lead + 1..len).rev() {
        e[t] = roc_pct(e[t], e[t - 1]);
    }
    if lead < len {
        e[lead] = f64::NAN;
    }
    e
}

#[inline(always)]
pub(super) fn macd_core(x: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let len = x.len();
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    let nan = || vec![f64::NAN; len];
    if fast == 0 || signal == 0 || len < slow + signal - 1 {
        return Macd { macd: nan(), signal: nan(), hist: nan() };
    }
    // Both EMAs in one pass, their difference (the MACD line) from bar slow−1 on.
    let (kf, ks) = (per_to_k(fast), per_to_k(slow));
    let mut line = column(len, len + 1 - slow);
    let seed = |from: usize, n: usize| if n == 1 { x[from] } else { x[from..from + n].iter().sum::<f64>() / n as f64 };
    let (mut f, mut s) = (seed(slow - fast, fast), seed(0, slow));
    put(&mut line, f - s);
    for &v in &x[slow..] {
        if fast > 1 {
            f = (v - f).mul_add(kf, f);
        } else {
            f = v;
        }
        if slow > 1 {
            s = (v - s).mul_add(ks, s);
        } else {
            s = v;
        }
        put(&mut line, f - s);
    }
    let sig = ema_k(&line[slow - 1..], signal, per_to_k(signal), len);
    let lead = len - ma_count(len + 1 - slow, signal);
    let mut hist = column(len, len - lead);
    hist.extend(line[lead..].iter().zip(&sig[lead..]).map(|(m, s)| m - s));
    line[..lead].fill(f64::NAN);
    Macd { macd: line, signal: sig, hist }
}

/// (PPO, APO): both SMAs run from the first bar; the oscillators where both exist.
#[inline(always)]
pub(super) fn ppo_apo_core(x: &[f64], fast: usize, slow: usize) -> (Vec<f64>, Vec<f64>) {
    let len = x.len();
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    if fast == 0 || len < slow {
        return (vec![f64::NAN; len], vec![f64::NAN; len]);
    }
    let (ff, sf) = (fast as f64, slow as f64);
    // The fast running sum, advanced (adding and dropping as it would while emitting) to bar slow−1.
    let mut fsum: f64 = x[..fast - 1].iter().sum();
    for t in fast - 1..slow - 1 {
        fsum += x[t];
        fsum -= x[t + 1 - fast];
    }
    let mut ssum: f64 = x[..slow - 1].iter().sum();
    let mut ppo = column(len, len + 1 - slow);
    let mut apo = column(len, len + 1 - slow);
    for t in slow - 1..len {
        fsum += x[t];
        ssum += x[t];
        let (f, s) = (fsum / ff, ssum / sf);
        put(&mut ppo, if is_zero(s) { 0.0 } else { ((f - s) / s) * 100.0 });
        put(&mut apo, f - s);
        fsum -= x[t + 1 - fast];
        ssum -= x[t + 1 - slow];
    }
    (ppo, apo)
}

/// (STOCH slow %K, slow %D, STOCHF fast %K, fast %D) for the same %K period, with STOCH's slow %K
/// period equal to STOCHF's fast %D period (both are the same SMA of the raw %K).
#[inline(always)]
pub(super) fn stoch_stochf_core(
    h: &[f64],
    l: &[f64],
    c: &[f64],
    fastk_n: usize,
    smooth_n: usize,
    slowd_n: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = common_len(&[h, l, c]);
    let fastk = fast_k(h, l, c, fastk_n);
    let fastd = sma_k(&fastk, smooth_n, len);
    let fastd_count = ma_count(fastk.len(), smooth_n);
    let (slowk, slowd) = stoch_from_smoothed(&fastd[len - fastd_count..], slowd_n, len);
    let stochf_k = pad(len, &fastk[fastk.len() - fastd_count..]);
    (slowk, slowd, stochf_k, fastd)
}

/// Slow %K and %D from the compact raw %K.
#[inline(always)]
fn stoch_from_fast_k(fastk: &[f64], slowk_n: usize, slowd_n: usize, len: usize) -> (Vec<f64>, Vec<f64>) {
    let slowk = sma_k(fastk, slowk_n, len);
    let count = ma_count(fastk.len(), slowk_n);
    stoch_from_smoothed(&slowk[len - count..], slowd_n, len)
}

/// Slow %K (trimmed to where %D starts) and %D from the compact slow %K.
#[inline(always)]
fn stoch_from_smoothed(slowk: &[f64], slowd_n: usize, len: usize) -> (Vec<f64>, Vec<f64>) {
    let slowd = sma_k(slowk, slowd_n, len);
    let count = ma_count(slowk.len(), slowd_n);
    (pad(len, &slowk[slowk.len() - count..]), slowd)
}

#[inline(always)]
pub(super) fn willr_core(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n == 0 || len < n {
        return vec![f64::NAN; len];
    }
    let hi = Extremes::<true>::new(&h[..len], n);
    let lo = Extremes::<false>::new(&l[..len], n);
    let mut out = column(len, len + 1 - n);
    for t in n - 1..len {
        let (hh, ll) = (h[hi.at(t)], l[lo.at(t)]);
        let range = hh - ll;
        put(&mut out, if is_zero_scaled(range, hh.abs() + ll.abs()) { 0.0 } else { ((hh - c[t]) / range) * -100.0 });
    }
    out
}

/// CCI's mean and mean absolute deviation are sums over a ring buffer of typical prices, in slot
/// order (TA-Lib's, kept because CCI divides small differences): O(n·period), as in TA-Lib. The
/// window ending at bar t holds, slot by slot, the bars `b + j` (j < r) and `b + j − n` (j ≥ r),
/// where b is t+1 rounded down to a multiple of n and r = t+1−b. So the n windows ending at
/// b−1 … b+n−2 read the same two runs of values, and their sums are built side by side (each in its
/// own slot order, so the same bits), which the CPU overlaps instead of waiting on one sum at a time.
#[inline(always)]
pub(super) fn cci_core(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n == 0 || len < n {
        return vec![f64::NAN; len];
    }
    // Typical prices, then n zeros so the last block can read a whole run.
    let mut tp = Vec::with_capacity(len + n);
    tp.extend((0..len).map(|t| (h[t] + l[t] + c[t]) / 3.0));
    tp.resize(len + n, 0.0);
    let mut out = column(len, len + 1 - n);
    // Common periods get lanes of a fixed size, which stay in registers.
    match n {
        14 => cci_blocks(&tp, len, [0.0; 14], &mut out),
        20 => cci_blocks(&tp, len, [0.0; 20], &mut out),
        _ => cci_blocks(&tp, len, vec![0.0; n], &mut out),
    }
    out
}

/// The CCI values of [`cci_core`], block by block; `lanes` holds one slot per bar of the period.
#[inline(always)]
fn cci_blocks<L: AsMut<[f64]> + Clone>(tp: &[f64], len: usize, lanes: L, out: &mut Vec<f64>) {
    let (mut sum, mut dev) = (lanes.clone(), lanes);
    let (sum, dev) = (sum.as_mut(), dev.as_mut());
    let n = sum.len();
    let nf = n as f64;
    let mut b = n;
    while b - 1 < len {
        let (old, new) = (&tp[b - n..b], &tp[b..b + n]);
        // Lane k is the window ending at bar b−1+k: slots j < k hold new[j], the others old[j].
        sum.fill(-0.0);
        for j in 0..n {
            let (o, nw) = (old[j], new[j]);
            for (k, s) in sum.iter_mut().enumerate() {
                *s += if k <= j { o } else { nw };
            }
        }
        // The sums become the means.
        for s in sum.iter_mut() {
            *s /= nf;
        }
        dev.fill(-0.0);
        for j in 0..n {
            let (o, nw) = (old[j], new[j]);
            for (k, (d, a)) in dev.iter_mut().zip(sum.iter()).enumerate() {
                *d += ((if k <= j { o } else { nw }) - a).abs();
            }
        }
        let lanes = n.min(len + 1 - b);
        for k in 0..lanes {
            let (avg, last) = (sum[k], tp[b - 1 + k]);
            let diff = last - avg;
            let mean_dev = dev[k] / nf;
            let flat = is_zero_scaled(diff, avg.abs()) || is_zero_scaled(mean_dev, avg.abs());
            let denom = mean_dev * 0.015;
            put(out, if flat || denom == 0.0 { 0.0 } else { diff / denom });
        }
        b += n;
    }
}

#[inline(always)]
pub(super) fn mfi_core(h: &[f64], l: &[f64], c: &[f64], v: &[f64], n: usize) -> Vec<f64> {
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
    let mut out = column(len, len - n);
    let mut slot = 0;
    for (t, &volume) in v.iter().enumerate().take(len).skip(1) {
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
        slot += 1;
        if slot == n {
            slot = 0;
        }
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
            put(&mut out, if total <= 0.0 { 0.0 } else { 100.0 * (pos_clamped / total) });
        }
    }
    out
}

#[inline(always)]
pub(super) fn ultosc_core(h: &[f64], l: &[f64], c: &[f64], p1: usize, p2: usize, p3: usize) -> Vec<f64> {
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
    let mut out = column(len, len - start);
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
        put(&mut out, 100.0 * (osc / 7.0));
    }
    out
}

#[inline(always)]
pub(super) fn bop_core(o: &[f64], h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    let len = common_len(&[o, h, l, c]);
    let (o, h, l, c) = (&o[..len], &h[..len], &l[..len], &c[..len]);
    (0..len)
        .map(|t| {
            let range = h[t] - l[t];
            if range <= 0.0 { 0.0 } else { (c[t] - o[t]) / range }
        })
        .collect()
}

/// (Aroon down, Aroon up, Aroon oscillator) from one pass over the window extremes (n+1 bars).
#[inline(always)]
pub(super) fn aroon_core(h: &[f64], l: &[f64], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = common_len(&[h, l]);
    if n == 0 || len < n + 1 {
        return (vec![f64::NAN; len], vec![f64::NAN; len], vec![f64::NAN; len]);
    }
    let factor = 100.0 / n as f64;
    let hi = Extremes::<true>::new(&h[..len], n + 1);
    let lo = Extremes::<false>::new(&l[..len], n + 1);
    let (mut down, mut up, mut osc) = (column(len, len - n), column(len, len - n), column(len, len - n));
    for t in n..len {
        let (hi, lo) = (hi.at(t), lo.at(t));
        put(&mut down, factor * (n - (t - lo)) as f64);
        put(&mut up, factor * (n - (t - hi)) as f64);
        put(&mut osc, factor * (hi as f64 - lo as f64));
    }
    (down, up, osc)
}

/// Compact raw %K (first value at index n−1): (close − lowest low)/(highest high − lowest low)·100.
#[inline(always)]
fn fast_k(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n == 0 || len < n {
        return Vec::new();
    }
    let hi = Extremes::<true>::new(&h[..len], n);
    let lo = Extremes::<false>::new(&l[..len], n);
    (n - 1..len)
        .map(|t| {
            let (hh, ll) = (h[hi.at(t)], l[lo.at(t)]);
            let range = hh - ll;
            if is_zero_scaled(range, hh.abs() + ll.abs()) { 0.0 } else { ((c[t] - ll) / range) * 100.0 }
        })
        .collect()
}

/// Applies `f(x[t], x[t−n])` from t = n on.
#[inline(always)]
fn lagged(x: &[f64], n: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    if n == 0 {
        return vec![f64::NAN; x.len()];
    }
    let mut out = column(x.len(), x.len().saturating_sub(n));
    out.extend(x.iter().skip(n).zip(x).map(|(&now, &then)| f(now, then)));
    out
}

/// TA-Lib's ROC step, guarding a zero base.
#[inline(always)]
fn roc_pct(now: f64, then: f64) -> f64 {
    if then != 0.0 { ((now / then) - 1.0) * 100.0 } else { 0.0 }
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
