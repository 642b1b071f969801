//! Error rate and p95 latency per route pattern, from the host's request metrics.
//!
//! Each host writes a snapshot of counters that are cumulative since it started
//! (`stockops_core::metrics`). To see a window, every evaluation stores a sample of those counters (per host,
//! per route: requests, 5xx, latency histogram) in the key-value store, and a window's counts are the
//! current sample minus the newest sample at least the window old. A host that started within the window
//! counts in full (its counters began inside it); one the base sample does not know is left out.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stockops_core::metrics::{HostMetrics, LATENCY_BUCKETS_S, METRICS_KEY_PREFIX};
use stockops_core::{Database, KeyValue, StorageError};

use super::{Env, Evaluated, Finding, Halt};
use crate::rules::{Kind, Rule};

/// KV key of the stored samples (one JSON list).
pub const SAMPLES_KEY: &str = "alert/metrics-samples";

/// One route's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests.
    pub requests: u64,
    /// Requests answered 5xx.
    pub errors: u64,
    /// Latency histogram: per-bucket counts over `LATENCY_BUCKETS_S` plus `+Inf`.
    pub buckets: Vec<u64>,
}

impl Counters {
    fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.errors += other.errors;
        add_buckets(&mut self.buckets, &other.buckets, |a, b| a + b);
    }

    /// `self − base`, floored at 0 per counter.
    fn minus(&self, base: &Counters) -> Counters {
        let mut buckets = self.buckets.clone();
        add_buckets(&mut buckets, &base.buckets, u64::saturating_sub);
        Counters {
            requests: self.requests.saturating_sub(base.requests),
            errors: self.errors.saturating_sub(base.errors),
            buckets,
        }
    }
}

fn add_buckets(into: &mut Vec<u64>, other: &[u64], f: impl Fn(u64, u64) -> u64) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(other) {
        *a = f(*a, *b);
    }
}

/// One host's counters at a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// The host's id.
    pub host_id: String,
    /// When it started (Unix seconds): a restarted host has new counters.
    pub started_at: i64,
    /// Counters per route pattern.
    pub routes: BTreeMap<String, Counters>,
}

/// Every host's counters at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When (Unix seconds).
    pub at: i64,
    /// Hosts.
    pub hosts: Vec<HostSample>,
}

/// A host snapshot as a sample: counters per route over methods and statuses.
pub fn host_sample(h: &HostMetrics) -> Option<HostSample> {
    let started_at = DateTime::parse_from_rfc3339(&h.started_at).ok()?.timestamp();
    let mut routes: BTreeMap<String, Counters> = BTreeMap::new();
    for s in &h.series {
        let c = Counters {
            requests: s.count,
            errors: if s.status >= 500 { s.count } else { 0 },
            buckets: s.buckets.clone(),
        };
        routes.entry(s.route.clone()).or_default().add(&c);
    }
    Some(HostSample { host_id: h.host_id.clone(), started_at, routes })
}

/// The stored samples and the one taken now.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Stored samples, oldest first.
    pub samples: Vec<Sample>,
    /// The counters now.
    pub current: Sample,
}

/// Reads every host's snapshot, stores it as a sample (at most one per `spacing`), drops samples no window
/// of up to `longest_window_secs` needs, and returns the history.
pub fn record(kv: &impl KeyValue, now: i64, longest_window_secs: i64) -> Result<History, StorageError> {
    let mut hosts = Vec::new();
    for key in kv.keys_with_prefix(METRICS_KEY_PREFIX)? {
        // A snapshot this build cannot read (another version mid-upgrade) is left out, not fatal.
        if let Some(h) = kv.get(&key)?.and_then(|b| serde_json::from_slice::<HostMetrics>(&b).ok())
            && let Some(s) = host_sample(&h)
        {
            hosts.push(s);
        }
    }
    let current = Sample { at: now, hosts };
    let stored: Vec<Sample> = kv.get(SAMPLES_KEY)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let samples = retain(stored.clone(), &current, longest_window_secs);
    if samples != stored {
        // Plain data always serialises.
        kv.set(SAMPLES_KEY, &serde_json::to_vec(&samples).unwrap_or_default())?;
    }
    Ok(History { samples, current })
}

/// The samples to keep after taking `current`: it is appended when the newest kept sample is at least a
/// spacing old (a minute, or 1/60 of the longest window), and samples older than the newest one at least
/// the longest window old are dropped (it is the base that window needs).
pub fn retain(mut samples: Vec<Sample>, current: &Sample, longest_window_secs: i64) -> Vec<Sample> {
    samples.retain(|s| s.at <= current.at);
    samples.sort_by_key(|s| s.at);
    let spacing = (longest_window_secs / 60).max(50);
    if samples.last().is_none_or(|s| s.at <= current.at.saturating_sub(spacing)) {
        samples.push(current.clone());
    }
    if let Some(base) = samples.iter().rposition(|s| s.at <= current.at.saturating_sub(longest_window_secs)) {
        samples.drain(..base);
    }
    samples
}

/// Per-route counts over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Counts per route, over every host that could be measured.
    pub routes: BTreeMap<String, Counters>,
    /// Seconds the counts actually cover (at least the window when a base sample was used).
    pub covered_secs: i64,
    /// Hosts measured.
    pub hosts: usize,
    /// Hosts left out: neither in the base sample nor started within the window.
    pub hosts_left_out: usize,
}

/// The counts of the last `window_secs`: see the module docs.
pub fn window(history: &History, window_secs: i64) -> Window {
    let now = history.current.at;
    let start = now.saturating_sub(window_secs);
    let base = history.samples.iter().rev().find(|s| s.at <= start);
    let mut routes: BTreeMap<String, Counters> = BTreeMap::new();
    let (mut hosts, mut left_out, mut since) = (0, 0, now);
    for h in &history.current.hosts {
        let same = base.and_then(|b| b.hosts.iter().find(|o| o.host_id == h.host_id && o.started_at == h.started_at));
        let counts: Vec<(&String, Counters)> = match (same, base) {
            (Some(old), Some(b)) => {
                since = since.min(b.at);
                let zero = Counters::default();
                h.routes.iter().map(|(r, c)| (r, c.minus(old.routes.get(r).unwrap_or(&zero)))).collect()
            }
            _ if h.started_at >= start => {
                since = since.min(h.started_at);
                h.routes.iter().map(|(r, c)| (r, c.clone())).collect()
            }
            _ => {
                left_out += 1;
                continue;
            }
        };
        hosts += 1;
        for (route, c) in counts {
            routes.entry(route.clone()).or_default().add(&c);
        }
    }
    Window { routes, covered_secs: now - since, hosts, hosts_left_out: left_out }
}

/// The `q`-quantile of a per-bucket histogram over `LATENCY_BUCKETS_S` + `+Inf`, as Prometheus'
/// `histogram_quantile` computes it: linear within the bucket that holds rank q·total (from 0 for the
/// first bucket); in the `+Inf` bucket, the largest finite bound. None for an empty histogram.
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let Some(&upper) = LATENCY_BUCKETS_S.get(i) else {
                return LATENCY_BUCKETS_S.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS_S[i - 1] };
            return Some(lower + (upper - lower) * (rank - below as f64) / count as f64);
        }
        below += count;
    }
    LATENCY_BUCKETS_S.last().copied()
}

pub(super) fn check<D: Database, K: KeyValue>(env: &Env<'_, D, K>, rule: &Rule) -> Result<Evaluated, Halt> {
    let history = env.metrics()?;
    if history.current.hosts.is_empty() {
        return Err(Halt::Skip(
            "no host request metrics in the key-value store (the stockops host writes them)".into(),
        ));
    }
    let window_secs = i64::try_from(rule.window_minutes().saturating_mul(60)).unwrap_or(i64::MAX);
    let w = window(history, window_secs);
    if w.hosts == 0 {
        let oldest = history.samples.first().map_or(0, |s| history.current.at - s.at);
        return Err(Halt::Skip(format!(
            "collecting samples: the oldest is {oldest} s old and the window is {window_secs} s"
        )));
    }
    Ok(judge(rule, rule.thresholds(&env.defaults), &w))
}

/// Findings (one per route) for a window's counts.
fn judge(rule: &Rule, t: crate::rules::Thresholds, w: &Window) -> Evaluated {
    let min = rule.min_rows();
    let mut findings = Vec::new();
    let mut judged = Vec::new();
    for (route, c) in &w.routes {
        if rule.route.as_ref().is_some_and(|r| r != route) || c.requests < min {
            continue;
        }
        let value = match rule.kind {
            Kind::LatencyP95 => match quantile(&c.buckets, 0.95) {
                Some(v) => v,
                None => continue,
            },
            _ => c.errors as f64 / c.requests as f64,
        };
        judged.push(format!("{route} {value:.4}"));
        let Some(severity) = rule.severity(t, value) else { continue };
        let window = rule.window_minutes();
        let summary = match rule.kind {
            Kind::LatencyP95 => format!("p95 latency of {route} is {value:.3} s over the last {window} min"),
            _ => format!(
                "{:.1}% of {route} requests failed (5xx) over the last {window} min ({} of {})",
                value * 100.0,
                c.errors,
                c.requests
            ),
        };
        let details = json!({
            "route": route, "requests": c.requests, "errors": c.errors, "value": value, "window_minutes": window,
            "covered_secs": w.covered_secs, "hosts": w.hosts, "hosts_left_out": w.hosts_left_out,
            "latency_buckets_s": LATENCY_BUCKETS_S, "buckets": c.buckets, "thresholds": t,
        });
        findings.push(Finding::new(rule, route, severity, summary, Some(value), details));
    }
    let note = if judged.is_empty() {
        format!("no route with at least {min} requests in the last {} s", w.covered_secs)
    } else {
        format!("over {} s on {} hosts: {}", w.covered_secs, w.hosts, judged.join(", "))
    };
    Evaluated::new(findings, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Severity, rule_from_json};
    use stockops_core::metrics::{RouteSeries, bucket_index};

    fn buckets(latencies: &[f64]) -> Vec<u64> {
        let mut b = vec![0; LATENCY_BUCKETS_S.len() + 1];
        for l in latencies {
            b[bucket_index(*l)] += 1;
        }
        b
    }

    fn counters(requests: u64, errors: u64, latencies: &[f64]) -> Counters {
        Counters { requests, errors, buckets: buckets(latencies) }
    }

    /// (host id, started at, counters per route).
    type HostSpec<'a> = (&'a str, i64, &'a [(&'a str, Counters)]);

    fn sample(at: i64, hosts: &[HostSpec]) -> Sample {
        Sample {
            at,
            hosts: hosts
                .iter()
                .map(|(id, started, routes)| HostSample {
                    host_id: id.to_string(),
                    started_at: *started,
                    routes: routes.iter().map(|(r, c)| (r.to_string(), c.clone())).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn p95_from_bucket_counts_by_hand() {
        // 100 requests: 90 in (0.005, 0.01], 10 in (0.1, 0.25]. Rank 95 falls in the second: 0.1 + 0.15 · 5/10.
        let mut b = vec![0; LATENCY_BUCKETS_S.len() + 1];
        b[4] = 90;
        b[8] = 10;
        assert!((quantile(&b, 0.95).unwrap() - 0.175).abs() < 1e-12);
        // All in the first bucket: linear from 0.
        let mut first = vec![0; LATENCY_BUCKETS_S.len() + 1];
        first[0] = 20;
        assert!((quantile(&first, 0.95).unwrap() - 0.000_475).abs() < 1e-12);
        // Beyond the last bound: the largest finite bound.
        let slow = buckets(&[7.0; 10]);
        assert_eq!(quantile(&slow, 0.95), Some(5.0));
        assert_eq!(quantile(&[0; 13], 0.95), None);
        // From a difference of cumulative counters: only the window's requests count.
        let before = counters(100, 0, &[0.007; 100]);
        let after = counters(200, 0, &[&[0.007; 100][..], &[0.3; 100][..]].concat());
        let diff = after.minus(&before);
        assert_eq!(diff.requests, 100);
        // All 100 in (0.25, 0.5]: 0.25 + 0.25 · 95/100.
        assert!((quantile(&diff.buckets, 0.95).unwrap() - 0.4875).abs() < 1e-12);
    }

    #[test]
    fn host_snapshots_become_route_counters() {
        let s = |route: &str, status: u16, latencies: &[f64]| RouteSeries {
            route: route.into(),
            method: "POST".into(),
            status,
            count: latencies.len() as u64,
            sum_s: latencies.iter().sum(),
            buckets: buckets(latencies),
        };
        let h = HostMetrics {
            host_id: "h1".into(),
            started_at: "2024-06-05T12:00:00Z".into(),
            series: vec![s("/api/predict/...", 200, &[0.01, 0.02]), s("/api/predict/...", 503, &[0.3])],
            ..Default::default()
        };
        let sample = host_sample(&h).unwrap();
        assert_eq!(sample.started_at, 1_717_588_800);
        let c = &sample.routes["/api/predict/..."];
        assert_eq!((c.requests, c.errors, c.buckets.iter().sum::<u64>()), (3, 1, 3));
        assert!(host_sample(&HostMetrics { started_at: "yesterday".into(), ..h }).is_none());
    }

    #[test]
    fn windows_diff_against_the_newest_sample_old_enough_and_count_new_hosts_in_full() {
        let r = "/api/predict/...";
        let samples = vec![
            sample(1000, &[("a", -10_000, &[(r, counters(100, 1, &[]))])]),
            sample(1600, &[("a", -10_000, &[(r, counters(150, 2, &[]))])]),
            sample(2000, &[("a", -10_000, &[(r, counters(190, 9, &[]))])]),
        ];
        let current =
            sample(2200, &[("a", -10_000, &[(r, counters(200, 12, &[]))]), ("b", 1900, &[(r, counters(10, 5, &[]))])]);
        let history = History { samples, current };
        // 10-minute window: base is the sample at 1600 (the newest at or before 1600); host b started at 1900.
        let w = window(&history, 600);
        assert_eq!((w.routes[r].requests, w.routes[r].errors), (50 + 10, 10 + 5));
        assert_eq!((w.covered_secs, w.hosts, w.hosts_left_out), (600, 2, 0));
        // A window reaching before every sample: host a (started long before) cannot be measured; host b started
        // within it.
        let w = window(&history, 5000);
        assert_eq!((w.routes[r].requests, w.hosts, w.hosts_left_out), (10, 1, 1));
        // A restarted host (new start time) counts from its start, not from the stale base.
        let restarted = History {
            samples: history.samples.clone(),
            current: sample(2200, &[("a", 2100, &[(r, counters(7, 7, &[]))])]),
        };
        let w = window(&restarted, 600);
        assert_eq!((w.routes[r].requests, w.routes[r].errors, w.covered_secs), (7, 7, 100));
    }

    #[test]
    fn samples_are_thinned_and_pruned_to_the_longest_window() {
        let s = |at| sample(at, &[]);
        let kept = retain(vec![s(0), s(60), s(120), s(180)], &s(200), 90);
        // 200 − 180 < 50: not appended; the base for 90 s is the newest at or before 110 (60).
        assert_eq!(kept.iter().map(|s| s.at).collect::<Vec<_>>(), vec![60, 120, 180]);
        let kept = retain(kept, &s(240), 90);
        assert_eq!(kept.iter().map(|s| s.at).collect::<Vec<_>>(), vec![120, 180, 240]);
        assert_eq!(retain(Vec::new(), &s(5), 900).len(), 1);
    }

    #[test]
    fn error_rate_and_latency_findings_per_route() {
        let rate = rule_from_json(json!({"id": "err", "kind": "error_rate", "min_rows": 10})).unwrap();
        let mut routes = BTreeMap::new();
        routes.insert("/api/predict/...".to_string(), counters(100, 25, &[0.3; 100]));
        routes.insert("/api/bars/...".to_string(), counters(50, 3, &[0.001; 50]));
        routes.insert("/health".to_string(), counters(5, 5, &[0.001; 5])); // too few requests to judge
        let w = Window { routes, covered_secs: 900, hosts: 1, hosts_left_out: 0 };
        let f = judge(&rate, rate.thresholds(&Default::default()), &w).findings;
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].fingerprint.as_str(), f[0].severity), ("err:/api/bars/...", Severity::Warning));
        assert_eq!(
            (f[1].fingerprint.as_str(), f[1].severity, f[1].value),
            ("err:/api/predict/...", Severity::Critical, Some(0.25))
        );
        let only =
            rule_from_json(json!({"id": "lat", "kind": "latency_p95", "route": "/api/predict/...", "warn": 0.2}))
                .unwrap();
        let f = judge(&only, only.thresholds(&Default::default()), &w).findings;
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].fingerprint.as_str(), f[0].severity), ("lat:/api/predict/...", Severity::Warning));
        assert!((f[0].value.unwrap() - 0.4875).abs() < 1e-12);
    }
}
