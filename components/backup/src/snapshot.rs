//! A consistent snapshot of what a backup holds: every data table (model artifacts are rows of
//! `model_artifacts`), the durable entries of the key-value store (user-defined feature sets), and the
//! effective non-secret configuration the caller passes.

use std::collections::BTreeMap;

use stockops_core::schema::current_version;
use stockops_core::{Database, KeyValue, Rows};

use crate::error::BackupError;
use crate::sql::{data_tables, in_transaction, quote};

/// Key prefixes of the key-value store that hold state rather than caches: user-defined feature sets
/// (`features::store::CUSTOM_SET_PREFIX`), without which a model trained on one could not be served.
/// Everything else there (feature matrices, TreeSHAP tables, counters) is derived and rebuilt on demand.
pub const KV_PREFIXES: &[&str] = &["feature-sets/"];

/// One table's rows, as `SELECT *` returned them.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Column names and rows.
    pub rows: Rows,
}

/// The entries of the key-value store under one prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntries {
    /// The key prefix every entry starts with.
    pub prefix: String,
    /// Key to value.
    pub entries: BTreeMap<String, Vec<u8>>,
}

/// Everything a backup holds, decoded: what [`snapshot`] reads and a verified archive gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Schema version of the database the tables were read from.
    pub schema_version: i64,
    /// Every data table, by name.
    pub tables: Vec<Table>,
    /// The effective non-secret configuration (variable or setting name to value).
    pub config: BTreeMap<String, String>,
    /// Durable key-value entries, one set per prefix of [`KV_PREFIXES`].
    pub kv: Vec<KvEntries>,
}

/// Reads every data table and the schema version inside one read transaction, then the durable entries
/// of `state` (the default key-value store).
///
/// The transaction is a deferred `BEGIN`, not `BEGIN IMMEDIATE`: under WAL a read transaction sees one
/// consistent snapshot from its first read while writers go on; taking the write lock instead would make
/// every write during the backup wait, and fail once the busy timeout passed.
pub fn snapshot(
    db: &impl Database,
    state: &impl KeyValue,
    config: &BTreeMap<String, String>,
) -> Result<Snapshot, BackupError> {
    let (schema_version, tables) = in_transaction(db, "BEGIN", |db| {
        let schema_version = current_version(db)?;
        let mut tables = Vec::new();
        for name in data_tables(db)? {
            let rows = db.execute(&format!("SELECT * FROM {}", quote(&name)), &[])?;
            tables.push(Table { name, rows });
        }
        Ok((schema_version, tables))
    })?;
    let mut kv = Vec::new();
    for prefix in KV_PREFIXES {
        let mut entries = BTreeMap::new();
        for key in state.keys_with_prefix(prefix)? {
            // A key deleted between listing and reading is simply not in the backup.
            if let Some(value) = state.get(&key)? {
                entries.insert(key, value);
            }
        }
        kv.push(KvEntries { prefix: prefix.to_string(), entries });
    }
    Ok(Snapshot { schema_version, tables, config: config.clone(), kv })
}

#[cfg(test)]
mod tests {
    #[test]
    fn kv_prefix_is_the_one_features_writes() {
        assert_eq!(super::KV_PREFIXES, &[features::store::CUSTOM_SET_PREFIX]);
    }
}
