//! Signal metrics as Qlib's signal analysis reports them: MSE, and from (date, prediction, label)
//! rows grouped by date the daily cross-sectional IC (Pearson) and Rank IC (Spearman, average ranks
//! for ties), their means, standard deviations (ddof = 1, as pandas) and ICIR = mean / std.
//!
//! Undefined values are `None` where pandas gives NaN: a day with fewer than two complete pairs or
//! a constant side has no IC, and such days are left out of the means (pandas' `skipna`).

use serde::Serialize;
use thiserror::Error;

/// Metric inputs do not line up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricsError {
    /// Two input slices have different lengths.
    #[error("input lengths differ: {expected} and {found}")]
    LengthMismatch {
        /// Length of the first input.
        expected: usize,
        /// Length of the other input.
        found: usize,
    },
}

/// One date's cross-sectional correlations between predictions and labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyIc<D> {
    /// The date (any ordered key).
    pub date: D,
    /// Rows on that date with both prediction and label present.
    pub count: usize,
    /// Pearson correlation (IC).
    pub ic: Option<f64>,
    /// Spearman correlation (Rank IC).
    pub rank_ic: Option<f64>,
}

/// Qlib's signal report over a test period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalReport<D> {
    /// Mean squared error over rows with both prediction and label present.
    pub mse: Option<f64>,
    /// Mean daily IC.
    pub ic: Option<f64>,
    /// Standard deviation (ddof = 1) of daily IC.
    pub ic_std: Option<f64>,
    /// IC / IC std.
    pub icir: Option<f64>,
    /// Mean daily Rank IC.
    pub rank_ic: Option<f64>,
    /// Standard deviation (ddof = 1) of daily Rank IC.
    pub rank_ic_std: Option<f64>,
    /// Rank IC / Rank IC std.
    pub rank_icir: Option<f64>,
    /// Per-date values, in date order.
    pub daily: Vec<DailyIc<D>>,
}

/// Checks two slices have equal length.
fn same_len(a: usize, b: usize) -> Result<(), MetricsError> {
    if a == b { Ok(()) } else { Err(MetricsError::LengthMismatch { expected: a, found: b }) }
}

/// Pairs where neither value is NaN (pandas' pairwise-complete observations).
fn complete_pairs(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    x.iter().zip(y).filter(|(a, b)| !a.is_nan() && !b.is_nan()).map(|(&a, &b)| (a, b)).unzip()
}

/// Mean squared error over pairs where neither is NaN; None when there are none.
pub fn mse(predictions: &[f64], labels: &[f64]) -> Result<Option<f64>, MetricsError> {
    same_len(predictions.len(), labels.len())?;
    let (p, y) = complete_pairs(predictions, labels);
    if p.is_empty() {
        return Ok(None);
    }
    Ok(Some(p.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / p.len() as f64))
}

/// Pearson correlation over complete pairs; None with fewer than two pairs or a constant side.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Option<f64>, MetricsError> {
    same_len(x.len(), y.len())?;
    let (x, y) = complete_pairs(x, y);
    Ok(pearson_complete(&x, &y))
}

/// Spearman correlation over complete pairs: Pearson of average ranks (ties share their mean rank).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Option<f64>, MetricsError> {
    same_len(x.len(), y.len())?;
    let (x, y) = complete_pairs(x, y);
    Ok(pearson_complete(&average_ranks(&x), &average_ranks(&y)))
}

/// 1-based ranks with ties given the average of the ranks they span (pandas `method="average"`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        // `==` (not total_cmp) so -0.0 and 0.0 tie, as in pandas.
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation of NaN-free equal-length slices.
fn pearson_complete(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Mean and sample standard deviation (ddof = 1) of the defined values.
fn mean_std(values: impl Iterator<Item = Option<f64>>) -> (Option<f64>, Option<f64>) {
    let v: Vec<f64> = values.flatten().collect();
    if v.is_empty() {
        return (None, None);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.len() > 1).then(|| (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), std)
}

/// Mean over std, where both exist and std is not zero.
fn ratio(mean: Option<f64>, std: Option<f64>) -> Option<f64> {
    match (mean, std) {
        (Some(m), Some(s)) if s > 0.0 => Some(m / s),
        _ => None,
    }
}

/// Groups rows by date and computes MSE, daily IC / Rank IC and their ICIRs.
pub fn signal_report<D: Ord + Clone>(
    dates: &[D],
    predictions: &[f64],
    labels: &[f64],
) -> Result<SignalReport<D>, MetricsError> {
    same_len(dates.len(), predictions.len())?;
    same_len(dates.len(), labels.len())?;
    let mut order: Vec<usize> = (0..dates.len()).collect();
    order.sort_by(|&a, &b| dates[a].cmp(&dates[b]));
    let mut daily = Vec::new();
    for day in order.chunk_by(|&a, &b| dates[a] == dates[b]) {
        let (p, y): (Vec<f64>, Vec<f64>) = day.iter().map(|&i| (predictions[i], labels[i])).unzip();
        let (p, y) = complete_pairs(&p, &y);
        daily.push(DailyIc {
            date: dates[day[0]].clone(),
            count: p.len(),
            ic: pearson_complete(&p, &y),
            rank_ic: pearson_complete(&average_ranks(&p), &average_ranks(&y)),
        });
    }
    let (ic, ic_std) = mean_std(daily.iter().map(|d| d.ic));
    let (rank_ic, rank_ic_std) = mean_std(daily.iter().map(|d| d.rank_ic));
    Ok(SignalReport {
        mse: mse(predictions, labels)?,
        ic,
        ic_std,
        icir: ratio(ic, ic_std),
        rank_ic,
        rank_ic_std,
        rank_icir: ratio(rank_ic, rank_ic_std),
        daily,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(average_ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        assert_eq!(average_ranks(&[1.0, 1.0, 1.0]), vec![2.0, 2.0, 2.0]);
    }

    #[test]
    fn pearson_and_spearman_by_hand() {
        // x = 1,2,3,4; y = 2,4,5,9: means 2.5, 5; sxy = 11, sxx = 5, syy = 26.
        assert!(close(pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]).unwrap(), 11.0 / (5.0f64 * 26.0).sqrt()));
        // Ranks with a tie: x = 1,2,3,4; y ranks = 1, 2.5, 2.5, 4 → sxy = 4.5, sxx = 5, syy = 4.5.
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0], &[0.1, 0.5, 0.5, 0.9]).unwrap();
        assert!(close(rho, 4.5 / (5.0f64 * 4.5).sqrt()));
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]).unwrap(), None);
        assert_eq!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, f64::NAN]).unwrap(), None);
        assert!(pearson(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn signal_report_by_hand() {
        // Day 1: perfectly ordered (IC = RankIC = 1). Day 2: reversed with a tie in predictions.
        // Day 3: one row only → no IC, left out of the means.
        let dates = [2, 1, 1, 1, 2, 2, 3];
        let pred = [0.3, 0.1, 0.2, 0.3, 0.3, 0.1, 0.5];
        let label = [1.0, 1.0, 2.0, 3.0, 2.0, 3.0, 0.0];
        let r = signal_report(&dates, &pred, &label).unwrap();
        assert_eq!(r.daily.iter().map(|d| d.date).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(close(r.daily[0].ic, 1.0));
        assert!(close(r.daily[0].rank_ic, 1.0));
        // Day 2 rows in input order: p = .3,.3,.1; y = 1,2,3. p mean .7/3.
        let (pm, ym) = (0.7 / 3.0, 2.0);
        let p2 = [0.3, 0.3, 0.1];
        let y2 = [1.0, 2.0, 3.0];
        let sxy: f64 = p2.iter().zip(&y2).map(|(p, y)| (p - pm) * (y - ym)).sum();
        let sxx: f64 = p2.iter().map(|p| (p - pm) * (p - pm)).sum();
        let ic2 = sxy / (sxx * 2.0).sqrt();
        assert!(close(r.daily[1].ic, ic2));
        // Ranks p = 2.5, 2.5, 1; y = 1, 2, 3: sxy = -1.5, sxx = 1.5, syy = 2.
        let ric2 = -1.5 / (1.5f64 * 2.0).sqrt();
        assert!(close(r.daily[1].rank_ic, ric2));
        assert_eq!((r.daily[2].count, r.daily[2].ic), (1, None));
        assert!(close(r.ic, (1.0 + ic2) / 2.0));
        let ic_std = ((1.0 - ic2) * (1.0 - ic2) / 2.0).sqrt(); // ddof = 1 over two days
        assert!(close(r.ic_std, ic_std));
        assert!(close(r.icir, (1.0 + ic2) / 2.0 / ic_std));
        assert!(close(r.rank_ic, (1.0 + ric2) / 2.0));
        let mse: f64 = pred.iter().zip(&label).map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / 7.0;
        assert!(close(r.mse, mse));
    }

    #[test]
    fn single_day_has_no_icir() {
        let r = signal_report(&["d"; 3], &[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap();
        assert!(close(r.ic, 0.5));
        assert_eq!((r.ic_std, r.icir), (None, None));
    }
}
