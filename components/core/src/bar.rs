//! One daily bar of one symbol: the unit every other capability consumes.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A daily OHLCV bar. Prices are raw (unadjusted); `factor` is Qlib's adjustment factor
/// (adjusted price = raw price × factor) and is 1 when the source has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Ticker, upper-case as stored (e.g. `AAPL`).
    pub symbol: String,
    /// Trading day.
    pub date: NaiveDate,
    /// Opening price.
    pub open: f64,
    /// Highest price of the day.
    pub high: f64,
    /// Lowest price of the day.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Traded volume (shares).
    pub volume: f64,
    /// Volume-weighted average price, when the source has it.
    pub vwap: Option<f64>,
    /// Adjustment factor, when the source has it.
    pub factor: Option<f64>,
}

/// A date written `YYYY-MM-DD`, as the database stores them (None for anything else): thousands of
/// bars are read per request, and this is many times faster than a format-driven parse.
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number =
        |digits: &[u8]| digits.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')));
    NaiveDate::from_ymd_opt(i32::try_from(number(&b[..4])?).ok()?, number(&b[5..7])?, number(&b[8..])?)
}

/// One symbol's bars as parallel columns, sorted by date: the layout feature kernels read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarSeries {
    /// Ticker these bars belong to.
    pub symbol: String,
    /// Trading days, strictly increasing.
    pub dates: Vec<NaiveDate>,
    /// Opening prices.
    pub open: Vec<f64>,
    /// Daily highs.
    pub high: Vec<f64>,
    /// Daily lows.
    pub low: Vec<f64>,
    /// Closing prices.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
    /// VWAP (NaN where the source had none).
    pub vwap: Vec<f64>,
    /// Adjustment factors (1.0 where the source had none).
    pub factor: Vec<f64>,
}

impl BarSeries {
    /// Builds the columnar form of one symbol's bars; `bars` must already be sorted by date.
    pub fn from_bars(symbol: &str, bars: &[Bar]) -> Self {
        let mut s = BarSeries { symbol: symbol.to_string(), ..Default::default() };
        for b in bars {
            s.dates.push(b.date);
            s.open.push(b.open);
            s.high.push(b.high);
            s.low.push(b.low);
            s.close.push(b.close);
            s.volume.push(b.volume);
            s.vwap.push(b.vwap.unwrap_or(f64::NAN));
            s.factor.push(b.factor.unwrap_or(1.0));
        }
        s
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    /// True when the series holds no bar.
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// The value columns in a fixed order: open, high, low, close, volume, vwap, factor.
    pub fn columns(&self) -> [&Vec<f64>; 7] {
        [&self.open, &self.high, &self.low, &self.close, &self.volume, &self.vwap, &self.factor]
    }

    /// [`columns`](Self::columns), to change.
    pub fn columns_mut(&mut self) -> [&mut Vec<f64>; 7] {
        [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.vwap,
            &mut self.factor,
        ]
    }

    /// Keeps the first `len` bars.
    pub fn truncate(&mut self, len: usize) {
        self.dates.truncate(len);
        for column in self.columns_mut() {
            column.truncate(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_parse_as_chrono_does_and_nothing_else() {
        for text in ["2024-01-02", "2000-02-29", "1999-12-31", "0001-01-01"] {
            assert_eq!(parse_iso_date(text), NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(), "{text}");
        }
        for bad in ["2024-1-02", "2023-02-29", "2024-13-01", "2024-01-00", "2024/01/02", "2024-01-0x", "", "+024-01-02"]
        {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }
}
