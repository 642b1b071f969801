//! The Spin entry point. Until its issue lands, every route answers 501 with the one error shape:
//! never a fake result.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use stockops_core::ApiError;
use stockops_core::spin_http::error;

const CAPABILITY: &str = "serving predictions (issue 5: predict)";

#[http_component]
fn handle(_req: Request) -> Response {
    error(&ApiError::not_implemented(CAPABILITY))
}
