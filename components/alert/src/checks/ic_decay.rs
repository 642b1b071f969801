//! Live IC decay: the watched version's realised daily IC (its logged scores against LABEL0, the label it
//! was trained on, once the bars that define it exist), averaged over a rolling window of IC days; the rule
//! fires when that rolling mean stays below the threshold for N consecutive days.
//!
//! Daily IC is `train_batch::metrics::signal_report`'s (Pearson over the day's cross-section, the latest
//! score per symbol and date); days with fewer than `min_rows` scored symbols with a label have no IC.

use std::collections::HashMap;

use chrono::NaiveDate;
use features::store::{self, NamedSet};
use serde_json::json;
use stockops_core::{BarSeries, Database, KeyValue};
use train_batch::metrics::signal_report;

use super::{Env, Evaluated, Finding, Halt, watched};
use crate::rules::{Rule, Severity, Thresholds};

/// Extra prediction dates read beyond the days the rule needs: the newest two have no label yet, and some
/// days may have too few rows for an IC.
const SPARE_DATES: usize = 10;

/// Rolling means of `window` consecutive IC days, one per day from the `window`-th on.
pub fn rolling_means(ics: &[(NaiveDate, f64)], window: usize) -> Vec<(NaiveDate, f64)> {
    if window == 0 {
        return Vec::new();
    }
    ics.windows(window).map(|w| (w[w.len() - 1].0, w.iter().map(|(_, ic)| ic).sum::<f64>() / window as f64)).collect()
}

/// The severity whose threshold the last `consecutive` rolling means all breach (None when they do not, or
/// when there are fewer means than that).
pub fn decayed(rule: &Rule, t: Thresholds, means: &[(NaiveDate, f64)], consecutive: usize) -> Option<Severity> {
    if consecutive == 0 || means.len() < consecutive {
        return None;
    }
    let recent = &means[means.len() - consecutive..];
    // The least severe day decides: every one of the N days must be at least that bad.
    recent.iter().map(|(_, m)| rule.severity(t, *m)).min().flatten()
}

pub(super) fn check<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let w = watched(env.db, rule)?;
    let (rolling, consecutive) = (rule.rolling_days(), rule.consecutive_days());
    // Validation keeps both at 1 or more; saturating all the same, so no rule can panic the check.
    let needed = (rolling + consecutive).saturating_sub(1).max(1);
    let dates = env.db.execute(
        "SELECT DISTINCT date FROM predictions WHERE model = ? AND version = ? AND symbol IS NOT NULL \
         AND date IS NOT NULL ORDER BY date DESC LIMIT ?",
        &[w.model.clone().into(), w.version.into(), ((needed + SPARE_DATES) as i64).into()],
    )?;
    let from = dates
        .text(dates.rows.len().saturating_sub(1), "date")
        .ok_or_else(|| Halt::Skip(format!("no predictions of {} for a symbol and date", w.label())))?
        .to_string();
    let rows = env.db.execute(
        "SELECT symbol, date, score FROM predictions WHERE id IN (SELECT max(id) FROM predictions \
         WHERE model = ? AND version = ? AND symbol IS NOT NULL AND date >= ? GROUP BY symbol, date)",
        &[w.model.clone().into(), w.version.into(), from.clone().into()],
    )?;
    // LABEL0 per symbol from its bars since the first date (the label looks ahead only).
    let label_set = NamedSet::builtin("label").ok_or_else(|| Halt::Fail("the label set is not built in".into()))?;
    let first: Option<NaiveDate> = from.parse().ok();
    let mut labels: HashMap<String, HashMap<NaiveDate, f64>> = HashMap::new();
    let (mut days, mut scores, mut realised) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows.rows.len() {
        let (Some(symbol), Some(date), Some(score)) =
            (rows.text(i, "symbol"), rows.text(i, "date"), rows.f64(i, "score"))
        else {
            continue;
        };
        let Ok(date) = date.parse::<NaiveDate>() else { continue };
        if !labels.contains_key(symbol) {
            let bars = store::load_bars(env.db, symbol, first, None)?;
            let m = label_set
                .compute(&BarSeries::from_bars(symbol, &bars))
                .map_err(|e| Halt::Fail(format!("labels of {symbol}: {e}")))?;
            let column = m.columns.into_iter().next().unwrap_or_default();
            labels.insert(symbol.to_string(), m.dates.into_iter().zip(column).collect());
        }
        if let Some(label) = labels.get(symbol).and_then(|l| l.get(&date)).filter(|l| l.is_finite()) {
            days.push(date);
            scores.push(score);
            realised.push(*label);
        }
    }
    let report = signal_report(&days, &scores, &realised).map_err(|e| Halt::Fail(e.to_string()))?;
    let min_rows = rule.min_rows() as usize;
    let ics: Vec<(NaiveDate, f64)> =
        report.daily.iter().filter(|d| d.count >= min_rows).filter_map(|d| Some((d.date, d.ic?))).collect();
    if ics.len() < needed {
        return Err(Halt::Skip(format!(
            "{} days with a realised IC of {} (at least {min_rows} labelled scores each); {needed} needed",
            ics.len(),
            w.label()
        )));
    }
    let means = rolling_means(&ics, rolling);
    let t = rule.thresholds(&env.defaults);
    let Some(&(last_day, last_mean)) = means.last() else {
        return Err(Halt::Skip(format!("no rolling {rolling}-day mean IC of {} yet", w.label())));
    };
    let note = format!("{}: rolling {rolling}-day mean IC {last_mean:.4} on {last_day}", w.label());
    let Some(severity) = decayed(rule, t, &means, consecutive) else {
        return Ok(Evaluated::new(Vec::new(), note));
    };
    let limit = if severity == Severity::Critical { t.critical } else { t.warn }.unwrap_or_default();
    let summary = format!(
        "live IC of {} decayed: rolling {rolling}-day mean below {limit} for {consecutive} days (now {last_mean:.4})",
        w.label()
    );
    let recent = |v: &[(NaiveDate, f64)], n: usize| -> Vec<_> {
        v[v.len().saturating_sub(n)..].iter().map(|(d, x)| json!({ "date": d, "value": x })).collect()
    };
    let details = json!({
        "model": w.model, "version": w.version, "alias": rule.alias(), "rolling_days": rolling,
        "consecutive_days": consecutive, "rolling_mean_ic": recent(&means, consecutive),
        "daily_ic": recent(&ics, needed), "thresholds": t,
    });
    Ok(Evaluated::new(vec![Finding::new(rule, "ic", severity, summary, Some(last_mean), details)], note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::rule_from_json;

    fn days(ics: &[f64]) -> Vec<(NaiveDate, f64)> {
        let d0: NaiveDate = "2024-03-01".parse().unwrap();
        ics.iter().enumerate().map(|(i, ic)| (d0 + chrono::Days::new(i as u64), *ic)).collect()
    }

    #[test]
    fn rolling_means_by_hand() {
        let m = rolling_means(&days(&[0.1, 0.2, 0.3, -0.3, 0.0]), 3);
        let values: Vec<f64> = m.iter().map(|(_, v)| *v).collect();
        let expected = [0.2, 0.2 / 3.0, 0.0];
        assert!(values.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12), "{values:?}");
        assert_eq!(m[0].0, "2024-03-03".parse::<NaiveDate>().unwrap()); // a mean is dated by its last day
        assert!(rolling_means(&days(&[0.1]), 3).is_empty());
    }

    #[test]
    fn decay_needs_every_one_of_the_last_n_days_below() {
        let rule =
            rule_from_json(json!({"id": "ic", "kind": "ic_decay", "model": "m", "warn": 0.0, "critical": -0.05}))
                .unwrap();
        let t = rule.thresholds(&Default::default());
        let means = |v: &[f64]| days(v);
        // The last three: below 0 on two days only.
        assert_eq!(decayed(&rule, t, &means(&[-0.1, -0.1, 0.01, -0.02, -0.03]), 3), None);
        assert_eq!(decayed(&rule, t, &means(&[0.05, -0.01, -0.02, -0.03]), 3), Some(Severity::Warning));
        // Critical needs all three below −0.05; one day at −0.02 keeps it a warning.
        assert_eq!(decayed(&rule, t, &means(&[-0.06, -0.02, -0.07]), 3), Some(Severity::Warning));
        assert_eq!(decayed(&rule, t, &means(&[-0.06, -0.06, -0.07]), 3), Some(Severity::Critical));
        // Too few days to judge.
        assert_eq!(decayed(&rule, t, &means(&[-0.5, -0.5]), 3), None);
        // From daily ICs: a 2-day mean below 0 for 2 days in a row.
        let ics = days(&[0.04, 0.02, -0.03, -0.02, 0.01]);
        let m = rolling_means(&ics, 2); // 0.03, −0.005, −0.025, −0.005
        assert_eq!(decayed(&rule, t, &m, 2), Some(Severity::Warning));
        assert_eq!(decayed(&rule, t, &m[..2], 2), None);
    }
}
