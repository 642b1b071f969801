//! `stockops up`: the HTTP server. Routes each request as Spin does, runs it in a fresh instance of its
//! component, limits bodies, records metrics, writes one access-log line, and shuts down gracefully.

use crate::app::App;
use crate::metrics::Recorder;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockops_core::ApiError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a component may run for one request.
    pub request_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

struct Server {
    app: Arc<App>,
    opts: ServerOptions,
    metrics: Arc<Recorder>,
    slots: Arc<Semaphore>,
}

/// Serves the app on `listener` until SIGINT or SIGTERM, then drains requests in flight.
pub async fn serve(app: Arc<App>, listener: TcpListener, opts: ServerOptions, metrics: Arc<Recorder>) -> Result<()> {
    let slots = Arc::new(Semaphore::new(app.limits.max_instances as usize));
    let server = Arc::new(Server { app, opts, metrics, slots });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                let service = service_fn(move |req| { let server = server.clone(); async move { Ok::<_, std::convert::Infallible>(server.handle(req, peer).await) } });
                let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            signal = &mut shutdown => {
                tracing::info!("{signal} received: no new connections, draining requests in flight");
                break;
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(server.opts.shutdown_grace) => tracing::warn!("requests still in flight after {:?}; stopping anyway", server.opts.shutdown_grace),
    }
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn error_response(e: &ApiError) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(e.body())).map_err(|never| match never {}).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

impl Server {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let _in_flight = self.metrics.start();
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let (route, component, resp) = match self.app.router.route(&path) {
            None => (
                "unmatched".to_string(),
                "-".to_string(),
                error_response(&ApiError::not_found(format!("no route matches {path}"))),
            ),
            Some(m) => {
                let (route, component) = (m.pattern.to_string(), m.component.to_string());
                let resp = match self.dispatch(req, &m, peer).await {
                    Ok(r) => r,
                    Err(e) => error_response(&e),
                };
                (route, component, resp)
            }
        };
        let status = resp.status().as_u16();
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.finish(&route, &method, status, seconds);
        tracing::info!(target: "access", %method, %path, %route, %component, status, ms = format!("{:.3}", seconds * 1000.0), "request");
        resp
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        m: &crate::router::RouteMatch<'_>,
        peer: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>, ApiError> {
        let limit = self.opts.max_body_bytes;
        let too_large = || {
            ApiError::new(413, "payload_too_large", format!("request body is larger than the limit of {limit} bytes"))
        };
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let (mut parts, body) = req.into_parts();
        // Read the whole body under the limit before instantiating, so an oversized chunked upload is
        // refused with a clean 413 and never reaches the component.
        let body = Limited::new(body, limit).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                too_large()
            } else {
                ApiError::bad_request("bad_body", format!("cannot read request body: {e}"))
            }
        })?;
        let body = body.to_bytes();

        let host =
            parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let full_url = format!("http://{host}{path_and_query}");
        parts.uri = full_url.parse().map_err(|e| ApiError::bad_request("bad_uri", format!("bad request URI: {e}")))?;
        let headers = &mut parts.headers;
        let mut set = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
            {
                headers.insert(n, v);
            }
        };
        set("host", &host);
        set("spin-full-url", &full_url);
        set("spin-path-info", &m.path_info);
        set("spin-matched-route", m.pattern);
        set("spin-raw-component-route", m.pattern);
        set("spin-component-route", m.pattern.trim_end_matches("/..."));
        set("spin-base-path", "/");
        set("spin-client-addr", &peer.to_string());
        for (name, value) in &m.params {
            set(&format!("spin-path-match-{name}"), value);
        }
        let req = Request::from_parts(
            parts,
            Full::new(body).map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} }),
        );

        let c = self
            .app
            .components
            .get(m.component)
            .ok_or_else(|| ApiError::internal(format!("component `{}` is not loaded", m.component)))?;
        let proxy_pre = c
            .proxy
            .as_ref()
            .ok_or_else(|| ApiError::internal(format!("component `{}` has no HTTP handler", m.component)))?;
        // Owned, and moved into the task that runs the guest: an instance counts against the limit until it
        // ends, even when the client went away and this future was dropped.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(503, "shutting_down", "the server is shutting down"))?;
        let mut store = crate::engine::store(
            &self.app.engine,
            c.policy.clone(),
            self.app.services.clone(),
            &self.app.limits,
            self.opts.request_timeout,
        );
        let component = m.component.to_string();
        let failed = |what: &str, e: anyhow::Error| {
            self.metrics.component_failure();
            tracing::error!(%component, "{what}: {e:#}");
            ApiError::internal(format!("component `{component}` {what}"))
        };
        let proxy =
            proxy_pre.instantiate_async(&mut store).await.map_err(|e| failed("could not be instantiated", e.into()))?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let wasi_req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| failed("could not receive the request", e.into()))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| failed("could not receive the request", e.into()))?;
        // The guest keeps running after it has sent headers (it streams the body), so it runs in its own task.
        let task = tokio::spawn(async move {
            let _slot = slot;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, wasi_req, out).await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(failed("answered with an error", anyhow::anyhow!("{code:?}"))),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("returned without sending a response"),
                    Ok(Err(e)) => e.into(),
                    Err(e) => anyhow::anyhow!("task failed: {e}"),
                };
                Err(failed("trapped", e))
            }
        }
    }
}

/// Binds the listen address, with the address in the error when it is taken.
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}
