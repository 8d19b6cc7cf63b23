//! Training and sampling speed of the default MAF and NSF on two-moons (sbibm's simulator),
//! 10 000 pairs, sbi's default training settings.
//!
//! Prints seconds per epoch and total training seconds for a full run (early stopping, at
//! most `NEUROSBI_BENCH_MAX_EPOCHS` epochs, default 400), then lets criterion time one
//! training epoch of each flow and drawing 10 000 samples from the trained MAF.
//! sbi 0.27 on this kind of machine (REFERENCE.md): ~0.32 s per MAF epoch, 0.99 s per NSF
//! epoch, 10 000 draws in 0.035-0.15 s.

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig, TrainObserver,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// sbibm two_moons: theta ~ U(-1, 1)^2, x = (r cos a + 0.25, r sin a) +
/// (-|theta0 + theta1| / sqrt 2, (-theta0 + theta1) / sqrt 2), a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01).
fn two_moons(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let radius = Normal::new(0.1, 0.01).unwrap();
    let (mut theta, mut x) = (Vec::with_capacity(2 * n), Vec::with_capacity(2 * n));
    for _ in 0..n {
        let t0 = rng.random::<f64>() * 2.0 - 1.0;
        let t1 = rng.random::<f64>() * 2.0 - 1.0;
        let a = (rng.random::<f64>() - 0.5) * std::f64::consts::PI;
        let r = radius.sample(&mut rng);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        theta.extend([t0, t1]);
        x.extend([
            r * a.cos() + 0.25 - (t0 + t1).abs() * s,
            r * a.sin() + (-t0 + t1) * s,
        ]);
    }
    (theta, x)
}

struct Timer(Instant, Vec<f64>);

impl TrainObserver for Timer {
    fn on_epoch(&mut self, _epoch: usize, _train: f64, _val: f64) {
        self.1.push(self.0.elapsed().as_secs_f64());
    }
}

fn full_run(name: &str, cfg: &EstimatorConfig, theta: &[f64], x: &[f64]) -> ConditionalEstimator {
    let max_epochs = std::env::var("NEUROSBI_BENCH_MAX_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // Posterior estimation: inputs theta, context x.
    let mut q = ConditionalEstimator::new(cfg, theta, x, 2, 2, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(max_epochs),
        ..TrainConfig::default()
    };
    let mut timer = Timer(Instant::now(), Vec::new());
    let rep = q.train(theta, x, &tc, &mut timer).unwrap();
    let total = timer.0.elapsed().as_secs_f64();
    println!(
        "{name}: {} epochs, {:.3} s per epoch, {:.1} s in all, best validation loss {:.4}",
        rep.epochs,
        total / rep.epochs as f64,
        total,
        rep.best_val_loss
    );
    q
}

fn bench(c: &mut Criterion) {
    let (theta, x) = two_moons(10_000, 1);
    let maf = full_run("MAF", &EstimatorConfig::maf(), &theta, &x);
    if std::env::var("NEUROSBI_BENCH_SKIP_NSF").is_err() {
        full_run("NSF", &EstimatorConfig::nsf(), &theta, &x);
    }
    let mut g = c.benchmark_group("flows");
    g.sample_size(10);
    for (name, cfg) in [
        ("maf_epoch_10k", EstimatorConfig::maf()),
        ("nsf_epoch_10k", EstimatorConfig::nsf()),
    ] {
        let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 0).unwrap();
        let tc = TrainConfig {
            max_epochs: Some(1),
            ..TrainConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| q.train(&theta, &x, &tc, &mut NoObserver).unwrap())
        });
    }
    let obs = [0.0, 0.0];
    g.bench_function("maf_sample_10k", |b| {
        b.iter(|| maf.sample(10_000, &obs, 0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
