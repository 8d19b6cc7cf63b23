use neurosbi_infer::diagnostics::{
    C2stConfig, c2st, chi2_uniform_ranks, expected_coverage_from_ranks, expected_coverage_hpd,
    ks_uniform_ranks, sbc,
};
use neurosbi_infer::{
    IndependentPrior, InferError, Marginal, SimRng, SimulationError, Simulator, stream_rng,
};
use rand::RngExt;
use rand_distr::StandardNormal;

fn gauss(n: usize, d: usize, shift: f64, seed: u64) -> Vec<f64> {
    let mut r = stream_rng(seed, 0, 0);
    (0..n * d)
        .map(|i| r.sample::<f64, _>(StandardNormal) + if i % d == 0 { shift } else { 0.0 })
        .collect()
}

#[test]
fn c2st_is_chance_for_equal_and_high_for_different_distributions() {
    let cfg = C2stConfig::default();
    let same = c2st(&gauss(1000, 2, 0.0, 1), &gauss(1000, 2, 0.0, 2), 2, &cfg).unwrap();
    assert!((same - 0.5).abs() < 0.05, "same: {same}");
    // Two unit normals 2 apart: the Bayes classifier reaches Phi(1) = 0.841.
    let diff = c2st(&gauss(1000, 2, 0.0, 1), &gauss(1000, 2, 2.0, 3), 2, &cfg).unwrap();
    assert!((diff - 0.841).abs() < 0.04, "diff: {diff}");
    let e = c2st(&[0.0; 5], &[0.0; 6], 2, &cfg).unwrap_err();
    assert!(matches!(e, InferError::RaggedBuffer { .. }));
    let e = c2st(&[f64::NAN; 20], &[0.0; 20], 2, &cfg).unwrap_err();
    assert!(matches!(e, InferError::NonFinite { index: 0, .. }));
}

/// x ~ N(theta, 0.5^2 I) with theta ~ N(0, I): conjugate, posterior N(0.8 x, 0.2 I).
struct Conj;
impl Simulator for Conj {
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
                x[2 * i + j] = theta[2 * i + j] + 0.5 * rng.sample::<f64, _>(StandardNormal);
            }
        }
        Ok(())
    }
}

fn posterior_with_scale(
    scale: f64,
) -> impl Fn(&[f64], usize, u64) -> neurosbi_infer::Result<Vec<f64>> {
    move |x: &[f64], n: usize, seed: u64| {
        let mut r = stream_rng(seed, 1, 0);
        Ok((0..n * 2)
            .map(|i| 0.8 * x[i % 2] + scale * 0.2f64.sqrt() * r.sample::<f64, _>(StandardNormal))
            .collect())
    }
}

#[test]
fn sbc_ranks_are_uniform_for_the_exact_conjugate_posterior_and_not_for_a_wrong_one() {
    let prior = IndependentPrior::new(vec![
        Marginal::Normal {
            mean: 0.0,
            std: 1.0
        };
        2
    ])
    .unwrap();
    let good = sbc(&prior, &Conj, &posterior_with_scale(1.0), 1000, 99, 4).unwrap();
    assert_eq!(good.ranks.len(), 2000);
    for k in 0..2 {
        assert!(good.ks_pvalues[k] > 0.01, "KS p {:?}", good.ks_pvalues);
        assert!(
            good.chi2_pvalues[k] > 0.01,
            "chi2 p {:?}",
            good.chi2_pvalues
        );
    }
    let cov = expected_coverage_from_ranks(&good, &[0.5, 0.9]);
    assert!(
        (cov[0] - 0.5).abs() < 0.05 && (cov[1] - 0.9).abs() < 0.03,
        "{cov:?}"
    );
    // An overconfident posterior (half the width) piles ranks at the ends.
    let bad = sbc(&prior, &Conj, &posterior_with_scale(0.5), 1000, 99, 4).unwrap();
    assert!(
        bad.ks_pvalues.iter().all(|p| *p < 1e-4),
        "{:?}",
        bad.ks_pvalues
    );
    assert!(
        bad.chi2_pvalues.iter().all(|p| *p < 1e-4),
        "{:?}",
        bad.chi2_pvalues
    );
    let cov = expected_coverage_from_ranks(&bad, &[0.9]);
    assert!(cov[0] < 0.7, "{cov:?}");
}

#[test]
fn uniformity_tests_accept_uniform_and_reject_skewed_ranks() {
    let mut r = stream_rng(9, 0, 0);
    let uni: Vec<usize> = (0..2000).map(|_| r.random_range(0..=50)).collect();
    assert!(ks_uniform_ranks(&uni, 50) > 0.01);
    assert!(chi2_uniform_ranks(&uni, 50, 10) > 0.01);
    let skew: Vec<usize> = uni.iter().map(|v| v * v / 50).collect();
    assert!(ks_uniform_ranks(&skew, 50) < 1e-6);
    assert!(chi2_uniform_ranks(&skew, 50, 10) < 1e-6);
}

#[test]
fn hpd_coverage_of_an_exact_gaussian_posterior_matches_levels() {
    // 1-D: posterior N(0, 1); the true value is a draw from it; log density is -z^2/2.
    let mut r = stream_rng(3, 0, 0);
    let mut truth = Vec::new();
    let mut sets = Vec::new();
    for _ in 0..1000 {
        let t: f64 = r.sample(StandardNormal);
        truth.push(-0.5 * t * t);
        sets.push(
            (0..200)
                .map(|_| -0.5 * r.sample::<f64, _>(StandardNormal).powi(2))
                .collect::<Vec<f64>>(),
        );
    }
    let cov = expected_coverage_hpd(&truth, &sets, &[0.2, 0.5, 0.8]).unwrap();
    for (c, l) in cov.iter().zip([0.2, 0.5, 0.8]) {
        assert!((c - l).abs() < 0.05, "{cov:?}");
    }
    assert!(matches!(
        expected_coverage_hpd(&truth[..2], &sets, &[0.5]),
        Err(InferError::RowMismatch { .. })
    ));
}
