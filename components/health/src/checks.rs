//! Health checks: what is required for the app to serve at all (database, schema) and what a healthy
//! deployment also has (its key-value cache, a champion model, fresh bars, a recent backup, a good last
//! training run). Only a required check can fail the app; the others degrade it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use stockops_core::{Database, KeyValue, StorageError, schema};

/// The outcome of one check or of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// All good.
    Ok,
    /// An optional part is missing or stale; the app still serves.
    Degraded,
    /// A required part is broken; the app cannot serve.
    Failing,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Outcome.
    pub status: Status,
    /// Whether a failure of this check fails the whole app (otherwise it only degrades it).
    pub required: bool,
    /// Time the check took, in milliseconds.
    pub latency_ms: f64,
    /// What was found, for a person.
    pub detail: String,
}

/// The whole report `GET /health` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Worst status over all checks.
    pub status: Status,
    /// When the checks ran (RFC 3339).
    pub checked_at: String,
    /// Each check by name.
    pub checks: BTreeMap<&'static str, Check>,
}

impl Report {
    /// The HTTP status to answer with: 503 when failing, 200 otherwise.
    pub fn http_status(&self) -> u16 {
        if self.status == Status::Failing { 503 } else { 200 }
    }
}

/// Thresholds a deployment sets through spin variables.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bars older than this many days are stale.
    pub bar_max_age_days: i64,
    /// A newest verified backup older than this many hours is stale.
    pub backup_max_age_hours: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { bar_max_age_days: 5, backup_max_age_hours: 36 }
    }
}

/// Runs every check. `clock` gives elapsed milliseconds (a monotonic clock; injected so tests need none).
pub fn run(
    db: Option<&impl Database>,
    kv: Option<&impl KeyValue>,
    limits: Limits,
    now: DateTime<Utc>,
    clock: &dyn Fn() -> f64,
) -> Report {
    let mut checks = BTreeMap::new();
    let mut timed = |name: &'static str, required: bool, f: &mut dyn FnMut() -> (Status, String)| {
        let t0 = clock();
        let (status, detail) = f();
        checks.insert(name, Check { status, required, latency_ms: clock() - t0, detail });
    };
    match db {
        Some(db) => {
            timed("database", true, &mut || match db.execute("SELECT 1 AS one", &[]) {
                Ok(_) => (Status::Ok, "query answered".into()),
                Err(e) => (Status::Failing, e.to_string()),
            });
            timed("schema", true, &mut || match schema::migrate(db) {
                Ok(r) if r.from == r.to => (Status::Ok, format!("version {}", r.to)),
                Ok(r) => (Status::Ok, format!("migrated from version {} to {}", r.from, r.to)),
                Err(e) => (Status::Failing, e.to_string()),
            });
            timed("champion_model", false, &mut || champion(db));
            timed("bars", false, &mut || bars(db, now.date_naive(), limits.bar_max_age_days));
            timed("backup", false, &mut || backup(db, now, limits.backup_max_age_hours));
            timed("training", false, &mut || training(db));
        }
        None => timed("database", true, &mut || (Status::Failing, "cannot open the default database".into())),
    }
    match kv {
        // The key-value store is a cache in front of the database: without it the app degrades, it does not fail.
        Some(kv) => timed("key_value", false, &mut || match kv_probe(kv, now) {
            Ok(()) => (Status::Ok, "write, read and delete of a probe key".into()),
            Err(e) => (Status::Degraded, e.to_string()),
        }),
        None => timed("key_value", false, &mut || (Status::Degraded, "cannot open the default key-value store".into())),
    }
    let status = checks.values().map(|c| c.status).max().unwrap_or(Status::Ok);
    Report { status, checked_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), checks }
}

fn kv_probe(kv: &impl KeyValue, now: DateTime<Utc>) -> Result<(), StorageError> {
    // A key per call, so concurrent probes never read each other's value.
    let key = format!("stockops/health-probe/{}", now.timestamp_nanos_opt().unwrap_or_default());
    let value = key.as_bytes();
    kv.set(&key, value)?;
    let back = kv.get(&key)?;
    kv.delete(&key)?;
    if back.as_deref() != Some(value) {
        return Err(StorageError::Backend("probe key read back a different value".into()));
    }
    if kv.get(&key)?.is_some() {
        return Err(StorageError::Backend("probe key still present after delete".into()));
    }
    Ok(())
}

fn champion(db: &impl Database) -> (Status, String) {
    let sql = "SELECT a.name, a.version FROM model_aliases a
               JOIN model_versions v ON v.name = a.name AND v.version = a.version AND v.status = 'ready'
               WHERE a.alias = 'champion' ORDER BY a.updated_at DESC LIMIT 1";
    match db.execute(sql, &[]) {
        Ok(r) if r.rows.is_empty() => (Status::Degraded, "no model has the champion alias".into()),
        Ok(r) => (Status::Ok, format!("{} v{}", r.text(0, "name").unwrap_or("?"), r.i64(0, "version").unwrap_or(0))),
        Err(e) => (Status::Degraded, e.to_string()),
    }
}

fn bars(db: &impl Database, today: NaiveDate, max_age_days: i64) -> (Status, String) {
    match db.execute("SELECT max(date) AS newest FROM bars", &[]) {
        Ok(r) => match r.text(0, "newest").map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d")) {
            None => (Status::Degraded, "no bars ingested".into()),
            Some(Err(e)) => (Status::Degraded, format!("newest bar date is unreadable: {e}")),
            Some(Ok(newest)) => {
                let age = (today - newest).num_days();
                let status = if age > max_age_days { Status::Degraded } else { Status::Ok };
                (status, format!("newest bar {newest}, {age} days old (limit {max_age_days})"))
            }
        },
        Err(e) => (Status::Degraded, e.to_string()),
    }
}

fn backup(db: &impl Database, now: DateTime<Utc>, max_age_hours: i64) -> (Status, String) {
    match db.execute("SELECT max(created_at) AS newest FROM backups WHERE status = 'verified'", &[]) {
        Ok(r) => match r.text(0, "newest").map(DateTime::parse_from_rfc3339) {
            None => (Status::Degraded, "no verified backup".into()),
            Some(Err(e)) => (Status::Degraded, format!("newest backup time is unreadable: {e}")),
            Some(Ok(at)) => {
                let hours = (now - at.with_timezone(&Utc)).num_hours();
                let status = if hours > max_age_hours { Status::Degraded } else { Status::Ok };
                (status, format!("newest verified backup {hours} h old (limit {max_age_hours} h)"))
            }
        },
        Err(e) => (Status::Degraded, e.to_string()),
    }
}

fn training(db: &impl Database) -> (Status, String) {
    let sql = "SELECT id, status, created_at, error FROM train_jobs WHERE status IN ('succeeded', 'failed')
               ORDER BY created_at DESC LIMIT 1";
    match db.execute(sql, &[]) {
        Ok(r) if r.rows.is_empty() => (Status::Degraded, "no training run has finished".into()),
        Ok(r) => {
            let id = r.text(0, "id").unwrap_or("?");
            match r.text(0, "status") {
                Some("succeeded") => (Status::Ok, format!("last run {id} succeeded")),
                _ => (
                    Status::Degraded,
                    format!("last run {id} failed: {}", r.text(0, "error").unwrap_or("no reason recorded")),
                ),
            }
        }
        Err(e) => (Status::Degraded, e.to_string()),
    }
}
