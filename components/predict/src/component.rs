//! The Spin entry point: scores (`/api/predict`) and champion/challenger experiments (`/api/experiments`).
//! Logic lives in [`crate::serving`]; this module only speaks HTTP.

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use stockops_core::ApiError;
use stockops_core::spin_backend::SpinKv;
use stockops_core::spin_http::{Query, body, database, json, require_auth, require_read_auth, serve};
use train_batch::registry;

use crate::serving::{self, Experiment, PredictRequest};

/// Largest predict request (raw feature rows for a few thousand symbols).
const MAX_PREDICT_BODY: usize = 8 * 1024 * 1024;
/// Largest experiment definition.
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
        ["api", "predict"] => match method {
            Method::Post => return post_predict(req),
            _ => &["POST"],
        },
        ["api", "predict", symbol] => match method {
            Method::Get => return get_predict(req, symbol),
            _ => &["GET"],
        },
        ["api", "experiments"] => match method {
            Method::Get => return list_experiments(req),
            _ => &["GET"],
        },
        ["api", "experiments", name] => match method {
            Method::Put => return put_experiment(req, name),
            Method::Get => return get_experiment(req, name),
            _ => &["GET", "PUT"],
        },
        ["api", "experiments", name, "promote"] => match method {
            Method::Post => return promote(req, name),
            _ => &["POST"],
        },
        _ => return Err(ApiError::not_found(format!("no such path: {path}"))),
    };
    Err(ApiError::method_not_allowed(&method.to_string(), &path, allowed))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `POST /api/predict`: symbols on a date (or the whole universe), or raw feature rows.
fn post_predict(req: &Request) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let body: PredictRequest = serde_json::from_slice(body(req, MAX_PREDICT_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid", format!("predict request: {e}")))?;
    let (db, kv) = (database()?, SpinKv::open_default()?);
    Ok(json(200, &serving::predict(&db, &kv, &body, now_unix())?))
}

/// `GET /api/predict/{symbol}?model=&date=&explain=&top=&allow_missing=`: one symbol, newest bar by default.
fn get_predict(req: &Request, symbol: &str) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let q = Query::parse(req.query());
    let flag = |name: &str| matches!(q.get(name), Some("1" | "true" | "yes"));
    let top = match q.get("top") {
        Some(t) => Some(t.parse().map_err(|_| ApiError::bad_request("invalid", format!("top={t}: not a count")))?),
        None => None,
    };
    let (db, kv) = (database()?, SpinKv::open_default()?);
    let symbol = symbol.to_uppercase();
    let date = match q.date("date")? {
        Some(d) => Some(d),
        None => Some(newest_bar(&db, &symbol)?),
    };
    let body = PredictRequest {
        model: q.get("model").map(str::to_string),
        alias: q.get("alias").map(str::to_string),
        symbols: vec![symbol],
        date,
        explain: flag("explain"),
        top,
        allow_missing: flag("allow_missing"),
        client: q.get("client").map(str::to_string),
        ..Default::default()
    };
    Ok(json(200, &serving::predict(&db, &kv, &body, now_unix())?))
}

fn newest_bar(db: &impl stockops_core::Database, symbol: &str) -> Result<chrono::NaiveDate, ApiError> {
    let rows = db.execute("SELECT max(date) AS d FROM bars WHERE symbol = ?", &[symbol.into()])?;
    rows.text(0, "d")
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| ApiError::new(422, "missing_features", format!("{symbol} has no bars")))
}

fn list_experiments(req: &Request) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let db = database()?;
    let reports = serving::list_experiments(&db)?
        .iter()
        .map(|e| serving::experiment_report(&db, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json(200, &json!({ "experiments": reports })))
}

fn find(db: &impl stockops_core::Database, name: &str) -> Result<Experiment, ApiError> {
    serving::list_experiments(db)?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no experiment named {name}")))
}

fn get_experiment(req: &Request, name: &str) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    let db = database()?;
    let e = find(&db, name)?;
    Ok(json(200, &serving::experiment_report(&db, &e)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentBody {
    model: String,
    challenger_share: f64,
    #[serde(default)]
    champion_alias: Option<String>,
    #[serde(default)]
    challenger_alias: Option<String>,
}

/// `PUT /api/experiments/{name}` with `{"model", "challenger_share", "champion_alias"?, "challenger_alias"?}`.
fn put_experiment(req: &Request, name: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let body: ExperimentBody = serde_json::from_slice(body(req, MAX_SMALL_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid", format!("experiment body: {e}")))?;
    registry::check_alias(name).map_err(|_| {
        ApiError::bad_request("invalid", format!("experiment name {name:?} must be 1 to 32 characters of a-z 0-9 _ -"))
    })?;
    let e = Experiment {
        name: name.to_string(),
        model: body.model,
        champion_alias: body.champion_alias.unwrap_or_else(|| "champion".into()),
        challenger_alias: body.challenger_alias.unwrap_or_else(|| "challenger".into()),
        challenger_share: body.challenger_share,
    };
    let db = database()?;
    serving::put_experiment(&db, &e)?;
    Ok(json(200, &serving::experiment_report(&db, &e)?))
}

/// `POST /api/experiments/{name}/promote`: the challenger's version becomes champion (an audited alias move).
fn promote(req: &Request, name: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let db = database()?;
    let e = find(&db, name)?;
    let version = registry::resolve_alias(&db, &e.model, &e.challenger_alias)?
        .ok_or_else(|| ApiError::not_found(format!("model {} has no alias {}", e.model, e.challenger_alias)))?;
    let reason = format!("promoted by experiment {name}");
    let moved = registry::set_alias(&db, &e.model, &e.champion_alias, version, "api", Some(&reason))?;
    Ok(json(200, &moved))
}
