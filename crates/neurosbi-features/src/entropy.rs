//! Entropy, complexity and fractal measures with antropy's definitions and defaults
//! (antropy 0.2.3; references in each function). Each runs on a window of the trace
//! (default: the whole trace).

use std::sync::Arc;

use rustfft::{FftPlanner, num_complex::Complex};

use crate::error::FeatureError;
use crate::feature::{Feature, Input, Outcome, undefined};
use crate::params::Params;
use crate::recording::Window;
use crate::set::CatalogueEntry;

/// Which measure, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// `perm_entropy(x, order, delay, normalize)` (Bandt & Pompe 2002), in bits.
    PermEntropy {
        /// Embedding dimension.
        order: usize,
        /// Delay in samples.
        delay: usize,
        /// Divide by log2(order!) (clipped to [0, 1]).
        normalize: bool,
    },
    /// `spectral_entropy(x, sf, method='fft'|'welch', nperseg)`, in bits.
    SpectralEntropy {
        /// Welch's method (Hann windows, 50 % overlap) instead of the periodogram.
        welch: bool,
        /// Welch segment length (scipy's default 256, capped at the length).
        nperseg: usize,
        /// Divide by log2(number of frequency bins).
        normalize: bool,
    },
    /// `svd_entropy(x, order, delay, normalize)`, in bits.
    SvdEntropy {
        /// Embedding dimension.
        order: usize,
        /// Delay in samples.
        delay: usize,
        /// Divide by log2(order).
        normalize: bool,
    },
    /// `app_entropy(x, order, tolerance)`, Chebyshev metric, natural log.
    AppEntropy {
        /// Template length m.
        order: usize,
        /// Tolerance r; `None` means 0.2 * std(x).
        tolerance: Option<f64>,
    },
    /// `sample_entropy(x, order, tolerance)`, Chebyshev metric, natural log.
    SampleEntropy {
        /// Template length m.
        order: usize,
        /// Tolerance r; `None` means 0.2 * std(x).
        tolerance: Option<f64>,
    },
    /// `lziv_complexity((x >= median(x)), normalize)`.
    LzivComplexity {
        /// Divide by n / log2(n).
        normalize: bool,
    },
    /// `num_zerocross(x, normalize)`.
    NumZerocross {
        /// Divide by the number of samples.
        normalize: bool,
    },
    /// First output of `hjorth_params(x)` (per sample).
    HjorthMobility,
    /// Second output of `hjorth_params(x)`.
    HjorthComplexity,
    /// `petrosian_fd(x)`.
    PetrosianFd,
    /// `katz_fd(x)`.
    KatzFd,
    /// `higuchi_fd(x, kmax)`.
    HiguchiFd {
        /// Largest interval.
        kmax: usize,
    },
    /// `detrended_fluctuation(x)`.
    DetrendedFluctuation,
}

/// A [`Measure`] on a window of the trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntropyFeature {
    /// The measure.
    pub measure: Measure,
    /// The window.
    pub window: Window,
}

fn xlog2x(p: f64) -> f64 {
    if p > 0.0 { p * p.ln() / std::f64::consts::LN_2 } else { 0.0 }
}

fn variance(x: &[f64]) -> f64 {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64
}

fn finite(x: f64, reason: &'static str) -> Outcome {
    if x.is_finite() { Ok(x) } else { undefined(reason) }
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
        idx.iter().rev().fold(0u64, |h, &s| h * order as u64 + s as u64)
    };
    let mut probs = Vec::new();
    let table = (order as u64).checked_pow(order as u32).filter(|&t| t <= 1 << 16);
    if let Some(t) = table {
        let mut counts = vec![0u32; t as usize];
        for i in 0..n_embed {
            counts[hash_of(i, &mut idx) as usize] += 1;
        }
        probs.extend(counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n_embed as f64));
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
        (0..seg).map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / seg as f64).cos()).collect()
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
    let mut cols: Vec<Vec<f64>> = (0..order).map(|k| x[k * delay..k * delay + rows].to_vec()).collect();
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
    Some(cols.iter().map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt()).collect())
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
/// Returns per-template counts including self-matches. Templates are visited in order
/// of their first value so only close candidates are compared.
fn template_counts(x: &[f64], m: usize, r: f64, strict: bool, n_m: usize, n_m1: usize) -> (Vec<u32>, Vec<u32>) {
    let close = |a: f64, b: f64| if strict { (a - b).abs() < r } else { (a - b).abs() <= r };
    let mut order: Vec<usize> = (0..n_m).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
    let mut c1 = vec![0u32; n_m];
    let mut c2 = vec![0u32; n_m1];
    for (pos, &i) in order.iter().enumerate() {
        for &j in &order[pos + 1..] {
            if !close(x[j], x[i]) {
                // Sorted by first value: every later template is further away.
                if x[j] - x[i] > r {
                    break;
                }
                continue;
            }
            if (1..m).all(|k| close(x[i + k], x[j + k])) {
                c1[i] += 1;
                c1[j] += 1;
                if i < n_m1 && j < n_m1 && close(x[i + m], x[j + m]) {
                    c2[i] += 1;
                    c2[j] += 1;
                }
            }
        }
    }
    (c1, c2)
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
    let phi0 = c1.iter().map(|&c| ((c + 1) as f64 / n1 as f64).ln()).sum::<f64>() / n1 as f64;
    let phi1 = c2.iter().map(|&c| ((c + 1) as f64 / n2 as f64).ln()).sum::<f64>() / n2 as f64;
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

/// Lempel-Ziv (1976) complexity of a symbol sequence (Kaspar & Schuster 1987 scheme).
pub fn lz_complexity(s: &[u8]) -> usize {
    let n = s.len();
    if n == 0 {
        return 0;
    }
    let (mut complexity, mut prefix_len, mut len_sub, mut max_len_sub, mut pointer) = (1, 1, 1, 1, 0);
    while prefix_len + len_sub <= n {
        if s[pointer + len_sub - 1] == s[prefix_len + len_sub - 1] {
            len_sub += 1;
        } else {
            max_len_sub = max_len_sub.max(len_sub);
            pointer += 1;
            if pointer == prefix_len {
                complexity += 1;
                prefix_len += max_len_sub;
                pointer = 0;
                max_len_sub = 1;
            }
            len_sub = 1;
        }
    }
    if len_sub != 1 {
        complexity += 1;
    }
    complexity
}

/// numpy's median.
fn median(x: &[f64]) -> f64 {
    crate::moments::percentile(x, 50.0)
}

/// LZ complexity of the trace binarised at its median (`x >= median`).
pub fn lziv_complexity(x: &[f64], normalize: bool) -> Outcome {
    if x.len() < 2 {
        return undefined("fewer than two samples");
    }
    let med = median(x);
    let s: Vec<u8> = x.iter().map(|&v| u8::from(v >= med)).collect();
    let c = lz_complexity(&s) as f64;
    if normalize {
        let n = x.len() as f64;
        Ok(c / (n / n.log2()))
    } else {
        Ok(c)
    }
}

/// Number of sign changes (numpy `signbit`: 0 counts as positive, -0 as negative).
pub fn num_zerocross(x: &[f64]) -> usize {
    x.windows(2).filter(|w| w[0].is_sign_negative() != w[1].is_sign_negative()).count()
}

/// Hjorth mobility and complexity (per sample).
pub fn hjorth(x: &[f64]) -> (Outcome, Outcome) {
    if x.len() < 3 {
        let u = undefined("fewer than three samples");
        return (u, u);
    }
    let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let ddx: Vec<f64> = dx.windows(2).map(|w| w[1] - w[0]).collect();
    let (vx, vdx, vddx) = (variance(x), variance(&dx), variance(&ddx));
    if vx == 0.0 {
        let u = undefined("constant signal");
        return (u, u);
    }
    let mob = (vdx / vx).sqrt();
    let com = if vdx == 0.0 { undefined("constant first difference") } else { Ok((vddx / vdx).sqrt() / mob) };
    (Ok(mob), com)
}

/// Petrosian fractal dimension.
pub fn petrosian_fd(x: &[f64]) -> Outcome {
    if x.len() < 2 {
        return undefined("fewer than two samples");
    }
    let d: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let nzc = num_zerocross(&d) as f64;
    let n = x.len() as f64;
    finite(n.log10() / (n.log10() + (n / (n + 0.4 * nzc)).log10()), "not finite")
}

/// Katz fractal dimension.
pub fn katz_fd(x: &[f64]) -> Outcome {
    if x.len() < 2 {
        return undefined("fewer than two samples");
    }
    let l: f64 = x.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    let a = l / (x.len() - 1) as f64;
    let d = x.iter().map(|v| (v - x[0]).abs()).fold(0.0, f64::max);
    if a == 0.0 {
        return undefined("constant signal");
    }
    let den = (d / a).log10();
    if den == 0.0 {
        return undefined("maximal excursion equals the mean step");
    }
    finite((l / a).log10() / den, "not finite")
}

/// antropy's least squares (note the 1e-9 added to the denominator).
fn linear_regression(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mut sx2, mut sx, mut sy, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sx2 += a * a;
        sx += a;
        sxy += a * b;
        sy += b;
    }
    let slope = (n * sxy - sx * sy) / (n * sx2 - sx * sx + 1e-9);
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// Higuchi fractal dimension.
pub fn higuchi_fd(x: &[f64], kmax: usize) -> Outcome {
    let n = x.len();
    if n < 2 * kmax + 1 {
        return undefined("trace shorter than 2*kmax + 1");
    }
    let mut xr = Vec::with_capacity(kmax);
    let mut yr = Vec::with_capacity(kmax);
    for k in 1..=kmax {
        let mut m_lm = 0.0;
        for m in 0..k {
            let n_max = (n - m - 1) / k;
            let mut ll = 0.0;
            for j in 1..=n_max {
                ll += (x[m + j * k] - x[m + (j - 1) * k]).abs();
            }
            ll /= k as f64;
            ll *= (n - 1) as f64 / (k * n_max) as f64;
            m_lm += ll;
        }
        m_lm /= k as f64;
        xr.push((1.0 / k as f64).ln());
        yr.push(if m_lm > 0.0 { m_lm.ln() } else { f64::NEG_INFINITY });
    }
    finite(linear_regression(&xr, &yr).0, "curve length is zero at some scale (constant signal)")
}

/// Detrended fluctuation analysis exponent (window sizes from 4 to N/10, factor 1.2).
pub fn detrended_fluctuation(x: &[f64]) -> Outcome {
    let n = x.len();
    if n < 8 {
        return undefined("fewer than eight samples");
    }
    let max_n = 0.1 * n as f64;
    let max_i = ((max_n / 4.0).ln() / 1.2f64.ln()).floor();
    let mut ns = vec![4usize];
    if max_i >= 0.0 {
        for i in 0..=max_i as i32 {
            let v = (4.0 * 1.2f64.powf(i as f64)).floor() as usize;
            if v > *ns.last().unwrap() {
                ns.push(v);
            }
        }
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let mut walk = Vec::with_capacity(n);
    let mut acc = 0.0;
    for &v in x {
        acc += v - mean;
        walk.push(acc);
    }
    let (mut lx, mut ly) = (Vec::new(), Vec::new());
    for &w in &ns {
        let rows = n / w;
        if rows == 0 {
            continue;
        }
        let ran: Vec<f64> = (0..w).map(|k| k as f64).collect();
        let mut total = 0.0;
        for r in 0..rows {
            let d = &walk[r * w..(r + 1) * w];
            let (slope, intercept) = linear_regression(&ran, d);
            total += d.iter().zip(&ran).map(|(y, t)| (y - (intercept + slope * t)).powi(2)).sum::<f64>() / w as f64;
        }
        let f = (total / rows as f64).sqrt();
        if f != 0.0 {
            lx.push((w as f64).ln());
            ly.push(f.ln());
        }
    }
    if lx.is_empty() {
        return undefined("no non-zero fluctuation (constant signal)");
    }
    finite(linear_regression(&lx, &ly).0, "not finite")
}

impl EntropyFeature {
    /// Evaluates the measure on a slice.
    pub fn eval(&self, x: &[f64]) -> Outcome {
        if x.is_empty() {
            return undefined("window contains no samples");
        }
        match self.measure {
            Measure::PermEntropy { order, delay, normalize } => perm_entropy(x, order, delay, normalize),
            Measure::SpectralEntropy { welch, nperseg, normalize } => spectral_entropy(x, welch, nperseg, normalize),
            Measure::SvdEntropy { order, delay, normalize } => svd_entropy(x, order, delay, normalize),
            Measure::AppEntropy { order, tolerance } => app_entropy(x, order, tolerance),
            Measure::SampleEntropy { order, tolerance } => sample_entropy(x, order, tolerance),
            Measure::LzivComplexity { normalize } => lziv_complexity(x, normalize),
            Measure::NumZerocross { normalize } => {
                let c = num_zerocross(x) as f64;
                Ok(if normalize { c / x.len() as f64 } else { c })
            }
            Measure::HjorthMobility => hjorth(x).0,
            Measure::HjorthComplexity => hjorth(x).1,
            Measure::PetrosianFd => petrosian_fd(x),
            Measure::KatzFd => katz_fd(x),
            Measure::HiguchiFd { kmax } => higuchi_fd(x, kmax),
            Measure::DetrendedFluctuation => detrended_fluctuation(x),
        }
    }

    fn base_and_params(&self) -> (&'static str, Vec<String>) {
        let flag = |v: &mut Vec<String>, on: bool, s: &str| {
            if on {
                v.push(s.to_string())
            }
        };
        let mut p = Vec::new();
        let base = match self.measure {
            Measure::PermEntropy { order, delay, normalize } => {
                p.push(format!("order={order}"));
                p.push(format!("delay={delay}"));
                flag(&mut p, normalize, "normalize=true");
                "perm_entropy"
            }
            Measure::SpectralEntropy { welch, nperseg, normalize } => {
                p.push(format!("method={}", if welch { "welch" } else { "fft" }));
                if welch {
                    p.push(format!("nperseg={nperseg}"));
                }
                flag(&mut p, normalize, "normalize=true");
                "spectral_entropy"
            }
            Measure::SvdEntropy { order, delay, normalize } => {
                p.push(format!("order={order}"));
                p.push(format!("delay={delay}"));
                flag(&mut p, normalize, "normalize=true");
                "svd_entropy"
            }
            Measure::AppEntropy { order, tolerance } | Measure::SampleEntropy { order, tolerance } => {
                p.push(format!("order={order}"));
                if let Some(t) = tolerance {
                    p.push(format!("tolerance={t}"));
                }
                if matches!(self.measure, Measure::AppEntropy { .. }) { "app_entropy" } else { "sample_entropy" }
            }
            Measure::LzivComplexity { normalize } => {
                flag(&mut p, normalize, "normalize=true");
                "lziv_complexity"
            }
            Measure::NumZerocross { normalize } => {
                flag(&mut p, normalize, "normalize=true");
                "num_zerocross"
            }
            Measure::HjorthMobility => "hjorth_mobility",
            Measure::HjorthComplexity => "hjorth_complexity",
            Measure::PetrosianFd => "petrosian_fd",
            Measure::KatzFd => "katz_fd",
            Measure::HiguchiFd { kmax } => {
                p.push(format!("kmax={kmax}"));
                "higuchi_fd"
            }
            Measure::DetrendedFluctuation => "detrended_fluctuation",
        };
        match self.window {
            Window::Whole => {}
            Window::Times { start, stop } => p.push(format!("start={start}, stop={stop}")),
            w => p.push(format!("window={}", w.label())),
        }
        (base, p)
    }
}

impl Feature for EntropyFeature {
    fn name(&self) -> String {
        let (base, p) = self.base_and_params();
        if p.is_empty() { base.to_string() } else { format!("{base}({})", p.join(", ")) }
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let rec = input.recording();
        out[0] = self.eval(&rec.values[rec.window_range(self.window)]);
    }
}

fn tolerance(p: &mut Params) -> Result<Option<f64>, FeatureError> {
    match p.opt_f64("tolerance")? {
        Some(t) if t <= 0.0 => Err(FeatureError::BadParameter {
            feature: p.feature().into(),
            param: "tolerance".into(),
            reason: format!("must be > 0, got {t}"),
        }),
        t => Ok(t),
    }
}

fn build(kind: &str, p: &mut Params) -> Result<Box<dyn Feature>, FeatureError> {
    let measure = match kind {
        "perm_entropy" => Measure::PermEntropy {
            order: p.int("order", 3, 2, 12)?,
            delay: p.int("delay", 1, 1, 1 << 20)?,
            normalize: p.bool("normalize", false)?,
        },
        "spectral_entropy" => {
            let welch = p.choice("method", &["fft", "welch"])? == "welch";
            Measure::SpectralEntropy { welch, nperseg: p.int("nperseg", 256, 2, 1 << 24)?, normalize: p.bool("normalize", false)? }
        }
        "svd_entropy" => Measure::SvdEntropy {
            order: p.int("order", 3, 2, 64)?,
            delay: p.int("delay", 1, 1, 1 << 20)?,
            normalize: p.bool("normalize", false)?,
        },
        "app_entropy" => Measure::AppEntropy { order: p.int("order", 2, 1, 64)?, tolerance: tolerance(p)? },
        "sample_entropy" => Measure::SampleEntropy { order: p.int("order", 2, 1, 64)?, tolerance: tolerance(p)? },
        "lziv_complexity" => Measure::LzivComplexity { normalize: p.bool("normalize", false)? },
        "num_zerocross" => Measure::NumZerocross { normalize: p.bool("normalize", false)? },
        "hjorth_mobility" => Measure::HjorthMobility,
        "hjorth_complexity" => Measure::HjorthComplexity,
        "petrosian_fd" => Measure::PetrosianFd,
        "katz_fd" => Measure::KatzFd,
        "higuchi_fd" => Measure::HiguchiFd { kmax: p.int("kmax", 10, 1, 1 << 16)? },
        _ => Measure::DetrendedFluctuation,
    };
    Ok(Box::new(EntropyFeature { measure, window: p.window(Window::Whole)? }))
}

macro_rules! entry {
    ($name:literal, $unit:literal, $summary:literal, $params:literal) => {
        CatalogueEntry { name: $name, group: "entropy", unit: $unit, summary: $summary, params: $params, build: |p| build($name, p) }
    };
}

pub(crate) fn entries() -> Vec<CatalogueEntry> {
    vec![
        entry!("perm_entropy", "bit", "permutation entropy", "order=3, delay=1, normalize=false, window=whole"),
        entry!("spectral_entropy", "bit", "entropy of the normalised power spectrum", "method=fft|welch, nperseg=256, normalize=false, window=whole"),
        entry!("svd_entropy", "bit", "entropy of the delay-embedding singular values", "order=3, delay=1, normalize=false, window=whole"),
        entry!("app_entropy", "nat", "approximate entropy (Chebyshev)", "order=2, tolerance=0.2*std, window=whole"),
        entry!("sample_entropy", "nat", "sample entropy (Chebyshev)", "order=2, tolerance=0.2*std, window=whole"),
        entry!("lziv_complexity", "count", "Lempel-Ziv complexity of x >= median(x)", "normalize=false, window=whole"),
        entry!("num_zerocross", "count", "number of sign changes", "normalize=false, window=whole"),
        entry!("hjorth_mobility", "1/sample", "Hjorth mobility sqrt(var(dx)/var(x))", "window=whole"),
        entry!("hjorth_complexity", "1", "Hjorth complexity", "window=whole"),
        entry!("petrosian_fd", "1", "Petrosian fractal dimension", "window=whole"),
        entry!("katz_fd", "1", "Katz fractal dimension", "window=whole"),
        entry!("higuchi_fd", "1", "Higuchi fractal dimension", "kmax=10, window=whole"),
        entry!("detrended_fluctuation", "1", "DFA scaling exponent", "window=whole"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_series_has_zero_perm_entropy() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!(perm_entropy(&x, 3, 1, false), Ok(0.0));
        // A period-4 zigzag: up-up-down-down visits exactly four order-3 patterns equally.
        let z: Vec<f64> = (0..4000).map(|i| [0.0, 1.0, 2.0, 1.0][i % 4]).collect();
        let pe = perm_entropy(&z, 3, 1, false).unwrap();
        assert!((pe - 2.0).abs() < 1e-3, "{pe}");
    }

    #[test]
    fn lz_complexity_of_known_strings() {
        // antropy's docstring example: '1001111011000010' has complexity 6.
        let s: Vec<u8> = "1001111011000010".bytes().collect();
        assert_eq!(lz_complexity(&s), 6);
        assert_eq!(lz_complexity(&[1u8; 50]), 2);
    }

    #[test]
    fn singular_values_match_a_hand_computed_case() {
        // Embedding of [1, 0, 0, 1] with order 2: rows (1,0), (0,0), (0,1): singular values 1, 1.
        let s = embedding_singular_values(&[1.0, 0.0, 0.0, 1.0], 2, 1).unwrap();
        let mut s = s;
        s.sort_by(f64::total_cmp);
        assert!((s[0] - 1.0).abs() < 1e-14 && (s[1] - 1.0).abs() < 1e-14);
    }

    #[test]
    fn pure_tone_has_low_spectral_entropy() {
        let x: Vec<f64> = (0..1000).map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / 1000.0).sin()).collect();
        assert!(spectral_entropy(&x, false, 256, false).unwrap() < 0.01);
        assert!(spectral_entropy(&x, true, 256, true).unwrap() < 0.5);
    }

    #[test]
    fn zero_crossings_and_hjorth_of_a_sine() {
        assert_eq!(num_zerocross(&[-1.0, 0.0, 1.0, 2.0, 3.0]), 1);
        // 16 whole periods, so sample variances equal their continuous values.
        let w = 2.0 * std::f64::consts::PI * 16.0 / 10000.0;
        let x: Vec<f64> = (0..10000).map(|i| (w * i as f64).sin()).collect();
        let (mob, com) = hjorth(&x);
        // Mobility of a sampled sine is 2 sin(w/2).
        assert!((mob.unwrap() - 2.0 * (w / 2.0).sin()).abs() < 1e-5);
        assert!((com.unwrap() - 1.0).abs() < 1e-3);
    }
}
