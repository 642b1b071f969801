//! End-to-end tests of monitoring through the real host: rules from the mounted file and the API, alerts
//! that fire once, repeat never within their interval, resolve when the condition clears and can be acked,
//! delivered to a real local HTTP receiver (generic webhook and Slack-compatible) with retries.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Host, HostOptions, Kv, TOKEN, client};

/// An HTTP receiver on 127.0.0.1 that records every request (path, JSON body) and answers the statuses
/// queued in `fail_first` before answering 200.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    fn start(fail_first: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (seen2, answers) = (seen.clone(), Arc::new(Mutex::new(fail_first)));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = {
                    let mut a = answers.lock().unwrap();
                    if a.is_empty() { 200 } else { a.remove(0) }
                };
                seen2.lock().unwrap().push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let mut stream = stream;
                let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { port, seen }
    }

    fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn send(host: &Host, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = client().request(method, format!("{}{path}", host.base)).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn evaluate(host: &Host) -> Value {
    let (status, report) = send(host, Method::POST, "/api/alerts/evaluate", None);
    assert_eq!(status, 200, "{report}");
    report
}

fn firing(host: &Host) -> Vec<Value> {
    let (status, body) = send(host, Method::GET, "/api/alerts?state=firing", None);
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

#[test]
fn alerts_fire_once_notify_with_retries_and_resolve() {
    // The first delivery attempt fails: the channel retries.
    let receiver = Receiver::start(vec![500]);
    let hook = format!("http://127.0.0.1:{}", receiver.port);
    let host = Host::start(
        Kv::Embedded,
        HostOptions {
            env: vec![
                ("SPIN_VARIABLE_ALERT_WEBHOOK_URL".into(), format!("{hook}/webhook")),
                ("SPIN_VARIABLE_ALERT_SLACK_WEBHOOK_URL".into(), format!("{hook}/slack")),
                ("SPIN_VARIABLE_EXTERNAL_API_TIMEOUT_SECS".into(), "5".into()),
            ],
            ..Default::default()
        },
    );

    // The rules file is mounted and read.
    let (status, rules) = send(&host, Method::GET, "/api/alerts/rules", None);
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules["rules_file"]["found"], json!(true), "{rules}");
    assert!(
        rules["rules"].as_array().unwrap().iter().any(|r| r["id"] == "backup-stale" || r["kind"] == "backup_stale")
    );

    // A fresh deployment has no backup: that alert fires, once, on both channels.
    let report = evaluate(&host);
    let alerts = firing(&host);
    let backup_alert = alerts.iter().find(|a| a["kind"] == "backup_stale").unwrap_or_else(|| panic!("{report}"));
    let seen = receiver.take();
    let webhook: Vec<&Value> = seen.iter().filter(|(p, _)| p == "/webhook").map(|(_, b)| b).collect();
    let slack: Vec<&Value> = seen.iter().filter(|(p, _)| p == "/slack").map(|(_, b)| b).collect();
    assert!(webhook.iter().any(|b| b["status"] == "firing" && b["alert"]["id"] == backup_alert["id"]), "{seen:?}");
    assert!(slack.iter().any(|b| b["text"].as_str().is_some_and(|t| t.contains("FIRING"))), "{seen:?}");
    let id = backup_alert["id"].as_i64().unwrap();
    let (_, detail) = send(&host, Method::GET, &format!("/api/alerts/{id}"), None);
    let events: Vec<&str> = detail["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.contains(&"fired") && events.contains(&"notify_failed") && events.contains(&"notified"), "{detail}");

    // Evaluated again, still firing: no second notification (the repeat interval has not passed).
    evaluate(&host);
    assert!(receiver.take().iter().all(|(_, b)| b["alert"]["id"] != json!(id)));
    assert_eq!(firing(&host).iter().filter(|a| a["id"] == json!(id)).count(), 1);

    // Ack: recorded once; a second ack keeps the first.
    let (status, acked) = send(&host, Method::POST, &format!("/api/alerts/{id}/ack"), Some(&json!({"by": "oncall"})));
    assert_eq!((status, acked["acked_by"].clone()), (200, json!("oncall")), "{acked}");

    // A verified backup clears the condition: the alert resolves and the resolution is sent.
    let (status, backup) = send(&host, Method::POST, "/api/backups", Some(&json!({})));
    assert_eq!(status, 201, "{backup}");
    evaluate(&host);
    assert!(firing(&host).iter().all(|a| a["id"] != json!(id)));
    let (_, resolved) = send(&host, Method::GET, &format!("/api/alerts/{id}"), None);
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    assert!(
        receiver
            .take()
            .iter()
            .any(|(p, b)| p == "/webhook" && b["status"] == "resolved" && b["alert"]["id"] == json!(id))
    );
    let (status, _) = send(&host, Method::POST, &format!("/api/alerts/{id}/ack"), None);
    assert_eq!(status, 409, "only a firing alert can be acked");
}

#[test]
fn rules_set_through_the_api_override_the_file_and_bad_ones_are_refused() {
    let host = Host::start(Kv::Embedded, HostOptions::default());

    // A p95 latency rule on /health with a threshold every request exceeds.
    let rule = json!({"id": "health-latency", "kind": "latency_p95", "route": "/health", "window_minutes": 15,
                      "warn": 0.000001, "min_rows": 5, "channels": []});
    let (status, body) = send(&host, Method::PUT, "/api/alerts/rules/health-latency", Some(&rule));
    assert_eq!(status, 200, "{body}");
    for _ in 0..8 {
        assert_eq!(host.get("/health").status(), 200);
    }
    // Host metrics reach the store within a second or two.
    let fired = support::eventually(Duration::from_secs(10), || {
        evaluate(&host);
        firing(&host).into_iter().find(|a| a["rule_id"] == "health-latency")
    });
    assert!(fired.is_some(), "the latency rule fires");

    // Disabling the rule resolves its alert.
    let (status, _) = send(
        &host,
        Method::PUT,
        "/api/alerts/rules/health-latency",
        Some(&json!({"kind": "latency_p95", "route": "/health", "enabled": false})),
    );
    assert_eq!(status, 200);
    evaluate(&host);
    assert!(firing(&host).iter().all(|a| a["rule_id"] != "health-latency"));

    // Bad rules name the field; nothing is stored.
    for (bad, field) in [
        (json!({"rules": [{"id": "x", "kind": "no_such_kind"}]}), "kind"),
        (json!({"rules": [{"id": "x", "kind": "error_rate", "route": "/api/predict/...", "warn": 2.0}]}), "warn"),
        (json!({"rules": [{"id": "x", "kind": "score_drift"}]}), "model"),
    ] {
        let (status, body) = send(&host, Method::PUT, "/api/alerts/rules", Some(&bad));
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{body}");
    }
    // Writes need the token.
    let resp = client().put(format!("{}/api/alerts/rules/x", host.base)).json(&rule).send().unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn data_rules_fire_on_stale_bars_failed_jobs_and_drifting_scores() {
    let host = Host::start(Kv::Embedded, HostOptions::default());
    let csv = std::fs::read(support::root().join("tests/fixtures/reference/us4_ohlcv.csv")).unwrap();
    assert_eq!(
        client().post(format!("{}/api/bars", host.base)).bearer_auth(TOKEN).body(csv).send().unwrap().status(),
        200
    );
    let job = json!({"model": "m", "segments": {"train": {"from": "2005-01-01", "to": "2009-12-31"},
        "valid": {"from": "2010-01-01", "to": "2010-12-31"}, "test": {"from": "2011-01-01", "to": "2013-03-01"}},
        "params": {"num_leaves": 15, "num_boost_round": 30, "early_stopping_rounds": 0}});
    assert_eq!(send(&host, Method::POST, "/api/train", Some(&job)).0, 201);
    assert_eq!(send(&host, Method::PUT, "/api/models/m/aliases/champion", Some(&json!({"version": 1}))).0, 200);

    let rules = json!({"rules": [
        {"id": "bars", "kind": "staleness", "channels": []},
        {"id": "jobs", "kind": "failed_jobs", "window_minutes": 1440, "channels": []},
        {"id": "scores", "kind": "score_drift", "model": "m", "window_minutes": 1440, "min_rows": 30, "channels": []},
    ]});
    let (status, body) = send(&host, Method::PUT, "/api/alerts/rules", Some(&rules));
    assert_eq!(status, 200, "{body}");

    // Nothing logged and no failed job yet: the score rule skips (too few rows), the job rule is clean.
    let report = evaluate(&host);
    let firing_rules = |host: &Host| -> Vec<String> {
        firing(host).iter().filter_map(|a| a["rule_id"].as_str().map(str::to_string)).collect()
    };
    assert!(firing_rules(&host).contains(&"bars".to_string()), "the sample bars end in 2013: {report}");
    assert!(!firing_rules(&host).contains(&"jobs".to_string()));
    assert!(!firing_rules(&host).contains(&"scores".to_string()));

    // A failed job, and 36 logged scores (four symbols on nine days) of a model far from its reference:
    // the reference is of the valid segment, 2010; the scores are of 2013.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    support::sql(
        &host.db_path(),
        &[&format!(
            "INSERT INTO train_jobs (id, model_name, status, created_at, finished_at, error, trigger) \
             VALUES ('job-x', 'm', 'failed', '{now}', '{now}', 'out of memory', 'api')"
        )],
    );
    for day in ["02-19", "02-20", "02-21", "02-22", "02-25", "02-26", "02-27", "02-28", "03-01"] {
        let (status, body) =
            send(&host, Method::POST, "/api/predict", Some(&json!({"model": "m", "date": format!("2013-{day}")})));
        assert_eq!(status, 200, "{body}");
    }
    let report = evaluate(&host);
    let now_firing = firing_rules(&host);
    for rule in ["bars", "jobs", "scores"] {
        assert!(now_firing.contains(&rule.to_string()), "{rule} fires: {report}");
    }
}
