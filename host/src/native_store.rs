//! The storage seam natively: `stockops_core::Database` and `KeyValue` over the same libSQL and Redis
//! backends the components get, for the host's own jobs (migrations, bulk ingest, training). The traits
//! are synchronous, so these block on the runtime: call them from `spawn_blocking`, never from a task.

use crate::key_value::Backend;
use crate::sqlite::{Conn, SqliteDatabase};
use std::sync::Arc;
use stockops_core::{Database, KeyValue, Rows, SqlValue, StorageError};
use tokio::runtime::Handle;

/// A connection to one database, usable from a blocking thread.
pub struct NativeDb {
    db: Arc<SqliteDatabase>,
    conn: Option<Conn>,
    handle: Handle,
}

impl NativeDb {
    /// Opens a connection; `handle` is the runtime the backend lives on.
    pub fn connect(db: Arc<SqliteDatabase>, handle: Handle) -> Result<Self, StorageError> {
        let conn = handle.block_on(db.connect()).map_err(|e| StorageError::Backend(format!("{e:#}")))?;
        Ok(NativeDb { db, conn: Some(conn), handle })
    }
}

impl Database for NativeDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StorageError> {
        let conn = self.conn.as_ref().ok_or_else(|| StorageError::Backend("connection closed".into()))?;
        self.handle
            .block_on(self.db.execute(conn, sql, params.to_vec()))
            .map_err(|e| StorageError::Backend(e.to_string()))
    }
}

impl Drop for NativeDb {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.release(conn);
        }
    }
}

/// One key-value store, usable from a blocking thread.
pub struct NativeKv {
    backend: Arc<Backend>,
    handle: Handle,
}

impl NativeKv {
    /// Wraps a configured store.
    pub fn new(backend: Arc<Backend>, handle: Handle) -> Self {
        NativeKv { backend, handle }
    }
}

impl KeyValue for NativeKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.handle.block_on(self.backend.get(key)).map_err(StorageError::Backend)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.handle.block_on(self.backend.set(key, value.to_vec())).map_err(StorageError::Backend)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.handle.block_on(self.backend.delete(key)).map_err(StorageError::Backend)
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let keys = self.handle.block_on(self.backend.keys()).map_err(StorageError::Backend)?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StorageError> {
        self.handle.block_on(self.backend.increment(key, delta)).map_err(StorageError::Backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_config::{KeyValueConfig, SqliteConfig};
    use std::collections::BTreeMap;
    use stockops_core::schema;

    /// A connection to a new database file in `dir`.
    fn temp_db(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> NativeDb {
        let file = SqliteConfig::File(dir.join("db.sqlite"));
        let db = Arc::new(rt.block_on(SqliteDatabase::open("default", &file)).unwrap());
        NativeDb::connect(db, rt.handle().clone()).unwrap()
    }

    #[test]
    fn migrations_apply_once_and_counters_are_atomic_over_the_native_seam() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let native = temp_db(&rt, dir.path());
        assert_eq!(schema::migrate(&native).unwrap(), schema::MigrationReport { from: 0, to: schema::LATEST });
        assert_eq!(
            schema::migrate(&native).unwrap(),
            schema::MigrationReport { from: schema::LATEST, to: schema::LATEST }
        );
        // A failing transaction leaves nothing behind.
        let r = native.transaction(|tx| {
            tx.execute("INSERT INTO bars (symbol, date, open, high, low, close, volume) VALUES ('A', '2020-01-02', 1, 1, 1, 1, 1)", &[])?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", &[])
        });
        assert!(r.is_err());
        assert_eq!(native.execute("SELECT count(*) AS n FROM bars", &[]).unwrap().i64(0, "n"), Some(0));

        let cfg = BTreeMap::from([("default".to_string(), KeyValueConfig::File(dir.path().join("kv.db")))]);
        let stores = rt.block_on(crate::key_value::open_all(&cfg)).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let kv = NativeKv::new(stores["default"].clone(), rt.handle().clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        kv.increment("hits", 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let kv = NativeKv::new(stores["default"].clone(), rt.handle().clone());
        assert_eq!(kv.increment("hits", 0).unwrap(), 200);
        // A new embedded store is made of large pages (its values run to megabytes).
        let Backend::Sqlite { db, .. } = stores["default"].as_ref() else { panic!("an embedded store") };
        let pages = NativeDb::connect(db.clone(), rt.handle().clone()).unwrap();
        assert_eq!(pages.execute("PRAGMA page_size", &[]).unwrap().i64(0, "page_size"), Some(65536));
        kv.set("stockops/a", b"1").unwrap();
        kv.set("other", b"2").unwrap();
        assert_eq!(kv.keys_with_prefix("stockops/").unwrap(), vec!["stockops/a".to_string()]);
        kv.delete("stockops/a").unwrap();
        assert_eq!(kv.get("stockops/a").unwrap(), None);
    }

    #[test]
    fn packed_bar_chunks_follow_the_bars_table() {
        use features::store;
        use stockops_core::{Bar, BarSeries};
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let native = temp_db(&rt, dir.path());
        schema::migrate(&native).unwrap();
        let bar = |date: &str, close: f64| Bar {
            symbol: "A".into(),
            date: date.parse().unwrap(),
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 100.0,
            vwap: Some(close),
            factor: Some(0.5),
        };
        // Compared as text: a missing vwap is NaN, which is not equal to itself.
        let from_table = |to: Option<&str>| {
            let to = to.map(|d| d.parse().unwrap());
            format!("{:?}", BarSeries::from_bars("A", &store::load_bars(&native, "A", None, to).unwrap()))
        };
        let series = |to: Option<&str>| {
            format!("{:?}", store::load_series(&native, "A", to.map(|d| d.parse().unwrap())).unwrap())
        };
        let chunk_sizes = || {
            let rows = native.execute("SELECT year, length(bars) AS size FROM bar_chunks ORDER BY year", &[]).unwrap();
            (0..rows.rows.len())
                .map(|i| (rows.i64(i, "year").unwrap(), rows.i64(i, "size").unwrap()))
                .collect::<Vec<_>>()
        };
        let per_bar = 4 + 7 * 8;

        store::upsert_bars(&native, &[bar("2021-03-01", 3.0), bar("2019-12-30", 1.0), bar("2020-01-02", 2.0)]).unwrap();
        assert_eq!(chunk_sizes(), [(2019, 8 + per_bar), (2020, 8 + per_bar), (2021, 8 + per_bar)]);
        assert_eq!(series(None), from_table(None));
        assert_eq!(series(Some("2020-06-30")), from_table(Some("2020-06-30")));
        assert_eq!(series(Some("2019-01-01")), from_table(Some("2019-01-01")));

        // A corrected bar rewrites its year's chunk.
        store::upsert_bars(&native, &[bar("2020-01-02", 2.5)]).unwrap();
        assert_eq!(store::load_series(&native, "A", None).unwrap().close, [1.0, 2.5, 3.0]);
        assert_eq!(series(None), from_table(None));

        // A bar inserted by hand leaves the chunks short: the read comes from the table and rewrites them.
        native.execute("INSERT INTO bars VALUES ('A', '2021-03-02', 4, 5, 3, 4, 100, NULL, NULL)", &[]).unwrap();
        assert_eq!(series(None), from_table(None));
        assert_eq!(chunk_sizes()[2], (2021, 8 + 2 * per_bar));
        assert_eq!(series(None), from_table(None));

        // A symbol without bars reads as empty and writes nothing.
        assert!(store::load_series(&native, "B", None).unwrap().is_empty());
        assert_eq!(chunk_sizes().len(), 3);
    }
}
