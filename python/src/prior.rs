//! Priors with sbi's (torch.distributions') constructors: `BoxUniform(low, high)`,
//! `Normal(loc, scale)`, `LogNormal(loc, scale)`, `LogUniform(low, high)` (independent per
//! dimension), `MultivariateNormal(loc, covariance_matrix)` and `MultipleIndependent([...])`
//! joining independent ones; every one is a `neurosbi.Prior` with `sample` and `log_prob`,
//! and trainers take any of them. They are the infer crate's priors
//! (`IndependentPrior` of `Marginal`s, `MultivariateNormalPrior`).

use std::sync::Arc;

use neurosbi_infer::{IndependentPrior, Marginal, MultivariateNormalPrior, Prior};
use numpy::{PyArray1, PyArray2};
use pyo3::PyClassInitializer;
use pyo3::prelude::*;

use crate::{fresh_seed, matrix, sample_count, to_numpy, to_py, value_error, vector};

/// A prior over theta: the base class of neurosbi's priors.
#[pyclass(module = "neurosbi._neurosbi", name = "Prior", subclass, frozen)]
pub(crate) struct PyPrior {
    pub(crate) prior: Arc<dyn Prior>,
    /// The marginals of an independent prior (None: multivariate normal).
    marginals: Option<Vec<Marginal>>,
    repr: String,
}

impl PyPrior {
    fn independent(marginals: Vec<Marginal>, repr: String) -> PyResult<Self> {
        let prior = IndependentPrior::new(marginals.clone()).map_err(to_py)?;
        Ok(Self {
            prior: Arc::new(prior),
            marginals: Some(marginals),
            repr,
        })
    }
}

#[pymethods]
impl PyPrior {
    /// Dimension of theta.
    #[getter]
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    /// Draws, shape (n, dim); `sample_shape` is sbi's `(n,)` or `n`. The same seed gives
    /// the same draws (None: a fresh seed).
    #[pyo3(signature = (sample_shape=None, seed=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        sample_shape: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n = sample_count(sample_shape)?;
        let seed = seed.unwrap_or_else(fresh_seed);
        let prior = self.prior.clone();
        let v = py.detach(move || neurosbi_infer::sample_prior(prior.as_ref(), n, seed));
        to_numpy(py, v, n, self.prior.dim())
    }

    /// Log density of each row of `theta`, shape (n,) (-inf outside the support).
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        theta: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let d = self.prior.dim();
        let m = matrix(py, theta, "theta", Some(d), true)?;
        let v: Vec<f64> = m.data.chunks(d).map(|r| self.prior.log_prob(r)).collect();
        Ok(PyArray1::from_vec(py, v))
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
    }
}

/// Two equally long vectors of per-dimension parameters (a scalar is broadcast).
/// A prior of independent marginals from two per-dimension arrays (`low`/`high`,
/// `loc`/`scale`; one value is broadcast), its repr naming the class and the arrays.
fn per_dimension(
    py: Python<'_>,
    (a, b): (&Bound<'_, PyAny>, &Bound<'_, PyAny>),
    names: (&str, &str),
    class: &str,
    marginal: impl Fn(f64, f64) -> Marginal,
) -> PyResult<PyPrior> {
    let (a, b) = pair(py, a, b, names)?;
    let m = a.iter().zip(&b).map(|(&x, &y)| marginal(x, y)).collect();
    let repr = format!("{class}({}={a:?}, {}={b:?})", names.0, names.1);
    PyPrior::independent(m, repr)
}

fn pair(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    names: (&str, &str),
) -> PyResult<(Vec<f64>, Vec<f64>)> {
    let mut a = vector(py, a, names.0)?;
    let mut b = vector(py, b, names.1)?;
    match (a.len(), b.len()) {
        (0, _) => return Err(value_error(names.0, "has no values")),
        (1, n) if n > 1 => a = vec![a[0]; n],
        (n, 1) if n > 1 => b = vec![b[0]; n],
        (x, y) if x != y => {
            return Err(value_error(
                names.1,
                format!("has {y} values but {} has {x}", names.0),
            ));
        }
        _ => {}
    }
    Ok((a, b))
}

/// Uniform on a box, `BoxUniform(low, high)` (sbi's `BoxUniform`).
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct BoxUniform {
    low: Vec<f64>,
    high: Vec<f64>,
}

#[pymethods]
impl BoxUniform {
    #[new]
    fn new(
        py: Python<'_>,
        low: &Bound<'_, PyAny>,
        high: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        // No broadcasting here: sbi users give both bounds per dimension, and a short one
        // is more likely a mistake (the engine's check names it).
        let low = vector(py, low, "low")?;
        let high = vector(py, high, "high")?;
        if low.is_empty() {
            return Err(value_error("low", "has no bounds"));
        }
        IndependentPrior::uniform(&low, &high).map_err(to_py)?;
        let m = low
            .iter()
            .zip(&high)
            .map(|(&low, &high)| Marginal::Uniform { low, high })
            .collect();
        let repr = format!("BoxUniform(low={low:?}, high={high:?})");
        let base = PyPrior::independent(m, repr)?;
        Ok(PyClassInitializer::from(base).add_subclass(Self { low, high }))
    }

    #[getter]
    fn low(&self) -> Vec<f64> {
        self.low.clone()
    }

    #[getter]
    fn high(&self) -> Vec<f64> {
        self.high.clone()
    }
}

/// Log-uniform per dimension, `LogUniform(low, high)` with `0 < low < high` (density
/// proportional to 1/theta), e.g. for conductances over decades.
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct LogUniform;

#[pymethods]
impl LogUniform {
    #[new]
    fn new(
        py: Python<'_>,
        low: &Bound<'_, PyAny>,
        high: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = per_dimension(
            py,
            (low, high),
            ("low", "high"),
            "LogUniform",
            |low, high| Marginal::LogUniform { low, high },
        )?;
        Ok(PyClassInitializer::from(base).add_subclass(Self))
    }
}

/// Independent normals, `Normal(loc, scale)` (torch's `Normal` made one prior over the
/// dimensions, as sbi does with `Independent(Normal(loc, scale), 1)`).
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct Normal;

#[pymethods]
impl Normal {
    #[new]
    fn new(
        py: Python<'_>,
        loc: &Bound<'_, PyAny>,
        scale: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = per_dimension(py, (loc, scale), ("loc", "scale"), "Normal", |mean, std| {
            Marginal::Normal { mean, std }
        })?;
        Ok(PyClassInitializer::from(base).add_subclass(Self))
    }
}

/// Independent log-normals, `LogNormal(loc, scale)`: `ln theta ~ Normal(loc, scale)`
/// (torch's parameters).
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct LogNormal;

#[pymethods]
impl LogNormal {
    #[new]
    fn new(
        py: Python<'_>,
        loc: &Bound<'_, PyAny>,
        scale: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = per_dimension(
            py,
            (loc, scale),
            ("loc", "scale"),
            "LogNormal",
            |mu, sigma| Marginal::LogNormal { mu, sigma },
        )?;
        Ok(PyClassInitializer::from(base).add_subclass(Self))
    }
}

/// `MultivariateNormal(loc, covariance_matrix)` (torch's names): a symmetric positive
/// definite covariance of shape (d, d).
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct MultivariateNormal {
    loc: Vec<f64>,
    cov: Vec<f64>,
}

#[pymethods]
impl MultivariateNormal {
    #[new]
    fn new(
        py: Python<'_>,
        loc: &Bound<'_, PyAny>,
        covariance_matrix: &Bound<'_, PyAny>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let loc = vector(py, loc, "loc")?;
        let d = loc.len();
        let cov = matrix(py, covariance_matrix, "covariance_matrix", Some(d), false)?;
        if cov.rows != d {
            return Err(value_error(
                "covariance_matrix",
                format!(
                    "expected shape ({d}, {d}) for loc of {d} values, got ({}, {d})",
                    cov.rows
                ),
            ));
        }
        let prior = MultivariateNormalPrior::new(loc.clone(), cov.data.clone())
            .map_err(|e| value_error("covariance_matrix", e))?;
        let base = PyPrior {
            prior: Arc::new(prior),
            marginals: None,
            repr: format!("MultivariateNormal(loc={loc:?}, covariance_matrix=...)"),
        };
        Ok(PyClassInitializer::from(base).add_subclass(Self { loc, cov: cov.data }))
    }

    /// The mean, shape (d,).
    #[getter]
    fn loc<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.loc)
    }

    /// The covariance, shape (d, d).
    #[getter]
    fn covariance_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        to_numpy(py, self.cov.clone(), self.loc.len(), self.loc.len())
    }
}

/// Independent priors joined into one over their concatenated dimensions (sbi's
/// `MultipleIndependent`): `MultipleIndependent([BoxUniform(...), LogUniform(...)])`.
#[pyclass(module = "neurosbi._neurosbi", extends = PyPrior, frozen)]
pub(crate) struct MultipleIndependent;

#[pymethods]
impl MultipleIndependent {
    #[new]
    fn new(dists: Vec<Bound<'_, PyPrior>>) -> PyResult<PyClassInitializer<Self>> {
        if dists.is_empty() {
            return Err(value_error("dists", "give at least one prior"));
        }
        let mut all = Vec::new();
        let mut parts = Vec::new();
        for (i, d) in dists.iter().enumerate() {
            let p = d.get();
            let m = p.marginals.as_ref().ok_or_else(|| {
                value_error(
                    &format!("dists[{i}]"),
                    format!("{} is not independent per dimension", p.repr),
                )
            })?;
            all.extend_from_slice(m);
            parts.push(p.repr.clone());
        }
        let repr = format!("MultipleIndependent([{}])", parts.join(", "));
        let base = PyPrior::independent(all, repr)?;
        Ok(PyClassInitializer::from(base).add_subclass(Self))
    }
}

/// The prior of `obj` (any `neurosbi.Prior`), or a ValueError naming `what`.
pub(crate) fn prior_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Arc<dyn Prior>> {
    let p = obj.cast::<PyPrior>().map_err(|_| {
        value_error(
            what,
            format!(
                "expected a neurosbi prior (BoxUniform, Normal, LogNormal, LogUniform, \
                 MultivariateNormal, MultipleIndependent), got {}",
                obj.get_type().name().map_or("?".into(), |n| n.to_string())
            ),
        )
    })?;
    Ok(p.get().prior.clone())
}

/// A Python prior for the infer crate's independent prior `marginals`.
pub(crate) fn from_marginals(py: Python<'_>, marginals: Vec<Marginal>) -> PyResult<Py<PyPrior>> {
    let repr = format!("Prior({marginals:?})");
    Py::new(py, PyPrior::independent(marginals, repr)?)
}

/// Registers the prior classes.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPrior>()?;
    m.add_class::<BoxUniform>()?;
    m.add_class::<LogUniform>()?;
    m.add_class::<Normal>()?;
    m.add_class::<LogNormal>()?;
    m.add_class::<MultivariateNormal>()?;
    m.add_class::<MultipleIndependent>()?;
    Ok(())
}
