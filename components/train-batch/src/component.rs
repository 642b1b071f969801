//! The Spin entry point: training jobs (`/api/train`), the registry (`/api/models`), and the scheduled
//! retrain of the champion's config. Jobs run here on one thread (small jobs; `stockops train` runs large
//! ones natively into the same registry). Logic lives in [`crate::job`] and [`crate::registry`].

use std::ops::ControlFlow;

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use stockops_core::ApiError;
use stockops_core::spin_backend::SpinKv;
use stockops_core::spin_http::{body, database, json, require_auth, require_read_auth, serve};

use crate::job::{self, JobSpec};
use crate::recovery;
use crate::registry;

/// Largest job spec (with its search space).
const MAX_JOB_BODY: usize = 256 * 1024;
/// Largest alias move.
const MAX_SMALL_BODY: usize = 16 * 1024;

#[http_component]
fn handle(req: Request) -> Response {
    serve(&req, route)
}

fn route(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let allowed: &[&str] = match segments[..] {
        ["api", "train"] => match method {
            Method::Post => return post_train(req),
            _ => &["POST"],
        },
        ["api", "train", id] => match method {
            Method::Get => return read(req, || Ok(json(200, &job::get_job(&settled_database()?, id)?))),
            _ => &["GET"],
        },
        ["api", "models"] => match method {
            Method::Get => {
                return read(req, || Ok(json(200, &json!({ "models": registry::list_models(&database()?)? }))));
            }
            _ => &["GET"],
        },
        ["api", "models", name] => match method {
            Method::Get => return read(req, || get_model(name)),
            _ => &["GET"],
        },
        ["api", "models", name, "versions", v] => match method {
            Method::Get => {
                return read(req, || Ok(json(200, &registry::get_version(&database()?, name, version(v)?)?)));
            }
            _ => &["GET"],
        },
        ["api", "models", name, "aliases", alias] => match method {
            Method::Put => return put_alias(req, name, alias),
            Method::Get => return read(req, || get_alias(name, alias)),
            _ => &["GET", "PUT"],
        },
        _ => return Err(ApiError::not_found(format!("no such path: {path}"))),
    };
    Err(ApiError::method_not_allowed(&method.to_string(), &path, allowed))
}

/// Runs a read handler behind the app's read-auth policy.
fn read(req: &Request, handler: impl FnOnce() -> Result<Response, ApiError>) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    handler()
}

fn version(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::bad_request("invalid", format!("version {text:?} is not a positive integer")))
}

/// How long after its start a component job still `running` counts as interrupted, unless the
/// `job_stale_after_secs` variable says otherwise: well past the host's default 300 s request timeout.
const DEFAULT_JOB_STALE_AFTER_SECS: i64 = 900;

/// The database, with jobs interrupted by a dead host settled first (see `recovery`), so no answer shows
/// them as running or their versions as in training.
fn settled_database() -> Result<stockops_core::spin_backend::SpinDb, ApiError> {
    let db = database()?;
    let stale_after = spin_sdk::variables::get("job_stale_after_secs")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_JOB_STALE_AFTER_SECS);
    recovery::settle_interrupted(&db, chrono::Utc::now(), stale_after)?;
    Ok(db)
}

/// `POST /api/train`: runs the job to completion and answers its record (201), or why it could not run.
fn post_train(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    let spec = JobSpec::from_json(body(req, MAX_JOB_BODY)?)?;
    let (db, kv) = (settled_database()?, SpinKv::open_default()?);
    let record = job::run(&db, &kv, &spec, "api", |_| ControlFlow::Continue(()))?;
    Ok(json(201, &record))
}

/// `GET /api/models/{name}`: the versions (newest first) and the alias history.
fn get_model(name: &str) -> Result<Response, ApiError> {
    let db = settled_database()?;
    let versions = registry::list_versions(&db, name)?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no model named {name}")));
    }
    // The listing leaves out the cards (large); a version's own page has it.
    let versions: Vec<_> = versions
        .into_iter()
        .map(|v| {
            json!({
                "version": v.version, "status": v.status, "created_at": v.created_at, "finished_at": v.finished_at,
                "job_id": v.job_id, "feature_set": v.feature_set, "metrics": v.metrics, "aliases": v.aliases,
                "error": v.error,
            })
        })
        .collect();
    let history = registry::alias_history(&db, name)?;
    Ok(json(200, &json!({ "name": name, "versions": versions, "alias_history": history })))
}

fn get_alias(name: &str, alias: &str) -> Result<Response, ApiError> {
    let db = database()?;
    let v = registry::resolve_alias(&db, name, alias)?
        .ok_or_else(|| ApiError::not_found(format!("model {name} has no alias {alias}")))?;
    Ok(json(200, &registry::get_version(&db, name, v)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    version: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    actor: Option<String>,
}

/// `PUT /api/models/{name}/aliases/{alias}` with `{"version": n, "reason": "...", "actor": "..."}`: moves the
/// alias atomically and answers the audit row.
fn put_alias(req: &Request, name: &str, alias: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let body: AliasBody = serde_json::from_slice(body(req, MAX_SMALL_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid", format!("alias body: {e} (expected {{\"version\": n}})")))?;
    // The shared API token names no person: the caller may say who they are, else it is "api".
    let actor = body.actor.as_deref().unwrap_or("api");
    let moved = registry::set_alias(&database()?, name, alias, body.version, actor, body.reason.as_deref())?;
    Ok(json(200, &moved))
}

/// The scheduled retrain: the champion's spec on the newest data, registered as `challenger`.
fn on_cron(_timestamp: u64) -> Result<(), String> {
    let db = settled_database().map_err(|e| e.message)?;
    let kv = SpinKv::open_default().map_err(|e| e.to_string())?;
    match job::retrain_champion(&db, &kv).map_err(|e| e.to_string())? {
        Some(job) => eprintln!("retrained {} as version {:?} (challenger), job {}", job.model, job.version, job.id),
        None => eprintln!("no champion trained by a job: nothing to retrain"),
    }
    Ok(())
}

stockops_core::export_cron_handler!(on_cron);
