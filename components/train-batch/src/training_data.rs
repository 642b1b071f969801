//! Training data from the feature store, as Qlib's `DatasetH` builds it: one row per (date, symbol) with the
//! feature set's columns and the label LABEL0 (`Ref($close, -2) / Ref($close, -1) - 1`), split by date into
//! train / valid / test segments (never shuffled across time). Learn segments (train, valid) get Qlib's
//! learn processors for Alpha158: `DropnaLabel`, then `CSZScoreNorm` of the label per date. The test segment
//! keeps raw labels, which the metrics compare predictions to (rows without a label carry no metric).

use chrono::NaiveDate;
use features::store::{self, FeatureMatrix, NamedSet, StoreError};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stockops_core::Database;
use thiserror::Error;

use crate::gbdt::{Dataset, DatasetError};

/// An inclusive date range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// First date in the segment.
    pub from: NaiveDate,
    /// Last date in the segment.
    pub to: NaiveDate,
}

impl Segment {
    fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

/// The three segments of a training job, in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segments {
    /// Rows the trees are fitted on.
    pub train: Segment,
    /// Rows early stopping and the hyper-parameter search watch.
    pub valid: Segment,
    /// Held-out rows the reported metrics come from.
    pub test: Segment,
}

/// Why a job's data cannot be built.
#[derive(Debug, Error)]
pub enum DataError {
    /// A segment ends before it starts, or segments overlap or are out of order.
    #[error("segments: {0}")]
    Segments(String),
    /// A segment holds no usable row.
    #[error("segment {segment} ({from} to {to}) has no row with features and a label: ingest bars for it first")]
    EmptySegment {
        /// Segment name.
        segment: &'static str,
        /// Its first date.
        from: NaiveDate,
        /// Its last date.
        to: NaiveDate,
    },
    /// A requested symbol has no bars.
    #[error("symbol {0} has no bars")]
    UnknownSymbol(String),
    /// Reading bars or computing features failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The feature expressions failed on a symbol's bars.
    #[error("computing features for {symbol}: {message}")]
    Features {
        /// Symbol whose features failed.
        symbol: String,
        /// What failed.
        message: String,
    },
    /// The rows do not form a dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

impl Segments {
    /// Each segment is a non-empty range and they follow each other without overlap: train < valid < test.
    pub fn validate(&self) -> Result<(), DataError> {
        for (name, s) in [("train", self.train), ("valid", self.valid), ("test", self.test)] {
            if s.from > s.to {
                return Err(DataError::Segments(format!("{name} ends ({}) before it starts ({})", s.to, s.from)));
            }
        }
        if self.train.to >= self.valid.from {
            return Err(DataError::Segments(format!(
                "train ({} to {}) must end before valid starts ({})",
                self.train.from, self.train.to, self.valid.from
            )));
        }
        if self.valid.to >= self.test.from {
            return Err(DataError::Segments(format!(
                "valid ({} to {}) must end before test starts ({})",
                self.valid.from, self.valid.to, self.test.from
            )));
        }
        Ok(())
    }
}

/// The rows of one segment: a GBDT dataset plus each row's date and symbol.
#[derive(Debug)]
pub struct SegmentData {
    /// Features and (processed, for learn segments) labels.
    pub data: Dataset,
    /// Row dates, in row order (rows are sorted by date, then symbol).
    pub dates: Vec<NaiveDate>,
    /// Row symbols.
    pub symbols: Vec<String>,
}

/// A job's data: the three segments over the same feature columns.
#[derive(Debug)]
pub struct TrainingData {
    /// Fitting rows (label z-scored per date).
    pub train: SegmentData,
    /// Early-stopping rows (label z-scored per date).
    pub valid: SegmentData,
    /// Held-out rows with raw labels.
    pub test: SegmentData,
    /// Symbols the data came from.
    pub symbols: Vec<String>,
}

/// Builds the segments from `symbols`' bars (every stored symbol when empty).
pub fn build(
    db: &impl Database,
    set: &NamedSet,
    symbols: &[String],
    segments: &Segments,
) -> Result<TrainingData, DataError> {
    segments.validate()?;
    let symbols: Vec<String> = if symbols.is_empty() {
        store::list_symbols(db)?.into_iter().map(|s| s.symbol).collect()
    } else {
        for s in symbols {
            if !store::has_symbol(db, s).map_err(StoreError::from)? {
                return Err(DataError::UnknownSymbol(s.clone()));
            }
        }
        symbols.to_vec()
    };
    let label_set = NamedSet::builtin("label").expect("the label set is built in");
    // Reads are sequential (one database handle); the feature math runs on all cores where there are threads.
    // Labels look ahead two bars, so the whole history is read, as Qlib does.
    let series = symbols.iter().map(|s| store::load_series(db, s, None)).collect::<Result<Vec<_>, _>>()?;
    let computed: Vec<(FeatureMatrix, FeatureMatrix)> = series
        .par_iter()
        .map(|bars| {
            let fail = |e: features::expr::EvalError| DataError::Features {
                symbol: bars.symbol.clone(),
                message: e.to_string(),
            };
            Ok((set.compute(bars).map_err(fail)?, label_set.compute(bars).map_err(fail)?))
        })
        .collect::<Result<_, DataError>>()?;
    let names = set.names();
    let part =
        |name: &'static str, seg: Segment, learn: bool| segment_rows(name, seg, learn, &symbols, &computed, &names);
    Ok(TrainingData {
        train: part("train", segments.train, true)?,
        valid: part("valid", segments.valid, true)?,
        test: part("test", segments.test, false)?,
        symbols,
    })
}

/// The rows of `seg` from every symbol's features, sorted by (date, symbol), without rows whose label is
/// not known yet (the last two bars). Learn segments z-score the label per date (sample std, as pandas); a
/// date whose label cannot be normalised (one symbol, or all equal) contributes no learn rows.
fn segment_rows(
    name: &'static str,
    seg: Segment,
    learn: bool,
    symbols: &[String],
    computed: &[(FeatureMatrix, FeatureMatrix)],
    names: &[String],
) -> Result<SegmentData, DataError> {
    // (date, symbol index, row index in that symbol's matrix)
    let mut picks: Vec<(NaiveDate, usize, usize)> = Vec::new();
    for (s, (feats, label)) in computed.iter().enumerate() {
        for (i, d) in feats.dates.iter().enumerate() {
            if seg.contains(*d) && label.columns[0][i].is_finite() {
                picks.push((*d, s, i));
            }
        }
    }
    picks.sort_by(|a, b| (a.0, &symbols[a.1]).cmp(&(b.0, &symbols[b.1])));
    let mut labels: Vec<f64> = picks.iter().map(|&(_, s, i)| computed[s].1.columns[0][i]).collect();
    if learn {
        let mut keep = vec![true; picks.len()];
        let mut start = 0;
        while start < picks.len() {
            let end = start + picks[start..].iter().take_while(|p| p.0 == picks[start].0).count();
            let day = &mut labels[start..end];
            let n = day.len() as f64;
            let mean = day.iter().sum::<f64>() / n;
            let std = (day.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            for (k, y) in day.iter_mut().enumerate() {
                *y = (*y - mean) / std;
                keep[start + k] = y.is_finite();
            }
            start = end;
        }
        let mut k = 0;
        picks.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        let mut k = 0;
        labels.retain(|_| {
            k += 1;
            keep[k - 1]
        });
    }
    if picks.is_empty() {
        return Err(DataError::EmptySegment { segment: name, from: seg.from, to: seg.to });
    }
    let columns: Vec<Vec<f64>> =
        (0..names.len()).map(|j| picks.iter().map(|&(_, s, i)| computed[s].0.columns[j][i]).collect()).collect();
    Ok(SegmentData {
        data: Dataset::from_columns(names.to_vec(), columns, labels)?,
        dates: picks.iter().map(|p| p.0).collect(),
        symbols: picks.iter().map(|p| symbols[p.1].clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn seg(a: &str, b: &str) -> Segment {
        Segment { from: d(a), to: d(b) }
    }

    #[test]
    fn segments_must_be_ordered_and_disjoint() {
        let ok = Segments {
            train: seg("2010-01-01", "2010-12-31"),
            valid: seg("2011-01-01", "2011-06-30"),
            test: seg("2011-07-01", "2011-12-31"),
        };
        assert!(ok.validate().is_ok());
        let overlap = Segments { valid: seg("2010-12-31", "2011-06-30"), ..ok };
        assert!(overlap.validate().unwrap_err().to_string().contains("train"));
        let backwards = Segments { test: seg("2011-12-31", "2011-07-01"), ..ok };
        assert!(backwards.validate().unwrap_err().to_string().contains("test ends"));
        let late_valid = Segments { valid: seg("2011-01-01", "2011-07-01"), ..ok };
        assert!(late_valid.validate().unwrap_err().to_string().contains("valid"));
    }
}
