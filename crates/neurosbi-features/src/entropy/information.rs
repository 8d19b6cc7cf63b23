//! Information measures: permutation, spectral, SVD, approximate and sample entropy.

use std::sync::Arc;

use rustfft::{FftPlanner, num_complex::Complex};

use crate::feature::{Outcome, undefined};

fn xlog2x(p: f64) -> f64 {
    if p > 0.0 {
        p * p.ln() / std::f64::consts::LN_2
    } else {
        0.0
    }
}

pub(crate) fn variance(x: &[f64]) -> f64 {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64
}

pub(crate) fn finite(x: f64, reason: &'static str) -> Outcome {
    if x.is_finite() {
        Ok(x)
    } else {
        undefined(reason)
    }
}

/// Permutation entropy; ties are ranked by position (stable argsort, as antropy).
pub fn perm_entropy(x: &[f64], order: usize, delay: usize, normalize: bool) -> Outcome {
    let span = (order - 1) * delay;
    if x.len() <= span {
        return undefined("trace shorter than (order-1)*delay + 1");
    }
    let n_embed = x.len() - span;
    let mut idx = vec![0usize; order];
    let hash_of = |i: usize, idx: &mut [usize]| -> u64 {
        for (k, slot) in idx.iter_mut().enumerate() {
            *slot = k;
        }
        // Insertion sort by value; strict comparison keeps equal values in position order.
        for a in 1..order {
            let mut b = a;
            while b > 0 && x[i + idx[b - 1] * delay] > x[i + idx[b] * delay] {
                idx.swap(b - 1, b);
                b -= 1;
            }
        }
        idx.iter()
            .rev()
            .fold(0u64, |h, &s| h * order as u64 + s as u64)
    };
    let mut probs = Vec::new();
    let table = (order as u64)
        .checked_pow(order as u32)
        .filter(|&t| t <= 1 << 16);
    if let Some(t) = table {
        let mut counts = vec![0u32; t as usize];
        for i in 0..n_embed {
            counts[hash_of(i, &mut idx) as usize] += 1;
        }
        probs.extend(
            counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| c as f64 / n_embed as f64),
        );
    } else {
        let mut hashes: Vec<u64> = (0..n_embed).map(|i| hash_of(i, &mut idx)).collect();
        hashes.sort_unstable();
        let mut run = 1;
        for k in 1..=hashes.len() {
            if k < hashes.len() && hashes[k] == hashes[k - 1] {
                run += 1;
            } else {
                probs.push(run as f64 / n_embed as f64);
                run = 1;
            }
        }
    }
    let mut pe = -probs.iter().map(|&p| xlog2x(p)).sum::<f64>();
    if normalize {
        let log_fact: f64 = (2..=order).map(|k| (k as f64).log2()).sum();
        pe = (pe / log_fact).clamp(0.0, 1.0);
    }
    Ok(pe)
}

fn fft(planner: &mut FftPlanner<f64>, len: usize) -> Arc<dyn rustfft::Fft<f64>> {
    planner.plan_fft_forward(len)
}

/// One-sided power spectrum as scipy's `periodogram` / `welch` (density scaling; the
/// constant scale is kept so values match, although entropy does not depend on it).
pub fn power_spectrum(x: &[f64], welch: bool, nperseg: usize) -> Vec<f64> {
    let n = x.len();
    let seg = if welch { nperseg.min(n) } else { n };
    let window: Vec<f64> = if welch {
        // scipy get_window('hann', N) is periodic: 0.5 - 0.5 cos(2 pi k / N).
        (0..seg)
            .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / seg as f64).cos())
            .collect()
    } else {
        vec![1.0; seg]
    };
    let overlap = if welch { seg / 2 } else { 0 };
    let step = seg - overlap;
    let n_seg = (n - overlap) / step;
    let wss: f64 = window.iter().map(|w| w * w).sum();
    let mut planner = FftPlanner::new();
    let plan = fft(&mut planner, seg);
    let n_freq = seg / 2 + 1;
    let mut psd = vec![0.0; n_freq];
    let mut buf = vec![Complex::new(0.0, 0.0); seg];
    for s in 0..n_seg {
        let part = &x[s * step..s * step + seg];
        let m = part.iter().sum::<f64>() / seg as f64;
        for ((b, &v), &w) in buf.iter_mut().zip(part).zip(&window) {
            *b = Complex::new((v - m) * w, 0.0);
        }
        plan.process(&mut buf);
        for (p, b) in psd.iter_mut().zip(&buf) {
            *p += b.norm_sqr();
        }
    }
    let scale = 1.0 / (wss * n_seg as f64);
    let last = if seg % 2 == 0 { n_freq - 1 } else { n_freq };
    for (k, p) in psd.iter_mut().enumerate() {
        *p *= scale;
        if k >= 1 && k < last {
            *p *= 2.0;
        }
    }
    psd
}

/// Spectral entropy of the normalised power spectrum, in bits.
pub fn spectral_entropy(x: &[f64], welch: bool, nperseg: usize, normalize: bool) -> Outcome {
    if x.len() < 2 {
        return undefined("fewer than two samples");
    }
    let psd = power_spectrum(x, welch, nperseg);
    let total: f64 = psd.iter().sum();
    if total <= 0.0 {
        return undefined("zero power (constant signal)");
    }
    let mut se = -psd.iter().map(|p| xlog2x(p / total)).sum::<f64>();
    if normalize {
        se /= (psd.len() as f64).log2();
    }
    finite(se, "spectral entropy not finite")
}

/// Singular values of the delay-embedding matrix by one-sided Jacobi rotations (exact to
/// rounding even for small singular values, unlike the Gram-matrix route).
pub fn embedding_singular_values(x: &[f64], order: usize, delay: usize) -> Option<Vec<f64>> {
    let span = (order - 1) * delay;
    if x.len() <= span {
        return None;
    }
    let rows = x.len() - span;
    let mut cols: Vec<Vec<f64>> = (0..order)
        .map(|k| x[k * delay..k * delay + rows].to_vec())
        .collect();
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..order {
            for q in p + 1..order {
                let (a, b) = (&cols[p], &cols[q]);
                let alpha: f64 = a.iter().map(|v| v * v).sum();
                let beta: f64 = b.iter().map(|v| v * v).sum();
                let gamma: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
                if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (lo, hi) = cols.split_at_mut(q);
                for (u, v) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                    let (uu, vv) = (*u, *v);
                    *u = c * uu - s * vv;
                    *v = s * uu + c * vv;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    Some(
        cols.iter()
            .map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect(),
    )
}

/// SVD entropy, in bits.
pub fn svd_entropy(x: &[f64], order: usize, delay: usize, normalize: bool) -> Outcome {
    let Some(w) = embedding_singular_values(x, order, delay) else {
        return undefined("trace shorter than (order-1)*delay + 1");
    };
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return undefined("all singular values are zero");
    }
    let mut e = -w.iter().map(|s| xlog2x(s / total)).sum::<f64>();
    if normalize {
        e /= (order as f64).log2();
    }
    Ok(e)
}

/// Counts, for templates of length `m` (first `n_m` starts) and `m + 1` (first `n_m1`
/// starts), the pairs within Chebyshev distance `r` (`<= r`, or `< r` when `strict`).
/// Returns per-template counts excluding self-matches, in an arbitrary template order
/// (callers only sum or average them).
///
/// Templates are sorted by their first value and stored column by column, so each
/// template is compared only with the later ones within `r` in that value, in a
/// branch-free loop over contiguous memory that the compiler vectorises. The count is
/// still quadratic in the worst case, as the pairs within `r` are.
fn template_counts(
    x: &[f64],
    m: usize,
    r: f64,
    strict: bool,
    n_m: usize,
    n_m1: usize,
) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<usize> = (0..n_m).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
    // Column k holds value k of each sorted template; column m is the extension to
    // length m + 1, NaN where the template has none (NaN never compares close).
    let cols: Vec<Vec<f64>> = (0..=m)
        .map(|k| {
            order
                .iter()
                .map(|&i| {
                    if k < m || i < n_m1 {
                        x[i + k]
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        })
        .collect();
    let mut c1 = vec![0u32; n_m];
    let mut c2 = vec![0u32; n_m];
    match (m, strict) {
        (2, false) => scan2_dispatch::<false>(&cols, r, &mut c1, &mut c2),
        (2, true) => scan2_dispatch::<true>(&cols, r, &mut c1, &mut c2),
        _ => scan_any(&cols, r, strict, &mut c1, &mut c2),
    }
    let c2 = order
        .iter()
        .zip(c2)
        .filter(|(i, _)| **i < n_m1)
        .map(|(_, c)| c)
        .collect();
    (c1, c2)
}

#[inline(always)]
fn within<const STRICT: bool>(d: f64, r: f64) -> bool {
    if STRICT { d < r } else { d <= r }
}

/// Runs [`scan2`] compiled for AVX2 when the CPU has it (4 lanes instead of 2).
fn scan2_dispatch<const STRICT: bool>(cols: &[Vec<f64>], r: f64, c1: &mut [u32], c2: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn scan2_avx2<const STRICT: bool>(
            cols: &[Vec<f64>],
            r: f64,
            c1: &mut [u32],
            c2: &mut [u32],
        ) {
            scan2::<STRICT>(cols, r, c1, c2)
        }
        // SAFETY: the CPU supports AVX2 (checked above), the only requirement of a
        // `target_feature` function.
        unsafe { scan2_avx2::<STRICT>(cols, r, c1, c2) };
        return;
    }
    scan2::<STRICT>(cols, r, c1, c2)
}

/// Pair scan for templates of length 2 (antropy's default order).
#[inline(always)]
fn scan2<const STRICT: bool>(cols: &[Vec<f64>], r: f64, c1: &mut [u32], c2: &mut [u32]) {
    let (x0, x1, x2) = (&cols[0], &cols[1], &cols[2]);
    let n = x0.len();
    for p in 0..n {
        let (a0, a1, a2) = (x0[p], x1[p], x2[p]);
        let end = p + 1 + x0[p + 1..].partition_point(|&b| b - a0 <= r);
        let (b0, b1, b2) = (&x0[p + 1..end], &x1[p + 1..end], &x2[p + 1..end]);
        let (d1, d2) = (&mut c1[p + 1..end], &mut c2[p + 1..end]);
        let (mut s1, mut s2) = (0u32, 0u32);
        for i in 0..b0.len() {
            let ok = within::<STRICT>(b0[i] - a0, r) & within::<STRICT>((b1[i] - a1).abs(), r);
            let ok2 = ok & within::<STRICT>((b2[i] - a2).abs(), r);
            d1[i] += ok as u32;
            d2[i] += ok2 as u32;
            s1 += ok as u32;
            s2 += ok2 as u32;
        }
        c1[p] += s1;
        c2[p] += s2;
    }
}

/// Pair scan for any template length.
fn scan_any(cols: &[Vec<f64>], r: f64, strict: bool, c1: &mut [u32], c2: &mut [u32]) {
    let m = cols.len() - 1;
    let n = cols[0].len();
    let close = |d: f64| if strict { d < r } else { d <= r };
    for p in 0..n {
        for q in p + 1..n {
            let d0 = cols[0][q] - cols[0][p];
            if d0 > r {
                break;
            }
            if close(d0) && (1..m).all(|k| close((cols[k][q] - cols[k][p]).abs())) {
                c1[p] += 1;
                c1[q] += 1;
                if close((cols[m][q] - cols[m][p]).abs()) {
                    c2[p] += 1;
                    c2[q] += 1;
                }
            }
        }
    }
}

fn tolerance_of(x: &[f64], tolerance: Option<f64>) -> f64 {
    tolerance.unwrap_or_else(|| 0.2 * variance(x).sqrt())
}

/// Approximate entropy (Richman & Moorman 2000), natural log.
pub fn app_entropy(x: &[f64], order: usize, tolerance: Option<f64>) -> Outcome {
    if x.len() < order + 2 {
        return undefined("trace shorter than order + 2");
    }
    let r = tolerance_of(x, tolerance);
    let n1 = x.len() - order + 1;
    let n2 = x.len() - order;
    let (c1, c2) = template_counts(x, order, r, false, n1, n2);
    let phi0 = c1
        .iter()
        .map(|&c| ((c + 1) as f64 / n1 as f64).ln())
        .sum::<f64>()
        / n1 as f64;
    let phi1 = c2
        .iter()
        .map(|&c| ((c + 1) as f64 / n2 as f64).ln())
        .sum::<f64>()
        / n2 as f64;
    Ok(phi0 - phi1)
}

/// Sample entropy, natural log. As antropy, matches are `< r` below 5000 samples (its
/// numba path) and `<= r` from 5000 on (its KD-tree path).
pub fn sample_entropy(x: &[f64], order: usize, tolerance: Option<f64>) -> Outcome {
    if x.len() < order + 2 {
        return undefined("trace shorter than order + 2");
    }
    let r = tolerance_of(x, tolerance);
    let n = x.len() - order;
    let (c1, c2) = template_counts(x, order, r, x.len() < 5000, n, n);
    let b: u64 = c1.iter().map(|&c| c as u64).sum();
    let a: u64 = c2.iter().map(|&c| c as u64).sum();
    if b == 0 {
        return undefined("no pair of templates of length m matches");
    }
    if a == 0 {
        return undefined("no pair of templates of length m+1 matches (infinite entropy)");
    }
    Ok(-(a as f64 / b as f64).ln())
}
