//! End-to-end tests of operations through the real host: encrypted backups and restore (API and CLI) with
//! every corruption refused and the database untouched, rate limits, per-route body limits, a Redis outage
//! while serving, and crashes in the middle of a backup and of a training job.

mod support;

use support::json_of;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Host, HostOptions, Kv, TOKEN, client, root};

fn send(host: &Host, method: Method, path: &str, body: &Value) -> (u16, Value) {
    json_of(client().request(method, format!("{}{path}", host.base)).bearer_auth(TOKEN).json(body).send().unwrap())
}

fn ingest(host: &Host) {
    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap();
    assert_eq!(resp.status(), 200);
}

fn job(seed: u64, rounds: u64) -> Value {
    json!({
        "model": "m",
        "segments": {
            "train": {"from": "2005-01-01", "to": "2009-12-31"},
            "valid": {"from": "2010-01-01", "to": "2010-12-31"},
            "test": {"from": "2011-01-01", "to": "2013-03-01"}
        },
        "params": {"num_leaves": 15, "num_boost_round": rounds, "early_stopping_rounds": 0, "seed": seed}
    })
}

fn train(host: &Host, seed: u64) -> i64 {
    let (status, record) = send(host, Method::POST, "/api/train", &job(seed, 30));
    assert_eq!(status, 201, "{record}");
    record["version"].as_i64().unwrap()
}

/// Every row of every table but the backup catalogue and the migrations, as text, by table: what a
/// restore must give back exactly.
fn dump(db: &Path) -> BTreeMap<String, Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = libsql::Builder::new_local(db).build().await.unwrap();
        let conn = db.connect().unwrap();
        let mut tables = Vec::new();
        let mut rows = conn
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name NOT IN ('backups', 'schema_migrations') ORDER BY name",
                (),
            )
            .await
            .unwrap();
        while let Some(r) = rows.next().await.unwrap() {
            tables.push(r.get::<String>(0).unwrap());
        }
        let mut out = BTreeMap::new();
        for t in tables {
            let mut rows = conn.query(&format!("SELECT * FROM \"{t}\""), ()).await.unwrap();
            let mut lines = Vec::new();
            while let Some(r) = rows.next().await.unwrap() {
                let cells: Vec<String> =
                    (0..r.column_count()).map(|i| format!("{:?}", r.get_value(i).unwrap())).collect();
                lines.push(cells.join("|"));
            }
            // Rows in a canonical order, whatever the table's columns.
            lines.sort_unstable();
            out.insert(t, lines);
        }
        out
    })
}

/// Asserts two dumps are equal, naming the tables that differ rather than printing them.
fn same(a: &BTreeMap<String, Vec<String>>, b: &BTreeMap<String, Vec<String>>) {
    let differ: Vec<&String> = a.keys().chain(b.keys()).filter(|t| a.get(*t) != b.get(*t)).collect();
    assert!(differ.is_empty(), "tables differ: {differ:?}");
}

#[test]
fn a_backup_restores_the_database_exactly_and_every_corruption_is_refused() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    ingest(&host);
    let v1 = train(&host, 1);
    assert_eq!(send(&host, Method::PUT, "/api/models/m/aliases/champion", &json!({"version": v1})).0, 200);
    let (status, _) = json_of(host.get("/api/predict/AAPL"));
    assert_eq!(status, 200);
    let before = dump(&host.db_path());
    assert!(before["model_artifacts"].len() >= 2, "artifacts are part of the database");

    // Through the component: stored chunked in the `backups` store, read back and verified.
    let (status, backup) = send(&host, Method::POST, "/api/backups", &json!({}));
    assert_eq!(status, 201, "{backup}");
    assert_eq!(backup["status"], "verified", "{backup}");
    let id = backup["id"].as_str().unwrap().to_string();
    let (status, listed) = json_of(host.get("/api/backups"));
    assert_eq!(status, 200);
    assert_eq!(listed["backups"][0]["id"], json!(id), "{listed}");
    let (status, one) = json_of(host.get(&format!("/api/backups/{id}")));
    assert_eq!(status, 200, "{one}");
    assert!(!one.to_string().contains(support::BACKUP_KEY) && !one.to_string().contains(TOKEN));

    // The database changes; the restore brings back exactly what was backed up.
    train(&host, 2);
    assert_eq!(send(&host, Method::PUT, "/api/models/m/aliases/champion", &json!({"version": v1 + 1})).0, 200);
    assert_ne!(dump(&host.db_path()), before);
    let (status, report) = send(&host, Method::POST, &format!("/api/backups/{id}/restore"), &json!({}));
    assert_eq!(status, 200, "{report}");
    same(&dump(&host.db_path()), &before);
    let (status, again) = json_of(host.get("/api/predict/AAPL"));
    assert_eq!((status, again["predictions"][0]["version"].clone()), (200, json!(v1)), "{again}");

    // Restores need the token.
    let resp = client().post(format!("{}/api/backups/{id}/restore", host.base)).send().unwrap();
    assert_eq!(resp.status(), 401);

    // As a file, through the CLI: written, verified, restorable.
    let out = host.dir.path().join("archives");
    let (ok, stdout, stderr) = host.cli(&["backup", "--out", out.to_str().unwrap()], &[]);
    assert!(ok, "{stderr}");
    let file = stdout.lines().last().unwrap().to_string();
    let at_file_backup = dump(&host.db_path());
    let (ok, manifest, stderr) = host.cli(&["backup", "verify", &file], &[]);
    assert!(ok, "{stderr}");
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert!(manifest["parts"].as_array().unwrap().iter().any(|p| p["name"] == "model_artifacts"), "{manifest}");
    let good = std::fs::read(&file).unwrap();

    train(&host, 3);
    let changed = dump(&host.db_path());
    let bad = host.dir.path().join("bad.sobk");
    let refused = |bytes: &[u8], env: &[(&str, &str)], expect: &str| {
        std::fs::write(&bad, bytes).unwrap();
        for cmd in [vec!["backup", "verify", bad.to_str().unwrap()], vec!["restore", bad.to_str().unwrap()]] {
            let (ok, _, stderr) = host.cli(&cmd, env);
            assert!(!ok, "{cmd:?} accepted a bad archive");
            assert!(stderr.to_lowercase().contains(expect), "{cmd:?}: expected {expect:?} in: {stderr}");
        }
        same(&dump(&host.db_path()), &changed);
    };
    refused(&good, &[("SPIN_VARIABLE_BACKUP_KEY", "not-the-key")], "key");
    refused(&good[..good.len() / 2], &[], "truncated");
    let mut tampered = good.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    refused(&tampered, &[], "authentic");
    refused(b"not an archive at all", &[], "not a stockops backup");

    let (ok, report, stderr) = host.cli(&["restore", &file], &[]);
    assert!(ok, "{stderr}");
    assert!(report.contains("model_artifacts"), "{report}");
    same(&dump(&host.db_path()), &at_file_backup);
}

#[test]
fn killing_the_host_mid_backup_or_mid_training_leaves_nothing_half_written() {
    let mut host = Host::start(
        Kv::Embedded,
        HostOptions { env: vec![("SPIN_VARIABLE_JOB_STALE_AFTER_SECS".into(), "1".into())], ..Default::default() },
    );
    ingest(&host);
    let v1 = train(&host, 1);
    let before = dump(&host.db_path());

    // A long training job, killed while it runs.
    let base = host.base.clone();
    let request = std::thread::spawn(move || {
        client().post(format!("{base}/api/train")).bearer_auth(TOKEN).json(&job(7, 5000)).send()
    });
    std::thread::sleep(Duration::from_millis(1500));
    host.kill();
    assert!(request.join().unwrap().is_err(), "the training request died with its host");
    host.restart();
    let (status, model) = json_of(host.get("/api/models/m"));
    assert_eq!(status, 200, "{model}");
    let versions = model["versions"].as_array().unwrap();
    let ready: Vec<i64> =
        versions.iter().filter(|v| v["status"] == "ready").map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(ready, vec![v1], "{model}");
    assert!(versions.iter().all(|v| v["status"] != "training"), "the interrupted version is settled: {model}");
    assert!(
        versions
            .iter()
            .any(|v| v["status"] == "failed" && v["error"].as_str().is_some_and(|e| e.contains("interrupted"))),
        "{model}"
    );

    // A backup killed while it writes: none is verified, none can be restored, the next one works.
    let base = host.base.clone();
    let request = std::thread::spawn(move || client().post(format!("{base}/api/backups")).bearer_auth(TOKEN).send());
    std::thread::sleep(Duration::from_millis(300));
    host.kill();
    let finished = request.join().unwrap().is_ok_and(|r| r.status() == 201);
    host.restart();
    let (_, listed) = json_of(host.get("/api/backups"));
    for b in listed["backups"].as_array().unwrap() {
        if b["status"] != "verified" {
            let (status, body) =
                send(&host, Method::POST, &format!("/api/backups/{}/restore", b["id"].as_str().unwrap()), &json!({}));
            assert!((400..500).contains(&status), "a backup that never verified cannot be restored: {body}");
        }
    }
    // The kill may land just after the backup committed but before its answer left: then it is whole.
    let verified: Vec<&Value> =
        listed["backups"].as_array().unwrap().iter().filter(|b| b["status"] == "verified").collect();
    assert!(verified.len() <= 1 && verified.len() >= usize::from(finished), "{listed}");
    for b in verified {
        let path = format!("/api/backups/{}/verify", b["id"].as_str().unwrap());
        let (status, body) = send(&host, Method::POST, &path, &json!({}));
        assert_eq!((status, body["status"].clone()), (200, json!("verified")), "{body}");
    }
    let (status, next) = send(&host, Method::POST, "/api/backups", &json!({}));
    assert_eq!((status, next["status"].clone()), (201, json!("verified")), "{next}");

    // The database is intact: everything but the settled job is as it was.
    let after = dump(&host.db_path());
    assert_eq!(after["bars"], before["bars"]);
    assert_eq!(after["model_artifacts"], before["model_artifacts"]);
}

#[test]
fn rate_limits_answer_429_with_retry_after_per_client() {
    let host = Host::start(
        Kv::Redis,
        HostOptions { env: vec![("SPIN_VARIABLE_RATE_LIMIT_PER_MINUTE".into(), "5".into())], ..Default::default() },
    );
    // Stay inside one minute's window.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        std::thread::sleep(Duration::from_secs((61 - second) as u64));
    }
    let get = |token: &str| client().get(format!("{}/api/models", host.base)).bearer_auth(token).send().unwrap();
    for i in 0..5 {
        assert_eq!(get(TOKEN).status(), 200, "request {i} is under the limit");
    }
    let limited = get(TOKEN);
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (_, body) = json_of(limited);
    assert_eq!(body["error"]["code"], "rate_limited");
    // A made-up token counts against the client's address, which has its own budget; health probes are
    // never limited.
    assert_eq!(get("made-up-token").status(), 200);
    for i in 0..4 {
        assert_eq!(get(&format!("another-made-up-token-{i}")).status(), 200);
    }
    assert_eq!(get("yet-another").status(), 429, "new made-up tokens do not buy new budgets");
    assert_eq!(host.get("/health").status(), 200);
}

#[test]
fn each_route_limits_its_body() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let big = vec![b' '; 9 * 1024 * 1024];
    let resp = client().post(format!("{}/api/predict", host.base)).bearer_auth(TOKEN).body(big).send().unwrap();
    let (status, body) = json_of(resp);
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let resp = client()
        .put(format!("{}/api/models/m/aliases/champion", host.base))
        .bearer_auth(TOKEN)
        .body(vec![b' '; 64 * 1024])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[test]
fn predictions_still_answer_when_redis_goes_away() {
    let mut host = Host::start(Kv::Redis, HostOptions::default());
    ingest(&host);
    let v1 = train(&host, 1);
    assert_eq!(send(&host, Method::PUT, "/api/models/m/aliases/champion", &json!({"version": v1})).0, 200);
    let (status, warm) = json_of(host.get("/api/predict/AAPL?explain=true&top=3"));
    assert_eq!(status, 200, "{warm}");

    host.redis.as_mut().unwrap().stop();
    let (status, health) = json_of(host.get("/health"));
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    // Every cache misses; the database answers.
    let (status, cold) = json_of(host.get("/api/predict/AAPL?explain=true&top=3"));
    assert_eq!(status, 200, "{cold}");
    assert_eq!(cold["predictions"][0]["score"], warm["predictions"][0]["score"]);
    assert_eq!(cold["predictions"][0]["explanation"], warm["predictions"][0]["explanation"]);
}
