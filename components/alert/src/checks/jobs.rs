//! Failed training jobs: how many `train_jobs` ended `failed` within the window.

use serde_json::json;
use stockops_core::{Database, KeyValue};

use super::{Env, Evaluated, Finding, Halt, clip, minutes_before};
use crate::rules::Rule;

/// Failed jobs listed in an alert's details, newest first.
const LISTED: usize = 10;

pub(super) fn check<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let window = rule.window_minutes();
    let rows = env.db.execute(
        "SELECT id, model_name, finished_at, error FROM train_jobs WHERE status = 'failed' AND finished_at >= ? \
         ORDER BY finished_at DESC",
        &[minutes_before(env.now, window).into()],
    )?;
    let failed = rows.rows.len();
    let note = format!("{failed} failed training jobs in the last {window} min");
    let t = rule.thresholds(&env.defaults);
    let Some(severity) = rule.severity(t, failed as f64) else {
        return Ok(Evaluated::new(Vec::new(), note));
    };
    let jobs: Vec<_> = (0..failed.min(LISTED))
        .map(|i| {
            json!({
                "id": rows.text(i, "id"), "model": rows.text(i, "model_name"), "finished_at": rows.text(i, "finished_at"),
                "error": rows.text(i, "error").map(|e| clip(e, 300)),
            })
        })
        .collect();
    let newest = format!(
        "newest {} ({}): {}",
        rows.text(0, "id").unwrap_or("?"),
        rows.text(0, "model_name").unwrap_or("?"),
        clip(rows.text(0, "error").unwrap_or("no reason recorded"), 120)
    );
    let summary = format!("{failed} training jobs failed in the last {window} min; {newest}");
    let details = json!({ "failed": failed, "window_minutes": window, "jobs": jobs, "thresholds": t });
    Ok(Evaluated::new(vec![Finding::new(rule, "jobs", severity, summary, Some(failed as f64), details)], note))
}
