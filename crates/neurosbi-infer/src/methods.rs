//! Training methods and the multi-round driver: NPE (single round), APT / SNPE-C with the atomic
//! loss (Greenberg et al. 2019), SNPE-A (Papamakarios & Murray 2016) and SNPE-B (Lueckmann et
//! al. 2017), truncated sequential NPE (TSNPE, Deistler et al. 2022), NLE with MCMC
//! (Papamakarios et al. 2019), NRE-A / NRE-B / NRE-C / BNRE (Hermans et al. 2020, Durkan et
//! al. 2020, Miller et al. 2022, Delaunoy et al. 2022), and rejection / SMC-ABC through the
//! same driver, following sbi's defaults. Choose one by name with [`Method::from_name`].

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::kde::KdeBandwidth;
use crate::posterior::{Estimator, Posterior, PosteriorKind, ProposalMixture};
use crate::prior::Prior;
use crate::rng::derive_seed;
use crate::samplers::Gaussian;
use crate::simulator::{
    FromPrior, FromRows, RunConfig, RunObserver, SimulationSet, Simulator, ThetaSource, check_dims,
};
use crate::store::Store;
use neurosbi_flows::candle_core::{self, Tensor};
use neurosbi_flows::losses::{bnre_loss, nre_a_loss_averaged, nre_b_loss, nre_c_loss};
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorConfig, RatioClassifier, TrainConfig,
    TrainObserver, TrainReport,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Inference method. Build one by name with [`Method::from_name`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Neural posterior estimation; with several rounds, proposals come from the posterior and
    /// training uses the APT / SNPE-C atomic loss with `num_atoms` atoms (sbi: 10).
    Npe {
        /// Atoms of the atomic loss in rounds after the first.
        num_atoms: usize,
    },
    /// SNPE-A (Papamakarios & Murray 2016): a mixture density network trained by maximum
    /// likelihood on proposal draws; later rounds draw from a Gaussian fitted to the current
    /// posterior, and the posterior is corrected after training by prior / proposal.
    NpeA {
        /// Mixture components of the MDN (sbi: 10).
        num_components: usize,
        /// Train each round on that round's simulations only and correct by that round's
        /// proposal alone (Papamakarios & Murray's algorithm), instead of on all rounds'
        /// simulations corrected by the mixture of all proposals.
        last_round_only: bool,
    },
    /// SNPE-B (Lueckmann et al. 2017): maximum likelihood weighted by prior / proposal, the
    /// proposal being the mixture of the prior and the earlier rounds' posteriors.
    NpeB,
    /// Truncated sequential NPE: later rounds draw from the prior truncated to the current
    /// posterior's highest-density region of mass `1 - epsilon`; plain maximum-likelihood loss.
    Tsnpe {
        /// Mass left out of the truncation region (sbi: 1e-4).
        epsilon: f64,
    },
    /// Neural likelihood estimation, sampled with MCMC.
    Nle,
    /// Mixed neural likelihood estimation (Boelts et al. 2022): NLE whose first
    /// `num_discrete` x columns are discrete (e.g. spike counts).
    Mnle {
        /// Leading discrete columns of x.
        num_discrete: usize,
    },
    /// Neural ratio estimation with the binary loss (NRE-A), sampled with MCMC.
    NreA,
    /// Neural ratio estimation with the multi-class loss (NRE-B) over `num_atoms`, with MCMC.
    NreB {
        /// Classes per x (sbi: 10).
        num_atoms: usize,
    },
    /// Contrastive NRE (NRE-C, Miller et al. 2022), with MCMC.
    NreC {
        /// K, the contrastive thetas per x (sbi: 5).
        num_classes: usize,
        /// Weight of the dependent classes against the independent one (sbi: 1).
        gamma: f64,
    },
    /// Balanced NRE (Delaunoy et al. 2022): NRE-A plus a balancing penalty, with MCMC.
    Bnre {
        /// Strength lambda of the balancing penalty (sbi: 100).
        regularization_strength: f64,
    },
    /// Flow matching posterior estimation (Dax et al. 2023).
    Fmpe,
    /// Score-based posterior estimation (Geffner et al. 2023, sbi `NPSE`).
    Npse {
        /// Variance-preserving SDE (else variance-exploding, sbi's default).
        variance_preserving: bool,
    },
    /// Rejection ABC (sbi `MCABC`) on z-scored features; see [`crate::abc::rejection_abc`].
    RejectionAbc {
        /// Fraction of the simulations kept (default 0.01), or
        quantile: Option<f64>,
        /// every simulation within this distance.
        eps: Option<f64>,
        /// Linear regression adjustment of the accepted parameters.
        regression_adjustment: bool,
        /// Kernel density smoothing of the accepted parameters for sampling (default none).
        kde: KdeBandwidth,
    },
    /// SMC-ABC (Beaumont et al. 2009, sbi `SMCABC`); see [`crate::abc::smc_abc`].
    SmcAbc {
        /// Particles per population (1 000).
        population_size: usize,
        /// Quantile of the distances giving the next epsilon (0.5).
        epsilon_quantile: f64,
        /// Kernel covariance factor (2).
        kernel_scale: f64,
        /// Linear regression adjustment of the final population.
        regression_adjustment: bool,
        /// Complete a final population cut short by the budget with the previous one's
        /// closest particles (sbi's `use_last_pop_samples`, true).
        use_last_pop_samples: bool,
        /// Kernel density smoothing of the final population for sampling (default none).
        kde: KdeBandwidth,
    },
}

impl Method {
    /// NPE / APT with sbi's 10 atoms.
    pub fn npe() -> Self {
        Method::Npe { num_atoms: 10 }
    }

    /// Whether the method trains q(theta | x).
    pub fn is_posterior_estimation(&self) -> bool {
        matches!(
            self,
            Method::Npe { .. }
                | Method::NpeA { .. }
                | Method::NpeB
                | Method::Tsnpe { .. }
                | Method::Fmpe
                | Method::Npse { .. }
        )
    }

    /// Whether the method trains a ratio classifier.
    pub fn is_ratio_estimation(&self) -> bool {
        matches!(
            self,
            Method::NreA | Method::NreB { .. } | Method::NreC { .. } | Method::Bnre { .. }
        )
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
    /// How the returned posterior samples (`None`: the method's default, see
    /// [`Method::posterior_kinds`]); checked against the method before anything runs.
    pub posterior: Option<PosteriorKind>,
    /// Slice-sampler settings of every MCMC posterior the run builds: each sequential round's
    /// proposal and the returned posterior (their seeds come from the run's seed).
    pub mcmc: crate::mcmc::SliceConfig,
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
            posterior: None,
            mcmc: crate::mcmc::SliceConfig::default(),
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
    /// Counts, reasons and parameter region of the invalid simulations, all rounds together
    /// (empty for ABC, whose simulations are not kept).
    pub invalid: Option<crate::invalid::InvalidReport>,
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
        Method::NreC { num_classes, gamma } => {
            Box::new(move |c, t, x| nre_c_loss(c, t, x, num_classes, gamma))
        }
        Method::Bnre {
            regularization_strength,
        } => Box::new(move |c, t, x| bnre_loss(c, t, x, regularization_strength)),
        // Nine contrastive thetas per x instead of sbi's one: same objective, less
        // gradient noise (docs/methods.md has the measurements).
        _ => Box::new(|c, t, x| nre_a_loss_averaged(c, t, x, 9)),
    }
}

/// The density estimator a method trains: NPE-A forces an MDN with its components; FMPE,
/// NPSE and MNLE use the estimator kinds of the same names with sbi's defaults.
pub fn estimator_for(method: Method, base: &EstimatorConfig) -> Result<EstimatorConfig> {
    match method {
        Method::NpeA { num_components, .. } => Ok(EstimatorConfig {
            kind: neurosbi_flows::EstimatorKind::Mdn,
            num_components,
            ..base.clone()
        }),
        // sbi's defaults for these kinds; an embedding net for x is kept.
        Method::Fmpe => Ok(EstimatorConfig {
            embedding: base.embedding.clone(),
            ..EstimatorConfig::fmpe()
        }),
        Method::Npse {
            variance_preserving,
        } => Ok(EstimatorConfig {
            embedding: base.embedding.clone(),
            ..if variance_preserving {
                EstimatorConfig::npse_vp()
            } else {
                EstimatorConfig::npse_ve()
            }
        }),
        Method::Mnle { num_discrete } => Ok(EstimatorConfig::mnle(num_discrete)),
        _ => Ok(base.clone()),
    }
}

/// Trains NRE-A, NRE-B, NRE-C or BNRE (per `method`) on `(theta, x)`; the posterior samples
/// with MCMC by default.
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
    if !method.is_ratio_estimation() {
        return Err(invalid_arg(
            "method",
            format!("train_nre needs an NRE method, not `{}`", method.name()),
        ));
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
    let log_prior: Vec<f32> = theta
        .to_vec2::<f32>()?
        .iter()
        .map(|r| {
            let t: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            // Atoms come from the proposals, which lie inside the prior support.
            prior.log_prob(&t).max(-1e30) as f32
        })
        .collect();
    est.atomic_loss_tensor(theta, x, &log_prior, num_atoms)
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

/// Simulates round `n` from `source` (parameters, and the digest the store records for them).
fn simulate_round(
    sim: &dyn Simulator,
    (source, source_digest): (&dyn ThetaSource, &str),
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
            // Resume the matching round if it exists (same size and seed), else add it; a
            // round of the same size and seed drawn from another proposal is refused.
            let r = store
                .rounds()
                .iter()
                .position(|p| p.n == n as u64 && p.seed == seed);
            let r = match r {
                Some(r) if store.rounds()[r].source != source_digest => {
                    return Err(InferError::StoreMismatch {
                        path: store.dir().to_path_buf(),
                        changes: vec![format!(
                            "the proposal of round {} (the training settings or the earlier rounds)",
                            r + 1
                        )],
                    });
                }
                Some(r) => r,
                None => store.add_round(n as u64, seed, run.chunk_size as u64, source_digest)?,
            };
            store.run_round(r, sim, source, run.batch_size, observer)?;
            if !store.is_round_complete(r)? {
                return Err(invalid_arg(
                    "simulation round",
                    "the run was stopped before the round finished; call again to resume",
                ));
            }
            let s = store.load_round(r)?;
            s.require_valid(run.max_invalid_fraction)?;
            Ok(s)
        }
    }
}

/// Copies an estimator (through its file format, which round-trips bit for bit).
fn snapshot(e: &ConditionalEstimator, tag: u64) -> Result<ConditionalEstimator> {
    let path = std::env::temp_dir().join(format!(
        "neurosbi-snapshot-{}-{:x}-{tag}.safetensors",
        std::process::id(),
        derive_seed(tag, e as *const _ as u64)
    ));
    e.save(&path)?;
    let c = ConditionalEstimator::load(&path);
    let _ = std::fs::remove_file(&path);
    Ok(c?)
}

/// Draws `n` rows from `g` truncated to the prior support; returns them and the log of the
/// Gaussian's mass inside the support (estimated from at least 10 000 draws).
fn truncated_gaussian(
    g: &Gaussian,
    prior: &dyn Prior,
    n: usize,
    seed: u64,
) -> Result<(Vec<f64>, f64)> {
    let d = prior.dim();
    let mut out = Vec::with_capacity(n * d);
    let mut row = vec![0.0; d];
    let (mut tried, mut inside) = (0u64, 0u64);
    while out.len() < n * d || tried < 10_000 {
        let mut rng = crate::rng::stream_rng(seed, 3, tried);
        g.sample_into(&mut rng, &mut row);
        tried += 1;
        if prior.in_support(&row) {
            inside += 1;
            if out.len() < n * d {
                out.extend_from_slice(&row);
            }
        }
        if tried > 100_000_000 {
            return Err(InferError::LowAcceptance {
                accepted: out.len() / d,
                drawn: tried,
            });
        }
    }
    Ok((out, (inside as f64 / tried as f64).ln()))
}

/// SNPE-B weights `log prior(theta) - log proposal(theta)` for every training row, the
/// proposal being the mixture of the rounds' proposals in proportion to their simulations
/// (sbi `NPE_B._log_prob_proposal_posterior`). Proposals are the prior (`None`) or an
/// earlier round's posterior.
fn npe_b_log_weights(
    prior: &dyn Prior,
    proposals: &[(usize, Option<Posterior>)],
    theta: &[f64],
    x_o: &[f64],
) -> Result<Vec<f64>> {
    let d = prior.dim();
    let total: usize = proposals.iter().map(|p| p.0).sum();
    let lp: Vec<f64> = theta.chunks(d).map(|r| prior.log_prob(r)).collect();
    let mut cols = Vec::with_capacity(proposals.len());
    for (n, p) in proposals {
        let lw = (*n as f64 / total as f64).ln();
        let l = match p {
            None => lp.clone(),
            Some(post) => post.log_prob(theta, x_o)?,
        };
        cols.push(l.into_iter().map(|v| v + lw).collect::<Vec<f64>>());
    }
    Ok((0..lp.len())
        .map(|i| {
            let t: Vec<f64> = cols.iter().map(|c| c[i]).collect();
            lp[i] - crate::posterior::log_sum_exp(&t)
        })
        .collect())
}

fn row_key(row: &[f32]) -> Vec<u32> {
    row.iter().map(|v| v.to_bits()).collect()
}

/// SNPE-B loss: `-sum_i w_i log q(theta_i | x_i)` with the importance weights normalised over
/// the batch; weights are looked up by the (f32) theta row.
fn weighted_nll(
    est: &ConditionalEstimator,
    theta: &Tensor,
    x: &Tensor,
    log_w: &HashMap<Vec<u32>, f32>,
) -> candle_core::Result<Tensor> {
    let rows = theta.to_vec2::<f32>()?;
    let lw: Vec<f32> = rows
        .iter()
        .map(|r| {
            log_w.get(&row_key(r)).copied().ok_or_else(|| {
                candle_core::Error::Msg("SNPE-B: a training row has no importance weight".into())
            })
        })
        .collect::<candle_core::Result<_>>()?;
    let m = lw.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f32> = lw.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = w.iter().sum();
    let w = Tensor::from_vec(
        w.iter().map(|v| v / s).collect::<Vec<_>>(),
        rows.len(),
        theta.device(),
    )?;
    (est.log_prob_tensor(theta, x)? * w)?.sum_all()?.neg()
}

fn run_abc(
    sim: &dyn Simulator,
    prior: Arc<dyn Prior>,
    x_o: Option<&[f64]>,
    cfg: &InferenceConfig,
) -> Result<(Posterior, InferenceReport)> {
    let x = x_o.ok_or_else(|| {
        invalid_arg(
            "x_o",
            format!("method `{}` needs the observation", cfg.method.name()),
        )
    })?;
    let n: usize = cfg.rounds.iter().sum();
    let (samples, kde) = match cfg.method {
        Method::RejectionAbc {
            quantile,
            eps,
            regression_adjustment,
            kde,
        } => (
            crate::abc::rejection_abc(
                sim,
                prior.as_ref(),
                x,
                &crate::abc::RejectionAbcConfig {
                    n_simulations: n,
                    quantile,
                    eps,
                    regression_adjustment,
                    seed: cfg.seed,
                    batch_size: cfg.run.batch_size,
                    ..Default::default()
                },
            )?,
            kde,
        ),
        Method::SmcAbc {
            population_size,
            epsilon_quantile,
            kernel_scale,
            regression_adjustment,
            use_last_pop_samples,
            kde,
        } => (
            crate::abc::smc_abc(
                sim,
                prior.as_ref(),
                x,
                &crate::abc::SmcAbcConfig {
                    population_size,
                    n_simulations: n,
                    epsilon_quantile,
                    kernel_scale,
                    regression_adjustment,
                    fill_last_population: use_last_pop_samples,
                    seed: cfg.seed,
                    batch_size: cfg.run.batch_size,
                    ..Default::default()
                },
            )?,
            kde,
        ),
        m => unreachable!("run_abc called for {}", m.name()),
    };
    let bandwidth = kde.select(&samples.theta, prior.dim())?;
    let post = Posterior::from_samples(prior, x, &samples.theta, &samples.weights)?
        .with_kde_bandwidth(bandwidth)?;
    let report = InferenceReport {
        train: Vec::new(),
        valid_per_round: vec![(samples.n_simulations - samples.n_invalid) as usize],
        invalid_per_round: vec![samples.n_invalid],
        invalid: None,
    };
    Ok((post, report))
}

/// Runs inference end to end: simulate each round (into `store` if given, resumable), train, and
/// build the posterior. Rounds after the first need the observation `x_o` and draw their
/// parameters from the current posterior (APT, SNPE-B, NLE, NRE), a Gaussian fitted to it
/// (SNPE-A) or the truncated prior (TSNPE). ABC methods spend the sum of `rounds` as their
/// simulation budget and return a posterior of weighted samples for `x_o` (their simulations
/// are not kept in `store`). FMPE and NPSE run one round.
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
    if let Some(k) = cfg.posterior {
        cfg.method.check_posterior(k)?;
    }
    if let Some(x) = x_o {
        if x.len() != sim.dim_x() {
            return Err(InferError::DimMismatch {
                what: "observation vs simulator dim_x".into(),
                expected: sim.dim_x(),
                got: x.len(),
            });
        }
        check_finite("observation", x)?;
    }
    if matches!(
        cfg.method,
        Method::RejectionAbc { .. } | Method::SmcAbc { .. }
    ) {
        return run_abc(sim, prior, x_o, cfg);
    }
    if cfg.rounds.len() > 1 {
        x_o.ok_or_else(|| invalid_arg("x_o", "multi-round inference needs the observation"))?;
        if matches!(cfg.method, Method::Fmpe | Method::Npse { .. }) {
            return Err(invalid_arg(
                "rounds",
                format!("method `{}` runs a single round", cfg.method.name()),
            ));
        }
    }
    let estimator = estimator_for(cfg.method, &cfg.estimator)?;
    let dx = sim.dim_x();
    let mut theta_all = Vec::new();
    let mut x_all = Vec::new();
    let mut report = InferenceReport {
        train: Vec::new(),
        valid_per_round: Vec::new(),
        invalid_per_round: Vec::new(),
        invalid: None,
    };
    let mut all_sims = SimulationSet {
        dim_theta: sim.dim_theta(),
        dim_x: sim.dim_x(),
        ..Default::default()
    };
    let mut posterior: Option<Posterior> = None;
    // SNPE-B: the proposals so far (simulations, None = prior / Some = that round's posterior).
    let mut npe_b_proposals: Vec<(usize, Option<Posterior>)> = Vec::new();
    // SNPE-A: the proposals so far (simulations, None = prior / Some = truncated Gaussian).
    let mut npe_a_proposals: Vec<(usize, Option<(Gaussian, f64)>)> = Vec::new();
    for (r, &n) in cfg.rounds.iter().enumerate() {
        let seed = derive_seed(cfg.seed, 1000 + r as u64);
        if let Some(p) = posterior.as_mut() {
            p.settings.mcmc = cfg.mcmc.clone();
        }
        let mut npe_a_component = None;
        let sims = match (&posterior, x_o) {
            (Some(post), Some(x)) => {
                let rows = match cfg.method {
                    Method::Tsnpe { epsilon } => truncated_prior_draws(post, x, n, epsilon, seed)?,
                    Method::NpeA { .. } => {
                        let fit = post.sample(2000, x, derive_seed(seed, 7))?;
                        let g = Gaussian::fit(&fit.theta, &vec![0.0; 2000], prior.dim(), 1.0)?;
                        let (rows, log_mass) = truncated_gaussian(&g, prior.as_ref(), n, seed)?;
                        npe_a_component = Some((g, log_mass));
                        rows
                    }
                    _ => post.sample(n, x, seed)?.theta,
                };
                let src = FromRows::new(&rows, prior.dim())?;
                simulate_round(
                    sim,
                    (&src, &crate::provenance::sha256_f64(&rows)),
                    n,
                    &cfg.run,
                    seed,
                    store.as_deref_mut(),
                    sim_observer,
                )?
            }
            _ => simulate_round(
                sim,
                (&FromPrior(prior.as_ref()), "prior"),
                n,
                &cfg.run,
                seed,
                store.as_deref_mut(),
                sim_observer,
            )?,
        };
        report.valid_per_round.push(sims.len());
        report.invalid_per_round.push(sims.n_invalid);
        all_sims.n_attempted += sims.n_attempted;
        all_sims.n_invalid += sims.n_invalid;
        all_sims
            .invalid_theta
            .extend_from_slice(&sims.invalid_theta);
        all_sims.theta.extend_from_slice(&sims.theta);
        all_sims.reasons.merge(&sims.reasons);
        report.invalid = Some(all_sims.invalid_report());
        theta_all.extend_from_slice(&sims.theta);
        x_all.extend_from_slice(&sims.x);
        let train = seeded(&cfg.train, derive_seed(cfg.seed, 2000 + r as u64));
        match cfg.method {
            Method::NpeA {
                last_round_only, ..
            } => {
                if last_round_only {
                    npe_a_proposals.clear();
                }
                npe_a_proposals.push((sims.len(), npe_a_component));
            }
            Method::NpeB => {
                let prev = match (&posterior, r) {
                    (Some(Posterior { .. }), _) if r > 0 => {
                        let p = posterior.as_ref().expect("checked");
                        let Estimator::Npe(e) = p.estimator() else {
                            unreachable!("NPE-B trains an NPE estimator")
                        };
                        let mut snap =
                            Posterior::new(prior.clone(), Estimator::Npe(snapshot(e, r as u64)?))?;
                        snap.settings = p.settings.clone();
                        Some(snap)
                    }
                    _ => None,
                };
                npe_b_proposals.push((sims.len(), prev));
            }
            _ => {}
        }
        let rep = match posterior.as_mut() {
            None => {
                let (p, rep) = if cfg.method.is_posterior_estimation() {
                    train_npe(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        &estimator,
                        &train,
                        train_observer,
                    )?
                } else if cfg.method.is_ratio_estimation() {
                    train_nre(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        cfg.method,
                        &cfg.classifier,
                        &train,
                        train_observer,
                    )?
                } else {
                    train_nle(
                        prior.clone(),
                        &theta_all,
                        &x_all,
                        dx,
                        &estimator,
                        &train,
                        train_observer,
                    )?
                };
                posterior = Some(p);
                rep
            }
            Some(post) => {
                check_training_data(prior.as_ref(), &theta_all, &x_all, dx)?;
                let pr = prior.clone();
                match (post.estimator_mut(), cfg.method) {
                    (Estimator::Npe(e), Method::Npe { num_atoms }) => {
                        let log_prior: Vec<f64> =
                            theta_all.chunks(pr.dim()).map(|t| pr.log_prob(t)).collect();
                        e.train_atomic(
                            &theta_all,
                            &x_all,
                            &log_prior,
                            num_atoms,
                            &train,
                            train_observer,
                        )?
                    }
                    (Estimator::Npe(e), Method::NpeB) => {
                        let x = x_o.expect("checked for several rounds");
                        let lw =
                            npe_b_log_weights(prior.as_ref(), &npe_b_proposals, &theta_all, x)?;
                        let d = prior.dim();
                        let table: HashMap<Vec<u32>, f32> = theta_all
                            .chunks(d)
                            .zip(&lw)
                            .map(|(r, &w)| {
                                let f: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                                (row_key(&f), w as f32)
                            })
                            .collect();
                        e.train_with_loss(
                            &theta_all,
                            &x_all,
                            &train,
                            train_observer,
                            &move |est, t, x| weighted_nll(est, t, x, &table),
                        )?
                    }
                    (
                        Estimator::Corrected { q: e, .. },
                        Method::NpeA {
                            last_round_only: true,
                            ..
                        },
                    ) => e.train(&sims.theta, &sims.x, &train, train_observer)?,
                    (Estimator::Npe(e), _) | (Estimator::Corrected { q: e, .. }, _) => {
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
                    (Estimator::Ensemble { .. } | Estimator::Samples { .. }, _) => {
                        unreachable!("infer never trains these")
                    }
                }
            }
        };
        if let Method::NpeA { .. } = cfg.method {
            // Wrap (or re-weight) the MDN with the proposals of all rounds so far.
            let total: usize = npe_a_proposals.iter().map(|p| p.0).sum();
            let mixture = ProposalMixture {
                components: npe_a_proposals
                    .iter()
                    .map(|(k, c)| (*k as f64 / total as f64, c.clone()))
                    .collect(),
            };
            let p = posterior.take().expect("trained above");
            let settings = p.settings.clone();
            let q = match p.into_estimator() {
                Estimator::Npe(q) | Estimator::Corrected { q, .. } => q,
                _ => unreachable!("NPE-A trains an MDN"),
            };
            let mut np = Posterior::new(
                prior.clone(),
                Estimator::Corrected {
                    q,
                    proposal: mixture,
                },
            )?;
            np.settings = settings;
            posterior = Some(np);
        }
        report.train.push(rep);
    }
    let mut post = posterior.ok_or_else(|| invalid_arg("rounds", "no round was run"))?;
    post.settings.mcmc = cfg.mcmc.clone();
    if let Some(k) = cfg.posterior {
        post.set_kind(k)?;
    }
    Ok((post, report))
}
