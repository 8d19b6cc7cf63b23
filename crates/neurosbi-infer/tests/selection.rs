//! Methods and posterior kinds chosen by name: every name, sbi's defaults, and each bad
//! option naming the option and the method.

use neurosbi_flows::NoObserver;
use neurosbi_infer::{
    IndependentPrior, InferenceConfig, KdeBandwidth, Method, MethodOptions, PosteriorKind, Prior,
    Quiet, SimRng, SimulationError, Simulator, infer,
};
use std::sync::Arc;

fn err(name: &str, o: MethodOptions) -> String {
    Method::from_name(name, &o).unwrap_err().to_string()
}

#[test]
fn every_name_builds_its_method_with_sbi_defaults() {
    let none = MethodOptions::new();
    let cases = [
        ("npe", Method::Npe { num_atoms: 10 }),
        ("SNPE_C", Method::Npe { num_atoms: 10 }),
        ("apt", Method::Npe { num_atoms: 10 }),
        (
            "snpe_a",
            Method::NpeA {
                num_components: 10,
                last_round_only: false,
            },
        ),
        ("npe_b", Method::NpeB),
        ("tsnpe", Method::Tsnpe { epsilon: 1e-4 }),
        ("nle", Method::Nle),
        ("snle", Method::Nle),
        ("mnle", Method::Mnle { num_discrete: 1 }),
        ("nre_a", Method::NreA),
        ("nre_b", Method::NreB { num_atoms: 10 }),
        (
            "nre_c",
            Method::NreC {
                num_classes: 5,
                gamma: 1.0,
            },
        ),
        (
            "bnre",
            Method::Bnre {
                regularization_strength: 100.0,
            },
        ),
        ("fmpe", Method::Fmpe),
        (
            "npse",
            Method::Npse {
                variance_preserving: false,
            },
        ),
        (
            "abc_rejection",
            Method::RejectionAbc {
                quantile: Some(0.01),
                eps: None,
                regression_adjustment: false,
                kde: KdeBandwidth::None,
            },
        ),
        (
            "smc_abc",
            Method::SmcAbc {
                population_size: 1000,
                epsilon_quantile: 0.5,
                kernel_scale: 2.0,
                regression_adjustment: false,
                use_last_pop_samples: true,
                kde: KdeBandwidth::None,
            },
        ),
    ];
    for (name, want) in cases {
        let m = Method::from_name(name, &none).unwrap();
        assert_eq!(m, want, "{name}");
        // The canonical name maps back to the same method.
        assert_eq!(Method::from_name(m.name(), &none).unwrap(), m);
    }
    for (name, _) in neurosbi_infer::METHOD_NAMES {
        Method::from_name(name, &none).unwrap();
    }
}

#[test]
fn options_are_read_and_checked() {
    let m = Method::from_name(
        "nre_c",
        &MethodOptions::new()
            .with("num_classes", 3usize)
            .with("gamma", 0.5),
    )
    .unwrap();
    assert_eq!(
        m,
        Method::NreC {
            num_classes: 3,
            gamma: 0.5
        }
    );
    let m = Method::from_name("npse", &MethodOptions::new().with("sde", "vp")).unwrap();
    assert_eq!(
        m,
        Method::Npse {
            variance_preserving: true
        }
    );
    // One component trains on the last round only unless told otherwise, and vice versa.
    let one = MethodOptions::new().with("num_components", 1usize);
    let m = Method::from_name("npe_a", &one).unwrap();
    assert_eq!(
        m,
        Method::NpeA {
            num_components: 1,
            last_round_only: true
        }
    );
    let m = Method::from_name("npe_a", &one.with("train_on", "all")).unwrap();
    assert_eq!(
        m,
        Method::NpeA {
            num_components: 1,
            last_round_only: false
        }
    );
    let m = Method::from_name("npe_a", &MethodOptions::new().with("train_on", "Last")).unwrap();
    assert_eq!(
        m,
        Method::NpeA {
            num_components: 10,
            last_round_only: true
        }
    );
    let m = Method::from_name("abc_rejection", &MethodOptions::new().with("eps", 0.3)).unwrap();
    assert_eq!(
        m,
        Method::RejectionAbc {
            quantile: None,
            eps: Some(0.3),
            regression_adjustment: false,
            kde: KdeBandwidth::None,
        }
    );
    let m = Method::from_name(
        "smc_abc",
        &MethodOptions::new().with("use_last_pop_samples", false),
    )
    .unwrap();
    assert!(matches!(
        m,
        Method::SmcAbc {
            use_last_pop_samples: false,
            ..
        }
    ));
    let o = MethodOptions::new().with("posterior", "sir");
    let m = Method::from_name("nle", &o).unwrap();
    assert_eq!(
        PosteriorKind::from_options(&m, &o).unwrap(),
        PosteriorKind::Sir
    );
    assert_eq!(
        PosteriorKind::from_options(&m, &MethodOptions::new()).unwrap(),
        PosteriorKind::Mcmc
    );
    assert_eq!(
        PosteriorKind::from_options(&Method::npe(), &MethodOptions::new()).unwrap(),
        PosteriorKind::Direct
    );
}

#[test]
fn bad_options_name_the_option_and_the_method() {
    let e = err("nle", MethodOptions::new().with("num_atoms", 5usize));
    assert!(e.contains("num_atoms") && e.contains("nle"), "{e}");
    let e = err("nre_a", MethodOptions::new().with("gamma", 2.0));
    assert!(e.contains("gamma") && e.contains("nre_a"), "{e}");
    let e = err("nre_c", MethodOptions::new().with("gamma", -1.0));
    assert!(e.contains("gamma") && e.contains("nre_c"), "{e}");
    let e = err("nre_c", MethodOptions::new().with("num_classes", 2.5));
    assert!(e.contains("num_classes") && e.contains("nre_c"), "{e}");
    let e = err("npe", MethodOptions::new().with("num_atoms", 1usize));
    assert!(e.contains("num_atoms") && e.contains("npe"), "{e}");
    let e = err("tsnpe", MethodOptions::new().with("epsilon", 1.5));
    assert!(e.contains("epsilon") && e.contains("tsnpe"), "{e}");
    let e = err(
        "bnre",
        MethodOptions::new().with("regularization_strength", "big"),
    );
    assert!(
        e.contains("regularization_strength") && e.contains("bnre"),
        "{e}"
    );
    let e = err(
        "smc_abc",
        MethodOptions::new().with("use_last_pop_samples", "yes"),
    );
    assert!(
        e.contains("use_last_pop_samples") && e.contains("smc_abc"),
        "{e}"
    );
    let e = err("npe_a", MethodOptions::new().with("train_on", "first"));
    assert!(e.contains("train_on") && e.contains("npe_a"), "{e}");
    let e = err("npse", MethodOptions::new().with("sde", "subvp"));
    assert!(e.contains("sde") && e.contains("npse"), "{e}");
    let e = err(
        "abc_rejection",
        MethodOptions::new().with("eps", 0.1).with("quantile", 0.1),
    );
    assert!(e.contains("eps") && e.contains("abc_rejection"), "{e}");
    let e = err("nle", MethodOptions::new().with("posterior", "direct"));
    assert!(
        e.contains("posterior") && e.contains("nle") && e.contains("direct"),
        "{e}"
    );
    let e = err("npe_a", MethodOptions::new().with("posterior", "direct"));
    assert!(e.contains("posterior") && e.contains("npe_a"), "{e}");
    let e = err("smc_abc", MethodOptions::new().with("posterior", "mcmc"));
    assert!(e.contains("posterior") && e.contains("smc_abc"), "{e}");
    let e = err("npe", MethodOptions::new().with("posterior", "laplace"));
    assert!(e.contains("posterior") && e.contains("laplace"), "{e}");
    let e = err("snpe_d", MethodOptions::new());
    assert!(e.contains("snpe_d") && e.contains("nre_c"), "{e}");
    assert!(PosteriorKind::from_name("gibbs").is_err());
    for k in PosteriorKind::ALL {
        assert_eq!(PosteriorKind::from_name(k.name()).unwrap(), k);
    }
}

struct Shift;
impl Simulator for Shift {
    fn dim_theta(&self) -> usize {
        1
    }
    fn dim_x(&self) -> usize {
        1
    }
    fn simulate(&self, t: &[f64], _: &mut [SimRng], x: &mut [f64]) -> Result<(), SimulationError> {
        x.copy_from_slice(t);
        Ok(())
    }
}

/// A posterior kind the method cannot build is refused before any simulation runs.
#[test]
fn infer_refuses_a_kind_the_method_cannot_build() {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform(&[0.0], &[1.0]).unwrap());
    let cfg = InferenceConfig {
        method: Method::Nle,
        posterior: Some(PosteriorKind::Direct),
        ..Default::default()
    };
    let e = infer(
        &Shift,
        prior.clone(),
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("posterior") && e.contains("nle"), "{e}");
    // ABC needs the observation.
    let cfg = InferenceConfig {
        method: Method::from_name("abc_rejection", &MethodOptions::new()).unwrap(),
        ..Default::default()
    };
    let e = infer(
        &Shift,
        prior.clone(),
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("abc_rejection") && e.contains("observation"),
        "{e}"
    );
    // Score and flow matching estimators run one round.
    let cfg = InferenceConfig {
        method: Method::Fmpe,
        rounds: vec![100, 100],
        ..Default::default()
    };
    let e = infer(
        &Shift,
        prior,
        Some(&[0.5]),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fmpe"), "{e}");
}

/// x = theta + N(0, 0.1^2) in 1-D, theta ~ U(0, 1).
struct Noisy;
impl Simulator for Noisy {
    fn dim_theta(&self) -> usize {
        1
    }
    fn dim_x(&self) -> usize {
        1
    }
    fn simulate(
        &self,
        t: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        use rand::RngExt;
        for (i, rng) in rngs.iter_mut().enumerate() {
            x[i] = t[i] + 0.1 * rng.sample::<f64, _>(rand_distr::StandardNormal);
        }
        Ok(())
    }
}

/// ABC by name through `infer`: a posterior of weighted samples for its observation, which
/// resamples, has no density, refuses another observation and survives save / load.
#[test]
fn abc_runs_by_name_through_infer() {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform(&[0.0], &[1.0]).unwrap());
    let x_o = [0.4];
    for (name, opts) in [
        ("abc_rejection", MethodOptions::new().with("quantile", 0.02)),
        (
            "smc_abc",
            MethodOptions::new().with("population_size", 200usize),
        ),
    ] {
        let cfg = InferenceConfig {
            method: Method::from_name(name, &opts).unwrap(),
            rounds: vec![10_000],
            ..Default::default()
        };
        let (post, rep) = infer(
            &Noisy,
            prior.clone(),
            Some(&x_o),
            &cfg,
            None,
            &mut Quiet,
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(rep.valid_per_round.iter().sum::<usize>(), 10_000, "{name}");
        let d = post.sample(2000, &x_o, 1).unwrap();
        let m = d.theta.iter().sum::<f64>() / 2000.0;
        // The exact posterior is close to N(0.4, 0.1^2); ABC is a bit wider.
        assert!((m - 0.4).abs() < 0.03, "{name}: mean {m}");
        assert!(d.ess.unwrap() > 100.0, "{name}: ess {:?}", d.ess);
        assert!(post.log_prob(&[0.4], &x_o).is_err());
        assert!(post.sample(10, &[0.5], 1).is_err());
        let dir = std::env::temp_dir().join(format!("neurosbi-abc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        post.save(&dir).unwrap();
        let back = neurosbi_infer::Posterior::load(&dir).unwrap();
        assert_eq!(
            back.sample(100, &x_o, 2).unwrap(),
            post.sample(100, &x_o, 2).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A prior without a serialisable spec (a user type).
struct UserPrior;
impl Prior for UserPrior {
    fn dim(&self) -> usize {
        1
    }
    fn sample_into(&self, rng: &mut SimRng, out: &mut [f64]) {
        use rand::RngExt;
        out[0] = rng.random::<f64>();
    }
    fn log_prob(&self, t: &[f64]) -> f64 {
        if (0.0..=1.0).contains(&t[0]) {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    }
    fn unconstrain(&self, t: &[f64], u: &mut [f64]) {
        u[0] = (t[0] / (1.0 - t[0])).ln();
    }
    fn constrain(&self, u: &[f64], t: &mut [f64]) -> f64 {
        let s = 1.0 / (1.0 + (-u[0]).exp());
        t[0] = s;
        (s * (1.0 - s)).ln()
    }
}

/// An untrained NPE posterior: enough to exercise the samplers' checks.
fn untrained(prior: Arc<dyn Prior>) -> neurosbi_infer::Posterior {
    let theta: Vec<f64> = (0..50).map(|i| (i as f64 + 0.5) / 50.0).collect();
    let e = neurosbi_flows::ConditionalEstimator::new(
        &neurosbi_flows::EstimatorConfig::mdn(),
        &theta,
        &theta,
        1,
        1,
        0,
    )
    .unwrap();
    neurosbi_infer::Posterior::new(prior, neurosbi_infer::Estimator::Npe(e)).unwrap()
}

#[test]
fn bad_sampler_settings_are_errors_naming_them() {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform(&[0.0], &[1.0]).unwrap());
    let x = [0.5];
    let mut p = untrained(prior.clone());
    p.set_kind(PosteriorKind::Sir).unwrap();
    p.settings.sir_oversampling = 0;
    let e = p.sample(10, &x, 0).unwrap_err().to_string();
    assert!(e.contains("sir_oversampling"), "{e}");
    p.set_kind(PosteriorKind::Rejection).unwrap();
    p.settings.rejection.bound_factor = 0.5;
    let e = p.sample(10, &x, 0).unwrap_err().to_string();
    assert!(e.contains("rejection") && e.contains("bound_factor"), "{e}");
    p.set_kind(PosteriorKind::Vi).unwrap();
    p.settings.vi.num_particles = 1;
    let e = p.sample(10, &x, 0).unwrap_err().to_string();
    assert!(e.contains("vi.num_particles"), "{e}");
    // Variational inference needs a built-in prior.
    let mut u = untrained(Arc::new(UserPrior));
    u.set_kind(PosteriorKind::Vi).unwrap();
    let e = u.sample(10, &x, 0).unwrap_err().to_string();
    assert!(e.contains("built-in prior"), "{e}");
    // Ensembles need members of one shape.
    let two: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform(&[0.0; 2], &[1.0; 2]).unwrap());
    let theta2: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) / 100.0).collect();
    let e2 = neurosbi_flows::ConditionalEstimator::new(
        &neurosbi_flows::EstimatorConfig::mdn(),
        &theta2,
        &theta2[..50],
        2,
        1,
        0,
    )
    .unwrap();
    let p2 = neurosbi_infer::Posterior::new(two, neurosbi_infer::Estimator::Npe(e2)).unwrap();
    let e = neurosbi_infer::Posterior::ensemble(vec![untrained(prior.clone()), p2], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ensemble member 1"), "{e}");
    let e =
        neurosbi_infer::Posterior::ensemble(vec![untrained(prior.clone())], Some(vec![1.0, 2.0]))
            .unwrap_err()
            .to_string();
    assert!(e.contains("ensemble weights"), "{e}");
    // A kind the estimator cannot build, and ABC samples without weights.
    let nle = neurosbi_flows::ConditionalEstimator::new(
        &neurosbi_flows::EstimatorConfig::mdn(),
        &theta2[..50],
        &theta2[..50],
        1,
        1,
        0,
    )
    .unwrap();
    let mut q =
        neurosbi_infer::Posterior::new(prior.clone(), neurosbi_infer::Estimator::Nle(nle)).unwrap();
    let e = q.set_kind(PosteriorKind::Direct).unwrap_err().to_string();
    assert!(e.contains("nle") && e.contains("direct"), "{e}");
    let e = neurosbi_infer::Posterior::from_samples(prior, &x, &[0.1, 0.2], &[0.5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("weights"), "{e}");
}
