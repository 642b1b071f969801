//! `stockops train --config JOB.toml`: the train-batch job natively, on all cores, into the same registry the
//! component writes. The file holds the same fields as `POST /api/train`'s JSON body; TOML dates may be
//! bare (`from = 2010-01-01`) or quoted. Ctrl-C interrupts the job: it is recorded as failed and no version
//! becomes visible.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use train_batch::job::{self, JobSpec, Progress};
use train_batch::registry;

use super::{StoreArgs, progress};

/// Arguments of `stockops train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// The job spec (TOML): model, feature_set, symbols, segments, params, search.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Worker threads (default: every core); overrides `num_threads` in the file.
    #[arg(long)]
    threads: Option<usize>,
    /// Point this alias (e.g. `champion`) at the new version once it is registered.
    #[arg(long)]
    promote: Option<String>,
}

/// Runs the job and prints its record as JSON on stdout.
pub async fn run(args: TrainArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let mut spec = parse_spec(&text).with_context(|| format!("{}", args.config.display()))?;
    if let Some(t) = args.threads {
        spec.params.retain(|k, _| train_batch::gbdt::canonical_name(k) != Some("num_threads"));
        spec.params.insert("num_threads".into(), t.into());
    }
    if let Some(alias) = &args.promote {
        registry::check_alias(alias)?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupt: stopping after this round");
            flag.store(true, Ordering::SeqCst);
        }
    });
    let stores = args.stores.open().await?;
    let promote = args.promote.clone();
    let record = stores
        .blocking(move |db, kv| {
            let bar = progress(0, "training");
            let mut last_trial = None;
            let mut label = String::from("rounds");
            let result = job::run(db, kv, &spec, "cli", |p| {
                match p {
                    Progress::Data { rows, features } => bar.println(format!(
                        "data: {} train, {} valid, {} test rows × {features} features",
                        rows[0], rows[1], rows[2]
                    )),
                    Progress::Round { trial, eval, max_rounds } => {
                        let id = trial.map(|t| (t.trial, t.rung));
                        if id != last_trial || bar.length() != Some(max_rounds as u64) {
                            last_trial = id;
                            bar.set_length(max_rounds as u64);
                            bar.reset();
                            label = match trial {
                                Some(t) => format!("trial {} rung {}", t.trial, t.rung),
                                None => "rounds".into(),
                            };
                        }
                        bar.set_position(eval.round as u64);
                        let valid = eval.valid_metric.map(|v| format!(" valid l2 {v:.6}")).unwrap_or_default();
                        bar.set_message(format!("{label}{valid}"));
                    }
                }
                if interrupted.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            });
            bar.finish_and_clear();
            let record = result?;
            if let (Some(alias), Some(v)) = (&promote, record.version) {
                registry::set_alias(db, &record.model, alias, v, "cli", Some("stockops train --promote"))?;
            }
            Ok(record)
        })
        .await?;
    let test = &record.result["metrics"]["test"];
    eprintln!(
        "registered {} v{} (job {}): test MSE {} IC {} Rank IC {} ICIR {}",
        record.model,
        record.version.unwrap_or(0),
        record.id,
        test["mse"],
        test["ic"],
        test["rank_ic"],
        test["icir"]
    );
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}

/// Reads a TOML job spec into the JSON schema the API takes (bare TOML dates become ISO strings).
pub fn parse_spec(text: &str) -> Result<JobSpec> {
    let value: toml::Value = toml::from_str(text)?;
    let json = toml_to_json(value)?;
    Ok(serde_json::from_value(json).map_err(|e| job::JobError::Invalid(format!("job spec: {e}")))?)
}

fn toml_to_json(v: toml::Value) -> Result<Value> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => {
            if d.time.is_some() || d.offset.is_some() {
                bail!("{d}: segment bounds are dates (YYYY-MM-DD), not times");
            }
            Value::String(d.to_string())
        }
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect::<Result<_>>()?),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| Ok((k, toml_to_json(v)?))).collect::<Result<Map<_, _>>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use train_batch::job::JobError;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_job_is_recorded_failed_and_leaves_no_visible_version() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("rc.toml");
        std::fs::write(
            &rc,
            format!(
                "[sqlite_database.default]\ntype = \"spin\"\npath = \"{0}/db.sqlite\"\n\
                 [key_value_store.default]\ntype = \"spin\"\npath = \"{0}/kv.db\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let args = StoreArgs { manifest: dir.path().join("spin.toml"), runtime_config: Some(rc) };
        let stores = args.open().await.unwrap();
        stores
            .blocking(|db, kv| {
                let csv =
                    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/reference/us4_ohlcv.csv"))?;
                features::store::upsert_bars(db, &features::ingest::parse_csv(&csv, None)?)?;
                let spec = parse_spec(
                    "model = \"m\"\n[segments]\ntrain = { from = 2005-01-01, to = 2009-12-31 }\n\
                     valid = { from = 2010-01-01, to = 2010-12-31 }\ntest = { from = 2011-01-01, to = 2012-12-31 }\n",
                )?;
                let err = job::run(db, kv, &spec, "cli", |p| match p {
                    Progress::Round { eval, .. } if eval.round >= 3 => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                })
                .unwrap_err();
                let JobError::Failed { job: id, message } = err else { panic!("expected a failed job, got {err}") };
                assert_eq!(message, "interrupted");
                assert_eq!(job::get_job(db, &id)?.status, "failed");
                let versions = registry::list_versions(db, "m")?;
                assert_eq!((versions.len(), versions[0].status.as_str()), (1, "failed"));
                assert!(registry::read_artifact(db, "m", 1, registry::ONNX).is_err());
                assert_eq!(registry::list_models(db)?[0].ready_versions, 0);
                assert!(registry::set_alias(db, "m", "champion", 1, "test", None).is_err());
                Ok(())
            })
            .await
            .unwrap();
    }

    #[test]
    fn toml_specs_take_bare_dates_and_refuse_unknown_fields() {
        let spec = parse_spec(
            r#"
            model = "alpha"
            symbols = ["AAPL", "MSFT"]
            [segments]
            train = { from = 2008-01-01, to = "2010-12-31" }
            valid = { from = 2011-01-01, to = 2011-12-31 }
            test = { from = 2012-01-01, to = 2013-02-28 }
            [params]
            num_leaves = 15
            colsample_bytree = 0.8
            [search]
            max_trials = 4
            space.learning_rate = { low = 0.01, high = 0.2, log = true }
            "#,
        )
        .unwrap();
        assert_eq!(spec.segments.train.from.to_string(), "2008-01-01");
        assert_eq!(spec.feature_set, "alpha158");
        assert_eq!(spec.search.unwrap().max_trials, 4);
        let err = parse_spec("model = \"m\"\nsegmentz = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("segmentz"), "{err:#}");
        let err = parse_spec("model = \"m\"\n[segments]\ntrain = { from = 2008-01-01T10:00:00, to = 2009-01-01 }\n")
            .unwrap_err();
        assert!(format!("{err:#}").contains("dates"), "{err:#}");
    }
}
