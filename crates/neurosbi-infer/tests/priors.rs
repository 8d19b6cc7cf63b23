use neurosbi_infer::{
    IndependentPrior, InferError, Marginal, MultivariateNormalPrior, Prior, sample_prior,
};
use proptest::prelude::*;

fn mixed() -> IndependentPrior {
    IndependentPrior::new(vec![
        Marginal::Uniform {
            low: -2.0,
            high: 3.0,
        },
        Marginal::Normal {
            mean: 1.0,
            std: 0.5,
        },
        Marginal::LogUniform {
            low: 1e-3,
            high: 10.0,
        },
        Marginal::LogNormal {
            mu: -1.0,
            sigma: 0.7,
        },
    ])
    .unwrap()
}

#[test]
fn reversed_and_degenerate_bounds_are_typed_errors_naming_the_dimension() {
    let e = IndependentPrior::uniform(&[0.0, 2.0], &[1.0, 1.0]).unwrap_err();
    assert!(
        matches!(
            e,
            InferError::InvalidPrior {
                index: 1,
                kind: "uniform",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("reversed"));
    let e = IndependentPrior::uniform(&[0.0, 1.0], &[1.0, 1.0]).unwrap_err();
    assert!(
        matches!(e, InferError::InvalidPrior { index: 1, .. })
            && e.to_string().contains("degenerate")
    );
    let e = IndependentPrior::new(vec![Marginal::LogUniform {
        low: 0.0,
        high: 1.0,
    }])
    .unwrap_err();
    assert!(matches!(
        e,
        InferError::InvalidPrior {
            index: 0,
            kind: "log-uniform",
            ..
        }
    ));
    let e = IndependentPrior::new(vec![Marginal::Normal {
        mean: 0.0,
        std: 0.0,
    }])
    .unwrap_err();
    assert!(matches!(e, InferError::InvalidPrior { kind: "normal", .. }));
    let e = IndependentPrior::uniform(&[0.0], &[1.0, 2.0]).unwrap_err();
    assert!(matches!(
        e,
        InferError::DimMismatch {
            expected: 1,
            got: 2,
            ..
        }
    ));
    let e = MultivariateNormalPrior::new(vec![0.0, 0.0], vec![1.0, 2.0, 2.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("positive definite"), "{e}");
}

#[test]
fn sample_moments_match_each_marginal() {
    let p = mixed();
    let n = 40_000;
    let s = sample_prior(&p, n, 3);
    let col = |k: usize| s.chunks(4).map(|r| r[k]).collect::<Vec<f64>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // Uniform(-2, 3): mean 0.5, sd 5/sqrt(12) -> SE 0.0072.
    assert!((mean(&col(0)) - 0.5).abs() < 0.03);
    assert!((mean(&col(1)) - 1.0).abs() < 0.01);
    // Log-uniform: ln theta is uniform on [ln 1e-3, ln 10].
    let l: Vec<f64> = col(2).iter().map(|v| v.ln()).collect();
    assert!((mean(&l) - 0.5 * (1e-3f64.ln() + 10f64.ln())).abs() < 0.03);
    let l: Vec<f64> = col(3).iter().map(|v| v.ln()).collect();
    assert!((mean(&l) + 1.0).abs() < 0.02);
    assert!(s.chunks(4).all(|r| p.in_support(r)));
    // Per-index streams: a prefix of a longer draw is the shorter draw.
    assert_eq!(sample_prior(&p, 10, 3), s[..40].to_vec());
}

#[test]
fn log_prob_integrates_to_one_on_a_grid() {
    // 1-D numerical integration of each marginal's density.
    for m in [
        Marginal::Uniform {
            low: -2.0,
            high: 3.0,
        },
        Marginal::Normal {
            mean: 1.0,
            std: 0.5,
        },
        Marginal::LogUniform {
            low: 1e-2,
            high: 10.0,
        },
        Marginal::LogNormal {
            mu: -1.0,
            sigma: 0.7,
        },
    ] {
        let p = IndependentPrior::new(vec![m]).unwrap();
        let (a, b, n) = (-5.0, 15.0, 400_000);
        let h = (b - a) / n as f64;
        let integral: f64 = (0..n)
            .map(|i| p.log_prob(&[a + (i as f64 + 0.5) * h]).exp() * h)
            .sum();
        assert!((integral - 1.0).abs() < 2e-3, "{m:?}: {integral}");
    }
}

#[test]
fn multivariate_normal_log_prob_matches_closed_form() {
    let p = MultivariateNormalPrior::new(vec![1.0, -1.0], vec![2.0, 0.6, 0.6, 0.5]).unwrap();
    let (x, y) = (0.3, 0.2);
    let det = 2.0 * 0.5 - 0.36;
    let (dx, dy) = (x - 1.0, y + 1.0);
    let q = (0.5 * dx * dx - 2.0 * 0.6 * dx * dy + 2.0 * dy * dy) / det;
    let want = -0.5 * q - (2.0 * std::f64::consts::PI).ln() - 0.5 * f64::ln(det);
    assert!(
        (p.log_prob(&[x, y]) - want).abs() < 1e-12,
        "{} vs {want}",
        p.log_prob(&[x, y])
    );
    let s = sample_prior(&p, 50_000, 1);
    let c: f64 = s
        .chunks(2)
        .map(|r| (r[0] - 1.0) * (r[1] + 1.0))
        .sum::<f64>()
        / 50_000.0;
    assert!((c - 0.6).abs() < 0.03, "covariance {c}");
    let spec = p.spec().unwrap().build().unwrap();
    assert_eq!(spec.log_prob(&[x, y]), p.log_prob(&[x, y]));
}

proptest! {
    #[test]
    fn unconstrained_map_round_trips_and_its_jacobian_matches_finite_differences(
        u in prop::collection::vec(-6.0f64..6.0, 4)
    ) {
        let p = mixed();
        let mut t = vec![0.0; 4];
        let lj = p.constrain(&u, &mut t);
        prop_assert!(p.in_support(&t));
        let mut back = vec![0.0; 4];
        p.unconstrain(&t, &mut back);
        for (a, b) in u.iter().zip(&back) {
            prop_assert!((a - b).abs() < 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // Independent marginals: the Jacobian is diagonal; compare its log-determinant with
        // central differences.
        let h = 1e-5;
        let mut fd = 0.0;
        for k in 0..4 {
            let (mut up, mut dn) = (u.clone(), u.clone());
            up[k] += h;
            dn[k] -= h;
            let (mut tu, mut td) = (vec![0.0; 4], vec![0.0; 4]);
            p.constrain(&up, &mut tu);
            p.constrain(&dn, &mut td);
            fd += ((tu[k] - td[k]) / (2.0 * h)).ln();
        }
        prop_assert!((fd - lj).abs() < 1e-4 * (1.0 + lj.abs()), "fd {fd} vs {lj}");
    }

    #[test]
    fn log_prob_is_minus_infinity_outside_bounds(v in -10.0f64..10.0) {
        let p = IndependentPrior::uniform(&[-1.0], &[2.0]).unwrap();
        let lp = p.log_prob(&[v]);
        if (-1.0..=2.0).contains(&v) {
            prop_assert!((lp + 3f64.ln()).abs() < 1e-12);
        } else {
            prop_assert!(lp == f64::NEG_INFINITY);
        }
    }
}
