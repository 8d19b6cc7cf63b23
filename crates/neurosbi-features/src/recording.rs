//! The input of every feature: one sampled trace with its sampling interval, the stimulus
//! window, and optionally spike times.

use crate::error::RecordingError;

/// One recorded variable of one simulation (or one observed trace).
///
/// Times are in milliseconds and sample `i` is taken at `t = i * dt` (time zero is the
/// first sample). Voltages are in millivolts for the eFEL-style features; the other
/// features take any unit.
#[derive(Debug, Clone, Copy)]
pub struct Recording<'a> {
    /// The samples.
    pub values: &'a [f64],
    /// Sampling interval in ms.
    pub dt: f64,
    /// Stimulus onset in ms.
    pub stim_start: f64,
    /// Stimulus offset in ms.
    pub stim_end: f64,
    /// Spike times in ms, when the simulator recorded them.
    pub spikes: Option<&'a [f64]>,
    /// A reference (observed) spike train in ms, for the coincidence factor.
    pub reference_spikes: Option<&'a [f64]>,
    /// Stimulus amplitude in nA (for `ohmic_input_resistance`).
    pub stimulus_current: Option<f64>,
    /// Traces of other variables of the same simulation, sampled alike, for features of
    /// several traces at once (the neurons of a circuit).
    pub others: &'a [&'a [f64]],
}

impl<'a> Recording<'a> {
    /// A trace sampled every `dt` ms whose stimulus covers the whole trace.
    pub fn new(values: &'a [f64], dt: f64) -> Self {
        Self {
            values,
            dt,
            stim_start: 0.0,
            stim_end: values.len().saturating_sub(1) as f64 * dt,
            spikes: None,
            reference_spikes: None,
            stimulus_current: None,
            others: &[],
        }
    }

    /// Attaches the traces of other variables (same sampling as `values`).
    pub fn with_others(mut self, others: &'a [&'a [f64]]) -> Self {
        self.others = others;
        self
    }

    /// Sets the stimulus window `[on, off]` in ms.
    pub fn with_stimulus(mut self, on: f64, off: f64) -> Self {
        self.stim_start = on;
        self.stim_end = off;
        self
    }

    /// Attaches recorded spike times (ms).
    pub fn with_spikes(mut self, spikes: &'a [f64]) -> Self {
        self.spikes = Some(spikes);
        self
    }

    /// Attaches a reference spike train (ms) for coincidence measures.
    pub fn with_reference_spikes(mut self, spikes: &'a [f64]) -> Self {
        self.reference_spikes = Some(spikes);
        self
    }

    /// Sets the stimulus amplitude (nA).
    pub fn with_stimulus_current(mut self, current: f64) -> Self {
        self.stimulus_current = Some(current);
        self
    }

    /// Time of sample `i` in ms.
    #[inline(always)]
    pub fn time(&self, i: usize) -> f64 {
        i as f64 * self.dt
    }

    /// Duration from the first to the last sample, in ms.
    pub fn duration(&self) -> f64 {
        self.time(self.values.len().saturating_sub(1))
    }

    /// Checks that the recording can be analysed at all. A recording that fails this
    /// is a failed simulation; every feature of it is reported as such.
    pub fn validate(&self) -> Result<(), RecordingError> {
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(RecordingError::BadDt(self.dt));
        }
        if self.values.is_empty() {
            return Err(RecordingError::Empty);
        }
        if !(self.stim_start.is_finite()
            && self.stim_end.is_finite()
            && self.stim_start <= self.stim_end)
        {
            return Err(RecordingError::BadStimulus {
                on: self.stim_start,
                off: self.stim_end,
            });
        }
        if let Some(index) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(RecordingError::NonFinite {
                index,
                value: self.values[index],
            });
        }
        for train in [self.spikes, self.reference_spikes].into_iter().flatten() {
            if let Some(index) = train.iter().position(|t| !t.is_finite()) {
                return Err(RecordingError::NonFiniteSpike { index });
            }
        }
        Ok(())
    }

    /// First index `i` with `pred(t_i)` for a predicate monotone in time (false then
    /// true); `len` if none. Exact in floating point: it evaluates `i as f64 * dt` like
    /// numpy's `arange(n) * dt`, so window edges match the peers sample for sample.
    pub fn first_index(&self, pred: impl Fn(f64) -> bool) -> usize {
        let n = self.values.len();
        // Bisection on the monotone predicate: O(log n) and exact.
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.time(mid)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// Sample range of a window, as half-open indices.
    pub fn window_range(&self, window: Window) -> std::ops::Range<usize> {
        let n = self.values.len();
        let (on, off) = (self.stim_start, self.stim_end);
        match window {
            Window::Whole => 0..n,
            Window::Before => 0..self.first_index(|t| t >= on),
            // Strict inequalities, as the sbi tutorial's `(t > t_on) & (t < t_off)`.
            Window::During => {
                let a = self.first_index(|t| t > on);
                let b = self.first_index(|t| t >= off).max(a);
                a..b
            }
            Window::After => self.first_index(|t| t > off)..n,
            Window::Times { start, stop } => {
                let a = self.first_index(|t| t >= start);
                let b = self.first_index(|t| t >= stop).max(a);
                a..b
            }
        }
    }
}

/// A time window of a trace, relative to the stimulus or in explicit times.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Window {
    /// Every sample.
    Whole,
    /// Samples with `t < stim_start`.
    Before,
    /// Samples with `stim_start < t < stim_end` (strict, as the sbi tutorial).
    During,
    /// Samples with `t > stim_end`.
    After,
    /// Samples with `start <= t < stop` (ms).
    Times {
        /// Start time (ms).
        start: f64,
        /// Stop time (ms), excluded.
        stop: f64,
    },
}

impl Window {
    /// Parses `whole`, `before`, `during` (or `stim`), `after`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "whole" | "all" => Window::Whole,
            "before" | "pre" => Window::Before,
            "during" | "stim" => Window::During,
            "after" | "post" => Window::After,
            _ => return None,
        })
    }

    /// Canonical name used in feature names.
    pub fn label(&self) -> String {
        match self {
            Window::Whole => "whole".into(),
            Window::Before => "before".into(),
            Window::During => "stim".into(),
            Window::After => "after".into(),
            Window::Times { start, stop } => format!("{start}..{stop}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_strict_tutorial_edges() {
        let v = vec![0.0; 12001];
        let r = Recording::new(&v, 0.01).with_stimulus(10.0, 110.0);
        let before = r.window_range(Window::Before);
        assert_eq!(before, 0..1000);
        let during = r.window_range(Window::During);
        // numpy: t = arange(12001)*0.01; ((t > 10) & (t < 110)).nonzero()
        let first = (0..12001).find(|&i| i as f64 * 0.01 > 10.0).unwrap();
        let last = (0..12001)
            .rev()
            .find(|&i| (i as f64 * 0.01) < 110.0)
            .unwrap();
        assert_eq!(during, first..last + 1);
        assert_eq!(
            r.window_range(Window::Times {
                start: 200.0,
                stop: 300.0
            })
            .len(),
            0
        );
    }

    #[test]
    fn validate_reports_the_first_bad_sample() {
        let v = [1.0, f64::NAN, f64::INFINITY];
        let err = Recording::new(&v, 0.1).validate().unwrap_err();
        assert!(matches!(err, RecordingError::NonFinite { index: 1, .. }));
        assert_eq!(
            Recording::new(&[], 0.1).validate(),
            Err(RecordingError::Empty)
        );
        assert_eq!(
            Recording::new(&[1.0], -1.0).validate(),
            Err(RecordingError::BadDt(-1.0))
        );
    }
}
