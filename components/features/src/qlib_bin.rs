//! Reader of Qlib's binary data directories (`scripts/dump_bin.py` output): `calendars/day.txt`,
//! `instruments/<market>.txt` and `features/<symbol>/<field>.day.bin`, where a `.bin` file is
//! little-endian f32: the symbol's start position in the calendar, then one value per calendar day.
//! Decoding is pure (`parse_calendar`, `parse_instruments`, `decode_field`); [`QlibDir`] adds file access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use stockops_core::BarSeries;

use crate::expr::FieldSource;

/// The fields Qlib's `dump_bin` writes for daily bars.
pub const FIELDS: [&str; 7] = ["open", "high", "low", "close", "volume", "vwap", "factor"];

/// A Qlib data directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QlibBinError {
    /// A file the layout requires does not exist.
    #[error("{}: file not found", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of a calendar or instruments file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A `.bin` file is shorter than its header or not a whole number of f32 values.
    #[error("{}: truncated: {len} bytes is not a start index plus whole float32 values", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// A `.bin` file's start index is not a position in the calendar, or its values run past the calendar.
    #[error("{}: start index {start} with {count} values does not fit the calendar's {calendar_len} days", path.display())]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// The start index as stored (a float32).
        start: f32,
        /// Number of values after the header.
        count: usize,
        /// Calendar length.
        calendar_len: usize,
    },
    /// A symbol, field or market name is not a plain file name (it would leave the directory).
    #[error("{0:?} is not a valid file name")]
    BadName(String),
}

/// One line of an instruments file: a symbol and the first and last day it is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Symbol as written (Qlib upper-cases it).
    pub symbol: String,
    /// First listed day.
    pub start: NaiveDate,
    /// Last listed day.
    pub end: NaiveDate,
}

/// One field of one symbol: values for consecutive calendar days from `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldColumn {
    /// Calendar position of the first value.
    pub start: usize,
    /// The values, widened exactly from f32.
    pub values: Vec<f64>,
}

/// One symbol's fields aligned on the calendar days it spans (NaN where a field has no value).
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolFrame {
    /// Symbol as requested.
    pub symbol: String,
    /// Calendar position of the first row.
    pub start: usize,
    /// The calendar day of each row.
    pub dates: Vec<NaiveDate>,
    /// Field name → one value per row.
    pub fields: BTreeMap<String, Vec<f64>>,
}

impl FieldSource for SymbolFrame {
    fn rows(&self) -> usize {
        self.dates.len()
    }

    fn field(&self, name: &str) -> Option<&[f64]> {
        self.fields.get(name).map(Vec::as_slice)
    }
}

impl SymbolFrame {
    /// The frame as bars; days the symbol skipped stay as NaN rows so rows keep Qlib's calendar
    /// alignment. Missing price fields read NaN, a missing factor reads 1.
    pub fn to_bar_series(&self) -> BarSeries {
        let col = |name: &str, default: f64| {
            self.fields.get(name).cloned().unwrap_or_else(|| vec![default; self.dates.len()])
        };
        BarSeries {
            symbol: self.symbol.clone(),
            dates: self.dates.clone(),
            open: col("open", f64::NAN),
            high: col("high", f64::NAN),
            low: col("low", f64::NAN),
            close: col("close", f64::NAN),
            volume: col("volume", f64::NAN),
            vwap: col("vwap", f64::NAN),
            factor: col("factor", 1.0),
        }
    }
}

fn bad_line(path: &Path, line: usize, message: String) -> QlibBinError {
    QlibBinError::BadLine { path: path.to_path_buf(), line, message }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    // Daily calendars may carry a time part ("2020-01-02 00:00:00"); the date is what counts.
    let day = s.split_whitespace().next()?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// Parses a calendar file (one `YYYY-MM-DD` per line, increasing); `path` names it in errors.
pub fn parse_calendar(text: &str, path: &Path) -> Result<Vec<NaiveDate>, QlibBinError> {
    let mut days: Vec<NaiveDate> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let day = parse_date(line)
            .ok_or_else(|| bad_line(path, i + 1, format!("expected a date YYYY-MM-DD, found {line:?}")))?;
        if days.last().is_some_and(|&prev| day <= prev) {
            return Err(bad_line(path, i + 1, format!("{day} does not follow the previous day")));
        }
        days.push(day);
    }
    Ok(days)
}

/// Parses an instruments file (`SYMBOL<TAB>START<TAB>END` per line); `path` names it in errors.
pub fn parse_instruments(text: &str, path: &Path) -> Result<Vec<Instrument>, QlibBinError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split('\t').map(str::trim).collect();
        let [symbol, start, end] = parts[..] else {
            return Err(bad_line(path, i + 1, format!("expected SYMBOL<TAB>START<TAB>END, found {line:?}")));
        };
        let date = |s: &str| {
            parse_date(s).ok_or_else(|| bad_line(path, i + 1, format!("expected a date YYYY-MM-DD, found {s:?}")))
        };
        let (start, end) = (date(start)?, date(end)?);
        out.push(Instrument { symbol: symbol.to_string(), start, end });
    }
    Ok(out)
}

/// Decodes a field `.bin` file against a calendar of `calendar_len` days; `path` names it in errors.
pub fn decode_field(bytes: &[u8], calendar_len: usize, path: &Path) -> Result<FieldColumn, QlibBinError> {
    if bytes.len() < 4 || !bytes.len().is_multiple_of(4) {
        return Err(QlibBinError::Truncated { path: path.to_path_buf(), len: bytes.len() });
    }
    let mut words = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let header = words.next().unwrap_or(f32::NAN);
    let values: Vec<f64> = words.map(f64::from).collect();
    let count = values.len();
    let fits = header.is_finite()
        && header >= 0.0
        && header.fract() == 0.0
        && (header as usize).saturating_add(count) <= calendar_len;
    if !fits {
        return Err(QlibBinError::BadIndex { path: path.to_path_buf(), start: header, count, calendar_len });
    }
    Ok(FieldColumn { start: header as usize, values })
}

/// A name used as a file name must not reach outside its directory.
fn plain_name(name: &str) -> Result<&str, QlibBinError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(QlibBinError::BadName(name.to_string()));
    }
    Ok(name)
}

/// Qlib's file name for a symbol (`code_to_fname`, lower-cased): names Windows reserves get a prefix.
fn symbol_dir(symbol: &str) -> Result<String, QlibBinError> {
    let symbol = plain_name(symbol)?;
    let upper = symbol.to_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&upper.as_str())
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit());
    let name = if reserved { format!("_qlib_{symbol}") } else { symbol.to_string() };
    Ok(name.to_lowercase())
}

/// A Qlib data directory opened for daily data; the calendar is read once.
#[derive(Debug, Clone)]
pub struct QlibDir {
    root: PathBuf,
    calendar: Vec<NaiveDate>,
}

fn read(path: &Path) -> Result<Vec<u8>, QlibBinError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => QlibBinError::Missing { path: path.to_path_buf() },
        _ => QlibBinError::Io { path: path.to_path_buf(), source: e },
    })
}

fn read_text(path: &Path) -> Result<String, QlibBinError> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|e| bad_line(path, 1, format!("not UTF-8: {e}")))
}

impl QlibDir {
    /// Opens `root` and reads `calendars/day.txt`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, QlibBinError> {
        let root = root.as_ref().to_path_buf();
        let path = root.join("calendars").join("day.txt");
        let calendar = parse_calendar(&read_text(&path)?, &path)?;
        Ok(QlibDir { root, calendar })
    }

    /// The trading calendar.
    pub fn calendar(&self) -> &[NaiveDate] {
        &self.calendar
    }

    /// The instruments of a market (`instruments/<market>.txt`, e.g. `all`).
    pub fn instruments(&self, market: &str) -> Result<Vec<Instrument>, QlibBinError> {
        let market = plain_name(market)?;
        let path = self.root.join("instruments").join(format!("{market}.txt"));
        parse_instruments(&read_text(&path)?, &path)
    }

    /// Path of a symbol's field file.
    pub fn field_path(&self, symbol: &str, field: &str) -> Result<PathBuf, QlibBinError> {
        let field = plain_name(field)?.to_lowercase();
        Ok(self.root.join("features").join(symbol_dir(symbol)?).join(format!("{field}.day.bin")))
    }

    /// Reads one field of one symbol.
    pub fn field(&self, symbol: &str, field: &str) -> Result<FieldColumn, QlibBinError> {
        let path = self.field_path(symbol, field)?;
        decode_field(&read(&path)?, self.calendar.len(), &path)
    }

    /// Reads `fields` of `symbol` and aligns them on the calendar days they span together.
    pub fn load(&self, symbol: &str, fields: &[&str]) -> Result<SymbolFrame, QlibBinError> {
        let cols = fields.iter().map(|&f| Ok((f, self.field(symbol, f)?))).collect::<Result<Vec<_>, QlibBinError>>()?;
        Ok(self.align(symbol, cols))
    }

    /// Reads a symbol's daily bars: open, high, low, close and volume must exist; vwap and factor
    /// are read when present.
    pub fn load_bars(&self, symbol: &str) -> Result<BarSeries, QlibBinError> {
        let mut cols = Vec::new();
        for f in FIELDS {
            match self.field(symbol, f) {
                Ok(c) => cols.push((f, c)),
                Err(QlibBinError::Missing { .. }) if f == "vwap" || f == "factor" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.align(symbol, cols).to_bar_series())
    }

    fn align(&self, symbol: &str, cols: Vec<(&str, FieldColumn)>) -> SymbolFrame {
        let start = cols.iter().map(|(_, c)| c.start).min().unwrap_or(0);
        let end = cols.iter().map(|(_, c)| c.start + c.values.len()).max().unwrap_or(start);
        let rows = end - start;
        let fields = cols
            .into_iter()
            .map(|(name, c)| {
                let mut v = vec![f64::NAN; rows];
                let at = c.start - start;
                v[at..at + c.values.len()].copy_from_slice(&c.values);
                (name.to_string(), v)
            })
            .collect();
        SymbolFrame { symbol: symbol.to_string(), start, dates: self.calendar[start..end].to_vec(), fields }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(start: f32, vals: &[f32]) -> Vec<u8> {
        std::iter::once(start).chain(vals.iter().copied()).flat_map(f32::to_le_bytes).collect()
    }

    fn p() -> PathBuf {
        PathBuf::from("x.day.bin")
    }

    #[test]
    fn decodes_and_widens_exactly() {
        let c = decode_field(&bin(2.0, &[1.1, 2.5]), 10, &p()).unwrap();
        assert_eq!(c.start, 2);
        assert_eq!(c.values, vec![f64::from(1.1f32), 2.5]);
    }

    #[test]
    fn rejects_truncated_and_bad_index() {
        let mut b = bin(0.0, &[1.0]);
        b.pop();
        assert!(matches!(decode_field(&b, 10, &p()), Err(QlibBinError::Truncated { len: 7, .. })));
        assert!(matches!(decode_field(&[], 10, &p()), Err(QlibBinError::Truncated { .. })));
        for start in [-1.0, 0.5, f32::NAN, 9.0] {
            let e = decode_field(&bin(start, &[1.0, 2.0]), 10, &p()).unwrap_err();
            assert!(matches!(e, QlibBinError::BadIndex { .. }), "{start}");
            assert!(e.to_string().starts_with("x.day.bin: "), "{e}");
        }
    }

    #[test]
    fn parses_calendar_and_instruments_with_line_numbers() {
        let path = Path::new("day.txt");
        let days = parse_calendar("2020-01-02\n2020-01-03 00:00:00\n\n", path).unwrap();
        assert_eq!(days.len(), 2);
        let e = parse_calendar("2020-01-02\n2020-01-02\n", path).unwrap_err();
        assert!(e.to_string().starts_with("day.txt:2: "), "{e}");
        let e = parse_calendar("2020-01-02\nnope\n", path).unwrap_err();
        assert!(e.to_string().starts_with("day.txt:2: "), "{e}");

        let ins = parse_instruments("AAPL\t2000-03-01\t2013-03-01\n", Path::new("all.txt")).unwrap();
        assert_eq!(ins[0].symbol, "AAPL");
        let e = parse_instruments("AAPL\t2000-03-01\n", Path::new("all.txt")).unwrap_err();
        assert!(e.to_string().starts_with("all.txt:1: "), "{e}");
    }

    #[test]
    fn symbol_names_follow_qlib_and_stay_inside() {
        assert_eq!(symbol_dir("AAPL").unwrap(), "aapl");
        assert_eq!(symbol_dir("CON").unwrap(), "_qlib_con");
        assert_eq!(symbol_dir("com1").unwrap(), "_qlib_com1");
        assert_eq!(symbol_dir("COMP").unwrap(), "comp");
        assert!(symbol_dir("../etc").is_err());
        assert!(symbol_dir("a/b").is_err());
    }

    #[test]
    fn reads_a_directory_and_aligns_fields() {
        let dir = std::env::temp_dir().join(format!("qlib_bin_test_{}", std::process::id()));
        let feat = dir.join("features").join("abc");
        std::fs::create_dir_all(&feat).unwrap();
        std::fs::create_dir_all(dir.join("calendars")).unwrap();
        std::fs::write(dir.join("calendars/day.txt"), "2020-01-01\n2020-01-02\n2020-01-03\n2020-01-06\n").unwrap();
        std::fs::write(feat.join("close.day.bin"), bin(1.0, &[1.0, f32::NAN, 3.0])).unwrap();
        std::fs::write(feat.join("open.day.bin"), bin(2.0, &[2.0])).unwrap();
        let q = QlibDir::open(&dir).unwrap();
        let f = q.load("ABC", &["close", "open"]).unwrap();
        assert_eq!((f.start, f.rows()), (1, 3));
        assert!(f.field("open").unwrap()[0].is_nan());
        assert_eq!(f.field("open").unwrap()[1], 2.0);
        let e = q.load("ABC", &["volume"]).unwrap_err();
        assert!(matches!(&e, QlibBinError::Missing { path } if path.ends_with("features/abc/volume.day.bin")), "{e}");
        assert!(matches!(q.load_bars("ABC"), Err(QlibBinError::Missing { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
