//! Reference distributions stored in a version's card at training, so monitoring can measure drift (PSI) of
//! live features and scores against what the model was fitted and early-stopped on.
//!
//! Each distribution is binned at its deciles: up to nine distinct edges, the share of rows in each bin, and
//! the share that is NaN (a missing feature, or too little history). Monitoring bins live values with the
//! same edges ([`Binned::shares_of`]), so both sides of the comparison come from one function.
//!
//! The rows are the **valid** segment's: out of sample for the score (the trees never fitted them; train-row
//! scores are over-fitted and wider than anything live), the most recent rows the learner saw, and the same
//! rows for features and score so both references describe one population.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::gbdt::Booster;
use crate::training_data::SegmentData;

/// Bins per distribution (deciles).
pub const BINS: usize = 10;

/// One distribution: bin `i` holds values in `(edges[i-1], edges[i]]`, the first bin everything up to
/// `edges[0]`, the last everything above the last edge. NaN is a bin of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    /// Increasing, distinct upper edges (fewer than `BINS - 1` when values repeat).
    pub edges: Vec<f64>,
    /// Share of all rows in each bin (`edges.len() + 1` of them).
    pub shares: Vec<f64>,
    /// Share of rows that are NaN or infinite; `shares` and `nan` sum to 1.
    pub nan: f64,
}

impl Binned {
    /// Bins `values` at their quantiles `k / bins` (k = 1 … bins − 1, the inverted CDF: the smallest value
    /// with at least that share of values at or below it). Edges are rounded to 6 significant digits for a
    /// compact card, and the shares computed with the rounded edges.
    pub fn from_values(values: &[f64], bins: usize) -> Binned {
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_by(f64::total_cmp);
        let n = finite.len();
        let mut edges: Vec<f64> = Vec::with_capacity(bins.saturating_sub(1));
        if n > 0 {
            for k in 1..bins {
                let rank = (k * n).div_ceil(bins).max(1);
                let edge = round_significant(finite[rank - 1]);
                if edges.last().is_none_or(|last| edge > *last) {
                    edges.push(edge);
                }
            }
        }
        let mut binned = Binned { edges, shares: Vec::new(), nan: 0.0 };
        let (shares, nan) = binned.shares_of(values);
        binned.shares = shares.into_iter().map(round_share).collect();
        binned.nan = round_share(nan);
        binned
    }

    /// The bin of a finite value; None for NaN or infinite values.
    pub fn bin_of(&self, value: f64) -> Option<usize> {
        value.is_finite().then(|| self.edges.partition_point(|e| *e < value))
    }

    /// Shares of `values` in this distribution's bins, and the NaN share (all 0 when `values` is empty).
    pub fn shares_of(&self, values: &[f64]) -> (Vec<f64>, f64) {
        let mut counts = vec![0usize; self.edges.len() + 1];
        let mut nan = 0usize;
        for v in values {
            match self.bin_of(*v) {
                Some(b) => counts[b] += 1,
                None => nan += 1,
            }
        }
        let total = values.len().max(1) as f64;
        (counts.into_iter().map(|c| c as f64 / total).collect(), nan as f64 / total)
    }
}

/// The reference stored under `reference` in a version's card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Which segment's rows were binned (`valid`).
    pub segment: String,
    /// Number of rows binned.
    pub rows: usize,
    /// First date of those rows.
    pub from: Option<NaiveDate>,
    /// Last date of those rows.
    pub to: Option<NaiveDate>,
    /// The model's score on the rows.
    pub score: Binned,
    /// Each feature by name.
    pub features: BTreeMap<String, Binned>,
}

impl Reference {
    /// Bins every feature of `segment` and `booster`'s score on its rows; `name` says which segment it is.
    pub fn of_segment(name: &str, booster: &Booster, segment: &SegmentData) -> Result<Reference, String> {
        let scores = booster.predict_dataset(&segment.data).map_err(|e| format!("scoring the {name} rows: {e}"))?;
        let data = &segment.data;
        let features =
            data.feature_names().iter().zip(data.columns()).map(|(n, c)| (n.clone(), Binned::from_values(c, BINS)));
        Ok(Reference {
            segment: name.to_string(),
            rows: data.num_rows(),
            from: segment.dates.first().copied(),
            to: segment.dates.last().copied(),
            score: Binned::from_values(&scores, BINS),
            features: features.collect(),
        })
    }

    /// The reference in a card, if it has one: Ok(None) for cards written before references were stored.
    pub fn from_card(card: &serde_json::Value) -> Result<Option<Reference>, serde_json::Error> {
        match card.get("reference") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Reference::deserialize(v).map(Some),
        }
    }
}

/// `x` to 6 significant digits (a decimal round trip: the card prints it short).
fn round_significant(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

/// A share to 5 decimals.
fn round_share(x: f64) -> f64 {
    (x * 1e5).round() / 1e5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::{self, Dataset, Params};

    #[test]
    fn deciles_of_one_to_hundred() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let b = Binned::from_values(&values, BINS);
        assert_eq!(b.edges, vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]);
        assert_eq!(b.shares, vec![0.1; 10]);
        assert_eq!(b.nan, 0.0);
        // Values on an edge belong to the bin below it.
        assert_eq!(
            (b.bin_of(10.0), b.bin_of(10.5), b.bin_of(-1e9), b.bin_of(1e9)),
            (Some(0), Some(1), Some(0), Some(9))
        );
        assert_eq!(b.bin_of(f64::NAN), None);
    }

    #[test]
    fn ties_merge_bins_and_nan_has_its_own_share() {
        // 6 zeros, 2 ones, 1 two, 1 NaN: deciles of the 9 finite values are 0 (k = 1..6), 1 (k = 7, 8), 2.
        let values = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, f64::NAN];
        let b = Binned::from_values(&values, BINS);
        assert_eq!(b.edges, vec![0.0, 1.0, 2.0]);
        assert_eq!(b.shares, vec![0.6, 0.2, 0.1, 0.0]);
        assert_eq!(b.nan, 0.1);
        assert!((b.shares.iter().sum::<f64>() + b.nan - 1.0).abs() < 1e-12);
        // Live values through the same edges.
        let (shares, nan) = b.shares_of(&[-5.0, 0.5, 3.0, f64::INFINITY]);
        assert_eq!(shares, vec![0.25, 0.25, 0.0, 0.25]);
        assert_eq!(nan, 0.25);
        assert_eq!(b.shares_of(&[]), (vec![0.0; 4], 0.0));
        // Nothing finite: one bin, everything NaN.
        let empty = Binned::from_values(&[f64::NAN, f64::NAN], BINS);
        assert_eq!((empty.edges.len(), empty.shares.clone(), empty.nan), (0, vec![0.0], 1.0));
    }

    #[test]
    fn edges_are_rounded_for_a_compact_card() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i) / 7.0).collect();
        let b = Binned::from_values(&values, BINS);
        assert_eq!(b.edges[0], 14.1429); // 99 / 7 = 14.142857…
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.len() < 200, "{json}");
    }

    #[test]
    fn reference_of_a_segment_bins_features_and_scores_and_reads_back_from_a_card() {
        let mut rng = gbdt::SplitMix64(7);
        let n = 500;
        let x: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let z: Vec<f64> = (0..n).map(|i| if i % 5 == 0 { f64::NAN } else { rng.uniform() }).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 0.1 * rng.normal()).collect();
        let data = Dataset::from_columns(vec!["x".into(), "z".into()], vec![x, z], y).unwrap();
        let params = Params { num_boost_round: 20, ..Params::default() };
        let booster = gbdt::train(&params, &data, None, |_| std::ops::ControlFlow::Continue(())).unwrap();
        let d0: NaiveDate = "2010-01-04".parse().unwrap();
        let segment = SegmentData {
            dates: (0..n).map(|i| d0 + chrono::Days::new(i as u64 / 50)).collect(),
            symbols: (0..n).map(|i| format!("S{}", i % 50)).collect(),
            data,
        };
        let r = Reference::of_segment("valid", &booster, &segment).unwrap();
        assert_eq!((r.segment.as_str(), r.rows, r.from, r.to), ("valid", n, Some(d0), Some(d0 + chrono::Days::new(9))));
        assert_eq!(r.features.keys().collect::<Vec<_>>(), ["x", "z"]);
        assert_eq!(r.features["x"].edges.len(), 9);
        // Deciles, up to the one row at an edge that rounding the edge may move to the next bin.
        assert!(r.features["x"].shares.iter().all(|s| (s - 0.1).abs() <= 1.0 / 500.0 + 1e-9), "{:?}", r.features["x"]);
        assert_eq!(r.features["z"].nan, 0.2);
        // The score follows x, so its deciles split the rows evenly too.
        assert!(r.score.edges.len() >= 8 && r.score.nan == 0.0);
        let card = serde_json::json!({ "kind": "stockops-gbdt", "reference": r });
        assert_eq!(Reference::from_card(&card).unwrap(), Some(r));
        assert_eq!(Reference::from_card(&serde_json::json!({ "kind": "old" })).unwrap(), None);
    }
}
