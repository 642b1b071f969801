//! stockops alert: monitoring rules (data staleness, feature and score drift by PSI against the training
//! reference, live IC decay, error rate and p95 latency, failed training jobs, stale backups), evaluated into
//! deduplicated alerts that fire once, repeat on an interval, and resolve, with their history in the
//! database, sent to webhook, Slack-compatible and mail-API channels.
//!
//! Everything here is a plain function over the storage seam (tested natively); the Spin entry point is in
//! `component` and the wasi:http sender in `outbound` (wasm only).

pub mod alerts;
pub mod checks;
pub mod evaluate;
pub mod notify;
pub mod rules;
pub mod ruleset;
pub mod state;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod outbound;
