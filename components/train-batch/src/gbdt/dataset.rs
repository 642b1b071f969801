//! Input data for training and batch prediction.
//!
//! Features are stored column-major (one `Vec<f64>` per feature): binning, the expensive step, reads
//! one feature at a time, and the binned copy keeps the same feature-major layout as `u8` columns (plus a
//! row-major copy that histograms are filled from).

use thiserror::Error;

/// A dataset is malformed, or does not fit the model or training set it is used with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DatasetError {
    /// The number of feature names differs from the number of feature columns.
    #[error("{names} feature names for {columns} feature columns")]
    NameCount {
        /// Names given.
        names: usize,
        /// Columns given.
        columns: usize,
    },
    /// A feature column is not as long as the label vector.
    #[error("feature `{feature}` has {len} values but there are {rows} labels")]
    ColumnLength {
        /// Name of the column.
        feature: String,
        /// Its length.
        len: usize,
        /// Number of labels.
        rows: usize,
    },
    /// A row-major buffer does not hold a whole number of rows.
    #[error("{len} values do not make rows of {features} features")]
    RaggedRows {
        /// Values given.
        len: usize,
        /// Features per row.
        features: usize,
    },
    /// A label is NaN or infinite.
    #[error("label at row {row} is not finite")]
    NonFiniteLabel {
        /// Zero-based row.
        row: usize,
    },
    /// The data has a different number of features than expected.
    #[error("expected {expected} features, got {found}")]
    FeatureCount {
        /// Features the model or training set has.
        expected: usize,
        /// Features the data has.
        found: usize,
    },
}

/// Features (column-major f64, NaN = missing), labels and feature names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    feature_names: Vec<String>,
    columns: Vec<Vec<f64>>,
    labels: Vec<f64>,
}

impl Dataset {
    /// A dataset from one column per feature; every column must be as long as `labels`.
    pub fn from_columns(
        feature_names: Vec<String>,
        columns: Vec<Vec<f64>>,
        labels: Vec<f64>,
    ) -> Result<Self, DatasetError> {
        if feature_names.len() != columns.len() {
            return Err(DatasetError::NameCount { names: feature_names.len(), columns: columns.len() });
        }
        if let Some((name, col)) = feature_names.iter().zip(&columns).find(|(_, c)| c.len() != labels.len()) {
            return Err(DatasetError::ColumnLength { feature: name.clone(), len: col.len(), rows: labels.len() });
        }
        if let Some(row) = labels.iter().position(|y| !y.is_finite()) {
            return Err(DatasetError::NonFiniteLabel { row });
        }
        Ok(Dataset { feature_names, columns, labels })
    }

    /// A dataset from a row-major buffer of `labels.len()` rows × `feature_names.len()` values.
    pub fn from_row_major(feature_names: Vec<String>, values: &[f64], labels: Vec<f64>) -> Result<Self, DatasetError> {
        let width = feature_names.len();
        if values.len() != width * labels.len() {
            return Err(DatasetError::RaggedRows { len: values.len(), features: width });
        }
        let columns = (0..width).map(|f| values.iter().skip(f).step_by(width).copied().collect()).collect();
        Dataset::from_columns(feature_names, columns, labels)
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.labels.len()
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.columns.len()
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// All feature columns, one `Vec` per feature in name order.
    pub fn columns(&self) -> &[Vec<f64>] {
        &self.columns
    }

    /// Labels, one per row.
    pub fn labels(&self) -> &[f64] {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn row_major_is_transposed() {
        let d = Dataset::from_row_major(names(2), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0; 3]).unwrap();
        assert_eq!(d.columns()[0], [1.0, 3.0, 5.0]);
        assert_eq!(d.columns()[1], [2.0, 4.0, 6.0]);
        assert_eq!((d.num_rows(), d.num_features()), (3, 2));
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        assert_eq!(
            Dataset::from_row_major(names(2), &[1.0, 2.0, 3.0], vec![0.0; 2]),
            Err(DatasetError::RaggedRows { len: 3, features: 2 })
        );
        assert!(matches!(
            Dataset::from_columns(names(1), vec![vec![1.0]], vec![1.0, 2.0]),
            Err(DatasetError::ColumnLength { .. })
        ));
        assert_eq!(
            Dataset::from_columns(names(1), vec![vec![1.0]], vec![f64::NAN]),
            Err(DatasetError::NonFiniteLabel { row: 0 })
        );
        assert!(matches!(Dataset::from_columns(names(2), vec![], vec![]), Err(DatasetError::NameCount { .. })));
    }
}
