//! The MAF's native training kernel (used by `train` for a MAF without embedding net on the
//! CPU) against the candle-graph path (`train_with_loss` with the same likelihood loss).

mod common;

use std::time::Instant;

use common::bimodal;
use neurosbi_flows::{ConditionalEstimator, EstimatorConfig, TrainConfig, TrainObserver};

#[derive(Default)]
struct Record(Vec<(f64, f64)>);

impl TrainObserver for Record {
    fn on_epoch(&mut self, _epoch: usize, train_loss: f64, val_loss: f64) {
        self.0.push((train_loss, val_loss));
    }
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        max_epochs: Some(epochs),
        seed: 3,
        ..Default::default()
    }
}

/// Trains one copy natively and one through the graph; returns both loss records and times.
fn both(n: usize, d: usize, epochs: usize) -> ((Record, f64), (Record, f64)) {
    let (x, c) = bimodal(n, d, 11);
    let make =
        || ConditionalEstimator::new(&EstimatorConfig::maf(), &x, &c, d, 1, 5).expect("estimator");
    let mut native = make();
    let mut graph = make();
    let (mut rn, mut rg) = (Record::default(), Record::default());
    let t = Instant::now();
    native.train(&x, &c, &cfg(epochs), &mut rn).unwrap();
    let tn = t.elapsed().as_secs_f64();
    let t = Instant::now();
    graph
        .train_with_loss(&x, &c, &cfg(epochs), &mut rg, &|e, x, c| {
            e.log_prob_tensor(x, c)?.mean_all()?.neg()
        })
        .unwrap();
    let tg = t.elapsed().as_secs_f64();
    ((rn, tn), (rg, tg))
}

#[test]
fn native_training_follows_the_graph_path() {
    let ((rn, _), (rg, _)) = both(2_000, 2, 4);
    assert_eq!(rn.0.len(), 4);
    // Same data, batches and initial weights: the first epoch agrees to f32 rounding, and
    // rounding differences stay small over a few epochs.
    let (n0, g0) = (rn.0[0], rg.0[0]);
    assert!(
        (n0.0 - g0.0).abs() < 1e-4 * g0.0.abs().max(1.0),
        "{n0:?} vs {g0:?}"
    );
    for (a, b) in rn.0.iter().zip(&rg.0) {
        assert!(
            (a.1 - b.1).abs() < 2e-3 * b.1.abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
    assert!(
        rn.0[3].1 < rn.0[0].1,
        "validation loss did not fall: {:?}",
        rn.0
    );
}

/// Prints the per-epoch time of both paths (a timing, not a test of speed):
/// `cargo test --release -p neurosbi-flows --test fused_maf -- --ignored --nocapture`.
#[test]
#[ignore = "timing printout"]
fn epoch_time_native_vs_graph() {
    let epochs = 10;
    let ((rn, tn), (rg, tg)) = both(10_000, 2, epochs);
    println!(
        "MAF, 10 000 pairs, {epochs} epochs: native {:.4} s/epoch, graph {:.4} s/epoch ({:.2}x); final val {:.4} vs {:.4}",
        tn / epochs as f64,
        tg / epochs as f64,
        tg / tn,
        rn.0[epochs - 1].1,
        rg.0[epochs - 1].1
    );
    assert!(rn.0[epochs - 1].1.is_finite());
}
