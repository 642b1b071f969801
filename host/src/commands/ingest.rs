//! `stockops ingest`: bars from CSV files or a Qlib binary directory into the database. Every input is
//! parsed and validated (in parallel) before the first write; each file or symbol is then written in
//! one transaction, replacing bars already stored for the same (symbol, date).

use super::{StoreArgs, progress};
use anyhow::{Context, Result, bail};
use features::qlib_bin::QlibDir;
use features::{ingest, store};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use stockops_core::Bar;

/// Arguments of `stockops ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// A CSV file, or a directory of `*.csv` files (a file without a symbol column is named by its file stem).
    #[arg(long, required_unless_present = "qlib", conflicts_with = "qlib")]
    csv: Option<PathBuf>,
    /// A Qlib binary data directory (`calendars/day.txt`, `instruments/all.txt`, `features/<symbol>/`).
    #[arg(long)]
    qlib: Option<PathBuf>,
}

/// Parses every input, then writes it; prints what was written.
pub async fn run(args: IngestArgs) -> Result<()> {
    let stores = args.stores.open().await?;
    let (csv, qlib) = (args.csv, args.qlib);
    let (bars, symbols, newest) = stores
        .blocking(move |db, kv| {
            let batches = match (csv, qlib) {
                (Some(path), _) => read_csv(&path)?,
                (None, Some(dir)) => read_qlib(&dir)?,
                (None, None) => bail!("give --csv FILE|DIR or --qlib DIR"),
            };
            let bar = progress(batches.len(), "writing");
            let mut written = 0;
            let mut symbols = std::collections::BTreeSet::new();
            for (name, bars) in &batches {
                symbols.extend(store::upsert_bars(db, bars).with_context(|| format!("{name}: cannot write"))?);
                written += bars.len();
                bar.inc(1);
            }
            bar.finish_and_clear();
            // Cached features of these symbols may predate a corrected bar.
            for s in &symbols {
                store::invalidate_symbol(kv, s)?;
            }
            Ok((written, symbols.len(), store::newest_date(db)?))
        })
        .await?;
    let newest = newest.map_or_else(|| "none".to_string(), |d| d.to_string());
    println!("ingested {bars} bars of {symbols} symbols (newest bar in the database: {newest})");
    Ok(())
}

/// One file's or symbol's bars, named for messages.
type Batch = (String, Vec<Bar>);

fn read_csv(path: &Path) -> Result<Vec<Batch>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} holds no *.csv file", path.display());
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let bar = progress(files.len(), "parsing");
    let batches = files
        .par_iter()
        .map(|f| {
            let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
            let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned());
            let bars = ingest::parse_csv(&bytes, stem.as_deref()).with_context(|| f.display().to_string())?;
            bar.inc(1);
            Ok((f.display().to_string(), bars))
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    batches
}

fn read_qlib(dir: &Path) -> Result<Vec<Batch>> {
    let q = QlibDir::open(dir)?;
    let instruments = q.instruments("all")?;
    let bar = progress(instruments.len(), "reading");
    let batches = instruments
        .par_iter()
        .map(|i| {
            let series = q.load_bars(&i.symbol)?;
            bar.inc(1);
            Ok((i.symbol.clone(), store::bars_from_qlib(&series)))
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    batches
}
