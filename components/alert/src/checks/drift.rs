//! Drift: the population stability index (PSI) of live values against the reference distribution stored in
//! the watched version's card at training (`train_batch::reference`).
//!
//! PSI = Σ (a − e) · ln(a / e) over the reference's bins plus a NaN bin, where e and a are the reference's and
//! the live values' shares. A bin empty on one side would make the log infinite, so shares are floored at
//! [`EPSILON`] (a bin empty on both sides adds nothing).
//!
//! Feature drift bins the newest date's feature rows of the universe (every symbol with a bar on that date,
//! as predict scores them) per feature; score drift bins the watched version's logged scores over the window
//! (the latest score per symbol and date, so a symbol scored many times counts once).

use features::store::{self, CachePolicy, NamedSet};
use serde_json::json;
use stockops_core::{Database, KeyValue};
use train_batch::reference::{Binned, Reference};

use super::{Env, Evaluated, Finding, Halt, Watched, minutes_before, watched};
use crate::rules::Rule;

/// Floor of a share in the PSI sum.
pub const EPSILON: f64 = 1e-4;

/// How long feature rows computed here stay cached (as predict caches them; a new bar drops them sooner).
const FEATURE_TTL_SECS: u64 = 86_400;

/// PSI between aligned shares: `expected` (the reference) and `actual` (live).
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(EPSILON), a.max(EPSILON));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// PSI of `values` against a reference distribution, the NaN share as one more bin.
pub fn psi_against(reference: &Binned, values: &[f64]) -> f64 {
    let (shares, nan) = reference.shares_of(values);
    let expected: Vec<f64> = reference.shares.iter().copied().chain([reference.nan]).collect();
    let actual: Vec<f64> = shares.into_iter().chain([nan]).collect();
    psi(&expected, &actual)
}

/// The reference in the watched version's card; skipped (never a failure) when the card has none.
fn reference_of(w: &Watched) -> Result<Reference, Halt> {
    match Reference::from_card(&w.card) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Halt::Skip(format!(
            "no reference: {} has no reference distribution in its card (trained before references were stored, or \
             imported); retrain it to monitor drift",
            w.label()
        ))),
        Err(e) => Err(Halt::Fail(format!("{}: the card's reference is unreadable: {e}", w.label()))),
    }
}

pub(super) fn check_features<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let w = watched(env.db, rule)?;
    let reference = reference_of(&w)?;
    let set_name = w.feature_set.clone().ok_or_else(|| Halt::Skip(format!("{} has no feature set", w.label())))?;
    let set = match NamedSet::builtin(&set_name) {
        Some(set) => set,
        None => store::resolve_set(env.kv, &set_name)?
            .ok_or_else(|| Halt::Skip(format!("feature set {set_name} of {} is not defined", w.label())))?,
    };
    let date = store::newest_date(env.db)?.ok_or_else(|| Halt::Skip("no bars ingested".into()))?;
    let listed =
        env.db.execute("SELECT symbol FROM bars WHERE date = ? ORDER BY symbol", &[date.to_string().into()])?;
    let policy = CachePolicy { now: env.now.timestamp().max(0) as u64, ttl_secs: FEATURE_TTL_SECS, refresh: false };
    let names = set.names();
    let symbols: Vec<&str> = (0..listed.rows.len()).filter_map(|i| listed.text(i, "symbol")).collect();
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for row in store::features_on(env.db, env.kv, &set, &symbols, date, policy)?.into_iter().flatten() {
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    let rows = columns.first().map_or(0, Vec::len);
    let min_rows = rule.min_rows();
    if (rows as u64) < min_rows {
        return Err(Halt::Skip(format!("{rows} feature rows on {date}; at least {min_rows} needed")));
    }
    let mut psis: Vec<(&str, f64)> = names
        .iter()
        .zip(&columns)
        .filter_map(|(name, column)| Some((name.as_str(), psi_against(reference.features.get(name)?, column))))
        .collect();
    if psis.is_empty() {
        return Err(Halt::Skip(format!("no feature of set {set_name} has a reference in {}'s card", w.label())));
    }
    psis.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let t = rule.thresholds(&env.defaults);
    let drifting: Vec<(&str, f64)> = psis.iter().copied().filter(|(_, p)| rule.severity(t, *p).is_some()).collect();
    let note = format!(
        "{} on {date}: {rows} rows, {} features compared, largest PSI {:.4} ({}), {} drifting",
        w.label(),
        psis.len(),
        psis[0].1,
        psis[0].0,
        drifting.len()
    );
    let top: Vec<_> = psis.iter().take(10).map(|(n, p)| json!({ "feature": n, "psi": p })).collect();
    let findings = drifting
        .iter()
        .take(rule.top())
        .filter_map(|&(name, value)| {
            let severity = rule.severity(t, value)?;
            let summary = format!(
                "feature {name} drifts from {}'s reference: PSI {value:.4} on {date} ({} of {} features drift)",
                w.label(),
                drifting.len(),
                psis.len()
            );
            let details = json!({
                "model": w.model, "version": w.version, "alias": rule.alias(), "feature": name, "psi": value,
                "date": date, "rows": rows, "drifting_features": drifting.len(), "largest": top,
                "reference": { "segment": reference.segment, "rows": reference.rows, "from": reference.from, "to": reference.to },
                "thresholds": t,
            });
            Some(Finding::new(rule, &format!("feature:{name}"), severity, summary, Some(value), details))
        })
        .collect();
    Ok(Evaluated::new(findings, note))
}

pub(super) fn check_scores<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let w = watched(env.db, rule)?;
    let reference = reference_of(&w)?;
    let window = rule.window_minutes();
    // The latest score per (symbol, date); raw rows without a symbol or date count one by one.
    let rows = env.db.execute(
        "SELECT score FROM predictions WHERE id IN (SELECT max(id) FROM predictions \
         WHERE model = ? AND version = ? AND at >= ? GROUP BY coalesce(symbol, id), coalesce(date, id))",
        &[w.model.clone().into(), w.version.into(), minutes_before(env.now, window).into()],
    )?;
    let scores: Vec<f64> = (0..rows.rows.len()).filter_map(|i| rows.f64(i, "score")).collect();
    let min_rows = rule.min_rows();
    if (scores.len() as u64) < min_rows {
        return Err(Halt::Skip(format!(
            "{} scores of {} in the last {window} min; at least {min_rows} needed",
            scores.len(),
            w.label()
        )));
    }
    let value = psi_against(&reference.score, &scores);
    let note = format!("{}: {} scores in the last {window} min, PSI {value:.4}", w.label(), scores.len());
    let t = rule.thresholds(&env.defaults);
    let Some(severity) = rule.severity(t, value) else {
        return Ok(Evaluated::new(Vec::new(), note));
    };
    let (shares, nan) = reference.score.shares_of(&scores);
    let summary =
        format!("scores of {} drift from its reference: PSI {value:.4} over the last {window} min", w.label());
    let details = json!({
        "model": w.model, "version": w.version, "alias": rule.alias(), "psi": value, "scores": scores.len(),
        "window_minutes": window, "edges": reference.score.edges, "reference_shares": reference.score.shares,
        "live_shares": shares, "reference_nan": reference.score.nan, "live_nan": nan, "thresholds": t,
    });
    Ok(Evaluated::new(vec![Finding::new(rule, "score", severity, summary, Some(value), details)], note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        // Two bins: e = (0.5, 0.5), a = (0.6, 0.4): 0.1·ln(1.2) + (−0.1)·ln(0.8).
        let by_hand = 0.1 * 1.2f64.ln() - 0.1 * 0.8f64.ln();
        assert!((psi(&[0.5, 0.5], &[0.6, 0.4]) - by_hand).abs() < 1e-15);
        assert!((by_hand - 0.040_546_510_810_816_44).abs() < 1e-15);
        // Identical distributions: 0; the sum is symmetric in e and a.
        assert_eq!(psi(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]), 0.0);
        assert!((psi(&[0.2, 0.8], &[0.7, 0.3]) - psi(&[0.7, 0.3], &[0.2, 0.8])).abs() < 1e-15);
        // An empty live bin is floored at EPSILON: (1e-4 − 0.5)·ln(1e-4 / 0.5) + 0.5·ln(1 / 0.5).
        let floored = (EPSILON - 0.5) * (EPSILON / 0.5).ln() + 0.5 * 2f64.ln();
        assert!((psi(&[0.5, 0.5], &[0.0, 1.0]) - floored).abs() < 1e-12);
        assert!((floored - 4.604_318_466_668_95).abs() < 1e-12);
        // Empty on both sides adds nothing.
        assert_eq!(psi(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
    }

    #[test]
    fn psi_against_a_reference_counts_nan_as_a_bin() {
        let reference = Binned::from_values(&(1..=100).map(f64::from).collect::<Vec<_>>(), 10);
        let same: Vec<f64> = (1..=100).map(|i| f64::from(i) - 0.5).collect();
        assert!(psi_against(&reference, &same).abs() < 1e-12);
        // Everything in the top decile: e = 0.1 there, a = 1; nine bins from 0.1 to EPSILON; NaN bin empty both.
        let shifted = vec![1000.0; 50];
        let by_hand = (1.0 - 0.1) * (1.0f64 / 0.1).ln() + 9.0 * (EPSILON - 0.1) * (EPSILON / 0.1).ln();
        assert!((psi_against(&reference, &shifted) - by_hand).abs() < 1e-12);
        // Half the live values missing: the NaN bin (e = EPSILON, a = 0.5) and halved bins.
        let half: Vec<f64> = same.iter().enumerate().map(|(i, v)| if i % 2 == 0 { *v } else { f64::NAN }).collect();
        let by_hand = 10.0 * (0.05 - 0.1) * (0.05f64 / 0.1).ln() + (0.5 - EPSILON) * (0.5 / EPSILON).ln();
        assert!((psi_against(&reference, &half) - by_hand).abs() < 1e-12);
    }
}
