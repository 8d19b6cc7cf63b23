use neurosbi_infer::mcmc::{
    LogDensity, SliceConfig, sample_posterior_mcmc, slice_sample, split_rhat,
};
use neurosbi_infer::{IndependentPrior, InferError};

/// Means of each chain for dimension k: chains are independent, so their spread gives an honest
/// Monte Carlo standard error whatever the autocorrelation.
fn chain_stat(chains: &[Vec<f64>], d: usize, f: impl Fn(&[f64]) -> f64) -> (f64, f64) {
    let per: Vec<f64> = chains
        .iter()
        .map(|c| {
            let rows: Vec<&[f64]> = c.chunks(d).collect();
            rows.iter().map(|r| f(r)).sum::<f64>() / rows.len() as f64
        })
        .collect();
    let m = per.iter().sum::<f64>() / per.len() as f64;
    let sd = (per.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (per.len() as f64 - 1.0)).sqrt();
    (m, sd / (per.len() as f64).sqrt())
}

/// A statistic of one draw whose expectation is checked.
type Stat = Box<dyn Fn(&[f64]) -> f64>;

struct CorrGauss {
    rho: f64,
    s: [f64; 2],
}

impl LogDensity for CorrGauss {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, p: &[f64], out: &mut [f64]) {
        for (o, r) in out.iter_mut().zip(p.chunks(2)) {
            let (a, b) = (r[0] / self.s[0], (r[1] - 1.0) / self.s[1]);
            *o = -0.5 * (a * a - 2.0 * self.rho * a * b + b * b) / (1.0 - self.rho * self.rho);
        }
    }
}

#[test]
fn correlated_gaussian_moments_within_monte_carlo_error() {
    let t = CorrGauss {
        rho: 0.8,
        s: [1.0, 2.0],
    };
    let init: Vec<f64> = (0..20).flat_map(|i| [i as f64 * 0.1 - 1.0, 0.5]).collect();
    let cfg = SliceConfig {
        seed: 3,
        ..Default::default()
    };
    let out = slice_sample(&t, &init, 20 * 1500, &cfg).unwrap();
    assert!(out.rhat.iter().all(|r| *r < 1.05), "rhat {:?}", out.rhat);
    let checks: [(&str, f64, Stat); 5] = [
        ("mean0", 0.0, Box::new(|r| r[0])),
        ("mean1", 1.0, Box::new(|r| r[1])),
        ("var0", 1.0, Box::new(|r| r[0] * r[0])),
        ("var1", 4.0, Box::new(|r| (r[1] - 1.0).powi(2))),
        ("cov", 0.8 * 2.0, Box::new(|r| r[0] * (r[1] - 1.0))),
    ];
    for (name, want, f) in checks {
        let (m, se) = chain_stat(&out.chains, 2, f);
        assert!(
            se < 0.1 * want.abs().max(1.0),
            "{name}: SE {se} too large for a meaningful test"
        );
        assert!(
            (m - want).abs() < 4.5 * se,
            "{name}: {m} vs {want} (SE {se})"
        );
    }
}

/// Banana (Haario et al. 1999): theta_1 ~ N(0, 1), theta_2 | theta_1 ~ N(b (theta_1^2 - 1), 0.5^2),
/// so E[theta_2] = 0 and Var[theta_2] = 2 b^2 + 0.25.
struct Banana {
    b: f64,
}

impl LogDensity for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, p: &[f64], out: &mut [f64]) {
        for (o, r) in out.iter_mut().zip(p.chunks(2)) {
            let m = self.b * (r[0] * r[0] - 1.0);
            *o = -0.5 * r[0] * r[0] - 0.5 * ((r[1] - m) / 0.5).powi(2);
        }
    }
}

#[test]
fn banana_moments_within_monte_carlo_error() {
    let t = Banana { b: 1.0 };
    let init: Vec<f64> = (0..20).flat_map(|i| [i as f64 * 0.1 - 1.0, 0.0]).collect();
    let out = slice_sample(
        &t,
        &init,
        20 * 2000,
        &SliceConfig {
            seed: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let checks: [(&str, f64, Stat); 4] = [
        ("mean0", 0.0, Box::new(|r| r[0])),
        ("mean1", 0.0, Box::new(|r| r[1])),
        ("var0", 1.0, Box::new(|r| r[0] * r[0])),
        ("var1", 2.25, Box::new(|r| r[1] * r[1])),
    ];
    for (name, want, f) in checks {
        let (m, se) = chain_stat(&out.chains, 2, f);
        assert!(se < 0.15 * want.abs().max(1.0), "{name}: SE {se}");
        assert!(
            (m - want).abs() < 4.5 * se,
            "{name}: {m} vs {want} (SE {se})"
        );
    }
}

#[test]
fn bounded_target_sampled_in_unconstrained_space_stays_in_support() {
    // Target = prior U(0, 1)^2 times a Gaussian bump near the corner; exact marginal mean by
    // quadrature of the truncated normal.
    let prior = IndependentPrior::uniform_box(2, 0.0, 1.0).unwrap();
    let t = (2usize, |p: &[f64], out: &mut [f64]| {
        for (o, r) in out.iter_mut().zip(p.chunks(2)) {
            *o = -0.5 * ((r[0] - 0.9).powi(2) + (r[1] - 0.9).powi(2)) / 0.04;
        }
    });
    let out = sample_posterior_mcmc(
        &prior,
        &t,
        20 * 1000,
        &SliceConfig {
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let s = out.samples(20_000);
    assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    let n = 100_000;
    let (mut z, mut m) = (0.0, 0.0);
    for i in 0..n {
        let x = (i as f64 + 0.5) / n as f64;
        let w = (-0.5 * (x - 0.9f64).powi(2) / 0.04).exp();
        z += w;
        m += w * x;
    }
    let exact = m / z;
    let (mean, se) = chain_stat(&out.chains, 2, |r| r[0]);
    assert!(
        (mean - exact).abs() < 4.5 * se && se < 0.01,
        "{mean} vs {exact} (SE {se})"
    );
}

#[test]
fn split_rhat_flags_chains_that_disagree() {
    let good: Vec<Vec<f64>> = (0..4)
        .map(|c| (0..200).map(|i| ((i * 7 + c * 3) % 11) as f64).collect())
        .collect();
    let mut bad = good.clone();
    bad[0].iter_mut().for_each(|v| *v += 20.0);
    assert!(split_rhat(&good, 1)[0] < 1.05);
    assert!(split_rhat(&bad, 1)[0] > 1.5);
}

#[test]
fn mcmc_bad_input_is_a_typed_error() {
    let t = Banana { b: 1.0 };
    let e = slice_sample(
        &t,
        &[0.0; 6],
        10,
        &SliceConfig {
            num_chains: 2,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::RowMismatch {
                left: 3,
                right: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = slice_sample(&t, &[0.0; 5], 10, &SliceConfig::default()).unwrap_err();
    assert!(matches!(e, InferError::RaggedBuffer { .. }), "{e}");
}

/// Four narrow modes at (+-3, +-3, 0, 0) with unequal masses, under a U(-10, 10)^4 prior: each
/// mode holds about 1e-9 of the prior's volume, so no prior candidate lands in one and SIR alone
/// would start every chain in the mode of one lucky candidate.
fn four_narrow_modes() -> (usize, impl Fn(&[f64], &mut [f64]) + Sync) {
    const W: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
    (4usize, |p: &[f64], out: &mut [f64]| {
        for (o, r) in out.iter_mut().zip(p.chunks(4)) {
            // Log-sum-exp, so that far from every mode the density stays finite.
            let mut terms = [0.0; 4];
            for (m, w) in W.iter().enumerate() {
                let c = [
                    if m & 1 == 0 { 3.0 } else { -3.0 },
                    if m & 2 == 0 { 3.0 } else { -3.0 },
                    0.0,
                    0.0,
                ];
                let q: f64 = r.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
                terms[m] = w.ln() - 0.5 * q / 0.05f64.powi(2);
            }
            let mx = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            *o = mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln();
        }
    })
}

fn mode_of(r: &[f64]) -> usize {
    usize::from(r[0] < 0.0) + 2 * usize::from(r[1] < 0.0)
}

#[test]
fn narrow_separated_modes_keep_their_weights() {
    let prior = IndependentPrior::uniform_box(4, -10.0, 10.0).unwrap();
    let t = four_narrow_modes();
    let cfg = SliceConfig {
        num_chains: 200,
        warmup: 50,
        seed: 4,
        ..Default::default()
    };
    let out = sample_posterior_mcmc(&prior, &t, 200 * 20, &cfg).unwrap();
    let init = out
        .init
        .as_ref()
        .expect("sample_posterior_mcmc reports its start");
    assert!(init.stages > 0, "SIR should not suffice here: {init:?}");
    let s = out.samples(4000);
    let mut share = [0.0f64; 4];
    for r in s.chunks(4) {
        share[mode_of(r)] += 1.0 / 4000.0;
    }
    eprintln!("shares {share:?} init {init:?}");
    // 200 chains drawn from 1000 particles: about 0.04 of standard error per share.
    for (got, want) in share.iter().zip([0.4, 0.3, 0.2, 0.1]) {
        assert!((got - want).abs() < 0.12, "mode shares {share:?}");
    }
    // Within a mode the draws are the mode's Gaussian.
    let near: Vec<&[f64]> = s.chunks(4).filter(|r| mode_of(r) == 0).collect();
    let var = near.iter().map(|r| (r[2]).powi(2)).sum::<f64>() / near.len() as f64;
    assert!((var.sqrt() - 0.05).abs() < 0.01, "sd {}", var.sqrt());
}

#[test]
fn broad_targets_start_from_sir_alone() {
    let prior = IndependentPrior::uniform_box(2, -5.0, 5.0).unwrap();
    let t = CorrGauss {
        rho: 0.5,
        s: [1.0, 1.5],
    };
    let out = sample_posterior_mcmc(&prior, &t, 2000, &SliceConfig::default()).unwrap();
    let init = out.init.unwrap();
    assert_eq!(init.stages, 0, "{init:?}");
    assert!(init.ess >= 20.0, "{init:?}");
    assert_eq!(init.candidates, 10_000);
}
