//! Which backups to prune: those older than the retention period, but a verified one only once a newer
//! verified backup exists, so the newest verified backup is never pruned however old it is.

use chrono::{DateTime, Duration, Utc};

use crate::catalog::{BackupRecord, Status};

/// The ids to prune among `records` at `now`, keeping `keep_days` days. `writing` backups are never
/// pruned (recovery settles them first), nor any whose start time cannot be read.
pub fn to_prune(records: &[BackupRecord], now: DateTime<Utc>, keep_days: u32) -> Vec<String> {
    let started = |r: &BackupRecord| DateTime::parse_from_rfc3339(&r.created_at).ok().map(|t| t.with_timezone(&Utc));
    let cutoff = now - Duration::days(i64::from(keep_days));
    let newest_verified = records.iter().filter(|r| r.status == Status::Verified).filter_map(started).max();
    records
        .iter()
        .filter(|r| {
            let Some(t) = started(r) else { return false };
            t < cutoff
                && match r.status {
                    Status::Writing => false,
                    Status::Failed => true,
                    Status::Verified => newest_verified.is_some_and(|newest| newest > t),
                }
        })
        .map(|r| r.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64) -> String {
        (now() - Duration::days(days_ago)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn rec(id: &str, days_ago: i64, status: Status) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            created_at: at(days_ago),
            status,
            trigger: Some("cron".into()),
            size_bytes: None,
            sha256: None,
            verified_at: None,
            schema_version: None,
            error: None,
            manifest: None,
        }
    }

    fn prune(records: &[BackupRecord]) -> Vec<String> {
        let mut ids = to_prune(records, now(), 30);
        ids.sort();
        ids
    }

    #[test]
    fn old_verified_backups_go_once_a_newer_one_verified() {
        let r = [rec("new", 0, Status::Verified), rec("mid", 29, Status::Verified), rec("old", 31, Status::Verified)];
        assert_eq!(prune(&r), ["old"]);
    }

    #[test]
    fn the_newest_verified_backup_stays_however_old() {
        let r = [rec("a", 40, Status::Verified), rec("b", 35, Status::Verified)];
        assert_eq!(prune(&r), ["a"]);
        assert!(prune(&[rec("only", 400, Status::Verified)]).is_empty());
    }

    #[test]
    fn a_newer_failed_or_writing_backup_does_not_count() {
        let r = [rec("old", 31, Status::Verified), rec("f", 0, Status::Failed), rec("w", 0, Status::Writing)];
        assert!(prune(&r).is_empty());
    }

    #[test]
    fn old_failed_backups_go_and_writing_ones_stay() {
        let r = [rec("f-old", 31, Status::Failed), rec("f-new", 1, Status::Failed), rec("w-old", 31, Status::Writing)];
        assert_eq!(prune(&r), ["f-old"]);
    }

    #[test]
    fn the_boundary_is_exclusive_and_unreadable_times_are_kept() {
        let mut r = vec![rec("new", 0, Status::Verified), rec("edge", 30, Status::Verified)];
        assert!(prune(&r).is_empty(), "exactly keep_days old is kept");
        r[1].created_at = (now() - Duration::days(30) - Duration::milliseconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(prune(&r), ["edge"]);
        let mut bad = rec("bad", 99, Status::Failed);
        bad.created_at = "yesterday".into();
        assert!(prune(&[bad]).is_empty());
    }

    #[test]
    fn nothing_to_prune_in_an_empty_catalogue() {
        assert!(prune(&[]).is_empty());
    }
}
