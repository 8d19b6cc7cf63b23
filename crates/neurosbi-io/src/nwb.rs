//! NWB 2.x files (HDF5): intracellular current-clamp recordings.
//!
//! Each `CurrentClampSeries` in `/acquisition` is one sweep of a membrane-potential channel
//! (`Vm`, in V) and each `CurrentClampStimulusSeries` in `/stimulus/presentation` one sweep of a
//! stimulus channel (`stimulus`, in A). Values are `data * conversion + offset`, as the schema
//! defines them (`resolution` is informative and ignored): int16 data sharing one conversion
//! and offset are kept as int16 codes with that gain and offset, float32 data without scaling
//! as float32, anything else as f64, so a recording takes about the memory of its data. Sweeps are ordered by
//! `sweep_number` when every series has one, else by name (numbers in names compared as
//! numbers); a stimulus pairs with the response of the same `sweep_number`, else by position.
//! With several electrodes each gets its own pair of channels, `Vm <electrode>` and
//! `stimulus <electrode>`. The icephys tables are not needed and not read.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii, VarLenUnicode};
use hdf5::{Group, Location, LocationType};

use crate::error::{Error, Result};
use crate::recording::{Channel, Recording, Samples};

/// One series, its data not yet read: the dataset is read straight into the channel's joined
/// samples once every series is known (see [`take_all`]), so the samples are never held twice.
struct Series {
    name: String,
    sweep_number: Option<u64>,
    electrode: String,
    rate: f64,
    len: usize,
    stored: Stored,
    conversion: f64,
    offset: f64,
    /// The series' group (`/acquisition/NAME`); its `data` is opened again when read rather
    /// than kept open, since each open dataset holds HDF5 memory (about 11 kB, measured with
    /// 556 series, plus its chunk cache, up to 1 MB of decompressed data, once read).
    at: String,
}

/// How a series' data are stored: int16 and float32 are kept as stored, so that a recording
/// takes about the memory of its data; anything else is read as f64.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stored {
    I16,
    F32,
    Other,
}

/// Reads the current-clamp data of an NWB 2.x file.
pub(crate) fn read_nwb(path: &Path) -> Result<Recording> {
    let err = |message: String| Error::Nwb {
        path: path.to_path_buf(),
        message,
    };
    let file = hdf5::File::open(path).map_err(|e| {
        err(format!(
            "not a readable HDF5 file (truncated or damaged?): {e}"
        ))
    })?;
    let version = string_attr(&file, "nwb_version").ok_or_else(|| {
        err("an HDF5 file but not NWB (the root has no `nwb_version` attribute)".into())
    })?;
    if !version.starts_with('2') {
        return Err(err(format!(
            "NWB version {version} is not supported (this reader knows 2.x)"
        )));
    }
    let electrodes = electrode_names(&file);
    let mut others = Vec::new();
    let voltage = collect(
        path,
        &file,
        "acquisition",
        "CurrentClampSeries",
        "volts",
        &electrodes,
        &mut others,
    )?;
    let stimulus = collect(
        path,
        &file,
        "stimulus/presentation",
        "CurrentClampStimulusSeries",
        "amperes",
        &electrodes,
        &mut Vec::new(),
    )?;
    if voltage.is_empty() {
        let found = if others.is_empty() {
            "it has no series in /acquisition".to_string()
        } else {
            format!("/acquisition holds {}", others.join(", "))
        };
        return Err(err(format!(
            "no current-clamp data (no CurrentClampSeries in /acquisition); {found}"
        )));
    }
    assemble(path, &file, format!("NWB {version}"), voltage, stimulus)
}

/// Groups series by electrode and lays them out as channels of one recording.
fn assemble(
    path: &Path,
    file: &hdf5::File,
    format: String,
    voltage: Vec<Series>,
    stimulus: Vec<Series>,
) -> Result<Recording> {
    let err = |message: String| Error::Nwb {
        path: path.to_path_buf(),
        message,
    };
    let by_electrode = |all: Vec<Series>| {
        let mut m: BTreeMap<String, Vec<Series>> = BTreeMap::new();
        for s in all {
            m.entry(s.electrode.clone()).or_default().push(s);
        }
        m.values_mut().for_each(|v| sort_sweeps(v));
        m
    };
    let voltage = by_electrode(voltage);
    let mut stimulus = by_electrode(stimulus);
    let several = voltage.len() > 1;
    let first = voltage.values().next().expect("checked non-empty");
    let rate = first[0].rate;
    let lens: Vec<usize> = first.iter().map(|s| s.len).collect();
    let first_electrode = first[0].electrode.clone();
    let mut channels = Vec::new();
    let mut samples = Vec::new();
    for (electrode, series) in voltage.iter() {
        let label = |what: &str| {
            if several {
                format!("{what} {electrode}")
            } else {
                what.to_string()
            }
        };
        if series.iter().map(|s| s.len).ne(lens.iter().copied()) {
            return Err(err(format!(
                "electrode {electrode:?} has other sweeps than electrode {:?} ({} sweeps); \
                 this reader needs the same sweeps on every electrode",
                first_electrode,
                lens.len()
            )));
        }
        check_rates(path, rate, series.iter())?;
        // A stimulus channel only when every sweep has its stimulus, of the same length:
        // a partial one could not be cut into the same sweeps.
        let paired = stimulus
            .remove(electrode)
            .and_then(|stim| pair(series, &stim).map(|p| (stim, p)));
        let n = series.len();
        let (data, gain, offset) = take_all(path, file, series, 0..n)?;
        channels.push(channel(label("Vm"), "V", gain, offset));
        samples.push(data);
        if let Some((stim, order)) = paired {
            check_rates(path, rate, order.iter().map(|&i| &stim[i]))?;
            let (data, gain, offset) = take_all(path, file, &stim, order.into_iter())?;
            channels.push(channel(label("stimulus"), "A", gain, offset));
            samples.push(data);
        }
    }
    let mut sweeps = Vec::with_capacity(lens.len());
    let mut start = 0;
    for len in lens {
        sweeps.push((start, len));
        start += len;
    }
    Recording {
        path: path.to_path_buf(),
        format,
        sample_rate_hz: rate,
        channels,
        commands: Vec::new(),
        tags: Vec::new(),
        sweeps,
        samples,
    }
    .check()
}

fn channel(name: String, units: &str, gain: f64, offset: f64) -> Channel {
    Channel {
        name,
        units: units.into(),
        gain,
        offset,
    }
}

/// The samples of `series[i]` for each `i` of `order`, one after the other, with the
/// channel's gain and offset: int16 codes stay int16 when every series shares its conversion
/// and offset (`value = code * conversion + offset`, as for ABF files), float32 stays float32
/// when no series scales it, else the values are f64 in volts or amperes.
///
/// The channel's vector is allocated once at its full length and each dataset is read by
/// HDF5 straight into its part of it (converted to f64 by HDF5 where needed, then scaled in
/// place, exactly as `data * conversion + offset`). Reading every series into a vector of its
/// own and joining them held the samples twice at the peak (the freed per-series vectors are
/// small heap blocks that the allocator keeps): `cargo xtask bench io` measured 1.53x the
/// file that way, 1.20x this way (tests/nwb_memory.rs: 2.01x and 1.01x).
fn take_all(
    path: &Path,
    file: &hdf5::File,
    series: &[Series],
    order: impl Iterator<Item = usize> + Clone,
) -> Result<(Samples, f64, f64)> {
    let total = order.clone().map(|i| series[i].len).sum();
    let first = order
        .clone()
        .next()
        .map(|i| (series[i].conversion, series[i].offset));
    let same_scale = order
        .clone()
        .all(|i| Some((series[i].conversion, series[i].offset)) == first);
    let all = |kind: Stored| order.clone().all(|i| series[i].stored == kind);
    let (all_i16, all_f32) = (all(Stored::I16), all(Stored::F32));
    // Each series of `order` with its part of the channel's samples.
    let mut at = 0;
    let parts: Vec<(usize, std::ops::Range<usize>)> = order
        .clone()
        .map(|i| {
            let r = at..at + series[i].len;
            at = r.end;
            (i, r)
        })
        .collect();
    // Reads series i into `out` (exactly its length); the dataset is closed once read.
    let read = |i: usize, out: &mut dyn FnMut(&hdf5::Dataset) -> hdf5::Result<usize>| {
        let s = &series[i];
        let fail = |message: String| Error::Nwb {
            path: path.to_path_buf(),
            message: format!("{}: {message}", s.at),
        };
        let data = file
            .dataset(&format!("{}/data", s.at))
            .map_err(|e| fail(format!("no data: {e}")))?;
        let n = out(&data).map_err(|e| fail(format!("cannot read data as numbers: {e}")))?;
        if n != s.len {
            return Err(fail(format!("{n} samples read, {} expected", s.len)));
        }
        Ok::<_, Error>((s.conversion, s.offset))
    };
    match first {
        Some((conversion, offset)) if same_scale && all_i16 => {
            let mut out = vec![0i16; total];
            for (i, r) in parts {
                read(i, &mut |d| d.read_into_raw(&mut out[r.clone()]))?;
            }
            Ok((Samples::I16(out), conversion, offset))
        }
        Some((1.0, 0.0)) if same_scale && all_f32 => {
            let mut out = vec![0f32; total];
            for (i, r) in parts {
                read(i, &mut |d| d.read_into_raw(&mut out[r.clone()]))?;
            }
            Ok((Samples::F32(out), 1.0, 0.0))
        }
        _ => {
            let mut out = vec![0f64; total];
            for (i, r) in parts {
                let (c, o) = read(i, &mut |d| d.read_into_raw(&mut out[r.clone()]))?;
                out[r].iter_mut().for_each(|x| *x = *x * c + o);
            }
            Ok((Samples::F64(out), 1.0, 0.0))
        }
    }
}

/// The index in `stimuli` of each response's stimulus (by sweep_number, else by position), if
/// all match.
fn pair(responses: &[Series], stimuli: &[Series]) -> Option<Vec<usize>> {
    let numbered = responses
        .iter()
        .chain(stimuli)
        .all(|s| s.sweep_number.is_some());
    let paired: Vec<usize> = if numbered {
        responses
            .iter()
            .map(|r| {
                stimuli
                    .iter()
                    .position(|s| s.sweep_number == r.sweep_number)
            })
            .collect::<Option<_>>()?
    } else if responses.len() == stimuli.len() {
        (0..stimuli.len()).collect()
    } else {
        return None;
    };
    let same = responses
        .iter()
        .zip(&paired)
        .all(|(r, &s)| r.len == stimuli[s].len);
    same.then_some(paired)
}

fn check_rates<'a>(
    path: &Path,
    rate: f64,
    series: impl IntoIterator<Item = &'a Series>,
) -> Result<()> {
    for s in series {
        if ((s.rate - rate) / rate).abs() > 1e-9 {
            return Err(Error::Nwb {
                path: path.to_path_buf(),
                message: format!(
                    "series {} is sampled at {} Hz, others at {rate} Hz; this reader needs one rate",
                    s.name, s.rate
                ),
            });
        }
    }
    Ok(())
}

/// By sweep_number when every series has one, else by name in natural order.
fn sort_sweeps(series: &mut [Series]) {
    if series.iter().all(|s| s.sweep_number.is_some()) {
        series.sort_by(|a, b| {
            a.sweep_number
                .cmp(&b.sweep_number)
                .then_with(|| natural(&a.name, &b.name))
        });
    } else {
        series.sort_by(|a, b| natural(&a.name, &b.name));
    }
}

/// Compares names with runs of digits as numbers (`sweep_2` before `sweep_10`).
fn natural(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let key = |(digit, text): &(bool, String)| {
        let t = text.trim_start_matches('0');
        if *digit {
            (t.len(), t.to_string())
        } else {
            (0, text.clone())
        }
    };
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x.0, y.0) {
            (true, true) => key(x).cmp(&key(y)),
            _ => x.1.cmp(&y.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// The series of type `wanted` among the groups directly under `group_path`; the types of
/// other series go to `others` (for the error message when there is no current-clamp data).
fn collect(
    path: &Path,
    file: &hdf5::File,
    group_path: &str,
    wanted: &str,
    unit: &str,
    electrodes: &[(hdf5::LocationToken, String)],
    others: &mut Vec<String>,
) -> Result<Vec<Series>> {
    let Ok(group) = file.group(group_path) else {
        return Ok(Vec::new());
    };
    let names = group.member_names().map_err(|e| Error::Nwb {
        path: path.to_path_buf(),
        message: format!("cannot list /{group_path}: {e}"),
    })?;
    let mut out = Vec::new();
    for name in names {
        if !matches!(group.loc_type_by_name(&name), Ok(LocationType::Group)) {
            continue;
        }
        let Ok(g) = group.group(&name) else { continue };
        let kind = string_attr(&g, "neurodata_type").unwrap_or_default();
        if kind != wanted {
            let kind = if kind.is_empty() {
                "untyped group"
            } else {
                &kind
            };
            others.push(format!("{kind} {name:?}"));
            continue;
        }
        let at = format!("/{group_path}/{name}");
        out.push(
            read_series(&g, &at, unit, electrodes).map_err(|message| Error::Nwb {
                path: path.to_path_buf(),
                message: format!("{wanted} {at}: {message}"),
            })?,
        );
    }
    Ok(out)
}

fn read_series(
    g: &Group,
    at: &str,
    unit: &str,
    electrodes: &[(hdf5::LocationToken, String)],
) -> std::result::Result<Series, String> {
    let data = g.dataset("data").map_err(|e| format!("no data: {e}"))?;
    if data.ndim() != 1 {
        return Err(format!(
            "data has shape {:?}; this reader takes one-dimensional series",
            data.shape()
        ));
    }
    let found = string_attr(&data, "unit").unwrap_or_default();
    // The schema fixes these units; anything else would be mis-scaled, so it is refused.
    if found != unit {
        return Err(format!("data unit is {found:?}, the schema says {unit:?}"));
    }
    let number = |name: &str, default: f64| -> std::result::Result<f64, String> {
        match data.attr(name) {
            Err(_) => Ok(default),
            Ok(a) => a
                .read_scalar::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("data attribute `{name}` is not a finite number")),
        }
    };
    let conversion = number("conversion", 1.0)?;
    let offset = number("offset", 0.0)?;
    use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
    let stored = match data.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Integer(IntSize::U2)) => Stored::I16,
        Ok(TypeDescriptor::Float(FloatSize::U4)) => Stored::F32,
        _ => Stored::Other,
    };
    let len = data.size();
    let rate = rate(g, len)?;
    let sweep_number = match g.attr("sweep_number") {
        Err(_) => None,
        Ok(a) => Some(
            a.read_scalar::<u64>()
                .map_err(|e| format!("sweep_number is not an unsigned integer: {e}"))?,
        ),
    };
    let electrode = g
        .loc_info_by_name("electrode")
        .ok()
        .and_then(|info| {
            electrodes
                .iter()
                .find(|(t, _)| *t == info.token)
                .map(|(_, n)| n.clone())
        })
        .unwrap_or_default();
    Ok(Series {
        name: at.rsplit('/').next().unwrap_or(at).to_string(),
        sweep_number,
        electrode,
        rate,
        len,
        stored,
        conversion,
        offset,
        at: at.to_string(),
    })
}

/// Samples per second, from `starting_time`'s `rate` or from evenly spaced `timestamps`.
fn rate(g: &Group, n: usize) -> std::result::Result<f64, String> {
    if let Ok(st) = g.dataset("starting_time") {
        let rate = st
            .attr("rate")
            .and_then(|a| a.read_scalar::<f64>())
            .map_err(|e| format!("starting_time has no readable `rate`: {e}"))?;
        return if rate.is_finite() && rate > 0.0 {
            Ok(rate)
        } else {
            Err(format!("sampling rate {rate} Hz"))
        };
    }
    let ts = g
        .dataset("timestamps")
        .map_err(|_| "neither starting_time with a rate nor timestamps".to_string())?
        .read_raw::<f64>()
        .map_err(|e| format!("cannot read timestamps: {e}"))?;
    if ts.len() != n {
        return Err(format!("{} timestamps for {n} samples", ts.len()));
    }
    if n < 2 {
        return Err("fewer than 2 timestamps, so no sampling rate".into());
    }
    let dt = (ts[n - 1] - ts[0]) / (n - 1) as f64;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(format!("timestamps from {} to {} s", ts[0], ts[n - 1]));
    }
    // A sweep is a regularly sampled trace; irregular timestamps would be resampled wrongly.
    if let Some((i, t)) = ts
        .iter()
        .enumerate()
        .find(|&(i, &t)| (t - (ts[0] + i as f64 * dt)).abs() > 0.01 * dt)
    {
        return Err(format!(
            "timestamps are not evenly spaced (sample {i} at {t} s, expected {} s)",
            ts[0] + i as f64 * dt
        ));
    }
    Ok(1.0 / dt)
}

/// The electrodes under /general/intracellular_ephys, by object identity (series link to them).
fn electrode_names(file: &hdf5::File) -> Vec<(hdf5::LocationToken, String)> {
    let Ok(g) = file.group("general/intracellular_ephys") else {
        return Vec::new();
    };
    g.member_names()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| Some((g.loc_info_by_name(&n).ok()?.token, n)))
        .collect()
}

/// A string attribute, whichever of HDF5's string types it is stored as.
fn string_attr(obj: &Location, name: &str) -> Option<String> {
    let a = obj.attr(name).ok()?;
    a.read_scalar::<VarLenUnicode>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| {
            a.read_scalar::<VarLenAscii>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|_| {
            a.read_scalar::<FixedAscii<1024>>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|_| {
            a.read_scalar::<FixedUnicode<1024>>()
                .map(|s| s.as_str().to_string())
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::natural;
    use std::cmp::Ordering;

    #[test]
    fn names_sort_with_numbers_as_numbers() {
        assert_eq!(natural("sweep_2", "sweep_10"), Ordering::Less);
        assert_eq!(natural("sweep_10", "sweep_9"), Ordering::Greater);
        assert_eq!(natural("a", "b"), Ordering::Less);
        assert_eq!(natural("s_002", "s_2"), Ordering::Less);
    }
}
