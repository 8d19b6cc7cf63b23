//! Training and sampling speed of the default MAF and NSF on two-moons (sbibm's simulator),
//! 10 000 pairs, sbi's default training settings.
//!
//! Prints seconds per epoch and total training seconds for a full run (early stopping, at
//! most `NEUROSBI_BENCH_MAX_EPOCHS` epochs, default 400), then lets criterion time one
//! training epoch of each flow and drawing 10 000 samples from the trained MAF.
//! sbi 0.27 on this kind of machine (REFERENCE.md): ~0.32 s per MAF epoch, 0.99 s per NSF
//! epoch, 10 000 draws in 0.035-0.15 s.
//!
//! With `NEUROSBI_PYTHON` pointing at a Python that has sbi 0.27 and torch
//! (scripts/sbi_peer/requirements.txt), the same pairs are handed to
//! scripts/sbi_peer/flows_peer.py in the same run and the ratios are printed; without it the
//! bench says that the peer was skipped and why. `NEUROSBI_PEER_THREADS` sets torch's
//! threads (default 2, this machine's cores).

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use neurosbi_flows::{
    ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig, TrainObserver,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// sbibm two_moons: theta ~ U(-1, 1)^2, x = (r cos a + 0.25, r sin a) +
/// (-|theta0 + theta1| / sqrt 2, (-theta0 + theta1) / sqrt 2), a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01).
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

/// One estimator's full training run.
struct RunStats {
    epochs: usize,
    seconds: f64,
    best_val: f64,
    sample_10k: f64,
}

struct Timer(Instant, Vec<f64>);

impl TrainObserver for Timer {
    fn on_epoch(&mut self, _epoch: usize, _train: f64, _val: f64) {
        self.1.push(self.0.elapsed().as_secs_f64());
    }
}

fn max_epochs() -> usize {
    std::env::var("NEUROSBI_BENCH_MAX_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn full_run(
    name: &str,
    cfg: &EstimatorConfig,
    theta: &[f64],
    x: &[f64],
) -> (ConditionalEstimator, RunStats) {
    let max_epochs = max_epochs();
    // Posterior estimation: inputs theta, context x.
    let mut q = ConditionalEstimator::new(cfg, theta, x, 2, 2, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(max_epochs),
        ..TrainConfig::default()
    };
    let mut timer = Timer(Instant::now(), Vec::new());
    let rep = q.train(theta, x, &tc, &mut timer).unwrap();
    let total = timer.0.elapsed().as_secs_f64();
    println!(
        "{name}: {} epochs, {:.3} s per epoch, {:.1} s in all, best validation loss {:.4}",
        rep.epochs,
        total / rep.epochs as f64,
        total,
        rep.best_val_loss
    );
    let obs = [0.0, 0.0];
    q.sample(10_000, &obs, 1).unwrap();
    let t = Instant::now();
    q.sample(10_000, &obs, 2).unwrap();
    let sample_10k = t.elapsed().as_secs_f64();
    let stats = RunStats {
        epochs: rep.epochs,
        seconds: total,
        best_val: rep.best_val_loss,
        sample_10k,
    };
    (q, stats)
}

/// Runs sbi on the same pairs through scripts/sbi_peer/flows_peer.py and prints the ratios.
fn peer(theta: &[f64], x: &[f64], ours: &[(&str, RunStats)]) {
    let Ok(python) = std::env::var("NEUROSBI_PYTHON") else {
        println!(
            "sbi peer skipped: NEUROSBI_PYTHON is not set (a Python with sbi 0.27 and torch, \
             see scripts/sbi_peer/requirements.txt)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("neurosbi-flows-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("two_moons.f64");
    let mut bytes = Vec::with_capacity(theta.len() * 16);
    for (t, xx) in theta.chunks(2).zip(x.chunks(2)) {
        for v in t.iter().chain(xx) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(&data, bytes).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/sbi_peer/flows_peer.py"
    );
    let threads = std::env::var("NEUROSBI_PEER_THREADS").unwrap_or_else(|_| "2".into());
    let names: Vec<String> = ours.iter().map(|(n, _)| n.to_lowercase()).collect();
    // sbi writes tensorboard logs into the working folder: keep them in the temporary one.
    let out = std::process::Command::new(&python)
        .current_dir(&dir)
        .arg(script)
        .arg("--data")
        .arg(&data)
        .args(["--threads", &threads])
        .args(["--max-epochs", &max_epochs().to_string()])
        .args(["--estimators", &names.join(",")])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!(
                "sbi peer failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("sbi peer skipped: cannot run {python}: {e}");
            return;
        }
    };
    for line in out.lines() {
        // sbi's convergence message ends with a carriage return, not a newline, so a result
        // line may carry it in front.
        let Some(at) = line.rfind("peer ") else {
            continue;
        };
        let line = &line[at..];
        println!("{line}");
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 12 || f[0] != "peer" {
            continue;
        }
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let Some((name, s)) = ours.iter().find(|(n, _)| n.eq_ignore_ascii_case(f[1])) else {
            continue;
        };
        let (epochs, total, per_epoch, best, sample) = (num(3), num(5), num(7), num(9), num(11));
        let ours_per_epoch = s.seconds / s.epochs as f64;
        println!(
            "{name} vs sbi (same data, same run): per epoch {ours_per_epoch:.4} s vs {per_epoch:.4} s = {:.1}x; \
             total {:.1} s ({} epochs) vs {total:.1} s ({epochs} epochs) = {:.1}x; \
             best validation loss {:.4} vs {best:.4}; 10 000 draws {:.4} s vs {sample:.4} s",
            per_epoch / ours_per_epoch,
            s.seconds,
            s.epochs,
            total / s.seconds,
            s.best_val,
            s.sample_10k,
        );
    }
}

fn bench(c: &mut Criterion) {
    let (theta, x) = two_moons(10_000, 1);
    let (maf, maf_stats) = full_run("MAF", &EstimatorConfig::maf(), &theta, &x);
    let mut stats = vec![("MAF", maf_stats)];
    if std::env::var("NEUROSBI_BENCH_SKIP_NSF").is_err() {
        stats.push((
            "NSF",
            full_run("NSF", &EstimatorConfig::nsf(), &theta, &x).1,
        ));
    }
    peer(&theta, &x, &stats);
    if std::env::var("NEUROSBI_BENCH_ONLY_FULL").is_ok() {
        return;
    }
    let mut g = c.benchmark_group("flows");
    g.sample_size(10);
    for (name, cfg) in [
        ("maf_epoch_10k", EstimatorConfig::maf()),
        ("nsf_epoch_10k", EstimatorConfig::nsf()),
    ] {
        let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 2, 2, 0).unwrap();
        let tc = TrainConfig {
            max_epochs: Some(1),
            ..TrainConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| q.train(&theta, &x, &tc, &mut NoObserver).unwrap())
        });
    }
    let obs = [0.0, 0.0];
    g.bench_function("maf_sample_10k", |b| {
        b.iter(|| maf.sample(10_000, &obs, 0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
