//! The 15 summary statistics of the pyloric rhythm (AB/PD, LP and PY neurons of the
//! crab stomatogastric ganglion) used by Gonçalves et al. (eLife 2020, "Training deep
//! neural density estimators to identify mechanistic models of neural dynamics") and
//! Deistler, Macke & Gonçalves (PNAS 2022), after Prinz, Bucher & Marder (2004).
//!
//! Reference implementation: the `pyloric` package (mackelab/pyloric, commit
//! 89dd27d7), `pyloric/summary_statistics.py`: `PrinzStats.analyse_neuron` (spikes,
//! bursts), `PrinzStats.analyse_data` (cycle period, triphasic periods) and
//! `PrinzStats.calc_summ_stats` (the statistics), as called by
//! `pyloric.summary_stats(out, t_burn_in=1000)`. The tests in `tests/pyloric.rs` compare
//! with that package's output on committed simulations (`scripts/pyloric/generate.py`).
//!
//! Two layers, so that a simulator that records spike times can skip the first:
//! - [`detect_spikes`]: voltage trace → spike times (Savitzky-Golay smoothing, then
//!   peaks above −10 mV);
//! - [`stats_from_spikes`]: spike times of the three neurons → [`PyloricStats`].
//!
//! [`pyloric_stats`] does both on the three traces of one simulation.
//!
//! Rules, as in the package (times in ms, voltages in mV):
//! - bursts: spikes separated by less than 150 ms belong to one burst; bursts lasting
//!   40 ms or less (first to last spike) are discarded;
//! - cycle period: mean interval between successive AB/PD burst starts; undefined with
//!   fewer than two AB/PD bursts;
//! - a *period* runs from one AB/PD burst start to the next; it is triphasic when each
//!   of the three neurons starts exactly one burst in it; the rhythm is triphasic when at
//!   least 90 % of the periods are;
//! - burst durations and duty cycles are defined whenever the neuron (and, for duty
//!   cycles, AB/PD's cycle period) has bursts; phases, delays and gaps only when the
//!   rhythm is triphasic, as means over the triphasic periods. Undefined values are NaN.
//!
//! ```
//! use neurosbi_features::pyloric::{STAT_NAMES, stats_from_spikes};
//!
//! // A 1 s rhythm: AB/PD bursts at 0, LP at 400, PY at 650 ms into each cycle,
//! // 10 spikes 20 ms apart (180 ms bursts).
//! let train = |offset: f64| -> Vec<f64> {
//!     (0..5)
//!         .flat_map(|c| (0..10).map(move |k| 1000.0 * c as f64 + offset + 20.0 * k as f64))
//!         .collect()
//! };
//! let s = stats_from_spikes([&train(0.0), &train(400.0), &train(650.0)]);
//! assert!(s.triphasic && s.pyloric_like);
//! assert_eq!(STAT_NAMES[0], "cycle_period");
//! assert_eq!(s.values[0], 1000.0);
//! assert_eq!(s.values[1], 180.0); // AB/PD burst duration
//! assert_eq!(s.values[7], 0.4); // LP start phase
//! assert_eq!(s.values[12], 650.0 - 580.0); // LP end to PY start
//! ```

mod feature;
mod savgol;
pub use feature::PyloricFeature;
pub(crate) use feature::entries;

use crate::error::RecordingError;

/// Names of the three neurons in statistic order (the package calls AB/PD "PM").
pub const NEURONS: [&str; 3] = ["AB/PD", "LP", "PY"];

/// Names of the 15 statistics in the order of `pyloric.summary_stats` (Deistler et al.
/// 2022). Gonçalves et al. (2020) order them differently and report the delay
/// AB/PD→PY instead of LP→PY; `tests/fixtures/pyloric/prior_observation.json` maps one
/// onto the other.
pub const STAT_NAMES: [&str; 15] = [
    "cycle_period",
    "burst_durations.AB/PD",
    "burst_durations.LP",
    "burst_durations.PY",
    "duty_cycles.AB/PD",
    "duty_cycles.LP",
    "duty_cycles.PY",
    "start_phases.LP",
    "start_phases.PY",
    "starts_to_starts.AB/PD-LP",
    "starts_to_starts.LP-PY",
    "ends_to_starts.AB/PD-LP",
    "ends_to_starts.LP-PY",
    "phase_gaps.AB/PD-LP",
    "phase_gaps.LP-PY",
];

/// The observed statistics of preparation 845_082_0044 (Gonçalves et al. 2020, Fig. 8),
/// in the order of [`STAT_NAMES`]: mackelab/IdentifyMechanisticModels_2020 @ b93c90ec,
/// `7_stg/results/31D_experimental/190807_summstats_prep845_082_0044.npz`, reordered;
/// `starts_to_starts.LP-PY` is its AB/PD→PY delay minus its AB/PD→LP delay.
pub const OBSERVATION_845_082_0044: [f64; 15] = [
    1170.8585937500002,
    206.03643410852757,
    214.3070312499983,
    412.84218749999985,
    0.17597038208400437,
    0.18303408489629858,
    0.3525978198424098,
    0.41160032801783486,
    0.6305448926035179,
    481.9257812500009,
    256.35312499999895,
    275.16484375000044,
    42.04609375000071,
    0.23501116635161598,
    0.035910479689384524,
];

/// Minimum voltage (mV) of a spike peak (`spike_thresh`).
const SPIKE_THRESHOLD: f64 = -10.0;
/// Spikes closer than this (ms) belong to one burst (`ibi_threshold`).
const INTERBURST_GAP: f64 = 150.0;
/// Bursts must last longer than this (ms) to count (`bl_thresh`).
const MIN_BURST_DURATION: f64 = 40.0;
/// Fraction of triphasic periods for a triphasic rhythm (`triphasic_thresh`).
const TRIPHASIC_FRACTION: f64 = 0.9;
/// Fraction of periods in pyloric order for a pyloric-like rhythm (`pyloric_thresh`).
const PYLORIC_FRACTION: f64 = 0.7;

/// Spike times (ms, from the first sample) of one voltage trace sampled every `dt` ms.
///
/// As `analyse_neuron`: the trace is smoothed with a cubic Savitzky-Golay filter over
/// `int(0.5 / dt)` samples (made odd), and a spike is a local maximum of the smoothed
/// trace above −10 mV (`v[j+1] > −10`, `v[j+1] ≥ v[j]`, `v[j+2] ≤ v[j+1]`). The package
/// reports the time of the sample *before* the peak (`t[j]`), and so does this function,
/// so that spike times agree exactly.
pub fn detect_spikes(v: &[f64], dt: f64) -> Vec<f64> {
    let mut window = (0.5 / dt) as usize;
    if window.is_multiple_of(2) {
        window += 1;
    }
    // scipy refuses a window shorter than the cubic needs; the package's dt never asks.
    // Only samples that can be above the threshold (and their neighbours) are smoothed.
    let s = savgol::smooth_above(v, window.max(5), SPIKE_THRESHOLD);
    s.windows(3)
        .enumerate()
        .filter(|(_, w)| w[1] > SPIKE_THRESHOLD && w[1] - w[0] >= 0.0 && w[2] - w[1] <= 0.0)
        .map(|(j, _)| j as f64 * dt)
        .collect()
}

/// The bursts of one neuron: start and end (first and last spike time, ms) of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bursts {
    /// Time of the first spike of each burst.
    pub starts: Vec<f64>,
    /// Time of the last spike of each burst.
    pub ends: Vec<f64>,
}

impl Bursts {
    /// Groups sorted spike times into bursts and drops those of 40 ms or less.
    pub fn from_spikes(spikes: &[f64]) -> Bursts {
        let mut out = Bursts::default();
        let mut start = 0;
        for i in 0..spikes.len() {
            // The last spike always ends a burst (the package appends it).
            let ends_burst = i + 1 == spikes.len() || spikes[i + 1] - spikes[i] >= INTERBURST_GAP;
            if ends_burst {
                if spikes[i] - spikes[start] > MIN_BURST_DURATION {
                    out.starts.push(spikes[start]);
                    out.ends.push(spikes[i]);
                }
                start = i + 1;
            }
        }
        out
    }

    /// Number of bursts.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there is no burst.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Mean burst duration (`avg_burst_length`); NaN without bursts.
    pub fn mean_duration(&self) -> f64 {
        mean(self.starts.iter().zip(&self.ends).map(|(s, e)| e - s))
    }

    /// Mean interval between burst starts (`avg_cycle_length`); NaN with fewer than two.
    pub fn mean_cycle(&self) -> f64 {
        mean(self.starts.windows(2).map(|w| w[1] - w[0]))
    }
}

/// One triphasic period: the (start, end) of the one burst of each neuron.
type Period = [(f64, f64); 3];

/// The 15 statistics and the classification of the rhythm.
#[derive(Debug, Clone, PartialEq)]
pub struct PyloricStats {
    /// The statistics in the order of [`STAT_NAMES`]; NaN where undefined.
    pub values: [f64; 15],
    /// At least 90 % of the AB/PD periods are triphasic (`triphasic`).
    pub triphasic: bool,
    /// Triphasic, and in at least 70 % of the triphasic periods LP starts before PY,
    /// LP ends before PY and AB/PD ends before LP starts (`pyloric_like`, Prinz 2004).
    pub pyloric_like: bool,
}

impl PyloricStats {
    /// Whether every statistic is defined (the papers keep only such simulations).
    pub fn all_defined(&self) -> bool {
        self.values.iter().all(|v| !v.is_nan())
    }
}

/// The 15 statistics from the spike times (ms, sorted ascending, finite) of AB/PD, LP
/// and PY, e.g. those of [`detect_spikes`] or a simulator's own.
pub fn stats_from_spikes(spikes: [&[f64]; 3]) -> PyloricStats {
    let bursts = spikes.map(Bursts::from_spikes);
    let period = bursts[0].mean_cycle();
    let (triphasic, periods) = if period.is_nan() {
        (false, Vec::new())
    } else {
        triphasic_periods(&bursts)
    };
    let mut v = [f64::NAN; 15];
    v[0] = period;
    for n in 0..3 {
        v[1 + n] = bursts[n].mean_duration();
        v[4 + n] = v[1 + n] / period;
    }
    if triphasic {
        // Delays (start to start) and gaps (end to start) of neuron b after neuron a.
        let delay = |a: usize, b: usize| mean(periods.iter().map(|p| p[b].0 - p[a].0));
        let gap = |a: usize, b: usize| mean(periods.iter().map(|p| p[b].0 - p[a].1));
        v[7] = delay(0, 1) / period;
        v[8] = delay(0, 2) / period;
        v[9] = delay(0, 1);
        v[10] = delay(1, 2);
        v[11] = gap(0, 1);
        v[12] = gap(1, 2);
        v[13] = v[11] / period;
        v[14] = v[12] / period;
    }
    PyloricStats {
        values: v,
        triphasic,
        pyloric_like: triphasic && pyloric_order(&periods),
    }
}

/// The periods between successive AB/PD burst starts in which every neuron starts one
/// burst, and whether they are at least 90 % of all periods.
fn triphasic_periods(bursts: &[Bursts; 3]) -> (bool, Vec<Period>) {
    let starts = &bursts[0].starts;
    let mut periods = Vec::new();
    for w in starts.windows(2) {
        let one_each: Option<Vec<(f64, f64)>> = bursts
            .iter()
            .map(|b| only_burst_in(b, w[0], w[1]))
            .collect();
        if let Some(p) = one_each {
            periods.push([p[0], p[1], p[2]]);
        }
    }
    let n_periods = starts.len() - 1;
    let triphasic = periods.len() as f64 / n_periods as f64 >= TRIPHASIC_FRACTION;
    (triphasic, periods)
}

/// The (start, end) of the burst that starts in `[from, to)`, if exactly one does.
fn only_burst_in(b: &Bursts, from: f64, to: f64) -> Option<(f64, f64)> {
    let mut inside = (0..b.len()).filter(|&i| from <= b.starts[i] && b.starts[i] < to);
    match (inside.next(), inside.next()) {
        (Some(i), None) => Some((b.starts[i], b.ends[i])),
        _ => None,
    }
}

/// Prinz et al.'s (2004) order of the pyloric rhythm in at least 70 % of the periods.
fn pyloric_order(periods: &[Period]) -> bool {
    let in_order = periods
        .iter()
        .filter(|[ab, lp, py]| lp.0 <= py.0 && lp.1 <= py.1 && ab.1 <= lp.0)
        .count();
    in_order as f64 / periods.len() as f64 >= PYLORIC_FRACTION
}

/// Arithmetic mean; NaN when empty (numpy's `np.mean` of an empty list, minus the warning).
fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Settings of [`pyloric_stats`]: the sampling step and the burn-in that is discarded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyloricSettings {
    /// Sampling step of the traces (ms). Default 0.025, the package's.
    pub dt: f64,
    /// Time discarded at the start of each trace (ms). Default 1000 (`t_burn_in`).
    pub burn_in: f64,
}

impl Default for PyloricSettings {
    fn default() -> Self {
        PyloricSettings {
            dt: 0.025,
            burn_in: 1000.0,
        }
    }
}

/// The 15 statistics of one simulation from the voltage traces (mV) of AB/PD, LP and
/// PY, each starting at t = 0 and sampled every `settings.dt` ms.
///
/// As `pyloric.summary_stats`: samples before `int(burn_in / dt)` are dropped, spike
/// times are measured from the end of the burn-in, then [`stats_from_spikes`].
///
/// A trace with a non-finite sample (a simulation that blew up; `index` counts from the
/// start of that trace) or with nothing after the burn-in is a [`RecordingError`], not a
/// set of NaN statistics, so that failed simulations are not mistaken for non-pyloric ones.
pub fn pyloric_stats(
    traces: [&[f64]; 3],
    settings: &PyloricSettings,
) -> Result<PyloricStats, RecordingError> {
    let dt = settings.dt;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(RecordingError::BadDt(dt));
    }
    let skip = (settings.burn_in / dt) as usize;
    for v in traces {
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(RecordingError::NonFinite {
                index,
                value: v[index],
            });
        }
        if v.len() <= skip {
            return Err(RecordingError::Empty);
        }
    }
    let spikes = traces.map(|v| detect_spikes(&v[skip..], dt));
    Ok(stats_from_spikes([&spikes[0], &spikes[1], &spikes[2]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_split_at_150_ms_and_drop_short_ones() {
        let spikes = [0.0, 20.0, 50.0, 300.0, 310.0, 600.0, 700.0, 749.0];
        let b = Bursts::from_spikes(&spikes);
        // [0, 50] is kept (50 > 40), [300, 310] dropped, [600, 749] kept (gaps < 150).
        assert_eq!(b.starts, vec![0.0, 600.0]);
        assert_eq!(b.ends, vec![50.0, 749.0]);
        assert_eq!(b.mean_cycle(), 600.0);
    }

    #[test]
    fn failed_simulations_are_errors_not_nan_statistics() {
        let ok = vec![-50.0; 100];
        let mut bad = ok.clone();
        bad[7] = f64::NAN;
        let s = PyloricSettings {
            dt: 0.025,
            burn_in: 1.0,
        };
        let err = pyloric_stats([&ok, &bad, &ok], &s).unwrap_err();
        assert!(matches!(err, RecordingError::NonFinite { index: 7, .. }));
        let short = PyloricSettings {
            dt: 0.025,
            burn_in: 10.0,
        };
        assert_eq!(
            pyloric_stats([&ok, &ok, &ok], &short),
            Err(RecordingError::Empty)
        );
        let flat = pyloric_stats([&ok, &ok, &ok], &s).unwrap();
        assert!(flat.values.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn no_spikes_give_nan_everywhere() {
        let s = stats_from_spikes([&[], &[], &[]]);
        assert!(s.values.iter().all(|v| v.is_nan()));
        assert!(!s.triphasic && !s.pyloric_like);
    }
}
