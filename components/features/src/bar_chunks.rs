//! A symbol's bars packed a calendar year to a blob (table `bar_chunks`): the form feature
//! computation reads. In a component every value of a query result crosses the host boundary on its
//! own, so a symbol's history read from `bars` is eight values a bar (26,000 for 13 years of daily
//! bars); read from here it is one blob a year.
//!
//! The `bars` table stays the source of truth. [`crate::store::upsert_bars`] rewrites the chunks of
//! the years it touches in its own transaction, so the two agree whenever bars are written through
//! stockops. A read checks that its chunks hold as many bars as the table does; when they do not
//! (a database written before the chunks existed, bars inserted by hand) the caller reads the table
//! and rewrites the symbol's chunks.

use chrono::{Datelike, NaiveDate};
use stockops_core::{Bar, BarSeries, Database, SqlValue, StorageError};

/// First bytes of a chunk; anything else reads as missing (and is rewritten).
const MAGIC: &[u8; 4] = b"SOB1";

/// A run of one symbol's bars as a chunk: magic, bar count (u32), dates (days since CE, i32), then
/// the f64 columns in [`BarSeries::columns`]' order (open, high, low, close, volume, vwap with NaN for
/// none, factor with 1 for none); little-endian throughout.
pub(crate) fn pack(bars: &BarSeries) -> Vec<u8> {
    let n = bars.len();
    let mut out = Vec::with_capacity(8 + n * (4 + 7 * 8));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for d in &bars.dates {
        out.extend_from_slice(&d.num_days_from_ce().to_le_bytes());
    }
    for column in bars.columns() {
        out.extend(column.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// Appends the bars of a [`pack`]ed chunk to `series`; None (and `series` unchanged) when malformed.
pub(crate) fn unpack_into(bytes: &[u8], series: &mut BarSeries) -> Option<()> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    let (count, body) = body.split_first_chunk::<4>()?;
    let n = u32::from_le_bytes(*count) as usize;
    if body.len() != n.checked_mul(4 + 7 * 8)? {
        return None;
    }
    let (dates, values) = body.split_at(n * 4);
    let dates = dates
        .chunks_exact(4)
        .map(|d| NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(d.try_into().expect("4 bytes"))))
        .collect::<Option<Vec<_>>>()?;
    series.dates.extend(dates);
    for (column, target) in values.chunks_exact(n * 8).zip(series.columns_mut()) {
        target.extend(column.chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes"))));
    }
    Some(())
}

/// `symbol`'s bars up to `to` (all when None) from its chunks, when they hold exactly the bars the
/// `bars` table holds up to there (same count and last date); None otherwise.
pub(crate) fn load(db: &impl Database, symbol: &str, to: Option<NaiveDate>) -> Result<Option<BarSeries>, StorageError> {
    let to_text = to.map_or_else(|| "9999-12-31".to_string(), |d| d.to_string());
    let to_year = to.map_or(i64::MAX, |d| i64::from(d.year()));
    // One statement, so the count and the chunks come from the same snapshot; the outer join gives
    // the count a row even when the symbol has no chunk.
    let rows = db.execute(
        "SELECT (SELECT count(*) FROM bars WHERE symbol = ? AND date <= ?) AS n, \
         (SELECT max(date) FROM bars WHERE symbol = ? AND date <= ?) AS last, c.bars AS bars \
         FROM (SELECT 1) LEFT JOIN bar_chunks c ON c.symbol = ? AND c.year <= ? ORDER BY c.year",
        &[
            symbol.into(),
            to_text.clone().into(),
            symbol.into(),
            to_text.into(),
            symbol.into(),
            SqlValue::Integer(to_year),
        ],
    )?;
    let mut series = BarSeries { symbol: symbol.to_string(), ..Default::default() };
    for i in 0..rows.rows.len() {
        match rows.value(i, "bars") {
            Some(SqlValue::Null) => {}
            Some(SqlValue::Blob(bytes)) if unpack_into(bytes, &mut series).is_some() => {}
            _ => return Ok(None),
        }
    }
    if let Some(to) = to {
        series.truncate(series.dates.partition_point(|d| *d <= to));
    }
    let expected = rows.i64(0, "n").and_then(|n| usize::try_from(n).ok());
    let last = rows.text(0, "last").and_then(stockops_core::bar::parse_iso_date);
    let complete = expected == Some(series.len()) && last == series.dates.last().copied();
    Ok(complete.then_some(series))
}

/// Rewrites `symbol`'s chunks of the years `first..=last` from `bars`, that symbol's bars of those
/// years in date order (a year without bars loses its chunk). Run it in the transaction that wrote
/// the bars.
pub(crate) fn rewrite(
    db: &impl Database,
    symbol: &str,
    first: i32,
    last: i32,
    bars: &[Bar],
) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM bar_chunks WHERE symbol = ? AND year >= ? AND year <= ?",
        &[symbol.into(), i64::from(first).into(), i64::from(last).into()],
    )?;
    for year_bars in bars.chunk_by(|a, b| a.date.year() == b.date.year()) {
        let year = year_bars[0].date.year();
        db.execute(
            "INSERT INTO bar_chunks (symbol, year, bars) VALUES (?, ?, ?)",
            &[symbol.into(), i64::from(year).into(), SqlValue::Blob(pack(&BarSeries::from_bars(symbol, year_bars)))],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_reject_garbage() {
        let bar = |d: u32, close: f64, vwap: Option<f64>, factor: Option<f64>| Bar {
            symbol: "A".into(),
            date: NaiveDate::from_ymd_opt(2024, 1, d).unwrap(),
            open: close - 1.0,
            high: close + 1.0,
            low: close - 2.0,
            close,
            volume: 1e6 + f64::from(d),
            vwap,
            factor,
        };
        let series = BarSeries::from_bars("A", &[bar(2, 10.5, Some(10.25), None), bar(3, 11.0, None, Some(0.5))]);
        let packed = pack(&series);
        let mut back = BarSeries { symbol: "A".into(), ..Default::default() };
        unpack_into(&packed, &mut back).unwrap();
        assert_eq!(back.dates, series.dates);
        for (a, b) in back.columns().into_iter().zip(series.columns()) {
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // Two chunks append in order.
        unpack_into(&packed, &mut back).unwrap();
        assert_eq!(back.len(), 4);
        for bad in [&packed[..packed.len() - 1], &packed[1..], b"SOB1\x01\x00\x00\x00".as_slice()] {
            let mut s = BarSeries::default();
            assert!(unpack_into(bad, &mut s).is_none());
            assert_eq!(s, BarSeries::default());
        }
    }
}
