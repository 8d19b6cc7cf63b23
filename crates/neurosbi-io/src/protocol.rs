//! The stimulus protocol: command outputs (DACs) and their epoch tables.
//!
//! pClamp's waveform editor describes each sweep's command as a table of epochs, each with a
//! first level and duration and a per-sweep increment of both ("delta"). Sweep `k` of epoch `e`
//! has level `first_level + k * delta_level` and duration `first_duration + k * delta_duration`
//! samples. Before the first epoch the output holds for 1/64 of the sweep (pClamp's fixed
//! pre-sweep holding time, as in pyabf's `waveform.py`); after the last epoch it returns to the
//! holding level, or keeps the last level when the file says so.

use crate::error::{Error, Result};
use crate::recording::Recording;

/// The shape of one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochKind {
    /// Constant at the epoch's level.
    Step,
    /// Straight line from the previous level to the epoch's level.
    Ramp,
    /// A train of rectangular pulses to the epoch's level from the previous level.
    Pulse,
    /// Triangle train (read, not synthesised).
    Triangle,
    /// Cosine train (read, not synthesised).
    Cosine,
    /// Biphasic train (read, not synthesised).
    Biphasic,
    /// A type number this reader does not know.
    Unknown(i16),
}

impl EpochKind {
    /// From the file's epoch type number; `None` for 0 (epoch switched off).
    pub(crate) fn from_code(code: i16) -> Option<EpochKind> {
        Some(match code {
            0 => return None,
            1 => EpochKind::Step,
            2 => EpochKind::Ramp,
            3 => EpochKind::Pulse,
            4 => EpochKind::Triangle,
            5 => EpochKind::Cosine,
            7 => EpochKind::Biphasic,
            other => EpochKind::Unknown(other),
        })
    }

    /// Lower-case name (`step`, `ramp`, ...).
    pub fn name(&self) -> String {
        match self {
            EpochKind::Unknown(c) => format!("unknown({c})"),
            k => format!("{k:?}").to_lowercase(),
        }
    }
}

/// One column of the waveform editor's epoch table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochRow {
    /// Shape.
    pub kind: EpochKind,
    /// Level in sweep 0, in the command's units.
    pub first_level: f64,
    /// Level added per sweep.
    pub delta_level: f64,
    /// Duration in sweep 0, in samples.
    pub first_duration: i64,
    /// Duration added per sweep, in samples.
    pub delta_duration: i64,
    /// Pulse period in samples (pulse trains).
    pub pulse_period: i64,
    /// Pulse width in samples (pulse trains).
    pub pulse_width: i64,
}

/// One epoch as it happened in one sweep: samples `start..stop` at `level`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SweepEpoch {
    /// First sample.
    pub start: usize,
    /// One past the last sample.
    pub stop: usize,
    /// Level reached, in the command's units.
    pub level: f64,
    /// Shape.
    pub kind: EpochKind,
}

/// A command output (DAC).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Command {
    /// Name as written in the file (`Cmd 0`).
    pub name: String,
    /// Units (`pA` in current clamp, `mV` in voltage clamp).
    pub units: String,
    /// Holding level between epochs, in `units`.
    pub holding: f64,
    /// The epoch table when the epochs drive this output, else `None`.
    pub epochs: Option<Vec<EpochRow>>,
    /// After the last epoch: back to `holding` (true) or stay at the last level (false).
    pub return_to_holding: bool,
}

impl Recording {
    /// The epochs of command `dac` in `sweep`, with the holding stretches before and after.
    pub fn sweep_epochs(&self, dac: usize, sweep: usize) -> Result<Vec<SweepEpoch>> {
        let sweep_len = self.sweep_len(sweep)?;
        let (command, rows) = self.epoch_table(dac)?;
        let pre = sweep_len / 64;
        let mut last = command.holding;
        let mut out = Vec::new();
        for k in 0..=sweep {
            out.clear();
            out.push(step(0, pre, last));
            let mut pos = pre;
            let mut level = command.holding;
            for row in rows {
                let duration = row.first_duration + row.delta_duration * k as i64;
                let stop = pos.saturating_add(usize::try_from(duration).unwrap_or(0));
                level = row.first_level + row.delta_level * k as f64;
                out.push(SweepEpoch {
                    start: pos,
                    stop,
                    level,
                    kind: row.kind,
                });
                pos = stop;
            }
            last = if command.return_to_holding {
                command.holding
            } else {
                level
            };
            out.push(step(pos, sweep_len.max(pos), last));
        }
        Ok(out)
    }

    /// The command waveform of `dac` in `sweep`, one value per sample, in the command's units.
    /// Step, ramp and pulse epochs are synthesised; other shapes give an error naming them.
    pub fn command_waveform(&self, dac: usize, sweep: usize) -> Result<Vec<f64>> {
        let epochs = self.sweep_epochs(dac, sweep)?;
        let rows = self.epoch_table(dac)?.1;
        let n = self.sweep_len(sweep)?;
        let mut wave = vec![f64::NAN; n];
        for (i, e) in epochs.iter().enumerate() {
            let before = if i == 0 { e.level } else { epochs[i - 1].level };
            let (start, stop) = (e.start.min(n), e.stop.min(n));
            // epochs[0] is the holding stretch before the table, so epoch i is row i - 1.
            let row = i.checked_sub(1).and_then(|j| rows.get(j));
            let chunk = &mut wave[start..stop];
            match e.kind {
                EpochKind::Step => chunk.fill(e.level),
                EpochKind::Ramp => ramp(chunk, before, e.level),
                EpochKind::Pulse => {
                    let (period, width) = row.map_or((0, 0), |r| (r.pulse_period, r.pulse_width));
                    pulses(chunk, before, e.level, period, width);
                }
                other => {
                    return Err(self.no_stimulus(format!(
                        "command {dac} uses a {} epoch, which this reader does not synthesise",
                        other.name()
                    )));
                }
            }
        }
        Ok(wave)
    }

    /// The command and its epoch table, or an error saying there is none.
    fn epoch_table(&self, dac: usize) -> Result<(&Command, &[EpochRow])> {
        let command = self.commands.get(dac).ok_or_else(|| {
            self.no_stimulus(format!(
                "no command output {dac}; the file has {} ({})",
                self.commands.len(),
                self.command_list()
            ))
        })?;
        let rows = command.epochs.as_deref().ok_or_else(|| {
            self.no_stimulus(format!(
                "command output {dac} (\"{}\") is not driven by an epoch table",
                command.name
            ))
        })?;
        Ok((command, rows))
    }

    /// The command outputs as `0 "Cmd 0" (pA, epochs), 1 "Cmd 1" (mV)`.
    pub fn command_list(&self) -> String {
        let items: Vec<String> = self
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let epochs = if c.epochs.is_some() { ", epochs" } else { "" };
                format!("{i} \"{}\" ({}{epochs})", c.name, c.units)
            })
            .collect();
        items.join(", ")
    }

    fn no_stimulus(&self, message: String) -> Error {
        Error::NoStimulus {
            path: self.path.clone(),
            message,
        }
    }
}

fn step(start: usize, stop: usize, level: f64) -> SweepEpoch {
    SweepEpoch {
        start,
        stop,
        level,
        kind: EpochKind::Step,
    }
}

/// From `from` to `to`, both ends included (numpy's `linspace`, as pyabf draws a ramp).
fn ramp(chunk: &mut [f64], from: f64, to: f64) {
    let n = chunk.len();
    for (k, v) in chunk.iter_mut().enumerate() {
        *v = if n > 1 {
            from + (to - from) * k as f64 / (n - 1) as f64
        } else {
            from
        };
    }
}

/// `from`, with pulses of `width` samples at `to` every `period` samples.
fn pulses(chunk: &mut [f64], from: f64, to: f64, period: i64, width: i64) {
    chunk.fill(from);
    let (Ok(period), Ok(width)) = (usize::try_from(period), usize::try_from(width)) else {
        return;
    };
    if period == 0 {
        return;
    }
    let n = chunk.len();
    for p in 0..n / period {
        let a = p * period;
        chunk[a..(a + width).min(n)].fill(to);
    }
}
