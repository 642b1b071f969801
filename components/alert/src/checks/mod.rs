//! Rule evaluation: one module per rule kind, each turning what the stores hold into zero or more findings.
//! A finding carries a stable fingerprint (rule id + subject), so the same condition maps to the same alert
//! from one evaluation to the next.
//!
//! A check ends in one of three ways: evaluated (its findings are the whole truth: alerts of the rule it does
//! not yield resolve), skipped (nothing to judge yet, such as a model card without a reference: its alerts stay
//! as they are), or failed (a storage error: its alerts stay as they are too).

pub mod backup;
pub mod drift;
pub mod http;
pub mod ic_decay;
pub mod jobs;
pub mod staleness;

use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use stockops_core::{Database, KeyValue, StorageError};
use train_batch::registry::{self, RegistryError};

use crate::rules::{Defaults, Kind, Rule, Severity};

/// One condition a rule found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `{rule id}:{subject}`: the same condition gives the same fingerprint every time.
    pub fingerprint: String,
    /// The rule that found it.
    pub rule_id: String,
    /// The rule's kind.
    pub kind: Kind,
    /// How bad it is.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// The measured value (PSI, share, seconds, days, hours, count); None when there is none to give.
    pub value: Option<f64>,
    /// What the check saw, for the alert's details.
    pub details: Value,
}

impl Finding {
    /// A finding of `rule` about `subject`.
    pub fn new(
        rule: &Rule,
        subject: &str,
        severity: Severity,
        summary: String,
        value: Option<f64>,
        details: Value,
    ) -> Finding {
        Finding {
            fingerprint: format!("{}:{subject}", rule.id),
            rule_id: rule.id.clone(),
            kind: rule.kind,
            severity,
            summary,
            value: value.filter(|v| v.is_finite()),
            details,
        }
    }
}

/// How a rule's evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Evaluated: the findings are complete.
    Ok,
    /// Nothing to judge yet; the note says why.
    Skipped,
    /// The check failed; the note says why.
    Error,
    /// The rule is disabled.
    Disabled,
}

/// One rule's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// The rule.
    pub rule_id: String,
    /// Its kind.
    pub kind: Kind,
    /// How it ended.
    pub status: Status,
    /// What was evaluated, or why not.
    pub note: Option<String>,
    /// What it found (empty unless `status` is ok).
    pub findings: Vec<Finding>,
}

/// A completed check: its findings and a line on what it looked at.
pub(crate) struct Evaluated {
    findings: Vec<Finding>,
    note: String,
}

impl Evaluated {
    fn new(findings: Vec<Finding>, note: String) -> Self {
        Evaluated { findings, note }
    }
}

/// Why a check stopped short.
pub(crate) enum Halt {
    /// Nothing to judge; the rule's alerts stay as they are.
    Skip(String),
    /// A failure; the rule's alerts stay as they are.
    Fail(String),
}

impl From<StorageError> for Halt {
    fn from(e: StorageError) -> Self {
        Halt::Fail(e.to_string())
    }
}

impl From<RegistryError> for Halt {
    fn from(e: RegistryError) -> Self {
        Halt::Fail(e.to_string())
    }
}

impl From<features::store::StoreError> for Halt {
    fn from(e: features::store::StoreError) -> Self {
        Halt::Fail(e.to_string())
    }
}

/// What the checks read: the stores, the time, the variable-backed defaults, and the host metrics history
/// (read once per evaluation, by the first rule that needs it).
pub struct Env<'a, D, K> {
    /// The database.
    pub db: &'a D,
    /// The key-value store.
    pub kv: &'a K,
    /// Evaluation time.
    pub now: DateTime<Utc>,
    /// Defaults from spin variables.
    pub defaults: Defaults,
    /// The longest window of the enabled error-rate and latency rules, in seconds (how much history to keep).
    pub longest_http_window_secs: i64,
    metrics: OnceCell<Result<http::History, String>>,
}

impl<'a, D: Database, K: KeyValue> Env<'a, D, K> {
    /// An environment for one evaluation.
    pub fn new(db: &'a D, kv: &'a K, now: DateTime<Utc>, defaults: Defaults, longest_http_window_secs: i64) -> Self {
        Env { db, kv, now, defaults, longest_http_window_secs, metrics: OnceCell::new() }
    }

    /// The host metrics history, sampling now on first use.
    fn metrics(&self) -> Result<&http::History, Halt> {
        let history = self.metrics.get_or_init(|| {
            http::record(self.kv, self.now.timestamp(), self.longest_http_window_secs).map_err(|e| e.to_string())
        });
        history.as_ref().map_err(|e| Halt::Fail(format!("host metrics: {e}")))
    }
}

/// Evaluates one rule.
pub fn run<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> RuleOutcome {
    let outcome = |status, note, findings| RuleOutcome {
        rule_id: rule.id.clone(),
        kind: rule.kind,
        status,
        note: Some(note),
        findings,
    };
    if !rule.enabled {
        return outcome(Status::Disabled, "disabled".into(), Vec::new());
    }
    let result = match rule.kind {
        Kind::Staleness => staleness::check(env, rule),
        Kind::FeatureDrift => drift::check_features(env, rule),
        Kind::ScoreDrift => drift::check_scores(env, rule),
        Kind::IcDecay => ic_decay::check(env, rule),
        Kind::ErrorRate | Kind::LatencyP95 => http::check(env, rule),
        Kind::FailedJobs => jobs::check(env, rule),
        Kind::BackupStale => backup::check(env, rule),
    };
    match result {
        Ok(e) => outcome(Status::Ok, e.note, e.findings),
        Err(Halt::Skip(note)) => outcome(Status::Skipped, note, Vec::new()),
        Err(Halt::Fail(note)) => outcome(Status::Error, note, Vec::new()),
    }
}

/// The model version a rule watches: its alias's current version, with the version's card.
pub(crate) struct Watched {
    /// Model name.
    pub model: String,
    /// Version the alias points at.
    pub version: i64,
    /// The version's feature set.
    pub feature_set: Option<String>,
    /// The version's card.
    pub card: Value,
}

impl Watched {
    /// `model vN` for messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.model, self.version)
    }
}

/// The version `rule.model`'s `rule.alias` points at; skipped when the model or alias does not exist.
pub(crate) fn watched(db: &impl Database, rule: &Rule) -> Result<Watched, Halt> {
    let model = rule.model.clone().unwrap_or_default();
    let alias = rule.alias();
    let version = registry::resolve_alias(db, &model, alias)?
        .ok_or_else(|| Halt::Skip(format!("model {model} has no alias {alias}")))?;
    let record = registry::get_version(db, &model, version)?;
    if record.status != "ready" {
        return Err(Halt::Skip(format!("{model} v{version} is {}, not ready", record.status)));
    }
    Ok(Watched { model, version, feature_set: record.feature_set, card: record.card })
}

/// A cut-off `minutes` before `now`, as the stored timestamps write it (RFC 3339 UTC, milliseconds), so text
/// comparison is time order.
pub(crate) fn minutes_before(now: DateTime<Utc>, minutes: u64) -> String {
    let cutoff = i64::try_from(minutes)
        .ok()
        .and_then(chrono::TimeDelta::try_minutes)
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
