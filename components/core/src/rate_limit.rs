//! Fixed-window rate limiting with counters in the key-value store, so the limit holds across instances and
//! hosts sharing one store (Spin makes a fresh instance per request: nothing else would survive).
//!
//! A window is one wall-clock minute. Each request increments `ratelimit/{client}/{minute}`; the first
//! request of a window deletes the client's counter from two windows back, so an active client keeps at
//! most two keys. `sweep` removes what clients that went quiet left behind.

use crate::storage::{KeyValue, StorageError};

/// KV key prefix of rate-limit counters.
pub const KEY_PREFIX: &str = "ratelimit/";

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit: this is the window's `count`-th request.
    Allowed { count: i64 },
    /// Over the limit: retry after this many seconds (the rest of the window).
    Limited { retry_after_secs: u64 },
}

fn counter_key(client: &str, window: u64) -> String {
    format!("{KEY_PREFIX}{client}/{window}")
}

/// Counts one request of `client` at `now_secs` (Unix time) against `limit_per_minute`.
/// `client` must not contain `/` (pass a hash or an address).
pub fn check(kv: &impl KeyValue, client: &str, limit_per_minute: u64, now_secs: u64) -> Result<Decision, StorageError> {
    let window = now_secs / 60;
    let count = kv.increment(&counter_key(client, window), 1)?;
    if count == 1 && window >= 2 {
        kv.delete(&counter_key(client, window - 2))?;
    }
    if count as u64 > limit_per_minute {
        Ok(Decision::Limited { retry_after_secs: 60 - now_secs % 60 })
    } else {
        Ok(Decision::Allowed { count })
    }
}

/// Deletes counters of windows that ended before the previous one; returns how many went.
pub fn sweep(kv: &impl KeyValue, now_secs: u64) -> Result<usize, StorageError> {
    let current = now_secs / 60;
    let mut removed = 0;
    for key in kv.keys_with_prefix(KEY_PREFIX)? {
        let window = key.rsplit('/').next().and_then(|w| w.parse::<u64>().ok());
        if window.is_some_and(|w| w + 1 < current) {
            kv.delete(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A client address without its port (a client opens many connections): `1.2.3.4:5678` → `1.2.3.4`,
/// `[::1]:5678` → `::1`; anything else as given, `/` replaced so it fits in a key.
pub fn client_ip(addr: &str) -> String {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']').replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn client_addresses_lose_their_port() {
        assert_eq!(client_ip("10.0.0.7:51234"), "10.0.0.7");
        assert_eq!(client_ip("[::1]:8080"), "::1");
        assert_eq!(client_ip("unknown"), "unknown");
        assert_eq!(client_ip(""), "");
    }
}
