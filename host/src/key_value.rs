//! Key-value stores for components: `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` (store, atomics,
//! batch) over one backend per label. Embedded: a SQLite file in Spin's own layout (table `spin_key_value`,
//! counters as 8 little-endian bytes). Production: Redis (counters with INCRBY, compare-and-swap in Lua).
//! A component may open only the labels it lists in `key_value_stores`.

use crate::bindings::fermyon::spin::key_value as spin_kv;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use crate::runtime_config::KeyValueConfig;
use crate::sqlite::{Conn, SqliteDatabase};
use crate::state::InstanceState;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use stockops_core::SqlValue;
use wasmtime::component::Resource;

/// One configured store.
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite {
        /// The file's database.
        db: Arc<SqliteDatabase>,
        /// The store's label (its partition of the table).
        label: String,
    },
    /// Redis server.
    Redis(redis::aio::ConnectionManager),
}

/// All stores by label.
pub type Stores = BTreeMap<String, Arc<Backend>>;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))";

/// Page size of a new embedded store: values run to megabytes (a symbol's cached feature matrix is
/// 4 MB), and SQLite reads and writes a value's overflow pages one system call each (twice with WAL's
/// checkpoint). With 64 KiB pages a feature miss went from 32-38 to 19 ms on the 2-core machine.
const PAGE_SIZE: u32 = 65536;

/// Compare-and-swap for Redis: set only if the value is still the one read (absent when ARGV[1] is "0").
const CAS_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if (v == false and ARGV[1] == '0') or (v ~= false and ARGV[1] == '1' and v == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0";

/// Opens every configured store.
pub async fn open_all(cfg: &BTreeMap<String, KeyValueConfig>) -> Result<Stores> {
    let mut files: BTreeMap<std::path::PathBuf, Arc<SqliteDatabase>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (label, c) in cfg {
        let backend = match c {
            KeyValueConfig::File(path) => {
                let db = match files.get(path) {
                    Some(db) => db.clone(),
                    None => {
                        let file = crate::runtime_config::SqliteConfig::File(path.clone());
                        let db = Arc::new(SqliteDatabase::open_with_pages(label, &file, Some(PAGE_SIZE)).await?);
                        let conn = db.connect().await?;
                        conn.execute(CREATE_TABLE, ())
                            .await
                            .with_context(|| format!("key-value store `{label}`: cannot create table"))?;
                        db.release(conn);
                        files.insert(path.clone(), db.clone());
                        db
                    }
                };
                Backend::Sqlite { db, label: label.clone() }
            }
            KeyValueConfig::Redis { url } => {
                let client = redis::Client::open(url.as_str())
                    .with_context(|| format!("key-value store `{label}`: bad Redis URL"))?;
                // Fail fast when Redis is away: callers treat the store as a cache and fall back to the
                // database, so a long reconnect backoff would only turn an outage into timeouts.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(std::time::Duration::from_secs(1))
                    .set_response_timeout(std::time::Duration::from_secs(2))
                    .set_number_of_retries(1)
                    .set_max_delay(200);
                let mgr = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    .with_context(|| format!("key-value store `{label}`: cannot connect to Redis"))?;
                Backend::Redis(mgr)
            }
        };
        out.insert(label.clone(), Arc::new(backend));
    }
    Ok(out)
}

type KvResult<T> = std::result::Result<T, String>;

impl Backend {
    async fn sql(&self, db: &SqliteDatabase, sql: &str, params: Vec<SqlValue>) -> KvResult<stockops_core::Rows> {
        let conn = db.connect().await.map_err(|e| format!("{e:#}"))?;
        let r = db.execute(&conn, sql, params).await.map_err(|e| e.to_string());
        db.release(conn);
        r
    }

    /// The value under `key`.
    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        match self {
            Backend::Sqlite { db, label } => {
                let rows = self
                    .sql(
                        db,
                        "SELECT value FROM spin_key_value WHERE store = ? AND key = ?",
                        vec![label.as_str().into(), key.into()],
                    )
                    .await?;
                // The value moves out of the result (cached model plans are hundreds of KB): no copy.
                match rows.rows.into_iter().next().and_then(|row| row.into_iter().next()) {
                    Some(SqlValue::Blob(v)) => Ok(Some(v)),
                    _ => Ok(None),
                }
            }
            Backend::Redis(m) => {
                redis::cmd("GET").arg(key).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// The values under `keys`, in their order: one query (SQLite) or one MGET (Redis), not one per key.
    pub async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        match self {
            Backend::Sqlite { db, label } => {
                let mut found = std::collections::HashMap::with_capacity(keys.len());
                // Well under SQLite's bound-parameter limit per statement.
                for chunk in keys.chunks(500) {
                    let sql = format!(
                        "SELECT key, value FROM spin_key_value WHERE store = ? AND key IN ({})",
                        vec!["?"; chunk.len()].join(", ")
                    );
                    let mut params: Vec<SqlValue> = Vec::with_capacity(chunk.len() + 1);
                    params.push(label.as_str().into());
                    params.extend(chunk.iter().map(|k| SqlValue::from(k.as_str())));
                    for row in self.sql(db, &sql, params).await?.rows {
                        let mut cells = row.into_iter();
                        if let (Some(SqlValue::Text(k)), Some(SqlValue::Blob(v))) = (cells.next(), cells.next()) {
                            found.insert(k, v);
                        }
                    }
                }
                Ok(keys.iter().map(|k| found.remove(k)).collect())
            }
            Backend::Redis(m) => {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                redis::cmd("MGET").arg(keys).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Stores `value` under `key`.
    pub async fn set(&self, key: &str, value: Vec<u8>) -> KvResult<()> {
        match self {
            Backend::Sqlite { db, label } => {
                let sql = "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?)
                           ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
                self.sql(db, sql, vec![label.as_str().into(), key.into(), value.into()]).await.map(drop)
            }
            Backend::Redis(m) => {
                redis::cmd("SET").arg(key).arg(value).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> KvResult<()> {
        match self {
            Backend::Sqlite { db, label } => self
                .sql(
                    db,
                    "DELETE FROM spin_key_value WHERE store = ? AND key = ?",
                    vec![label.as_str().into(), key.into()],
                )
                .await
                .map(drop),
            Backend::Redis(m) => {
                redis::cmd("DEL").arg(key).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Whether `key` is present.
    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        match self {
            Backend::Sqlite { .. } => self.get(key).await.map(|v| v.is_some()),
            Backend::Redis(m) => {
                redis::cmd("EXISTS").arg(key).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Every key.
    pub async fn keys(&self) -> KvResult<Vec<String>> {
        match self {
            Backend::Sqlite { db, label } => {
                let rows = self
                    .sql(db, "SELECT key FROM spin_key_value WHERE store = ? ORDER BY key", vec![label.as_str().into()])
                    .await?;
                Ok((0..rows.rows.len()).filter_map(|i| rows.text(i, "key").map(str::to_string)).collect())
            }
            Backend::Redis(m) => {
                // SCAN, not KEYS: never block the server on a large keyspace.
                let mut conn = m.clone();
                let mut cursor: u64 = 0;
                let mut keys = Vec::new();
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                keys.sort();
                Ok(keys)
            }
        }
    }

    /// Adds `delta` to the counter under `key` atomically; returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        match self {
            Backend::Sqlite { db, label } => {
                let conn = db.connect().await.map_err(|e| format!("{e:#}"))?;
                let result = sqlite_increment(db, &conn, label, key, delta).await;
                if result.is_err() {
                    let _ = conn.execute("ROLLBACK", ()).await;
                }
                db.release(conn);
                result
            }
            Backend::Redis(m) => {
                redis::cmd("INCRBY").arg(key).arg(delta).query_async(&mut m.clone()).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Sets `key` to `value` only if it still holds `expected` (None: still absent).
    pub async fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: Vec<u8>) -> KvResult<bool> {
        match self {
            Backend::Sqlite { db, label } => {
                let conn = db.connect().await.map_err(|e| format!("{e:#}"))?;
                let result = async {
                    let r = |e: libsql::Error| e.to_string();
                    conn.execute("BEGIN IMMEDIATE", ()).await.map_err(r)?;
                    let rows = db
                        .execute(
                            &conn,
                            "SELECT value FROM spin_key_value WHERE store = ? AND key = ?",
                            vec![label.as_str().into(), key.into()],
                        )
                        .await
                        .map_err(r)?;
                    let swapped = rows.blob(0, "value") == expected;
                    if swapped {
                        let sql = "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?)
                                   ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
                        db.execute(&conn, sql, vec![label.as_str().into(), key.into(), value.into()])
                            .await
                            .map_err(r)?;
                    }
                    conn.execute("COMMIT", ()).await.map_err(r)?;
                    Ok(swapped)
                }
                .await;
                if result.is_err() {
                    let _ = conn.execute("ROLLBACK", ()).await;
                }
                db.release(conn);
                result
            }
            Backend::Redis(m) => {
                let (present, old) = match expected {
                    Some(v) => ("1", v.to_vec()),
                    None => ("0", Vec::new()),
                };
                let n: i64 = redis::Script::new(CAS_SCRIPT)
                    .key(key)
                    .arg(present)
                    .arg(old)
                    .arg(value)
                    .invoke_async(&mut m.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(n == 1)
            }
        }
    }
}

async fn sqlite_increment(db: &SqliteDatabase, conn: &Conn, label: &str, key: &str, delta: i64) -> KvResult<i64> {
    let r = |e: libsql::Error| e.to_string();
    conn.execute("BEGIN IMMEDIATE", ()).await.map_err(r)?;
    let rows = db
        .execute(conn, "SELECT value FROM spin_key_value WHERE store = ? AND key = ?", vec![label.into(), key.into()])
        .await
        .map_err(r)?;
    let current = match rows.blob(0, "value") {
        None => 0,
        Some(b) => {
            i64::from_le_bytes(b.try_into().map_err(|_| format!("value under `{key}` is not a counter (8 bytes)"))?)
        }
    };
    let next = current.checked_add(delta).ok_or_else(|| format!("counter `{key}` would overflow"))?;
    let sql = "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?)
               ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
    db.execute(conn, sql, vec![label.into(), key.into(), next.to_le_bytes().to_vec().into()]).await.map_err(r)?;
    conn.execute("COMMIT", ()).await.map_err(r)?;
    Ok(next)
}

/// An open store (the `store` resource of fermyon:spin/key-value and the `bucket` of wasi:keyvalue).
pub struct StoreHandle {
    backend: Arc<Backend>,
}

/// A compare-and-swap handle: the key and the value read when it was made.
pub struct Cas {
    backend: Arc<Backend>,
    key: String,
    current: Option<Vec<u8>>,
}

impl InstanceState {
    fn open_store(&self, label: &str) -> std::result::Result<Arc<Backend>, OpenError> {
        if !self.component.key_value_stores.contains(label) {
            return Err(OpenError::AccessDenied);
        }
        self.app.stores.get(label).cloned().ok_or(OpenError::NoSuchStore)
    }
}

enum OpenError {
    AccessDenied,
    NoSuchStore,
}

// ---- fermyon:spin/key-value@2.0.0 ----

impl spin_kv::Host for InstanceState {}

impl spin_kv::HostStore for InstanceState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<std::result::Result<Resource<StoreHandle>, spin_kv::Error>> {
        Ok(match self.open_store(&label) {
            Ok(backend) => Ok(self.table.push(StoreHandle { backend })?),
            Err(OpenError::AccessDenied) => Err(spin_kv::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(spin_kv::Error::NoSuchStore),
        })
    }

    async fn get(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<Option<Vec<u8>>, spin_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.get(&key).await.map_err(spin_kv::Error::Other))
    }

    async fn set(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<std::result::Result<(), spin_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.set(&key, value).await.map_err(spin_kv::Error::Other))
    }

    async fn delete(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<(), spin_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.delete(&key).await.map_err(spin_kv::Error::Other))
    }

    async fn exists(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<bool, spin_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.exists(&key).await.map_err(spin_kv::Error::Other))
    }

    async fn get_keys(
        &mut self,
        this: Resource<StoreHandle>,
    ) -> wasmtime::Result<std::result::Result<Vec<String>, spin_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.keys().await.map_err(spin_kv::Error::Other))
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 ----

impl wasi_kv::Host for InstanceState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<std::result::Result<Resource<StoreHandle>, wasi_kv::Error>> {
        Ok(match self.open_store(&identifier) {
            Ok(backend) => Ok(self.table.push(StoreHandle { backend })?),
            Err(OpenError::AccessDenied) => Err(wasi_kv::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(wasi_kv::Error::NoSuchStore),
        })
    }
}

impl wasi_kv::HostBucket for InstanceState {
    async fn get(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.get(&key).await.map_err(wasi_kv::Error::Other))
    }

    async fn set(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<std::result::Result<(), wasi_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.set(&key, value).await.map_err(wasi_kv::Error::Other))
    }

    async fn delete(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<(), wasi_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.delete(&key).await.map_err(wasi_kv::Error::Other))
    }

    async fn exists(
        &mut self,
        this: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<bool, wasi_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        Ok(b.exists(&key).await.map_err(wasi_kv::Error::Other))
    }

    async fn list_keys(
        &mut self,
        this: Resource<StoreHandle>,
        _cursor: Option<String>,
    ) -> wasmtime::Result<std::result::Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let b = self.table.get(&this)?.backend.clone();
        // One page holds every key: the cursor is always None.
        Ok(b.keys().await.map(|keys| wasi_kv::KeyResponse { keys, cursor: None }).map_err(wasi_kv::Error::Other))
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl atomics::Host for InstanceState {
    async fn increment(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<std::result::Result<i64, wasi_kv::Error>> {
        let b = self.table.get(&bucket)?.backend.clone();
        Ok(b.increment(&key, delta).await.map_err(wasi_kv::Error::Other))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<std::result::Result<(), atomics::CasError>> {
        let c = self.table.delete(cas)?;
        Ok(match c.backend.compare_and_swap(&c.key, c.current.as_deref(), value).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                let current = c.backend.get(&c.key).await.unwrap_or(None);
                let fresh = self.table.push(Cas { backend: c.backend.clone(), key: c.key.clone(), current })?;
                Err(atomics::CasError::CasFailed(fresh))
            }
            Err(e) => Err(atomics::CasError::StoreError(wasi_kv::Error::Other(e))),
        })
    }
}

impl atomics::HostCas for InstanceState {
    async fn new(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<std::result::Result<Resource<Cas>, wasi_kv::Error>> {
        let backend = self.table.get(&bucket)?.backend.clone();
        Ok(match backend.get(&key).await {
            Ok(current) => Ok(self.table.push(Cas { backend, key, current })?),
            Err(e) => Err(wasi_kv::Error::Other(e)),
        })
    }

    async fn current(
        &mut self,
        this: Resource<Cas>,
    ) -> wasmtime::Result<std::result::Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&this)?.current.clone()))
    }

    async fn drop(&mut self, rep: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for InstanceState {
    async fn get_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<std::result::Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let b = self.table.get(&bucket)?.backend.clone();
        Ok(match b.get_many(&keys).await {
            Ok(values) => Ok(keys.into_iter().zip(values).collect()),
            Err(e) => Err(wasi_kv::Error::Other(e)),
        })
    }

    async fn set_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<std::result::Result<(), wasi_kv::Error>> {
        let b = self.table.get(&bucket)?.backend.clone();
        for (k, v) in key_values {
            if let Err(e) = b.set(&k, v).await {
                return Ok(Err(wasi_kv::Error::Other(e)));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<std::result::Result<(), wasi_kv::Error>> {
        let b = self.table.get(&bucket)?.backend.clone();
        for k in keys {
            if let Err(e) = b.delete(&k).await {
                return Ok(Err(wasi_kv::Error::Other(e)));
            }
        }
        Ok(Ok(()))
    }
}
