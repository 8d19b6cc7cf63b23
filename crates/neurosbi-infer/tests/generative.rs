//! NPE with the vector-field estimators of neurosbi-flows (FMPE, NPSE-VE, NPSE-VP) on
//! sbibm's gaussian_linear at 10 000 simulations: C2ST against the analytic posterior below
//! the 0.6 and posterior means within 0.1. The CI arms cap training at 60 epochs
//! (each trained to its best validation loss before the cap on the seeds here); the ignored
//! arms train with sbi's budget (no epoch cap, stop after 20 epochs without improvement):
//! `cargo test --release -p neurosbi-infer --test generative -- --ignored --nocapture`.

mod common;

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::Task;
use neurosbi_infer::train_npe;
use std::time::Instant;

fn c2st_on_gaussian_linear(
    cfg: &EstimatorConfig,
    max_epochs: Option<usize>,
    patience: usize,
) -> f64 {
    let t0 = Instant::now();
    let (task, prior, sims) = common::gaussian_linear_simulations(10_000);
    let train = TrainConfig {
        max_epochs,
        stop_after_epochs: patience,
        seed: 3,
        ..Default::default()
    };
    let (post, rep) = train_npe(
        prior,
        &sims.theta,
        &sims.x,
        10,
        cfg,
        &train,
        &mut NoObserver,
    )
    .unwrap();
    eprintln!(
        "{:?}: trained {} epochs in {:.1}s",
        cfg.kind,
        rep.epochs,
        t0.elapsed().as_secs_f64()
    );
    let x_o = task.observation(1).unwrap();
    let n = 2000;
    let t1 = Instant::now();
    let draws = post.sample(n, &x_o, 7).unwrap();
    eprintln!("sampled {n} in {:.1}s", t1.elapsed().as_secs_f64());
    let reference = task.reference_posterior(&x_o, n, 8).unwrap();
    let (mean, _) = task.posterior_mean_var(&x_o);
    for k in 0..10 {
        let m = draws.theta.chunks(10).map(|r| r[k]).sum::<f64>() / n as f64;
        assert!(
            (m - mean[k]).abs() < 0.1,
            "dim {k}: mean {m} vs {}",
            mean[k]
        );
    }
    let acc = c2st(
        &reference,
        &draws.theta,
        10,
        &C2stConfig {
            max_epochs: 60,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("{:?}: c2st {acc:.3}", cfg.kind);
    acc
}

// Measured C2ST of the CI arms (seed 3): FMPE 0.585, NPSE-VE 0.554, NPSE-VP 0.580.
#[test]
fn fmpe_on_gaussian_linear_meets_the_c2st_bound() {
    let acc = c2st_on_gaussian_linear(&EstimatorConfig::fmpe(), Some(60), 20);
    assert!(acc < 0.6, "c2st {acc}");
}

#[test]
fn npse_ve_on_gaussian_linear_meets_the_c2st_bound() {
    let acc = c2st_on_gaussian_linear(&EstimatorConfig::npse_ve(), Some(60), 20);
    assert!(acc < 0.6, "c2st {acc}");
}

#[test]
fn npse_vp_on_gaussian_linear_meets_the_c2st_bound() {
    let acc = c2st_on_gaussian_linear(&EstimatorConfig::npse_vp(), Some(60), 20);
    assert!(acc < 0.6, "c2st {acc}");
}

/// sbi's training budget. Measured (release): NPSE-VE stopped after 66 epochs, C2ST 0.554;
/// NPSE-VP after 62, 0.580 (the same as the capped arms: both peak before epoch 60).
#[test]
#[ignore = "minutes in the dev profile; run with --release --ignored"]
fn npse_with_sbi_training_budget_meets_the_c2st_bound() {
    for cfg in [EstimatorConfig::npse_ve(), EstimatorConfig::npse_vp()] {
        let acc = c2st_on_gaussian_linear(&cfg, None, 20);
        assert!(acc < 0.6, "{:?}: c2st {acc}", cfg.kind);
    }
}
