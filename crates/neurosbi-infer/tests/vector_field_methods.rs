//! FMPE, NPSE and MNLE chosen by name run through `infer` and recover small posteriors with
//! known answers (their estimators are tested in neurosbi-flows; here: the wiring).

use neurosbi_flows::{NoObserver, TrainConfig};
use neurosbi_infer::{
    IndependentPrior, InferenceConfig, Marginal, Method, MethodOptions, Posterior, PosteriorKind,
    Prior, Quiet, SimRng, SimulationError, Simulator, infer,
};
use rand::RngExt;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// x ~ N(theta, 0.5^2 I) in 2-D; with theta ~ N(0, I) the posterior is N(0.8 x, 0.2 I).
struct Gauss2;
impl Simulator for Gauss2 {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        t: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            for j in 0..2 {
                x[2 * i + j] = t[2 * i + j] + 0.5 * rng.sample::<f64, _>(StandardNormal);
            }
        }
        Ok(())
    }
}

fn normal_prior(d: usize) -> Arc<dyn Prior> {
    Arc::new(
        IndependentPrior::new(vec![
            Marginal::Normal {
                mean: 0.0,
                std: 1.0
            };
            d
        ])
        .unwrap(),
    )
}

fn moments(s: &[f64], d: usize, k: usize) -> (f64, f64) {
    let v: Vec<f64> = s.chunks(d).map(|r| r[k]).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    (m, sd)
}

fn run(
    sim: &dyn Simulator,
    prior: Arc<dyn Prior>,
    name: &str,
    opts: &MethodOptions,
    x_o: &[f64],
    n: usize,
) -> Posterior {
    let method = Method::from_name(name, opts).unwrap();
    let cfg = InferenceConfig {
        method,
        rounds: vec![n],
        train: TrainConfig {
            max_epochs: Some(60),
            ..Default::default()
        },
        seed: 2,
        posterior: Some(PosteriorKind::from_options(&method, opts).unwrap()),
        ..Default::default()
    };
    infer(
        sim,
        prior,
        Some(x_o),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap()
    .0
}

#[test]
fn fmpe_and_npse_recover_a_conjugate_posterior() {
    let x_o = [0.6, -0.4];
    for (name, opts) in [
        ("fmpe", MethodOptions::new()),
        ("npse", MethodOptions::new().with("sde", "vp")),
    ] {
        let post = run(&Gauss2, normal_prior(2), name, &opts, &x_o, 2000);
        assert_eq!(post.kind(), PosteriorKind::Direct);
        // Gradients do not flow through their ODE: VI is refused, by the method and the posterior.
        assert!(Method::from_name(name, &opts.clone().with("posterior", "vi")).is_err());
        let mut post = post;
        assert!(post.set_kind(PosteriorKind::Vi).is_err());
        let d = post.sample(2000, &x_o, 3).unwrap();
        for (k, xk) in x_o.iter().enumerate() {
            let (m, s) = moments(&d.theta, 2, k);
            eprintln!(
                "{name} dim {k}: mean {m:.3} (0.8 x = {:.3}), std {s:.3} (0.447)",
                0.8 * xk
            );
            assert!((m - 0.8 * xk).abs() < 0.15, "{name}: mean {m}");
            assert!((s - 0.2f64.sqrt()).abs() < 0.12, "{name}: std {s}");
        }
    }
}

/// x = (count, value): count ~ Binomial(5, sigmoid(theta)), value ~ N(theta, 0.5^2).
struct Mixed;
fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}
impl Simulator for Mixed {
    fn dim_theta(&self) -> usize {
        1
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        t: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            let p = sigmoid(t[i]);
            x[2 * i] = (0..5).filter(|_| rng.random::<f64>() < p).count() as f64;
            x[2 * i + 1] = t[i] + 0.5 * rng.sample::<f64, _>(StandardNormal);
        }
        Ok(())
    }
}

/// MNLE with one discrete column: the posterior mean matches the exact one from a grid.
#[test]
fn mnle_recovers_a_mixed_data_posterior() {
    let x_o = [4.0, 0.7];
    let opts = MethodOptions::new()
        .with("num_discrete", 1usize)
        .with("posterior", "sir");
    let post = run(&Mixed, normal_prior(1), "mnle", &opts, &x_o, 3000);
    let d = post.sample(2000, &x_o, 3).unwrap();
    let (m, s) = moments(&d.theta, 1, 0);
    // Exact posterior on a grid: N(0,1) prior x Binomial(5, sigmoid) x N(theta, 0.25).
    let (mut z, mut mean, mut sq) = (0.0, 0.0, 0.0);
    for i in 0..4001 {
        let t = -4.0 + i as f64 * 0.002;
        let p = sigmoid(t);
        let w = (-0.5 * t * t).exp()
            * p.powi(4)
            * (1.0 - p)
            * (-0.5 * (x_o[1] - t).powi(2) / 0.25).exp();
        z += w;
        mean += w * t;
        sq += w * t * t;
    }
    let (em, es) = (mean / z, (sq / z - (mean / z).powi(2)).sqrt());
    eprintln!("mnle: mean {m:.3} (exact {em:.3}), std {s:.3} (exact {es:.3})");
    assert!((m - em).abs() < 0.15, "mean {m} vs {em}");
    assert!((s - es).abs() < 0.12, "std {s} vs {es}");
}

/// Simulation-based calibration of FMPE and NPSE (both SDEs) on the conjugate model, trained
/// once and amortised over 100 prior draws: ranks uniform for the trained posteriors, and
/// clearly not for the same draws pulled towards their mean (an overconfident posterior).
#[test]
fn fmpe_and_npse_pass_simulation_based_calibration() {
    use neurosbi_infer::diagnostics::sbc;
    let prior = normal_prior(2);
    for (name, opts) in [
        ("fmpe", MethodOptions::new()),
        ("npse", MethodOptions::new().with("sde", "ve")),
        ("npse", MethodOptions::new().with("sde", "vp")),
    ] {
        let post = run(&Gauss2, prior.clone(), name, &opts, &[0.0, 0.0], 2000);
        // The control reuses the draws of the same round (same seed), pulled 60 % of the way
        // to their mean: ranks pile up in the middle, as for a posterior 2.5x too narrow.
        let kept = std::cell::RefCell::new(std::collections::HashMap::new());
        let draws = |x: &[f64], n: usize, seed: u64| {
            let t = post.sample(n, x, seed)?.theta;
            kept.borrow_mut().insert(seed, t.clone());
            Ok(t)
        };
        let ok = sbc(prior.as_ref(), &Gauss2, &draws, 100, 50, 21).unwrap();
        let shrunk = |x: &[f64], n: usize, seed: u64| {
            let mut t = match kept.borrow_mut().remove(&seed) {
                Some(t) => t,
                None => post.sample(n, x, seed)?.theta,
            };
            for k in 0..2 {
                let m = t.iter().skip(k).step_by(2).sum::<f64>() / n as f64;
                t.iter_mut()
                    .skip(k)
                    .step_by(2)
                    .for_each(|v| *v = m + 0.4 * (*v - m));
            }
            Ok(t)
        };
        let bad = sbc(prior.as_ref(), &Gauss2, &shrunk, 100, 50, 21).unwrap();
        eprintln!(
            "{name} {opts:?}: SBC KS p-values {:?}, chi2 {:?}; overconfident KS {:?}",
            ok.ks_pvalues, ok.chi2_pvalues, bad.ks_pvalues
        );
        assert!(
            ok.ks_pvalues.iter().all(|p| *p > 0.01),
            "{name}: {:?}",
            ok.ks_pvalues
        );
        // 100 ranks are a small sample for KS: every dimension must fail, one clearly.
        assert!(
            bad.ks_pvalues.iter().all(|p| *p < 0.01) && bad.ks_pvalues.iter().any(|p| *p < 1e-3),
            "{name}: {:?}",
            bad.ks_pvalues
        );
    }
}
