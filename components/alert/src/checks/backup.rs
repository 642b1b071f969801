//! Backups: the newest verified backup older than N hours, or no verified backup at all (the same question
//! `/health` asks, with thresholds and alerts).

use chrono::{DateTime, Utc};
use serde_json::json;
use stockops_core::{Database, KeyValue};

use super::{Env, Evaluated, Finding, Halt};
use crate::rules::{Rule, Severity, Thresholds};

pub(super) fn check<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let rows = env.db.execute(
        "SELECT id, created_at FROM backups WHERE status = 'verified' ORDER BY created_at DESC LIMIT 1",
        &[],
    )?;
    let newest = match rows.text(0, "created_at") {
        None => None,
        Some(at) => {
            let at = DateTime::parse_from_rfc3339(at).map_err(|e| {
                Halt::Fail(format!("backup {:?} has an unreadable time {at:?}: {e}", rows.text(0, "id")))
            })?;
            Some((rows.text(0, "id").unwrap_or_default().to_string(), at.with_timezone(&Utc)))
        }
    };
    Ok(judge(rule, rule.thresholds(&env.defaults), newest, env.now))
}

/// The finding for the newest verified backup `(id, created_at)`, if any, at `now`.
fn judge(rule: &Rule, t: Thresholds, newest: Option<(String, DateTime<Utc>)>, now: DateTime<Utc>) -> Evaluated {
    let Some((id, at)) = newest else {
        // No backup at all is as bad as the rule can say.
        let severity = if t.critical.is_some() { Severity::Critical } else { Severity::Warning };
        let details = json!({ "newest_verified": null, "thresholds": t });
        let finding = Finding::new(rule, "backup", severity, "no verified backup".into(), None, details);
        return Evaluated::new(vec![finding], "no verified backup".into());
    };
    let hours = (now - at).num_seconds() as f64 / 3600.0;
    let note = format!("newest verified backup {id}, {hours:.1} h old");
    let Some(severity) = rule.severity(t, hours) else {
        return Evaluated::new(Vec::new(), note);
    };
    let limit = t.warn.or(t.critical).unwrap_or_default();
    let summary = format!("newest verified backup {id} is {hours:.1} h old (limit {limit} h)");
    let details = json!({ "newest_verified": { "id": id, "created_at": at }, "age_hours": hours, "thresholds": t });
    Evaluated::new(vec![Finding::new(rule, "backup", severity, summary, Some(hours), details)], note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::rule_from_json;

    #[test]
    fn missing_or_old_backups_fire() {
        let rule = rule_from_json(json!({"id": "b", "kind": "backup_stale", "critical": 72})).unwrap();
        let t = rule.thresholds(&Default::default()); // warn from backup_max_age_hours: 36
        let now: DateTime<Utc> = "2024-06-05T12:00:00Z".parse().unwrap();
        let none = judge(&rule, t, None, now).findings;
        assert_eq!(
            (none[0].fingerprint.as_str(), none[0].severity, none[0].value),
            ("b:backup", Severity::Critical, None)
        );
        let at = |h: i64| Some(("bk-1".to_string(), now - chrono::Duration::hours(h)));
        assert!(judge(&rule, t, at(36), now).findings.is_empty());
        let warn = judge(&rule, t, at(40), now).findings;
        assert_eq!((warn[0].severity, warn[0].value), (Severity::Warning, Some(40.0)));
        assert_eq!(judge(&rule, t, at(80), now).findings[0].severity, Severity::Critical);
    }
}
