//! Timing of the vector-field estimators (not a check; ignored by default):
//! `cargo test --release -p neurosbi-flows --test vector_field_speed -- --ignored --nocapture`
//! (`NEUROSBI_SPEED_KINDS=fmpe,npseve,npsevp,nsf` to pick kinds).
//!
//! Two-moons-like pairs (sbibm's simulator, theta 2-D, x 2-D), 10 000 of them, sbi's
//! default training settings: seconds per epoch over a few epochs, then drawing 10 000
//! posterior samples and evaluating their 10 000 log-densities at one observation.

use std::time::Instant;

use neurosbi_flows::{ConditionalEstimator, EstimatorConfig, TrainConfig, TrainObserver};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

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

#[test]
#[ignore = "timing run; use --release --ignored --nocapture"]
fn vector_field_speed() {
    let epochs: usize = std::env::var("NEUROSBI_SPEED_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // NEUROSBI_SPEED_KINDS=fmpe,nsf picks kinds (default: all).
    let only = std::env::var("NEUROSBI_SPEED_KINDS")
        .unwrap_or_default()
        .to_lowercase();
    let (theta, x) = two_moons(10_000, 0);
    for cfg in [
        EstimatorConfig::fmpe(),
        EstimatorConfig::npse_ve(),
        EstimatorConfig::npse_vp(),
        EstimatorConfig::nsf(),
    ] {
        let name = format!("{:?}", cfg.kind).to_lowercase();
        if !only.is_empty() && !only.split(',').any(|k| k == name) {
            continue;
        }
        let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 0).unwrap();
        let tc = TrainConfig {
            max_epochs: Some(epochs),
            ..TrainConfig::default()
        };
        let mut timer = Timer(Instant::now(), Vec::new());
        q.train(&theta, &x, &tc, &mut timer).unwrap();
        let per_epoch = timer.1.last().unwrap() / timer.1.len() as f64;
        let x_o = [0.0, 0.0];
        let t = Instant::now();
        let s = q.sample(10_000, &x_o, 1).unwrap();
        let ts = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let lp = q.log_prob(&s, &x_o).unwrap();
        let tl = t.elapsed().as_secs_f64();
        assert_eq!(lp.len(), 10_000);
        println!(
            "{:?}: {:.3} s/epoch ({} epochs), sample 10 000: {:.3} s, log_prob 10 000: {:.3} s",
            cfg.kind,
            per_epoch,
            timer.1.len(),
            ts,
            tl
        );
    }
}
