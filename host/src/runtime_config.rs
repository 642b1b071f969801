//! Runtime config (`--runtime-config FILE`): where each sqlite database and key-value store label lives,
//! in Spin's own syntax. Relative paths are relative to the runtime config file's directory, as in Spin;
//! with no runtime config, Spin's defaults apply (`.spin/sqlite_db.db`, `.spin/sqlite_key_value.db`).

use crate::manifest::location;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one sqlite database label lives.
#[derive(Debug, Clone, PartialEq)]
pub enum SqliteConfig {
    /// An embedded SQLite file.
    File(PathBuf),
    /// A libSQL server over Hrana (`http://` or `https://`), with its auth token.
    Libsql {
        /// Server URL.
        url: String,
        /// Auth token (secret: never logged).
        token: String,
    },
}

/// Where one key-value store label lives.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValueConfig {
    /// Embedded: a SQLite file in Spin's key-value layout.
    File(PathBuf),
    /// A Redis server.
    Redis {
        /// `redis://…` URL.
        url: String,
    },
}

/// The resolved runtime config: every label with its backend.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Databases by label.
    pub sqlite: BTreeMap<String, SqliteConfig>,
    /// Key-value stores by label.
    pub key_value: BTreeMap<String, KeyValueConfig>,
    /// The file this came from, when any.
    pub source: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Where every label lives, without secrets (no libSQL token, no password in a Redis URL): what a
    /// backup records of the runtime config.
    pub fn without_secrets(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (label, c) in &self.sqlite {
            let v = match c {
                SqliteConfig::File(p) => format!("spin {}", p.display()),
                SqliteConfig::Libsql { url, .. } => format!("libsql {}", strip_userinfo(url)),
            };
            out.insert(format!("runtime_config.sqlite_database.{label}"), v);
        }
        for (label, c) in &self.key_value {
            let v = match c {
                KeyValueConfig::File(p) => format!("spin {}", p.display()),
                KeyValueConfig::Redis { url } => format!("redis {}", strip_userinfo(url)),
            };
            out.insert(format!("runtime_config.key_value_store.{label}"), v);
        }
        out
    }
}

/// `redis://user:pass@host:6379/1` → `redis://host:6379/1`.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match path {
                Some(p) => format!("{scheme}://{host}/{p}"),
                None => format!("{scheme}://{host}"),
            }
        }
        None => url.to_string(),
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, toml::Spanned<RawSqlite>>,
    #[serde(default)]
    key_value_store: BTreeMap<String, toml::Spanned<RawKv>>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawSqlite {
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Libsql {
        url: String,
        token: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawKv {
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
}

impl RuntimeConfig {
    /// The runtime config file when one is given, else Spin's defaults for an app in `app_dir`.
    pub fn load_or_defaults(path: Option<&Path>, app_dir: &Path) -> Result<Self> {
        match path {
            Some(p) => Self::load(p, app_dir),
            None => Ok(Self::defaults(app_dir)),
        }
    }

    /// Spin's defaults for an app in `app_dir` with no runtime config: `default` database and store under `.spin/`.
    fn defaults(app_dir: &Path) -> Self {
        let mut c = RuntimeConfig::default();
        c.fill_defaults(&app_dir.join(".spin"));
        c
    }

    fn fill_defaults(&mut self, state_dir: &Path) {
        self.sqlite.entry("default".into()).or_insert_with(|| SqliteConfig::File(state_dir.join("sqlite_db.db")));
        self.key_value
            .entry("default".into())
            .or_insert_with(|| KeyValueConfig::File(state_dir.join("sqlite_key_value.db")));
    }

    /// Reads a runtime config file; a syntax or schema error names the file, line and key.
    pub fn load(path: &Path, app_dir: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read runtime config {}", path.display()))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| location(path, &text, s.start)).unwrap_or_else(|| path.display().to_string());
            anyhow::anyhow!("{at}: invalid runtime config: {}", e.message())
        })?;
        // Spin's other sections (variables providers, LLM…) have no meaning for this host: refuse them
        // rather than silently run with a different configuration than the one written.
        if let Some(key) = raw.other.keys().next() {
            let at =
                text.find(key.as_str()).map(|o| location(path, &text, o)).unwrap_or_else(|| path.display().to_string());
            bail!(
                "{at}: runtime config section `{key}` is not supported by stockops (supported: sqlite_database, key_value_store)"
            );
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut c = RuntimeConfig { source: Some(path.to_path_buf()), ..Default::default() };
        for (label, entry) in raw.sqlite_database {
            let at = location(path, &text, entry.span().start);
            let cfg = match entry.into_inner() {
                RawSqlite::Spin { path: Some(p) } => SqliteConfig::File(base.join(p)),
                RawSqlite::Spin { path: None } => SqliteConfig::File(app_dir.join(".spin").join(format!("{label}.db"))),
                RawSqlite::Libsql { url, token } => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!(
                            "{at}: sqlite_database.{label}.url must be http:// or https:// (a libSQL server), got `{url}`"
                        );
                    }
                    SqliteConfig::Libsql { url, token }
                }
            };
            c.sqlite.insert(label, cfg);
        }
        for (label, entry) in raw.key_value_store {
            let at = location(path, &text, entry.span().start);
            let cfg = match entry.into_inner() {
                RawKv::Spin { path: Some(p) } => KeyValueConfig::File(base.join(p)),
                RawKv::Spin { path: None } => {
                    KeyValueConfig::File(app_dir.join(".spin").join(format!("{label}_key_value.db")))
                }
                RawKv::Redis { url } => {
                    if !(url.starts_with("redis://")
                        || url.starts_with("rediss://")
                        || url.starts_with("redis+unix://"))
                    {
                        bail!("{at}: key_value_store.{label}.url must be a redis:// URL, got `{url}`");
                    }
                    KeyValueConfig::Redis { url }
                }
            };
            c.key_value.insert(label, cfg);
        }
        c.fill_defaults(&app_dir.join(".spin"));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<RuntimeConfig> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("rc.toml");
        std::fs::write(&path, text)?;
        RuntimeConfig::load(&path, dir.path())
    }

    #[test]
    fn secrets_are_left_out_of_the_description() {
        let c = load_text(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://db.example\"\ntoken = \"t0ken\"\n\
             [key_value_store.default]\ntype = \"redis\"\nurl = \"redis://:hunter2@cache:6379/1\"\n",
        )
        .unwrap();
        let d = c.without_secrets();
        assert_eq!(d["runtime_config.sqlite_database.default"], "libsql https://db.example");
        assert_eq!(d["runtime_config.key_value_store.default"], "redis redis://cache:6379/1");
        assert!(!format!("{d:?}").contains("t0ken") && !format!("{d:?}").contains("hunter2"));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let c = load_text("[sqlite_database.default]\ntype = \"spin\"\npath = \"db/x.db\"\n[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n").unwrap();
        match &c.sqlite["default"] {
            SqliteConfig::File(p) => assert!(p.ends_with("db/x.db")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.key_value["default"], KeyValueConfig::Redis { .. }));
    }

    #[test]
    fn bad_type_names_line() {
        let err = load_text("\n[key_value_store.default]\ntype = \"memcached\"\n").unwrap_err().to_string();
        assert!(err.contains("rc.toml:2:") || err.contains("rc.toml:3:"), "{err}");
        assert!(err.contains("memcached"), "{err}");
    }

    #[test]
    fn unsupported_section_is_refused() {
        let err = load_text("[llm_compute]\ntype = \"spin\"\n").unwrap_err().to_string();
        assert!(err.contains("llm_compute") && err.contains("rc.toml:1:"), "{err}");
    }
}
