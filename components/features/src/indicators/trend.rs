//! Trend: directional movement (+DI, −DI, ADX, ADXR), parabolic SAR, linear regression.

use super::volatility::true_range;
use super::{column, common_len, is_zero, put};

accelerated! {
/// Plus directional indicator over `n` ≥ 2 bars (Wilder smoothing, TA-Lib seeding).
pub fn plus_di(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_core(h, l, c, n).plus_di
}

/// Minus directional indicator over `n` ≥ 2 bars.
pub fn minus_di(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_core(h, l, c, n).minus_di
}

/// Average directional index over `n` ≥ 2 bars (first value at bar 2n−1).
pub fn adx(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_core(h, l, c, n).adx
}

/// ADX rating: the mean of ADX now and n−1 bars ago.
pub fn adxr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_core(h, l, c, n).adxr
}

/// Parabolic SAR with acceleration step `accel` capped at `max` (both ≥ 0).
pub fn sar(h: &[f64], l: &[f64], accel_step: f64, max: f64) -> Vec<f64> {
    sar_core(h, l, accel_step, max)
}

/// Least-squares line over `n` values, evaluated at the newest bar.
pub fn linearreg(x: &[f64], n: usize) -> Vec<f64> {
    regression_core(x, n).0
}

/// Slope of the least-squares line over `n` values, per bar.
pub fn linearreg_slope(x: &[f64], n: usize) -> Vec<f64> {
    regression_core(x, n).1
}
}

/// The directional-movement family over one pass of the smoothed sums.
pub(super) struct Directional {
    pub adx: Vec<f64>,
    pub adxr: Vec<f64>,
    pub plus_di: Vec<f64>,
    pub minus_di: Vec<f64>,
}

#[inline(always)]
pub(super) fn directional_core(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Directional {
    let len = common_len(&[h, l, c]);
    let nan = || vec![f64::NAN; len];
    let lag = n.saturating_sub(1);
    if n < 2 || len <= n {
        return Directional { adx: nan(), adxr: nan(), plus_di: nan(), minus_di: nan() };
    }
    let nf = n as f64;
    let with_adx = len >= 2 * n;
    let mut dm = Smoothed::new(h, l, c, n);
    let (mut plus_di, mut minus_di) = (column(len, len - n), column(len, len - n));
    let mut adx = if with_adx { column(len, len + 1 - 2 * n) } else { Vec::new() };
    let (mut sum_dx, mut adx_now) = (0.0, 0.0);
    for t in n..len {
        dm.step(t);
        let di = dm.di();
        let (pdi, mdi) = di.unwrap_or((0.0, 0.0));
        put(&mut plus_di, pdi);
        put(&mut minus_di, mdi);
        if !with_adx {
            continue;
        }
        let dx = di.and_then(Smoothed::dx);
        if t < 2 * n {
            if let Some(dx) = dx {
                sum_dx += dx;
            }
            if t == 2 * n - 1 {
                adx_now = sum_dx / nf;
                put(&mut adx, adx_now);
            }
        } else {
            if let Some(dx) = dx {
                adx_now = ((adx_now * (nf - 1.0)) + dx) / nf;
            }
            put(&mut adx, adx_now);
        }
    }
    if !with_adx {
        adx = nan();
    }
    let adxr = (0..len).map(|t| if t < lag { f64::NAN } else { (adx[t] + adx[t - lag]) / 2.0 }).collect();
    Directional { adx, adxr, plus_di, minus_di }
}

#[inline(always)]
pub(super) fn sar_core(h: &[f64], l: &[f64], accel: f64, max: f64) -> Vec<f64> {
    let len = common_len(&[h, l]);
    if len < 2 || !(accel >= 0.0 && max >= 0.0) {
        return vec![f64::NAN; len];
    }
    let step = accel.min(max);
    let mut af = step;
    // TA-Lib starts short when bar 1 shows a positive −DM (a lower low that outweighs the higher high).
    let (diff_p, diff_m) = (h[1] - h[0], l[0] - l[1]);
    let mut is_long = !(diff_m > 0.0 && diff_p < diff_m);
    let (mut ep, mut sar) = if is_long { (h[1], l[0]) } else { (l[1], h[0]) };
    let (mut new_low, mut new_high) = (l[1], h[1]);
    let mut out = column(len, len - 1);
    for t in 1..len {
        let (prev_low, prev_high) = (new_low, new_high);
        (new_low, new_high) = (l[t], h[t]);
        if is_long {
            if new_low <= sar {
                // Reversal to short: the SAR jumps to the extreme point.
                is_long = false;
                sar = ep.max(prev_high).max(new_high);
                put(&mut out, sar);
                af = step;
                ep = new_low;
                sar = af.mul_add(ep - sar, sar);
                sar = sar.max(prev_high).max(new_high);
            } else {
                put(&mut out, sar);
                if new_high > ep {
                    ep = new_high;
                    af = (af + step).min(max);
                }
                sar = af.mul_add(ep - sar, sar);
                sar = sar.min(prev_low).min(new_low);
            }
        } else if new_high >= sar {
            is_long = true;
            sar = ep.min(prev_low).min(new_low);
            put(&mut out, sar);
            af = step;
            ep = new_high;
            sar = af.mul_add(ep - sar, sar);
            sar = sar.min(prev_low).min(new_low);
        } else {
            put(&mut out, sar);
            if new_low < ep {
                ep = new_low;
                af = (af + step).min(max);
            }
            sar = af.mul_add(ep - sar, sar);
            sar = sar.max(prev_high).max(new_high);
        }
    }
    out
}

/// Wilder-smoothed +DM, −DM and TR. TA-Lib seeds them with plain sums of bars 1..n−1, so the first
/// smoothing step (bar n) already decays the seed.
struct Smoothed<'a> {
    h: &'a [f64],
    l: &'a [f64],
    c: &'a [f64],
    n: f64,
    plus: f64,
    minus: f64,
    tr: f64,
}

impl<'a> Smoothed<'a> {
    /// Seeds the sums over bars 1..n−1.
    #[inline(always)]
    fn new(h: &'a [f64], l: &'a [f64], c: &'a [f64], n: usize) -> Self {
        let mut s = Smoothed { h, l, c, n: n as f64, plus: 0.0, minus: 0.0, tr: 0.0 };
        for t in 1..n {
            let (p, m, tr) = s.raw(t);
            s.plus += p;
            s.minus += m;
            s.tr += tr;
        }
        s
    }

    /// Bar t's +DM, −DM (only the larger move counts) and true range.
    #[inline(always)]
    fn raw(&self, t: usize) -> (f64, f64, f64) {
        let diff_p = self.h[t] - self.h[t - 1];
        let diff_m = self.l[t - 1] - self.l[t];
        let plus = if diff_p > 0.0 && diff_p > diff_m { diff_p } else { 0.0 };
        let minus = if diff_m > 0.0 && diff_p < diff_m { diff_m } else { 0.0 };
        (plus, minus, true_range(self.h[t], self.l[t], self.c[t - 1]))
    }

    /// One Wilder step with bar t.
    #[inline(always)]
    fn step(&mut self, t: usize) {
        let (p, m, tr) = self.raw(t);
        self.plus = self.plus - self.plus / self.n + p;
        self.minus = self.minus - self.minus / self.n + m;
        self.tr = self.tr - self.tr / self.n + tr;
    }

    /// (+DI, −DI), or None while the smoothed range is zero (a sum of ranges: tested exactly).
    #[inline(always)]
    fn di(&self) -> Option<(f64, f64)> {
        (self.tr > 0.0).then(|| (100.0 * (self.plus / self.tr), 100.0 * (self.minus / self.tr)))
    }

    /// Directional index from (+DI, −DI), or None where TA-Lib skips the bar.
    #[inline(always)]
    fn dx((pdi, mdi): (f64, f64)) -> Option<f64> {
        let sum = mdi + pdi;
        (!is_zero(sum)).then(|| 100.0 * ((mdi - pdi).abs() / sum))
    }
}

/// (LINEARREG, LINEARREG_SLOPE) over windows of `n` values with x = bars ago, TA-Lib's formulas.
/// The sums Σy and Σi·y run in O(1) per bar and, as TA-Lib does, are rebuilt from the window every
/// 32n bars and whenever the departing value outweighs the window (100× its Σ|y|), so neither
/// drift nor a passing outlier leaves residue behind.
#[inline(always)]
pub(super) fn regression_core(x: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let len = x.len();
    if n == 0 || len < n {
        return (vec![f64::NAN; len], vec![f64::NAN; len]);
    }
    let nf = n as f64;
    let sum_x = 0.5 * ((nf - 1.0) * nf);
    let n_sum_x_sqr = ((2.0 * nf - 1.0) * ((nf - 1.0) * nf)) / 6.0 * nf;
    let divisor = sum_x * sum_x - n_sum_x_sqr;
    // (Σy, Σ|y|, Σi·y) of the window ending at t, oldest value first with weight n−1.
    let window_sums = |t: usize| {
        let (mut sy, mut sa, mut sxy) = (0.0, 0.0, 0.0);
        let mut w = nf - 1.0;
        for &v in &x[t + 1 - n..=t] {
            sy += v;
            sa += v.abs();
            sxy += v * w;
            w -= 1.0;
        }
        (sy, sa, sxy)
    };
    let reseed_every = 32 * n;
    let mut bars_left = reseed_every;
    let (mut sum_y, mut sum_abs, mut sum_xy) = window_sums(n - 1);
    let (mut line, mut slope) = (column(len, len + 1 - n), column(len, len + 1 - n));
    for t in n - 1..len {
        if t > n - 1 {
            let leaving = x[t - n];
            let leaving_weighted = nf * leaving;
            bars_left -= 1;
            let mut reseed = bars_left == 0;
            if !reseed {
                sum_abs = sum_abs - leaving.abs() + x[t].abs();
                reseed = leaving_weighted.abs() > sum_abs * 100.0;
            }
            if reseed {
                bars_left = reseed_every;
                (sum_y, sum_abs, sum_xy) = window_sums(t);
            } else {
                // Every value ages one bar: Σi·y gains Σy; the leaving value had weight n−1.
                sum_xy = (sum_xy + sum_y) - leaving_weighted;
                sum_y = (sum_y - leaving) + x[t];
            }
        }
        let m = (nf * sum_xy - sum_x * sum_y) / divisor;
        let b = (sum_y - m * sum_x) / nf;
        put(&mut line, m.mul_add(nf - 1.0, b));
        put(&mut slope, m);
    }
    (line, slope)
}
