//! What every component's HTTP entry point shares (wasm only): JSON answers, the one error shape,
//! bearer-token auth against the `api_token` variable (and the read-auth policy), rate limiting, body
//! limits, query parameters, and schema migration on first use.

use crate::api_error::ApiError;
use chrono::NaiveDate;
use spin_sdk::http::{Request, Response};

/// A JSON answer with this status.
pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder().status(status).header("content-type", "application/json").body(bytes).build(),
        Err(e) => error(&ApiError::internal(format!("cannot encode answer: {e}"))),
    }
}

/// The one error shape as a response.
pub fn error(e: &ApiError) -> Response {
    Response::builder().status(e.status).header("content-type", "application/json").body(e.body()).build()
}

/// Runs a handler and turns its `ApiError` into the error shape, so handlers can use `?` throughout.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error(&e))
}

/// An API entry point: the rate limit first, then the route; every error in the one shape.
pub fn serve(req: &Request, route: impl FnOnce(&Request) -> Result<Response, ApiError>) -> Response {
    match rate_limit(req) {
        Ok(()) => respond(route(req)),
        Err(limited) => limited,
    }
}

/// Counts the request against `rate_limit_per_minute` (0 = off) per client: the API token's hash when the
/// request carries it, else the client address (so made-up tokens cannot buy fresh budgets). Over the
/// limit: 429 with `Retry-After`.
fn rate_limit(req: &Request) -> Result<(), Response> {
    let limit = match spin_sdk::variables::get("rate_limit_per_minute") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| {
            error(&ApiError::internal(format!("variable rate_limit_per_minute = {v:?} is not a whole number")))
        })?,
        Err(_) => return Ok(()),
    };
    if limit == 0 {
        return Ok(());
    }
    let header = |name: &str| req.header(name).and_then(|v| v.as_str()).unwrap_or("");
    let token = header("authorization").strip_prefix("Bearer ").filter(|given| {
        spin_sdk::variables::get("api_token").is_ok_and(|expected| {
            !expected.is_empty() && crate::constant_time_eq(given.as_bytes(), expected.as_bytes())
        })
    });
    let client = match token {
        // Never the token itself in a key: a short hash of it.
        Some(token) => format!("t-{}", &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token))[..16]),
        // The address without its port: a client opens many connections.
        None => format!("a-{}", crate::rate_limit::client_ip(header("spin-client-addr"))),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let kv = crate::spin_backend::SpinKv::open_default().map_err(|e| error(&e.into()))?;
    match crate::rate_limit::check(&kv, &client, limit, now) {
        Ok(crate::rate_limit::Decision::Allowed { .. }) => Ok(()),
        Ok(crate::rate_limit::Decision::Limited { retry_after_secs }) => {
            let e = ApiError::new(
                429,
                "rate_limited",
                format!("more than {limit} requests a minute; retry in {retry_after_secs} s"),
            );
            Err(Response::builder()
                .status(429)
                .header("content-type", "application/json")
                .header("retry-after", retry_after_secs.to_string())
                .body(e.body())
                .build())
        }
        // A broken counter store must not take the API down with it: serve, and say so in the log.
        Err(e) => {
            eprintln!("rate limit not applied: {e}");
            Ok(())
        }
    }
}

/// The request body when it is at most `limit` bytes; 413 otherwise. Each route sets its own limit (the host's
/// `--max-body-bytes` is only the outer bound, and the Spin CLI has none).
pub fn body(req: &Request, limit: usize) -> Result<&[u8], ApiError> {
    let body = req.body();
    if body.len() > limit {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!("request body is {} bytes; this route accepts at most {limit}", body.len()),
        ));
    }
    Ok(body)
}

/// Checks `Authorization: Bearer <api_token>` in constant time; 401 when missing or wrong,
/// 500 when the app has no token configured (writes are never open by accident).
pub fn require_auth(req: &Request) -> Result<(), ApiError> {
    let expected = spin_sdk::variables::get("api_token")
        .map_err(|e| ApiError::internal(format!("variable api_token is not available: {e}")))?;
    if expected.is_empty() {
        return Err(ApiError::internal("variable api_token is empty: set SPIN_VARIABLE_API_TOKEN"));
    }
    let given = req
        .header("authorization")
        .and_then(|v| v.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api_token> header"))?;
    if crate::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong api token"))
    }
}

/// The app's policy for reads: when the `require_auth_for_reads` variable is `true`, reads need the
/// same bearer token as writes.
pub fn require_read_auth(req: &Request) -> Result<(), ApiError> {
    if spin_sdk::variables::get("require_auth_for_reads").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        require_auth(req)?;
    }
    Ok(())
}

/// A request's query parameters (`a=1&b=2`, percent-decoded).
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a query string (without the `?`).
    pub fn parse(query: &str) -> Self {
        let pairs = query.split('&').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        });
        Query(pairs.collect())
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// A `YYYY-MM-DD` parameter; 400 when present but malformed.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| ApiError::bad_request("bad_query", format!("{name}={v:?} is not a YYYY-MM-DD date")))
            })
            .transpose()
    }
}

/// Percent-decoding with `+` as a space; malformed escapes stay as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens the default database and brings its schema up to date (a single query when it already is).
pub fn database() -> Result<crate::spin_backend::SpinDb, ApiError> {
    let db = crate::spin_backend::SpinDb::open_default()?;
    crate::schema::migrate(&db)?;
    Ok(db)
}
