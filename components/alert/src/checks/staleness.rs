//! Data staleness: symbols whose newest bar is more than N trading days old. Trading days are weekdays (no
//! exchange calendar is stored), so a Friday bar on Monday is one trading day old, not three days.

use chrono::{Datelike, NaiveDate};
use serde_json::json;
use stockops_core::{Database, KeyValue};

use super::{Env, Evaluated, Finding, Halt};
use crate::rules::{Rule, Thresholds};

/// Symbols listed in an alert's details, stalest first.
const LISTED: usize = 20;

/// Weekdays `d` with `from < d <= to` (0 when `to` is not after `from`).
pub fn trading_days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    // Weekdays in days 1..=n counted from 0001-01-01, a Monday.
    let weekdays_through = |d: NaiveDate| {
        let n = i64::from(d.num_days_from_ce());
        n / 7 * 5 + (n % 7).min(5)
    };
    (weekdays_through(to) - weekdays_through(from)).max(0)
}

/// One symbol's newest bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Newest {
    /// The symbol.
    pub symbol: String,
    /// Its newest bar's date.
    pub date: NaiveDate,
}

pub(super) fn check<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let rows = env.db.execute("SELECT symbol, max(date) AS newest FROM bars GROUP BY symbol", &[])?;
    let newest: Vec<Newest> = (0..rows.rows.len())
        .filter_map(|i| {
            let date = rows.text(i, "newest")?.parse().ok()?;
            Some(Newest { symbol: rows.text(i, "symbol")?.to_string(), date })
        })
        .collect();
    if newest.is_empty() {
        return Err(Halt::Skip("no bars ingested".into()));
    }
    Ok(judge(rule, rule.thresholds(&env.defaults), &newest, env.now.date_naive()))
}

/// The finding (at most one per rule: the stale symbols are listed in it) for these newest bars on `today`.
fn judge(rule: &Rule, t: Thresholds, newest: &[Newest], today: NaiveDate) -> Evaluated {
    let mut aged: Vec<(&Newest, i64)> = newest.iter().map(|n| (n, trading_days_between(n.date, today))).collect();
    aged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.symbol.cmp(&b.0.symbol)));
    let stale: Vec<&(&Newest, i64)> = aged.iter().filter(|(_, age)| rule.severity(t, *age as f64).is_some()).collect();
    let freshest = newest.iter().map(|n| n.date).max();
    let note = format!(
        "{} symbols, newest bar {}, stalest {} trading days old",
        newest.len(),
        freshest.map_or_else(String::new, |d| d.to_string()),
        aged.first().map_or(0, |a| a.1)
    );
    let Some(&&(worst, max_age)) = stale.first() else {
        return Evaluated::new(Vec::new(), note);
    };
    let Some(severity) = rule.severity(t, max_age as f64) else {
        return Evaluated::new(Vec::new(), note);
    };
    let limit = t.warn.or(t.critical).unwrap_or_default();
    let summary = format!(
        "{} of {} symbols have no bar for more than {limit} trading days; stalest {} (newest bar {}, {max_age} trading days)",
        stale.len(),
        newest.len(),
        worst.symbol,
        worst.date
    );
    let listed: Vec<_> = stale
        .iter()
        .take(LISTED)
        .map(|(n, age)| json!({ "symbol": n.symbol, "newest_bar": n.date, "trading_days": age }))
        .collect();
    let details = json!({
        "today": today, "symbols": newest.len(), "stale_symbols": stale.len(), "stalest": listed,
        "newest_bar": freshest, "thresholds": t,
    });
    Evaluated::new(vec![Finding::new(rule, "bars", severity, summary, Some(max_age as f64), details)], note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Severity, rule_from_json};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn trading_days_skip_weekends() {
        // 2024-05-31 is a Friday.
        assert_eq!(trading_days_between(d("2024-05-31"), d("2024-05-31")), 0);
        assert_eq!(trading_days_between(d("2024-05-31"), d("2024-06-01")), 0); // Saturday
        assert_eq!(trading_days_between(d("2024-05-31"), d("2024-06-02")), 0); // Sunday
        assert_eq!(trading_days_between(d("2024-05-31"), d("2024-06-03")), 1); // Monday
        assert_eq!(trading_days_between(d("2024-06-01"), d("2024-06-03")), 1); // Saturday bar, Monday
        assert_eq!(trading_days_between(d("2024-05-27"), d("2024-06-03")), 5); // a week
        assert_eq!(trading_days_between(d("2023-06-02"), d("2024-05-31")), 260); // 52 weeks
        assert_eq!(trading_days_between(d("2024-06-03"), d("2024-05-31")), 0); // future bars are not stale
        // By brute force over a stretch of days.
        let from = d("2024-02-20");
        for k in 0..40 {
            let to = from + chrono::Days::new(k);
            let brute =
                (1..=k).filter(|i| (from + chrono::Days::new(*i)).weekday().num_days_from_monday() < 5).count() as i64;
            assert_eq!(trading_days_between(from, to), brute, "{from} to {to}");
        }
    }

    #[test]
    fn stale_symbols_raise_one_finding_with_the_worst_age() {
        let rule =
            rule_from_json(serde_json::json!({"id": "bars", "kind": "staleness", "warn": 3, "critical": 10})).unwrap();
        let t = rule.thresholds(&Default::default());
        let today = d("2024-06-05"); // Wednesday
        let n = |s: &str, date: &str| Newest { symbol: s.into(), date: d(date) };
        let fresh = [n("AAA", "2024-06-04"), n("BBB", "2024-05-31")];
        assert!(judge(&rule, t, &fresh, today).findings.is_empty()); // 1 and 3 trading days: not more than 3
        let some = [n("AAA", "2024-06-04"), n("BBB", "2024-05-30"), n("CCC", "2024-05-29")];
        let f = judge(&rule, t, &some, today).findings;
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].fingerprint.as_str(), f[0].severity, f[0].value), ("bars:bars", Severity::Warning, Some(5.0)));
        assert_eq!(f[0].details["stale_symbols"], 2);
        assert_eq!(f[0].details["stalest"][0]["symbol"], "CCC");
        assert!(f[0].summary.starts_with("2 of 3 symbols"), "{}", f[0].summary);
        let old = [n("AAA", "2024-05-01")];
        assert_eq!(judge(&rule, t, &old, today).findings[0].severity, Severity::Critical);
    }
}
