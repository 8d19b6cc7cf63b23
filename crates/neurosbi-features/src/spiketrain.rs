//! Spike-train statistics (Elephant's definitions) and the coincidence factor Γ of
//! Jolivet et al. (2008) against a reference train.
//!
//! Spike times come from the recording when the simulator recorded them; otherwise they
//! are the upward crossings of `threshold` (default -20 mV, eFEL's), interpolated
//! linearly between samples. Times in ms, rates in Hz.

use crate::error::FeatureError;
use crate::feature::{Feature, Input, Outcome, undefined};
use crate::params::Params;
use crate::recording::{Recording, Window};
use crate::set::CatalogueEntry;

/// Upward crossings of `threshold` (`v[i-1] < threshold <= v[i]`), linearly interpolated.
pub fn threshold_crossings(rec: &Recording<'_>, threshold: f64) -> Vec<f64> {
    let v = rec.values;
    let mut out = Vec::new();
    for i in 1..v.len() {
        if v[i - 1] < threshold && v[i] >= threshold {
            let frac = (threshold - v[i - 1]) / (v[i] - v[i - 1]);
            out.push(rec.time(i - 1) + frac * rec.dt);
        }
    }
    out
}

/// Time bounds `[start, stop]` of a window in ms, and whether `stop` is included.
fn bounds(rec: &Recording<'_>, w: Window) -> (f64, f64) {
    match w {
        Window::Whole => (0.0, rec.duration()),
        Window::Before => (0.0, rec.stim_start),
        Window::During => (rec.stim_start, rec.stim_end),
        Window::After => (rec.stim_end, rec.duration()),
        Window::Times { start, stop } => (start, stop),
    }
}

fn in_window(spikes: &[f64], (a, b): (f64, f64)) -> &[f64] {
    let lo = spikes.partition_point(|&t| t < a);
    let hi = spikes.partition_point(|&t| t < b).max(lo);
    &spikes[lo..hi]
}

/// Which spike-train statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainStat {
    /// Number of spikes.
    Count,
    /// Spikes per second over the window.
    Rate,
    /// Mean inter-spike interval (ms).
    IsiMean,
    /// ISI standard deviation (ddof 0) over mean (Elephant `cv`).
    IsiCv,
    /// Mean of 2|I(i+1) - I(i)| / (I(i+1) + I(i)) (Holt et al. 1996; Elephant `cv2`).
    Cv2,
    /// 3/(n-1) Σ ((I(i) - I(i+1)) / (I(i) + I(i+1)))² (Shinomoto et al. 2003; Elephant `lv`).
    Lv,
    /// Time of the first spike at or after stimulus onset (window start for
    /// [`train_stat`]), minus that time (ms).
    Latency,
    /// Variance over mean (ddof 0) of spike counts in consecutive bins of `bin` ms.
    Fano {
        /// Bin width (ms).
        bin: f64,
    },
}

/// A [`TrainStat`] of the spikes in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainFeature {
    /// The statistic.
    pub stat: TrainStat,
    /// Window of spike times considered.
    pub window: Window,
    /// Detection threshold (mV) when the recording carries no spike times.
    pub threshold: f64,
}

/// Statistic of sorted spike times within `[a, b)`.
pub fn train_stat(stat: TrainStat, spikes: &[f64], (a, b): (f64, f64)) -> Outcome {
    let s = in_window(spikes, (a, b));
    let isi = || s.windows(2).map(|w| w[1] - w[0]);
    let n_isi = s.len().saturating_sub(1);
    match stat {
        TrainStat::Count => Ok(s.len() as f64),
        TrainStat::Rate => {
            if b > a {
                Ok(s.len() as f64 * 1000.0 / (b - a))
            } else {
                undefined("window has zero duration")
            }
        }
        TrainStat::IsiMean => {
            if n_isi == 0 {
                undefined("fewer than two spikes")
            } else {
                Ok(isi().sum::<f64>() / n_isi as f64)
            }
        }
        TrainStat::IsiCv => {
            if n_isi < 2 {
                return undefined("fewer than three spikes (two intervals)");
            }
            let m = isi().sum::<f64>() / n_isi as f64;
            let var = isi().map(|x| (x - m) * (x - m)).sum::<f64>() / n_isi as f64;
            Ok(var.sqrt() / m)
        }
        TrainStat::Cv2 | TrainStat::Lv => {
            if n_isi < 2 {
                return undefined("fewer than three spikes (two intervals)");
            }
            let iv: Vec<f64> = isi().collect();
            let terms = iv.windows(2);
            if stat == TrainStat::Cv2 {
                Ok(terms
                    .map(|w| 2.0 * (w[1] - w[0]).abs() / (w[1] + w[0]))
                    .sum::<f64>()
                    / (n_isi - 1) as f64)
            } else {
                Ok(3.0 / (n_isi - 1) as f64
                    * terms
                        .map(|w| ((w[0] - w[1]) / (w[0] + w[1])).powi(2))
                        .sum::<f64>())
            }
        }
        TrainStat::Latency => match s.first() {
            Some(t) => Ok(t - a),
            None => undefined("no spike in the window"),
        },
        TrainStat::Fano { bin } => {
            let n_bins = ((b - a) / bin).floor().max(0.0) as usize;
            if n_bins < 2 {
                return undefined("window holds fewer than two bins");
            }
            if n_bins > 10_000_000 {
                return undefined("window holds more than 10 million bins");
            }
            let mut counts = vec![0.0f64; n_bins];
            for &t in s {
                let k = ((t - a) / bin) as usize;
                if k < n_bins {
                    counts[k] += 1.0;
                }
            }
            let m = counts.iter().sum::<f64>() / n_bins as f64;
            if m == 0.0 {
                return undefined("no spikes in the binned window");
            }
            Ok(counts.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / n_bins as f64 / m)
        }
    }
}

impl Feature for TrainFeature {
    fn name(&self) -> String {
        let base = match self.stat {
            TrainStat::Count => "train_count".to_string(),
            TrainStat::Rate => "train_rate".into(),
            TrainStat::IsiMean => "train_isi_mean".into(),
            TrainStat::IsiCv => "train_isi_cv".into(),
            TrainStat::Cv2 => "train_cv2".into(),
            TrainStat::Lv => "train_lv".into(),
            TrainStat::Latency => "train_latency".into(),
            TrainStat::Fano { bin } => format!("train_fano(bin={bin}"),
        };
        let mut extra = Vec::new();
        if self.window != Window::Whole && self.stat != TrainStat::Latency {
            extra.push(match self.window {
                Window::Times { start, stop } => format!("start={start}, stop={stop}"),
                w => format!("window={}", w.label()),
            });
        }
        if self.threshold != -20.0 {
            extra.push(format!("threshold={}", self.threshold));
        }
        match (
            base.ends_with(|c: char| c != ')') && base.contains('('),
            extra.is_empty(),
        ) {
            (true, true) => format!("{base})"),
            (true, false) => format!("{base}, {})", extra.join(", ")),
            (false, true) => base,
            (false, false) => format!("{base}({})", extra.join(", ")),
        }
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let rec = input.recording();
        let spikes = input.spike_times(self.threshold);
        out[0] = if self.stat == TrainStat::Latency {
            match spikes.iter().find(|&&t| t >= rec.stim_start) {
                Some(t) => Ok(t - rec.stim_start),
                None => undefined("no spike after stimulus onset"),
            }
        } else if spikes.windows(2).any(|w| w[1] < w[0]) {
            let mut s = spikes.to_vec();
            s.sort_by(f64::total_cmp);
            train_stat(self.stat, &s, bounds(rec, self.window))
        } else {
            train_stat(self.stat, &spikes, bounds(rec, self.window))
        };
    }
}

/// Coincidence factor Γ (Kistler et al. 1997; Jolivet et al. 2008) between the
/// recording's spikes and a reference train:
/// Γ = (N_coinc − 2 ν Δ N_ref) / (½ (N_ref + N_model) (1 − 2 ν Δ)), with ν the model's
/// rate over the recording and each model spike matched to at most one reference spike
/// within ±Δ. Γ = 1 for identical trains, ≈ 0 for chance coincidences.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaFactor {
    /// Coincidence window Δ (ms).
    pub delta: f64,
    /// Detection threshold (mV) when the recording carries no spike times.
    pub threshold: f64,
    /// Reference train (ms); when `None`, the recording's `reference_spikes` are used.
    pub reference: Option<Vec<f64>>,
}

/// Γ of `model` against `reference` over a recording of `duration` ms.
pub fn gamma_factor(model: &[f64], reference: &[f64], delta: f64, duration: f64) -> Outcome {
    if model.is_empty() && reference.is_empty() {
        return undefined("both spike trains are empty");
    }
    if duration <= 0.0 {
        return undefined("recording has zero duration");
    }
    let rate = model.len() as f64 / duration;
    let norm = 1.0 - 2.0 * rate * delta;
    if norm <= 0.0 {
        return undefined("model rate too high for the coincidence window (2 nu delta >= 1)");
    }
    // Greedy two-pointer matching on sorted trains: each model spike is used at most once.
    let mut coinc = 0usize;
    let mut j = 0usize;
    for &r in reference {
        while j < model.len() && model[j] < r - delta {
            j += 1;
        }
        if j < model.len() && model[j] <= r + delta {
            coinc += 1;
            j += 1;
        }
    }
    let expected = 2.0 * rate * delta * reference.len() as f64;
    Ok((coinc as f64 - expected) / (0.5 * (reference.len() + model.len()) as f64 * norm))
}

impl Feature for GammaFactor {
    fn name(&self) -> String {
        format!("gamma_factor(delta={})", self.delta)
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let rec = input.recording();
        let reference = match (&self.reference, rec.reference_spikes) {
            (Some(r), _) => r.as_slice(),
            (None, Some(r)) => r,
            (None, None) => {
                out[0] = undefined("no reference spike train");
                return;
            }
        };
        let model = input.spike_times(self.threshold);
        out[0] = gamma_factor(&model, reference, self.delta, rec.duration());
    }
}

fn build(stat: TrainStat, p: &mut Params) -> Result<Box<dyn Feature>, FeatureError> {
    let stat = match stat {
        TrainStat::Fano { .. } => TrainStat::Fano {
            bin: p.positive("bin", 10.0)?,
        },
        s => s,
    };
    let window = if stat == TrainStat::Latency {
        Window::Whole
    } else {
        p.window(Window::Whole)?
    };
    Ok(Box::new(TrainFeature {
        stat,
        window,
        threshold: p.f64("threshold", -20.0)?,
    }))
}

macro_rules! entry {
    ($name:literal, $stat:expr, $unit:literal, $summary:literal, $params:literal) => {
        CatalogueEntry {
            name: $name,
            group: "spiketrain",
            unit: $unit,
            summary: $summary,
            params: $params,
            build: |p| build($stat, p),
        }
    };
}

pub(crate) fn entries() -> Vec<CatalogueEntry> {
    vec![
        entry!(
            "train_count",
            TrainStat::Count,
            "count",
            "number of spikes in the window",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_rate",
            TrainStat::Rate,
            "Hz",
            "spike count over window duration",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_isi_mean",
            TrainStat::IsiMean,
            "ms",
            "mean inter-spike interval",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_isi_cv",
            TrainStat::IsiCv,
            "1",
            "ISI std (ddof 0) / ISI mean",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_cv2",
            TrainStat::Cv2,
            "1",
            "local variation CV2 (Holt 1996)",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_lv",
            TrainStat::Lv,
            "1",
            "local variation LV (Shinomoto 2003)",
            "window=whole, start, stop, threshold=-20"
        ),
        entry!(
            "train_latency",
            TrainStat::Latency,
            "ms",
            "first spike at/after onset minus onset",
            "threshold=-20"
        ),
        entry!(
            "train_fano",
            TrainStat::Fano { bin: 10.0 },
            "1",
            "Fano factor of spike counts in bins",
            "bin=10, window=whole, start, stop, threshold=-20"
        ),
        CatalogueEntry {
            name: "gamma_factor",
            group: "spiketrain",
            unit: "1",
            summary: "coincidence factor against the recording's reference train",
            params: "delta=4, threshold=-20",
            build: |p| {
                Ok(Box::new(GammaFactor {
                    delta: p.positive("delta", 4.0)?,
                    threshold: p.f64("threshold", -20.0)?,
                    reference: None,
                }))
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: (f64, f64) = (0.0, 1000.0);

    #[test]
    fn regular_train_has_zero_variability() {
        let s: Vec<f64> = (0..10).map(|i| 5.0 + 10.0 * i as f64).collect();
        assert_eq!(train_stat(TrainStat::Count, &s, W), Ok(10.0));
        assert_eq!(train_stat(TrainStat::Rate, &s, W), Ok(10.0));
        assert!((train_stat(TrainStat::IsiMean, &s, W).unwrap() - 10.0).abs() < 1e-12);
        assert!(train_stat(TrainStat::IsiCv, &s, W).unwrap().abs() < 1e-12);
        assert!(train_stat(TrainStat::Cv2, &s, W).unwrap().abs() < 1e-12);
        assert!(train_stat(TrainStat::Lv, &s, W).unwrap().abs() < 1e-12);
        // One spike per 10 ms bin over the first 100 ms: no count variance.
        assert_eq!(
            train_stat(TrainStat::Fano { bin: 10.0 }, &s, (0.0, 100.0)),
            Ok(0.0)
        );
    }

    #[test]
    fn alternating_intervals_match_hand_values() {
        // ISIs 1, 3, 1, 3: cv2 terms all 2*2/4 = 1; lv terms all (2/4)^2.
        let s = [0.0, 1.0, 4.0, 5.0, 8.0];
        assert!((train_stat(TrainStat::Cv2, &s, W).unwrap() - 1.0).abs() < 1e-12);
        assert!((train_stat(TrainStat::Lv, &s, W).unwrap() - 3.0 * 0.25).abs() < 1e-12);
        assert!((train_stat(TrainStat::IsiCv, &s, W).unwrap() - 0.5).abs() < 1e-12);
        assert!(train_stat(TrainStat::IsiCv, &s[..2], W).is_err());
    }

    #[test]
    fn gamma_is_one_for_identical_trains_and_low_for_shifted() {
        let s: Vec<f64> = (0..20).map(|i| 10.0 + 47.0 * i as f64).collect();
        assert!((gamma_factor(&s, &s, 2.0, 1000.0).unwrap() - 1.0).abs() < 1e-12);
        let shifted: Vec<f64> = s.iter().map(|t| t + 20.0).collect();
        assert!(gamma_factor(&shifted, &s, 2.0, 1000.0).unwrap() < 0.0);
        assert!(gamma_factor(&[], &[], 2.0, 1000.0).is_err());
    }

    #[test]
    fn crossings_are_interpolated() {
        let v = [-70.0, -30.0, -10.0, 10.0, -50.0];
        let r = Recording::new(&v, 0.5);
        let c = threshold_crossings(&r, -20.0);
        assert_eq!(c.len(), 1);
        assert!((c[0] - 0.75).abs() < 1e-12);
    }
}
