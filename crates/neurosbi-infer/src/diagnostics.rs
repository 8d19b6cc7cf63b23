//! Diagnostics: the classifier two-sample test (C2ST) with sbibm's protocol, simulation-based
//! calibration (SBC) ranks with uniformity tests, expected coverage, and a posterior-predictive
//! hook.

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::prior::Prior;
use crate::rng::{purpose, stream_rng};
use crate::simulator::{FromPrior, Simulator, simulate_chunk};
use nalgebra::DMatrix;
use rand::RngExt;
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Settings of [`c2st`]; defaults reproduce sbibm (`sbibm.metrics.c2st`): an sklearn
/// `MLPClassifier` (ReLU, two hidden layers of 10*dim units, Adam lr 1e-3, batch 200, L2 1e-4,
/// stop after 10 epochs without a 1e-4 loss improvement), 5-fold shuffled cross-validation,
/// inputs z-scored by the first sample set.
#[derive(Clone, Debug)]
pub struct C2stConfig {
    /// Cross-validation folds.
    pub n_folds: usize,
    /// Hidden units per layer = `hidden_factor * dim`.
    pub hidden_factor: usize,
    /// Maximum training epochs per fold.
    pub max_epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// L2 penalty (sklearn's `alpha`).
    pub alpha: f64,
    /// Epochs without improvement before stopping (sklearn's `n_iter_no_change`).
    pub n_iter_no_change: usize,
    /// Minimum loss improvement (sklearn's `tol`).
    pub tol: f64,
    /// Seed of folds, initial weights and shuffling.
    pub seed: u64,
}

impl Default for C2stConfig {
    fn default() -> Self {
        Self {
            n_folds: 5,
            hidden_factor: 10,
            max_epochs: 10_000,
            batch_size: 200,
            learning_rate: 1e-3,
            alpha: 1e-4,
            n_iter_no_change: 10,
            tol: 1e-4,
            seed: 1,
        }
    }
}

/// Scalar type of the classifier: f32 halves the cost of the products, and the accuracy of a
/// two-sample test does not need more precision.
type R = f32;

/// A 2-hidden-layer ReLU MLP with a logistic output, trained with Adam.
///
/// Hand-written on nalgebra (whose large products go to matrixmultiply): the classifier is tiny,
/// must be seeded, and candle's stock graph would be slower for it (see PERFORMANCE.md).
struct Mlp {
    w: [DMatrix<R>; 3],
    b: [DMatrix<R>; 3],
}

struct Adam {
    m: Vec<DMatrix<R>>,
    v: Vec<DMatrix<R>>,
    t: i32,
}

fn col_sums(m: &DMatrix<R>) -> DMatrix<R> {
    DMatrix::from_iterator(1, m.ncols(), m.row_sum().iter().copied())
}

fn relu_inplace(m: &mut DMatrix<R>) {
    m.iter_mut().for_each(|v| *v = v.max(0.0));
}

fn add_row(m: &mut DMatrix<R>, b: &DMatrix<R>) {
    for mut r in m.row_iter_mut() {
        r += b;
    }
}

impl Mlp {
    fn new(d: usize, h: usize, seed: u64) -> Self {
        let mut rng = stream_rng(seed, purpose::DIAGNOSTIC, 0);
        let sizes = [(d, h), (h, h), (h, 1)];
        // Glorot uniform, as sklearn initialises ReLU networks.
        let mut mk = |fi: usize, fo: usize| {
            let bound = (6.0 / (fi + fo) as R).sqrt();
            let w = DMatrix::from_fn(fi, fo, |_, _| bound * (2.0 * rng.random::<R>() - 1.0));
            let b = DMatrix::from_fn(1, fo, |_, _| bound * (2.0 * rng.random::<R>() - 1.0));
            (w, b)
        };
        let (w0, b0) = mk(sizes[0].0, sizes[0].1);
        let (w1, b1) = mk(sizes[1].0, sizes[1].1);
        let (w2, b2) = mk(sizes[2].0, sizes[2].1);
        Self {
            w: [w0, w1, w2],
            b: [b0, b1, b2],
        }
    }

    fn forward(&self, x: &DMatrix<R>) -> (DMatrix<R>, DMatrix<R>, DMatrix<R>) {
        let mut h1 = x * &self.w[0];
        add_row(&mut h1, &self.b[0]);
        relu_inplace(&mut h1);
        let mut h2 = &h1 * &self.w[1];
        add_row(&mut h2, &self.b[1]);
        relu_inplace(&mut h2);
        let mut z = &h2 * &self.w[2];
        add_row(&mut z, &self.b[2]);
        (h1, h2, z)
    }

    /// One Adam step on a batch; returns the batch loss (log-loss + L2 term).
    fn step(&mut self, x: &DMatrix<R>, y: &[R], cfg: &C2stConfig, adam: &mut Adam) -> f64 {
        let n = x.nrows() as R;
        let alpha = cfg.alpha as R;
        let (h1, h2, z) = self.forward(x);
        let mut loss = 0.0;
        let mut dz = DMatrix::zeros(z.nrows(), 1);
        for i in 0..z.nrows() {
            let zi = z[(i, 0)];
            // log(1 + e^z) - y z, stably.
            loss += zi.max(0.0) + (-zi.abs()).exp().ln_1p() - y[i] * zi;
            dz[(i, 0)] = (1.0 / (1.0 + (-zi).exp()) - y[i]) / n;
        }
        let l2: R = self.w.iter().map(|w| w.norm_squared()).sum();
        loss = loss / n + 0.5 * alpha * l2 / n;
        let gw2 = h2.transpose() * &dz + &self.w[2] * (alpha / n);
        let gb2 = col_sums(&dz);
        let mut dh2 = &dz * self.w[2].transpose();
        dh2.zip_apply(&h2, |g, h| {
            if h <= 0.0 {
                *g = 0.0
            }
        });
        let gw1 = h1.transpose() * &dh2 + &self.w[1] * (alpha / n);
        let gb1 = col_sums(&dh2);
        let mut dh1 = &dh2 * self.w[1].transpose();
        dh1.zip_apply(&h1, |g, h| {
            if h <= 0.0 {
                *g = 0.0
            }
        });
        let gw0 = x.transpose() * &dh1 + &self.w[0] * (alpha / n);
        let gb0 = col_sums(&dh1);
        adam.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8 as R);
        let lr = (cfg.learning_rate * (1.0 - f64::powi(b2, adam.t)).sqrt()
            / (1.0 - f64::powi(b1, adam.t))) as R;
        let grads = [gw0, gw1, gw2, gb0, gb1, gb2];
        for (k, g) in grads.iter().enumerate() {
            let p = if k < 3 {
                &mut self.w[k]
            } else {
                &mut self.b[k - 3]
            };
            let m = &mut adam.m[k];
            let v = &mut adam.v[k];
            for i in 0..g.len() {
                m[i] = b1 as R * m[i] + (1.0 - b1) as R * g[i];
                v[i] = b2 as R * v[i] + (1.0 - b2) as R * g[i] * g[i];
                p[i] -= lr * m[i] / (v[i].sqrt() + eps);
            }
        }
        f64::from(loss)
    }
}

fn train_and_score(
    x_train: &DMatrix<R>,
    y_train: &[R],
    x_test: &DMatrix<R>,
    y_test: &[R],
    cfg: &C2stConfig,
    fold: u64,
) -> f64 {
    let d = x_train.ncols();
    let mut mlp = Mlp::new(d, cfg.hidden_factor * d, cfg.seed ^ (fold << 32));
    let mut adam = Adam {
        m: mlp
            .w
            .iter()
            .chain(mlp.b.iter())
            .map(|p| DMatrix::zeros(p.nrows(), p.ncols()))
            .collect(),
        v: mlp
            .w
            .iter()
            .chain(mlp.b.iter())
            .map(|p| DMatrix::zeros(p.nrows(), p.ncols()))
            .collect(),
        t: 0,
    };
    let n = x_train.nrows();
    let bs = cfg.batch_size.min(n).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = stream_rng(cfg.seed, purpose::DIAGNOSTIC, 1000 + fold);
    let mut best = f64::INFINITY;
    let mut no_improve = 0;
    for _ in 0..cfg.max_epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for idx in order.chunks(bs) {
            let xb = x_train.select_rows(idx);
            let yb: Vec<R> = idx.iter().map(|&i| y_train[i]).collect();
            total += mlp.step(&xb, &yb, cfg, &mut adam) * idx.len() as f64;
        }
        let epoch_loss = total / n as f64;
        // sklearn's convergence rule: stop after n_iter_no_change epochs without beating the
        // best loss by tol.
        if epoch_loss > best - cfg.tol {
            no_improve += 1;
        } else {
            no_improve = 0;
        }
        best = best.min(epoch_loss);
        if no_improve >= cfg.n_iter_no_change {
            break;
        }
    }
    let (_, _, z) = mlp.forward(x_test);
    let correct = (0..z.nrows())
        .filter(|&i| (z[(i, 0)] > 0.0) == (y_test[i] > 0.5))
        .count();
    correct as f64 / z.nrows() as f64
}

/// Classifier two-sample test: cross-validated accuracy of an MLP telling rows of `x` from rows of
/// `y` (both row-major with `dim` columns). 0.5 means indistinguishable, 1.0 fully separable.
pub fn c2st(x: &[f64], y: &[f64], dim: usize, cfg: &C2stConfig) -> Result<f64> {
    let nx = rows_of("c2st first sample set", x, dim)?;
    let ny = rows_of("c2st second sample set", y, dim)?;
    check_finite("c2st first sample set", x)?;
    check_finite("c2st second sample set", y)?;
    if nx < cfg.n_folds || ny < cfg.n_folds || cfg.n_folds < 2 {
        return Err(invalid_arg(
            "c2st",
            format!("need n_folds >= 2 and at least n_folds rows per set (got {nx} and {ny})"),
        ));
    }
    let mut mean = vec![0.0; dim];
    let mut std = vec![0.0; dim];
    for k in 0..dim {
        let m = (0..nx).map(|i| x[i * dim + k]).sum::<f64>() / nx as f64;
        let v =
            (0..nx).map(|i| (x[i * dim + k] - m).powi(2)).sum::<f64>() / (nx as f64 - 1.0).max(1.0);
        mean[k] = m;
        std[k] = if v > 0.0 { v.sqrt() } else { 1.0 };
    }
    let n = nx + ny;
    let data = DMatrix::<R>::from_fn(n, dim, |i, k| {
        let v = if i < nx {
            x[i * dim + k]
        } else {
            y[(i - nx) * dim + k]
        };
        ((v - mean[k]) / std[k]) as R
    });
    let labels: Vec<R> = (0..n).map(|i| if i < nx { 0.0 } else { 1.0 }).collect();
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut stream_rng(cfg.seed, purpose::DIAGNOSTIC, 999));
    // Folds are independent (own seeds), so running them in parallel changes no result.
    let scores: Vec<f64> = (0..cfg.n_folds)
        .into_par_iter()
        .map(|f| {
            let (lo, hi) = (f * n / cfg.n_folds, (f + 1) * n / cfg.n_folds);
            let test: Vec<usize> = perm[lo..hi].to_vec();
            let train: Vec<usize> = perm[..lo].iter().chain(&perm[hi..]).copied().collect();
            let yt: Vec<R> = train.iter().map(|&i| labels[i]).collect();
            let ys: Vec<R> = test.iter().map(|&i| labels[i]).collect();
            train_and_score(
                &data.select_rows(&train),
                &yt,
                &data.select_rows(&test),
                &ys,
                cfg,
                f as u64,
            )
        })
        .collect();
    Ok(scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Result of simulation-based calibration.
#[derive(Clone, Debug)]
pub struct SbcResult {
    /// Ranks, row-major `n_sbc x dim`: how many of the `n_posterior` posterior draws fall below
    /// the true parameter (0..=n_posterior).
    pub ranks: Vec<usize>,
    /// Parameter dimension.
    pub dim: usize,
    /// Posterior draws per SBC round.
    pub n_posterior: usize,
    /// Kolmogorov-Smirnov p-value of each dimension's ranks against the discrete uniform.
    pub ks_pvalues: Vec<f64>,
    /// Chi-square p-value of each dimension's rank histogram (`bins` equal bins).
    pub chi2_pvalues: Vec<f64>,
}

/// Draws `n` posterior samples for an observation with a seed (row-major `n x dim`).
pub type PosteriorSampler<'a> = dyn Fn(&[f64], usize, u64) -> Result<Vec<f64>> + 'a;

/// Runs SBC (Talts et al. 2018): for `n_sbc` parameters from the prior, simulate `x`, draw
/// `n_posterior` samples from `posterior(x, n, seed)` and record the rank of the true value.
/// Invalid simulations are skipped.
pub fn sbc(
    prior: &dyn Prior,
    simulator: &dyn Simulator,
    posterior: &PosteriorSampler<'_>,
    n_sbc: usize,
    n_posterior: usize,
    seed: u64,
) -> Result<SbcResult> {
    let d = prior.dim();
    let chunk = simulate_chunk(simulator, &FromPrior(prior), seed, 0, n_sbc, 100)?;
    let dx = simulator.dim_x();
    let m = chunk.theta.len() / d;
    if m == 0 {
        return Err(InferError::AllSimulationsInvalid {
            n: n_sbc,
            first_error: chunk
                .first_error
                .unwrap_or_else(|| "non-finite output".into()),
        });
    }
    let mut ranks = Vec::with_capacity(m * d);
    for i in 0..m {
        let th = &chunk.theta[i * d..(i + 1) * d];
        let s = posterior(
            &chunk.x[i * dx..(i + 1) * dx],
            n_posterior,
            crate::rng::derive_seed(seed, i as u64),
        )?;
        rows_of("SBC posterior samples", &s, d)?;
        for k in 0..d {
            ranks.push(s.chunks(d).filter(|r| r[k] < th[k]).count());
        }
    }
    let bins = 20.min(n_posterior + 1).max(2);
    let ks_pvalues = (0..d)
        .map(|k| ks_uniform_ranks(&column(&ranks, d, k), n_posterior))
        .collect();
    let chi2_pvalues = (0..d)
        .map(|k| chi2_uniform_ranks(&column(&ranks, d, k), n_posterior, bins))
        .collect();
    Ok(SbcResult {
        ranks,
        dim: d,
        n_posterior,
        ks_pvalues,
        chi2_pvalues,
    })
}

fn column(r: &[usize], d: usize, k: usize) -> Vec<usize> {
    r.chunks(d).map(|row| row[k]).collect()
}

/// Kolmogorov-Smirnov p-value of ranks in `0..=l` against the discrete uniform distribution
/// (asymptotic Kolmogorov distribution; conservative for discrete data).
pub fn ks_uniform_ranks(ranks: &[usize], l: usize) -> f64 {
    let n = ranks.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut counts = vec![0usize; l + 1];
    for &r in ranks {
        counts[r.min(l)] += 1;
    }
    let mut cum = 0usize;
    let mut dmax: f64 = 0.0;
    for (v, c) in counts.iter().enumerate() {
        cum += c;
        let emp = cum as f64 / n as f64;
        let theo = (v + 1) as f64 / (l + 1) as f64;
        dmax = dmax.max((emp - theo).abs());
    }
    kolmogorov_sf(dmax * (n as f64).sqrt())
}

/// Survival function of the Kolmogorov distribution, `P(K > t)`.
pub fn kolmogorov_sf(t: f64) -> f64 {
    if t < 0.2 {
        return 1.0;
    }
    let s: f64 = (1..=100)
        .map(|k| (-1f64).powi(k - 1) * (-2.0 * (k as f64 * t).powi(2)).exp())
        .sum();
    (2.0 * s).clamp(0.0, 1.0)
}

/// Chi-square p-value of a rank histogram with `bins` bins of (nearly) equal width over `0..=l`.
pub fn chi2_uniform_ranks(ranks: &[usize], l: usize, bins: usize) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let n = ranks.len() as f64;
    let mut counts = vec![0.0; bins];
    let mut expected = vec![0.0; bins];
    for v in 0..=l {
        expected[v * bins / (l + 1)] += n / (l + 1) as f64;
    }
    for &r in ranks {
        counts[r.min(l) * bins / (l + 1)] += 1.0;
    }
    let stat: f64 = counts
        .iter()
        .zip(&expected)
        .filter(|(_, e)| **e > 0.0)
        .map(|(c, e)| (c - e).powi(2) / e)
        .sum();
    match ChiSquared::new((bins - 1) as f64) {
        Ok(chi) => 1.0 - chi.cdf(stat),
        Err(_) => f64::NAN,
    }
}

/// Expected coverage of central credible intervals from SBC ranks: for each level in `levels`,
/// the fraction of (round, dimension) pairs whose true value lies in the central interval of
/// that mass. A calibrated posterior gives coverage close to the level.
pub fn expected_coverage_from_ranks(sbc: &SbcResult, levels: &[f64]) -> Vec<f64> {
    let l = sbc.n_posterior as f64;
    levels
        .iter()
        .map(|&a| {
            let (lo, hi) = ((1.0 - a) / 2.0, (1.0 + a) / 2.0);
            let inside = sbc.ranks.iter().filter(|&&r| {
                let q = (r as f64 + 0.5) / (l + 1.0);
                q >= lo && q <= hi
            });
            inside.count() as f64 / sbc.ranks.len().max(1) as f64
        })
        .collect()
}

/// Expected coverage of highest-density regions (sbi's `run_sbc` coverage with a density): for
/// each round, `true_log_prob` is the posterior log density at the true parameter and
/// `sample_log_probs[i]` the log densities of that round's posterior draws; returns for each
/// level the fraction of rounds whose true value lies inside the HPD region of that mass.
pub fn expected_coverage_hpd(
    true_log_prob: &[f64],
    sample_log_probs: &[Vec<f64>],
    levels: &[f64],
) -> Result<Vec<f64>> {
    if true_log_prob.len() != sample_log_probs.len() {
        return Err(InferError::RowMismatch {
            what: "coverage: true log-probs vs sample log-prob sets".into(),
            left: true_log_prob.len(),
            right: sample_log_probs.len(),
        });
    }
    // The true value is inside the HPD region of mass a iff the fraction of draws with a higher
    // density is below a.
    let q: Vec<f64> = true_log_prob
        .iter()
        .zip(sample_log_probs)
        .map(|(t, s)| s.iter().filter(|v| *v > t).count() as f64 / s.len().max(1) as f64)
        .collect();
    Ok(levels
        .iter()
        .map(|&a| q.iter().filter(|&&v| v < a).count() as f64 / q.len().max(1) as f64)
        .collect())
}

/// Posterior-predictive check hook: simulates one output per parameter row (NaN rows where the
/// simulation failed), with streams derived from `seed`.
pub fn posterior_predictive(
    simulator: &dyn Simulator,
    samples: &[f64],
    seed: u64,
) -> Result<Vec<f64>> {
    crate::simulator::simulate_rows(simulator, samples, seed, 100)
}
