//! Serving, over the storage seam: resolve which model version answers (an alias, or an experiment's sticky
//! champion/challenger split), load it in its pre-planned form, read each symbol's feature row from the
//! store, score, rank, explain with TreeSHAP, and log every prediction.
//!
//! Loading cost: Spin builds a fresh instance per request, so nothing survives between requests. Parsing the
//! ONNX artifact and planning it through tract costs far more than scoring, so the compact [`Plan`] built
//! from the ONNX artifact (the source of truth) is cached in the key-value store under the artifact's
//! sha256, with the feature names (so a request never parses the model card); a cache miss rebuilds it.
//! The plan is scored in place from those bytes. Graphs that are not a single tree ensemble or linear
//! regressor run through tract on every request. TreeSHAP's tables are cached the same way, built from
//! the booster artifact (which, as JSON with per-node covers, is far slower to read). Feature rows are read
//! from the cache by the set version the model was trained on; the set itself (parsing 158 expressions)
//! is built only when a row has to be computed.

use std::time::Instant;

use chrono::NaiveDate;
use features::store::{self, CachePolicy, NamedSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stockops_core::{ApiError, Database, KeyValue, SqlValue, StorageError, now_rfc3339};
use train_batch::gbdt::Booster;
use train_batch::job::BOOSTER;
use train_batch::registry::{self, ONNX};

use crate::ab::{self, Variant};
use crate::model::{Plan, TractModel};
use crate::shap::{Explainer, Explanation, FeatureContribution, top_k};

/// Key-value prefix of cached models (plan and feature names).
pub const MODEL_PREFIX: &str = "predict/model/";

/// Key-value prefix of cached TreeSHAP tables.
pub const SHAP_PREFIX: &str = "predict/shap/";

/// How long computed feature rows stay cached (a new bar or re-ingest drops them sooner).
pub const FEATURE_TTL_SECS: u64 = 86_400;

/// Most symbols or rows one request may score.
pub const MAX_ROWS: usize = 5_000;

/// A request to score: symbols on a date (features from the store) or raw feature rows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Registry model name; default: the model whose `champion` alias moved last.
    #[serde(default)]
    pub model: Option<String>,
    /// Alias to serve when the model has no experiment (default `champion`).
    #[serde(default)]
    pub alias: Option<String>,
    /// Symbols to score; empty with no `rows` means every symbol with a bar on the date.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Date of the features; default: the newest bar date in the store.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// Raw rows instead of symbols: `{"symbol"?: ..., "features": {name: value} | [values]}`.
    #[serde(default)]
    pub rows: Vec<RawRow>,
    /// Add TreeSHAP contributions.
    #[serde(default)]
    pub explain: bool,
    /// How many contributions to return per prediction (by |contribution|).
    #[serde(default)]
    pub top: Option<usize>,
    /// Score rows with undefined features (the model's learned NaN directions) instead of refusing them.
    #[serde(default)]
    pub allow_missing: bool,
    /// Sticky assignment key for experiments (default: the symbol).
    #[serde(default)]
    pub client: Option<String>,
}

/// One raw feature row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRow {
    /// Optional label for the row.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Values by feature name, or in the model's feature order.
    pub features: Value,
}

/// One scored row.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Symbol (or the raw row's label).
    pub symbol: Option<String>,
    /// Feature date.
    pub date: Option<NaiveDate>,
    /// The model's score.
    pub score: f64,
    /// 1 = highest score among the answered rows.
    pub rank: usize,
    /// Share of answered rows scoring at or below this one.
    pub percentile: f64,
    /// Model version that scored it.
    pub version: i64,
    /// Alias or experiment variant that chose the version.
    pub variant: String,
    /// TreeSHAP, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<ExplanationOut>,
}

/// TreeSHAP in an answer.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationOut {
    /// Expected model output over the training data (the base of the contributions).
    pub expected_value: f64,
    /// Contributions by |value|, largest first.
    pub top: Vec<FeatureContribution>,
}

/// The answer to a predict request.
#[derive(Debug, Clone, Serialize)]
pub struct PredictAnswer {
    /// Model name.
    pub model: String,
    /// Feature date (None for raw rows).
    pub date: Option<NaiveDate>,
    /// The experiment that split traffic, if any.
    pub experiment: Option<String>,
    /// Scored rows, by rank.
    pub predictions: Vec<Prediction>,
    /// Symbols of the universe left out, with why (only when no symbols were named).
    pub skipped: Vec<Skipped>,
    /// Time spent in each phase, microseconds.
    pub timing_us: Timing,
}

/// A symbol left out of a universe request.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Symbol.
    pub symbol: String,
    /// Why.
    pub reason: String,
}

/// The in-component breakdown of a request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Resolving aliases and loading model plans.
    pub model_load: u64,
    /// Reading (or computing) feature rows.
    pub features: u64,
    /// Scoring.
    pub scoring: u64,
    /// TreeSHAP.
    pub explain: u64,
    /// Writing the prediction log.
    pub log: u64,
}

/// A model version ready to score.
pub struct LoadedModel {
    /// Version number.
    pub version: i64,
    /// Feature names in input order.
    pub feature_names: Vec<String>,
    /// Feature set the version was trained on (None for imported models with no set).
    pub feature_set: Option<String>,
    /// That set's version hash at training time.
    pub feature_set_version: Option<String>,
    scorer: Scorer,
    artifact_sha256: String,
}

enum Scorer {
    Plan(Plan),
    Tract(TractModel),
}

impl LoadedModel {
    /// Scores row-major f64 rows (cast to f32, as ONNX takes them).
    pub fn score(&self, rows: &[f64]) -> Result<Vec<f64>, ApiError> {
        let input: Vec<f32> = rows.iter().map(|&x| x as f32).collect();
        let out = match &self.scorer {
            Scorer::Plan(p) => p.predict(&input).map_err(|e| ApiError::internal(format!("scoring: {e}")))?,
            Scorer::Tract(t) => t
                .predict(&input, self.feature_names.len())
                .map_err(|e| ApiError::internal(format!("scoring with tract: {e:#}")))?,
        };
        Ok(out.into_iter().map(f64::from).collect())
    }
}

/// Loads `name` v`version`: its registry row, then its plan and feature names from the cache (one entry,
/// keyed by the ONNX artifact's sha256), else the plan built from the ONNX artifact and the names from the
/// card, cached for the next request.
pub fn load_model(db: &impl Database, kv: &impl KeyValue, name: &str, version: i64) -> Result<LoadedModel, ApiError> {
    let record = db.execute(
        "SELECT status, feature_set, feature_set_version, artifact_sha256 FROM model_versions \
         WHERE name = ? AND version = ?",
        &[name.into(), version.into()],
    )?;
    if record.rows.is_empty() {
        return Err(ApiError::not_found(format!("model {name} has no version {version}")));
    }
    let status = record.text(0, "status").unwrap_or_default();
    if status != "ready" {
        return Err(ApiError::not_found(format!("model {name} v{version} is not ready ({status})")));
    }
    let sha = record.text(0, "artifact_sha256").unwrap_or_default().to_string();
    let feature_set = record.text(0, "feature_set").map(str::to_string);
    let feature_set_version = record.text(0, "feature_set_version").map(str::to_string);
    let loaded = |feature_names, scorer| LoadedModel {
        version,
        feature_names,
        feature_set: feature_set.clone(),
        feature_set_version: feature_set_version.clone(),
        scorer,
        artifact_sha256: sha.clone(),
    };
    let key = format!("{MODEL_PREFIX}{sha}");
    if let Some((names, plan)) = kv.get_cached(&key).and_then(decode_cached_model) {
        return Ok(loaded(names, Scorer::Plan(plan)));
    }
    // The card also holds importances and the drift reference (tens of KB): SQL extracts only the names.
    let names = db.execute(
        "SELECT json_extract(card, '$.feature_names') AS names FROM model_versions WHERE name = ? AND version = ?",
        &[name.into(), version.into()],
    )?;
    let feature_names: Vec<String> =
        names.text(0, "names").and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let onnx = registry::read_artifact(db, name, version, ONNX)?;
    let scorer = match Plan::from_onnx(&onnx) {
        Ok(plan) => {
            kv.set_cached(&key, &encode_cached_model(&feature_names, &plan));
            Scorer::Plan(plan)
        }
        // Not a single ensemble or linear node: run the graph through tract.
        Err(_) => Scorer::Tract(
            TractModel::load_with_features(&onnx, feature_names.len())
                .map_err(|e| ApiError::internal(format!("loading {name} v{version} with tract: {e:#}")))?,
        ),
    };
    Ok(loaded(feature_names, scorer))
}

/// A cached model: the plan bytes, the feature names as JSON, then the names' length (u32 LE), so that
/// reading it truncates the buffer to the plan instead of copying it.
fn encode_cached_model(names: &[String], plan: &Plan) -> Vec<u8> {
    let json = serde_json::to_vec(names).expect("strings serialise");
    let mut out = plan.to_bytes();
    out.extend_from_slice(&json);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out
}

fn decode_cached_model(mut bytes: Vec<u8>) -> Option<(Vec<String>, Plan)> {
    let len_at = bytes.len().checked_sub(4)?;
    let json_len = u32::from_le_bytes(bytes[len_at..].try_into().ok()?) as usize;
    let json_at = len_at.checked_sub(json_len)?;
    let names = serde_json::from_slice(&bytes[json_at..len_at]).ok()?;
    bytes.truncate(json_at);
    Some((names, Plan::from_bytes(bytes).ok()?))
}

/// The model whose `champion` alias moved most recently.
pub fn default_model(db: &impl Database) -> Result<String, ApiError> {
    let rows =
        db.execute("SELECT name FROM model_aliases WHERE alias = 'champion' ORDER BY updated_at DESC LIMIT 1", &[])?;
    rows.text(0, "name").map(str::to_string).ok_or_else(|| {
        ApiError::not_found("no model has a champion: train one and PUT /api/models/{name}/aliases/champion")
    })
}

/// An experiment: a model's traffic split between two aliases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiment {
    /// Experiment name.
    pub name: String,
    /// Model whose traffic it splits.
    pub model: String,
    /// Alias serving the champion share.
    pub champion_alias: String,
    /// Alias serving the challenger share.
    pub challenger_alias: String,
    /// Share of keys sent to the challenger, in [0, 1].
    pub challenger_share: f64,
}

/// The model's experiment, if one is defined.
pub fn experiment_of(db: &impl Database, model: &str) -> Result<Option<Experiment>, StorageError> {
    let rows = db.execute(
        "SELECT name, model, champion_alias, challenger_alias, challenger_share FROM experiments WHERE model = ?",
        &[model.into()],
    )?;
    Ok(experiment_at(&rows, 0))
}

fn experiment_at(rows: &stockops_core::Rows, i: usize) -> Option<Experiment> {
    Some(Experiment {
        name: rows.text(i, "name")?.to_string(),
        model: rows.text(i, "model")?.to_string(),
        champion_alias: rows.text(i, "champion_alias")?.to_string(),
        challenger_alias: rows.text(i, "challenger_alias")?.to_string(),
        challenger_share: rows.f64(i, "challenger_share")?,
    })
}

/// Every experiment, by name.
pub fn list_experiments(db: &impl Database) -> Result<Vec<Experiment>, StorageError> {
    let rows = db.execute(
        "SELECT name, model, champion_alias, challenger_alias, challenger_share FROM experiments ORDER BY name",
        &[],
    )?;
    Ok((0..rows.rows.len()).filter_map(|i| experiment_at(&rows, i)).collect())
}

/// Creates or replaces an experiment (one per model).
pub fn put_experiment(db: &impl Database, e: &Experiment) -> Result<(), ApiError> {
    registry::check_model_name(&e.model)?;
    registry::check_alias(&e.champion_alias)?;
    registry::check_alias(&e.challenger_alias)?;
    if !(0.0..=1.0).contains(&e.challenger_share) {
        return Err(ApiError::bad_request("invalid", "challenger_share must be between 0 and 1"));
    }
    if e.champion_alias == e.challenger_alias {
        return Err(ApiError::bad_request("invalid", "champion_alias and challenger_alias must differ"));
    }
    let now = now_rfc3339();
    db.transaction(|tx| {
        tx.execute(
            "DELETE FROM experiments WHERE model = ? AND name <> ?",
            &[e.model.clone().into(), e.name.clone().into()],
        )?;
        tx.execute(
            "INSERT INTO experiments (name, model, champion_alias, challenger_alias, challenger_share, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET model = excluded.model, \
             champion_alias = excluded.champion_alias, challenger_alias = excluded.challenger_alias, \
             challenger_share = excluded.challenger_share, updated_at = excluded.updated_at",
            &[
                e.name.clone().into(),
                e.model.clone().into(),
                e.champion_alias.clone().into(),
                e.challenger_alias.clone().into(),
                e.challenger_share.into(),
                now.clone().into(),
                now.into(),
            ],
        )?;
        Ok(())
    })?;
    Ok(())
}

/// A row to score and where it came from.
struct Pending {
    symbol: Option<String>,
    date: Option<NaiveDate>,
    values: Vec<f64>,
    /// `store::row_sha256` of the values, for the log.
    sha256: [u8; 32],
    variant: String,
    version: i64,
}

/// Serves one request: resolve versions, read features, score, rank, explain, log.
pub fn predict(
    db: &impl Database,
    kv: &impl KeyValue,
    req: &PredictRequest,
    now_unix: u64,
) -> Result<PredictAnswer, ApiError> {
    let started = Instant::now();
    let mut timing = Timing::default();
    let model = match &req.model {
        Some(m) => m.clone(),
        None => default_model(db)?,
    };
    let experiment = experiment_of(db, &model)?;
    let alias = req.alias.clone().unwrap_or_else(|| "champion".into());
    // Which alias answers for a key: the experiment's sticky split, else the requested alias.
    let choose = |key: &str| -> Result<String, ApiError> {
        match &experiment {
            Some(e) => {
                match ab::assign(&e.name, key, e.challenger_share).map_err(|err| ApiError::internal(err.to_string()))? {
                    Variant::Champion => Ok(e.champion_alias.clone()),
                    Variant::Challenger => Ok(e.challenger_alias.clone()),
                }
            }
            None => Ok(alias.clone()),
        }
    };
    let mut versions = Versions::default();

    let mut pending: Vec<Pending> = Vec::new();
    let mut skipped = Vec::new();
    let mut date = None;
    if !req.rows.is_empty() {
        if !req.symbols.is_empty() {
            return Err(ApiError::bad_request("invalid", "give either symbols or rows, not both"));
        }
        if req.rows.len() > MAX_ROWS {
            return Err(ApiError::bad_request("too_many_rows", format!("at most {MAX_ROWS} rows per request")));
        }
        for (i, row) in req.rows.iter().enumerate() {
            let key = req.client.clone().or_else(|| row.symbol.clone()).unwrap_or_else(|| i.to_string());
            let variant = choose(&key)?;
            let loaded = versions.get(db, kv, &model, &variant, &mut timing)?;
            let values = raw_values(&loaded.feature_names, &row.features, i)?;
            check_missing(&loaded.feature_names, &values, req.allow_missing, || format!("rows[{i}]"))?;
            let version = loaded.version;
            let sha256 = store::row_sha256(&values);
            pending.push(Pending { symbol: row.symbol.clone(), date: None, values, sha256, variant, version });
        }
    } else {
        let d = match req.date {
            Some(d) => d,
            None => store::newest_date(db)?.ok_or_else(|| ApiError::new(422, "no_data", "no bars are stored"))?,
        };
        date = Some(d);
        let universe = req.symbols.is_empty();
        let symbols: Vec<String> =
            if universe { symbols_on(db, d)? } else { req.symbols.iter().map(|s| s.to_uppercase()).collect() };
        if symbols.len() > MAX_ROWS {
            return Err(ApiError::bad_request("too_many_rows", format!("at most {MAX_ROWS} symbols per request")));
        }
        let policy = CachePolicy { now: now_unix, ttl_secs: FEATURE_TTL_SECS, refresh: false };
        // Which version answers each symbol, then every cached row in one batch read per feature set version.
        let mut wanted: Vec<(String, String)> = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            let variant = choose(req.client.as_deref().unwrap_or(&symbol))?;
            versions.get(db, kv, &model, &variant, &mut timing)?;
            wanted.push((symbol, variant));
        }
        let t = Instant::now();
        let mut rows: Vec<Option<store::Row>> = vec![None; wanted.len()];
        for (variant, loaded) in &versions.loaded {
            let idx: Vec<usize> = (0..wanted.len()).filter(|&i| wanted[i].1 == *variant).collect();
            let (Some(set_name), false) = (&loaded.feature_set, idx.is_empty()) else { continue };
            let set_version = loaded.feature_set_version.as_deref().unwrap_or_default();
            let names: Vec<&str> = idx.iter().map(|&i| wanted[i].0.as_str()).collect();
            for (&i, row) in idx.iter().zip(store::cached_rows(kv, set_name, set_version, &names, d, policy)) {
                rows[i] = row;
            }
        }
        timing.features += t.elapsed().as_micros() as u64;
        let mut problems = Vec::new();
        let mut sets = Sets::default();
        // Rows computed here, cached after the loop: written each beside its symbol's freshly cached matrix
        // (~500 KB), every row would sit on a 64 KiB page of the store of its own, and a later batch would
        // read a page a row.
        let mut computed: Vec<(String, String, String, store::Row)> = Vec::new();
        for ((symbol, variant), cached) in wanted.into_iter().zip(rows) {
            let loaded = versions.get(db, kv, &model, &variant, &mut timing)?;
            let set_name = loaded.feature_set.clone().ok_or_else(|| {
                ApiError::new(422, "no_feature_set", format!("model {model} has no feature set: send raw rows"))
            })?;
            let set_version = loaded.feature_set_version.clone().unwrap_or_default();
            let t = Instant::now();
            let row = match cached {
                Some(row) => Some(row),
                None => {
                    let set = sets.get(kv, &set_name, &set_version)?;
                    let row = store::compute_row(db, kv, set, &symbol, d, policy)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    if let Some(row) = &row {
                        computed.push((set_name, set_version, symbol.clone(), row.clone()));
                    }
                    row
                }
            };
            timing.features += t.elapsed().as_micros() as u64;
            let Some(store::Row { values, sha256 }) = row else {
                let why = format!("{symbol} has no bar on {d}");
                if universe {
                    skipped.push(Skipped { symbol, reason: why })
                } else {
                    problems.push(why)
                }
                continue;
            };
            let version = loaded.version;
            if let Err(e) =
                check_missing(&loaded.feature_names, &values, req.allow_missing, || format!("{symbol} on {d}"))
            {
                if universe {
                    skipped.push(Skipped { symbol, reason: e.message });
                } else {
                    problems.push(e.message);
                }
                continue;
            }
            pending.push(Pending { symbol: Some(symbol), date: Some(d), values, sha256, variant, version });
        }
        let t = Instant::now();
        for (set_name, set_version, symbol, row) in &computed {
            store::cache_row(kv, set_name, set_version, symbol, d, policy, row);
        }
        timing.features += t.elapsed().as_micros() as u64;
        if !problems.is_empty() {
            return Err(ApiError::new(422, "missing_features", problems.join("; ")));
        }
    }

    // Score per model version, then rank across everything answered.
    let t = Instant::now();
    let mut scores = vec![0.0; pending.len()];
    for (variant, loaded) in &versions.loaded {
        let idx: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].variant == *variant).collect();
        let rows: Vec<f64> = idx.iter().flat_map(|&i| pending[i].values.iter().copied()).collect();
        for (&i, s) in idx.iter().zip(loaded.score(&rows)?) {
            scores[i] = s;
        }
    }
    timing.scoring = t.elapsed().as_micros() as u64;

    let mut explanations: Vec<Option<ExplanationOut>> = vec![None; pending.len()];
    if req.explain {
        let t = Instant::now();
        let k = req.top.unwrap_or(10);
        for (variant, loaded) in &versions.loaded {
            let idx: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].variant == *variant).collect();
            if idx.is_empty() {
                continue;
            }
            let rows: Vec<&[f64]> = idx.iter().map(|&i| pending[i].values.as_slice()).collect();
            for (&i, e) in idx.iter().zip(explain_rows(db, kv, &model, loaded, &rows)?) {
                explanations[i] = Some(ExplanationOut {
                    expected_value: e.expected_value,
                    top: top_k(&e, &loaded.feature_names, &pending[i].values, k),
                });
            }
        }
        timing.explain = t.elapsed().as_micros() as u64;
    }

    let n = pending.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut predictions: Vec<Prediction> = Vec::with_capacity(n);
    for (rank0, &i) in order.iter().enumerate() {
        let p = &pending[i];
        predictions.push(Prediction {
            symbol: p.symbol.clone(),
            date: p.date,
            score: scores[i],
            rank: rank0 + 1,
            percentile: if n > 1 { (n - 1 - rank0) as f64 / (n - 1) as f64 } else { 1.0 },
            version: p.version,
            variant: p.variant.clone(),
            explanation: explanations[i].take(),
        });
    }

    let t = Instant::now();
    let latency_us = started.elapsed().as_micros() as i64;
    log_predictions(db, &model, experiment.as_ref().map(|e| e.name.as_str()), &pending, &scores, latency_us)?;
    timing.log = t.elapsed().as_micros() as u64;
    Ok(PredictAnswer { model, date, experiment: experiment.map(|e| e.name), predictions, skipped, timing_us: timing })
}

/// The versions a request has loaded, by alias.
#[derive(Default)]
struct Versions {
    loaded: Vec<(String, LoadedModel)>,
}

impl Versions {
    fn get(
        &mut self,
        db: &impl Database,
        kv: &impl KeyValue,
        model: &str,
        alias: &str,
        timing: &mut Timing,
    ) -> Result<&LoadedModel, ApiError> {
        let i = match self.loaded.iter().position(|(a, _)| a == alias) {
            Some(i) => i,
            None => {
                let t = Instant::now();
                let version = registry::resolve_alias(db, model, alias)?
                    .ok_or_else(|| ApiError::not_found(format!("model {model} has no alias {alias}")))?;
                self.loaded.push((alias.to_string(), load_model(db, kv, model, version)?));
                timing.model_load += t.elapsed().as_micros() as u64;
                self.loaded.len() - 1
            }
        };
        Ok(&self.loaded[i].1)
    }
}

/// The feature sets a request has had to build (only on a feature cache miss: parsing a set costs more
/// than reading a cached row).
#[derive(Default)]
struct Sets {
    built: Vec<(String, NamedSet)>,
}

impl Sets {
    /// Set `name`, refused if its definition no longer has the `version` the model was trained on.
    fn get(&mut self, kv: &impl KeyValue, name: &str, version: &str) -> Result<&NamedSet, ApiError> {
        let i = match self.built.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let set =
                    store::resolve_set(kv, name).map_err(|e| ApiError::internal(e.to_string()))?.ok_or_else(|| {
                        ApiError::new(422, "no_feature_set", format!("feature set {name} is not defined"))
                    })?;
                if set.version() != version {
                    return Err(ApiError::new(
                        409,
                        "feature_set_changed",
                        format!(
                            "feature set {name} is now version {}, the model was trained on version {version}: \
                             retrain it",
                            set.version()
                        ),
                    ));
                }
                self.built.push((name.to_string(), set));
                self.built.len() - 1
            }
        };
        Ok(&self.built[i].1)
    }
}

/// An experiment with what its log shows so far.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    /// The experiment.
    #[serde(flatten)]
    pub experiment: Experiment,
    /// Predictions logged per variant alias.
    pub predictions: serde_json::Map<String, Value>,
    /// Live comparison on (symbol, date) predictions whose label is realised.
    pub comparison: crate::experiment::Comparison,
}

/// Per-variant counts and the live comparison: the latest logged score per (variant, symbol, date) joined with
/// the realised label (the training label, from the stored bars).
pub fn experiment_report(db: &impl Database, e: &Experiment) -> Result<ExperimentReport, ApiError> {
    let counts = db.execute(
        "SELECT variant, count(*) AS n FROM predictions WHERE experiment = ? GROUP BY variant ORDER BY variant",
        &[e.name.clone().into()],
    )?;
    let predictions = (0..counts.rows.len())
        .map(|i| (counts.text(i, "variant").unwrap_or_default().to_string(), counts.i64(i, "n").unwrap_or(0).into()))
        .collect();
    let rows = db.execute(
        "SELECT variant, symbol, date, score FROM predictions WHERE id IN (SELECT max(id) FROM predictions          WHERE experiment = ? AND symbol IS NOT NULL AND date IS NOT NULL GROUP BY variant, symbol, date)",
        &[e.name.clone().into()],
    )?;
    let label_set = NamedSet::builtin("label").expect("the label set is built in");
    let mut labels: std::collections::HashMap<String, (Vec<NaiveDate>, Vec<f64>)> = Default::default();
    let mut keep = Vec::new();
    for i in 0..rows.rows.len() {
        let (Some(variant), Some(symbol), Some(date), Some(score)) =
            (rows.text(i, "variant"), rows.text(i, "symbol"), rows.text(i, "date"), rows.f64(i, "score"))
        else {
            continue;
        };
        let variant = if variant == e.champion_alias {
            Variant::Champion
        } else if variant == e.challenger_alias {
            Variant::Challenger
        } else {
            continue;
        };
        if !labels.contains_key(symbol) {
            let series = store::load_series(db, symbol, None).map_err(|e| ApiError::internal(e.to_string()))?;
            let m = label_set.compute(&series).map_err(|e| ApiError::internal(e.to_string()))?;
            labels.insert(symbol.to_string(), (m.dates, m.columns.into_iter().next().unwrap_or_default()));
        }
        let (dates, values) = &labels[symbol];
        let Ok(d) = date.parse::<NaiveDate>() else { continue };
        if let Ok(k) = dates.binary_search(&d)
            && values[k].is_finite()
        {
            keep.push((date.to_string(), variant, score, values[k]));
        }
    }
    let outcomes: Vec<crate::experiment::Outcome> = keep
        .iter()
        .map(|(date, variant, score, label)| crate::experiment::Outcome {
            date,
            variant: *variant,
            score: *score,
            label: *label,
        })
        .collect();
    Ok(ExperimentReport { experiment: e.clone(), predictions, comparison: crate::experiment::compare(&outcomes) })
}

/// Symbols with a bar on `date`.
fn symbols_on(db: &impl Database, date: NaiveDate) -> Result<Vec<String>, StorageError> {
    let rows = db.execute("SELECT symbol FROM bars WHERE date = ? ORDER BY symbol", &[date.to_string().into()])?;
    Ok((0..rows.rows.len()).filter_map(|i| rows.text(i, "symbol").map(str::to_string)).collect())
}

/// A raw row's values in model order: an array of that length, or an object naming every feature.
fn raw_values(names: &[String], features: &Value, row: usize) -> Result<Vec<f64>, ApiError> {
    let number = |v: &Value, what: &str| -> Result<f64, ApiError> {
        match v {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
            _ => Err(ApiError::bad_request("invalid", format!("rows[{row}].features{what} is not a number or null"))),
        }
    };
    match features {
        Value::Array(a) if a.len() == names.len() => {
            a.iter().enumerate().map(|(j, v)| number(v, &format!("[{j}]"))).collect()
        }
        Value::Array(a) => Err(ApiError::new(
            422,
            "missing_features",
            format!("rows[{row}].features has {} values; the model takes {}", a.len(), names.len()),
        )),
        Value::Object(map) => {
            let missing: Vec<&str> = names.iter().filter(|n| !map.contains_key(*n)).map(String::as_str).collect();
            if !missing.is_empty() {
                return Err(ApiError::new(
                    422,
                    "missing_features",
                    format!("rows[{row}].features lacks {}", list(&missing)),
                ));
            }
            if let Some(extra) = map.keys().find(|k| !names.contains(k)) {
                return Err(ApiError::bad_request(
                    "invalid",
                    format!("rows[{row}].features.{extra}: not a feature of the model"),
                ));
            }
            names.iter().map(|n| number(&map[n], &format!(".{n}"))).collect()
        }
        _ => Err(ApiError::bad_request("invalid", format!("rows[{row}].features must be an array or an object"))),
    }
}

/// Refuses a row with undefined features unless the caller allows them.
fn check_missing(names: &[String], values: &[f64], allow: bool, what: impl Fn() -> String) -> Result<(), ApiError> {
    if allow {
        return Ok(());
    }
    let missing: Vec<&str> =
        names.iter().zip(values).filter(|(_, v)| !v.is_finite()).map(|(n, _)| n.as_str()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        422,
        "missing_features",
        format!(
            "{}: {} of {} features are undefined (too little history?): {}; send allow_missing=true to score anyway",
            what(),
            missing.len(),
            names.len(),
            list(&missing)
        ),
    ))
}

fn list(names: &[&str]) -> String {
    if names.len() <= 10 {
        names.join(", ")
    } else {
        format!("{}, … ({} more)", names[..10].join(", "), names.len() - 10)
    }
}

/// SHAP values of `rows` with the version's TreeSHAP tables: from the key-value cache (keyed like the
/// plan, by the ONNX artifact's sha256), else, or when the cached tables turn out inconsistent, built
/// from the booster artifact and cached.
fn explain_rows(
    db: &impl Database,
    kv: &impl KeyValue,
    model: &str,
    loaded: &LoadedModel,
    rows: &[&[f64]],
) -> Result<Vec<Explanation>, ApiError> {
    let key = format!("{SHAP_PREFIX}{}", loaded.artifact_sha256);
    if let Some(mut cached) = kv.get_cached(&key).and_then(Explainer::from_bytes)
        && let Ok(explanations) = rows.iter().map(|row| cached.explain(row)).collect()
    {
        return Ok(explanations);
    }
    let mut explainer = Explainer::new(&load_booster(db, model, loaded)?);
    kv.set_cached(&key, explainer.as_bytes());
    rows.iter()
        .map(|row| explainer.explain(row))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal(format!("TreeSHAP of {model} v{}: {e}", loaded.version)))
}

/// The version's booster (trees with cover), for TreeSHAP; only models trained by stockops have one.
fn load_booster(db: &impl Database, model: &str, loaded: &LoadedModel) -> Result<Booster, ApiError> {
    let bytes = registry::read_artifact(db, model, loaded.version, BOOSTER).map_err(|_| {
        ApiError::new(
            422,
            "no_explanations",
            format!(
                "{model} v{} has no tree covers (an imported model): explain needs a model trained by stockops",
                loaded.version
            ),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("booster artifact of {model} v{}: {e}", loaded.version)))
}

/// Appends the request's predictions to the log, in one statement.
fn log_predictions(
    db: &impl Database,
    model: &str,
    experiment: Option<&str>,
    pending: &[Pending],
    scores: &[f64],
    latency_us: i64,
) -> Result<(), StorageError> {
    if pending.is_empty() {
        return Ok(());
    }
    // The values every row shares are bound once (?1..?4); each row adds six of its own.
    let shared: [SqlValue; 4] =
        [now_rfc3339().into(), model.into(), experiment.map(str::to_string).into(), latency_us.into()];
    // SQLite's default limit is 32766 parameters: 6 per row, in batches.
    for (chunk_pending, chunk_scores) in pending.chunks(1000).zip(scores.chunks(1000)) {
        let mut sql = String::from(
            "INSERT INTO predictions (at, model, version, variant, experiment, symbol, date, features_sha256, score, \
             latency_us) VALUES ",
        );
        let mut params: Vec<SqlValue> = Vec::with_capacity(shared.len() + chunk_pending.len() * 6);
        params.extend(shared.iter().cloned());
        for (i, (p, s)) in chunk_pending.iter().zip(chunk_scores).enumerate() {
            let n = params.len();
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(?1, ?2, ?{}, ?{}, ?3, ?{}, ?{}, ?{}, ?{}, ?4)",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            ));
            params.extend([
                p.version.into(),
                p.variant.clone().into(),
                p.symbol.clone().into(),
                p.date.map(|d| d.to_string()).into(),
                hex::encode(p.sha256).into(),
                (*s).into(),
            ]);
        }
        db.execute(&sql, &params)?;
    }
    Ok(())
}

impl LoadedModel {
    /// sha256 of the ONNX artifact the plan was built from.
    pub fn artifact_sha256(&self) -> &str {
        &self.artifact_sha256
    }
}
