//! stockops train-batch: a LightGBM-class histogram GBDT, IC metrics, and (with its issue) the model
//! registry. The Spin entry point is in `component` (wasm only).

pub mod gbdt;
pub mod metrics;

#[cfg(target_arch = "wasm32")]
mod component;
