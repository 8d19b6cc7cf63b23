//! Gaussian kernel density smoothing of ABC samples (sbi's `kde=True` for `MCABC` / `SMCABC`,
//! which sbibm's ABC results use with a cross-validated bandwidth).
//!
//! ABC keeps few parameter sets (sbibm: the 100 closest of the budget); drawing 10 000
//! posterior samples from them with replacement repeats each about 100 times, which any
//! classifier spots (C2ST near 1 whatever the accuracy). A kernel density over the kept
//! samples gives continuous draws. One isotropic bandwidth in parameter space, as
//! scikit-learn's `KernelDensity` that sbi uses; written here because the selection is a small
//! grid search over a closed-form leave-fold-out likelihood, not worth a dependency.

use crate::error::{Result, invalid_arg};
use rayon::prelude::*;

/// How the kernel bandwidth of a KDE over ABC samples is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum KdeBandwidth {
    /// No smoothing: draws resample the kept parameters (sbi's default).
    #[default]
    None,
    /// Cross-validated: the bandwidth maximising the held-out log likelihood over 20 folds,
    /// searched on a grid of 10 between 0.1 and 0.5 standard deviations of the samples and
    /// refined around the best up to 5 times (sbi `get_kde(bandwidth="cv")`, sbibm's choice).
    Cv,
    /// Scott's rule, `sd * n^(-1/(d+4))` (`sd`: the standard deviation of all coordinates).
    Scott,
    /// Silverman's rule, `sd * (n (d+2) / 4)^(-1/(d+4))`.
    Silverman,
    /// A fixed bandwidth in parameter units.
    Fixed(f64),
}

impl KdeBandwidth {
    /// Parses a method option value: `none`, `cv`, `scott`, `silverman` or a positive number.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        match text.trim().to_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "cv" => Ok(Self::Cv),
            "scott" => Ok(Self::Scott),
            "silverman" | "silvermann" => Ok(Self::Silverman),
            other => match other.parse::<f64>() {
                Ok(h) if h > 0.0 && h.is_finite() => Ok(Self::Fixed(h)),
                _ => Err(format!(
                    "`{text}` is not none, cv, scott, silverman or a positive bandwidth"
                )),
            },
        }
    }

    /// The bandwidth for `theta` (row-major, `d` per row); 0 for [`KdeBandwidth::None`].
    pub fn select(self, theta: &[f64], d: usize) -> Result<f64> {
        let n = crate::error::rows_of("KDE samples", theta, d)?;
        if n == 0 {
            return Err(invalid_arg("KDE samples", "no samples"));
        }
        let sd = pooled_sd(theta);
        let (nf, df) = (n as f64, d as f64);
        let h = match self {
            Self::None => return Ok(0.0),
            Self::Fixed(h) => h,
            Self::Scott => sd * nf.powf(-1.0 / (df + 4.0)),
            Self::Silverman => sd * (nf * (df + 2.0) / 4.0).powf(-1.0 / (df + 4.0)),
            Self::Cv => cross_validated(theta, d, sd),
        };
        if !(h > 0.0 && h.is_finite()) {
            return Err(invalid_arg(
                "KDE bandwidth",
                format!("{h} from {n} samples (are they all equal?)"),
            ));
        }
        Ok(h)
    }
}

/// Standard deviation of all coordinates pooled (numpy's `array.std()`, as sbi).
fn pooled_sd(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Folds of the cross-validation (scikit-learn's GridSearchCV `cv=20`, as sbi).
const FOLDS: usize = 20;
/// Grid points per search.
const STEPS: usize = 10;
/// Searches (the first, then refinements around the best).
const REPETITIONS: usize = 5;

/// Mean over folds of the held-out log likelihood at bandwidth `h`, with scikit-learn's
/// contiguous, unshuffled K-fold split (the first `n % FOLDS` folds one row larger).
fn cv_score(theta: &[f64], d: usize, h: f64) -> f64 {
    let n = theta.len() / d;
    let k = FOLDS.min(n);
    let log_norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * h * h).ln();
    // Each row's fold, then every row's held-out log density in parallel (O(n^2 d) work);
    // summed in row order, so the score does not depend on the thread count.
    let mut fold = Vec::with_capacity(n);
    for f in 0..k {
        fold.extend(std::iter::repeat_n(f, n / k + usize::from(f < n % k)));
    }
    let held_out: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &theta[i * d..(i + 1) * d];
            let terms: Vec<f64> = (0..n)
                .filter(|&j| fold[j] != fold[i])
                .map(|j| {
                    let r2: f64 = xi
                        .iter()
                        .zip(&theta[j * d..(j + 1) * d])
                        .map(|(a, b)| (a - b).powi(2))
                        .sum();
                    -0.5 * r2 / (h * h)
                })
                .collect();
            crate::posterior::log_sum_exp(&terms) - (terms.len() as f64).ln() + log_norm
        })
        .collect();
    held_out.iter().sum::<f64>() / k as f64
}

/// sbi's grid search, refined between the best bandwidth and its better neighbour while the
/// best score still moves by more than 0.001. Where the best is the lowest grid point, the
/// next grid reaches below it (sbi's code computes that range from grid indices instead of
/// bandwidths, which gives negative bandwidths).
fn cross_validated(theta: &[f64], d: usize, sd: f64) -> f64 {
    if theta.len() / d < 2 {
        return sd;
    }
    let (mut lower, mut upper) = (0.1 * sd, 0.5 * sd);
    let mut best = (f64::NEG_INFINITY, upper);
    for _ in 0..REPETITIONS {
        let grid: Vec<f64> = (0..STEPS)
            .map(|i| lower + (upper - lower) * i as f64 / (STEPS - 1) as f64)
            .collect();
        let scores: Vec<f64> = grid.iter().map(|&h| cv_score(theta, d, h)).collect();
        let i = (0..STEPS)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .expect("grid");
        if (scores[i] - best.0).abs() <= 1e-3 {
            break;
        }
        best = (scores[i], grid[i]);
        if i == 0 {
            (lower, upper) = (grid[0] / 2.0, grid[1]);
        } else {
            let j = if i + 1 < STEPS && scores[i + 1] > scores[i - 1] {
                i + 1
            } else {
                i - 1
            };
            (lower, upper) = (grid[i.min(j)], grid[i.max(j)]);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_values_are_named() {
        assert_eq!(KdeBandwidth::parse("CV"), Ok(KdeBandwidth::Cv));
        assert_eq!(KdeBandwidth::parse("0.2"), Ok(KdeBandwidth::Fixed(0.2)));
        assert_eq!(KdeBandwidth::parse("none"), Ok(KdeBandwidth::None));
        assert!(KdeBandwidth::parse("-1").unwrap_err().contains("`-1`"));
        assert!(KdeBandwidth::parse("wide").is_err());
    }

    #[test]
    fn rules_follow_their_formulas() {
        // Two coordinates, values -1, 1 pooled: sd 1.
        let theta = [-1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0];
        let s = KdeBandwidth::Scott.select(&theta, 2).unwrap();
        assert!((s - 4f64.powf(-1.0 / 6.0)).abs() < 1e-12);
        let s = KdeBandwidth::Silverman.select(&theta, 2).unwrap();
        assert!((s - 4f64.powf(-1.0 / 6.0)).abs() < 1e-12);
        assert_eq!(KdeBandwidth::None.select(&theta, 2).unwrap(), 0.0);
        let e = KdeBandwidth::Cv.select(&[1.0; 6], 2).unwrap_err();
        assert!(e.to_string().contains("bandwidth"), "{e}");
    }

    /// For n draws of N(0, 1) the likelihood-optimal bandwidth is near Silverman's
    /// 1.06 n^(-1/5) (0.42 for n = 200); the cross-validated one lands close to it, and its
    /// score is the grid's maximum.
    #[test]
    fn cross_validation_finds_the_likelihood_optimal_bandwidth() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let theta: Vec<f64> = (0..200).map(|_| StandardNormal.sample(&mut rng)).collect();
        let h = KdeBandwidth::Cv.select(&theta, 1).unwrap();
        let sd = pooled_sd(&theta);
        assert!(h > 0.25 * sd && h < 0.6 * sd, "h {h}, sd {sd}");
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| KdeBandwidth::Cv.select(&theta, 1).unwrap())
        };
        assert_eq!(on(1).to_bits(), h.to_bits());
        assert_eq!(on(3).to_bits(), h.to_bits());
        let at = cv_score(&theta, 1, h);
        for other in [0.1, 0.2, 0.3, 0.5, 0.8] {
            assert!(at >= cv_score(&theta, 1, other * sd) - 1e-9, "{other}");
        }
    }
}
