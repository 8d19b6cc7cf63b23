//! Patch-clamp recordings into memory: Axon Binary Format files (ABF 1.x and 2.x, from
//! pCLAMP/Clampex) with their channels, units, sweeps and stimulus protocol.
//!
//! [`open`] reads a file into a [`Recording`]: the sampling rate, the recorded channels with
//! names and units, the sweeps (a gap-free recording is one sweep), each sample scaled to the
//! channel's units in f64, the command outputs with their epoch tables (so a step protocol
//! gives each sweep's stimulus, see [`Recording::sweep_epochs`] and
//! [`Recording::command_waveform`]) and the tags. Files are read defensively: every offset and
//! count in a header is checked against the file, and a damaged or foreign file gives an
//! [`Error`] naming the file and what is wrong, never a panic.
//!
//! ```
//! use neurosbi_io::{ChannelSelector, open};
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/abf");
//! let rec = open(format!("{dir}/17o05028_ic_steps.abf"))?;
//! assert_eq!(rec.sample_rate_hz, 20_000.0);
//! let vm = rec.channel_index(&ChannelSelector::Name("IN 0".into()))?;
//! assert_eq!(rec.channels[vm].units, "mV");
//! let trace = rec.sweep(vm, 3)?; // membrane potential of sweep 3, in mV
//! let stimulus = rec.command_waveform(0, 3)?; // its command current, in pA
//! assert_eq!(trace.len(), stimulus.len());
//! assert!(rec.channel_index(&ChannelSelector::Name("Vm".into())).is_err());
//! # Ok::<(), neurosbi_io::Error>(())
//! ```

mod abf;
mod bytes;
mod describe;
mod error;
mod protocol;
mod recording;

use std::path::Path;

pub use abf::{parse_abf, read_abf};
pub use error::{Error, Result};
pub use protocol::{Command, EpochKind, EpochRow, SweepEpoch};
pub use recording::{Channel, ChannelSelector, RawSweep, Recording, Samples, Tag};

/// Reads a recording, choosing the reader by the file's first bytes (ABF 1 or 2).
pub fn open(path: impl AsRef<Path>) -> Result<Recording> {
    read_abf(path)
}
