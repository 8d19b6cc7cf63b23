//! GPU checks (crate feature `cuda`, and a CUDA GPU at run time): models moved to the GPU
//! compute the CPU's densities, sample the CPU's distribution and train there. Build the
//! binary on a machine without a GPU with `scripts/cuda/build-gpu-tests.sh` and run it with
//! `scripts/cuda/run-gpu-tests.sh`; run single-threaded (`--test-threads 1`) so the timings
//! printed by `epoch_time_gpu_vs_cpu` are not disturbed.
#![cfg(feature = "cuda")]

use std::time::Instant;

use neurosbi_flows::candle_core::Device;
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorConfig, EstimatorKind, NoObserver,
    RatioClassifier, TrainConfig, TrainReport, device_from_name, losses,
};
mod common;

use common::{f32_error, two_moons};

/// The device the GPU tests train on through `TrainConfig.device`.
const GPU: &str = "cuda";

fn gpu() -> Device {
    let d = device_from_name(GPU).expect("these tests need a CUDA GPU");
    assert!(d.is_cuda());
    d
}

fn config(kind: EstimatorKind) -> EstimatorConfig {
    match kind {
        EstimatorKind::Maf => EstimatorConfig::maf(),
        EstimatorKind::Nsf => EstimatorConfig::nsf(),
        _ => EstimatorConfig::mdn(),
    }
}

const KINDS: [EstimatorKind; 3] = [EstimatorKind::Maf, EstimatorKind::Nsf, EstimatorKind::Mdn];

fn cpu_trained(kind: EstimatorKind, epochs: usize) -> ConditionalEstimator {
    let (theta, x) = two_moons(2000, 1);
    let mut q = ConditionalEstimator::new(&config(kind), &theta, &x, 2, 2, 7).unwrap();
    let cfg = TrainConfig {
        max_epochs: Some(epochs),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    q.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
    q
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn moments(v: &[f64], d: usize) -> Vec<(f64, f64)> {
    let n = (v.len() / d) as f64;
    (0..d)
        .map(|j| {
            let m = v.iter().skip(j).step_by(d).sum::<f64>() / n;
            let var = v
                .iter()
                .skip(j)
                .step_by(d)
                .map(|x| (x - m).powi(2))
                .sum::<f64>()
                / n;
            (m, var.sqrt())
        })
        .collect()
}

#[test]
fn log_prob_on_gpu_matches_cpu() {
    let dev = gpu();
    let (t_eval, x_eval) = two_moons(3000, 2);
    for kind in KINDS {
        let q = cpu_trained(kind, 3);
        let g = q.to_device(&dev).unwrap();
        assert!(g.device().is_cuda());
        let (lc, lg) = (
            q.log_prob(&t_eval, &x_eval).unwrap(),
            g.log_prob(&t_eval, &x_eval).unwrap(),
        );
        let worst = lc
            .iter()
            .zip(&lg)
            .map(|(c, g)| (c - g).abs() / c.abs().max(1.0))
            .fold(0.0, f64::max);
        println!("{kind:?}: max relative |log_prob gpu - cpu| = {worst:.2e}");
        assert!(worst <= 1e-4, "{kind:?}: {worst}");
        // One context row broadcast over all inputs goes through the same path.
        let one = g.log_prob(&t_eval[..200], &x_eval[..2]).unwrap();
        let one_cpu = q.log_prob(&t_eval[..200], &x_eval[..2]).unwrap();
        assert!(one.iter().zip(&one_cpu).all(|(a, b)| close(*a, *b, 1e-4)));
        // Back to the CPU: the weights survive the round trip bit for bit.
        let back = g.to_device(&Device::Cpu).unwrap();
        assert_eq!(back.log_prob(&t_eval, &x_eval).unwrap(), lc, "{kind:?}");
    }
}

#[test]
fn samples_on_gpu_have_the_cpu_moments() {
    let dev = gpu();
    for kind in KINDS {
        let q = cpu_trained(kind, 3);
        let g = q.to_device(&dev).unwrap();
        let ctx = [-0.05, 0.1];
        let n = 20_000;
        let (sc, sg) = (q.sample(n, &ctx, 3).unwrap(), g.sample(n, &ctx, 3).unwrap());
        assert_eq!(sg.len(), 2 * n);
        assert!(sg.iter().all(|v| v.is_finite()), "{kind:?}");
        for (j, ((mc, vc), (mg, vg))) in
            moments(&sc, 2).into_iter().zip(moments(&sg, 2)).enumerate()
        {
            println!("{kind:?} dim {j}: mean cpu {mc:.4} gpu {mg:.4}, std cpu {vc:.4} gpu {vg:.4}");
            // Same base draws on both devices: the moments agree far more closely than the
            // Monte Carlo error (std / sqrt(n) ~ 0.007 std).
            assert!((mc - mg).abs() <= 2e-3 * vc, "{kind:?} dim {j} mean");
            assert!((vc - vg).abs() <= 2e-3 * vc, "{kind:?} dim {j} std");
        }
        // The GPU draws are where the GPU model puts its mass.
        let lp = g.log_prob(&sg[..2000], &ctx).unwrap();
        assert!(lp.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn training_on_gpu_decreases_the_loss() {
    let dev = gpu();
    let (theta, x) = two_moons(10_000, 4);
    for kind in KINDS {
        let mut g = ConditionalEstimator::new(&config(kind), &theta, &x, 2, 2, 7)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let cfg = TrainConfig {
            max_epochs: Some(5),
            learning_rate: 1e-3,
            ..TrainConfig::default()
        };
        let r = g.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        println!(
            "{kind:?}: train {:?} val {:?}",
            r.train_losses, r.val_losses
        );
        assert_eq!(r.epochs, 5);
        assert!(
            r.train_losses
                .iter()
                .chain(&r.val_losses)
                .all(|l| l.is_finite())
        );
        assert!(r.train_losses[4] < r.train_losses[0] - 0.1, "{kind:?}");
        assert!(r.best_val_loss < r.val_losses[0], "{kind:?}");
        assert!(g.device().is_cuda());
        // The trained weights give the same densities on the CPU. A trained flow's f32
        // log density is only good to ~3e-4 relative in some rows (steep spline bins), for
        // the GPU graph, the CPU graph and the CPU kernel alike, so per-row agreement at
        // 1e-4 is not a property of correct code: flows are held to the f64 evaluation of
        // the same weights instead, each row within 1e-3 and on average no worse than 3x
        // the CPU's own rounding.
        let (t_eval, x_eval) = two_moons(500, 5);
        let cpu = g.to_device(&Device::Cpu).unwrap();
        let (a, b) = (
            g.log_prob(&t_eval, &x_eval).unwrap(),
            cpu.log_prob(&t_eval, &x_eval).unwrap(),
        );
        if kind == EstimatorKind::Mdn {
            assert!(
                a.iter().zip(&b).all(|(a, b)| close(*a, *b, 1e-4)),
                "{kind:?}"
            );
        } else {
            let exact = common::f64_log_prob(&cpu, &t_eval, &x_eval);
            let (gpu_max, gpu_mean) = f32_error(&a, &exact);
            let (cpu_max, cpu_mean) = f32_error(&b, &exact);
            println!(
                "{kind:?}: f32 error against f64, GPU max {gpu_max:.2e} mean {gpu_mean:.2e}, CPU max {cpu_max:.2e} mean {cpu_mean:.2e}"
            );
            assert!(gpu_max < 1e-3, "{kind:?}: GPU max error {gpu_max:e}");
            assert!(
                gpu_mean < 3.0 * cpu_mean + 1e-7,
                "{kind:?}: GPU mean error {gpu_mean:e} vs CPU {cpu_mean:e}"
            );
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn finite(r: &TrainReport) -> bool {
    r.train_losses
        .iter()
        .chain(&r.val_losses)
        .all(|l| l.is_finite())
}

/// `TrainConfig.device` (what `neurosbi fit --device cuda` sets): a CPU model trains on the
/// GPU through the candle graph and gets the trained weights back. The same model trained on
/// the CPU takes the CPU-only paths (native MAF kernel, fused spline and LU ops for the NSF),
/// so equal first-epoch losses check the GPU graph against them.
#[test]
fn train_config_device_trains_on_gpu_like_the_cpu() {
    gpu();
    let (theta, x) = two_moons(4000, 10);
    let (t_eval, x_eval) = two_moons(1000, 11);
    let cfg = TrainConfig {
        max_epochs: Some(4),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    let on_gpu = TrainConfig {
        device: Some(GPU.to_string()),
        ..cfg.clone()
    };
    for kind in KINDS {
        let new = || ConditionalEstimator::new(&config(kind), &theta, &x, 2, 2, 3).unwrap();
        let (mut q_cpu, mut q_gpu) = (new(), new());
        let before = mean(&q_gpu.log_prob(&t_eval, &x_eval).unwrap());
        let t = Instant::now();
        let rc = q_cpu.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        let s_cpu = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let rg = q_gpu.train(&theta, &x, &on_gpu, &mut NoObserver).unwrap();
        let s_gpu = t.elapsed().as_secs_f64();
        let (lc, lg) = (
            mean(&q_cpu.log_prob(&t_eval, &x_eval).unwrap()),
            mean(&q_gpu.log_prob(&t_eval, &x_eval).unwrap()),
        );
        println!(
            "{kind:?} via TrainConfig.device: train {:?} (CPU {:?}); mean held-out log_prob \
             {before:.4} -> {lg:.4} (CPU {lc:.4}); {s_gpu:.2} s GPU, {s_cpu:.2} s CPU",
            rg.train_losses, rc.train_losses
        );
        assert!(q_gpu.device().is_cpu(), "{kind:?}: weights stay on the CPU");
        assert_eq!(rg.epochs, 4);
        assert!(finite(&rg), "{kind:?}");
        assert!(rg.train_losses[3] < rg.train_losses[0] - 0.1, "{kind:?}");
        assert!(
            lg > before + 0.1,
            "{kind:?}: trained weights did not come back"
        );
        assert!(
            close(rc.train_losses[0], rg.train_losses[0], 1e-2),
            "{kind:?}: first epoch CPU {} GPU {}",
            rc.train_losses[0],
            rg.train_losses[0]
        );
        // Four epochs of the same batches from the same start stay close on both devices.
        assert!((lc - lg).abs() < 0.1, "{kind:?}: CPU {lc} GPU {lg}");
    }
}

/// APT's atomic loss (`train_atomic`) on the GPU through `TrainConfig.device`. On the CPU the
/// MAF uses the native atomic kernel and the others the graph with CPU-only ops; the GPU uses
/// the graph, with each row's log prior looked up by index on the host.
#[test]
fn atomic_training_on_gpu_follows_the_cpu() {
    gpu();
    let n = 2000;
    let (theta, x) = two_moons(n, 12);
    // A non-constant "prior" so that a wrong row lookup changes the loss.
    let log_prior: Vec<f64> = theta
        .chunks(2)
        .map(|t| -2.0 * (t[0] * t[0] + t[1] * t[1]) - 1.0)
        .collect();
    let cfg = TrainConfig {
        max_epochs: Some(3),
        learning_rate: 2e-3,
        batch_size: 100,
        ..TrainConfig::default()
    };
    let on_gpu = TrainConfig {
        device: Some(GPU.to_string()),
        ..cfg.clone()
    };
    for kind in KINDS {
        let new = || ConditionalEstimator::new(&config(kind), &theta, &x, 2, 2, 4).unwrap();
        let (mut q_cpu, mut q_gpu) = (new(), new());
        let t = Instant::now();
        let rc = q_cpu
            .train_atomic(&theta, &x, &log_prior, 10, &cfg, &mut NoObserver)
            .unwrap();
        let s_cpu = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let rg = q_gpu
            .train_atomic(&theta, &x, &log_prior, 10, &on_gpu, &mut NoObserver)
            .unwrap();
        let s_gpu = t.elapsed().as_secs_f64();
        println!(
            "{kind:?} atomic: train {:?} val {:?} (CPU train {:?}); {s_gpu:.2} s GPU, {s_cpu:.2} s CPU",
            rg.train_losses, rg.val_losses, rc.train_losses
        );
        assert!(q_gpu.device().is_cpu());
        assert_eq!(rg.epochs, 3);
        assert!(finite(&rg), "{kind:?}");
        assert!(rg.train_losses[2] < rg.train_losses[0], "{kind:?}");
        assert!(rg.best_val_loss < rg.val_losses[0], "{kind:?}");
        assert!(
            close(rc.train_losses[0], rg.train_losses[0], 1e-2),
            "{kind:?}: first epoch CPU {} GPU {}",
            rc.train_losses[0],
            rg.train_losses[0]
        );
    }
}

/// Flow matching (FMPE) and score matching (NPSE, VE) through `TrainConfig.device`, with the
/// weight average that their training keeps: the same noise is drawn on the host for both
/// devices, so the first epochs' losses agree, and the averaged weights that come back give
/// the CPU's validation loss and a log_prob (probability-flow ODE) close to the CPU's.
#[test]
fn vector_field_training_on_gpu_follows_the_cpu() {
    gpu();
    let (theta, x) = two_moons(3000, 14);
    let (t_eval, x_eval) = two_moons(300, 15);
    let cfg = TrainConfig {
        max_epochs: Some(4),
        learning_rate: 1e-3,
        ..TrainConfig::default()
    };
    let on_gpu = TrainConfig {
        device: Some(GPU.to_string()),
        ..cfg.clone()
    };
    for (name, ecfg) in [
        ("fmpe", EstimatorConfig::fmpe()),
        ("npse_ve", EstimatorConfig::npse_ve()),
    ] {
        let new = || ConditionalEstimator::new(&ecfg, &theta, &x, 2, 2, 4).unwrap();
        let (mut q_cpu, mut q_gpu) = (new(), new());
        let rc = q_cpu.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        let rg = q_gpu.train(&theta, &x, &on_gpu, &mut NoObserver).unwrap();
        let (lc, lg) = (
            mean(&q_cpu.log_prob(&t_eval, &x_eval).unwrap()),
            mean(&q_gpu.log_prob(&t_eval, &x_eval).unwrap()),
        );
        println!(
            "{name} via TrainConfig.device: train {:?} (CPU {:?}); best validation {:.4} (CPU \
             {:.4}); mean held-out log_prob {lg:.4} (CPU {lc:.4})",
            rg.train_losses, rc.train_losses, rg.best_val_loss, rc.best_val_loss
        );
        assert!(q_gpu.device().is_cpu(), "{name}: weights stay on the CPU");
        assert!(finite(&rg), "{name}");
        assert!(
            close(rc.train_losses[0], rg.train_losses[0], 1e-2),
            "{name}: first epoch CPU {} GPU {}",
            rc.train_losses[0],
            rg.train_losses[0]
        );
        assert!(
            close(rc.best_val_loss, rg.best_val_loss, 5e-2),
            "{name}: best validation CPU {} GPU {}",
            rc.best_val_loss,
            rg.best_val_loss
        );
        assert!((lc - lg).abs() < 0.2, "{name}: log_prob CPU {lc} GPU {lg}");
    }
}

#[test]
fn classifier_on_gpu_matches_cpu_and_trains() {
    let dev = gpu();
    let (theta, x) = two_moons(4000, 6);
    let c = RatioClassifier::new(&ClassifierConfig::mlp(), &theta, &x, 2, 2, 1).unwrap();
    let mut g = c.to_device(&dev).unwrap();
    assert!(g.device().is_cuda());
    let (lc, lg) = (c.logits(&theta, &x).unwrap(), g.logits(&theta, &x).unwrap());
    assert!(lc.iter().zip(&lg).all(|(a, b)| close(*a, *b, 1e-4)));
    let cfg = TrainConfig {
        max_epochs: Some(5),
        learning_rate: 1e-3,
        ..TrainConfig::default()
    };
    let r = g
        .train_with_loss(&theta, &x, &cfg, &mut NoObserver, &|s, t, xb| {
            losses::nre_a_loss(s, t, xb)
        })
        .unwrap();
    assert!(r.train_losses.iter().all(|l| l.is_finite()));
    println!("classifier: train {:?}", r.train_losses);
    assert!(
        r.train_losses[4] < r.train_losses[0],
        "{:?}",
        r.train_losses
    );
}

#[test]
fn bad_gpu_ordinal_is_an_error() {
    let e = device_from_name("cuda:97").unwrap_err().to_string();
    assert!(e.contains("cannot open \"cuda:97\""), "{e}");
}

/// Seconds per epoch for 10 000 two-moons pairs, default architectures, on both devices.
/// Same initial weights and batch order, so the first epochs' losses must also agree.
#[test]
fn epoch_time_gpu_vs_cpu() {
    let dev = gpu();
    let (theta, x) = two_moons(10_000, 8);
    let epochs = 3;
    for kind in KINDS {
        let cfg = TrainConfig {
            max_epochs: Some(epochs),
            ..TrainConfig::default()
        };
        let mut cpu = ConditionalEstimator::new(&config(kind), &theta, &x, 2, 2, 9).unwrap();
        let mut gpu = cpu.to_device(&dev).unwrap();
        // Warm-up on the GPU (module loading, cuBLAS handles) outside the timing.
        let _ = gpu.log_prob(&theta[..400], &x[..400]).unwrap();
        let t = Instant::now();
        let rc = cpu.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        let s_cpu = t.elapsed().as_secs_f64() / epochs as f64;
        let t = Instant::now();
        let rg = gpu.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
        let s_gpu = t.elapsed().as_secs_f64() / epochs as f64;
        println!(
            "{kind:?}: {s_cpu:.3} s/epoch CPU, {s_gpu:.3} s/epoch GPU ({:.2}x); \
             epoch-1 loss CPU {:.4} GPU {:.4}",
            s_cpu / s_gpu,
            rc.train_losses[0],
            rg.train_losses[0]
        );
        assert!(
            close(rc.train_losses[0], rg.train_losses[0], 1e-2),
            "{kind:?}"
        );
    }
}
