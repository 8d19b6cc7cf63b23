//! Training methods and the multi-round driver: NPE (single round), APT / SNPE-C with the atomic
//! loss (Greenberg et al. 2019), truncated sequential NPE (TSNPE, Deistler et al. 2022), NLE
//! with MCMC (Papamakarios et al. 2019) and NRE-A / NRE-B with MCMC (Hermans et al. 2020,
//! Durkan et al. 2020), following sbi 0.27's defaults.

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::posterior::{Estimator, Posterior};
use crate::prior::Prior;
use crate::rng::derive_seed;
use crate::simulator::{
    FromPrior, FromRows, RunConfig, RunObserver, SimulationSet, Simulator, ThetaSource, check_dims,
};
use crate::store::Store;
use neurosbi_flows::candle_core::{self, D, Tensor};
use neurosbi_flows::losses::{nre_a_loss, nre_b_loss};
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorConfig, RatioClassifier, TrainConfig,
    TrainObserver, TrainReport,
};
use std::sync::Arc;

/// Inference method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Neural posterior estimation; with several rounds, proposals come from the posterior and
    /// training uses the APT / SNPE-C atomic loss with `num_atoms` atoms (sbi: 10).
    Npe {
        /// Atoms of the atomic loss in rounds after the first.
        num_atoms: usize,
    },
    /// Truncated sequential NPE: later rounds draw from the prior truncated to the current
    /// posterior's highest-density region of mass `1 - epsilon`; plain maximum-likelihood loss.
    Tsnpe {
        /// Mass left out of the truncation region (sbi: 1e-4).
        epsilon: f64,
    },
    /// Neural likelihood estimation, sampled with MCMC.
    Nle,
    /// Neural ratio estimation with the binary loss (NRE-A), sampled with MCMC.
    NreA,
    /// Neural ratio estimation with the multi-class loss (NRE-B) over `num_atoms`, with MCMC.
    NreB {
        /// Classes per x (sbi: 10).
        num_atoms: usize,
    },
}

impl Method {
    /// NPE / APT with sbi's 10 atoms.
    pub fn npe() -> Self {
        Method::Npe { num_atoms: 10 }
    }
}

/// Settings of an inference run.
#[derive(Clone, Debug)]
pub struct InferenceConfig {
    /// Method.
    pub method: Method,
    /// Simulations per round (one entry: single round).
    pub rounds: Vec<usize>,
    /// Density estimator for NPE / TSNPE / NLE.
    pub estimator: EstimatorConfig,
    /// Classifier for NRE.
    pub classifier: ClassifierConfig,
    /// Training settings (their seed is derived per round from `seed`).
    pub train: TrainConfig,
    /// Simulation batch and chunk sizes (their seed is derived per round from `seed`).
    pub run: RunConfig,
    /// Master seed.
    pub seed: u64,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            method: Method::npe(),
            rounds: vec![1000],
            estimator: EstimatorConfig::maf(),
            classifier: ClassifierConfig::residual(),
            train: TrainConfig::default(),
            run: RunConfig::default(),
            seed: 0,
        }
    }
}

/// What a run produced besides the posterior.
#[derive(Clone, Debug)]
pub struct InferenceReport {
    /// Training report of each round.
    pub train: Vec<TrainReport>,
    /// Valid simulations used per round.
    pub valid_per_round: Vec<usize>,
    /// Invalid (excluded) simulations per round.
    pub invalid_per_round: Vec<u64>,
}

/// Checks that training data agree with each other and with the prior.
pub fn check_training_data(
    prior: &dyn Prior,
    theta: &[f64],
    x: &[f64],
    dim_x: usize,
) -> Result<usize> {
    let n = rows_of("theta", theta, prior.dim())?;
    let m = rows_of("x", x, dim_x)?;
    if n != m {
        return Err(InferError::RowMismatch {
            what: "training data theta vs x".into(),
            left: n,
            right: m,
        });
    }
    if n < 2 {
        return Err(InferError::AllSimulationsInvalid {
            n,
            first_error: "fewer than 2 valid simulations to train on".into(),
        });
    }
    check_finite("training theta", theta)?;
    check_finite("training x", x)?;
    Ok(n)
}

fn seeded(train: &TrainConfig, seed: u64) -> TrainConfig {
    TrainConfig {
        seed,
        ..train.clone()
    }
}

/// Trains single-round NPE on `(theta, x)` and returns the posterior (amortised over x).
pub fn train_npe(
    prior: Arc<dyn Prior>,
    theta: &[f64],
    x: &[f64],
    dim_x: usize,
    estimator: &EstimatorConfig,
    train: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(Posterior, TrainReport)> {
    check_training_data(prior.as_ref(), theta, x, dim_x)?;
    let mut e = ConditionalEstimator::new(
        estimator,
        theta,
        x,
        prior.dim(),
        dim_x,
        derive_seed(train.seed, 1),
    )?;
    let rep = e.train(theta, x, train, observer)?;
    Ok((Posterior::new(prior, Estimator::Npe(e))?, rep))
}

/// Trains NLE (q(x | theta)) on `(theta, x)`; the posterior samples with MCMC.
pub fn train_nle(
    prior: Arc<dyn Prior>,
    theta: &[f64],
    x: &[f64],
    dim_x: usize,
    estimator: &EstimatorConfig,
    train: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(Posterior, TrainReport)> {
    check_training_data(prior.as_ref(), theta, x, dim_x)?;
    let mut e = ConditionalEstimator::new(
        estimator,
        x,
        theta,
        dim_x,
        prior.dim(),
        derive_seed(train.seed, 1),
    )?;
    let rep = e.train(x, theta, train, observer)?;
    Ok((Posterior::new(prior, Estimator::Nle(e))?, rep))
}

type NreLoss =
    Box<dyn Fn(&RatioClassifier, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Sync>;

fn nre_loss(method: Method) -> NreLoss {
    match method {
        Method::NreB { num_atoms } => Box::new(move |c, t, x| nre_b_loss(c, t, x, num_atoms)),
        _ => Box::new(nre_a_loss),
    }
}

/// Trains NRE-A or NRE-B (per `method`) on `(theta, x)`; the posterior samples with MCMC.
#[allow(clippy::too_many_arguments)] // mirrors train_npe / train_nle plus the loss choice
pub fn train_nre(
    prior: Arc<dyn Prior>,
    theta: &[f64],
    x: &[f64],
    dim_x: usize,
    method: Method,
    classifier: &ClassifierConfig,
    train: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(Posterior, TrainReport)> {
    if !matches!(method, Method::NreA | Method::NreB { .. }) {
        return Err(invalid_arg("method", "train_nre needs NreA or NreB"));
    }
    check_training_data(prior.as_ref(), theta, x, dim_x)?;
    let mut c = RatioClassifier::new(
        classifier,
        theta,
        x,
        prior.dim(),
        dim_x,
        derive_seed(train.seed, 1),
    )?;
    let rep = c.train_with_loss(theta, x, train, observer, &*nre_loss(method))?;
    Ok((Posterior::new(prior, Estimator::Nre(c))?, rep))
}

/// APT / SNPE-C atomic loss (Greenberg et al. 2019, eq. 6; sbi `_log_prob_proposal_posterior_atomic`):
/// for each pair i, the atoms are theta_i and the thetas of the next `num_atoms - 1` rows of the
/// (shuffled) batch; loss = -mean_i [ l_ii - logsumexp_j l_ij ] with
/// `l_ij = log q(theta_j | x_i) - log prior(theta_j)`.
pub fn apt_atomic_loss(
    est: &ConditionalEstimator,
    theta: &Tensor,
    x: &Tensor,
    prior: &dyn Prior,
    num_atoms: usize,
) -> candle_core::Result<Tensor> {
    let b = theta.dim(0)?;
    let k = num_atoms.clamp(2, b.max(2)).min(b);
    let rows: Vec<Vec<f32>> = theta.to_vec2::<f32>()?;
    let log_prior: Vec<f32> = rows
        .iter()
        .map(|r| {
            let t: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            // Atoms come from the proposals, which lie inside the prior support.
            prior.log_prob(&t).max(-1e30) as f32
        })
        .collect();
    let mut cols = Vec::with_capacity(k);
    for j in 0..k {
        let idx: Vec<u32> = (0..b).map(|i| ((i + j) % b) as u32).collect();
        let idx = Tensor::from_vec(idx.clone(), b, theta.device())?;
        let th = theta.index_select(&idx, 0)?;
        let lp: Vec<f32> = (0..b).map(|i| log_prior[(i + j) % b]).collect();
        let lp = Tensor::from_vec(lp, b, theta.device())?;
        cols.push((est.log_prob_tensor(&th, x)? - lp)?.unsqueeze(1)?);
    }
    let logits = Tensor::cat(&cols, 1)?;
    let ls = candle_nn_log_softmax(&logits)?;
    ls.narrow(1, 0, 1)?.mean_all()?.neg()
}

/// log-softmax over the last dimension from primitives (stable: subtract the row max).
fn candle_nn_log_softmax(l: &Tensor) -> candle_core::Result<Tensor> {
    let m = l.max_keepdim(D::Minus1)?.detach();
    let z = l.broadcast_sub(&m)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    z.broadcast_sub(&lse)
}

/// Draws `n` parameters from the prior truncated to `{theta : log q(theta | x_o) >= threshold}`
/// where the threshold is the `epsilon` quantile of log q over posterior draws (TSNPE).
fn truncated_prior_draws(
    post: &Posterior,
    x_o: &[f64],
    n: usize,
    epsilon: f64,
    seed: u64,
) -> Result<Vec<f64>> {
    let d = post.dim_theta();
    let m = 10_000;
    let s = post.sample(m, x_o, derive_seed(seed, 1))?;
    let mut lq = post.potential(&s.theta, x_o)?;
    lq.sort_by(|a, b| a.total_cmp(b));
    let thr = lq[((epsilon * m as f64).floor() as usize).min(m - 1)];
    let mut out = Vec::with_capacity(n * d);
    let mut k = 0u64;
    let mut drawn = 0u64;
    while out.len() < n * d {
        let cand = crate::prior::sample_prior(post.prior(), 10_000, derive_seed(seed, 100 + k));
        k += 1;
        drawn += 10_000;
        let l = post.potential(&cand, x_o)?;
        for (r, v) in cand.chunks(d).zip(l) {
            if v >= thr && out.len() < n * d {
                out.extend_from_slice(r);
            }
        }
        if drawn > 100_000_000 {
            return Err(InferError::LowAcceptance {
                accepted: out.len() / d,
                drawn,
            });
        }
    }
    Ok(out)
}

fn simulate_round(
    sim: &dyn Simulator,
    source: &dyn ThetaSource,
    n: usize,
    run: &RunConfig,
    seed: u64,
    store: Option<&mut Store>,
    observer: &mut dyn RunObserver,
) -> Result<SimulationSet> {
    match store {
        None => crate::simulator::simulate(
            sim,
            source,
            n,
            &RunConfig {
                seed,
                ..run.clone()
            },
            observer,
        ),
        Some(store) => {
            // Resume the matching round if it exists (same size and seed), else add it.
            let r = store
                .rounds()
                .iter()
                .position(|p| p.n == n as u64 && p.seed == seed);
            let r = match r {
                Some(r) => r,
                None => store.add_round(n as u64, seed, run.chunk_size as u64)?,
            };
            store.run_round(r, sim, source, run.batch_size, observer)?;
            if !store.is_round_complete(r)? {
                return Err(invalid_arg(
                    "simulation round",
                    "the run was stopped before the round finished; call again to resume",
                ));
            }
            let s = store.load_round(r)?;
            s.require_valid()?;
            Ok(s)
        }
    }
}

/// Runs inference end to end: simulate each round (into `store` if given, resumable), train, and
/// build the posterior. Rounds after the first need the observation `x_o` and draw their
/// parameters from the current posterior (APT, NLE, NRE) or the truncated prior (TSNPE).
pub fn infer(
    sim: &dyn Simulator,
    prior: Arc<dyn Prior>,
    x_o: Option<&[f64]>,
    cfg: &InferenceConfig,
    mut store: Option<&mut Store>,
    sim_observer: &mut dyn RunObserver,
    train_observer: &mut dyn TrainObserver,
) -> Result<(Posterior, InferenceReport)> {
    check_dims(sim, &FromPrior(prior.as_ref()))?;
    if cfg.rounds.is_empty() || cfg.rounds.contains(&0) {
        return Err(invalid_arg(
            "rounds",
            "need at least one round, each with > 0 simulations",
        ));
    }
    if cfg.rounds.len() > 1 {
        let x =
            x_o.ok_or_else(|| invalid_arg("x_o", "multi-round inference needs the observation"))?;
        if x.len() != sim.dim_x() {
            return Err(InferError::DimMismatch {
                what: "observation vs simulator dim_x".into(),
                expected: sim.dim_x(),
                got: x.len(),
            });
        }
        check_finite("observation", x)?;
    }
    let dx = sim.dim_x();
    let mut theta_all = Vec::new();
    let mut x_all = Vec::new();
    let mut report = InferenceReport {
        train: Vec::new(),
        valid_per_round: Vec::new(),
        invalid_per_round: Vec::new(),
    };
    let mut posterior: Option<Posterior> = None;
    for (r, &n) in cfg.rounds.iter().enumerate() {
        let seed = derive_seed(cfg.seed, 1000 + r as u64);
        let sims = match (&posterior, x_o) {
            (Some(post), Some(x)) => {
                let rows = match cfg.method {
                    Method::Tsnpe { epsilon } => truncated_prior_draws(post, x, n, epsilon, seed)?,
                    _ => post.sample(n, x, seed)?.theta,
                };
                let src = FromRows::new(&rows, prior.dim())?;
                simulate_round(
                    sim,
                    &src,
                    n,
                    &cfg.run,
                    seed,
                    store.as_deref_mut(),
                    sim_observer,
                )?
            }
            _ => simulate_round(
                sim,
                &FromPrior(prior.as_ref()),
                n,
                &cfg.run,
                seed,
                store.as_deref_mut(),
                sim_observer,
            )?,
        };
        report.valid_per_round.push(sims.len());
        report.invalid_per_round.push(sims.n_invalid);
        theta_all.extend_from_slice(&sims.theta);
        x_all.extend_from_slice(&sims.x);
        let train = seeded(&cfg.train, derive_seed(cfg.seed, 2000 + r as u64));
        let rep = match posterior.as_mut() {
            None => {
                let (p, rep) = match cfg.method {
                    Method::Npe { .. } | Method::Tsnpe { .. } => train_npe(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        &cfg.estimator,
                        &train,
                        train_observer,
                    )?,
                    Method::Nle => train_nle(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        &cfg.estimator,
                        &train,
                        train_observer,
                    )?,
                    Method::NreA | Method::NreB { .. } => train_nre(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        cfg.method,
                        &cfg.classifier,
                        &train,
                        train_observer,
                    )?,
                };
                posterior = Some(p);
                rep
            }
            Some(post) => {
                check_training_data(prior.as_ref(), &theta_all, &x_all, dx)?;
                let pr = prior.clone();
                match (post.estimator_mut(), cfg.method) {
                    (Estimator::Npe(e), Method::Npe { num_atoms }) => e.train_with_loss(
                        &theta_all,
                        &x_all,
                        &train,
                        train_observer,
                        &move |est, t, x| apt_atomic_loss(est, t, x, pr.as_ref(), num_atoms),
                    )?,
                    (Estimator::Npe(e), _) => {
                        e.train(&theta_all, &x_all, &train, train_observer)?
                    }
                    (Estimator::Nle(e), _) => {
                        e.train(&x_all, &theta_all, &train, train_observer)?
                    }
                    (Estimator::Nre(c), m) => c.train_with_loss(
                        &theta_all,
                        &x_all,
                        &train,
                        train_observer,
                        &*nre_loss(m),
                    )?,
                }
            }
        };
        report.train.push(rep);
    }
    let post = posterior.ok_or_else(|| invalid_arg("rounds", "no round was run"))?;
    Ok((post, report))
}
