//! The storage seam over Spin's own interfaces (wasm only): `spin:sqlite` for SQL, `fermyon:spin/key-value`
//! for values and `wasi:keyvalue/atomics` for counters. Whatever host runs the component (Spin CLI or
//! `stockops up`) decides what is behind them.

use crate::storage::{Database, KeyValue, Rows, SqlValue, StorageError};
use spin_sdk::key_value::Store;
use spin_sdk::sqlite3::{self, Connection, Value};

/// The component's database: the `default` sqlite database of spin.toml.
pub struct SpinDb {
    conn: Connection,
}

impl SpinDb {
    /// Opens the `default` database.
    pub fn open_default() -> Result<Self, StorageError> {
        Connection::open_default().map(|conn| SpinDb { conn }).map_err(sqlite_error)
    }
}

fn sqlite_error(e: sqlite3::Error) -> StorageError {
    match e {
        sqlite3::Error::NoSuchDatabase => StorageError::NoSuchStore("default".into()),
        sqlite3::Error::AccessDenied => StorageError::AccessDenied("default".into()),
        other => StorageError::Backend(other.to_string()),
    }
}

fn to_spin(v: &SqlValue) -> Value {
    match v {
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
        SqlValue::Null => Value::Null,
    }
}

fn from_spin(v: Value) -> SqlValue {
    match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

impl Database for SpinDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StorageError> {
        let params: Vec<Value> = params.iter().map(to_spin).collect();
        let result = self.conn.execute(sql, &params).map_err(sqlite_error)?;
        Ok(Rows {
            columns: result.columns,
            rows: result.rows.into_iter().map(|r| r.values.into_iter().map(from_spin).collect()).collect(),
        })
    }
}

/// A key-value store of spin.toml (`default` unless named), with counters through `wasi:keyvalue/atomics`.
pub struct SpinKv {
    label: String,
    store: Store,
}

impl SpinKv {
    /// Opens the store with this label.
    pub fn open(label: &str) -> Result<Self, StorageError> {
        let store = Store::open(label).map_err(|e| kv_error(label, e))?;
        Ok(SpinKv { label: label.to_string(), store })
    }

    /// Opens the `default` store.
    pub fn open_default() -> Result<Self, StorageError> {
        Self::open("default")
    }
}

fn kv_error(label: &str, e: spin_sdk::key_value::Error) -> StorageError {
    use spin_sdk::key_value::Error as E;
    match e {
        E::NoSuchStore => StorageError::NoSuchStore(label.to_string()),
        E::AccessDenied => StorageError::AccessDenied(label.to_string()),
        other => StorageError::Backend(other.to_string()),
    }
}

impl KeyValue for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.store.get(key).map_err(|e| kv_error(&self.label, e))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        use spin_sdk::wit::wasi::keyvalue::{batch, store};
        let bucket = store::open(&self.label).map_err(|e| StorageError::Backend(format!("{e:?}")))?;
        let found = batch::get_many(&bucket, keys).map_err(|e| StorageError::Backend(format!("{e:?}")))?;
        // Hosts may answer in another order or leave absent keys out (Spin's SQLite store does).
        let mut by_key: std::collections::HashMap<String, Vec<u8>> =
            found.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        Ok(keys.iter().map(|k| by_key.remove(k)).collect())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.store.set(key, value).map_err(|e| kv_error(&self.label, e))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.store.delete(key).map_err(|e| kv_error(&self.label, e))
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let keys = self.store.get_keys().map_err(|e| kv_error(&self.label, e))?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StorageError> {
        use spin_sdk::wit::wasi::keyvalue::{atomics, store};
        let bucket = store::open(&self.label).map_err(|e| StorageError::Backend(format!("{e:?}")))?;
        atomics::increment(&bucket, key, delta).map_err(|e| StorageError::Backend(format!("{e:?}")))
    }
}
