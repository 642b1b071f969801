//! Loss functions: gradients and hessians, LightGBM's `boost_from_average` start score, and each
//! objective's evaluation metric.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per parallel chunk for per-row work; fixed so that sums never depend on the thread count.
pub(crate) const ROW_CHUNK: usize = 16_384;

/// LightGBM's `kEpsilon`: the clamp for probabilities in the start score and the log loss.
const EPSILON: f64 = 1e-15;

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

    /// Start score (`boost_from_average`): the label mean, or for binary the log-odds of it.
    pub(crate) fn init_score(self, labels: &[f64]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let mean = ordered_sum(labels.par_chunks(ROW_CHUNK).map(|c| c.iter().sum())) / labels.len() as f64;
        match self {
            Objective::Regression | Objective::Huber => mean,
            Objective::Binary => {
                let p = mean.clamp(EPSILON, 1.0 - EPSILON);
                (p / (1.0 - p)).ln()
            }
        }
    }

    /// First and second derivatives of the loss at each row's current raw score.
    pub(crate) fn gradients(self, alpha: f64, labels: &[f64], scores: &[f64], grad: &mut [f64], hess: &mut [f64]) {
        grad.par_chunks_mut(ROW_CHUNK)
            .zip(hess.par_chunks_mut(ROW_CHUNK))
            .zip(labels.par_chunks(ROW_CHUNK).zip(scores.par_chunks(ROW_CHUNK)))
            .for_each(|((g, h), (y, s))| {
                for (((g, h), &y), &s) in g.iter_mut().zip(h.iter_mut()).zip(y).zip(s) {
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
                    *g = dg;
                    *h = dh;
                }
            });
    }

    /// Mean loss of the metric named by [`Objective::metric_name`] at the given raw scores.
    pub(crate) fn metric(self, alpha: f64, labels: &[f64], scores: &[f64]) -> f64 {
        if labels.is_empty() {
            return 0.0;
        }
        let per_chunk = labels.par_chunks(ROW_CHUNK).zip(scores.par_chunks(ROW_CHUNK)).map(|(y, s)| {
            y.iter()
                .zip(s)
                .map(|(&y, &s)| match self {
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
    fn metrics() {
        assert_eq!(Objective::Regression.metric(0.0, &[1.0, 2.0], &[2.0, 4.0]), 2.5);
        assert_eq!(Objective::Huber.metric(1.0, &[0.0, 0.0], &[0.5, 3.0]), (0.125 + 2.5) / 2.0);
        let ll = Objective::Binary.metric(0.0, &[1.0, 0.0], &[0.0, 0.0]);
        assert!((ll - 2f64.ln()).abs() < 1e-12);
    }
}
