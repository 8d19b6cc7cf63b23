//! `[stimuli]` entries (generated kinds and files) and reading numeric files (CSV, `.npy`).

use super::*;
use data::{parse_csv, parse_npy};

type StimRows = (Vec<Vec<f64>>, Option<(f64, f64)>);

/// Builds the rows of one stimulus; returns them with the stimulus window (s) when the
/// kind has one.
pub(super) fn stimulus(
    ctx: &Ctx,
    key: &str,
    t: &toml::Table,
    dim: &neurosbi_sim::Dimension,
    dt: f64,
    n_steps: usize,
    seed: u64,
) -> Result<StimRows> {
    if !t.contains_key("kind") && t.get("from").is_some_and(toml::Value::is_str) {
        return super::recording::stimulus(ctx, key, t, dim, dt, n_steps);
    }
    let kind = t.get("kind").and_then(|k| k.as_str()).ok_or_else(|| {
        ctx.err(
            &format!("{key}.kind"),
            "missing: one of step, ramp, pulses, noise, file (or `from = \"cell.abf\"` for a recording's command)",
        )
    })?;
    let allowed: &[&str] = match kind {
        "step" => &["kind", "amplitude", "start", "stop"],
        "ramp" => &["kind", "from", "to", "start", "stop"],
        "pulses" => &["kind", "amplitude", "start", "width", "period", "count"],
        "noise" => &["kind", "mean", "std", "seed", "traces"],
        "file" => &["kind", "file", "unit"],
        other => {
            return Err(ctx.err(
                &format!("{key}.kind"),
                format!(
                    "unknown stimulus kind `{other}` (expected step, ramp, pulses, noise or file)"
                ),
            ));
        }
    };
    ctx.check_keys(key, t, allowed)?;
    let amp = |k: &str, default: Option<f64>| -> Result<Vec<f64>> {
        let kk = format!("{key}.{k}");
        let one = |v: &toml::Value| -> Result<f64> {
            let text = ctx.quantity_text(&kk, v)?;
            let q = parse_quantity(ctx.file, &kk, &text)?;
            if q.dim != *dim {
                return Err(ctx.err(
                    &kk,
                    format!("\"{text}\" has dimension {}, the input is {dim}", q.dim),
                ));
            }
            Ok(q.value)
        };
        match t.get(k) {
            None => default
                .map(|d| vec![d])
                .ok_or_else(|| ctx.err(&kk, "missing")),
            Some(toml::Value::Array(a)) if !a.is_empty() => a.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    };
    let time = |k: &str, default: f64| -> Result<f64> {
        t.get(k).map_or(Ok(default), |v| {
            ctx.quantity(&format!("{key}.{k}"), v, "second")
        })
    };
    let duration = n_steps as f64 * dt;
    // Checked before the rows are built: one row of n_steps samples per trace.
    let rows_fit = |n: usize| ctx.need(key, "the stimulus", n as f64 * n_steps as f64 * 8.0);
    let windowed = |w: (f64, f64)| checks::window(ctx, key, w, duration).map(|()| Some(w));
    // Sample k holds for k*dt <= t < (k+1)*dt; a step is on where its sample time lies in
    // [start, stop).
    let on = |i: usize, a: f64, b: f64| {
        let ti = i as f64 * dt;
        ti >= a - 1e-9 * dt && ti < b - 1e-9 * dt
    };
    Ok(match kind {
        "step" => {
            let w = windowed((time("start", 0.0)?, time("stop", duration)?))?;
            let (a, b) = w.unwrap_or_default();
            let amps = amp("amplitude", None)?;
            rows_fit(amps.len())?;
            let rows = amps
                .into_iter()
                .map(|amp| {
                    (0..n_steps)
                        .map(|i| if on(i, a, b) { amp } else { 0.0 })
                        .collect()
                })
                .collect();
            (rows, w)
        }
        "ramp" => {
            let w = windowed((time("start", 0.0)?, time("stop", duration)?))?;
            let (a, b) = w.unwrap_or_default();
            let from = amp("from", Some(0.0))?;
            let to = amp("to", None)?;
            let n = from.len().max(to.len());
            rows_fit(n)?;
            let rows = (0..n)
                .map(|r| {
                    let (f, g) = (from[r.min(from.len() - 1)], to[r.min(to.len() - 1)]);
                    (0..n_steps)
                        .map(|i| {
                            if on(i, a, b) {
                                f + (g - f) * (i as f64 * dt - a) / (b - a)
                            } else {
                                0.0
                            }
                        })
                        .collect()
                })
                .collect();
            (rows, w)
        }
        "pulses" => {
            let a = time("start", 0.0)?;
            let width = time("width", 0.0)?;
            let period = time("period", 0.0)?;
            if width <= 0.0 || period < width {
                return Err(ctx.err(key, "pulses need width > 0 and period >= width"));
            }
            let count = t
                .get("count")
                .map_or(Ok(1), |v| usize_of(ctx, &format!("{key}.count"), v))?;
            let w = windowed((a, a + (count - 1) as f64 * period + width))?;
            let amps = amp("amplitude", None)?;
            rows_fit(amps.len())?;
            let rows = amps
                .into_iter()
                .map(|amp| {
                    (0..n_steps)
                        .map(|i| {
                            let on_any = (0..count).any(|c| {
                                let s = a + c as f64 * period;
                                on(i, s, s + width)
                            });
                            if on_any { amp } else { 0.0 }
                        })
                        .collect()
                })
                .collect();
            (rows, w)
        }
        "noise" => {
            let mean = amp("mean", Some(0.0))?;
            let std = amp("std", None)?;
            let traces = t
                .get("traces")
                .map_or(Ok(1), |v| usize_of(ctx, &format!("{key}.traces"), v))?;
            let s = match t.get("seed") {
                None => seed,
                Some(v) => v.as_integer().filter(|i| *i >= 0).ok_or_else(|| {
                    ctx.err(&format!("{key}.seed"), "expected a non-negative integer")
                })? as u64,
            };
            rows_fit(traces)?;
            let rows = (0..traces)
                .map(|r| {
                    let mut rng = neurosbi_infer::stream_rng(s, 0x5715, r as u64);
                    let (m, sd) = (mean[r.min(mean.len() - 1)], std[r.min(std.len() - 1)]);
                    (0..n_steps)
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            m + sd * z
                        })
                        .collect()
                })
                .collect();
            (rows, None)
        }
        _ => {
            let fk = format!("{key}.file");
            let path = ctx.path(&fk, t.get("file").ok_or_else(|| ctx.err(&fk, "missing"))?)?;
            let uk = format!("{key}.unit");
            let uname = t
                .get("unit")
                .and_then(|u| u.as_str())
                .ok_or_else(|| ctx.err(&uk, "missing: the unit of the values, e.g. \"nA\""))?;
            let unit = Unit::named(uname)
                .ok_or_else(|| ctx.err(&uk, format!("unknown unit `{uname}`")))?;
            if lookup_unit(uname).is_some_and(|u| u.dim != *dim) {
                return Err(ctx.err(
                    &uk,
                    format!("`{uname}` does not match the input's dimension {dim}"),
                ));
            }
            let rows = read_matrix(ctx, &fk, &path, false)?;
            if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_steps) {
                return Err(ctx.err(
                    &fk,
                    format!(
                        "{}: trace {k} has {} samples, expected {n_steps} (duration / dt)",
                        path.display(),
                        r.len()
                    ),
                ));
            }
            (
                rows.into_iter()
                    .map(|r| r.into_iter().map(|v| v * unit.scale).collect())
                    .collect(),
                None,
            )
        }
    })
}

/// Reads rows of numbers from a CSV (one trace per line; a non-numeric first line is a
/// header) or a 1-D/2-D `.npy`. `ragged` allows rows of different lengths (spike times).
pub(super) fn read_matrix(
    ctx: &Ctx,
    key: &str,
    path: &Path,
    ragged: bool,
) -> Result<Vec<Vec<f64>>> {
    let err = |m: String| ctx.err(key, format!("{}: {m}", path.display()));
    let bytes = read_bounded(path, DATA_LIMIT).map_err(|e| err(e.to_string()))?;
    let rows = if path.extension().is_some_and(|e| e == "npy") {
        parse_npy(&bytes).map_err(err)?
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|e| err(format!("not UTF-8 text ({e})")))?;
        parse_csv(text, ragged).map_err(err)?.rows
    };
    if !ragged && rows.is_empty() {
        return Err(err("no data rows".into()));
    }
    Ok(rows)
}
