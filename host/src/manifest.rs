//! spin.toml (manifest version 2): the parts this host runs, parsed strictly, with every problem
//! reported by file, line and key. Fields only Spin's tooling reads (build, descriptions…) are parsed
//! too, so that a misspelt key is an error rather than silently ignored.

#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The parsed application manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be 2.
    pub spin_manifest_version: Spanned<u32>,
    /// Name, version, description.
    pub application: Application,
    /// Application variables and their defaults.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDef>,
    /// Triggers by type (`http`, `cron`).
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDef>,
}

/// `[application]`.
#[derive(Debug, Deserialize)]
pub struct Application {
    /// Application name.
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Per-trigger-type application settings (`[application.trigger.http] base = "/"`).
    #[serde(default)]
    pub trigger: Option<toml::Table>,
}

/// `[variables] name = { default = "…" | required = true, secret = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDef {
    /// Value when no provider has one.
    #[serde(default)]
    pub default: Option<String>,
    /// Start-up fails when no provider has a value.
    #[serde(default)]
    pub required: bool,
    /// Never logged.
    #[serde(default)]
    pub secret: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[trigger.http]]` and `[[trigger.cron]]` lists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// HTTP routes.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    /// Cron schedules.
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Optional trigger id.
    #[serde(default)]
    pub id: Option<String>,
    /// The route pattern, or `{ private = true }` for a component reachable only from other components.
    pub route: Spanned<RouteDef>,
    /// Component id.
    pub component: Spanned<String>,
    /// `{ type = "spin" }` (the only executor for wasi:http components).
    #[serde(default)]
    pub executor: Option<toml::Table>,
}

/// A route as written in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDef {
    /// `/path`, `/path/...`, `/users/:id`.
    Pattern(String),
    /// `{ private = true }`.
    Private {
        /// Must be true.
        private: bool,
    },
}

/// One `[[trigger.cron]]`, exactly as the `trigger-cron` plugin reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// Component id.
    pub component: Spanned<String>,
    /// `sec min hour day-of-month month day-of-week [year]`.
    pub cron_expression: Spanned<String>,
}

/// `[component.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDef {
    /// Path of the .wasm, relative to the manifest.
    pub source: Spanned<SourceDef>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: values with `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    /// Environment variables the component sees.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Outbound HTTP destinations: `scheme://host:port` with `*` wildcards.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    /// SQLite database labels the component may open.
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
    /// Files to mount: this host supports Spin's `{ source = "dir", destination = "/path" }` form for
    /// directories (read-only); other forms are refused at start-up rather than ignored.
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Files excluded from `files`.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// `spin build` settings (read by Spin, not by this host).
    #[serde(default)]
    pub build: Option<toml::Table>,
    /// Tool-specific settings.
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

/// A component source: a local path (remote sources are not supported by this host).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceDef {
    /// A local file.
    Path(String),
    /// `{ url = …, digest = … }`.
    Remote {
        /// Download URL.
        url: String,
        /// Expected digest.
        digest: String,
    },
}

/// A manifest together with where it came from, for error messages and relative paths.
#[derive(Debug)]
pub struct LoadedManifest {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Parsed content.
    pub manifest: Manifest,
}

impl LoadedManifest {
    /// Directory the manifest's relative paths are relative to.
    pub fn app_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// `file:line:column` of a byte span, for error messages.
    pub fn at(&self, span: std::ops::Range<usize>) -> String {
        location(&self.path, &self.text, span.start)
    }
}

/// `file:line:column` of a byte offset in a text.
pub fn location(path: &Path, text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}", path.display())
}

/// Reads and parses spin.toml; a syntax or schema error names the file, line and key.
pub fn load(path: &Path) -> Result<LoadedManifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
    let manifest: Manifest = match toml::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            let at = e.span().map(|s| location(path, &text, s.start)).unwrap_or_else(|| path.display().to_string());
            bail!("{at}: invalid manifest: {}", e.message());
        }
    };
    if *manifest.spin_manifest_version.get_ref() != 2 {
        let at = location(path, &text, manifest.spin_manifest_version.span().start);
        bail!("{at}: spin_manifest_version must be 2 (this host reads manifest version 2 only)");
    }
    Ok(LoadedManifest { path: path.to_path_buf(), text, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedManifest> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, text)?;
        load(&path)
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let err = parse("spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.a]\nsource = \"a.wasm\"\nkey_value_store = [\"default\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("spin.toml:6:1"), "{err}");
        assert!(err.contains("key_value_store"), "{err}");
    }

    #[test]
    fn wrong_manifest_version_is_refused() {
        let err = parse("spin_manifest_version = 1\n[application]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("spin.toml:1:25") && err.contains("must be 2"), "{err}");
    }

    #[test]
    fn routes_and_crons_parse() {
        let m = parse(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/a/...\"\ncomponent = \"a\"\n\
             [[trigger.http]]\nroute = { private = true }\ncomponent = \"a\"\n[[trigger.cron]]\ncomponent = \"a\"\ncron_expression = \"0 * * * * *\"\n\
             [component.a]\nsource = \"a.wasm\"\n",
        )
        .unwrap();
        assert_eq!(m.manifest.trigger.http.len(), 2);
        assert_eq!(m.manifest.trigger.cron[0].cron_expression.get_ref(), "0 * * * * *");
    }
}
