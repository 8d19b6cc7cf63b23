//! Priors: uniform box, normal, log-uniform, log-normal, independent products of these, a
//! multivariate normal, and the [`Prior`] trait for user priors. Every prior maps to an
//! unconstrained space (for MCMC) with the log-Jacobian of the map.

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::rng::{SimRng, purpose, stream_rng};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A prior distribution over parameter vectors of fixed dimension.
///
/// `to_unconstrained` / `from_unconstrained` are a bijection between the support and R^d; MCMC runs
/// in the unconstrained space and adds the log-Jacobian so it targets the same distribution.
pub trait Prior: Send + Sync {
    /// Number of parameters.
    fn dim(&self) -> usize;
    /// Draws one parameter vector into `out` (length `dim`).
    fn sample_into(&self, rng: &mut SimRng, out: &mut [f64]);
    /// Log density at `theta`; `-inf` outside the support.
    fn log_prob(&self, theta: &[f64]) -> f64;
    /// Whether `theta` lies in the support.
    fn in_support(&self, theta: &[f64]) -> bool {
        self.log_prob(theta) > f64::NEG_INFINITY
    }
    /// Maps a point of the support to unconstrained space.
    fn unconstrain(&self, theta: &[f64], u: &mut [f64]);
    /// Maps an unconstrained point back into the support; returns `log |det d theta / d u|`.
    fn constrain(&self, u: &[f64], theta: &mut [f64]) -> f64;
    /// A serialisable description, for priors that can be saved with a posterior.
    fn spec(&self) -> Option<PriorSpec> {
        None
    }
}

/// Draws `n` parameter vectors (row-major `n x dim`); draw `i` uses its own stream, so any
/// prefix of a larger draw with the same seed is identical.
pub fn sample_prior(prior: &dyn Prior, n: usize, seed: u64) -> Vec<f64> {
    let d = prior.dim();
    let mut out = vec![0.0; n * d];
    for (i, row) in out.chunks_mut(d).enumerate() {
        let mut rng = stream_rng(seed, purpose::THETA, i as u64);
        prior.sample_into(&mut rng, row);
    }
    out
}

/// Log density of each row of `theta` (row-major `n x dim`).
pub fn prior_log_prob_rows(prior: &dyn Prior, theta: &[f64]) -> Result<Vec<f64>> {
    rows_of("theta", theta, prior.dim())?;
    Ok(theta
        .chunks(prior.dim())
        .map(|r| prior.log_prob(r))
        .collect())
}

/// One-dimensional marginal of an [`IndependentPrior`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Marginal {
    /// Uniform on `[low, high]`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Normal with mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// Log-uniform on `[low, high]`, `0 < low < high` (density proportional to `1/theta`).
    LogUniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Log-normal: `ln theta ~ Normal(mu, sigma)`.
    LogNormal {
        /// Mean of `ln theta`.
        mu: f64,
        /// Standard deviation of `ln theta`.
        sigma: f64,
    },
}

fn log_sigmoid(u: f64) -> f64 {
    // Stable for both signs: log(1/(1+e^-u)).
    if u >= 0.0 {
        -(-u).exp().ln_1p()
    } else {
        u - u.exp().ln_1p()
    }
}

fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl Marginal {
    fn kind(&self) -> &'static str {
        match self {
            Marginal::Uniform { .. } => "uniform",
            Marginal::Normal { .. } => "normal",
            Marginal::LogUniform { .. } => "log-uniform",
            Marginal::LogNormal { .. } => "log-normal",
        }
    }

    /// Checks the parameters; `index` names the dimension in the error.
    pub fn validate(&self, index: usize) -> Result<()> {
        let bad = |reason: String| InferError::InvalidPrior {
            index,
            kind: self.kind(),
            reason,
        };
        match *self {
            Marginal::Uniform { low, high } | Marginal::LogUniform { low, high } => {
                if !low.is_finite() || !high.is_finite() {
                    return Err(bad(format!("bounds must be finite, got [{low}, {high}]")));
                }
                if low > high {
                    return Err(bad(format!("bounds reversed: low {low} > high {high}")));
                }
                if low == high {
                    return Err(bad(format!("degenerate bounds: low == high == {low}")));
                }
                if matches!(self, Marginal::LogUniform { .. }) && low <= 0.0 {
                    return Err(bad(format!("lower bound must be > 0, got {low}")));
                }
            }
            Marginal::Normal { mean: m, std: s } | Marginal::LogNormal { mu: m, sigma: s } => {
                if !m.is_finite() {
                    return Err(bad(format!("location must be finite, got {m}")));
                }
                if !(s.is_finite() && s > 0.0) {
                    return Err(bad(format!("scale must be finite and > 0, got {s}")));
                }
            }
        }
        Ok(())
    }

    fn sample(&self, rng: &mut SimRng) -> f64 {
        match *self {
            Marginal::Uniform { low, high } => low + (high - low) * rng.random::<f64>(),
            Marginal::Normal { mean, std } => mean + std * rng.sample::<f64, _>(StandardNormal),
            Marginal::LogUniform { low, high } => {
                (low.ln() + (high.ln() - low.ln()) * rng.random::<f64>()).exp()
            }
            Marginal::LogNormal { mu, sigma } => {
                (mu + sigma * rng.sample::<f64, _>(StandardNormal)).exp()
            }
        }
    }

    fn log_prob(&self, t: f64) -> f64 {
        match *self {
            Marginal::Uniform { low, high } => {
                if (low..=high).contains(&t) {
                    -(high - low).ln()
                } else {
                    f64::NEG_INFINITY
                }
            }
            Marginal::Normal { mean, std } => {
                let z = (t - mean) / std;
                -0.5 * z * z - std.ln() - 0.5 * LN_2PI
            }
            Marginal::LogUniform { low, high } => {
                if (low..=high).contains(&t) {
                    -t.ln() - (high.ln() - low.ln()).ln()
                } else {
                    f64::NEG_INFINITY
                }
            }
            Marginal::LogNormal { mu, sigma } => {
                if t > 0.0 {
                    let z = (t.ln() - mu) / sigma;
                    -0.5 * z * z - sigma.ln() - 0.5 * LN_2PI - t.ln()
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }

    fn unconstrain(&self, t: f64) -> f64 {
        match *self {
            Marginal::Uniform { low, high } => logit((t - low) / (high - low)),
            Marginal::Normal { .. } => t,
            Marginal::LogUniform { low, high } => {
                logit((t.ln() - low.ln()) / (high.ln() - low.ln()))
            }
            Marginal::LogNormal { .. } => t.ln(),
        }
    }

    /// Returns (theta, log |d theta / d u|).
    fn constrain(&self, u: f64) -> (f64, f64) {
        match *self {
            Marginal::Uniform { low, high } => {
                let w = high - low;
                let t = (low + w * sigmoid(u)).clamp(low, high);
                (t, w.ln() + log_sigmoid(u) + log_sigmoid(-u))
            }
            Marginal::Normal { .. } => (u, 0.0),
            Marginal::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                let lt = a + (b - a) * sigmoid(u);
                let t = lt.exp().clamp(low, high);
                (t, lt + (b - a).ln() + log_sigmoid(u) + log_sigmoid(-u))
            }
            Marginal::LogNormal { .. } => (u.exp(), u),
        }
    }
}

/// Independent product of one-dimensional marginals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndependentPrior {
    marginals: Vec<Marginal>,
}

impl IndependentPrior {
    /// Builds the product prior; every marginal is validated.
    pub fn new(marginals: Vec<Marginal>) -> Result<Self> {
        if marginals.is_empty() {
            return Err(invalid_arg(
                "marginals",
                "a prior needs at least one dimension",
            ));
        }
        for (i, m) in marginals.iter().enumerate() {
            m.validate(i)?;
        }
        Ok(Self { marginals })
    }

    /// Uniform box `[low_i, high_i]` per dimension.
    pub fn uniform(low: &[f64], high: &[f64]) -> Result<Self> {
        if low.len() != high.len() {
            return Err(InferError::DimMismatch {
                what: "uniform prior: high bounds vs low bounds".into(),
                expected: low.len(),
                got: high.len(),
            });
        }
        Self::new(
            low.iter()
                .zip(high)
                .map(|(&low, &high)| Marginal::Uniform { low, high })
                .collect(),
        )
    }

    /// Uniform box with the same bounds in `dim` dimensions.
    pub fn uniform_box(dim: usize, low: f64, high: f64) -> Result<Self> {
        Self::new(vec![Marginal::Uniform { low, high }; dim])
    }

    /// The marginals.
    pub fn marginals(&self) -> &[Marginal] {
        &self.marginals
    }
}

impl Prior for IndependentPrior {
    fn dim(&self) -> usize {
        self.marginals.len()
    }
    fn sample_into(&self, rng: &mut SimRng, out: &mut [f64]) {
        for (o, m) in out.iter_mut().zip(&self.marginals) {
            *o = m.sample(rng);
        }
    }
    fn log_prob(&self, theta: &[f64]) -> f64 {
        theta
            .iter()
            .zip(&self.marginals)
            .map(|(&t, m)| m.log_prob(t))
            .sum()
    }
    fn unconstrain(&self, theta: &[f64], u: &mut [f64]) {
        for ((o, &t), m) in u.iter_mut().zip(theta).zip(&self.marginals) {
            *o = m.unconstrain(t);
        }
    }
    fn constrain(&self, u: &[f64], theta: &mut [f64]) -> f64 {
        let mut lj = 0.0;
        for ((o, &v), m) in theta.iter_mut().zip(u).zip(&self.marginals) {
            let (t, l) = m.constrain(v);
            *o = t;
            lj += l;
        }
        lj
    }
    fn spec(&self) -> Option<PriorSpec> {
        Some(PriorSpec::Independent(self.clone()))
    }
}

/// Multivariate normal prior `N(mean, cov)` (unbounded, so the unconstrained map is the identity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultivariateNormalPrior {
    mean: Vec<f64>,
    cov: Vec<f64>,
    #[serde(skip)]
    chol: Vec<f64>,
    #[serde(skip)]
    log_norm: f64,
}

impl MultivariateNormalPrior {
    /// Builds the prior from a mean and a row-major covariance; the covariance must be symmetric
    /// positive definite.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(invalid_arg("mean", "a prior needs at least one dimension"));
        }
        if cov.len() != d * d {
            return Err(InferError::DimMismatch {
                what: "multivariate normal prior: covariance entries vs mean dimension squared"
                    .into(),
                expected: d * d,
                got: cov.len(),
            });
        }
        check_finite("multivariate normal prior mean", &mean)?;
        check_finite("multivariate normal prior covariance", &cov)?;
        let mut p = Self {
            mean,
            cov,
            chol: Vec::new(),
            log_norm: 0.0,
        };
        p.factorise()?;
        Ok(p)
    }

    fn factorise(&mut self) -> Result<()> {
        let d = self.mean.len();
        let m = nalgebra::DMatrix::from_row_slice(d, d, &self.cov);
        if (&m - m.transpose()).amax() > 1e-10 * m.amax().max(1.0) {
            return Err(InferError::InvalidPrior {
                index: 0,
                kind: "multivariate normal",
                reason: "covariance is not symmetric".into(),
            });
        }
        let chol = nalgebra::Cholesky::new(m).ok_or_else(|| InferError::InvalidPrior {
            index: 0,
            kind: "multivariate normal",
            reason: "covariance is not positive definite".into(),
        })?;
        let l = chol.l();
        self.log_norm = -0.5 * d as f64 * LN_2PI - (0..d).map(|i| l[(i, i)].ln()).sum::<f64>();
        self.chol = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| l[(i, j)])
            .collect();
        Ok(())
    }

    /// The mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    /// The row-major covariance.
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }
}

impl Prior for MultivariateNormalPrior {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn sample_into(&self, rng: &mut SimRng, out: &mut [f64]) {
        let d = self.dim();
        let z: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        for (i, (o, m)) in out.iter_mut().zip(&self.mean).enumerate() {
            let row = &self.chol[i * d..i * d + i + 1];
            *o = m + row.iter().zip(&z).map(|(l, v)| l * v).sum::<f64>();
        }
    }
    fn log_prob(&self, theta: &[f64]) -> f64 {
        // Forward substitution L y = theta - mean; log N = log_norm - |y|^2 / 2.
        let d = self.dim();
        let mut y = vec![0.0; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|j| self.chol[i * d + j] * y[j]).sum();
            y[i] = (theta[i] - self.mean[i] - s) / self.chol[i * d + i];
        }
        self.log_norm - 0.5 * y.iter().map(|v| v * v).sum::<f64>()
    }
    fn unconstrain(&self, theta: &[f64], u: &mut [f64]) {
        u.copy_from_slice(theta);
    }
    fn constrain(&self, u: &[f64], theta: &mut [f64]) -> f64 {
        theta.copy_from_slice(u);
        0.0
    }
    fn spec(&self) -> Option<PriorSpec> {
        Some(PriorSpec::MultivariateNormal(self.clone()))
    }
}

/// A serialisable built-in prior (saved with posteriors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PriorSpec {
    /// Independent product of marginals.
    Independent(IndependentPrior),
    /// Multivariate normal.
    MultivariateNormal(MultivariateNormalPrior),
}

impl PriorSpec {
    /// Rebuilds (and re-validates) the prior.
    pub fn build(&self) -> Result<Box<dyn Prior>> {
        Ok(match self {
            PriorSpec::Independent(p) => Box::new(IndependentPrior::new(p.marginals.clone())?),
            PriorSpec::MultivariateNormal(p) => {
                Box::new(MultivariateNormalPrior::new(p.mean.clone(), p.cov.clone())?)
            }
        })
    }
}
