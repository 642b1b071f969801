//! The wasmtime side: one `Engine` (pooling allocator, epoch-based timeouts), components compiled ahead of
//! time into an on-disk cache keyed by content and engine settings, and a fresh `Store` per instance.

use crate::state::{AppServices, ComponentPolicy, InstanceState};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

/// How often the engine's epoch advances: the granularity of timeouts and of yielding to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Linear memory each pooling slot keeps resident between instances.
const KEEP_RESIDENT_BYTES: usize = 16 << 20;

/// Limits of the engine and of each instance.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Linear memory per instance, in bytes.
    pub max_memory_bytes: usize,
}

/// Builds the engine shared by every component.
pub fn engine(limits: &EngineLimits) -> Result<Engine> {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // `perf` can name guest functions when this is set (writes /tmp/perf-<pid>.map).
    if std::env::var_os("STOCKOPS_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances);
    // A wasm32-wasip2 component holds a handful of core instances, memories and tables.
    pool.total_core_instances(limits.max_instances * 8);
    pool.total_memories(limits.max_instances * 2);
    pool.total_tables(limits.max_instances * 4);
    pool.max_memory_size(limits.max_memory_bytes);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(8);
    // Every request is a fresh instance: zeroing the memory a slot's last instance used with memset is
    // cheaper than returning it to the kernel and page-faulting it back in (predict p50 1.4 -> 1.0 ms).
    // It costs RSS: up to this much per warm slot.
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
    pool.table_keep_resident(1 << 16);
    // With Linux's PAGEMAP_SCAN (kernel 6.7+), a slot's reset rewrites only the pages the last instance
    // dirtied instead of memsetting the whole kept region (GET /health 1,930-2,230 -> 2,400-2,430 req/s,
    // a one-symbol prediction +3-11%). Wasmtime 48's scan asks for dirty pages that are present, so a
    // dirty page swapped out would be neither reset nor dropped (wasmtime#14357): only without swap.
    if !swap_configured() {
        pool.pagemap_scan(wasmtime::Enabled::Auto);
    }
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&cfg).map_err(anyhow::Error::from).context("cannot create the wasmtime engine")
}

/// Whether the kernel may swap: /proc/swaps lists a device, or cannot be read (assume it may).
fn swap_configured() -> bool {
    std::fs::read_to_string("/proc/swaps").map_or(true, |s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
}

/// Advances the engine's epoch forever on a thread of its own, so time limits hold even when every
/// runtime worker is busy running guests.
pub fn tick_epochs(engine: Engine) {
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker: time limits will not be enforced: {e}");
    }
}

/// Loads a component, compiling it only when the cache has no artifact for these bytes and this engine.
pub fn load_component(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = std::fs::read(wasm_path).with_context(|| format!("cannot read component {}", wasm_path.display()))?;
    let cached = cache_path(engine, &bytes, cache_dir);
    if cached.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same compatibility
        // hash (it is part of the name), into a cache directory only this host writes.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(path = %cached.display(), "ignoring unusable compiled component: {e:#}"),
        }
    }
    let started = Instant::now();
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", wasm_path.display()))?;
    std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create cache dir {}", cache_dir.display()))?;
    // Write then rename, so a concurrent start never reads half a file.
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &compiled).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &cached).with_context(|| format!("cannot write {}", cached.display()))?;
    tracing::info!(component = %wasm_path.display(), ms = started.elapsed().as_millis() as u64, "compiled component ahead of time");
    // SAFETY: as above; we just wrote it.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)
}

fn cache_path(engine: &Engine, bytes: &[u8], cache_dir: &Path) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let content = hex::encode(Sha256::digest(bytes));
    cache_dir.join(format!("{}-{:016x}.cwasm", &content[..32], engine_hash.finish()))
}

/// The linker with every interface this host provides: WASI 0.2, wasi:http, and Spin's.
pub fn linker(engine: &Engine) -> Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::bindings::SpinImports::add_to_linker::<_, wasmtime::component::HasSelf<InstanceState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A new store for one instance of a component, which traps once `timeout` has passed.
pub fn store(
    engine: &Engine,
    policy: Arc<ComponentPolicy>,
    app: Arc<AppServices>,
    limits: &EngineLimits,
    timeout: Duration,
) -> Store<InstanceState> {
    let store_limits = wasmtime::StoreLimitsBuilder::new().memory_size(limits.max_memory_bytes).build();
    let mut store = Store::new(engine, InstanceState::new(policy, app, store_limits));
    store.limiter(|s| &mut s.limits);
    let deadline = Instant::now() + timeout;
    // Yield to the executor every tick (so one busy instance never starves the others) and trap at the deadline.
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            return Err(wasmtime::format_err!("component ran past its {} s time limit", timeout.as_secs_f64()));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
    store
}
