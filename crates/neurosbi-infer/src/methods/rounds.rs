//! The rounds of [`infer`](super::infer) for the trained methods: drawing each round's
//! parameters from the method's proposal, simulating them (into the store, resumably),
//! training the estimator further with the method's loss and, for SNPE-A, correcting the
//! posterior by the proposals.

use super::{
    InferenceConfig, InferenceReport, Method, check_training_data, estimator_for, nre_loss, seeded,
    train_nle, train_npe, train_nre,
};
use crate::error::{InferError, Result, invalid_arg};
use crate::posterior::{Estimator, Posterior, ProposalMixture};
use crate::prior::Prior;
use crate::rng::derive_seed;
use crate::samplers::Gaussian;
use crate::simulator::{
    FromPrior, FromRows, RunConfig, RunObserver, SimulationSet, Simulator, ThetaSource,
};
use crate::store::Store;
use neurosbi_flows::candle_core::{self, Tensor};
use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, TrainConfig, TrainObserver, TrainReport,
};
use std::collections::HashMap;
use std::sync::Arc;

/// An SNPE-A proposal: a Gaussian fitted to the posterior, and the log of its mass inside
/// the prior support.
type NpeAComponent = (Gaussian, f64);

/// The state of [`infer`](super::infer)'s rounds for a trained method: the simulations so
/// far, the posterior trained on them and the proposals they were drawn from.
pub(super) struct Rounds<'a> {
    sim: &'a dyn Simulator,
    prior: Arc<dyn Prior>,
    x_o: Option<&'a [f64]>,
    cfg: &'a InferenceConfig,
    /// The density estimator the method trains (see [`estimator_for`]).
    estimator: EstimatorConfig,
    theta_all: Vec<f64>,
    x_all: Vec<f64>,
    all_sims: SimulationSet,
    report: InferenceReport,
    posterior: Option<Posterior>,
    /// SNPE-B: the proposals so far (simulations, None = prior / Some = that round's posterior).
    npe_b_proposals: Vec<(usize, Option<Posterior>)>,
    /// SNPE-A: the proposals so far (simulations, None = prior / Some = truncated Gaussian).
    npe_a_proposals: Vec<(usize, Option<NpeAComponent>)>,
}

impl<'a> Rounds<'a> {
    pub(super) fn new(
        sim: &'a dyn Simulator,
        prior: Arc<dyn Prior>,
        x_o: Option<&'a [f64]>,
        cfg: &'a InferenceConfig,
    ) -> Result<Self> {
        Ok(Self {
            sim,
            prior,
            x_o,
            cfg,
            estimator: estimator_for(cfg.method, &cfg.estimator)?,
            theta_all: Vec::new(),
            x_all: Vec::new(),
            all_sims: SimulationSet {
                dim_theta: sim.dim_theta(),
                dim_x: sim.dim_x(),
                ..Default::default()
            },
            report: InferenceReport {
                train: Vec::new(),
                valid_per_round: Vec::new(),
                invalid_per_round: Vec::new(),
                invalid: None,
            },
            posterior: None,
            npe_b_proposals: Vec::new(),
            npe_a_proposals: Vec::new(),
        })
    }

    /// Round `r` of `n` simulations: draw and simulate, train, and (SNPE-A) correct.
    pub(super) fn run(
        &mut self,
        r: usize,
        n: usize,
        store: Option<&mut Store>,
        sim_observer: &mut dyn RunObserver,
        train_observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        let seed = derive_seed(self.cfg.seed, 1000 + r as u64);
        if let Some(p) = self.posterior.as_mut() {
            p.settings.mcmc = self.cfg.mcmc.clone();
        }
        let (sims, npe_a_component) = self.simulate(n, seed, store, sim_observer)?;
        self.record(&sims);
        let train = seeded(&self.cfg.train, derive_seed(self.cfg.seed, 2000 + r as u64));
        self.push_proposal(r, sims.len(), npe_a_component)?;
        let rep = if self.posterior.is_none() {
            self.train_first(&train, train_observer)?
        } else {
            self.train_again(&sims, &train, train_observer)?
        };
        if let Method::NpeA { .. } = self.cfg.method {
            self.correct_npe_a()?;
        }
        self.report.train.push(rep);
        Ok(())
    }

    /// Simulates a round of `n`: from the prior in the first round, else from the method's
    /// proposal; returns the simulations and (SNPE-A) the round's truncated Gaussian.
    fn simulate(
        &self,
        n: usize,
        seed: u64,
        store: Option<&mut Store>,
        sim_observer: &mut dyn RunObserver,
    ) -> Result<(SimulationSet, Option<NpeAComponent>)> {
        match (&self.posterior, self.x_o) {
            (Some(post), Some(x)) => {
                let (rows, npe_a_component) =
                    proposal_draws(post, x, self.prior.as_ref(), self.cfg.method, n, seed)?;
                let src = FromRows::new(&rows, self.prior.dim())?;
                let sims = simulate_round(
                    self.sim,
                    (&src, &crate::provenance::sha256_f64(&rows)),
                    n,
                    &self.cfg.run,
                    seed,
                    store,
                    sim_observer,
                )?;
                Ok((sims, npe_a_component))
            }
            _ => {
                let sims = simulate_round(
                    self.sim,
                    (&FromPrior(self.prior.as_ref()), "prior"),
                    n,
                    &self.cfg.run,
                    seed,
                    store,
                    sim_observer,
                )?;
                Ok((sims, None))
            }
        }
    }

    /// Adds a round's simulations to the training data and the report.
    fn record(&mut self, sims: &SimulationSet) {
        self.report.valid_per_round.push(sims.len());
        self.report.invalid_per_round.push(sims.n_invalid);
        self.all_sims.n_attempted += sims.n_attempted;
        self.all_sims.n_invalid += sims.n_invalid;
        self.all_sims
            .invalid_theta
            .extend_from_slice(&sims.invalid_theta);
        self.all_sims.theta.extend_from_slice(&sims.theta);
        self.all_sims.reasons.merge(&sims.reasons);
        self.report.invalid = Some(self.all_sims.invalid_report());
        self.theta_all.extend_from_slice(&sims.theta);
        self.x_all.extend_from_slice(&sims.x);
    }

    /// SNPE-A and SNPE-B: records the proposal round `r`'s `valid` simulations came from
    /// (SNPE-B: a copy of the posterior before this round's training).
    fn push_proposal(
        &mut self,
        r: usize,
        valid: usize,
        npe_a_component: Option<NpeAComponent>,
    ) -> Result<()> {
        match self.cfg.method {
            Method::NpeA {
                last_round_only, ..
            } => {
                if last_round_only {
                    self.npe_a_proposals.clear();
                }
                self.npe_a_proposals.push((valid, npe_a_component));
            }
            Method::NpeB => {
                let prev = match self.posterior.as_ref() {
                    Some(p) if r > 0 => {
                        let Estimator::Npe(e) = p.estimator() else {
                            unreachable!("NPE-B trains an NPE estimator")
                        };
                        let mut snap = Posterior::new(
                            self.prior.clone(),
                            Estimator::Npe(snapshot(e, r as u64)?),
                        )?;
                        snap.settings = p.settings.clone();
                        Some(snap)
                    }
                    _ => None,
                };
                self.npe_b_proposals.push((valid, prev));
            }
            _ => {}
        }
        Ok(())
    }

    /// The first round: trains a new estimator on the prior's simulations.
    fn train_first(
        &mut self,
        train: &TrainConfig,
        train_observer: &mut dyn TrainObserver,
    ) -> Result<TrainReport> {
        let (theta, x, dx) = (&self.theta_all, &self.x_all, self.sim.dim_x());
        let prior = self.prior.clone();
        let (p, rep) = if self.cfg.method.is_posterior_estimation() {
            train_npe(prior, theta, x, dx, &self.estimator, train, train_observer)?
        } else if self.cfg.method.is_ratio_estimation() {
            let (method, classifier) = (self.cfg.method, &self.cfg.classifier);
            train_nre(
                prior,
                theta,
                x,
                dx,
                method,
                classifier,
                train,
                train_observer,
            )?
        } else {
            train_nle(prior, theta, x, dx, &self.estimator, train, train_observer)?
        };
        self.posterior = Some(p);
        Ok(rep)
    }

    /// A later round: trains the estimator further on all simulations so far (SNPE-A with
    /// `last_round_only`: on this round's `sims`) with the method's loss.
    fn train_again(
        &mut self,
        sims: &SimulationSet,
        train: &TrainConfig,
        train_observer: &mut dyn TrainObserver,
    ) -> Result<TrainReport> {
        let (theta, x) = (&self.theta_all, &self.x_all);
        let prior = self.prior.as_ref();
        check_training_data(prior, theta, x, self.sim.dim_x())?;
        let post = self.posterior.as_mut().expect("trained in the first round");
        let rep = match (post.estimator_mut(), self.cfg.method) {
            (Estimator::Npe(e), Method::Npe { num_atoms }) => {
                let log_prior: Vec<f64> = theta
                    .chunks(prior.dim())
                    .map(|t| prior.log_prob(t))
                    .collect();
                e.train_atomic(theta, x, &log_prior, num_atoms, train, train_observer)?
            }
            (Estimator::Npe(e), Method::NpeB) => {
                let x_o = self.x_o.expect("checked for several rounds");
                let proposals = &self.npe_b_proposals;
                train_npe_b(e, prior, proposals, (theta, x), x_o, train, train_observer)?
            }
            (
                Estimator::Corrected { q: e, .. },
                Method::NpeA {
                    last_round_only: true,
                    ..
                },
            ) => e.train(&sims.theta, &sims.x, train, train_observer)?,
            (Estimator::Npe(e), _) | (Estimator::Corrected { q: e, .. }, _) => {
                e.train(theta, x, train, train_observer)?
            }
            (Estimator::Nle(e), _) => e.train(x, theta, train, train_observer)?,
            (Estimator::Nre(c), m) => {
                c.train_with_loss(theta, x, train, train_observer, &*nre_loss(m))?
            }
            (Estimator::Ensemble { .. } | Estimator::Samples { .. }, _) => {
                unreachable!("infer never trains these")
            }
        };
        Ok(rep)
    }

    /// SNPE-A: wraps (or re-weights) the MDN with the proposals of all rounds so far.
    fn correct_npe_a(&mut self) -> Result<()> {
        let total: usize = self.npe_a_proposals.iter().map(|p| p.0).sum();
        let mixture = ProposalMixture {
            components: self
                .npe_a_proposals
                .iter()
                .map(|(k, c)| (*k as f64 / total as f64, c.clone()))
                .collect(),
        };
        let p = self.posterior.take().expect("trained above");
        let settings = p.settings.clone();
        let q = match p.into_estimator() {
            Estimator::Npe(q) | Estimator::Corrected { q, .. } => q,
            _ => unreachable!("NPE-A trains an MDN"),
        };
        let mut np = Posterior::new(
            self.prior.clone(),
            Estimator::Corrected {
                q,
                proposal: mixture,
            },
        )?;
        np.settings = settings;
        self.posterior = Some(np);
        Ok(())
    }

    /// The posterior of the last round, with the run's MCMC settings and posterior kind.
    pub(super) fn finish(self) -> Result<(Posterior, InferenceReport)> {
        let mut post = self
            .posterior
            .ok_or_else(|| invalid_arg("rounds", "no round was run"))?;
        post.settings.mcmc = self.cfg.mcmc.clone();
        if let Some(k) = self.cfg.posterior {
            post.set_kind(k)?;
        }
        Ok((post, self.report))
    }
}

/// The parameters of round `round > 0`'s `n` simulations for the observation `x`, drawn from
/// `method`'s proposal built on `post` (the posterior after the rounds before) exactly as
/// [`super::infer`] draws them with the run's `seed`: what a shard of that round simulates.
pub fn round_proposal_rows(
    post: &Posterior,
    x: &[f64],
    prior: &dyn Prior,
    method: Method,
    (n, round, seed): (usize, usize, u64),
) -> Result<Vec<f64>> {
    let seed = derive_seed(seed, 1000 + round as u64);
    Ok(proposal_draws(post, x, prior, method, n, seed)?.0)
}

/// A later round's `n` parameters, drawn with `seed` from the method's proposal for `x`: the
/// truncated prior (TSNPE), a Gaussian fitted to `post` truncated to the prior support (SNPE-A,
/// returned too with its log mass inside the support) or `post` itself.
fn proposal_draws(
    post: &Posterior,
    x: &[f64],
    prior: &dyn Prior,
    method: Method,
    n: usize,
    seed: u64,
) -> Result<(Vec<f64>, Option<NpeAComponent>)> {
    match method {
        Method::Tsnpe { epsilon } => Ok((truncated_prior_draws(post, x, n, epsilon, seed)?, None)),
        Method::NpeA { .. } => {
            let fit = post.sample(2000, x, derive_seed(seed, 7))?;
            let g = Gaussian::fit(&fit.theta, &vec![0.0; 2000], prior.dim(), 1.0)?;
            let (rows, log_mass) = truncated_gaussian(&g, prior, n, seed)?;
            Ok((rows, Some((g, log_mass))))
        }
        _ => Ok((post.sample(n, x, seed)?.theta, None)),
    }
}

/// SNPE-B's training step: maximum likelihood on `(theta, x)` weighted by prior / proposal,
/// the proposal being the mixture of `proposals` (see [`npe_b_log_weights`]).
fn train_npe_b(
    e: &mut ConditionalEstimator,
    prior: &dyn Prior,
    proposals: &[(usize, Option<Posterior>)],
    (theta, x): (&[f64], &[f64]),
    x_o: &[f64],
    train: &TrainConfig,
    train_observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    let lw = npe_b_log_weights(prior, proposals, theta, x_o)?;
    let table: HashMap<Vec<u32>, f32> = theta
        .chunks(prior.dim())
        .zip(&lw)
        .map(|(r, &w)| {
            let f: Vec<f32> = r.iter().map(|&v| v as f32).collect();
            (row_key(&f), w as f32)
        })
        .collect();
    Ok(
        e.train_with_loss(theta, x, train, train_observer, &move |est, t, x| {
            weighted_nll(est, t, x, &table)
        })?,
    )
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
