mod common;

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::Task;
use neurosbi_infer::train_npe;
use std::time::Instant;

/// The CI bound: gaussian_linear (10-D), NPE with 10 000 simulations, C2ST below 0.56
/// against the analytic posterior and posterior means within 0.1 of the truth per dimension.
#[test]
fn npe_on_gaussian_linear_meets_the_c2st_bound() {
    let t0 = Instant::now();
    let (task, prior, sims) = common::gaussian_linear_simulations(10_000);
    let train = TrainConfig {
        max_epochs: Some(200),
        seed: 3,
        ..Default::default()
    };
    let (post, rep) = train_npe(
        prior,
        &sims.theta,
        &sims.x,
        10,
        &EstimatorConfig::maf(),
        &train,
        &mut NoObserver,
    )
    .unwrap();
    eprintln!(
        "trained {} epochs in {:.1}s",
        rep.epochs,
        t0.elapsed().as_secs_f64()
    );
    let x_o = task.observation(1).unwrap();
    let n = 3000;
    let draws = post.sample(n, &x_o, 7).unwrap();
    assert!(draws.acceptance_rate > 0.99, "{}", draws.acceptance_rate);
    let reference = task.reference_posterior(&x_o, n, 8).unwrap();
    let (mean, _) = task.posterior_mean_var(&x_o);
    for k in 0..10 {
        let m = draws.theta.chunks(10).map(|r| r[k]).sum::<f64>() / n as f64;
        assert!(
            (m - mean[k]).abs() < 0.1,
            "dim {k}: mean {m} vs {}",
            mean[k]
        );
    }
    let t1 = Instant::now();
    // sbibm's classifier and folds, with the epochs capped so the test stays fast (the full
    // protocol at 10 000 samples per set is run by the sbibm bench).
    let acc = c2st(
        &reference,
        &draws.theta,
        10,
        &C2stConfig {
            max_epochs: 60,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("c2st {acc:.3} in {:.1}s", t1.elapsed().as_secs_f64());
    assert!(acc < 0.56, "c2st {acc}");
}
