//! End-to-end NPE on two_moons: simulate 10 000, train sbi's default estimator, draw 10 000
//! posterior samples; prints wall seconds per phase (the speed target: < 20 s on a
//! 2-core machine) and the C2ST of the result against the exact reference on observation 1.
//!
//! With E2E_NLE=1 it also times the MCMC target: NLE on slcp (5-D), 10 000 simulations,
//! then 10 000 slice-sampler draws (20 chains, 200 warm-up), with R-hat and C2ST against the
//! reference.
//!
//! `cargo bench -p neurosbi-infer --bench e2e` (env: E2E_ESTIMATOR=maf|nsf|mdn, default maf;
//! E2E_SEED; E2E_NLE).

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::{Slcp, Task, TwoMoons};
use neurosbi_infer::{FromPrior, Prior, Quiet, RunConfig, simulate, train_nle, train_npe};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let kind = std::env::var("E2E_ESTIMATOR").unwrap_or_else(|_| "maf".into());
    let seed: u64 = std::env::var("E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Separate seeds for simulation and training (default: both E2E_SEED), to tell data from
    // optimisation when a seed misbehaves.
    let env_seed = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed)
    };
    let sim_seed: u64 = env_seed("E2E_SIM_SEED");
    let train_seed: u64 = env_seed("E2E_TRAIN_SEED");
    let est = match kind.as_str() {
        "nsf" => EstimatorConfig::nsf(),
        "mdn" => EstimatorConfig::mdn(),
        _ => EstimatorConfig::maf(),
    };
    let task = TwoMoons::new();
    let prior: Arc<dyn Prior> = Arc::from(
        task.prior()
            .spec()
            .expect("built-in prior")
            .build()
            .expect("valid"),
    );
    let x_o = task.observation(1).expect("observation 1");

    let t0 = Instant::now();
    let sims = simulate(
        &task,
        &FromPrior(prior.as_ref()),
        10_000,
        &RunConfig {
            seed: sim_seed,
            ..Default::default()
        },
        &mut Quiet,
    )
    .expect("simulation");
    let t_sim = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let train = TrainConfig {
        seed: train_seed,
        ..Default::default()
    };
    let (post, rep) = train_npe(
        prior,
        &sims.theta,
        &sims.x,
        2,
        &est,
        &train,
        &mut NoObserver,
    )
    .expect("training");
    let t_train = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let draws = post.sample(10_000, &x_o, seed).expect("sampling");
    let t_sample = t2.elapsed().as_secs_f64();
    let total = t0.elapsed().as_secs_f64();
    println!(
        "e2e two_moons NPE ({kind}): simulate {t_sim:.3} s, train {t_train:.2} s ({} epochs), sample 10000 {t_sample:.3} s, total {total:.2} s; best validation loss {:.4}",
        rep.epochs, rep.best_val_loss
    );
    let reference = task
        .reference_posterior(&x_o, 10_000, 1)
        .expect("reference");
    let acc = c2st(&reference, &draws.theta, 2, &C2stConfig::default()).expect("c2st");
    println!(
        "e2e two_moons NPE ({kind}): C2ST vs exact reference (observation 1) = {acc:.3}; acceptance {:.4}",
        draws.acceptance_rate
    );

    if std::env::var("E2E_NLE").is_ok_and(|v| v == "1") {
        nle_slcp(seed);
    }
}

fn nle_slcp(seed: u64) {
    let task = Slcp::new();
    let prior: Arc<dyn Prior> = Arc::from(
        task.prior()
            .spec()
            .expect("built-in prior")
            .build()
            .expect("valid"),
    );
    let x_o = task.observation(1).expect("observation 1");
    let sims = simulate(
        &task,
        &FromPrior(prior.as_ref()),
        10_000,
        &RunConfig {
            seed,
            ..Default::default()
        },
        &mut Quiet,
    )
    .expect("simulation");
    let t1 = Instant::now();
    let train = TrainConfig {
        seed,
        ..Default::default()
    };
    let (post, rep) = train_nle(
        prior,
        &sims.theta,
        &sims.x,
        8,
        &EstimatorConfig::maf(),
        &train,
        &mut NoObserver,
    )
    .expect("training");
    let t_train = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let draws = post.sample(10_000, &x_o, seed).expect("mcmc");
    let t_mcmc = t2.elapsed().as_secs_f64();
    let reference = task
        .reference_posterior(&x_o, 10_000, 1)
        .expect("reference");
    let acc = c2st(&reference, &draws.theta, 5, &C2stConfig::default()).expect("c2st");
    println!(
        "nle slcp (maf): train {t_train:.1} s ({} epochs), MCMC 10000 draws {t_mcmc:.2} s, max R-hat {:.3}, C2ST {acc:.3}",
        rep.epochs,
        draws
            .rhat
            .unwrap_or_default()
            .iter()
            .cloned()
            .fold(0.0, f64::max)
    );
}
