//! Feature matrices as a Parquet file: `symbol` (string), `date` (DATE), then one nullable double per
//! feature (NaN written as null, as the CSV leaves the cell empty), Snappy-compressed, one row group per
//! batch of symbols. pandas, polars, DuckDB and Spark read it as they read Qlib exports.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use features::store::FeatureMatrix;
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;

/// An open Parquet file of one feature set.
pub struct ParquetFeatures {
    writer: SerializedFileWriter<BufWriter<File>>,
}

/// Days from 1970-01-01: Parquet's DATE.
fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

impl ParquetFeatures {
    /// Creates the file with a column per feature name.
    pub fn create(file: File, names: &[String]) -> Result<Self> {
        let column = |name: &str, physical, repetition, logical| {
            Type::primitive_type_builder(name, physical)
                .with_repetition(repetition)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
                .with_context(|| format!("Parquet column {name:?}"))
        };
        let mut fields = vec![
            column("symbol", Physical::BYTE_ARRAY, Repetition::REQUIRED, Some(LogicalType::String))?,
            column("date", Physical::INT32, Repetition::REQUIRED, Some(LogicalType::Date))?,
        ];
        for name in names {
            fields.push(column(name, Physical::DOUBLE, Repetition::OPTIONAL, None)?);
        }
        let schema = Arc::new(Type::group_type_builder("features").with_fields(fields).build()?);
        let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
        Ok(ParquetFeatures { writer: SerializedFileWriter::new(BufWriter::new(file), schema, props)? })
    }

    /// Writes the matrices of a batch of symbols as one row group.
    pub fn write_group(&mut self, batch: &[(&str, &FeatureMatrix)]) -> Result<()> {
        let rows: usize = batch.iter().map(|(_, m)| m.dates.len()).sum();
        if rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut col) = group.next_column()? {
            match index {
                0 => {
                    let symbols: Vec<ByteArray> = batch
                        .iter()
                        .flat_map(|(s, m)| std::iter::repeat_n(ByteArray::from(*s), m.dates.len()))
                        .collect();
                    col.typed::<ByteArrayType>().write_batch(&symbols, None, None)?;
                }
                1 => {
                    let dates: Vec<i32> =
                        batch.iter().flat_map(|(_, m)| m.dates.iter().map(|&d| epoch_days(d))).collect();
                    col.typed::<Int32Type>().write_batch(&dates, None, None)?;
                }
                _ => {
                    // Definition level 1 = a value, 0 = null (NaN).
                    let all = || batch.iter().flat_map(|(_, m)| m.columns[index - 2].iter().copied());
                    let levels: Vec<i16> = all().map(|v| i16::from(!v.is_nan())).collect();
                    let values: Vec<f64> = all().filter(|v| !v.is_nan()).collect();
                    col.typed::<DoubleType>().write_batch(&values, Some(&levels), None)?;
                }
            }
            col.close()?;
            index += 1;
        }
        group.close()?;
        Ok(())
    }

    /// Writes the footer.
    pub fn finish(self) -> Result<()> {
        self.writer.close()?;
        Ok(())
    }
}
