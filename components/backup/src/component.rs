//! The Spin entry point: backups on demand and on the nightly schedule (`/api/backups`), their catalogue,
//! archives, verification and restore. Logic lives in [`crate::run`] and [`crate::catalog`]; this module
//! only speaks HTTP.

use chrono::Utc;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use stockops_core::ApiError;
use stockops_core::spin_backend::SpinKv;
use stockops_core::spin_http::{database, json, require_auth, require_read_auth, serve};

use crate::catalog::{self, STALE_WRITING_SECS, STORE_LABEL, Trigger};
use crate::run;
use crate::settings::Settings;

#[http_component]
fn handle(req: Request) -> Response {
    serve(&req, route)
}

fn route(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let allowed: &[&str] = match segments[..] {
        ["api", "backups"] => match method {
            Method::Post => return post_backup(req),
            Method::Get => return list(req),
            _ => &["GET", "POST"],
        },
        ["api", "backups", id] => match method {
            Method::Get => return get(req, id),
            Method::Delete => return delete(req, id),
            _ => &["DELETE", "GET"],
        },
        ["api", "backups", id, "archive"] => match method {
            Method::Get => return archive(req, id),
            _ => &["GET"],
        },
        ["api", "backups", id, "verify"] => match method {
            Method::Post => return verify(req, id),
            _ => &["POST"],
        },
        ["api", "backups", id, "restore"] => match method {
            Method::Post => return restore(req, id),
            _ => &["POST"],
        },
        _ => return Err(ApiError::not_found(format!("no such path: {path}"))),
    };
    Err(ApiError::method_not_allowed(&method.to_string(), &path, allowed))
}

/// The backup settings from this component's variables (`backup_key` required).
fn settings() -> Result<Settings, ApiError> {
    Ok(Settings::from_variables(|name| spin_sdk::variables::get(name).ok())?)
}

/// The key-value store that holds archives.
fn store() -> Result<SpinKv, ApiError> {
    Ok(SpinKv::open(STORE_LABEL)?)
}

/// `POST /api/backups`: takes a backup now (retention included); 201 with its record and what was pruned.
fn post_backup(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    let settings = settings()?;
    let (db, store, state) = (database()?, store()?, SpinKv::open_default()?);
    let done = run::run_backup(&db, &store, &state, &settings, Trigger::Api, Utc::now())?;
    Ok(json(201, &done))
}

/// `GET /api/backups`: every backup, newest first, after settling runs that died.
fn list(req: &Request) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let (db, store) = (database()?, store()?);
    catalog::recover_interrupted(&db, &store, Utc::now() - chrono::Duration::seconds(STALE_WRITING_SECS))?;
    Ok(json(200, &json!({ "backups": catalog::list(&db)? })))
}

/// `GET /api/backups/{id}`: one backup with its manifest.
fn get(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    catalog::check_id(id)?;
    Ok(json(200, &catalog::get(&database()?, id)?))
}

/// `DELETE /api/backups/{id}`: deletes a backup and its archive.
fn delete(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    catalog::delete(&database()?, &store()?, id)?;
    Ok(json(200, &json!({ "deleted": id })))
}

/// `GET /api/backups/{id}/archive`: the encrypted archive, for an off-site copy (`stockops restore FILE`
/// and `stockops backup verify FILE` read it as it is).
fn archive(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let (record, bytes) = catalog::read_archive(&database()?, &store()?, id)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .header("content-disposition", format!("attachment; filename=\"{}\"", catalog::archive_file_name(id)))
        .header("x-backup-sha256", record.sha256.unwrap_or_default())
        .body(bytes)
        .build())
}

/// `POST /api/backups/{id}/verify`: reads the stored archive back and verifies it completely.
fn verify(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let settings = settings()?;
    let record = run::verify_stored(&database()?, &store()?, id, &settings.passphrase)?;
    Ok(json(200, &record))
}

/// `POST /api/backups/{id}/restore`: replaces the data with the backup's, after verifying all of it.
fn restore(req: &Request, id: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let settings = settings()?;
    let (db, store, state) = (database()?, store()?, SpinKv::open_default()?);
    let report = run::restore_stored(&db, &store, &state, id, &settings.passphrase)?;
    Ok(json(200, &report))
}

/// The nightly backup: the same run as `POST /api/backups`, retention included.
fn on_cron(_timestamp: u64) -> Result<(), String> {
    let settings = settings().map_err(|e| e.message)?;
    let db = database().map_err(|e| e.message)?;
    let store = SpinKv::open(STORE_LABEL).map_err(|e| e.to_string())?;
    let state = SpinKv::open_default().map_err(|e| e.to_string())?;
    let done = run::run_backup(&db, &store, &state, &settings, Trigger::Cron, Utc::now()).map_err(|e| e.to_string())?;
    let size = done.record.size_bytes.unwrap_or_default();
    eprintln!("backup {} verified ({size} bytes); pruned {:?}", done.record.id, done.pruned);
    if let Some(e) = done.prune_error {
        eprintln!("retention stopped: {e}");
    }
    Ok(())
}

stockops_core::export_cron_handler!(on_cron);
