//! Shared helpers for the integration tests.
#![allow(dead_code)]

use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, EstimatorKind, NoObserver, TrainConfig,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

pub fn config(kind: EstimatorKind) -> EstimatorConfig {
    match kind {
        EstimatorKind::Maf => EstimatorConfig::maf(),
        EstimatorKind::Nsf => EstimatorConfig::nsf(),
        EstimatorKind::Mdn => EstimatorConfig::mdn(),
        other => EstimatorConfig::for_kind(other),
    }
}

/// A bimodal, skewed target in `d` (1 or 2) dimensions given a 1-D context, so that the
/// trained densities are far from Gaussian.
pub fn bimodal(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let mut theta = Vec::with_capacity(n * d);
    let mut x = Vec::with_capacity(n);
    for _ in 0..n {
        let c = normal(&mut r);
        let mode = if normal(&mut r) > 0.0 { 1.5 } else { -1.0 };
        let t0 = mode + 0.3 * c + 0.4 * normal(&mut r);
        theta.push(t0);
        if d == 2 {
            theta.push(0.5 * t0 * t0 - 0.5 + 0.3 * normal(&mut r));
        }
        x.push(c);
    }
    (theta, x)
}

/// An estimator of `kind` trained briefly on [`bimodal`] data.
pub fn trained_bimodal(kind: EstimatorKind, d: usize, epochs: usize) -> ConditionalEstimator {
    let (theta, x) = bimodal(2000, d, 11);
    let mut q = ConditionalEstimator::new(&config(kind), &theta, &x, d, 1, 3).unwrap();
    let cfg = TrainConfig {
        max_epochs: Some(epochs),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    q.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
    q
}
