//! Outbound HTTP from components, allowed only to the destinations a component lists in
//! `allowed_outbound_hosts` (`scheme://host:port`, `*` wildcards for host or port, as in Spin).

use anyhow::{Result, bail};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: String,
    port: Option<String>,
}

impl AllowedHost {
    /// Parses `scheme://host[:port]` where scheme, host and port may be `*` (and host `*.domain`).
    pub fn parse(text: &str) -> Result<Self> {
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("`{text}` needs a scheme, e.g. https://{text}");
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            bail!("`{text}`: paths are not allowed, only scheme://host:port");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h, Some(p.to_string())),
            _ => (rest, None),
        };
        if host.is_empty() {
            bail!("`{text}` has no host");
        }
        Ok(AllowedHost { scheme: scheme.to_ascii_lowercase(), host: host.to_ascii_lowercase(), port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let host_ok = self.host == "*"
            || self.host == host
            || self.host.strip_prefix("*.").is_some_and(|d| host.ends_with(&format!(".{d}")));
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port_ok = match &self.port {
            None => port == default_port,
            Some(p) if p == "*" => true,
            Some(p) => p.parse::<u16>().is_ok_and(|p| p == port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// The wasi:http hooks of one instance: the default sender behind an allow-list check.
pub struct OutboundHooks {
    /// Where this component may send requests.
    pub allowed: std::sync::Arc<Vec<AllowedHost>>,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = std::result::Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = std::result::Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = std::result::Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !self.allowed.iter().any(|a| a.allows(&scheme, &host, port)) {
            tracing::warn!(%scheme, %host, port, "outbound request denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
        }
        let mut default = DefaultHooks;
        default.send_request(request, options, fut)
    }
}

/// wasmtime-wasi-http's own sender, for the requests the allow-list lets through.
struct DefaultHooks;
impl WasiHttpHooks for DefaultHooks {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_like_spin() {
        let a = AllowedHost::parse("http://127.0.0.1:*").unwrap();
        assert!(a.allows("http", "127.0.0.1", 8080));
        assert!(!a.allows("https", "127.0.0.1", 8080));
        let b = AllowedHost::parse("https://hooks.slack.com").unwrap();
        assert!(b.allows("https", "hooks.slack.com", 443));
        assert!(!b.allows("https", "hooks.slack.com", 8443));
        let c = AllowedHost::parse("https://*.example.com").unwrap();
        assert!(c.allows("https", "api.example.com", 443));
        assert!(!c.allows("https", "example.org", 443));
        assert!(AllowedHost::parse("example.com").is_err());
        assert!(AllowedHost::parse("https://example.com/path").is_err());
    }
}
