//! The Spin entry point: `GET /health` and `GET /metrics`.

use crate::checks::{self, Limits};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use stockops_core::metrics::{HostMetrics, METRICS_KEY_PREFIX, STALE_AFTER, render_prometheus};
use stockops_core::spin_backend::{SpinDb, SpinKv};
use stockops_core::spin_http::{json, respond};
use stockops_core::{ApiError, KeyValue, schema};

#[http_component]
fn handle(req: Request) -> Response {
    let path = req.path().to_string();
    respond(match (req.method(), path.as_str()) {
        (Method::Get, "/health") => Ok(health()),
        (Method::Get, "/metrics") => metrics(),
        (_, "/health" | "/metrics") => Err(ApiError::method_not_allowed(&req.method().to_string(), &path, &["GET"])),
        _ => Err(ApiError::not_found(format!("no such path: {path}"))),
    })
}

fn limits() -> Limits {
    let d = Limits::default();
    let var = |name: &str, default: i64| {
        spin_sdk::variables::get(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    };
    Limits {
        bar_max_age_days: var("bar_max_age_days", d.bar_max_age_days),
        backup_max_age_hours: var("backup_max_age_hours", d.backup_max_age_hours),
    }
}

fn health() -> Response {
    let start = std::time::Instant::now();
    let clock = move || start.elapsed().as_secs_f64() * 1000.0;
    let db = SpinDb::open_default().ok();
    let kv = SpinKv::open_default().ok();
    let report = checks::run(db.as_ref(), kv.as_ref(), limits(), chrono::Utc::now(), &clock);
    json(report.http_status(), &report)
}

/// Whether a snapshot is fresh enough to belong to a running host.
fn is_live(h: &HostMetrics) -> bool {
    chrono::DateTime::parse_from_rfc3339(&h.updated_at)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default() < STALE_AFTER)
        .unwrap_or(false)
}

fn metrics() -> Result<Response, ApiError> {
    let kv = SpinKv::open_default()?;
    let mut hosts = Vec::new();
    for key in kv.keys_with_prefix(METRICS_KEY_PREFIX)? {
        if let Some(bytes) = kv.get(&key)? {
            // A snapshot this build cannot read (another version mid-upgrade) is skipped, not fatal.
            if let Ok(h) = serde_json::from_slice::<HostMetrics>(&bytes)
                && is_live(&h)
            {
                hosts.push(h);
            }
        }
    }
    let schema_version =
        SpinDb::open_default().and_then(|db| schema::current_version(&db)).map(|v| v as f64).unwrap_or(-1.0);
    let extra = [("stockops_schema_version", "Schema version of the database (-1 when unreadable).", schema_version)];
    let body = render_prometheus(&hosts, &extra);
    Ok(Response::builder().status(200).header("content-type", "text/plain; version=0.0.4").body(body).build())
}
