//! Gradient histograms: per feature and bin, the sums of gradient and hessian and the row count of
//! a leaf's rows. Each feature's histogram is filled in row order by one task, so the sums are the
//! same on any number of threads.

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

/// One feature's histogram: a fixed 256 bins, so a `u8` bin indexes it without bounds checks.
pub(crate) type FeatureHist = [BinStats; MAX_BINS];

/// One leaf's histograms, one per feature, contiguous.
pub(crate) type LeafHist = Vec<FeatureHist>;

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

/// Fills one feature's histogram over `rows`, summed in row order (so the same on any thread
/// count). With `unit_hessian` the hessians (all 1) are not summed: a bin's hessian is its count.
pub(crate) fn fill_feature(h: &mut FeatureHist, col: &[u8], rows: Rows<'_>, unit_hessian: bool) {
    h.fill(BinStats::default());
    match (rows, unit_hessian) {
        (Rows::All { grad, .. }, true) => {
            for (&b, &g) in col.iter().zip(grad) {
                let e = &mut h[usize::from(b)];
                e.grad += g;
                e.count += 1;
            }
        }
        (Rows::All { grad, hess }, false) => {
            for ((&b, &g), &hs) in col.iter().zip(grad).zip(hess) {
                let e = &mut h[usize::from(b)];
                e.grad += g;
                e.hess += hs;
                e.count += 1;
            }
        }
        (Rows::Subset { rows, grad, .. }, true) => {
            for (&r, &g) in rows.iter().zip(grad) {
                let e = &mut h[usize::from(col[r as usize])];
                e.grad += g;
                e.count += 1;
            }
        }
        (Rows::Subset { rows, grad, hess }, false) => {
            for ((&r, &g), &hs) in rows.iter().zip(grad).zip(hess) {
                let e = &mut h[usize::from(col[r as usize])];
                e.grad += g;
                e.hess += hs;
                e.count += 1;
            }
        }
    }
    if unit_hessian {
        for e in h.iter_mut() {
            e.hess = f64::from(e.count);
        }
    }
}

/// Turns a parent's histogram of one feature into its larger child's by subtracting the smaller
/// child's (the subtraction trick: only the smaller child is ever built from rows).
pub(crate) fn subtract_feature(parent: &mut FeatureHist, smaller: &FeatureHist) {
    for (p, s) in parent.iter_mut().zip(smaller.iter()) {
        *p = p.sub(*s);
    }
}

/// Reusable leaf histograms, so growing a tree allocates nothing once the pool is warm.
#[derive(Debug, Default)]
pub(crate) struct HistogramPool {
    free: Vec<LeafHist>,
}

impl HistogramPool {
    /// A histogram for `num_features` features (contents unspecified: `build` clears what it fills).
    pub(crate) fn take(&mut self, num_features: usize) -> LeafHist {
        self.free.pop().unwrap_or_else(|| vec![[BinStats::default(); MAX_BINS]; num_features])
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
        let mut pool = HistogramPool::default();
        let mut all = pool.take(1);
        fill_feature(&mut all[0], &col, Rows::All { grad: &grad, hess: &hess }, false);
        assert_eq!(all[0][1], BinStats { grad: 5.0, hess: 1.0, count: 2 });

        let rows = [1u32, 4];
        let (g, h) = ([2.0, 5.0], [0.5, 0.5]);
        let mut small = pool.take(1);
        fill_feature(&mut small[0], &col, Rows::Subset { rows: &rows, grad: &g, hess: &h }, false);
        subtract_feature(&mut all[0], &small[0]);
        // Rows 0, 2, 3, 5 remain.
        assert_eq!(all[0][0], BinStats { grad: 1.0, hess: 0.5, count: 1 });
        assert_eq!(all[0][1], BinStats { grad: 3.0, hess: 0.5, count: 1 });
        assert_eq!(all[0][2], BinStats { grad: 10.0, hess: 1.0, count: 2 });
    }

    #[test]
    fn unit_hessian_counts_rows() {
        let mut h = [BinStats::default(); MAX_BINS];
        fill_feature(&mut h, &[2, 2, 5], Rows::All { grad: &[1.0, 1.0, -1.0], hess: &[] }, true);
        assert_eq!(h[2], BinStats { grad: 2.0, hess: 2.0, count: 2 });
        assert_eq!(h[5].hess, 1.0);
    }
}
