//! stockops predict: ONNX inference (tract, plus a compact pre-planned form), TreeSHAP explanations,
//! champion/challenger assignment and live comparison. The Spin entry point is in `component` (wasm only).

pub mod ab;
pub mod experiment;
pub mod model;
pub mod serving;
pub mod shap;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
