//! Python feature callables `f(trace) -> float` (brian2modelfitting's `features=`) as the
//! facade's external features: called with the GIL once per batch of simulations, for each
//! of its traces (SI values, as brian2modelfitting hands them).
//!
//! The first failure (the callable raised, or returned something that is not one number)
//! is kept in a slot the inferencer shares with its progress observer: the simulations stop
//! after the current chunk and `infer` raises that error, naming the feature.

use std::sync::{Arc, Mutex};

use neurosbi::external::BatchFeature;
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The first error of any feature of one inferencer.
pub(crate) type ErrorSlot = Arc<Mutex<Option<PyErr>>>;

/// A Python callable as an external feature of output `output`.
pub(crate) struct PyFeature {
    pub(crate) output: String,
    pub(crate) name: String,
    pub(crate) func: Py<PyAny>,
    pub(crate) provenance: String,
    pub(crate) error: ErrorSlot,
}

impl PyFeature {
    /// The feature's value for one trace, or the Python error to raise.
    fn call(&self, py: Python<'_>, trace: &[f64], k: usize) -> PyResult<f64> {
        let what = format!("features.{}: `{}`", self.output, self.name);
        let arr = PyArray1::from_slice(py, trace);
        let v = self.func.call1(py, (arr,)).map_err(|e| {
            let err = simulator_error(
                py,
                format!(
                    "{what} raised on trace {k} of a batch: {}",
                    e.value(py)
                        .repr()
                        .map_or_else(|_| e.to_string(), |r| r.to_string())
                ),
            );
            err.set_cause(py, Some(e));
            err
        })?;
        let v = v.bind(py);
        let scalar = v
            .getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .map_or(true, |n| n == 0);
        let is_text = v.is_instance_of::<pyo3::types::PyString>();
        match v.extract::<f64>() {
            Ok(x) if scalar && !is_text => Ok(x),
            _ => Err(PyValueError::new_err(format!(
                "{what} returned {} ({}) on trace {k} of a batch; a feature returns one \
                 float (NaN where undefined)",
                v.get_type().name().map_or("?".into(), |n| n.to_string()),
                v.repr().map_or("?".into(), |r| r.to_string())
            ))),
        }
    }
}

/// `neurosbi.SimulatorError(message)` (defined in Python), or `neurosbi.Error` if that
/// module cannot be imported.
fn simulator_error(py: Python<'_>, message: String) -> PyErr {
    let class = py
        .import("neurosbi.simulate")
        .and_then(|m| m.getattr("SimulatorError"));
    match class.and_then(|c| c.call1((message.clone(),))) {
        Ok(e) => PyErr::from_value(e),
        Err(_) => crate::Error::new_err(message),
    }
}

impl BatchFeature for PyFeature {
    fn provenance(&self) -> String {
        self.provenance.clone()
    }

    fn compute(&self, traces: &[&[f64]], _dt: f64, out: &mut [f64]) -> Result<(), String> {
        let failed = || "stopped: a feature failed on an earlier batch".to_string();
        if self.error.lock().map_or(true, |e| e.is_some()) {
            return Err(failed());
        }
        Python::attach(|py| {
            for (k, (t, o)) in traces.iter().zip(out.iter_mut()).enumerate() {
                match self.call(py, t, k) {
                    Ok(v) => *o = v,
                    Err(e) => {
                        let msg = e.to_string();
                        if let Ok(mut slot) = self.error.lock() {
                            slot.get_or_insert(e);
                        }
                        return Err(msg);
                    }
                }
            }
            Ok(())
        })
    }
}
