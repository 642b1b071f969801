//! Backup runs end to end: snapshot and seal, store in chunks, read back and verify, record, prune; and
//! the verify and restore of a stored backup. The component and the host call these; they hold no I/O
//! of their own beyond the storage seam.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stockops_core::{Database, KeyValue, now_rfc3339};

use crate::archive::{self, Manifest};
use crate::catalog::{self, BackupRecord, STALE_WRITING_SECS, Trigger};
use crate::error::BackupError;
use crate::restore::{self, RestoreReport};
use crate::retention;
use crate::settings::Settings;
use crate::snapshot::snapshot;

/// A sealed archive in memory, not yet stored anywhere.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Backup id.
    pub id: String,
    /// What it holds.
    pub manifest: Manifest,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
    /// The encrypted archive.
    pub bytes: Vec<u8>,
}

/// The outcome of [`run_backup`]: the verified backup, and what retention pruned after it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRun {
    /// The new backup's record (with manifest).
    #[serde(flatten)]
    pub record: BackupRecord,
    /// Ids of the older backups pruned.
    pub pruned: Vec<String>,
    /// Why pruning stopped, if it failed (the backup itself is verified either way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_error: Option<String>,
}

/// Snapshots the database (and durable key-value entries of `state`) and seals it as archive `id`,
/// taken at `now`. For `stockops backup --out DIR`: write `bytes` to [`catalog::archive_file_name`], then
/// read the file back through [`verify_archive`].
pub fn create_archive(
    db: &impl Database,
    state: &impl KeyValue,
    settings: &Settings,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Archive, BackupError> {
    let snap = snapshot(db, state, &settings.config)?;
    let created_at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (bytes, manifest) = archive::seal(&snap, id, &created_at, &settings.passphrase, &settings.kdf)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(Archive { id: id.to_string(), manifest, sha256, bytes })
}

/// Opens and verifies an archive completely (key, authentication, every part's checksum and row count)
/// without touching any database; returns its manifest.
pub fn verify_archive(bytes: &[u8], passphrase: &str) -> Result<Manifest, BackupError> {
    let (manifest, snapshot) = archive::open(bytes, passphrase)?;
    drop(snapshot);
    Ok(manifest)
}

/// Takes a backup into the catalogue and the `store` key-value store (`backups`): settles interrupted
/// runs, records the new backup as `writing`, seals a snapshot, stores it in chunks, reads it back and
/// verifies it, marks it `verified`; then prunes per retention. On failure the backup is marked `failed`
/// with the error and its chunks are deleted.
pub fn run_backup(
    db: &impl Database,
    store: &impl KeyValue,
    state: &impl KeyValue,
    settings: &Settings,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<BackupRun, BackupError> {
    catalog::recover_interrupted(db, store, now - chrono::Duration::seconds(STALE_WRITING_SECS))?;
    let id = catalog::new_id(now)?;
    catalog::insert_writing(db, &id, &now.to_rfc3339_opts(SecondsFormat::Millis, true), trigger)?;
    if let Err(e) = write_and_verify(db, store, state, settings, &id, now) {
        // Best effort: the error that stopped the backup is the one to report.
        let _ = catalog::mark_failed(db, &id, &e.to_string());
        let _ = catalog::delete_chunks(store, &id);
        return Err(e);
    }
    let record = catalog::get(db, &id)?;
    let (pruned, prune_error) = prune(db, store, settings.keep_days, now);
    Ok(BackupRun { record, pruned, prune_error })
}

fn write_and_verify(
    db: &impl Database,
    store: &impl KeyValue,
    state: &impl KeyValue,
    settings: &Settings,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), BackupError> {
    let archive = create_archive(db, state, settings, id, now)?;
    catalog::put_chunks(store, id, &archive.bytes)?;
    let size = archive.bytes.len();
    drop(archive.bytes);
    // Verify what the store gives back, not what was meant to be written.
    let stored = catalog::get_chunks(store, id, size, &archive.sha256)?;
    let manifest = verify_archive(&stored, &settings.passphrase)?;
    if manifest != archive.manifest {
        return Err(BackupError::Corrupt { part: "manifest".into(), why: "read back differently than written".into() });
    }
    catalog::mark_verified(db, id, &manifest, &archive.sha256, size, &now_rfc3339())
}

/// Prunes what retention allows; returns the ids pruned and the error that stopped it, if any.
fn prune(
    db: &impl Database,
    store: &impl KeyValue,
    keep_days: u32,
    now: DateTime<Utc>,
) -> (Vec<String>, Option<String>) {
    let mut pruned = Vec::new();
    let records = match catalog::list(db) {
        Ok(r) => r,
        Err(e) => return (pruned, Some(e.to_string())),
    };
    for id in retention::to_prune(&records, now, keep_days) {
        match catalog::delete(db, store, &id) {
            Ok(()) => pruned.push(id),
            Err(e) => return (pruned, Some(format!("pruning {id}: {e}"))),
        }
    }
    (pruned, None)
}

/// Reads a stored backup back and verifies it completely; records the time on success.
pub fn verify_stored(
    db: &impl Database,
    store: &impl KeyValue,
    id: &str,
    passphrase: &str,
) -> Result<BackupRecord, BackupError> {
    let (_, bytes) = catalog::read_archive(db, store, id)?;
    verify_archive(&bytes, passphrase)?;
    catalog::touch_verified(db, id, &now_rfc3339())?;
    catalog::get(db, id)
}

/// Restores a stored backup (see [`restore::restore`]).
pub fn restore_stored(
    db: &impl Database,
    store: &impl KeyValue,
    state: &impl KeyValue,
    id: &str,
    passphrase: &str,
) -> Result<RestoreReport, BackupError> {
    let (_, bytes) = catalog::read_archive(db, store, id)?;
    restore::restore(db, state, &bytes, passphrase)
}
