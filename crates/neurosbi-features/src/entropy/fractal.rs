//! Complexity and fractal measures: Lempel-Ziv, zero crossings, Hjorth, Petrosian,
//! Katz, Higuchi, detrended fluctuation.

use super::information::{finite, variance};
use crate::feature::{Outcome, undefined};

/// Lempel-Ziv (1976) complexity of a symbol sequence (Kaspar & Schuster 1987 scheme).
pub fn lz_complexity(s: &[u8]) -> usize {
    let n = s.len();
    if n == 0 {
        return 0;
    }
    let (mut complexity, mut prefix_len, mut len_sub, mut max_len_sub, mut pointer) =
        (1, 1, 1, 1, 0);
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
    x.windows(2)
        .filter(|w| w[0].is_sign_negative() != w[1].is_sign_negative())
        .count()
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
    let com = if vdx == 0.0 {
        undefined("constant first difference")
    } else {
        Ok((vddx / vdx).sqrt() / mob)
    };
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
    finite(
        n.log10() / (n.log10() + (n / (n + 0.4 * nzc)).log10()),
        "not finite",
    )
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
        yr.push(if m_lm > 0.0 {
            m_lm.ln()
        } else {
            f64::NEG_INFINITY
        });
    }
    finite(
        linear_regression(&xr, &yr).0,
        "curve length is zero at some scale (constant signal)",
    )
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
            total += d
                .iter()
                .zip(&ran)
                .map(|(y, t)| (y - (intercept + slope * t)).powi(2))
                .sum::<f64>()
                / w as f64;
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
