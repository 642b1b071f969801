//! `stockops`: the native host. `up` serves spin.toml's components over HTTP and runs their cron
//! schedules on wasmtime; `cron run` fires one component's cron event now; `ingest` and `features` are
//! native bulk jobs on the same stores.

mod app;
mod bindings;
mod commands;
mod cron;
mod engine;
mod key_value;
mod manifest;
mod metrics;
mod native_store;
mod outbound_http;
mod parquet_out;
mod router;
mod runtime_config;
mod server;
mod sqlite;
mod state;
mod variables;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "stockops", version, about = "stockops: stock-prediction MLOps on WebAssembly")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct AppArgs {
    /// The application manifest.
    #[arg(long, short = 'f', default_value = "spin.toml", env = "STOCKOPS_MANIFEST")]
    manifest: PathBuf,
    /// Runtime config (Spin syntax): where databases and key-value stores live.
    #[arg(long, env = "STOCKOPS_RUNTIME_CONFIG")]
    runtime_config: Option<PathBuf>,
    /// Where compiled components are cached (default: .spin/aot-cache beside the manifest).
    #[arg(long, env = "STOCKOPS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Component instances alive at once; further requests wait for a slot.
    #[arg(long, default_value_t = 256)]
    max_instances: u32,
    /// Linear memory per instance, in MiB.
    #[arg(long, default_value_t = 2048)]
    max_memory_mib: usize,
    /// Longest a component may run for one request or cron event, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app: HTTP routes and cron schedules.
    Up {
        #[command(flatten)]
        app: AppArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000", env = "STOCKOPS_LISTEN")]
        listen: String,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_body_bytes: usize,
        /// Do not run cron schedules (another process runs them).
        #[arg(long)]
        no_cron: bool,
    },
    /// Cron triggers.
    Cron {
        #[command(subcommand)]
        command: CronCommand,
    },
    /// Load bars from CSV files or a Qlib binary directory into the database.
    Ingest(commands::ingest::IngestArgs),
    /// Compute a feature set for every symbol into a CSV file.
    Features(commands::features::FeaturesArgs),
    /// Train a model from a job file (TOML) on all cores into the registry.
    Train(commands::train::TrainArgs),
    /// The model registry: import models trained elsewhere.
    Models {
        #[command(subcommand)]
        command: commands::models::ModelsCommand,
    },
    /// Write an encrypted, verified backup archive of the database to a directory; `backup verify FILE`.
    Backup(commands::backup::BackupArgs),
    /// Replace the database's contents with an archive's, after checking all of it.
    Restore(commands::backup::RestoreArgs),
}

#[derive(Subcommand)]
enum CronCommand {
    /// Fire one component's cron event now and report its result.
    Run {
        /// Component id.
        component: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

impl AppArgs {
    fn options(&self) -> app::AppOptions {
        let app_dir = self.manifest.parent().map(PathBuf::from).unwrap_or_default();
        app::AppOptions {
            manifest: self.manifest.clone(),
            runtime_config: self.runtime_config.clone(),
            cache_dir: self.cache_dir.clone().unwrap_or_else(|| app_dir.join(".spin").join("aot-cache")),
            limits: engine::EngineLimits {
                max_instances: self.max_instances,
                max_memory_bytes: self.max_memory_mib << 20,
            },
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOCKOPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up { app, listen, max_body_bytes, no_cron } => {
            let timeout = Duration::from_secs(app.timeout_secs);
            let started = std::time::Instant::now();
            let loaded = Arc::new(app::load(&app.options(), &env_var).await?);
            let listener = server::bind(&listen).await?;
            let addr = listener.local_addr().context("no local address")?;
            engine::tick_epochs(loaded.engine.clone());
            let recorder = Arc::new(metrics::Recorder::new());
            let metrics_store = loaded.services.stores.get("default").cloned().context("no default key-value store")?;
            {
                let (recorder, store) = (recorder.clone(), metrics_store.clone());
                tokio::spawn(async move { recorder.flush_every_second(&store).await });
            }
            if !no_cron && !loaded.crons.is_empty() {
                tokio::spawn(cron::run_schedules(loaded.clone(), timeout));
            }
            tracing::info!(app = %loaded.name, components = loaded.components.len(), ms = started.elapsed().as_millis() as u64, "serving on http://{addr}");
            // The line scripts and tests wait for: the bound address, which matters with port 0.
            println!("stockops listening on http://{addr}");
            let opts = server::ServerOptions {
                max_body_bytes,
                request_timeout: timeout,
                shutdown_grace: Duration::from_secs(10),
            };
            server::serve(loaded, listener, opts, recorder.clone()).await?;
            recorder.remove(&metrics_store).await;
            Ok(())
        }
        Command::Cron { command: CronCommand::Run { component, app } } => {
            let timeout = Duration::from_secs(app.timeout_secs);
            let loaded = app::load(&app.options(), &env_var).await?;
            engine::tick_epochs(loaded.engine.clone());
            cron::run_once(&loaded, &component, timeout).await?;
            println!("cron event of `{component}` handled");
            Ok(())
        }
        Command::Ingest(args) => commands::ingest::run(args).await,
        Command::Features(args) => commands::features::run(args).await,
        Command::Train(args) => commands::train::run(args).await,
        Command::Models { command } => commands::models::run(command).await,
        Command::Backup(args) => commands::backup::run(args).await,
        Command::Restore(args) => commands::backup::restore(args).await,
    }
}
