//! Diagnostics: the classifier two-sample test (C2ST) with sbibm's protocol, simulation-based
//! calibration (SBC) ranks with uniformity tests, expected coverage, and a posterior-predictive
//! hook.

use crate::error::{InferError, Result, check_finite, invalid_arg, rows_of};
use crate::prior::Prior;
use crate::rng::{purpose, stream_rng};
use crate::simulator::{FromPrior, Simulator, simulate_chunk};
use neurosbi_flows::small_matmul;
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

/// A 2-hidden-layer ReLU MLP with a logistic output, trained with Adam, on row-major buffers.
///
/// Hand-written on [`neurosbi_flows::small_matmul`] (the MAF's register-tiled product kernel)
/// with every buffer allocated once per fold: the classifier is tiny, trained for hundreds of
/// epochs of 200-row batches, must be seeded, and a general gemm's blocking or candle's graph
/// cost more than the arithmetic at these sizes (see PERFORMANCE.md). C2ST dominated the
/// sbibm benchmark's time.
struct Mlp {
    d: usize,
    h: usize,
    /// All parameters, flat: W0 (d x h), b0 (h), W1 (h x h), b1 (h), W2 (h), b2 (1).
    p: Vec<R>,
}

/// Sum of squares in eight lanes: one running sum would be a chain of dependent additions.
fn sum_of_squares(v: &[R]) -> R {
    let mut acc = [0.0; 8];
    let chunks = v.chunks_exact(8);
    let tail: R = chunks.remainder().iter().map(|w| w * w).sum();
    for c in chunks {
        for (a, w) in acc.iter_mut().zip(c) {
            *a += w * w;
        }
    }
    acc.iter().sum::<R>() + tail
}

/// Zeroes the gradient where the ReLU was off (`h <= 0`), with a bit mask so that it vectorises.
fn relu_mask(g: &mut [R], h: &[R]) {
    for (g, &h) in g.iter_mut().zip(h) {
        let keep = u32::from(h > 0.0).wrapping_neg();
        *g = R::from_bits(g.to_bits() & keep);
    }
}

/// Offsets of the parameter blocks in [`Mlp::p`].
struct Layout {
    w0: usize,
    b0: usize,
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    len: usize,
}

fn layout(d: usize, h: usize) -> Layout {
    let w0 = 0;
    let b0 = w0 + d * h;
    let w1 = b0 + h;
    let b1 = w1 + h * h;
    let w2 = b1 + h;
    let b2 = w2 + h;
    Layout {
        w0,
        b0,
        w1,
        b1,
        w2,
        b2,
        len: b2 + 1,
    }
}

/// Per-fold buffers of one training step.
struct Scratch {
    xb: Vec<R>,
    h1: Vec<R>,
    h2: Vec<R>,
    dz: Vec<R>,
    dh1: Vec<R>,
    dh2: Vec<R>,
    w1t: Vec<R>,
    grad: Vec<R>,
    m: Vec<R>,
    v: Vec<R>,
    t: i32,
}

impl Mlp {
    fn new(d: usize, h: usize, seed: u64) -> Self {
        let mut rng = stream_rng(seed, purpose::DIAGNOSTIC, 0);
        let lay = layout(d, h);
        let mut p = vec![0.0; lay.len];
        // Glorot uniform, as sklearn initialises ReLU networks; weights drawn column by column.
        let mut fill = |p: &mut [R], w: usize, b: usize, fi: usize, fo: usize| {
            let bound = (6.0 / (fi + fo) as R).sqrt();
            for j in 0..fo {
                for i in 0..fi {
                    p[w + i * fo + j] = bound * (2.0 * rng.random::<R>() - 1.0);
                }
            }
            for j in 0..fo {
                p[b + j] = bound * (2.0 * rng.random::<R>() - 1.0);
            }
        };
        fill(&mut p, lay.w0, lay.b0, d, h);
        fill(&mut p, lay.w1, lay.b1, h, h);
        fill(&mut p, lay.w2, lay.b2, h, 1);
        Self { d, h, p }
    }

    fn scratch(&self, rows: usize) -> Scratch {
        let h = self.h;
        Scratch {
            xb: vec![0.0; rows * self.d],
            h1: vec![0.0; rows * h],
            h2: vec![0.0; rows * h],
            dz: vec![0.0; rows],
            dh1: vec![0.0; rows * h],
            dh2: vec![0.0; rows * h],
            w1t: vec![0.0; h * h],
            grad: vec![0.0; self.p.len()],
            m: vec![0.0; self.p.len()],
            v: vec![0.0; self.p.len()],
            t: 0,
        }
    }

    /// Hidden activations and logits of `rows` rows of `x` (row-major); `z` gets the logits.
    fn forward(&self, x: &[R], rows: usize, h1: &mut [R], h2: &mut [R], z: &mut [R]) {
        let (d, h) = (self.d, self.h);
        let lay = layout(d, h);
        let p = &self.p;
        let affine_relu = |out: &mut [R], bias: &[R]| {
            for row in out[..rows * h].chunks_exact_mut(h) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o = (*o + b).max(0.0);
                }
            }
        };
        small_matmul(rows, h, d, h1, false, x, (d, 1), &p[lay.w0..], (h, 1));
        affine_relu(h1, &p[lay.b0..lay.b0 + h]);
        small_matmul(rows, h, h, h2, false, h1, (h, 1), &p[lay.w1..], (h, 1));
        affine_relu(h2, &p[lay.b1..lay.b1 + h]);
        let w2 = &p[lay.w2..lay.w2 + h];
        for (zi, row) in z[..rows].iter_mut().zip(h2.chunks_exact(h)) {
            *zi = p[lay.b2] + row.iter().zip(w2).map(|(a, b)| a * b).sum::<R>();
        }
    }

    /// One Adam step on the rows `idx` of `x`; returns the batch loss (log-loss + L2 term).
    fn step(&mut self, x: &[R], y: &[R], idx: &[usize], cfg: &C2stConfig, s: &mut Scratch) -> f64 {
        let (d, h) = (self.d, self.h);
        let lay = layout(d, h);
        let rows = idx.len();
        for (dst, &i) in s.xb.chunks_exact_mut(d).zip(idx) {
            dst.copy_from_slice(&x[i * d..(i + 1) * d]);
        }
        let mut z = std::mem::take(&mut s.dz);
        self.forward(&s.xb, rows, &mut s.h1, &mut s.h2, &mut z);
        s.dz = z;
        let n = rows as R;
        let alpha = cfg.alpha as R;
        let mut loss = 0.0;
        for (k, &i) in idx.iter().enumerate() {
            let zi = s.dz[k];
            // log(1 + e^z) - y z, stably.
            loss += zi.max(0.0) + (-zi.abs()).exp().ln_1p() - y[i] * zi;
            s.dz[k] = (1.0 / (1.0 + (-zi).exp()) - y[i]) / n;
        }
        let p = &self.p;
        let l2: R = [lay.w0..lay.b0, lay.w1..lay.b1, lay.w2..lay.b2]
            .into_iter()
            .map(|r| sum_of_squares(&p[r]))
            .sum();
        loss = loss / n + 0.5 * alpha * l2 / n;
        let g = &mut s.grad;
        // Output layer.
        // As products and branch-free masks: written as plain loops, these compile to
        // scalar, branching code that costs as much as the products.
        let gw2 = &mut g[lay.w2..lay.b2];
        small_matmul(1, h, rows, gw2, false, &s.dz, (rows, 1), &s.h2, (h, 1));
        let gb2: R = s.dz[..rows].iter().sum();
        small_matmul(
            rows,
            h,
            1,
            &mut s.dh2,
            false,
            &s.dz,
            (1, 1),
            &p[lay.w2..lay.b2],
            (h, 1),
        );
        relu_mask(&mut s.dh2[..rows * h], &s.h2);
        g[lay.b2] = gb2;
        // Second hidden layer: gW1 = h1^T dh2, dh1 = dh2 W1^T masked by h1 > 0.
        small_matmul(
            h,
            h,
            rows,
            &mut g[lay.w1..lay.b1],
            false,
            &s.h1,
            (1, h),
            &s.dh2,
            (h, 1),
        );
        let w1 = &p[lay.w1..lay.b1];
        for (j, trow) in s.w1t.chunks_exact_mut(h).enumerate() {
            for (t, w) in trow.iter_mut().zip(w1[j..].iter().step_by(h)) {
                *t = *w;
            }
        }
        small_matmul(
            rows,
            h,
            h,
            &mut s.dh1,
            false,
            &s.dh2,
            (h, 1),
            &s.w1t,
            (h, 1),
        );
        relu_mask(&mut s.dh1[..rows * h], &s.h1);
        // First layer: gW0 = x^T dh1.
        small_matmul(
            d,
            h,
            rows,
            &mut g[lay.w0..lay.b0],
            false,
            &s.xb,
            (1, d),
            &s.dh1,
            (h, 1),
        );
        let col_sums = |m: &[R], out: &mut [R]| {
            out.fill(0.0);
            for row in m[..rows * h].chunks_exact(h) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
        };
        col_sums(&s.dh2, &mut g[lay.b1..lay.b1 + h]);
        col_sums(&s.dh1, &mut g[lay.b0..lay.b0 + h]);
        for r in [lay.w0..lay.b0, lay.w1..lay.b1, lay.w2..lay.b2] {
            for (gk, wk) in g[r.clone()].iter_mut().zip(&p[r]) {
                *gk += wk * (alpha / n);
            }
        }
        s.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8 as R);
        let lr = (cfg.learning_rate * (1.0 - f64::powi(b2, s.t)).sqrt()
            / (1.0 - f64::powi(b1, s.t))) as R;
        let (b1, b2) = (b1 as R, b2 as R);
        for (((pk, gk), mk), vk) in self.p.iter_mut().zip(&s.grad).zip(&mut s.m).zip(&mut s.v) {
            *mk = b1 * *mk + (1.0 - b1) * gk;
            *vk = b2 * *vk + (1.0 - b2) * gk * gk;
            *pk -= lr * *mk / (vk.sqrt() + eps);
        }
        f64::from(loss)
    }
}

/// Trains the classifier on the rows `train` of `data` (`d` columns, row-major) and returns its
/// accuracy on the rows `test`.
fn train_and_score(
    data: &[R],
    labels: &[R],
    d: usize,
    train: &[usize],
    test: &[usize],
    cfg: &C2stConfig,
    fold: u64,
) -> f64 {
    let mut mlp = Mlp::new(d, cfg.hidden_factor * d, cfg.seed ^ (fold << 32));
    let n = train.len();
    let bs = cfg.batch_size.min(n).max(1);
    let mut s = mlp.scratch(bs);
    let mut order: Vec<usize> = train.to_vec();
    let mut rng = stream_rng(cfg.seed, purpose::DIAGNOSTIC, 1000 + fold);
    let mut best = f64::INFINITY;
    let mut no_improve = 0;
    for _ in 0..cfg.max_epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for idx in order.chunks(bs) {
            total += mlp.step(data, labels, idx, cfg, &mut s) * idx.len() as f64;
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
    let h = mlp.h;
    let mut correct = 0;
    let mut z = vec![0.0; bs];
    for idx in test.chunks(bs) {
        for (dst, &i) in s.xb.chunks_exact_mut(d).zip(idx) {
            dst.copy_from_slice(&data[i * d..(i + 1) * d]);
        }
        mlp.forward(&s.xb, idx.len(), &mut s.h1, &mut s.h2, &mut z);
        debug_assert_eq!(s.h1.len() % h, 0);
        correct += idx
            .iter()
            .zip(&z)
            .filter(|&(&i, &zi)| (zi > 0.0) == (labels[i] > 0.5))
            .count();
    }
    correct as f64 / test.len() as f64
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
    let data: Vec<R> = x
        .chunks_exact(dim)
        .chain(y.chunks_exact(dim))
        .flat_map(|row| {
            row.iter()
                .zip(mean.iter().zip(&std))
                .map(|(v, (m, sd))| ((v - m) / sd) as R)
        })
        .collect();
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
            train_and_score(&data, &labels, dim, &train, &test, cfg, f as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The classifier's loss (log-loss + L2) in f64 by plain loops, from the flat parameters.
    fn plain_loss(p: &[f64], d: usize, h: usize, x: &[f64], y: &[f64], alpha: f64) -> f64 {
        let lay = layout(d, h);
        let n = y.len() as f64;
        let mut loss = 0.0;
        for (row, &yi) in x.chunks(d).zip(y) {
            let h1: Vec<f64> = (0..h)
                .map(|j| {
                    let s: f64 = (0..d).map(|i| row[i] * p[lay.w0 + i * h + j]).sum();
                    (s + p[lay.b0 + j]).max(0.0)
                })
                .collect();
            let h2: Vec<f64> = (0..h)
                .map(|j| {
                    let s: f64 = (0..h).map(|i| h1[i] * p[lay.w1 + i * h + j]).sum();
                    (s + p[lay.b1 + j]).max(0.0)
                })
                .collect();
            let z = p[lay.b2] + (0..h).map(|i| h2[i] * p[lay.w2 + i]).sum::<f64>();
            loss += (1.0 + z.exp()).ln() - yi * z;
        }
        let l2: f64 = [lay.w0..lay.b0, lay.w1..lay.b1, lay.w2..lay.b2]
            .into_iter()
            .map(|r| p[r].iter().map(|w| w * w).sum::<f64>())
            .sum();
        loss / n + 0.5 * alpha * l2 / n
    }

    #[test]
    fn classifier_step_matches_plain_loss_and_finite_difference_gradients() {
        let (d, h, rows) = (3, 7, 9);
        let mlp = Mlp::new(d, h, 5);
        let x: Vec<R> = (0..rows * d)
            .map(|i| ((i * 37 % 17) as R / 8.0 - 1.0) * 1.3)
            .collect();
        let y: Vec<R> = (0..rows).map(|i| (i % 2) as R).collect();
        let idx: Vec<usize> = (0..rows).collect();
        let cfg = C2stConfig {
            alpha: 0.05,
            ..C2stConfig::default()
        };
        let p64: Vec<f64> = mlp.p.iter().map(|&v| f64::from(v)).collect();
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let y64: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        let mut stepped = Mlp {
            d,
            h,
            p: mlp.p.clone(),
        };
        let mut s = stepped.scratch(rows);
        let loss = stepped.step(&x, &y, &idx, &cfg, &mut s);
        let want = plain_loss(&p64, d, h, &x64, &y64, cfg.alpha);
        assert!(
            (loss - want).abs() < 1e-5 * want.abs().max(1.0),
            "{loss} vs {want}"
        );
        // The step moved every parameter with a non-zero gradient, by at most lr (Adam's
        // first step is lr * sign(g)).
        for k in 0..p64.len() {
            let mut hi = p64.clone();
            let mut lo = p64.clone();
            let e = 1e-6;
            hi[k] += e;
            lo[k] -= e;
            let fd = (plain_loss(&hi, d, h, &x64, &y64, cfg.alpha)
                - plain_loss(&lo, d, h, &x64, &y64, cfg.alpha))
                / (2.0 * e);
            let g = f64::from(s.grad[k]);
            assert!(
                (g - fd).abs() < 1e-4 + 1e-3 * fd.abs(),
                "parameter {k}: gradient {g} vs finite difference {fd}"
            );
            let moved = f64::from(stepped.p[k]) - p64[k];
            assert!(
                moved.abs() <= cfg.learning_rate * 1.001,
                "parameter {k} moved {moved}"
            );
            if fd.abs() > 1e-3 {
                assert!(
                    moved * fd < 0.0,
                    "parameter {k} moved {moved} against gradient {fd}"
                );
            }
        }
    }
}
