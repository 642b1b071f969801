//! Bar ingest: daily bars from CSV or JSON into validated [`Bar`]s.
//!
//! Columns (CSV headers, JSON keys) are matched case-insensitively; unknown ones are ignored:
//!
//! | field  | accepted names                              | required |
//! |--------|---------------------------------------------|----------|
//! | symbol | `symbol`, `ticker`, `instrument`, `code`    | unless the caller names the symbol |
//! | date   | `date`, `datetime`, `timestamp`, `day`      | yes |
//! | open, high, low | `open`, `high`, `low`              | yes |
//! | close  | `close` (an adjusted close is not a close)  | yes |
//! | volume | `volume`, `vol`                             | yes |
//! | vwap   | `vwap`                                      | no  |
//! | factor | `factor`, `adj_factor`                      | no  |
//!
//! Dates: `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD`, `MM/DD/YYYY`, and ISO datetimes whose time part
//! (after `T` or a space) is dropped. Numbers may be JSON numbers or numeric strings. CSV is
//! comma-separated with a header row. The caller's symbol names the bars of an input without a
//! symbol column (in JSON: of records without a symbol key); symbols are stored upper-case.
//!
//! Every row must have a date, finite prices above 0 with high ≥ max(open, close) and
//! low ≤ min(open, close), a finite volume ≥ 0, and a (symbol, date) not seen before in the same
//! input. The first bad row rejects the whole input, naming its line (CSV: the physical line, the
//! header being line 1) or record (JSON: 1-based position in the array) and the field.

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDate;
use serde_json::Value;
use stockops_core::Bar;
use thiserror::Error;

/// Where in the input a problem sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A physical CSV line, 1-based (the header is line 1).
    Line(u64),
    /// A JSON array element, 1-based.
    Record(usize),
    /// The input as a whole.
    Input,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::Input => f.write_str("input"),
        }
    }
}

/// What is wrong with one field of one row; displayed after the field name.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The cell is empty, or the key is absent or null.
    Missing,
    /// The text does not parse as a number.
    NotANumber(String),
    /// The number is infinite or NaN.
    NotFinite(f64),
    /// A price (or factor) that is 0 or negative.
    NotPositive(f64),
    /// A negative volume.
    Negative(f64),
    /// The text is not a date in a supported format.
    BadDate(String),
    /// The high is below another price of the bar.
    BelowOther {
        /// This field's value.
        value: f64,
        /// The other field's name.
        other: &'static str,
        /// The other field's value.
        other_value: f64,
    },
    /// The low is above another price of the bar.
    AboveOther {
        /// This field's value.
        value: f64,
        /// The other field's name.
        other: &'static str,
        /// The other field's value.
        other_value: f64,
    },
    /// A second bar for a (symbol, date) already seen.
    Duplicate {
        /// The repeated date.
        date: NaiveDate,
        /// The symbol (upper-case).
        symbol: String,
        /// Where the first bar for it was.
        first: Location,
    },
    /// Two columns (or keys) map to the same field.
    GivenTwice(String, String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("is missing"),
            Problem::NotANumber(text) => write!(f, "`{text}` is not a number"),
            Problem::NotFinite(v) => write!(f, "{v} is not a finite number"),
            Problem::NotPositive(v) => write!(f, "{v} is not above 0"),
            Problem::Negative(v) => write!(f, "{v} is negative"),
            Problem::BadDate(text) => write!(
                f,
                "`{text}` is not a date (use YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, MM/DD/YYYY or an ISO datetime)"
            ),
            Problem::BelowOther { value, other, other_value } => write!(f, "{value} is below {other} {other_value}"),
            Problem::AboveOther { value, other, other_value } => write!(f, "{value} is above {other} {other_value}"),
            Problem::Duplicate { date, symbol, first } => write!(f, "{date} repeats the {symbol} bar at {first}"),
            Problem::GivenTwice(a, b) => write!(f, "is given twice (`{a}` and `{b}`); keep one"),
        }
    }
}

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IngestError {
    /// The input holds no bar (empty, or a header only).
    #[error("input holds no bars")]
    Empty,
    /// A required CSV column is absent.
    #[error("missing required column `{field}` (accepted headers: {accepted})")]
    MissingColumn {
        /// The field's canonical name.
        field: &'static str,
        /// The header names that would have been accepted.
        accepted: String,
    },
    /// Neither a symbol column nor a caller-given symbol.
    #[error("no symbol column (symbol, ticker, instrument or code) and no symbol given for the input")]
    NoSymbol,
    /// A field of one row is invalid.
    #[error("{at}: {field} {problem}")]
    BadRow {
        /// The row.
        at: Location,
        /// The field's canonical name.
        field: &'static str,
        /// What is wrong.
        problem: Problem,
    },
    /// The input is not well-formed CSV or JSON.
    #[error("{at}: {message}")]
    Malformed {
        /// Where the parser stopped.
        at: Location,
        /// The parser's explanation.
        message: String,
    },
}

/// Parses CSV bars (header row first); `symbol` names the bars of a file without a symbol column.
pub fn parse_csv(input: &[u8], symbol: Option<&str>) -> Result<Vec<Bar>, IngestError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().map_err(|e| malformed_csv(&e))?.clone();
    if headers.iter().all(str::is_empty) {
        return Err(IngestError::Empty);
    }
    let header_at = Location::Line(headers.position().map_or(1, |p| p.line()));
    let mut columns: [Option<usize>; FIELDS.len()] = [None; FIELDS.len()];
    for (i, name) in headers.iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}');
        let Some(field) = Field::named(name) else {
            continue;
        };
        if let Some(first) = columns[field as usize] {
            let first = headers.get(first).unwrap_or_default().to_string();
            return Err(bad(header_at, field, Problem::GivenTwice(first, name.to_string())));
        }
        columns[field as usize] = Some(i);
    }
    for field in FIELDS.iter().filter(|f| f.required()) {
        if columns[*field as usize].is_none() {
            return Err(IngestError::MissingColumn { field: field.name(), accepted: field.aliases().join(", ") });
        }
    }
    let file_symbol = match (columns[Field::Symbol as usize], symbol) {
        (Some(_), _) => None,
        (None, Some(s)) => Some(s),
        (None, None) => return Err(IngestError::NoSymbol),
    };

    let mut builder = Builder::default();
    for record in reader.records() {
        let record = record.map_err(|e| malformed_csv(&e))?;
        let at = record.position().map_or(Location::Input, |p| Location::Line(p.line()));
        let cell = |field: Field| match (field, file_symbol) {
            (Field::Symbol, Some(s)) => Cell::Text(s.to_string()),
            _ => match columns[field as usize].and_then(|i| record.get(i)) {
                None | Some("") => Cell::Missing,
                Some(text) => Cell::Text(text.to_string()),
            },
        };
        builder.push(at, cell)?;
    }
    builder.finish()
}

/// Parses a JSON array of bar objects; `symbol` names bars that carry no symbol key.
pub fn parse_json(input: &[u8], symbol: Option<&str>) -> Result<Vec<Bar>, IngestError> {
    let value: Value = serde_json::from_slice(input).map_err(|e| IngestError::Malformed {
        at: Location::Line(e.line() as u64),
        message: format!("invalid JSON: {e}"),
    })?;
    let Value::Array(items) = value else {
        return Err(IngestError::Malformed {
            at: Location::Input,
            message: "expected a JSON array of bar objects".into(),
        });
    };
    let mut builder = Builder::default();
    for (i, item) in items.iter().enumerate() {
        let at = Location::Record(i + 1);
        let Value::Object(object) = item else {
            return Err(IngestError::Malformed { at, message: "expected an object with the bar's fields".into() });
        };
        let mut keys: [Option<(&String, &Value)>; FIELDS.len()] = [None; FIELDS.len()];
        for (key, value) in object {
            let Some(field) = Field::named(key) else {
                continue;
            };
            if let Some((first, _)) = keys[field as usize] {
                return Err(bad(at, field, Problem::GivenTwice(first.clone(), key.clone())));
            }
            keys[field as usize] = Some((key, value));
        }
        let cell = |field: Field| match keys[field as usize].map(|(_, v)| v) {
            None if field == Field::Symbol => symbol.map_or(Cell::Missing, |s| Cell::Text(s.to_string())),
            None | Some(Value::Null) => Cell::Missing,
            Some(Value::String(s)) if s.trim().is_empty() => Cell::Missing,
            Some(Value::String(s)) => Cell::Text(s.trim().to_string()),
            Some(Value::Number(n)) => Cell::Number(n.as_f64().unwrap_or(f64::NAN), n.to_string()),
            Some(other) => Cell::Text(other.to_string()),
        };
        builder.push(at, cell)?;
    }
    builder.finish()
}

/// The fields a bar is built from, in validation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Symbol,
    Date,
    Open,
    High,
    Low,
    Close,
    Volume,
    Vwap,
    Factor,
}

/// Every field, in validation order.
const FIELDS: [Field; 9] = [
    Field::Symbol,
    Field::Date,
    Field::Open,
    Field::High,
    Field::Low,
    Field::Close,
    Field::Volume,
    Field::Vwap,
    Field::Factor,
];

impl Field {
    /// Canonical name, used in messages.
    fn name(self) -> &'static str {
        self.aliases()[0]
    }

    /// Accepted column names (lower-case), canonical first.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Symbol => &["symbol", "ticker", "instrument", "code"],
            Field::Date => &["date", "datetime", "timestamp", "day"],
            Field::Open => &["open"],
            Field::High => &["high"],
            Field::Low => &["low"],
            Field::Close => &["close"],
            Field::Volume => &["volume", "vol"],
            Field::Vwap => &["vwap"],
            Field::Factor => &["factor", "adj_factor"],
        }
    }

    /// Whether a CSV must have the column (the symbol may come from the caller instead).
    fn required(self) -> bool {
        !matches!(self, Field::Symbol | Field::Vwap | Field::Factor)
    }

    /// The field a column name stands for.
    fn named(name: &str) -> Option<Field> {
        let name = name.trim().to_ascii_lowercase();
        FIELDS.into_iter().find(|f| f.aliases().contains(&name.as_str()))
    }
}

/// One raw value: CSV text, or a JSON number with its text (for messages).
enum Cell {
    Missing,
    Text(String),
    Number(f64, String),
}

/// Validates rows one at a time and collects the bars.
#[derive(Default)]
struct Builder {
    seen: HashMap<(String, NaiveDate), Location>,
    bars: Vec<Bar>,
}

impl Builder {
    /// Validates one row (fields in the documented order) and keeps its bar.
    fn push(&mut self, at: Location, cell: impl Fn(Field) -> Cell) -> Result<(), IngestError> {
        let symbol = match cell(Field::Symbol) {
            Cell::Text(text) | Cell::Number(_, text) if !text.trim().is_empty() => text.trim().to_uppercase(),
            _ => return Err(bad(at, Field::Symbol, Problem::Missing)),
        };
        let date = match cell(Field::Date) {
            Cell::Missing => return Err(bad(at, Field::Date, Problem::Missing)),
            Cell::Text(text) | Cell::Number(_, text) => {
                parse_date(&text).ok_or_else(|| bad(at, Field::Date, Problem::BadDate(text)))?
            }
        };
        let price = |field: Field| {
            let v = number(at, field, cell(field))?;
            if v > 0.0 { Ok(v) } else { Err(bad(at, field, Problem::NotPositive(v))) }
        };
        let open = price(Field::Open)?;
        let high = price(Field::High)?;
        let low = price(Field::Low)?;
        let close = price(Field::Close)?;
        let volume = number(at, Field::Volume, cell(Field::Volume))?;
        if volume < 0.0 {
            return Err(bad(at, Field::Volume, Problem::Negative(volume)));
        }
        let optional_price = |field: Field| match cell(field) {
            Cell::Missing => Ok(None),
            _ => price(field).map(Some),
        };
        let vwap = optional_price(Field::Vwap)?;
        let factor = optional_price(Field::Factor)?;
        for (other, other_value) in [("open", open), ("close", close)] {
            if high < other_value {
                return Err(bad(at, Field::High, Problem::BelowOther { value: high, other, other_value }));
            }
        }
        for (other, other_value) in [("open", open), ("close", close)] {
            if low > other_value {
                return Err(bad(at, Field::Low, Problem::AboveOther { value: low, other, other_value }));
            }
        }
        if let Some(&first) = self.seen.get(&(symbol.clone(), date)) {
            return Err(bad(at, Field::Date, Problem::Duplicate { date, symbol, first }));
        }
        self.seen.insert((symbol.clone(), date), at);
        self.bars.push(Bar { symbol, date, open, high, low, close, volume, vwap, factor });
        Ok(())
    }

    /// The bars, or `Empty` when the input held none.
    fn finish(self) -> Result<Vec<Bar>, IngestError> {
        if self.bars.is_empty() { Err(IngestError::Empty) } else { Ok(self.bars) }
    }
}

/// A finite number from a cell.
fn number(at: Location, field: Field, cell: Cell) -> Result<f64, IngestError> {
    let v = match cell {
        Cell::Missing => return Err(bad(at, field, Problem::Missing)),
        Cell::Number(v, _) => v,
        Cell::Text(text) => text.parse::<f64>().map_err(|_| bad(at, field, Problem::NotANumber(text)))?,
    };
    if v.is_finite() { Ok(v) } else { Err(bad(at, field, Problem::NotFinite(v))) }
}

/// A date in one of the documented formats; a time part after `T` or a space is dropped.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let day = text.split(['T', ' ']).next()?;
    let num =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten();
    let (y, m, d) = if day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()) {
        (num(&day[..4])?, num(&day[4..6])?, num(&day[6..])?)
    } else {
        let sep = if day.contains('-') { '-' } else { '/' };
        let parts: Vec<&str> = day.split(sep).collect();
        let [a, b, c] = parts[..] else { return None };
        match (a.len(), c.len(), sep) {
            (4, _, _) => (num(a)?, num(b)?, num(c)?),
            (_, 4, '/') => (num(c)?, num(a)?, num(b)?),
            _ => return None,
        }
    };
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

/// A row rejection.
fn bad(at: Location, field: Field, problem: Problem) -> IngestError {
    IngestError::BadRow { at, field: field.name(), problem }
}

/// A CSV syntax error (e.g. a row with a different number of fields), with its line.
fn malformed_csv(e: &csv::Error) -> IngestError {
    let at = e.position().map_or(Location::Input, |p| Location::Line(p.line()));
    IngestError::Malformed { at, message: format!("invalid CSV: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_format() {
        let want = NaiveDate::from_ymd_opt(2020, 3, 7);
        for text in [
            "2020-03-07",
            "2020/03/07",
            "20200307",
            "03/07/2020",
            "3/7/2020",
            "2020-03-07T16:00:00Z",
            "2020-03-07 00:00:00",
        ] {
            assert_eq!(parse_date(text), want, "{text}");
        }
        for text in ["2020-13-01", "07-03-2020", "2020-02-30", "202003071", "yesterday", "", "2020--03"] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn aliases_are_case_insensitive() {
        assert_eq!(Field::named(" Ticker "), Some(Field::Symbol));
        assert_eq!(Field::named("ADJ_FACTOR"), Some(Field::Factor));
        assert_eq!(Field::named("adj_close"), None);
    }
}
