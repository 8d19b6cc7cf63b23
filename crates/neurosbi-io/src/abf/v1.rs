//! ABF 1.x: one fixed header with every field at a known byte offset.
//!
//! Offsets are those of Axon's ABF 1.8 header description (as listed in pyabf's
//! `abf1/headerV1.py` and neo's `headerDescriptionV1`). Fields past byte 2048 (the extended
//! header: epoch table, telegraphs) exist from version 1.6 on.

use super::{Header, Scaling, clean_holding};
use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::protocol::{Command, EpochKind, EpochRow};
use crate::recording::Channel;

const BLOCK: u64 = 512;
const MAX_ADC: usize = 16;
const DACS: usize = 4;
/// Epoch table rows per DAC; ABF1 has tables for DACs 0 and 1 only.
const EPOCHS: usize = 10;

/// (first byte, length) of the samples as the fixed header fields give them, if they can be
/// read (the large-file reader reads all else first; the header proper is checked after).
pub(super) fn data_region(b: &Bytes) -> Option<(u64, u64)> {
    let item: u64 = if b.i16(100, "").ok()? == 1 { 4 } else { 2 };
    let ignored = u64::try_from(b.i16(14, "").ok()?).unwrap_or(0);
    let block = u64::try_from(b.i32(40, "").ok()?).ok()?;
    let points = u64::try_from(b.i32(10, "").ok()?).ok()?;
    Some((block * BLOCK + ignored * item, points.checked_mul(item)?))
}

pub(super) fn header(b: &Bytes) -> Result<Header> {
    let version = b.f32(4, "the version number")?;
    if !(1.0..2.0).contains(&version) {
        return Err(Error::UnsupportedVersion {
            path: b.path.to_path_buf(),
            version: format!("{version}"),
        });
    }
    let extended = version >= 1.6;
    let float_data = match b.i16(100, "the data format")? {
        0 => false,
        1 => true,
        other => return Err(b.corrupt(format!("data format {other} (0 int16, 1 float32)"))),
    };
    let n_ch = b.i16(120, "the channel count")?;
    if !(1..=MAX_ADC as i16).contains(&n_ch) {
        return Err(b.corrupt(format!("{n_ch} channels (ABF1 has 1 to 16)")));
    }
    let n_ch = n_ch as usize;
    let interval = f64::from(b.f32(122, "the sample interval")?);
    if !(interval.is_finite() && interval > 0.0) {
        return Err(b.corrupt(format!("sample interval {interval} us")));
    }
    let item = if float_data { 4 } else { 2 };
    let ignored = i64::from(b.i16(14, "the ignored points")?).max(0) as u64;
    let data_block = nonneg(b, b.i32(40, "the data pointer")?, "data pointer")?;
    let points = nonneg(b, b.i32(10, "the sample count")?, "sample count")?;
    Ok(Header {
        version: version_string(version),
        float_data,
        data_offset: data_block * BLOCK + ignored * item,
        data_points: points,
        sample_interval_us: interval * n_ch as f64,
        operation_mode: b.i16(8, "the operation mode")?,
        episodes: i64::from(b.i32(16, "the sweep count")?),
        // pyabf cuts ABF1 sweeps in equal parts, whatever the synch array says.
        synch: Vec::new(),
        channels: channels(b, n_ch, float_data, extended)?,
        commands: commands(b, extended)?,
        tags: tags(b)?,
        tag_tick_s: interval / 1e6 / n_ch as f64,
    })
}

/// `1.83` as `1.8.3.0`, the way pyabf writes ABF1 versions.
fn version_string(version: f32) -> String {
    // Truncated, not rounded, as pyabf does: f32 1.3 is 1.2999999 and reads `1.2.9.9`.
    let digits = format!("{:04}", (f64::from(version) * 1000.0) as i64);
    let parts: Vec<String> = digits.chars().map(String::from).collect();
    parts.join(".")
}

fn nonneg(b: &Bytes, value: i32, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| b.corrupt(format!("negative {what} {value}")))
}

fn channels(b: &Bytes, n_ch: usize, float_data: bool, extended: bool) -> Result<Vec<Channel>> {
    let mut seq = Vec::with_capacity(n_ch);
    for i in 0..n_ch {
        seq.push(b.i16(410 + 2 * i as u64, "the sampling sequence")?);
    }
    // Some re-saved files repeat one entry; then the channels are in order (as neo does).
    let mut sorted = seq.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let valid = sorted.len() == n_ch && seq.iter().all(|&s| (0..MAX_ADC as i16).contains(&s));
    let adc_range = f64::from(b.f32(244, "the ADC range")?);
    let resolution = f64::from(b.i32(252, "the ADC resolution")?);
    (0..n_ch)
        .map(|i| {
            let p = if valid { seq[i] as u64 } else { i as u64 };
            let f = |base: u64, what: &str| -> Result<f64> {
                Ok(f64::from(b.f32(base + 4 * p, what)?))
            };
            let (telegraph_enabled, telegraph_gain) = if extended {
                let on = b.i16(4512 + 2 * p, "the telegraph flags")? == 1;
                (on, f(4576, "the telegraph gains")?)
            } else {
                (false, 1.0)
            };
            let scaling = Scaling {
                adc_range,
                resolution,
                instrument_scale: f(922, "the instrument scale factors")?,
                signal_gain: f(1050, "the signal gains")?,
                programmable_gain: f(730, "the programmable gains")?,
                telegraph_enabled,
                telegraph_gain,
                instrument_offset: f(986, "the instrument offsets")?,
                signal_offset: f(1114, "the signal offsets")?,
            };
            let (gain, offset) = scaling.gain_offset(float_data);
            Ok(Channel {
                name: b.text(442 + 10 * p, 10, "the channel names")?,
                units: b.text(602 + 8 * p, 8, "the channel units")?,
                gain,
                offset,
            })
        })
        .collect()
}

fn commands(b: &Bytes, extended: bool) -> Result<Vec<Command>> {
    (0..DACS as u64)
        .map(|d| {
            let table = if extended && d < 2 {
                epoch_table(b, d)?
            } else {
                None
            };
            let return_to_holding =
                !extended || d >= 2 || b.i16(2304 + 2 * d, "the inter-sweep levels")? == 0;
            Ok(Command {
                name: b.text(1306 + 10 * d, 10, "the command names")?,
                units: b.text(1346 + 8 * d, 8, "the command units")?,
                holding: clean_holding(b.f32(1394 + 4 * d, "the holding levels")?),
                epochs: table,
                return_to_holding,
            })
        })
        .collect()
}

/// The epoch table of DAC `d` (0 or 1) when its waveform comes from the epochs.
fn epoch_table(b: &Bytes, d: u64) -> Result<Option<Vec<EpochRow>>> {
    let enabled = b.i16(2296 + 2 * d, "the waveform flags")? != 0;
    let from_epochs = b.i16(2300 + 2 * d, "the waveform sources")? == 1;
    if !(enabled && from_epochs) {
        return Ok(None);
    }
    let mut rows = Vec::new();
    for e in 0..EPOCHS as u64 {
        let k = d * EPOCHS as u64 + e;
        let Some(kind) = EpochKind::from_code(b.i16(2308 + 2 * k, "the epoch types")?) else {
            continue;
        };
        rows.push(EpochRow {
            kind,
            first_level: f64::from(b.f32(2348 + 4 * k, "the epoch levels")?),
            delta_level: f64::from(b.f32(2428 + 4 * k, "the epoch level steps")?),
            first_duration: i64::from(b.i32(2508 + 4 * k, "the epoch durations")?),
            delta_duration: i64::from(b.i32(2588 + 4 * k, "the epoch duration steps")?),
            pulse_period: 0,
            pulse_width: 0,
        });
    }
    Ok(Some(rows))
}

fn tags(b: &Bytes) -> Result<Vec<(i32, String)>> {
    let block = nonneg(b, b.i32(44, "the tag pointer")?, "tag pointer")?;
    let count = nonneg(b, b.i32(48, "the tag count")?, "tag count")?;
    // One bounds check for the whole table before allocating for it.
    b.slice(block * BLOCK, count * 64, "the tags")?;
    (0..count)
        .map(|i| {
            let at = block * BLOCK + 64 * i;
            Ok((b.i32(at, "a tag")?, b.text(at + 4, 56, "a tag comment")?))
        })
        .collect()
}
