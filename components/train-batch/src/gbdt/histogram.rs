//! Gradient histograms: per feature and bin, the sums of gradient and hessian and the row count of
//! a leaf's rows. Each feature's histogram is filled in row order by one task, so the sums are the
//! same on any number of threads and however features are grouped into tasks.

use super::binning::MAX_BINS;

/// Sums of one bin (or of a whole leaf).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BinStats {
    pub(crate) grad: f64,
    pub(crate) hess: f64,
    pub(crate) count: u32,
}

impl BinStats {
    /// Component-wise sum.
    pub(crate) fn add(self, o: BinStats) -> BinStats {
        BinStats { grad: self.grad + o.grad, hess: self.hess + o.hess, count: self.count + o.count }
    }

    /// Component-wise difference (`o` is a subset of `self`).
    pub(crate) fn sub(self, o: BinStats) -> BinStats {
        BinStats { grad: self.grad - o.grad, hess: self.hess - o.hess, count: self.count - o.count }
    }
}

/// Where each feature's histogram lies in a leaf's buffer, sized to the feature's real bin count.
/// A bin is a few f64 slots: (grad, count) when every hessian is 1 (the hessian sum is then the
/// count), else (grad, hess, count); counts are whole numbers, exact in f64. For L2 that is 16 bytes
/// a bin, as LightGBM's (grad, hess) pairs.
#[derive(Debug, Clone)]
pub(crate) struct HistLayout {
    /// Slot offset of each feature's histogram, and the total length last.
    offsets: Vec<usize>,
    unit_hessian: bool,
}

impl HistLayout {
    /// The layout for features of `bins` bins each.
    pub(crate) fn new(bins: impl Iterator<Item = usize>, unit_hessian: bool) -> Self {
        let slots = if unit_hessian { 2 } else { 3 };
        let mut offsets = vec![0];
        for b in bins {
            offsets.push(offsets[offsets.len() - 1] + b * slots);
        }
        HistLayout { offsets, unit_hessian }
    }

    /// Slots of one leaf's histograms.
    pub(crate) fn len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// A leaf buffer of [`len`](Self::len) slots cut into one histogram per feature.
    pub(crate) fn split_mut<'a>(&self, mut buf: &'a mut [f64]) -> Vec<&'a mut [f64]> {
        let mut parts = Vec::with_capacity(self.offsets.len().saturating_sub(1));
        for w in self.offsets.windows(2) {
            let (head, tail) = std::mem::take(&mut buf).split_at_mut(w[1] - w[0]);
            parts.push(head);
            buf = tail;
        }
        parts
    }

    /// A read view of one feature's histogram (a part from [`split_mut`](Self::split_mut)).
    pub(crate) fn view<'a>(&self, slots: &'a [f64]) -> FeatureHist<'a> {
        FeatureHist { slots, unit_hessian: self.unit_hessian }
    }
}

/// One feature's histogram, read bin by bin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureHist<'a> {
    slots: &'a [f64],
    unit_hessian: bool,
}

impl FeatureHist<'_> {
    /// The sums of bin `b`.
    pub(crate) fn bin(&self, b: usize) -> BinStats {
        if self.unit_hessian {
            stats::<2>(&self.slots.as_chunks::<2>().0[b])
        } else {
            stats::<3>(&self.slots.as_chunks::<3>().0[b])
        }
    }

    /// The bins as (grad, count) pairs, when every hessian is 1.
    #[inline(always)]
    pub(crate) fn bins2(&self) -> Option<&[[f64; 2]]> {
        self.unit_hessian.then_some(self.slots.as_chunks::<2>().0)
    }

    /// The bins as (grad, hess, count) triples (the layout without unit hessians).
    #[inline(always)]
    pub(crate) fn bins3(&self) -> &[[f64; 3]] {
        self.slots.as_chunks::<3>().0
    }
}

/// A bin's sums from its slots, (grad, count) or (grad, hess, count): the hessian sum is the
/// second slot either way.
#[inline(always)]
fn stats<const N: usize>(c: &[f64; N]) -> BinStats {
    BinStats { grad: c[0], hess: c[1], count: c[N - 1] as u32 }
}

/// One leaf's histograms: every feature's, contiguous, as [`HistLayout`] places them.
pub(crate) type LeafHist = Vec<f64>;

/// The rows a histogram is built over and their gradients.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Every row of the training set, in order; `grad`/`hess` are indexed by row.
    All { grad: &'a [f64], hess: &'a [f64] },
    /// A leaf's rows; `grad`/`hess` are gathered in the same order ("ordered gradients").
    Subset { rows: &'a [u32], grad: &'a [f64], hess: &'a [f64] },
}

impl Rows<'_> {
    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        match self {
            Rows::All { grad, .. } => grad.len(),
            Rows::Subset { rows, .. } => rows.len(),
        }
    }
}

/// The bins of a training set row by row (`width` bytes a row: every feature's bin of that row), the
/// layout histograms are filled from. A leaf's rows are spread over the set; read row by row, each
/// row costs a few cache lines however many features are filled, where a column per feature would
/// cost a cache line per feature and row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowMajor<'a> {
    pub(crate) bins: &'a [u8],
    pub(crate) width: usize,
}

/// One feature's histogram to fill: the feature (its byte in a row) and its slots.
pub(crate) type Target<'a> = (usize, &'a mut [f64]);

/// Fills the histograms of `targets` (laid out as [`HistLayout`] says) over `rows` in one pass over
/// the rows. Each bin is summed in row order, so the sums do not depend on how features are grouped
/// into calls nor on the thread count. With `unit_hessian` the hessians (all 1) are not summed.
pub(crate) fn fill(targets: &mut [Target<'_>], matrix: RowMajor<'_>, rows: Rows<'_>, unit_hessian: bool) {
    if unit_hessian {
        fill_slots::<2>(targets, matrix, rows);
    } else {
        fill_slots::<3>(targets, matrix, rows);
    }
}

/// [`fill`] with bins of N slots: (grad, count), or (grad, hess, count) when N is 3. The sums are
/// made in full 256-bin histograms (a `u8` bin indexes them without a bounds check), then copied
/// into the targets' real bins.
fn fill_slots<const N: usize>(targets: &mut [Target<'_>], matrix: RowMajor<'_>, rows: Rows<'_>) {
    let features: Vec<usize> = targets.iter().map(|&(f, _)| f).collect();
    let mut full = vec![[[0.0; N]; MAX_BINS]; targets.len()];
    match rows {
        Rows::All { grad, hess } => sum_rows(&mut full, &features, matrix, grad.len(), |i| i, grad, hess),
        Rows::Subset { rows, grad, hess } => {
            sum_rows(&mut full, &features, matrix, rows.len(), |i| rows[i] as usize, grad, hess);
        }
    }
    for ((_, h), sums) in targets.iter_mut().zip(&full) {
        let h = h.as_chunks_mut::<N>().0;
        h.copy_from_slice(&sums[..h.len()]);
    }
}

/// Adds rows `row_at(0..n)` (gradient `grad[i]`, hessian `hess[i]`) into the histograms of
/// `features`, two rows at a time: both rows' bins of a feature are added in row order, and the
/// two additions overlap where the bins differ.
fn sum_rows<const N: usize>(
    hists: &mut [[[f64; N]; MAX_BINS]],
    features: &[usize],
    matrix: RowMajor<'_>,
    n: usize,
    row_at: impl Fn(usize) -> usize,
    grad: &[f64],
    hess: &[f64],
) {
    let (Some(&first), Some(&last)) = (features.first(), features.last()) else { return };
    let width = matrix.width;
    let row = |i: usize| {
        let r = row_at(i);
        &matrix.bins[r * width..(r + 1) * width]
    };
    let hess_at = |i: usize| if N == 3 { hess[i] } else { 1.0 };
    let add = |e: &mut [f64; N], g: f64, h: f64| {
        e[0] += g;
        if N == 3 {
            e[1] += h;
        }
        e[N - 1] += 1.0;
    };
    for i in (0..n - n % 2).step_by(2) {
        for ahead in [i + PREFETCH_ROWS, i + 1 + PREFETCH_ROWS] {
            if ahead < n {
                let at = row_at(ahead) * width;
                prefetch(matrix.bins, at + first);
                prefetch(matrix.bins, at + last);
            }
        }
        let (row0, row1) = (row(i), row(i + 1));
        let (g0, g1, h0, h1) = (grad[i], grad[i + 1], hess_at(i), hess_at(i + 1));
        for (hist, &f) in hists.iter_mut().zip(features) {
            add(&mut hist[usize::from(row0[f])], g0, h0);
            add(&mut hist[usize::from(row1[f])], g1, h1);
        }
    }
    if n % 2 == 1 {
        let (i, last_row) = (n - 1, row(n - 1));
        for (hist, &f) in hists.iter_mut().zip(features) {
            add(&mut hist[usize::from(last_row[f])], grad[i], hess_at(i));
        }
    }
}

/// How far ahead in a leaf's rows [`fill`] asks for a row's bins: a leaf's rows are spread over the
/// set, so their bins are mostly cache misses, which this overlaps.
const PREFETCH_ROWS: usize = 16;

/// Hints the cache to load `bins[at]` (a no-op where there is no such hint).
#[inline(always)]
fn prefetch(bins: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bins.get(at) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch of a valid address (here a
        // live element) reads nothing and writes nothing: it only hints the cache.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bins, at);
}

/// Turns a parent's histogram of one feature into its larger child's by subtracting the smaller
/// child's (the subtraction trick: only the smaller child is ever built from rows).
pub(crate) fn subtract_feature(parent: &mut [f64], smaller: &[f64]) {
    for (p, s) in parent.iter_mut().zip(smaller) {
        *p -= s;
    }
}

/// Reusable leaf histograms, so growing a tree allocates nothing once the pool is warm.
#[derive(Debug, Default)]
pub(crate) struct HistogramPool {
    free: Vec<LeafHist>,
}

impl HistogramPool {
    /// A histogram buffer of `len` slots (contents unspecified: `fill` clears what it fills).
    pub(crate) fn take(&mut self, len: usize) -> LeafHist {
        self.free.pop().unwrap_or_else(|| vec![0.0; len])
    }

    /// Returns a histogram for reuse.
    pub(crate) fn give(&mut self, hist: LeafHist) {
        self.free.push(hist);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-feature matrix: a column is a row-major matrix of width 1.
    fn column(col: &[u8]) -> RowMajor<'_> {
        RowMajor { bins: col, width: 1 }
    }

    #[test]
    fn subset_and_subtraction_agree_with_direct_sums() {
        let col = [0u8, 1, 1, 2, 0, 2];
        let grad = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let hess = [0.5; 6];
        let layout = HistLayout::new([3].into_iter(), false);
        let mut pool = HistogramPool::default();
        let mut all = pool.take(layout.len());
        fill(&mut [(0, &mut all)], column(&col), Rows::All { grad: &grad, hess: &hess }, false);
        assert_eq!(layout.view(&all).bin(1), BinStats { grad: 5.0, hess: 1.0, count: 2 });

        let rows = [1u32, 4];
        let (g, h) = ([2.0, 5.0], [0.5, 0.5]);
        let mut small = pool.take(layout.len());
        fill(&mut [(0, &mut small)], column(&col), Rows::Subset { rows: &rows, grad: &g, hess: &h }, false);
        subtract_feature(&mut all, &small);
        // Rows 0, 2, 3, 5 remain.
        let v = layout.view(&all);
        assert_eq!(v.bin(0), BinStats { grad: 1.0, hess: 0.5, count: 1 });
        assert_eq!(v.bin(1), BinStats { grad: 3.0, hess: 0.5, count: 1 });
        assert_eq!(v.bin(2), BinStats { grad: 10.0, hess: 1.0, count: 2 });
    }

    /// Filling every feature in one pass, or each alone, or in any grouping gives the same bits as
    /// summing each bin's rows in order.
    #[test]
    fn any_grouping_of_features_sums_each_bin_in_row_order() {
        let mut rng = crate::gbdt::SplitMix64(5);
        let (n, width, bins) = (1_000, 7, 17);
        let matrix: Vec<u8> = (0..n * width).map(|_| (rng.next_u64() % bins as u64) as u8).collect();
        let rows: Vec<u32> = (0..n as u32).filter(|_| rng.next_u64().is_multiple_of(3)).collect();
        let grad: Vec<f64> = rows.iter().map(|_| rng.normal() * 1e3).collect();
        let subset = Rows::Subset { rows: &rows, grad: &grad, hess: &[] };
        let m = RowMajor { bins: &matrix, width };
        let mut want = vec![vec![0.0; 2 * bins]; width];
        for (&r, &g) in rows.iter().zip(&grad) {
            for (f, h) in want.iter_mut().enumerate() {
                let b = usize::from(matrix[r as usize * width + f]);
                h[2 * b] += g;
                h[2 * b + 1] += 1.0;
            }
        }
        for group in [width, 3, 1] {
            let mut got = vec![vec![f64::NAN; 2 * bins]; width];
            let mut targets: Vec<Target> = got.iter_mut().map(Vec::as_mut_slice).enumerate().collect();
            for chunk in targets.chunks_mut(group) {
                fill(chunk, m, subset, true);
            }
            let bits = |h: &Vec<Vec<f64>>| h.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "groups of {group}");
        }
    }

    #[test]
    fn unit_hessian_counts_rows_and_layout_uses_real_bins() {
        let layout = HistLayout::new([2, 6].into_iter(), true);
        assert_eq!(layout.len(), 16);
        let mut buf = vec![f64::NAN; layout.len()];
        let mut parts = layout.split_mut(&mut buf);
        assert_eq!((parts[0].len(), parts[1].len()), (4, 12));
        let matrix = [0, 2, 1, 2, 0, 5];
        let rows = Rows::All { grad: &[1.0, 1.0, -1.0], hess: &[] };
        fill(&mut [(1, &mut *parts[1])], RowMajor { bins: &matrix, width: 2 }, rows, true);
        let v = layout.view(&buf[4..]);
        assert_eq!(v.bin(2), BinStats { grad: 2.0, hess: 2.0, count: 2 });
        assert_eq!(v.bin(5).hess, 1.0);
        assert_eq!(v.bin(0), BinStats::default());
    }
}
