//! Restore: open and verify the whole archive, check it fits this build's schema, then replace every data
//! table in one transaction. Nothing touches the database before the archive has authenticated and every
//! part has matched its checksum and row count; any failure after that rolls the transaction back, so the
//! data ends either as the backup's or as it was. The durable key-value entries follow once it commits.

use std::collections::BTreeMap;

use serde::Serialize;
use stockops_core::schema::{LATEST, current_version, migrate};
use stockops_core::{Database, KeyValue, SqlValue, StorageError};

use crate::archive;
use crate::error::BackupError;
use crate::snapshot::{Snapshot, Table};
use crate::sql::{columns, data_tables, in_transaction, quote};

/// Key prefixes of caches derived from the data (feature matrices, `features::store::CACHE_PREFIX`):
/// cleared after a restore, since they may describe bars the restore replaced.
pub const STALE_CACHE_PREFIXES: &[&str] = &["features/"];

/// SQLite's oldest limit on parameters per statement; inserts are batched under it.
const MAX_PARAMS: usize = 999;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreReport {
    /// Id of the backup restored.
    pub backup_id: String,
    /// When that backup was taken.
    pub created_at: String,
    /// Schema version of the backup's data.
    pub schema_version: i64,
    /// Rows written per table, in the archive's order.
    pub tables: Vec<TableCount>,
    /// Tables emptied that the backup did not hold (added by a later migration).
    pub emptied: Vec<String>,
    /// Key-value entries written (user-defined feature sets).
    pub kv_entries: usize,
    /// Cached entries cleared because they may describe replaced data.
    pub cache_entries_cleared: usize,
    /// The configuration in effect when the backup was taken (for comparison; not applied).
    pub config: BTreeMap<String, String>,
}

/// A table and its number of rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableCount {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
}

/// Refuses data from a schema newer than this build's: it may hold columns or meanings this build
/// would silently drop.
pub fn check_schema_version(found: i64) -> Result<(), BackupError> {
    if found > LATEST {
        return Err(BackupError::NewerSchema { found, supported: LATEST });
    }
    if found < 1 {
        return Err(BackupError::Corrupt {
            part: "manifest".into(),
            why: format!("schema version {found} is invalid"),
        });
    }
    Ok(())
}

/// Restores `archive` into `db` (and the durable entries of `state`, the default key-value store).
/// The archive is verified completely first; the database is migrated to this build's schema, checked to
/// hold every table and column of the backup (migrations only add them), then every data table is
/// emptied and refilled in one `BEGIN IMMEDIATE` transaction. Key-value entries are written after the
/// database commits.
pub fn restore(
    db: &impl Database,
    state: &impl KeyValue,
    archive: &[u8],
    passphrase: &str,
) -> Result<RestoreReport, BackupError> {
    let (manifest, snapshot) = archive::open(archive, passphrase)?;
    check_schema_version(snapshot.schema_version)?;

    let db_version = current_version(db)?;
    if db_version > LATEST {
        return Err(BackupError::SchemaMismatch(format!(
            "the database is at schema version {db_version}, newer than this build's {LATEST}: upgrade stockops"
        )));
    }
    migrate(db)?;

    let emptied = in_transaction(db, "BEGIN IMMEDIATE", |db| replace_tables(db, &snapshot)).map_err(|e| match e {
        BackupError::Storage(s) => BackupError::RolledBack(s),
        other => other,
    })?;

    // After the commit: a failure here leaves the database restored, and restoring again finishes the job.
    let (kv_entries, cache_entries_cleared) = restore_kv(state, &snapshot).map_err(BackupError::KvAfterRestore)?;

    Ok(RestoreReport {
        backup_id: manifest.id,
        created_at: manifest.created_at,
        schema_version: snapshot.schema_version,
        tables: snapshot
            .tables
            .iter()
            .map(|t| TableCount { name: t.name.clone(), rows: t.rows.rows.len() as u64 })
            .collect(),
        emptied,
        kv_entries,
        cache_entries_cleared,
        config: snapshot.config,
    })
}

/// Replaces the durable key-value entries with the backup's and clears caches derived from the old data.
/// Returns the entries written and the cache entries cleared.
fn restore_kv(state: &impl KeyValue, snapshot: &Snapshot) -> Result<(usize, usize), StorageError> {
    let mut written = 0;
    for part in &snapshot.kv {
        for key in state.keys_with_prefix(&part.prefix)? {
            if !part.entries.contains_key(&key) {
                state.delete(&key)?;
            }
        }
        for (key, value) in &part.entries {
            state.set(key, value)?;
        }
        written += part.entries.len();
    }
    let mut cleared = 0;
    for prefix in STALE_CACHE_PREFIXES {
        for key in state.keys_with_prefix(prefix)? {
            state.delete(&key)?;
            cleared += 1;
        }
    }
    Ok((written, cleared))
}

/// Inside the transaction: checks the fit, empties every data table, inserts the backup's rows.
/// Returns the tables emptied that the backup did not hold.
fn replace_tables(db: &impl Database, snapshot: &Snapshot) -> Result<Vec<String>, BackupError> {
    let current = data_tables(db)?;
    let mut problems = Vec::new();
    for t in &snapshot.tables {
        if !current.contains(&t.name) {
            problems.push(format!("table {} does not exist", t.name));
            continue;
        }
        let have = columns(db, &t.name)?;
        for c in t.rows.columns.iter().filter(|c| !have.contains(c)) {
            problems.push(format!("column {}.{c} does not exist", t.name));
        }
    }
    if !problems.is_empty() {
        return Err(BackupError::SchemaMismatch(problems.join("; ")));
    }
    for name in &current {
        db.execute(&format!("DELETE FROM {}", quote(name)), &[])?;
    }
    for t in &snapshot.tables {
        insert_rows(db, t)?;
    }
    Ok(current.into_iter().filter(|name| !snapshot.tables.iter().any(|t| &t.name == name)).collect())
}

/// Inserts a table's rows by column name, many rows per statement, every value a parameter.
fn insert_rows(db: &impl Database, table: &Table) -> Result<(), BackupError> {
    let cols = &table.rows.columns;
    if cols.is_empty() || table.rows.rows.is_empty() {
        return Ok(());
    }
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(&table.name),
        cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    );
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    let per_statement = (MAX_PARAMS / cols.len()).max(1);
    for batch in table.rows.rows.chunks(per_statement) {
        let sql = format!("{head}{}", vec![one.as_str(); batch.len()].join(", "));
        let params: Vec<SqlValue> = batch.iter().flatten().cloned().collect();
        db.execute(&sql, &params)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::seal;
    use crate::crypto::TEST_KDF;
    use crate::test_support::{MemKv, Untouchable};

    const KEY: &str = "k3y";

    fn archive(schema_version: i64) -> Vec<u8> {
        let snap = Snapshot { schema_version, tables: vec![], config: BTreeMap::new(), kv: vec![] };
        seal(&snap, "20261126T020000Z-00000000", "2026-11-26T02:00:00.000Z", KEY, &TEST_KDF).unwrap().0
    }

    #[test]
    fn refusals_happen_before_the_database_is_touched() {
        let kv = MemKv::default();
        // `Untouchable` panics on any statement: each of these must be refused before one is run.
        let newer = restore(&Untouchable, &kv, &archive(LATEST + 1), KEY).unwrap_err();
        assert!(
            matches!(newer, BackupError::NewerSchema { found, supported } if found == LATEST + 1 && supported == LATEST)
        );
        assert!(matches!(restore(&Untouchable, &kv, &archive(LATEST), "other"), Err(BackupError::WrongKey)));
        let good = archive(LATEST);
        let cut = &good[..good.len() - 3];
        assert!(matches!(restore(&Untouchable, &kv, cut, KEY), Err(BackupError::Truncated { .. })));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x80;
        assert!(matches!(restore(&Untouchable, &kv, &flipped, KEY), Err(BackupError::Tampered(_))));
        assert!(matches!(restore(&Untouchable, &kv, &archive(0), KEY), Err(BackupError::Corrupt { .. })));
        assert!(kv.is_empty());
    }

    #[test]
    fn cache_prefix_is_the_one_features_writes() {
        assert_eq!(STALE_CACHE_PREFIXES, &[features::store::CACHE_PREFIX]);
    }
}
