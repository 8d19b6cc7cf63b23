//! Memory stays bounded where candle's graphs could keep old tensors alive (both found when
//! sbibm runs were killed for lack of memory):
//! - drawing many samples from a flow frees each chunk's intermediates before the next
//!   (before: 200 000 draws from a 5-D NSF peaked at 8 GB);
//! - the weight average of FMPE/NPSE training does not link each step's average to the
//!   previous one (before: every step's weights stayed alive, 14 GB for FMPE on two moons).
//!
//! One test in its own binary, so that the process's peak memory is its own.

mod common;

use common::bimodal;
use neurosbi_flows::{ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig};

/// This process's peak resident memory in kB (Linux), if known.
fn peak_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn sampling_and_weight_averaging_keep_memory_bounded() {
    let Some(before) = peak_kb() else {
        println!("skipped: /proc/self/status has no VmHWM on this system");
        return;
    };
    many_draws(before);
    long_weight_averaged_training();
}

fn many_draws(before: u64) {
    let (d, n) = (2, 2_000);
    let (x, c) = bimodal(n, d, 3);
    for cfg in [EstimatorConfig::nsf(), EstimatorConfig::maf()] {
        let mut q = ConditionalEstimator::new(&cfg, &x, &c, d, 1, 1).unwrap();
        let train = TrainConfig {
            max_epochs: Some(1),
            ..Default::default()
        };
        q.train(&x, &c, &train, &mut NoObserver).unwrap();
        let m = 200_000;
        let s = q.sample(m, &c[..1], 3).unwrap();
        assert_eq!(s.len(), m * d);
        assert!(s.iter().all(|v| v.is_finite()));
    }
    let grew_mb = (peak_kb().unwrap() - before) / 1024;
    // The draws themselves are 8 MB (f64) plus 4 MB (f32) per flow.
    assert!(
        grew_mb < 500,
        "peak memory grew by {grew_mb} MB for 200 000 draws"
    );
}

/// 150 epochs of FMPE (1 350 steps with its weight average) on 2 000 pairs.
fn long_weight_averaged_training() {
    let (x, c) = bimodal(2_000, 2, 5);
    let mut q = ConditionalEstimator::new(&EstimatorConfig::fmpe(), &x, &c, 2, 1, 2).unwrap();
    let train = TrainConfig {
        max_epochs: Some(150),
        stop_after_epochs: 1_000,
        ..Default::default()
    };
    let start = peak_kb().unwrap();
    let report = q.train(&x, &c, &train, &mut NoObserver).unwrap();
    assert_eq!(report.epochs, 150);
    let grew_mb = (peak_kb().unwrap() - start) / 1024;
    // Before the fix the 1 350 steps kept every step's weights alive: 1.2 GB.
    assert!(
        grew_mb < 100,
        "peak memory grew by {grew_mb} MB over 150 weight-averaged epochs"
    );
}
