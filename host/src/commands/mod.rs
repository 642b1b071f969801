//! Native jobs over the app's own stores, opened from the runtime config without loading any
//! component: bulk ingest (`stockops ingest`), feature export (`stockops features`), training
//! (`stockops train`), model import (`stockops models import`), and backups as files (`stockops backup`,
//! `stockops restore`). They run the same library code as the components, through the storage seam's
//! native implementation.

pub mod backup;
pub mod features;
pub mod ingest;
pub mod models;
pub mod train;

use crate::key_value::Backend;
use crate::native_store::{NativeDb, NativeKv};
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::SqliteDatabase;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the stores are: the runtime config (or Spin's defaults beside the manifest).
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// The application manifest; with no runtime config, the default stores live in `.spin/` beside it.
    #[arg(long, short = 'f', default_value = "spin.toml", env = "STOCKOPS_MANIFEST")]
    manifest: PathBuf,
    /// Runtime config (Spin syntax): where databases and key-value stores live.
    #[arg(long, env = "STOCKOPS_RUNTIME_CONFIG")]
    runtime_config: Option<PathBuf>,
}

/// The `default` database and key-value store, open, with the schema up to date.
pub struct Stores {
    db: Arc<SqliteDatabase>,
    kv: Arc<Backend>,
}

impl StoreArgs {
    /// The application manifest.
    pub fn manifest(&self) -> &std::path::Path {
        &self.manifest
    }

    /// The runtime config file, if one is given.
    pub fn runtime_config(&self) -> Option<&std::path::Path> {
        self.runtime_config.as_deref()
    }

    /// Opens the `default` database and store the runtime config names, and migrates the schema.
    pub async fn open(&self) -> Result<Stores> {
        let app_dir = self.manifest.parent().map(PathBuf::from).unwrap_or_default();
        let rc = RuntimeConfig::load_or_defaults(self.runtime_config.as_deref(), &app_dir)?;
        let db = crate::sqlite::open_all(&rc.sqlite).await?.remove("default");
        let kv = crate::key_value::open_all(&rc.key_value).await?.remove("default");
        let stores = Stores {
            db: db.context("the runtime config has no [sqlite_database.default]")?,
            kv: kv.context("the runtime config has no [key_value_store.default]")?,
        };
        stores
            .blocking(|db, _| Ok(stockops_core::schema::migrate(db)?))
            .await
            .context("cannot migrate the database")?;
        Ok(stores)
    }
}

impl Stores {
    /// Runs `f` on a blocking thread with native handles on the stores (the core traits block).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&NativeDb, &NativeKv) -> Result<T> + Send + 'static,
    {
        let (db, kv, handle) = (self.db.clone(), self.kv.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let db = NativeDb::connect(db, handle.clone())?;
            f(&db, &NativeKv::new(kv, handle))
        })
        .await
        .context("the job's thread failed")?
    }
}

/// A progress bar over `len` steps on stderr (drawn only on a terminal).
pub fn progress(len: usize, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
