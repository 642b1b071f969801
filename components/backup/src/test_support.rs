//! Test helpers: an in-memory key-value store, and a database that fails the test if touched.

use std::cell::RefCell;
use std::collections::BTreeMap;

use stockops_core::{Database, KeyValue, Rows, SqlValue, StorageError};

/// A key-value store in a map (the `KeyValue` contract, single-threaded).
#[derive(Default)]
pub struct MemKv(RefCell<BTreeMap<String, Vec<u8>>>);

impl MemKv {
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

impl KeyValue for MemKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.0.borrow_mut().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.0.borrow().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StorageError> {
        let mut map = self.0.borrow_mut();
        let now = map.get(key).and_then(|v| v.as_slice().try_into().ok()).map_or(0, i64::from_le_bytes) + delta;
        map.insert(key.to_string(), now.to_le_bytes().to_vec());
        Ok(now)
    }
}

/// A database that panics on any statement: proves a refusal happened before the database was used.
pub struct Untouchable;

impl Database for Untouchable {
    fn execute(&self, sql: &str, _params: &[SqlValue]) -> Result<Rows, StorageError> {
        panic!("the database was touched: {sql}");
    }
}
