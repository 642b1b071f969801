//! The bars repository and the feature cache over the storage seam (`Database`, `KeyValue`): the one
//! implementation the component and the native CLI (`stockops ingest`, `stockops features`) share.
//!
//! **Adjustment (Qlib semantics).** The `bars` table keeps prices as ingested (raw) with Qlib's
//! `factor`: adjusted price = raw × factor, adjusted volume = raw volume / factor (as Qlib's data
//! collectors write it); a missing factor is 1. `GET /api/bars` answers bars as stored. Every feature
//! set is computed over the adjusted series ([`adjusted`]), so `$close` in an expression reads what
//! Qlib's `$close` reads and Alpha158 agrees with Qlib. A Qlib binary directory already holds adjusted
//! values, so [`bars_from_qlib`] turns them back into raw prices on the way in.
//!
//! **Feature cache.** A symbol's feature matrix over its full history up to its last bar `D` (rolling
//! windows need that history) is cached under `features/{symbol}/{set}/{version}/{D}/r{revision}` in a
//! compact binary encoding that starts with its expiry time (unix seconds). The revision counts the
//! writes of the symbol's bars (table `bar_revisions`, bumped in the same transaction), so a corrected
//! past bar, which leaves `D` unchanged, also changes the key: a matrix computed from older bars is never
//! read back, even when its write lands after the correction. Writing bars also drops the symbol's
//! cached entries ([`invalidate_symbol`]) to free their space.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stockops_core::bar::parse_iso_date;
use stockops_core::{Bar, BarSeries, Database, KeyValue, Rows, SqlValue, StorageError};

use crate::alpha::{self, FeatureSet, FeatureSetError};
use crate::bar_chunks;
use crate::expr::EvalError;
use crate::indicators::{TECHNICAL_COLUMNS, technical_set};

/// The sets the cron job keeps warm in the cache.
pub const DEFAULT_SETS: [&str; 3] = ["alpha158", "alpha360", "technical"];

/// Key prefix of user-defined feature sets (`feature-sets/{name}` holds the set's JSON definition).
pub const CUSTOM_SET_PREFIX: &str = "feature-sets/";

/// Key prefix of cached feature matrices.
pub const CACHE_PREFIX: &str = "features/";

/// Rows per INSERT statement: 9 parameters each stays under SQLite's oldest variable limit (999).
const UPSERT_BATCH: usize = 100;

/// First bytes of a cached matrix; a different prefix (an older encoding) reads as a miss.
const CACHE_MAGIC: &[u8; 4] = b"SOF1";
/// The first bytes of a cached row ([`encode_row`]).
const ROW_MAGIC: &[u8; 4] = b"SOR1";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database or key-value store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored bar does not read back as one (edited outside stockops).
    #[error("stored bar {symbol} at row {row} is unreadable: {what}")]
    Corrupt {
        /// The symbol being read.
        symbol: String,
        /// 0-based row of the result.
        row: usize,
        /// Which column is wrong.
        what: String,
    },
    /// A feature set name is not `[A-Za-z0-9_-]{1,64}` or names a built-in set.
    #[error("feature set name {0:?} is not allowed: use 1 to 64 letters, digits, `_` or `-`, not a built-in name")]
    BadSetName(String),
    /// A feature set definition does not parse.
    #[error("feature set {name:?}: {source}")]
    InvalidSet {
        /// The set's name.
        name: String,
        /// The parser's error, with its line.
        source: FeatureSetError,
    },
    /// Evaluating a feature set failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// Writes `bars` in one transaction, inserting new (symbol, date) rows and replacing existing ones, and
/// rewrites the packed chunks of every (symbol, year) written (see [`bar_chunks`]); nothing is written
/// when any statement fails. Returns the symbols written, sorted.
pub fn upsert_bars(db: &impl Database, bars: &[Bar]) -> Result<Vec<String>, StorageError> {
    // The years each symbol's bars touch.
    let mut years: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    for b in bars {
        let y = b.date.year();
        let span = years.entry(b.symbol.as_str()).or_insert((y, y));
        *span = (span.0.min(y), span.1.max(y));
    }
    db.transaction(|tx| {
        for chunk in bars.chunks(UPSERT_BATCH) {
            let mut sql =
                String::from("INSERT INTO bars (symbol, date, open, high, low, close, volume, vwap, factor) VALUES ");
            let mut params = Vec::with_capacity(chunk.len() * 9);
            for (i, b) in chunk.iter().enumerate() {
                sql.push_str(if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?, ?)" });
                params.extend([
                    SqlValue::Text(b.symbol.clone()),
                    SqlValue::Text(b.date.to_string()),
                    b.open.into(),
                    b.high.into(),
                    b.low.into(),
                    b.close.into(),
                    b.volume.into(),
                    b.vwap.into(),
                    b.factor.into(),
                ]);
            }
            sql.push_str(
                " ON CONFLICT(symbol, date) DO UPDATE SET open = excluded.open, high = excluded.high, \
                 low = excluded.low, close = excluded.close, volume = excluded.volume, vwap = excluded.vwap, \
                 factor = excluded.factor",
            );
            tx.execute(&sql, &params)?;
        }
        let symbols: Vec<&str> = years.keys().copied().collect();
        for chunk in symbols.chunks(UPSERT_BATCH) {
            let rows = vec!["(?, 1)"; chunk.len()].join(", ");
            let params: Vec<SqlValue> = chunk.iter().map(|&s| s.into()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO bar_revisions (symbol, revision) VALUES {rows} \
                     ON CONFLICT(symbol) DO UPDATE SET revision = revision + 1"
                ),
                &params,
            )?;
        }
        for (symbol, &(first, last)) in &years {
            let span = (NaiveDate::from_ymd_opt(first, 1, 1), NaiveDate::from_ymd_opt(last, 12, 31));
            let stored = load_bars(tx, symbol, span.0, span.1).map_err(into_storage)?;
            bar_chunks::rewrite(tx, symbol, first, last, &stored)?;
        }
        Ok(symbols.into_iter().map(String::from).collect())
    })
}

/// A read inside a write transaction fails it with the reason.
fn into_storage(e: StoreError) -> StorageError {
    match e {
        StoreError::Storage(e) => e,
        other => StorageError::Backend(other.to_string()),
    }
}

/// A symbol's bars with `from <= date <= to` (either bound optional), oldest first, as stored (raw).
pub fn load_bars(
    db: &impl Database,
    symbol: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<Bar>, StoreError> {
    // Dates are stored as ISO text, so text comparison is date order.
    let from = from.map_or_else(|| "0000-01-01".to_string(), |d| d.to_string());
    let to = to.map_or_else(|| "9999-12-31".to_string(), |d| d.to_string());
    let rows = db.execute(
        "SELECT date, open, high, low, close, volume, vwap, factor FROM bars \
         WHERE symbol = ? AND date >= ? AND date <= ? ORDER BY date",
        &[symbol.into(), from.into(), to.into()],
    )?;
    (0..rows.rows.len()).map(|i| bar_at(&rows, i, symbol)).collect()
}

/// A symbol's bars up to `to` (all of them when None) as the columnar series features read: from its
/// packed chunks, or, when those do not match the table, from the table (rewriting the chunks).
pub fn load_series(db: &impl Database, symbol: &str, to: Option<NaiveDate>) -> Result<BarSeries, StoreError> {
    if let Some(series) = bar_chunks::load(db, symbol, to)? {
        return Ok(series);
    }
    let rebuilt = db.transaction(|tx| {
        let bars = load_bars(tx, symbol, None, None).map_err(into_storage)?;
        bar_chunks::rewrite(tx, symbol, i32::MIN, i32::MAX, &bars)?;
        Ok(bars)
    });
    let mut bars = match rebuilt {
        Ok(bars) => bars,
        // The chunks only make reads faster: a database that refuses the write still answers.
        Err(_) => load_bars(db, symbol, None, None)?,
    };
    if let Some(to) = to {
        bars.truncate(bars.partition_point(|b| b.date <= to));
    }
    Ok(BarSeries::from_bars(symbol, &bars))
}

/// Bar `i` of a result selecting `date, open, high, low, close, volume, vwap, factor` in that order
/// (cells read by position: a symbol's whole history is thousands of rows).
fn bar_at(rows: &Rows, i: usize, symbol: &str) -> Result<Bar, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt { symbol: symbol.to_string(), row: i, what: what.to_string() };
    let date = rows.text_at(i, 0).and_then(parse_iso_date).ok_or_else(|| corrupt("date is not YYYY-MM-DD"))?;
    let num = |col: usize, name: &str| rows.f64_at(i, col).ok_or_else(|| corrupt(&format!("{name} is not a number")));
    Ok(Bar {
        symbol: symbol.to_string(),
        date,
        open: num(1, "open")?,
        high: num(2, "high")?,
        low: num(3, "low")?,
        close: num(4, "close")?,
        volume: num(5, "volume")?,
        vwap: rows.f64_at(i, 6),
        factor: rows.f64_at(i, 7),
    })
}

/// What a cached matrix of `symbol` up to a date must match: the last bar's date, how many bars that is,
/// and the revision of the symbol's bars.
struct Extent {
    last: NaiveDate,
    count: usize,
    revision: i64,
}

/// The [`Extent`] of `symbol`'s bars up to `to` (all bars when None); None when there is no such bar.
fn extent(db: &impl Database, symbol: &str, to: Option<NaiveDate>) -> Result<Option<Extent>, StoreError> {
    let to = to.map_or_else(|| "9999-12-31".to_string(), |d| d.to_string());
    let rows = db.execute(
        "SELECT max(date) AS last, count(*) AS n, \
         (SELECT revision FROM bar_revisions WHERE symbol = ?) AS revision \
         FROM bars WHERE symbol = ? AND date <= ?",
        &[symbol.into(), symbol.into(), to.into()],
    )?;
    let Some(text) = rows.text(0, "last") else {
        return Ok(None);
    };
    let last = parse_iso_date(text).ok_or_else(|| StoreError::Corrupt {
        symbol: symbol.to_string(),
        row: 0,
        what: "last date is not YYYY-MM-DD".into(),
    })?;
    let count = rows.i64(0, "n").and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    // Bars written before the revisions table existed have none: revision 0.
    let revision = rows.i64(0, "revision").unwrap_or(0);
    Ok(Some(Extent { last, count, revision }))
}

/// Whether the table holds any bar of `symbol`.
pub fn has_symbol(db: &impl Database, symbol: &str) -> Result<bool, StorageError> {
    let rows = db.execute("SELECT 1 AS x FROM bars WHERE symbol = ? LIMIT 1", &[symbol.into()])?;
    Ok(!rows.rows.is_empty())
}

/// One symbol's extent in the bars table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolSummary {
    /// Ticker.
    pub symbol: String,
    /// Oldest bar's date.
    pub first: NaiveDate,
    /// Newest bar's date.
    pub last: NaiveDate,
    /// Number of bars.
    pub count: i64,
}

/// Every symbol with its first and last date and bar count, by symbol.
pub fn list_symbols(db: &impl Database) -> Result<Vec<SymbolSummary>, StoreError> {
    let rows = db.execute(
        "SELECT symbol, min(date) AS first, max(date) AS last, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol",
        &[],
    )?;
    (0..rows.rows.len())
        .map(|i| {
            let symbol = rows.text(i, "symbol").unwrap_or_default().to_string();
            let date = |name: &str| {
                rows.text(i, name).and_then(parse_iso_date).ok_or_else(|| StoreError::Corrupt {
                    symbol: symbol.clone(),
                    row: i,
                    what: format!("{name} date is unreadable"),
                })
            };
            let (first, last) = (date("first")?, date("last")?);
            Ok(SymbolSummary { symbol, first, last, count: rows.i64(i, "n").unwrap_or(0) })
        })
        .collect()
}

/// The newest bar date of any symbol, if any bar is stored.
pub fn newest_date(db: &impl Database) -> Result<Option<NaiveDate>, StorageError> {
    let rows = db.execute("SELECT max(date) AS d FROM bars", &[])?;
    Ok(rows.text(0, "d").and_then(parse_iso_date))
}

/// The series features are computed on: prices × factor, volume / factor (Qlib's adjustment).
/// Borrowed unchanged when every factor is 1.
pub fn adjusted(s: &BarSeries) -> Cow<'_, BarSeries> {
    if s.factor.iter().all(|&f| f == 1.0) {
        return Cow::Borrowed(s);
    }
    let times = |col: &[f64]| col.iter().zip(&s.factor).map(|(v, f)| v * f).collect::<Vec<_>>();
    Cow::Owned(BarSeries {
        symbol: s.symbol.clone(),
        dates: s.dates.clone(),
        open: times(&s.open),
        high: times(&s.high),
        low: times(&s.low),
        close: times(&s.close),
        volume: s.volume.iter().zip(&s.factor).map(|(v, f)| v / f).collect(),
        vwap: times(&s.vwap),
        factor: s.factor.clone(),
    })
}

/// Raw bars from a Qlib directory's (adjusted) series: prices ÷ factor, volume × factor. Rows without
/// a finite open, high, low, close and volume (days the symbol did not trade) are skipped; a factor
/// that is missing, NaN or not positive counts as none.
pub fn bars_from_qlib(s: &BarSeries) -> Vec<Bar> {
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (o, h, l, c, v) = (s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]);
        if ![o, h, l, c, v].iter().all(|x| x.is_finite()) {
            continue;
        }
        let factor = Some(s.factor[i]).filter(|f| f.is_finite() && *f > 0.0);
        let f = factor.unwrap_or(1.0);
        out.push(Bar {
            symbol: s.symbol.to_uppercase(),
            date: s.dates[i],
            open: o / f,
            high: h / f,
            low: l / f,
            close: c / f,
            volume: v * f,
            vwap: Some(s.vwap[i]).filter(|x| x.is_finite()).map(|x| x / f),
            factor,
        });
    }
    out
}

/// A feature set by name: Qlib expressions (built-in or user-defined), or the TA-Lib technical set.
#[derive(Debug, Clone)]
pub enum NamedSet {
    /// A user-defined set of Qlib expressions (boxed: it is far larger than the other variants).
    Expressions(Box<FeatureSet>),
    /// A built-in set of Qlib expressions: its version is a constant ([`alpha::BUILTINS`]); the set
    /// is built (parsed, planned) only when its columns are needed, which a cache hit is not.
    Builtin { def: &'static alpha::Builtin, set: OnceLock<Box<FeatureSet>> },
    /// The 47 TA-Lib columns of [`technical_set`].
    Technical,
}

impl NamedSet {
    /// A built-in set: `alpha158`, `alpha360`, `label` or `technical`.
    pub fn builtin(name: &str) -> Option<Self> {
        if name == "technical" {
            return Some(NamedSet::Technical);
        }
        let def = alpha::BUILTINS.iter().find(|b| b.name == name)?;
        Some(NamedSet::Builtin { def, set: OnceLock::new() })
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        match self {
            NamedSet::Expressions(s) => s.name(),
            NamedSet::Builtin { def, .. } => def.name,
            NamedSet::Technical => "technical",
        }
    }

    /// The set's Qlib expressions (built on first use for a built-in set); None for the technical set.
    pub fn expressions(&self) -> Option<&FeatureSet> {
        match self {
            NamedSet::Expressions(s) => Some(s),
            NamedSet::Builtin { def, set } => Some(set.get_or_init(|| Box::new((def.build)()))),
            NamedSet::Technical => None,
        }
    }

    /// Feature names, in column order.
    pub fn names(&self) -> Vec<String> {
        match self.expressions() {
            Some(s) => s.names().into_iter().map(String::from).collect(),
            None => TECHNICAL_COLUMNS.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// The version hash of the definition (cache entries of other versions are never read).
    pub fn version(&self) -> String {
        match self {
            NamedSet::Expressions(s) => s.version().to_string(),
            NamedSet::Builtin { def, .. } => def.version.to_string(),
            NamedSet::Technical => {
                let mut hash = Sha256::new();
                hash.update(b"stockops-technical/1 (TA-Lib 0.8.1 semantics)");
                for c in TECHNICAL_COLUMNS {
                    hash.update(b"\n");
                    hash.update(c.as_bytes());
                }
                hex::encode(hash.finalize())
            }
        }
    }

    /// Computes the set over one symbol's bars (adjusted first, see the module docs).
    pub fn compute(&self, bars: &BarSeries) -> Result<FeatureMatrix, EvalError> {
        let adj = adjusted(bars);
        let (names, columns) = match self.expressions() {
            Some(s) => {
                let out = s.compute(adj.as_ref())?;
                (out.names, out.columns)
            }
            None => technical_set(&adj).into_iter().map(|(n, c)| (n.to_string(), c)).unzip(),
        };
        Ok(FeatureMatrix { dates: bars.dates.clone(), names, columns })
    }
}

/// Whether `name` may name a user-defined set.
fn valid_set_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && NamedSet::builtin(name).is_none()
}

/// Validates a user-defined set (JSON, see [`FeatureSet::from_json`]) named `name` and stores it under
/// `feature-sets/{name}`; the JSON's own `name` must be `name`.
pub fn define_set(kv: &impl KeyValue, name: &str, json: &str) -> Result<FeatureSet, StoreError> {
    if !valid_set_name(name) {
        return Err(StoreError::BadSetName(name.to_string()));
    }
    let set =
        FeatureSet::from_json(json).map_err(|source| StoreError::InvalidSet { name: name.to_string(), source })?;
    if set.name() != name {
        let message = format!("the definition's name {:?} differs from {name:?}", set.name());
        let source = FeatureSetError::Malformed { line: 1, message };
        return Err(StoreError::InvalidSet { name: name.to_string(), source });
    }
    kv.set(&format!("{CUSTOM_SET_PREFIX}{name}"), json.as_bytes())?;
    Ok(set)
}

/// A set by name: built-in first, then a user-defined one from the store; None when neither exists.
pub fn resolve_set(kv: &impl KeyValue, name: &str) -> Result<Option<NamedSet>, StoreError> {
    if let Some(set) = NamedSet::builtin(name) {
        return Ok(Some(set));
    }
    if !valid_set_name(name) {
        return Ok(None);
    }
    let Some(bytes) = kv.get(&format!("{CUSTOM_SET_PREFIX}{name}"))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let set =
        FeatureSet::from_json(&text).map_err(|source| StoreError::InvalidSet { name: name.to_string(), source })?;
    Ok(Some(NamedSet::Expressions(Box::new(set))))
}

/// One symbol's features: one date per row, one named column per feature (NaN where undefined).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    /// Row dates, increasing.
    pub dates: Vec<NaiveDate>,
    /// Feature names, in set order.
    pub names: Vec<String>,
    /// `columns[j][i]`: feature `j` on `dates[i]`.
    pub columns: Vec<Vec<f64>>,
}

impl FeatureMatrix {
    /// The rows with `from <= date <= to` (either bound optional).
    pub fn slice(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> FeatureMatrix {
        let start = from.map_or(0, |f| self.dates.partition_point(|d| *d < f));
        let end = to.map_or(self.dates.len(), |t| self.dates.partition_point(|d| *d <= t)).max(start);
        FeatureMatrix {
            dates: self.dates[start..end].to_vec(),
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| c[start..end].to_vec()).collect(),
        }
    }

    /// The CSV header: `date` (after `symbol` when `with_symbol`), then the feature names.
    pub fn csv_header(&self, with_symbol: bool) -> Vec<String> {
        let lead = if with_symbol { vec!["symbol".to_string(), "date".to_string()] } else { vec!["date".to_string()] };
        lead.into_iter().chain(self.names.iter().cloned()).collect()
    }

    /// Writes one CSV record per date (symbol first when given); NaN is an empty cell.
    pub fn write_csv_rows<W: std::io::Write>(
        &self,
        out: &mut csv::Writer<W>,
        symbol: Option<&str>,
    ) -> Result<(), csv::Error> {
        let mut record = Vec::with_capacity(self.names.len() + 2);
        for (i, date) in self.dates.iter().enumerate() {
            record.clear();
            record.extend(symbol.map(str::to_string));
            record.push(date.to_string());
            record.extend(self.columns.iter().map(|c| if c[i].is_nan() { String::new() } else { c[i].to_string() }));
            out.write_record(&record)?;
        }
        Ok(())
    }

    /// The matrix as CSV text with a `date,<names…>` header.
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.csv_header(false))?;
        self.write_csv_rows(&mut w, None)?;
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }

    /// The cache encoding: magic, expiry (u64), rows and columns (u32), dates (days since CE, i32),
    /// names (u32 length + UTF-8), then the values column by column (f64); little-endian throughout.
    fn encode(&self, expires_at: u64) -> Vec<u8> {
        let values = self.dates.len() * self.names.len();
        let mut out = Vec::with_capacity(20 + self.dates.len() * 4 + self.names.len() * 16 + values * 8);
        out.extend_from_slice(CACHE_MAGIC);
        out.extend_from_slice(&expires_at.to_le_bytes());
        out.extend_from_slice(&(self.dates.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.names.len() as u32).to_le_bytes());
        for d in &self.dates {
            out.extend_from_slice(&chrono::Datelike::num_days_from_ce(d).to_le_bytes());
        }
        for n in &self.names {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(n.as_bytes());
        }
        for c in &self.columns {
            out.extend(c.iter().flat_map(|v| v.to_le_bytes()));
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s output: its expiry and the matrix's rows from `from` to `to`
    /// (inclusive, open ends for None); None when malformed. Values are stored column by column, so only
    /// the requested rows are decoded: a request for a month of a long history reads little.
    fn decode(bytes: &[u8], from: Option<NaiveDate>, to: Option<NaiveDate>) -> Option<(u64, FeatureMatrix)> {
        let mut r = Reader { bytes };
        let (expires_at, rows, cols) = r.header()?;
        let dates = (0..rows)
            .map(|_| NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(r.take(4)?.try_into().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let names = (0..cols)
            .map(|_| {
                let len = r.u32()? as usize;
                String::from_utf8(r.take(len)?.to_vec()).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        // The rest must be exactly the values: this also bounds what a corrupt header can allocate.
        if r.bytes.len() != rows.checked_mul(cols)?.checked_mul(8)? {
            return None;
        }
        let start = from.map_or(0, |f| dates.partition_point(|d| *d < f));
        let end = to.map_or(rows, |t| dates.partition_point(|d| *d <= t)).max(start);
        let columns = (0..cols)
            .map(|c| {
                let column = &r.bytes[(c * rows + start) * 8..(c * rows + end) * 8];
                column.chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes"))).collect()
            })
            .collect();
        Some((expires_at, FeatureMatrix { dates: dates[start..end].to_vec(), names, columns }))
    }
}

/// One date's row of a set, with the digest the prediction log records for it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The values, in the set's column order (NaN: not enough history).
    pub values: Vec<f64>,
    /// [`row_sha256`] of the values, computed once when the row is cached rather than per request.
    pub sha256: [u8; 32],
}

impl Row {
    /// A row and its digest.
    pub fn new(values: Vec<f64>) -> Row {
        let sha256 = row_sha256(&values);
        Row { values, sha256 }
    }
}

/// sha256 of a row's values as a model scores them: f32, little-endian.
pub fn row_sha256(values: &[f64]) -> [u8; 32] {
    let bytes: Vec<u8> = values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
    Sha256::digest(&bytes).into()
}

/// A row as serving caches it: magic, expiry (u64), date (days since CE, i32), the row's sha256, then the
/// values (f64); little-endian. No names, unlike a matrix: a universe-wide request reads hundreds of rows.
fn encode_row(expires_at: u64, date: NaiveDate, row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + row.values.len() * 8);
    out.extend_from_slice(ROW_MAGIC);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(&chrono::Datelike::num_days_from_ce(&date).to_le_bytes());
    out.extend_from_slice(&row.sha256);
    out.extend(row.values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Reads [`encode_row`]'s output as its expiry, date and row; None when malformed.
fn decode_row(bytes: &[u8]) -> Option<(u64, NaiveDate, Row)> {
    let mut r = Reader { bytes };
    if r.take(4)? != ROW_MAGIC {
        return None;
    }
    let expires_at = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let date = NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(r.take(4)?.try_into().ok()?))?;
    let sha256 = r.take(32)?.try_into().ok()?;
    if !r.bytes.len().is_multiple_of(8) {
        return None;
    }
    let values = r.bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    Some((expires_at, date, Row { values, sha256 }))
}

/// A cursor over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// The cache encoding's header: magic, then expiry, rows and columns.
    fn header(&mut self) -> Option<(u64, usize, usize)> {
        if self.take(4)? != CACHE_MAGIC {
            return None;
        }
        let expires_at = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
        Some((expires_at, self.u32()? as usize, self.u32()? as usize))
    }
}

/// The cache key of a symbol's matrix of `set` over its bars up to `last` at bars revision `revision`.
fn cache_key(symbol: &str, set: &NamedSet, last: NaiveDate, revision: i64) -> String {
    format!("{CACHE_PREFIX}{symbol}/{}/{}/{last}/r{revision}", set.name(), set.version())
}

/// Drops every cached matrix of `symbol`; returns how many there were.
pub fn invalidate_symbol(kv: &impl KeyValue, symbol: &str) -> Result<usize, StorageError> {
    let keys = kv.keys_with_prefix(&format!("{CACHE_PREFIX}{symbol}/"))?;
    for k in &keys {
        kv.delete(k)?;
    }
    Ok(keys.len())
}

/// Drops cached matrices that expired before `now` (unix seconds) or cannot be read; returns how many.
pub fn prune_expired(kv: &impl KeyValue, now: u64) -> Result<usize, StorageError> {
    let mut dropped = 0;
    for k in kv.keys_with_prefix(CACHE_PREFIX)? {
        let expired = match kv.get(&k)? {
            Some(bytes) => cached_expiry(&bytes).is_none_or(|at| at <= now),
            None => false,
        };
        if expired {
            kv.delete(&k)?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// The expiry of an encoded entry, reading only its header.
fn cached_expiry(bytes: &[u8]) -> Option<u64> {
    match bytes.get(..4)? {
        magic if magic == ROW_MAGIC => Some(u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?)),
        _ => Reader { bytes }.header().map(|(expires_at, _, _)| expires_at),
    }
}

/// How a feature request meets the cache.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// The current time, unix seconds.
    pub now: u64,
    /// How long a new entry stays valid, in seconds.
    pub ttl_secs: u64,
    /// Recompute and rewrite even when a fresh entry exists (the cron refresh).
    pub refresh: bool,
}

impl CachePolicy {
    /// Whether entries are read at all: not when refreshing, nor with a TTL of 0.
    fn reads(&self) -> bool {
        !self.refresh && self.writes()
    }

    /// Whether new entries are written: a TTL of 0 turns the cache off (an entry would be born expired).
    fn writes(&self) -> bool {
        self.ttl_secs > 0
    }

    /// The expiry of an entry written now.
    fn expiry(&self) -> u64 {
        self.now.saturating_add(self.ttl_secs)
    }
}

/// A symbol's features with where they came from.
#[derive(Debug, Clone)]
pub struct Computed {
    /// Features on every bar up to `last_bar`.
    pub matrix: FeatureMatrix,
    /// Date of the last bar the matrix covers (part of the cache key).
    pub last_bar: NaiveDate,
    /// True when the matrix was read from the cache.
    pub cache_hit: bool,
}

/// A computed matrix not yet in the cache: [`features_deferring_write`] hands it back so the component
/// can answer first and write the 4 MB entry after.
#[derive(Debug)]
pub struct CacheFill {
    key: String,
    matrix: FeatureMatrix,
    expires_at: u64,
}

impl CacheFill {
    /// Writes the entry (a cache: a failed write only costs a later recomputation).
    pub fn write(self, kv: &impl KeyValue) {
        kv.set_cached(&self.key, &self.matrix.encode(self.expires_at));
    }
}

/// `set` on `symbol`'s bars from `from` to `to` (inclusive; None: open), from the cache when a fresh
/// entry of the full history up to `to` exists, else computed over that history (which rolling windows
/// need) and cached. None when the symbol has no bar up to `to`.
pub fn features(
    db: &impl Database,
    kv: &impl KeyValue,
    set: &NamedSet,
    symbol: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    policy: CachePolicy,
) -> Result<Option<Computed>, StoreError> {
    Ok(features_deferring_write(db, kv, set, symbol, from, to, policy)?.map(|(computed, fill)| {
        if let Some(fill) = fill {
            fill.write(kv);
        }
        computed
    }))
}

/// [`features`] that leaves the cache write to the caller: with a computed matrix comes the entry to write.
pub fn features_deferring_write(
    db: &impl Database,
    kv: &impl KeyValue,
    set: &NamedSet,
    symbol: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    policy: CachePolicy,
) -> Result<Option<(Computed, Option<CacheFill>)>, StoreError> {
    // The cache key needs only the extent of the bars: the history itself is read only when the matrix
    // has to be computed.
    let Some(Extent { last, count, revision }) = extent(db, symbol, to)? else {
        return Ok(None);
    };
    let key = cache_key(symbol, set, last, revision);
    if policy.reads()
        && let Some(bytes) = kv.get_cached(&key)
        && let Some((expires_at, rows, _)) = (Reader { bytes: &bytes }).header()
        && expires_at > policy.now
        && rows == count
        && let Some((_, matrix)) = FeatureMatrix::decode(&bytes, from, to)
    {
        return Ok(Some((Computed { matrix, last_bar: last, cache_hit: true }, None)));
    }
    let bars = load_series(db, symbol, to)?;
    let matrix = set.compute(&bars)?;
    let computed = Computed { matrix: matrix.slice(from, to), last_bar: last, cache_hit: false };
    let fill = policy.writes().then(|| CacheFill { key, matrix, expires_at: policy.expiry() });
    Ok(Some((computed, fill)))
}

/// The key-value key of one date's row of a set (by name and version hash) for `symbol`.
fn row_key(symbol: &str, set_name: &str, set_version: &str, date: NaiveDate) -> String {
    format!("{CACHE_PREFIX}{symbol}/{set_name}/{set_version}/row-{date}")
}

/// The cached rows of set `set_name` at version `set_version` on `date` for each of `symbols` (None where
/// none is cached or it is stale), read in one batch. Needs no parsed set: serving knows the version a
/// model was trained on, and parsing a set of expressions costs more than reading the rows.
pub fn cached_rows(
    kv: &impl KeyValue,
    set_name: &str,
    set_version: &str,
    symbols: &[&str],
    date: NaiveDate,
    policy: CachePolicy,
) -> Vec<Option<Row>> {
    if !policy.reads() {
        return vec![None; symbols.len()];
    }
    let keys: Vec<String> = symbols.iter().map(|s| row_key(s, set_name, set_version, date)).collect();
    kv.get_many_cached(&keys)
        .into_iter()
        .map(|bytes| {
            let (expires_at, cached_date, row) = decode_row(&bytes?)?;
            (expires_at > policy.now && cached_date == date).then_some(row)
        })
        .collect()
}

/// `set` on one date of each of `symbols` (the rows the predict component scores), each cached on its own so
/// that a request reads rows rather than the symbols' whole matrices, and dropped with a symbol's other
/// entries when its bars change. The cached rows come in one read; the rest are computed, then cached one
/// after another (cached each beside its symbol's freshly cached matrix, every row would sit on a page of
/// the store of its own). None for a symbol with no bar on `date`.
pub fn features_on(
    db: &impl Database,
    kv: &impl KeyValue,
    set: &NamedSet,
    symbols: &[&str],
    date: NaiveDate,
    policy: CachePolicy,
) -> Result<Vec<Option<Vec<f64>>>, StoreError> {
    let version = set.version();
    let mut rows = cached_rows(kv, set.name(), &version, symbols, date, policy);
    let mut computed = Vec::new();
    for (i, (symbol, row)) in symbols.iter().zip(&mut rows).enumerate() {
        if row.is_none() {
            *row = compute_row(db, kv, set, symbol, date, policy)?;
            computed.push(i);
        }
    }
    for i in computed {
        if let Some(row) = &rows[i] {
            cache_row(kv, set.name(), &version, symbols[i], date, policy, row);
        }
    }
    Ok(rows.into_iter().map(|row| row.map(|row| row.values)).collect())
}

/// [`features_on`] past its cache read (for callers that already read the cache, as serving does in one
/// batch): computes the row through the symbol's matrix, cached or computed (and then cached). The caller
/// caches the row with [`cache_row`].
pub fn compute_row(
    db: &impl Database,
    kv: &impl KeyValue,
    set: &NamedSet,
    symbol: &str,
    date: NaiveDate,
    policy: CachePolicy,
) -> Result<Option<Row>, StoreError> {
    let Some(computed) = features(db, kv, set, symbol, Some(date), Some(date), policy)? else {
        return Ok(None);
    };
    if computed.last_bar != date {
        return Ok(None);
    }
    Ok(Some(Row::new(computed.matrix.columns.iter().map(|c| c[0]).collect())))
}

/// Caches `row` of set `set_name` at `set_version` for `symbol` on `date`, for [`cached_rows`].
pub fn cache_row(
    kv: &impl KeyValue,
    set_name: &str,
    set_version: &str,
    symbol: &str,
    date: NaiveDate,
    policy: CachePolicy,
    row: &Row,
) {
    if policy.writes() {
        kv.set_cached(&row_key(symbol, set_name, set_version, date), &encode_row(policy.expiry(), date, row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn matrix() -> FeatureMatrix {
        FeatureMatrix {
            dates: vec![d(2024, 1, 2), d(2024, 1, 3), d(2024, 1, 4)],
            names: vec!["A".into(), "B,quoted".into()],
            columns: vec![vec![1.5, f64::NAN, -0.25], vec![f64::NAN, 2.0, 1e-12]],
        }
    }

    fn same(a: &FeatureMatrix, b: &FeatureMatrix) -> bool {
        a.dates == b.dates
            && a.names == b.names
            && a.columns.iter().map(Vec::len).eq(b.columns.iter().map(Vec::len))
            && a.columns.iter().flatten().zip(b.columns.iter().flatten()).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn cache_encoding_round_trips_and_rejects_garbage() {
        let m = matrix();
        let bytes = m.encode(1234);
        let (at, back) = FeatureMatrix::decode(&bytes, None, None).unwrap();
        assert_eq!(at, 1234);
        assert!(same(&m, &back));
        assert_eq!(cached_expiry(&bytes), Some(1234));
        assert!(decode_row(&bytes).is_none(), "a matrix is not a row");
        let one = encode_row(99, d(2024, 1, 3), &Row::new(vec![f64::NAN, 2.0, -0.0]));
        let (at, date, row) = decode_row(&one).unwrap();
        assert_eq!((at, date), (99, d(2024, 1, 3)));
        let v = &row.values;
        assert!(v[0].is_nan() && v[1] == 2.0 && v[2].to_bits() == (-0.0f64).to_bits());
        // The digest read back is the one of the values as f32 (and -0.0 is not 0.0).
        assert_eq!(row.sha256, row_sha256(v));
        assert_ne!(row.sha256, row_sha256(&[f64::NAN, 2.0, 0.0]));
        let f32s: Vec<u8> = [f32::NAN, 2.0, -0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(row.sha256, <[u8; 32]>::from(Sha256::digest(&f32s)));
        assert_eq!(cached_expiry(&one), Some(99));
        assert!(decode_row(&one[..one.len() - 1]).is_none());
        assert!(FeatureMatrix::decode(&one, None, None).is_none(), "a row is not a matrix");
        assert!(FeatureMatrix::decode(&bytes[..bytes.len() - 1], None, None).is_none());
        assert!(FeatureMatrix::decode(b"SOF1\0\0", None, None).is_none());
        let mut huge = bytes.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(FeatureMatrix::decode(&huge, None, None).is_none());
        assert!(cached_expiry(b"junk").is_none());
        for (from, to) in [(Some(d(2024, 1, 3)), None), (None, Some(d(2024, 1, 3))), (Some(d(2025, 1, 1)), None)] {
            let (_, part) = FeatureMatrix::decode(&bytes, from, to).unwrap();
            assert!(same(&part, &m.slice(from, to)), "{from:?}..{to:?}");
        }
    }

    #[test]
    fn slices_by_date_and_writes_csv_with_empty_nan() {
        let m = matrix();
        let s = m.slice(Some(d(2024, 1, 3)), None);
        assert_eq!(s.dates, vec![d(2024, 1, 3), d(2024, 1, 4)]);
        assert_eq!(s.columns[1], vec![2.0, 1e-12]);
        assert!(m.slice(Some(d(2025, 1, 1)), Some(d(2020, 1, 1))).dates.is_empty());
        let csv = String::from_utf8(m.slice(None, Some(d(2024, 1, 3))).to_csv().unwrap()).unwrap();
        assert_eq!(csv, "date,A,\"B,quoted\"\n2024-01-02,1.5,\n2024-01-03,,2\n");
    }

    #[test]
    fn adjustment_follows_qlib_and_qlib_bins_round_trip() {
        let bars = vec![
            Bar {
                symbol: "X".into(),
                date: d(2024, 1, 2),
                open: 10.0,
                high: 12.0,
                low: 9.0,
                close: 11.0,
                volume: 100.0,
                vwap: Some(10.5),
                factor: Some(0.5),
            },
            Bar {
                symbol: "X".into(),
                date: d(2024, 1, 3),
                open: 10.0,
                high: 12.0,
                low: 9.0,
                close: 11.0,
                volume: 100.0,
                vwap: None,
                factor: None,
            },
        ];
        let s = BarSeries::from_bars("X", &bars);
        let a = adjusted(&s);
        assert_eq!((a.close[0], a.volume[0], a.vwap[0]), (5.5, 200.0, 5.25));
        assert_eq!((a.close[1], a.volume[1]), (11.0, 100.0));
        let mut adj = a.into_owned();
        // A missing factor reads 1 in a series, so it comes back as an explicit 1.
        let mut want = bars.clone();
        want[1].factor = Some(1.0);
        assert_eq!(bars_from_qlib(&adj), want);
        adj.close[1] = f64::NAN;
        assert_eq!(bars_from_qlib(&adj), want[..1]);
        let plain = BarSeries::from_bars("X", &bars[1..]);
        assert!(matches!(adjusted(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn set_names_and_versions() {
        assert!(valid_set_name("my_set-1"));
        for bad in ["", "alpha158", "technical", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_set_name(bad), "{bad}");
        }
        let t = NamedSet::builtin("technical").unwrap();
        assert_eq!((t.name(), t.version().len(), t.names().len()), ("technical", 64, 47));
        let a = NamedSet::builtin("alpha158").unwrap();
        assert_eq!(a.version(), alpha::alpha158().version());
        assert_eq!(
            cache_key("AAPL", &t, d(2024, 1, 2), 3),
            format!("features/AAPL/technical/{}/2024-01-02/r3", t.version())
        );
    }
}
