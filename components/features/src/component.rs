//! The Spin entry point: bar ingest and reads (`/api/bars`), feature matrices (`/api/features`),
//! user-defined feature sets (`/api/features/sets/{name}`), and a cron job that refreshes the feature
//! cache. Storage and feature logic live in [`crate::store`]; this module only speaks HTTP.

use serde::Serialize;
use serde_json::json;
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, Method, OutgoingResponse, Request, Response, ResponseOutparam};
use spin_sdk::http_component;
use stockops_core::spin_backend::SpinKv;
use stockops_core::spin_http::{Query, body, database, json, require_auth, require_read_auth, respond, serve};
use stockops_core::{ApiError, Bar};

use crate::ingest::{self, IngestError};
use crate::store::{self, CacheFill, CachePolicy, DEFAULT_SETS, NamedSet, StoreError};

/// Cache lifetime when the variable is unset or unreadable.
const DEFAULT_TTL_SECS: u64 = 86_400;

/// Largest bars upload (a CSV of a few thousand symbols' years of daily bars).
const MAX_BARS_BODY: usize = 64 * 1024 * 1024;
/// Largest feature-set definition.
const MAX_SET_BODY: usize = 256 * 1024;

/// Answers, then writes the feature matrix a request computed to the cache: the client does not wait
/// for a 4 MB write it has no use for (a request just after may still miss; entries are keyed by the
/// bars' revision, so a late write is never stale).
#[http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    let mut fill = None;
    let resp = match Request::try_from_incoming_request(incoming).await {
        Ok(req) => serve(&req, |r| route(r, &mut fill)),
        Err(e) => respond(Err(ApiError::bad_request("bad_request", format!("cannot read the request: {e}")))),
    };
    send(out, resp).await;
    if let Some(fill) = fill
        && let Ok(kv) = SpinKv::open_default()
    {
        fill.write(&kv);
    }
}

/// Sends `resp` as the answer and finishes its body.
async fn send(out: ResponseOutparam, mut resp: Response) {
    let body = std::mem::take(resp.body_mut());
    match OutgoingResponse::try_from(resp) {
        Ok(outgoing) => {
            if let Err(e) = out.set_with_body(outgoing, body).await {
                eprintln!("cannot send the response: {e}");
            }
        }
        Err(e) => eprintln!("cannot convert the response: {e}"),
    }
}

fn route(req: &Request, fill: &mut Option<CacheFill>) -> Result<Response, ApiError> {
    let path = req.path().to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let allowed: &[&str] = match segments[..] {
        ["api", "bars"] => match method {
            Method::Post => return post_bars(req),
            Method::Get => return read(req, list_bars),
            _ => &["GET", "POST"],
        },
        ["api", "bars", symbol] => match method {
            Method::Get => return read(req, |r| get_bars(r, symbol)),
            _ => &["GET"],
        },
        ["api", "features", "sets", name] => match method {
            Method::Put => return put_set(req, name),
            Method::Get => return read(req, |_| get_set(name)),
            _ => &["GET", "PUT"],
        },
        ["api", "features", symbol] if symbol != "sets" => match method {
            Method::Get => return read(req, |r| get_features(r, symbol, fill)),
            _ => &["GET"],
        },
        _ => return Err(ApiError::not_found(format!("no such path: {path}"))),
    };
    Err(ApiError::method_not_allowed(&method.to_string(), &path, allowed))
}

/// Runs a read handler behind the app's read-auth policy.
fn read(req: &Request, handler: impl FnOnce(&Request) -> Result<Response, ApiError>) -> Result<Response, ApiError> {
    require_read_auth(req)?;
    handler(req)
}

/// `POST /api/bars`: CSV or JSON bars, validated whole, written in one transaction.
fn post_bars(req: &Request) -> Result<Response, ApiError> {
    require_auth(req)?;
    let query = Query::parse(req.query());
    let symbol = query.get("symbol");
    let body = body(req, MAX_BARS_BODY)?;
    let content_type = req.header("content-type").and_then(|v| v.as_str()).unwrap_or("").to_ascii_lowercase();
    // Content-Type decides; without a telling one, a body starting with `[` is JSON.
    let is_json = if content_type.contains("json") {
        true
    } else if content_type.contains("csv") {
        false
    } else {
        body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
    };
    let parsed = if is_json { ingest::parse_json(body, symbol) } else { ingest::parse_csv(body, symbol) };
    let bars = parsed.map_err(ingest_error)?;
    let db = database()?;
    let symbols = store::upsert_bars(&db, &bars)?;
    let kv = SpinKv::open_default()?;
    for s in &symbols {
        store::invalidate_symbol(&kv, s)?;
    }
    Ok(json(200, &json!({ "inserted_or_updated": bars.len(), "symbols": symbols })))
}

fn ingest_error(e: IngestError) -> ApiError {
    let code = match e {
        IngestError::BadRow { .. } => "bad_row",
        IngestError::Malformed { .. } => "malformed",
        IngestError::Empty | IngestError::MissingColumn { .. } | IngestError::NoSymbol => "bad_input",
    };
    ApiError::bad_request(code, e.to_string())
}

/// `GET /api/bars`: every symbol with its first and last date and bar count.
fn list_bars(_req: &Request) -> Result<Response, ApiError> {
    let db = database()?;
    Ok(json(200, &json!({ "symbols": store::list_symbols(&db).map_err(store_error)? })))
}

#[derive(Serialize)]
struct BarsAnswer<'a> {
    symbol: &'a str,
    count: usize,
    bars: Vec<Bar>,
}

/// `GET /api/bars/{symbol}?from=&to=`: the symbol's bars as stored.
fn get_bars(req: &Request, symbol: &str) -> Result<Response, ApiError> {
    let symbol = symbol.to_uppercase();
    let query = Query::parse(req.query());
    let (from, to) = (query.date("from")?, query.date("to")?);
    let db = database()?;
    let bars = store::load_bars(&db, &symbol, from, to).map_err(store_error)?;
    if bars.is_empty() && !store::has_symbol(&db, &symbol)? {
        return Err(ApiError::not_found(format!("no bars for symbol {symbol}")));
    }
    Ok(json(200, &BarsAnswer { symbol: &symbol, count: bars.len(), bars }))
}

#[derive(Serialize)]
struct Column<'a> {
    name: &'a str,
    /// NaN serialises as null.
    values: &'a [f64],
}

/// `GET /api/features/{symbol}?set=&from=&to=&format=json|csv`: the feature matrix, through the cache.
fn get_features(req: &Request, symbol: &str, fill: &mut Option<CacheFill>) -> Result<Response, ApiError> {
    let symbol = symbol.to_uppercase();
    let query = Query::parse(req.query());
    let (from, to) = (query.date("from")?, query.date("to")?);
    let set_name = query.get("set").unwrap_or("alpha158");
    let csv = match query.get("format").unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return Err(ApiError::bad_request("bad_query", format!("format {other:?}: use json or csv"))),
    };
    let db = database()?;
    let kv = SpinKv::open_default()?;
    let set = resolve(&kv, set_name)?;
    let found = store::features_deferring_write(&db, &kv, &set, &symbol, from, to, policy(false));
    let Some((computed, to_cache)) = found.map_err(store_error)? else {
        let what = if store::has_symbol(&db, &symbol)? { " up to the requested date" } else { "" };
        return Err(ApiError::not_found(format!("no bars for symbol {symbol}{what}")));
    };
    *fill = to_cache;
    let matrix = computed.matrix;
    let cache = if computed.cache_hit { "hit" } else { "miss" };
    if csv {
        let body = matrix.to_csv().map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?;
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "text/csv")
            .header("x-feature-cache", cache)
            .body(body)
            .build());
    }
    let columns: Vec<Column> =
        matrix.names.iter().zip(&matrix.columns).map(|(name, values)| Column { name, values }).collect();
    let mut resp = json(
        200,
        &json!({
            "symbol": symbol,
            "set": set.name(),
            "version": set.version(),
            "last_bar": computed.last_bar,
            "dates": matrix.dates,
            "columns": columns,
        }),
    );
    resp.set_header("x-feature-cache", cache);
    Ok(resp)
}

/// `PUT /api/features/sets/{name}`: defines (or replaces) a feature set from its JSON definition.
fn put_set(req: &Request, name: &str) -> Result<Response, ApiError> {
    require_auth(req)?;
    let text = std::str::from_utf8(body(req, MAX_SET_BODY)?)
        .map_err(|e| ApiError::bad_request("invalid_feature_set", format!("body is not UTF-8: {e}")))?;
    let kv = SpinKv::open_default()?;
    let set = store::define_set(&kv, name, text).map_err(store_error)?;
    Ok(json(200, &json!({ "name": set.name(), "version": set.version(), "features": set.names() })))
}

/// `GET /api/features/sets/{name}`: a set's name, version and feature names and expressions.
fn get_set(name: &str) -> Result<Response, ApiError> {
    let kv = SpinKv::open_default()?;
    let set = resolve(&kv, name)?;
    let features: Vec<serde_json::Value> = match set.expressions() {
        Some(s) => s.columns().iter().map(|(n, e)| json!({ "name": n, "expression": e.to_string() })).collect(),
        None => crate::indicators::TECHNICAL_COLUMNS.iter().map(|n| json!({ "name": n })).collect(),
    };
    Ok(json(200, &json!({ "name": set.name(), "version": set.version(), "features": features })))
}

fn resolve(kv: &SpinKv, name: &str) -> Result<NamedSet, ApiError> {
    store::resolve_set(kv, name).map_err(store_error)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no feature set {name:?}: use alpha158, alpha360, technical, label or one defined with PUT /api/features/sets/{{name}}"
        ))
    })
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Storage(e) => e.into(),
        e @ (StoreError::BadSetName(_) | StoreError::InvalidSet { .. }) => {
            ApiError::bad_request("invalid_feature_set", e.to_string())
        }
        e @ (StoreError::Corrupt { .. } | StoreError::Eval(_)) => ApiError::internal(e.to_string()),
    }
}

/// The cache policy now, with the `feature_cache_ttl_secs` variable.
fn policy(refresh: bool) -> CachePolicy {
    let ttl_secs = spin_sdk::variables::get("feature_cache_ttl_secs")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_TTL_SECS);
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    CachePolicy { now, ttl_secs, refresh }
}

/// Cron: recomputes and caches the default sets at every symbol's newest bar, then drops expired entries.
fn on_cron(_timestamp: u64) -> Result<(), String> {
    let db = database().map_err(|e| e.message)?;
    let kv = SpinKv::open_default().map_err(|e| e.to_string())?;
    let policy = policy(true);
    for summary in store::list_symbols(&db).map_err(|e| e.to_string())? {
        for name in DEFAULT_SETS {
            let set = NamedSet::builtin(name).ok_or_else(|| format!("built-in set {name} is missing"))?;
            store::features(&db, &kv, &set, &summary.symbol, None, None, policy)
                .map_err(|e| format!("{} {name}: {e}", summary.symbol))?;
        }
    }
    store::prune_expired(&kv, policy.now).map_err(|e| e.to_string())?;
    Ok(())
}

stockops_core::export_cron_handler!(on_cron);
