//! `neurosbi.simulate`: one run of a model file (a single neuron or a circuit of groups and
//! synapses) for one parameter set, the recorded variables as numpy arrays in SI.

use neurosbi_sim::{ModelSpec, RunConfig, parse_quantity};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A parameter value from Python: SI number or quantity text (`"3*mS/cm**2"`).
#[derive(FromPyObject)]
pub(crate) enum Value {
    Number(f64),
    Text(String),
}

/// The model's parameter values in its order: the model file's `[parameters]`, replaced by
/// `params`; every parameter needs one, and text must have the parameter's dimension.
fn parameter_values(
    spec: &ModelSpec,
    model: &neurosbi_sim::Model,
    params: Vec<(String, Value)>,
) -> PyResult<Vec<f64>> {
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    if let Some((n, _)) = params.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        return Err(PyValueError::new_err(format!(
            "params.{n}: not a parameter of the model (parameters: {})",
            names.join(", ")
        )));
    }
    model
        .parameters()
        .iter()
        .map(|p| {
            let given = params.iter().find(|(n, _)| *n == p.name).map(|(_, v)| v);
            let q = match given {
                Some(Value::Number(x)) => return Ok(*x),
                Some(Value::Text(t)) => parse_quantity(t)
                    .map_err(|e| PyValueError::new_err(format!("params.{}: {e}", p.name)))?,
                None => spec
                    .parameters
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, q)| *q)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "params.{}: no value (the model file's [parameters] has none)",
                            p.name
                        ))
                    })?,
            };
            if q.dim != p.dim {
                return Err(PyValueError::new_err(format!(
                    "params.{}: has dimension {}, the parameter is {}",
                    p.name, q.dim, p.dim
                )));
            }
            Ok(q.value)
        })
        .collect()
}

/// Simulates the model file text `model_toml` (`origin` names it in errors) for `n_steps`
/// steps of `dt` seconds with one parameter set, recording `record` (None: every recordable
/// variable). Returns `{name: trace (SI)}`, with `"spikes"` (times in s) when the model
/// has a threshold and `"spikes_NAME"` for each spiking neuron of a circuit.
#[pyfunction]
#[pyo3(signature = (model_toml, origin, dt, n_steps, params, record=None, seed=0))]
#[allow(clippy::too_many_arguments)] // the run's settings, each a keyword in Python
pub(crate) fn simulate_model<'py>(
    py: Python<'py>,
    model_toml: &str,
    origin: &str,
    dt: f64,
    n_steps: usize,
    params: Vec<(String, Value)>,
    record: Option<Vec<String>>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let err = |e: neurosbi_sim::SimError| PyValueError::new_err(format!("model: {e}"));
    // A dict from Python arrives as JSON: the same tables, written as TOML for the parser.
    let text = if model_toml.trim_start().starts_with('{') {
        let t: toml::Table = serde_json::from_str(model_toml)
            .map_err(|e| PyValueError::new_err(format!("model: {e}")))?;
        toml::to_string(&t).map_err(|e| PyValueError::new_err(format!("model: {e}")))?
    } else {
        model_toml.to_string()
    };
    let spec = ModelSpec::parse(origin, &text).map_err(err)?;
    let model = spec.build().map_err(err)?;
    let values = parameter_values(&spec, &model, params)?;
    let record = record.unwrap_or_else(|| model.recordable());
    if !(dt > 0.0 && dt.is_finite()) || n_steps == 0 {
        return Err(PyValueError::new_err(format!(
            "dt and duration: need dt > 0 and at least one step (dt {dt} s, {n_steps} steps)"
        )));
    }
    let refs: Vec<&str> = record.iter().map(String::as_str).collect();
    let cfg = RunConfig::new(dt, n_steps).record(&refs).seed(seed);
    let res = py
        .detach(|| {
            model
                .simulate(&values, 1, &[], &cfg)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| PyValueError::new_err(format!("model: {e}")))?;
    let out = PyDict::new(py);
    for name in &record {
        let tr = res.trace(name, 0).unwrap_or(&[]);
        out.set_item(name, PyArray1::from_slice(py, tr))?;
    }
    if model.description().threshold.is_some() {
        out.set_item("spikes", PyArray1::from_slice(py, &res.spikes[0]))?;
    }
    // A circuit's spiking neurons: `spikes_cells_3` (its flat name, as in the model).
    for (name, trains) in &res.events {
        out.set_item(
            format!("spikes_{name}"),
            PyArray1::from_slice(py, &trains[0]),
        )?;
    }
    if let Some(f) = res.failed.first() {
        return Err(crate::Error::new_err(format!(
            "the simulation failed: {} is not finite at step {}",
            f.variable, f.step
        )));
    }
    Ok(out)
}
