//! Approximate Bayesian computation (ABC) baselines: rejection ABC and SMC-ABC.
//!
//! Both compare simulated outputs with the observation through a distance on z-scored features
//! (each feature divided by its standard deviation over the simulations, so features on large
//! scales do not dominate), and keep the parameters whose simulations come closest. They need no
//! training and make no assumption about the posterior's shape, but they need many more
//! simulations than the neural methods and degrade quickly with the number of features: use them
//! as baselines, for cheap simulators, or to check a neural posterior.
//!
//! Every draw is seeded per simulation index (and per proposal index), so results are the same
//! whatever the thread count or batch size.
//!
//! ```
//! use neurosbi_infer::abc::{RejectionAbcConfig, rejection_abc};
//! use neurosbi_infer::tasks::{GaussianLinear, Task};
//!
//! let task = GaussianLinear::new();
//! let x_o = task.observation(1)?;
//! let cfg = RejectionAbcConfig { n_simulations: 2_000, quantile: Some(0.05), ..Default::default() };
//! let post = rejection_abc(&task, task.prior(), &x_o, &cfg)?;
//! assert_eq!(post.len(), 100);
//! assert!(post.distances.windows(2).all(|w| w[0] <= w[1]));
//! # Ok::<(), neurosbi_infer::InferError>(())
//! ```

use crate::error::{InferError, Result, check_finite, invalid_arg};
use crate::prior::Prior;
use crate::rng::{SimRng, derive_seed, purpose, stream_rng};
use crate::simulator::{
    FromPrior, Quiet, RunConfig, Simulator, ThetaSource, check_dims, simulate, simulate_chunk,
};
use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Distance between z-scored feature vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distance {
    /// Euclidean distance (sbi's `"l2"`, the default).
    #[default]
    L2,
    /// Sum of absolute differences (sbi's `"l1"`).
    L1,
}

impl Distance {
    fn eval(self, x: &[f64], x_o: &[f64], scale: &[f64]) -> f64 {
        let terms = x.iter().zip(x_o).zip(scale).map(|((a, b), s)| (a - b) / s);
        match self {
            Distance::L2 => terms.map(|t| t * t).sum::<f64>().sqrt(),
            Distance::L1 => terms.map(f64::abs).sum(),
        }
    }
}

/// Settings of [`rejection_abc`]. Exactly one of `quantile` and `eps` must be set.
#[derive(Clone, Debug)]
pub struct RejectionAbcConfig {
    /// Simulations drawn from the prior (default 100 000).
    pub n_simulations: usize,
    /// Keep this fraction of the simulations, the closest ones, in `(0, 1]` (default 0.01).
    pub quantile: Option<f64>,
    /// Keep every simulation within this distance (`> 0`; default unset).
    pub eps: Option<f64>,
    /// Distance on z-scored features (default Euclidean).
    pub distance: Distance,
    /// Linear regression adjustment of the accepted parameters (sbi's `lra`; default off).
    pub regression_adjustment: bool,
    /// Seed of the run.
    pub seed: u64,
    /// Rows handed to the simulator per call.
    pub batch_size: usize,
}

impl Default for RejectionAbcConfig {
    fn default() -> Self {
        Self {
            n_simulations: 100_000,
            quantile: Some(0.01),
            eps: None,
            distance: Distance::L2,
            regression_adjustment: false,
            seed: 0,
            batch_size: 100,
        }
    }
}

/// Settings of [`smc_abc`] (sbi's `SMCABC` with a Gaussian kernel and distance-based epsilon).
#[derive(Clone, Debug)]
pub struct SmcAbcConfig {
    /// Particles per population (default 1 000).
    pub population_size: usize,
    /// Total simulation budget, initial round included (default 10 000).
    pub n_simulations: usize,
    /// The first round simulates `population_size * initial_round_factor` prior draws and keeps
    /// the `population_size` closest (default 5, as sbi).
    pub initial_round_factor: usize,
    /// Each round's epsilon is this quantile of the previous population's distances, in `(0, 1)`
    /// (default 0.5; sbibm uses 0.2).
    pub epsilon_quantile: f64,
    /// Kernel covariance = `kernel_scale` x the weighted particle covariance (default 2, Beaumont
    /// et al. 2009).
    pub kernel_scale: f64,
    /// Resample the population (to uniform weights) when its effective sample size falls below
    /// this fraction of `population_size`, in `(0, 1]` (default unset: never, as sbi).
    pub ess_min: Option<f64>,
    /// Distance on z-scored features (default Euclidean).
    pub distance: Distance,
    /// Linear regression adjustment of the final population (sbi's `lra`; default off).
    pub regression_adjustment: bool,
    /// When the budget runs out with the final population partly filled, complete it with
    /// the previous population's closest particles and reweight them all, instead of
    /// discarding the new particles and returning the previous population (default on, as
    /// sbi's `use_last_pop_samples`, which sbibm uses).
    pub fill_last_population: bool,
    /// Seed of the run.
    pub seed: u64,
    /// Rows handed to the simulator per call.
    pub batch_size: usize,
}

impl Default for SmcAbcConfig {
    fn default() -> Self {
        Self {
            population_size: 1000,
            n_simulations: 10_000,
            initial_round_factor: 5,
            epsilon_quantile: 0.5,
            kernel_scale: 2.0,
            ess_min: None,
            distance: Distance::L2,
            regression_adjustment: false,
            fill_last_population: true,
            seed: 0,
            batch_size: 100,
        }
    }
}

/// Weighted parameter samples returned by the ABC methods.
#[derive(Clone, Debug, PartialEq)]
pub struct AbcSamples {
    /// Parameter dimension.
    pub dim_theta: usize,
    /// Accepted parameters, row-major.
    pub theta: Vec<f64>,
    /// Normalised importance weights, one per row (uniform for rejection ABC).
    pub weights: Vec<f64>,
    /// Distance of each row's simulation to the observation (rejection ABC: ascending).
    pub distances: Vec<f64>,
    /// Acceptance threshold of the returned samples.
    pub epsilon: f64,
    /// Simulations run, invalid ones included.
    pub n_simulations: u64,
    /// Invalid simulations (NaN/Inf output or simulator error), never accepted.
    pub n_invalid: u64,
    /// Epsilon of each completed SMC round (the initial round first); empty for rejection ABC.
    pub epsilons: Vec<f64>,
    /// SMC-ABC: rows at the end of the final population carried over from the previous one
    /// (its closest particles) because the budget ran out before the population filled
    /// ([`SmcAbcConfig::fill_last_population`]); their distances may exceed `epsilon`.
    pub carried_over: usize,
}

impl AbcSamples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.weights.len()
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
    /// `n` unweighted draws (row-major) from the weighted samples, with replacement.
    pub fn resample(&self, n: usize, seed: u64) -> Vec<f64> {
        let cum = cumulative(&self.weights);
        let d = self.dim_theta;
        let mut out = vec![0.0; n * d];
        for (i, row) in out.chunks_mut(d).enumerate() {
            let mut rng = stream_rng(seed, purpose::SAMPLING, i as u64);
            let j = pick(&cum, rng.random::<f64>());
            row.copy_from_slice(&self.theta[j * d..(j + 1) * d]);
        }
        out
    }
    /// Weighted mean of each parameter.
    pub fn mean(&self) -> Vec<f64> {
        let d = self.dim_theta;
        let mut m = vec![0.0; d];
        for (row, w) in self.theta.chunks(d).zip(&self.weights) {
            for (mk, v) in m.iter_mut().zip(row) {
                *mk += w * v;
            }
        }
        m
    }
}

fn cumulative(w: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    w.iter()
        .map(|v| {
            acc += v;
            acc
        })
        .collect()
}

/// Index of the first cumulative weight above `u * total`.
fn pick(cum: &[f64], u: f64) -> usize {
    let target = u * cum.last().copied().unwrap_or(0.0);
    cum.partition_point(|&c| c <= target).min(cum.len() - 1)
}

fn check_obs(sim: &dyn Simulator, prior: &dyn Prior, x_o: &[f64]) -> Result<()> {
    check_dims(sim, &FromPrior(prior))?;
    if x_o.len() != sim.dim_x() {
        return Err(InferError::DimMismatch {
            what: "ABC observation x_o vs simulator dim_x".into(),
            expected: sim.dim_x(),
            got: x_o.len(),
        });
    }
    check_finite("ABC observation x_o", x_o)
}

/// Per-feature standard deviation over the rows of `x` (1 where a feature is constant, so it
/// neither divides by zero nor matters).
fn feature_std(x: &[f64], dim: usize) -> Vec<f64> {
    let n = (x.len() / dim) as f64;
    (0..dim)
        .map(|k| {
            let m = x.iter().skip(k).step_by(dim).sum::<f64>() / n;
            let v = x
                .iter()
                .skip(k)
                .step_by(dim)
                .map(|v| (v - m).powi(2))
                .sum::<f64>()
                / (n - 1.0).max(1.0);
            if v > 0.0 { v.sqrt() } else { 1.0 }
        })
        .collect()
}

/// Indices sorted by distance, ties broken by index so the order never depends on the sort.
fn order_by_distance(d: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..d.len()).collect();
    idx.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
    idx
}

/// Rejection ABC (sbi's `MCABC`): simulates `n_simulations` prior draws, z-scores the features by
/// their standard deviation over the simulations, and keeps either the `quantile` closest to
/// `x_o` or all within `eps`. Returns the accepted parameters in ascending distance.
///
/// Use it as a baseline or with cheap simulators and few features; the defaults (100 000
/// simulations, quantile 0.01, Euclidean distance, no regression adjustment) keep 1 000
/// samples. Invalid simulations are never accepted.
pub fn rejection_abc(
    sim: &dyn Simulator,
    prior: &dyn Prior,
    x_o: &[f64],
    cfg: &RejectionAbcConfig,
) -> Result<AbcSamples> {
    check_obs(sim, prior, x_o)?;
    match (cfg.quantile, cfg.eps) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid_arg(
                "quantile/eps",
                "rejection ABC needs exactly one of `quantile` and `eps`",
            ));
        }
        (Some(q), None) if !(q > 0.0 && q <= 1.0) => {
            return Err(invalid_arg("quantile", format!("{q} is outside (0, 1]")));
        }
        (None, Some(e)) if e.is_nan() || e <= 0.0 => {
            return Err(invalid_arg("eps", format!("{e} must be > 0")));
        }
        _ => {}
    }
    if cfg.n_simulations == 0 {
        return Err(invalid_arg("n_simulations", "must be > 0"));
    }
    let run = RunConfig {
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        ..Default::default()
    };
    let sims = simulate(sim, &FromPrior(prior), cfg.n_simulations, &run, &mut Quiet)?;
    let (dt, dx) = (sims.dim_theta, sims.dim_x);
    let scale = feature_std(&sims.x, dx);
    let dist: Vec<f64> = sims
        .x
        .par_chunks(dx)
        .map(|x| cfg.distance.eval(x, x_o, &scale))
        .collect();
    let order = order_by_distance(&dist);
    let keep = match (cfg.quantile, cfg.eps) {
        // sbi keeps int(quantile * n); at least one so a tiny quantile still returns a sample.
        (Some(q), _) => ((q * dist.len() as f64) as usize).clamp(1, dist.len()),
        (_, Some(e)) => order.iter().take_while(|&&i| dist[i] <= e).count(),
        _ => unreachable!("checked above"),
    };
    let mut theta = Vec::with_capacity(keep * dt);
    let mut distances = Vec::with_capacity(keep);
    let mut xs = Vec::with_capacity(keep * dx);
    for &i in &order[..keep] {
        theta.extend_from_slice(&sims.theta[i * dt..(i + 1) * dt]);
        xs.extend_from_slice(&sims.x[i * dx..(i + 1) * dx]);
        distances.push(dist[i]);
    }
    let weights = vec![1.0 / keep.max(1) as f64; keep];
    if cfg.regression_adjustment {
        regression_adjust(&mut theta, &xs, &weights, x_o, &scale);
    }
    let epsilon = match cfg.eps {
        Some(e) => e,
        None => distances.last().copied().unwrap_or(0.0),
    };
    Ok(AbcSamples {
        dim_theta: dt,
        theta,
        weights,
        distances,
        epsilon,
        n_simulations: sims.n_attempted,
        n_invalid: sims.n_invalid,
        epsilons: Vec::new(),
        carried_over: 0,
    })
}

/// Given parameter rows for the simulation indices `start .. start + rows/dim`.
struct RowsFrom<'a> {
    rows: &'a [f64],
    dim: usize,
    start: u64,
}

impl ThetaSource for RowsFrom<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn draw(&self, _seed: u64, index: u64, out: &mut [f64]) {
        let i = (index - self.start) as usize;
        out.copy_from_slice(&self.rows[i * self.dim..(i + 1) * self.dim]);
    }
}

/// The Gaussian perturbation kernel around a weighted population.
struct Kernel {
    /// Lower Cholesky factor of the kernel covariance.
    chol: DMatrix<f64>,
    /// Inverse of `chol`, to whiten differences.
    chol_inv: DMatrix<f64>,
}

impl Kernel {
    fn new(theta: &[f64], weights: &[f64], d: usize, scale: f64) -> Result<Self> {
        let mut mean = vec![0.0; d];
        for (row, w) in theta.chunks(d).zip(weights) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += w * v;
            }
        }
        let mut cov = DMatrix::<f64>::zeros(d, d);
        for (row, w) in theta.chunks(d).zip(weights) {
            for a in 0..d {
                for b in 0..=a {
                    cov[(a, b)] += w * (row[a] - mean[a]) * (row[b] - mean[b]);
                }
            }
        }
        // numpy's unbiased weighted covariance (aweights), as sbi uses.
        let denom = 1.0 - weights.iter().map(|w| w * w).sum::<f64>();
        let denom = if denom > 0.0 { denom } else { 1.0 };
        for a in 0..d {
            for b in 0..=a {
                let v = scale * cov[(a, b)] / denom;
                cov[(a, b)] = v;
                cov[(b, a)] = v;
            }
        }
        // A collapsed population (e.g. all particles equal) would give a singular kernel; a
        // jitter relative to the scale of the diagonal keeps it usable.
        let jitter = 1e-10 * (cov.trace() / d as f64).max(1e-300);
        for _ in 0..8 {
            if let Some(c) = nalgebra::Cholesky::new(cov.clone()) {
                let chol = c.l();
                let chol_inv = chol
                    .clone()
                    .solve_lower_triangular(&DMatrix::identity(d, d))
                    .ok_or_else(|| invalid_arg("SMC-ABC kernel", "singular covariance"))?;
                return Ok(Self { chol, chol_inv });
            }
            for a in 0..d {
                cov[(a, a)] += jitter.max(1e-12);
            }
        }
        Err(invalid_arg(
            "SMC-ABC kernel",
            "particle covariance is not positive definite",
        ))
    }

    /// Whitened rows `L^-1 theta`.
    fn whiten(&self, theta: &[f64], d: usize) -> Vec<f64> {
        theta
            .par_chunks(d)
            .flat_map_iter(|row| {
                let v = &self.chol_inv * DVector::from_column_slice(row);
                v.iter().copied().collect::<Vec<_>>()
            })
            .collect()
    }
}

fn logsumexp(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Tries per proposal to land inside the prior support before the proposal is dropped.
const MAX_SUPPORT_TRIES: usize = 1000;
/// Sub-seed tag of the SMC proposals, keeping them apart from the simulation streams.
const PROPOSAL_TAG: u64 = 0xABC5_EC0D;

/// SMC-ABC / population Monte Carlo ABC (Beaumont et al. 2009; sbi's `SMCABC`).
///
/// The first round keeps the `population_size` closest of `population_size *
/// initial_round_factor` prior simulations. Each later round sets epsilon to the
/// `epsilon_quantile` of the current distances, proposes from the weighted population perturbed
/// by a Gaussian kernel with `kernel_scale` x the weighted particle covariance, and accepts until
/// the population is refilled; weights are prior / kernel mixture. It stops when the simulation
/// budget `n_simulations` cannot complete another round and returns the last complete population.
///
/// Reaches a given epsilon with far fewer simulations than rejection ABC; still a baseline next
/// to the neural methods. With many parameters the importance weights degenerate (on the 10-D
/// gaussian_linear task the effective sample size falls to 10-30% per round): set `ess_min` to
/// resample, and `regression_adjustment` to correct the final population. Defaults: 1 000
/// particles, 10 000 simulations, factor 5, quantile 0.5, kernel scale 2, no resampling, no
/// adjustment, Euclidean distance (features z-scored by the initial round's standard
/// deviation). Errors name the bad option; a round that cannot be completed within the budget
/// is dropped.
pub fn smc_abc(
    sim: &dyn Simulator,
    prior: &dyn Prior,
    x_o: &[f64],
    cfg: &SmcAbcConfig,
) -> Result<AbcSamples> {
    check_obs(sim, prior, x_o)?;
    if cfg.population_size < 2 {
        return Err(invalid_arg("population_size", "must be >= 2"));
    }
    if cfg.initial_round_factor == 0 {
        return Err(invalid_arg("initial_round_factor", "must be >= 1"));
    }
    if !(cfg.epsilon_quantile > 0.0 && cfg.epsilon_quantile < 1.0) {
        return Err(invalid_arg(
            "epsilon_quantile",
            format!("{} is outside (0, 1)", cfg.epsilon_quantile),
        ));
    }
    if !(cfg.kernel_scale > 0.0 && cfg.kernel_scale.is_finite()) {
        return Err(invalid_arg(
            "kernel_scale",
            format!("{} must be finite and > 0", cfg.kernel_scale),
        ));
    }
    if let Some(e) = cfg.ess_min
        && !(e > 0.0 && e <= 1.0)
    {
        return Err(invalid_arg("ess_min", format!("{e} is outside (0, 1]")));
    }
    let n_pop = cfg.population_size;
    let n0 = n_pop.saturating_mul(cfg.initial_round_factor);
    if cfg.n_simulations < n0 {
        return Err(invalid_arg(
            "n_simulations",
            format!(
                "budget {} is below the initial round's population_size * initial_round_factor = {n0}",
                cfg.n_simulations
            ),
        ));
    }
    let (dt, dx) = (sim.dim_theta(), sim.dim_x());
    let run = RunConfig {
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        ..Default::default()
    };
    let sims = simulate(sim, &FromPrior(prior), n0, &run, &mut Quiet)?;
    let scale = feature_std(&sims.x, dx);
    let dist: Vec<f64> = sims
        .x
        .chunks(dx)
        .map(|x| cfg.distance.eval(x, x_o, &scale))
        .collect();
    let order = order_by_distance(&dist);
    let keep = n_pop.min(order.len());
    if keep < 2 {
        return Err(InferError::AllSimulationsInvalid {
            n: n0,
            first_error: sims
                .first_error
                .clone()
                .unwrap_or_else(|| "fewer than 2 valid simulations in the initial round".into()),
        });
    }
    let mut theta: Vec<f64> = order[..keep]
        .iter()
        .flat_map(|&i| sims.theta[i * dt..(i + 1) * dt].iter().copied())
        .collect();
    let mut xs: Vec<f64> = order[..keep]
        .iter()
        .flat_map(|&i| sims.x[i * dx..(i + 1) * dx].iter().copied())
        .collect();
    let mut distances: Vec<f64> = order[..keep].iter().map(|&i| dist[i]).collect();
    let mut weights = vec![1.0 / keep as f64; keep];
    let mut epsilons = vec![distances[keep - 1]];
    let mut used = n0 as u64;
    let mut carried_over = 0;
    let mut n_invalid = sims.n_invalid;
    let budget = cfg.n_simulations as u64;
    let bs = cfg.batch_size.max(1);

    for round in 1u64.. {
        if used >= budget {
            break;
        }
        let eps = quantile(&distances, cfg.epsilon_quantile);
        let kernel = Kernel::new(&theta, &weights, dt, cfg.kernel_scale)?;
        let cum = cumulative(&weights);
        let round_seed = derive_seed(cfg.seed, PROPOSAL_TAG ^ round);
        let mut new_theta = Vec::with_capacity(n_pop * dt);
        let mut new_dist = Vec::with_capacity(n_pop);
        let mut new_x = Vec::with_capacity(n_pop * dx);
        let mut proposal_index = 0u64;
        // Proposals and simulations go in blocks of `population_size`; the first accepted rows
        // in index order fill the population, so the result depends on neither threads nor
        // batch size.
        while new_dist.len() < n_pop && used < budget {
            let block = (n_pop as u64).min(budget - used) as usize;
            let props: Vec<Option<Vec<f64>>> = (0..block)
                .into_par_iter()
                .map(|b| {
                    let mut rng =
                        stream_rng(round_seed, purpose::SAMPLING, proposal_index + b as u64);
                    propose(&theta, &cum, &kernel, prior, dt, &mut rng)
                })
                .collect();
            proposal_index += block as u64;
            let rows: Vec<f64> = props.into_iter().flatten().flatten().collect();
            let n = rows.len() / dt;
            if n == 0 {
                // Every proposal of the block fell outside the prior support.
                break;
            }
            let src = RowsFrom {
                rows: &rows,
                dim: dt,
                start: used,
            };
            let chunk = simulate_chunk(sim, &src, cfg.seed, used, n, bs)?;
            used += n as u64;
            n_invalid += chunk.invalid.len() as u64;
            for (t, x) in chunk.theta.chunks(dt).zip(chunk.x.chunks(dx)) {
                if new_dist.len() == n_pop {
                    break;
                }
                let d = cfg.distance.eval(x, x_o, &scale);
                if d <= eps {
                    new_theta.extend_from_slice(t);
                    new_x.extend_from_slice(x);
                    new_dist.push(d);
                }
            }
        }
        if new_dist.len() < n_pop {
            // The budget ran out mid-population (not a block wholly outside the support):
            // the new particles still carry information, so keep them with the best old ones.
            if !(cfg.fill_last_population && used >= budget && !new_dist.is_empty()) {
                break;
            }
            carried_over = n_pop - new_dist.len();
            for &j in order_by_distance(&distances).iter().take(carried_over) {
                new_theta.extend_from_slice(&theta[j * dt..(j + 1) * dt]);
                new_x.extend_from_slice(&xs[j * dx..(j + 1) * dx]);
                new_dist.push(distances[j]);
            }
        }
        weights = importance_weights(&new_theta, &theta, &weights, &kernel, prior, dt);
        theta = new_theta;
        xs = new_x;
        distances = new_dist;
        epsilons.push(eps);
        let ess = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        if let Some(e) = cfg.ess_min
            && ess < e * n_pop as f64
        {
            let cum = cumulative(&weights);
            let mut rng = stream_rng(round_seed, purpose::SAMPLING, u64::MAX);
            let picks: Vec<usize> = (0..n_pop)
                .map(|_| pick(&cum, rng.random::<f64>()))
                .collect();
            theta = picks
                .iter()
                .flat_map(|&j| theta[j * dt..(j + 1) * dt].iter().copied())
                .collect();
            xs = picks
                .iter()
                .flat_map(|&j| xs[j * dx..(j + 1) * dx].iter().copied())
                .collect();
            distances = picks.iter().map(|&j| distances[j]).collect();
            weights = vec![1.0 / n_pop as f64; n_pop];
        }
    }
    if cfg.regression_adjustment {
        regression_adjust(&mut theta, &xs, &weights, x_o, &scale);
    }
    Ok(AbcSamples {
        dim_theta: dt,
        theta,
        weights,
        distances,
        epsilon: *epsilons.last().expect("initial round"),
        n_simulations: used,
        n_invalid,
        epsilons,
        carried_over,
    })
}

/// One proposal: an ancestor drawn by weight, perturbed until it lands in the prior support.
fn propose(
    theta: &[f64],
    cum: &[f64],
    kernel: &Kernel,
    prior: &dyn Prior,
    d: usize,
    rng: &mut SimRng,
) -> Option<Vec<f64>> {
    let mut z = DVector::<f64>::zeros(d);
    for _ in 0..MAX_SUPPORT_TRIES {
        let j = pick(cum, rng.random::<f64>());
        for v in z.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        let step = &kernel.chol * &z;
        let cand: Vec<f64> = theta[j * d..(j + 1) * d]
            .iter()
            .zip(step.iter())
            .map(|(a, s)| a + s)
            .collect();
        if prior.in_support(&cand) {
            return Some(cand);
        }
    }
    None
}

/// Normalised weights prior(theta_i) / sum_j w_j K(theta_i | theta_j).
fn importance_weights(
    new: &[f64],
    old: &[f64],
    old_w: &[f64],
    kernel: &Kernel,
    prior: &dyn Prior,
    d: usize,
) -> Vec<f64> {
    let yn = kernel.whiten(new, d);
    let yo = kernel.whiten(old, d);
    let log_w_old: Vec<f64> = old_w.iter().map(|w| w.ln()).collect();
    let logw: Vec<f64> = new
        .par_chunks(d)
        .zip(yn.par_chunks(d))
        .map(|(t, y)| {
            let terms = yo.chunks(d).zip(&log_w_old).map(|(o, lw)| {
                let q: f64 = y.iter().zip(o).map(|(a, b)| (a - b) * (a - b)).sum();
                lw - 0.5 * q
            });
            prior.log_prob(t) - logsumexp(terms)
        })
        .collect();
    let norm = logsumexp(logw.iter().copied());
    logw.iter().map(|l| (l - norm).exp()).collect()
}

/// Beaumont et al. (2002) linear regression adjustment: fits `theta ~ a + B (x - x_o)` by
/// weighted least squares over the accepted rows and moves each row to
/// `theta - B (x - x_o)`, removing the part of its spread that the features explain. Features
/// are z-scored by `scale` for conditioning; a degenerate fit leaves `theta` unchanged.
fn regression_adjust(theta: &mut [f64], x: &[f64], w: &[f64], x_o: &[f64], scale: &[f64]) {
    let n = w.len();
    let (dt, dx) = (theta.len() / n.max(1), x_o.len());
    if n <= dx + 1 {
        return;
    }
    let design = DMatrix::<f64>::from_fn(n, dx + 1, |i, k| {
        let sw = w[i].sqrt();
        if k == 0 {
            sw
        } else {
            sw * (x[i * dx + k - 1] - x_o[k - 1]) / scale[k - 1]
        }
    });
    let target = DMatrix::<f64>::from_fn(n, dt, |i, k| w[i].sqrt() * theta[i * dt + k]);
    let Ok(beta) = design.svd(true, true).solve(&target, 1e-12) else {
        return;
    };
    for i in 0..n {
        for k in 0..dt {
            let shift: f64 = (0..dx)
                .map(|j| beta[(j + 1, k)] * (x[i * dx + j] - x_o[j]) / scale[j])
                .sum();
            theta[i * dt + k] -= shift;
        }
    }
}

/// Linearly interpolated quantile (numpy / torch default).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    s[lo] + (pos - lo as f64) * (s[hi] - s[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[1.0, 2.0], 0.0), 1.0);
    }

    #[test]
    fn pick_follows_weights() {
        let cum = cumulative(&[0.0, 0.5, 0.0, 0.5]);
        assert_eq!(pick(&cum, 0.1), 1);
        assert_eq!(pick(&cum, 0.6), 3);
        assert_eq!(pick(&cum, 0.999_999), 3);
    }

    #[test]
    fn distances_on_z_scored_features() {
        let s = [2.0, 1.0];
        assert!((Distance::L2.eval(&[2.0, 1.0], &[0.0, 0.0], &s) - 2f64.sqrt()).abs() < 1e-12);
        assert!((Distance::L1.eval(&[2.0, -1.0], &[0.0, 0.0], &s) - 2.0).abs() < 1e-12);
    }
}
