//! Ratio classifiers learn the likelihood-to-evidence ratio; embeddings train jointly.

mod common;

use common::{normal, rng};
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EmbeddingConfig, EstimatorConfig, NoObserver,
    RatioClassifier, TrainConfig, losses,
};

/// theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2).
fn pairs(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let theta: Vec<f64> = (0..n).map(|_| normal(&mut r)).collect();
    let x = theta.iter().map(|t| t + 0.5 * normal(&mut r)).collect();
    (theta, x)
}

/// Pearson correlation between learned logit differences and true log-likelihood
/// differences over a grid of theta pairs at fixed x: for a Bayes-optimal classifier the
/// logits equal log r(theta, x) up to a function of x, which cancels.
fn ratio_agreement(c: &RatioClassifier) -> f64 {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in [-1.0, 0.0, 0.8] {
        let thetas: Vec<f64> = (0..41).map(|i| -2.0 + 0.1 * i as f64).collect();
        let l = c.logits(&thetas, &[x]).unwrap();
        for i in 0..thetas.len() {
            let truth =
                -(x - thetas[i]).powi(2) / (2.0 * 0.25) + (x - thetas[0]).powi(2) / (2.0 * 0.25);
            a.push(l[i] - l[0]);
            b.push(truth);
        }
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn nre_a_and_nre_b_learn_the_log_ratio() {
    let (theta, x) = pairs(3000, 1);
    let tc = TrainConfig {
        max_epochs: Some(30),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    for (cfg, b) in [
        (ClassifierConfig::mlp(), false),
        (ClassifierConfig::residual(), true),
    ] {
        let mut c = RatioClassifier::new(&cfg, &theta, &x, 1, 1, 2).unwrap();
        let before = ratio_agreement(&c);
        let rep = if b {
            c.train_with_loss(&theta, &x, &tc, &mut NoObserver, &|c, t, x| {
                losses::nre_b_loss(c, t, x, 10)
            })
        } else {
            c.train_with_loss(&theta, &x, &tc, &mut NoObserver, &|c, t, x| {
                losses::nre_a_loss(c, t, x)
            })
        }
        .unwrap();
        let after = ratio_agreement(&c);
        eprintln!(
            "{:?} NRE-{}: correlation {before:.3} -> {after:.4}, val {:.4}",
            cfg.kind,
            if b { "B" } else { "A" },
            rep.best_val_loss
        );
        assert!(after > 0.95, "correlation {after}");
        // Chance levels: NRE-A BCE ln 2; NRE-B cross-entropy ln 10.
        let chance = if b { 10f64.ln() } else { 2f64.ln() };
        assert!(
            rep.best_val_loss < 0.8 * chance,
            "val loss {} vs chance {chance}",
            rep.best_val_loss
        );
    }
}

#[test]
fn nre_losses_match_their_definitions() {
    let (theta, x) = pairs(50, 3);
    let c = RatioClassifier::new(&ClassifierConfig::mlp(), &theta, &x, 1, 1, 0).unwrap();
    let t = |v: &[f64]| {
        neurosbi_flows::candle_core::Tensor::from_vec(
            v.iter().map(|&a| a as f32).collect::<Vec<_>>(),
            (v.len(), 1),
            &neurosbi_flows::candle_core::Device::Cpu,
        )
        .unwrap()
    };
    let (tt, xt) = (t(&theta[..8]), t(&x[..8]));
    let l = |th: &[f64], xs: &[f64]| c.logits(th, xs).unwrap();
    let joint = l(&theta[..8], &x[..8]);
    let shifted: Vec<f64> = (0..8).map(|i| theta[(i + 1) % 8]).collect();
    let marg = l(&shifted, &x[..8]);
    let sp = |z: f64| (1.0 + z.exp()).ln();
    let want_a = (joint.iter().map(|&z| sp(-z)).sum::<f64>()
        + marg.iter().map(|&z| sp(z)).sum::<f64>())
        / 16.0;
    let got_a = losses::nre_a_loss(&c, &tt, &xt)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((got_a - want_a).abs() < 1e-5, "{got_a} vs {want_a}");
    let k = 3;
    let mut want_b = 0.0;
    for i in 0..8 {
        let ls: Vec<f64> = (0..k)
            .map(|j| l(&[theta[(i + j) % 8]], &[x[i]])[0])
            .collect();
        let m = ls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + ls.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        want_b -= (ls[0] - lse) / 8.0;
    }
    let got_b = losses::nre_b_loss(&c, &tt, &xt, k)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((got_b - want_b).abs() < 1e-5, "{got_b} vs {want_b}");
}

/// Sets of 5 i.i.d. trials x_j ~ N(theta, 1): the posterior depends on the mean only.
fn trial_sets(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let theta: Vec<f64> = (0..n).map(|_| 2.0 * normal(&mut r)).collect();
    let x = theta
        .iter()
        .flat_map(|&t| (0..5).map(|_| t + normal(&mut r)).collect::<Vec<_>>())
        .collect();
    (theta, x)
}

#[test]
fn deep_sets_embedding_is_permutation_invariant_and_learns() {
    let (theta, x) = trial_sets(4000, 4);
    let cfg = EstimatorConfig {
        embedding: Some(EmbeddingConfig::DeepSets {
            trial_dim: 1,
            hidden_features: 20,
            trial_embedding_dim: 8,
            output_dim: 4,
        }),
        ..EstimatorConfig::mdn()
    };
    let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 1, 5, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(80),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    q.train(&theta, &x, &tc, &mut NoObserver).unwrap();
    let set = [0.3, 1.9, -0.4, 1.1, 0.8];
    let perm = [1.1, 0.3, 0.8, 1.9, -0.4];
    let grid: Vec<f64> = (0..50).map(|i| -2.0 + 0.1 * i as f64).collect();
    let a = q.log_prob(&grid, &set).unwrap();
    let b = q.log_prob(&grid, &perm).unwrap();
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-4, "{u} vs {v}");
    }
    // Analytic posterior with prior N(0, 4): precision 1/4 + 5, mean 5 xbar / precision.
    let prec = 0.25 + 5.0;
    let mean = set.iter().sum::<f64>() / prec;
    let s = q.sample(4000, &set, 1).unwrap();
    let m = s.iter().sum::<f64>() / s.len() as f64;
    let v = s.iter().map(|t| (t - m).powi(2)).sum::<f64>() / s.len() as f64;
    eprintln!(
        "deep sets: mean {m:.3} (true {mean:.3}), var {v:.4} (true {:.4})",
        1.0 / prec
    );
    assert!((m - mean).abs() < 0.1, "posterior mean {m} vs {mean}");
    assert!(
        (v * prec - 1.0).abs() < 0.25,
        "posterior variance {v} vs {}",
        1.0 / prec
    );
}

#[test]
fn fully_connected_embedding_trains_jointly() {
    let (theta, x) = trial_sets(2000, 5);
    let cfg = EstimatorConfig {
        embedding: Some(EmbeddingConfig::FullyConnected {
            hidden_features: 20,
            num_layers: 2,
            output_dim: 3,
        }),
        ..EstimatorConfig::maf()
    };
    let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 1, 5, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(25),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    let rep = q.train(&theta, &x, &tc, &mut NoObserver).unwrap();
    // Posterior sd is 0.44 on a prior sd of 2: a perfect fit has loss 0.5 ln(2 pi e / 5.25) = 0.59.
    eprintln!("fc embedding: val loss {:.3}", rep.best_val_loss);
    assert!(rep.best_val_loss < 0.8, "val loss {}", rep.best_val_loss);
}

#[test]
fn convolutional_embedding_reads_a_trace() {
    // x: a 40-sample trace, theta-scaled bump plus noise; posterior mean ~ amplitude.
    let mut r = rng(6);
    let n = 3000;
    let len = 40;
    let bump: Vec<f64> = (0..len)
        .map(|i| (-((i as f64 - 20.0) / 5.0).powi(2)).exp())
        .collect();
    let theta: Vec<f64> = (0..n).map(|_| normal(&mut r)).collect();
    let x: Vec<f64> = theta
        .iter()
        .flat_map(|&t| {
            bump.iter()
                .map(|b| t * b + 0.3 * normal(&mut r))
                .collect::<Vec<_>>()
        })
        .collect();
    let cfg = EstimatorConfig {
        embedding: Some(EmbeddingConfig::Convolutional {
            channels: 4,
            num_layers: 2,
            kernel_size: 5,
            output_dim: 4,
        }),
        ..EstimatorConfig::mdn()
    };
    let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 1, len, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(60),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    let rep = q.train(&theta, &x, &tc, &mut NoObserver).unwrap();
    // Matched filter: sum(bump^2) / 0.09 is the likelihood precision of theta.
    let prec = 1.0 + bump.iter().map(|b| b * b).sum::<f64>() / 0.09;
    let perfect = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E / prec).ln();
    eprintln!(
        "conv embedding: val loss {:.3}, ideal {perfect:.3}",
        rep.best_val_loss
    );
    // Ignoring x entirely would give the prior's entropy, 1.42.
    assert!(
        rep.best_val_loss < perfect + 0.15,
        "val loss {} vs ideal {perfect}",
        rep.best_val_loss
    );
}
