//! Densities are normalised and agree with their samplers.

mod common;

use common::trained_bimodal;
use neurosbi_flows::{ConditionalEstimator, EstimatorKind};

const KINDS: [EstimatorKind; 3] = [EstimatorKind::Maf, EstimatorKind::Nsf, EstimatorKind::Mdn];

fn grid(lo: f64, hi: f64, n: usize) -> (Vec<f64>, f64) {
    let h = (hi - lo) / (n - 1) as f64;
    ((0..n).map(|i| lo + h * i as f64).collect(), h)
}

/// Densities on a grid (1-D: n points; 2-D: n x n points, row-major in (t0, t1)).
fn density_grid(q: &ConditionalEstimator, ctx: f64, g: &[f64]) -> Vec<f64> {
    let pts: Vec<f64> = if q.dim_inputs() == 1 {
        g.to_vec()
    } else {
        g.iter()
            .flat_map(|&a| g.iter().flat_map(move |&b| [a, b]))
            .collect()
    };
    q.log_prob(&pts, &[ctx])
        .unwrap()
        .into_iter()
        .map(f64::exp)
        .collect()
}

/// Kolmogorov-Smirnov distance between samples and a CDF tabulated on a grid.
fn ks(samples: &mut [f64], g: &[f64], pdf: &[f64], h: f64) -> f64 {
    let mut cdf = vec![0.0; g.len()];
    for i in 1..g.len() {
        cdf[i] = cdf[i - 1] + 0.5 * h * (pdf[i] + pdf[i - 1]);
    }
    let total = cdf[g.len() - 1];
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    let mut dmax: f64 = 0.0;
    for (k, &s) in samples.iter().enumerate() {
        let pos = ((s - g[0]) / h).clamp(0.0, (g.len() - 1) as f64 - 1e-9);
        let i = pos.floor() as usize;
        let f = (cdf[i] + (pos - i as f64) * (cdf[i + 1] - cdf[i])) / total;
        dmax = dmax
            .max((f - k as f64 / n).abs())
            .max((f - (k + 1) as f64 / n).abs());
    }
    dmax
}

fn moments(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64,
    )
}

#[test]
fn log_prob_integrates_to_one_and_matches_samples_1d() {
    for kind in KINDS {
        let q = trained_bimodal(kind, 1, 8);
        for ctx in [-1.0, 0.5] {
            let (g, h) = grid(-12.0, 12.0, 6001);
            let p = density_grid(&q, ctx, &g);
            let mass: f64 = h * (p.iter().sum::<f64>() - 0.5 * (p[0] + p[p.len() - 1]));
            assert!((mass - 1.0).abs() < 5e-3, "{kind:?}: mass {mass}");
            let n = 4000;
            let mut s = q.sample(n, &[ctx], 7).unwrap();
            let (m, v) = moments(&s);
            let gm: f64 = g.iter().zip(&p).map(|(x, p)| x * p * h).sum::<f64>() / mass;
            let gv: f64 = g
                .iter()
                .zip(&p)
                .map(|(x, p)| (x - gm).powi(2) * p * h)
                .sum::<f64>()
                / mass;
            assert!(
                (m - gm).abs() < 4.0 * (gv / n as f64).sqrt(),
                "{kind:?}: mean {m} vs {gm}"
            );
            assert!((v / gv - 1.0).abs() < 0.1, "{kind:?}: variance {v} vs {gv}");
            let d = ks(&mut s, &g, &p, h);
            // 1 % critical value of the one-sample KS test.
            assert!(d < 1.63 / (n as f64).sqrt(), "{kind:?}: KS distance {d}");
        }
    }
}

#[test]
fn log_prob_integrates_to_one_and_matches_samples_2d() {
    for kind in KINDS {
        let q = trained_bimodal(kind, 2, 8);
        let ctx = 0.3;
        let (g, h) = grid(-9.0, 9.0, 361);
        let p = density_grid(&q, ctx, &g);
        let n_g = g.len();
        let mass: f64 = p.iter().sum::<f64>() * h * h;
        assert!((mass - 1.0).abs() < 1e-2, "{kind:?}: mass {mass}");
        let n = 4000;
        let s = q.sample(n, &[ctx], 3).unwrap();
        for dim in 0..2 {
            let marginal: Vec<f64> = (0..n_g)
                .map(|i| {
                    (0..n_g)
                        .map(|j| {
                            if dim == 0 {
                                p[i * n_g + j]
                            } else {
                                p[j * n_g + i]
                            }
                        })
                        .sum::<f64>()
                        * h
                })
                .collect();
            let mut sd: Vec<f64> = s.chunks(2).map(|r| r[dim]).collect();
            let (m, _) = moments(&sd);
            let gm: f64 = g.iter().zip(&marginal).map(|(x, p)| x * p * h).sum::<f64>() / mass;
            let gv: f64 = g
                .iter()
                .zip(&marginal)
                .map(|(x, p)| (x - gm).powi(2) * p * h)
                .sum::<f64>()
                / mass;
            assert!(
                (m - gm).abs() < 4.0 * (gv / n as f64).sqrt(),
                "{kind:?} dim {dim}: mean {m} vs {gm}"
            );
            let d = ks(&mut sd, &g, &marginal, h);
            assert!(
                d < 1.63 / (n as f64).sqrt(),
                "{kind:?} dim {dim}: KS distance {d}"
            );
        }
    }
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let q = trained_bimodal(EstimatorKind::Maf, 2, 1);
    assert_eq!(
        q.sample(50, &[0.1], 4).unwrap(),
        q.sample(50, &[0.1], 4).unwrap()
    );
    assert_ne!(
        q.sample(50, &[0.1], 4).unwrap(),
        q.sample(50, &[0.1], 5).unwrap()
    );
}
