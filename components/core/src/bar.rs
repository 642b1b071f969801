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
}
