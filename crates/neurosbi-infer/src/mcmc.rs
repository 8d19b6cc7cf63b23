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

/// Chooses `num_chains` starting points by sampling-importance-resampling: draws `num_candidates`
/// points from the prior and resamples them with weights `exp(target - prior log density)`
/// (sbi's "resample" initialisation). Returns rows in theta space.
pub fn sir_init(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    num_chains: usize,
    num_candidates: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    let d = prior.dim();
    if target.dim() != d {
        return Err(InferError::DimMismatch {
            what: "MCMC target vs prior".into(),
            expected: d,
            got: target.dim(),
        });
    }
    let cand = crate::prior::sample_prior(
        prior,
        num_candidates.max(num_chains),
        crate::rng::derive_seed(seed, 1),
    );
    let mut lw = vec![0.0; cand.len() / d];
    target.log_density(&cand, &mut lw);
    for (w, row) in lw.iter_mut().zip(cand.chunks(d)) {
        *w -= prior.log_prob(row);
        if !w.is_finite() {
            *w = f64::NEG_INFINITY;
        }
    }
    let mx = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if mx == f64::NEG_INFINITY {
        return Err(InferError::NonFinite {
            what: "MCMC initialisation: every candidate has zero density".into(),
            index: 0,
        });
    }
    let mut cum = Vec::with_capacity(lw.len());
    let mut s = 0.0;
    for w in &lw {
        s += (w - mx).exp();
        cum.push(s);
    }
    let mut out = Vec::with_capacity(num_chains * d);
    for j in 0..num_chains {
        let mut rng = stream_rng(seed, purpose::MCMC ^ 0xff, j as u64);
        let r = rng.random::<f64>() * s;
        let i = cum.partition_point(|&c| c < r).min(cum.len() - 1);
        out.extend_from_slice(&cand[i * d..(i + 1) * d]);
    }
    Ok(out)
}

/// Samples `target` (a density over theta on the prior's support) with the slice sampler in
/// unconstrained space, initialised by [`sir_init`]. Returns the MCMC output in theta space.
pub fn sample_posterior_mcmc(
    prior: &dyn Prior,
    target: &dyn LogDensity,
    n_samples: usize,
    cfg: &SliceConfig,
) -> Result<McmcOutput> {
    let init = sir_init(
        prior,
        target,
        cfg.num_chains,
        1000.max(10 * cfg.num_chains),
        cfg.seed,
    )?;
    let unc = Unconstrained { prior, target };
    let u0 = unc.unconstrain(&init);
    let mut out = slice_sample(&unc, &u0, n_samples, cfg)?;
    for ch in &mut out.chains {
        *ch = unc.to_theta(ch);
    }
    out.rhat = split_rhat(&out.chains, out.dim);
    Ok(out)
}
