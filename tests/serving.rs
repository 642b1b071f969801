//! End-to-end tests of serving through the real host and components — the main job's flow: ingest the
//! sample bars, train, promote to champion, predict with explanations — plus raw rows, the universe ranking,
//! clear 422s for missing features, and a champion/challenger experiment with its log and promotion.

mod support;

use support::json_of;

use serde_json::{Value, json};
use support::{Host, HostOptions, Kv, TOKEN, client, root};

fn post(host: &Host, path: &str, body: &Value) -> (u16, Value) {
    json_of(client().post(format!("{}{path}", host.base)).bearer_auth(TOKEN).json(body).send().unwrap())
}

fn put(host: &Host, path: &str, body: &Value) -> (u16, Value) {
    json_of(client().put(format!("{}{path}", host.base)).bearer_auth(TOKEN).json(body).send().unwrap())
}

/// Ingests the sample bars and trains two versions of `m` (different seeds); v1 becomes champion.
fn trained_host() -> Host {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap();
    assert_eq!(resp.status(), 200);
    for seed in [1, 2] {
        let spec = json!({
            "model": "m",
            "segments": {
                "train": {"from": "2005-01-01", "to": "2009-12-31"},
                "valid": {"from": "2010-01-01", "to": "2010-12-31"},
                "test": {"from": "2011-01-01", "to": "2013-03-01"}
            },
            "params": {"num_leaves": 15, "num_boost_round": 60, "early_stopping_rounds": 20, "colsample_bytree": 0.8,
                       "seed": seed}
        });
        let (status, job) = post(&host, "/api/train", &spec);
        assert_eq!(status, 201, "{job}");
    }
    let (status, body) = put(&host, "/api/models/m/aliases/champion", &json!({"version": 1}));
    assert_eq!(status, 200, "{body}");
    host
}

#[test]
fn the_main_job_scores_explains_and_ranks_with_the_champion() {
    let host = trained_host();

    // One symbol at its newest bar, explained.
    let (status, one) = json_of(host.get("/api/predict/AAPL?explain=true&top=158"));
    assert_eq!(status, 200, "{one}");
    assert_eq!((one["model"].clone(), one["date"].clone()), (json!("m"), json!("2013-03-01")));
    let p = &one["predictions"][0];
    assert_eq!(
        (p["symbol"].clone(), p["version"].clone(), p["variant"].clone()),
        (json!("AAPL"), json!(1), json!("champion"))
    );
    let score = p["score"].as_f64().unwrap();
    let e = &p["explanation"];
    let contributions = e["top"].as_array().unwrap();
    assert_eq!(contributions.len(), 158);
    let sum: f64 = contributions.iter().map(|c| c["contribution"].as_f64().unwrap()).sum();
    // TreeSHAP is exact in f64; the served score comes from the f32 ONNX plan.
    assert!((e["expected_value"].as_f64().unwrap() + sum - score).abs() < 1e-5, "{e} vs {score}");
    let abs: Vec<f64> = contributions.iter().map(|c| c["contribution"].as_f64().unwrap().abs()).collect();
    assert!(abs.windows(2).all(|w| w[0] >= w[1]), "contributions are sorted by |value|");

    // A cached explainer whose first split links back to itself is caught by the walk and rebuilt from
    // the booster: the same answer, and the entry replaced. (Bytes 1..28 are the header, 29..56 the
    // first split's threshold, shares and feature, 57..60 its left child.)
    let left_child = "SELECT hex(substr(value, 57, 4)) FROM spin_key_value WHERE key LIKE ?1";
    support::sql(
        &host.kv_path(),
        &["UPDATE spin_key_value SET value = CAST(substr(value, 1, 56) || X'00000000' || substr(value, 61) AS BLOB) \
           WHERE key LIKE 'predict/shap/%'"],
    );
    assert_eq!(support::texts(&host.kv_path(), left_child, "predict/shap/%"), ["00000000"]);
    let (status, again) = json_of(host.get("/api/predict/AAPL?explain=true&top=158"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["predictions"][0]["explanation"], one["predictions"][0]["explanation"]);
    assert_ne!(support::texts(&host.kv_path(), left_child, "predict/shap/%"), ["00000000"]);

    // The same features sent as a raw row score the same.
    let features: serde_json::Map<String, Value> =
        contributions.iter().map(|c| (c["name"].as_str().unwrap().to_string(), c["value"].clone())).collect();
    let (status, raw) = post(&host, "/api/predict", &json!({"rows": [{"symbol": "AAPL", "features": features}]}));
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["predictions"][0]["score"].as_f64().unwrap(), score);

    // The universe on the newest date, ranked.
    let (status, all) = post(&host, "/api/predict", &json!({"explain": true, "top": 3}));
    assert_eq!(status, 200, "{all}");
    let preds = all["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 4, "{all}");
    assert_eq!(preds.iter().map(|p| p["rank"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(preds.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    assert!(preds.iter().all(|p| p["explanation"]["top"].as_array().unwrap().len() == 3));
    let aapl = preds.iter().find(|p| p["symbol"] == "AAPL").unwrap();
    assert_eq!(aapl["score"].as_f64().unwrap(), score);
    // The universe computed the other three symbols' matrices and rows: the rows are stored one after
    // another, not each beside its symbol's matrix, so that a batch reads them from a few pages.
    let rowids = support::texts(
        &host.kv_path(),
        "SELECT CAST(rowid AS TEXT) FROM spin_key_value WHERE key LIKE ?1 AND key NOT LIKE 'features/AAPL/%' \
         ORDER BY rowid",
        "features/%/row-2013-03-01",
    );
    let rowids: Vec<i64> = rowids.iter().map(|r| r.parse().unwrap()).collect();
    assert_eq!(rowids.len(), 3, "{rowids:?}");
    assert!(rowids.windows(2).all(|w| w[1] == w[0] + 1), "rows stored apart: {rowids:?}");

    // The log holds the same features digest for AAPL's four predictions: computed with the row (the
    // first request), read back with the cached row (the second and the universe) and computed from the
    // raw row.
    let digests = support::texts(
        &host.db_path(),
        "SELECT features_sha256 FROM predictions WHERE symbol = ?1 ORDER BY id",
        "AAPL",
    );
    assert_eq!(digests.len(), 4, "{digests:?}");
    assert!(digests.iter().all(|d| d.len() == 64 && *d == digests[0]), "{digests:?}");
}

#[test]
fn missing_features_and_bad_requests_get_clear_errors() {
    let host = trained_host();
    // GOOG's fifth bar: the 60-day windows are undefined.
    let (status, body) = json_of(host.get("/api/predict/GOOG?date=2004-08-25"));
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("missing_features")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("GOOG on 2004-08-25") && message.contains("allow_missing"), "{message}");
    // Opting in scores with the model's learned NaN directions.
    let (status, body) = json_of(host.get("/api/predict/GOOG?date=2004-08-25&allow_missing=true"));
    assert_eq!(status, 200, "{body}");
    // A date without a bar, a raw row without every feature, an unknown field, an unknown model.
    let (status, body) = post(&host, "/api/predict", &json!({"symbols": ["AAPL"], "date": "2013-03-02"}));
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("missing_features")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no bar on 2013-03-02"));
    let (status, body) = post(&host, "/api/predict", &json!({"rows": [{"features": {"KMID": 0.1}}]}));
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("missing_features")), "{body}");
    let (status, body) = post(&host, "/api/predict", &json!({"rows": [{"features": [1, 2]}]}));
    assert_eq!(status, 422, "{body}");
    let (status, _) = post(&host, "/api/predict", &json!({"symbolz": ["AAPL"]}));
    assert_eq!(status, 400);
    let (status, body) = post(&host, "/api/predict", &json!({"model": "nope"}));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    assert_eq!(json_of(host.get("/api/predict")).0, 405);
}

#[test]
fn an_experiment_splits_traffic_stickily_logs_it_and_promotes_by_alias_move() {
    let host = trained_host();
    let (status, body) = put(&host, "/api/models/m/aliases/challenger", &json!({"version": 2}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(&host, "/api/experiments/ab1", &json!({"model": "m", "challenger_share": 0.5}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(&host, "/api/experiments/ab2", &json!({"model": "m", "challenger_share": 1.5}));
    assert_eq!(status, 400, "{body}");

    // Score every symbol on 30 consecutive trading days of 2012; the variant is sticky by symbol.
    let dates: Vec<String> = {
        let (_, bars) = json_of(host.get("/api/bars/IBM?from=2012-06-01&to=2012-07-20"));
        bars["bars"].as_array().unwrap().iter().map(|b| b["date"].as_str().unwrap().to_string()).collect()
    };
    assert!(dates.len() >= 30);
    let mut variant_of = std::collections::HashMap::new();
    for d in &dates[..30] {
        let (status, body) = post(&host, "/api/predict", &json!({"date": d}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["experiment"], "ab1");
        for p in body["predictions"].as_array().unwrap() {
            let v = p["variant"].as_str().unwrap().to_string();
            let expected_version = if v == "champion" { 1 } else { 2 };
            assert_eq!(p["version"], expected_version);
            let first = variant_of.entry(p["symbol"].as_str().unwrap().to_string()).or_insert(v.clone());
            assert_eq!(*first, v, "assignment is sticky per symbol");
        }
    }
    let (status, list) = json_of(host.get("/api/experiments"));
    assert_eq!(status, 200, "{list}");
    let report = &list["experiments"][0];
    assert_eq!(report["name"], "ab1");
    let logged: i64 = report["predictions"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(logged, 120, "{report}");
    let comparison = &report["comparison"];
    assert!(comparison["recommendation"].is_string(), "{comparison}");
    let rows = comparison["champion"]["count"].as_u64().unwrap() + comparison["challenger"]["count"].as_u64().unwrap();
    assert_eq!(rows, 120, "every logged (symbol, date) has a realised label: {comparison}");

    // Promotion is an audited alias move.
    let (status, moved) = post(&host, "/api/experiments/ab1/promote", &json!({}));
    assert_eq!(status, 200, "{moved}");
    assert_eq!((moved["from_version"].clone(), moved["to_version"].clone()), (json!(1), json!(2)));
    let (_, model) = json_of(host.get("/api/models/m"));
    assert_eq!(model["alias_history"][0]["reason"], "promoted by experiment ab1");
}

#[test]
fn a_model_trained_elsewhere_is_imported_and_scores_like_onnxruntime() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let fixtures = root().join("components/predict/tests/fixtures/onnx");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("lightgbm_regressor.json")).unwrap()).unwrap();
    let names: Vec<String> = (0..expected["num_features"].as_u64().unwrap()).map(|i| format!("f{i}")).collect();
    let import = |extra: &[&str]| {
        std::process::Command::new(support::stockops_bin())
            .args(["models", "import"])
            .arg(fixtures.join("lightgbm_regressor.onnx"))
            .args(["--name", "lgbm", "--promote", "champion", "--runtime-config"])
            .arg(host.dir.path().join("runtime-config.toml"))
            .args(extra)
            .output()
            .unwrap()
    };
    // The names must match the model's width.
    let out = import(&["--feature-names", "a,b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("takes 8 features but 2 are named"));
    let out = import(&["--feature-names", &names.join(",")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rows: Vec<Value> = expected["rows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"symbol": i.to_string(), "features": r}))
        .collect();
    let (status, body) = post(&host, "/api/predict", &json!({"model": "lgbm", "rows": rows, "allow_missing": true}));
    assert_eq!(status, 200, "{body}");
    let want = expected["onnxruntime"].as_array().unwrap();
    for p in body["predictions"].as_array().unwrap() {
        let i: usize = p["symbol"].as_str().unwrap().parse().unwrap();
        let (got, want) = (p["score"].as_f64().unwrap(), want[i].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-5, "row {i}: {got} vs onnxruntime {want}");
    }
    // No tree covers travel with an imported model: explanations are refused, not invented.
    let (status, body) = post(
        &host,
        "/api/predict",
        &json!({"model": "lgbm", "rows": [rows[0].clone()], "allow_missing": true, "explain": true}),
    );
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("no_explanations")), "{body}");
}

#[test]
fn a_model_keeps_the_feature_set_version_it_was_trained_on() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap();
    assert_eq!(resp.status(), 200);
    let define = |expression: &str| {
        let def = json!({"name": "mine", "features": [{"name": "MOM5", "expression": expression},
                                                      {"name": "RNG", "expression": "($high-$low)/$open"}]});
        let url = format!("{}/api/features/sets/mine", host.base);
        let resp = client().put(url).bearer_auth(TOKEN).body(def.to_string()).send().unwrap();
        assert_eq!(resp.status(), 200);
    };
    define("Ref($close, 5)/$close");
    let spec = json!({
        "model": "c", "feature_set": "mine",
        "segments": {"train": {"from": "2005-01-01", "to": "2009-12-31"},
                     "valid": {"from": "2010-01-01", "to": "2010-12-31"},
                     "test": {"from": "2011-01-01", "to": "2013-03-01"}},
        "params": {"num_leaves": 7, "num_boost_round": 20, "early_stopping_rounds": 0, "seed": 1}
    });
    let (status, job) = post(&host, "/api/train", &spec);
    assert_eq!(status, 201, "{job}");
    assert_eq!(put(&host, "/api/models/c/aliases/champion", &json!({"version": 1})).0, 200);
    let (status, before) = json_of(host.get("/api/predict/AAPL?model=c&date=2013-02-28"));
    assert_eq!(status, 200, "{before}");

    // Redefined: the row already computed with the old definition still answers (it is what the model
    // was trained on); a row that would need the new definition is refused, not silently mixed.
    define("Ref($close, 10)/$close");
    let (status, again) = json_of(host.get("/api/predict/AAPL?model=c&date=2013-02-28"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["predictions"][0]["score"], before["predictions"][0]["score"]);
    let (status, body) = json_of(host.get("/api/predict/AAPL?model=c&date=2013-02-27"));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("feature_set_changed")), "{body}");
}
