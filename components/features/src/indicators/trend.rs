//! Trend: directional movement (+DI, −DI, ADX, ADXR), parabolic SAR, linear regression.

use super::volatility::true_range;
use super::{common_len, is_zero, pad};

/// Plus directional indicator over `n` ≥ 2 bars (Wilder smoothing, TA-Lib seeding).
pub fn plus_di(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_indicator(h, l, c, n, true)
}

/// Minus directional indicator over `n` ≥ 2 bars.
pub fn minus_di(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    directional_indicator(h, l, c, n, false)
}

/// Average directional index over `n` ≥ 2 bars (first value at bar 2n−1).
pub fn adx(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n < 2 || len < 2 * n {
        return vec![f64::NAN; len];
    }
    let nf = n as f64;
    let mut dm = Smoothed::new(h, l, c, n);
    let mut out = vec![f64::NAN; 2 * n - 1];
    let mut sum_dx = 0.0;
    for t in n..2 * n {
        dm.step(t);
        if let Some(dx) = dm.dx() {
            sum_dx += dx;
        }
    }
    let mut adx = sum_dx / nf;
    out.push(adx);
    for t in 2 * n..len {
        dm.step(t);
        if let Some(dx) = dm.dx() {
            adx = ((adx * (nf - 1.0)) + dx) / nf;
        }
        out.push(adx);
    }
    out
}

/// ADX rating: the mean of ADX now and n−1 bars ago.
pub fn adxr(h: &[f64], l: &[f64], c: &[f64], n: usize) -> Vec<f64> {
    let a = adx(h, l, c, n);
    let lag = n.saturating_sub(1);
    (0..a.len()).map(|t| if t < lag { f64::NAN } else { (a[t] + a[t - lag]) / 2.0 }).collect()
}

/// Parabolic SAR with acceleration step `accel` capped at `max` (both ≥ 0).
pub fn sar(h: &[f64], l: &[f64], accel: f64, max: f64) -> Vec<f64> {
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
    let mut out = vec![f64::NAN];
    for t in 1..len {
        let (prev_low, prev_high) = (new_low, new_high);
        (new_low, new_high) = (l[t], h[t]);
        if is_long {
            if new_low <= sar {
                // Reversal to short: the SAR jumps to the extreme point.
                is_long = false;
                sar = ep.max(prev_high).max(new_high);
                out.push(sar);
                af = step;
                ep = new_low;
                sar = af.mul_add(ep - sar, sar);
                sar = sar.max(prev_high).max(new_high);
            } else {
                out.push(sar);
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
            out.push(sar);
            af = step;
            ep = new_high;
            sar = af.mul_add(ep - sar, sar);
            sar = sar.min(prev_low).min(new_low);
        } else {
            out.push(sar);
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

/// Least-squares line over `n` values, evaluated at the newest bar.
pub fn linearreg(x: &[f64], n: usize) -> Vec<f64> {
    let nf = n as f64;
    let sum_x = 0.5 * ((nf - 1.0) * nf);
    regression(x, n, |m, sum_y| {
        let b = (sum_y - m * sum_x) / nf;
        m.mul_add(nf - 1.0, b)
    })
}

/// Slope of the least-squares line over `n` values, per bar.
pub fn linearreg_slope(x: &[f64], n: usize) -> Vec<f64> {
    regression(x, n, |m, _| m)
}

/// +DI or −DI: smoothed DM over smoothed TR, ×100.
fn directional_indicator(h: &[f64], l: &[f64], c: &[f64], n: usize, plus: bool) -> Vec<f64> {
    let len = common_len(&[h, l, c]);
    if n < 2 || len <= n {
        return vec![f64::NAN; len];
    }
    let mut dm = Smoothed::new(h, l, c, n);
    let out = (n..len).map(|t| {
        dm.step(t);
        let (pdi, mdi) = dm.di().unwrap_or((0.0, 0.0));
        if plus { pdi } else { mdi }
    });
    pad(len, out.collect())
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
    fn raw(&self, t: usize) -> (f64, f64, f64) {
        let diff_p = self.h[t] - self.h[t - 1];
        let diff_m = self.l[t - 1] - self.l[t];
        let plus = if diff_p > 0.0 && diff_p > diff_m { diff_p } else { 0.0 };
        let minus = if diff_m > 0.0 && diff_p < diff_m { diff_m } else { 0.0 };
        (plus, minus, true_range(self.h[t], self.l[t], self.c[t - 1]))
    }

    /// One Wilder step with bar t.
    fn step(&mut self, t: usize) {
        let (p, m, tr) = self.raw(t);
        self.plus = self.plus - self.plus / self.n + p;
        self.minus = self.minus - self.minus / self.n + m;
        self.tr = self.tr - self.tr / self.n + tr;
    }

    /// (+DI, −DI), or None while the smoothed range is zero (a sum of ranges: tested exactly).
    fn di(&self) -> Option<(f64, f64)> {
        (self.tr > 0.0).then(|| (100.0 * (self.plus / self.tr), 100.0 * (self.minus / self.tr)))
    }

    /// Directional index, or None where TA-Lib skips the bar.
    fn dx(&self) -> Option<f64> {
        let (pdi, mdi) = self.di()?;
        let sum = mdi + pdi;
        (!is_zero(sum)).then(|| 100.0 * ((mdi - pdi).abs() / sum))
    }
}

/// Regression over windows of `n` values with x = bars ago, TA-Lib's formulas; the output is
/// `f(slope, Σy)`. The sums Σy and Σi·y run in O(1) per bar and, as TA-Lib does,
/// are rebuilt from the window every 32n bars and whenever the departing value outweighs the window
/// (100× its Σ|y|), so neither drift nor a passing outlier leaves residue behind.
fn regression(x: &[f64], n: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let len = x.len();
    if n == 0 || len < n {
        return vec![f64::NAN; len];
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
    let mut out = Vec::with_capacity(len + 1 - n);
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
        out.push(f(m, sum_y));
    }
    pad(len, out)
}
