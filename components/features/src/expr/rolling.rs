//! Rolling-window kernels. Each one reproduces the numerics of the code Qlib 0.9.7 delegates to —
//! pandas 2.x window aggregations with `min_periods=1`, or Qlib's own Cython loops for
//! `Slope`/`Rsquare`/`Resi` — so results match Qlib to rounding: the same NaN rules, the same
//! compensated running sums, the same tie-breaking.

use std::borrow::Cow;
use std::cell::RefCell;

thread_local! {
    /// Column buffers recycled on this thread. An Alpha158 evaluation makes hundreds of columns per
    /// symbol; handing them back to the allocator makes it return pages to the OS and fault them in
    /// again for the next node, which costs more than the arithmetic of most nodes.
    static SPARE: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Most buffers kept for reuse per thread (a few MB at Alpha158's peak).
const MAX_SPARE: usize = 512;

/// An empty column with room for `len` values, recycled when one is spare.
pub(crate) fn column(len: usize) -> Vec<f64> {
    let mut v = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.reserve(len);
    v
}

/// `len` copies of `value` in a recycled column.
pub(crate) fn filled(len: usize, value: f64) -> Vec<f64> {
    let mut v = column(len);
    v.resize(len, value);
    v
}

/// Gives a column that is no longer needed back for reuse.
pub(crate) fn recycle(v: Vec<f64>) {
    if v.capacity() > 0 {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARE {
                s.push(v);
            }
        });
    }
}

/// Runs `f` compiled for AVX where the CPU has it: element-wise loops with divisions and square
/// roots then go 4 wide (the same IEEE results).
#[inline(always)]
pub(crate) fn with_avx<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { avx(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn avx<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` of every value of `x`, in a recycled column.
fn map(x: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut out = column(x.len());
    out.extend(x.iter().map(|&v| f(v)));
    out
}

/// Rows a rolling operator looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The current row and the `n - 1` rows before it (`n >= 1`).
    Last(usize),
    /// Every row from the first to the current one (Qlib's `N = 0`).
    Expanding,
}

impl Window {
    /// Window length in rows (`usize::MAX` for expanding windows).
    fn size(self) -> usize {
        match self {
            Window::Last(n) => n.max(1),
            Window::Expanding => usize::MAX,
        }
    }
}

/// Smoothing of `EMA`: a span in rows, or a smoothing factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// pandas `ewm(span = n)`: alpha = 2 / (n + 1).
    Rows(usize),
    /// pandas `ewm(alpha = a)` with 0 < a < 1.
    Alpha(f64),
}

/// First row of the window that ends at row `i`.
fn start(i: usize, w: usize) -> usize {
    (i + 1).saturating_sub(w)
}

/// pandas turns ±inf into NaN before every window aggregation (`_prep_values`).
fn prep(x: &[f64]) -> Cow<'_, [f64]> {
    if x.iter().any(|v| v.is_infinite()) {
        Cow::Owned(map(x, |v| if v.is_infinite() { f64::NAN } else { v }))
    } else {
        Cow::Borrowed(x)
    }
}

/// Slides a pandas-style accumulator over `x`: remove the row leaving the window, then add the new one.
fn slide<A: Accumulator>(x: &[f64], w: Window, mut acc: A) -> Vec<f64> {
    let w = w.size().min(x.len());
    let mut out = column(x.len());
    // Split where rows start leaving, so the steady-state loop has no test on the row index.
    for &v in &x[..w] {
        acc.add(v);
        out.push(acc.value());
    }
    for (&old, &v) in x.iter().zip(&x[w..]) {
        acc.remove(old);
        acc.add(v);
        out.push(acc.value());
    }
    out
}

/// Several windows of one accumulator in a single pass over `x`: the accumulators' dependency chains
/// overlap, and each column is exactly what [`slide`] gives for that window.
fn slide_many<A: Accumulator>(x: &[f64], windows: &[Window], new: impl Fn() -> A) -> Vec<Vec<f64>> {
    let mut accs: Vec<(usize, A, Vec<f64>)> = windows.iter().map(|w| (w.size(), new(), column(x.len()))).collect();
    for i in 0..x.len() {
        for (w, acc, out) in &mut accs {
            if i >= *w {
                acc.remove(x[i - *w]);
            }
            acc.add(x[i]);
            out.push(acc.value());
        }
    }
    accs.into_iter().map(|(_, _, out)| out).collect()
}

/// A running window statistic in pandas' add/remove form.
trait Accumulator {
    /// Takes a row into the window.
    fn add(&mut self, v: f64);
    /// Drops a row from the window.
    fn remove(&mut self, v: f64);
    /// The statistic of the current window.
    fn value(&self) -> f64;
}

/// pandas `roll_sum`/`roll_mean`: Kahan sums with separate compensations for adds and removes, a count
/// of negative values (a mean of non-negatives never goes below 0) and the length of the run of equal
/// values (a constant window gives that constant exactly, not a rounding residue).
struct KahanSum {
    mean: bool,
    nobs: usize,
    sum: f64,
    comp_add: f64,
    comp_remove: f64,
    neg_ct: usize,
    same_run: usize,
    prev: f64,
}

impl KahanSum {
    fn new(x: &[f64], mean: bool) -> Self {
        let prev = x.first().copied().unwrap_or(f64::NAN);
        KahanSum { mean, nobs: 0, sum: 0.0, comp_add: 0.0, comp_remove: 0.0, neg_ct: 0, same_run: 0, prev }
    }
}

impl Accumulator for KahanSum {
    fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.nobs += 1;
        let y = v - self.comp_add;
        let t = self.sum + y;
        self.comp_add = t - self.sum - y;
        self.sum = t;
        if v.is_sign_negative() {
            self.neg_ct += 1;
        }
        self.same_run = if v == self.prev { self.same_run + 1 } else { 1 };
        self.prev = v;
    }

    fn remove(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.nobs -= 1;
        let y = -v - self.comp_remove;
        let t = self.sum + y;
        self.comp_remove = t - self.sum - y;
        self.sum = t;
        if v.is_sign_negative() {
            self.neg_ct -= 1;
        }
    }

    fn value(&self) -> f64 {
        if self.nobs == 0 {
            return f64::NAN;
        }
        let same = self.same_run >= self.nobs;
        if !self.mean {
            return if same { self.prev * self.nobs as f64 } else { self.sum };
        }
        let m = self.sum / self.nobs as f64;
        if same {
            self.prev
        } else if (self.neg_ct == 0 && m < 0.0) || (self.neg_ct == self.nobs && m > 0.0) {
            0.0
        } else {
            m
        }
    }
}

/// pandas `roll_var` (ddof = 1): Welford's update with Kahan compensation, exact 0 for constant windows.
struct Welford {
    nobs: f64,
    mean: f64,
    ssqdm: f64,
    comp_add: f64,
    comp_remove: f64,
    same_run: usize,
    prev: f64,
}

impl Welford {
    fn new(x: &[f64]) -> Self {
        let prev = x.first().copied().unwrap_or(f64::NAN);
        Welford { nobs: 0.0, mean: 0.0, ssqdm: 0.0, comp_add: 0.0, comp_remove: 0.0, same_run: 0, prev }
    }
}

impl Accumulator for Welford {
    fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.same_run = if v == self.prev { self.same_run + 1 } else { 1 };
        self.prev = v;
        self.nobs += 1.0;
        let prev_mean = self.mean - self.comp_add;
        let y = v - self.comp_add;
        let t = y - self.mean;
        self.comp_add = t + self.mean - y;
        self.mean += t / self.nobs;
        self.ssqdm += (v - prev_mean) * (v - self.mean);
    }

    fn remove(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.nobs -= 1.0;
        if self.nobs != 0.0 {
            let prev_mean = self.mean - self.comp_remove;
            let y = v - self.comp_remove;
            let t = y - self.mean;
            self.comp_remove = t + self.mean - y;
            self.mean -= t / self.nobs;
            self.ssqdm -= (v - prev_mean) * (v - self.mean);
        } else {
            self.mean = 0.0;
            self.ssqdm = 0.0;
        }
    }

    fn value(&self) -> f64 {
        if self.nobs <= 1.0 {
            f64::NAN
        } else if self.same_run as f64 >= self.nobs {
            0.0
        } else {
            self.ssqdm / (self.nobs - 1.0)
        }
    }
}

/// Rolling mean (pandas `rolling(N, min_periods=1).mean()`).
pub fn mean(x: &[f64], w: Window) -> Vec<f64> {
    means(x, &[w], true).swap_remove(0)
}

/// Rolling sum; NaN only where the window holds no value.
pub fn sum(x: &[f64], w: Window) -> Vec<f64> {
    means(x, &[w], false).swap_remove(0)
}

/// Rolling sample variance (ddof = 1); NaN until two values exist.
pub fn var(x: &[f64], w: Window) -> Vec<f64> {
    let x = prep(x);
    slide(&x, w, Welford::new(&x))
}

/// Rolling sample standard deviation (ddof = 1).
pub fn std(x: &[f64], w: Window) -> Vec<f64> {
    let mut v = var(x, w);
    v.iter_mut().for_each(|v| *v = zsqrt(*v));
    v
}

/// [`mean`] (or with `mean: false`, [`sum`]) of `x` over several windows in one pass.
pub fn means(x: &[f64], windows: &[Window], mean: bool) -> Vec<Vec<f64>> {
    let x = prep(x);
    flag_means(&x, windows, mean).unwrap_or_else(|| {
        #[cfg(target_arch = "x86_64")]
        if windows.len() > 1 && lanes::available() {
            return lanes::means(&x, windows, mean);
        }
        slide_many(&x, windows, || KahanSum::new(&x, mean))
    })
}

/// [`means`] of a column of 0s and 1s (a comparison such as `$close>Ref($close,1)`), or `None` if
/// `x` holds anything else. On such values [`KahanSum`] is exact integer arithmetic (its
/// compensations stay 0, no value is negative, a constant window's value is its count over `nobs`
/// too), so a plain count gives the same bits.
fn flag_means(x: &[f64], windows: &[Window], mean: bool) -> Option<Vec<Vec<f64>>> {
    if !x.iter().all(|&v| v.to_bits() == 0 || v == 1.0) {
        return None;
    }
    // `ones[i]`: how many 1s come before row `i`, so a window's count is one subtraction.
    let mut ones = Vec::with_capacity(x.len() + 1);
    ones.push(0);
    ones.extend(x.iter().scan(0usize, |k, &v| {
        *k += usize::from(v == 1.0);
        Some(*k)
    }));
    let cols = windows.iter().map(|w| {
        let w = w.size();
        let head = w.min(x.len());
        let mut out = column(x.len());
        out.extend((0..head).map(|i| if mean { ones[i + 1] as f64 / (i + 1) as f64 } else { ones[i + 1] as f64 }));
        // Full windows: the value of each count looked up, the same bits as dividing it by `w`.
        let values: Vec<f64> = (0..=head).map(|k| if mean { k as f64 / w as f64 } else { k as f64 }).collect();
        out.extend(ones[head + 1..].iter().zip(&ones[1..]).map(|(&end, &start)| values[end - start]));
        out
    });
    Some(cols.collect())
}

/// [`var`] of `x` over several windows in one pass.
pub fn vars(x: &[f64], windows: &[Window]) -> Vec<Vec<f64>> {
    let x = prep(x);
    #[cfg(target_arch = "x86_64")]
    if windows.len() > 1 && lanes::available() {
        return lanes::vars(&x, windows);
    }
    slide_many(&x, windows, || Welford::new(&x))
}

/// [`std`] of `x` over several windows in one pass.
pub fn stds(x: &[f64], windows: &[Window]) -> Vec<Vec<f64>> {
    let mut cols = vars(x, windows);
    // Column by column (not `flatten`), so the loop vectorises.
    with_avx(|| {
        for col in &mut cols {
            col.iter_mut().for_each(|v| *v = zsqrt(*v));
        }
    });
    cols
}

/// pandas' `zsqrt`: a variance that rounds below zero gives 0, not NaN.
fn zsqrt(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v.sqrt() }
}

/// Number of non-NaN values in the window (infinities count, as in pandas `count`).
pub fn count(x: &[f64], w: Window) -> Vec<f64> {
    let w = w.size();
    let mut n = 0usize;
    let mut out = column(x.len());
    for i in 0..x.len() {
        if i >= w && !x[i - w].is_nan() {
            n -= 1;
        }
        if !x[i].is_nan() {
            n += 1;
        }
        out.push(n as f64);
    }
    out
}

/// Rolling maximum ignoring NaN.
pub fn max(x: &[f64], w: Window) -> Vec<f64> {
    extremes(x, &[w], true).swap_remove(0)
}

/// Rolling minimum ignoring NaN.
pub fn min(x: &[f64], w: Window) -> Vec<f64> {
    extremes(x, &[w], false).swap_remove(0)
}

/// [`max`] (or with `max: false`, [`min`]) of `x` over several windows in one pass.
pub fn extremes(x: &[f64], windows: &[Window], max: bool) -> Vec<Vec<f64>> {
    if max { extreme(x, windows, |new, old| new >= old) } else { extreme(x, windows, |new, old| new <= old) }
}

/// First entry of the increasing row list `live` at or after row `s`.
fn first_from(live: &[usize], s: usize) -> Option<usize> {
    live.get(live.partition_point(|&j| j < s)).copied()
}

/// Monotonic-queue extreme: `dominates(new, old)` drops `old` for good once `new` arrives. The queue
/// of the widest window holds every row not dominated by a later one, so the extreme of any window
/// ending at row `i` is its first queued row at or after the window's start.
fn extreme(x: &[f64], windows: &[Window], dominates: impl Fn(f64, f64) -> bool) -> Vec<Vec<f64>> {
    let x = prep(x);
    let widest = windows.iter().map(|w| w.size()).max().unwrap_or(1);
    let mut outs: Vec<Vec<f64>> = windows.iter().map(|_| column(x.len())).collect();
    // `q[head..]` is the queue; rows before `head` have left the widest window.
    let mut q: Vec<usize> = Vec::with_capacity(x.len());
    let mut head = 0;
    for i in 0..x.len() {
        if !x[i].is_nan() {
            while q.len() > head && dominates(x[i], x[q[q.len() - 1]]) {
                q.pop();
            }
            q.push(i);
        }
        let s = start(i, widest);
        while head < q.len() && q[head] < s {
            head += 1;
        }
        for (w, out) in windows.iter().zip(&mut outs) {
            out.push(first_from(&q[head..], start(i, w.size())).map_or(f64::NAN, |f| x[f]));
        }
    }
    outs
}

/// 1-based position of the window's maximum (numpy `argmax + 1`: first occurrence; a NaN wins).
pub fn idxmax(x: &[f64], w: Window) -> Vec<f64> {
    arg_extremes(x, &[w], true).swap_remove(0)
}

/// 1-based position of the window's minimum (numpy `argmin + 1`: first occurrence; a NaN wins).
pub fn idxmin(x: &[f64], w: Window) -> Vec<f64> {
    arg_extremes(x, &[w], false).swap_remove(0)
}

/// [`idxmax`] (or with `max: false`, [`idxmin`]) of `x` over several windows in one pass.
pub fn arg_extremes(x: &[f64], windows: &[Window], max: bool) -> Vec<Vec<f64>> {
    if max { arg_extreme(x, windows, |new, old| new > old) } else { arg_extreme(x, windows, |new, old| new < old) }
}

/// Qlib applies `np.argmax` to the raw window, and numpy reports the first NaN if there is one;
/// windows without any finite value are NaN (pandas `apply` with `min_periods=1`). One queue of the
/// widest window serves every window, as in [`extreme`].
fn arg_extreme(x: &[f64], windows: &[Window], beats: impl Fn(f64, f64) -> bool) -> Vec<Vec<f64>> {
    let x = prep(x);
    let widest = windows.iter().map(|w| w.size()).max().unwrap_or(1);
    let mut outs: Vec<Vec<f64>> = windows.iter().map(|_| column(x.len())).collect();
    // Strict `beats` keeps earlier equal values in front: the first occurrence wins.
    let (mut q, mut nans): (Vec<usize>, Vec<usize>) = (Vec::with_capacity(x.len()), Vec::new());
    let (mut head, mut nan_head) = (0, 0);
    for i in 0..x.len() {
        if x[i].is_nan() {
            nans.push(i);
        } else {
            while q.len() > head && beats(x[i], x[q[q.len() - 1]]) {
                q.pop();
            }
            q.push(i);
        }
        let s = start(i, widest);
        while head < q.len() && q[head] < s {
            head += 1;
        }
        while nan_head < nans.len() && nans[nan_head] < s {
            nan_head += 1;
        }
        for (w, out) in windows.iter().zip(&mut outs) {
            let s = start(i, w.size());
            let v = match (first_from(&q[head..], s), first_from(&nans[nan_head..], s)) {
                (None, _) => f64::NAN,
                (Some(_), Some(n)) => (n - s + 1) as f64,
                (Some(m), None) => (m - s + 1) as f64,
            };
            out.push(v);
        }
    }
    outs
}

/// Rolling windows up to this many values are searched by counting rather than by halving: a
/// branch-free count of a few dozen values beats a binary search's mispredicted branches.
const COUNTED: usize = 64;

/// How many of the sorted values `v` are below `old`, below `new` and at most `new`, in one pass.
fn counts(v: &[f64], old: f64, new: f64) -> (usize, usize, usize) {
    if v.len() <= COUNTED {
        v.iter().fold((0, 0, 0), |(r, b, a), &e| {
            (r + usize::from(e < old), b + usize::from(e < new), a + usize::from(e <= new))
        })
    } else {
        (v.partition_point(|&e| e < old), v.partition_point(|&e| e < new), v.partition_point(|&e| e <= new))
    }
}

/// How many of the sorted values `v` are below `x`, and how many are at most `x`.
fn below_and_at_most(v: &[f64], x: f64) -> (usize, usize) {
    let (_, below, at_most) = counts(v, x, x);
    (below, at_most)
}

/// The window's non-NaN values kept sorted; insertion and removal by counting or binary search.
#[derive(Default)]
struct SortedWindow {
    v: Vec<f64>,
}

/// A value's place among the window's values: how many are below it and how many at most it
/// (itself included), what [`rank_pct`] needs.
type Place = (usize, usize);

impl SortedWindow {
    /// Adds `x`, returning its [`Place`].
    fn insert(&mut self, x: f64) -> Place {
        let (below, at_most) = below_and_at_most(&self.v, x);
        self.v.insert(at_most, x);
        (below, at_most + 1)
    }

    fn remove(&mut self, x: f64) {
        let at = below_and_at_most(&self.v, x).0;
        if at < self.v.len() {
            self.v.remove(at);
        }
    }

    /// `insert(new)` then `remove(old)` in one shift of the values between their two positions,
    /// returning the [`Place`] of `new`, counted in the same pass.
    fn replace(&mut self, old: f64, new: f64) -> Place {
        let v = &mut self.v;
        let (r, below, a) = counts(v, old, new);
        if r >= v.len() {
            return self.insert(new);
        }
        if a > r {
            v.copy_within(r + 1..a, r);
            v[a - 1] = new;
        } else {
            v.copy_within(a..r, a + 1);
            v[a] = new;
        }
        (below - usize::from(old < new), a + 1 - usize::from(old <= new))
    }

    /// Slides over `x`, collecting `f` of each window and the current value's [`Place`] in it.
    fn slide(x: &[f64], w: Window, mut f: impl FnMut(&SortedWindow, Option<Place>) -> f64) -> Vec<f64> {
        let mut out = column(x.len());
        Self::walk(x, w, |win, place| out.push(f(win, place)));
        out
    }

    /// Slides over `x`, handing each window to `f` with the current value's [`Place`] in it (none
    /// where the current value is NaN).
    fn walk(x: &[f64], w: Window, mut f: impl FnMut(&SortedWindow, Option<Place>)) {
        let w = w.size();
        let mut win = SortedWindow::default();
        for i in 0..x.len() {
            let leaving = if i >= w { x[i - w] } else { f64::NAN };
            let place = match (x[i].is_nan(), leaving.is_nan()) {
                (false, false) => Some(win.replace(leaving, x[i])),
                (false, true) => Some(win.insert(x[i])),
                (true, false) => {
                    win.remove(leaving);
                    None
                }
                (true, true) => None,
            };
            f(&win, place);
        }
    }
}

/// Rolling quantile with linear interpolation (pandas `rolling.quantile(q)`).
pub fn quantile(x: &[f64], w: Window, q: f64) -> Vec<f64> {
    let x = prep(x);
    SortedWindow::slide(&x, w, |win, _| quantile_of(&win.v, q))
}

/// [`quantile`] of `x` over one window for several probabilities, sharing the sorted window.
pub fn quantiles(x: &[f64], w: Window, qs: &[f64]) -> Vec<Vec<f64>> {
    let stats: Vec<Option<f64>> = qs.iter().map(|&q| Some(q)).collect();
    sorted_stats(x, w, &stats)
}

/// Statistics of `x` over one window that share its sorted values: `Some(q)` the [`quantile`] `q`,
/// `None` the [`rank`]. Counting the sorted non-NaN values gives the same counts as [`rank`]'s scan
/// of the raw window, so the same bits.
pub(crate) fn sorted_stats(x: &[f64], w: Window, stats: &[Option<f64>]) -> Vec<Vec<f64>> {
    let x = prep(x);
    let mut out: Vec<Vec<f64>> = stats.iter().map(|_| column(x.len())).collect();
    SortedWindow::walk(&x, w, |win, place| {
        let v = &win.v;
        for (col, stat) in out.iter_mut().zip(stats) {
            col.push(match (*stat, place) {
                (Some(q), _) => quantile_of(v, q),
                (None, Some((below, at_most))) => rank_pct(below, at_most, v.len()),
                (None, None) => f64::NAN,
            });
        }
    });
    out
}

/// pandas' own arithmetic for the average of ranks `below + 1 ..= at_most`, then / count.
fn rank_pct(below: usize, at_most: usize, n: usize) -> f64 {
    if at_most == below + 1 {
        // No ties: the formula below reduces to `at_most / n` exactly (integers below 2^53).
        return at_most as f64 / n as f64;
    }
    let (hi, lo) = (at_most as f64, below as f64 + 1.0);
    ((hi * (hi + 1.0) / 2.0) - ((lo - 1.0) * lo / 2.0)) / (hi - lo + 1.0) / n as f64
}

/// The `q` quantile of sorted values, interpolated linearly.
fn quantile_of(v: &[f64], q: f64) -> f64 {
    match v.len() {
        0 => f64::NAN,
        1 => v[0],
        n => {
            let pos = q * (n - 1) as f64;
            let lo = pos as usize;
            if pos == lo as f64 || lo + 1 >= n {
                v[lo.min(n - 1)]
            } else {
                v[lo] + (v[lo + 1] - v[lo]) * (pos - lo as f64)
            }
        }
    }
}

/// Rolling median (pandas `rolling.median()`: mean of the two middle values for even counts).
pub fn median(x: &[f64], w: Window) -> Vec<f64> {
    let x = prep(x);
    SortedWindow::slide(&x, w, |win, _| {
        let v = &win.v;
        let n = v.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2] + v[n / 2 - 1]) / 2.0,
        }
    })
}

/// Percentile rank of the current value within its window (pandas `rolling.rank(pct=True)`,
/// ties averaged); NaN where the current value is NaN.
pub fn rank(x: &[f64], w: Window) -> Vec<f64> {
    let x = prep(x);
    let pct = rank_pct;
    match w {
        // Fixed windows: count the raw window directly (NaN compares false), a loop that vectorises.
        Window::Last(_) => {
            let mut out = column(x.len());
            out.extend((0..x.len()).map(|i| {
                let cur = x[i];
                if cur.is_nan() {
                    return f64::NAN;
                }
                let (below, at_most, n) = x[start(i, w.size())..=i].iter().fold((0, 0, 0), |(b, a, n), &v| {
                    (b + usize::from(v < cur), a + usize::from(v <= cur), n + usize::from(!v.is_nan()))
                });
                pct(below, at_most, n)
            }));
            out
        }
        Window::Expanding => {
            SortedWindow::slide(&x, w, |win, place| place.map_or(f64::NAN, |(b, a)| pct(b, a, win.v.len())))
        }
    }
}

/// Applies `f` to each raw window (NaN included) that holds at least one finite value, as pandas'
/// `rolling(N, min_periods=1).apply(f, raw=True)` does.
fn apply(x: &[f64], w: Window, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let x = prep(x);
    let finite = count(&x, w);
    let w = w.size();
    let mut out = column(x.len());
    out.extend((0..x.len()).map(|i| if finite[i] >= 1.0 { f(&x[start(i, w)..=i]) } else { f64::NAN }));
    recycle(finite);
    out
}

/// Qlib's `Mad`: mean absolute deviation from the mean over the window's non-NaN values.
pub fn mad(x: &[f64], w: Window) -> Vec<f64> {
    apply(x, w, |win| {
        let vals = win.iter().filter(|v| !v.is_nan());
        let n = vals.clone().count() as f64;
        let m = vals.clone().sum::<f64>() / n;
        vals.map(|v| (v - m).abs()).sum::<f64>() / n
    })
}

/// Qlib's `WMA`: `nanmean(w * x)` with weights 1..=L normalised to sum 1. Note that Qlib takes the
/// *mean* of the weighted terms, so a full window gives the weighted average divided by N.
pub fn wma(x: &[f64], w: Window) -> Vec<f64> {
    apply(x, w, |win| {
        let len = win.len() as f64;
        let total = len * (len + 1.0) / 2.0;
        let mut s = 0.0;
        let mut n = 0usize;
        for (k, v) in win.iter().enumerate() {
            if !v.is_nan() {
                s += (k as f64 + 1.0) / total * v;
                n += 1;
            }
        }
        s / n as f64
    })
}

/// Exponentially weighted mean (pandas `ewm(..., adjust=True, min_periods=1).mean()`).
pub fn ema(x: &[f64], span: Span) -> Vec<f64> {
    let x = prep(x);
    // pandas converts both forms to a centre of mass and back to alpha.
    let com = match span {
        Span::Rows(n) => (n as f64 - 1.0) / 2.0,
        Span::Alpha(a) => 1.0 / a - 1.0,
    };
    let alpha = 1.0 / (1.0 + com);
    let old_factor = 1.0 - alpha;
    let mut out = column(x.len());
    let Some(&first) = x.first() else { return out };
    let mut weighted = first;
    let mut nobs = usize::from(!first.is_nan());
    let mut old_wt = 1.0;
    out.push(if nobs >= 1 { weighted } else { f64::NAN });
    for &cur in &x[1..] {
        let obs = !cur.is_nan();
        nobs += usize::from(obs);
        if !weighted.is_nan() {
            old_wt *= old_factor;
            if obs {
                // pandas skips the update when equal, keeping constant series exact.
                if weighted != cur {
                    weighted = (old_wt * weighted + cur) / (old_wt + 1.0);
                }
                old_wt += 1.0;
            }
        } else if obs {
            weighted = cur;
        }
        out.push(if nobs >= 1 { weighted } else { f64::NAN });
    }
    out
}

/// Which statistic of Qlib's rolling linear regression on x = 1..N to return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fit {
    Slope,
    Rsquare,
    Resi,
}

/// Qlib's Cython `rolling_slope`/`rolling_rsquare`/`rolling_resi` (and their expanding forms):
/// running sums over x = window positions, NaN rows skipped; no inf-to-NaN conversion. The sums
/// serve every statistic in `fits`, one column each.
fn regression(y: &[f64], w: Window, fits: &[Fit]) -> Vec<Vec<f64>> {
    let (mut i_sum, mut x_sum, mut x2_sum, mut y_sum, mut y2_sum, mut xy_sum) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut outs: Vec<Vec<f64>> = fits.iter().map(|_| column(y.len())).collect();
    match w {
        Window::Last(n) => {
            let n = n.max(1);
            let wf = n as f64;
            // Qlib pre-fills its window with NaN, so every slot starts out missing.
            let mut na_count = n;
            for i in 0..y.len() {
                // Shift every x down by one, then drop the oldest slot and take the new value at x = n.
                xy_sum -= y_sum;
                x2_sum = x2_sum + i_sum - 2.0 * x_sum;
                x_sum -= i_sum;
                let old = if i >= n { y[i - n] } else { f64::NAN };
                if old.is_nan() {
                    na_count -= 1;
                } else {
                    i_sum -= 1.0;
                    y_sum -= old;
                    y2_sum -= old * old;
                }
                let v = y[i];
                if v.is_nan() {
                    na_count += 1;
                } else {
                    i_sum += 1.0;
                    x_sum += wf;
                    x2_sum += wf * wf;
                    y_sum += v;
                    y2_sum += v * v;
                    xy_sum += wf * v;
                }
                let cnt = (n - na_count) as f64;
                for (&fit, out) in fits.iter().zip(&mut outs) {
                    out.push(fit_value(fit, cnt, wf, v, x_sum, x2_sum, y_sum, y2_sum, xy_sum));
                }
            }
        }
        Window::Expanding => {
            let mut na_count = 0usize;
            for (i, &v) in y.iter().enumerate() {
                let size = (i + 1) as f64;
                if v.is_nan() {
                    na_count += 1;
                } else {
                    x_sum += size;
                    x2_sum += size * size;
                    y_sum += v;
                    y2_sum += v * v;
                    xy_sum += size * v;
                }
                let cnt = (i + 1 - na_count) as f64;
                for (&fit, out) in fits.iter().zip(&mut outs) {
                    out.push(fit_value(fit, cnt, size, v, x_sum, x2_sum, y_sum, y2_sum, xy_sum));
                }
            }
        }
    }
    outs
}

/// Qlib's closing formulas, operation for operation.
#[allow(clippy::too_many_arguments)]
fn fit_value(fit: Fit, n: f64, x_last: f64, v: f64, x: f64, x2: f64, y: f64, y2: f64, xy: f64) -> f64 {
    match fit {
        Fit::Slope => (n * xy - x * y) / (n * x2 - x * x),
        Fit::Resi => {
            let slope = (n * xy - x * y) / (n * x2 - x * x);
            let interp = y / n - slope * (x / n);
            v - (slope * x_last + interp)
        }
        Fit::Rsquare => {
            let r = (n * xy - x * y) / ((n * x2 - x * x) * (n * y2 - y * y)).sqrt();
            r * r
        }
    }
}

/// Slope of the least-squares line through the window against x = 1..N.
pub fn slope(x: &[f64], w: Window) -> Vec<f64> {
    regressions(x, &[(Fit::Slope, w)], vec![None]).swap_remove(0)
}

/// Residual of the current value from the window's least-squares line.
pub fn resi(x: &[f64], w: Window) -> Vec<f64> {
    regressions(x, &[(Fit::Resi, w)], vec![None]).swap_remove(0)
}

/// R² of the window's least-squares line; Qlib blanks windows whose std is within 2e-5 of zero.
pub fn rsquare(x: &[f64], w: Window) -> Vec<f64> {
    regressions(x, &[(Fit::Rsquare, w)], vec![None]).swap_remove(0)
}

/// Several of [`slope`], [`rsquare`] and [`resi`] of `y`, one column per `(fit, window)`: one pass
/// per window serves all its fits, and the stds that blank `Rsquare` share one pass. `known_std`
/// gives, per member, `std(y, window)` where the caller already has it.
pub(crate) fn regressions(y: &[f64], members: &[(Fit, Window)], mut known_std: Vec<Option<Vec<f64>>>) -> Vec<Vec<f64>> {
    let mut cols: Vec<Option<Vec<f64>>> = members.iter().map(|_| None).collect();
    for (k, &(_, w)) in members.iter().enumerate() {
        if cols[k].is_some() {
            continue;
        }
        let same: Vec<usize> = (k..members.len()).filter(|&j| members[j].1 == w).collect();
        let fits: Vec<Fit> = same.iter().map(|&j| members[j].0).collect();
        for (j, col) in same.into_iter().zip(regression(y, w, &fits)) {
            cols[j] = Some(col);
        }
    }
    let mut cols: Vec<Vec<f64>> = cols.into_iter().flatten().collect();
    let flat = |j: &usize| members[*j].0 == Fit::Rsquare && matches!(members[*j].1, Window::Last(_));
    let (known, missing): (Vec<usize>, Vec<usize>) =
        (0..members.len()).filter(flat).partition(|&j| known_std.get(j).is_some_and(Option::is_some));
    let windows: Vec<Window> = missing.iter().map(|&j| members[j].1).collect();
    let known = known.into_iter().filter_map(|j| Some((j, known_std.get_mut(j)?.take()?)));
    for (j, sd) in known.chain(missing.into_iter().zip(stds(y, &windows))) {
        blank_flat(&mut cols[j], &sd);
        recycle(sd);
    }
    cols
}

/// Sets NaN where `np.isclose(std, 0, atol=2e-5)` holds, as Qlib does for `Corr` and `Rsquare`.
fn blank_flat(out: &mut [f64], std: &[f64]) {
    for (o, s) in out.iter_mut().zip(std) {
        if s.abs() <= 2e-5 {
            *o = f64::NAN;
        }
    }
}

/// pandas' pairwise preparation: each side becomes NaN wherever the other is missing (`x + 0 * y`),
/// then ±inf becomes NaN. Afterwards both sides are NaN on exactly the same rows.
fn pair_mask(x: &[f64], y: &[f64]) -> Vec<f64> {
    let mut out = column(x.len());
    out.extend(x.iter().zip(y).map(|(&a, &b)| {
        let v = a + 0.0 * b;
        if v.is_infinite() { f64::NAN } else { v }
    }));
    out
}

/// The product column of the masked series, with pandas' inf-to-NaN step of `mean(x * y)`.
fn masked_product(a: f64, b: f64) -> f64 {
    let v = a * b;
    if v.is_infinite() { f64::NAN } else { v }
}

/// Rolling moments of the masked series (and their product column `pxy`) in one pass: the
/// covariance, pandas' (E[xy] - E[x]E[y]) * n / (n - 1), and with `with_var` both variances. Each
/// statistic has its own accumulator, fed exactly as `mean`/`var` would feed it, so the results are
/// theirs bit for bit.
fn masked_moments(mx: &[f64], my: &[f64], pxy: &[f64], w: Window, with_var: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = mx.len();
    let (mut m_xy, mut m_x, mut m_y) = (KahanSum::new(pxy, true), KahanSum::new(mx, true), KahanSum::new(my, true));
    let (mut v_x, mut v_y) = (Welford::new(mx), Welford::new(my));
    let (mut cov, mut vx, mut vy) = (column(len), Vec::new(), Vec::new());
    if with_var {
        vx = column(len);
        vy = column(len);
    }
    let w = w.size();
    for i in 0..len {
        if i >= w {
            let j = i - w;
            m_xy.remove(pxy[j]);
            m_x.remove(mx[j]);
            m_y.remove(my[j]);
            if with_var {
                v_x.remove(mx[j]);
                v_y.remove(my[j]);
            }
        }
        m_xy.add(pxy[i]);
        m_x.add(mx[i]);
        m_y.add(my[i]);
        // Rows where both sides are present: those where the masked side is not NaN.
        let n = m_x.nobs as f64;
        cov.push((m_xy.value() - m_x.value() * m_y.value()) * (n / (n - 1.0)));
        if with_var {
            v_x.add(mx[i]);
            v_y.add(my[i]);
            vx.push(v_x.value());
            vy.push(v_y.value());
        }
    }
    (cov, vx, vy)
}

/// Rolling sample covariance of two series over their common non-NaN rows.
pub fn cov(x: &[f64], y: &[f64], w: Window) -> Vec<f64> {
    pair_stats(x, y, &[w], false).swap_remove(0)
}

/// Rolling Pearson correlation; Qlib blanks windows where either input's std is within 2e-5 of zero.
pub fn corr(x: &[f64], y: &[f64], w: Window) -> Vec<f64> {
    pair_stats(x, y, &[w], true).swap_remove(0)
}

/// [`corr`] (or with `corr: false`, [`cov`]) of one pair over several windows, sharing the masked
/// series and their product.
pub fn pair_stats(x: &[f64], y: &[f64], windows: &[Window], corr: bool) -> Vec<Vec<f64>> {
    let (mx, my) = (pair_mask(x, y), pair_mask(y, x));
    let mut pxy = column(mx.len());
    pxy.extend(mx.iter().zip(&my).map(|(&a, &b)| masked_product(a, b)));
    // Qlib tests the std of each unmasked input; when masking changed nothing it is the one at hand.
    let unchanged =
        |side: &[f64], masked: &[f64]| side.iter().zip(masked).all(|(a, m)| a == m || (m.is_nan() && !a.is_finite()));
    let sides = [(x, unchanged(x, &mx)), (y, unchanged(y, &my))];
    #[cfg(target_arch = "x86_64")]
    let moments: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = if windows.len() > 1 && lanes::available() {
        lanes::moments(&mx, &my, &pxy, windows, corr)
    } else {
        windows.iter().map(|&w| masked_moments(&mx, &my, &pxy, w, corr)).collect()
    };
    #[cfg(not(target_arch = "x86_64"))]
    let moments: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        windows.iter().map(|&w| masked_moments(&mx, &my, &pxy, w, corr)).collect();
    let out = windows
        .iter()
        .zip(moments)
        .map(|(&w, (mut out, vx, vy))| {
            if corr {
                with_avx(|| {
                    for ((o, a), b) in out.iter_mut().zip(&vx).zip(&vy) {
                        *o /= (a * b).sqrt();
                    }
                });
                for ((side, same), v) in sides.iter().zip([&vx, &vy]) {
                    if *same {
                        // A select, not a filter, so the loop (and its square roots) vectorises.
                        with_avx(|| {
                            for (o, v) in out.iter_mut().zip(v.iter()) {
                                *o = if zsqrt(*v).abs() <= 2e-5 { f64::NAN } else { *o };
                            }
                        });
                    } else {
                        let sd = std(side, w);
                        blank_flat(&mut out, &sd);
                        recycle(sd);
                    }
                }
            }
            recycle(vx);
            recycle(vy);
            out
        })
        .collect();
    recycle(mx);
    recycle(my);
    recycle(pxy);
    out
}

/// Value `n` rows earlier (`n < 0`: later); `n = 0` repeats the first value, as Qlib's `Ref` does.
pub fn shift(x: &[f64], n: i64) -> Vec<f64> {
    let len = x.len();
    if n == 0 {
        return x.first().map_or_else(Vec::new, |&f| filled(len, f));
    }
    let k = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX).min(len);
    let mut out = filled(len, f64::NAN);
    if n > 0 {
        out[k..].copy_from_slice(&x[..len - k]);
    } else {
        out[..len - k].copy_from_slice(&x[k..]);
    }
    out
}

/// `x - Ref(x, n)`, with Qlib's `n = 0` meaning the change since the first row.
pub fn delta(x: &[f64], n: i64) -> Vec<f64> {
    let mut out = shift(x, n);
    out.iter_mut().zip(x).for_each(|(p, v)| *p = v - *p);
    out
}

/// [`KahanSum`] and [`Welford`] over several windows in one pass, the windows side by side as the
/// lanes of AVX vectors (8 lanes: two vectors per field). Each lane does exactly the operations of
/// the scalar accumulator for its window, in the same order — data-dependent branches become
/// selects, and nothing is fused (no FMA) — so each column is the same bits as the scalar code's.
/// The row taken in is the same for every lane (its NaN test stays a branch); the row leaving
/// differs per lane and is NaN (taken out by nobody) where none leaves.
#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::*;

    use std::cell::RefCell;

    use super::{Window, column};

    thread_local! {
        /// This module's own buffers (padded inputs), longer than columns: kept apart from the
        /// column pool so that neither keeps growing the other's buffers.
        static SCRATCH: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer with room for `len` values.
    fn scratch(len: usize) -> Vec<f64> {
        let mut v = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
        v.clear();
        v.reserve(len);
        v
    }

    /// Gives a [`scratch`] buffer back.
    fn unscratch(v: Vec<f64>) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if v.capacity() > 0 && s.len() < 16 {
                s.push(v);
            }
        });
    }

    type V = [__m256d; 2];
    /// Lanes per pass.
    const LANES: usize = 8;

    /// Whether the CPU runs this module's code.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx")
    }

    #[target_feature(enable = "avx")]
    #[inline]
    fn splat(v: f64) -> V {
        [_mm256_set1_pd(v); 2]
    }

    /// `f` of each half.
    macro_rules! each {
        (|$h:ident| $e:expr) => {
            [
                {
                    let $h = 0;
                    $e
                },
                {
                    let $h = 1;
                    $e
                },
            ]
        };
    }

    /// `if m { a } else { b }` per lane; `m`'s sign bit decides.
    #[target_feature(enable = "avx")]
    #[inline]
    fn sel(m: __m256d, a: __m256d, b: __m256d) -> __m256d {
        _mm256_blendv_pd(b, a, m)
    }

    /// `x` behind as many NaNs as the widest window (at most `x.len()`) is long, and per lane the
    /// offset `o` with `padded[i + o]` the row leaving that lane's window at row `i` (NaN where none
    /// does). Lanes past the windows repeat the last one.
    fn padded(x: &[f64], windows: &[Window]) -> (Vec<f64>, [usize; LANES]) {
        let len = x.len();
        let size = |k: usize| windows.get(k.min(windows.len().saturating_sub(1))).map_or(1, |w| w.size().min(len));
        let widest = (0..windows.len()).map(size).max().unwrap_or(0);
        let mut padded = scratch(len + widest);
        padded.resize(widest, f64::NAN);
        padded.extend_from_slice(x);
        let mut offs = [0; LANES];
        for (k, o) in offs.iter_mut().enumerate() {
            *o = widest - size(k);
        }
        (padded, offs)
    }

    /// The rows leaving each lane's window at row `i` (see [`padded`]), as lanes (a macro, so that
    /// it inlines into the AVX loops).
    macro_rules! leaving {
        ($p:expr, $i:expr, $o:expr) => {{
            let (p, i, o): (&[f64], usize, &[usize; LANES]) = ($p, $i, $o);
            debug_assert!(o.iter().all(|&o| i + o < p.len()));
            // SAFETY: `padded` puts `widest >= o[k]` values before the `len > i` rows.
            let at = |k: usize| unsafe { *p.get_unchecked(i + o[k]) };
            [_mm256_setr_pd(at(0), at(1), at(2), at(3)), _mm256_setr_pd(at(4), at(5), at(6), at(7))]
        }};
    }

    #[target_feature(enable = "avx")]
    #[inline]
    fn store(v: V) -> [f64; LANES] {
        let mut out = [0.0; LANES];
        // SAFETY: `out` holds 8 values, two vectors of 4.
        unsafe {
            _mm256_storeu_pd(out.as_mut_ptr(), v[0]);
            _mm256_storeu_pd(out.as_mut_ptr().add(4), v[1]);
        }
        out
    }

    /// [`super::KahanSum`] in lanes; counts are exact in f64, and the run of equal values (changed
    /// only by added rows) is the same in every lane.
    struct Kahan {
        nobs: V,
        sum: V,
        comp_add: V,
        comp_remove: V,
        neg_ct: V,
        same_run: f64,
        prev: f64,
    }

    #[allow(clippy::needless_range_loop)] // half `h` of several fields
    impl Kahan {
        #[target_feature(enable = "avx")]
        fn new(x: &[f64]) -> Self {
            let z = splat(0.0);
            let prev = x.first().copied().unwrap_or(f64::NAN);
            Kahan { nobs: z, sum: z, comp_add: z, comp_remove: z, neg_ct: z, same_run: 0.0, prev }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn remove(&mut self, old: V) {
            let one = _mm256_set1_pd(1.0);
            let sign = _mm256_set1_pd(-0.0);
            for h in 0..2 {
                let v = old[h];
                let live = _mm256_cmp_pd::<_CMP_ORD_Q>(v, v);
                let y = _mm256_sub_pd(_mm256_xor_pd(v, sign), self.comp_remove[h]);
                let t = _mm256_add_pd(self.sum[h], y);
                let c = _mm256_sub_pd(_mm256_sub_pd(t, self.sum[h]), y);
                self.nobs[h] = sel(live, _mm256_sub_pd(self.nobs[h], one), self.nobs[h]);
                // Live and negative: the sign bit of `live & v`.
                self.neg_ct[h] = sel(_mm256_and_pd(live, v), _mm256_sub_pd(self.neg_ct[h], one), self.neg_ct[h]);
                self.comp_remove[h] = sel(live, c, self.comp_remove[h]);
                self.sum[h] = sel(live, t, self.sum[h]);
            }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn add(&mut self, v: f64) {
            if v.is_nan() {
                return;
            }
            let (one, vv) = (_mm256_set1_pd(1.0), _mm256_set1_pd(v));
            let neg = v.is_sign_negative();
            for h in 0..2 {
                self.nobs[h] = _mm256_add_pd(self.nobs[h], one);
                let y = _mm256_sub_pd(vv, self.comp_add[h]);
                let t = _mm256_add_pd(self.sum[h], y);
                self.comp_add[h] = _mm256_sub_pd(_mm256_sub_pd(t, self.sum[h]), y);
                self.sum[h] = t;
                if neg {
                    self.neg_ct[h] = _mm256_add_pd(self.neg_ct[h], one);
                }
            }
            self.same_run = if v == self.prev { self.same_run + 1.0 } else { 1.0 };
            self.prev = v;
        }

        /// The window means (`mean`) or sums.
        #[target_feature(enable = "avx")]
        #[inline]
        fn value(&self, mean: bool) -> V {
            let (zero, nan) = (_mm256_setzero_pd(), _mm256_set1_pd(f64::NAN));
            let (run, prev) = (_mm256_set1_pd(self.same_run), _mm256_set1_pd(self.prev));
            each!(|h| {
                let n = self.nobs[h];
                let same = _mm256_cmp_pd::<_CMP_GE_OQ>(run, n);
                let r = if mean {
                    let m = _mm256_div_pd(self.sum[h], n);
                    let neg = self.neg_ct[h];
                    let below =
                        _mm256_and_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(neg, zero), _mm256_cmp_pd::<_CMP_LT_OQ>(m, zero));
                    let above =
                        _mm256_and_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(neg, n), _mm256_cmp_pd::<_CMP_GT_OQ>(m, zero));
                    sel(same, prev, _mm256_andnot_pd(_mm256_or_pd(below, above), m))
                } else {
                    sel(same, _mm256_mul_pd(prev, n), self.sum[h])
                };
                sel(_mm256_cmp_pd::<_CMP_EQ_OQ>(n, zero), nan, r)
            })
        }
    }

    /// [`super::Welford`] in lanes.
    struct Welford {
        nobs: V,
        mean: V,
        ssqdm: V,
        comp_add: V,
        comp_remove: V,
        same_run: f64,
        prev: f64,
    }

    #[allow(clippy::needless_range_loop)] // half `h` of several fields
    impl Welford {
        #[target_feature(enable = "avx")]
        fn new(x: &[f64]) -> Self {
            let z = splat(0.0);
            let prev = x.first().copied().unwrap_or(f64::NAN);
            Welford { nobs: z, mean: z, ssqdm: z, comp_add: z, comp_remove: z, same_run: 0.0, prev }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn remove(&mut self, old: V) {
            let (one, zero) = (_mm256_set1_pd(1.0), _mm256_setzero_pd());
            for h in 0..2 {
                let v = old[h];
                let live = _mm256_cmp_pd::<_CMP_ORD_Q>(v, v);
                let n = _mm256_sub_pd(self.nobs[h], one);
                let prev_mean = _mm256_sub_pd(self.mean[h], self.comp_remove[h]);
                let y = _mm256_sub_pd(v, self.comp_remove[h]);
                let t = _mm256_sub_pd(y, self.mean[h]);
                let c = _mm256_sub_pd(_mm256_add_pd(t, self.mean[h]), y);
                let mean = _mm256_sub_pd(self.mean[h], _mm256_div_pd(t, n));
                let ssqdm =
                    _mm256_sub_pd(self.ssqdm[h], _mm256_mul_pd(_mm256_sub_pd(v, prev_mean), _mm256_sub_pd(v, mean)));
                let nz = _mm256_cmp_pd::<_CMP_NEQ_UQ>(n, zero);
                let live_nz = _mm256_and_pd(live, nz);
                self.nobs[h] = sel(live, n, self.nobs[h]);
                self.comp_remove[h] = sel(live_nz, c, self.comp_remove[h]);
                self.mean[h] = sel(live, _mm256_and_pd(nz, mean), self.mean[h]);
                self.ssqdm[h] = sel(live, _mm256_and_pd(nz, ssqdm), self.ssqdm[h]);
            }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn add(&mut self, v: f64) {
            if v.is_nan() {
                return;
            }
            self.same_run = if v == self.prev { self.same_run + 1.0 } else { 1.0 };
            self.prev = v;
            let (one, vv) = (_mm256_set1_pd(1.0), _mm256_set1_pd(v));
            for h in 0..2 {
                self.nobs[h] = _mm256_add_pd(self.nobs[h], one);
                let prev_mean = _mm256_sub_pd(self.mean[h], self.comp_add[h]);
                let y = _mm256_sub_pd(vv, self.comp_add[h]);
                let t = _mm256_sub_pd(y, self.mean[h]);
                self.comp_add[h] = _mm256_sub_pd(_mm256_add_pd(t, self.mean[h]), y);
                self.mean[h] = _mm256_add_pd(self.mean[h], _mm256_div_pd(t, self.nobs[h]));
                self.ssqdm[h] = _mm256_add_pd(
                    self.ssqdm[h],
                    _mm256_mul_pd(_mm256_sub_pd(vv, prev_mean), _mm256_sub_pd(vv, self.mean[h])),
                );
            }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn value(&self) -> V {
            let (one, nan) = (_mm256_set1_pd(1.0), _mm256_set1_pd(f64::NAN));
            let run = _mm256_set1_pd(self.same_run);
            each!(|h| {
                let n = self.nobs[h];
                let r = _mm256_andnot_pd(
                    _mm256_cmp_pd::<_CMP_GE_OQ>(run, n),
                    _mm256_div_pd(self.ssqdm[h], _mm256_sub_pd(n, one)),
                );
                sel(_mm256_cmp_pd::<_CMP_LE_OQ>(n, one), nan, r)
            })
        }
    }

    /// Columns for `n` lanes, with room for `len` rows.
    fn columns(n: usize, len: usize) -> Vec<Vec<f64>> {
        (0..n).map(|_| column(len)).collect()
    }

    /// Rows of lanes on their way to one column per lane: gathered a block at a time, then
    /// appended column by column, so the values stay in L1 and each column grows a block at once.
    struct Block<'a> {
        rows: [[f64; LANES]; BLOCK],
        filled: usize,
        cols: &'a mut [Vec<f64>],
    }

    /// Rows per [`Block`].
    const BLOCK: usize = 64;

    impl<'a> Block<'a> {
        /// A block writing lane `k` to `cols[k]`, for each of the (at most [`LANES`]) columns.
        fn new(cols: &'a mut [Vec<f64>]) -> Self {
            Block { rows: [[0.0; LANES]; BLOCK], filled: 0, cols }
        }

        #[target_feature(enable = "avx")]
        #[inline]
        fn push(&mut self, v: V) {
            self.rows[self.filled % BLOCK] = store(v);
            self.filled += 1;
            if self.filled == BLOCK {
                self.flush();
            }
        }

        /// Appends the gathered rows to the columns (called once more after the last row).
        fn flush(&mut self) {
            let rows = &self.rows[..self.filled];
            for (k, col) in self.cols.iter_mut().enumerate() {
                col.extend(rows.iter().map(|r| r[k % LANES]));
            }
            self.filled = 0;
        }
    }

    /// `super::means` of several windows.
    pub(super) fn means(x: &[f64], windows: &[Window], mean: bool) -> Vec<Vec<f64>> {
        let mut outs = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(LANES) {
            let (p, offs) = padded(x, chunk);
            let mut cols = columns(chunk.len(), x.len());
            // SAFETY: `available` holds (the caller checked).
            unsafe { slide_means(&p, x, &offs, mean, &mut cols) };
            unscratch(p);
            outs.append(&mut cols);
        }
        outs
    }

    #[target_feature(enable = "avx")]
    fn slide_means(p: &[f64], x: &[f64], offs: &[usize; LANES], mean: bool, cols: &mut [Vec<f64>]) {
        let mut acc = Kahan::new(x);
        let mut out = Block::new(cols);
        for (i, &v) in x.iter().enumerate() {
            acc.remove(leaving!(p, i, offs));
            acc.add(v);
            out.push(acc.value(mean));
        }
        out.flush();
    }

    /// `super::vars` of several windows.
    pub(super) fn vars(x: &[f64], windows: &[Window]) -> Vec<Vec<f64>> {
        let mut outs = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(LANES) {
            let (p, offs) = padded(x, chunk);
            let mut cols = columns(chunk.len(), x.len());
            // SAFETY: `available` holds (the caller checked).
            unsafe { slide_vars(&p, x, &offs, &mut cols) };
            unscratch(p);
            outs.append(&mut cols);
        }
        outs
    }

    #[target_feature(enable = "avx")]
    fn slide_vars(p: &[f64], x: &[f64], offs: &[usize; LANES], cols: &mut [Vec<f64>]) {
        let mut acc = Welford::new(x);
        let mut out = Block::new(cols);
        for (i, &v) in x.iter().enumerate() {
            acc.remove(leaving!(p, i, offs));
            acc.add(v);
            out.push(acc.value());
        }
        out.flush();
    }

    /// `super::masked_moments` of several windows.
    pub(super) fn moments(
        mx: &[f64],
        my: &[f64],
        pxy: &[f64],
        windows: &[Window],
        with_var: bool,
    ) -> Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let len = mx.len();
        let mut outs = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(LANES) {
            let (px, offs) = padded(mx, chunk);
            let (py, _) = padded(my, chunk);
            let (pp, _) = padded(pxy, chunk);
            let n = chunk.len();
            let var_n = if with_var { n } else { 0 };
            let mut cols = [columns(n, len), columns(var_n, len), columns(var_n, len)];
            // SAFETY: `available` holds (the caller checked).
            unsafe { slide_moments([&px, &py, &pp, mx, my, pxy], &offs, &mut cols) };
            unscratch(px);
            unscratch(py);
            unscratch(pp);
            let [cov, mut vx, mut vy] = cols;
            vx.resize_with(n, Vec::new);
            vy.resize_with(n, Vec::new);
            outs.extend(cov.into_iter().zip(vx).zip(vy).map(|((c, x), y)| (c, x, y)));
        }
        outs
    }

    /// The loop of `super::masked_moments` in lanes: `s` is the padded x, y and product, then the
    /// plain ones. Fills the covariance columns and the variance columns of x and y (none when the
    /// caller wants no variances).
    #[target_feature(enable = "avx")]
    fn slide_moments(s: [&[f64]; 6], offs: &[usize; LANES], cols: &mut [Vec<Vec<f64>>; 3]) {
        let [px, py, pp, mx, my, pxy] = s;
        let [cov_out, vx_out, vy_out] = cols;
        let (mut m_xy, mut m_x, mut m_y) = (Kahan::new(pxy), Kahan::new(mx), Kahan::new(my));
        let one = _mm256_set1_pd(1.0);
        let mut out = Block::new(cov_out);
        for i in 0..mx.len() {
            m_xy.remove(leaving!(pp, i, offs));
            m_x.remove(leaving!(px, i, offs));
            m_y.remove(leaving!(py, i, offs));
            m_xy.add(pxy[i]);
            m_x.add(mx[i]);
            m_y.add(my[i]);
            let (e_xy, e_x, e_y) = (m_xy.value(true), m_x.value(true), m_y.value(true));
            // Rows where both sides are present: those where the masked side is not NaN.
            let cov = each!(|h| {
                let n = m_x.nobs[h];
                _mm256_mul_pd(
                    _mm256_sub_pd(e_xy[h], _mm256_mul_pd(e_x[h], e_y[h])),
                    _mm256_div_pd(n, _mm256_sub_pd(n, one)),
                )
            });
            out.push(cov);
        }
        out.flush();
        // The variances in passes of their own: fewer live vectors, no spills.
        if !vx_out.is_empty() {
            slide_vars(px, mx, offs, vx_out);
            slide_vars(py, my, offs, vy_out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAN: f64 = f64::NAN;

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    #[test]
    fn mean_and_sum_use_min_periods_one_and_skip_nan() {
        let x = [1.0, 2.0, NAN, 4.0, 5.0];
        assert!(same(&mean(&x, Window::Last(3)), &[1.0, 1.5, 1.5, 3.0, 4.5]));
        assert!(same(&sum(&x, Window::Last(2)), &[1.0, 3.0, 2.0, 4.0, 9.0]));
        assert!(same(&sum(&[NAN, NAN, 1.0], Window::Last(2)), &[NAN, NAN, 1.0]));
        assert!(same(&mean(&[1.0, 2.0, 3.0, 4.0], Window::Expanding), &[1.0, 1.5, 2.0, 2.5]));
    }

    #[test]
    fn constant_windows_are_exact() {
        let x = [0.1, 0.7, 0.3, 0.3, 0.3];
        assert_eq!(mean(&x, Window::Last(3))[4], 0.3);
        assert_eq!(var(&x, Window::Last(3))[4], 0.0);
        assert_eq!(sum(&[0.1, 0.2, 0.0, 0.0], Window::Last(2))[3], 0.0);
    }

    #[test]
    fn std_is_sample_std_and_nan_for_one_value() {
        let s = std(&[1.0, 2.0, 4.0], Window::Last(3));
        assert!(s[0].is_nan());
        assert!((s[1] - 0.5f64.sqrt()).abs() < 1e-15);
        assert!((s[2] - (7.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn max_min_skip_nan() {
        let x = [3.0, NAN, 1.0, 2.0, NAN, NAN];
        assert!(same(&max(&x, Window::Last(2)), &[3.0, 3.0, 1.0, 2.0, 2.0, NAN]));
        assert!(same(&min(&x, Window::Last(3)), &[3.0, 3.0, 1.0, 1.0, 1.0, 2.0]));
    }

    #[test]
    fn rolling_extremes_match_a_scan_of_each_window() {
        // Many ties, single NaNs, and a gap longer than some windows.
        let mut x: Vec<f64> = (0..300).map(|i| ((i * 7919) % 23) as f64 - 11.0).collect();
        x[10..14].fill(NAN);
        x[100] = NAN;
        x[200..260].fill(NAN);
        let windows: Vec<Window> =
            [1, 2, 5, 20, 60, 299, 300, 301].into_iter().map(Window::Last).chain([Window::Expanding]).collect();
        let bits = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for max in [true, false] {
            let (vals, idxs) = (extremes(&x, &windows, max), arg_extremes(&x, &windows, max));
            for ((w, val), idx) in windows.iter().zip(vals).zip(idxs) {
                let (mut want_val, mut want_idx) = (Vec::new(), Vec::new());
                for i in 0..x.len() {
                    let win = &x[start(i, w.size())..=i];
                    let finite: Vec<f64> = win.iter().copied().filter(|v| !v.is_nan()).collect();
                    let best = finite.iter().copied().reduce(|a, b| if max { a.max(b) } else { a.min(b) });
                    want_val.push(best.unwrap_or(NAN));
                    want_idx.push(match best {
                        None => NAN,
                        // numpy's argmax reports the first NaN wherever the extreme is.
                        Some(b) => {
                            let first_nan = win.iter().position(|v| v.is_nan());
                            (first_nan.or_else(|| win.iter().position(|v| *v == b)).unwrap_or(0) + 1) as f64
                        }
                    });
                }
                assert_eq!(bits(&val), bits(&want_val), "{w:?} max={max}");
                assert_eq!(bits(&idx), bits(&want_idx), "{w:?} max={max}");
            }
        }
    }

    #[test]
    fn idx_extremes_are_one_based_first_occurrence_and_nan_first() {
        assert!(same(&idxmax(&[1.0, 3.0, 3.0, 2.0], Window::Last(3)), &[1.0, 2.0, 2.0, 1.0]));
        assert!(same(&idxmin(&[2.0, 1.0, 1.0], Window::Last(5)), &[1.0, 2.0, 2.0]));
        // numpy's argmax reports the first NaN of a window.
        assert!(same(&idxmax(&[1.0, NAN, 5.0, 6.0], Window::Last(3)), &[1.0, 2.0, 2.0, 1.0]));
        assert!(same(&idxmax(&[NAN, 1.0], Window::Last(2)), &[NAN, 1.0]));
    }

    #[test]
    fn quantile_interpolates_linearly() {
        let x = [5.0, 1.0, 4.0, 2.0, 3.0];
        let q = quantile(&x, Window::Last(5), 0.8);
        assert_eq!(q[0], 5.0);
        assert!((q[4] - 4.2).abs() < 1e-12);
        assert!((median(&x, Window::Last(4))[3] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn rank_is_average_percentile_of_last_value() {
        let r = rank(&[1.0, 3.0, 2.0, 2.0], Window::Last(4));
        assert!(same(&r, &[1.0, 1.0, 2.0 / 3.0, 2.5 / 4.0]));
        assert!(rank(&[1.0, NAN], Window::Last(2))[1].is_nan());
    }

    #[test]
    fn regression_on_a_line() {
        let y = [1.0, 3.0, 5.0, 7.0, 9.0];
        let s = slope(&y, Window::Last(3));
        assert!(s[0].is_nan());
        assert!(same(&s[1..], &[2.0, 2.0, 2.0, 2.0]));
        assert!(resi(&y, Window::Last(3))[4].abs() < 1e-12);
        assert!((rsquare(&y, Window::Last(3))[4] - 1.0).abs() < 1e-12);
        assert!(same(&slope(&y, Window::Expanding)[1..], &[2.0, 2.0, 2.0, 2.0]));
    }

    #[test]
    fn resi_of_a_bent_window() {
        // Fit of (1,1),(2,2),(3,6): slope 2.5, intercept -2 ⇒ residual of the last point 6 - 5.5.
        assert!((resi(&[1.0, 2.0, 6.0], Window::Last(3))[2] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn corr_and_cov() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 4.0, 6.0, 9.0];
        let c = corr(&x, &y, Window::Last(3));
        assert!(c[0].is_nan());
        assert!((c[2] - 1.0).abs() < 1e-12);
        assert!((cov(&x, &y, Window::Last(2))[1] - 1.0).abs() < 1e-12);
        // A flat side is blanked.
        assert!(corr(&x, &[1.0, 1.0, 1.0, 1.0], Window::Last(3))[3].is_nan());
    }

    #[test]
    fn shift_delta_and_ema() {
        let x = [1.0, 2.0, 4.0];
        assert!(same(&shift(&x, 1), &[NAN, 1.0, 2.0]));
        assert!(same(&shift(&x, -2), &[4.0, NAN, NAN]));
        assert!(same(&shift(&x, 0), &[1.0, 1.0, 1.0]));
        assert!(same(&shift(&x, 9), &[NAN, NAN, NAN]));
        assert!(same(&delta(&x, 1), &[NAN, 1.0, 2.0]));
        // span 3 ⇒ alpha 0.5, adjusted weights (1, 0.5): (2 + 0.5) / 1.5.
        assert!(same(&ema(&[1.0, 2.0], Span::Rows(3)), &[1.0, 2.5 / 1.5]));
    }

    #[test]
    fn wma_and_mad_follow_qlib() {
        // weights 1/3, 2/3 ⇒ terms 1/3, 4/3 ⇒ nanmean = 5/6.
        assert!(same(&wma(&[1.0, 2.0], Window::Last(2)), &[1.0, 5.0 / 6.0]));
        assert!(same(&mad(&[1.0, 3.0, NAN], Window::Last(3)), &[0.0, 1.0, 1.0]));
    }

    /// The moments of every window, in lanes where the CPU allows.
    fn pair_moments(
        mx: &[f64],
        my: &[f64],
        pxy: &[f64],
        windows: &[Window],
        with_var: bool,
    ) -> Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        #[cfg(target_arch = "x86_64")]
        if lanes::available() {
            return lanes::moments(mx, my, pxy, windows, with_var);
        }
        windows.iter().map(|&w| masked_moments(mx, my, pxy, w, with_var)).collect()
    }

    #[test]
    fn window_lanes_match_the_scalar_accumulators_bit_for_bit() {
        // Drifting values with NaN gaps, negatives, exact repeats, a sign flip and zeros.
        let mut x: Vec<f64> = (0..400).map(|i| ((i * 7919 % 113) as f64 - 40.0) * 0.37 + (i as f64 * 0.01)).collect();
        for i in (3..400).step_by(17) {
            x[i] = NAN;
        }
        x[50..58].fill(2.5);
        x[100..104].fill(0.0);
        x[200..230].fill(NAN);
        let windows: Vec<Window> = [1, 2, 5, 10, 20, 30, 60, 7, 500].into_iter().map(Window::Last).collect();
        let bits = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for mean in [true, false] {
            for (w, col) in windows.iter().zip(means(&x, &windows, mean)) {
                assert_eq!(bits(&col), bits(&slide(&x, *w, KahanSum::new(&x, mean))), "{w:?} {mean}");
            }
        }
        for (w, col) in windows.iter().zip(vars(&x, &windows)) {
            assert_eq!(bits(&col), bits(&var(&x, *w)), "{w:?}");
        }
        let y: Vec<f64> =
            x.iter().enumerate().map(|(i, v)| if i % 23 == 0 { NAN } else { v * 1.5 - (i % 5) as f64 }).collect();
        let (mx, my) = (pair_mask(&x, &y), pair_mask(&y, &x));
        let pxy: Vec<f64> = mx.iter().zip(&my).map(|(&a, &b)| masked_product(a, b)).collect();
        for with_var in [true, false] {
            for (w, (c, vx, vy)) in windows.iter().zip(pair_moments(&mx, &my, &pxy, &windows, with_var)) {
                let (c1, vx1, vy1) = masked_moments(&mx, &my, &pxy, *w, with_var);
                assert_eq!((bits(&c), bits(&vx), bits(&vy)), (bits(&c1), bits(&vx1), bits(&vy1)), "{w:?}");
            }
        }
    }

    #[test]
    fn shared_sorted_windows_match_rank_and_sorting_each_window() {
        // Many ties, NaN gaps, and windows both shorter and longer than the counted-search limit.
        let mut x: Vec<f64> = (0..400).map(|i| ((i * 37) % 11) as f64 - 3.0).collect();
        x[40..45].fill(NAN);
        for w in [Window::Last(5), Window::Last(60), Window::Last(100), Window::Expanding] {
            let [r, q] = <[Vec<f64>; 2]>::try_from(sorted_stats(&x, w, &[None, Some(0.8)])).expect("two columns");
            let bits = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&r), bits(&rank(&x, w)), "{w:?}");
            let sorted_each = (0..x.len()).map(|i| {
                let mut v: Vec<f64> = x[start(i, w.size())..=i].iter().copied().filter(|v| !v.is_nan()).collect();
                v.sort_by(f64::total_cmp);
                quantile_of(&v, 0.8)
            });
            assert_eq!(bits(&q), sorted_each.map(f64::to_bits).collect::<Vec<_>>(), "{w:?}");
        }
    }

    #[test]
    fn counts_of_flags_match_the_kahan_sums_bit_for_bit() {
        let x: Vec<f64> = (0..300).map(|i| f64::from(u8::from((i * 7919) % 13 < 6))).collect();
        let windows: Vec<Window> =
            [1, 5, 7, 60, 299, 300, 301].into_iter().map(Window::Last).chain([Window::Expanding]).collect();
        let bits = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for mean in [true, false] {
            let counted = flag_means(&x, &windows, mean).expect("0s and 1s");
            for (w, col) in windows.iter().zip(counted) {
                assert_eq!(bits(&col), bits(&slide(&x, *w, KahanSum::new(&x, mean))), "{w:?} {mean}");
            }
        }
        assert!(flag_means(&[0.0, 1.0, 2.0], &windows, true).is_none());
    }

    #[test]
    fn count_counts_non_nan() {
        assert!(same(&count(&[1.0, NAN, 2.0], Window::Last(2)), &[1.0, 1.0, 1.0]));
    }
}
