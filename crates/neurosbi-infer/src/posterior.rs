//! Posteriors built from trained estimators: sampling (direct with support rejection for NPE,
//! slice-sampling MCMC for NLE / NRE), log densities (leakage-corrected for NPE), MAP, batched
//! sampling for many observations, and save / load with a format version.

use crate::error::{InferError, Result, check_finite, invalid_arg, io_err};
use crate::mcmc::{LogDensity, SliceConfig, sample_posterior_mcmc};
use crate::prior::{Prior, PriorSpec};
use crate::rng::derive_seed;
use crate::store::{read_versioned, write_atomic};
use neurosbi_flows::{ConditionalEstimator, RatioClassifier};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Format version of saved posteriors; bump on any layout change.
pub const POSTERIOR_FORMAT_VERSION: u32 = 1;

/// Acceptance rate below which NPE sampling reports a warning (as sbi does).
pub const LOW_ACCEPTANCE_WARNING: f64 = 0.01;

/// The trained network behind a posterior.
#[derive(Debug)]
pub enum Estimator {
    /// q(theta | x) (NPE, APT, TSNPE).
    Npe(ConditionalEstimator),
    /// q(x | theta) (NLE).
    Nle(ConditionalEstimator),
    /// Ratio classifier logit(theta, x) (NRE-A / NRE-B).
    Nre(RatioClassifier),
}

impl Estimator {
    fn kind(&self) -> &'static str {
        match self {
            Estimator::Npe(_) => "npe",
            Estimator::Nle(_) => "nle",
            Estimator::Nre(_) => "nre",
        }
    }
    fn dims(&self) -> (usize, usize) {
        match self {
            Estimator::Npe(e) => (e.dim_inputs(), e.dim_context()),
            Estimator::Nle(e) => (e.dim_context(), e.dim_inputs()),
            Estimator::Nre(c) => (c.dim_theta(), c.dim_x()),
        }
    }
}

/// Sampling settings saved with a posterior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PosteriorSettings {
    /// Slice-sampler settings for NLE / NRE (its seed is replaced by the call's seed).
    pub mcmc: SliceConfig,
    /// Maximum draws from q before NPE rejection sampling gives up.
    pub max_rejection_draws: u64,
    /// Draws used to estimate the NPE acceptance rate for the leakage correction.
    pub leakage_samples: usize,
}

impl Default for PosteriorSettings {
    fn default() -> Self {
        Self {
            mcmc: SliceConfig::default(),
            max_rejection_draws: 50_000_000,
            leakage_samples: 10_000,
        }
    }
}

/// Samples drawn from a posterior for one observation.
#[derive(Clone, Debug, PartialEq)]
pub struct Draws {
    /// Row-major `n x dim_theta`.
    pub theta: Vec<f64>,
    /// Fraction of NPE draws inside the prior support (1.0 for MCMC).
    pub acceptance_rate: f64,
    /// Set when the acceptance rate is below [`LOW_ACCEPTANCE_WARNING`].
    pub warning: Option<String>,
    /// Split-R-hat per dimension for MCMC draws.
    pub rhat: Option<Vec<f64>>,
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    version: u32,
    kind: String,
    prior: PriorSpec,
    settings: PosteriorSettings,
    dim_theta: u64,
    dim_x: u64,
}

/// A posterior p(theta | x) for any observation x (amortised for NPE).
pub struct Posterior {
    prior: Arc<dyn Prior>,
    estimator: Estimator,
    /// Sampling settings.
    pub settings: PosteriorSettings,
}

impl std::fmt::Debug for Posterior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posterior")
            .field("estimator", &self.estimator)
            .field("settings", &self.settings)
            .finish()
    }
}

struct Potential<'a> {
    post: &'a Posterior,
    x_o: &'a [f64],
}

impl LogDensity for Potential<'_> {
    fn dim(&self) -> usize {
        self.post.dim_theta()
    }
    fn log_density(&self, points: &[f64], out: &mut [f64]) {
        match self.post.potential(points, self.x_o) {
            Ok(v) => out.copy_from_slice(&v),
            Err(_) => out.fill(f64::NEG_INFINITY),
        }
    }
}

impl Posterior {
    /// Joins a prior and a trained estimator; their dimensions must agree.
    pub fn new(prior: Arc<dyn Prior>, estimator: Estimator) -> Result<Self> {
        let (dt, _) = estimator.dims();
        if dt != prior.dim() {
            return Err(InferError::DimMismatch {
                what: "estimator theta dimension vs prior".into(),
                expected: prior.dim(),
                got: dt,
            });
        }
        Ok(Self {
            prior,
            estimator,
            settings: PosteriorSettings::default(),
        })
    }

    /// Parameter dimension.
    pub fn dim_theta(&self) -> usize {
        self.estimator.dims().0
    }
    /// Observation dimension.
    pub fn dim_x(&self) -> usize {
        self.estimator.dims().1
    }
    /// The prior.
    pub fn prior(&self) -> &dyn Prior {
        self.prior.as_ref()
    }
    /// The trained network.
    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    pub(crate) fn estimator_mut(&mut self) -> &mut Estimator {
        &mut self.estimator
    }

    fn check_x(&self, x_o: &[f64]) -> Result<()> {
        if x_o.len() != self.dim_x() {
            return Err(InferError::DimMismatch {
                what: "observation".into(),
                expected: self.dim_x(),
                got: x_o.len(),
            });
        }
        check_finite("observation", x_o)
    }

    fn check_theta(&self, theta: &[f64]) -> Result<usize> {
        crate::error::rows_of("theta", theta, self.dim_theta())
    }

    /// Unnormalised log posterior: `log q(theta | x)` for NPE, `log q(x | theta) + log prior`
    /// for NLE, `logit(theta, x) + log prior` for NRE; `-inf` outside the prior support.
    pub fn potential(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.check_x(x_o)?;
        let n = self.check_theta(theta)?;
        let d = self.dim_theta();
        let lp: Vec<f64> = theta.chunks(d).map(|t| self.prior.log_prob(t)).collect();
        let keep: Vec<usize> = (0..n).filter(|&i| lp[i] > f64::NEG_INFINITY).collect();
        let mut out = vec![f64::NEG_INFINITY; n];
        if keep.is_empty() {
            return Ok(out);
        }
        let rows: Vec<f64> = keep
            .iter()
            .flat_map(|&i| theta[i * d..(i + 1) * d].iter().copied())
            .collect();
        let net = match &self.estimator {
            Estimator::Npe(e) => e.log_prob(&rows, x_o)?,
            Estimator::Nle(e) => {
                let xs: Vec<f64> = (0..keep.len()).flat_map(|_| x_o.iter().copied()).collect();
                e.log_prob(&xs, &rows)?
            }
            Estimator::Nre(c) => c.logits(&rows, x_o)?,
        };
        let add_prior = !matches!(self.estimator, Estimator::Npe(_));
        for (&i, v) in keep.iter().zip(net) {
            out[i] = if add_prior { v + lp[i] } else { v };
        }
        Ok(out)
    }

    /// Fraction of q(theta | x_o) inside the prior support (NPE only), from
    /// `settings.leakage_samples` draws.
    pub fn acceptance_rate(&self, x_o: &[f64], seed: u64) -> Result<f64> {
        self.check_x(x_o)?;
        let Estimator::Npe(e) = &self.estimator else {
            return Err(invalid_arg(
                "acceptance_rate",
                "only NPE posteriors sample with rejection",
            ));
        };
        let n = self.settings.leakage_samples.max(1);
        let s = e.sample(n, x_o, derive_seed(seed, 0x1ea4))?;
        Ok(s.chunks(self.dim_theta())
            .filter(|r| self.prior.in_support(r))
            .count() as f64
            / n as f64)
    }

    /// Normalised log density for NPE: `log q(theta | x) - log(acceptance)` inside the support
    /// (sbi's leakage correction), `-inf` outside. For NLE / NRE this is the unnormalised
    /// [`Posterior::potential`].
    pub fn log_prob(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        let mut v = self.potential(theta, x_o)?;
        if matches!(self.estimator, Estimator::Npe(_)) {
            let acc = self.acceptance_rate(x_o, 0)?;
            if acc == 0.0 {
                return Err(InferError::LowAcceptance {
                    accepted: 0,
                    drawn: self.settings.leakage_samples as u64,
                });
            }
            v.iter_mut().for_each(|l| *l -= acc.ln());
        }
        Ok(v)
    }

    /// Draws `n` samples given the observation `x_o`, deterministic for the seed.
    pub fn sample(&self, n: usize, x_o: &[f64], seed: u64) -> Result<Draws> {
        self.check_x(x_o)?;
        let d = self.dim_theta();
        match &self.estimator {
            Estimator::Npe(e) => {
                let mut out = Vec::with_capacity(n * d);
                let (mut drawn, mut accepted, mut round, mut inside) = (0u64, 0usize, 0u64, 0u64);
                while accepted < n {
                    let rate = if drawn == 0 {
                        1.0
                    } else {
                        (accepted as f64 / drawn as f64).max(1e-3)
                    };
                    let batch = (((n - accepted) as f64 / rate) * 1.1)
                        .ceil()
                        .clamp(100.0, 1e6) as usize;
                    let s = e.sample(batch, x_o, derive_seed(seed, round))?;
                    round += 1;
                    drawn += batch as u64;
                    for r in s.chunks(d) {
                        if self.prior.in_support(r) {
                            inside += 1;
                            if accepted < n {
                                out.extend_from_slice(r);
                                accepted += 1;
                            }
                        }
                    }
                    if accepted < n && drawn >= self.settings.max_rejection_draws {
                        return Err(InferError::LowAcceptance { accepted, drawn });
                    }
                }
                // Every draw of the last batch counts, so stopping early does not bias the rate.
                let acc_all = if drawn == 0 {
                    1.0
                } else {
                    inside as f64 / drawn as f64
                };
                let warning = (acc_all < LOW_ACCEPTANCE_WARNING).then(|| {
                    format!(
                        "only {:.3}% of posterior draws fell inside the prior support; the estimator leaks mass (consider more simulations or MCMC)",
                        100.0 * acc_all
                    )
                });
                Ok(Draws {
                    theta: out,
                    acceptance_rate: acc_all,
                    warning,
                    rhat: None,
                })
            }
            _ => {
                let target = Potential { post: self, x_o };
                let cfg = SliceConfig {
                    seed,
                    ..self.settings.mcmc.clone()
                };
                let mc = sample_posterior_mcmc(self.prior.as_ref(), &target, n, &cfg)?;
                Ok(Draws {
                    theta: mc.samples(n),
                    acceptance_rate: 1.0,
                    warning: None,
                    rhat: Some(mc.rhat),
                })
            }
        }
    }

    /// Draws `n` samples for each observation (rows of `xs`), amortised: no retraining.
    pub fn sample_batched(&self, n: usize, xs: &[f64], seed: u64) -> Result<Vec<Draws>> {
        let m = crate::error::rows_of("observations", xs, self.dim_x())?;
        (0..m)
            .map(|i| {
                self.sample(
                    n,
                    &xs[i * self.dim_x()..(i + 1) * self.dim_x()],
                    derive_seed(seed, i as u64),
                )
            })
            .collect()
    }

    /// Maximum a posteriori estimate: the best of 1 000 posterior draws by potential, refined by
    /// a derivative-free pattern search in unconstrained space (the estimators are f32 networks,
    /// so a gradient-free search is as precise as their densities).
    pub fn map(&self, x_o: &[f64], seed: u64) -> Result<Vec<f64>> {
        let d = self.dim_theta();
        let n = if matches!(self.estimator, Estimator::Npe(_)) {
            1000
        } else {
            200
        };
        let draws = self.sample(n, x_o, seed)?;
        let pot = self.potential(&draws.theta, x_o)?;
        let best = pot
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let mut u = vec![0.0; d];
        self.prior
            .unconstrain(&draws.theta[best * d..(best + 1) * d], &mut u);
        // Objective in unconstrained space, on the theta density (no Jacobian: MAP of theta).
        let f = |u: &[f64]| -> Result<f64> {
            let mut t = vec![0.0; d];
            self.prior.constrain(u, &mut t);
            Ok(self.potential(&t, x_o)?[0])
        };
        let mut fu = f(&u)?;
        let mut step = vec![0.1; d];
        for _ in 0..200 {
            let mut improved = false;
            for k in 0..d {
                for dir in [1.0, -1.0] {
                    let mut v = u.clone();
                    v[k] += dir * step[k];
                    let fv = f(&v)?;
                    if fv > fu {
                        u = v;
                        fu = fv;
                        step[k] *= 1.5;
                        improved = true;
                        break;
                    }
                }
            }
            if !improved {
                step.iter_mut().for_each(|s| *s *= 0.5);
                if step.iter().all(|s| *s < 1e-6) {
                    break;
                }
            }
        }
        let mut t = vec![0.0; d];
        self.prior.constrain(&u, &mut t);
        Ok(t)
    }

    /// Saves the posterior to a directory: `posterior.meta` (format version, kind, prior,
    /// settings) and the network's safetensors file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let prior = self.prior.spec().ok_or_else(|| {
            invalid_arg(
                "posterior save",
                "the prior is a user type without a serialisable PriorSpec",
            )
        })?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let meta = SavedMeta {
            version: POSTERIOR_FORMAT_VERSION,
            kind: self.estimator.kind().into(),
            prior,
            settings: self.settings.clone(),
            dim_theta: self.dim_theta() as u64,
            dim_x: self.dim_x() as u64,
        };
        let net = dir.join("estimator.safetensors");
        match &self.estimator {
            Estimator::Npe(e) | Estimator::Nle(e) => e.save(&net)?,
            Estimator::Nre(c) => c.save(&net)?,
        }
        let bytes = postcard::to_stdvec(&meta)
            .map_err(|e| invalid_arg("posterior encoding", e.to_string()))?;
        write_atomic(&dir.join("posterior.meta"), &bytes)
    }

    /// Loads a posterior saved by [`Posterior::save`], checking the format version.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("posterior.meta");
        let meta: SavedMeta = read_versioned(&meta_path, POSTERIOR_FORMAT_VERSION)?;
        let net = dir.join("estimator.safetensors");
        let estimator = match meta.kind.as_str() {
            "npe" => Estimator::Npe(ConditionalEstimator::load(&net)?),
            "nle" => Estimator::Nle(ConditionalEstimator::load(&net)?),
            "nre" => Estimator::Nre(RatioClassifier::load(&net)?),
            k => {
                return Err(InferError::Corrupt {
                    path: meta_path,
                    reason: format!("unknown posterior kind `{k}`"),
                });
            }
        };
        let prior: Arc<dyn Prior> = Arc::from(meta.prior.build()?);
        let mut p = Self::new(prior, estimator)?;
        if p.dim_x() as u64 != meta.dim_x {
            return Err(InferError::Corrupt {
                path: meta_path,
                reason: "estimator and header disagree on dim_x".into(),
            });
        }
        p.settings = meta.settings;
        Ok(p)
    }
}
