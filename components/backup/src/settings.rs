//! What a backup run needs from the app's configuration: the passphrase, the retention period, and the
//! non-secret settings recorded in the archive's config part. Read from Spin variables by the component
//! and by the host alike.

use std::collections::BTreeMap;

use crate::crypto::KdfParams;
use crate::error::BackupError;

/// Variable holding the passphrase the archive key is derived from.
pub const KEY_VARIABLE: &str = "backup_key";
/// Variable holding the retention period in days.
pub const RETENTION_VARIABLE: &str = "backup_retention_days";
/// Retention when the variable is not set.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Variables recorded in the config part when readable: the non-secret ones the backup component is
/// given. Never `api_token` or `backup_key`.
pub const CONFIG_VARIABLES: &[&str] =
    &[RETENTION_VARIABLE, "log_level", "rate_limit_per_minute", "require_auth_for_reads"];

/// Settings of one backup run.
#[derive(Clone)]
pub struct Settings {
    /// The passphrase (`backup_key`).
    pub passphrase: String,
    /// Days a backup is kept (see [`crate::retention`]).
    pub keep_days: u32,
    /// Non-secret configuration recorded in the archive; callers may add more (the host adds its runtime
    /// config without secrets).
    pub config: BTreeMap<String, String>,
    /// Argon2id parameters for new archives.
    pub kdf: KdfParams,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the passphrase.
        f.debug_struct("Settings")
            .field("passphrase", &"<secret>")
            .field("keep_days", &self.keep_days)
            .field("config", &self.config)
            .field("kdf", &self.kdf)
            .finish()
    }
}

impl Settings {
    /// Settings from variables (`get` returns a variable's value, None when unset or unreadable):
    /// `backup_key` is required and non-empty, `backup_retention_days` a whole number of days >= 1.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Settings, BackupError> {
        let passphrase = get(KEY_VARIABLE).filter(|k| !k.is_empty()).ok_or(BackupError::MissingKey)?;
        let keep_days = match get(RETENTION_VARIABLE) {
            None => DEFAULT_RETENTION_DAYS,
            Some(v) => v.trim().parse::<u32>().ok().filter(|d| *d >= 1).ok_or_else(|| BackupError::InvalidSetting {
                name: RETENTION_VARIABLE.into(),
                value: v.clone(),
                why: "expected a whole number of days, at least 1".into(),
            })?,
        };
        let config = CONFIG_VARIABLES.iter().filter_map(|name| Some((name.to_string(), get(name)?))).collect();
        Ok(Settings { passphrase, keep_days, config, kdf: KdfParams::DEFAULT })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn reads_key_retention_and_non_secret_config() {
        let s = Settings::from_variables(vars(&[
            ("backup_key", "s3cret"),
            ("api_token", "t0ken"),
            ("backup_retention_days", "7"),
            ("log_level", "debug"),
        ]))
        .unwrap();
        assert_eq!((s.passphrase.as_str(), s.keep_days), ("s3cret", 7));
        assert_eq!(s.config.get("log_level").map(String::as_str), Some("debug"));
        // Secrets are never recorded, nor printed.
        let dump = format!("{s:?}");
        assert!(!dump.contains("s3cret") && !dump.contains("t0ken"), "{dump}");
        assert!(!s.config.values().any(|v| v == "s3cret" || v == "t0ken"));
    }

    #[test]
    fn defaults_and_refusals() {
        let s = Settings::from_variables(vars(&[("backup_key", "k")])).unwrap();
        assert_eq!(s.keep_days, DEFAULT_RETENTION_DAYS);
        assert!(matches!(Settings::from_variables(vars(&[])), Err(BackupError::MissingKey)));
        assert!(matches!(Settings::from_variables(vars(&[("backup_key", "")])), Err(BackupError::MissingKey)));
        for bad in ["0", "-1", "thirty", ""] {
            let r = Settings::from_variables(vars(&[("backup_key", "k"), ("backup_retention_days", bad)]));
            assert!(matches!(r, Err(BackupError::InvalidSetting { .. })), "{bad:?}");
        }
    }
}
