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

/// Computes the full technical set of one symbol, named as in [`TECHNICAL_COLUMNS`].
pub fn technical_set(s: &BarSeries) -> Vec<(&'static str, Vec<f64>)> {
    let (o, h, l, c, v) = (&s.open[..], &s.high[..], &s.low[..], &s.close[..], &s.volume[..]);
    let m = macd(c, 12, 26, 9);
    let bb = bbands(c, 20, 2.0, 2.0);
    let st = stoch(h, l, c, 5, 3, 3);
    let sf = stochf(h, l, c, 5, 3);
    let ar = aroon(h, l, 14);
    let cols: [Vec<f64>; 47] = [
        sma(c, 20),
        ema(c, 12),
        wma(c, 20),
        dema(c, 20),
        tema(c, 20),
        trima(c, 20),
        kama(c, 30),
        rsi(c, 14),
        m.macd,
        m.signal,
        m.hist,
        bb.upper,
        bb.middle,
        bb.lower,
        atr(h, l, c, 14),
        natr(h, l, c, 14),
        trange(h, l, c),
        adx(h, l, c, 14),
        adxr(h, l, c, 14),
        plus_di(h, l, c, 14),
        minus_di(h, l, c, 14),
        cci(h, l, c, 14),
        mfi(h, l, c, v, 14),
        willr(h, l, c, 14),
        obv(c, v),
        ad(h, l, c, v),
        adosc(h, l, c, v, 3, 10),
        st.slowk,
        st.slowd,
        sf.fastk,
        sf.fastd,
        roc(c, 10),
        mom(c, 10),
        trix(c, 30),
        ultosc(h, l, c, 7, 14, 28),
        ar.down,
        ar.up,
        aroonosc(h, l, 14),
        sar(h, l, 0.02, 0.2),
        stddev(c, 5, 1.0),
        var(c, 5),
        linearreg(c, 14),
        linearreg_slope(c, 14),
        bop(o, h, l, c),
        cmo(c, 14),
        ppo(c, 12, 26),
        apo(c, 12, 26),
    ];
    TECHNICAL_COLUMNS.into_iter().zip(cols).collect()
}

/// TA-Lib's `TA_EPSILON`.
const EPSILON: f64 = 1e-14;

/// TA-Lib's `TA_IS_ZERO`: a fixed band, used where the value is dimensionless.
fn is_zero(v: f64) -> bool {
    -EPSILON < v && v < EPSILON
}

/// TA-Lib's `TA_IS_ZERO_SCALED`: `v` (a difference) is zero relative to the operands' magnitude.
fn is_zero_scaled(v: f64, scale: f64) -> bool {
    v.abs() <= EPSILON * scale
}

/// Prepends NaN to TA-Lib's compact output (which starts at the lookback) to fill `len` slots.
fn pad(len: usize, compact: Vec<f64>) -> Vec<f64> {
    let mut out = vec![f64::NAN; len.saturating_sub(compact.len())];
    out.extend(compact);
    out
}

/// Length of the shortest input column.
fn common_len(cols: &[&[f64]]) -> usize {
    cols.iter().map(|c| c.len()).min().unwrap_or(0)
}

/// TA-Lib's EMA smoothing constant for a period.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_extremes_keep_latest_tie() {
        let x = [1.0, 3.0, 3.0, 2.0, 1.0, 1.0];
        assert_eq!(rolling_extreme_idx(&x, 3, true), vec![2, 2, 2, 3]);
        assert_eq!(rolling_extreme_idx(&x, 3, false), vec![0, 3, 4, 5]);
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
