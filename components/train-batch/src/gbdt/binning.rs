//! Feature binning as LightGBM does it: bin boundaries from a row sample (distinct values grouped so
//! bins hold similar counts, zero in a bin of its own, upper bounds half-way between neighbouring
//! values), a separate NaN bin when the feature has NaN, and every row's bin stored as a `u8`.
//!
//! The boundaries are LightGBM's to the bit (`BinMapper::FindBin`, `FindBinWithZeroAsOneBin`,
//! `GreedyFindBin` of v4): sorted values less than one ulp apart count as one distinct value (the
//! larger), a bound is the next double above the mean of its two neighbours (bounds one ulp apart
//! merge), and zero is LightGBM's `kZeroThreshold`, `1e-35f` widened to a double. Features computed
//! as ratios (Alpha158's SUMD, SUMP, RSV…) hold runs of values a few ulps apart, where any other
//! rule moves the greedy cuts and so the splits the trees can make.

use rayon::prelude::*;

use super::dataset::Dataset;
use super::histogram::RowMajor;
use super::params::Params;
use super::rng::LgbRandom;

/// Most bins a feature can have: a `u8` bin index.
pub(crate) const MAX_BINS: usize = 256;

/// LightGBM's `kZeroThreshold` (`1e-35f`, a float literal widened to double,
/// 1.0000000180025095e-35): values within it of zero share the zero bin.
const ZERO: f64 = 1e-35_f32 as f64;

/// How one feature's raw values map to bins.
#[derive(Debug, Clone)]
pub(crate) struct BinMapper {
    /// Ascending upper bounds of the value bins; the last is +inf. A value `v` is in the first bin with `v <= bound`.
    upper_bounds: Vec<f64>,
    /// Whether the last bin (after the value bins) holds NaN.
    has_nan_bin: bool,
}

impl BinMapper {
    /// The bin of a raw value. NaN goes to the NaN bin, or is read as 0 when the feature had no
    /// NaN in training (LightGBM's rule for missing type "none").
    pub(crate) fn bin(&self, v: f64) -> u8 {
        if v.is_nan() {
            return match self.nan_bin() {
                Some(b) => b,
                None => self.value_bin(0.0),
            };
        }
        self.value_bin(v)
    }

    fn value_bin(&self, v: f64) -> u8 {
        // The last bound is +inf, so the index is below upper_bounds.len() <= MAX_BINS.
        self.upper_bounds.partition_point(|&ub| ub < v) as u8
    }

    /// Number of value bins (the NaN bin excluded).
    pub(crate) fn value_bins(&self) -> usize {
        self.upper_bounds.len()
    }

    /// Number of bins, the NaN bin included: every row's bin is below it.
    pub(crate) fn num_bins(&self) -> usize {
        self.upper_bounds.len() + usize::from(self.has_nan_bin)
    }

    /// The NaN bin, if the feature had NaN in training.
    pub(crate) fn nan_bin(&self) -> Option<u8> {
        self.has_nan_bin.then_some(self.upper_bounds.len() as u8)
    }

    /// The real-valued split threshold of "bin <= `bin`": that bin's upper bound.
    pub(crate) fn threshold(&self, bin: u8) -> f64 {
        self.upper_bounds[usize::from(bin)]
    }
}

/// The training set in bins: one mapper and one `u8` column per feature (feature-major, read when
/// a split partitions a leaf's rows by one feature), and the same bins row by row (what histograms
/// are filled from: see [`RowMajor`]).
#[derive(Debug)]
pub(crate) struct BinnedData {
    pub(crate) mappers: Vec<BinMapper>,
    pub(crate) columns: Vec<Vec<u8>>,
    /// `num_rows × num_features` bins, row by row.
    row_major: Vec<u8>,
    /// Features whose rows fall in at least two bins (the others can never split).
    pub(crate) usable: Vec<bool>,
    pub(crate) num_rows: usize,
}

impl BinnedData {
    /// Bins every feature of `data` (in parallel over features) with boundaries from LightGBM's row sample
    /// (`Random(data_random_seed).Sample(rows, bin_construct_sample_cnt)`, so the same bins as LightGBM's
    /// with the same seed). A feature is usable unless it has one bin or, as LightGBM's
    /// `feature_pre_filter`, no cut of the sample leaves `min_data_in_leaf` rows (scaled to the
    /// sample) on both sides.
    pub(crate) fn build(data: &Dataset, params: &Params) -> Self {
        let n = data.num_rows();
        let sample = (n > params.bin_construct_sample_cnt)
            .then(|| LgbRandom::new(params.data_random_seed).sample(n, params.bin_construct_sample_cnt));
        let sampled = sample.as_ref().map_or(n, Vec::len);
        let filter_cnt = ((params.min_data_in_leaf * sampled) as f64 / n as f64) as usize;
        let per_feature: Vec<(BinMapper, Vec<u8>, bool)> = data
            .columns()
            .par_iter()
            .map(|col| {
                let (mapper, counts) = find_mapper(col, sample.as_deref(), params.max_bin, params.min_data_in_bin);
                let bins: Vec<u8> = col.iter().map(|&v| mapper.bin(v)).collect();
                let usable = counts.len() > 1 && !needs_filter(&counts, sampled, filter_cnt);
                (mapper, bins, usable)
            })
            .collect();
        let mut binned = BinnedData {
            mappers: Vec::with_capacity(per_feature.len()),
            columns: Vec::with_capacity(per_feature.len()),
            row_major: Vec::new(),
            usable: Vec::with_capacity(per_feature.len()),
            num_rows: n,
        };
        for (mapper, bins, usable) in per_feature {
            binned.mappers.push(mapper);
            binned.columns.push(bins);
            binned.usable.push(usable);
        }
        binned.row_major = transpose(&binned.columns, n);
        binned
    }

    /// Number of features.
    pub(crate) fn num_features(&self) -> usize {
        self.mappers.len()
    }

    /// The bins row by row.
    pub(crate) fn rows(&self) -> RowMajor<'_> {
        RowMajor { bins: &self.row_major, width: self.num_features() }
    }
}

/// Rows per task of [`transpose`]: a block's rows of every column are read once, in cache.
const TRANSPOSE_ROWS: usize = 4096;

/// The row-major copy of `columns` (each `n` bytes), in parallel over blocks of rows.
fn transpose(columns: &[Vec<u8>], n: usize) -> Vec<u8> {
    let width = columns.len();
    let mut rows = vec![0u8; n * width];
    if width > 0 {
        rows.par_chunks_mut(TRANSPOSE_ROWS * width).enumerate().for_each(|(block, out)| {
            let start = block * TRANSPOSE_ROWS;
            for (f, col) in columns.iter().enumerate() {
                for (i, &b) in col[start..start + out.len() / width].iter().enumerate() {
                    out[i * width + f] = b;
                }
            }
        });
    }
    rows
}

/// Bin boundaries of one feature column from the sampled rows (all rows when `sample` is None), and how
/// many sampled rows each bin holds (LightGBM's `cnt_in_bin`; the NaN bin last). As in LightGBM, the
/// feature has a NaN bin when the sample has NaN; other NaN rows are read as 0.
fn find_mapper(col: &[f64], sample: Option<&[u32]>, max_bin: usize, min_data_in_bin: usize) -> (BinMapper, Vec<usize>) {
    let mut values: Vec<f64> = match sample {
        Some(rows) => rows.iter().map(|&r| col[r as usize]).collect(),
        None => col.to_vec(),
    };
    let sampled = values.len();
    values.retain(|v| !v.is_nan());
    let nan_count = sampled - values.len();
    let has_nan_bin = nan_count > 0;
    values.sort_unstable_by(f64::total_cmp);
    let (distinct, counts) = distinct_values(&values);
    let value_max_bin = if has_nan_bin { max_bin - 1 } else { max_bin };
    let upper_bounds = if distinct.is_empty() {
        vec![f64::INFINITY]
    } else {
        bounds_with_zero_bin(&distinct, &counts, value_max_bin, min_data_in_bin)
    };
    let mut in_bin = vec![0; upper_bounds.len()];
    let mut b = 0;
    for (&v, &c) in distinct.iter().zip(&counts) {
        while v > upper_bounds[b] && b + 1 < upper_bounds.len() {
            b += 1;
        }
        in_bin[b] += c;
    }
    if has_nan_bin {
        in_bin.push(nan_count);
    }
    (BinMapper { upper_bounds, has_nan_bin }, in_bin)
}

/// LightGBM's `NeedFilter` for numerical features: true when no cut between bins leaves at least
/// `filter_cnt` of the `total` sampled rows on each side.
fn needs_filter(in_bin: &[usize], total: usize, filter_cnt: usize) -> bool {
    let mut left = 0;
    for &c in &in_bin[..in_bin.len() - 1] {
        left += c;
        if left >= filter_cnt && total - left >= filter_cnt {
            return false;
        }
    }
    true
}

/// LightGBM's distinct values of sorted non-NaN values with their counts: values within
/// `ZERO` of zero are one value 0.0 (between the negatives and the positives); a value at most one
/// ulp above the previous one joins its group, which takes the larger value.
fn distinct_values(sorted: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let zero_count = sorted.iter().filter(|v| v.abs() <= ZERO).count();
    let mut distinct: Vec<f64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut zero_placed = zero_count == 0;
    for &v in sorted.iter().filter(|v| v.abs() > ZERO) {
        if !zero_placed && v > 0.0 {
            distinct.push(0.0);
            counts.push(zero_count);
            zero_placed = true;
        }
        match distinct.last_mut() {
            Some(last) if *last != 0.0 && v <= last.next_up() => {
                *last = v;
                if let Some(c) = counts.last_mut() {
                    *c += 1;
                }
            }
            _ => {
                distinct.push(v);
                counts.push(1);
            }
        }
    }
    if !zero_placed {
        distinct.push(0.0);
        counts.push(zero_count);
    }
    (distinct, counts)
}

/// LightGBM's `FindBinWithZeroAsOneBin`: negatives and positives are binned apart, sharing the
/// `max_bin` budget by count, and the values around zero get a bin of their own.
fn bounds_with_zero_bin(distinct: &[f64], counts: &[usize], max_bin: usize, min_data_in_bin: usize) -> Vec<f64> {
    let neg_end = distinct.partition_point(|&v| v <= -ZERO);
    let pos_start = distinct.partition_point(|&v| v <= ZERO);
    let neg_count: usize = counts[..neg_end].iter().sum();
    let zero_count: usize = counts[neg_end..pos_start].iter().sum();
    let pos_count: usize = counts[pos_start..].iter().sum();
    let total = neg_count + zero_count + pos_count;

    let mut bounds = Vec::new();
    if neg_end > 0 && max_bin > 1 {
        let share = neg_count as f64 / (total - zero_count) as f64 * (max_bin - 1) as f64;
        let neg_bins = (share as usize).max(1);
        bounds = greedy_bounds(&distinct[..neg_end], &counts[..neg_end], neg_bins, neg_count, min_data_in_bin);
        // The last negative bin ends just below zero instead of at +inf.
        if let Some(last) = bounds.last_mut() {
            *last = -ZERO;
        }
    }
    let pos_bins = (max_bin - 1).saturating_sub(bounds.len());
    if pos_start < distinct.len() && pos_bins > 0 {
        bounds.push(ZERO);
        bounds.extend(greedy_bounds(
            &distinct[pos_start..],
            &counts[pos_start..],
            pos_bins,
            pos_count,
            min_data_in_bin,
        ));
    } else {
        bounds.push(f64::INFINITY);
    }
    bounds
}

/// LightGBM's `GreedyFindBin`: at most `max_bin` bins over ascending distinct values; every
/// distinct value its own bin when they fit (merging values rarer than `min_data_in_bin`),
/// otherwise bins of about equal count with very frequent values alone. Ends with +inf.
fn greedy_bounds(values: &[f64], counts: &[usize], max_bin: usize, total: usize, min_data_in_bin: usize) -> Vec<f64> {
    let n = values.len();
    let mut bounds = Vec::new();
    if n <= max_bin {
        let mut in_bin = 0;
        for i in 0..n - 1 {
            in_bin += counts[i];
            if in_bin >= min_data_in_bin && push_bound(&mut bounds, upper_bound(values[i], values[i + 1])) {
                in_bin = 0;
            }
        }
    } else {
        let max_bin = (total / min_data_in_bin).clamp(1, max_bin);
        let mut mean = total as f64 / max_bin as f64;
        let big: Vec<bool> = counts.iter().map(|&c| c as f64 >= mean).collect();
        let mut rest_bins = max_bin - big.iter().filter(|&&b| b).count();
        let mut rest_count = total - counts.iter().zip(&big).filter(|(_, b)| **b).map(|(c, _)| c).sum::<usize>();
        mean = per_bin(rest_count, rest_bins);
        // (last value of a bin, first value of the next) at each cut.
        let mut cuts: Vec<(f64, f64)> = Vec::with_capacity(max_bin);
        let mut in_bin = 0;
        for i in 0..n - 1 {
            if !big[i] {
                rest_count -= counts[i];
            }
            in_bin += counts[i];
            let in_bin_f = in_bin as f64;
            if big[i] || in_bin_f >= mean || (big[i + 1] && in_bin_f >= (mean * 0.5).max(1.0)) {
                cuts.push((values[i], values[i + 1]));
                if cuts.len() + 1 >= max_bin {
                    break;
                }
                in_bin = 0;
                if !big[i] {
                    rest_bins = rest_bins.saturating_sub(1);
                    mean = per_bin(rest_count, rest_bins);
                }
            }
        }
        for &(a, b) in &cuts {
            push_bound(&mut bounds, upper_bound(a, b));
        }
    }
    bounds.push(f64::INFINITY);
    bounds
}

/// Mean rows per remaining bin; +inf when no bin remains, so no further cut is made.
fn per_bin(rows: usize, bins: usize) -> f64 {
    if bins == 0 { f64::INFINITY } else { rows as f64 / bins as f64 }
}

/// LightGBM's bound between neighbouring distinct values `a < b`: the next double above their mean
/// (`GetDoubleUpperBound((a + b) / 2.0)`), so `a` is always below it; `b` is too unless `a` and `b`
/// are two ulps apart, where LightGBM bins `b` with `a` and so do we.
fn upper_bound(a: f64, b: f64) -> f64 {
    ((a + b) / 2.0).next_up()
}

/// Appends `bound` unless it is within one ulp of the last bound (LightGBM drops such a bound);
/// whether it was appended.
fn push_bound(bounds: &mut Vec<f64>, bound: f64) -> bool {
    if bounds.last().is_some_and(|&last| bound <= last.next_up()) {
        return false;
    }
    bounds.push(bound);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let col: Vec<f64> = (0..30).map(|i| f64::from(i % 3) + 1.0).collect();
        let m = find_mapper(&col, None, 255, 3).0;
        // zero bin, then 1 | 2 | 3 split just above the midpoints.
        assert_eq!(m.upper_bounds, vec![ZERO, 1.5f64.next_up(), 2.5f64.next_up(), f64::INFINITY]);
        assert_eq!([m.bin(1.0), m.bin(2.0), m.bin(3.0), m.bin(100.0)], [1, 2, 3, 3]);
        assert_eq!(m.bin(f64::NAN), m.bin(0.0));
        assert_eq!(m.nan_bin(), None);
    }

    #[test]
    fn rare_values_merge_below_min_data_in_bin() {
        let col = [1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0];
        let m = find_mapper(&col, None, 255, 3).0;
        // 1 and 2 are too rare for bins of their own, so the first cut is after 3.
        assert_eq!(m.upper_bounds, vec![ZERO, 3.5f64.next_up(), f64::INFINITY]);
    }

    #[test]
    fn many_values_are_cut_into_balanced_bins() {
        let col: Vec<f64> = (0..10_000).map(|i| f64::from(i) * 0.001 - 2.0).collect();
        let m = find_mapper(&col, None, 16, 3).0;
        assert!(m.value_bins() <= 16);
        let mut counts = vec![0usize; m.value_bins()];
        col.iter().for_each(|&v| counts[usize::from(m.bin(v))] += 1);
        let non_empty: Vec<usize> = counts.into_iter().filter(|&c| c > 0).collect();
        assert!(non_empty.len() >= 12);
        assert!(non_empty.iter().all(|&c| c < 1500), "{non_empty:?}");
    }

    #[test]
    fn nan_gets_the_last_bin_and_bins_are_monotone() {
        let col = [f64::NAN, -3.0, -1.0, 0.0, 2.0, f64::NAN, 5.0];
        let m = find_mapper(&col, None, 255, 1).0;
        assert_eq!(m.nan_bin(), Some(m.value_bins() as u8));
        let bins: Vec<u8> = [-3.0, -1.0, 0.0, 2.0, 5.0].iter().map(|&v| m.bin(v)).collect();
        assert!(bins.windows(2).all(|w| w[0] < w[1]), "{bins:?}");
        for (i, &v) in [-3.0, -1.0, 0.0, 2.0].iter().enumerate() {
            // Threshold semantics match bins: value <= threshold(bin) exactly for bins <= bin.
            assert!(v <= m.threshold(bins[i]));
            assert!([-3.0, -1.0, 0.0, 2.0, 5.0][i + 1] > m.threshold(bins[i]));
        }
    }

    #[test]
    fn infinities_bin_consistently() {
        let col = [f64::NEG_INFINITY, 1.0, 2.0, f64::INFINITY];
        let m = find_mapper(&col, None, 255, 1).0;
        let bins: Vec<u8> = col.iter().map(|&v| m.bin(v)).collect();
        // As in LightGBM, the bound between 2 and +inf is +inf, so they share a bin.
        assert_eq!(bins, [0, 2, 3, 3], "{:?}", m.upper_bounds);
        for (&v, &b) in col.iter().zip(&bins) {
            assert!(v <= m.threshold(b));
            assert!(b == 0 || v > m.threshold(b - 1));
        }
    }

    #[test]
    fn values_an_ulp_apart_are_one_value_and_bounds_sit_above_midpoints() {
        let a = 0.2f64;
        let col = [a, a, a.next_up(), a.next_up(), 0.7, 0.7];
        let (distinct, counts) = distinct_values(&col);
        assert_eq!((distinct, counts), (vec![a.next_up(), 0.7], vec![4, 2]));
        let m = find_mapper(&col, None, 255, 1).0;
        assert_eq!(m.upper_bounds, vec![ZERO, 0.45000000000000007, f64::INFINITY]);
        // Two ulps apart: two values, but the bound above their mean is the larger one, which bins with the smaller.
        let b = a.next_up().next_up();
        let m = find_mapper(&[a, b, 0.7], None, 255, 1).0;
        assert_eq!(m.bin(a), m.bin(b));
        assert_eq!(m.threshold(m.bin(a)), b);
        // Values within kZeroThreshold of zero are one 0.0 between the negatives and the positives; a chain of
        // values each an ulp above the previous one is one value (LightGBM compares neighbours).
        assert_eq!(distinct_values(&[-1.0, -0.0, 0.0, 1e-36, 2.0]), (vec![-1.0, 0.0, 2.0], vec![1, 3, 1]));
        let (one, two, three) = (1.0f64, 1.0f64.next_up(), 1.0f64.next_up().next_up());
        assert_eq!(distinct_values(&[one, two, three]), (vec![three], vec![3]));
        assert_eq!(ZERO, 1.0000000180025095e-35);
    }

    /// One-split trees on one feature where the bounds decide the split, against LightGBM 4.7
    /// (learning_rate 1, num_leaves 2, min_data_in_leaf 1, min_sum_hessian_in_leaf 0, min_data_in_bin 1,
    /// 1 round): its threshold and its rows per leaf. Labels 0 on the first value's rows, 10 on the others.
    #[test]
    fn split_thresholds_are_lightgbm_s() {
        use crate::gbdt::{Child, Dataset, Params, train};
        let a = 0.2f64;
        let cases: [(&str, Vec<f64>, f64, [u64; 2]); 3] = [
            // 0.2 and the next double are one value: the only cut is between it and 0.7.
            ("one ulp", [vec![a; 5], vec![a.next_up(); 5], vec![0.7; 5]].concat(), 0.45000000000000007, [10, 5]),
            // Two ulps apart they are two values, but the bound between them is the larger.
            (
                "two ulps",
                [vec![a; 5], vec![a.next_up().next_up(); 5], vec![0.7; 5]].concat(),
                0.45000000000000007,
                [10, 5],
            ),
            // The empty zero bin makes -kZeroThreshold and kZeroThreshold tie; the higher one wins.
            ("zero", [vec![-1.0; 5], vec![1.0; 5]].concat(), 1.0000000180025095e-35, [5, 5]),
        ];
        for (name, x, threshold, counts) in cases {
            let y: Vec<f64> = (0..x.len()).map(|i| if i < 5 { 0.0 } else { 10.0 }).collect();
            let data = Dataset::from_columns(vec!["x".into()], vec![x], y).unwrap();
            let params = Params {
                learning_rate: 1.0,
                num_leaves: 2,
                min_data_in_leaf: 1,
                min_sum_hessian_in_leaf: 0.0,
                min_data_in_bin: 1,
                num_boost_round: 1,
                ..Params::default()
            };
            let model = train(&params, &data, None, |_| std::ops::ControlFlow::Continue(())).unwrap();
            let tree = &model.trees()[0];
            let root = &tree.nodes()[0];
            assert_eq!(root.threshold, threshold, "{name}");
            let leaf_count = |c: Child| match c {
                Child::Leaf(i) => tree.leaves()[i as usize].cover.count,
                Child::Split(_) => panic!("{name}: one split expected"),
            };
            assert_eq!([leaf_count(root.left), leaf_count(root.right)], counts, "{name}");
        }
    }

    #[test]
    fn binned_data_marks_constant_features_unusable() {
        let d = Dataset::from_columns(
            vec!["c".into(), "x".into()],
            vec![vec![7.0; 50], (0..50).map(f64::from).collect()],
            vec![0.0; 50],
        )
        .unwrap();
        let b = BinnedData::build(&d, &Params::default());
        assert_eq!(b.usable, vec![false, true]);
        let bins = &b.columns[1];
        assert!(bins.windows(2).all(|w| w[0] <= w[1]) && bins[0] < bins[49]);
    }
}
