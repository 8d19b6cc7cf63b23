//! A recording in memory, whatever file it came from: channels, sweeps, stimulus protocol.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::protocol::Command;

/// One recorded (input) channel.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Channel {
    /// Name as written in the file (`IN 0`, `Vm`); may be empty.
    pub name: String,
    /// Units as written in the file (`mV`, `pA`; `µ` is written `u`); may be empty.
    pub units: String,
    /// Stored sample times `gain` plus `offset` is the value in `units` (1 and 0 for float data).
    pub gain: f64,
    /// See `gain`.
    pub offset: f64,
}

/// Stored samples of one channel, all sweeps one after the other, as the file holds them.
#[derive(Clone, Debug)]
pub enum Samples {
    /// 16-bit integers, scaled by the channel's gain and offset.
    I16(Vec<i16>),
    /// 32-bit floats, already in the channel's units.
    F32(Vec<f32>),
    /// 64-bit floats, already in the channel's units (NWB: `data * conversion + offset`,
    /// applied at reading because each sweep's series has its own conversion).
    F64(Vec<f64>),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Samples::I16(v) => v.len(),
            Samples::F32(v) => v.len(),
            Samples::F64(v) => v.len(),
        }
    }
}

/// The stored samples of one sweep of one channel, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum RawSweep<'a> {
    /// 16-bit integers.
    I16(&'a [i16]),
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit floats.
    F64(&'a [f64]),
}

/// A comment placed in the file during the recording.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tag {
    /// Time from the start of the recording, in seconds.
    pub time_s: f64,
    /// The comment.
    pub comment: String,
}

/// Which channel: by its name in the file or by its index (from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelSelector {
    /// By index, from 0.
    Index(usize),
    /// By name, as written in the file.
    Name(String),
}

impl std::fmt::Display for ChannelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelSelector::Index(i) => write!(f, "{i}"),
            ChannelSelector::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// A recording: sampled channels cut into sweeps, and the command outputs with their protocol.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The file it was read from.
    pub path: PathBuf,
    /// Format and version (`ABF 2.6.0.0`, `NWB 2.9.0`).
    pub format: String,
    /// Samples per second of each channel.
    pub sample_rate_hz: f64,
    /// The recorded channels, in file order.
    pub channels: Vec<Channel>,
    /// The command outputs (DACs) with their epoch tables.
    pub commands: Vec<Command>,
    /// Comments placed during the recording.
    pub tags: Vec<Tag>,
    /// (first sample, length) of each sweep within a channel's samples.
    pub(crate) sweeps: Vec<(usize, usize)>,
    pub(crate) samples: Vec<Samples>,
}

impl Recording {
    /// Number of sweeps (a gap-free recording has one).
    pub fn sweep_count(&self) -> usize {
        self.sweeps.len()
    }

    /// Samples per channel in sweep `sweep`.
    pub fn sweep_len(&self, sweep: usize) -> Result<usize> {
        Ok(self.span(sweep)?.1)
    }

    /// Duration of the whole recording in seconds (all sweeps, without the gaps between them).
    pub fn duration_s(&self) -> f64 {
        self.sweeps.iter().map(|s| s.1).sum::<usize>() as f64 / self.sample_rate_hz
    }

    /// The index of a channel chosen by name or index; an error lists the channels there are.
    pub fn channel_index(&self, which: &ChannelSelector) -> Result<usize> {
        let found = match which {
            ChannelSelector::Index(i) => (*i < self.channels.len()).then_some(*i),
            ChannelSelector::Name(n) => self.channels.iter().position(|c| &c.name == n),
        };
        found.ok_or_else(|| Error::NoSuchChannel {
            path: self.path.clone(),
            requested: which.to_string(),
            available: self.channel_list(),
        })
    }

    /// The channels as `0 "IN 0" (mV), 1 "IN 1" (pA)`.
    pub fn channel_list(&self) -> String {
        let items: Vec<String> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i} \"{}\" ({})", c.name, c.units))
            .collect();
        format!("{} channel(s): {}", items.len(), items.join(", "))
    }

    /// The stored samples of one sweep of one channel.
    pub fn raw_sweep(&self, channel: usize, sweep: usize) -> Result<RawSweep<'_>> {
        let (start, len) = self.span(sweep)?;
        let samples = self.samples_of(channel)?;
        Ok(match samples {
            Samples::I16(v) => RawSweep::I16(&v[start..start + len]),
            Samples::F32(v) => RawSweep::F32(&v[start..start + len]),
            Samples::F64(v) => RawSweep::F64(&v[start..start + len]),
        })
    }

    /// One sweep of one channel in the channel's units (stored value times gain plus offset,
    /// computed in f64).
    pub fn sweep(&self, channel: usize, sweep: usize) -> Result<Vec<f64>> {
        let ch = &self.channels[self.checked_channel(channel)?];
        Ok(match self.raw_sweep(channel, sweep)? {
            RawSweep::I16(v) => v
                .iter()
                .map(|&x| f64::from(x) * ch.gain + ch.offset)
                .collect(),
            RawSweep::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            RawSweep::F64(v) => v.to_vec(),
        })
    }

    fn span(&self, sweep: usize) -> Result<(usize, usize)> {
        self.sweeps
            .get(sweep)
            .copied()
            .ok_or_else(|| Error::NoSuchSweep {
                path: self.path.clone(),
                requested: sweep,
                count: self.sweeps.len(),
            })
    }

    fn checked_channel(&self, channel: usize) -> Result<usize> {
        self.channel_index(&ChannelSelector::Index(channel))
    }

    fn samples_of(&self, channel: usize) -> Result<&Samples> {
        Ok(&self.samples[self.checked_channel(channel)?])
    }

    /// Checks the invariants the accessors rely on (every span inside every channel's samples).
    pub(crate) fn check(self) -> Result<Self> {
        let need = self.sweeps.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        let short = self.samples.iter().any(|s| s.len() < need);
        if short || self.samples.len() != self.channels.len() {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                message: "the sweeps run past the stored samples".into(),
            });
        }
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                message: format!("sampling rate {} Hz", self.sample_rate_hz),
            });
        }
        Ok(self)
    }
}
