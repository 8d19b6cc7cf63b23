//! Recordings (`.abf`) named in a fit file: `[outputs.v] data = "cell.abf"` and
//! `[stimuli.I] from = "cell.abf"`, with `sweeps`, `channel` and `interpolate`. The file's
//! units are converted into the model's and checked against the variable's dimension; the
//! samples are taken at the fit's `dt`.

use super::*;
use crate::spec::ChannelSpec;
use neurosbi_io::{ChannelSelector, Recording};

/// Keys that choose what to take from a recording.
pub(super) const SELECTORS: [&str; 3] = ["sweeps", "channel", "interpolate"];

/// `sweeps`, `channel` and `interpolate` as read.
pub(super) type Selectors = (Option<Vec<usize>>, Option<ChannelSpec>, Option<bool>);

/// Rows of a stimulus (SI) and its window (s).
type StimRows = (Vec<Vec<f64>>, Option<(f64, f64)>);

/// Whether `path` names a recording this module reads (by extension, any case). `.nwb` counts
/// in every build, so one without the `nwb` feature says how to enable it.
pub(super) fn is_recording(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("abf") || e.eq_ignore_ascii_case("nwb"))
}

/// `sweeps`, `channel` and `interpolate` of a table (`key` is the table's key).
pub(super) fn selectors(ctx: &Ctx, key: &str, t: &toml::Table) -> Result<Selectors> {
    let sk = format!("{key}.sweeps");
    let sweeps = t
        .get("sweeps")
        .map(|v| {
            let list = v
                .as_array()
                .ok_or_else(|| ctx.err(&sk, "expected a list of sweep numbers, from 0"))?;
            list.iter()
                .map(|s| {
                    s.as_integer()
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or_else(|| ctx.err(&sk, "expected sweep numbers (0, 1, ...)"))
                })
                .collect::<Result<Vec<usize>>>()
        })
        .transpose()?;
    let channel = match t.get("channel") {
        None => None,
        Some(toml::Value::String(s)) => Some(ChannelSpec::Name(s.clone())),
        Some(toml::Value::Integer(i)) if *i >= 0 => Some(ChannelSpec::Index(*i as usize)),
        Some(_) => {
            return Err(ctx.err(
                &format!("{key}.channel"),
                "expected a channel name (string) or index (from 0)",
            ));
        }
    };
    let interpolate = match t.get("interpolate") {
        None => None,
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| ctx.err(&format!("{key}.interpolate"), "expected true or false"))?,
        ),
    };
    Ok((sweeps, channel, interpolate))
}

/// Reads a recording (bounded, like every data file): ABF, or NWB when built with `nwb`.
pub(super) fn open(ctx: &Ctx, key: &str, path: &Path) -> Result<Recording> {
    let bytes = read_bounded(path, DATA_LIMIT)
        .map_err(|e| ctx.err(key, format!("{}: {e}", path.display())))?;
    neurosbi_io::parse(path, &bytes).map_err(|e| ctx.err(key, e.to_string()))
}

/// What to take from a recording and how.
pub(super) struct Take<'a> {
    pub sweeps: Option<&'a [usize]>,
    pub interpolate: bool,
    /// The model variable or input the values go to, and its dimension.
    pub target: &'a str,
    pub dim: neurosbi_sim::Dimension,
    /// SI value of one unit of the wanted values.
    pub scale: f64,
}

/// The chosen channel's sweeps in the target's unit, at the fit's `dt`.
pub(super) fn channel_traces(
    ctx: &Ctx,
    key: &str,
    rec: &Recording,
    channel: Option<&ChannelSpec>,
    take: &Take,
    dt: f64,
    n_steps: usize,
) -> Result<Vec<Vec<f64>>> {
    let err = |m: String| ctx.err(key, format!("{}: {m}", rec.path.display()));
    let which = match channel {
        Some(ChannelSpec::Index(i)) => ChannelSelector::Index(*i),
        Some(ChannelSpec::Name(n)) => ChannelSelector::Name(n.clone()),
        None if rec.channels.len() == 1 => ChannelSelector::Index(0),
        None => {
            return Err(err(format!(
                "give `channel` (name or index): the file has {}",
                rec.channel_list()
            )));
        }
    };
    let c = rec
        .channel_index(&which)
        .map_err(|e| ctx.err(key, e.to_string()))?;
    let ch = &rec.channels[c];
    let what = format!("channel {c} \"{}\"", ch.name);
    let factor = unit_factor(&ch.units, take).map_err(|m| err(format!("{what}: {m}")))?;
    sweeps(rec, take)
        .map_err(|e| ctx.err(key, e))?
        .into_iter()
        .map(|s| {
            let x = rec.sweep(c, s).map_err(|e| ctx.err(key, e.to_string()))?;
            let scaled: Vec<f64> = x.iter().map(|v| v * factor).collect();
            resample(&scaled, rec.sample_rate_hz, dt, n_steps, take.interpolate)
                .map_err(|m| err(format!("sweep {s}: {m}")))
        })
        .collect()
}

/// The sweeps to take: those listed, else all; an unknown one lists how many there are.
fn sweeps(rec: &Recording, take: &Take) -> std::result::Result<Vec<usize>, String> {
    let all: Vec<usize> = (0..rec.sweep_count()).collect();
    let chosen = take.sweeps.map_or(all, <[usize]>::to_vec);
    if chosen.is_empty() {
        return Err("`sweeps` is empty: list at least one sweep".into());
    }
    for &s in &chosen {
        rec.sweep_len(s).map_err(|e| e.to_string())?;
    }
    Ok(chosen)
}

/// The factor from the file's unit to the wanted unit, refusing a unit of another dimension.
fn unit_factor(units: &str, take: &Take) -> std::result::Result<f64, String> {
    let unit = Unit::named(units).ok_or_else(|| {
        format!("its unit `{units}` is not one neurosbi knows, so the values cannot be converted")
    })?;
    match unit.dim() {
        Some(d) if d == take.dim => Ok(unit.scale / take.scale),
        Some(d) => Err(format!(
            "it is in {units} (dimension {d}), but `{}` has dimension {}",
            take.target, take.dim
        )),
        None => Err(format!("its unit `{units}` has no known dimension")),
    }
}

/// `n_steps` samples at `dt` from a trace sampled at `rate`: every k-th sample when `dt` is a
/// whole multiple of the file's interval, else linear interpolation, which a file coarser
/// than `dt` needs `interpolate = true` for. The fit may not run past the sweep's end.
pub(super) fn resample(
    x: &[f64],
    rate: f64,
    dt: f64,
    n_steps: usize,
    interpolate: bool,
) -> std::result::Result<Vec<f64>, String> {
    let dt_file = 1.0 / rate;
    if dt_file > dt * (1.0 + 1e-9) && !interpolate {
        return Err(format!(
            "sampled every {} ms, coarser than the fit's dt = {} ms; set `interpolate = true` \
             to interpolate linearly, or choose dt >= {} ms",
            dt_file * 1e3,
            dt * 1e3,
            dt_file * 1e3
        ));
    }
    let last = (n_steps.saturating_sub(1)) as f64 * dt;
    let have = x.len().saturating_sub(1) as f64 * dt_file;
    if x.is_empty() || last > have * (1.0 + 1e-9) + 1e-15 {
        return Err(format!(
            "the sweep lasts {} ms, the fit needs {} ms (duration); shorten `duration` or pick \
             longer sweeps",
            x.len() as f64 * dt_file * 1e3,
            n_steps as f64 * dt * 1e3
        ));
    }
    let ratio = dt / dt_file;
    let k = ratio.round();
    if k >= 1.0 && (ratio - k).abs() < 1e-9 {
        let k = k as usize;
        return Ok((0..n_steps).map(|i| x[(i * k).min(x.len() - 1)]).collect());
    }
    Ok((0..n_steps)
        .map(|i| {
            let t = i as f64 * ratio;
            let j = (t.floor() as usize).min(x.len() - 1);
            let frac = t - j as f64;
            let next = x[(j + 1).min(x.len() - 1)];
            x[j] * (1.0 - frac) + next * frac
        })
        .collect())
}

/// `[stimuli.NAME] from = "cell.abf"`: the command of each chosen sweep, from a recorded
/// channel (`channel`) or synthesised from the epoch table of output `command` (default 0).
/// The window is the first epoch whose level leaves the holding level.
pub(super) fn stimulus(
    ctx: &Ctx,
    key: &str,
    t: &toml::Table,
    dim: &neurosbi_sim::Dimension,
    dt: f64,
    n_steps: usize,
) -> Result<StimRows> {
    let mut allowed = vec!["from", "command"];
    allowed.extend(SELECTORS);
    ctx.check_keys(key, t, &allowed)?;
    let fk = format!("{key}.from");
    let path = ctx.path(&fk, t.get("from").expect("checked by the caller"))?;
    if !is_recording(&path) {
        return Err(ctx.err(
            &fk,
            "expected a recording (.abf or .nwb); for CSV or .npy use kind = \"file\"",
        ));
    }
    let rec = open(ctx, &fk, &path)?;
    let (sweeps, channel, interpolate) = selectors(ctx, key, t)?;
    let take = Take {
        sweeps: sweeps.as_deref(),
        interpolate: interpolate.unwrap_or(false),
        target: key.trim_start_matches("stimuli."),
        dim: *dim,
        scale: 1.0,
    };
    if channel.is_some() {
        if t.contains_key("command") {
            return Err(ctx.err(
                key,
                "give `channel` (a recorded command) or `command`, not both",
            ));
        }
        let rows = channel_traces(ctx, key, &rec, channel.as_ref(), &take, dt, n_steps)?;
        return Ok((rows, None));
    }
    let ck = format!("{key}.command");
    let dac = match t.get("command") {
        None => 0,
        Some(v) => v
            .as_integer()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| ctx.err(&ck, "expected the index of a command output, from 0"))?,
    };
    epoch_stimulus(ctx, &fk, &rec, dac, &take, dt, n_steps)
}

fn epoch_stimulus(
    ctx: &Ctx,
    key: &str,
    rec: &Recording,
    dac: usize,
    take: &Take,
    dt: f64,
    n_steps: usize,
) -> Result<StimRows> {
    let err = |m: String| ctx.err(key, format!("{}: {m}", rec.path.display()));
    let io = |e: neurosbi_io::Error| ctx.err(key, e.to_string());
    let command = rec.commands.get(dac).ok_or_else(|| {
        err(format!(
            "no command output {dac}; the file has {}",
            rec.command_list()
        ))
    })?;
    let factor = unit_factor(&command.units, take)
        .map_err(|m| err(format!("command output {dac} \"{}\": {m}", command.name)))?;
    let chosen = sweeps(rec, take).map_err(|e| ctx.err(key, e))?;
    let mut window = None;
    let mut rows = Vec::new();
    for &s in &chosen {
        let wave = rec.command_waveform(dac, s).map_err(io)?;
        if window.is_none() {
            window = rec
                .sweep_epochs(dac, s)
                .map_err(io)?
                .iter()
                .find(|e| e.level != command.holding && e.stop > e.start)
                .map(|e| {
                    (
                        e.start as f64 / rec.sample_rate_hz,
                        e.stop as f64 / rec.sample_rate_hz,
                    )
                });
        }
        let scaled: Vec<f64> = wave.iter().map(|v| v * factor).collect();
        rows.push(
            resample(&scaled, rec.sample_rate_hz, dt, n_steps, take.interpolate)
                .map_err(|m| err(format!("sweep {s}: {m}")))?,
        );
    }
    Ok((rows, window))
}

#[cfg(test)]
mod tests {
    use super::resample;

    #[test]
    fn resampling_takes_every_kth_sample_or_interpolates() {
        let x: Vec<f64> = (0..11).map(f64::from).collect();
        // 1 kHz file, dt 2 ms: every second sample.
        assert_eq!(
            resample(&x, 1000.0, 2e-3, 5, false).unwrap(),
            vec![0., 2., 4., 6., 8.]
        );
        // dt 1.5 ms: linear interpolation.
        assert_eq!(
            resample(&x, 1000.0, 1.5e-3, 3, false).unwrap(),
            vec![0., 1.5, 3.0]
        );
        // dt 0.5 ms is finer than the file: refused unless interpolation is allowed.
        let e = resample(&x, 1000.0, 0.5e-3, 4, false).unwrap_err();
        assert!(
            e.contains("coarser than the fit's dt") && e.contains("interpolate = true"),
            "{e}"
        );
        assert_eq!(
            resample(&x, 1000.0, 0.5e-3, 4, true).unwrap(),
            vec![0., 0.5, 1.0, 1.5]
        );
        // Past the end of the sweep.
        let e = resample(&x, 1000.0, 1e-3, 12, false).unwrap_err();
        assert!(e.contains("the sweep lasts 11 ms"), "{e}");
    }
}
