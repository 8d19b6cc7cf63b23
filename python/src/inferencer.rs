//! The Rust side of `neurosbi.Inferencer` (brian2modelfitting's API): a problem description
//! (`neurosbi::spec::ProblemSpec`, as JSON built by python/neurosbi/inferencer.py) validated
//! by `neurosbi::Inferencer::from_spec` (the one validation of every door) and run exactly as
//! `neurosbi fit` runs a fit file.

// The facade's errors carry the lower layers' errors (as the facade itself allows): they are
// built on the cold path only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use neurosbi::fit::inference_config_for;
use neurosbi::plot::{self, PairData};
use neurosbi::problem::Observed;
use neurosbi::spec::ProblemSpec;
use neurosbi_infer::{Progress, RunObserver};
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

use crate::external::{ErrorSlot, PyFeature};
use crate::{Error, PyPosterior, matrix, to_numpy, to_py};
use neurosbi::external::BatchFeature;

/// Name errors of a Python-built description are reported under (`neurosbi.Inferencer:
/// `priors.gl`: ...`).
const ORIGIN: &str = "neurosbi.Inferencer";

/// Maps a facade error to the Python exception of its kind, keeping the Rust message.
pub(crate) fn facade_err(e: neurosbi::Error) -> PyErr {
    use neurosbi::Error as E;
    let msg = e.to_string();
    match e {
        E::Config { .. } | E::Invalid { .. } | E::Sim(_) | E::Feature(_) => {
            PyValueError::new_err(msg)
        }
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        E::Infer(e) => to_py(e),
        _ => Error::new_err(msg),
    }
}

/// Calls the Python progress callback `cb(stage, done, total)` from the engine's observers
/// (with the GIL taken back for the call). A callback that raises (Ctrl-C included) stops
/// the simulations after the current chunk; the error is raised when `infer` returns.
struct Callback {
    cb: Option<Py<PyAny>>,
    error: Option<PyErr>,
    total_epochs: usize,
    /// A feature callable's failure: stops the simulations after the current chunk.
    features: ErrorSlot,
}

impl Callback {
    fn call(&mut self, stage: &str, done: u64, total: u64) -> ControlFlow<()> {
        if self.features.lock().map_or(true, |e| e.is_some()) {
            return ControlFlow::Break(());
        }
        let Some(cb) = &self.cb else {
            return ControlFlow::Continue(());
        };
        if self.error.is_some() {
            return ControlFlow::Break(());
        }
        let r = Python::attach(|py| {
            py.check_signals()?;
            cb.call1(py, (stage, done, total)).map(drop)
        });
        match r {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

impl RunObserver for Callback {
    fn on_chunk(&mut self, p: Progress) -> ControlFlow<()> {
        self.call("simulating", p.done, p.total)
    }
}

impl neurosbi_flows::TrainObserver for Callback {
    fn on_epoch(&mut self, epoch: usize, _train: f64, _val: f64) {
        let _ = self.call("training", epoch as u64, self.total_epochs as u64);
    }
}

/// Raises the first failure of a feature callable, if any (and clears it, so a later call
/// can run again).
fn take_feature_error(slot: &ErrorSlot) -> PyResult<()> {
    match slot.lock().ok().and_then(|mut e| e.take()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Posterior inference for a neuron model from a problem description (JSON of
/// `ProblemSpec`); see python/neurosbi/inferencer.py for the user-facing class.
#[pyclass(module = "neurosbi._neurosbi", name = "ProblemInferencer")]
pub(crate) struct ProblemInferencer {
    inner: neurosbi::Inferencer,
    /// The first failure of a feature callable (see crate::external).
    feature_error: ErrorSlot,
}

impl ProblemInferencer {
    fn dim(&self) -> usize {
        self.inner.problem().dim_theta()
    }

    fn labels(&self) -> Vec<String> {
        let p = self.inner.problem();
        p.free
            .iter()
            .map(|f| format!("{}{}", f.name, f.unit.suffix()))
            .collect()
    }

    fn condition(&self, py: Python<'_>, condition: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let m = matrix(py, condition, "condition", Some(self.dim()), true)?;
        Ok(m.data[..self.dim()].to_vec())
    }
}

/// Renders `draw` into a fresh temporary folder and returns the SVG text of `stem`.
fn svg_of(
    stem: &str,
    draw: impl FnOnce(&Path) -> neurosbi::Result<()>,
) -> neurosbi::Result<String> {
    let dir = std::env::temp_dir().join(format!(
        "neurosbi-plot-{}-{}",
        std::process::id(),
        crate::fresh_seed()
    ));
    let res = draw(&dir).and_then(|()| {
        let p = dir.join(format!("{stem}.svg"));
        std::fs::read_to_string(&p).map_err(neurosbi::Error::io(p))
    });
    let _ = std::fs::remove_dir_all(&dir);
    res
}

#[pymethods]
impl ProblemInferencer {
    /// Validates the description (JSON of `ProblemSpec`) and computes the observation's
    /// features.
    /// `features`: the feature callables of the description's `external_features`, as
    /// (output, name, callable, provenance).
    #[new]
    #[pyo3(signature = (spec_json, features=Vec::new()))]
    fn new(
        py: Python<'_>,
        spec_json: &str,
        features: Vec<(String, String, Py<PyAny>, String)>,
    ) -> PyResult<Self> {
        let spec: ProblemSpec = serde_json::from_str(spec_json)
            .map_err(|e| PyValueError::new_err(format!("{ORIGIN}: problem description: {e}")))?;
        let feature_error = ErrorSlot::default();
        let functions = features
            .into_iter()
            .map(|(output, name, func, provenance)| {
                let f: Arc<dyn BatchFeature> = Arc::new(PyFeature {
                    output: output.clone(),
                    name: name.clone(),
                    func,
                    provenance,
                    error: feature_error.clone(),
                });
                (output, name, f)
            })
            .collect();
        let res =
            py.detach(|| neurosbi::Inferencer::from_spec_with(&spec, Path::new(ORIGIN), functions));
        take_feature_error(&feature_error)?;
        let inner = res.map_err(facade_err)?;
        Ok(Self {
            inner,
            feature_error,
        })
    }

    /// The problem's fingerprint, part by part: (name, SHA-256 hex). A feature callable
    /// enters the `features` part by its qualified name and code hash.
    fn fingerprint(&self) -> Vec<(String, String)> {
        let inner = &self.inner;
        inner
            .problem()
            .fingerprint(inner.observed(), inner.spec().seed)
            .parts()
            .to_vec()
    }

    /// Simulates, trains and keeps the posterior with the description's `[inference]`
    /// settings and seed, exactly as `neurosbi fit` does; `progress(stage, done, total)` is
    /// called after each chunk of simulations and each epoch.
    /// With `store` (a folder), the simulations are kept there (`store_simulations`).
    #[pyo3(signature = (store=None, progress=None))]
    fn infer(
        &mut self,
        py: Python<'_>,
        store: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let cfg = inference_config_for(self.inner.settings(), self.inner.spec().seed);
        let total_epochs = cfg.train.max_epochs.unwrap_or(0);
        let mut sims = Callback {
            cb: progress.as_ref().map(|c| c.clone_ref(py)),
            error: None,
            total_epochs,
            features: self.feature_error.clone(),
        };
        let mut train = Callback {
            cb: progress,
            error: None,
            total_epochs,
            features: ErrorSlot::default(),
        };
        let inner = &mut self.inner;
        let res = py.detach(|| {
            inner
                .infer_with(&cfg, store.as_deref(), &mut sims, &mut train)
                .map(drop)
        });
        take_feature_error(&self.feature_error)?;
        if let Some(e) = sims.error.or(train.error) {
            return Err(e);
        }
        res.map_err(facade_err)
    }

    /// Posterior samples, shape (n, dim theta), in the priors' units.
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let inner = &self.inner;
        let v = py.detach(|| inner.sample(n, seed)).map_err(facade_err)?;
        to_numpy(py, v, n, self.dim())
    }

    /// The trained posterior, with the observation's features as its default x.
    fn posterior(&self, py: Python<'_>) -> PyResult<PyPosterior> {
        let p = self.inner.posterior().map_err(facade_err)?;
        let copy = py.detach(|| crate::copy_posterior(p)).map_err(to_py)?;
        Ok(PyPosterior {
            inner: Arc::new(copy),
            default_x: Some(self.inner.observed_features().to_vec()),
        })
    }

    /// The problem's prior (each free parameter's marginal, in its unit), for training on
    /// given simulations.
    fn prior(&self, py: Python<'_>) -> PyResult<Py<crate::prior::PyPrior>> {
        let m = self.inner.problem().free.iter().map(|f| f.prior).collect();
        crate::prior::from_marginals(py, m)
    }

    /// Features of the observation, shape (dim x,).
    fn observed_features<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.inner.observed_features())
    }

    /// Free parameter names, in column order.
    #[getter]
    fn parameter_names(&self) -> Vec<String> {
        self.inner.problem().parameter_names()
    }

    /// Units the priors, samples and plots use, per free parameter (`""`: SI).
    #[getter]
    fn parameter_units(&self) -> Vec<String> {
        let p = self.inner.problem();
        p.free.iter().map(|f| f.unit.name.clone()).collect()
    }

    /// Feature column names, `variable/trace/feature`.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.inner.problem().feature_names()
    }

    /// Output variables (`spikes` for spike trains), in order.
    #[getter]
    fn output_names(&self) -> Vec<String> {
        let p = self.inner.problem();
        p.outputs.iter().map(|o| o.variable.clone()).collect()
    }

    /// Posterior-predictive simulations: for each of `n` posterior samples, each output's
    /// traces (2-D array, output unit) or spike trains (list of arrays, ms).
    fn generate_traces(&self, py: Python<'_>, n: usize, seed: u64) -> PyResult<Vec<Py<PyAny>>> {
        let inner = &self.inner;
        let sets = py
            .detach(|| inner.generate_traces(n, seed))
            .map_err(facade_err)?;
        let mut out = Vec::new();
        for set in sets {
            let mut per_output = Vec::new();
            for obs in set {
                let obj: Py<PyAny> = match obs {
                    Observed::Traces(rows) => {
                        let (r, c) = (rows.len(), rows.first().map_or(0, Vec::len));
                        let flat = rows.into_iter().flatten().collect();
                        to_numpy(py, flat, r, c)?.into_any().unbind()
                    }
                    Observed::Spikes(trains) => {
                        let list: Vec<_> = trains
                            .into_iter()
                            .map(|t| PyArray1::from_vec(py, t))
                            .collect();
                        list.into_pyobject(py)?.into_any().unbind()
                    }
                    Observed::Features(v) => {
                        let n = v.len();
                        to_numpy(py, v, 1, n)?.into_any().unbind()
                    }
                };
                per_output.push(obj);
            }
            out.push(per_output.into_pyobject(py)?.into_any().unbind());
        }
        Ok(out)
    }

    /// SVG text of a pairplot of `samples` (rows in the priors' units), `points` marked.
    #[pyo3(signature = (samples, points=None))]
    fn pairplot_svg(
        &self,
        py: Python<'_>,
        samples: &Bound<'_, PyAny>,
        points: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let s = matrix(py, samples, "samples", Some(self.dim()), false)?;
        let truth = points.map(|p| self.condition(py, p)).transpose()?;
        let labels = self.labels();
        py.detach(|| {
            svg_of("pairplot", |dir| {
                std::fs::create_dir_all(dir).map_err(neurosbi::Error::io(dir))?;
                let data = PairData {
                    samples: &s.data,
                    labels: &labels,
                    truth: truth.as_deref(),
                };
                plot::pairplot(dir, "pairplot", &data).map(drop)
            })
        })
        .map_err(facade_err)
    }

    /// SVG text of the conditional densities of every pair on a `res` x `res` grid over the
    /// prior ranges, the other parameters held at `condition`.
    fn conditional_pairplot_svg(
        &self,
        py: Python<'_>,
        condition: &Bound<'_, PyAny>,
        res: usize,
    ) -> PyResult<String> {
        let c = self.condition(py, condition)?;
        let inner = &self.inner;
        py.detach(|| {
            svg_of("conditional_pairplot", |dir| {
                inner.conditional_pairplot(dir, &c, res)
            })
        })
        .map_err(facade_err)
    }

    /// Correlation matrix (dim, dim) of the conditional posterior at `condition`.
    fn conditional_corrcoeff<'py>(
        &self,
        py: Python<'py>,
        condition: &Bound<'py, PyAny>,
        res: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let c = self.condition(py, condition)?;
        let inner = &self.inner;
        let m = py
            .detach(|| inner.conditional_corrcoeff(&c, res))
            .map_err(facade_err)?;
        to_numpy(py, m, self.dim(), self.dim())
    }

    /// Saves the trained posterior into the folder `path`.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| inner.save(&path)).map_err(facade_err)
    }

    /// Loads a posterior saved by `save` (for a problem of the same dimensions).
    fn load(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "{}: no saved posterior there (no such file or directory)",
                path.display()
            )));
        }
        let inner = &mut self.inner;
        py.detach(|| inner.load(&path)).map_err(facade_err)
    }
}

/// Parameter rows and their feature rows.
type ThetaX<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>);

/// The valid simulations of the store folder `dir`: (theta, x), shapes (n, dim theta) and
/// (n, dim x).
#[pyfunction]
pub(crate) fn store_simulations<'py>(py: Python<'py>, dir: PathBuf) -> PyResult<ThetaX<'py>> {
    let set = py
        .detach(|| neurosbi_infer::Store::open(&dir).and_then(|s| s.load()))
        .map_err(to_py)?;
    let n = set.theta.len() / set.dim_theta.max(1);
    Ok((
        to_numpy(py, set.theta, n, set.dim_theta)?,
        to_numpy(py, set.x, n, set.dim_x)?,
    ))
}

/// The SI scale and dimension exponents (m, kg, s, A, K, mol, cd) of a unit name or unit
/// expression (`"nA"`, `"mS/cm**2"`, `"1"`).
#[pyfunction]
pub(crate) fn unit(name: &str) -> PyResult<(f64, [f64; 7])> {
    let u = neurosbi::quantity::Unit::named(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown unit `{name}`")))?;
    let dim = u.dim().unwrap_or_default();
    Ok((u.scale, dim.exponents))
}

/// A display unit for values of dimension `exponents` with typical SI magnitude
/// `magnitude`: a named unit of that dimension with the SI prefix that puts the magnitude in
/// [1, 1000) (`1e-8` siemens -> `nS`); `""` (SI) for dimensions without a named unit.
#[pyfunction]
pub(crate) fn display_unit(exponents: [f64; 7], magnitude: f64) -> String {
    use neurosbi_sim::units::{lookup_unit, prefixes};
    let dim = neurosbi_sim::Dimension { exponents };
    if dim.is_dimensionless() {
        return String::new();
    }
    // Short symbols, so labels read as a physiologist writes them (nS, mV, pF).
    let Some(base) = crate::fitfile::si_unit_name(&dim) else {
        return String::new();
    };
    let m = magnitude.abs();
    let factors = [1e-12, 1e-9, 1e-6, 1e-3, 1.0, 1e3, 1e6, 1e9];
    let f = if m > 0.0 && m.is_finite() {
        factors
            .iter()
            .copied()
            .filter(|f| m / f >= 0.999_999)
            .fold(1e-12, f64::max)
    } else {
        1.0
    };
    let prefix = prefixes()
        .find(|(_, _, x)| *x == f)
        .map_or("", |(_, s, _)| s);
    let name = format!("{prefix}{base}");
    if lookup_unit(&name).is_some_and(|q| q.dim == dim) {
        name
    } else {
        base.to_string()
    }
}

/// Names the model's strings use that neither the equations declare nor the language
/// knows (units, functions, `t`, `dt`, `xi`): the constants to take from the user's
/// namespace, as Brian does. Strings that do not parse are skipped (the model's validation
/// reports them with their location).
#[pyfunction]
pub(crate) fn external_names(equations: &str, expressions: Vec<String>) -> Vec<String> {
    use neurosbi_sim::equations::EquationSet;
    use neurosbi_sim::syntax::parse_expr;
    let mut used = Vec::new();
    let mut declared = Vec::new();
    if let Ok(set) = EquationSet::parse("model", equations) {
        for eq in &set.equations {
            declared.push(eq.name.clone());
            if let Some(e) = &eq.expr {
                e.names(&mut used);
            }
        }
    }
    for text in &expressions {
        // Reset statements: `v = Vr; w += b` -> the right-hand sides.
        for part in text.split([';', '\n']) {
            let rhs = part
                .split_once("+=")
                .or_else(|| part.split_once("-=").or_else(|| part.split_once("*=")))
                .or_else(|| part.split_once("/="))
                .map(|(_, r)| r)
                .or_else(|| {
                    part.split_once('=')
                        .filter(|(l, r)| !l.ends_with(['<', '>', '!', '=']) && !r.starts_with('='))
                        .map(|(_, r)| r)
                })
                .unwrap_or(part);
            if let Ok(e) = parse_expr("model", rhs.trim()) {
                e.names(&mut used);
            }
        }
    }
    let special = ["t", "dt", "xi", "i", "N", "True", "False", "pi", "e", "inf"];
    let mut out: Vec<String> = Vec::new();
    for n in used {
        let known = declared.contains(&n)
            || special.contains(&n.as_str())
            || n.starts_with("xi_")
            || neurosbi_sim::units::lookup_unit(&n).is_some();
        if !known && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The feature catalogue: (name, group, unit, summary, parameters) per feature.
#[pyfunction]
pub(crate) fn feature_catalogue() -> Vec<(String, String, String, String, String)> {
    neurosbi::features::Catalogue::standard()
        .entries()
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                e.group.to_string(),
                e.unit.to_string(),
                e.summary.to_string(),
                e.params.to_string(),
            )
        })
        .collect()
}
