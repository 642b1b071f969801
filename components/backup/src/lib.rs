//! stockops backup: consistent snapshots of the database (model artifacts included), the durable
//! key-value entries and the non-secret configuration, as one compressed archive encrypted with
//! AES-256-GCM under an Argon2id key from the `backup_key` passphrase; a catalogue with retention;
//! verify and restore that check everything before the database is touched. The Spin entry point is in
//! `component` (wasm only); the host's `stockops backup` / `restore` use the same functions.

pub mod archive;
pub mod catalog;
pub mod crypto;
pub mod error;
pub mod restore;
pub mod retention;
pub mod rows;
pub mod run;
pub mod settings;
pub mod snapshot;
mod sql;

#[cfg(test)]
mod test_support;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;

pub use archive::{Manifest, PartInfo, PartKind};
pub use catalog::{BackupRecord, Status, Trigger, archive_file_name, recover_interrupted};
pub use error::BackupError;
pub use restore::{RestoreReport, restore};
pub use run::{Archive, BackupRun, create_archive, restore_stored, run_backup, verify_archive, verify_stored};
pub use settings::Settings;
pub use snapshot::{Snapshot, snapshot};
