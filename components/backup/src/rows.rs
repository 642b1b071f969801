//! The exact binary encoding of a table's rows: every value comes back bit for bit (floats by their bits,
//! blobs and text by length and bytes), which JSON would not promise.
//!
//! Layout, little-endian: `u32` column count, each column name as `u32` length + UTF-8; `u64` row count;
//! then per value a tag byte and its payload: 0 NULL, 1 INTEGER `i64`, 2 REAL `f64` bits,
//! 3 TEXT `u64` length + UTF-8, 4 BLOB `u64` length + bytes.

use stockops_core::{Rows, SqlValue};

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Encodes rows; `Err` names a row whose length differs from the column count (it could not be decoded).
pub fn encode(rows: &Rows) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&len_u32(rows.columns.len())?.to_le_bytes());
    for c in &rows.columns {
        out.extend_from_slice(&len_u32(c.len())?.to_le_bytes());
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(&(rows.rows.len() as u64).to_le_bytes());
    for (i, row) in rows.rows.iter().enumerate() {
        if row.len() != rows.columns.len() {
            return Err(format!("row {i} has {} values for {} columns", row.len(), rows.columns.len()));
        }
        for v in row {
            match v {
                SqlValue::Null => out.push(NULL),
                SqlValue::Integer(x) => {
                    out.push(INTEGER);
                    out.extend_from_slice(&x.to_le_bytes());
                }
                SqlValue::Real(x) => {
                    out.push(REAL);
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
                SqlValue::Text(s) => {
                    out.push(TEXT);
                    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                SqlValue::Blob(b) => {
                    out.push(BLOB);
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }
    Ok(out)
}

fn len_u32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("a column count or name of {n} bytes is too long"))
}

/// Decodes what [`encode`] wrote; `Err` says at which byte offset and what was wrong.
pub fn decode(bytes: &[u8]) -> Result<Rows, String> {
    let mut r = Reader { bytes, at: 0 };
    let ncols = r.u32()? as usize;
    let mut columns = Vec::with_capacity(ncols.min(r.left()));
    for _ in 0..ncols {
        let len = r.u32()? as usize;
        columns.push(r.text(len)?);
    }
    let nrows = r.u64()?;
    // Sized by what the bytes can hold, never by a count read from them.
    let mut rows = Vec::with_capacity((nrows as usize).min(r.left()));
    for _ in 0..nrows {
        let mut row = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let value = match r.u8()? {
                NULL => SqlValue::Null,
                INTEGER => SqlValue::Integer(i64::from_le_bytes(r.array()?)),
                REAL => SqlValue::Real(f64::from_bits(u64::from_le_bytes(r.array()?))),
                TEXT => {
                    let len = r.len()?;
                    SqlValue::Text(r.text(len)?)
                }
                BLOB => {
                    let len = r.len()?;
                    SqlValue::Blob(r.take(len)?.to_vec())
                }
                tag => return Err(format!("unknown value tag {tag} at byte {}", r.at - 1)),
            };
            row.push(value);
        }
        rows.push(row);
    }
    if r.left() != 0 {
        return Err(format!("{} bytes left over after {nrows} rows", r.left()));
    }
    Ok(Rows { columns, rows })
}

/// A cursor over the encoded bytes that never reads past their end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!("needs {n} bytes at byte {}, only {} left", self.at, self.left()));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `u64` length that must fit in what is left.
    fn len(&mut self) -> Result<usize, String> {
        let at = self.at;
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.left())
            .ok_or_else(|| format!("length {n} at byte {at} exceeds the {} bytes left", self.left()))
    }

    fn text(&mut self, len: usize) -> Result<String, String> {
        let at = self.at;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| format!("text at byte {at} is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rows {
        Rows {
            columns: vec!["id".into(), "x".into(), "name".into(), "data".into(), "é列".into()],
            rows: vec![
                vec![
                    SqlValue::Integer(i64::MIN),
                    SqlValue::Real(0.1 + 0.2),
                    SqlValue::Text("ünïcode ✓ 漢字 🚀".into()),
                    SqlValue::Blob(vec![]),
                    SqlValue::Null,
                ],
                vec![
                    SqlValue::Integer(i64::MAX),
                    SqlValue::Real(-0.0),
                    SqlValue::Text(String::new()),
                    SqlValue::Blob((0..=255).collect()),
                    SqlValue::Real(f64::MIN_POSITIVE / 2.0), // subnormal
                ],
                vec![
                    SqlValue::Integer(0),
                    SqlValue::Real(f64::INFINITY),
                    SqlValue::Null,
                    SqlValue::Blob(vec![0; 3]),
                    SqlValue::Real(f64::MAX),
                ],
            ],
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let rows = sample();
        let back = decode(&encode(&rows).unwrap()).unwrap();
        assert_eq!(back.columns, rows.columns);
        assert_eq!(back.rows.len(), rows.rows.len());
        for (a, b) in rows.rows.iter().flatten().zip(back.rows.iter().flatten()) {
            match (a, b) {
                // Compare floats by bits: -0.0 == 0.0 numerically, but a backup must keep the sign.
                (SqlValue::Real(x), SqlValue::Real(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn empty_tables_round_trip() {
        let none = Rows { columns: vec!["a".into()], rows: vec![] };
        assert_eq!(decode(&encode(&none).unwrap()).unwrap(), none);
        let nothing = Rows::default();
        assert_eq!(decode(&encode(&nothing).unwrap()).unwrap(), nothing);
    }

    #[test]
    fn ragged_rows_are_refused_when_encoding() {
        let ragged = Rows { columns: vec!["a".into(), "b".into()], rows: vec![vec![SqlValue::Null]] };
        assert!(encode(&ragged).unwrap_err().contains("row 0 has 1 values for 2 columns"));
    }

    #[test]
    fn every_truncation_and_bad_tag_is_an_error_not_a_panic() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "decoded a prefix of {n} bytes");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).unwrap_err().contains("left over"));
        // The first value's tag sits right after the header: 4 + columns + 8.
        let header = 4 + sample().columns.iter().map(|c| 4 + c.len()).sum::<usize>() + 8;
        let mut bad = bytes;
        bad[header] = 9;
        assert!(decode(&bad).unwrap_err().contains("unknown value tag 9"));
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        // One column, then a row count of u64::MAX with nothing behind it.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(b'a');
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&bytes).is_err());
    }
}
