//! Patch-clamp recordings into memory: Axon Binary Format files (ABF 1.x and 2.x, from
//! pCLAMP/Clampex) with their channels, units, sweeps and stimulus protocol, and, with the
//! `nwb` feature, NWB 2.x files (HDF5, as shared on DANDI and by the Allen Institute).
//!
//! [`open`] reads a file into a [`Recording`]: the sampling rate, the recorded channels with
//! names and units, the sweeps (a gap-free recording is one sweep), each sample scaled to the
//! channel's units in f64, the command outputs with their epoch tables (so a step protocol
//! gives each sweep's stimulus, see [`Recording::sweep_epochs`] and
//! [`Recording::command_waveform`]) and the tags. Files are read defensively: every offset and
//! count in a header is checked against the file, and a damaged or foreign file gives an
//! [`Error`] naming the file and what is wrong, never a panic.
//!
//! NWB files (feature `nwb`, which links the system HDF5 library through `hdf5-metno`; Debian:
//! `libhdf5-dev` and `pkg-config`; or feature `nwb-static`, which compiles HDF5 from source and
//! links it statically, needing cmake 3.26 or newer instead) give the same [`Recording`]: each `CurrentClampSeries` is a
//! sweep of channel `Vm` (in V), each `CurrentClampStimulusSeries` a sweep of channel
//! `stimulus` (in A), values `data * conversion + offset`, sweeps ordered by `sweep_number`.
//! Without the feature, [`open`] recognises an HDF5 file and says how to enable NWB support.
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
#[cfg(feature = "nwb")]
mod nwb;
mod protocol;
mod recording;

use std::path::Path;

pub use abf::{parse_abf, read_abf};
pub use error::{Error, Result};
pub use protocol::{Command, EpochKind, EpochRow, SweepEpoch};
pub use recording::{Channel, ChannelSelector, RawSweep, Recording, Samples, Tag};

/// The first bytes of an HDF5 file (the superblock signature), so of every NWB 2.x file.
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Reads a recording, choosing the reader by the file's first bytes (ABF 1 or 2, NWB).
pub fn open(path: impl AsRef<Path>) -> Result<Recording> {
    let path = path.as_ref();
    let mut head = [0u8; 8];
    let n = {
        use std::io::Read;
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(io)? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    if head[..n] == *HDF5_MAGIC {
        return read_hdf5(path);
    }
    read_abf(path)
}

/// Reads a recording whose bytes are already in memory (read with a size bound by the caller):
/// ABF from `bytes`; an NWB (HDF5) file is recognised by its first bytes and read again from
/// `path` by the HDF5 library.
pub fn parse(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Recording> {
    let path = path.as_ref();
    if bytes.starts_with(HDF5_MAGIC) {
        return read_hdf5(path);
    }
    parse_abf(path, bytes)
}

#[cfg(feature = "nwb")]
fn read_hdf5(path: &Path) -> Result<Recording> {
    nwb::read_nwb(path)
}

#[cfg(not(feature = "nwb"))]
fn read_hdf5(path: &Path) -> Result<Recording> {
    Err(Error::NoNwbSupport {
        path: path.to_path_buf(),
    })
}
