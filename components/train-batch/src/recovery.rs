//! Jobs cut off by a host that died mid-request. A component's job runs inside one request, so it cannot
//! outlive its host: one still `running` long after it started was interrupted. It becomes `failed`, and so
//! does its version (artifacts dropped), so nothing half-trained is ever visible as ready. Jobs run by
//! `stockops train` (trigger `cli`) are left alone: that process may rightly train for hours.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use stockops_core::{Database, now_rfc3339};

use crate::registry::{self, RegistryError};

/// Settles component jobs still `running` that started more than `stale_after_secs` before `now`;
/// returns their ids.
pub fn settle_interrupted(
    db: &impl Database,
    now: DateTime<Utc>,
    stale_after_secs: i64,
) -> Result<Vec<String>, RegistryError> {
    // Timestamps are stored in one RFC 3339 form, so they compare as text.
    let cutoff = (now - Duration::seconds(stale_after_secs)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let rows = db.execute(
        "SELECT id, model_name, version FROM train_jobs \
         WHERE status = 'running' AND coalesce(trigger, 'api') <> 'cli' AND created_at < ?",
        &[cutoff.into()],
    )?;
    let mut settled = Vec::new();
    for i in 0..rows.rows.len() {
        let (Some(id), Some(model)) = (rows.text(i, "id"), rows.text(i, "model_name")) else { continue };
        let why = format!("interrupted: still running {stale_after_secs} s after it started (its host stopped)");
        if let Some(version) = rows.i64(i, "version") {
            registry::fail_version(db, model, version, &why)?;
        }
        db.execute(
            "UPDATE train_jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
            &[why.into(), now_rfc3339().into(), id.into()],
        )?;
        settled.push(id.to_string());
    }
    Ok(settled)
}
