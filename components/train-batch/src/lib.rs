//! stockops train-batch: a LightGBM-class histogram GBDT, IC metrics, ONNX export, the dataset builder,
//! training jobs with hyper-parameter search, and the model registry. The Spin entry point is in
//! `component` (wasm only).

pub mod gbdt;
pub mod hpo;
pub mod job;
pub mod metrics;
pub mod onnx;
pub mod recovery;
pub mod reference;
pub mod registry;
pub mod training_data;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
