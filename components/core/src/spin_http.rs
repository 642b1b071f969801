//! What every component's HTTP entry point shares (wasm only): JSON answers, the one error shape,
//! bearer-token auth against the `api_token` variable (and the read-auth policy), query parameters, and
//! schema migration on first use.

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
