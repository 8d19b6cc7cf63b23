//! The [`Feature`] trait, its per-value [`Outcome`], and the per-recording [`Input`] that
//! shares expensive intermediate results (eFEL's interpolated trace, detected spikes)
//! between the features of one set.

use std::cell::RefCell;
use std::rc::Rc;

use crate::efel::{EfelSettings, EfelTrace};
use crate::recording::Recording;

/// Why a feature has no value for a valid recording (e.g. `ISI_CV` of one spike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Undefined(pub &'static str);

impl std::fmt::Display for Undefined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One feature value: a number, or the reason the feature is undefined for this data.
/// Undefined values become NaN in matrices ([`crate::FeatureMatrix::values`]).
pub type Outcome = Result<f64, Undefined>;

/// Shorthand for an undefined outcome.
#[inline]
pub fn undefined(reason: &'static str) -> Outcome {
    Err(Undefined(reason))
}

/// A summary statistic: a pure function from a recording to a fixed number of values.
///
/// Users extend the catalogue by implementing this trait and adding the feature to a
/// [`crate::FeatureSet`] with [`crate::FeatureSet::push`]. `compute` must not panic on
/// any valid recording (finite samples, positive `dt`); for data where it has no
/// meaning it writes an [`Undefined`] with a reason.
pub trait Feature: Send + Sync {
    /// Canonical name, including non-default parameters, e.g. `mean(window=stim)`.
    fn name(&self) -> String;

    /// Number of values written by [`Feature::compute`].
    fn n_outputs(&self) -> usize {
        1
    }

    /// Names of the outputs (one per value); defaults to the feature name.
    fn output_names(&self) -> Vec<String> {
        let n = self.n_outputs();
        if n == 1 {
            vec![self.name()]
        } else {
            (0..n).map(|i| format!("{}[{i}]", self.name())).collect()
        }
    }

    /// Computes the values into `out` (length [`Feature::n_outputs`]).
    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]);
}

/// A recording plus caches shared by the features of one set while they run on it.
pub struct Input<'a> {
    recording: Recording<'a>,
    efel: RefCell<Vec<(EfelSettings, Rc<EfelTrace>)>>,
    spikes: RefCell<Vec<(u64, Rc<Vec<f64>>)>>,
}

impl<'a> Input<'a> {
    /// Wraps a recording; it should have passed [`Recording::validate`].
    pub fn new(recording: Recording<'a>) -> Self {
        Self {
            recording,
            efel: RefCell::new(Vec::new()),
            spikes: RefCell::new(Vec::new()),
        }
    }

    /// The recording.
    #[inline]
    pub fn recording(&self) -> &Recording<'a> {
        &self.recording
    }

    /// eFEL's analysis of the trace (interpolation, peaks, AP begins, ...), computed once
    /// per settings and shared by all eFEL features.
    pub fn efel(&self, settings: &EfelSettings) -> Rc<EfelTrace> {
        if let Some((_, t)) = self.efel.borrow().iter().find(|(s, _)| s == settings) {
            return t.clone();
        }
        let trace = Rc::new(EfelTrace::new(&self.recording, settings));
        self.efel
            .borrow_mut()
            .push((settings.clone(), trace.clone()));
        trace
    }

    /// Spike times (ms): the recorded ones if present, else upward crossings of
    /// `threshold`, linearly interpolated between samples.
    pub fn spike_times(&self, threshold: f64) -> Rc<Vec<f64>> {
        if let Some(s) = self.recording.spikes {
            let key = u64::MAX;
            if let Some((_, t)) = self.spikes.borrow().iter().find(|(k, _)| *k == key) {
                return t.clone();
            }
            let t = Rc::new(s.to_vec());
            self.spikes.borrow_mut().push((key, t.clone()));
            return t;
        }
        let key = threshold.to_bits();
        if let Some((_, t)) = self.spikes.borrow().iter().find(|(k, _)| *k == key) {
            return t.clone();
        }
        let t = Rc::new(crate::spiketrain::threshold_crossings(
            &self.recording,
            threshold,
        ));
        self.spikes.borrow_mut().push((key, t.clone()));
        t
    }
}

/// How a per-spike feature (one value per action potential) becomes one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reducer {
    /// Arithmetic mean (eFEL's usual summary).
    Mean,
    /// First value.
    First,
    /// Last value.
    Last,
    /// Population standard deviation (ddof 0).
    Std,
}

impl Reducer {
    /// Parses `mean`, `first`, `last`, `std`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "mean" => Reducer::Mean,
            "first" => Reducer::First,
            "last" => Reducer::Last,
            "std" => Reducer::Std,
            _ => return None,
        })
    }

    /// Name as used in feature specifications.
    pub fn label(&self) -> &'static str {
        match self {
            Reducer::Mean => "mean",
            Reducer::First => "first",
            Reducer::Last => "last",
            Reducer::Std => "std",
        }
    }

    /// Reduces `values`; undefined when empty.
    pub fn reduce(&self, values: &[f64]) -> Outcome {
        if values.is_empty() {
            return undefined("no per-spike values to reduce");
        }
        let n = values.len() as f64;
        Ok(match self {
            Reducer::Mean => values.iter().sum::<f64>() / n,
            Reducer::First => values[0],
            Reducer::Last => values[values.len() - 1],
            Reducer::Std => {
                let m = values.iter().sum::<f64>() / n;
                (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reducers() {
        let v = [1.0, 2.0, 6.0];
        assert_eq!(Reducer::Mean.reduce(&v), Ok(3.0));
        assert_eq!(Reducer::First.reduce(&v), Ok(1.0));
        assert_eq!(Reducer::Last.reduce(&v), Ok(6.0));
        assert!((Reducer::Std.reduce(&v).unwrap() - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(Reducer::Mean.reduce(&[]).is_err());
    }
}
