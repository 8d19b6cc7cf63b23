//! The facade's error type: every message says which file, key, parameter or output.

use std::path::PathBuf;

/// Errors of the facade (model files, the high-level API, outputs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file (or a file it names) is wrong: which file, which key, what was expected.
    #[error("{file}: `{key}`: {message}")]
    Config {
        /// The file.
        file: String,
        /// The key (dotted path) or line.
        key: String,
        /// What was expected or found.
        message: String,
    },
    /// A call of the high-level API with inconsistent arguments.
    #[error("{what}: {message}")]
    Invalid {
        /// The argument or parameter.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// An output file exists already and `--force` was not given.
    #[error(
        "{path} already exists; pass --force to overwrite it, or choose another output folder with --out"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
    /// From the simulator.
    #[error(transparent)]
    Sim(#[from] neurosbi_sim::SimError),
    /// From the feature library.
    #[error(transparent)]
    Feature(#[from] neurosbi_features::FeatureError),
    /// From the inference engine.
    #[error(transparent)]
    Infer(#[from] neurosbi_infer::InferError),
}

impl Error {
    /// A model-file error.
    pub fn config(file: &str, key: &str, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
    /// An API argument error.
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
