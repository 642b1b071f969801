//! Request metrics recorded in memory on the request path, and written as a snapshot to the `default`
//! key-value store at most once a second when something changed (see stockops_core::metrics for why).

use crate::key_value::Backend;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use stockops_core::metrics::{
    HEARTBEAT, HostMetrics, LATENCY_BUCKETS_S, METRICS_KEY_PREFIX, RouteSeries, bucket_index,
};

/// The host's counters.
pub struct Recorder {
    host_id: String,
    started_at: String,
    series: Mutex<HashMap<(String, String, u16), RouteSeries>>,
    in_flight: AtomicU64,
    failures: AtomicU64,
    dirty: AtomicBool,
}

/// A request in flight; dropping it ends the count.
pub struct InFlight<'a>(&'a Recorder);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.dirty.store(true, Ordering::Relaxed);
    }
}

impl Recorder {
    /// A recorder for this host process.
    pub fn new() -> Self {
        let host_id = format!("{}-{}", hostname(), std::process::id());
        Recorder {
            host_id,
            started_at: stockops_core::now_rfc3339(),
            series: Mutex::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dirty: AtomicBool::new(true),
        }
    }

    /// A request started: it counts as in flight until the guard drops (also when the client goes away
    /// and hyper drops the request's future before it finishes).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        InFlight(self)
    }

    /// A request finished with `status` after `seconds`.
    pub fn finish(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut series) = self.series.lock() {
            let s = series.entry((route.to_string(), method.to_string(), status)).or_insert_with(|| RouteSeries {
                route: route.to_string(),
                method: method.to_string(),
                status,
                buckets: vec![0; LATENCY_BUCKETS_S.len() + 1],
                ..Default::default()
            });
            s.count += 1;
            s.sum_s += seconds;
            s.buckets[bucket_index(seconds)] += 1;
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// A component trapped or could not be instantiated.
    pub fn component_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> HostMetrics {
        let mut series: Vec<RouteSeries> =
            self.series.lock().map(|s| s.values().cloned().collect()).unwrap_or_default();
        series.sort_by(|a, b| (&a.route, &a.method, a.status).cmp(&(&b.route, &b.method, b.status)));
        HostMetrics {
            host_id: self.host_id.clone(),
            started_at: self.started_at.clone(),
            updated_at: stockops_core::now_rfc3339(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            component_failures: self.failures.load(Ordering::Relaxed),
            series,
        }
    }

    /// Writes the snapshot if anything changed since the last write.
    pub async fn flush(&self, store: &Backend) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let key = format!("{METRICS_KEY_PREFIX}{}", self.host_id);
        match serde_json::to_vec(&self.snapshot()) {
            Ok(bytes) => {
                if let Err(e) = store.set(&key, bytes).await {
                    self.dirty.store(true, Ordering::Relaxed);
                    tracing::warn!("cannot write metrics snapshot: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot encode metrics snapshot: {e}"),
        }
    }

    /// Flushes once a second when something changed, and at least every `HEARTBEAT` so readers can
    /// tell a live host from a dead one by `updated_at`; runs until the task is dropped.
    pub async fn flush_every_second(&self, store: &Backend) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        let mut since_write = Duration::ZERO;
        loop {
            interval.tick().await;
            since_write += Duration::from_secs(1);
            if since_write >= HEARTBEAT {
                self.dirty.store(true, Ordering::Relaxed);
            }
            if self.dirty.load(Ordering::Relaxed) {
                self.flush(store).await;
                since_write = Duration::ZERO;
            }
        }
    }

    /// Removes this host's snapshot (on graceful shutdown: its counters leave with it).
    pub async fn remove(&self, store: &Backend) {
        if let Err(e) = store.delete(&format!("{METRICS_KEY_PREFIX}{}", self.host_id)).await {
            tracing::warn!("cannot remove metrics snapshot: {e}");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}
