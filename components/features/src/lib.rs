//! stockops features: bar ingest, technical indicators (TA-Lib semantics) and Qlib's Alpha158/Alpha360
//! factors through an expression engine. Pure library; the Spin component lives in `component` (wasm only).

pub mod alpha;
mod bar_chunks;
pub mod expr;
pub mod indicators;
pub mod ingest;
pub mod qlib_bin;
pub mod store;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
