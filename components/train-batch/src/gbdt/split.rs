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
        if d > 0.0 { t * t / d } else { 0.0 }
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
pub(crate) fn best_for_feature(
    feature: usize,
    h: FeatureHist<'_>,
    mapper: &BinMapper,
    parent: BinStats,
    rules: &SplitRules,
) -> Option<SplitCandidate> {
    let parent_gain = rules.leaf_gain(parent);
    let mut best_gain = parent_gain + rules.min_gain_to_split;
    let mut best: Option<(u8, bool, BinStats)> = None;
    let nan = mapper.nan_bin().map(|b| h.bin(usize::from(b)));
    let mut consider = |t: usize, nan_left: bool, left: BinStats| {
        let right = parent.sub(left);
        if !rules.child_ok(left) || !rules.child_ok(right) {
            return;
        }
        let gain = rules.leaf_gain(left) + rules.leaf_gain(right);
        if gain > best_gain {
            best_gain = gain;
            best = Some((t as u8, nan_left, left));
        }
    };
    let mut acc = BinStats::default();
    h.for_each_bin(mapper.value_bins().saturating_sub(1), |t, bin| {
        acc = acc.add(bin);
        match nan {
            Some(n) => {
                consider(t, true, acc.add(n));
                consider(t, false, acc);
            }
            None => consider(t, false, acc),
        }
    });
    if let Some(n) = nan.filter(|n| n.count > 0) {
        consider(mapper.value_bins() - 1, false, parent.sub(n));
    }
    best.map(|(bin, nan_left, left)| SplitCandidate {
        feature,
        bin,
        default_left: if nan.is_some() { nan_left } else { 0.0 <= mapper.threshold(bin) },
        gain: best_gain - parent_gain,
        left,
        right: parent.sub(left),
    })
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

    #[test]
    fn min_data_in_leaf_blocks_small_children() {
        let r = SplitRules { min_data_in_leaf: 3, ..rules() };
        assert!(!r.can_split(S { grad: 0.0, hess: 5.0, count: 5 }));
        assert!(r.can_split(S { grad: 0.0, hess: 6.0, count: 6 }));
    }
}
