//! Samplers for unnormalised posterior densities besides MCMC: sampling-importance-resampling
//! (SIR) and rejection sampling, both under an envelope fitted to the target.
//!
//! Both take the target as a [`LogDensity`] over theta and the prior, so they serve every
//! posterior (NPE, NLE, NRE, corrected NPE-A, ensembles); [`sir_with`] resamples candidates
//! of any other proposal (NPE-A mixes in draws of its network).

use crate::error::{InferError, Result, invalid_arg};
use crate::mcmc::LogDensity;
use crate::prior::Prior;
use crate::rng::{derive_seed, purpose, stream_rng};
use nalgebra::DMatrix;
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Draws from SIR or rejection sampling, with their diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedDraws {
    /// Row-major `n x dim`.
    pub theta: Vec<f64>,
    /// Kish effective sample size of all weighted candidates (SIR), or the number of accepted
    /// draws (rejection).
    pub ess: f64,
    /// Fraction of candidates accepted (rejection) or `n / candidates` (SIR).
    pub acceptance_rate: f64,
    /// A note when the result is unreliable (low ESS, envelope bound exceeded).
    pub warning: Option<String>,
}

/// Kish effective sample size `(sum w)^2 / sum w^2` of log weights.
pub fn effective_sample_size(log_w: &[f64]) -> f64 {
    let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if mx == f64::NEG_INFINITY {
        return 0.0;
    }
    let (s, s2) = log_w.iter().fold((0.0, 0.0), |(s, s2), l| {
        let w = (l - mx).exp();
        (s + w, s2 + w * w)
    });
    s * s / s2
}

/// Sampling-importance-resampling (sbi `ImportanceSamplingPosterior`, method "sir"): for each
/// of the `n` draws, `oversampling` candidates (sbi: 32) come from the proposal and one is
/// picked with probability proportional to `exp(target - log proposal)`. The proposal is the
/// adapted defensive mixture of [`fit_proposal`] (sbi proposes from the prior, which
/// degenerates in more than a few dimensions: ESS 390 of 64 000 on gaussian_linear). The
/// ESS of all candidates is reported; a warning is set when it is below `n`.
pub fn sir(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    n: usize,
    oversampling: usize,
    seed: u64,
) -> Result<WeightedDraws> {
    let env = fit_proposal(
        prior,
        target,
        PROPOSAL_FIT_DRAWS,
        1.3,
        derive_seed(seed, 0x5a),
    )?;
    sir_with(
        prior.dim(),
        n,
        oversampling,
        seed,
        |m, s| Ok(env.sample(m, s)),
        |rows| Ok(env.log_weights(target, rows)),
    )
}

/// The resampling step of [`sir`] for any proposal: `draw(m, seed)` gives `m` candidate rows
/// and `log_weights(rows)` their `log target - log proposal` (`-inf` for a zero target). Each
/// of the `n` draws picks one of its own `oversampling` candidates by weight.
pub fn sir_with(
    d: usize,
    n: usize,
    oversampling: usize,
    seed: u64,
    mut draw: impl FnMut(usize, u64) -> Result<Vec<f64>>,
    mut log_weights: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<WeightedDraws> {
    if oversampling == 0 {
        return Err(invalid_arg("sir_oversampling", "must be positive"));
    }
    let mut out = Vec::with_capacity(n * d);
    let mut all_lw = Vec::with_capacity(n * oversampling);
    // Groups are processed in chunks so memory stays bounded for large n.
    let chunk = 1000usize;
    let mut start = 0;
    while start < n {
        let m = chunk.min(n - start);
        let cand = draw(m * oversampling, derive_seed(seed, 0x51c0 + start as u64))?;
        let lw = log_weights(&cand)?;
        for g in 0..m {
            let w = &lw[g * oversampling..(g + 1) * oversampling];
            let mx = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if mx == f64::NEG_INFINITY {
                return Err(InferError::NonFinite {
                    what: format!(
                        "SIR: all {oversampling} candidates of draw {} have zero density",
                        start + g
                    ),
                    index: start + g,
                });
            }
            let cum: Vec<f64> = w
                .iter()
                .scan(0.0, |s, l| {
                    *s += (l - mx).exp();
                    Some(*s)
                })
                .collect();
            let mut rng = stream_rng(seed, purpose::SAMPLING, (start + g) as u64);
            let r = rng.random::<f64>() * cum[oversampling - 1];
            let i = cum.partition_point(|&c| c < r).min(oversampling - 1);
            let row = (g * oversampling + i) * d;
            out.extend_from_slice(&cand[row..row + d]);
        }
        all_lw.extend_from_slice(&lw);
        start += m;
    }
    let ess = effective_sample_size(&all_lw);
    let warning = (ess < n as f64).then(|| {
        format!(
            "importance sampling: effective sample size {ess:.0} of {} candidates is below the {n} draws requested; draws repeat (raise sir_oversampling or use MCMC)",
            all_lw.len()
        )
    });
    Ok(WeightedDraws {
        theta: out,
        ess,
        acceptance_rate: 1.0 / oversampling as f64,
        warning,
    })
}

/// A multivariate normal distribution (mean and lower Cholesky factor of the covariance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gaussian {
    /// Mean.
    pub mean: Vec<f64>,
    /// Lower-triangular Cholesky factor, row-major `d x d`.
    pub chol: Vec<f64>,
    log_norm: f64,
}

impl Gaussian {
    /// From a mean and a row-major covariance; a tiny jitter keeps near-singular
    /// covariances usable.
    pub fn new(mean: Vec<f64>, cov: &[f64]) -> Result<Self> {
        let d = mean.len();
        if cov.len() != d * d || d == 0 {
            return Err(InferError::DimMismatch {
                what: "Gaussian covariance entries".into(),
                expected: d * d,
                got: cov.len(),
            });
        }
        let mut m = DMatrix::from_row_slice(d, d, cov);
        let jitter = 1e-10 * (0..d).map(|i| m[(i, i)].abs()).sum::<f64>() / d as f64 + 1e-300;
        for i in 0..d {
            m[(i, i)] += jitter;
        }
        let c = m
            .cholesky()
            .ok_or_else(|| invalid_arg("Gaussian covariance", "not positive definite"))?;
        let l = c.l();
        let log_det: f64 = (0..d).map(|i| 2.0 * l[(i, i)].ln()).sum();
        let mut chol = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                chol[i * d + j] = l[(i, j)];
            }
        }
        Ok(Self {
            mean,
            chol,
            log_norm: -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det),
        })
    }

    /// Weighted mean and covariance of rows (weights given as logs), covariance scaled by
    /// `scale^2`.
    pub fn fit(rows: &[f64], log_w: &[f64], d: usize, scale: f64) -> Result<Self> {
        let n = log_w.len();
        let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if n == 0 || mx == f64::NEG_INFINITY {
            return Err(invalid_arg(
                "Gaussian fit",
                "no point with positive weight to fit to",
            ));
        }
        let w: Vec<f64> = log_w.iter().map(|l| (l - mx).exp()).collect();
        let sw: f64 = w.iter().sum();
        let mut mean = vec![0.0; d];
        for (wi, r) in w.iter().zip(rows.chunks(d)) {
            for k in 0..d {
                mean[k] += wi * r[k] / sw;
            }
        }
        let mut cov = vec![0.0; d * d];
        for (wi, r) in w.iter().zip(rows.chunks(d)) {
            for a in 0..d {
                for b in 0..d {
                    cov[a * d + b] += wi * (r[a] - mean[a]) * (r[b] - mean[b]) / sw;
                }
            }
        }
        cov.iter_mut().for_each(|c| *c *= scale * scale);
        Self::new(mean, &cov)
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Log density at one point.
    pub fn log_prob(&self, x: &[f64]) -> f64 {
        let d = self.dim();
        // Solve L z = x - mean by forward substitution.
        let mut z = vec![0.0; d];
        for i in 0..d {
            let row = &self.chol[i * d..i * d + i];
            let s = x[i] - self.mean[i] - row.iter().zip(&z).map(|(l, v)| l * v).sum::<f64>();
            z[i] = s / self.chol[i * d + i];
        }
        self.log_norm - 0.5 * z.iter().map(|v| v * v).sum::<f64>()
    }

    /// One draw with `rng`.
    pub fn sample_into(&self, rng: &mut crate::SimRng, out: &mut [f64]) {
        let d = self.dim();
        let z: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        for (i, o) in out.iter_mut().enumerate().take(d) {
            let row = &self.chol[i * d..=i * d + i];
            *o = self.mean[i] + row.iter().zip(&z).map(|(l, v)| l * v).sum::<f64>();
        }
    }
}

/// Settings of [`rejection`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectionSettings {
    /// Prior draws used to fit the envelope and find the bound (10 000, as sbi's
    /// `num_samples_to_find_max`).
    pub fit_candidates: usize,
    /// The bound found on the fit candidates is multiplied by this (sbi's `m`, 1.2).
    pub bound_factor: f64,
    /// Give up after this many candidates.
    pub max_candidates: u64,
}

impl Default for RejectionSettings {
    fn default() -> Self {
        Self {
            fit_candidates: 10_000,
            bound_factor: 1.2,
            max_candidates: 20_000_000,
        }
    }
}

/// Draws per adaptation step of [`fit_proposal`].
pub(crate) const PROPOSAL_FIT_DRAWS: usize = 10_000;

/// Weight of the prior in the defensive mixture.
const PRIOR_SHARE: f64 = 0.1;

/// A defensive mixture proposal (Hesterberg 1995): `0.1 prior + 0.9 N(mean, cov)`. The prior
/// share keeps `target / proposal` bounded wherever the likelihood is.
pub struct Proposal<'a> {
    prior: &'a dyn Prior,
    gauss: Option<Gaussian>,
}

impl Proposal<'_> {
    /// Log density at one row.
    pub fn log_prob(&self, row: &[f64]) -> f64 {
        let a = self.prior.log_prob(row);
        let Some(g) = &self.gauss else { return a };
        let b = g.log_prob(row);
        let m = a.max(b);
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + (PRIOR_SHARE * (a - m).exp() + (1.0 - PRIOR_SHARE) * (b - m).exp()).ln()
    }
    /// `n` draws, row `i` from its own stream.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f64> {
        let d = self.prior.dim();
        let mut out = vec![0.0; n * d];
        for (i, row) in out.chunks_mut(d).enumerate() {
            let mut rng = stream_rng(seed, purpose::SAMPLING, i as u64);
            match &self.gauss {
                Some(g) if rng.random::<f64>() >= PRIOR_SHARE => g.sample_into(&mut rng, row),
                _ => self.prior.sample_into(&mut rng, row),
            }
        }
        out
    }
    /// `target - log proposal` per row (`-inf` where the target is zero).
    pub fn log_weights(&self, target: &dyn LogDensity, rows: &[f64]) -> Vec<f64> {
        let d = self.prior.dim();
        let mut lw = vec![0.0; rows.len() / d];
        target.log_density(rows, &mut lw);
        for (w, row) in lw.iter_mut().zip(rows.chunks(d)) {
            *w -= self.log_prob(row);
            if !w.is_finite() {
                *w = f64::NEG_INFINITY;
            }
        }
        lw
    }
}

/// Adapts a defensive mixture proposal to `target` in two importance-sampling steps: fit a
/// Gaussian to weighted prior draws, then refit it to weighted draws of the resulting mixture;
/// the final Gaussian's spread is multiplied by `scale` (> 1 keeps the tails covered).
pub fn fit_proposal<'a>(
    prior: &'a dyn Prior,
    target: &dyn LogDensity,
    draws: usize,
    scale: f64,
    seed: u64,
) -> Result<Proposal<'a>> {
    let d = prior.dim();
    let mut env = Proposal { prior, gauss: None };
    for step in 0..2u64 {
        let rows = env.sample(draws, derive_seed(seed, step));
        let lw = env.log_weights(target, &rows);
        if lw.iter().all(|l| *l == f64::NEG_INFINITY) {
            return Err(invalid_arg(
                "proposal fit",
                format!("the target density is zero on all {draws} draws"),
            ));
        }
        let s = if step == 1 { scale } else { 1.0 };
        env.gauss = Some(Gaussian::fit(&rows, &lw, d, s)?);
    }
    Ok(env)
}

/// Rejection sampling under a fitted envelope (sbi `RejectionPosterior` with a fitted
/// proposal): the envelope is the defensive mixture of [`fit_proposal`] (spread x1.3); the
/// bound `M >= target / envelope` is the largest ratio seen on the `fit_candidates` draws of
/// the envelope, times `bound_factor` (sbi's `m`, 1.2). A candidate whose ratio exceeds the
/// bound is counted and reported in the warning (the draws are then slightly biased there).
pub fn rejection(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    n: usize,
    settings: &RejectionSettings,
    seed: u64,
) -> Result<WeightedDraws> {
    let d = prior.dim();
    if settings.fit_candidates < 2 || settings.bound_factor.is_nan() || settings.bound_factor < 1.0
    {
        return Err(invalid_arg(
            "rejection settings",
            "fit_candidates must be >= 2 and bound_factor >= 1",
        ));
    }
    let env = fit_proposal(
        prior,
        target,
        settings.fit_candidates,
        1.3,
        derive_seed(seed, 0xe1),
    )?;
    let probe = env.sample(settings.fit_candidates, derive_seed(seed, 0xe2));
    let log_m = env
        .log_weights(target, &probe)
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max);
    if log_m == f64::NEG_INFINITY {
        // fit_proposal already saw a positive density, so this is only a degenerate target.
        return Err(invalid_arg(
            "rejection sampling",
            "the target density is zero on every fit candidate",
        ));
    }
    let log_m = log_m + settings.bound_factor.ln();
    let mut out = Vec::with_capacity(n * d);
    let (mut drawn, mut accepted, mut exceeded, mut round) = (0u64, 0usize, 0u64, 0u64);
    while accepted < n {
        let rate = if accepted == 0 {
            0.01
        } else {
            accepted as f64 / drawn as f64
        };
        let batch = (((n - accepted) as f64 / rate) * 1.2).clamp(1000.0, 1e6) as usize;
        let c = env.sample(batch, derive_seed(seed, 0x100 + round));
        let mut l = vec![0.0; batch];
        target.log_density(&c, &mut l);
        for (i, row) in c.chunks(d).enumerate() {
            let r = l[i] - env.log_prob(row) - log_m;
            if r > 0.0 {
                exceeded += 1;
            }
            let mut rng = stream_rng(seed, purpose::SAMPLING ^ 0xacc, drawn + i as u64);
            if accepted < n && rng.random::<f64>().ln() < r {
                out.extend_from_slice(row);
                accepted += 1;
            }
        }
        drawn += batch as u64;
        round += 1;
        if accepted < n && drawn >= settings.max_candidates {
            return Err(InferError::LowAcceptance { accepted, drawn });
        }
    }
    let warning = (exceeded > 0).then(|| {
        format!(
            "rejection sampling: {exceeded} of {drawn} candidates exceeded the envelope bound; raise bound_factor"
        )
    });
    Ok(WeightedDraws {
        theta: out,
        ess: accepted as f64,
        acceptance_rate: accepted as f64 / drawn as f64,
        warning,
    })
}
