//! `stockops features`: one feature set for every symbol in the database, into one CSV or Parquet file
//! (`symbol,date,<features…>`), computed in parallel across symbols with the library the component uses.

use super::{StoreArgs, progress};
use crate::parquet_out::ParquetFeatures;
use anyhow::{Context, Result};
use chrono::NaiveDate;
use features::store::{self, FeatureMatrix};
use rayon::prelude::*;
use std::path::PathBuf;

/// Arguments of `stockops features`.
#[derive(clap::Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// Feature set: alpha158, alpha360, technical, label, or one defined with PUT /api/features/sets/{name}.
    #[arg(long, default_value = "alpha158")]
    set: String,
    /// Output file: Parquet when it ends in .parquet, else CSV.
    #[arg(long)]
    out: PathBuf,
    /// First date written (features still see the history before it).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Last date written; later bars are not read.
    #[arg(long)]
    to: Option<NaiveDate>,
}

/// Computes and writes the features; prints what was written.
pub async fn run(args: FeaturesArgs) -> Result<()> {
    let stores = args.stores.open().await?;
    let FeaturesArgs { set, out, from, to, .. } = args;
    stores
        .blocking(move |db, kv| {
            let set = store::resolve_set(kv, &set)?.with_context(|| format!("no feature set {set:?}"))?;
            let symbols = store::list_symbols(db)?;
            let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut w = if out.extension().is_some_and(|x| x.eq_ignore_ascii_case("parquet")) {
                Output::Parquet(ParquetFeatures::create(file, &set.names())?)
            } else {
                let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
                w.write_record(["symbol", "date"].into_iter().map(String::from).chain(set.names()))?;
                Output::Csv(w)
            };
            let bar = progress(symbols.len(), "features");
            let mut rows = 0;
            // A few symbols per thread at a time: parallel, with memory bounded by the chunk.
            for chunk in symbols.chunks(rayon::current_num_threads() * 2) {
                let series =
                    chunk.iter().map(|s| store::load_series(db, &s.symbol, to)).collect::<Result<Vec<_>, _>>()?;
                let matrices = series
                    .par_iter()
                    .map(|s| {
                        let m = set.compute(s).with_context(|| s.symbol.clone())?;
                        bar.inc(1);
                        Ok(m.slice(from, to))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let batch: Vec<(&str, &FeatureMatrix)> =
                    chunk.iter().map(|s| s.symbol.as_str()).zip(&matrices).collect();
                w.write(&batch)?;
                rows += matrices.iter().map(|m| m.dates.len()).sum::<usize>();
            }
            w.finish().with_context(|| format!("cannot write {}", out.display()))?;
            bar.finish_and_clear();
            println!(
                "wrote {rows} rows of {} features ({} {}) for {} symbols to {}",
                set.names().len(),
                set.name(),
                &set.version()[..12],
                symbols.len(),
                out.display()
            );
            Ok(())
        })
        .await
}

/// Where the rows go.
enum Output {
    Csv(csv::Writer<std::io::BufWriter<std::fs::File>>),
    Parquet(ParquetFeatures),
}

impl Output {
    /// Writes a batch of symbols' matrices (one Parquet row group).
    fn write(&mut self, batch: &[(&str, &FeatureMatrix)]) -> Result<()> {
        match self {
            Output::Csv(w) => batch.iter().try_for_each(|(s, m)| m.write_csv_rows(w, Some(s))).map_err(Into::into),
            Output::Parquet(p) => p.write_group(batch),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Csv(mut w) => Ok(w.flush()?),
            Output::Parquet(p) => p.finish(),
        }
    }
}
