//! The production backends of runtime-config/production.toml: the database on a real libSQL server (sqld,
//! over Hrana) and the key-value stores on a real Redis, with the main job's flow through the real host —
//! ingest, train, promote, predict with explanations — and a backup restored over the network.

mod support;

use support::json_of;

use serde_json::{Value, json};
use support::{Host, HostOptions, Kv, TOKEN, client, root};

fn send(host: &Host, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
    json_of(client().request(method, format!("{}{path}", host.base)).bearer_auth(TOKEN).json(body).send().unwrap())
}

fn train(host: &Host, seed: u64) -> i64 {
    let spec = json!({
        "model": "m",
        "segments": {
            "train": {"from": "2005-01-01", "to": "2009-12-31"},
            "valid": {"from": "2010-01-01", "to": "2010-12-31"},
            "test": {"from": "2011-01-01", "to": "2013-03-01"}
        },
        "params": {"num_leaves": 15, "num_boost_round": 40, "early_stopping_rounds": 20, "seed": seed}
    });
    let (status, job) = send(host, reqwest::Method::POST, "/api/train", &spec);
    assert_eq!(status, 201, "{job}");
    job["version"].as_i64().unwrap()
}

#[test]
fn the_main_job_runs_on_a_libsql_server_and_redis() {
    let host = Host::start(Kv::Redis, HostOptions { sqld: true, ..Default::default() });

    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap();
    assert_eq!(resp.status(), 200);
    let (status, bars) = json_of(host.get("/api/bars/AAPL?from=2013-02-25"));
    assert_eq!(status, 200, "{bars}");

    let v1 = train(&host, 1);
    let (status, body) = send(&host, reqwest::Method::PUT, "/api/models/m/aliases/champion", &json!({"version": v1}));
    assert_eq!(status, 200, "{body}");
    let (status, one) = json_of(host.get("/api/predict/AAPL?explain=true&top=5"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["predictions"][0]["version"], json!(v1));
    assert_eq!(one["predictions"][0]["explanation"]["top"].as_array().unwrap().len(), 5);
    // The universe twice: rows computed and cached, then read back in one batch (MGET); same answers.
    let (status, first) = send(&host, reqwest::Method::POST, "/api/predict", &json!({}));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["predictions"].as_array().unwrap().len(), 4, "{first}");
    let (status, second) = send(&host, reqwest::Method::POST, "/api/predict", &json!({}));
    assert_eq!(status, 200, "{second}");
    assert_eq!(first["predictions"], second["predictions"]);

    // Health sees both backends.
    let (status, health) = json_of(host.get("/health"));
    assert_eq!(status, 200, "{health}");

    // A backup taken now, then a second version trained: restoring the backup brings back the registry
    // as it was, through one transaction on the server.
    let (status, backup) = send(&host, reqwest::Method::POST, "/api/backups", &json!({}));
    assert_eq!(status, 201, "{backup}");
    assert_eq!(backup["status"], json!("verified"), "{backup}");
    let v2 = train(&host, 2);
    assert_eq!(v2, v1 + 1);
    let id = backup["id"].as_str().unwrap();
    let (status, report) = send(&host, reqwest::Method::POST, &format!("/api/backups/{id}/restore"), &json!({}));
    assert_eq!(status, 200, "{report}");
    let (status, model) = json_of(host.get("/api/models/m"));
    assert_eq!(status, 200, "{model}");
    let versions: Vec<i64> =
        model["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, vec![v1], "{model}");
    let (status, again) = json_of(host.get("/api/predict/AAPL"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["predictions"][0]["score"], one["predictions"][0]["score"]);
}
