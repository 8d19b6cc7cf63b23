//! FMPE and NPSE (VE and VP): learning an analytic conditional Gaussian, normalised
//! densities that agree with the ODE sampler, calibrated posteriors (ranks of the truth
//! among posterior draws) on a conjugate model, persistence and errors.

mod common;

use common::{normal, rng};
use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, EstimatorKind, NoObserver, TrainConfig,
};

const KINDS: [EstimatorKind; 3] = [
    EstimatorKind::Fmpe,
    EstimatorKind::NpseVe,
    EstimatorKind::NpseVp,
];

/// theta | x ~ N(M x + b, S), x ~ N(0, I_2); d = 1 or 2.
fn linear_gaussian(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let (mut theta, mut x) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let xs = [normal(&mut r), normal(&mut r)];
        let m = mean_of(&xs);
        let e = [normal(&mut r), normal(&mut r)];
        let l = chol();
        theta.push(m[0] + l[0][0] * e[0]);
        if d == 2 {
            theta.push(m[1] + l[1][0] * e[0] + l[1][1] * e[1]);
        }
        x.extend(xs);
    }
    (theta, x)
}

fn mean_of(x: &[f64]) -> [f64; 2] {
    [x[0] + 0.5 * x[1] + 0.5, -0.3 * x[0] + 0.8 * x[1] - 1.0]
}

/// Cholesky factor of [[0.25, 0.1], [0.1, 0.16]].
fn chol() -> [[f64; 2]; 2] {
    let l10 = 0.1 / 0.5;
    [[0.5, 0.0], [l10, (0.16f64 - l10 * l10).sqrt()]]
}

fn true_log_prob(t: &[f64], x: &[f64]) -> f64 {
    let m = mean_of(x);
    let l = chol();
    let d = t.len();
    let mut y = [0.0; 2];
    let mut logdet = 0.0;
    for i in 0..d {
        let s: f64 = (0..i).map(|j| l[i][j] * y[j]).sum();
        y[i] = (t[i] - m[i] - s) / l[i][i];
        logdet += l[i][i].ln();
    }
    -0.5 * y[..d].iter().map(|v| v * v).sum::<f64>()
        - logdet
        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// Monte Carlo KL(p || q) averaged over three contexts.
fn kl(q: &ConditionalEstimator, d: usize, n: usize) -> f64 {
    let mut r = rng(99);
    let contexts = [[0.0, 0.0], [1.0, -0.5], [-1.2, 0.7]];
    let l = chol();
    let mut total = 0.0;
    for x in contexts {
        let m = mean_of(&x);
        let mut draws = Vec::with_capacity(n * d);
        for _ in 0..n {
            let e = [normal(&mut r), normal(&mut r)];
            draws.push(m[0] + l[0][0] * e[0]);
            if d == 2 {
                draws.push(m[1] + l[1][0] * e[0] + l[1][1] * e[1]);
            }
        }
        let lq = q.log_prob(&draws, &x).unwrap();
        let lp: f64 = draws.chunks(d).map(|t| true_log_prob(t, &x)).sum();
        total += (lp - lq.iter().sum::<f64>()) / n as f64;
    }
    total / contexts.len() as f64
}

fn train_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        max_epochs: Some(epochs),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    }
}

fn trained(kind: EstimatorKind, d: usize, n: usize, epochs: usize) -> ConditionalEstimator {
    let (theta, x) = linear_gaussian(n, d, 5);
    let mut q =
        ConditionalEstimator::new(&EstimatorConfig::for_kind(kind), &theta, &x, d, 2, 1).unwrap();
    let t = std::time::Instant::now();
    let rep = q
        .train(&theta, &x, &train_cfg(epochs), &mut NoObserver)
        .unwrap();
    eprintln!(
        "{kind:?} d={d}: {} epochs in {:.2?}, best validation loss {:.4}",
        rep.epochs,
        t.elapsed(),
        rep.best_val_loss
    );
    q
}

#[test]
fn each_kind_learns_a_conditional_gaussian() {
    for kind in KINDS {
        for d in [2, 1] {
            let q = trained(kind, d, 3000, 30);
            let t = std::time::Instant::now();
            let k = kl(&q, d, 1000);
            eprintln!("{kind:?} d={d}: KL {k:.4} ({:.2?})", t.elapsed());
            // Moments of ODE samples at one context against the analytic posterior.
            let x = [1.0, -0.5];
            let s = q.sample(4000, &x, 3).unwrap();
            let m = mean_of(&x);
            for i in 0..d {
                let col: Vec<f64> = s.iter().skip(i).step_by(d).copied().collect();
                let mean = col.iter().sum::<f64>() / col.len() as f64;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
                let tv = [0.25, 0.16][i];
                eprintln!(
                    "  dim {i}: mean {mean:.3} vs {:.3}, var {var:.4} vs {tv}",
                    m[i]
                );
            }
        }
    }
}

#[test]
#[ignore]
fn profile_log_prob() {
    for kind in KINDS {
        let mut q = trained(kind, 2, 3000, 30);
        let (theta, _) = linear_gaussian(300, 2, 8);
        let x = [1.0, -0.5];
        q.set_ode_steps(400).unwrap();
        let reference = q.log_prob(&theta, &x).unwrap();
        let rs = q.sample(2000, &x, 1).unwrap();
        for steps in [5, 10, 20, 50] {
            q.set_ode_steps(steps).unwrap();
            let t = std::time::Instant::now();
            let lp = q.log_prob(&theta, &x).unwrap();
            let tl = t.elapsed();
            let t = std::time::Instant::now();
            let s = q.sample(2000, &x, 1).unwrap();
            let ts = t.elapsed();
            let e = lp
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let es = s
                .iter()
                .zip(&rs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            eprintln!(
                "{kind:?} steps {steps}: max |dlogp| {e:.5}, max |dsample| {es:.5}; log_prob 300 {tl:.2?}, sample 2000 {ts:.2?}"
            );
        }
    }
}
