//! stockops backup. The library half arrives with its issue; the Spin entry point is in `component` (wasm only).

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
