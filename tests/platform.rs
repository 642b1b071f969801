//! End-to-end tests of the platform: the real `stockops up` serving the real components over HTTP,
//! once with embedded stores and once with a real Redis as the key-value backend.

mod support;

use support::json_of as json;

use std::time::Duration;
use support::{Host, HostOptions, Kv, TOKEN, client, eventually, sql};

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn health_on_a_fresh_database_is_degraded_but_serving(kv: Kv) {
    let host = Host::start(kv, HostOptions::default());
    let (status, body) = json(host.get("/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    for required in ["database", "schema", "key_value"] {
        assert_eq!(body["checks"][required]["status"], "ok", "{required}: {body}");
        assert!(body["checks"][required]["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(body["checks"]["schema"]["status"], "ok");
    for optional in ["champion_model", "bars", "backup", "training"] {
        assert_eq!(body["checks"][optional]["status"], "degraded", "{optional}: {body}");
    }
}

fn health_is_ok_when_every_part_is_present(kv: Kv) {
    let host = Host::start(kv, HostOptions::default());
    // The first request migrates the schema; then the deployment gets everything a healthy one has.
    assert_eq!(host.get("/health").status(), 200);
    let now = chrono::Utc::now().to_rfc3339();
    sql(
        &host.db_path(),
        &[
            &format!("INSERT INTO bars VALUES ('AAPL', '{}', 1, 2, 0.5, 1.5, 100, NULL, NULL)", today()),
            &format!(
                "INSERT INTO model_versions (name, version, status, created_at) VALUES ('m', 1, 'ready', '{now}')"
            ),
            &format!(
                "INSERT INTO model_aliases (name, alias, version, updated_at) VALUES ('m', 'champion', 1, '{now}')"
            ),
            &format!(
                "INSERT INTO train_jobs (id, model_name, status, created_at, finished_at, error) VALUES ('job-1', 'm', 'succeeded', '{now}', '{now}', NULL)"
            ),
            &format!(
                "INSERT INTO backups (id, created_at, status, size_bytes, sha256) VALUES ('b-1', '{now}', 'verified', 10, 'abc')"
            ),
        ],
    );
    let (status, body) = json(host.get("/health"));
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
    assert_eq!(body["checks"]["champion_model"]["detail"], "m v1");

    // A failed last training run degrades the app again.
    sql(
        &host.db_path(),
        &[&format!(
            "INSERT INTO train_jobs (id, model_name, status, created_at, finished_at, error) VALUES ('job-2', 'm', 'failed', '{}', NULL, 'out of memory')",
            chrono::Utc::now().to_rfc3339()
        )],
    );
    let (_, body) = json(host.get("/health"));
    assert_eq!(body["status"], "degraded");
    assert!(body["checks"]["training"]["detail"].as_str().unwrap().contains("out of memory"), "{body}");
}

fn variables_from_the_environment_reach_the_component(kv: Kv) {
    let old_bar = "INSERT INTO bars VALUES ('AAPL', '2001-01-02', 1, 2, 0.5, 1.5, 100, NULL, NULL)";
    let host = Host::start(kv, HostOptions::default());
    host.get("/health");
    sql(&host.db_path(), &[old_bar]);
    let (_, body) = json(host.get("/health"));
    assert_eq!(body["checks"]["bars"]["status"], "degraded", "default limit of 5 days: {body}");
    drop(host);

    let opts =
        HostOptions { env: vec![("SPIN_VARIABLE_BAR_MAX_AGE_DAYS".into(), "100000".into())], ..Default::default() };
    let host = Host::start(kv, opts);
    host.get("/health");
    sql(&host.db_path(), &[old_bar]);
    let (_, body) = json(host.get("/health"));
    assert_eq!(body["checks"]["bars"]["status"], "ok", "{body}");
    assert!(body["checks"]["bars"]["detail"].as_str().unwrap().contains("limit 100000"), "{body}");
}

fn metrics_count_requests_by_route_and_status(kv: Kv) {
    let host = Host::start(kv, HostOptions::default());
    for _ in 0..3 {
        assert_eq!(host.get("/health").status(), 200);
    }
    assert_eq!(host.get("/no/such/route").status(), 404);
    let text = eventually(Duration::from_secs(10), || {
        let resp = host.get("/metrics");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = resp.text().unwrap();
        let line = "stockops_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} ";
        let n: u64 = text.lines().find_map(|l| l.strip_prefix(line)).and_then(|v| v.parse().ok()).unwrap_or(0);
        (n >= 3 && text.contains("route=\"unmatched\",method=\"GET\",status=\"404\"")).then_some(text)
    })
    .expect("the host's request counts never reached /metrics");
    assert!(text.contains("# TYPE stockops_http_request_duration_seconds histogram"));
    assert!(text.contains(
        "stockops_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",status=\"200\",le=\"+Inf\"}"
    ));
    assert!(text.contains(&format!("stockops_schema_version {}", stockops_core::schema::LATEST)));
    assert!(text.contains("stockops_hosts 1"));
}

fn routing_answers_like_spin(kv: Kv) {
    let host =
        Host::start(kv, HostOptions { args: vec!["--max-body-bytes".into(), "1024".into()], ..Default::default() });
    // Unknown route: 404 in the one error shape.
    let (status, body) = json(host.get("/nowhere"));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    // An exact route matches only itself.
    assert_eq!(host.get("/health/extra").status(), 404);
    // Wildcard routes reach their component, root and below.
    let (status, body) = json(host.get("/api/train"));
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    let (status, body) = json(host.get("/api/models/m/versions/1"));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = json(host.get("/api/predict"));
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    let (status, body) = json(host.get("/api/experiments"));
    assert_eq!((status, body["experiments"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, body) = json(host.get("/api/alerts"));
    assert_eq!((status, body["alerts"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, body) = json(host.get("/api/backups"));
    assert_eq!((status, body["backups"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, body) = json(client().delete(format!("{}/api/alerts", host.base)).send().unwrap());
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    // Wrong method on an existing route.
    let (status, body) = json(client().delete(format!("{}/health", host.base)).send().unwrap());
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    // Bodies over the limit: refused before the component runs, whether the length is declared or chunked.
    let big = vec![b'x'; 4096];
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(big.clone()).send().unwrap();
    let (status, body) = json(resp);
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(big));
    let resp = client().post(format!("{}/api/bars", host.base)).body(chunked).send().unwrap();
    assert_eq!(resp.status(), 413);
    // The host still serves after all of that.
    assert_eq!(host.get("/health").status(), 200);
}

fn cron_events_reach_the_component(kv: Kv) {
    // `cron run` calls the component's handle-cron-event export: alert's evaluates the rules; backup's fails
    // loudly here, where no backup passphrase is set.
    let host = Host::start(kv, HostOptions::default());
    let rc = host.dir.path().join("runtime-config.toml");
    // An empty passphrase in the environment wins over the checkout's .env.
    let run = |component: &str| {
        std::process::Command::new(support::stockops_bin())
            .args(["cron", "run", component, "--manifest"])
            .arg(support::root().join("spin.toml"))
            .arg("--runtime-config")
            .arg(&rc)
            .arg("--cache-dir")
            .arg(support::root().join("target/aot-cache"))
            .env("SPIN_VARIABLE_API_TOKEN", TOKEN)
            .env("SPIN_VARIABLE_BACKUP_KEY", "")
            .output()
            .unwrap()
    };
    let out = run("alert");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cron event of `alert` handled"));
    let out = run("backup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("component `backup` failed") && stderr.contains("SPIN_VARIABLE_BACKUP_KEY"), "{stderr}");
    let out = run("health");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not export handle-cron-event"));
    let out = run("nope");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no component `nope`"));
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Kv::Embedded) } )*
        }
        mod redis {
            $( #[test] fn $name() { super::$name(super::Kv::Redis) } )*
        }
    };
}

both_backends!(
    health_on_a_fresh_database_is_degraded_but_serving,
    health_is_ok_when_every_part_is_present,
    variables_from_the_environment_reach_the_component,
    metrics_count_requests_by_route_and_status,
    routing_answers_like_spin,
    cron_events_reach_the_component,
);

#[test]
fn schedules_fire_cron_events() {
    // A manifest of our own with a schedule of every second, over the real backup component, which fails
    // every time without its passphrase (the component declares no variables here).
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let wasm = support::root().join("target/wasm32-wasip2/wasm/backup.wasm");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"cron-test\"\n[[trigger.cron]]\ncomponent = \"backup\"\ncron_expression = \"* * * * * *\"\n\
             [component.backup]\nsource = \"{}\"\nsqlite_databases = [\"default\"]\nkey_value_stores = [\"default\", \"backups\"]\n",
            wasm.display()
        ),
    )
    .unwrap();
    let host =
        Host::start(Kv::Embedded, HostOptions { manifest: Some(manifest), schedules: true, ..Default::default() });
    let fired = eventually(Duration::from_secs(10), || {
        let log = host.log.lock().unwrap();
        (log.matches("cron event failed").count() >= 2).then_some(())
    });
    assert!(fired.is_some(), "the every-second schedule did not fire twice:\n{}", host.log.lock().unwrap());
    assert!(host.log.lock().unwrap().contains("SPIN_VARIABLE_BACKUP_KEY"));
}

#[test]
fn a_bad_manifest_is_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/a\"\ncomponent = \"missing\"\n\
         [[trigger.cron]]\ncomponent = \"a\"\ncron_expression = \"every day\"\n[component.a]\nsource = \"a.wasm\"\nkey_value_stores = [\"cache\"]\n",
    )
    .unwrap();
    let out =
        std::process::Command::new(support::stockops_bin()).args(["up", "--manifest"]).arg(&manifest).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // Every problem at once, each with its place.
    assert!(stderr.contains("spin.toml:6:13") && stderr.contains("component `missing`"), "{stderr}");
    assert!(stderr.contains("spin.toml:9:19") && stderr.contains("every day"), "{stderr}");
    assert!(stderr.contains("a.wasm does not exist"), "{stderr}");
    assert!(stderr.contains("key-value store `cache`"), "{stderr}");

    std::fs::write(&manifest, "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.a]\nsource = \"a.wasm\"\nallowed_http_host = []\n").unwrap();
    let out =
        std::process::Command::new(support::stockops_bin()).args(["up", "--manifest"]).arg(&manifest).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spin.toml:6:1") && stderr.contains("allowed_http_host"), "{stderr}");
}

#[test]
fn a_missing_required_variable_is_refused() {
    // The app's own manifest in a folder with no .env, so only the environment could supply the token.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::copy(support::root().join("spin.toml"), &manifest).unwrap();
    // Bounded: were the token found after all, `up` would serve forever instead of refusing.
    let mut child = std::process::Command::new(support::stockops_bin())
        .args(["up", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&manifest)
        .env_remove("SPIN_VARIABLE_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = eventually(Duration::from_secs(30), || child.try_wait().unwrap());
    if exited.is_none() {
        let _ = child.kill();
        panic!("stockops up started without the required api_token");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("variable `api_token` is required: set SPIN_VARIABLE_API_TOKEN"), "{stderr}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut host = Host::start(Kv::Embedded, HostOptions::default());
    assert_eq!(host.get("/health").status(), 200);
    let (status, took) = host.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(15));
    assert!(host.log.lock().unwrap().contains("SIGTERM received"));
}

#[test]
fn health_fails_when_redis_goes_away() {
    let mut host = Host::start(Kv::Redis, HostOptions::default());
    assert_eq!(json(host.get("/health")).1["checks"]["key_value"]["status"], "ok");
    host.redis.as_mut().unwrap().stop();
    let (status, body) = json(host.get("/health"));
    // The key-value store is a cache: without it the app degrades; the database still answers.
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["checks"]["key_value"]["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok");
}

#[test]
fn a_trapping_or_runaway_component_gets_a_500_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let wasm = support::root().join("target/wasm32-wasip2/wasm/trap_component.wasm");
    assert!(wasm.exists(), "{} is missing: scripts/setup.sh builds it", wasm.display());
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"trap-test\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"t\"\n\
             [component.t]\nsource = \"{}\"\n",
            wasm.display()
        ),
    )
    .unwrap();
    let opts =
        HostOptions { manifest: Some(manifest), args: vec!["--timeout-secs".into(), "1".into()], ..Default::default() };
    let host = Host::start(Kv::Embedded, opts);
    let (status, body) = json(host.get("/trap"));
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("internal")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("trapped"), "{body}");
    let started = std::time::Instant::now();
    let (status, _) = json(host.get("/spin"));
    assert_eq!(status, 500);
    assert!(started.elapsed() < Duration::from_secs(10), "the runaway request was not stopped by the time limit");
    let logged = eventually(Duration::from_secs(5), || host.log.lock().unwrap().contains("time limit").then_some(()));
    assert!(logged.is_some(), "{}", host.log.lock().unwrap());
    // Both failures left the host serving, and fresh instances work.
    let ok = host.get("/fine");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().unwrap(), "fine");
}
