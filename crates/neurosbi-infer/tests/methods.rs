use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig,
};
use neurosbi_infer::{
    Estimator, Fingerprint, FromPrior, IndependentPrior, InferError, InferenceConfig, Marginal,
    Method, POSTERIOR_FORMAT_VERSION, Posterior, Prior, Quiet, RunConfig, SimRng, SimulationError,
    Simulator, Store, infer, simulate, train_npe,
};
use rand::RngExt;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// x ~ N(theta, s^2 I) in 2-D.
struct Gauss2(f64);
impl Simulator for Gauss2 {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            for j in 0..2 {
                x[2 * i + j] = theta[2 * i + j] + self.0 * rng.sample::<f64, _>(StandardNormal);
            }
        }
        Ok(())
    }
}

fn small_maf() -> EstimatorConfig {
    EstimatorConfig {
        hidden_features: 20,
        num_transforms: 2,
        ..EstimatorConfig::maf()
    }
}

fn quick_train() -> TrainConfig {
    TrainConfig {
        max_epochs: Some(40),
        ..Default::default()
    }
}

fn normal_prior() -> Arc<dyn Prior> {
    Arc::new(
        IndependentPrior::new(vec![
            Marginal::Normal {
                mean: 0.0,
                std: 1.0
            };
            2
        ])
        .unwrap(),
    )
}

fn mean_std(s: &[f64], k: usize) -> (f64, f64) {
    let v: Vec<f64> = s.chunks(2).map(|r| r[k]).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
    )
}

/// Conjugate check: theta ~ N(0, I), x ~ N(theta, 0.5^2 I) => posterior N(0.8 x, 0.2 I).
/// Ratio estimators trained briefly on few simulations come out wider than the truth, so their
/// standard deviation gets a looser (but still informative: the prior has std 1) tolerance.
fn check_conjugate(post: &Posterior, x_o: &[f64], tol_mean: f64, tol_std: f64, name: &str) {
    let d = post.sample(1000, x_o, 9).unwrap();
    if let Some(rhat) = &d.rhat {
        assert!(rhat.iter().all(|r| *r < 1.1), "{name}: rhat {rhat:?}");
    }
    for (k, xk) in x_o.iter().enumerate() {
        let (m, s) = mean_std(&d.theta, k);
        assert!(
            (m - 0.8 * xk).abs() < tol_mean,
            "{name} dim {k}: mean {m} vs {}",
            0.8 * xk
        );
        assert!(
            (s - 0.2f64.sqrt()).abs() < tol_std,
            "{name} dim {k}: std {s} vs {}",
            0.2f64.sqrt()
        );
    }
    // The posterior is Gaussian, so its mode is its mean.
    let map = post.map(x_o, 2).unwrap();
    for k in 0..2 {
        assert!((map[k] - 0.8 * x_o[k]).abs() < 0.2, "{name}: MAP {map:?}");
    }
}

#[test]
fn single_round_nle_and_nre_recover_the_conjugate_posterior_with_mcmc() {
    let x_o = [0.5, -0.7];
    for (method, name) in [
        (Method::Nle, "nle"),
        (Method::NreB { num_atoms: 10 }, "nre-b"),
        (Method::NreA, "nre-a"),
    ] {
        let cfg = InferenceConfig {
            method,
            rounds: vec![2000],
            estimator: small_maf(),
            classifier: ClassifierConfig {
                hidden_features: 32,
                ..ClassifierConfig::mlp()
            },
            train: quick_train(),
            seed: 4,
            ..Default::default()
        };
        let (post, rep) = infer(
            &Gauss2(0.5),
            normal_prior(),
            Some(&x_o),
            &cfg,
            None,
            &mut Quiet,
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(rep.valid_per_round, vec![2000]);
        let tol_std = if name == "nle" { 0.12 } else { 0.2 };
        check_conjugate(&post, &x_o, 0.2, tol_std, name);
    }
}

#[test]
fn apt_and_tsnpe_two_rounds_recover_the_conjugate_posterior() {
    let x_o = [1.0, 0.3];
    let dir = std::env::temp_dir().join(format!("neurosbi-infer-{}-apt-store", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (method, name) in [
        (Method::npe(), "apt"),
        (Method::Tsnpe { epsilon: 1e-4 }, "tsnpe"),
    ] {
        let mut store = Store::create(dir.join(name), 2, 2, Fingerprint::new()).unwrap();
        let cfg = InferenceConfig {
            method,
            rounds: vec![1000, 1000],
            estimator: small_maf(),
            train: quick_train(),
            seed: 5,
            ..Default::default()
        };
        let (post, rep) = infer(
            &Gauss2(0.5),
            normal_prior(),
            Some(&x_o),
            &cfg,
            Some(&mut store),
            &mut Quiet,
            &mut NoObserver,
        )
        .unwrap();
        assert_eq!(rep.train.len(), 2);
        // Every simulation paid for is kept in the store, round by round.
        assert_eq!(store.rounds().len(), 2);
        assert_eq!(store.load().unwrap().len(), 2000);
        check_conjugate(&post, &x_o, 0.15, 0.12, name);
    }
}

/// The run's MCMC settings reach every sequential round's proposal and the returned
/// posterior (sbibm's SNLE protocol uses 100 chains, thin 10, warm-up 25).
#[test]
fn sequential_nle_uses_the_run_mcmc_settings() {
    let x_o = [0.5, -0.2];
    let mcmc = neurosbi_infer::mcmc::SliceConfig {
        num_chains: 6,
        thin: 2,
        warmup: 30,
        ..Default::default()
    };
    let cfg = InferenceConfig {
        method: Method::Nle,
        rounds: vec![300, 300],
        estimator: small_maf(),
        train: quick_train(),
        seed: 9,
        mcmc: mcmc.clone(),
        ..Default::default()
    };
    let (post, rep) = infer(
        &Gauss2(0.5),
        normal_prior(),
        Some(&x_o),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap();
    assert_eq!(rep.train.len(), 2);
    let got = &post.settings.mcmc;
    assert_eq!(
        (got.num_chains, got.thin, got.warmup),
        (mcmc.num_chains, mcmc.thin, mcmc.warmup)
    );
    let draws = post.sample(60, &x_o, 3).unwrap();
    assert_eq!(draws.theta.len(), 120);
    // Six chains: one split-R-hat per dimension.
    assert_eq!(draws.rhat.as_ref().map(|r| r.len()), Some(2));
}

#[test]
fn multi_round_needs_a_valid_observation() {
    let cfg = InferenceConfig {
        rounds: vec![100, 100],
        ..Default::default()
    };
    let e = infer(
        &Gauss2(0.5),
        normal_prior(),
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(matches!(e, InferError::InvalidArgument { .. }), "{e}");
    let e = infer(
        &Gauss2(0.5),
        normal_prior(),
        Some(&[f64::NAN, 0.0]),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(matches!(e, InferError::NonFinite { index: 0, .. }), "{e}");
    let e = infer(
        &Gauss2(0.5),
        normal_prior(),
        Some(&[0.0]),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::DimMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    let p3: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform_box(3, 0.0, 1.0).unwrap());
    let e = infer(
        &Gauss2(0.5),
        p3,
        None,
        &InferenceConfig::default(),
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::DimMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn all_invalid_simulations_and_mismatched_training_data_are_typed_errors() {
    struct Broken;
    impl Simulator for Broken {
        fn dim_theta(&self) -> usize {
            2
        }
        fn dim_x(&self) -> usize {
            2
        }
        fn simulate(
            &self,
            _: &[f64],
            _: &mut [SimRng],
            _: &mut [f64],
        ) -> Result<(), SimulationError> {
            Err(SimulationError("solver diverged".into()))
        }
    }
    let cfg = InferenceConfig {
        rounds: vec![50],
        ..Default::default()
    };
    let e = infer(
        &Broken,
        normal_prior(),
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(
        matches!(&e, InferError::AllSimulationsInvalid { n: 50, first_error } if first_error == "solver diverged"),
        "{e}"
    );
    let e = train_npe(
        normal_prior(),
        &[0.0; 20],
        &[0.0; 18],
        2,
        &small_maf(),
        &quick_train(),
        &mut NoObserver,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::RowMismatch {
                left: 10,
                right: 9,
                ..
            }
        ),
        "{e}"
    );
}

/// Fails (NaN) wherever theta_1 is above `cut`, so the failure fraction is known.
struct FailsAbove(f64);
impl Simulator for FailsAbove {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        theta: &[f64],
        _: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (t, xi) in theta.chunks(2).zip(x.chunks_mut(2)) {
            xi[0] = t[0];
            xi[1] = if t[1] > self.0 { f64::NAN } else { t[1] };
        }
        Ok(())
    }
}

/// [`FailsAbove`] whose outputs have names: the reasons name the output.
struct Named(FailsAbove);
impl Simulator for Named {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(&self, t: &[f64], r: &mut [SimRng], x: &mut [f64]) -> Result<(), SimulationError> {
        self.0.simulate(t, r, x)
    }
    fn x_names(&self) -> Vec<String> {
        vec!["rate".into(), "cycle_period".into()]
    }
}

#[test]
fn invalid_simulations_are_counted_by_the_name_of_their_output() {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform_box(2, 0.0, 1.0).unwrap());
    let cfg = InferenceConfig {
        rounds: vec![2000],
        ..Default::default()
    };
    let e = infer(
        &Named(FailsAbove(0.005)),
        prior,
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("x undefined or non-finite output x[1] (cycle_period)"),
        "{e}"
    );
}

#[test]
fn a_round_that_is_almost_all_invalid_stops_naming_where_the_model_fails() {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform_box(2, 0.0, 1.0).unwrap());
    let cfg = InferenceConfig {
        rounds: vec![2000],
        ..Default::default()
    };
    let run = |sim: &FailsAbove| {
        infer(
            sim,
            prior.clone(),
            None,
            &cfg,
            None,
            &mut Quiet,
            &mut NoObserver,
        )
    };
    // 99.5 % invalid: an error with the counts, the reason and the deciding parameter.
    let e = run(&FailsAbove(0.005)).unwrap_err();
    let InferError::TooManyInvalid { report, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        report.fraction() > 0.99 && report.regions[0].index == 1,
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("x non-finite output x[1]")
            && text.contains("valid only for parameter 2 in [0.00"),
        "{text}"
    );
    // 40 % invalid: it trains, and the report says how many and where.
    let cfg = InferenceConfig {
        rounds: vec![300],
        train: quick_train(),
        estimator: small_maf(),
        ..Default::default()
    };
    let (_, rep) = infer(
        &FailsAbove(0.6),
        prior.clone(),
        None,
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap();
    let inv = rep.invalid.expect("an invalid report");
    assert!((0.3..0.5).contains(&inv.fraction()), "{}", inv.fraction());
    assert_eq!(inv.regions[0].index, 1);
    assert_eq!(inv.regions[0].invalid_rate[0], 0.0);
    assert_eq!(inv.regions[0].invalid_rate[3], 1.0);
}

/// theta ~ U(0, 1)^2, x ~ N(theta, 0.3^2): for x_o near the corner much of q(theta | x_o) leaks
/// outside the box.
fn boxed_npe() -> (Posterior, Arc<dyn Prior>) {
    let prior: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform_box(2, 0.0, 1.0).unwrap());
    let sims = simulate(
        &Gauss2(0.3),
        &FromPrior(prior.as_ref()),
        3000,
        &RunConfig {
            seed: 2,
            ..Default::default()
        },
        &mut Quiet,
    )
    .unwrap();
    let (post, _) = train_npe(
        prior.clone(),
        &sims.theta,
        &sims.x,
        2,
        &small_maf(),
        &quick_train(),
        &mut NoObserver,
    )
    .unwrap();
    (post, prior)
}

#[test]
fn npe_posterior_rejection_leakage_map_batching_and_persistence() {
    let (post, _) = boxed_npe();
    let x_o = [1.1, 0.9];
    let d = post.sample(2000, &x_o, 1).unwrap();
    assert_eq!(d.theta.len(), 4000);
    assert!(d.theta.chunks(2).all(|r| post.prior().in_support(r)));
    assert!(
        d.acceptance_rate < 0.99 && d.acceptance_rate > 0.05,
        "{}",
        d.acceptance_rate
    );
    assert!(d.warning.is_none());
    // Same seed, same draws.
    assert_eq!(post.sample(2000, &x_o, 1).unwrap(), d);

    // The leakage-corrected density integrates to one over the box (midpoint rule).
    let g = 80;
    let grid: Vec<f64> = (0..g * g)
        .flat_map(|i| {
            [
                ((i / g) as f64 + 0.5) / g as f64,
                ((i % g) as f64 + 0.5) / g as f64,
            ]
        })
        .collect();
    let lp = post.log_prob(&grid, &x_o).unwrap();
    let integral: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() / (g * g) as f64;
    assert!(
        (integral - 1.0).abs() < 0.05,
        "integral of corrected density {integral}"
    );
    assert_eq!(
        post.log_prob(&[1.5, 0.5], &x_o).unwrap()[0],
        f64::NEG_INFINITY
    );

    // MAP: inside the support and at least as good as the best of many posterior draws.
    let map = post.map(&x_o, 3).unwrap();
    assert!(post.prior().in_support(&map));
    let best = post
        .potential(&d.theta, &x_o)
        .unwrap()
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(post.potential(&map, &x_o).unwrap()[0] >= best, "{map:?}");

    // Batched sampling for several observations.
    let xs = [0.2, 0.2, 0.8, 0.5];
    let b = post.sample_batched(500, &xs, 4).unwrap();
    assert_eq!(b.len(), 2);
    assert!(mean_std(&b[0].theta, 0).0 < mean_std(&b[1].theta, 0).0);

    // Bad observations.
    assert!(matches!(
        post.sample(10, &[f64::NAN, 0.0], 0),
        Err(InferError::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        post.sample(10, &[0.0; 3], 0),
        Err(InferError::DimMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));

    // Save / load: same densities and draws.
    let dir = std::env::temp_dir().join(format!("neurosbi-infer-{}-posterior", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    post.save(&dir).unwrap();
    let loaded = Posterior::load(&dir).unwrap();
    assert_eq!(
        loaded.potential(&grid[..200], &x_o).unwrap(),
        post.potential(&grid[..200], &x_o).unwrap()
    );
    assert_eq!(
        loaded.sample(100, &x_o, 5).unwrap(),
        post.sample(100, &x_o, 5).unwrap()
    );
    let meta = dir.join("posterior.meta");
    let mut bytes = std::fs::read(&meta).unwrap();
    assert_eq!(bytes[0] as u32, POSTERIOR_FORMAT_VERSION);
    bytes[0] = 7;
    std::fs::write(&meta, bytes).unwrap();
    assert!(matches!(
        Posterior::load(&dir),
        Err(InferError::FormatVersion { found: 7, .. })
    ));

    // A much narrower prior around the same estimator: almost everything is rejected and the
    // low acceptance is reported.
    let est = ConditionalEstimator::load(&dir.join("estimator.safetensors")).unwrap();
    let narrow: Arc<dyn Prior> = Arc::new(IndependentPrior::uniform_box(2, 0.0, 0.05).unwrap());
    let p2 = Posterior::new(narrow, Estimator::Npe(est)).unwrap();
    let d2 = p2.sample(20, &[0.3, 0.3], 6).unwrap();
    assert!(d2.acceptance_rate < 0.01, "{}", d2.acceptance_rate);
    assert!(
        d2.warning
            .as_deref()
            .is_some_and(|w| w.contains("prior support"))
    );
}

/// The APT atomic loss equals `-mean_i [l_i0 - logsumexp_j l_ij]` with
/// `l_ij = log q(theta_{(i+j) mod B} | x_i) - log prior(theta_{(i+j) mod B})`, computed here
/// independently through the f64 `log_prob` API; more atoms than rows clamp to the batch.
#[test]
fn apt_atomic_loss_matches_a_direct_computation() {
    use neurosbi_flows::candle_core::{Device, Tensor};
    use neurosbi_infer::methods::apt_atomic_loss;
    let prior = normal_prior();
    let b = 7;
    let theta: Vec<f64> = (0..2 * b)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 4.0)
        .collect();
    let x: Vec<f64> = (0..2 * b)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0)
        .collect();
    let est = ConditionalEstimator::new(&small_maf(), &theta, &x, 2, 2, 3).unwrap();
    // f32 tensors, as the training loop hands them to the loss.
    let t32: Vec<f32> = theta.iter().map(|&v| v as f32).collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let tt = Tensor::from_vec(t32.clone(), (b, 2), &Device::Cpu).unwrap();
    let xt = Tensor::from_vec(x32.clone(), (b, 2), &Device::Cpu).unwrap();
    let direct = |k: usize| -> f64 {
        let mut total = 0.0;
        for i in 0..b {
            let xi: Vec<f64> = x32[2 * i..2 * i + 2]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let l: Vec<f64> = (0..k)
                .map(|j| {
                    let r = (i + j) % b;
                    let th: Vec<f64> = t32[2 * r..2 * r + 2]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect();
                    est.log_prob(&th, &xi).unwrap()[0] - prior.log_prob(&th)
                })
                .collect();
            let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += l[0] - lse;
        }
        -total / b as f64
    };
    for (atoms, k) in [(2, 2), (5, 5), (10, b)] {
        let got = apt_atomic_loss(&est, &tt, &xt, prior.as_ref(), atoms)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let want = direct(k);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{atoms} atoms: loss {got} vs direct {want}"
        );
        // A proper loss of a k-way classification: positive (the atoms differ).
        assert!(want > 0.0, "{atoms} atoms: {want}");
    }
}
