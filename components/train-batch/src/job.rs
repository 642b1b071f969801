//! A training job, the same whether the train-batch component runs it (small jobs, one thread) or the host's
//! `stockops train` does (all cores): validate the spec, build the segments from the feature store, train
//! (or search and keep the best), score the test segment, export ONNX, and register the version. The job's
//! row records its spec, status and result; the version becomes visible only once everything is written.

use std::ops::ControlFlow;

use chrono::{NaiveDate, Utc};
use features::store::{self, NamedSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use stockops_core::{Database, KeyValue, StorageError, now_rfc3339};
use thiserror::Error;

use crate::gbdt::{self, Booster, Params, RoundEval, StopReason};
use crate::hpo::{Search, Trial};
use crate::metrics::signal_report;
use crate::reference::Reference;
use crate::registry::{self, Artifact, NewVersion, RegistryError};
use crate::training_data::{self, DataError, Segments, TrainingData};

/// The label every job learns (Qlib's LABEL0).
pub const LABEL: &str = "Ref($close, -2) / Ref($close, -1) - 1";

/// Artifact kind of the booster JSON (per-node cover for TreeSHAP, exact native scores).
pub const BOOSTER: &str = "booster";

/// What to train: the body of `POST /api/train` and the file of `stockops train --config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Registry name of the model; each job adds a version.
    pub model: String,
    /// Feature set (built in or defined with `PUT /api/features/sets/{name}`).
    #[serde(default = "default_feature_set")]
    pub feature_set: String,
    /// Symbols to train on; empty means every stored symbol.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Train / valid / test date ranges.
    pub segments: Segments,
    /// LightGBM parameters (names or aliases).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Optional hyper-parameter search over some of the parameters.
    #[serde(default)]
    pub search: Option<Search>,
}

fn default_feature_set() -> String {
    "alpha158".into()
}

/// Why a job did not produce a version.
#[derive(Debug, Error)]
pub enum JobError {
    /// The spec is invalid: nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The data for the segments cannot be built: nothing was written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training ran and failed, or was interrupted: the job is recorded as failed, no version is visible.
    #[error("job {job} failed: {message}")]
    Failed {
        /// Job id.
        job: String,
        /// What failed.
        message: String,
    },
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StorageError> for JobError {
    fn from(e: StorageError) -> Self {
        JobError::Registry(RegistryError::Storage(e))
    }
}

impl JobSpec {
    /// Parses a JSON spec, naming the field at fault.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JobError> {
        serde_json::from_slice(bytes).map_err(|e| JobError::Invalid(format!("job spec: {e}")))
    }

    /// The parameters training uses: the given ones under their canonical names, plus Qlib's workflow
    /// defaults where absent (1000 rounds, early stopping after 50 rounds without improvement).
    pub fn effective_params(&self) -> Result<Map<String, Value>, JobError> {
        let mut out = Map::new();
        for (given, value) in &self.params {
            let name = gbdt::canonical_name(given)
                .ok_or_else(|| JobError::Invalid(format!("params.{given}: unknown parameter")))?;
            if out.insert(name.to_string(), value.clone()).is_some() {
                return Err(JobError::Invalid(format!("params.{given}: {name} is given twice (under two names)")));
            }
        }
        out.entry("num_boost_round").or_insert(1000.into());
        out.entry("early_stopping_rounds").or_insert(50.into());
        Params::from_map(&out).map_err(|e| JobError::Invalid(format!("params: {e}")))?;
        Ok(out)
    }

    /// Checks everything that can be checked before reading data.
    pub fn validate(&self) -> Result<Map<String, Value>, JobError> {
        registry::check_model_name(&self.model).map_err(|e| JobError::Invalid(e.to_string()))?;
        self.segments.validate()?;
        let params = self.effective_params()?;
        if let Some(search) = &self.search {
            for name in search.space.keys() {
                match gbdt::canonical_name(name) {
                    Some(c) if c == name => {}
                    Some(c) => return Err(JobError::Invalid(format!("search.space.{name}: use the name {c}"))),
                    None => return Err(JobError::Invalid(format!("search.space.{name}: unknown parameter"))),
                }
            }
            search.validate(&params).map_err(JobError::Invalid)?;
        }
        Ok(params)
    }

    /// The same spec with its segments moved forward so the test segment ends at `newest` (for retraining on
    /// the newest data); unchanged when the data is not newer.
    pub fn shifted_to(&self, newest: NaiveDate) -> JobSpec {
        let days = (newest - self.segments.test.to).num_days();
        if days <= 0 {
            return self.clone();
        }
        let shift = |d: NaiveDate| d + chrono::Duration::days(days);
        let mut spec = self.clone();
        for s in [&mut spec.segments.train, &mut spec.segments.valid, &mut spec.segments.test] {
            s.from = shift(s.from);
            s.to = shift(s.to);
        }
        spec
    }
}

/// What a running job reports, for progress bars and logs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The data is built.
    Data {
        /// Rows in train / valid / test.
        rows: [usize; 3],
        /// Number of features.
        features: usize,
    },
    /// One boosting round finished (of `trial` when searching).
    Round {
        /// Search trial, if any.
        trial: Option<&'a Trial>,
        /// The round's metrics.
        eval: &'a RoundEval,
        /// Round budget of this training run.
        max_rounds: usize,
    },
}

/// A job as stored and reported.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The version it registered (or tried to).
    pub version: Option<i64>,
    /// `api`, `cli` or `cron`.
    pub trigger: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub created_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The spec it ran.
    pub spec: Value,
    /// Metrics, search trials and training summary.
    pub result: Value,
}

/// Reads a job by id.
pub fn get_job(db: &impl Database, id: &str) -> Result<JobRecord, RegistryError> {
    let rows = db.execute(
        "SELECT id, model_name, status, version, trigger, created_at, finished_at, error, spec, result \
         FROM train_jobs WHERE id = ?",
        &[id.into()],
    )?;
    if rows.rows.is_empty() {
        return Err(RegistryError::NotFound(format!("no training job {id}")));
    }
    let text = |c: &str| rows.text(0, c).map(str::to_string);
    let json = |c: &str| rows.text(0, c).and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
    Ok(JobRecord {
        id: id.into(),
        model: text("model_name").unwrap_or_default(),
        status: text("status").unwrap_or_default(),
        version: rows.i64(0, "version"),
        trigger: text("trigger"),
        created_at: text("created_at").unwrap_or_default(),
        finished_at: text("finished_at"),
        error: text("error"),
        spec: json("spec"),
        result: json("result"),
    })
}

/// Runs `spec` to a registered version. Spec and data problems return before anything is written; a
/// failure or interruption after that (when `progress` breaks) leaves the job `failed` and no visible version.
pub fn run(
    db: &impl Database,
    kv: &impl KeyValue,
    spec: &JobSpec,
    trigger: &str,
    mut progress: impl FnMut(Progress) -> ControlFlow<()>,
) -> Result<JobRecord, JobError> {
    let params = spec.validate()?;
    let set = match NamedSet::builtin(&spec.feature_set) {
        Some(set) => set,
        None => store::resolve_set(kv, &spec.feature_set)
            .map_err(DataError::from)?
            .ok_or_else(|| JobError::Invalid(format!("feature_set: no feature set named {}", spec.feature_set)))?,
    };
    let data = training_data::build(db, &set, &spec.symbols, &spec.segments)?;
    let _ = progress(Progress::Data {
        rows: [data.train.data.num_rows(), data.valid.data.num_rows(), data.test.data.num_rows()],
        features: data.train.data.num_features(),
    });

    let created_at = now_rfc3339();
    let id = job_id(&spec.model, &created_at);
    let spec_json = serde_json::to_value(spec).expect("a spec serialises");
    let version = registry::begin_version(
        db,
        &NewVersion {
            name: &spec.model,
            job_id: &id,
            feature_set: set.name(),
            feature_set_version: &set.version(),
            data_from: &spec.segments.train.from.to_string(),
            data_to: &spec.segments.test.to.to_string(),
        },
    )?;
    db.execute(
        "INSERT INTO train_jobs (id, model_name, status, created_at, spec, version, trigger) \
         VALUES (?, ?, 'running', ?, ?, ?, ?)",
        &[
            id.clone().into(),
            spec.model.clone().into(),
            created_at.into(),
            spec_json.to_string().into(),
            version.into(),
            trigger.into(),
        ],
    )?;

    match train_and_register(db, spec, &params, &set, &data, version, &mut progress) {
        Ok(result) => {
            db.execute(
                "UPDATE train_jobs SET status = 'succeeded', finished_at = ?, result = ? WHERE id = ?",
                &[now_rfc3339().into(), result.to_string().into(), id.clone().into()],
            )?;
        }
        Err(message) => {
            // Record the failure; the error the caller sees is the training one even if recording also fails.
            let _ = registry::fail_version(db, &spec.model, version, &message);
            let _ = db.execute(
                "UPDATE train_jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                &[now_rfc3339().into(), message.clone().into(), id.clone().into()],
            );
            return Err(JobError::Failed { job: id, message });
        }
    }
    Ok(get_job(db, &id)?)
}

/// Trains (or searches), scores the test segment, and writes the version's artifacts and card.
fn train_and_register(
    db: &impl Database,
    spec: &JobSpec,
    params: &Map<String, Value>,
    set: &NamedSet,
    data: &TrainingData,
    version: i64,
    progress: &mut impl FnMut(Progress) -> ControlFlow<()>,
) -> Result<Value, String> {
    let (booster, params, trials) = match &spec.search {
        Some(search) => {
            let outcome = search
                .run(params, &data.train.data, &data.valid.data, |trial, eval| {
                    progress(Progress::Round { trial: Some(trial), eval, max_rounds: trial.rounds })
                })
                .map_err(|e| e.to_string())?;
            (outcome.booster, outcome.params, outcome.trials)
        }
        None => {
            let p = Params::from_map(params).map_err(|e| e.to_string())?;
            let booster = gbdt::train(&p, &data.train.data, Some(&data.valid.data), |eval| {
                progress(Progress::Round { trial: None, eval, max_rounds: p.num_boost_round })
            })
            .map_err(|e| e.to_string())?;
            (booster, params.clone(), Vec::new())
        }
    };
    if booster.info().stop_reason == StopReason::Callback {
        return Err("interrupted".into());
    }
    let predictions = booster.predict_dataset(&data.test.data).map_err(|e| e.to_string())?;
    let report = signal_report(&data.test.dates, &predictions, data.test.data.labels()).map_err(|e| e.to_string())?;
    let days = report.daily.iter().filter(|d| d.ic.is_some()).count();
    let metrics = json!({
        "test": {
            "mse": report.mse, "ic": report.ic, "ic_std": report.ic_std, "icir": report.icir,
            "rank_ic": report.rank_ic, "rank_ic_std": report.rank_ic_std, "rank_icir": report.rank_icir,
            "rows": data.test.data.num_rows(), "days_with_ic": days,
        },
        "valid": { "l2": booster.info().valid_metric, "rows": data.valid.data.num_rows() },
        "train": { "rows": data.train.data.num_rows() },
        "rounds": booster.info().rounds,
        "best_iteration": booster.info().best_iteration,
        "stop_reason": booster.info().stop_reason,
        "trials": trials.len(),
    });
    let onnx = crate::onnx::export(&booster);
    let booster_json = serde_json::to_vec(&booster).map_err(|e| e.to_string())?;
    // Monitoring's drift baseline: features and scores of the valid rows (see `reference`).
    let reference = Reference::of_segment("valid", &booster, &data.valid)?;
    let card = card(&booster, spec, set, data, &reference);
    registry::complete_version(
        db,
        &spec.model,
        version,
        &Value::Object(params),
        &metrics,
        &card,
        &[Artifact { kind: registry::ONNX, bytes: &onnx }, Artifact { kind: BOOSTER, bytes: &booster_json }],
    )
    .map_err(|e| e.to_string())?;
    Ok(json!({ "metrics": metrics, "trials": trials }))
}

/// The model card: what a reader needs to use the version without the job.
fn card(booster: &Booster, spec: &JobSpec, set: &NamedSet, data: &TrainingData, reference: &Reference) -> Value {
    let mut importance = booster.feature_importance();
    importance.sort_by(|a, b| b.gain.total_cmp(&a.gain).then_with(|| a.feature.cmp(&b.feature)));
    json!({
        "kind": "stockops-gbdt",
        "objective": booster.objective(),
        "base_score": booster.base_score(),
        "trees": booster.trees().len(),
        "feature_set": set.name(),
        "feature_set_version": set.version(),
        "feature_names": booster.feature_names(),
        "label": LABEL,
        "learn_processors": ["DropnaLabel", "CSZScoreNorm(label)"],
        "symbols": data.symbols,
        "segments": spec.segments,
        "importance": importance,
        "reference": reference,
        "artifacts": {
            "onnx": "ai.onnx.ml TreeEnsembleRegressor; input `features` float32 [N, features], output [N, 1]",
            "booster": "the trees as JSON with per-node cover (TreeSHAP)",
        },
    })
}

/// A job id: UTC start time plus a hash of the model name and the exact clock, unique per start.
fn job_id(model: &str, created_at: &str) -> String {
    let now = Utc::now();
    let hash = Sha256::digest(format!("{model}\0{created_at}\0{:?}", now.timestamp_nanos_opt()));
    format!("job-{}-{}", now.format("%Y%m%dT%H%M%SZ"), &hex::encode(hash)[..8])
}

/// The newest ready version's spec that a scheduled retrain repeats: the one the `champion` alias of some
/// model points at, most recently moved first. None when no champion was trained by a job.
pub fn champion_spec(db: &impl Database) -> Result<Option<JobSpec>, RegistryError> {
    let rows = db.execute(
        "SELECT j.spec FROM model_aliases a \
         JOIN model_versions v ON v.name = a.name AND v.version = a.version AND v.status = 'ready' \
         JOIN train_jobs j ON j.id = v.job_id \
         WHERE a.alias = 'champion' ORDER BY a.updated_at DESC LIMIT 1",
        &[],
    )?;
    Ok(rows.text(0, "spec").and_then(|t| serde_json::from_str(t).ok()))
}

/// The scheduled retrain: the champion's spec on the newest data, registered and made `challenger` (never
/// champion: promotion stays a decision). Ok(None) when there is no champion trained by a job.
pub fn retrain_champion(db: &impl Database, kv: &impl KeyValue) -> Result<Option<JobRecord>, JobError> {
    let Some(spec) = champion_spec(db)? else {
        return Ok(None);
    };
    let newest = store::newest_date(db)?.unwrap_or(spec.segments.test.to);
    let spec = spec.shifted_to(newest);
    let job = run(db, kv, &spec, "cron", |_| ControlFlow::Continue(()))?;
    if let Some(v) = job.version {
        registry::set_alias(db, &spec.model, "challenger", v, "cron", Some("scheduled retrain on the newest data"))?;
    }
    Ok(Some(job))
}

impl From<JobError> for stockops_core::ApiError {
    fn from(e: JobError) -> Self {
        use stockops_core::ApiError;
        match e {
            JobError::Invalid(_) | JobError::Data(DataError::Segments(_)) => {
                ApiError::bad_request("invalid_job", e.to_string())
            }
            JobError::Data(DataError::Store(s)) => ApiError::internal(s.to_string()),
            JobError::Data(_) => ApiError::bad_request("invalid_data", e.to_string()),
            JobError::Failed { .. } => ApiError::new(422, "training_failed", e.to_string()),
            JobError::Registry(r) => r.into(),
        }
    }
}
