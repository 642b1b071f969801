//! Notifications over wasi:http (wasm only). spin-sdk's `send` passes no request options, so the request is
//! made with the wasi:http bindings directly: connect, first-byte and between-bytes timeouts per attempt (the
//! stockops host passes them to wasmtime-wasi-http's sender, which honours all three), and the response
//! awaited by blocking on its pollable. Only hosts in the component's `allowed_outbound_hosts` are reachable.

use std::time::Duration;

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

use crate::notify::{Endpoint, Transport};

/// wasi:http's `blocking-write-and-flush` takes at most this many bytes per call.
const WRITE_CHUNK: usize = 4096;

/// The component's sender.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn post(
        &mut self,
        endpoint: &Endpoint,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, String> {
        let mut entries: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
        entries.push(("content-length".into(), body.len().to_string().into_bytes()));
        let fields = Fields::from_list(&entries).map_err(|e| format!("request headers: {e:?}"))?;
        let request = OutgoingRequest::new(fields);
        let scheme = if endpoint.https { Scheme::Https } else { Scheme::Http };
        let refused = |what: &str| format!("the request's {what} was refused");
        request.set_method(&Method::Post).map_err(|()| refused("method"))?;
        request.set_scheme(Some(&scheme)).map_err(|()| refused("scheme"))?;
        request.set_authority(Some(&endpoint.authority)).map_err(|()| refused("host"))?;
        request.set_path_with_query(Some(&endpoint.path_and_query)).map_err(|()| refused("path"))?;
        let outgoing_body = request.body().map_err(|()| refused("body"))?;

        let options = RequestOptions::new();
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        // A host that cannot set a timeout refuses the setter: send anyway rather than not at all.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));

        let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("sending: {e}"))?;
        let written = write_body(outgoing_body, body);
        pending.subscribe().block();
        // When the host refused the request (not an allowed host, say) the body write failed too: the
        // response's error code says why, so it comes first.
        let status = match pending.get() {
            Some(Ok(Ok(response))) => response.status(),
            Some(Ok(Err(code))) => return Err(code.to_string()),
            Some(Err(())) => return Err("the response was already taken".into()),
            None => return Err("no response after the wait".into()),
        };
        written.map(|()| status)
    }

    fn pause(&mut self, wait: Duration) {
        std::thread::sleep(wait);
    }
}

/// Writes and finishes a request body.
fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing.write().map_err(|()| "the request body stream was refused".to_string())?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("writing the body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("finishing the body: {e}"))
}
