//! Gradient histograms: per feature and bin, the sums of gradient and hessian and the row count of
//! a leaf's rows. Each feature's histogram is filled in row order by one task, so the sums are the
//! same on any number of threads.

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

/// Fills one feature's histogram (laid out as [`HistLayout`] says) over `rows`, summed in row order
/// (so the same on any thread count). With `unit_hessian` the hessians (all 1) are not summed.
pub(crate) fn fill_feature(h: &mut [f64], col: &[u8], rows: Rows<'_>, unit_hessian: bool) {
    h.fill(0.0);
    if unit_hessian {
        let h = h.as_chunks_mut::<2>().0;
        let mut add = |b: u8, g: f64| {
            let e = &mut h[usize::from(b)];
            e[0] += g;
            e[1] += 1.0;
        };
        match rows {
            Rows::All { grad, .. } => col.iter().zip(grad).for_each(|(&b, &g)| add(b, g)),
            Rows::Subset { rows, grad, .. } => {
                for (i, (&r, &g)) in rows.iter().zip(grad).enumerate() {
                    if let Some(&ahead) = rows.get(i + PREFETCH_ROWS) {
                        prefetch(col, ahead);
                    }
                    add(col[r as usize], g);
                }
            }
        }
    } else {
        let h = h.as_chunks_mut::<3>().0;
        let mut add = |b: u8, g: f64, hs: f64| {
            let e = &mut h[usize::from(b)];
            e[0] += g;
            e[1] += hs;
            e[2] += 1.0;
        };
        match rows {
            Rows::All { grad, hess } => col.iter().zip(grad).zip(hess).for_each(|((&b, &g), &hs)| add(b, g, hs)),
            Rows::Subset { rows, grad, hess } => {
                for (i, ((&r, &g), &hs)) in rows.iter().zip(grad).zip(hess).enumerate() {
                    if let Some(&ahead) = rows.get(i + PREFETCH_ROWS) {
                        prefetch(col, ahead);
                    }
                    add(col[r as usize], g, hs);
                }
            }
        }
    }
}

/// Features whose histograms [`fill_features`] fills in one pass over a leaf's rows.
pub(crate) const FILL_GROUP: usize = 4;

/// Fills the histograms of a group of features over `rows`. For a leaf's rows with unit hessians (L2)
/// and a full group, one pass over the rows fills all [`FILL_GROUP`] histograms, so the row list and
/// the gradients are read once for the group instead of once per feature; each bin is still summed in
/// row order, so the sums are [`fill_feature`]'s to the bit. Otherwise feature by feature.
pub(crate) fn fill_features(hs: &mut [&mut [f64]], cols: &[&[u8]], rows: Rows<'_>, unit_hessian: bool) {
    if let (Rows::Subset { rows, grad, .. }, true, [h0, h1, h2, h3], &[c0, c1, c2, c3]) =
        (rows, unit_hessian, &mut *hs, cols)
    {
        let [h0, h1, h2, h3] = [h0, h1, h2, h3].map(|h| {
            h.fill(0.0);
            h.as_chunks_mut::<2>().0
        });
        let add = |h: &mut [[f64; 2]], b: u8, g: f64| {
            let e = &mut h[usize::from(b)];
            e[0] += g;
            e[1] += 1.0;
        };
        for (i, (&r, &g)) in rows.iter().zip(grad).enumerate() {
            if let Some(&ahead) = rows.get(i + PREFETCH_ROWS) {
                [c0, c1, c2, c3].into_iter().for_each(|c| prefetch(c, ahead));
            }
            let r = r as usize;
            add(h0, c0[r], g);
            add(h1, c1[r], g);
            add(h2, c2[r], g);
            add(h3, c3[r], g);
        }
        return;
    }
    for (h, col) in hs.iter_mut().zip(cols) {
        fill_feature(h, col, rows, unit_hessian);
    }
}

/// How far ahead in a leaf's rows [`fill_feature`] asks for a row's bin: a leaf's rows are spread
/// over the column, so their bins are mostly cache misses, which this overlaps.
const PREFETCH_ROWS: usize = 64;

/// Hints the cache to load `col[row]` (a no-op where there is no such hint).
#[inline(always)]
fn prefetch(col: &[u8], row: u32) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = col.get(row as usize) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch of a valid address (here a
        // live element) reads nothing and writes nothing: it only hints the cache.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (col, row);
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
    /// A histogram buffer of `len` slots (contents unspecified: `fill_feature` clears what it fills).
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

    #[test]
    fn subset_and_subtraction_agree_with_direct_sums() {
        let col = [0u8, 1, 1, 2, 0, 2];
        let grad = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let hess = [0.5; 6];
        let layout = HistLayout::new([3].into_iter(), false);
        let mut pool = HistogramPool::default();
        let mut all = pool.take(layout.len());
        fill_feature(&mut all, &col, Rows::All { grad: &grad, hess: &hess }, false);
        assert_eq!(layout.view(&all).bin(1), BinStats { grad: 5.0, hess: 1.0, count: 2 });

        let rows = [1u32, 4];
        let (g, h) = ([2.0, 5.0], [0.5, 0.5]);
        let mut small = pool.take(layout.len());
        fill_feature(&mut small, &col, Rows::Subset { rows: &rows, grad: &g, hess: &h }, false);
        subtract_feature(&mut all, &small);
        // Rows 0, 2, 3, 5 remain.
        let v = layout.view(&all);
        assert_eq!(v.bin(0), BinStats { grad: 1.0, hess: 0.5, count: 1 });
        assert_eq!(v.bin(1), BinStats { grad: 3.0, hess: 0.5, count: 1 });
        assert_eq!(v.bin(2), BinStats { grad: 10.0, hess: 1.0, count: 2 });
    }

    #[test]
    fn a_group_pass_sums_what_one_feature_at_a_time_sums() {
        let mut rng = crate::gbdt::SplitMix64(5);
        let n = 1_000;
        let cols: Vec<Vec<u8>> =
            (0..FILL_GROUP).map(|_| (0..n).map(|_| (rng.next_u64() % 17) as u8).collect()).collect();
        let rows: Vec<u32> = (0..n as u32).filter(|_| rng.next_u64().is_multiple_of(3)).collect();
        let grad: Vec<f64> = rows.iter().map(|_| rng.normal() * 1e3).collect();
        let subset = Rows::Subset { rows: &rows, grad: &grad, hess: &[] };
        let col_refs: Vec<&[u8]> = cols.iter().map(Vec::as_slice).collect();
        let mut grouped = vec![vec![f64::NAN; 34]; FILL_GROUP];
        let mut hs: Vec<&mut [f64]> = grouped.iter_mut().map(Vec::as_mut_slice).collect();
        fill_features(&mut hs, &col_refs, subset, true);
        for (col, got) in cols.iter().zip(&grouped) {
            let mut want = vec![0.0; 34];
            fill_feature(&mut want, col, subset, true);
            assert!(want.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn unit_hessian_counts_rows_and_layout_uses_real_bins() {
        let layout = HistLayout::new([2, 6].into_iter(), true);
        assert_eq!(layout.len(), 16);
        let mut buf = vec![f64::NAN; layout.len()];
        let mut parts = layout.split_mut(&mut buf);
        assert_eq!((parts[0].len(), parts[1].len()), (4, 12));
        fill_feature(parts[1], &[2, 2, 5], Rows::All { grad: &[1.0, 1.0, -1.0], hess: &[] }, true);
        let v = layout.view(&buf[4..]);
        assert_eq!(v.bin(2), BinStats { grad: 2.0, hess: 2.0, count: 2 });
        assert_eq!(v.bin(5).hess, 1.0);
        assert_eq!(v.bin(0), BinStats::default());
    }
}
