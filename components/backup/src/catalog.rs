//! The backup catalogue: one row per backup in the `backups` table (status `writing` → `verified` or
//! `failed`), and each archive's bytes in the `backups` key-value store, in chunks under
//! `backup/{id}/chunk/{n:06}`. A row is inserted before any chunk is written and chunks are deleted only
//! after their row stops being usable, so a crash leaves at worst a `writing` row or unlisted chunks, both
//! cleaned up by [`recover_interrupted`]; an archive is usable only once its row says `verified`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stockops_core::{Database, KeyValue, Rows, StorageError};

use crate::archive::Manifest;
use crate::error::BackupError;

/// Label of the key-value store that holds archives (spin.toml: the backup component's `key_value_stores`).
pub const STORE_LABEL: &str = "backups";
/// Archives are stored in chunks of this many bytes, so no single value grows with the database.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Prefix of every key this module writes.
const KEY_PREFIX: &str = "backup/";
/// A backup still `writing` this long after it started is taken as interrupted (a crashed or killed run):
/// far longer than a component may run (the host's default limit is 5 minutes), so a running backup is
/// never mistaken for a dead one.
pub const STALE_WRITING_SECS: i64 = 3600;

/// Where a backup is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being written; not usable.
    Writing,
    /// Stored, read back and verified; usable for restore.
    Verified,
    /// Failed or interrupted; its chunks are gone.
    Failed,
}

impl Status {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Writing => "writing",
            Status::Verified => "verified",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "writing" => Status::Writing,
            "verified" => Status::Verified,
            // The column's CHECK allows nothing else; anything unexpected is certainly not usable.
            _ => Status::Failed,
        }
    }
}

/// What started a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The nightly cron schedule.
    Cron,
    /// `POST /api/backups`.
    Api,
    /// `stockops backup`.
    Cli,
}

impl Trigger {
    /// The value stored in the `trigger` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
        }
    }
}

/// One row of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Backup id (sortable by time).
    pub id: String,
    /// When the backup started (RFC 3339, UTC).
    pub created_at: String,
    /// Where it is in its life.
    pub status: Status,
    /// What started it (`cron`, `api`, `cli`).
    pub trigger: Option<String>,
    /// Size of the encrypted archive.
    pub size_bytes: Option<i64>,
    /// SHA-256 of the encrypted archive, hex.
    pub sha256: Option<String>,
    /// When it was last read back and verified.
    pub verified_at: Option<String>,
    /// Schema version of the data it holds.
    pub schema_version: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it holds (left out of listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// A new backup id: the start time to the second, then 8 random hex digits (`20261126T020000Z-0123abcd`),
/// so ids sort by time and two backups in the same second do not collide.
pub fn new_id(now: DateTime<Utc>) -> Result<String, BackupError> {
    let random = crate::crypto::random::<4>()?;
    Ok(format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), hex::encode(random)))
}

/// Checks a backup id from a path or command line: 1 to 64 of `A-Z a-z 0-9 -` (ids become key names).
pub fn check_id(id: &str) -> Result<(), BackupError> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(()).ok_or_else(|| BackupError::InvalidId(id.to_string()))
}

/// The file name an archive is written under: `stockops-backup-{id}.sobk`.
pub fn archive_file_name(id: &str) -> String {
    format!("stockops-backup-{id}.sobk")
}

/// Records a new backup as `writing`.
pub fn insert_writing(db: &impl Database, id: &str, created_at: &str, trigger: Trigger) -> Result<(), BackupError> {
    db.execute(
        "INSERT INTO backups (id, created_at, status, trigger) VALUES (?, ?, 'writing', ?)",
        &[id.into(), created_at.into(), trigger.as_str().into()],
    )?;
    Ok(())
}

/// Marks a `writing` backup verified with what was stored. Fails when the row is no longer `writing`
/// (recovery took it for interrupted, or it was deleted): the archive is then not recorded as usable.
pub fn mark_verified(
    db: &impl Database,
    id: &str,
    manifest: &Manifest,
    sha256: &str,
    size_bytes: usize,
    verified_at: &str,
) -> Result<(), BackupError> {
    let manifest_json = serde_json::to_string(manifest)
        .map_err(|e| BackupError::Corrupt { part: "manifest".into(), why: e.to_string() })?;
    let updated = db.execute(
        "UPDATE backups SET status = 'verified', size_bytes = ?, sha256 = ?, verified_at = ?, schema_version = ?, \
         manifest = ?, error = NULL WHERE id = ? AND status = 'writing' RETURNING id",
        &[
            (size_bytes as i64).into(),
            sha256.into(),
            verified_at.into(),
            manifest.schema_version.into(),
            manifest_json.into(),
            id.into(),
        ],
    )?;
    if updated.rows.is_empty() {
        let status = get(db, id)?.status;
        return Err(BackupError::NotUsable {
            id: id.to_string(),
            status: status.as_str().into(),
            why: "it stopped being `writing` before it was verified (taken for interrupted)".into(),
        });
    }
    Ok(())
}

/// Marks a `writing` backup failed with its error (a no-op for any other status).
pub fn mark_failed(db: &impl Database, id: &str, error: &str) -> Result<(), BackupError> {
    db.execute(
        "UPDATE backups SET status = 'failed', error = ? WHERE id = ? AND status = 'writing'",
        &[error.into(), id.into()],
    )?;
    Ok(())
}

/// Records a successful re-verification of a verified backup.
pub fn touch_verified(db: &impl Database, id: &str, verified_at: &str) -> Result<(), BackupError> {
    db.execute(
        "UPDATE backups SET verified_at = ? WHERE id = ? AND status = 'verified'",
        &[verified_at.into(), id.into()],
    )?;
    Ok(())
}

const COLUMNS: &str =
    "id, created_at, status, trigger, size_bytes, sha256, verified_at, schema_version, error, manifest";

/// Every backup, newest first, without manifests.
pub fn list(db: &impl Database) -> Result<Vec<BackupRecord>, BackupError> {
    let rows = db.execute(&format!("SELECT {COLUMNS} FROM backups ORDER BY created_at DESC, id DESC"), &[])?;
    Ok((0..rows.rows.len()).map(|i| record(&rows, i, false)).collect())
}

/// One backup with its manifest; `NotFound` when there is none.
pub fn get(db: &impl Database, id: &str) -> Result<BackupRecord, BackupError> {
    let rows = db.execute(&format!("SELECT {COLUMNS} FROM backups WHERE id = ?"), &[id.into()])?;
    if rows.rows.is_empty() {
        return Err(BackupError::NotFound(id.to_string()));
    }
    Ok(record(&rows, 0, true))
}

fn record(rows: &Rows, i: usize, with_manifest: bool) -> BackupRecord {
    let text = |name: &str| rows.text(i, name).map(str::to_string);
    BackupRecord {
        id: text("id").unwrap_or_default(),
        created_at: text("created_at").unwrap_or_default(),
        status: Status::parse(rows.text(i, "status").unwrap_or_default()),
        trigger: text("trigger"),
        size_bytes: rows.i64(i, "size_bytes"),
        sha256: text("sha256"),
        verified_at: text("verified_at"),
        schema_version: rows.i64(i, "schema_version"),
        error: text("error"),
        // Informational: the archive holds the authoritative copy, checked whenever it is opened.
        manifest: if with_manifest {
            rows.text(i, "manifest").and_then(|m| serde_json::from_str(m).ok())
        } else {
            None
        },
    }
}

fn chunk_key(id: &str, n: usize) -> String {
    format!("{KEY_PREFIX}{id}/chunk/{n:06}")
}

/// Stores an archive's bytes in chunks.
pub fn put_chunks(kv: &impl KeyValue, id: &str, bytes: &[u8]) -> Result<(), BackupError> {
    for (n, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
        kv.set(&chunk_key(id, n), chunk)?;
    }
    Ok(())
}

/// Reassembles an archive of `size` bytes and checks it against its recorded SHA-256.
pub fn get_chunks(kv: &impl KeyValue, id: &str, size: usize, sha256: &str) -> Result<Vec<u8>, BackupError> {
    let damaged = |why: String| BackupError::StoreDamaged { id: id.to_string(), why };
    let mut out = Vec::with_capacity(size);
    let mut n = 0;
    while out.len() < size {
        let chunk = kv
            .get(&chunk_key(id, n))?
            .ok_or_else(|| damaged(format!("chunk {n} is missing ({} of {size} bytes found)", out.len())))?;
        if chunk.is_empty() || out.len() + chunk.len() > size {
            return Err(damaged(format!("chunk {n} has {} bytes, past the recorded {size}", chunk.len())));
        }
        out.extend_from_slice(&chunk);
        n += 1;
    }
    let actual = hex::encode(Sha256::digest(&out));
    if actual != sha256 {
        return Err(damaged(format!("sha256 is {actual}, the catalogue says {sha256}")));
    }
    Ok(out)
}

/// Deletes every chunk of a backup.
pub fn delete_chunks(kv: &impl KeyValue, id: &str) -> Result<(), StorageError> {
    for key in kv.keys_with_prefix(&format!("{KEY_PREFIX}{id}/"))? {
        kv.delete(&key)?;
    }
    Ok(())
}

/// A verified backup's record (with manifest) and archive bytes, checked against the catalogue.
pub fn read_archive(db: &impl Database, kv: &impl KeyValue, id: &str) -> Result<(BackupRecord, Vec<u8>), BackupError> {
    check_id(id)?;
    let record = get(db, id)?;
    if record.status != Status::Verified {
        return Err(BackupError::NotUsable {
            id: id.to_string(),
            status: record.status.as_str().into(),
            why: "only a verified backup can be read".into(),
        });
    }
    let (Some(size), Some(sha)) = (record.size_bytes, record.sha256.as_deref()) else {
        return Err(BackupError::StoreDamaged { id: id.into(), why: "the catalogue has no size or sha256".into() });
    };
    let size = usize::try_from(size)
        .map_err(|_| BackupError::StoreDamaged { id: id.into(), why: format!("recorded size {size} is invalid") })?;
    let bytes = get_chunks(kv, id, size, sha)?;
    Ok((record, bytes))
}

/// Deletes a backup: its row first, then its chunks (a crash in between leaves only unlisted chunks,
/// which recovery removes). A backup still being written is refused.
pub fn delete(db: &impl Database, kv: &impl KeyValue, id: &str) -> Result<(), BackupError> {
    check_id(id)?;
    let record = get(db, id)?;
    if record.status == Status::Writing {
        return Err(BackupError::NotUsable {
            id: id.to_string(),
            status: record.status.as_str().into(),
            why: "a backup being written cannot be deleted; wait until it is verified or failed".into(),
        });
    }
    db.execute("DELETE FROM backups WHERE id = ?", &[id.into()])?;
    delete_chunks(kv, id)?;
    Ok(())
}

/// Cleans up after runs that died: `writing` rows started before `stale_before` become `failed`
/// ("interrupted") and lose their chunks, and chunks with no row at all are deleted. Returns the ids
/// marked failed. Call it with `now - STALE_WRITING_SECS` before each run and listing, and with `now`
/// where no backup can be running (the host at start-up).
pub fn recover_interrupted(
    db: &impl Database,
    kv: &impl KeyValue,
    stale_before: DateTime<Utc>,
) -> Result<Vec<String>, BackupError> {
    // Keys before rows: a run inserts its row before its first chunk, so any key listed here has a row
    // visible to the query after it, unless that row was deleted.
    let keys = kv.keys_with_prefix(KEY_PREFIX)?;
    let rows = db.execute("SELECT id, status, created_at FROM backups", &[])?;
    let mut interrupted = Vec::new();
    for i in 0..rows.rows.len() {
        let (Some(id), Some(status)) = (rows.text(i, "id"), rows.text(i, "status")) else { continue };
        let started = rows.text(i, "created_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        // A `writing` row whose start cannot be read can never be told apart from a dead one: treat it as dead.
        let stale = started.is_none_or(|t| t.with_timezone(&Utc) < stale_before);
        if status == Status::Writing.as_str() && stale {
            mark_failed(db, id, "interrupted: the run ended before the backup was verified")?;
            delete_chunks(kv, id)?;
            interrupted.push(id.to_string());
        }
    }
    let known: std::collections::BTreeSet<&str> = (0..rows.rows.len()).filter_map(|i| rows.text(i, "id")).collect();
    for key in keys {
        let id = key[KEY_PREFIX.len()..].split('/').next().unwrap_or_default();
        if !known.contains(id) {
            kv.delete(&key)?;
        }
    }
    Ok(interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::MemKv;

    #[test]
    fn chunks_round_trip_across_boundaries() {
        let kv = MemKv::default();
        for size in [1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES + 7] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sha = hex::encode(Sha256::digest(&bytes));
            let id = format!("id{size}");
            put_chunks(&kv, &id, &bytes).unwrap();
            assert_eq!(kv.keys_with_prefix(&format!("backup/{id}/")).unwrap().len(), size.div_ceil(CHUNK_BYTES));
            assert_eq!(get_chunks(&kv, &id, size, &sha).unwrap(), bytes);
            delete_chunks(&kv, &id).unwrap();
            assert!(kv.keys_with_prefix(&format!("backup/{id}/")).unwrap().is_empty());
        }
    }

    #[test]
    fn missing_short_long_or_altered_chunks_are_damage() {
        let kv = MemKv::default();
        let bytes = vec![5u8; CHUNK_BYTES + 10];
        let sha = hex::encode(Sha256::digest(&bytes));
        put_chunks(&kv, "a", &bytes).unwrap();
        let err = get_chunks(&kv, "a", bytes.len() + 1, &sha).unwrap_err().to_string();
        assert!(err.contains("chunk 2 is missing"), "{err}");
        let err = get_chunks(&kv, "a", bytes.len() - 1, &sha).unwrap_err().to_string();
        assert!(err.contains("past the recorded"), "{err}");
        kv.set("backup/a/chunk/000001", &[6u8; 10]).unwrap();
        let err = get_chunks(&kv, "a", bytes.len(), &sha).unwrap_err().to_string();
        assert!(err.contains("the catalogue says"), "{err}");
        kv.delete("backup/a/chunk/000000").unwrap();
        let err = get_chunks(&kv, "a", bytes.len(), &sha).unwrap_err().to_string();
        assert!(err.contains("chunk 0 is missing (0 of"), "{err}");
    }

    #[test]
    fn ids_sort_by_time_and_are_checked() {
        let t1 = DateTime::parse_from_rfc3339("2026-11-26T02:00:00Z").unwrap().with_timezone(&Utc);
        let t2 = DateTime::parse_from_rfc3339("2026-11-27T01:59:59Z").unwrap().with_timezone(&Utc);
        let (a, b) = (new_id(t1).unwrap(), new_id(t2).unwrap());
        assert!(a.starts_with("20261126T020000Z-") && a.len() == 25, "{a}");
        assert!(a < b);
        assert_ne!(new_id(t1).unwrap(), new_id(t1).unwrap());
        check_id(&a).unwrap();
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(matches!(check_id(bad), Err(BackupError::InvalidId(_))), "{bad:?}");
        }
        assert_eq!(archive_file_name(&a), format!("stockops-backup-{a}.sobk"));
    }
}
