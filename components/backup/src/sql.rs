//! The SQL that snapshot and restore share: which tables hold data, how identifiers are quoted, and a
//! transaction that carries a [`BackupError`].

use stockops_core::{Database, StorageError};

use crate::error::BackupError;

/// Tables never backed up nor replaced: the migrations ledger (it describes the schema, not the data; the
/// archive records the schema version instead) and the backup catalogue (a restore must not rewrite the
/// list of backups it was chosen from). SQLite's own `sqlite_%` tables are skipped too.
pub const EXCLUDED_TABLES: &[&str] = &["schema_migrations", "backups"];

/// The data tables of the database, by name, from `sqlite_master`.
pub fn data_tables(db: &impl Database) -> Result<Vec<String>, StorageError> {
    let rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", &[])?;
    Ok((0..rows.rows.len())
        .filter_map(|i| rows.text(i, "name"))
        .filter(|name| !name.starts_with("sqlite_") && !EXCLUDED_TABLES.contains(name))
        .map(str::to_string)
        .collect())
}

/// A table's column names, in declaration order.
pub fn columns(db: &impl Database, table: &str) -> Result<Vec<String>, StorageError> {
    let rows = db.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", &[table.into()])?;
    Ok((0..rows.rows.len()).filter_map(|i| rows.text(i, "name")).map(str::to_string).collect())
}

/// An identifier quoted for SQL: in double quotes, inner quotes doubled. Identifiers come from
/// `sqlite_master` (or an authenticated archive), never from a request; quoting keeps odd names harmless.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Runs `f` between `begin` (`BEGIN` or `BEGIN IMMEDIATE`) and `COMMIT`; rolls back when it fails.
pub fn in_transaction<D: Database, T>(
    db: &D,
    begin: &str,
    f: impl FnOnce(&D) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    db.execute(begin, &[])?;
    match f(db) {
        Ok(v) => {
            if let Err(e) = db.execute("COMMIT", &[]) {
                // A failed COMMIT can leave the transaction open; close it so the connection is reusable.
                let _ = db.execute("ROLLBACK", &[]);
                return Err(e.into());
            }
            Ok(v)
        }
        Err(e) => {
            // The rollback error, if any, matters less than the one that caused it.
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_inner_quotes() {
        assert_eq!(quote("bars"), "\"bars\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
