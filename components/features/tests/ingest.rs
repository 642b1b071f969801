//! Bar ingest: every rejection names the right row, field and reason; formats and aliases parse;
//! the reference file loads whole; JSON and CSV agree.

use std::path::PathBuf;

use chrono::NaiveDate;
use features::ingest::{IngestError, Location, Problem, parse_csv, parse_json};
use stockops_core::Bar;

const HEADER: &str = "symbol,date,open,high,low,close,volume";

fn csv_with(rows: &[&str]) -> Vec<u8> {
    let mut text = String::from(HEADER);
    for row in rows {
        text.push('\n');
        text.push_str(row);
    }
    text.into_bytes()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The (location, field, problem) of a row rejection; panics on any other outcome.
fn rejection(result: Result<Vec<Bar>, IngestError>) -> (Location, &'static str, Problem) {
    match result {
        Err(IngestError::BadRow { at, field, problem }) => (at, field, problem),
        other => panic!("expected a row rejection, got {other:?}"),
    }
}

const GOOD: &str = "aapl,2020-01-02,10,11,9,10.5,1000";

#[test]
fn every_bad_row_kind_is_refused_with_its_line_and_reason() {
    let cases: Vec<(&str, &str, Problem)> = vec![
        ("AAPL,,10,11,9,10.5,1000", "date", Problem::Missing),
        ("AAPL,2020-02-30,10,11,9,10.5,1000", "date", Problem::BadDate("2020-02-30".into())),
        ("AAPL,2020-01-03,abc,11,9,10.5,1000", "open", Problem::NotANumber("abc".into())),
        ("AAPL,2020-01-03,10,inf,9,10.5,1000", "high", Problem::NotFinite(f64::INFINITY)),
        ("AAPL,2020-01-03,10,11,0,10.5,1000", "low", Problem::NotPositive(0.0)),
        ("AAPL,2020-01-03,10,11,9,-10.5,1000", "close", Problem::NotPositive(-10.5)),
        ("AAPL,2020-01-03,10,11,9,10.5,-1", "volume", Problem::Negative(-1.0)),
        ("AAPL,2020-01-03,10,11,9,10.5,NaN", "volume", Problem::NotFinite(f64::NAN)),
        ("AAPL,2020-01-03,10,11,9,10.5,", "volume", Problem::Missing),
        (",2020-01-03,10,11,9,10.5,1000", "symbol", Problem::Missing),
        (
            "AAPL,2020-01-03,12,11,9,10.5,1000",
            "high",
            Problem::BelowOther { value: 11.0, other: "open", other_value: 12.0 },
        ),
        (
            "AAPL,2020-01-03,10,10.5,9,11.2,1000",
            "high",
            Problem::BelowOther { value: 10.5, other: "close", other_value: 11.2 },
        ),
        (
            "AAPL,2020-01-03,9.5,11,9.8,10.5,1000",
            "low",
            Problem::AboveOther { value: 9.8, other: "open", other_value: 9.5 },
        ),
        (
            "AAPL,2020-01-03,10,11,9.5,9.2,1000",
            "low",
            Problem::AboveOther { value: 9.5, other: "close", other_value: 9.2 },
        ),
        (
            "Aapl,2020-01-02,10,11,9,10.5,1000",
            "date",
            Problem::Duplicate { date: date(2020, 1, 2), symbol: "AAPL".into(), first: Location::Line(2) },
        ),
    ];
    for (row, field, problem) in cases {
        // Two good rows (lines 2 and 3) precede the bad one: it sits on line 4.
        let input = csv_with(&[GOOD, "MSFT,2020-01-02,10,11,9,10.5,1000", row]);
        let (at, got_field, got_problem) = rejection(parse_csv(&input, None));
        assert_eq!(at, Location::Line(4), "{row}");
        assert_eq!(got_field, field, "{row}");
        match (&got_problem, &problem) {
            (Problem::NotFinite(a), Problem::NotFinite(b)) => {
                assert!(a.is_nan() && b.is_nan() || a == b, "{row}")
            }
            _ => assert_eq!(got_problem, problem, "{row}"),
        }
    }
}

#[test]
fn messages_name_line_field_and_reason() {
    let input = csv_with(&[GOOD, "AAPL,2020-01-03,10,10.5,9,11.2,1000"]);
    let err = parse_csv(&input, None).expect_err("high below close");
    assert_eq!(err.to_string(), "line 3: high 10.5 is below close 11.2");

    let err = parse_csv(b"date,open,high,low,volume\n2020-01-02,1,1,1,1", Some("x")).expect_err("no close");
    assert_eq!(err.to_string(), "missing required column `close` (accepted headers: close)");

    let input = csv_with(&[GOOD, GOOD]);
    let err = parse_csv(&input, None).expect_err("duplicate");
    assert_eq!(err.to_string(), "line 3: date 2020-01-02 repeats the AAPL bar at line 2");
}

#[test]
fn line_numbers_are_physical_lines() {
    // A blank line and a quoted field spanning two lines come before the bad row.
    let input = format!("{HEADER}\n{GOOD}\n\n\"MS\nFT\",2020-01-02,10,11,9,10.5,1000\nIBM,2020-01-02,10,11,9,10.5,x\n");
    let (at, field, _) = rejection(parse_csv(input.as_bytes(), None));
    assert_eq!((at, field), (Location::Line(6), "volume"));
}

#[test]
fn missing_columns_empty_inputs_and_symbols() {
    for (header, missing) in [
        ("symbol,open,high,low,close,volume", "date"),
        ("symbol,date,high,low,close,volume", "open"),
        ("symbol,date,open,low,close,volume", "high"),
        ("symbol,date,open,high,close,volume", "low"),
        ("symbol,date,open,high,low,adj_close,volume", "close"),
        ("symbol,date,open,high,low,close", "volume"),
    ] {
        match parse_csv(format!("{header}\n").as_bytes(), None) {
            Err(IngestError::MissingColumn { field, .. }) => assert_eq!(field, missing, "{header}"),
            other => panic!("{header}: {other:?}"),
        }
    }
    assert_eq!(parse_csv(b"", None), Err(IngestError::Empty));
    assert_eq!(parse_csv(HEADER.as_bytes(), None), Err(IngestError::Empty));
    assert_eq!(parse_csv(b"date,open,high,low,close,volume\n", None), Err(IngestError::NoSymbol));
    assert_eq!(parse_json(b"[]", None), Err(IngestError::Empty));
    assert!(matches!(parse_json(b"{\"a\":1}", None), Err(IngestError::Malformed { at: Location::Input, .. })));
    assert!(matches!(parse_json(b"[{\"date\":", None), Err(IngestError::Malformed { .. })));
    assert!(matches!(
        parse_csv(b"symbol,date,Date,open,high,low,close,volume\n", None),
        Err(IngestError::BadRow { at: Location::Line(1), field: "date", problem: Problem::GivenTwice(..) })
    ));
}

#[test]
fn every_date_format_parses() {
    for text in ["2021-03-04", "2021/03/04", "20210304", "03/04/2021", "2021-03-04T15:30:00-05:00"] {
        let input = format!("{HEADER}\nX,{text},1,2,0.5,1.5,10");
        let bars = parse_csv(input.as_bytes(), None).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(bars[0].date, date(2021, 3, 4), "{text}");
    }
}

#[test]
fn every_column_alias_parses() {
    let want = Bar {
        symbol: "BRK.B".into(),
        date: date(2021, 3, 4),
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close: 1.5,
        volume: 10.0,
        vwap: Some(1.25),
        factor: Some(0.5),
    };
    for symbol in ["symbol", "Ticker", "INSTRUMENT", "code"] {
        for day in ["date", "DateTime", "timestamp", "Day"] {
            for volume in ["volume", "Vol"] {
                for factor in ["factor", "ADJ_FACTOR"] {
                    let input = format!(
                        "{symbol},{day},Open,HIGH,low,Close,{volume},VWAP,{factor},ignored\nbrk.b,2021-03-04,1,2,0.5,1.5,10,1.25,0.5,zz"
                    );
                    assert_eq!(parse_csv(input.as_bytes(), None), Ok(vec![want.clone()]), "{input}");
                }
            }
        }
    }
    // Without a symbol column the caller names the file's bars; optional columns may be absent.
    let bars =
        parse_csv(b"date,open,high,low,close,volume\n2021-03-04,1,2,0.5,1.5,10", Some(" msft ")).expect("parses");
    assert_eq!((bars[0].symbol.as_str(), bars[0].vwap, bars[0].factor), ("MSFT", None, None));
}

#[test]
fn reference_file_parses_whole() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/us4_ohlcv.csv");
    let input = std::fs::read(path).expect("read us4_ohlcv.csv");
    let bars = parse_csv(&input, None).expect("reference file is valid");
    assert_eq!(bars.len(), 3 * 3270 + 2148);
    let count = |s: &str| bars.iter().filter(|b| b.symbol == s).count();
    assert_eq!([count("AAPL"), count("IBM"), count("MSFT"), count("GOOG")], [3270, 3270, 3270, 2148]);
    let first = &bars[0];
    assert_eq!((first.symbol.as_str(), first.date, first.close), ("AAPL", date(2000, 3, 1), 130.31));
    assert_eq!(first.vwap, Some(126.9566667));
    assert!(bars.iter().all(|b| b.factor.is_none()));
}

#[test]
fn json_equals_csv_for_the_same_rows() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/us4_ohlcv.csv");
    let text = std::fs::read_to_string(path).expect("read us4_ohlcv.csv");
    let head: Vec<&str> = text.lines().take(400).collect();
    let from_csv = parse_csv(head.join("\n").as_bytes(), None).expect("csv");

    // The same rows as JSON: prices as numbers, volume as a numeric string, keys in another case.
    let records: Vec<serde_json::Value> = head[1..]
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f[i].parse::<f64>().expect("number");
            serde_json::json!({
                "Ticker": f[0], "date": f[1], "open": num(2), "high": num(3), "low": num(4),
                "close": num(5), "Volume": f[6], "vwap": num(7),
            })
        })
        .collect();
    let json = serde_json::to_vec(&records).expect("serialise");
    assert_eq!(parse_json(&json, None), Ok(from_csv));
}

#[test]
fn json_rows_are_checked_and_numbered_by_record() {
    let good = r#"
        {"symbol": "aapl", "date": "2020-01-02", "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": 1000},
        {"symbol": "aapl", "date": 20200103, "open": "10", "high": "11", "low": "9", "close": "10.5", "volume": "1e3"}"#;
    let bars = parse_json(format!("[{good}]").as_bytes(), None).expect("valid records");
    assert_eq!((bars[1].symbol.as_str(), bars[1].date, bars[1].volume), ("AAPL", date(2020, 1, 3), 1000.0));

    let no_symbol = r#"{"date": "2020-01-06", "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": null}"#;
    let input = format!("[{good}, {no_symbol}]");
    assert_eq!(rejection(parse_json(input.as_bytes(), None)), (Location::Record(3), "symbol", Problem::Missing));
    // The caller's symbol fills a record without a symbol key; its null volume is then the problem.
    assert_eq!(
        rejection(parse_json(input.as_bytes(), Some("aapl"))),
        (Location::Record(3), "volume", Problem::Missing)
    );

    let err =
        parse_json(br#"[{"symbol":"A","date":"2020-01-02","open":10,"high":9,"low":8,"close":9,"volume":1}]"#, None);
    assert_eq!(err.expect_err("high below open").to_string(), "record 1: high 9 is below open 10");
}
