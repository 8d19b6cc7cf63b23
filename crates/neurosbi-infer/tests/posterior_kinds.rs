//! The posterior kinds beyond direct sampling (SIR, rejection under a fitted envelope,
//! variational inference, ensembles) on gaussian_linear against its analytic posterior.

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::{GaussianLinear, Task};
use neurosbi_infer::{FromPrior, PosteriorKind, Prior, Quiet, RunConfig, simulate, train_npe};
use std::sync::Arc;
use std::time::Instant;

fn c2st_quick(a: &[f64], b: &[f64], d: usize) -> f64 {
    c2st(
        a,
        b,
        d,
        &C2stConfig {
            max_epochs: 60,
            ..Default::default()
        },
    )
    .unwrap()
}

/// One NPE trained on gaussian_linear (10 000 simulations, as the budget), sampled
/// through every kind; each must stay below C2ST 0.6 against the analytic posterior.
#[test]
fn npe_posterior_kinds_on_gaussian_linear() {
    let task = GaussianLinear::new();
    let prior: Arc<dyn Prior> = Arc::from(task.prior().spec().unwrap().build().unwrap());
    let t0 = Instant::now();
    let sims = simulate(
        &task,
        &FromPrior(prior.as_ref()),
        10_000,
        &RunConfig {
            seed: 1,
            ..Default::default()
        },
        &mut Quiet,
    )
    .unwrap();
    let train = TrainConfig {
        max_epochs: Some(200),
        seed: 3,
        ..Default::default()
    };
    let (mut post, _) = train_npe(
        prior,
        &sims.theta,
        &sims.x,
        10,
        &EstimatorConfig::maf(),
        &train,
        &mut NoObserver,
    )
    .unwrap();
    eprintln!("trained in {:.1}s", t0.elapsed().as_secs_f64());
    let x_o = task.observation(1).unwrap();
    let n = 2000;
    let reference = task.reference_posterior(&x_o, n, 8).unwrap();
    for kind in [
        PosteriorKind::Sir,
        PosteriorKind::Rejection,
        PosteriorKind::Vi,
    ] {
        let t = Instant::now();
        post.set_kind(kind).unwrap();
        let d = post.sample(n, &x_o, 7).unwrap();
        let acc = c2st_quick(&reference, &d.theta, 10);
        eprintln!(
            "{kind:?}: c2st {acc:.3}, ess {:?}, acceptance {:.3}, warning {:?}, {:.1}s",
            d.ess,
            d.acceptance_rate,
            d.warning,
            t.elapsed().as_secs_f64()
        );
        assert!(acc < 0.6, "{kind:?}: c2st {acc}");
        if kind == PosteriorKind::Sir {
            let ess = d.ess.unwrap();
            assert!(ess > 1000.0 && ess <= (32 * n) as f64, "ess {ess}");
        }
    }
}
