//! MNLE: a mixed discrete/continuous likelihood (a choice and a positive reaction time
//! given theta) is learned, normalised over both parts, agrees with its sampler, survives
//! save/load, and rejects bad input with typed errors.

mod common;

use common::{normal, rng};
use neurosbi_flows::{ConditionalEstimator, EstimatorConfig, FlowError, NoObserver, TrainConfig};
use rand::RngExt;

/// Choice c in {0, 1, 2} with logits (0, theta, 2 theta - 1); reaction time
/// rt = exp(0.3 c + 0.5 theta + 0.25 eps) (log-normal).
fn choice_probs(theta: f64) -> [f64; 3] {
    let l = [0.0, theta, 2.0 * theta - 1.0];
    let m = l.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    [e[0] / s, e[1] / s, e[2] / s]
}

fn true_log_prob(c: usize, rt: f64, theta: f64) -> f64 {
    let mu = 0.3 * c as f64 + 0.5 * theta;
    let z = (rt.ln() - mu) / 0.25;
    choice_probs(theta)[c].ln()
        - 0.5 * z * z
        - (0.25f64).ln()
        - rt.ln()
        - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

fn simulate(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let (mut x, mut theta) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t: f64 = r.random::<f64>() * 3.0 - 1.5;
        let p = choice_probs(t);
        let u: f64 = r.random();
        let c = if u < p[0] {
            0
        } else if u < p[0] + p[1] {
            1
        } else {
            2
        };
        let rt = (0.3 * c as f64 + 0.5 * t + 0.25 * normal(&mut r)).exp();
        x.extend([c as f64, rt]);
        theta.push(t);
    }
    (x, theta)
}

fn trained() -> ConditionalEstimator {
    let (x, theta) = simulate(3000, 1);
    let cfg = EstimatorConfig {
        log_transform: true,
        ..EstimatorConfig::mnle(1)
    };
    let mut q = ConditionalEstimator::new(&cfg, &x, &theta, 2, 1, 2).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(30),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    let t = std::time::Instant::now();
    let rep = q.train(&x, &theta, &tc, &mut NoObserver).unwrap();
    eprintln!(
        "MNLE: {} epochs in {:.2?}, best validation loss {:.4}",
        rep.epochs,
        t.elapsed(),
        rep.best_val_loss
    );
    q
}

#[test]
fn mnle_learns_normalises_samples_and_round_trips() {
    let q = trained();
    // KL(p || q) by Monte Carlo over a few parameter values.
    let mut r = rng(7);
    let mut kl = 0.0;
    let thetas = [-1.0, 0.0, 0.8];
    for &t in &thetas {
        let n = 2000;
        let mut x = Vec::with_capacity(2 * n);
        let mut lp = 0.0;
        for _ in 0..n {
            let p = choice_probs(t);
            let u: f64 = r.random();
            let c = if u < p[0] {
                0
            } else if u < p[0] + p[1] {
                1
            } else {
                2
            };
            let rt = (0.3 * c as f64 + 0.5 * t + 0.25 * normal(&mut r)).exp();
            lp += true_log_prob(c, rt, t);
            x.extend([c as f64, rt]);
        }
        let lq: f64 = q.log_prob(&x, &[t]).unwrap().iter().sum();
        kl += (lp - lq) / n as f64 / thetas.len() as f64;
    }
    eprintln!("MNLE KL {kl:.4}");
    assert!(kl < 0.05, "KL {kl}");

    // Mass over both parts: sum over choices of the integral over rt (log-spaced grid).
    let theta = 0.8;
    let grid: Vec<f64> = (0..=4000)
        .map(|i| (-6.0 + 10.0 * i as f64 / 4000.0).exp())
        .collect();
    let mut per_choice = [0.0; 3];
    for (c, mass) in per_choice.iter_mut().enumerate() {
        let pts: Vec<f64> = grid.iter().flat_map(|&rt| [c as f64, rt]).collect();
        let dens: Vec<f64> = q
            .log_prob(&pts, &[theta])
            .unwrap()
            .into_iter()
            .map(f64::exp)
            .collect();
        for i in 1..grid.len() {
            *mass += 0.5 * (dens[i] + dens[i - 1]) * (grid[i] - grid[i - 1]);
        }
    }
    let total: f64 = per_choice.iter().sum();
    eprintln!(
        "MNLE mass {total:.4}, per choice {per_choice:?} vs {:?}",
        choice_probs(theta)
    );
    assert!((total - 1.0).abs() < 0.01, "mass {total}");

    // Samples: choice frequencies against the model's own marginal masses and the truth;
    // reaction-time moments per choice against the truth.
    let n = 4000;
    let s = q.sample(n, &[theta], 3).unwrap();
    let truth = choice_probs(theta);
    for c in 0..3 {
        let rts: Vec<f64> = s
            .chunks(2)
            .filter(|r| r[0] == c as f64)
            .map(|r| r[1])
            .collect();
        let f = rts.len() as f64 / n as f64;
        let se = (per_choice[c] * (1.0 - per_choice[c]) / n as f64).sqrt();
        assert!(
            (f - per_choice[c]).abs() < 4.0 * se + 1e-3,
            "choice {c}: frequency {f} vs mass {}",
            per_choice[c]
        );
        assert!(
            (f - truth[c]).abs() < 0.05,
            "choice {c}: frequency {f} vs truth {}",
            truth[c]
        );
        let logs: Vec<f64> = rts.iter().map(|v| v.ln()).collect();
        let m = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        let tm = 0.3 * c as f64 + 0.5 * theta;
        eprintln!(
            "choice {c}: freq {f:.3} (truth {:.3}), log rt mean {m:.3} vs {tm:.3}, sd {sd:.3} vs 0.25",
            truth[c]
        );
        assert!(
            (m - tm).abs() < 0.08 && (sd - 0.25).abs() < 0.06,
            "choice {c}: log rt mean {m}, sd {sd}"
        );
    }
    assert!(
        s.chunks(2)
            .all(|r| r[1] > 0.0 && [0.0, 1.0, 2.0].contains(&r[0]))
    );

    // Save / load: identical densities and samples.
    let dir = std::env::temp_dir().join(format!("neurosbi-mnle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mnle.safetensors");
    q.save(&path).unwrap();
    let back = ConditionalEstimator::load(&path).unwrap();
    let pts = &s[..200];
    assert_eq!(
        q.log_prob(pts, &[theta]).unwrap(),
        back.log_prob(pts, &[theta]).unwrap()
    );
    assert_eq!(
        q.sample(50, &[0.1], 9).unwrap(),
        back.sample(50, &[0.1], 9).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Bad input names the row and column.
    let err = q.log_prob(&[3.0, 1.0], &[0.0]).unwrap_err();
    assert!(
        matches!(err, FlowError::Invalid { what: "inputs", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("row 0, discrete column 0"),
        "{err}"
    );
    let err = q.log_prob(&[1.0, 1.0, 0.0, -0.5], &[0.0]).unwrap_err();
    assert!(err.to_string().contains("row 1, column 1"), "{err}");
}

#[test]
fn mnle_configuration_errors() {
    let (x, theta) = simulate(50, 2);
    for (cfg, what) in [
        (EstimatorConfig::mnle(0), "num_discrete"),
        (EstimatorConfig::mnle(2), "num_discrete"),
        (
            EstimatorConfig {
                num_discrete: 1,
                ..EstimatorConfig::maf()
            },
            "num_discrete",
        ),
    ] {
        let err = ConditionalEstimator::new(&cfg, &x, &theta, 2, 1, 0).unwrap_err();
        assert!(
            matches!(err, FlowError::Invalid { what: w, .. } if w == what),
            "{err}"
        );
    }
    // A continuous column given as discrete is refused.
    let cont: Vec<f64> = (0..4000)
        .flat_map(|i| [i as f64 * 0.37, 1.0 + i as f64])
        .collect();
    let ctx: Vec<f64> = (0..4000).map(|i| i as f64).collect();
    let err =
        ConditionalEstimator::new(&EstimatorConfig::mnle(1), &cont, &ctx, 2, 1, 0).unwrap_err();
    assert!(err.to_string().contains("distinct values"), "{err}");
    // Non-positive data under the log transform.
    let mut bad = x.clone();
    bad[3] = 0.0;
    let cfg = EstimatorConfig {
        log_transform: true,
        ..EstimatorConfig::mnle(1)
    };
    let err = ConditionalEstimator::new(&cfg, &bad, &theta, 2, 1, 0).unwrap_err();
    assert!(err.to_string().contains("row 1, column 1"), "{err}");
}

/// Two dependent discrete columns (c2 depends on c1 and theta) and one continuous column:
/// the autoregressive categorical part sums to one over all category pairs, and sampled
/// pair frequencies match the model's own masses.
#[test]
fn mnle_with_two_discrete_columns_is_normalised() {
    let mut r = rng(5);
    let (mut x, mut theta) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        let t: f64 = r.random::<f64>() * 2.0 - 1.0;
        let c1 = if r.random::<f64>() < 0.3 + 0.3 * t {
            1.0
        } else {
            0.0
        };
        let c2 = ((r.random::<f64>() * 3.0) as usize).min(if c1 > 0.0 { 2 } else { 1 }) as f64;
        x.extend([c1, c2, c1 + c2 + t + 0.5 * normal(&mut r)]);
        theta.push(t);
    }
    let mut q = ConditionalEstimator::new(&EstimatorConfig::mnle(2), &x, &theta, 3, 1, 0).unwrap();
    let tc = TrainConfig {
        max_epochs: Some(15),
        learning_rate: 2e-3,
        ..TrainConfig::default()
    };
    q.train(&x, &theta, &tc, &mut NoObserver).unwrap();
    let t = 0.4;
    let (lo, hi, n) = (-6.0, 9.0, 1501);
    let h = (hi - lo) / (n - 1) as f64;
    let mut masses = Vec::new();
    for c1 in [0.0, 1.0] {
        for c2 in [0.0, 1.0, 2.0] {
            let pts: Vec<f64> = (0..n).flat_map(|i| [c1, c2, lo + h * i as f64]).collect();
            let p: Vec<f64> = q
                .log_prob(&pts, &[t])
                .unwrap()
                .into_iter()
                .map(f64::exp)
                .collect();
            masses.push(h * (p.iter().sum::<f64>() - 0.5 * (p[0] + p[n - 1])));
        }
    }
    let total: f64 = masses.iter().sum();
    eprintln!("two discrete columns: mass {total:.4}, per pair {masses:?}");
    assert!((total - 1.0).abs() < 0.01, "mass {total}");
    // c1 = 0 never has c2 = 2 in the data: the model learns (almost) no mass there.
    assert!(masses[2] < 0.05, "mass of an unseen pair {}", masses[2]);
    let s = q.sample(3000, &[t], 1).unwrap();
    for (k, m) in masses.iter().enumerate() {
        let (c1, c2) = ((k / 3) as f64, (k % 3) as f64);
        let f = s.chunks(3).filter(|r| r[0] == c1 && r[1] == c2).count() as f64 / 3000.0;
        assert!(
            (f - m).abs() < 4.0 * (m * (1.0 - m) / 3000.0).sqrt() + 2e-3,
            "pair ({c1}, {c2}): {f} vs {m}"
        );
    }
}
