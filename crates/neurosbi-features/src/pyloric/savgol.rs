//! The Savitzky-Golay smoothing that the `pyloric` package applies before it looks for
//! spike peaks: `scipy.signal.savgol_filter(v, window, 3)` with scipy's default
//! `mode="interp"` (scipy 1.11, `scipy/signal/_savitzky_golay.py`).
//!
//! Interior samples are the convolution with the least-squares smoothing coefficients;
//! the first and last `window / 2` samples are the values, at their positions, of a cubic
//! fitted to the first and last `window` samples (`_fit_edges_polyfit`). The order of the
//! additions in the interior follows scipy's symmetric-filter loop in
//! `ndimage/src/ni_filters.c` (`NI_Correlate1D`). The coefficients are the closed form;
//! scipy's come from a least-squares solve and differ from them by ~1e-15, so smoothed
//! values agree to rounding. That matters: the package finds peaks from the signs of
//! differences of these values (checked end to end on the fixtures' full traces).

/// Smoothing coefficients of a cubic (equally a quadratic) Savitzky-Golay filter of
/// `2 * half + 1` points, centre first: `c[k]` weighs the samples `k` away from the centre.
///
/// Closed form (Savitzky & Golay 1964; e.g. Press et al., *Numerical Recipes* §14.9):
/// `c_k = (3 (3m² + 3m − 1) − 15 k²) / ((2m − 1)(2m + 1)(2m + 3))` with `m = half`.
fn coefficients(half: usize) -> Vec<f64> {
    let m = half as f64;
    let norm = (2.0 * m - 1.0) * (2.0 * m + 1.0) * (2.0 * m + 3.0);
    (0..=half)
        .map(|k| {
            let k = k as f64;
            (3.0 * (3.0 * m * m + 3.0 * m - 1.0) - 15.0 * k * k) / norm
        })
        .collect()
}

/// `savgol_filter(v, window, 3)` for an odd `window >= 5`; `v` shorter than `window`
/// is returned unchanged (scipy refuses it; the package never gets there).
pub fn smooth(v: &[f64], window: usize) -> Vec<f64> {
    debug_assert!(window % 2 == 1 && window >= 5);
    let n = v.len();
    if n < window {
        return v.to_vec();
    }
    let half = window / 2;
    let c = coefficients(half);
    let mut out = vec![0.0; n];
    for (i, o) in out.iter_mut().enumerate().take(n - half).skip(half) {
        *o = interior(v, &c, i);
    }
    fit_edge(&v[..window], &mut out[..half], 0);
    fit_edge(&v[n - window..], &mut out[n - half..], window - half);
    out
}

/// [`smooth`] where its value can exceed `floor`, NaN elsewhere: the same numbers at the
/// same samples, for a fraction of the work when a trace spends most of its time far
/// below `floor` (a pyloric neuron between bursts).
///
/// Interior samples come in chunks; a chunk (and one sample either side, so that a peak
/// test can read its neighbours) is computed unless a bound proves every smoothed value
/// in it to be below `floor`: with coefficients summing to one,
/// `s − floor ≤ P (max_w − floor) + N (floor − min)`, where `P` and `N` are the sums of
/// the positive and of the magnitudes of the negative coefficients, `max_w` the largest
/// sample in reach and `min` the trace's smallest. The edges are always computed.
pub fn smooth_above(v: &[f64], window: usize, floor: f64) -> Vec<f64> {
    const CHUNK: usize = 256;
    let n = v.len();
    let half = window / 2;
    if n < window || !v.iter().all(|x| x.is_finite()) {
        return smooth(v, window);
    }
    let c = coefficients(half);
    let pos: f64 = c[0].max(0.0) + 2.0 * c[1..].iter().map(|x| x.max(0.0)).sum::<f64>();
    let neg: f64 = -c[0].min(0.0) - 2.0 * c[1..].iter().map(|x| x.min(0.0)).sum::<f64>();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    // A margin far above rounding (values ~1e2, errors ~1e-13) keeps the bound safe.
    let cut = floor - neg / pos * (floor - min) - 1e-6 * (1.0 + floor.abs() + min.abs());
    let mut out = vec![f64::NAN; n];
    let mut a = half;
    while a < n - half {
        let b = (a + CHUNK).min(n - half);
        let (lo, hi) = (a.saturating_sub(1).max(half), (b + 1).min(n - half));
        let reach = &v[lo - half..hi + half];
        if reach.iter().copied().fold(f64::NEG_INFINITY, f64::max) > cut {
            for (i, o) in out.iter_mut().enumerate().take(hi).skip(lo) {
                *o = interior(v, &c, i);
            }
        }
        a = b;
    }
    fit_edge(&v[..window], &mut out[..half], 0);
    fit_edge(&v[n - window..], &mut out[n - half..], window - half);
    out
}

/// The smoothed interior sample `i`; ni_filters.c's order: centre first, then pairs from
/// the outermost inwards.
#[inline]
fn interior(v: &[f64], c: &[f64], i: usize) -> f64 {
    let half = c.len() - 1;
    let mut acc = v[i] * c[0];
    for k in (1..=half).rev() {
        acc += (v[i - k] + v[i + k]) * c[k];
    }
    acc
}

/// Values at local positions `first..first + out.len()` of the least-squares cubic
/// through `(j, y[j])`, `j = 0..y.len()` (numpy `polyfit` then `polyval`).
///
/// Solved in the centred variable `x = j − centre` by the normal equations, which are
/// well conditioned there for the window lengths in use (21 points at dt = 0.025 ms).
fn fit_edge(y: &[f64], out: &mut [f64], first: usize) {
    let centre = (y.len() - 1) as f64 / 2.0;
    let mut a = [[0.0f64; 4]; 4];
    let mut b = [0.0f64; 4];
    for (j, &yj) in y.iter().enumerate() {
        let x = j as f64 - centre;
        let p = [1.0, x, x * x, x * x * x];
        for r in 0..4 {
            b[r] += p[r] * yj;
            for s in 0..4 {
                a[r][s] += p[r] * p[s];
            }
        }
    }
    let coef = solve4(a, b);
    for (i, o) in out.iter_mut().enumerate() {
        let x = (first + i) as f64 - centre;
        *o = coef[0] + x * (coef[1] + x * (coef[2] + x * coef[3]));
    }
}

/// Gaussian elimination with partial pivoting for a 4×4 system.
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> [f64; 4] {
    for col in 0..4 {
        let pivot = (col..4)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = upper[col];
        for (r, row) in lower.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = [0.0; 4];
    for row in (0..4).rev() {
        let tail: f64 = (row + 1..4).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_sum_to_one_and_match_scipy() {
        let c = coefficients(10);
        let total = c[0] + 2.0 * c[1..].iter().sum::<f64>();
        assert!((total - 1.0).abs() < 1e-15);
        // scipy.signal.savgol_coeffs(21, 3)[10] and [0] (centre and outermost).
        assert!((c[0] - 0.107551487414188).abs() < 1e-14);
        assert!((c[10] - -0.0559006211180098).abs() < 1e-14);
    }

    proptest::proptest! {
        /// Bursts of spikes on a slow wave, random amplitudes and offsets: every sample
        /// `smooth_above` computes equals `smooth`'s, and every skipped one is below the
        /// floor.
        #[test]
        fn pruned_smoothing_agrees_where_it_matters(
            seed in 0u64..1_000_000,
            base in -90.0f64..0.0,
            spike in 0.0f64..80.0,
            floor in -40.0f64..20.0,
            len in 21usize..3_000,
        ) {
            let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut rnd = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64
            };
            let v: Vec<f64> = (0..len)
                .map(|i| {
                    let slow = 15.0 * (i as f64 / 400.0).sin();
                    let peak = if (i / 37) % 5 == 0 { spike * rnd() } else { 0.0 };
                    base + slow + peak + rnd() - 0.5
                })
                .collect();
            let full = smooth(&v, 21);
            let pruned = smooth_above(&v, 21, floor);
            for (i, (f, p)) in full.iter().zip(&pruned).enumerate() {
                if p.is_nan() {
                    proptest::prop_assert!(*f < floor, "sample {i}: {f} skipped above {floor}");
                    let near = |j: usize| full.get(j).is_some_and(|x| *x > floor);
                    proptest::prop_assert!(!near(i + 1) && (i == 0 || !near(i - 1)));
                } else {
                    proptest::prop_assert_eq!(f.to_bits(), p.to_bits(), "sample {}", i);
                }
            }
        }
    }

    #[test]
    fn cubics_pass_through_unchanged() {
        let v: Vec<f64> = (0..60)
            .map(|i| {
                let x = i as f64 * 0.1;
                1.0 - 2.0 * x + 0.5 * x * x - 0.03 * x * x * x
            })
            .collect();
        let s = smooth(&v, 21);
        for (a, b) in v.iter().zip(&s) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }
}
