//! Alerts and their history in the database (`alerts`, `alert_events`, migration 4): one row per incident,
//! firing until resolved, and an event for everything that happened to it. Every write that races another
//! evaluator (the cron trigger and `POST /api/alerts/evaluate` can overlap) is a compare-and-set whose
//! `RETURNING` says whether this caller won, so a transition is applied and notified once.

use serde::Serialize;
use serde_json::Value;
use stockops_core::{Database, Rows, SqlValue, StorageError};

use crate::checks::Finding;
use crate::rules::Severity;

/// One alert, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Id.
    pub id: i64,
    /// `{rule id}:{subject}`.
    pub fingerprint: String,
    /// The rule that raised it.
    pub rule_id: String,
    /// The rule's kind.
    pub kind: String,
    /// Current severity.
    pub severity: Severity,
    /// `firing` or `resolved`.
    pub state: String,
    /// The latest summary.
    pub summary: String,
    /// The latest details.
    pub details: Value,
    /// The latest measured value.
    pub value: Option<f64>,
    /// When it fired (RFC 3339, UTC).
    pub started_at: String,
    /// When an evaluation last found it.
    pub last_seen_at: String,
    /// When it was last notified (fired, repeated, escalated).
    pub last_notified_at: Option<String>,
    /// Notifications delivered to at least one channel.
    pub notify_count: i64,
    /// When it resolved.
    pub resolved_at: Option<String>,
    /// When it was acknowledged.
    pub acked_at: Option<String>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

impl Alert {
    /// Whether it is firing.
    pub fn is_firing(&self) -> bool {
        self.state == "firing"
    }
}

/// One entry of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Id (history order).
    pub id: i64,
    /// When.
    pub at: String,
    /// fired, escalated, deescalated, repeated, notified, notify_failed, acked, resolved.
    pub event: String,
    /// What else is known (JSON).
    pub detail: Value,
}

const COLUMNS: &str = "id, fingerprint, rule_id, kind, severity, state, summary, details, value, started_at, \
    last_seen_at, last_notified_at, notify_count, resolved_at, acked_at, acked_by";

fn alert_at(rows: &Rows, i: usize) -> Alert {
    let text = |c: &str| rows.text(i, c).map(str::to_string);
    Alert {
        id: rows.i64(i, "id").unwrap_or_default(),
        fingerprint: text("fingerprint").unwrap_or_default(),
        rule_id: text("rule_id").unwrap_or_default(),
        kind: text("kind").unwrap_or_default(),
        // The table's CHECK allows only these two.
        severity: rows.text(i, "severity").and_then(Severity::parse).unwrap_or(Severity::Warning),
        state: text("state").unwrap_or_default(),
        summary: text("summary").unwrap_or_default(),
        details: rows.text(i, "details").and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null),
        value: rows.f64(i, "value"),
        started_at: text("started_at").unwrap_or_default(),
        last_seen_at: text("last_seen_at").unwrap_or_default(),
        last_notified_at: text("last_notified_at"),
        notify_count: rows.i64(i, "notify_count").unwrap_or_default(),
        resolved_at: text("resolved_at"),
        acked_at: text("acked_at"),
        acked_by: text("acked_by"),
    }
}

fn alerts(rows: &Rows) -> Vec<Alert> {
    (0..rows.rows.len()).map(|i| alert_at(rows, i)).collect()
}

/// Every firing alert.
pub fn firing(db: &impl Database) -> Result<Vec<Alert>, StorageError> {
    Ok(alerts(&db.execute(&format!("SELECT {COLUMNS} FROM alerts WHERE state = 'firing' ORDER BY id"), &[])?))
}

/// Alerts newest first, optionally of one state (`firing` / `resolved`) and one rule.
pub fn list(
    db: &impl Database,
    state: Option<&str>,
    rule_id: Option<&str>,
    limit: usize,
) -> Result<Vec<Alert>, StorageError> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM alerts WHERE (? IS NULL OR state = ?) AND (? IS NULL OR rule_id = ?) \
             ORDER BY id DESC LIMIT ?"
        ),
        &[state.into(), state.into(), rule_id.into(), rule_id.into(), (limit as i64).into()],
    )?;
    Ok(alerts(&rows))
}

/// One alert.
pub fn get(db: &impl Database, id: i64) -> Result<Option<Alert>, StorageError> {
    let rows = db.execute(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?"), &[id.into()])?;
    Ok(alerts(&rows).into_iter().next())
}

/// An alert's history, oldest first.
pub fn events(db: &impl Database, id: i64) -> Result<Vec<Event>, StorageError> {
    let rows =
        db.execute("SELECT id, at, event, detail FROM alert_events WHERE alert_id = ? ORDER BY id", &[id.into()])?;
    Ok((0..rows.rows.len())
        .map(|i| Event {
            id: rows.i64(i, "id").unwrap_or_default(),
            at: rows.text(i, "at").unwrap_or_default().to_string(),
            event: rows.text(i, "event").unwrap_or_default().to_string(),
            detail: rows.text(i, "detail").and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null),
        })
        .collect())
}

/// Appends an event to an alert's history.
pub fn add_event(db: &impl Database, id: i64, at: &str, event: &str, detail: &Value) -> Result<(), StorageError> {
    db.execute(
        "INSERT INTO alert_events (alert_id, at, event, detail) VALUES (?, ?, ?, ?)",
        &[id.into(), at.into(), event.into(), detail.to_string().into()],
    )?;
    Ok(())
}

fn changed(rows: Rows) -> bool {
    !rows.rows.is_empty()
}

/// Inserts a firing alert for a new finding (notified now); None when another evaluator fired it first.
pub fn fire(db: &impl Database, f: &Finding, now: &str) -> Result<Option<i64>, StorageError> {
    let rows = db.execute(
        "INSERT INTO alerts (fingerprint, rule_id, kind, severity, state, summary, details, value, started_at, \
         last_seen_at, last_notified_at) VALUES (?, ?, ?, ?, 'firing', ?, ?, ?, ?, ?, ?) \
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            f.fingerprint.clone().into(),
            f.rule_id.clone().into(),
            f.kind.as_str().into(),
            f.severity.as_str().into(),
            f.summary.clone().into(),
            f.details.to_string().into(),
            f.value.into(),
            now.into(),
            now.into(),
            now.into(),
        ],
    )?;
    Ok(rows.i64(0, "id"))
}

/// The parameters that refresh a firing alert from its finding: last seen, summary, details, value.
fn seen(f: &Finding, now: &str) -> [SqlValue; 4] {
    [now.into(), f.summary.clone().into(), f.details.to_string().into(), f.value.into()]
}

/// Still firing, nothing to tell: the finding's latest values.
pub fn refresh(db: &impl Database, id: i64, f: &Finding, now: &str) -> Result<bool, StorageError> {
    let mut params = seen(f, now).to_vec();
    params.push(id.into());
    Ok(changed(db.execute(
        "UPDATE alerts SET last_seen_at = ?, summary = ?, details = ?, value = ? WHERE id = ? AND state = 'firing' \
         RETURNING id",
        &params,
    )?))
}

/// Moves a firing alert to the finding's severity (and, when `notify`, marks it notified now); false when it
/// is no longer firing or already at that severity.
pub fn set_severity(db: &impl Database, id: i64, f: &Finding, now: &str, notify: bool) -> Result<bool, StorageError> {
    let mut params = seen(f, now).to_vec();
    params.extend([f.severity.as_str().into(), SqlValue::Integer(i64::from(notify)), now.into(), id.into()]);
    params.push(f.severity.as_str().into());
    Ok(changed(db.execute(
        "UPDATE alerts SET last_seen_at = ?, summary = ?, details = ?, value = ?, severity = ?, \
         last_notified_at = CASE WHEN ? THEN ? ELSE last_notified_at END \
         WHERE id = ? AND state = 'firing' AND severity <> ? RETURNING id",
        &params,
    )?))
}

/// Marks a firing, unacknowledged alert notified again now, if nobody did since `previous` (the
/// `last_notified_at` the plan saw); false when another evaluator already did or it was acknowledged.
pub fn repeat(
    db: &impl Database,
    id: i64,
    f: &Finding,
    now: &str,
    previous: Option<&str>,
) -> Result<bool, StorageError> {
    let mut params = seen(f, now).to_vec();
    params.extend([now.into(), id.into(), previous.into()]);
    Ok(changed(db.execute(
        "UPDATE alerts SET last_seen_at = ?, summary = ?, details = ?, value = ?, last_notified_at = ? \
         WHERE id = ? AND state = 'firing' AND acked_at IS NULL AND last_notified_at IS ? RETURNING id",
        &params,
    )?))
}

/// Resolves a firing alert; false when it was not firing any more.
pub fn resolve(db: &impl Database, id: i64, now: &str) -> Result<bool, StorageError> {
    Ok(changed(db.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ? AND state = 'firing' RETURNING id",
        &[now.into(), id.into()],
    )?))
}

/// Counts one notification delivered to at least one channel.
pub fn count_notification(db: &impl Database, id: i64) -> Result<(), StorageError> {
    db.execute("UPDATE alerts SET notify_count = notify_count + 1 WHERE id = ?", &[id.into()])?;
    Ok(())
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    /// Acknowledged now.
    Acked(Alert),
    /// It already was (the first acknowledgement stands).
    Already(Alert),
    /// It is resolved: nothing to acknowledge.
    NotFiring(Alert),
    /// No such alert.
    NotFound,
}

/// Acknowledges a firing alert: no more repeats while it fires (escalations and its resolution still notify).
pub fn ack(db: &impl Database, id: i64, by: &str, note: Option<&str>, now: &str) -> Result<Ack, StorageError> {
    let Some(alert) = get(db, id)? else {
        return Ok(Ack::NotFound);
    };
    if !alert.is_firing() {
        return Ok(Ack::NotFiring(alert));
    }
    let won = changed(db.execute(
        "UPDATE alerts SET acked_at = ?, acked_by = ? WHERE id = ? AND state = 'firing' AND acked_at IS NULL \
         RETURNING id",
        &[now.into(), by.into(), id.into()],
    )?);
    if !won {
        return Ok(match get(db, id)? {
            Some(a) if a.is_firing() => Ack::Already(a),
            Some(a) => Ack::NotFiring(a),
            None => Ack::NotFound,
        });
    }
    add_event(db, id, now, "acked", &serde_json::json!({ "by": by, "note": note }))?;
    Ok(get(db, id)?.map_or(Ack::NotFound, Ack::Acked))
}
