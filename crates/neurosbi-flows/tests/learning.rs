//! Each estimator learns an analytic conditional Gaussian.

mod common;

use common::{config, normal, rng};
use neurosbi_flows::{ConditionalEstimator, EstimatorKind, NoObserver, TrainConfig};

/// theta | x ~ N(M x + b, S) with x ~ N(0, I); returns (theta, x) for n pairs.
fn linear_gaussian(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let (mut theta, mut x) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let xs: Vec<f64> = (0..2).map(|_| normal(&mut r)).collect();
        let mean = mean_of(&xs, d);
        let e: Vec<f64> = (0..d).map(|_| normal(&mut r)).collect();
        let chol = chol_of(d);
        for i in 0..d {
            let noise: f64 = (0..=i).map(|j| chol[i][j] * e[j]).sum();
            theta.push(mean[i] + noise);
        }
        x.extend(xs);
    }
    (theta, x)
}

fn mean_of(x: &[f64], d: usize) -> Vec<f64> {
    let m = [x[0] + 0.5 * x[1] + 0.5, -0.3 * x[0] + 0.8 * x[1] - 1.0];
    m[..d].to_vec()
}

/// Cholesky factor of the covariance [[0.25, 0.1], [0.1, 0.16]] (or its 1-D corner).
fn chol_of(d: usize) -> Vec<Vec<f64>> {
    if d == 1 {
        return vec![vec![0.5]];
    }
    let l00: f64 = 0.5;
    let l10 = 0.1 / l00;
    let l11 = (0.16 - l10 * l10).sqrt();
    vec![vec![l00, 0.0], vec![l10, l11]]
}

fn true_log_prob(theta: &[f64], x: &[f64], d: usize) -> f64 {
    let m = mean_of(x, d);
    let l = chol_of(d);
    // Solve L y = theta - m.
    let mut y = vec![0.0; d];
    let mut logdet = 0.0;
    for i in 0..d {
        let s: f64 = (0..i).map(|j| l[i][j] * y[j]).sum();
        y[i] = (theta[i] - m[i] - s) / l[i][i];
        logdet += l[i][i].ln();
    }
    -0.5 * y.iter().map(|v| v * v).sum::<f64>()
        - logdet
        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// Monte Carlo KL(p || q) averaged over a few contexts.
fn kl(q: &ConditionalEstimator, d: usize) -> f64 {
    let mut r = rng(99);
    let contexts = [[0.0, 0.0], [1.0, -0.5], [-1.2, 0.7], [0.4, 1.5]];
    let mut total = 0.0;
    let n = 4000;
    for x in contexts {
        let m = mean_of(&x, d);
        let l = chol_of(d);
        let mut draws = Vec::with_capacity(n * d);
        for _ in 0..n {
            let e: Vec<f64> = (0..d).map(|_| normal(&mut r)).collect();
            for i in 0..d {
                draws.push(m[i] + (0..=i).map(|j| l[i][j] * e[j]).sum::<f64>());
            }
        }
        let lq = q.log_prob(&draws, &x).unwrap();
        let lp: f64 = draws
            .chunks(d)
            .map(|t| true_log_prob(t, &x, d))
            .sum::<f64>();
        total += (lp - lq.iter().sum::<f64>()) / n as f64;
    }
    total / contexts.len() as f64
}

fn learn(kind: EstimatorKind, d: usize, bound: f64) {
    let (theta, x) = linear_gaussian(3000, d, 5);
    let mut q = ConditionalEstimator::new(&config(kind), &theta, &x, d, 2, 1).unwrap();
    let before = kl(&q, d);
    let cfg = TrainConfig {
        max_epochs: Some(40),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    let t = std::time::Instant::now();
    let report = q.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
    let after = kl(&q, d);
    eprintln!(
        "{kind:?} d={d}: KL {before:.3} -> {after:.4} in {} epochs, {:.2?}",
        report.epochs,
        t.elapsed()
    );
    assert!(
        after < bound,
        "{kind:?} d={d}: KL {after} not below {bound}"
    );
}

#[test]
fn maf_learns_a_conditional_gaussian() {
    learn(EstimatorKind::Maf, 2, 0.05);
    learn(EstimatorKind::Maf, 1, 0.05);
}

#[test]
fn nsf_learns_a_conditional_gaussian() {
    learn(EstimatorKind::Nsf, 2, 0.1);
    learn(EstimatorKind::Nsf, 1, 0.1);
}

#[test]
fn mdn_learns_a_conditional_gaussian() {
    learn(EstimatorKind::Mdn, 2, 0.05);
    learn(EstimatorKind::Mdn, 1, 0.05);
}
