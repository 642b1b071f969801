//! HTTP request metrics as the host records them, and their Prometheus text rendering.
//!
//! The host counts every request in memory (no storage I/O on the request path) and writes a snapshot to
//! the `default` key-value store under `METRICS_KEY_PREFIX + host id` at most once a second when something
//! changed. The health component renders all hosts' snapshots at `GET /metrics`: several hosts sharing one
//! Redis appear summed, and the component stays the one place that speaks Prometheus.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// KV key prefix of host metric snapshots.
pub const METRICS_KEY_PREFIX: &str = "stockops/host-metrics/";

/// A live host rewrites its snapshot at least this often, even when idle.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// A snapshot older than this belongs to a host that died without removing it, and is not rendered.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(180);

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Requests of one (route, method, status): a count, a latency sum and histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSeries {
    /// The spin.toml route pattern that matched (`unmatched` for 404s), never the raw path.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
    /// Number of requests.
    pub count: u64,
    /// Sum of latencies in seconds.
    pub sum_s: f64,
    /// Per-bucket (not cumulative) counts, one per `LATENCY_BUCKETS_S` entry plus one for `+Inf`.
    pub buckets: Vec<u64>,
}

/// One host's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// Unique id of the host process.
    pub host_id: String,
    /// When the host started (RFC 3339).
    pub started_at: String,
    /// When this snapshot was written (RFC 3339).
    pub updated_at: String,
    /// Requests currently being served.
    pub in_flight: u64,
    /// Requests whose component trapped or failed to instantiate.
    pub component_failures: u64,
    /// Per-series counters.
    pub series: Vec<RouteSeries>,
}

/// Renders snapshots of every host as Prometheus text exposition format, summing hosts together.
/// `extra` holds gauges the caller adds (name, help, value).
pub fn render_prometheus(hosts: &[HostMetrics], extra: &[(&str, &str, f64)]) -> String {
    let mut merged: BTreeMap<(String, String, u16), RouteSeries> = BTreeMap::new();
    for h in hosts {
        for s in &h.series {
            let m = merged.entry((s.route.clone(), s.method.clone(), s.status)).or_insert_with(|| RouteSeries {
                route: s.route.clone(),
                method: s.method.clone(),
                status: s.status,
                buckets: vec![0; LATENCY_BUCKETS_S.len() + 1],
                ..Default::default()
            });
            m.count += s.count;
            m.sum_s += s.sum_s;
            for (dst, src) in m.buckets.iter_mut().zip(&s.buckets) {
                *dst += src;
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# HELP stockops_http_requests_total HTTP requests served, by route, method and status.");
    let _ = writeln!(out, "# TYPE stockops_http_requests_total counter");
    for s in merged.values() {
        let _ = writeln!(
            out,
            "stockops_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
            escape(&s.route),
            escape(&s.method),
            s.status,
            s.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP stockops_http_request_duration_seconds HTTP request latency, by route, method and status."
    );
    let _ = writeln!(out, "# TYPE stockops_http_request_duration_seconds histogram");
    for s in merged.values() {
        let labels = format!("route=\"{}\",method=\"{}\",status=\"{}\"", escape(&s.route), escape(&s.method), s.status);
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS_S.iter().enumerate() {
            cumulative += s.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "stockops_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "stockops_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "stockops_http_request_duration_seconds_sum{{{labels}}} {}", s.sum_s);
        let _ = writeln!(out, "stockops_http_request_duration_seconds_count{{{labels}}} {}", s.count);
    }
    let gauges: [(&str, &str, f64); 3] = [
        ("stockops_hosts", "Hosts that have reported metrics.", hosts.len() as f64),
        (
            "stockops_http_in_flight_requests",
            "Requests being served now, all hosts.",
            hosts.iter().map(|h| h.in_flight as f64).sum(),
        ),
        (
            "stockops_component_failures_total",
            "Requests whose component trapped or could not be instantiated, all hosts.",
            hosts.iter().map(|h| h.component_failures as f64).sum(),
        ),
    ];
    for (name, help, value) in gauges.iter().chain(extra) {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    out
}

/// Index of the histogram bucket a latency falls in (the last index is `+Inf`).
pub fn bucket_index(seconds: f64) -> usize {
    LATENCY_BUCKETS_S.iter().position(|le| seconds <= *le).unwrap_or(LATENCY_BUCKETS_S.len())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(route: &str, status: u16, latencies: &[f64]) -> RouteSeries {
        let mut s = RouteSeries {
            route: route.into(),
            method: "GET".into(),
            status,
            buckets: vec![0; LATENCY_BUCKETS_S.len() + 1],
            ..Default::default()
        };
        for l in latencies {
            s.count += 1;
            s.sum_s += l;
            s.buckets[bucket_index(*l)] += 1;
        }
        s
    }

    #[test]
    fn hosts_are_summed_and_buckets_are_cumulative() {
        let a = HostMetrics {
            host_id: "a".into(),
            series: vec![series("/health", 200, &[0.0004, 0.002])],
            ..Default::default()
        };
        let b = HostMetrics { host_id: "b".into(), series: vec![series("/health", 200, &[7.0])], ..Default::default() };
        let text = render_prometheus(&[a, b], &[("stockops_schema_version", "Schema version.", 1.0)]);
        assert!(text.contains("stockops_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 3"));
        assert!(text.contains("le=\"0.0005\"} 1"));
        assert!(text.contains("le=\"0.0025\"} 2"));
        assert!(text.contains("le=\"5\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains("stockops_hosts 2"));
        assert!(text.contains("# TYPE stockops_schema_version gauge\nstockops_schema_version 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        let h = HostMetrics { series: vec![series("/a\"b", 404, &[0.1])], ..Default::default() };
        assert!(render_prometheus(&[h], &[]).contains("route=\"/a\\\"b\""));
    }
}
