//! Technical indicators with the semantics of TA-Lib C 0.8.1: default unstable period 0, TA-Lib's
//! seeding, zero guards and re-anchoring of running sums, and its arithmetic order including its
//! fused multiply-adds (`f64::mul_add` is correctly rounded on every target), so outputs agree with
//! the C library bit for bit on the reference data.
//!
//! Every function takes slices and returns a vector as long as its input (the shortest input, for
//! several), NaN inside TA-Lib's lookback. A period outside the supported range, or a series no
//! longer than the lookback, gives all NaN rather than an error: callers line columns up by index.
//! Each is O(n) in the series length, except CCI, whose mean absolute deviation has no running form
//! (O(n·period)).

/// Defines `pub fn` items whose body is compiled twice: as written, and (on x86-64) with AVX2 and
/// FMA enabled, that copy being used where the CPU has both. The results are the same bits either
/// way: `f64::mul_add` is correctly rounded on both paths (FMA makes it one instruction instead of a
/// call into the software fallback), and no other operation changes. Kernels the bodies call are
/// `#[inline(always)]` so that they are compiled into the feature-enabled copy too.
macro_rules! accelerated {
    ($($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block)*) => {$(
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn body_avx2_fma($($arg: $ty),*) -> $ret {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::indicators::has_avx2_fma() {
                // SAFETY: the CPU was found to have both target features.
                return unsafe { body_avx2_fma($($arg),*) };
            }
            body($($arg),*)
        }
    )*};
}

mod ma;
mod momentum;
mod trend;
mod volatility;
mod volume;

pub use ma::{dema, ema, kama, sma, tema, trima, wma};
pub use momentum::{
    Aroon, Macd, Stoch, StochF, apo, aroon, aroonosc, bop, cci, cmo, macd, mfi, mom, ppo, roc, rsi, stoch, stochf,
    trix, ultosc, willr,
};
pub use trend::{adx, adxr, linearreg, linearreg_slope, minus_di, plus_di, sar};
pub use volatility::{Bands, atr, bbands, natr, stddev, trange, var};
pub use volume::{ad, adosc, obv};

use std::collections::VecDeque;
use stockops_core::BarSeries;

/// Column names of [`technical_set`], in the order of the TA-Lib reference file.
pub const TECHNICAL_COLUMNS: [&str; 47] = [
    "SMA_20",
    "EMA_12",
    "WMA_20",
    "DEMA_20",
    "TEMA_20",
    "TRIMA_20",
    "KAMA_30",
    "RSI_14",
    "MACD_12_26_9",
    "MACDSIGNAL_12_26_9",
    "MACDHIST_12_26_9",
    "BBANDS_UPPER_20_2",
    "BBANDS_MIDDLE_20_2",
    "BBANDS_LOWER_20_2",
    "ATR_14",
    "NATR_14",
    "TRANGE",
    "ADX_14",
    "ADXR_14",
    "PLUS_DI_14",
    "MINUS_DI_14",
    "CCI_14",
    "MFI_14",
    "WILLR_14",
    "OBV",
    "AD",
    "ADOSC_3_10",
    "STOCH_SLOWK_5_3_3",
    "STOCH_SLOWD_5_3_3",
    "STOCHF_FASTK_5_3",
    "STOCHF_FASTD_5_3",
    "ROC_10",
    "MOM_10",
    "TRIX_30",
    "ULTOSC_7_14_28",
    "AROON_DOWN_14",
    "AROON_UP_14",
    "AROONOSC_14",
    "SAR_0.02_0.2",
    "STDDEV_5",
    "VAR_5",
    "LINEARREG_14",
    "LINEARREG_SLOPE_14",
    "BOP",
    "CMO_14",
    "PPO_12_26",
    "APO_12_26",
];

accelerated! {
/// Computes the full technical set of one symbol, named as in [`TECHNICAL_COLUMNS`].
///
/// Columns that share work are computed together (the EMA chain of DEMA/TEMA, the directional
/// movement behind ADX, ADXR, +DI and −DI, the window extremes behind STOCH/STOCHF and AROON, the
/// SMAs of APO/PPO, …); every column is the same bits as its own function's output.
pub fn technical_set(s: &BarSeries) -> Vec<(&'static str, Vec<f64>)> {
    let (o, h, l, c, v) = (&s.open[..], &s.high[..], &s.low[..], &s.close[..], &s.volume[..]);
    let m = macd_core(c, 12, 26, 9);
    let bb = bbands_core(c, 20, 2.0, 2.0);
    let (dema_20, tema_20) = ma::dema_tema_core(c, 20);
    let (atr_14, natr_14, trange) = volatility::atr_natr_trange_core(h, l, c, 14);
    let dm = trend::directional_core(h, l, c, 14);
    let (stoch_k, stoch_d, stochf_k, stochf_d) = momentum::stoch_stochf_core(h, l, c, 5, 3, 3);
    let (aroon_down, aroon_up, aroon_osc) = momentum::aroon_core(h, l, 14);
    let (ad, adosc) = volume::ad_adosc_core(h, l, c, v, 3, 10);
    let (var_5, stddev_5) = volatility::var_stddev_core(c, 5, 1.0);
    let (linreg, linreg_slope) = trend::regression_core(c, 14);
    let (ppo, apo) = momentum::ppo_apo_core(c, 12, 26);
    let cols: [Vec<f64>; 47] = [
        bb.middle.clone(),
        ma::ema_core(c, 12),
        ma::wma_core(c, 20),
        dema_20,
        tema_20,
        ma::trima_core(c, 20),
        ma::kama_core(c, 30),
        momentum::rsi_core(c, 14),
        m.macd,
        m.signal,
        m.hist,
        bb.upper,
        bb.middle,
        bb.lower,
        atr_14,
        natr_14,
        trange,
        dm.adx,
        dm.adxr,
        dm.plus_di,
        dm.minus_di,
        momentum::cci_core(h, l, c, 14),
        momentum::mfi_core(h, l, c, v, 14),
        momentum::willr_core(h, l, c, 14),
        volume::obv_core(c, v),
        ad,
        adosc,
        stoch_k,
        stoch_d,
        stochf_k,
        stochf_d,
        momentum::roc_core(c, 10),
        momentum::mom_core(c, 10),
        momentum::trix_core(c, 30),
        momentum::ultosc_core(h, l, c, 7, 14, 28),
        aroon_down,
        aroon_up,
        aroon_osc,
        trend::sar_core(h, l, 0.02, 0.2),
        stddev_5,
        var_5,
        linreg,
        linreg_slope,
        momentum::bop_core(o, h, l, c),
        momentum::cmo_core(c, 14),
        ppo,
        apo,
    ];
    TECHNICAL_COLUMNS.into_iter().zip(cols).collect()
}
}

use momentum::macd_core;
use volatility::bbands_core;

/// Appends `v` to a column made by [`column`]: like `Vec::push`, but with no reallocation path in
/// the loop (only a check of the capacity that was reserved), so running sums stay in registers.
#[inline(always)]
fn put(out: &mut Vec<f64>, v: f64) {
    let len = out.len();
    if len == out.capacity() {
        column_overflow();
    }
    // SAFETY: `len` < capacity, so the slot is allocated; it is written before the length covers it.
    unsafe {
        out.as_mut_ptr().add(len).write(v);
        out.set_len(len + 1);
    }
}

#[cold]
#[inline(never)]
fn column_overflow() -> ! {
    panic!("indicator wrote more values than its column holds")
}

/// Whether this CPU has AVX2 and FMA (cached by the standard library after the first check).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// An output column of `len` slots whose first `len - count` are NaN (TA-Lib's lookback), with
/// room for the `count` values the caller pushes next.
#[inline(always)]
fn column(len: usize, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(len);
    out.resize(len.saturating_sub(count), f64::NAN);
    out
}

/// TA-Lib's `TA_EPSILON`.
const EPSILON: f64 = 1e-14;

/// TA-Lib's `TA_IS_ZERO`: a fixed band, used where the value is dimensionless.
#[inline(always)]
fn is_zero(v: f64) -> bool {
    -EPSILON < v && v < EPSILON
}

/// TA-Lib's `TA_IS_ZERO_SCALED`: `v` (a difference) is zero relative to the operands' magnitude.
#[inline(always)]
fn is_zero_scaled(v: f64, scale: f64) -> bool {
    v.abs() <= EPSILON * scale
}

/// Prepends NaN to TA-Lib's compact output (which starts at the lookback) to fill `len` slots.
#[inline(always)]
fn pad(len: usize, compact: &[f64]) -> Vec<f64> {
    let mut out = column(len, compact.len());
    out.extend_from_slice(compact);
    out
}

/// Length of the shortest input column.
#[inline(always)]
fn common_len(cols: &[&[f64]]) -> usize {
    cols.iter().map(|c| c.len()).min().unwrap_or(0)
}

/// TA-Lib's EMA smoothing constant for a period.
#[inline(always)]
fn per_to_k(n: usize) -> f64 {
    2.0 / (n as f64 + 1.0)
}

/// For each window of `w` values ending at t = w-1.., the index of its latest maximum (`max`) or
/// latest minimum: a monotonic deque, O(n). "Latest" on ties is TA-Lib's AROON rule.
fn rolling_extreme_idx(x: &[f64], w: usize, max: bool) -> Vec<usize> {
    if w == 0 || x.len() < w {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(x.len() + 1 - w);
    let mut dq: VecDeque<usize> = VecDeque::with_capacity(w);
    for (t, &v) in x.iter().enumerate() {
        while let Some(&b) = dq.back() {
            let dominated = if max { x[b] <= v } else { x[b] >= v };
            if !dominated {
                break;
            }
            dq.pop_back();
        }
        dq.push_back(t);
        if dq.front().is_some_and(|&f| f + w <= t) {
            dq.pop_front();
        }
        if t + 1 >= w {
            out.push(dq.front().copied().unwrap_or(t));
        }
    }
    out
}

/// Index of the latest maximum (`MAX`) or latest minimum of each window of `w` values, for windows
/// ending at t = w−1, w, … in turn. NaN-free input takes the van Herk/Gil-Werman route: running
/// extremes forward and backward within blocks of `w` bars, two of which cover any window, so each
/// bar costs three comparisons without data-dependent branches; input with NaN goes through
/// [`rolling_extreme_idx`], whose answer there is the reference.
struct Extremes<const MAX: bool> {
    w: usize,
    /// The extreme's index for the window starting at each bar.
    idx: Vec<usize>,
}

impl<const MAX: bool> Extremes<MAX> {
    /// Windows of `w` ≥ 1 values of `x`.
    #[inline(always)]
    fn new(x: &[f64], w: usize) -> Self {
        let idx =
            if x.iter().any(|v| v.is_nan()) { rolling_extreme_idx(x, w, MAX) } else { block_extremes::<MAX>(x, w) };
        Extremes { w, idx }
    }

    /// The extreme's index for the window ending at `t` (≥ w−1).
    #[inline(always)]
    fn at(&self, t: usize) -> usize {
        self.idx[t + 1 - self.w]
    }
}

/// `a` is at least as extreme as `b` (so a later `a` wins a tie).
#[inline(always)]
fn beats<const MAX: bool>(a: f64, b: f64) -> bool {
    if MAX { a >= b } else { a <= b }
}

/// [`rolling_extreme_idx`] for NaN-free `x` (the latest extreme of each window, indexed by its
/// first bar): per block of `w` bars, the latest extreme of each suffix (stored) and of each prefix
/// (carried along while the window's end moves through the next block); a window is a suffix of one
/// block and a prefix of the next, whose extremes are later, so they win ties.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `start` indexes both `idx` and `x` (at start + w − 1)
fn block_extremes<const MAX: bool>(x: &[f64], w: usize) -> Vec<usize> {
    let len = x.len();
    if w == 0 || len < w {
        return Vec::new();
    }
    // Suffix extremes of each block, then overwritten in place by the window extremes.
    let mut idx = vec![0usize; len];
    for b in (0..len).step_by(w) {
        let end = (b + w).min(len);
        let (mut bv, mut bi) = (x[end - 1], end - 1);
        idx[end - 1] = end - 1;
        for t in (b..end - 1).rev() {
            let v = x[t];
            let take = if MAX { v > bv } else { v < bv };
            bv = if take { v } else { bv };
            bi = if take { t } else { bi };
            idx[t] = bi;
        }
    }
    // The first block's prefix up to the first window's end (exclusive); the loop takes it on.
    let (mut pv, mut pi) = (x[0], 0);
    for (t, &v) in x.iter().enumerate().take(w - 1).skip(1) {
        if beats::<MAX>(v, pv) {
            (pv, pi) = (v, t);
        }
    }
    // Countdown to the next block start for the window's end (bar w−1 starts a block only if w = 1).
    let mut left_in_block = if w == 1 { 1 } else { 2 };
    for start in 0..=len - w {
        let end = start + w - 1;
        left_in_block -= 1;
        if left_in_block == 0 {
            left_in_block = w;
            (pv, pi) = (x[end], end);
        } else {
            let v = x[end];
            let take = beats::<MAX>(v, pv);
            pv = if take { v } else { pv };
            pi = if take { end } else { pi };
        }
        let a = idx[start];
        idx[start] = if beats::<MAX>(pv, x[a]) { pi } else { a };
    }
    idx.truncate(len + 1 - w);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_extremes_keep_latest_tie() {
        let x = [1.0, 3.0, 3.0, 2.0, 1.0, 1.0];
        assert_eq!(rolling_extreme_idx(&x, 3, true), vec![2, 2, 2, 3]);
        assert_eq!(rolling_extreme_idx(&x, 3, false), vec![0, 3, 4, 5]);
        assert_eq!(block_extremes::<true>(&x, 3), vec![2, 2, 2, 3]);
        assert_eq!(block_extremes::<false>(&x, 3), vec![0, 3, 4, 5]);
    }

    #[test]
    fn block_extremes_match_the_deque_on_ties_and_every_width() {
        // Few distinct values, so ties are everywhere; ±0 as well.
        let x: Vec<f64> = (0..300u64).map(|i| ((i * 7919 + i * i * 31) % 5) as f64 - 2.0).collect();
        let mut x0 = x.clone();
        for (i, v) in x0.iter_mut().enumerate() {
            if *v == 0.0 && i % 2 == 1 {
                *v = -0.0;
            }
        }
        for x in [&x, &x0] {
            for w in 1..=20 {
                for len in [w, w + 1, 2 * w - 1, 2 * w, 3 * w + 2, x.len()] {
                    let x = &x[..len.min(x.len())];
                    assert_eq!(block_extremes::<true>(x, w), rolling_extreme_idx(x, w, true), "max w={w} len={len}");
                    assert_eq!(block_extremes::<false>(x, w), rolling_extreme_idx(x, w, false), "min w={w} len={len}");
                }
            }
        }
    }

    #[test]
    fn any_length_flat_or_nan_input_keeps_the_shape() {
        for len in [0, 1, 2, 3, 27, 28, 29, 120] {
            for price in [5.0, f64::NAN] {
                let col = vec![price; len];
                let s = BarSeries {
                    dates: vec![chrono::NaiveDate::default(); len],
                    open: col.clone(),
                    high: col.clone(),
                    low: col.clone(),
                    close: col.clone(),
                    volume: vec![0.0; len],
                    ..Default::default()
                };
                for (name, out) in technical_set(&s) {
                    assert_eq!(out.len(), len, "{name} at length {len}");
                }
            }
        }
    }

    #[test]
    fn short_or_empty_input_is_all_nan() {
        let s = BarSeries::default();
        for (name, col) in technical_set(&s) {
            assert!(col.is_empty(), "{name}");
        }
        let x = [1.0, 2.0, 3.0];
        assert!(sma(&x, 5).iter().all(|v| v.is_nan()));
        assert!(sma(&x, 0).iter().all(|v| v.is_nan()));
        assert_eq!(sma(&x, 5).len(), 3);
    }
}
