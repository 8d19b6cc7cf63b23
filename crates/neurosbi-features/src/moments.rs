//! Moments and shape statistics of a trace in a window, and the seven statistics of the
//! sbi Hodgkin-Huxley tutorial as one fast feature.
//!
//! Definitions follow numpy / scipy.stats defaults: `std` and `var` with ddof 0,
//! `skew` = m3 / m2^1.5 (biased), `kurtosis` = m4 / m2^2 - 3 (Fisher, biased; pass
//! `fisher=false` for Pearson's m4 / m2^2), `percentile` with numpy's linear method.

use crate::error::FeatureError;
use crate::feature::{Feature, Input, Outcome, undefined};
use crate::params::Params;
use crate::recording::{Recording, Window};
use crate::set::CatalogueEntry;

/// Statistic computed over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Standard deviation (ddof 0).
    Std,
    /// Variance (ddof 0).
    Var,
    /// Skewness m3 / m2^1.5 (scipy `skew`, bias=True).
    Skew,
    /// Kurtosis m4 / m2^2, minus 3 when `fisher` (scipy `kurtosis` default).
    Kurtosis {
        /// Subtract 3 (excess kurtosis).
        fisher: bool,
    },
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Percentile `q` in [0, 100], numpy's linear interpolation.
    Percentile(f64),
}

/// A [`Stat`] of the samples in a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStat {
    /// The statistic.
    pub stat: Stat,
    /// The window.
    pub window: Window,
}

/// Mean of a slice (plain sum; within 1e-15 relative of numpy's pairwise sum here).
#[inline]
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Mean and central moments m2, m3, m4 (ddof 0) in two passes.
#[inline]
pub fn central_moments(x: &[f64]) -> (f64, f64, f64, f64) {
    let m = mean(x);
    let (mut s2, mut s3, mut s4) = (0.0, 0.0, 0.0);
    for &v in x {
        let d = v - m;
        let d2 = d * d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    let n = x.len() as f64;
    (m, s2 / n, s3 / n, s4 / n)
}

/// numpy's default (`linear`) percentile of unsorted data; `q` in [0, 100].
pub fn percentile(x: &[f64], q: f64) -> f64 {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * (q / 100.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = h - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    // numpy's _lerp: symmetric form keeps monotonicity near t = 1.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

impl WindowStat {
    fn stat_name(&self) -> String {
        match self.stat {
            Stat::Mean => "mean".into(),
            Stat::Std => "std".into(),
            Stat::Var => "var".into(),
            Stat::Skew => "skew".into(),
            Stat::Kurtosis { fisher: true } => "kurtosis".into(),
            Stat::Kurtosis { fisher: false } => "kurtosis(fisher=false".into(),
            Stat::Min => "min".into(),
            Stat::Max => "max".into(),
            Stat::Percentile(q) => format!("percentile(q={q}"),
        }
    }

    /// Computes the statistic of `rec`.
    pub fn eval(&self, rec: &Recording<'_>) -> Outcome {
        let x = &rec.values[rec.window_range(self.window)];
        if x.is_empty() {
            return undefined("window contains no samples");
        }
        let tiny = |m: f64, m2: f64| m2 <= (f64::EPSILON * m).powi(2) || m2 == 0.0;
        Ok(match self.stat {
            Stat::Mean => mean(x),
            Stat::Std => central_moments(x).1.sqrt(),
            Stat::Var => central_moments(x).1,
            Stat::Skew => {
                let (m, m2, m3, _) = central_moments(x);
                if tiny(m, m2) {
                    return undefined("skewness of a constant signal");
                }
                m3 / m2.powf(1.5)
            }
            Stat::Kurtosis { fisher } => {
                let (m, m2, _, m4) = central_moments(x);
                if tiny(m, m2) {
                    return undefined("kurtosis of a constant signal");
                }
                m4 / (m2 * m2) - if fisher { 3.0 } else { 0.0 }
            }
            Stat::Min => x.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Max => x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Stat::Percentile(q) => percentile(x, q),
        })
    }
}

impl Feature for WindowStat {
    fn name(&self) -> String {
        let base = self.stat_name();
        let open = base.contains('(');
        match (self.window, open) {
            (Window::Whole, true) => format!("{base})"),
            (Window::Whole, false) => base,
            (Window::Times { start, stop }, true) => format!("{base}, start={start}, stop={stop})"),
            (Window::Times { start, stop }, false) => format!("{base}(start={start}, stop={stop})"),
            (w, true) => format!("{base}, window={})", w.label()),
            (w, false) => format!("{base}(window={})", w.label()),
        }
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        out[0] = self.eval(input.recording());
    }
}

/// The seven summary statistics of the sbi Hodgkin-Huxley tutorial
/// (`calculate_summary_statistics` in sbi's `hh_helper_functions`), in its order:
/// spike count in the stimulus, resting mean before onset, resting std over
/// `[int(0.9*t_on/dt), int(t_on/dt))`, mean, variance, skewness and (Pearson)
/// kurtosis m4/std^4 during the stimulus (strictly between onset and offset).
///
/// Spikes: the trace is clipped below at `threshold` (-10 mV), samples followed by a
/// decrease are set to the threshold, and the remaining decreases mark peaks; peaks
/// strictly inside the stimulus are kept when more than `min_isi` (0.5 ms) after the
/// previous detected peak. One pass per window, no allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SbiHhTutorial {
    /// Clipping threshold in mV (-10).
    pub threshold: f64,
    /// Peaks closer than this to the previous one (ms) are not counted (0.5).
    pub min_isi: f64,
}

impl Default for SbiHhTutorial {
    fn default() -> Self {
        Self {
            threshold: -10.0,
            min_isi: 0.5,
        }
    }
}

impl SbiHhTutorial {
    /// Spike count as the tutorial computes it.
    pub fn spike_count(&self, rec: &Recording<'_>) -> usize {
        let v = rec.values;
        let n = v.len();
        if n < 3 {
            return 0;
        }
        let th = self.threshold;
        let (on, off) = (rec.stim_start, rec.stim_end);
        // w = max(v, th); u[i] = th where w[i+1] < w[i]; peaks where u[i+1] < u[i].
        let w = |i: usize| if v[i] < th { th } else { v[i] };
        let u = |i: usize, wi: f64, wn: Option<f64>| match wn {
            Some(next) if next < wi => th,
            _ => {
                let _ = i;
                wi
            }
        };
        let mut count = 0;
        let mut last: Option<f64> = None;
        let (mut w0, mut w1) = (w(0), w(1));
        let mut u0 = u(0, w0, Some(w1));
        for i in 0..n - 1 {
            let w2 = if i + 2 < n { Some(w(i + 2)) } else { None };
            let u1 = u(i + 1, w1, w2);
            if u1 < u0 {
                let t = rec.time(i);
                if t > on && t < off {
                    if last.is_none_or(|p| t - p > self.min_isi) {
                        count += 1;
                    }
                    last = Some(t);
                }
            }
            u0 = u1;
            w0 = w1;
            if let Some(x) = w2 {
                w1 = x;
            }
        }
        let _ = w0;
        count
    }

    /// All seven statistics.
    pub fn eval(&self, rec: &Recording<'_>, out: &mut [Outcome]) {
        let n = rec.values.len();
        out[0] = Ok(self.spike_count(rec) as f64);
        let before = rec.window_range(Window::Before);
        out[1] = if before.is_empty() {
            undefined("no samples before stimulus onset")
        } else {
            Ok(mean(&rec.values[before]))
        };
        // Python's int() truncates toward zero; slices clamp to the trace.
        let a = ((0.9 * rec.stim_start / rec.dt) as usize).min(n);
        let b = ((rec.stim_start / rec.dt) as usize).min(n).max(a);
        out[2] = if a == b {
            undefined("resting window [0.9 t_on, t_on) is empty")
        } else {
            Ok(central_moments(&rec.values[a..b]).1.sqrt())
        };
        let during = &rec.values[rec.window_range(Window::During)];
        if during.is_empty() {
            for o in &mut out[3..7] {
                *o = undefined("no samples during the stimulus");
            }
            return;
        }
        let (m, m2, m3, m4) = central_moments(during);
        out[3] = Ok(m);
        out[4] = Ok(m2);
        if m2 == 0.0 {
            out[5] = undefined("skewness of a constant signal");
            out[6] = undefined("kurtosis of a constant signal");
        } else {
            let sd = m2.sqrt();
            out[5] = Ok(m3 / (sd * sd * sd));
            out[6] = Ok(m4 / (sd * sd * sd * sd));
        }
    }
}

impl Feature for SbiHhTutorial {
    fn name(&self) -> String {
        if *self == Self::default() {
            "sbi_hh_tutorial".into()
        } else {
            format!(
                "sbi_hh_tutorial(threshold={}, min_isi={})",
                self.threshold, self.min_isi
            )
        }
    }

    fn n_outputs(&self) -> usize {
        7
    }

    fn output_names(&self) -> Vec<String> {
        [
            "spike_count",
            "rest_mean",
            "rest_std",
            "stim_mean",
            "stim_var",
            "stim_skew",
            "stim_kurtosis",
        ]
        .iter()
        .map(|s| format!("{}.{s}", self.name()))
        .collect()
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        self.eval(input.recording(), out);
    }
}

fn stat_builder(stat: Stat) -> impl Fn(&mut Params) -> Result<Box<dyn Feature>, FeatureError> {
    move |p: &mut Params| {
        let window = p.window(Window::Whole)?;
        let stat = match stat {
            Stat::Kurtosis { .. } => Stat::Kurtosis {
                fisher: p.bool("fisher", true)?,
            },
            Stat::Percentile(_) => {
                let q = p.f64("q", 50.0)?;
                if !(0.0..=100.0).contains(&q) {
                    return Err(FeatureError::BadParameter {
                        feature: p.feature().into(),
                        param: "q".into(),
                        reason: format!("must be in [0, 100], got {q}"),
                    });
                }
                Stat::Percentile(q)
            }
            s => s,
        };
        Ok(Box::new(WindowStat { stat, window }) as Box<dyn Feature>)
    }
}

macro_rules! stat_entry {
    ($name:literal, $stat:expr, $unit:literal, $summary:literal, $params:literal) => {
        CatalogueEntry {
            name: $name,
            group: "moments",
            unit: $unit,
            summary: $summary,
            params: $params,
            build: |p| stat_builder($stat)(p),
        }
    };
}

pub(crate) fn entries() -> Vec<CatalogueEntry> {
    const W: &str = "window=whole|before|stim|after, start=, stop= (ms)";
    let _ = W;
    vec![
        stat_entry!(
            "mean",
            Stat::Mean,
            "unit of the trace",
            "arithmetic mean in the window",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "std",
            Stat::Std,
            "unit of the trace",
            "standard deviation (ddof 0)",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "var",
            Stat::Var,
            "unit of the trace squared",
            "variance (ddof 0)",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "skew",
            Stat::Skew,
            "1",
            "skewness m3/m2^1.5 (scipy.stats.skew)",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "kurtosis",
            Stat::Kurtosis { fisher: true },
            "1",
            "kurtosis m4/m2^2 - 3 (scipy.stats.kurtosis; fisher=false drops the -3)",
            "window=whole, start, stop, fisher=true"
        ),
        stat_entry!(
            "min",
            Stat::Min,
            "unit of the trace",
            "minimum",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "max",
            Stat::Max,
            "unit of the trace",
            "maximum",
            "window=whole, start, stop"
        ),
        stat_entry!(
            "percentile",
            Stat::Percentile(50.0),
            "unit of the trace",
            "percentile q (numpy linear interpolation)",
            "q=50, window=whole, start, stop"
        ),
        CatalogueEntry {
            name: "sbi_hh_tutorial",
            group: "moments",
            unit: "count, mV, mV, mV, mV^2, 1, 1",
            summary: "the seven statistics of the sbi Hodgkin-Huxley tutorial",
            params: "threshold=-10, min_isi=0.5",
            build: |p| {
                let f = SbiHhTutorial {
                    threshold: p.f64("threshold", -10.0)?,
                    min_isi: p.f64("min_isi", 0.5)?,
                };
                Ok(Box::new(f))
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(stat: Stat, x: &[f64]) -> Outcome {
        WindowStat {
            stat,
            window: Window::Whole,
        }
        .eval(&Recording::new(x, 1.0))
    }

    #[test]
    fn moments_of_a_known_sample() {
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(stat(Stat::Mean, &x), Ok(5.0));
        assert_eq!(stat(Stat::Std, &x), Ok(2.0));
        assert_eq!(stat(Stat::Var, &x), Ok(4.0));
        // m3 = 5.25, m4 = 44.5 (hand computed).
        assert!((stat(Stat::Skew, &x).unwrap() - 5.25 / 8.0).abs() < 1e-12);
        assert!(
            (stat(Stat::Kurtosis { fisher: true }, &x).unwrap() - (44.5 / 16.0 - 3.0)).abs()
                < 1e-12
        );
        assert!((stat(Stat::Kurtosis { fisher: false }, &x).unwrap() - 44.5 / 16.0).abs() < 1e-12);
        assert_eq!(stat(Stat::Min, &x), Ok(2.0));
        assert_eq!(stat(Stat::Max, &x), Ok(9.0));
        assert_eq!(stat(Stat::Percentile(50.0), &x), Ok(4.5));
        assert_eq!(stat(Stat::Percentile(100.0), &x), Ok(9.0));
        assert_eq!(stat(Stat::Percentile(25.0), &x), Ok(4.0));
    }

    #[test]
    fn constant_signal_has_undefined_shape() {
        assert!(stat(Stat::Skew, &[3.0; 10]).is_err());
        assert!(stat(Stat::Kurtosis { fisher: true }, &[3.0; 10]).is_err());
        let r = Recording::new(&[1.0, 2.0], 1.0);
        let w = WindowStat {
            stat: Stat::Mean,
            window: Window::Times {
                start: 5.0,
                stop: 6.0,
            },
        };
        assert!(w.eval(&r).is_err());
    }

    #[test]
    fn gaussian_sample_moments_approach_theory() {
        // Box-Muller on a fixed grid of uniforms: deterministic normal sample.
        let n = 200_000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let u1 = (i as f64 + 0.5) / n as f64;
                let u2 = ((i * 7919) % n) as f64 / n as f64;
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        assert!(stat(Stat::Mean, &x).unwrap().abs() < 0.02);
        assert!((stat(Stat::Var, &x).unwrap() - 1.0).abs() < 0.02);
        assert!(stat(Stat::Kurtosis { fisher: true }, &x).unwrap().abs() < 0.1);
    }

    #[test]
    fn sbi_spike_count_merges_close_peaks_and_respects_window() {
        let dt = 0.1;
        let mut v = vec![-70.0; 1000];
        // Peaks at samples 200, 203 (0.3 ms later: not counted), 500, and 950 (after stim).
        for &p in &[200usize, 203, 500, 950] {
            v[p - 1] = 0.0;
            v[p] = 20.0;
            v[p + 1] = 0.0;
        }
        let r = Recording::new(&v, dt).with_stimulus(10.0, 90.0);
        assert_eq!(SbiHhTutorial::default().spike_count(&r), 2);
        let mut out = [Ok(0.0); 7];
        SbiHhTutorial::default().eval(&r, &mut out);
        assert_eq!(out[1], Ok(-70.0));
        assert_eq!(out[2], Ok(0.0));
    }
}
