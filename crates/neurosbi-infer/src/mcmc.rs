//! Vectorised slice sampling (Neal 2003, coordinate-wise with stepping out and shrinkage), run
//! for many chains at once so that each density call evaluates one row per active chain, plus the
//! split-R-hat convergence diagnostic (Gelman et al. 2013, BDA3 section 11.4).
//!
//! MCMC runs in the prior's unconstrained space ([`Unconstrained`]) so bounded priors never
//! propose outside their support, as sbi does.

use crate::error::{InferError, Result, invalid_arg, rows_of};
use crate::prior::Prior;
use crate::rng::{SimRng, purpose, stream_rng};
use rand::RngExt;

/// An unnormalised log density evaluated on batches of rows.
pub trait LogDensity: Sync {
    /// Dimension of one point.
    fn dim(&self) -> usize;
    /// Writes the log density of each row of `points` (`n x dim`) to `out` (`n`); `-inf` is allowed.
    fn log_density(&self, points: &[f64], out: &mut [f64]);
}

impl<F: Fn(&[f64], &mut [f64]) + Sync> LogDensity for (usize, F) {
    fn dim(&self) -> usize {
        self.0
    }
    fn log_density(&self, points: &[f64], out: &mut [f64]) {
        (self.1)(points, out)
    }
}

/// A density on the prior's support seen in unconstrained coordinates:
/// `log p(theta(u)) + log |det d theta / d u|`.
pub struct Unconstrained<'a> {
    /// Prior that supplies the bijection.
    pub prior: &'a dyn Prior,
    /// Density over theta.
    pub target: &'a dyn LogDensity,
}

impl Unconstrained<'_> {
    /// Maps unconstrained rows back to theta rows.
    pub fn to_theta(&self, u: &[f64]) -> Vec<f64> {
        let d = self.prior.dim();
        let mut t = vec![0.0; u.len()];
        for (ur, tr) in u.chunks(d).zip(t.chunks_mut(d)) {
            self.prior.constrain(ur, tr);
        }
        t
    }
    /// Maps theta rows to unconstrained rows.
    pub fn unconstrain(&self, theta: &[f64]) -> Vec<f64> {
        let d = self.prior.dim();
        let mut u = vec![0.0; theta.len()];
        for (tr, ur) in theta.chunks(d).zip(u.chunks_mut(d)) {
            self.prior.unconstrain(tr, ur);
        }
        u
    }
}

impl LogDensity for Unconstrained<'_> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }
    fn log_density(&self, points: &[f64], out: &mut [f64]) {
        let d = self.prior.dim();
        let mut theta = vec![0.0; points.len()];
        let mut lj = vec![0.0; out.len()];
        for ((ur, tr), l) in points.chunks(d).zip(theta.chunks_mut(d)).zip(lj.iter_mut()) {
            *l = self.prior.constrain(ur, tr);
        }
        self.target.log_density(&theta, out);
        for (o, l) in out.iter_mut().zip(lj) {
            *o = if o.is_nan() {
                f64::NEG_INFINITY
            } else {
                *o + l
            };
        }
    }
}

/// Settings of the slice sampler (defaults follow sbi: 20 chains, 200 warm-up steps).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SliceConfig {
    /// Number of chains run together.
    pub num_chains: usize,
    /// Warm-up sweeps per chain (discarded; the bracket widths adapt during them).
    pub warmup: usize,
    /// Keep every `thin`-th sweep.
    pub thin: usize,
    /// Initial bracket width per coordinate.
    pub init_width: f64,
    /// Maximum stepping-out steps on each side.
    pub max_step_out: usize,
    /// Seed; chain `c` uses its own stream.
    pub seed: u64,
}

impl Default for SliceConfig {
    fn default() -> Self {
        Self {
            num_chains: 20,
            warmup: 200,
            thin: 1,
            init_width: 0.5,
            max_step_out: 20,
            seed: 0,
        }
    }
}

/// Result of a slice-sampling run.
#[derive(Clone, Debug)]
pub struct McmcOutput {
    /// Dimension.
    pub dim: usize,
    /// Kept samples, chain-major: `chains[c]` is `n_per_chain x dim`.
    pub chains: Vec<Vec<f64>>,
    /// Split-R-hat per dimension over the kept samples.
    pub rhat: Vec<f64>,
    /// Density evaluations (rows) spent.
    pub evaluations: u64,
    /// How [`sample_posterior_mcmc`] chose the starting points (by [`sir_init`] or
    /// [`tempered_init`]; its `theta` is left empty); `None` when the caller gave them.
    pub init: Option<McmcInit>,
}

impl McmcOutput {
    /// All kept samples interleaved across chains (draw 0 of every chain, then draw 1, ...),
    /// truncated to `n` rows, so a prefix mixes all chains.
    pub fn samples(&self, n: usize) -> Vec<f64> {
        let d = self.dim;
        let per = self.chains.first().map_or(0, |c| c.len() / d);
        let mut out = Vec::with_capacity(n * d);
        'outer: for i in 0..per {
            for c in &self.chains {
                if out.len() >= n * d {
                    break 'outer;
                }
                out.extend_from_slice(&c[i * d..(i + 1) * d]);
            }
        }
        out
    }
}

fn eval(target: &dyn LogDensity, pts: &[f64], evals: &mut u64) -> Vec<f64> {
    let d = target.dim();
    let mut out = vec![0.0; pts.len() / d];
    *evals += out.len() as u64;
    target.log_density(pts, &mut out);
    for v in &mut out {
        if v.is_nan() {
            *v = f64::NEG_INFINITY;
        }
    }
    out
}

/// Runs `num_chains` slice-sampling chains from `init` (`num_chains x dim`, each with finite
/// density) and keeps `ceil(n_samples / num_chains)` draws per chain after warm-up.
pub fn slice_sample(
    target: &dyn LogDensity,
    init: &[f64],
    n_samples: usize,
    cfg: &SliceConfig,
) -> Result<McmcOutput> {
    let d = target.dim();
    let c = rows_of("MCMC initial points", init, d)?;
    if c != cfg.num_chains || c == 0 {
        return Err(InferError::RowMismatch {
            what: "MCMC initial points vs num_chains".into(),
            left: c,
            right: cfg.num_chains,
        });
    }
    if cfg.thin == 0 || cfg.init_width.is_nan() || cfg.init_width <= 0.0 {
        return Err(invalid_arg(
            "slice sampler settings",
            "thin must be >= 1 and init_width > 0",
        ));
    }
    let mut evals = 0u64;
    let mut x = init.to_vec();
    let mut lp = eval(target, &x, &mut evals);
    if let Some(i) = lp.iter().position(|v| !v.is_finite()) {
        return Err(InferError::NonFinite {
            what: "log density at MCMC initial point (chain)".into(),
            index: i,
        });
    }
    let mut rngs: Vec<SimRng> = (0..c)
        .map(|k| stream_rng(cfg.seed, purpose::MCMC, k as u64))
        .collect();
    let mut width = vec![cfg.init_width; d];
    let per_chain = n_samples.div_ceil(c);
    let sweeps = cfg.warmup + per_chain * cfg.thin;
    let mut chains: Vec<Vec<f64>> = vec![Vec::with_capacity(per_chain * d); c];
    let mut pts = vec![0.0; c * d];
    for sweep in 0..sweeps {
        for k in 0..d {
            let w = width[k];
            // Slice level and initial bracket for every chain.
            let logy: Vec<f64> = (0..c)
                .map(|j| lp[j] - rngs[j].sample::<f64, _>(rand_distr::Exp1))
                .collect();
            let mut left = vec![0.0; c];
            let mut right = vec![0.0; c];
            for j in 0..c {
                left[j] = x[j * d + k] - w * rngs[j].random::<f64>();
                right[j] = left[j] + w;
            }
            // Step out both ends, evaluating only the chains still stepping.
            for side in [0, 1] {
                let mut active: Vec<usize> = (0..c).collect();
                for _ in 0..cfg.max_step_out {
                    if active.is_empty() {
                        break;
                    }
                    let mut batch = Vec::with_capacity(active.len() * d);
                    for &j in &active {
                        batch.extend_from_slice(&x[j * d..(j + 1) * d]);
                        let n = batch.len();
                        batch[n - d + k] = if side == 0 { left[j] } else { right[j] };
                    }
                    let l = eval(target, &batch, &mut evals);
                    let mut next = Vec::new();
                    for (&j, &lv) in active.iter().zip(&l) {
                        if lv > logy[j] {
                            if side == 0 {
                                left[j] -= w;
                            } else {
                                right[j] += w;
                            }
                            next.push(j);
                        }
                    }
                    active = next;
                }
            }
            // Shrink until a point inside the slice is found.
            let old: Vec<f64> = (0..c).map(|j| x[j * d + k]).collect();
            let mut active: Vec<usize> = (0..c).collect();
            let mut prop = vec![0.0; c];
            let mut guard = 0;
            while !active.is_empty() {
                guard += 1;
                pts.clear();
                for &j in &active {
                    prop[j] = left[j] + (right[j] - left[j]) * rngs[j].random::<f64>();
                    pts.extend_from_slice(&x[j * d..(j + 1) * d]);
                    let n = pts.len();
                    pts[n - d + k] = prop[j];
                }
                let l = eval(target, &pts, &mut evals);
                let mut next = Vec::new();
                for (&j, &lv) in active.iter().zip(&l) {
                    if lv > logy[j] || guard > 200 {
                        // After 200 shrinks the bracket is numerically a point: stay put.
                        if lv > logy[j] {
                            x[j * d + k] = prop[j];
                            lp[j] = lv;
                        }
                    } else {
                        if prop[j] < old[j] {
                            left[j] = prop[j];
                        } else {
                            right[j] = prop[j];
                        }
                        next.push(j);
                    }
                }
                active = next;
            }
            if sweep < cfg.warmup {
                // Adapt the width towards a few times the typical move, as Neal suggests.
                let mean_move =
                    (0..c).map(|j| (x[j * d + k] - old[j]).abs()).sum::<f64>() / c as f64;
                if mean_move > 0.0 {
                    width[k] = 0.8 * width[k] + 0.2 * (3.0 * mean_move);
                }
            }
        }
        if sweep >= cfg.warmup && (sweep - cfg.warmup) % cfg.thin == cfg.thin - 1 {
            for j in 0..c {
                chains[j].extend_from_slice(&x[j * d..(j + 1) * d]);
            }
        }
    }
    let rhat = split_rhat(&chains, d);
    Ok(McmcOutput {
        dim: d,
        chains,
        rhat,
        evaluations: evals,
        init: None,
    })
}

/// Split-R-hat per dimension (BDA3 eq. 11.4): each chain is split in halves; values near 1
/// (below about 1.01-1.05) indicate that the chains agree.
pub fn split_rhat(chains: &[Vec<f64>], d: usize) -> Vec<f64> {
    let n = chains.first().map_or(0, |c| c.len() / d) / 2;
    if n < 2 {
        return vec![f64::NAN; d];
    }
    (0..d)
        .map(|k| {
            let halves: Vec<Vec<f64>> = chains
                .iter()
                .flat_map(|c| {
                    [
                        (0..n).map(|i| c[i * d + k]).collect(),
                        (n..2 * n).map(|i| c[i * d + k]).collect(),
                    ]
                })
                .collect();
            let m = halves.len() as f64;
            let means: Vec<f64> = halves
                .iter()
                .map(|h| h.iter().sum::<f64>() / n as f64)
                .collect();
            let grand = means.iter().sum::<f64>() / m;
            let b = n as f64 / (m - 1.0) * means.iter().map(|mu| (mu - grand).powi(2)).sum::<f64>();
            let w = halves
                .iter()
                .zip(&means)
                .map(|(h, mu)| h.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n as f64 - 1.0))
                .sum::<f64>()
                / m;
            let var = (n as f64 - 1.0) / n as f64 * w + b / n as f64;
            (var / w).sqrt()
        })
        .collect()
}

/// Prior candidates per batch of [`sir_init`].
pub const SIR_BATCH: usize = 10_000;
/// Most prior candidates [`sir_init`] draws before it settles for a smaller effective sample size.
pub const SIR_MAX_CANDIDATES: usize = 100_000;

/// SIR's effective sample size (or the number of chains, if smaller) below which
/// [`sample_posterior_mcmc`] starts its chains from a tempered SMC run instead.
pub const SIR_MIN_ESS: f64 = 100.0;
/// Particles of [`tempered_init`] (at least the number of chains).
pub const SMC_PARTICLES: usize = 1000;
/// Slice-sampling sweeps per tempering stage of [`tempered_init`].
pub const SMC_MOVES: usize = 3;
/// Most tempering stages of [`tempered_init`].
const SMC_MAX_STAGES: usize = 500;

/// Starting points of MCMC chains, with how well they were found.
#[derive(Clone, Debug)]
pub struct McmcInit {
    /// `num_chains x dim` rows in theta space.
    pub theta: Vec<f64>,
    /// Prior candidates drawn (by SIR, plus the SMC particles if it ran).
    pub candidates: usize,
    /// Kish effective sample size of SIR's importance weights (the last stage's, after SMC).
    pub ess: f64,
    /// Tempering stages of the SMC start; 0 when SIR alone chose the points.
    pub stages: usize,
}

/// Log-weights below the running maximum by more than this carry less than e^-60 of the mass
/// and are dropped, so memory stays small however many batches are drawn.
const SIR_LOG_CUTOFF: f64 = 60.0;

impl McmcInit {
    fn without_points(self) -> Self {
        Self {
            theta: Vec::new(),
            ..self
        }
    }
}

/// The prior's dimension, checked against the target's.
fn check_target_dim(prior: &dyn Prior, target: &dyn LogDensity) -> Result<usize> {
    let d = prior.dim();
    if target.dim() != d {
        return Err(InferError::DimMismatch {
            what: "MCMC target vs prior".into(),
            expected: d,
            got: target.dim(),
        });
    }
    Ok(d)
}

/// Chooses `num_chains` starting points by sampling-importance-resampling: draws prior candidates
/// in batches of [`SIR_BATCH`] and resamples them with weights `exp(target - prior log density)`
/// (sbi's "resample" initialisation).
///
/// Slice-sampling chains rarely cross between separated modes, so the share of chains that
/// starts in each mode becomes that mode's weight in the draws. With a posterior much narrower
/// than the prior, one batch may hold only a handful of candidates with non-negligible weight,
/// and all chains would start in the mode of the luckiest one. So batches are drawn until the
/// weights' effective sample size reaches `num_chains` (at least `min_candidates` and at most
/// [`SIR_MAX_CANDIDATES`] candidates).
pub fn sir_init(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    num_chains: usize,
    min_candidates: usize,
    seed: u64,
) -> Result<McmcInit> {
    let d = check_target_dim(prior, target)?;
    let min_candidates = min_candidates.max(num_chains).min(SIR_MAX_CANDIDATES);
    // Kept candidates: (log weight, row).
    let mut kept_lw: Vec<f64> = Vec::new();
    let mut kept: Vec<f64> = Vec::new();
    let mut mx = f64::NEG_INFINITY;
    let mut drawn = 0usize;
    let mut ess = 0.0;
    let mut batch_index = 0u64;
    while drawn < SIR_MAX_CANDIDATES {
        let m = SIR_BATCH.min(SIR_MAX_CANDIDATES - drawn);
        // Batch 0 keeps the seed of the single-batch scheme, so small targets start as before.
        let cand = crate::prior::sample_prior(
            prior,
            m,
            crate::rng::derive_seed(seed, 1 + batch_index * 0x9e37_79b9),
        );
        batch_index += 1;
        drawn += m;
        let lw = log_ratio(prior, target, &cand);
        mx = lw.iter().copied().fold(mx, f64::max);
        if mx == f64::NEG_INFINITY {
            continue;
        }
        for (w, row) in lw.iter().zip(cand.chunks(d)) {
            if *w > mx - SIR_LOG_CUTOFF {
                kept_lw.push(*w);
                kept.extend_from_slice(row);
            }
        }
        if kept_lw.iter().any(|w| *w <= mx - SIR_LOG_CUTOFF) {
            let mut j = 0;
            for i in 0..kept_lw.len() {
                if kept_lw[i] > mx - SIR_LOG_CUTOFF {
                    kept_lw[j] = kept_lw[i];
                    kept.copy_within(i * d..(i + 1) * d, j * d);
                    j += 1;
                }
            }
            kept_lw.truncate(j);
            kept.truncate(j * d);
        }
        let (s1, s2) = kept_lw.iter().fold((0.0, 0.0), |(a, b), w| {
            let e = (w - mx).exp();
            (a + e, b + e * e)
        });
        ess = s1 * s1 / s2;
        if drawn >= min_candidates && ess >= num_chains as f64 {
            break;
        }
    }
    if mx == f64::NEG_INFINITY {
        return Err(InferError::NonFinite {
            what: "MCMC initialisation: every candidate has zero density".into(),
            index: 0,
        });
    }
    let mut cum = Vec::with_capacity(kept_lw.len());
    let mut s = 0.0;
    for w in &kept_lw {
        s += (w - mx).exp();
        cum.push(s);
    }
    let mut theta = Vec::with_capacity(num_chains * d);
    for j in 0..num_chains {
        let mut rng = stream_rng(seed, purpose::MCMC ^ 0xff, j as u64);
        let r = rng.random::<f64>() * s;
        let i = cum.partition_point(|&c| c < r).min(cum.len() - 1);
        theta.extend_from_slice(&kept[i * d..(i + 1) * d]);
    }
    Ok(McmcInit {
        theta,
        candidates: drawn,
        ess,
        stages: 0,
    })
}

/// `prior^(1-beta) * target^beta` over theta: the tempered bridge from prior to target.
struct Tempered<'a> {
    prior: &'a dyn Prior,
    target: &'a dyn LogDensity,
    beta: f64,
}

impl LogDensity for Tempered<'_> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }
    fn log_density(&self, points: &[f64], out: &mut [f64]) {
        self.target.log_density(points, out);
        let d = self.prior.dim();
        for (o, row) in out.iter_mut().zip(points.chunks(d)) {
            let lp = self.prior.log_prob(row);
            *o = if lp == f64::NEG_INFINITY || !o.is_finite() {
                f64::NEG_INFINITY
            } else {
                lp + self.beta * (*o - lp)
            };
        }
    }
}

/// Kish effective sample size of weights `exp(delta * l_i)`.
fn tempered_ess(l: &[f64], delta: f64) -> f64 {
    let mx = l.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(delta * b));
    if mx == f64::NEG_INFINITY {
        return 0.0;
    }
    let (s1, s2) = l.iter().fold((0.0, 0.0), |(a, b), &v| {
        let e = (delta * v - mx).exp();
        (a + e, b + e * e)
    });
    s1 * s1 / s2
}

/// Log-likelihood part `target - log prior` of each theta row (`-inf` where undefined).
fn log_ratio(prior: &dyn Prior, target: &dyn LogDensity, theta: &[f64]) -> Vec<f64> {
    let d = prior.dim();
    let mut l = vec![0.0; theta.len() / d];
    target.log_density(theta, &mut l);
    for (v, row) in l.iter_mut().zip(theta.chunks(d)) {
        *v -= prior.log_prob(row);
        if !v.is_finite() {
            *v = f64::NEG_INFINITY;
        }
    }
    l
}

/// Chooses `num_chains` starting points by a tempered sequential Monte Carlo run (Del Moral et
/// al. 2006): [`SMC_PARTICLES`] prior draws move through `prior^(1-beta) * target^beta`, with
/// each step in beta chosen so the weights keep an effective sample size of half the particles,
/// then resampling and [`SMC_MOVES`] slice-sampling sweeps.
///
/// Unlike SIR from the prior, it needs no candidate to land in the posterior by chance, so the
/// share of particles in each separated mode follows the mode's mass even when the posterior is
/// many orders of magnitude narrower than the prior.
pub fn tempered_init(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    num_chains: usize,
    seed: u64,
) -> Result<McmcInit> {
    let d = check_target_dim(prior, target)?;
    let n = num_chains.max(SMC_PARTICLES);
    let mut theta = crate::prior::sample_prior(prior, n, crate::rng::derive_seed(seed, 2));
    let mut l = log_ratio(prior, target, &theta);
    if l.iter().all(|v| *v == f64::NEG_INFINITY) {
        return Err(InferError::NonFinite {
            what: "MCMC initialisation: every candidate has zero density".into(),
            index: 0,
        });
    }
    let mut beta = 0.0;
    let mut stages = 0;
    let mut ess = n as f64;
    while beta < 1.0 && stages < SMC_MAX_STAGES {
        let rest = 1.0 - beta;
        let half = 0.5 * n as f64;
        let delta = if tempered_ess(&l, rest) >= half {
            rest
        } else {
            let (mut lo, mut hi) = (0.0, rest);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if tempered_ess(&l, mid) >= half {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            // Particles outside the support keep the ESS under half at any step; move on
            // by the smallest step the bisection tried rather than stall.
            lo.max(hi.min(rest) * 1e-6).max(1e-12)
        };
        beta = if delta >= rest { 1.0 } else { beta + delta };
        ess = tempered_ess(&l, delta);
        // Systematic resampling with weights exp(delta * l).
        let mx = l.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(delta * b));
        let w: Vec<f64> = l.iter().map(|&v| (delta * v - mx).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut rng = stream_rng(seed, purpose::MCMC ^ 0x5c, stages as u64);
        let start = rng.random::<f64>() / n as f64;
        let mut chosen = Vec::with_capacity(n * d);
        let (mut cum, mut i) = (w[0] / total, 0);
        for k in 0..n {
            let point = start + k as f64 / n as f64;
            while cum < point && i + 1 < n {
                i += 1;
                cum += w[i] / total;
            }
            chosen.extend_from_slice(&theta[i * d..(i + 1) * d]);
        }
        let bridge = Tempered {
            prior,
            target,
            beta,
        };
        let unc = Unconstrained {
            prior,
            target: &bridge,
        };
        let moved = slice_sample(
            &unc,
            &unc.unconstrain(&chosen),
            n,
            &SliceConfig {
                num_chains: n,
                warmup: SMC_MOVES - 1,
                thin: 1,
                seed: crate::rng::derive_seed(seed, 0x5300 + stages as u64),
                ..Default::default()
            },
        )?;
        theta = moved.chains.iter().flat_map(|c| unc.to_theta(c)).collect();
        l = log_ratio(prior, target, &theta);
        stages += 1;
    }
    // The particles are now (equally weighted) draws of the target; pick the chains' starts.
    let mut out = Vec::with_capacity(num_chains * d);
    for j in 0..num_chains {
        let mut rng = stream_rng(seed, purpose::MCMC ^ 0x5d, j as u64);
        let i = rng.random_range(0..n);
        out.extend_from_slice(&theta[i * d..(i + 1) * d]);
    }
    Ok(McmcInit {
        theta: out,
        candidates: n,
        ess,
        stages,
    })
}

/// Samples `target` (a density over theta on the prior's support) with the slice sampler in
/// unconstrained space, initialised by [`sir_init`], or by [`tempered_init`] where SIR's
/// effective sample size stays under [`SIR_MIN_ESS`] (or the number of chains). Returns the MCMC
/// output in theta space.
pub fn sample_posterior_mcmc(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    n_samples: usize,
    cfg: &SliceConfig,
) -> Result<McmcOutput> {
    let mut init = sir_init(
        prior,
        target,
        cfg.num_chains,
        1000.max(10 * cfg.num_chains),
        cfg.seed,
    )?;
    if init.ess < SIR_MIN_ESS.min(cfg.num_chains as f64) {
        let sir_candidates = init.candidates;
        init = tempered_init(prior, target, cfg.num_chains, cfg.seed)?;
        init.candidates += sir_candidates;
    }
    let unc = Unconstrained { prior, target };
    let u0 = unc.unconstrain(&init.theta);
    let mut out = slice_sample(&unc, &u0, n_samples, cfg)?;
    for ch in &mut out.chains {
        *ch = unc.to_theta(ch);
    }
    out.rhat = split_rhat(&out.chains, out.dim);
    out.init = Some(init.without_points());
    Ok(out)
}
