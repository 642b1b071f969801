//! Histogram gradient-boosted decision trees: LightGBM's algorithm in our code.
//!
//! [`train`] bins each feature of a [`Dataset`] into at most 256 `u8` bins (quantile-like
//! boundaries from a row sample, a NaN bin), then each round computes gradients, grows one tree
//! leaf-wise from gradient histograms (L1/L2, minimum data and hessian per leaf, depth limit,
//! feature fraction, bagging, learned NaN directions) and adds it to the scores; early stopping
//! watches a validation set. The [`Booster`] predicts from raw f64 rows and serialises with serde.
//! Same seed, same data: bit-identical model on any thread count, natively and on wasm32-wasip2.

mod binning;
mod booster;
mod dataset;
mod histogram;
mod importance;
mod objective;
mod params;
pub(crate) mod rng;
mod split;
mod tree;

pub use booster::{Booster, ModelError, RoundEval, StopReason, TrainError, TrainInfo, train};
pub use dataset::{Dataset, DatasetError};
pub use importance::FeatureImportance;
pub use objective::Objective;
pub use params::{ParamError, Params, canonical_name};
pub use rng::SplitMix64;
pub use tree::{Child, Cover, Leaf, SplitNode, Tree, TreeError};
