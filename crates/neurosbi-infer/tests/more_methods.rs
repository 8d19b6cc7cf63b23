//! NRE-A, NRE-C, BNRE, SNPE-A and SNPE-B through `infer` on gaussian_linear (10-D) against
//! its analytic posterior, C2ST < 0.6 (the bound at 10 000 simulations). Budgets that
//! fit CI: NRE-A and BNRE 10 000 simulations (<= 200 epochs), SNPE-A 2 x 5 000 (<= 200 epochs per round),
//! NRE-C 7 500 (<= 80 epochs), SNPE-B 2 x 2 500 (<= 60 epochs per round).

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::{BernoulliGlm, GaussianLinear, Task};
use neurosbi_infer::{
    Estimator, InferenceConfig, Method, MethodOptions, Posterior, PosteriorKind, Prior, Quiet,
    RunConfig, infer,
};
use std::sync::Arc;
use std::time::Instant;

/// Trains `name` on `task` for its observation `obs` (seed 5, at most `epochs` per round);
/// returns the posterior and the epochs of each round.
fn fit(
    task: &dyn Task,
    obs: usize,
    name: &str,
    opts: &MethodOptions,
    rounds: Vec<usize>,
    epochs: usize,
) -> (Posterior, Vec<usize>) {
    let prior: Arc<dyn Prior> = Arc::from(task.prior().spec().unwrap().build().unwrap());
    let method = Method::from_name(name, opts).unwrap();
    let x_o = task.observation(obs).unwrap();
    let cfg = InferenceConfig {
        method,
        rounds,
        estimator: EstimatorConfig::maf(),
        train: TrainConfig {
            max_epochs: Some(epochs),
            ..Default::default()
        },
        run: RunConfig::default(),
        seed: 5,
        posterior: Some(PosteriorKind::from_options(&method, opts).unwrap()),
        ..Default::default()
    };
    let (post, rep) = infer(
        task,
        prior,
        Some(&x_o),
        &cfg,
        None,
        &mut Quiet,
        &mut NoObserver,
    )
    .unwrap();
    (post, rep.train.iter().map(|r| r.epochs).collect())
}

fn run(name: &str, opts: MethodOptions, rounds: Vec<usize>, epochs: usize) -> (Posterior, f64) {
    let task = GaussianLinear::new();
    let x_o = task.observation(1).unwrap();
    let t0 = Instant::now();
    let (post, round_epochs) = fit(&task, 1, name, &opts, rounds, epochs);
    let t_train = t0.elapsed().as_secs_f64();
    let n = 1500;
    let d = post.sample(n, &x_o, 7).unwrap();
    let reference = task.reference_posterior(&x_o, n, 8).unwrap();
    let acc = c2st(
        &reference,
        &d.theta,
        10,
        &C2stConfig {
            max_epochs: 60,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!(
        "{name}: c2st {acc:.3} (epochs {:?}, train {t_train:.1}s, total {:.1}s, warning {:?})",
        round_epochs,
        t0.elapsed().as_secs_f64(),
        d.warning
    );
    (post, acc)
}

#[test]
fn nre_c_reaches_the_c2st_bound() {
    let (_, acc) = run(
        "nre_c",
        MethodOptions::new().with("posterior", "sir"),
        vec![7500],
        80,
    );
    assert!(acc < 0.6, "nre_c c2st {acc}");
}

#[test]
fn nre_a_reaches_the_c2st_bound() {
    // Measured 0.577 (0.624 with sbi's single contrastive pair per x).
    let (_, acc) = run(
        "nre_a",
        MethodOptions::new().with("posterior", "sir"),
        vec![10_000],
        200,
    );
    assert!(acc < 0.6, "nre_a c2st {acc}");
}

#[test]
fn bnre_reaches_the_c2st_bound() {
    // The balancing penalty widens the posterior, so BNRE needs the full budget.
    let (_, acc) = run(
        "bnre",
        MethodOptions::new().with("posterior", "sir"),
        vec![10_000],
        200,
    );
    assert!(acc < 0.6, "bnre c2st {acc}");
}

/// The proposals an NPE-A posterior is corrected by: `(weight, is the prior)` per round.
fn npe_a_proposals(post: &Posterior) -> Vec<(f64, bool)> {
    let Estimator::Corrected { proposal, .. } = post.estimator() else {
        panic!("NPE-A builds a corrected posterior")
    };
    proposal
        .components
        .iter()
        .map(|(w, g)| (*w, g.is_none()))
        .collect()
}

#[test]
fn npe_a_corrects_by_the_proposals_of_the_rounds_it_trained_on() {
    let quick = |train_on: &str| {
        let opts = MethodOptions::new()
            .with("num_components", 2usize)
            .with("train_on", train_on);
        let (post, _) = run("snpe_a", opts, vec![300, 100], 3);
        npe_a_proposals(&post)
    };
    // All rounds: the prior and the round-2 Gaussian, in proportion to their simulations.
    assert_eq!(quick("all"), vec![(0.75, true), (0.25, false)]);
    assert_eq!(quick("last"), vec![(1.0, false)]);
}

#[test]
fn npe_a_sir_draws_follow_the_corrected_density() {
    // One round from the prior: the corrected density q x prior / proposal is q itself inside
    // the support, so SIR's draws must be indistinguishable from q's own. bernoulli_glm's
    // posterior is narrow in 10-D, where SIR from an envelope fitted to prior draws
    // degenerated (C2ST up to 0.996 against the reference in the sbibm table).
    let task = BernoulliGlm::new();
    let opts = MethodOptions::new().with("num_components", 2usize);
    let (post, _) = fit(&task, 10, "snpe_a", &opts, vec![2000], 40);
    let x_o = task.observation(10).unwrap();
    assert_eq!(post.kind(), PosteriorKind::Sir);
    let Estimator::Corrected { q, .. } = post.estimator() else {
        panic!("NPE-A builds a corrected posterior")
    };
    let n = 2000;
    let sir = post.sample(n, &x_o, 11).unwrap();
    let direct = q.sample(n, &x_o, 12).unwrap();
    let score = c2st(&direct, &sir.theta, 10, &C2stConfig::default()).unwrap();
    eprintln!("npe_a SIR against q: c2st {score:.3}, ESS {:?}", sir.ess);
    assert!(
        score < 0.55,
        "SIR draws against q's draws: c2st {score} (ESS {:?})",
        sir.ess
    );
}

#[test]
fn snpe_a_reaches_the_c2st_bound() {
    // One component: the posterior is Gaussian (sbi also trains a single component in all
    // but the last round); ten full-covariance components in 10-D take minutes to train.
    // With one component the last round trains alone (`train_on = "last"` by default): a
    // Gaussian fits that round's proposal posterior exactly, not the mixture over rounds.
    let (post, acc) = run(
        "snpe_a",
        MethodOptions::new().with("num_components", 1usize),
        vec![5000, 5000],
        200,
    );
    assert_eq!(post.kind(), PosteriorKind::Sir);
    assert_eq!(npe_a_proposals(&post), vec![(1.0, false)]);
    assert!(acc < 0.6, "snpe_a c2st {acc}");
}

#[test]
fn snpe_b_reaches_the_c2st_bound() {
    let (_, acc) = run("snpe_b", MethodOptions::new(), vec![2500, 2500], 60);
    assert!(acc < 0.6, "snpe_b c2st {acc}");
}

/// C2ST of every method at 10 000 simulations (ABC: 100 000) on gaussian_linear, observation
/// 1, printed as a table for docs/methods.md. Sequential methods run two rounds of 5 000.
/// Minutes long: `cargo test --release -p neurosbi-infer --test more_methods -- --ignored
/// --nocapture`; `NEUROSBI_METHODS=nre_a,npse` runs only the named rows.
#[test]
#[ignore]
fn c2st_of_every_method() {
    let sir = || MethodOptions::new().with("posterior", "sir");
    let cases: Vec<(&str, MethodOptions, Vec<usize>)> = vec![
        ("npe", MethodOptions::new(), vec![10_000]),
        ("snpe_c", MethodOptions::new(), vec![5000, 5000]),
        ("tsnpe", MethodOptions::new(), vec![5000, 5000]),
        (
            "npe_a",
            MethodOptions::new().with("num_components", 1usize),
            vec![5000, 5000],
        ),
        ("npe_b", MethodOptions::new(), vec![5000, 5000]),
        ("nle", sir(), vec![10_000]),
        ("nre_a", sir(), vec![10_000]),
        ("nre_b", sir(), vec![10_000]),
        ("nre_c", sir(), vec![10_000]),
        ("bnre", sir(), vec![10_000]),
        ("fmpe", MethodOptions::new(), vec![10_000]),
        ("npse", MethodOptions::new(), vec![10_000]),
        ("npse", MethodOptions::new().with("sde", "vp"), vec![10_000]),
        ("abc_rejection", MethodOptions::new(), vec![100_000]),
        (
            "smc_abc",
            MethodOptions::new().with("kernel_scale", 1.0),
            vec![100_000],
        ),
    ];
    let only = std::env::var("NEUROSBI_METHODS").ok();
    let mut rows = Vec::new();
    for (name, opts, rounds) in cases {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == name))
        {
            continue;
        }
        let method = Method::from_name(name, &opts).unwrap();
        let (post, acc) = run(name, opts, rounds.clone(), 300);
        rows.push(format!(
            "| `{name}` ({method:?}, {:?}) | {rounds:?} | {acc:.3} |",
            post.kind()
        ));
    }
    eprintln!("{}", rows.join("\n"));
}
