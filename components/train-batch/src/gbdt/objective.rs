//! Loss functions: gradients and hessians, LightGBM's `boost_from_average` start score, and each
//! objective's evaluation metric.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per parallel chunk for per-row work; fixed so that sums never depend on the thread count.
pub(crate) const ROW_CHUNK: usize = 16_384;

/// LightGBM's `kEpsilon`: the clamp for probabilities in the start score and the log loss.
const EPSILON: f64 = 1e-15;

/// LightGBM's `kEpsilon` as declared (`1e-15f`, widened to double): a start score at most this far
/// from 0 is not used.
const K_EPSILON: f64 = 1e-15_f32 as f64;

/// The loss to minimise, under LightGBM's objective names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Squared error (`regression`, aliases `regression_l2`, `l2`, `mse`, `mean_squared_error`).
    Regression,
    /// Huber loss with threshold `alpha` (`huber`).
    Huber,
    /// Log loss of a sigmoid of the raw score; labels must be 0 or 1 (`binary`).
    Binary,
}

impl Objective {
    /// The objective for a LightGBM objective name or alias, if we implement it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "regression"
            | "regression_l2"
            | "l2"
            | "mean_squared_error"
            | "mse"
            | "l2_root"
            | "root_mean_squared_error"
            | "rmse" => Some(Objective::Regression),
            "huber" => Some(Objective::Huber),
            "binary" => Some(Objective::Binary),
            _ => None,
        }
    }

    /// LightGBM's name of this objective's default metric (evaluation and early stopping).
    pub fn metric_name(self) -> &'static str {
        match self {
            Objective::Regression => "l2",
            Objective::Huber => "huber",
            Objective::Binary => "binary_logloss",
        }
    }

    /// Maps a raw score to a prediction: identity for regression, the probability for binary.
    pub fn transform(self, raw: f64) -> f64 {
        match self {
            Objective::Regression | Objective::Huber => raw,
            Objective::Binary => sigmoid(raw),
        }
    }

    /// Whether every hessian is 1, so histograms count rows instead of summing hessians.
    pub(crate) fn unit_hessian(self) -> bool {
        !matches!(self, Objective::Binary)
    }

    /// Start score (`boost_from_average`): the label mean, or for binary the log-odds of it; labels
    /// taken at f32 precision, and 0 when the score is within LightGBM's `kEpsilon` of 0 (LightGBM
    /// then starts from 0 too).
    pub(crate) fn init_score(self, labels: &[f64]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let mean = ordered_sum(labels.par_chunks(ROW_CHUNK).map(|c| c.iter().map(|&y| label_f32(y)).sum()))
            / labels.len() as f64;
        let score = match self {
            Objective::Regression | Objective::Huber => mean,
            Objective::Binary => {
                let p = mean.clamp(EPSILON, 1.0 - EPSILON);
                (p / (1.0 - p)).ln()
            }
        };
        if score.abs() > K_EPSILON { score } else { 0.0 }
    }

    /// First and second derivatives of the loss at each row's current raw score, computed as
    /// LightGBM computes them: from the label at f32 precision (its `label_t`), in f64, then rounded
    /// to f32 (its `score_t`). Histogram sums of f32 values in f64 are then exact in practice, so
    /// two features that cut the rows the same way (Alpha158's KMID and OPEN0, SUMP and SUMN…) get
    /// the very same gain and the lower feature index wins, as in LightGBM.
    pub(crate) fn gradients(self, alpha: f64, labels: &[f64], scores: &[f64], grad: &mut [f64], hess: &mut [f64]) {
        grad.par_chunks_mut(ROW_CHUNK)
            .zip(hess.par_chunks_mut(ROW_CHUNK))
            .zip(labels.par_chunks(ROW_CHUNK).zip(scores.par_chunks(ROW_CHUNK)))
            .for_each(|((g, h), (y, s))| {
                for (((g, h), &y), &s) in g.iter_mut().zip(h.iter_mut()).zip(y).zip(s) {
                    let y = label_f32(y);
                    let (dg, dh) = match self {
                        Objective::Regression => (s - y, 1.0),
                        Objective::Huber => {
                            let diff = s - y;
                            (if diff.abs() <= alpha { diff } else { alpha.copysign(diff) }, 1.0)
                        }
                        Objective::Binary => {
                            let p = sigmoid(s);
                            (p - y, p * (1.0 - p))
                        }
                    };
                    *g = f64::from(dg as f32);
                    *h = f64::from(dh as f32);
                }
            });
    }

    /// Mean loss of the metric named by [`Objective::metric_name`] at the given raw scores (labels at
    /// f32 precision, as LightGBM's metrics see them).
    pub(crate) fn metric(self, alpha: f64, labels: &[f64], scores: &[f64]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let per_chunk = labels.par_chunks(ROW_CHUNK).zip(scores.par_chunks(ROW_CHUNK)).map(|(y, s)| {
            y.iter()
                .map(|&y| label_f32(y))
                .zip(s)
                .map(|(y, &s)| match self {
                    Objective::Regression => (s - y) * (s - y),
                    Objective::Huber => {
                        let d = (s - y).abs();
                        if d <= alpha { 0.5 * d * d } else { alpha * (d - 0.5 * alpha) }
                    }
                    Objective::Binary => {
                        let p = sigmoid(s);
                        if y > 0.5 { -p.max(EPSILON).ln() } else { -(1.0 - p).max(EPSILON).ln() }
                    }
                })
                .sum::<f64>()
        });
        ordered_sum(per_chunk) / labels.len() as f64
    }
}

/// A label as LightGBM holds it: rounded to f32 (`label_t`), back in f64.
fn label_f32(y: f64) -> f64 {
    f64::from(y as f32)
}

/// Logistic function.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Sums per-chunk partial sums in chunk order, so the result is the same on any thread count.
pub(crate) fn ordered_sum(parts: impl IndexedParallelIterator<Item = f64>) -> f64 {
    parts.collect::<Vec<f64>>().iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        assert_eq!(Objective::from_name("mse"), Some(Objective::Regression));
        assert_eq!(Objective::from_name("huber"), Some(Objective::Huber));
        assert_eq!(Objective::from_name("binary"), Some(Objective::Binary));
        assert_eq!(Objective::from_name("lambdarank"), None);
    }

    #[test]
    fn init_scores_boost_from_average() {
        assert_eq!(Objective::Regression.init_score(&[1.0, 2.0, 6.0]), 3.0);
        let lo = Objective::Binary.init_score(&[1.0, 0.0, 0.0, 0.0]);
        assert!((lo - (0.25f64 / 0.75).ln()).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_the_losses() {
        let (y, s) = ([0.0, 1.0, 5.0], [1.0, 1.0, 0.0]);
        let (mut g, mut h) = ([0.0; 3], [0.0; 3]);
        Objective::Huber.gradients(2.0, &y, &s, &mut g, &mut h);
        assert_eq!(g, [1.0, 0.0, -2.0]);
        assert_eq!(h, [1.0; 3]);
        Objective::Binary.gradients(0.0, &[1.0, 0.0, 0.0], &[0.0, 0.0, 0.0], &mut g, &mut h);
        assert_eq!(g, [-0.5, 0.5, 0.5]);
        assert_eq!(h, [0.25; 3]);
    }

    #[test]
    fn gradients_and_start_score_have_lightgbm_s_precision() {
        // Labels at f32 precision (0.1f32 is 0.10000000149011612), gradients rounded to f32.
        let (mut g, mut h) = ([0.0; 2], [0.0; 2]);
        Objective::Regression.gradients(0.0, &[0.1, 1.0], &[0.0, 1.0 / 3.0], &mut g, &mut h);
        assert_eq!(g, [-0.10000000149011612, f64::from(-2.0f32 / 3.0)]);
        assert_eq!(Objective::Regression.init_score(&[0.1, 0.2]), (f64::from(0.1f32) + f64::from(0.2f32)) / 2.0);
        // A start score within kEpsilon (1e-15f) of zero is not used (z-scored labels).
        assert_eq!(Objective::Regression.init_score(&[1e-16, 0.0]), 0.0);
        assert_eq!(Objective::Regression.init_score(&[4e-15, 0.0]), f64::from(4e-15f32) / 2.0);
    }

    /// Two features that order the rows oppositely (`1 / (x + 1)` and `x`) offer the same partitions,
    /// so every split has a twin of equal gain on the other feature. With f32 gradients the histogram
    /// sums are exact, the twins' gains are bit-equal and the lower feature index wins every time, as
    /// in LightGBM; with f64 gradients rounding picked either one. LightGBM 4.7 on these rows
    /// (learning_rate 0.1, num_leaves 8, 20 rounds, other parameters default), with either column
    /// order: only feature 0 is used, training MSE 7.521773446108423, first row 1.3993124365897156.
    #[test]
    fn equivalent_features_tie_to_the_lower_index_as_in_lightgbm() {
        use crate::gbdt::{Dataset, Params, train};
        let x: Vec<f64> = (0..300).map(|i| f64::from((i * 37) % 60)).collect();
        let inv: Vec<f64> = x.iter().map(|v| 1.0 / (v + 1.0)).collect();
        let y: Vec<f64> = (0..300).map(|i| 3.7 * (1.3 * f64::from(i)).sin() + 0.01 * f64::from(i)).collect();
        let params = Params { learning_rate: 0.1, num_leaves: 8, num_boost_round: 20, ..Params::default() };
        for columns in [vec![inv.clone(), x.clone()], vec![x.clone(), inv.clone()]] {
            let data = Dataset::from_columns(vec!["a".into(), "b".into()], columns, y.clone()).unwrap();
            let model = train(&params, &data, None, |_| std::ops::ControlFlow::Continue(())).unwrap();
            assert_eq!(model.trees().len(), 20);
            assert!(model.trees().iter().flat_map(|t| t.nodes()).all(|n| n.feature == 0));
            let pred = model.predict_dataset(&data).unwrap();
            let mse = pred.iter().zip(&y).map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / 300.0;
            assert!((mse - 7.521773446108423).abs() < 1e-12, "{mse}");
            assert!((pred[0] - 1.3993124365897156).abs() < 1e-12, "{}", pred[0]);
        }
    }

    #[test]
    fn metrics() {
        assert_eq!(Objective::Regression.metric(0.0, &[1.0, 2.0], &[2.0, 4.0]), 2.5);
        assert_eq!(Objective::Huber.metric(1.0, &[0.0, 0.0], &[0.5, 3.0]), (0.125 + 2.5) / 2.0);
        let ll = Objective::Binary.metric(0.0, &[1.0, 0.0], &[0.0, 0.0]);
        assert!((ll - 2f64.ln()).abs() < 1e-12);
    }
}
