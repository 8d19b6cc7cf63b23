//! Errors of the readers: each names the file and what is wrong with it.

use std::path::PathBuf;

/// Why a recording could not be read or a selection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not start like any format this crate reads.
    #[error(
        "{path}: not an ABF file (the first bytes are {found:?}; an ABF file starts with \"ABF \" or \"ABF2\") nor an NWB file (HDF5, starting with \"\\x89HDF\")"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first bytes, as text.
        found: String,
    },
    /// An ABF file of a version this reader does not know.
    #[error("{path}: ABF version {version} is not supported (this reader knows 1.x and 2.x)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version written in the file.
        version: String,
    },
    /// The file ends before something its header points at.
    #[error(
        "{path}: the file is truncated or damaged: {what} needs bytes {start}..{end}, but the file has {len} bytes"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// Length of the file.
        len: u64,
    },
    /// A header value is impossible (negative counts, zero sampling interval, ...).
    #[error("{path}: damaged header: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is impossible.
        message: String,
    },
    /// A channel asked for by name or index does not exist.
    #[error("{path}: no channel {requested}; the file has {available}")]
    NoSuchChannel {
        /// The file.
        path: PathBuf,
        /// The name or index asked for.
        requested: String,
        /// The channels that exist, listed.
        available: String,
    },
    /// A sweep asked for does not exist.
    #[error("{path}: no sweep {requested}; the file has {count} sweep(s), numbered 0 to {last}", last = count.saturating_sub(1))]
    NoSuchSweep {
        /// The file.
        path: PathBuf,
        /// The sweep asked for.
        requested: usize,
        /// How many sweeps there are.
        count: usize,
    },
    /// The file has no stimulus for the channel asked for.
    #[error("{path}: {message}")]
    NoStimulus {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// An HDF5 (NWB) file, but this build has no NWB reader.
    #[error(
        "{path}: an HDF5 file (NWB?), but this build of neurosbi has no NWB support; rebuild with `--features nwb` (links the system HDF5 library: Debian/Ubuntu `apt-get install libhdf5-dev pkg-config`) or `--features nwb-static` (compiles HDF5 from source: needs cmake 3.26 or newer, e.g. `pip install cmake`)"
    )]
    NoNwbSupport {
        /// The file.
        path: PathBuf,
    },
    /// An NWB file that cannot be read as current-clamp data.
    #[error("{path}: {message}")]
    Nwb {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
