//! Posteriors built from trained estimators, behind one interface whatever the method:
//! sampling (direct with support rejection for NPE, slice-sampling MCMC, sampling-importance-
//! resampling, rejection under a fitted envelope, or a variational flow; see
//! [`PosteriorKind`]), log densities (leakage-corrected for NPE), MAP, batched sampling for
//! many observations, ensembles of posteriors, and save / load with a format version.

use crate::error::{InferError, Result, check_finite, invalid_arg, io_err};
use crate::mcmc::{LogDensity, SliceConfig, sample_posterior_mcmc};
use crate::prior::{Prior, PriorSpec};
use crate::rng::{derive_seed, purpose, stream_rng};
use crate::samplers::{Gaussian, RejectionSettings};
use crate::store::{read_versioned, write_versioned};
use crate::vi::{TensorPotential, VariationalFlow, ViConfig};
use neurosbi_flows::candle_core::{self, Device, Tensor};
use neurosbi_flows::{ConditionalEstimator, RatioClassifier};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Format version of saved posteriors; bump on any layout change.
pub const POSTERIOR_FORMAT_VERSION: u32 = 4;

/// How a posterior draws samples (sbi's posterior classes), chosen by name in model files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PosteriorKind {
    /// Draws from the trained q(theta | x), rejecting those outside the prior support (NPE);
    /// an ensemble draws from each member; ABC resamples its accepted parameters.
    Direct,
    /// Slice-sampling MCMC on the potential (default for NLE / NRE).
    Mcmc,
    /// Sampling-importance-resampling (default for NPE-A, whose candidates come half from its
    /// network q(theta | x_o), half from an envelope fitted to the potential).
    Sir,
    /// Rejection sampling under a fitted envelope.
    Rejection,
    /// A normalising flow fitted to the potential by reverse KL (variational inference).
    Vi,
}

/// The mixture of proposals that produced the training data of NPE-A, used for its post-hoc
/// correction `p(theta | x) ~ q(theta | x) prior(theta) / proposal(theta)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalMixture {
    /// Per round: the fraction of the training data it contributed, and its proposal: `None`
    /// for the prior, or a Gaussian truncated to the prior support with the log of its mass
    /// inside the support.
    pub components: Vec<(f64, Option<(Gaussian, f64)>)>,
}

impl ProposalMixture {
    /// Log density of the mixture at a point inside the prior support.
    pub fn log_prob(&self, prior: &dyn Prior, theta: &[f64]) -> f64 {
        let terms: Vec<f64> = self
            .components
            .iter()
            .map(|(w, c)| {
                w.ln()
                    + match c {
                        None => prior.log_prob(theta),
                        Some((g, log_mass)) => g.log_prob(theta) - log_mass,
                    }
            })
            .collect();
        log_sum_exp(&terms)
    }
}

/// One smoothed draw: `row + bandwidth * N(0, I)`, the noise redrawn (up to 1 000 times, then
/// the row itself) while the point is outside the prior's support, so that no draw is a
/// parameter the model cannot take (sbi's KDE has no such check).
fn kernel_draw(
    row: &[f64],
    bandwidth: f64,
    prior: &dyn Prior,
    rng: &mut impl rand::Rng,
) -> Vec<f64> {
    if bandwidth > 0.0 {
        for _ in 0..1000 {
            let p: Vec<f64> = row
                .iter()
                .map(|v| v + bandwidth * rng.sample::<f64, _>(rand_distr::StandardNormal))
                .collect();
            if prior.log_prob(&p) > f64::NEG_INFINITY {
                return p;
            }
        }
    }
    row.to_vec()
}

pub(crate) fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Acceptance rate below which NPE sampling reports a warning (as sbi does).
pub const LOW_ACCEPTANCE_WARNING: f64 = 0.01;

/// Effective sample size of the MCMC starting candidates below which sampling reports a
/// warning (or below the number of chains, if that is smaller).
pub const LOW_INIT_ESS: f64 = 20.0;

/// The trained network behind a posterior.
#[derive(Debug)]
pub enum Estimator {
    /// q(theta | x) (NPE, APT, TSNPE).
    Npe(ConditionalEstimator),
    /// q(x | theta) (NLE).
    Nle(ConditionalEstimator),
    /// Ratio classifier logit(theta, x) (NRE-A / B / C, BNRE).
    Nre(RatioClassifier),
    /// q(theta | x) trained on proposal draws, corrected by prior / proposal (NPE-A).
    Corrected {
        /// The mixture density network.
        q: ConditionalEstimator,
        /// The proposals its training data came from.
        proposal: ProposalMixture,
    },
    /// A mixture of posteriors (sbi `EnsemblePosterior`).
    Ensemble {
        /// The members.
        members: Vec<Posterior>,
        /// Their weights (positive, summing to 1).
        weights: Vec<f64>,
    },
    /// Weighted parameter samples for one observation (ABC).
    Samples {
        /// The observation they belong to.
        x_o: Vec<f64>,
        /// Row-major samples.
        theta: Vec<f64>,
        /// Their weights (positive, summing to 1).
        weights: Vec<f64>,
        /// Gaussian kernel bandwidth added to each draw (0: plain resampling).
        bandwidth: f64,
    },
}

impl Estimator {
    fn kind(&self) -> &'static str {
        match self {
            Estimator::Npe(_) => "npe",
            Estimator::Nle(_) => "nle",
            Estimator::Nre(_) => "nre",
            Estimator::Corrected { .. } => "npe_a",
            Estimator::Ensemble { .. } => "ensemble",
            Estimator::Samples { .. } => "samples",
        }
    }
    fn dims(&self) -> (usize, usize) {
        match self {
            Estimator::Npe(e) => (e.dim_inputs(), e.dim_context()),
            Estimator::Nle(e) => (e.dim_context(), e.dim_inputs()),
            Estimator::Nre(c) => (c.dim_theta(), c.dim_x()),
            Estimator::Corrected { q, .. } => (q.dim_inputs(), q.dim_context()),
            Estimator::Ensemble { members, .. } => (members[0].dim_theta(), members[0].dim_x()),
            Estimator::Samples {
                x_o,
                theta,
                weights,
                ..
            } => (theta.len() / weights.len(), x_o.len()),
        }
    }

    /// The posterior kind used when the settings name none.
    pub fn default_kind(&self) -> PosteriorKind {
        match self {
            Estimator::Npe(_) | Estimator::Ensemble { .. } | Estimator::Samples { .. } => {
                PosteriorKind::Direct
            }
            Estimator::Nle(_) | Estimator::Nre(_) => PosteriorKind::Mcmc,
            Estimator::Corrected { .. } => PosteriorKind::Sir,
        }
    }

    /// Posterior kinds this estimator supports.
    pub fn kinds(&self) -> &'static [PosteriorKind] {
        use PosteriorKind::*;
        match self {
            // FMPE / NPSE densities come from an ODE solve without gradients: no VI.
            Estimator::Npe(e) if e.config().kind.is_vector_field() => {
                &[Direct, Sir, Rejection, Mcmc]
            }
            Estimator::Npe(_) => &[Direct, Mcmc, Sir, Rejection, Vi],
            Estimator::Nle(_) | Estimator::Nre(_) => &[Mcmc, Sir, Rejection, Vi],
            Estimator::Corrected { .. } => &[Sir, Mcmc, Rejection],
            Estimator::Ensemble { .. } => &[Direct, Mcmc, Sir, Rejection],
            Estimator::Samples { .. } => &[Direct],
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
    /// How to sample; `None` uses the estimator's default ([`Estimator::default_kind`]).
    pub kind: Option<PosteriorKind>,
    /// SIR: prior candidates per draw (sbi's `oversampling_factor`, 32).
    pub sir_oversampling: usize,
    /// Rejection sampling under a fitted envelope.
    pub rejection: RejectionSettings,
    /// Variational inference.
    pub vi: ViConfig,
    /// Seed of the variational fit (the fit for an observation is made once and reused).
    pub vi_seed: u64,
}

impl Default for PosteriorSettings {
    fn default() -> Self {
        Self {
            mcmc: SliceConfig::default(),
            max_rejection_draws: 50_000_000,
            leakage_samples: 10_000,
            kind: None,
            sir_oversampling: 32,
            rejection: RejectionSettings::default(),
            vi: ViConfig::default(),
            vi_seed: 0,
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
    /// Effective sample size of the weighted candidates (SIR, and the SIR start of MCMC) or of
    /// the weighted ABC samples.
    pub ess: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    version: u32,
    kind: String,
    prior: PriorSpec,
    settings: PosteriorSettings,
    dim_theta: u64,
    dim_x: u64,
    proposal: Option<ProposalMixture>,
    ensemble_weights: Vec<f64>,
    samples: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    kde_bandwidth: f64,
    /// SHA-256 of `estimator.safetensors`, when there is one: a flipped weight would
    /// otherwise give other samples without an error.
    estimator_sha256: Option<String>,
}

/// A posterior p(theta | x) for any observation x (amortised for NPE).
pub struct Posterior {
    prior: Arc<dyn Prior>,
    estimator: Estimator,
    /// Sampling settings.
    pub settings: PosteriorSettings,
    /// The variational fit of the last observation sampled with [`PosteriorKind::Vi`].
    vi_cache: Mutex<Option<(Vec<f64>, Arc<VariationalFlow>)>>,
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

/// The differentiable network part of the potential, for variational inference.
struct NetPotential<'a> {
    post: &'a Posterior,
    x_o: Vec<f64>,
}

impl TensorPotential for NetPotential<'_> {
    fn log_density(&self, theta: &Tensor) -> candle_core::Result<Tensor> {
        let x = Tensor::from_vec(
            self.x_o.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (1, self.x_o.len()),
            &Device::Cpu,
        )?;
        match &self.post.estimator {
            Estimator::Npe(e) => e.log_prob_tensor(theta, &x),
            Estimator::Nle(e) => {
                let b = theta.dim(0)?;
                let xs = x.broadcast_as((b, self.x_o.len()))?.contiguous()?;
                e.log_prob_tensor(&xs, theta)
            }
            Estimator::Nre(c) => c.logits_tensor(theta, &x),
            _ => Err(candle_core::Error::Msg(
                "no differentiable potential for this posterior".into(),
            )),
        }
    }
    fn needs_prior(&self) -> bool {
        !matches!(self.post.estimator, Estimator::Npe(_))
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
            vi_cache: Mutex::new(None),
        })
    }

    /// A mixture of posteriors with the given weights (`None`: equal weights), sbi's
    /// `EnsemblePosterior`. Members must agree on dimensions; the first member's prior is
    /// the ensemble's. Its potential is `log sum_k w_k exp(potential_k)`; direct sampling
    /// draws from each member with its own kind.
    pub fn ensemble(members: Vec<Posterior>, weights: Option<Vec<f64>>) -> Result<Self> {
        if members.is_empty() {
            return Err(invalid_arg("ensemble", "needs at least one member"));
        }
        let (dt, dx) = (members[0].dim_theta(), members[0].dim_x());
        for (k, m) in members.iter().enumerate() {
            if m.dim_theta() != dt || m.dim_x() != dx {
                return Err(InferError::DimMismatch {
                    what: format!("ensemble member {k} (theta, x) dimensions"),
                    expected: dt * 1000 + dx,
                    got: m.dim_theta() * 1000 + m.dim_x(),
                });
            }
        }
        let w = weights.unwrap_or_else(|| vec![1.0; members.len()]);
        if w.len() != members.len() {
            return Err(InferError::DimMismatch {
                what: "ensemble weights vs members".into(),
                expected: members.len(),
                got: w.len(),
            });
        }
        if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(invalid_arg(
                "ensemble weights",
                format!(
                    "weight {i} is {}; weights must be positive and finite",
                    w[i]
                ),
            ));
        }
        let s: f64 = w.iter().sum();
        let prior = members[0].prior.clone();
        Self::new(
            prior,
            Estimator::Ensemble {
                members,
                weights: w.iter().map(|v| v / s).collect(),
            },
        )
    }

    /// A posterior made of weighted samples for one observation (what ABC returns): it
    /// resamples them (direct sampling) and has no density.
    pub fn from_samples(
        prior: Arc<dyn Prior>,
        x_o: &[f64],
        theta: &[f64],
        weights: &[f64],
    ) -> Result<Self> {
        let d = prior.dim();
        let n = crate::error::rows_of("samples", theta, d)?;
        if n == 0 || weights.len() != n {
            return Err(InferError::RowMismatch {
                what: "samples vs weights".into(),
                left: n,
                right: weights.len(),
            });
        }
        check_finite("observation", x_o)?;
        check_finite("samples", theta)?;
        if let Some(i) = weights.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(invalid_arg(
                "sample weights",
                format!("weight {i} is {}", weights[i]),
            ));
        }
        let s: f64 = weights.iter().sum();
        if s <= 0.0 {
            return Err(invalid_arg("sample weights", "all weights are zero"));
        }
        Self::new(
            prior,
            Estimator::Samples {
                x_o: x_o.to_vec(),
                theta: theta.to_vec(),
                weights: weights.iter().map(|w| w / s).collect(),
                bandwidth: 0.0,
            },
        )
    }

    /// Smooths a posterior of samples ([`Posterior::from_samples`]) with a Gaussian kernel of
    /// this bandwidth (parameter units; 0 keeps plain resampling): each draw is a sample plus
    /// `bandwidth` x N(0, I), the noise redrawn while the point falls outside the prior's
    /// support (see [`crate::kde`]).
    pub fn with_kde_bandwidth(mut self, bandwidth: f64) -> Result<Self> {
        if !(bandwidth >= 0.0 && bandwidth.is_finite()) {
            return Err(invalid_arg(
                "KDE bandwidth",
                format!("{bandwidth} is not >= 0"),
            ));
        }
        match &mut self.estimator {
            Estimator::Samples { bandwidth: b, .. } => *b = bandwidth,
            e => {
                return Err(invalid_arg(
                    "KDE bandwidth",
                    format!("a `{}` posterior is not a posterior of samples", e.kind()),
                ));
            }
        }
        Ok(self)
    }

    /// The sampling kind in use (the settings' or the estimator's default).
    pub fn kind(&self) -> PosteriorKind {
        self.settings
            .kind
            .unwrap_or_else(|| self.estimator.default_kind())
    }

    /// Chooses how to sample, checked against the estimator.
    pub fn set_kind(&mut self, kind: PosteriorKind) -> Result<()> {
        self.check_kind(kind)?;
        self.settings.kind = Some(kind);
        Ok(())
    }

    fn check_kind(&self, kind: PosteriorKind) -> Result<()> {
        if self.estimator.kinds().contains(&kind) {
            return Ok(());
        }
        let list: Vec<&str> = self.estimator.kinds().iter().map(|k| k.name()).collect();
        Err(invalid_arg(
            "posterior kind",
            format!(
                "a `{}` posterior cannot sample with `{}` (it can: {})",
                self.estimator.kind(),
                kind.name(),
                list.join(", ")
            ),
        ))
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

    pub(crate) fn into_estimator(self) -> Estimator {
        self.estimator
    }

    /// The network for retraining; forgets any variational fit made with the old weights.
    pub(crate) fn estimator_mut(&mut self) -> &mut Estimator {
        *self.vi_cache.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
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
    /// for NLE, `logit(theta, x) + log prior` for NRE, `log q(theta | x) + log prior - log
    /// proposal` for NPE-A, `log sum_k w_k exp(potential_k)` for an ensemble; `-inf` outside
    /// the prior support. Weighted samples (ABC) have none.
    pub fn potential(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.check_x(x_o)?;
        let n = self.check_theta(theta)?;
        if let Estimator::Ensemble { members, weights } = &self.estimator {
            let per: Vec<Vec<f64>> = members
                .iter()
                .map(|m| m.potential(theta, x_o))
                .collect::<Result<_>>()?;
            return Ok((0..n)
                .map(|i| {
                    let t: Vec<f64> = per
                        .iter()
                        .zip(weights)
                        .map(|(p, w)| w.ln() + p[i])
                        .collect();
                    log_sum_exp(&t)
                })
                .collect());
        }
        if let Estimator::Samples { .. } = &self.estimator {
            return Err(invalid_arg(
                "posterior density",
                "a posterior of weighted samples (ABC) has no density",
            ));
        }
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
            Estimator::Corrected { q, proposal } => {
                let lq = q.log_prob(&rows, x_o)?;
                lq.into_iter()
                    .zip(rows.chunks(d))
                    .map(|(l, r)| l - proposal.log_prob(self.prior.as_ref(), r))
                    .collect()
            }
            Estimator::Ensemble { .. } | Estimator::Samples { .. } => {
                unreachable!("handled above")
            }
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
    /// (sbi's leakage correction), `-inf` outside. With [`PosteriorKind::Vi`] it is the
    /// fitted flow's normalised density. An ensemble mixes its members' `log_prob`. For NLE /
    /// NRE / NPE-A this is the unnormalised [`Posterior::potential`].
    pub fn log_prob(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        if self.kind() == PosteriorKind::Vi {
            self.check_x(x_o)?;
            self.check_theta(theta)?;
            let flow = self.variational(x_o)?;
            return flow.log_prob(theta, self.prior.as_ref());
        }
        if let Estimator::Ensemble { members, weights } = &self.estimator {
            self.check_x(x_o)?;
            let n = self.check_theta(theta)?;
            let per: Vec<Vec<f64>> = members
                .iter()
                .map(|m| m.log_prob(theta, x_o))
                .collect::<Result<_>>()?;
            return Ok((0..n)
                .map(|i| {
                    let t: Vec<f64> = per
                        .iter()
                        .zip(weights)
                        .map(|(p, w)| w.ln() + p[i])
                        .collect();
                    log_sum_exp(&t)
                })
                .collect());
        }
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

    /// Draws `n` samples given the observation `x_o` with the posterior's kind
    /// ([`Posterior::kind`]), deterministic for the seed.
    pub fn sample(&self, n: usize, x_o: &[f64], seed: u64) -> Result<Draws> {
        self.check_x(x_o)?;
        let kind = self.kind();
        self.check_kind(kind)?;
        let d = self.dim_theta();
        let target = Potential { post: self, x_o };
        let weighted = |w: crate::samplers::WeightedDraws| Draws {
            theta: w.theta,
            acceptance_rate: w.acceptance_rate,
            warning: w.warning,
            rhat: None,
            ess: Some(w.ess),
        };
        match (kind, &self.estimator) {
            (PosteriorKind::Sir, Estimator::Corrected { q, proposal }) => Ok(weighted(
                self.sample_corrected_sir(q, proposal, n, x_o, seed)?,
            )),
            (PosteriorKind::Sir, _) => Ok(weighted(crate::samplers::sir(
                self.prior.as_ref(),
                &target,
                n,
                self.settings.sir_oversampling,
                seed,
            )?)),
            (PosteriorKind::Rejection, _) => Ok(weighted(crate::samplers::rejection(
                self.prior.as_ref(),
                &target,
                n,
                &self.settings.rejection,
                seed,
            )?)),
            (PosteriorKind::Vi, _) => {
                let flow = self.variational(x_o)?;
                Ok(Draws {
                    theta: flow.sample(n, seed, self.prior.as_ref())?,
                    acceptance_rate: 1.0,
                    warning: None,
                    rhat: None,
                    ess: None,
                })
            }
            (PosteriorKind::Direct, Estimator::Ensemble { members, weights }) => {
                self.sample_ensemble(members, weights, n, x_o, seed)
            }
            (
                PosteriorKind::Direct,
                Estimator::Samples {
                    x_o: own,
                    theta,
                    weights,
                    bandwidth,
                },
            ) => {
                if own.as_slice() != x_o {
                    return Err(invalid_arg(
                        "observation",
                        "a posterior of ABC samples belongs to the observation it was run for; run ABC again for a new one",
                    ));
                }
                let mut cum = Vec::with_capacity(weights.len());
                let mut s = 0.0;
                for w in weights {
                    s += w;
                    cum.push(s);
                }
                let mut out = Vec::with_capacity(n * d);
                for j in 0..n {
                    let mut rng = stream_rng(seed, purpose::SAMPLING, j as u64);
                    let r = rng.random::<f64>() * s;
                    let i = cum.partition_point(|&c| c < r).min(cum.len() - 1);
                    let row = &theta[i * d..(i + 1) * d];
                    out.extend_from_slice(&kernel_draw(
                        row,
                        *bandwidth,
                        self.prior.as_ref(),
                        &mut rng,
                    ));
                }
                let ess = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
                Ok(Draws {
                    theta: out,
                    acceptance_rate: 1.0,
                    warning: None,
                    rhat: None,
                    ess: Some(ess),
                })
            }
            (PosteriorKind::Direct, Estimator::Npe(e)) => {
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
                    ess: None,
                })
            }
            (PosteriorKind::Direct, _) => {
                Err(invalid_arg("posterior kind", "direct sampling needs NPE"))
            }
            (PosteriorKind::Mcmc, _) => {
                let cfg = SliceConfig {
                    seed,
                    ..self.settings.mcmc.clone()
                };
                let mc = sample_posterior_mcmc(self.prior.as_ref(), &target, n, &cfg)?;
                let init = mc.init.clone();
                // Chains keep to the mode they start in, so too few distinct starting
                // candidates leave the mode weights to chance.
                let warning = init
                    .as_ref()
                    .filter(|i| i.ess < LOW_INIT_ESS.min(cfg.num_chains as f64))
                    .map(|i| {
                        format!(
                            "MCMC starting points: effective sample size {:.1} from {} prior \
                             candidates; the posterior is much narrower than the prior, so the \
                             weights of separated modes may be off",
                            i.ess, i.candidates
                        )
                    });
                Ok(Draws {
                    theta: mc.samples(n),
                    acceptance_rate: 1.0,
                    warning,
                    rhat: Some(mc.rhat),
                    ess: init.map(|i| i.ess),
                })
            }
        }
    }

    /// SIR for NPE-A's corrected density q x prior / proposal. Half of each draw's candidates
    /// come from q(theta | x_o) restricted to the prior support, half from the envelope
    /// fitted to the potential (as for the other posteriors), and every candidate is weighted
    /// by the target over the equal mixture of the two (the balance heuristic of multiple
    /// importance sampling). q's draws alone have weights prior / proposal, at most
    /// 1 / (the prior's share) when prior draws are in the training data, but unbounded in
    /// q's tails without them; the envelope alone degenerates on narrow 10-D posteriors
    /// (bernoulli_glm: ESS 1.5 of 320 000 candidates, C2ST 0.996). The mixture's weights are
    /// at most twice the smaller of the two.
    fn sample_corrected_sir(
        &self,
        q: &ConditionalEstimator,
        proposal: &ProposalMixture,
        n: usize,
        x_o: &[f64],
        seed: u64,
    ) -> Result<crate::samplers::WeightedDraws> {
        let d = self.dim_theta();
        let prior = self.prior.as_ref();
        let target = Potential { post: self, x_o };
        let env = crate::samplers::fit_proposal(
            prior,
            &target,
            crate::samplers::PROPOSAL_FIT_DRAWS,
            1.3,
            derive_seed(seed, 0x5a),
        )?;
        let probe = self.settings.leakage_samples.max(1);
        let inside = q
            .sample(probe, x_o, derive_seed(seed, 0x1ea4))?
            .chunks(d)
            .filter(|r| prior.in_support(r))
            .count();
        let log_inside = (inside as f64 / probe as f64).ln();
        // Below 1 % inside the support, q's half would cost over 100 network draws per
        // candidate; the envelope alone serves then.
        let use_q = inside * 100 >= probe;
        let draw = |m: usize, s: u64| -> Result<Vec<f64>> {
            let e = env.sample(m, derive_seed(s, 1));
            if !use_q {
                return Ok(e);
            }
            let want = m.div_ceil(2);
            let mut from_q = Vec::with_capacity(want * d);
            let mut round = 0u64;
            while from_q.len() < want * d {
                let left = want - from_q.len() / d;
                let batch = (left as f64 / (inside as f64 / probe as f64) * 1.2).ceil() as usize;
                for r in q
                    .sample(batch.max(100), x_o, derive_seed(s, 2 + round))?
                    .chunks(d)
                {
                    if prior.in_support(r) && from_q.len() < want * d {
                        from_q.extend_from_slice(r);
                    }
                }
                round += 1;
            }
            // Even candidates from q, odd ones from the envelope, so every draw's group of
            // candidates holds both. Envelope candidate j is the envelope's row j (its own
            // random stream); the rows at even j are drawn and unused, which costs little
            // next to the network's draws and log densities.
            let mut out = Vec::with_capacity(m * d);
            for j in 0..m {
                let src = if j % 2 == 0 { &from_q } else { &e };
                let k = if j % 2 == 0 { j / 2 } else { j };
                out.extend_from_slice(&src[k * d..(k + 1) * d]);
            }
            Ok(out)
        };
        let log_weights = |rows: &[f64]| -> Result<Vec<f64>> {
            let lq = q.log_prob(rows, x_o)?;
            Ok(rows
                .chunks(d)
                .zip(lq)
                .map(|(r, lq)| {
                    let lp = prior.log_prob(r);
                    if lp == f64::NEG_INFINITY {
                        return f64::NEG_INFINITY;
                    }
                    let lt = lq + lp - proposal.log_prob(prior, r);
                    let le = env.log_prob(r);
                    let lprop = if use_q {
                        let a = lq - log_inside;
                        let m = a.max(le);
                        m + (0.5 * (a - m).exp() + 0.5 * (le - m).exp()).ln()
                    } else {
                        le
                    };
                    let w = lt - lprop;
                    if w.is_finite() { w } else { f64::NEG_INFINITY }
                })
                .collect())
        };
        crate::samplers::sir_with(
            d,
            n,
            self.settings.sir_oversampling,
            seed,
            draw,
            log_weights,
        )
    }

    fn sample_ensemble(
        &self,
        members: &[Posterior],
        weights: &[f64],
        n: usize,
        x_o: &[f64],
        seed: u64,
    ) -> Result<Draws> {
        let d = self.dim_theta();
        // Each draw picks its member from its own stream, so counts are multinomial.
        let mut counts = vec![0usize; members.len()];
        let mut which = Vec::with_capacity(n);
        for j in 0..n {
            let mut rng = stream_rng(seed, purpose::SAMPLING ^ 0xe5, j as u64);
            let mut r = rng.random::<f64>();
            let mut k = 0;
            while k + 1 < weights.len() && r >= weights[k] {
                r -= weights[k];
                k += 1;
            }
            counts[k] += 1;
            which.push(k);
        }
        let mut parts = Vec::with_capacity(members.len());
        let mut warnings = Vec::new();
        let mut acc = 0.0;
        for (k, m) in members.iter().enumerate() {
            if counts[k] == 0 {
                parts.push(Vec::new());
                continue;
            }
            let dr = m.sample(counts[k], x_o, derive_seed(seed, 0xe000 + k as u64))?;
            acc += dr.acceptance_rate * weights[k];
            if let Some(w) = dr.warning {
                warnings.push(format!("member {k}: {w}"));
            }
            parts.push(dr.theta);
        }
        // Interleave in the order the members were picked, so any prefix is a mixture draw.
        let mut next = vec![0usize; members.len()];
        let mut out = Vec::with_capacity(n * d);
        for k in which {
            out.extend_from_slice(&parts[k][next[k] * d..(next[k] + 1) * d]);
            next[k] += 1;
        }
        Ok(Draws {
            theta: out,
            acceptance_rate: acc,
            warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
            rhat: None,
            ess: None,
        })
    }

    /// The variational flow for `x_o`, fitted on first use and kept for later calls.
    pub fn variational(&self, x_o: &[f64]) -> Result<Arc<VariationalFlow>> {
        self.check_x(x_o)?;
        let mut cache = self.vi_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((x, f)) = cache.as_ref()
            && x.as_slice() == x_o
        {
            return Ok(f.clone());
        }
        let target = NetPotential {
            post: self,
            x_o: x_o.to_vec(),
        };
        self.check_kind(PosteriorKind::Vi)?;
        // Start the flow where the posterior is: importance-resampled prior draws.
        let init = crate::samplers::sir(
            self.prior.as_ref(),
            &Potential { post: self, x_o },
            1000,
            32,
            derive_seed(self.settings.vi_seed, 0x1417),
        )?;
        let flow = Arc::new(VariationalFlow::fit(
            &target,
            self.prior.as_ref(),
            &init.theta,
            &self.settings.vi,
            derive_seed(self.settings.vi_seed, 0x1418),
        )?);
        *cache = Some((x_o.to_vec(), flow.clone()));
        Ok(flow)
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
    /// settings, NPE-A proposals, ABC samples) and the network's safetensors file; ensemble
    /// members go to `member-<k>` subdirectories. A variational fit is not saved: it is made
    /// again (with the same seed, so the same draws) on first use after loading.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let prior = self.prior.spec().ok_or_else(|| {
            invalid_arg(
                "posterior save",
                "the prior is a user type without a serialisable PriorSpec",
            )
        })?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut meta = SavedMeta {
            version: POSTERIOR_FORMAT_VERSION,
            kind: self.estimator.kind().into(),
            prior,
            settings: self.settings.clone(),
            dim_theta: self.dim_theta() as u64,
            dim_x: self.dim_x() as u64,
            proposal: None,
            ensemble_weights: Vec::new(),
            samples: None,
            kde_bandwidth: 0.0,
            estimator_sha256: None,
        };
        let net = dir.join("estimator.safetensors");
        match &self.estimator {
            Estimator::Npe(e) | Estimator::Nle(e) => e.save(&net)?,
            Estimator::Nre(c) => c.save(&net)?,
            Estimator::Corrected { q, proposal } => {
                q.save(&net)?;
                meta.proposal = Some(proposal.clone());
            }
            Estimator::Ensemble { members, weights } => {
                for (k, m) in members.iter().enumerate() {
                    m.save(&dir.join(format!("member-{k}")))?;
                }
                meta.ensemble_weights = weights.clone();
            }
            Estimator::Samples {
                x_o,
                theta,
                weights,
                bandwidth,
            } => {
                meta.samples = Some((x_o.clone(), theta.clone(), weights.clone()));
                meta.kde_bandwidth = *bandwidth;
            }
        }
        if net.exists() {
            let bytes = std::fs::read(&net).map_err(io_err(&net))?;
            meta.estimator_sha256 = Some(crate::provenance::sha256_hex(&bytes));
        }
        write_versioned(&dir.join("posterior.meta"), &meta)
    }

    /// Whether the posterior has a density (everything but ABC's weighted samples), so that
    /// `log_prob` and `map` are defined.
    pub fn has_density(&self) -> bool {
        !matches!(self.estimator, Estimator::Samples { .. })
    }

    /// Loads a posterior saved by [`Posterior::save`], checking the format version.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("posterior.meta");
        let meta: SavedMeta = read_versioned(&meta_path, POSTERIOR_FORMAT_VERSION)?;
        let net = dir.join("estimator.safetensors");
        if let Some(sum) = &meta.estimator_sha256 {
            let bytes = crate::store::read_bounded(&net, 4 << 30)?;
            if crate::provenance::sha256_hex(&bytes) != *sum {
                return Err(InferError::Corrupt {
                    path: net,
                    reason: format!(
                        "checksum mismatch: these are not the weights {} was saved with",
                        meta_path.display()
                    ),
                });
            }
        }
        let corrupt = |reason: &str| InferError::Corrupt {
            path: meta_path.clone(),
            reason: reason.into(),
        };
        let prior: Arc<dyn Prior> = Arc::from(meta.prior.build()?);
        let mut p = match meta.kind.as_str() {
            "npe" => Self::new(prior, Estimator::Npe(ConditionalEstimator::load(&net)?))?,
            "nle" => Self::new(prior, Estimator::Nle(ConditionalEstimator::load(&net)?))?,
            "nre" => Self::new(prior, Estimator::Nre(RatioClassifier::load(&net)?))?,
            "npe_a" => Self::new(
                prior,
                Estimator::Corrected {
                    q: ConditionalEstimator::load(&net)?,
                    proposal: meta
                        .proposal
                        .clone()
                        .ok_or_else(|| corrupt("NPE-A posterior without its proposals"))?,
                },
            )?,
            "ensemble" => {
                let members = (0..meta.ensemble_weights.len())
                    .map(|k| Self::load(&dir.join(format!("member-{k}"))))
                    .collect::<Result<Vec<_>>>()?;
                let mut p = Self::ensemble(members, Some(meta.ensemble_weights.clone()))?;
                if let Estimator::Ensemble { weights, .. } = &mut p.estimator {
                    weights.clone_from(&meta.ensemble_weights);
                }
                p
            }
            "samples" => {
                let (x_o, theta, weights) = meta
                    .samples
                    .clone()
                    .ok_or_else(|| corrupt("sample posterior without its samples"))?;
                // Validated as new samples, then given back their stored (already
                // normalised) weights so draws and ESS are bit-identical.
                let mut p = Self::from_samples(prior, &x_o, &theta, &weights)?
                    .with_kde_bandwidth(meta.kde_bandwidth)?;
                if let Estimator::Samples { weights: w, .. } = &mut p.estimator {
                    *w = weights;
                }
                p
            }
            k => return Err(corrupt(&format!("unknown posterior kind `{k}`"))),
        };
        if p.dim_x() as u64 != meta.dim_x {
            return Err(corrupt("estimator and header disagree on dim_x"));
        }
        p.settings = meta.settings;
        Ok(p)
    }
}
