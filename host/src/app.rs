//! The application as the host runs it: spin.toml and the runtime config checked together at start-up
//! (every problem listed in one error, each with where to look), backends opened, components compiled.

use crate::engine::{self, EngineLimits};
use crate::manifest::{self, LoadedManifest, RouteDef, SourceDef};
use crate::outbound_http::AllowedHost;
use crate::router::{Route, Router};
use crate::runtime_config::RuntimeConfig;
use crate::state::{AppServices, ComponentPolicy};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::InstancePre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Where to find the app and how to run it.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// spin.toml.
    pub manifest: PathBuf,
    /// Runtime config file, if any (Spin's defaults otherwise).
    pub runtime_config: Option<PathBuf>,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// Engine and instance limits.
    pub limits: EngineLimits,
}

/// One component ready to instantiate.
pub struct LoadedComponent {
    /// Permissions and settings.
    pub policy: Arc<ComponentPolicy>,
    /// Pre-linked instance.
    pub pre: InstancePre<crate::state::InstanceState>,
    /// Pre-linked wasi:http proxy, for components with HTTP routes.
    pub proxy: Option<ProxyPre<crate::state::InstanceState>>,
}

/// One cron schedule.
pub struct CronJob {
    /// Component id.
    pub component: String,
    /// The expression as written.
    pub expression: String,
    /// Parsed schedule.
    pub schedule: cron::Schedule,
}

/// Everything `up` and `cron run` need.
pub struct App {
    /// The engine.
    pub engine: Engine,
    /// Limits for each instance.
    pub limits: EngineLimits,
    /// Components by id.
    pub components: BTreeMap<String, LoadedComponent>,
    /// HTTP routes.
    pub router: Router,
    /// Cron schedules.
    pub crons: Vec<CronJob>,
    /// Shared backends.
    pub services: Arc<AppServices>,
    /// Application name.
    pub name: String,
}

/// Loads, checks and prepares the app. `env` reads environment variables (injected for tests).
pub async fn load(opts: &AppOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    let m = manifest::load(&opts.manifest)?;
    let app_dir = m.app_dir().to_path_buf();
    let rc = RuntimeConfig::load_or_defaults(opts.runtime_config.as_deref(), &app_dir)?;
    let variables = crate::variables::resolve(&m, env)?;
    let checked = check(&m, &rc, &app_dir)?;

    let services = Arc::new(AppServices {
        databases: crate::sqlite::open_all(&rc.sqlite).await?,
        stores: crate::key_value::open_all(&rc.key_value).await?,
    });
    migrate(&services).await?;
    let engine = engine::engine(&opts.limits)?;
    let linker = engine::linker(&engine)?;
    let mut components = BTreeMap::new();
    for (id, def) in &m.manifest.component {
        let wasm = &checked.sources[id];
        let component = engine::load_component(&engine, wasm, &opts.cache_dir)?;
        // A component importing an interface this host does not provide (e.g. Postgres) is refused here,
        // naming the import, rather than trapping on first use.
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component `{id}`: cannot link {}", wasm.display()))?;
        let proxy = if checked.http_components.contains(id) {
            Some(ProxyPre::new(pre.clone()).map_err(anyhow::Error::from).with_context(|| {
                format!("component `{id}` has HTTP routes but does not export wasi:http/incoming-handler")
            })?)
        } else {
            None
        };
        let policy = Arc::new(ComponentPolicy {
            sqlite_databases: def.sqlite_databases.iter().map(|s| s.get_ref().clone()).collect(),
            key_value_stores: def.key_value_stores.iter().map(|s| s.get_ref().clone()).collect(),
            variables: variables.get(id).cloned().unwrap_or_default(),
            environment: def.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            allowed_hosts: Arc::new(checked.allowed_hosts.get(id).cloned().unwrap_or_default()),
            mounts: checked.mounts.get(id).cloned().unwrap_or_default(),
        });
        components.insert(id.clone(), LoadedComponent { policy, pre, proxy });
    }
    Ok(App {
        engine,
        limits: opts.limits.clone(),
        components,
        router: checked.router,
        crons: checked.crons,
        services,
        name: m.manifest.application.name.clone(),
    })
}

/// Brings every database's schema up to date before the first request (components also migrate on first
/// use, so the app works under the Spin CLI too).
async fn migrate(services: &AppServices) -> Result<()> {
    for (label, db) in &services.databases {
        let (db, handle, label) = (db.clone(), tokio::runtime::Handle::current(), label.clone());
        let report = tokio::task::spawn_blocking(move || {
            let native = crate::native_store::NativeDb::connect(db, handle)?;
            stockops_core::schema::migrate(&native)
        })
        .await
        .context("migration task failed")?
        .with_context(|| format!("cannot migrate sqlite database `{label}`"))?;
        if report.from != report.to {
            tracing::info!(database = %label, from = report.from, to = report.to, "schema migrated");
        }
    }
    Ok(())
}

struct Checked {
    sources: BTreeMap<String, PathBuf>,
    router: Router,
    crons: Vec<CronJob>,
    http_components: BTreeSet<String>,
    allowed_hosts: BTreeMap<String, Vec<AllowedHost>>,
    mounts: BTreeMap<String, Vec<(PathBuf, String)>>,
}

/// A `files` entry as (host directory, guest path): Spin's `{ source, destination }` form with a directory.
fn directory_mount(entry: &toml::Value, app_dir: &Path) -> Result<(PathBuf, String), String> {
    let table = entry.as_table().ok_or_else(|| {
        format!("{entry}: only `{{ source = \"dir\", destination = \"/path\" }}` entries are supported by this host")
    })?;
    let field = |name: &str| {
        table.get(name).and_then(toml::Value::as_str).ok_or_else(|| format!("{entry}: `{name}` is missing"))
    };
    let (source, destination) = (app_dir.join(field("source")?), field("destination")?.to_string());
    if !source.is_dir() {
        return Err(format!("{}: not a directory", source.display()));
    }
    if !destination.starts_with('/') {
        return Err(format!("destination {destination:?} must be an absolute path"));
    }
    Ok((source, destination))
}

/// Checks the manifest against itself and the runtime config; collects every problem before failing.
fn check(m: &LoadedManifest, rc: &RuntimeConfig, app_dir: &Path) -> Result<Checked> {
    let mut problems: Vec<String> = Vec::new();
    let rc_name =
        rc.source.as_ref().map_or_else(|| "the default runtime config".to_string(), |p| p.display().to_string());
    let mut sources = BTreeMap::new();
    let mut allowed_hosts = BTreeMap::new();
    let mut mounts = BTreeMap::new();
    for (id, c) in &m.manifest.component {
        match c.source.get_ref() {
            SourceDef::Path(p) => {
                let path = app_dir.join(p);
                if !path.is_file() {
                    problems.push(format!(
                        "{}: component `{id}`: source {} does not exist (run scripts/setup.sh to build the components)",
                        m.at(c.source.span()),
                        path.display()
                    ));
                }
                sources.insert(id.clone(), path);
            }
            SourceDef::Remote { url, .. } => problems.push(format!(
                "{}: component `{id}`: remote source {url} is not supported: build it locally",
                m.at(c.source.span())
            )),
        }
        for label in &c.sqlite_databases {
            if !rc.sqlite.contains_key(label.get_ref()) {
                problems.push(format!("{}: component `{id}` uses sqlite database `{}`, which {rc_name} does not configure ([sqlite_database.{}])", m.at(label.span()), label.get_ref(), label.get_ref()));
            }
        }
        for label in &c.key_value_stores {
            if !rc.key_value.contains_key(label.get_ref()) {
                problems.push(format!("{}: component `{id}` uses key-value store `{}`, which {rc_name} does not configure ([key_value_store.{}])", m.at(label.span()), label.get_ref(), label.get_ref()));
            }
        }
        if !c.exclude_files.is_empty() {
            problems.push(format!("component `{id}`: `exclude_files` is not supported by this host"));
        }
        let mut component_mounts = Vec::new();
        for f in &c.files {
            match directory_mount(f, app_dir) {
                Ok(mount) => component_mounts.push(mount),
                Err(e) => problems.push(format!("component `{id}`: files: {e}")),
            }
        }
        mounts.insert(id.clone(), component_mounts);
        let mut hosts = Vec::new();
        for h in &c.allowed_outbound_hosts {
            match AllowedHost::parse(h.get_ref()) {
                Ok(a) => hosts.push(a),
                Err(e) => problems.push(format!("{}: component `{id}`: allowed_outbound_hosts: {e}", m.at(h.span()))),
            }
        }
        allowed_hosts.insert(id.clone(), hosts);
    }
    let mut routes = Vec::new();
    let mut http_components = BTreeSet::new();
    for t in &m.manifest.trigger.http {
        let id = t.component.get_ref();
        if !m.manifest.component.contains_key(id) {
            problems.push(format!(
                "{}: [[trigger.http]] names component `{id}`, which is not defined",
                m.at(t.component.span())
            ));
            continue;
        }
        http_components.insert(id.clone());
        match t.route.get_ref() {
            RouteDef::Pattern(p) => match Route::parse(p, id) {
                Ok(r) => routes.push(r),
                Err(e) => problems.push(format!("{}: {e}", m.at(t.route.span()))),
            },
            RouteDef::Private { private: true } => {}
            RouteDef::Private { private: false } => problems.push(format!(
                "{}: route = {{ private = false }} means nothing: give a route pattern",
                m.at(t.route.span())
            )),
        }
    }
    let router = match Router::new(routes) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("{}: {e}", m.path.display()));
            Router::default()
        }
    };
    let mut crons = Vec::new();
    for t in &m.manifest.trigger.cron {
        let id = t.component.get_ref();
        if !m.manifest.component.contains_key(id) {
            problems.push(format!(
                "{}: [[trigger.cron]] names component `{id}`, which is not defined",
                m.at(t.component.span())
            ));
        }
        let expression = t.cron_expression.get_ref();
        match cron::Schedule::from_str(expression) {
            Ok(schedule) => crons.push(CronJob { component: id.clone(), expression: expression.clone(), schedule }),
            Err(e) => problems.push(format!(
                "{}: cron_expression `{expression}`: {e} (format: sec min hour day-of-month month day-of-week [year])",
                m.at(t.cron_expression.span())
            )),
        }
    }
    if !problems.is_empty() {
        bail!("the app cannot start; {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "));
    }
    Ok(Checked { sources, router, crons, http_components, allowed_hosts, mounts })
}
