//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `neurosbi-infer`; each variant names what and where.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A prior was built with bad parameters (reversed or degenerate bounds, non-positive scale).
    #[error("invalid prior: dimension {index} ({kind}): {reason}")]
    InvalidPrior {
        /// Which dimension of the prior.
        index: usize,
        /// Kind of marginal (uniform, normal, ...).
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Two things that must have the same dimension do not.
    #[error("dimension mismatch: {what}: expected {expected}, got {got}")]
    DimMismatch {
        /// What was compared.
        what: String,
        /// Expected dimension.
        expected: usize,
        /// Dimension found.
        got: usize,
    },
    /// theta and x (or another pair of row-major matrices) have different row counts.
    #[error("row-count mismatch: {what}: {left} rows vs {right} rows")]
    RowMismatch {
        /// What was compared.
        what: String,
        /// Rows on the left.
        left: usize,
        /// Rows on the right.
        right: usize,
    },
    /// A flat buffer's length is not a multiple of its row width.
    #[error("{what}: buffer of length {len} is not a whole number of rows of width {width}")]
    RaggedBuffer {
        /// Which buffer.
        what: String,
        /// Its length.
        len: usize,
        /// The row width it should be a multiple of.
        width: usize,
    },
    /// Every simulation of a run was invalid (NaN/Inf output or simulator error).
    #[error(
        "all {n} simulations were invalid (NaN/Inf output or simulator error); first error: {first_error}"
    )]
    AllSimulationsInvalid {
        /// Number of simulations attempted.
        n: usize,
        /// The first simulator error message, or "non-finite output".
        first_error: String,
    },
    /// More than the allowed fraction of a round's simulations were invalid.
    #[error(
        "{}; more than {:.0} % of the simulations are invalid, so the model fails over most of the prior: narrow the prior away from where it fails, fix the model, or choose features defined there",
        report.describe(&[]), 100.0 * max_fraction
    )]
    TooManyInvalid {
        /// The allowed fraction.
        max_fraction: f64,
        /// Counts, reasons and where they fail.
        report: Box<crate::invalid::InvalidReport>,
    },
    /// A store was made for another problem (or its round from another proposal).
    #[error(
        "{path} holds simulations of another problem: {} changed since they were made. Rerun with --force to resimulate (the old simulations are replaced once the new run completes), or write to another output folder with --out",
        changes.join(", ")
    )]
    StoreMismatch {
        /// The store.
        path: PathBuf,
        /// Names of what changed (fingerprint parts).
        changes: Vec<String>,
    },
    /// An observation or input contains NaN or infinity.
    #[error("{what} has a non-finite value at index {index}")]
    NonFinite {
        /// Which input.
        what: String,
        /// Flat index of the first non-finite value.
        index: usize,
    },
    /// A file was written by another format version.
    #[error("{path}: format version {found}, this build reads version {expected}")]
    FormatVersion {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// A file could not be decoded or is inconsistent.
    #[error("{path}: corrupt or inconsistent file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Rejection sampling inside the prior support accepted too few draws.
    #[error(
        "posterior sampling: only {accepted} of {drawn} draws fell inside the prior support; use MCMC or more simulations"
    )]
    LowAcceptance {
        /// Draws accepted.
        accepted: usize,
        /// Draws made.
        drawn: u64,
    },
    /// An error from the neural estimators (training, sampling, loading).
    #[error("estimator: {0}")]
    Flow(#[from] neurosbi_flows::FlowError),
    /// A setting or argument is out of its valid range.
    #[error("invalid argument `{what}`: {reason}")]
    InvalidArgument {
        /// The argument.
        what: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = InferError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> InferError {
    let path = path.into();
    move |source| InferError::Io { path, source }
}

/// Checks that `buf` holds whole rows of `width` and returns the row count.
pub(crate) fn rows_of(what: &str, buf: &[f64], width: usize) -> Result<usize> {
    if width == 0 || !buf.len().is_multiple_of(width) {
        return Err(InferError::RaggedBuffer {
            what: what.to_string(),
            len: buf.len(),
            width,
        });
    }
    Ok(buf.len() / width)
}

/// Checks that every value is finite.
pub(crate) fn check_finite(what: &str, buf: &[f64]) -> Result<()> {
    match buf.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(InferError::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

pub(crate) fn invalid_arg(what: &str, reason: impl Into<String>) -> InferError {
    InferError::InvalidArgument {
        what: what.to_string(),
        reason: reason.into(),
    }
}
