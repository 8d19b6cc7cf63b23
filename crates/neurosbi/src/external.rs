//! Features computed by the calling program: functions the engine cannot read (the Python
//! package's `f(trace) -> float` callables, as brian2modelfitting allows), called once per
//! batch of simulations with every trace of the batch.
//!
//! A description names them (`outputs.VAR.external_features`); the program attaches the
//! functions ([`crate::Inferencer::from_spec_with`]). A door that has no function for a name
//! (a fit file run by `neurosbi fit`) refuses to simulate rather than guess. Their columns
//! follow the catalogue features of each trace.

use crate::error::{Error, Result};
use crate::problem::{Observed, Output};
use neurosbi_sim::SimResult;
use std::sync::Arc;

/// A feature computed by the caller over a batch of traces.
///
/// Batches, not single traces: a caller in another language pays its entry cost (the
/// Python GIL, array wrapping) once per batch of simulations instead of once per trace.
pub trait BatchFeature: Send + Sync {
    /// What identifies the function, recorded in the problem's fingerprint (so stored
    /// simulations of another function are not reused): e.g. its qualified name and a hash
    /// of its code. A change the provenance does not capture is not detected.
    fn provenance(&self) -> String;

    /// Writes one value per trace into `out` (same length as `traces`). Traces are in SI
    /// (volts), sampled every `dt` seconds. NaN marks an undefined value (the simulation then
    /// counts as invalid, as for catalogue features); `Err` stops the run with its message.
    fn compute(
        &self,
        traces: &[&[f64]],
        dt: f64,
        out: &mut [f64],
    ) -> std::result::Result<(), String>;
}

/// One external feature of an output: its name from the description and, once the program
/// attached it, its function.
#[derive(Clone)]
pub struct ExternalFeature {
    /// Column name (`VAR/TRACE/NAME`).
    pub name: String,
    /// The function, when attached.
    pub function: Option<Arc<dyn BatchFeature>>,
}

impl std::fmt::Debug for ExternalFeature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.function.as_ref().map(|f| f.provenance());
        write!(
            f,
            "{} ({})",
            self.name,
            p.as_deref().unwrap_or("not attached")
        )
    }
}

impl ExternalFeature {
    /// A name without its function yet.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            function: None,
        }
    }

    /// What the fingerprint records: the provenance, or that no function is attached.
    pub fn provenance(&self) -> String {
        match &self.function {
            Some(f) => format!("{}: {}", self.name, f.provenance()),
            None => format!("{}: not attached", self.name),
        }
    }

    pub(crate) fn function(&self, output: &str) -> Result<&Arc<dyn BatchFeature>> {
        self.function.as_ref().ok_or_else(|| {
            Error::invalid(
                format!("outputs.{output}.external_features"),
                format!(
                    "`{}` is computed by the program that defined it (the Python package's \
                     feature callables); there is no function for it here (a fit file cannot \
                     carry one)",
                    self.name
                ),
            )
        })
    }
}

/// The values of `o`'s external features for `traces` (SI): one row of
/// `o.external.len()` values per trace.
pub(crate) fn values_of(o: &Output, traces: &[&[f64]], dt: f64) -> Result<Vec<f64>> {
    let k = o.external.len();
    let mut out = vec![f64::NAN; traces.len() * k];
    let mut column = vec![f64::NAN; traces.len()];
    for (j, e) in o.external.iter().enumerate() {
        if traces.is_empty() {
            break;
        }
        e.function(&o.variable)?
            .compute(traces, dt, &mut column)
            .map_err(|why| {
                Error::invalid(format!("outputs.{}: feature `{}`", o.variable, e.name), why)
            })?;
        for (t, v) in column.iter().enumerate() {
            out[t * k + j] = *v;
        }
    }
    Ok(out)
}

/// The values of `o`'s external features for every neuron of `res` (`n_traces` per
/// parameter set), NaN for the sets `skip` says to leave out (failed simulations): one row
/// per neuron. The function sees only the traces of the sets kept, in one call.
pub(crate) fn values_of_result(
    o: &Output,
    res: &SimResult,
    n_traces: usize,
    dt: f64,
    skip: impl Fn(usize) -> bool,
) -> Result<Vec<f64>> {
    let k = o.external.len();
    let mut out = vec![f64::NAN; res.n_neurons * k];
    if k == 0 {
        return Ok(out);
    }
    let kept: Vec<usize> = (0..res.n_neurons)
        .filter(|n| !skip(n / n_traces.max(1)))
        .collect();
    let traces: Vec<&[f64]> = kept
        .iter()
        .map(|&n| res.trace(&o.variable, n).unwrap_or(&[]))
        .collect();
    let vals = values_of(o, &traces, dt)?;
    for (row, &n) in vals.chunks(k).zip(&kept) {
        out[n * k..(n + 1) * k].copy_from_slice(row);
    }
    Ok(out)
}

/// The values of `o`'s external features for observed `rows` (in the output's unit, as
/// `obs` holds them): one row per trace.
pub(crate) fn values_of_observed(
    o: &Output,
    obs: &Observed,
    rows: &[Vec<f64>],
    dt: f64,
) -> Result<Vec<f64>> {
    if o.external.is_empty() {
        return Ok(Vec::new());
    }
    if !matches!(obs, Observed::Traces(_)) {
        return Err(Error::invalid(
            format!("outputs.{}.external_features", o.variable),
            "features of the calling program read traces, not spike trains",
        ));
    }
    let si: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v * o.unit.scale).collect())
        .collect();
    let si: Vec<&[f64]> = si.iter().map(Vec::as_slice).collect();
    values_of(o, &si, dt)
}
