//! `neurosbi._neurosbi`: the Rust side of the Python package `neurosbi` (python/neurosbi).
//!
//! Everything is checked, trained and sampled here with the GIL released; the Python layer
//! only names things the way sbi does and suggests close keyword names. Rust errors arrive
//! as Python exceptions carrying the Rust message: argument errors as `ValueError`, missing
//! files as `FileNotFoundError`, anything else as `neurosbi.Error`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use neurosbi_flows::{ClassifierConfig, EstimatorConfig, FlowError, NoObserver, TrainConfig};
use neurosbi_infer::methods::estimator_for;
use neurosbi_infer::{
    InferError, Method, MethodOptions, Posterior, PosteriorKind, Prior, train_nle, train_npe,
    train_nre,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

mod external;
mod fitfile;
mod inferencer;
mod prior;
mod recording;
mod simulate;

create_exception!(
    _neurosbi,
    Error,
    PyException,
    "An error of the neurosbi engine that is not a bad argument."
);

/// Maps a Rust error to the Python exception of its kind, keeping the Rust message.
pub(crate) fn to_py(e: InferError) -> PyErr {
    let msg = e.to_string();
    match &e {
        InferError::InvalidPrior { .. }
        | InferError::DimMismatch { .. }
        | InferError::RowMismatch { .. }
        | InferError::RaggedBuffer { .. }
        | InferError::NonFinite { .. }
        | InferError::InvalidArgument { .. }
        | InferError::Flow(FlowError::Invalid { .. }) => PyValueError::new_err(msg),
        InferError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        _ => Error::new_err(msg),
    }
}

pub(crate) fn value_error(what: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: {why}"))
}

/// A seed from the operating system's randomness, for calls that give none.
pub(crate) fn fresh_seed() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// A row-major matrix read from a Python object (numpy array, list, anything with `__array__`).
pub(crate) struct Matrix {
    pub(crate) data: Vec<f64>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

/// Reads `obj` as a 2-D float64/float32 array (a 1-D one is one row when `one_row` is set)
/// with `cols` columns when given, and only finite values.
pub(crate) fn matrix(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    what: &str,
    cols: Option<usize>,
    one_row: bool,
) -> PyResult<Matrix> {
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| value_error(what, format!("cannot be read as an array: {e}")))?;
    let dtype: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let expected = match cols {
        Some(c) if one_row => format!("a float64 or float32 array of shape (n, {c}) or ({c},)"),
        Some(c) => format!("a 2-D float64 or float32 array of shape (n, {c})"),
        None => "a 2-D float64 or float32 array of shape (n, d)".to_string(),
    };
    if dtype != "float64" && dtype != "float32" {
        return Err(value_error(
            what,
            format!("expected {expected}, got dtype {dtype}"),
        ));
    }
    let (rows, c) = match shape.as_slice() {
        [r, c] => (*r, *c),
        [c] if one_row => (1, *c),
        _ => {
            return Err(value_error(
                what,
                format!("expected {expected}, got shape {shape:?}"),
            ));
        }
    };
    if cols.is_some_and(|want| want != c) || c == 0 {
        return Err(value_error(
            what,
            format!("expected {expected}, got shape {shape:?}"),
        ));
    }
    if rows == 0 {
        return Err(value_error(what, "has no rows"));
    }
    let f64s = np.call_method1("ascontiguousarray", (arr, "float64"))?;
    let view: PyReadonlyArray2<f64> = f64s.call_method1("reshape", ((rows, c),))?.extract()?;
    let data = view.as_slice()?.to_vec();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(value_error(
            what,
            format!(
                "has a non-finite value ({}) at row {}, column {}",
                data[i],
                i / c,
                i % c
            ),
        ));
    }
    Ok(Matrix {
        data,
        rows,
        cols: c,
    })
}

/// Reads a vector of bounds (any numeric sequence).
pub(crate) fn vector(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj, "float64"))
        .map_err(|e| value_error(what, format!("cannot be read as numbers: {e}")))?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let arr = match shape.as_slice() {
        [] => arr.call_method1("reshape", ((1usize,),))?,
        [_] => arr,
        _ => {
            return Err(value_error(
                what,
                format!("expected a 1-D sequence of bounds, got shape {shape:?}"),
            ));
        }
    };
    let v: Vec<f64> = arr.call_method0("tolist")?.extract()?;
    Ok(v)
}

pub(crate) fn to_numpy<'py>(
    py: Python<'py>,
    data: Vec<f64>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    PyArray1::from_vec(py, data).reshape([rows, cols])
}

/// The number of draws of sbi's `sample_shape`: `(n,)`, `n`, or None (one draw).
pub(crate) fn sample_count(shape: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    match shape {
        None => Ok(1),
        Some(s) => match (s.extract::<usize>(), s.extract::<(usize,)>()) {
            (Ok(n), _) | (_, Ok((n,))) => Ok(n),
            _ => Err(value_error(
                "sample_shape",
                format!("expected (n,) or n with n >= 0, got {s}"),
            )),
        },
    }
}

/// What a trainer trains: a density estimator (NPE-like and NLE-like methods) or a ratio
/// classifier (NRE-like methods).
enum Net {
    Density(EstimatorConfig),
    Classifier(ClassifierConfig),
}

/// Trains one of sbi's single-round methods on simulations given by the caller.
#[pyclass(module = "neurosbi._neurosbi")]
struct Trainer {
    method: Method,
    prior: Arc<dyn Prior>,
    net: Net,
    theta: Vec<f64>,
    x: Vec<f64>,
    dim_x: Option<usize>,
    posterior: Option<Arc<Posterior>>,
}

fn density_estimator(name: &str) -> PyResult<EstimatorConfig> {
    match name.trim().to_lowercase().as_str() {
        "maf" => Ok(EstimatorConfig::maf()),
        "nsf" => Ok(EstimatorConfig::nsf()),
        "mdn" => Ok(EstimatorConfig::mdn()),
        other => Err(value_error(
            "density_estimator",
            format!("unknown density estimator `{other}` (expected one of maf, nsf, mdn)"),
        )),
    }
}

fn classifier(name: &str) -> PyResult<ClassifierConfig> {
    match name.trim().to_lowercase().as_str() {
        "resnet" | "residual" => Ok(ClassifierConfig::residual()),
        "mlp" => Ok(ClassifierConfig::mlp()),
        other => Err(value_error(
            "classifier",
            format!("unknown classifier `{other}` (expected one of resnet, mlp)"),
        )),
    }
}

#[pymethods]
impl Trainer {
    /// `method`: a name of `neurosbi.METHOD_NAMES`; `estimator`: the density estimator
    /// (maf, nsf, mdn) or, for NRE methods, the classifier (resnet, mlp); None: sbi's default.
    #[new]
    #[pyo3(signature = (method, prior, estimator=None))]
    fn new(method: &str, prior: &Bound<'_, PyAny>, estimator: Option<&str>) -> PyResult<Self> {
        let prior = prior::prior_of(prior, "prior")?;
        let m = Method::from_name(method, &MethodOptions::new()).map_err(to_py)?;
        let net = match m {
            Method::NreA | Method::NreB { .. } | Method::NreC { .. } | Method::Bnre { .. } => {
                Net::Classifier(classifier(estimator.unwrap_or("resnet"))?)
            }
            Method::Npe { .. }
            | Method::NpeA { .. }
            | Method::Fmpe
            | Method::Npse { .. }
            | Method::Nle
            | Method::Mnle { .. } => {
                let base = density_estimator(estimator.unwrap_or("maf"))?;
                Net::Density(estimator_for(m, &base).map_err(to_py)?)
            }
            _ => {
                return Err(value_error(
                    "method",
                    format!(
                        "`{}` needs a simulator in the loop; from Python train one of npe, npe_a, fmpe, npse, nle, mnle, nre_a, nre_b, nre_c, bnre on given simulations",
                        m.name()
                    ),
                ));
            }
        };
        Ok(Self {
            method: m,
            prior,
            net,
            theta: Vec::new(),
            x: Vec::new(),
            dim_x: None,
            posterior: None,
        })
    }

    /// The method's canonical name.
    #[getter]
    fn method(&self) -> &'static str {
        self.method.name()
    }

    /// Number of simulations appended so far.
    #[getter]
    fn num_simulations(&self) -> usize {
        self.theta.len() / self.prior.dim()
    }

    /// Adds simulations: `theta` (n, dim theta) and `x` (n, dim x).
    fn append_simulations(
        &mut self,
        py: Python<'_>,
        theta: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = matrix(py, theta, "theta", Some(self.prior.dim()), false)?;
        let xs = matrix(py, x, "x", self.dim_x, false)?;
        if t.rows != xs.rows {
            return Err(value_error(
                "x",
                format!(
                    "has {} rows but theta has {}: one x per theta",
                    xs.rows, t.rows
                ),
            ));
        }
        if let Some((i, _)) = t
            .data
            .chunks(t.cols)
            .enumerate()
            .find(|(_, r)| !self.prior.in_support(r))
        {
            return Err(value_error(
                "theta",
                format!("row {i} lies outside the prior's support"),
            ));
        }
        self.theta.extend_from_slice(&t.data);
        self.x.extend_from_slice(&xs.data);
        self.dim_x = Some(xs.cols);
        Ok(())
    }

    /// Trains on every simulation appended so far (a fresh network each call) and returns
    /// the epochs run and the best validation loss.
    #[pyo3(signature = (training_batch_size, learning_rate, validation_fraction, stop_after_epochs, max_num_epochs, clip_max_norm, seed))]
    #[allow(clippy::too_many_arguments)] // sbi's keyword arguments
    fn train(
        &mut self,
        py: Python<'_>,
        training_batch_size: usize,
        learning_rate: f64,
        validation_fraction: f64,
        stop_after_epochs: usize,
        max_num_epochs: Option<usize>,
        clip_max_norm: Option<f64>,
        seed: Option<u64>,
    ) -> PyResult<(usize, f64)> {
        let Some(dim_x) = self.dim_x else {
            return Err(value_error(
                "append_simulations",
                "no simulations to train on: call append_simulations(theta, x) first",
            ));
        };
        let cfg = TrainConfig {
            learning_rate,
            batch_size: training_batch_size,
            validation_fraction,
            stop_after_epochs,
            clip_max_norm,
            max_epochs: max_num_epochs,
            seed: seed.unwrap_or_else(fresh_seed),
            ..TrainConfig::default()
        };
        let (method, theta, x) = (self.method, &self.theta, &self.x);
        let (net, prior) = (&self.net, self.prior.clone());
        let (posterior, rep) = py
            .detach(move || {
                let mut obs = NoObserver;
                match net {
                    Net::Classifier(c) => {
                        train_nre(prior, theta, x, dim_x, method, c, &cfg, &mut obs)
                    }
                    Net::Density(e) if matches!(method, Method::Nle | Method::Mnle { .. }) => {
                        train_nle(prior, theta, x, dim_x, e, &cfg, &mut obs)
                    }
                    Net::Density(e) => train_npe(prior, theta, x, dim_x, e, &cfg, &mut obs),
                }
            })
            .map_err(to_py)?;
        self.posterior = Some(Arc::new(posterior));
        Ok((rep.epochs, rep.best_val_loss))
    }

    /// The posterior of the last training; `sample_with` (sbi's names: direct, mcmc,
    /// rejection, importance, vi) replaces the method's own sampler.
    #[pyo3(signature = (sample_with=None))]
    fn build_posterior(&self, py: Python<'_>, sample_with: Option<&str>) -> PyResult<PyPosterior> {
        let Some(p) = &self.posterior else {
            return Err(Error::new_err(
                "build_posterior: nothing trained yet: call train() first",
            ));
        };
        let inner = match sample_with {
            None => p.clone(),
            Some(name) => {
                let kind = PosteriorKind::from_name(name).map_err(|_| {
                    value_error(
                        "sample_with",
                        format!("unknown sampler `{name}` (expected direct, mcmc, rejection, importance, vi)"),
                    )
                })?;
                let mut copy = py.detach(|| copy_posterior(p)).map_err(to_py)?;
                copy.set_kind(kind).map_err(to_py)?;
                Arc::new(copy)
            }
        };
        Ok(PyPosterior {
            inner,
            default_x: None,
        })
    }
}

/// A copy of `p` through its saved form (`Posterior` is not `Clone`); the copy samples bit
/// for bit as the original (python/tests: save/load round trip).
pub(crate) fn copy_posterior(p: &Posterior) -> Result<Posterior, InferError> {
    let dir = std::env::temp_dir().join(format!(
        "neurosbi-posterior-{}-{}",
        std::process::id(),
        fresh_seed()
    ));
    let r = p.save(&dir).and_then(|()| Posterior::load(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// A posterior p(theta | x), amortised over x.
#[pyclass(module = "neurosbi._neurosbi", name = "Posterior")]
pub(crate) struct PyPosterior {
    pub(crate) inner: Arc<Posterior>,
    pub(crate) default_x: Option<Vec<f64>>,
}

impl PyPosterior {
    fn x_o(&self, py: Python<'_>, x: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<f64>> {
        match x {
            Some(x) => {
                let m = matrix(py, x, "x", Some(self.inner.dim_x()), true)?;
                if m.rows != 1 {
                    return Err(value_error(
                        "x",
                        format!("expected one observation, got {} rows", m.rows),
                    ));
                }
                Ok(m.data)
            }
            None => self.default_x.clone().ok_or_else(|| {
                value_error(
                    "x",
                    "no observation: pass x=... or call set_default_x(x) first",
                )
            }),
        }
    }
}

#[pymethods]
impl PyPosterior {
    /// Dimension of theta.
    #[getter]
    fn dim_theta(&self) -> usize {
        self.inner.dim_theta()
    }

    /// Dimension of x.
    #[getter]
    fn dim_x(&self) -> usize {
        self.inner.dim_x()
    }

    /// The default observation, or None.
    #[getter]
    fn default_x<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
        self.default_x
            .as_ref()
            .map(|x| to_numpy(py, x.clone(), 1, x.len()))
            .transpose()
    }

    /// Sets the observation used when `x` is not given.
    fn set_default_x(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.default_x = Some(self.x_o(py, Some(x))?);
        Ok(())
    }

    /// Draws given `x`, shape (n, dim theta); `sample_shape` is sbi's `(n,)` or `n`. The
    /// same seed gives the same draws (None: a fresh seed).
    #[pyo3(signature = (sample_shape=None, x=None, seed=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        sample_shape: Option<&Bound<'py, PyAny>>,
        x: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n = sample_count(sample_shape)?;
        let x_o = self.x_o(py, x)?;
        let seed = seed.unwrap_or_else(fresh_seed);
        let post = &self.inner;
        let draws = py
            .detach(move || post.sample(n, &x_o, seed))
            .map_err(to_py)?;
        to_numpy(py, draws.theta, n, self.inner.dim_theta())
    }

    /// Log density of each row of `theta` given `x`, shape (n,).
    #[pyo3(signature = (theta, x=None))]
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        theta: &Bound<'py, PyAny>,
        x: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x_o = self.x_o(py, x)?;
        let t = matrix(py, theta, "theta", Some(self.inner.dim_theta()), true)?;
        let post = &self.inner;
        let lp = py
            .detach(move || post.log_prob(&t.data, &x_o))
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, lp))
    }

    /// Maximum a posteriori estimate given `x`, shape (dim theta,).
    #[pyo3(signature = (x=None, seed=None))]
    fn map<'py>(
        &self,
        py: Python<'py>,
        x: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x_o = self.x_o(py, x)?;
        let seed = seed.unwrap_or_else(fresh_seed);
        let post = &self.inner;
        let m = py.detach(move || post.map(&x_o, seed)).map_err(to_py)?;
        Ok(PyArray1::from_vec(py, m))
    }

    /// Saves the posterior to the folder `path` (created if needed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let post = &self.inner;
        py.detach(move || post.save(&path)).map_err(to_py)
    }

    /// A table for Jupyter.
    fn _repr_html_(&self) -> String {
        let x = self
            .default_x
            .as_ref()
            .map_or("none (pass x=...)".to_string(), |x| {
                let shown: Vec<String> = x.iter().take(8).map(|v| format!("{v:.4}")).collect();
                let more = if x.len() > 8 { ", ..." } else { "" };
                format!("[{}{more}]", shown.join(", "))
            });
        format!(
            "<table><caption>neurosbi posterior</caption>\
             <tr><th>kind</th><td>{:?}</td></tr><tr><th>dim theta</th><td>{}</td></tr>\
             <tr><th>dim x</th><td>{}</td></tr><tr><th>default x</th><td>{x}</td></tr></table>",
            self.inner.kind(),
            self.inner.dim_theta(),
            self.inner.dim_x()
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "Posterior(dim_theta={}, dim_x={}, kind={:?})",
            self.inner.dim_theta(),
            self.inner.dim_x(),
            self.inner.kind()
        )
    }
}

/// `obj` as a finite float64 matrix (a 1-D array is one row), checked as every array
/// argument is: `what` names it in errors.
#[pyfunction]
fn as_matrix<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let m = matrix(py, obj, what, None, true)?;
    to_numpy(py, m.data, m.rows, m.cols)
}

/// Loads a posterior saved with `Posterior.save(path)`.
#[pyfunction]
fn load_posterior(py: Python<'_>, path: PathBuf) -> PyResult<PyPosterior> {
    if !path.exists() {
        return Err(PyFileNotFoundError::new_err(format!(
            "{}: no saved posterior there (no such file or directory)",
            path.display()
        )));
    }
    let post = py.detach(move || Posterior::load(&path)).map_err(to_py)?;
    Ok(PyPosterior {
        inner: Arc::new(post),
        default_x: None,
    })
}

#[pymodule]
fn _neurosbi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    let mut names: Vec<&str> = neurosbi_infer::METHOD_NAMES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    names.dedup();
    m.add("METHOD_NAMES", names)?;
    prior::register(m)?;
    m.add_class::<recording::PyRecording>()?;
    m.add_function(wrap_pyfunction!(recording::read_recording, m)?)?;
    m.add_function(wrap_pyfunction!(simulate::simulate_model, m)?)?;
    m.add_class::<Trainer>()?;
    m.add_class::<PyPosterior>()?;
    m.add_function(wrap_pyfunction!(load_posterior, m)?)?;
    m.add_function(wrap_pyfunction!(as_matrix, m)?)?;
    m.add_class::<inferencer::ProblemInferencer>()?;
    m.add_function(wrap_pyfunction!(inferencer::unit, m)?)?;
    m.add_function(wrap_pyfunction!(inferencer::display_unit, m)?)?;
    m.add_function(wrap_pyfunction!(inferencer::external_names, m)?)?;
    m.add_function(wrap_pyfunction!(inferencer::feature_catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(inferencer::store_simulations, m)?)?;
    m.add_function(wrap_pyfunction!(fitfile::write_fit_file, m)?)?;
    Ok(())
}
