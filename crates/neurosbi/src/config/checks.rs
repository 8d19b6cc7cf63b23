//! Checks of a fit file's values against each other: durations and windows against `dt`,
//! data against its unit, ground truths against their priors, and the memory a run needs
//! against the machine's, all before anything large is allocated.

use super::*;

/// Memory assumed when `/proc/meminfo` cannot be read.
const FALLBACK_MEMORY: f64 = 16e9;

/// Bytes of one `f64`.
const F64: f64 = 8.0;

/// The machine's total memory in bytes (`MemTotal` of `/proc/meminfo`, else 16 GB).
pub(super) fn machine_memory() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total(&s))
        .unwrap_or(FALLBACK_MEMORY)
}

fn mem_total(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Bytes in words: "160 GB", "2.5 GB", "3e+20 GB".
fn gigabytes(bytes: f64) -> String {
    let gb = bytes / 1e9;
    if gb >= 1e6 {
        format!("{gb:.1e} GB")
    } else if gb >= 10.0 {
        format!("{gb:.0} GB")
    } else {
        format!("{gb:.1} GB")
    }
}

/// Why `bytes` for `what` do not fit in `memory` bytes, or `None` when they do.
fn too_large(what: &str, bytes: f64, memory: f64) -> Option<String> {
    (bytes.is_nan() || bytes > memory).then(|| {
        format!(
            "this run needs {} for {what}; the machine has {}",
            gigabytes(bytes),
            gigabytes(memory)
        )
    })
}

/// Refuses work that needs more than the machine's memory for `what` (command-line sizes
/// such as `sample --n`), before anything is allocated.
pub fn fits_in_memory(what: &str, bytes: f64) -> std::result::Result<(), String> {
    too_large(what, bytes, machine_memory()).map_or(Ok(()), Err)
}

impl Ctx<'_> {
    /// Refuses a run that needs more than the machine's memory for `what`.
    pub(super) fn need(&self, key: &str, what: &str, bytes: f64) -> Result<()> {
        match too_large(what, bytes, self.memory) {
            Some(m) => Err(self.err(key, m)),
            None => Ok(()),
        }
    }
}

/// A float count as `usize`: `None` when it is not finite, negative or beyond 2^53.
pub(super) fn count_of(x: f64) -> Option<usize> {
    (x.is_finite() && (0.0..=9.007_199_254_740_992e15).contains(&x)).then_some(x as usize)
}

/// A number to 9 significant digits, without trailing zeros: 1000.0000000000001 is 1000.
fn short(x: f64) -> String {
    let rounded: f64 = format!("{x:.8e}").parse().unwrap_or(x);
    rounded.to_string()
}

/// Milliseconds in words, to 9 significant digits.
fn ms(seconds: f64) -> String {
    format!("{} ms", short(seconds * 1e3))
}

/// The number of steps of `duration` at `dt`: a whole multiple (relative tolerance 1e-9),
/// at least two, and a trace of it must fit in memory.
pub(super) fn step_count(ctx: &Ctx, dt: f64, duration: f64) -> Result<usize> {
    let r = duration / dt;
    if !r.is_finite() || r < 2.0 - 1e-9 {
        return Err(ctx.err("duration", "must cover at least two time steps"));
    }
    let k = r.round();
    if (r - k).abs() > 1e-9 * k {
        let (lo, hi) = (r.floor() * dt, r.ceil() * dt);
        return Err(ctx.err(
            "duration",
            format!(
                "{} is not a whole multiple of dt = {}; the nearest valid durations are {} and {}",
                ms(duration),
                ms(dt),
                ms(lo),
                ms(hi)
            ),
        ));
    }
    ctx.need(
        "duration",
        "one recorded trace (duration / dt samples)",
        k * F64,
    )?;
    count_of(k).ok_or_else(|| ctx.err("duration", "duration / dt is too many steps"))
}

/// A window `[start, stop)` (s) must lie inside the run `[0, duration]`, start before stop.
pub(super) fn window(ctx: &Ctx, key: &str, (a, b): (f64, f64), duration: f64) -> Result<()> {
    let eps = 1e-9 * duration;
    let problem = if a < -eps || b < -eps {
        Some("is negative")
    } else if a >= b {
        Some("starts at or after its end")
    } else if b > duration + eps {
        Some("ends after the run")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(ctx.err(
            key,
            format!(
                "the window [{}, {}] {p}: it must satisfy 0 <= start < stop <= duration ({})",
                ms(a),
                ms(b),
                ms(duration)
            ),
        )),
    }
}

/// Plausible membrane potentials, volts: recorded traces lie well inside +-1 V, and a
/// trace that never leaves +-0.2 mV is almost surely in volts labelled mV.
const VOLTS_TOO_LARGE: f64 = 1.0;
const VOLTS_TOO_SMALL: f64 = 2e-4;

/// Voltage data must be plausible membrane potentials in the unit it is labelled with.
pub(super) fn voltage_data(ctx: &Ctx, key: &str, unit: &Unit, rows: &[Vec<f64>]) -> Result<()> {
    let volt = lookup_unit("volt").expect("volt").dim;
    if unit.dim() != Some(volt) {
        return Ok(());
    }
    let peak = rows
        .iter()
        .flatten()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    let peak_v = peak * unit.scale;
    let found = if peak_v > VOLTS_TOO_LARGE {
        format!("values reach {} {}", short(peak), unit.name)
    } else if peak_v < VOLTS_TOO_SMALL {
        format!("all values lie within +-{} {}", short(peak), unit.name)
    } else {
        return Ok(());
    };
    let hint = suggest_voltage_unit(peak)
        .map(|u| format!("; they look like {u}: write unit = \"{u}\""))
        .unwrap_or_default();
    Err(ctx.err(
        key,
        format!("{found}, but membrane potentials lie roughly between -200 mV and +200 mV{hint}"),
    ))
}

/// The voltage unit in which numbers of magnitude `peak` are plausible potentials.
fn suggest_voltage_unit(peak: f64) -> Option<&'static str> {
    ["volt", "mV", "uV"].into_iter().find(|u| {
        let v = peak * lookup_unit(u).map_or(f64::NAN, |q| q.value);
        (VOLTS_TOO_SMALL..=VOLTS_TOO_LARGE).contains(&v)
    })
}

/// The support of a prior marginal.
fn support(m: &Marginal) -> (f64, f64) {
    match *m {
        Marginal::Uniform { low, high } | Marginal::LogUniform { low, high } => (low, high),
        Marginal::Normal { .. } => (f64::NEG_INFINITY, f64::INFINITY),
        Marginal::LogNormal { .. } => (0.0, f64::INFINITY),
    }
}

/// A ground truth (display units) must lie in its prior's support.
pub(super) fn truth_in_prior(ctx: &Ctx, key: &str, value: f64, p: &FreeParameter) -> Result<()> {
    let (lo, hi) = support(&p.prior);
    let inside = match p.prior {
        Marginal::LogNormal { .. } => value > 0.0,
        _ => (lo..=hi).contains(&value),
    };
    if inside {
        return Ok(());
    }
    Err(ctx.err(
        key,
        format!(
            "the ground truth of `{}` is {} {u}, outside its prior's support [{}, {}] {u} (priors.{})",
            p.name,
            short(value),
            short(lo),
            short(hi),
            p.name,
            u = p.unit.name
        ),
    ))
}

/// The memory of the run's large arrays, each against the machine's memory.
pub(super) fn run_size(ctx: &Ctx, s: &InferenceSettings, p: &Problem) -> Result<()> {
    let trace = p.n_traces as f64 * p.n_steps as f64 * F64 * p.outputs.len() as f64;
    let (dim, dim_x) = (p.dim_theta() as f64, p.dim_x() as f64);
    let sims: f64 = s.rounds.iter().map(|&n| n as f64).sum();
    let hidden = s.estimator.hidden_features as f64;
    let checks = [
        (
            "inference.batch_size",
            "one batch of simulations' recordings",
            s.batch_size as f64 * trace,
        ),
        (
            "inference.predictive",
            "the posterior-predictive traces",
            s.predictive as f64 * trace,
        ),
        (
            "inference.samples",
            "the samples",
            s.samples as f64 * dim * F64,
        ),
        (
            "inference.simulations",
            "the simulations' parameters and features",
            sims * (dim + dim_x) * F64,
        ),
        (
            "inference.hidden_features",
            "the density estimator's weights",
            hidden * hidden * s.estimator.num_transforms.max(1) as f64 * F64,
        ),
    ];
    for (key, what, bytes) in checks {
        ctx.need(key, what, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_sizes_in_words() {
        let m = "MemTotal:       16318480 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(m), Some(16318480.0 * 1024.0));
        assert_eq!(mem_total("nothing"), None);
        assert!(machine_memory() > 0.0);
        assert_eq!(gigabytes(160e9), "160 GB");
        assert_eq!(gigabytes(2.5e9), "2.5 GB");
        assert_eq!(gigabytes(1.6e35), "1.6e26 GB");
        assert_eq!(ms(0.10003), "100.03 ms");
        assert_eq!(short(1000.0000000000001), "1000");
        assert_eq!(short(f64::INFINITY), "inf");
        assert_eq!(count_of(f64::NAN), None);
        assert_eq!(count_of(1e30), None);
        assert_eq!(count_of(-1.0), None);
        assert_eq!(count_of(3.0), Some(3));
    }

    #[test]
    fn voltage_unit_suggestions() {
        assert_eq!(suggest_voltage_unit(0.07), Some("volt"));
        assert_eq!(suggest_voltage_unit(70.0), Some("mV"));
        assert_eq!(suggest_voltage_unit(70_000.0), Some("uV"));
        assert_eq!(suggest_voltage_unit(0.0), None);
    }
}
