//! The crate's error type.

/// Everything that can go wrong when building, training, evaluating or storing an estimator.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A data slice does not have the length its dimensions imply.
    #[error("{what}: expected {expected} values ({rows} rows of dimension {dim}), got {got}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Expected number of values.
        expected: usize,
        /// Number of rows implied.
        rows: usize,
        /// Row dimension.
        dim: usize,
        /// Number of values supplied.
        got: usize,
    },
    /// An argument is out of its valid range.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which argument or field.
        what: &'static str,
        /// Why it is rejected.
        why: String,
    },
    /// Training produced a NaN or infinite loss.
    #[error("non-finite {phase} loss ({loss}) in epoch {epoch}")]
    NonFiniteLoss {
        /// 1-based epoch in which it happened.
        epoch: usize,
        /// "training" or "validation".
        phase: &'static str,
        /// The offending value.
        loss: f64,
    },
    /// A stored estimator could not be read.
    #[error("cannot load {path}: {why}")]
    Load {
        /// File path.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// File system error.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Error raised inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Checks that `data` holds `rows * dim` values, returning the number of rows.
pub(crate) fn rows_of(what: &'static str, data: &[f64], dim: usize) -> Result<usize, FlowError> {
    if dim == 0 {
        return Err(FlowError::Invalid {
            what,
            why: "dimension is zero".into(),
        });
    }
    if !data.len().is_multiple_of(dim) {
        return Err(FlowError::Shape {
            what,
            expected: (data.len() / dim + 1) * dim,
            rows: data.len() / dim + 1,
            dim,
            got: data.len(),
        });
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(FlowError::Invalid {
            what,
            why: format!(
                "value {} at row {}, column {} is not finite",
                data[i],
                i / dim,
                i % dim
            ),
        });
    }
    Ok(data.len() / dim)
}
