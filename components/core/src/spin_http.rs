//! What every component's HTTP entry point shares (wasm only): JSON answers, the one error shape,
//! bearer-token auth against the `api_token` variable, and schema migration on first use.

use crate::api_error::ApiError;
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

/// Opens the default database and brings its schema up to date (a single query when it already is).
pub fn database() -> Result<crate::spin_backend::SpinDb, ApiError> {
    let db = crate::spin_backend::SpinDb::open_default()?;
    crate::schema::migrate(&db)?;
    Ok(db)
}
