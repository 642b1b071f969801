//! Split finding on histograms with LightGBM's gain: L1 soft-thresholding, L2 in the denominator,
//! minimum rows / hessian per child, and for features with NaN both default directions tried.

use super::binning::BinMapper;
use super::histogram::{BinStats, FeatureHist};
use super::params::Params;

/// The regularisation and size limits a split must respect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRules {
    pub(crate) lambda_l1: f64,
    pub(crate) lambda_l2: f64,
    pub(crate) min_data_in_leaf: u32,
    pub(crate) min_sum_hessian_in_leaf: f64,
    pub(crate) min_gain_to_split: f64,
}

impl SplitRules {
    /// The rules set by `params`.
    pub(crate) fn new(params: &Params) -> Self {
        SplitRules {
            lambda_l1: params.lambda_l1,
            lambda_l2: params.lambda_l2,
            min_data_in_leaf: u32::try_from(params.min_data_in_leaf).unwrap_or(u32::MAX),
            min_sum_hessian_in_leaf: params.min_sum_hessian_in_leaf,
            min_gain_to_split: params.min_gain_to_split,
        }
    }

    /// LightGBM's `ThresholdL1`: the gradient sum shrunk towards zero by `lambda_l1`.
    fn threshold_l1(&self, g: f64) -> f64 {
        g.signum() * (g.abs() - self.lambda_l1).max(0.0)
    }

    /// Loss reduction of a leaf with these sums at its optimal output.
    pub(crate) fn leaf_gain(&self, s: BinStats) -> f64 {
        let t = self.threshold_l1(s.grad);
        let d = s.hess + self.lambda_l2;
        // t = ±0 (common under heavy lambda_l1) gives +0 either way; skip the division.
        if d > 0.0 && t != 0.0 { t * t / d } else { 0.0 }
    }

    /// Optimal leaf output (before shrinkage): `-ThresholdL1(G, l1) / (H + l2)`.
    pub(crate) fn leaf_output(&self, s: BinStats) -> f64 {
        let d = s.hess + self.lambda_l2;
        if d > 0.0 { -self.threshold_l1(s.grad) / d } else { 0.0 }
    }

    /// Whether a leaf with these sums could have two children that each meet the minimums.
    pub(crate) fn can_split(&self, s: BinStats) -> bool {
        s.count >= 2 * self.min_data_in_leaf.max(1) && s.hess >= 2.0 * self.min_sum_hessian_in_leaf
    }

    fn child_ok(&self, s: BinStats) -> bool {
        s.count >= self.min_data_in_leaf && s.count > 0 && s.hess >= self.min_sum_hessian_in_leaf
    }
}

/// The best split of a leaf: rows with bin <= `bin` go left, NaN rows as `default_left` says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitCandidate {
    pub(crate) feature: usize,
    pub(crate) bin: u8,
    pub(crate) default_left: bool,
    /// Loss reduction: children's gains minus the parent's.
    pub(crate) gain: f64,
    pub(crate) left: BinStats,
    pub(crate) right: BinStats,
}

impl SplitCandidate {
    /// Higher gain wins; equal gains go to the lower feature index.
    fn better(a: SplitCandidate, b: SplitCandidate) -> SplitCandidate {
        if b.gain > a.gain || (b.gain == a.gain && b.feature < a.feature) { b } else { a }
    }
}

/// The best of per-feature candidates; any order of evaluation gives the same answer.
pub(crate) fn pick_best(candidates: impl Iterator<Item = Option<SplitCandidate>>) -> Option<SplitCandidate> {
    candidates.flatten().reduce(SplitCandidate::better)
}

/// The best threshold of one feature. Candidates: "bins <= t" left with NaN left, then with NaN
/// right, for each t; and "all values left, NaN right". A feature without NaN in training sends
/// NaN where 0.0 goes (LightGBM's rule), so its default direction is `0.0 <= threshold`.
///
/// Equal gains are settled as LightGBM's two scans settle them, which places the threshold where
/// LightGBM does when bins empty in this leaf leave several thresholds with the same partition:
/// NaN-left candidates (all candidates of a feature without NaN) come first and the highest
/// threshold of equal gain wins (its scan runs from the top bin down); a NaN-right candidate
/// replaces them only with a strictly higher gain, and among those the lowest threshold wins.
pub(crate) fn best_for_feature(
    feature: usize,
    h: FeatureHist<'_>,
    mapper: &BinMapper,
    parent: BinStats,
    rules: &SplitRules,
) -> Option<SplitCandidate> {
    let parent_gain = rules.leaf_gain(parent);
    let min_gain = parent_gain + rules.min_gain_to_split;
    let nan = mapper.nan_bin().map(|b| h.bin(usize::from(b)));
    let n = mapper.value_bins().saturating_sub(1);
    let scan = Scan { parent, rules, min_gain };
    // (gain, threshold bin, left sums) of the best NaN-left and NaN-right candidates.
    let (best_nan_left, mut best_nan_right) = match (h.bins2(), nan) {
        (Some(bins), None) => scan.run::<2, false>(&bins[..n.min(bins.len())], BinStats::default()),
        (Some(bins), Some(nb)) => scan.run::<2, true>(&bins[..n.min(bins.len())], nb),
        (None, None) => scan.run::<3, false>(&h.bins3()[..n], BinStats::default()),
        (None, Some(nb)) => scan.run::<3, true>(&h.bins3()[..n], nb),
    };
    if let Some(n) = nan.filter(|n| n.count > 0) {
        let left = parent.sub(n);
        if let Some(gain) = scan.gain_of(left)
            && best_nan_right.is_none_or(|(b, ..)| gain > b)
        {
            best_nan_right = Some((gain, mapper.value_bins() - 1, left));
        }
    }
    let (gain, t, left, nan_left) = match (best_nan_left, best_nan_right) {
        (Some(l), Some(r)) if r.0 > l.0 => (r.0, r.1, r.2, false),
        (Some(l), _) => (l.0, l.1, l.2, true),
        (None, Some(r)) => (r.0, r.1, r.2, false),
        (None, None) => return None,
    };
    let bin = t as u8;
    Some(SplitCandidate {
        feature,
        bin,
        default_left: if nan.is_some() { nan_left } else { 0.0 <= mapper.threshold(bin) },
        gain: gain - parent_gain,
        left,
        right: parent.sub(left),
    })
}

/// One feature's threshold scan over its bins (see [`best_for_feature`]).
struct Scan<'a> {
    parent: BinStats,
    rules: &'a SplitRules,
    min_gain: f64,
}

/// The best candidate of one kind: (gain, threshold bin, left sums).
type Best = Option<(f64, usize, BinStats)>;

impl Scan<'_> {
    /// The gain of sending `left` left, if both children are valid and it beats `min_gain`.
    #[inline(always)]
    fn gain_of(&self, left: BinStats) -> Option<f64> {
        let right = self.parent.sub(left);
        if !self.rules.child_ok(left) || !self.rules.child_ok(right) {
            return None;
        }
        let gain = self.rules.leaf_gain(left) + self.rules.leaf_gain(right);
        (gain > self.min_gain).then_some(gain)
    }

    /// The best NaN-left and (with `NAN`) NaN-right candidates of "bins <= t" over `bins`, where
    /// `nan` is the NaN bin's sums. A bin with no rows in the leaf (all zero) leaves the running
    /// sums as they were, so its candidates are those of the bin before: their gains are not
    /// recomputed, only the ties replayed (a NaN-left candidate just taken is taken again at the
    /// higher threshold; a NaN-right one, which needs a strictly higher gain, is not). Once the
    /// right child has too few rows the scan stops: right children only shrink as `t` grows.
    #[inline(always)]
    fn run<const N: usize, const NAN: bool>(&self, bins: &[[f64; N]], nan: BinStats) -> (Best, Best) {
        let min_rows = self.rules.min_data_in_leaf.max(1);
        let (mut best_left, mut best_right): (Best, Best) = (None, None);
        let mut acc = BinStats::default();
        // Whether the previous threshold's NaN-left candidate was taken; None before any was scanned.
        let mut took_left: Option<bool> = None;
        for (t, c) in bins.iter().enumerate() {
            let bin = BinStats { grad: c[0], hess: c[1], count: c[N - 1] as u32 };
            if bin.count == 0 && bin.grad.to_bits() == 0 && bin.hess.to_bits() == 0 {
                // acc + (+0) is acc bit for bit (acc, a sum from +0, is never -0).
                if let Some(took) = took_left {
                    if took && let Some(b) = best_left.as_mut() {
                        b.1 = t;
                    }
                    continue;
                }
            }
            acc = acc.add(bin);
            if self.parent.count.saturating_sub(acc.count) < min_rows {
                break;
            }
            let left = if NAN { acc.add(nan) } else { acc };
            let mut took = false;
            if let Some(gain) = self.gain_of(left)
                && best_left.is_none_or(|(b, ..)| gain >= b)
            {
                best_left = Some((gain, t, left));
                took = true;
            }
            took_left = Some(took);
            if NAN
                && let Some(gain) = self.gain_of(acc)
                && best_right.is_none_or(|(b, ..)| gain > b)
            {
                best_right = Some((gain, t, acc));
            }
        }
        (best_left, best_right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::histogram::BinStats as S;

    fn rules() -> SplitRules {
        SplitRules {
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_data_in_leaf: 1,
            min_sum_hessian_in_leaf: 0.0,
            min_gain_to_split: 0.0,
        }
    }

    #[test]
    fn l1_and_l2_shape_outputs_and_gains() {
        let r = SplitRules { lambda_l1: 1.0, lambda_l2: 2.0, ..rules() };
        let s = S { grad: -5.0, hess: 2.0, count: 2 };
        assert_eq!(r.leaf_output(s), 1.0); // -(-5 + 1) / (2 + 2)
        assert_eq!(r.leaf_gain(s), 4.0); // 16 / 4
        assert_eq!(r.leaf_output(S { grad: 0.5, hess: 1.0, count: 1 }), 0.0);
    }

    /// A leaf whose rows have x in {1, 2} (gradient −1), {5, 6} (+1) and, in `leaf_nan`, NaN
    /// rows of gradient +1: bins 3 and 4 are empty in it, so "x <= 2.5", "<= 3.5" and "<= 4.5"
    /// make the same partition. Returns the chosen threshold and default direction.
    fn tied_split(column_has_nan: bool, leaf_nan: bool) -> (f64, bool) {
        use crate::gbdt::Dataset;
        use crate::gbdt::binning::BinnedData;
        use crate::gbdt::histogram::{self, HistLayout, Rows};
        let mut x: Vec<f64> = (1..=6).map(f64::from).collect();
        if column_has_nan {
            x.push(f64::NAN);
        }
        let n = x.len();
        let data = Dataset::from_columns(vec!["x".into()], vec![x], vec![0.0; n]).unwrap();
        let binned = BinnedData::build(&data, &Params { min_data_in_bin: 1, ..Params::default() });
        let mapper = &binned.mappers[0];
        let mut rows = vec![0u32, 1, 4, 5];
        let mut grad = vec![-1.0, -1.0, 1.0, 1.0];
        if leaf_nan {
            rows.push(6);
            grad.push(1.0);
        }
        let layout = HistLayout::new(std::iter::once(mapper.num_bins()), true);
        let mut buf = vec![0.0; layout.len()];
        histogram::fill(
            &mut [(0, &mut buf)],
            binned.rows(),
            Rows::Subset { rows: &rows, grad: &grad, hess: &[] },
            true,
        );
        let count = rows.len() as u32;
        let parent = S { grad: grad.iter().sum(), hess: f64::from(count), count };
        let c = best_for_feature(0, layout.view(&buf), mapper, parent, &rules()).unwrap();
        (mapper.threshold(c.bin), c.default_left)
    }

    #[test]
    fn equal_gains_pick_lightgbms_threshold_and_nan_direction() {
        // Without NaN (LightGBM scans from the top bin down): the highest tied threshold.
        // (A bound is the next double above the midpoint of its neighbours, as in LightGBM.)
        assert_eq!(tied_split(false, false).0, 4.5f64.next_up());
        // NaN in the column but not in the leaf: NaN left wins the tie, highest threshold.
        assert_eq!(tied_split(true, false), (4.5f64.next_up(), true));
        // NaN rows in the leaf that belong right: NaN right is strictly better; its scan runs
        // upwards, so the lowest tied threshold.
        assert_eq!(tied_split(true, true), (2.5f64.next_up(), false));
    }

    #[test]
    fn min_data_in_leaf_blocks_small_children() {
        let r = SplitRules { min_data_in_leaf: 3, ..rules() };
        assert!(!r.can_split(S { grad: 0.0, hess: 5.0, count: 5 }));
        assert!(r.can_split(S { grad: 0.0, hess: 6.0, count: 6 }));
    }
}
