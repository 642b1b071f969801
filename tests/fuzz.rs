//! Fuzzing the bodies users send, through the real host, for a bounded number of cases: CSV and JSON bars
//! and predict requests, generated and mutated by proptest. Whatever arrives, the answer is a success or a
//! 4xx in the one error shape — never a 5xx (a panic in a component traps: a 500) — and the host keeps
//! serving.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use support::{Host, HostOptions, Kv, TOKEN, client, root};

/// Cases per body kind: enough to reach every parser branch, small enough for CI.
const CASES: u32 = 150;

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() })
}

/// Posts a body and checks the answer: success, or a 4xx with the error shape.
fn check(host: &Host, path: &str, content_type: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let resp = client()
        .post(format!("{}{path}", host.base))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    prop_assert!(status < 500, "{path} answered {status}: {text}");
    if status >= 400 {
        let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{text}");
    }
    Ok(())
}

/// JSON values built from the words a body of `keys` would use, nested a few levels.
fn json_like(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![Just("AAPL"), Just("2013-03-01"), Just("1e309"), Just(""), Just("m"), Just("champion")]
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A valid CSV with edits: bytes replaced, inserted or removed at random places.
fn mutated_csv(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut body = valid.clone();
        for (at, byte, how) in edits {
            let at = at.min(body.len().saturating_sub(1));
            match how {
                0 if !body.is_empty() => body[at] = byte,
                1 => body.insert(at, byte),
                _ if !body.is_empty() => {
                    body.remove(at);
                }
                _ => {}
            }
        }
        body
    })
}

#[test]
fn no_body_makes_a_component_fail() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let csv = std::fs::read(root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    // A model to predict with, so predict bodies reach scoring and explaining.
    assert_eq!(
        client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv.clone()).send().unwrap().status(),
        200
    );
    let job = json!({"model": "m", "segments": {"train": {"from": "2005-01-01", "to": "2009-12-31"},
        "valid": {"from": "2010-01-01", "to": "2010-12-31"}, "test": {"from": "2011-01-01", "to": "2013-03-01"}},
        "params": {"num_leaves": 7, "num_boost_round": 10, "early_stopping_rounds": 0}});
    assert_eq!(
        client().post(format!("{}/api/train", host.base)).bearer_auth(TOKEN).json(&job).send().unwrap().status(),
        201
    );
    let promote = client().put(format!("{}/api/models/m/aliases/champion", host.base)).bearer_auth(TOKEN);
    assert_eq!(promote.json(&json!({"version": 1})).send().unwrap().status(), 200);

    // CSV bars: a header and a few real rows, mutated; and arbitrary text.
    let head: Vec<u8> = csv.split(|b| *b == b'\n').take(6).collect::<Vec<_>>().join(&b'\n');
    runner().run(&mutated_csv(head), |body| check(&host, "/api/bars", "text/csv", body)).unwrap();
    runner().run(&"\\PC{0,200}", |text| check(&host, "/api/bars", "text/csv", text.into_bytes())).unwrap();

    // JSON bars.
    const BAR_KEYS: &[&str] = &["symbol", "date", "open", "high", "low", "close", "volume", "vwap", "factor", "bars"];
    runner()
        .run(&json_like(BAR_KEYS), |v| check(&host, "/api/bars", "application/json", v.to_string().into_bytes()))
        .unwrap();

    // Predict requests.
    const PREDICT_KEYS: &[&str] = &[
        "model",
        "alias",
        "symbols",
        "date",
        "rows",
        "symbol",
        "features",
        "explain",
        "top",
        "allow_missing",
        "client_key",
        "KMID",
        "KLEN",
    ];
    runner()
        .run(&json_like(PREDICT_KEYS), |v| check(&host, "/api/predict", "application/json", v.to_string().into_bytes()))
        .unwrap();

    assert_eq!(host.get("/health").status(), 200, "the host still serves");
}
