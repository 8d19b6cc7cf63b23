//! Training methods and the multi-round driver: NPE (single round), APT / SNPE-C with the atomic
//! loss (Greenberg et al. 2019), SNPE-A (Papamakarios & Murray 2016) and SNPE-B (Lueckmann et
//! al. 2017), truncated sequential NPE (TSNPE, Deistler et al. 2022), NLE with MCMC
//! (Papamakarios et al. 2019), NRE-A / NRE-B / NRE-C / BNRE (Hermans et al. 2020, Durkan et
//! al. 2020, Miller et al. 2022, Delaunoy et al. 2022), and rejection / SMC-ABC through the
//! same driver, following sbi's defaults. Choose one by name with [`Method::from_name`].

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::kde::KdeBandwidth;
use crate::posterior::{Estimator, Posterior, PosteriorKind};
use crate::prior::Prior;
use crate::rng::derive_seed;
use crate::simulator::{FromPrior, RunConfig, RunObserver, Simulator, check_dims};
use crate::store::Store;
use neurosbi_flows::candle_core::{self, Tensor};
use neurosbi_flows::losses::{bnre_loss, nre_a_loss_averaged, nre_b_loss, nre_c_loss};
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorConfig, RatioClassifier, TrainConfig,
    TrainObserver, TrainReport,
};
use std::sync::Arc;

mod rounds;
use rounds::Rounds;
pub use rounds::round_proposal_rows;

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
    check_infer_args(sim, prior.as_ref(), x_o, cfg)?;
    if matches!(
        cfg.method,
        Method::RejectionAbc { .. } | Method::SmcAbc { .. }
    ) {
        return run_abc(sim, prior, x_o, cfg);
    }
    check_sequential_args(x_o, cfg)?;
    let mut rounds = Rounds::new(sim, prior, x_o, cfg)?;
    for (r, &n) in cfg.rounds.iter().enumerate() {
        rounds.run(r, n, store.as_deref_mut(), sim_observer, train_observer)?;
    }
    rounds.finish()
}

/// The checks of [`infer`] that come before anything runs, whatever the method.
fn check_infer_args(
    sim: &dyn Simulator,
    prior: &dyn Prior,
    x_o: Option<&[f64]>,
    cfg: &InferenceConfig,
) -> Result<()> {
    check_dims(sim, &FromPrior(prior))?;
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
    Ok(())
}

/// The checks of [`infer`] for the trained (not ABC) methods: several rounds need the
/// observation, and FMPE and NPSE run one round.
fn check_sequential_args(x_o: Option<&[f64]>, cfg: &InferenceConfig) -> Result<()> {
    if cfg.rounds.len() > 1 {
        x_o.ok_or_else(|| invalid_arg("x_o", "multi-round inference needs the observation"))?;
        if matches!(cfg.method, Method::Fmpe | Method::Npse { .. }) {
            return Err(invalid_arg(
                "rounds",
                format!("method `{}` runs a single round", cfg.method.name()),
            ));
        }
    }
    Ok(())
}
