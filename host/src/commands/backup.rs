//! `stockops backup --out DIR`, `stockops backup verify FILE` and `stockops restore FILE`: the backup
//! component's archives as files, made and read by the same library code. The passphrase is the app's
//! `backup_key` variable (SPIN_VARIABLE_BACKUP_KEY in the environment or .env beside spin.toml).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backup::{Settings, archive_file_name};

use super::StoreArgs;
use crate::runtime_config::RuntimeConfig;

/// Arguments of `stockops backup`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    #[command(flatten)]
    stores: StoreArgs,
    /// Directory the archive is written into (created if missing).
    #[arg(long, default_value = "backups")]
    out: PathBuf,
}

/// `stockops backup …` subcommands.
#[derive(clap::Subcommand)]
pub enum BackupCommand {
    /// Check an archive completely (key, authentication, every part's checksum and row count) without
    /// touching any database.
    Verify {
        /// The archive.
        file: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
    },
}

/// Arguments of `stockops restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The archive.
    file: PathBuf,
    #[command(flatten)]
    stores: StoreArgs,
}

/// The backup settings from the app's variables, with the runtime config (without secrets) recorded.
fn settings(stores: &StoreArgs) -> Result<Settings> {
    let m = crate::manifest::load(stores.manifest())?;
    let values = crate::variables::app_values(&m, &|name| std::env::var(name).ok())?;
    let mut settings = Settings::from_variables(|name| values.get(name).cloned())?;
    let rc = RuntimeConfig::load_or_defaults(stores.runtime_config(), m.app_dir())?;
    settings.config.extend(rc.without_secrets());
    Ok(settings)
}

/// Runs `stockops backup`.
pub async fn run(args: BackupArgs) -> Result<()> {
    match args.command {
        Some(BackupCommand::Verify { file, stores }) => verify(&file, &stores),
        None => backup(args.stores, &args.out).await,
    }
}

async fn backup(stores_args: StoreArgs, out: &Path) -> Result<()> {
    let settings = settings(&stores_args)?;
    let stores = stores_args.open().await?;
    let now = chrono::Utc::now();
    let id = backup::catalog::new_id(now)?;
    let passphrase = settings.passphrase.clone();
    let archive = stores.blocking(move |db, kv| Ok(backup::create_archive(db, kv, &settings, &id, now)?)).await?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(archive_file_name(&archive.id));
    write_atomically(&path, &archive.bytes)?;
    // Verify what the disk gives back, not what was meant to be written.
    let written = std::fs::read(&path).with_context(|| format!("cannot read back {}", path.display()))?;
    if let Err(e) = backup::verify_archive(&written, &passphrase) {
        let _ = std::fs::remove_file(&path);
        return Err(e).context(format!("{} did not verify after writing; removed", path.display()));
    }
    let rows: u64 = archive.manifest.parts.iter().map(|p| p.rows).sum();
    eprintln!(
        "backup {}: {} parts, {rows} rows, {} bytes, sha256 {}",
        archive.id,
        archive.manifest.parts.len(),
        archive.bytes.len(),
        archive.sha256
    );
    // The last line of stdout is the file, for scripts.
    println!("{}", path.display());
    Ok(())
}

/// Writes beside the target and renames, so a crash never leaves a partial archive under the real name.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = path.with_extension("partial");
    let mut f = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn verify(file: &Path, stores: &StoreArgs) -> Result<()> {
    let settings = settings(stores)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let manifest = backup::verify_archive(&bytes, &settings.passphrase)
        .with_context(|| format!("{} does not verify", file.display()))?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    eprintln!("{}: verified", file.display());
    Ok(())
}

/// Runs `stockops restore`: everything is checked before the database is touched, then replaced in one
/// transaction.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let settings = settings(&args.stores)?;
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let stores = args.stores.open().await?;
    let report = stores
        .blocking(move |db, kv| Ok(backup::restore(db, kv, &bytes, &settings.passphrase)?))
        .await
        .with_context(|| format!("cannot restore {}: the database is unchanged", args.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
