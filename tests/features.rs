//! End-to-end tests of the features capability: bar ingest and reads, feature matrices, the feature
//! cache and custom sets over HTTP through the real host and component, and the native CLI
//! (`stockops ingest`, `stockops features`). Answers are checked against the library's own computation.

mod support;

use support::json_of as json;

use features::store::{self, NamedSet};
use features::{ingest, qlib_bin::QlibDir};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use stockops_core::{Bar, BarSeries};
use support::{Host, HostOptions, Kv, TOKEN, client, root, stockops_bin};

const US4_BARS: u64 = 11_958;

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/reference").join(name)
}

fn us4_csv() -> Vec<u8> {
    std::fs::read(fixture("us4_ohlcv.csv")).unwrap()
}

fn post_bars(host: &Host, query: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = client().post(format!("{}/api/bars{query}", host.base)).bearer_auth(TOKEN).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    json(req.send().unwrap())
}

fn bar_count(host: &Host) -> u64 {
    let (status, body) = json(host.get("/api/bars"));
    assert_eq!(status, 200, "{body}");
    body["symbols"].as_array().unwrap().iter().map(|s| s["count"].as_u64().unwrap()).sum()
}

/// The fixture's bars of one symbol up to `to`, as the library reads them.
fn library_series(symbol: &str, to: &str) -> BarSeries {
    let to: chrono::NaiveDate = to.parse().unwrap();
    let bars: Vec<Bar> = ingest::parse_csv(&us4_csv(), None)
        .unwrap()
        .into_iter()
        .filter(|b| b.symbol == symbol && b.date <= to)
        .collect();
    BarSeries::from_bars(symbol, &bars)
}

/// Equal as feature values: both NaN (null in JSON), or within 1e-12 relative (wasm and native libm
/// may round a transcendental function differently in the last bit).
fn close_enough(got: f64, want: f64) -> bool {
    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-12 * want.abs().max(1e-300) || got == want
}

fn values(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

#[test]
fn bars_ingest_is_validated_idempotent_and_readable() {
    let host = Host::start(Kv::Embedded, HostOptions::default());

    // Writes need the token.
    let resp = client().post(format!("{}/api/bars", host.base)).body(us4_csv()).send().unwrap();
    let (status, body) = json(resp);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    let resp = client().post(format!("{}/api/bars", host.base)).bearer_auth("wrong").body(us4_csv()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(bar_count(&host), 0);

    let (status, body) = post_bars(&host, "", Some("text/csv"), us4_csv());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inserted_or_updated"], US4_BARS);
    assert_eq!(body["symbols"], serde_json::json!(["AAPL", "GOOG", "IBM", "MSFT"]));
    assert_eq!(bar_count(&host), US4_BARS);

    // Re-ingest (content sniffed, no Content-Type) replaces the same rows: same count, same bars.
    let before = json(host.get("/api/bars/IBM")).1;
    let (status, body) = post_bars(&host, "", None, us4_csv());
    assert_eq!((status, body["inserted_or_updated"].as_u64()), (200, Some(US4_BARS)), "{body}");
    assert_eq!(bar_count(&host), US4_BARS);
    assert_eq!(json(host.get("/api/bars/IBM")).1, before);

    // Every bad-row kind answers 400 with its line, and nothing of the request is written.
    let header = "symbol,date,open,high,low,close,volume\n";
    let good = "ZZZ,2020-01-02,10,11,9,10.5,100\n";
    let bad_rows = [
        ("ZZZ,2020-13-45,10,11,9,10.5,100", "date"),
        ("ZZZ,2020-01-03,10,9.5,9,10.5,100", "high"),
        ("ZZZ,2020-01-03,10,11,10.2,10.5,100", "low"),
        ("ZZZ,2020-01-03,0,11,9,10.5,100", "open"),
        ("ZZZ,2020-01-03,10,11,9,-1,100", "close"),
        ("ZZZ,2020-01-03,10,11,9,10.5,-5", "volume"),
        ("ZZZ,2020-01-03,10,11,9,ten,100", "close"),
        ("ZZZ,2020-01-03,10,,9,10.5,100", "high"),
        ("ZZZ,2020-01-02,10,11,9,10.5,100", "date"),
    ];
    for (row, field) in bad_rows {
        let (status, body) = post_bars(&host, "", Some("text/csv"), format!("{header}{good}{row}\n").into_bytes());
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_row")), "{row}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("line 3: {field} ")), "{row}: {msg}");
    }
    let json_body = r#"[{"symbol":"ZZZ","date":"2020-01-02","open":10,"high":11,"low":9,"close":10.5,"volume":1},
                        {"symbol":"ZZZ","date":"2020-01-03","open":10,"high":11,"low":9,"close":10.5,"volume":-1}]"#;
    let (status, body) = post_bars(&host, "", Some("application/json"), json_body.as_bytes().to_vec());
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("record 2: volume"), "{body}");
    assert_eq!(host.get("/api/bars/ZZZ").status().as_u16(), 404, "a rejected request wrote nothing");
    assert_eq!(bar_count(&host), US4_BARS);

    // A file without a symbol column takes ?symbol=; JSON is sniffed.
    let no_symbol = "date,open,high,low,close,volume\n2020-01-02,10,11,9,10.5,100\n2020-01-03,10,11,9,10.5,100\n";
    let (status, body) = post_bars(&host, "?symbol=zzz", None, no_symbol.as_bytes().to_vec());
    assert_eq!((status, body["inserted_or_updated"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(body["symbols"], serde_json::json!(["ZZZ"]));
    let (status, body) = post_bars(&host, "", None, b"date,open\n".to_vec());
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_input")), "{body}");
    let (status, body) = post_bars(
        &host,
        "?symbol=zzj",
        None,
        b"  [{\"date\":\"2020-01-06\",\"open\":1,\"high\":1,\"low\":1,\"close\":1,\"volume\":0}]".to_vec(),
    );
    assert_eq!((status, body["symbols"][0].as_str()), (200, Some("ZZJ")), "{body}");

    // A date range of one symbol's bars, as ingested.
    let (status, body) = json(host.get("/api/bars/aapl?from=2010-01-04&to=2010-01-08"));
    assert_eq!(status, 200, "{body}");
    let want: Vec<Bar> = ingest::parse_csv(&us4_csv(), None)
        .unwrap()
        .into_iter()
        .filter(|b| {
            b.symbol == "AAPL"
                && (b.date.to_string().as_str() >= "2010-01-04")
                && b.date.to_string().as_str() <= "2010-01-08"
        })
        .collect();
    assert_eq!(want.len(), 5);
    assert_eq!(body["count"], 5);
    let got: Vec<Bar> = serde_json::from_value(body["bars"].clone()).unwrap();
    assert_eq!(got, want);
    let (status, body) = json(host.get("/api/bars/AAPL?from=1990-01-01&to=1990-12-31"));
    assert_eq!((status, body["count"].as_u64()), (200, Some(0)), "known symbol, empty range");
    assert_eq!(json(host.get("/api/bars/NOPE")).0, 404);
    assert_eq!(json(host.get("/api/bars/AAPL?from=yesterday")).1["error"]["code"], "bad_query");

    // Wrong methods and unknown paths, in the one error shape.
    let (status, body) = json(client().delete(format!("{}/api/bars", host.base)).send().unwrap());
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    let (status, _) = json(client().post(format!("{}/api/features/AAPL", host.base)).send().unwrap());
    assert_eq!(status, 405);
    let (status, body) = json(host.get("/api/features/AAPL/extra/segments"));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
}

fn features_match_the_library_through_the_cache(kv: Kv) {
    let host = Host::start(kv, HostOptions::default());
    assert_eq!(post_bars(&host, "", Some("text/csv"), us4_csv()).0, 200);

    // Alpha158 for AAPL over 2012, computed on the full history up to `to`, equals the library's.
    let path = "/api/features/AAPL?set=alpha158&from=2012-01-03&to=2012-12-31";
    let resp = host.get(path);
    assert_eq!(resp.headers()["x-feature-cache"], "miss");
    let (status, body) = json(resp);
    assert_eq!(status, 200, "{body}");
    let set = NamedSet::builtin("alpha158").unwrap();
    assert_eq!(body["version"], set.version());
    let series = library_series("AAPL", "2012-12-31");
    let want = set.compute(&series).unwrap().slice(Some("2012-01-03".parse().unwrap()), None);
    let dates: Vec<String> = serde_json::from_value(body["dates"].clone()).unwrap();
    assert_eq!(dates.len(), want.dates.len());
    assert_eq!(dates.first().map(String::as_str), Some("2012-01-03"));
    assert_eq!(dates.last().map(String::as_str), Some("2012-12-31"));
    let columns = body["columns"].as_array().unwrap();
    assert_eq!(columns.len(), 158);
    for (j, col) in columns.iter().enumerate() {
        assert_eq!(col["name"], want.names[j]);
        for (i, (g, w)) in values(&col["values"]).into_iter().zip(&want.columns[j]).enumerate() {
            assert!(close_enough(g, *w), "{} at {}: got {g}, want {w}", want.names[j], dates[i]);
        }
    }

    // The same request again comes from the cache, with the same answer. The component writes the
    // matrix after answering, so the first request after may still find none.
    let mut resp = host.get(path);
    for _ in 0..100 {
        if resp.headers()["x-feature-cache"] == "hit" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        resp = host.get(path);
    }
    assert_eq!(resp.headers()["x-feature-cache"], "hit");
    assert_eq!(json(resp).1, body);

    // CSV: a header, a row per date, NaN as an empty cell.
    let resp = host.get("/api/features/AAPL?set=alpha158&to=2000-06-30&format=csv");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv");
    let text = resp.text().unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.len(), 159);
    assert_eq!((header[0].as_str(), header[1].as_str()), ("date", "KMID"));
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let series = library_series("AAPL", "2000-06-30");
    let want = set.compute(&series).unwrap();
    assert_eq!(records.len(), series.len());
    let roc5 = header.iter().position(|h| h == "ROC5").unwrap();
    for (i, r) in records.iter().enumerate() {
        let cell = &r[roc5];
        let got = if cell.is_empty() { f64::NAN } else { cell.parse().unwrap() };
        assert!(close_enough(got, want.columns[roc5 - 1][i]), "ROC5 row {i}: {cell}");
    }
    assert!(records[4][roc5].is_empty() && !records[5][roc5].is_empty(), "ROC5 needs 5 days of history");

    // The technical set; unknown sets and formats.
    let (status, body) = json(host.get("/api/features/MSFT?set=technical&from=2013-01-02"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"].as_array().unwrap().len(), 47);
    assert_eq!(json(host.get("/api/features/MSFT?set=nope")).0, 404);
    assert_eq!(json(host.get("/api/features/MSFT?format=xml")).0, 400);
    assert_eq!(json(host.get("/api/features/NOPE")).0, 404);

    // A custom set: defined with PUT (auth, validated), then used like a built-in one.
    let def = r#"{"name": "mine", "features": [{"name": "MOM5", "expression": "Ref($close, 5)/$close"},
                                               {"name": "RNG", "expression": "($high-$low)/$open"}]}"#;
    let url = format!("{}/api/features/sets/mine", host.base);
    assert_eq!(client().put(&url).body(def).send().unwrap().status().as_u16(), 401);
    let bad = r#"{"name": "mine", "features": [{"name": "X", "expression": "Mean($close)"}]}"#;
    let (status, body) = json(client().put(&url).bearer_auth(TOKEN).body(bad).send().unwrap());
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_feature_set")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 1"), "{body}");
    let (status, body) = json(client().put(&url).bearer_auth(TOKEN).body(def).send().unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["features"], serde_json::json!(["MOM5", "RNG"]));
    let reserved = format!("{}/api/features/sets/alpha158", host.base);
    assert_eq!(json(client().put(&reserved).bearer_auth(TOKEN).body(def).send().unwrap()).0, 400);
    assert_eq!(json(host.get("/api/features/sets/mine")).1["features"][0]["expression"], "Div(Ref($close,5),$close)");

    let (status, body) = json(host.get("/api/features/GOOG?set=mine&from=2013-02-01"));
    assert_eq!(status, 200, "{body}");
    let mine = NamedSet::Expressions(Box::new(features::alpha::FeatureSet::from_json(def).unwrap()));
    let want =
        mine.compute(&library_series("GOOG", "2099-01-01")).unwrap().slice(Some("2013-02-01".parse().unwrap()), None);
    for (j, col) in body["columns"].as_array().unwrap().iter().enumerate() {
        let got = values(&col["values"]);
        assert_eq!(got.len(), want.dates.len());
        assert!(got.iter().zip(&want.columns[j]).all(|(g, w)| close_enough(*g, *w)), "{}", want.names[j]);
    }

    // A corrected past bar drops the symbol's cached features, though its last date is unchanged.
    let fix = "symbol,date,open,high,low,close,volume\nAAPL,2012-06-01,560,575,550,570,1000000\n";
    assert_eq!(post_bars(&host, "", Some("text/csv"), fix.as_bytes().to_vec()).0, 200);
    assert_eq!(host.get(path).headers()["x-feature-cache"], "miss");

    // The cron job warms the default sets at each symbol's newest bar.
    let out = Command::new(stockops_bin())
        .args(["cron", "run", "features", "--manifest"])
        .arg(root().join("spin.toml"))
        .arg("--runtime-config")
        .arg(host.dir.path().join("runtime-config.toml"))
        .arg("--cache-dir")
        .arg(root().join("target/aot-cache"))
        .env("SPIN_VARIABLE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "cron run failed: {}", String::from_utf8_lossy(&out.stderr));
    for (symbol, set) in [("IBM", "alpha360"), ("MSFT", "technical"), ("GOOG", "alpha158")] {
        let resp = host.get(&format!("/api/features/{symbol}?set={set}&from=2013-01-01"));
        assert_eq!(resp.headers()["x-feature-cache"], "hit", "{symbol} {set}");
    }
}

#[test]
fn features_match_the_library_through_the_cache_embedded() {
    features_match_the_library_through_the_cache(Kv::Embedded);
}

#[test]
fn features_match_the_library_through_the_cache_redis() {
    features_match_the_library_through_the_cache(Kv::Redis);
}

fn write_runtime_config(dir: &Path) -> PathBuf {
    let rc = dir.join("runtime-config.toml");
    std::fs::write(
        &rc,
        "[sqlite_database.default]\ntype = \"spin\"\npath = \"db.sqlite\"\n\n\
         [key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n",
    )
    .unwrap();
    rc
}

fn stockops(args: &[&str], rc: &Path) -> String {
    let out = Command::new(stockops_bin()).args(args).arg("--runtime-config").arg(rc).output().unwrap();
    assert!(out.status.success(), "stockops {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_ingests_qlib_and_csv_and_exports_features() {
    let dir = tempfile::tempdir().unwrap();
    let rc = write_runtime_config(dir.path());
    let qlib = fixture("qlib_us4");
    let q = QlibDir::open(&qlib).unwrap();
    let expected: Vec<(String, Vec<Bar>)> = q
        .instruments("all")
        .unwrap()
        .into_iter()
        .map(|i| {
            let s = q.load_bars(&i.symbol).unwrap();
            (i.symbol, store::bars_from_qlib(&s))
        })
        .collect();
    let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
    assert!(total > 10_000);

    let out = stockops(&["ingest", "--qlib", qlib.to_str().unwrap()], &rc);
    assert!(out.starts_with(&format!("ingested {total} bars of 4 symbols")), "{out}");
    // Idempotent.
    let out = stockops(&["ingest", "--qlib", qlib.to_str().unwrap()], &rc);
    assert!(out.starts_with(&format!("ingested {total} bars of 4 symbols")), "{out}");

    let csv_out = dir.path().join("alpha158.csv");
    let out = stockops(&["features", "--set", "alpha158", "--out", csv_out.to_str().unwrap()], &rc);
    assert!(out.starts_with(&format!("wrote {total} rows of 158 features")), "{out}");
    let mut reader = csv::Reader::from_path(&csv_out).unwrap();
    assert_eq!(reader.headers().unwrap().len(), 160);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), total);

    // Features of the stored (raw) bars are computed over adjusted prices: Qlib's own values.
    let aapl = q.load_bars("AAPL").unwrap();
    let want = features::alpha::alpha158().compute(&aapl).unwrap();
    let rows: Vec<&csv::StringRecord> = records.iter().filter(|r| &r[0] == "AAPL").collect();
    let roc5 = want.names.iter().position(|n| n == "ROC5").unwrap();
    let mut compared = 0;
    for (i, r) in rows.iter().enumerate() {
        let cell = &r[2 + roc5];
        let w = want.columns[roc5][i];
        if cell.is_empty() {
            assert!(w.is_nan(), "row {i}");
        } else {
            let g: f64 = cell.parse().unwrap();
            assert!((g - w).abs() <= 1e-9 * w.abs(), "ROC5 row {i}: {g} vs {w}");
            compared += 1;
        }
    }
    assert!(compared > 3000);

    // The same export as Parquet: every cell equal to the CSV's (NaN is null there, empty here).
    let pq_out = dir.path().join("alpha158.parquet");
    let out = stockops(&["features", "--set", "alpha158", "--out", pq_out.to_str().unwrap()], &rc);
    assert!(out.starts_with(&format!("wrote {total} rows of 158 features")), "{out}");
    let parquet = SerializedFileReader::new(std::fs::File::open(&pq_out).unwrap()).unwrap();
    let schema = parquet.metadata().file_metadata().schema_descr();
    let names: Vec<String> = (0..schema.num_columns()).map(|i| schema.column(i).name().to_string()).collect();
    assert_eq!(names, reader.headers().unwrap().iter().collect::<Vec<_>>());
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let mut n = 0;
    for (row, record) in parquet.get_row_iter(None).unwrap().zip(&records) {
        let row = row.unwrap();
        for (i, (_, field)) in row.get_column_iter().enumerate() {
            let cell = &record[i];
            match field {
                Field::Str(s) => assert_eq!(s, cell),
                Field::Date(days) => assert_eq!(epoch + chrono::Days::new(*days as u64), cell.parse().unwrap()),
                Field::Double(v) => assert_eq!(v.to_bits(), cell.parse::<f64>().unwrap().to_bits(), "row {n} col {i}"),
                Field::Null => assert!(cell.is_empty(), "row {n} col {i}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        n += 1;
    }
    assert_eq!(n, total);

    // CSV ingest into the same database: a file, then idempotent again.
    let out = stockops(&["ingest", "--csv", fixture("us4_ohlcv.csv").to_str().unwrap()], &rc);
    assert!(out.starts_with(&format!("ingested {US4_BARS} bars of 4 symbols")), "{out}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,open,high,low,close,volume\n2020-01-02,10,11,9,10.5,100\n2020-01-03,10,9,9,10.5,100\n")
        .unwrap();
    let out = Command::new(stockops_bin())
        .args(["ingest", "--csv"])
        .arg(&bad)
        .arg("--runtime-config")
        .arg(&rc)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv") && err.contains("line 3: high"), "{err}");
}
