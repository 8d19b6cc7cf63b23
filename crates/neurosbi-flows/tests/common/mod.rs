//! Shared helpers for the integration tests.
#![allow(dead_code)]

use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, EstimatorKind, NoObserver, TrainConfig,
};
use rand::{RngExt, SeedableRng};
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

/// sbibm's two moons: theta ~ U(-1, 1)^2, x = moon(r, a) shifted by a rotation of theta.
pub fn two_moons(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let (mut theta, mut x) = (Vec::with_capacity(2 * n), Vec::with_capacity(2 * n));
    for _ in 0..n {
        let (t0, t1): (f64, f64) = (r.random_range(-1.0..1.0), r.random_range(-1.0..1.0));
        let a: f64 = r.random_range(-std::f64::consts::FRAC_PI_2..std::f64::consts::FRAC_PI_2);
        let noise: f64 = StandardNormal.sample(&mut r);
        let rad = 0.1 + 0.01 * noise;
        let (px, py) = (rad * a.cos() + 0.25, rad * a.sin());
        let s = std::f64::consts::FRAC_1_SQRT_2;
        theta.extend([t0, t1]);
        x.extend([px - (t0 + t1).abs() * s, py + (-t0 + t1) * s]);
    }
    (theta, x)
}

/// Relative errors `|a - r| / max(|r|, 1)` of f32 log densities `a` against the f64
/// reference `r`: (largest, mean).
pub fn f32_error(a: &[f64], r: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), r.len());
    let e: Vec<f64> = a
        .iter()
        .zip(r)
        .map(|(a, r)| (a - r).abs() / r.abs().max(1.0))
        .collect();
    let max = e.iter().copied().fold(0.0, f64::max);
    (max, e.iter().sum::<f64>() / e.len() as f64)
}

/// `q`'s log densities computed in f64 from its (f32) weights.
pub fn f64_log_prob(q: &ConditionalEstimator, inputs: &[f64], context: &[f64]) -> Vec<f64> {
    let r = q.f64_reference().expect("f64 reference");
    let dev = neurosbi_flows::candle_core::Device::Cpu;
    let t = |v: &[f64], d: usize| {
        neurosbi_flows::candle_core::Tensor::from_vec(v.to_vec(), (v.len() / d, d), &dev).unwrap()
    };
    let (di, dc) = (q.dim_inputs(), q.dim_context());
    r.log_prob_tensor(&t(inputs, di), &t(context, dc))
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}
