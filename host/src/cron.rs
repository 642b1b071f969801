//! Cron triggers: the host calls a component's `handle-cron-event` export (the `trigger-cron` plugin's
//! contract in wit/cron.wit) on each tick of its schedule, or once on demand (`stockops cron run`).

use crate::app::App;
use anyhow::{Context, Result, anyhow};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

wasmtime::component::bindgen!({
    path: "../wit/cron.wit",
    world: "fermyon:spin-cron/spin-cron",
    exports: { default: async },
});

use fermyon::spin_cron::cron_types::Error as CronError;

/// Runs one cron event in a fresh instance of `component`.
pub async fn run_once(app: &App, component: &str, timeout: Duration) -> Result<()> {
    let c = app.components.get(component).ok_or_else(|| anyhow!("no component `{component}` in the manifest"))?;
    let mut store = crate::engine::store(&app.engine, c.policy.clone(), app.services.clone(), &app.limits, timeout);
    let pre = SpinCronPre::new(c.pre.clone())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component `{component}` does not export handle-cron-event"))?;
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot instantiate `{component}`"))?;
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let result = instance
        .call_handle_cron_event(&mut store, Metadata { timestamp })
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component `{component}` trapped"))?;
    result.map_err(|CronError::Other(msg)| anyhow!("component `{component}` failed: {msg}"))
}

/// Runs every schedule until the task is dropped.
pub async fn run_schedules(app: Arc<App>, timeout: Duration) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..app.crons.len() {
        let app = app.clone();
        tasks.spawn(async move {
            let job = &app.crons[i];
            tracing::info!(component = %job.component, expression = %job.expression, "cron schedule started");
            while let Some(next) = job.schedule.upcoming(chrono::Utc).next() {
                let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let started = std::time::Instant::now();
                match run_once(&app, &job.component, timeout).await {
                    Ok(()) => tracing::info!(component = %job.component, ms = started.elapsed().as_millis() as u64, "cron event handled"),
                    Err(e) => tracing::error!(component = %job.component, "cron event failed: {e:#}"),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
