//! sbibm table runner: for each task and simulation budget, run a method, sample 10 000
//! posterior draws for each of the 10 sbibm observations and print the C2ST mean and spread
//! against the reference posterior, next to the published sbibm numbers (Lueckmann et al.
//! 2021).
//!
//! `cargo bench -p neurosbi-infer --bench sbibm`. Environment (all optional):
//! - SBIBM_TASKS: comma list (default: gaussian_linear,two_moons,slcp,gaussian_mixture,bernoulli_glm)
//! - SBIBM_BUDGETS: comma list (default: 1000,10000)
//! - SBIBM_OBS: observations per task, 1..=10 (default 10)
//! - SBIBM_FIRST_OBS: the first of them (default 1), so that a long run can be split into
//!   processes (each observation is seeded by its number, so the parts give the same scores)
//! - SBIBM_METHOD: any method name of `Method::from_name` (npe, npe_a, npe_b, tsnpe, nle,
//!   nre_a, nre_b, nre_c, bnre, fmpe, npse, rejection_abc, smc_abc, ...; default npe)
//! - SBIBM_POSTERIOR: posterior kind (direct, mcmc, sir, rejection, vi; default: the method's)
//! - SBIBM_ROUNDS: rounds the budget is split into (default 1; sbibm's sequential methods: 10).
//!   One round: trained once per budget (amortised) and sampled for each observation;
//!   several rounds (and ABC): one run per observation.
//!   ABC runs with sbibm's settings, whatever the library's defaults: rejection ABC keeps the
//!   100 closest simulations, SMC-ABC has populations of 100 (1 000 above 10 000
//!   simulations), epsilon at the 0.2 quantile and a kernel of 0.5 x the population's
//!   covariance (sbi's variant C), and both draw from a KDE with a
//!   cross-validated bandwidth (`kde = "cv"`) fitted to what they keep.
//! - SBIBM_ESTIMATOR: maf | nsf | mdn (default nsf; FMPE/NPSE/NPE-A choose their own)
//! - SBIBM_SAMPLES: posterior and reference draws per observation (default 10000, as sbibm)
//! - SBIBM_BATCH: training batch size, a number or `sbibm` (sbibm's SNPE/SNLE/SNRE runs:
//!   min(10 000, simulations per round), i.e. 1 000 for 10 rounds of 1 000; default: the
//!   library's 200, as sbi 0.27's own default)
//! - SBIBM_SEED: run seed (default 1, the seeds of all recorded rows): shifts the seed given to
//!   `infer`, from which simulations, proposals and training seeds derive
//! - SBIBM_CHAINS: MCMC chains (default: the library's 20; sbibm's SNLE used 100), for the
//!   final draws and every round's proposal. On a multimodal posterior (slcp has four
//!   modes) each chain stays in one mode, so few chains give noisy mode weights.
//! - SBIBM_THIN, SBIBM_WARMUP: MCMC thinning and warm-up sweeps (default: the library's 1 and
//!   200; sbibm's SNLE used 10 and 25).
//! - SBIBM_DUMP: a directory; each observation's posterior draws are written there as
//!   `{task}_{budget}_{obs}.csv` (one row per draw) for inspection.
//!
//! Per observation it prints (to stderr) the epochs of each round's training, the acceptance
//! rate of the posterior draws and, for MCMC, the largest split-R-hat.

use neurosbi_flows::{ClassifierConfig, EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::task_by_name;
use neurosbi_infer::{
    InferError, InferenceConfig, Method, MethodOptions, Posterior, PosteriorKind, Prior, Quiet,
    RunConfig, infer,
};
use std::sync::Arc;
use std::time::Instant;

/// Published C2ST means (sbibm paper, Fig. 3 data): (task, NPE@1e3, NPE@1e4, best@1e4).
const PUBLISHED: [(&str, f64, f64, f64); 5] = [
    ("gaussian_linear", 0.694, 0.552, 0.536),
    ("two_moons", 0.725, 0.606, 0.554),
    ("slcp", 0.975, 0.901, 0.713),
    ("gaussian_mixture", 0.716, 0.615, 0.551),
    ("bernoulli_glm", 0.863, 0.678, 0.553),
];

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    let tasks = env_list(
        "SBIBM_TASKS",
        "gaussian_linear,two_moons,slcp,gaussian_mixture,bernoulli_glm",
    );
    let budgets: Vec<usize> = env_list("SBIBM_BUDGETS", "1000,10000")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let n_obs: usize = std::env::var("SBIBM_OBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 10);
    let first_obs: usize = std::env::var("SBIBM_FIRST_OBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .clamp(1, 10);
    let n_obs = n_obs.min(11 - first_obs);
    let n_samples: usize = std::env::var("SBIBM_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let method_name = std::env::var("SBIBM_METHOD").unwrap_or_else(|_| "npe".into());
    let method = Method::from_name(&method_name, &MethodOptions::new()).expect("SBIBM_METHOD");
    let posterior_kind = std::env::var("SBIBM_POSTERIOR")
        .ok()
        .map(|k| PosteriorKind::from_name(&k).expect("SBIBM_POSTERIOR"));
    let rounds: usize = std::env::var("SBIBM_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let abc = matches!(method, Method::RejectionAbc { .. } | Method::SmcAbc { .. });
    let amortised = rounds == 1 && !abc;
    let est_name = std::env::var("SBIBM_ESTIMATOR").unwrap_or_else(|_| "nsf".into());
    let est = match est_name.as_str() {
        "maf" => EstimatorConfig::maf(),
        "mdn" => EstimatorConfig::mdn(),
        _ => EstimatorConfig::nsf(),
    };
    let batch = std::env::var("SBIBM_BATCH").ok();
    let chains: Option<usize> = std::env::var("SBIBM_CHAINS")
        .ok()
        .map(|s| s.parse().expect("SBIBM_CHAINS: a number of chains"));
    let mut mcmc = neurosbi_infer::mcmc::SliceConfig::default();
    if let Some(c) = chains {
        mcmc.num_chains = c;
    }
    if let Ok(t) = std::env::var("SBIBM_THIN") {
        mcmc.thin = t.parse().expect("SBIBM_THIN: a positive number");
    }
    if let Ok(w) = std::env::var("SBIBM_WARMUP") {
        mcmc.warmup = w.parse().expect("SBIBM_WARMUP: a number of sweeps");
    }
    let train_seed: u64 = std::env::var("SBIBM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    println!(
        "method {method_name} ({est_name}), {rounds} round(s), {n_obs} observations, {n_samples} samples, batch {}, seed {train_seed}, mcmc chains {} thin {} warmup {}",
        batch.as_deref().unwrap_or("default"),
        mcmc.num_chains,
        mcmc.thin,
        mcmc.warmup
    );
    println!(
        "{:<18} {:>7} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "task", "budget", "c2st", "spread", "sbibm NPE", "best@1e4", "train s", "total s"
    );
    for name in &tasks {
        let task = match task_by_name(name) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let prior: Arc<dyn Prior> = Arc::from(
            task.prior()
                .spec()
                .expect("built-in prior")
                .build()
                .expect("valid"),
        );
        let dim = task.dim_theta();
        for &budget in &budgets {
            let t0 = Instant::now();
            let per_round = budget.div_ceil(rounds);
            let train = TrainConfig {
                seed: train_seed,
                batch_size: match batch.as_deref() {
                    None => TrainConfig::default().batch_size,
                    Some("sbibm") => per_round.min(10_000),
                    Some(b) => b.parse().expect("SBIBM_BATCH: a number or `sbibm`"),
                },
                ..Default::default()
            };
            let mut train_s = 0.0;
            let config = |seed: u64| InferenceConfig {
                method: sbibm_settings(&method_name, budget).unwrap_or(method),
                rounds: vec![per_round; rounds],
                estimator: est.clone(),
                classifier: ClassifierConfig::residual(),
                train: train.clone(),
                run: RunConfig::default(),
                seed,
                posterior: posterior_kind,
                mcmc: mcmc.clone(),
            };
            let mut run = |x_o: Option<&[f64]>, seed: u64| {
                // `infer` derives each round's training seed from its own seed, so SBIBM_SEED
                // moves that one; seed 1 keeps the seeds of the rows recorded before it.
                let seed = seed.wrapping_add(
                    train_seed
                        .wrapping_sub(1)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let t = Instant::now();
                let post = infer(
                    task.as_ref(),
                    prior.clone(),
                    x_o,
                    &config(seed),
                    None,
                    &mut Quiet,
                    &mut NoObserver,
                )
                .expect("inference");
                train_s += t.elapsed().as_secs_f64();
                let epochs: Vec<usize> = post.1.train.iter().map(|r| r.epochs).collect();
                eprintln!(
                    "  {name} seed {seed}: epochs per round {epochs:?} ({:.0} s)",
                    t.elapsed().as_secs_f64()
                );
                post.0
            };
            let mut shared: Option<Posterior> = amortised.then(|| run(None, budget as u64));
            let mut scores = Vec::new();
            for obs in first_obs..first_obs + n_obs {
                let x_o = task.observation(obs).expect("observation");
                let mut owned = None;
                let post = match shared.as_mut() {
                    Some(p) => p,
                    None => owned.insert(run(Some(&x_o), obs as u64)),
                };
                let draws = match post.sample(n_samples, &x_o, obs as u64) {
                    // A flow that leaks nearly all its mass out of the prior support: sbi's
                    // rejection loop would run for hours, its advice is MCMC, so do that
                    // and say so (sbibm's runs never report this case).
                    Err(InferError::LowAcceptance { accepted, drawn })
                        if post.kind() == PosteriorKind::Direct =>
                    {
                        eprintln!(
                            "  {name} {budget} observation {obs}: {accepted} of {drawn} direct \
                             draws inside the prior support; sampling with MCMC instead"
                        );
                        post.set_kind(PosteriorKind::Mcmc).expect("mcmc");
                        let d = post.sample(n_samples, &x_o, obs as u64);
                        post.set_kind(PosteriorKind::Direct).expect("direct");
                        d
                    }
                    r => r,
                }
                .expect("sampling");
                if let Ok(dir) = std::env::var("SBIBM_DUMP") {
                    let path = format!("{dir}/{name}_{budget}_{obs}.csv");
                    let text: String = draws
                        .theta
                        .chunks(dim)
                        .map(|r| {
                            let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
                            cells.join(",") + "\n"
                        })
                        .collect();
                    std::fs::write(&path, text).expect("SBIBM_DUMP: writable directory");
                }
                let reference = task
                    .reference_posterior(&x_o, n_samples, 1000 + obs as u64)
                    .expect("reference");
                let t_c2st = Instant::now();
                let score =
                    c2st(&reference, &draws.theta, dim, &C2stConfig::default()).expect("c2st");
                let c2st_s = t_c2st.elapsed().as_secs_f64();
                let rhat = draws
                    .rhat
                    .as_ref()
                    .map(|r| format!(", max R-hat {:.3}", r.iter().fold(0.0f64, |a, &b| a.max(b))))
                    .unwrap_or_default();
                let ess = draws
                    .ess
                    .map(|e| format!(", ess {e:.1}"))
                    .unwrap_or_default();
                eprintln!(
                    "  {name} {budget} observation {obs}: c2st {score:.3} ({c2st_s:.1} s), acceptance \
                     {:.3}{rhat}{ess}",
                    draws.acceptance_rate
                );
                scores.push(score);
            }
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let spread = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>()
                / (scores.len().max(2) - 1) as f64)
                .sqrt();
            let (npe, best) = PUBLISHED
                .iter()
                .find(|p| p.0 == name.as_str())
                .map(|p| {
                    (
                        if budget <= 1000 { p.1 } else { p.2 },
                        if budget >= 10_000 {
                            format!("{:.3}", p.3)
                        } else {
                            "-".into()
                        },
                    )
                })
                .map(|(a, b)| (format!("{a:.3}"), b))
                .unwrap_or_else(|| ("-".into(), "-".into()));
            println!(
                "{:<18} {:>7} {:>8.3} {:>7.3} {:>9} {:>9} {:>9.1} {:>8.1}",
                name,
                budget,
                mean,
                spread,
                npe,
                best,
                train_s,
                t0.elapsed().as_secs_f64()
            );
        }
    }
}

/// sbibm's settings of its ABC runs (`sbibm/algorithms/sbi/{mcabc,smcabc}.py` defaults) for a
/// budget; `None` for the other methods.
fn sbibm_settings(method: &str, budget: usize) -> Option<Method> {
    let options = match Method::from_name(method, &MethodOptions::new()).ok()? {
        Method::RejectionAbc { .. } => MethodOptions::new()
            .with("quantile", 100.0 / budget as f64)
            .with("kde", "cv"),
        Method::SmcAbc { .. } => MethodOptions::new()
            .with(
                "population_size",
                if budget > 10_000 { 1000.0 } else { 100.0 },
            )
            .with("epsilon_quantile", 0.2)
            .with("kernel_scale", 0.5)
            .with("kde", "cv"),
        _ => return None,
    };
    Some(Method::from_name(method, &options).expect("sbibm's ABC settings are valid"))
}
