//! Behaviour of the training loop and input validation.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{bimodal, config};
use neurosbi_flows::{
    ConditionalEstimator, EmbeddingConfig, EstimatorConfig, EstimatorKind, FlowError, NoObserver,
    RatioClassifier, TrainConfig, TrainObserver,
};

#[derive(Default)]
struct Record(Vec<(usize, f64, f64)>);

impl TrainObserver for Record {
    fn on_epoch(&mut self, epoch: usize, train_loss: f64, val_loss: f64) {
        self.0.push((epoch, train_loss, val_loss));
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ConditionalEstimator>();
    check::<RatioClassifier>();
    check::<FlowError>();
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (theta, x) = bimodal(800, 2, 1);
    let run = |seed: u64| {
        let mut q =
            ConditionalEstimator::new(&EstimatorConfig::maf(), &theta, &x, 2, 1, seed).unwrap();
        let cfg = TrainConfig {
            max_epochs: Some(3),
            seed,
            ..TrainConfig::default()
        };
        let rep = q.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        (
            rep.train_losses,
            q.log_prob(&theta[..20], &x[..10]).unwrap(),
        )
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a.0, run(2).0);
}

#[test]
fn observer_sees_every_epoch_and_early_stopping_keeps_the_best() {
    let (theta, x) = bimodal(1000, 1, 2);
    let mut q = ConditionalEstimator::new(&EstimatorConfig::mdn(), &theta, &x, 1, 1, 0).unwrap();
    // A large learning rate makes the validation loss stall quickly.
    let cfg = TrainConfig {
        learning_rate: 3e-2,
        stop_after_epochs: 3,
        max_epochs: Some(200),
        ..TrainConfig::default()
    };
    let mut rec = Record::default();
    let rep = q.train(&theta, &x, &cfg, &mut rec).unwrap();
    assert_eq!(rec.0.len(), rep.epochs);
    assert!(rec.0.iter().enumerate().all(|(i, r)| r.0 == i + 1));
    assert_eq!(
        rec.0.iter().map(|r| r.2).collect::<Vec<_>>(),
        rep.val_losses
    );
    let (best_i, best) = rep
        .val_losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, v)| (i, *v))
        .unwrap();
    assert_eq!(best, rep.best_val_loss);
    assert!(rep.epochs < 200, "never stopped early");
    assert_eq!(
        rep.epochs,
        best_i + 1 + 3,
        "stopped {} epochs after the best",
        rep.epochs - best_i - 1
    );
    // Resuming continues the epoch count and respects max_epochs as a total.
    let more = TrainConfig {
        resume: true,
        max_epochs: Some(rep.epochs + 2),
        ..cfg.clone()
    };
    let rep2 = q.train(&theta, &x, &more, &mut NoObserver).unwrap();
    assert_eq!(rep2.epochs, rep.epochs + 2);
    assert_eq!(rep2.val_losses[..rep.epochs], rep.val_losses[..]);
    assert!(rep2.best_val_loss <= rep.best_val_loss);
}

#[test]
fn non_finite_loss_names_the_epoch() {
    let (theta, x) = bimodal(1000, 1, 3);
    let mut q = ConditionalEstimator::new(&EstimatorConfig::maf(), &theta, &x, 1, 1, 0).unwrap();
    // 900 training pairs: 5 batches plus 1 validation batch per epoch; poison epoch 3.
    let calls = AtomicUsize::new(0);
    let cfg = TrainConfig {
        max_epochs: Some(10),
        ..TrainConfig::default()
    };
    let err = q
        .train_with_loss(&theta, &x, &cfg, &mut NoObserver, &|s, t, c| {
            let k = calls.fetch_add(1, Ordering::Relaxed) + 1;
            let l = s.log_prob_tensor(t, c)?.mean_all()?.neg()?;
            if k > 12 { l * f64::NAN } else { Ok(l) }
        })
        .unwrap_err();
    assert!(err.to_string().contains("epoch 3"), "{err}");
    match err {
        FlowError::NonFiniteLoss { epoch, phase, .. } => {
            assert_eq!((epoch, phase), (3, "training"));
        }
        e => panic!("wrong error {e}"),
    }
    // The best weights so far are kept: densities stay finite.
    assert!(
        q.log_prob(&theta[..50], &x[..50])
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn bad_inputs_give_typed_errors() {
    let (theta, x) = bimodal(100, 2, 4);
    let cfg = EstimatorConfig::nsf();
    assert!(matches!(
        ConditionalEstimator::new(&cfg, &theta[..199], &x, 2, 1, 0),
        Err(FlowError::Shape { what: "inputs", .. })
    ));
    assert!(matches!(
        ConditionalEstimator::new(&cfg, &theta, &x[..99], 2, 1, 0),
        Err(FlowError::Shape { .. })
    ));
    let mut bad = theta.clone();
    bad[7] = f64::NAN;
    let e = ConditionalEstimator::new(&cfg, &bad, &x, 2, 1, 0).unwrap_err();
    assert!(e.to_string().contains("row 3, column 1"), "{e}");
    let zero = EstimatorConfig {
        num_bins: 1,
        ..EstimatorConfig::nsf()
    };
    assert!(matches!(
        ConditionalEstimator::new(&zero, &theta, &x, 2, 1, 0),
        Err(FlowError::Invalid {
            what: "num_bins",
            ..
        })
    ));
    let sets = EstimatorConfig {
        embedding: Some(EmbeddingConfig::DeepSets {
            trial_dim: 2,
            hidden_features: 8,
            trial_embedding_dim: 4,
            output_dim: 3,
        }),
        ..EstimatorConfig::maf()
    };
    assert!(matches!(
        ConditionalEstimator::new(&sets, &theta, &x, 2, 1, 0),
        Err(FlowError::Invalid {
            what: "embedding",
            ..
        })
    ));

    let mut q =
        ConditionalEstimator::new(&config(EstimatorKind::Maf), &theta, &x, 2, 1, 0).unwrap();
    assert!(matches!(
        q.sample(5, &[0.0, 1.0], 0),
        Err(FlowError::Shape {
            what: "context",
            ..
        })
    ));
    assert!(matches!(
        q.log_prob(&theta, &x[..3]),
        Err(FlowError::Shape { .. })
    ));
    let tc = TrainConfig {
        validation_fraction: 1.5,
        ..TrainConfig::default()
    };
    assert!(matches!(
        q.train(&theta, &x, &tc, &mut NoObserver),
        Err(FlowError::Invalid {
            what: "validation_fraction",
            ..
        })
    ));
    let tc = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    assert!(matches!(
        q.train(&theta, &x, &tc, &mut NoObserver),
        Err(FlowError::Invalid {
            what: "batch_size",
            ..
        })
    ));
    let tc = TrainConfig {
        validation_fraction: 0.001,
        ..TrainConfig::default()
    };
    assert!(matches!(
        q.train(&theta, &x, &tc, &mut NoObserver),
        Err(FlowError::Invalid {
            what: "training data",
            ..
        })
    ));
}
