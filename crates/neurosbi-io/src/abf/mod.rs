//! Axon Binary Format (ABF 1.x from pCLAMP 6-9, ABF 2.x from pCLAMP 10-11).
//!
//! Layout and scaling follow the format's public description as implemented by pyabf
//! (`abf1/headerV1.py`, `abf2/*Section.py`, `abf.py`) and neo (`rawio/axonrawio.py`):
//! samples are stored interleaved by channel (`t0c0 t0c1 .. t1c0 ..`), sweeps one after the
//! other; an int16 sample `x` of a channel is worth `x * gain + offset` in its units with
//! `gain = ADCRange / InstrumentScaleFactor / SignalGain / ADCProgrammableGain / ADCResolution`
//! (divided also by TelegraphAdditGain when the telegraph is enabled) and
//! `offset = InstrumentOffset - SignalOffset`; float32 samples are stored in their units.

mod v1;
mod v2;

use std::path::Path;

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::protocol::Command;
use crate::recording::{Channel, Recording, Samples, Tag};

/// What both header versions tell, in one shape.
pub(crate) struct Header {
    pub version: String,
    pub float_data: bool,
    /// First byte of the samples.
    pub data_offset: u64,
    /// Stored samples, all channels together.
    pub data_points: u64,
    /// Microseconds between two samples of one channel.
    pub sample_interval_us: f64,
    /// 1 event-driven variable length, 2/5 fixed-length episodes, 3 gap-free.
    pub operation_mode: i16,
    pub episodes: i64,
    /// (start, length) of each episode; length in samples of all channels (ABF2 only).
    pub synch: Vec<(i32, i32)>,
    pub channels: Vec<Channel>,
    pub commands: Vec<Command>,
    /// (time in ticks, comment).
    pub tags: Vec<(i32, String)>,
    /// Seconds per tag tick.
    pub tag_tick_s: f64,
}

/// Reads an ABF file (version 1 or 2) into memory. Only regular files are read, so a
/// directory, FIFO or device (`/dev/zero`) is an error rather than a hang.
pub fn read_abf(path: impl AsRef<Path>) -> Result<Recording> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() < STREAM_ABOVE {
        let data = std::fs::read(path).map_err(io)?;
        return parse_abf(path, &data);
    }
    read_large(path, meta.len())
}

/// Files at least this large are read without holding their samples twice (see
/// [`read_large`]).
const STREAM_ABOVE: u64 = 8 << 20;

/// Reads a large ABF file so that its samples are held once: everything but the data section
/// is read into a buffer of the file's size (zero-filled lazily by the allocator, so the
/// untouched pages of the data section take no memory), the header is parsed from it as from a
/// file in memory, and the samples are read from the file in blocks straight into one vector
/// per channel. Peak memory is then about the samples plus the header sections, instead of
/// the whole file plus the samples.
fn read_large(path: &Path, len: u64) -> Result<Recording> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = usize::try_from(len).map_err(|_| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "file too large"),
    })?;
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; size];
    let head = size.min(64 << 10);
    f.read_exact(&mut buf[..head]).map_err(io)?;
    let region = {
        let b = Bytes { path, data: &buf };
        match buf.get(..4) {
            Some(b"ABF ") => v1::data_region(&b),
            Some(b"ABF2") => v2::data_region(&b),
            _ => None,
        }
    };
    // The data section as the fixed header fields place it, within the file; anything odd is
    // left to the in-memory reader, which reads all and names what is wrong.
    let (start, end) = match region {
        Some((start, bytes)) if start.saturating_add(bytes) <= len => {
            (start as usize, (start + bytes) as usize)
        }
        _ => {
            f.read_exact(&mut buf[head..]).map_err(io)?;
            return parse_abf(path, &buf);
        }
    };
    // The first block read above may hold the first samples: read what lies between it and
    // the samples, and what follows them.
    if start > head {
        f.read_exact(&mut buf[head..start]).map_err(io)?;
    }
    let after = end.max(head);
    f.seek(SeekFrom::Start(after as u64)).map_err(io)?;
    f.read_exact(&mut buf[after..]).map_err(io)?;
    let b = Bytes { path, data: &buf };
    let header = match &buf[..4] {
        b"ABF " => v1::header(&b)?,
        _ => v2::header(&b)?,
    };
    let n_ch = header.channels.len().max(1);
    let float_data = header.float_data;
    let frame = n_ch * if float_data { 4 } else { 2 };
    let mut reader = |offset: u64, bytes: u64| -> Result<Vec<Samples>> {
        let per_channel = usize::try_from(bytes).unwrap_or(0) / frame;
        let mut chans: Vec<Samples> = (0..n_ch)
            .map(|_| {
                if float_data {
                    Samples::F32(Vec::with_capacity(per_channel))
                } else {
                    Samples::I16(Vec::with_capacity(per_channel))
                }
            })
            .collect();
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let block = frame * ((1 << 20) / frame).max(1);
        let mut chunk = vec![0u8; block];
        let mut left = per_channel * frame;
        while left > 0 {
            let n = left.min(block);
            f.read_exact(&mut chunk[..n]).map_err(io)?;
            deinterleave_into(&chunk[..n], &mut chans);
            left -= n;
        }
        Ok(chans)
    };
    build(&b, header, Some(&mut reader))
}

/// Reads an ABF file from its bytes; `path` names it in errors.
pub fn parse_abf(path: &Path, data: &[u8]) -> Result<Recording> {
    let b = Bytes { path, data };
    let magic = data.get(..4).unwrap_or(data);
    let header = match magic {
        b"ABF " => v1::header(&b)?,
        b"ABF2" => v2::header(&b)?,
        _ => {
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
    };
    build(&b, header, None)
}

/// Reads `bytes` bytes of samples at `offset` of the file into one vector per channel.
type SampleReader<'a> = dyn FnMut(u64, u64) -> Result<Vec<Samples>> + 'a;

/// The recording of a parsed header; the samples come from `b` or, when given, from `read`
/// (a large file whose samples were not read into `b`).
fn build(b: &Bytes, mut h: Header, read: Option<&mut SampleReader<'_>>) -> Result<Recording> {
    if h.operation_mode == 1 {
        // Event-driven sweeps start on a trigger and differ in length: the epoch table
        // (laid out on a fixed sweep) does not describe them.
        h.commands.iter_mut().for_each(|c| c.epochs = None);
    }
    let n_ch = h.channels.len();
    if n_ch == 0 {
        return Err(b.corrupt("no recorded channels"));
    }
    let spans = sweep_spans(b, &h, n_ch)?;
    let per_channel = spans.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
    let item = if h.float_data { 4 } else { 2 };
    let points = (per_channel as u64)
        .checked_mul(n_ch as u64)
        .ok_or_else(|| b.corrupt("sample count overflows"))?;
    let raw = b.slice(h.data_offset, points * item, "the samples")?;
    let samples = match read {
        Some(read) => read(h.data_offset, points * item)?,
        None => deinterleave(raw, n_ch, h.float_data),
    };
    let rate = 1.0 / (h.sample_interval_us * 1e-6);
    let tags = h
        .tags
        .iter()
        .map(|(t, c)| Tag {
            time_s: f64::from(*t) * h.tag_tick_s,
            comment: c.clone(),
        })
        .collect();
    for (i, c) in h.channels.iter().enumerate() {
        if !(c.gain.is_finite() && c.offset.is_finite()) {
            return Err(b.corrupt(format!(
                "channel {i} (\"{}\") has scaling gain {} and offset {}",
                c.name, c.gain, c.offset
            )));
        }
    }
    Recording {
        path: b.path.to_path_buf(),
        format: format!("ABF {}", h.version),
        sample_rate_hz: rate,
        channels: h.channels,
        commands: h.commands,
        tags,
        sweeps: spans,
        samples,
    }
    .check()
}

/// (first sample, length) of each sweep, per channel, as pyabf cuts them: one sweep for
/// gap-free files, the synch array's lengths when sweeps differ in length, else equal parts.
fn sweep_spans(b: &Bytes, h: &Header, n_ch: usize) -> Result<Vec<(usize, usize)>> {
    let mut points = h.data_points;
    let synch_total: i64 = h.synch.iter().map(|s| i64::from(s.1)).sum();
    if synch_total > 0 && synch_total as u64 != points {
        points = synch_total as u64;
    }
    // The samples must be in the file before anything is sized by them.
    let item = if h.float_data { 4 } else { 2 };
    let bytes = points
        .checked_mul(item)
        .ok_or_else(|| b.corrupt(format!("{points} samples")))?;
    b.slice(h.data_offset, bytes, "the samples")?;
    let count = if h.operation_mode == 3 {
        1
    } else {
        h.episodes.max(1)
    };
    let count = usize::try_from(count).map_err(|_| b.corrupt("sweep count"))?;
    if count as u64 > points.max(1) {
        return Err(b.corrupt(format!("{count} sweeps in {points} samples")));
    }
    let lengths: Vec<i32> = h.synch.iter().map(|s| s.1).collect();
    let variable = count > 1 && lengths.iter().any(|&l| l != lengths[0]);
    if variable {
        if lengths.len() < count || lengths.iter().any(|&l| l < 0) {
            return Err(b.corrupt("the synch array does not describe every sweep"));
        }
        let mut start = 0;
        return Ok(lengths[..count]
            .iter()
            .map(|&l| {
                let len = l as usize / n_ch;
                start += len;
                (start - len, len)
            })
            .collect());
    }
    let len = (points / count as u64 / n_ch as u64) as usize;
    Ok((0..count).map(|i| (i * len, len)).collect())
}

/// Appends interleaved samples (whole frames of one sample per channel) to the channels'
/// vectors.
fn deinterleave_into(raw: &[u8], chans: &mut [Samples]) {
    let n_ch = chans.len();
    for (c, ch) in chans.iter_mut().enumerate() {
        match ch {
            Samples::I16(v) => v.extend(
                raw.chunks_exact(2 * n_ch)
                    .map(|f| i16::from_le_bytes([f[2 * c], f[2 * c + 1]])),
            ),
            Samples::F32(v) => {
                v.extend(raw.chunks_exact(4 * n_ch).map(|f| {
                    f32::from_le_bytes([f[4 * c], f[4 * c + 1], f[4 * c + 2], f[4 * c + 3]])
                }))
            }
            Samples::F64(_) => {}
        }
    }
}

/// Splits interleaved samples into one vector per channel.
fn deinterleave(raw: &[u8], n_ch: usize, float_data: bool) -> Vec<Samples> {
    if float_data {
        let mut out = vec![Vec::with_capacity(raw.len() / 4 / n_ch); n_ch];
        for (k, x) in raw.chunks_exact(4).enumerate() {
            out[k % n_ch].push(f32::from_le_bytes([x[0], x[1], x[2], x[3]]));
        }
        out.into_iter().map(Samples::F32).collect()
    } else {
        let mut out = vec![Vec::with_capacity(raw.len() / 2 / n_ch); n_ch];
        for (k, x) in raw.chunks_exact(2).enumerate() {
            out[k % n_ch].push(i16::from_le_bytes([x[0], x[1]]));
        }
        out.into_iter().map(Samples::I16).collect()
    }
}

/// Scale of an int16 channel (see the module doc), in neo's order of operations.
pub(crate) struct Scaling {
    pub adc_range: f64,
    pub resolution: f64,
    pub instrument_scale: f64,
    pub signal_gain: f64,
    pub programmable_gain: f64,
    pub telegraph_enabled: bool,
    pub telegraph_gain: f64,
    pub instrument_offset: f64,
    pub signal_offset: f64,
}

impl Scaling {
    pub fn gain_offset(&self, float_data: bool) -> (f64, f64) {
        if float_data {
            return (1.0, 0.0);
        }
        let mut gain = self.adc_range
            / self.instrument_scale
            / self.signal_gain
            / self.programmable_gain
            / self.resolution;
        if self.telegraph_enabled {
            gain /= self.telegraph_gain;
        }
        (gain, self.instrument_offset - self.signal_offset)
    }
}

/// pyabf's clean-up of holding levels: absurd values are unknown, denormal ones zero.
pub(crate) fn clean_holding(level: f32) -> f64 {
    let level = f64::from(level);
    if level.abs() > 1e6 {
        f64::NAN
    } else if level.abs() < 1e-6 {
        0.0
    } else {
        level
    }
}
