//! The storage seam: one SQL trait and one key-value trait that every capability library is written against.
//! In wasm they are backed by Spin's sqlite and key-value interfaces (`spin_backend`); natively the host
//! backs them with libSQL and Redis. Library code never knows which.

use serde::{Deserialize, Serialize};

/// A SQL value, the same five kinds as SQLite (and Spin's `spin:sqlite` interface).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    /// 64-bit signed integer.
    Integer(i64),
    /// 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
    /// SQL NULL.
    Null,
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        if v.is_nan() { SqlValue::Null } else { SqlValue::Real(v) }
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// The result of one statement: column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rows {
    /// Column names, in select order.
    pub columns: Vec<String>,
    /// Row values, each as long as `columns`.
    pub rows: Vec<Vec<SqlValue>>,
}

impl Rows {
    /// Position of a column by name, ignoring ASCII case as SQL does: a libSQL server upper-cases aliases
    /// that are keywords (`AS first` comes back as `FIRST`), an embedded SQLite does not.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .or_else(|| self.columns.iter().position(|c| c.eq_ignore_ascii_case(name)))
    }

    /// The value at (row, column name), if both exist.
    pub fn value(&self, row: usize, name: &str) -> Option<&SqlValue> {
        self.rows.get(row)?.get(self.column(name)?)
    }

    /// An integer at (row, column); None for NULL or a missing cell.
    pub fn i64(&self, row: usize, name: &str) -> Option<i64> {
        as_i64(self.value(row, name)?)
    }

    /// A float at (row, column); integers widen.
    pub fn f64(&self, row: usize, name: &str) -> Option<f64> {
        as_f64(self.value(row, name)?)
    }

    /// Text at (row, column).
    pub fn text(&self, row: usize, name: &str) -> Option<&str> {
        as_text(self.value(row, name)?)
    }

    /// Bytes at (row, column).
    pub fn blob(&self, row: usize, name: &str) -> Option<&[u8]> {
        match self.value(row, name)? {
            SqlValue::Blob(v) => Some(v),
            _ => None,
        }
    }

    /// A float at (row, column position), as [`f64`](Self::f64): for long results whose columns the
    /// caller selected in a known order, so that no cell is looked up by name.
    pub fn f64_at(&self, row: usize, col: usize) -> Option<f64> {
        as_f64(self.rows.get(row)?.get(col)?)
    }

    /// Text at (row, column position), as [`text`](Self::text).
    pub fn text_at(&self, row: usize, col: usize) -> Option<&str> {
        as_text(self.rows.get(row)?.get(col)?)
    }
}

fn as_i64(v: &SqlValue) -> Option<i64> {
    match v {
        SqlValue::Integer(v) => Some(*v),
        SqlValue::Real(v) => Some(*v as i64),
        _ => None,
    }
}

fn as_f64(v: &SqlValue) -> Option<f64> {
    match v {
        SqlValue::Real(v) => Some(*v),
        SqlValue::Integer(v) => Some(*v as f64),
        _ => None,
    }
}

fn as_text(v: &SqlValue) -> Option<&str> {
    match v {
        SqlValue::Text(v) => Some(v),
        _ => None,
    }
}

/// A storage failure, as the caller can act on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    /// The store or database label is not configured.
    #[error("no such store or database: {0}")]
    NoSuchStore(String),
    /// The component is not allowed to use that store or database.
    #[error("access denied to store or database: {0}")]
    AccessDenied(String),
    /// The backend failed (I/O, SQL error, connection lost).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A SQL database: statements with positional `?` parameters.
pub trait Database {
    /// Runs one statement and returns its rows (empty for writes).
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StorageError>;

    /// Runs `f` inside one `BEGIN IMMEDIATE … COMMIT` transaction; rolls back when it fails.
    fn transaction<T>(&self, f: impl FnOnce(&Self) -> Result<T, StorageError>) -> Result<T, StorageError>
    where
        Self: Sized,
    {
        self.execute("BEGIN IMMEDIATE", &[])?;
        match f(self) {
            Ok(v) => {
                self.execute("COMMIT", &[])?;
                Ok(v)
            }
            Err(e) => {
                // The rollback error, if any, matters less than the one that caused it.
                let _ = self.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }
}

/// A key-value store with atomic counters.
pub trait KeyValue {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `value` under `key`, replacing what was there.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Every key that starts with `prefix`.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Adds `delta` to the counter under `key` atomically and returns the new value.
    /// Read a counter with `delta = 0`: backends store counters differently (Redis as text,
    /// Spin's SQLite store as 8 little-endian bytes), so `get` is not the way to read one.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StorageError>;

    /// A cache read: a failing store counts as a miss, so a cache outage (Redis down) slows answers
    /// rather than failing them. Only for entries derived from the database, never for the only copy.
    fn get_cached(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key).unwrap_or_else(|e| {
            eprintln!("cache read of {key} failed, computing instead: {e}");
            None
        })
    }

    /// The values under `keys`, in their order. Backends that can fetch many keys in one call override
    /// this (the Spin store uses `wasi:keyvalue/batch`: one host call instead of one per key).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// [`KeyValue::get_many`] as a cache read: a failing store reads as all misses.
    fn get_many_cached(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        self.get_many(keys).unwrap_or_else(|e| {
            eprintln!("cache read of {} keys failed, computing instead: {e}", keys.len());
            vec![None; keys.len()]
        })
    }

    /// A cache write: a failing store is logged and otherwise ignored (see `get_cached`).
    fn set_cached(&self, key: &str, value: &[u8]) {
        if let Err(e) = self.set(key, value) {
            eprintln!("cache write of {key} failed: {e}");
        }
    }
}
