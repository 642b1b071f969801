//! One evaluation: run every rule in force, plan the alert transitions, apply them to the database, and send
//! what they say to send, recording every delivery attempt in the alert's history. The cron trigger and
//! `POST /api/alerts/evaluate` both run this.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use stockops_core::{Database, KeyValue, StorageError};

use crate::alerts;
use crate::checks::{self, Env, RuleOutcome};
use crate::notify::{self, Channels, Delivery, Notice, Transport};
use crate::rules::{Defaults, Kind, Rule, Severity};
use crate::ruleset::Effective;
use crate::state::{self, Transition};

/// What an evaluation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// When (RFC 3339, UTC).
    pub evaluated_at: String,
    /// Each rule's outcome, in rule order.
    pub rules: Vec<RuleOutcome>,
    /// The alerts that changed state or were sent again.
    pub transitions: Vec<Applied>,
    /// Every notification, per channel, with its attempts.
    pub notifications: Vec<Delivery>,
    /// Alerts firing after the evaluation.
    pub firing: usize,
}

/// One applied transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// The alert.
    pub alert_id: i64,
    /// Its fingerprint.
    pub fingerprint: String,
    /// fired, escalated, deescalated, repeated, resolved.
    pub transition: &'static str,
    /// Severity after the transition.
    pub severity: Severity,
    /// Summary after the transition.
    pub summary: String,
}

/// Evaluates `rules` at `now` and notifies through `transport`. Only a storage failure is an error; a rule that
/// fails is reported in its outcome.
pub fn run<D: Database, K: KeyValue>(
    db: &D,
    kv: &K,
    rules: &[Effective],
    defaults: Defaults,
    channels: &Channels,
    transport: &mut impl Transport,
    now: DateTime<Utc>,
) -> Result<Report, StorageError> {
    let rules: Vec<Rule> = rules.iter().map(|e| e.rule.clone()).collect();
    let longest_http_window = rules
        .iter()
        .filter(|r| r.enabled && matches!(r.kind, Kind::ErrorRate | Kind::LatencyP95))
        .map(|r| i64::try_from(r.window_minutes().saturating_mul(60)).unwrap_or(i64::MAX))
        .max()
        .unwrap_or(0);
    let env = Env::new(db, kv, now, defaults, longest_http_window);
    let outcomes: Vec<RuleOutcome> = rules.iter().map(|r| checks::run(&env, r)).collect();
    let firing = alerts::firing(db)?;
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    let mut applied = Vec::new();
    let mut notices: Vec<(i64, Notice)> = Vec::new();
    for transition in state::plan(&firing, &rules, &outcomes, now) {
        let Some((id, name, notice)) = apply(db, &transition, &firing, &stamp)? else {
            continue;
        };
        if let Some(notice) = notice {
            notices.push((id, notice));
        }
        if name == "refreshed" {
            continue;
        }
        if let Some(alert) = alerts::get(db, id)? {
            applied.push(Applied {
                alert_id: id,
                fingerprint: alert.fingerprint,
                transition: name,
                severity: alert.severity,
                summary: alert.summary,
            });
        }
    }

    let mut deliveries = Vec::new();
    for (id, notice) in notices {
        let Some(alert) = alerts::get(db, id)? else { continue };
        // A removed rule's resolution goes wherever a rule without a channel list would send it.
        let rule = rules.iter().find(|r| r.id == alert.rule_id);
        let mut delivered = false;
        for channel in channels.configured() {
            if !rule.is_none_or(|r| r.wants(channel)) {
                continue;
            }
            let Some(out) = channels.request(channel, &alert, notice, now) else { continue };
            let d = notify::deliver(transport, &out, id, notice, channels.timeout, channels.retries);
            for a in &d.attempts {
                let event = if a.error.is_none() { "notified" } else { "notify_failed" };
                let detail = json!({
                    "channel": channel.as_str(), "event": notice.as_str(), "attempt": a.attempt, "status": a.status,
                    "error": a.error,
                });
                alerts::add_event(db, id, &stamp, event, &detail)?;
            }
            delivered |= d.delivered;
            deliveries.push(d);
        }
        if delivered {
            alerts::count_notification(db, id)?;
        }
    }
    Ok(Report {
        evaluated_at: stamp,
        rules: outcomes,
        transitions: applied,
        notifications: deliveries,
        firing: alerts::firing(db)?.len(),
    })
}

/// An applied transition: the alert, what happened to it, and what to send.
type Step = (i64, &'static str, Option<Notice>);

/// Applies one transition; None when another evaluator got there first.
fn apply(
    db: &impl Database,
    transition: &Transition,
    firing: &[alerts::Alert],
    now: &str,
) -> Result<Option<Step>, StorageError> {
    let event = |id: i64, name: &str, detail: serde_json::Value| alerts::add_event(db, id, now, name, &detail);
    Ok(match transition {
        Transition::Fire(f) => match alerts::fire(db, f, now)? {
            Some(id) => {
                event(id, "fired", json!({ "severity": f.severity, "value": f.value, "summary": f.summary }))?;
                Some((id, "fired", Some(Notice::Fired)))
            }
            None => None,
        },
        Transition::Refresh { id, finding } => {
            alerts::refresh(db, *id, finding, now)?;
            Some((*id, "refreshed", None))
        }
        Transition::Escalate { id, finding } | Transition::Deescalate { id, finding } => {
            let up = matches!(transition, Transition::Escalate { .. });
            if !alerts::set_severity(db, *id, finding, now, up)? {
                return Ok(None);
            }
            let from = firing.iter().find(|a| a.id == *id).map(|a| a.severity);
            let name = if up { "escalated" } else { "deescalated" };
            event(*id, name, json!({ "from": from, "to": finding.severity, "value": finding.value }))?;
            Some((*id, name, up.then_some(Notice::Escalated)))
        }
        Transition::Repeat { id, finding, last_notified_at } => {
            if !alerts::repeat(db, *id, finding, now, last_notified_at.as_deref())? {
                return Ok(None);
            }
            event(*id, "repeated", json!({ "severity": finding.severity, "value": finding.value }))?;
            Some((*id, "repeated", Some(Notice::Repeated)))
        }
        Transition::Resolve { id, reason } => {
            if !alerts::resolve(db, *id, now)? {
                return Ok(None);
            }
            event(*id, "resolved", json!({ "reason": reason }))?;
            Some((*id, "resolved", Some(Notice::Resolved)))
        }
    })
}
