//! What each component instance sees: its WASI context, its resource table, its own permissions
//! (databases, stores, variables, outbound hosts) and the app's shared backends.

use crate::key_value::Stores;
use crate::outbound_http::{AllowedHost, OutboundHooks};
use crate::sqlite::Databases;
use crate::variables::ComponentVariables;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Backends every component shares.
pub struct AppServices {
    /// SQLite databases by label.
    pub databases: Databases,
    /// Key-value stores by label.
    pub stores: Stores,
}

/// One component's permissions and settings, fixed at start-up.
pub struct ComponentPolicy {
    /// Database labels it may open.
    pub sqlite_databases: BTreeSet<String>,
    /// Store labels it may open.
    pub key_value_stores: BTreeSet<String>,
    /// Its resolved variables.
    pub variables: ComponentVariables,
    /// Its environment.
    pub environment: Vec<(String, String)>,
    /// Outbound HTTP allow-list.
    pub allowed_hosts: Arc<Vec<AllowedHost>>,
    /// Directories mounted read-only: (host path, guest path).
    pub mounts: Vec<(std::path::PathBuf, String)>,
}

/// The data of one wasmtime `Store`: one request or one cron tick.
pub struct InstanceState {
    /// WASI 0.2 context.
    pub wasi: WasiCtx,
    /// wasi:http context.
    pub http: WasiHttpCtx,
    /// Resources of this instance.
    pub table: ResourceTable,
    /// Outbound HTTP policy.
    pub hooks: OutboundHooks,
    /// This component's permissions.
    pub component: Arc<ComponentPolicy>,
    /// Shared backends.
    pub app: Arc<AppServices>,
    /// Memory and table limits for this instance.
    pub limits: wasmtime::StoreLimits,
}

impl InstanceState {
    /// A fresh state for one instance of `component`.
    pub fn new(component: Arc<ComponentPolicy>, app: Arc<AppServices>, limits: wasmtime::StoreLimits) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &component.environment {
            wasi.env(k, v);
        }
        for (host, guest) in &component.mounts {
            // Checked to be a directory at start-up; if it vanished since, the guest sees no such path.
            if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadOnly) {
                tracing::warn!(dir = %host.display(), "cannot mount: {e:#}");
            }
        }
        InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks { allowed: component.allowed_hosts.clone() },
            component,
            app,
            limits,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}
