//! The alert state machine, pure: from the firing alerts and one evaluation's rule outcomes, what happens to
//! each alert. `evaluate` applies the plan to the database and sends what it says to send.
//!
//! - A finding with no firing alert of its fingerprint fires (and notifies) once.
//! - A finding of a firing alert refreshes it; a higher severity escalates (notified even when acknowledged);
//!   a lower one de-escalates (recorded, not notified); otherwise, unless acknowledged, it is sent again once
//!   `repeat_interval_minutes` (0 = never) have passed since it was last notified.
//! - A firing alert resolves (and notifies) when its rule evaluated and did not find it, or when its rule is
//!   disabled or gone. A rule that was skipped or failed leaves its alerts as they are: no evidence is not
//!   an all-clear.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::alerts::Alert;
use crate::checks::{Finding, RuleOutcome, Status};
use crate::rules::Rule;

/// What happens to one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// A new condition: a firing alert, notified.
    Fire(Finding),
    /// Still firing, nothing to tell: its latest values.
    Refresh {
        /// Alert id.
        id: i64,
        /// This evaluation's finding.
        finding: Finding,
    },
    /// Severity went up: notified, even when acknowledged.
    Escalate {
        /// Alert id.
        id: i64,
        /// This evaluation's finding.
        finding: Finding,
    },
    /// Severity went down: recorded, not notified.
    Deescalate {
        /// Alert id.
        id: i64,
        /// This evaluation's finding.
        finding: Finding,
    },
    /// Still firing, unacknowledged, and the repeat interval has passed: notified again.
    Repeat {
        /// Alert id.
        id: i64,
        /// This evaluation's finding.
        finding: Finding,
        /// The alert's `last_notified_at` as planned on (the write is a compare-and-set on it).
        last_notified_at: Option<String>,
    },
    /// The condition is gone: resolved, notified.
    Resolve {
        /// Alert id.
        id: i64,
        /// Why: condition cleared, rule disabled, rule removed.
        reason: String,
    },
}

/// Plans the transitions for `firing` alerts given this evaluation's `outcomes` of the rules in force.
pub fn plan(firing: &[Alert], rules: &[Rule], outcomes: &[RuleOutcome], now: DateTime<Utc>) -> Vec<Transition> {
    // One finding per fingerprint (a check should not repeat one, but if it does the worst wins).
    let mut found: Vec<&Finding> = Vec::new();
    for f in outcomes.iter().filter(|o| o.status == Status::Ok).flat_map(|o| &o.findings) {
        match found.iter_mut().find(|g| g.fingerprint == f.fingerprint) {
            Some(g) if f.severity > g.severity => *g = f,
            Some(_) => {}
            None => found.push(f),
        }
    }
    let by_fingerprint: HashMap<&str, &Alert> = firing.iter().map(|a| (a.fingerprint.as_str(), a)).collect();
    let mut out = Vec::new();
    for f in &found {
        let Some(alert) = by_fingerprint.get(f.fingerprint.as_str()) else {
            out.push(Transition::Fire((*f).clone()));
            continue;
        };
        let (id, finding) = (alert.id, (*f).clone());
        out.push(if f.severity > alert.severity {
            Transition::Escalate { id, finding }
        } else if f.severity < alert.severity {
            Transition::Deescalate { id, finding }
        } else if repeat_due(alert, rules.iter().find(|r| r.id == alert.rule_id), now) {
            Transition::Repeat { id, finding, last_notified_at: alert.last_notified_at.clone() }
        } else {
            Transition::Refresh { id, finding }
        });
    }
    for alert in firing {
        if found.iter().any(|f| f.fingerprint == alert.fingerprint) {
            continue;
        }
        let reason = match outcomes.iter().find(|o| o.rule_id == alert.rule_id).map(|o| o.status) {
            None => "rule removed",
            Some(Status::Disabled) => "rule disabled",
            Some(Status::Ok) => "condition cleared",
            Some(Status::Skipped | Status::Error) => continue,
        };
        out.push(Transition::Resolve { id: alert.id, reason: reason.into() });
    }
    out
}

/// Whether a firing alert at unchanged severity is sent again now.
fn repeat_due(alert: &Alert, rule: Option<&Rule>, now: DateTime<Utc>) -> bool {
    let minutes = rule.map_or(0, |r| r.repeat_interval_minutes);
    if alert.acked_at.is_some() || minutes == 0 {
        return false;
    }
    let since = alert.last_notified_at.as_deref().unwrap_or(&alert.started_at);
    match DateTime::parse_from_rfc3339(since) {
        Ok(at) => now - at.with_timezone(&Utc) >= chrono::Duration::minutes(minutes as i64),
        // An unreadable time cannot hold a repeat back.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Kind, Severity, rule_from_json};
    use serde_json::json;

    fn t(minute: i64) -> DateTime<Utc> {
        "2024-06-05T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(minute)
    }

    fn stamp(minute: i64) -> String {
        t(minute).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn rule(id: &str, repeat: u64) -> Rule {
        rule_from_json(json!({"id": id, "kind": "failed_jobs", "repeat_interval_minutes": repeat})).unwrap()
    }

    fn finding(rule: &str, subject: &str, severity: Severity) -> Finding {
        Finding {
            fingerprint: format!("{rule}:{subject}"),
            rule_id: rule.into(),
            kind: Kind::FailedJobs,
            severity,
            summary: format!("{subject} is {severity:?}"),
            value: Some(1.0),
            details: json!({}),
        }
    }

    fn outcome(rule: &str, status: Status, findings: Vec<Finding>) -> RuleOutcome {
        RuleOutcome { rule_id: rule.into(), kind: Kind::FailedJobs, status, note: None, findings }
    }

    fn alert(id: i64, f: &Finding, fired_at: i64) -> Alert {
        Alert {
            id,
            fingerprint: f.fingerprint.clone(),
            rule_id: f.rule_id.clone(),
            kind: f.kind.as_str().into(),
            severity: f.severity,
            state: "firing".into(),
            summary: f.summary.clone(),
            details: f.details.clone(),
            value: f.value,
            started_at: stamp(fired_at),
            last_seen_at: stamp(fired_at),
            last_notified_at: Some(stamp(fired_at)),
            notify_count: 1,
            resolved_at: None,
            acked_at: None,
            acked_by: None,
        }
    }

    /// Applies a plan to an in-memory list the way `evaluate` applies it to the database.
    fn apply(firing: &mut Vec<Alert>, plan: &[Transition], now: i64, next_id: &mut i64) -> Vec<&'static str> {
        let mut notified = Vec::new();
        for tr in plan {
            match tr {
                Transition::Fire(f) => {
                    *next_id += 1;
                    firing.push(alert(*next_id, f, now));
                    notified.push("fired");
                }
                Transition::Escalate { id, finding } | Transition::Deescalate { id, finding } => {
                    let a = firing.iter_mut().find(|a| a.id == *id).unwrap();
                    a.severity = finding.severity;
                    if matches!(tr, Transition::Escalate { .. }) {
                        a.last_notified_at = Some(stamp(now));
                        notified.push("escalated");
                    }
                }
                Transition::Repeat { id, .. } => {
                    firing.iter_mut().find(|a| a.id == *id).unwrap().last_notified_at = Some(stamp(now));
                    notified.push("repeated");
                }
                Transition::Refresh { .. } => {}
                Transition::Resolve { id, .. } => {
                    firing.retain(|a| a.id != *id);
                    notified.push("resolved");
                }
            }
        }
        notified
    }

    #[test]
    fn fires_once_repeats_after_the_interval_and_resolves_when_cleared() {
        let rules = [rule("jobs", 60)];
        let f = finding("jobs", "jobs", Severity::Warning);
        let (mut firing, mut id) = (Vec::new(), 0);
        let mut step = |minute: i64, findings: Vec<Finding>, firing: &mut Vec<Alert>| {
            let p = plan(firing, &rules, &[outcome("jobs", Status::Ok, findings)], t(minute));
            apply(firing, &p, minute, &mut id)
        };
        assert_eq!(step(0, vec![f.clone()], &mut firing), ["fired"]);
        assert_eq!(step(1, vec![f.clone()], &mut firing), Vec::<&str>::new()); // fire once
        assert_eq!(step(59, vec![f.clone()], &mut firing), Vec::<&str>::new());
        assert_eq!(step(60, vec![f.clone()], &mut firing), ["repeated"]);
        assert_eq!(step(61, vec![f.clone()], &mut firing), Vec::<&str>::new());
        assert_eq!(step(121, vec![f.clone()], &mut firing), ["repeated"]);
        assert_eq!(step(122, vec![], &mut firing), ["resolved"]);
        assert!(firing.is_empty());
        // The same condition later is a new incident.
        assert_eq!(step(200, vec![f], &mut firing), ["fired"]);
        assert_eq!(firing[0].id, 2);
    }

    #[test]
    fn escalation_notifies_and_deescalation_does_not() {
        let rules = [rule("jobs", 0)];
        let warn = finding("jobs", "jobs", Severity::Warning);
        let crit = finding("jobs", "jobs", Severity::Critical);
        let mut firing = vec![alert(1, &warn, 0)];
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![crit.clone()])], t(5));
        assert_eq!(p, vec![Transition::Escalate { id: 1, finding: crit.clone() }]);
        apply(&mut firing, &p, 5, &mut 1);
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![warn.clone()])], t(6));
        assert_eq!(p, vec![Transition::Deescalate { id: 1, finding: warn.clone() }]);
        // Repeat interval 0: never sent again while firing.
        apply(&mut firing, &p, 6, &mut 1);
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![warn.clone()])], t(10_000));
        assert_eq!(p, vec![Transition::Refresh { id: 1, finding: warn }]);
    }

    #[test]
    fn acknowledged_alerts_do_not_repeat_but_still_escalate_and_resolve() {
        let rules = [rule("jobs", 10)];
        let warn = finding("jobs", "jobs", Severity::Warning);
        let mut acked = alert(1, &warn, 0);
        acked.acked_at = Some(stamp(1));
        let firing = vec![acked];
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![warn.clone()])], t(500));
        assert!(matches!(p[..], [Transition::Refresh { id: 1, .. }]), "{p:?}");
        let crit = finding("jobs", "jobs", Severity::Critical);
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![crit])], t(500));
        assert!(matches!(p[..], [Transition::Escalate { id: 1, .. }]), "{p:?}");
        let p = plan(&firing, &rules, &[outcome("jobs", Status::Ok, vec![])], t(500));
        assert!(matches!(p[..], [Transition::Resolve { id: 1, .. }]), "{p:?}");
    }

    #[test]
    fn repeat_is_planned_on_the_last_notification_for_a_compare_and_set() {
        let rules = [rule("jobs", 30)];
        let warn = finding("jobs", "jobs", Severity::Warning);
        let mut a = alert(7, &warn, 0);
        a.last_notified_at = None; // never reached a channel: counted from when it fired
        let p = plan(&[a], &rules, &[outcome("jobs", Status::Ok, vec![warn.clone()])], t(30));
        assert_eq!(p, vec![Transition::Repeat { id: 7, finding: warn, last_notified_at: None }]);
    }

    #[test]
    fn only_an_evaluated_rule_resolves_its_alerts() {
        let rules = [rule("a", 60), rule("b", 60), rule("c", 60), rule("d", 60)];
        let fa = finding("a", "x", Severity::Warning);
        let fb = finding("b", "x", Severity::Warning);
        let fc = finding("c", "x", Severity::Warning);
        let fd = finding("d", "x", Severity::Warning);
        let fe = finding("e", "x", Severity::Warning);
        let firing = vec![alert(1, &fa, 0), alert(2, &fb, 0), alert(3, &fc, 0), alert(4, &fd, 0), alert(5, &fe, 0)];
        let outcomes = [
            outcome("a", Status::Skipped, vec![]),
            outcome("b", Status::Error, vec![]),
            outcome("c", Status::Disabled, vec![]),
            outcome("d", Status::Ok, vec![]),
        ];
        let p = plan(&firing, &rules, &outcomes, t(1));
        let resolved: Vec<(i64, &str)> = p
            .iter()
            .map(|tr| match tr {
                Transition::Resolve { id, reason } => (*id, reason.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(resolved, vec![(3, "rule disabled"), (4, "condition cleared"), (5, "rule removed")]);
    }

    #[test]
    fn one_finding_per_fingerprint_and_per_subject_alerts() {
        let rules = [rule("drift", 60)];
        let (f1, f2) =
            (finding("drift", "feature:A", Severity::Warning), finding("drift", "feature:B", Severity::Warning));
        let f1_crit = finding("drift", "feature:A", Severity::Critical);
        let firing = vec![alert(1, &f1, 0)];
        let p =
            plan(&firing, &rules, &[outcome("drift", Status::Ok, vec![f1.clone(), f2.clone(), f1_crit.clone()])], t(1));
        assert_eq!(p, vec![Transition::Escalate { id: 1, finding: f1_crit }, Transition::Fire(f2)]);
    }
}
