//! The boosting loop (gradients → tree → scores, bagging, feature fraction, evaluation, early
//! stopping, a per-round callback) and the trained model with its predictions.

use std::ops::ControlFlow;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::binning::BinnedData;
use super::dataset::{Dataset, DatasetError};
use super::objective::{Objective, ROW_CHUNK};
use super::params::{ParamError, Params};
use super::rng::LgbRandom;
use super::split::SplitRules;
use super::tree::{GrowConfig, GrowInput, Grower, Tree};

/// Training could not start.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// Parameters are invalid.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The training or validation data is malformed or mismatched.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The training set has no rows.
    #[error("the training set has no rows")]
    EmptyTrainingSet,
    /// Row indices are u32: more rows than that cannot be trained on.
    #[error("{0} training rows exceed the limit of 4294967295")]
    TooManyRows(usize),
    /// Binary objective with a label other than 0 or 1.
    #[error("binary objective needs labels 0 or 1; row {row} has {value}")]
    BinaryLabel {
        /// Zero-based row.
        row: usize,
        /// The label found.
        value: f64,
    },
    /// `early_stopping_rounds` was set but there is no validation set to watch.
    #[error("early_stopping_rounds needs a validation set")]
    EarlyStoppingWithoutValid,
}

/// The metrics after one boosting round, as passed to the training callback.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundEval {
    /// Rounds done so far, counting from 1 (LightGBM's iteration numbering).
    pub round: usize,
    /// Metric on the training set (named by [`Objective::metric_name`]; lower is better).
    pub train_metric: f64,
    /// Metric on the validation set, if one was given.
    pub valid_metric: Option<f64>,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All `num_boost_round` rounds were run.
    MaxRounds,
    /// The validation metric stopped improving.
    EarlyStopping,
    /// The callback asked to stop.
    Callback,
    /// A round's tree found no split worth making (LightGBM stops there too).
    NoSplit,
}

/// How training went: rounds run, which were kept, and why it ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainInfo {
    /// Rounds run (trees grown before any truncation).
    pub rounds: usize,
    /// With early stopping: the round with the best validation metric, which the model ends at.
    pub best_iteration: Option<usize>,
    /// Validation metric of the returned model (its last kept round), if there was a validation set.
    pub valid_metric: Option<f64>,
    /// Why training ended.
    pub stop_reason: StopReason,
}

/// A trained model: start score plus the sum of its trees' outputs. Serialises to JSON with serde;
/// deserialisation checks every tree's structure and feature indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BoosterRepr")]
pub struct Booster {
    objective: Objective,
    base_score: f64,
    feature_names: Vec<String>,
    trees: Vec<Tree>,
    params: Params,
    info: TrainInfo,
}

/// The unchecked serialised form of a [`Booster`].
#[derive(Deserialize)]
struct BoosterRepr {
    objective: Objective,
    base_score: f64,
    feature_names: Vec<String>,
    trees: Vec<Tree>,
    params: Params,
    info: TrainInfo,
}

/// A deserialised model is inconsistent.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// A split uses a feature index the model has no name for.
    #[error("tree {tree} splits on feature {feature} but the model has {num_features} features")]
    FeatureOutOfRange {
        /// Tree index.
        tree: usize,
        /// Feature index used.
        feature: usize,
        /// Features named by the model.
        num_features: usize,
    },
    /// The start score is NaN or infinite.
    #[error("base score is not finite")]
    BaseScore,
}

impl TryFrom<BoosterRepr> for Booster {
    type Error = ModelError;

    fn try_from(r: BoosterRepr) -> Result<Self, ModelError> {
        if !r.base_score.is_finite() {
            return Err(ModelError::BaseScore);
        }
        let num_features = r.feature_names.len();
        for (tree, t) in r.trees.iter().enumerate() {
            if let Some(n) = t.nodes().iter().find(|n| n.feature >= num_features) {
                return Err(ModelError::FeatureOutOfRange { tree, feature: n.feature, num_features });
            }
        }
        Ok(Booster {
            objective: r.objective,
            base_score: r.base_score,
            feature_names: r.feature_names,
            trees: r.trees,
            params: r.params,
            info: r.info,
        })
    }
}

impl Booster {
    /// The objective trained for (decides the prediction transform).
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// Start score added to every raw prediction (LightGBM's `boost_from_average`).
    pub fn base_score(&self) -> f64 {
        self.base_score
    }

    /// Feature names, in the column order rows must follow.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The trees, in boosting order (leaf values already include the learning rate).
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// The parameters the model was trained with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Rounds, best iteration and stop reason of the training run.
    pub fn info(&self) -> &TrainInfo {
        &self.info
    }

    /// Raw score of one row (log-odds for binary); features past the row's end count as NaN.
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        self.trees.iter().fold(self.base_score, |s, t| s + t.predict(row))
    }

    /// Prediction for one row: the value for regression, the probability of 1 for binary.
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.objective.transform(self.predict_raw(row))
    }

    /// Predictions for every row of `data` (in parallel over rows).
    pub fn predict_dataset(&self, data: &Dataset) -> Result<Vec<f64>, DatasetError> {
        if data.num_features() != self.num_features() {
            return Err(DatasetError::FeatureCount { expected: self.num_features(), found: data.num_features() });
        }
        let columns = data.columns();
        Ok((0..data.num_rows())
            .into_par_iter()
            .map(|r| {
                let raw = self
                    .trees
                    .iter()
                    .fold(self.base_score, |s, t| s + t.leaves()[t.leaf_index_by(|f| columns[f][r])].value);
                self.objective.transform(raw)
            })
            .collect())
    }

    /// Predictions for a row-major buffer of rows of [`Booster::num_features`] values each (in parallel).
    pub fn predict_rows(&self, values: &[f64]) -> Result<Vec<f64>, DatasetError> {
        let width = self.num_features();
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(DatasetError::RaggedRows { len: values.len(), features: width });
        }
        Ok(values.par_chunks(width).map(|row| self.predict(row)).collect())
    }
}

/// Trains a model on `train`, evaluating on `valid` after each round.
///
/// `callback` sees each round's metrics and may return `ControlFlow::Break(())` to stop (an
/// interrupt). With `early_stopping_rounds > 0` training stops once the validation metric has not
/// improved for that many rounds, and the model is cut back to its best round (also when stopped
/// by the callback). Same parameters and data give a bit-identical model on any thread count.
pub fn train<F>(
    params: &Params,
    train: &Dataset,
    valid: Option<&Dataset>,
    mut callback: F,
) -> Result<Booster, TrainError>
where
    F: FnMut(&RoundEval) -> ControlFlow<()>,
{
    params.validate()?;
    let n = train.num_rows();
    if n == 0 {
        return Err(TrainError::EmptyTrainingSet);
    }
    if u32::try_from(n).is_err() {
        return Err(TrainError::TooManyRows(n));
    }
    if let Some(v) = valid.filter(|v| v.num_features() != train.num_features()) {
        return Err(DatasetError::FeatureCount { expected: train.num_features(), found: v.num_features() }.into());
    }
    if params.early_stopping_rounds > 0 && valid.is_none() {
        return Err(TrainError::EarlyStoppingWithoutValid);
    }
    let objective = params.objective;
    if objective == Objective::Binary {
        for data in std::iter::once(train).chain(valid) {
            if let Some((row, &value)) = data.labels().iter().enumerate().find(|(_, y)| **y != 0.0 && **y != 1.0) {
                return Err(TrainError::BinaryLabel { row, value });
            }
        }
    }
    let pool = thread_pool(params.num_threads);
    let binned = in_pool(pool.as_ref(), || BinnedData::build(train, params));
    let mut session = Session::new(params, train, valid, &binned);
    let mut trees: Vec<Tree> = Vec::new();
    let mut valid_history: Vec<f64> = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    let mut stop_reason = StopReason::MaxRounds;

    for round in 1..=params.num_boost_round {
        let Some((tree, eval)) = in_pool(pool.as_ref(), || session.round(round)) else {
            stop_reason = StopReason::NoSplit;
            break;
        };
        trees.push(tree);
        if let Some(v) = eval.valid_metric {
            valid_history.push(v);
            // Strict improvement only, as LightGBM's early stopping; NaN never improves.
            if best.is_none_or(|(_, b)| v < b) {
                best = Some((round, v));
            }
        }
        if callback(&eval).is_break() {
            stop_reason = StopReason::Callback;
            break;
        }
        let es = params.early_stopping_rounds;
        if es > 0 && best.is_some_and(|(b, _)| round - b >= es) {
            stop_reason = StopReason::EarlyStopping;
            break;
        }
    }

    let rounds = trees.len();
    let best_iteration = match best {
        Some((b, _)) if params.early_stopping_rounds > 0 => {
            trees.truncate(b);
            Some(b)
        }
        _ => None,
    };
    let info = TrainInfo {
        rounds,
        best_iteration,
        valid_metric: trees.len().checked_sub(1).and_then(|i| valid_history.get(i).copied()),
        stop_reason,
    };
    Ok(Booster {
        objective,
        base_score: session.base_score,
        feature_names: train.feature_names().to_vec(),
        trees,
        params: params.clone(),
        info,
    })
}

/// A rayon pool of `num_threads` threads; None (use the global pool, which runs on the current
/// thread where threads are unavailable, as on wasm32-wasip2) for 0 or when threads cannot start.
fn thread_pool(num_threads: usize) -> Option<rayon::ThreadPool> {
    if num_threads == 0 {
        return None;
    }
    rayon::ThreadPoolBuilder::new().num_threads(num_threads).build().ok()
}

/// Runs `work` inside `pool` (so rayon uses its threads), or directly on the global pool.
fn in_pool<R: Send>(pool: Option<&rayon::ThreadPool>, work: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(work),
        None => work(),
    }
}

/// Rows per bagging generator (LightGBM's `bagging_rand_block_`).
const BAG_BLOCK: usize = 1024;

/// State carried across rounds: scores, gradients, bag, random streams and growth buffers.
struct Session<'a> {
    params: &'a Params,
    train: &'a Dataset,
    valid: Option<&'a Dataset>,
    binned: &'a BinnedData,
    base_score: f64,
    scores: Vec<f64>,
    valid_scores: Vec<f64>,
    grad: Vec<f64>,
    hess: Vec<f64>,
    /// Rows of the current bag (ascending) and the in-bag mask; None without bagging.
    bag: Option<(Vec<u32>, Vec<bool>)>,
    /// LightGBM's bagging generators: one per block of `BAG_BLOCK` rows, seeded `bagging_seed + block`.
    bag_rngs: Vec<LgbRandom>,
    /// LightGBM's `ColSampler` generator, seeded `feature_fraction_seed`.
    feature_rng: LgbRandom,
    active: Vec<bool>,
    grower: Grower,
    cfg: GrowConfig,
}

impl<'a> Session<'a> {
    fn new(params: &'a Params, train: &'a Dataset, valid: Option<&'a Dataset>, binned: &'a BinnedData) -> Self {
        let n = train.num_rows();
        let base_score = params.objective.init_score(train.labels());
        let unit_hessian = params.objective.unit_hessian();
        let mut session = Session {
            params,
            train,
            valid,
            binned,
            base_score,
            scores: vec![base_score; n],
            valid_scores: vec![base_score; valid.map_or(0, Dataset::num_rows)],
            grad: vec![0.0; n],
            hess: vec![0.0; n],
            bag: None,
            bag_rngs: (0..n.div_ceil(BAG_BLOCK))
                .map(|b| LgbRandom::new(params.bagging_seed.wrapping_add(b as i32)))
                .collect(),
            feature_rng: LgbRandom::new(params.feature_fraction_seed),
            active: vec![false; binned.num_features()],
            grower: Grower::new(binned, unit_hessian),
            cfg: GrowConfig {
                num_leaves: params.num_leaves,
                max_depth: usize::try_from(params.max_depth).ok().filter(|&d| d > 0),
                rules: SplitRules::new(params),
                learning_rate: params.learning_rate,
                unit_hessian,
            },
        };
        // LightGBM's `ColSampler` draws once when it meets the training data, then once per tree.
        session.draw_features();
        session
    }

    /// One boosting round (1-based `round`): the new tree and the metrics after it, or None when
    /// the tree has no split.
    fn round(&mut self, round: usize) -> Option<(Tree, RoundEval)> {
        let p = self.params;
        let objective = p.objective;
        objective.gradients(p.alpha, self.train.labels(), &self.scores, &mut self.grad, &mut self.hess);
        // LightGBM's rule: bagging only with bagging_freq > 0 and bagging_fraction < 1.
        if p.bagging_freq > 0 && p.bagging_fraction < 1.0 && (round - 1).is_multiple_of(p.bagging_freq) {
            self.draw_bag();
        }
        self.draw_features();
        let grown = self.grower.grow(&GrowInput {
            data: self.binned,
            grad: &self.grad,
            hess: &self.hess,
            bag: self.bag.as_ref().map(|(rows, _)| rows.as_slice()),
            active: &self.active,
            cfg: &self.cfg,
        });
        if grown.tree.nodes().is_empty() {
            return None;
        }
        let tree = grown.tree;
        // In-bag rows: add each leaf's value over its row range.
        for (l, leaf) in tree.leaves().iter().enumerate() {
            for &r in self.grower.leaf_rows(l) {
                self.scores[r as usize] += leaf.value;
            }
        }
        // Out-of-bag rows: route by bins.
        if let Some((_, in_bag)) = &self.bag {
            let (binned, bins) = (self.binned, &grown.split_bins);
            self.scores.par_chunks_mut(ROW_CHUNK).zip(in_bag.par_chunks(ROW_CHUNK)).enumerate().for_each(
                |(c, (scores, in_bag))| {
                    for (i, (s, &b)) in scores.iter_mut().zip(in_bag).enumerate() {
                        if !b {
                            *s += tree.leaves()[tree.leaf_index_binned(bins, binned, c * ROW_CHUNK + i)].value;
                        }
                    }
                },
            );
        }
        let train_metric = objective.metric(p.alpha, self.train.labels(), &self.scores);
        let valid_metric = self.valid.map(|v| {
            let columns = v.columns();
            self.valid_scores
                .par_iter_mut()
                .enumerate()
                .for_each(|(r, s)| *s += tree.leaves()[tree.leaf_index_by(|f| columns[f][r])].value);
            objective.metric(p.alpha, v.labels(), &self.valid_scores)
        });
        Some((tree, RoundEval { round, train_metric, valid_metric }))
    }

    /// Draws a new bag as LightGBM does: each row kept when its block's generator draws below
    /// `bagging_fraction`.
    fn draw_bag(&mut self) {
        let n = self.train.num_rows();
        let fraction = self.params.bagging_fraction;
        let (rows, mask) = self.bag.get_or_insert_with(|| (Vec::with_capacity(n), vec![false; n]));
        mask.par_chunks_mut(BAG_BLOCK).zip(self.bag_rngs.par_iter_mut()).for_each(|(mask, rng)| {
            mask.iter_mut().for_each(|m| *m = f64::from(rng.next_float()) < fraction);
        });
        rows.clear();
        rows.extend((0..n as u32).filter(|&r| mask[r as usize]));
    }

    /// Chooses this tree's features as LightGBM's `ColSampler` does: `round(feature_fraction × usable)`
    /// of the usable ones (at least one), drawn by `Sample`.
    fn draw_features(&mut self) {
        let usable: Vec<usize> = (0..self.active.len()).filter(|&f| self.binned.usable[f]).collect();
        if self.params.feature_fraction >= 1.0 {
            for &f in &usable {
                self.active[f] = true;
            }
            return;
        }
        let k = ((usable.len() as f64 * self.params.feature_fraction).round() as usize).max(1.min(usable.len()));
        self.active.iter_mut().for_each(|a| *a = false);
        for i in self.feature_rng.sample(usable.len(), k) {
            self.active[usable[i as usize]] = true;
        }
    }
}
