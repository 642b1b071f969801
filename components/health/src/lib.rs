//! stockops health: the checks behind `GET /health` and the Prometheus text behind `GET /metrics`.
//! The checks are plain functions over the storage seam, so they are tested natively; the Spin entry
//! point is in `component` (wasm only).

pub mod checks;

#[cfg(target_arch = "wasm32")]
mod component;
