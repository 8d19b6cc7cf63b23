//! ABF 2.x: a short header, then a table of sections (block, entry size, entry count), each
//! a list of fixed-size records (field offsets as in pyabf's `abf2/*Section.py`).

use super::{Header, Scaling, clean_holding};
use crate::bytes::{Bytes, latin1};
use crate::error::{Error, Result};
use crate::protocol::{Command, EpochKind, EpochRow};
use crate::recording::Channel;

const BLOCK: u64 = 512;

/// Where a section's entry sits in the section table.
#[derive(Clone, Copy)]
enum Section {
    Protocol = 76,
    Adc = 92,
    Dac = 108,
    EpochPerDac = 156,
    Strings = 220,
    Data = 236,
    Tag = 252,
    Synch = 316,
}

/// A section: first byte, size of one entry, number of entries.
#[derive(Clone, Copy)]
struct Span {
    start: u64,
    size: u64,
    count: u64,
}

impl Span {
    fn entry(&self, i: u64) -> u64 {
        self.start + i * self.size
    }
}

fn section(b: &Bytes, s: Section, name: &str) -> Result<Span> {
    let at = s as u64;
    let block = u64::from(b.u32(at, name)?);
    let size = u64::from(b.u32(at + 4, name)?);
    let count = b.i64(at + 8, name)?;
    let count = u64::try_from(count).map_err(|_| b.corrupt(format!("{name}: {count} entries")))?;
    if count > b.data.len() as u64 {
        return Err(b.corrupt(format!(
            "{name}: {count} entries in a file of {} bytes",
            b.data.len()
        )));
    }
    let span = Span {
        start: block * BLOCK,
        size,
        count,
    };
    // The data section is checked against the sweeps later; the others must fit now, so no
    // loop below runs over entries the file does not hold.
    if !matches!(s, Section::Data) {
        let len = size
            .checked_mul(count)
            .ok_or_else(|| b.corrupt(format!("{name}: {count} entries of {size} bytes")))?;
        b.slice(span.start, len, name)?;
    }
    Ok(span)
}

/// (first byte, length) of the samples as the section table gives them, if it can be read
/// (the large-file reader reads all else first; the header proper is checked after).
pub(super) fn data_region(b: &Bytes) -> Option<(u64, u64)> {
    let data = section(b, Section::Data, "the data section").ok()?;
    Some((data.start, data.size.checked_mul(data.count)?))
}

pub(super) fn header(b: &Bytes) -> Result<Header> {
    let v = b.slice(4, 4, "the version number")?;
    if v[3] != 2 {
        return Err(Error::UnsupportedVersion {
            path: b.path.to_path_buf(),
            version: format!("{}.{}.{}.{}", v[3], v[2], v[1], v[0]),
        });
    }
    let float_data = match b.u16(30, "the data format")? {
        0 => false,
        1 => true,
        other => return Err(b.corrupt(format!("data format {other} (0 int16, 1 float32)"))),
    };
    let protocol = section(b, Section::Protocol, "the protocol section")?;
    if protocol.count == 0 {
        return Err(b.corrupt("no protocol section"));
    }
    let p = protocol.start;
    let interval = f64::from(b.f32(p + 2, "the sample interval")?);
    if !(interval.is_finite() && interval > 0.0) {
        return Err(b.corrupt(format!("sample interval {interval} us")));
    }
    let strings = strings(b)?;
    let data = section(b, Section::Data, "the data section")?;
    let item = if float_data { 4 } else { 2 };
    if data.count > 0 && data.size != item {
        return Err(b.corrupt(format!("{}-byte samples in the data section", data.size)));
    }
    let synch_unit = f64::from(b.f32(p + 14, "the synch time unit")?);
    let n_ch = section(b, Section::Adc, "the ADC section")?.count as f64;
    Ok(Header {
        version: format!("{}.{}.{}.{}", v[3], v[2], v[1], v[0]),
        float_data,
        data_offset: data.start,
        data_points: data.count,
        sample_interval_us: interval,
        operation_mode: b.i16(p, "the operation mode")?,
        episodes: i64::from(b.u32(12, "the sweep count")?),
        synch: synch(b)?,
        channels: channels(b, p, &strings, float_data)?,
        commands: commands(b, &strings)?,
        tags: tags(b)?,
        tag_tick_s: if synch_unit == 0.0 {
            interval / 1e6 / n_ch.max(1.0)
        } else {
            synch_unit / 1e6
        },
    })
}

/// The indexed strings (names, units, paths): after the last double NUL of the first
/// strings entry, NUL-separated, index 0 empty (pyabf's `StringsSection`).
fn strings(b: &Bytes) -> Result<Vec<String>> {
    let s = section(b, Section::Strings, "the strings section")?;
    if s.count == 0 {
        return Ok(Vec::new());
    }
    let raw = b.slice(s.start, s.size, "the strings section")?;
    let from = raw.windows(2).rposition(|w| w == [0, 0]).unwrap_or(0);
    Ok(raw[from..].split(|&c| c == 0).skip(1).map(latin1).collect())
}

fn text(strings: &[String], index: i32) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|i| strings.get(i))
        .cloned()
        .unwrap_or_default()
}

fn channels(b: &Bytes, p: u64, strings: &[String], float_data: bool) -> Result<Vec<Channel>> {
    let adc = section(b, Section::Adc, "the ADC section")?;
    let adc_range = f64::from(b.f32(p + 110, "the ADC range")?);
    let resolution = f64::from(b.i32(p + 118, "the ADC resolution")?);
    (0..adc.count)
        .map(|i| {
            let at = adc.entry(i);
            let f = |off: u64, what: &str| -> Result<f64> { Ok(f64::from(b.f32(at + off, what)?)) };
            let scaling = Scaling {
                adc_range,
                resolution,
                instrument_scale: f(40, "an instrument scale factor")?,
                signal_gain: f(48, "a signal gain")?,
                programmable_gain: f(28, "a programmable gain")?,
                telegraph_enabled: b.i16(at + 2, "a telegraph flag")? == 1,
                telegraph_gain: f(6, "a telegraph gain")?,
                instrument_offset: f(44, "an instrument offset")?,
                signal_offset: f(52, "a signal offset")?,
            };
            let (gain, offset) = scaling.gain_offset(float_data);
            Ok(Channel {
                name: text(strings, b.i32(at + 74, "a channel name")?),
                units: text(strings, b.i32(at + 78, "a channel unit")?),
                gain,
                offset,
            })
        })
        .collect()
}

fn commands(b: &Bytes, strings: &[String]) -> Result<Vec<Command>> {
    let dac = section(b, Section::Dac, "the DAC section")?;
    let epochs = section(b, Section::EpochPerDac, "the epoch section")?;
    (0..dac.count)
        .map(|d| {
            let at = dac.entry(d);
            let enabled = b.i16(at + 40, "a waveform flag")? != 0;
            let from_epochs = b.i16(at + 42, "a waveform source")? == 1;
            let table = if enabled && from_epochs {
                Some(epoch_rows(b, epochs, d)?)
            } else {
                None
            };
            Ok(Command {
                name: text(strings, b.i32(at + 24, "a command name")?),
                units: text(strings, b.i32(at + 28, "a command unit")?),
                holding: clean_holding(b.f32(at + 12, "a holding level")?),
                epochs: table,
                return_to_holding: b.i16(at + 44, "an inter-sweep level")? == 0,
            })
        })
        .collect()
}

/// The rows of the epoch table that belong to DAC `d`, in file order.
fn epoch_rows(b: &Bytes, epochs: Span, d: u64) -> Result<Vec<EpochRow>> {
    let mut rows = Vec::new();
    for i in 0..epochs.count {
        let at = epochs.entry(i);
        if i64::from(b.i16(at + 2, "an epoch's DAC")?) != d as i64 {
            continue;
        }
        let Some(kind) = EpochKind::from_code(b.i16(at + 4, "an epoch type")?) else {
            continue;
        };
        rows.push(EpochRow {
            kind,
            first_level: f64::from(b.f32(at + 6, "an epoch level")?),
            delta_level: f64::from(b.f32(at + 10, "an epoch level step")?),
            first_duration: i64::from(b.i32(at + 14, "an epoch duration")?),
            delta_duration: i64::from(b.i32(at + 18, "an epoch duration step")?),
            pulse_period: i64::from(b.i32(at + 22, "an epoch pulse period")?),
            pulse_width: i64::from(b.i32(at + 26, "an epoch pulse width")?),
        });
    }
    Ok(rows)
}

fn tags(b: &Bytes) -> Result<Vec<(i32, String)>> {
    let t = section(b, Section::Tag, "the tag section")?;
    (0..t.count)
        .map(|i| {
            let at = t.entry(i);
            Ok((
                b.i32(at, "a tag time")?,
                b.text(at + 4, 56, "a tag comment")?,
            ))
        })
        .collect()
}

fn synch(b: &Bytes) -> Result<Vec<(i32, i32)>> {
    let s = section(b, Section::Synch, "the synch array")?;
    (0..s.count)
        .map(|i| {
            let at = s.entry(i);
            Ok((
                b.i32(at, "a sweep start")?,
                b.i32(at + 4, "a sweep length")?,
            ))
        })
        .collect()
}
