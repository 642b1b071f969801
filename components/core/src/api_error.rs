//! The one HTTP error shape: `{"error": {"code": "...", "message": "..."}}` with a 4xx/5xx status.

use serde::Serialize;

/// An error answer: HTTP status, a stable machine code, and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Stable, snake_case code clients can branch on.
    pub code: String,
    /// Human-readable explanation, naming where in the input the problem is.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_string(), message: message.into() }
    }
    /// 400: the request is malformed or invalid.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    /// 401: missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }
    /// 404: nothing at that path or id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    /// 405: the path exists but not with that method; `allowed` lists the methods that are.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; allowed: {}", allowed.join(", ")),
        )
    }
    /// 500: a failure on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
    /// 501: the route exists but its capability is not built yet.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(501, "not_implemented", format!("{what} is not implemented yet"))
    }

    /// The JSON body of this error.
    pub fn body(&self) -> String {
        let env = Envelope { error: Body { code: &self.code, message: &self.message } };
        // Serialising two strings cannot fail.
        serde_json::to_string(&env).unwrap_or_else(|_| String::from("{\"error\":{}}"))
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        ApiError::new(500, "storage_error", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_one_error_shape() {
        let e = ApiError::bad_request("bad_row", "line 3: \"high\" below close");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "bad_row");
        assert_eq!(v["error"]["message"], "line 3: \"high\" below close");
    }
}
