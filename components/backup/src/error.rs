//! What can go wrong with a backup, by what the caller can do about it, and how each maps to HTTP.

use stockops_core::{ApiError, StorageError};
use thiserror::Error;

/// A backup, verify or restore failure. Messages say where (which part, expected vs actual).
#[derive(Debug, Error)]
pub enum BackupError {
    /// No passphrase to derive the archive key from.
    #[error("no backup key: set the secret variable backup_key (SPIN_VARIABLE_BACKUP_KEY)")]
    MissingKey,
    /// A setting has a value that cannot be used.
    #[error("setting {name} = {value:?}: {why}")]
    InvalidSetting {
        /// Setting (variable) name.
        name: String,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        why: String,
    },
    /// A backup id from a path or command line is malformed.
    #[error("backup id {0:?} is malformed: ids are 1 to 64 of A-Z a-z 0-9 - (like 20261126T020000Z-0123abcd)")]
    InvalidId(String),
    /// The bytes do not start with the archive magic: not a stockops backup at all.
    #[error("not a stockops backup archive (the file does not start with the archive magic bytes)")]
    NotAnArchive,
    /// The archive is in a format version this build does not read.
    #[error("archive format version {found} is not supported by this build (it reads version {supported})")]
    UnsupportedFormat {
        /// Version in the archive header.
        found: u32,
        /// The one version this build reads.
        supported: u32,
    },
    /// The archive is shorter than its header says: cut off while written or copied.
    #[error("archive truncated: expected {expected} bytes, found {actual}")]
    Truncated {
        /// Length the header announces (or the header's own length, when even that is cut).
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// The passphrase does not derive the key this archive was sealed with.
    #[error("wrong backup key: the key check in the archive header does not match the configured backup_key")]
    WrongKey,
    /// The archive was modified after it was written (header checksum or authentication failed).
    #[error("archive damaged or tampered with: {0}")]
    Tampered(String),
    /// The archive authenticated but a part does not match the manifest (a writer bug, never silent).
    #[error("archive part {part}: {why}")]
    Corrupt {
        /// Part name ("manifest" for the manifest itself).
        part: String,
        /// What does not match, with expected and actual values.
        why: String,
    },
    /// The backup was taken by a newer build, whose schema this build does not know.
    #[error("backup schema version {found} is newer than this build's {supported}: upgrade stockops to restore it")]
    NewerSchema {
        /// Schema version recorded in the archive.
        found: i64,
        /// This build's latest schema version.
        supported: i64,
    },
    /// The backup does not fit the database's schema (a table or column it holds no longer exists).
    #[error("backup does not fit this database's schema: {0}")]
    SchemaMismatch(String),
    /// The restore transaction failed and was rolled back: the database is as it was.
    #[error("restore rolled back, the database is unchanged: {0}")]
    RolledBack(StorageError),
    /// The database was restored but the key-value entries after it could not all be written.
    #[error("the database was restored, but writing the key-value entries failed ({0}): run the restore again")]
    KvAfterRestore(StorageError),
    /// No backup with that id.
    #[error("no backup with id {0}")]
    NotFound(String),
    /// The backup exists but is not in a state that allows the operation (still writing, or failed).
    #[error("backup {id} is {status}, not verified: {why}")]
    NotUsable {
        /// Backup id.
        id: String,
        /// Its status.
        status: String,
        /// Why that matters here.
        why: String,
    },
    /// A stored archive in the key-value store is incomplete or does not match its catalogue row.
    #[error("stored archive of backup {id} is damaged: {why}")]
    StoreDamaged {
        /// Backup id.
        id: String,
        /// What is missing or different.
        why: String,
    },
    /// The random source or a cryptographic primitive failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// The database or key-value store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        let message = e.to_string();
        match e {
            BackupError::MissingKey => ApiError::new(500, "backup_key_missing", message),
            BackupError::InvalidSetting { .. } => ApiError::new(500, "invalid_config", message),
            BackupError::InvalidId(_) => ApiError::bad_request("invalid", message),
            BackupError::NotAnArchive => ApiError::new(422, "not_an_archive", message),
            BackupError::UnsupportedFormat { .. } => ApiError::new(422, "unsupported_format", message),
            BackupError::Truncated { .. } => ApiError::new(422, "truncated", message),
            BackupError::WrongKey => ApiError::new(422, "wrong_key", message),
            BackupError::Tampered(_) => ApiError::new(422, "tampered", message),
            BackupError::Corrupt { .. } => ApiError::new(422, "corrupt", message),
            BackupError::NewerSchema { .. } => ApiError::new(409, "newer_schema", message),
            BackupError::SchemaMismatch(_) => ApiError::new(409, "schema_mismatch", message),
            BackupError::RolledBack(_) => ApiError::new(500, "restore_failed", message),
            BackupError::KvAfterRestore(_) => ApiError::new(500, "restore_incomplete", message),
            BackupError::NotFound(_) => ApiError::not_found(message),
            BackupError::NotUsable { .. } => ApiError::new(409, "not_verified", message),
            BackupError::StoreDamaged { .. } => ApiError::new(500, "backup_damaged", message),
            BackupError::Crypto(_) => ApiError::internal(message),
            BackupError::Storage(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_stable_codes_and_statuses() {
        let cases = [
            (BackupError::MissingKey, 500, "backup_key_missing"),
            (BackupError::WrongKey, 422, "wrong_key"),
            (BackupError::Tampered("x".into()), 422, "tampered"),
            (BackupError::Truncated { expected: 10, actual: 5 }, 422, "truncated"),
            (BackupError::NewerSchema { found: 9, supported: 4 }, 409, "newer_schema"),
            (BackupError::NotFound("x".into()), 404, "not_found"),
            (BackupError::Storage(StorageError::Backend("x".into())), 500, "storage_error"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status, api.code.as_str()), (status, code), "{}", api.message);
        }
        let missing = ApiError::from(BackupError::MissingKey);
        assert!(missing.message.contains("SPIN_VARIABLE_BACKUP_KEY"));
        let cut = ApiError::from(BackupError::Truncated { expected: 100, actual: 42 });
        assert!(cut.message.contains("expected 100 bytes, found 42"), "{}", cut.message);
    }
}
