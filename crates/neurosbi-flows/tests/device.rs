//! Moving models between devices, checked on the CPU (runs without a GPU): a moved copy is
//! an exact, independent twin.

use neurosbi_flows::candle_core::Device;
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EmbeddingConfig, EstimatorConfig, NoObserver,
    RatioClassifier, TrainConfig, device_from_name, losses,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// theta (2-D) | x (2-D): a curved, correlated target.
fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut g = || -> f64 { StandardNormal.sample(&mut r) };
    let (mut theta, mut x) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (c0, c1) = (g(), g());
        let t0 = 0.8 * c0 + 0.3 * g();
        theta.extend([t0, 0.5 * t0 * t0 - c1 + 0.2 * g()]);
        x.extend([c0, c1]);
    }
    (theta, x)
}

fn train_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        max_epochs: Some(epochs),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    }
}

#[test]
fn to_cpu_copy_is_identical_and_independent() {
    let (theta, x) = data(1500, 1);
    let (t_eval, x_eval) = data(200, 2);
    let mut fc = EstimatorConfig::maf();
    fc.embedding = Some(EmbeddingConfig::FullyConnected {
        hidden_features: 16,
        num_layers: 2,
        output_dim: 4,
    });
    for cfg in [
        EstimatorConfig::maf(),
        EstimatorConfig::nsf(),
        EstimatorConfig::mdn(),
        fc,
    ] {
        let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 5).unwrap();
        q.train(&theta, &x, &train_cfg(1), &mut NoObserver).unwrap();
        let before = q.log_prob(&t_eval, &x_eval).unwrap();
        let mut moved = q.to_device(&Device::Cpu).unwrap();
        assert!(moved.device().is_cpu());
        assert_eq!(moved.config(), q.config());
        assert_eq!(moved.num_parameters(), q.num_parameters());
        assert_eq!(
            moved.log_prob(&t_eval, &x_eval).unwrap(),
            before,
            "{:?}",
            cfg.kind
        );
        assert_eq!(
            moved.sample(50, &[0.3, -0.2], 9).unwrap(),
            q.sample(50, &[0.3, -0.2], 9).unwrap()
        );
        // Training the copy must leave the original untouched (no shared storage).
        let r = moved
            .train(&theta, &x, &train_cfg(2), &mut NoObserver)
            .unwrap();
        assert!(r.train_losses.iter().all(|l| l.is_finite()));
        assert_ne!(moved.log_prob(&t_eval, &x_eval).unwrap(), before);
        assert_eq!(q.log_prob(&t_eval, &x_eval).unwrap(), before);
    }
}

#[test]
fn classifier_to_cpu_copy_is_identical() {
    let (theta, x) = data(800, 3);
    let mut c = RatioClassifier::new(&ClassifierConfig::mlp(), &theta, &x, 2, 2, 4).unwrap();
    c.train_with_loss(&theta, &x, &train_cfg(1), &mut NoObserver, &|s, t, xb| {
        losses::nre_a_loss(s, t, xb)
    })
    .unwrap();
    let moved = c.to_device(&Device::Cpu).unwrap();
    assert!(moved.device().is_cpu());
    assert_eq!(
        moved.logits(&theta, &x).unwrap(),
        c.logits(&theta, &x).unwrap()
    );
}

#[test]
fn device_names() {
    assert!(device_from_name("cpu").unwrap().is_cpu());
    let e = device_from_name("opencl").unwrap_err().to_string();
    assert!(e.contains("unknown device \"opencl\""), "{e}");
    if cfg!(not(feature = "cuda")) {
        let e = device_from_name("cuda:0").unwrap_err().to_string();
        assert!(e.contains("`cuda` feature"), "{e}");
    }
}

#[test]
fn training_device_in_the_config_trains_there_and_returns_the_model() {
    let (theta, x) = data(800, 5);
    let (t_eval, x_eval) = data(100, 6);
    let cfg = EstimatorConfig::maf();
    let mut plain = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 3).unwrap();
    let mut via = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 3).unwrap();
    let a = plain
        .train(&theta, &x, &train_cfg(3), &mut NoObserver)
        .unwrap();
    let on_cpu = TrainConfig {
        device: Some("cpu".into()),
        ..train_cfg(3)
    };
    let b = via.train(&theta, &x, &on_cpu, &mut NoObserver).unwrap();
    assert_eq!(a.val_losses, b.val_losses);
    assert_eq!(
        plain.log_prob(&t_eval, &x_eval).unwrap(),
        via.log_prob(&t_eval, &x_eval).unwrap()
    );
    assert!(via.device().is_cpu());
    // A device this build cannot open is an error that names it; the model is untouched.
    let before = via.log_prob(&t_eval, &x_eval).unwrap();
    for name in ["cuda", "tpu"] {
        let bad = TrainConfig {
            device: Some(name.into()),
            ..train_cfg(1)
        };
        if name == "cuda" && device_from_name("cuda").is_ok() {
            continue; // a GPU build on a GPU machine trains there: covered by tests/cuda.rs
        }
        let e = via
            .train(&theta, &x, &bad, &mut NoObserver)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name), "{e}");
    }
    assert_eq!(before, via.log_prob(&t_eval, &x_eval).unwrap());
}
