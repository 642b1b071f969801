//! stockops core: the domain types, SQL schema and storage seam every component and the host share.

pub mod api_error;
pub mod bar;
pub mod metrics;
pub mod rate_limit;
pub mod schema;
pub mod storage;

#[cfg(target_arch = "wasm32")]
pub mod spin_backend;
#[cfg(target_arch = "wasm32")]
pub mod spin_http;

pub use api_error::ApiError;
pub use bar::{Bar, BarSeries};
pub use storage::{Database, KeyValue, Rows, SqlValue, StorageError};

/// Now, in UTC, as RFC 3339 with millisecond precision: the one timestamp format stored anywhere.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Compares two secrets without leaking where they first differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Exports the Spin cron trigger's `handle-cron-event` (wit/cron.wit) from the calling component crate,
/// calling `$handler(timestamp_secs: u64) -> Result<(), String>`. The bindings are generated in the
/// calling crate, so only components with a `[[trigger.cron]]` carry that export.
#[macro_export]
macro_rules! export_cron_handler {
    ($handler:ident) => {
        mod __stockops_cron {
            wit_bindgen::generate!({ world: "spin-cron", path: "../../wit" });
            struct Cron;
            impl Guest for Cron {
                fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
                    super::$handler(metadata.timestamp).map_err(Error::Other)
                }
            }
            export!(Cron);
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
    }
}
