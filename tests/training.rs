//! End-to-end tests of training and the registry through the real host and train-batch component: jobs over
//! the us4 sample bars, versions and cards, deterministic artifacts, alias moves with audit, bad specs, the
//! scheduled retrain, and `stockops train` writing to the same registry.

mod support;

use support::json_of;

use serde_json::{Value, json};
use std::process::Command;
use support::{Host, HostOptions, Kv, TOKEN, client, root, stockops_bin};

fn ingest_us4(host: &Host) {
    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap();
    assert_eq!(resp.status(), 200);
}

/// A small job (a few seconds in the component): 15 leaves, at most 60 rounds.
fn small_job(model: &str) -> Value {
    json!({
        "model": model,
        "segments": {
            "train": {"from": "2005-01-01", "to": "2009-12-31"},
            "valid": {"from": "2010-01-01", "to": "2010-12-31"},
            "test": {"from": "2011-01-01", "to": "2013-03-01"}
        },
        "params": {"num_leaves": 15, "learning_rate": 0.1, "num_boost_round": 60, "early_stopping_rounds": 20,
                   "colsample_bytree": 0.8, "subsample": 0.8, "subsample_freq": 1, "seed": 7}
    })
}

fn train(host: &Host, spec: &Value) -> (u16, Value) {
    json_of(client().post(format!("{}/api/train", host.base)).bearer_auth(TOKEN).json(spec).send().unwrap())
}

fn put_alias(host: &Host, model: &str, alias: &str, body: Value) -> (u16, Value) {
    json_of(
        client()
            .put(format!("{}/api/models/{model}/aliases/{alias}", host.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .unwrap(),
    )
}

fn ready_versions(host: &Host, model: &str) -> i64 {
    let (status, body) = json_of(host.get("/api/models"));
    assert_eq!(status, 200, "{body}");
    body["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .map_or(0, |m| m["ready_versions"].as_i64().unwrap())
}

#[test]
fn jobs_register_versions_with_cards_and_deterministic_artifacts() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    ingest_us4(&host);

    // Writes need the token.
    let resp = client().post(format!("{}/api/train", host.base)).json(&small_job("m")).send().unwrap();
    assert_eq!(resp.status(), 401);

    let (status, job) = train(&host, &small_job("us4"));
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["version"], 1);
    assert_eq!(job["trigger"], "api");
    let test = &job["result"]["metrics"]["test"];
    assert!(test["mse"].as_f64().unwrap() > 0.0, "{test}");
    assert!(test["ic"].as_f64().unwrap().abs() < 1.0, "{test}");
    assert!(test["days_with_ic"].as_u64().unwrap() > 200, "{test}");
    let (status, again) = json_of(host.get(&format!("/api/train/{}", job["id"].as_str().unwrap())));
    assert_eq!((status, &again["status"]), (200, &json!("succeeded")));

    let (status, v1) = json_of(host.get("/api/models/us4/versions/1"));
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["status"], "ready");
    assert_eq!(v1["feature_set"], "alpha158");
    assert_eq!(v1["card"]["feature_names"].as_array().unwrap().len(), 158);
    assert_eq!(v1["params"]["bagging_fraction"], json!(0.8), "aliases are stored under canonical names");
    assert_eq!(v1["artifact_sha256"].as_str().unwrap().len(), 64);
    assert!(v1["artifact_size"].as_i64().unwrap() > 1000);

    // The same spec and seed give a bit-identical ONNX artifact.
    let (status, job2) = train(&host, &small_job("us4"));
    assert_eq!((status, &job2["version"]), (201, &json!(2)), "{job2}");
    let (_, v2) = json_of(host.get("/api/models/us4/versions/2"));
    assert_eq!(v1["artifact_sha256"], v2["artifact_sha256"]);
    assert_eq!(v1["metrics"]["test"], v2["metrics"]["test"]);
    assert_eq!(ready_versions(&host, "us4"), 2);

    // A search records every trial and keeps the best.
    let mut spec = small_job("us4-search");
    spec["search"] = json!({"max_trials": 4, "space": {"num_leaves": {"low": 4, "high": 31, "integer": true}}});
    let (status, job) = train(&host, &spec);
    assert_eq!(status, 201, "{job}");
    let trials = job["result"]["trials"].as_array().unwrap();
    assert!(trials.len() > 4, "{trials:?}");
    let (_, v) = json_of(host.get("/api/models/us4-search/versions/1"));
    let last_rung = trials.iter().map(|t| t["rung"].as_u64().unwrap()).max().unwrap();
    let best = trials
        .iter()
        .filter(|t| t["rung"].as_u64() == Some(last_rung))
        .min_by(|a, b| a["score"].as_f64().unwrap().total_cmp(&b["score"].as_f64().unwrap()))
        .unwrap();
    assert_eq!(v["params"]["num_leaves"], best["sampled"]["num_leaves"]);
}

#[test]
fn aliases_move_atomically_with_an_audit_trail() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    ingest_us4(&host);
    for _ in 0..2 {
        assert_eq!(train(&host, &small_job("m")).0, 201);
    }
    let (status, moved) = put_alias(&host, "m", "champion", json!({"version": 1, "actor": "ana", "reason": "first"}));
    assert_eq!(status, 200, "{moved}");
    assert_eq!((moved["from_version"].clone(), moved["to_version"].clone()), (Value::Null, json!(1)));
    let (_, moved) = put_alias(&host, "m", "champion", json!({"version": 2}));
    assert_eq!((moved["from_version"].clone(), moved["actor"].clone()), (json!(1), json!("api")));
    // Not to a version that does not exist, not without the token, not with a bad alias name.
    let (status, body) = put_alias(&host, "m", "champion", json!({"version": 9}));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let resp = client().put(format!("{}/api/models/m/aliases/champion", host.base)).json(&json!({"version": 1})).send();
    assert_eq!(resp.unwrap().status(), 401);
    let (status, _) = put_alias(&host, "m", "Champion!", json!({"version": 1}));
    assert_eq!(status, 400);

    let (status, alias) = json_of(host.get("/api/models/m/aliases/champion"));
    assert_eq!((status, &alias["version"]), (200, &json!(2)));
    let (_, model) = json_of(host.get("/api/models/m"));
    let history = model["alias_history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{model}");
    assert_eq!((history[0]["to_version"].clone(), history[1]["actor"].clone()), (json!(2), json!("ana")));
    // Health sees the champion.
    let (_, health) = json_of(host.get("/health"));
    assert_eq!(health["checks"]["champion_model"]["status"], "ok", "{health}");
}

#[test]
fn bad_specs_are_refused_and_leave_nothing() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    ingest_us4(&host);
    let with = |path: &[&str], value: Value| {
        let mut spec = small_job("bad");
        let mut at = &mut spec;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        spec
    };
    let cases = [
        (with(&["params", "num_leaves"], json!(0)), "invalid_job", "num_leaves"),
        (with(&["params", "leaves"], json!(3)), "invalid_job", "leaves"),
        (with(&["params", "n_estimators"], json!(3)), "invalid_job", "twice"),
        (with(&["segments", "valid", "from"], json!("2009-06-01")), "invalid_job", "train"),
        (with(&["segments", "test", "to"], json!("2010-12-31")), "invalid_job", "test ends"),
        (with(&["segments", "test"], json!({"from": "2020-01-01", "to": "2020-12-31"})), "invalid_data", "test"),
        (with(&["symbols"], json!(["NOPE"])), "invalid_data", "NOPE"),
        (with(&["feature_set"], json!("nope")), "invalid_job", "nope"),
        (with(&["model"], json!("a b")), "invalid_job", "model name"),
        (with(&["segmentz"], json!(1)), "invalid_job", "segmentz"),
        (with(&["search"], json!({"space": {"num_leaves": {"low": 0, "high": 4}}})), "invalid_job", "num_leaves"),
    ];
    for (spec, code, mentions) in cases {
        let (status, body) = train(&host, &spec);
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{spec}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(mentions), "{mentions}: {body}");
    }
    let resp = client().post(format!("{}/api/train", host.base)).bearer_auth(TOKEN).body("{not json").send().unwrap();
    assert_eq!(resp.status(), 400);
    let (status, models) = json_of(host.get("/api/models"));
    assert_eq!((status, models["models"].as_array().unwrap().len()), (200, 0), "{models}");
    assert_eq!(host.get("/api/models/bad/versions/1").status(), 404);
    assert_eq!(host.get("/api/train/job-nope").status(), 404);
}

#[test]
fn the_cli_trains_into_the_same_registry_and_cron_retrains_the_champion_as_challenger() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    ingest_us4(&host);
    let rc = host.dir.path().join("runtime-config.toml");
    let job = host.dir.path().join("job.toml");
    std::fs::write(
        &job,
        "model = \"cli\"\n[segments]\ntrain = { from = 2005-01-01, to = 2009-12-31 }\n\
         valid = { from = 2010-01-01, to = 2010-12-31 }\ntest = { from = 2011-01-01, to = 2012-12-31 }\n\
         [params]\nnum_leaves = 15\nnum_boost_round = 40\nseed = 3\n",
    )
    .unwrap();
    let out = Command::new(stockops_bin())
        .args(["train", "--threads", "2", "--promote", "champion", "--config"])
        .arg(&job)
        .arg("--runtime-config")
        .arg(&rc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((record["status"].clone(), record["trigger"].clone()), (json!("succeeded"), json!("cli")));
    let (_, champion) = json_of(host.get("/api/models/cli/aliases/champion"));
    assert_eq!(champion["version"], 1, "{champion}");

    // The scheduled retrain repeats the champion's spec on the newest data and makes it challenger.
    let out = Command::new(stockops_bin())
        .args(["cron", "run", "train-batch", "--manifest"])
        .arg(root().join("spin.toml"))
        .arg("--runtime-config")
        .arg(&rc)
        .arg("--cache-dir")
        .arg(root().join("target/aot-cache"))
        .env("SPIN_VARIABLE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, challenger) = json_of(host.get("/api/models/cli/aliases/challenger"));
    assert_eq!(challenger["version"], 2, "{challenger}");
    // Moved to end at the newest bar (2013-03-01), two months later.
    assert_eq!(challenger["data_to"], "2013-03-01");
    let (_, champion) = json_of(host.get("/api/models/cli/aliases/champion"));
    assert_eq!(champion["version"], 1, "the champion stays until someone promotes");
}
