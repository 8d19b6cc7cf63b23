//! Entropy, complexity and fractal measures with antropy's definitions and defaults
//! (antropy 0.2.3; references in each function). Each runs on a window of the trace
//! (default: the whole trace).

mod fractal;
mod information;

pub use fractal::*;
pub use information::*;

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

impl EntropyFeature {
    /// Evaluates the measure on a slice.
    pub fn eval(&self, x: &[f64]) -> Outcome {
        if x.is_empty() {
            return undefined("window contains no samples");
        }
        match self.measure {
            Measure::PermEntropy {
                order,
                delay,
                normalize,
            } => perm_entropy(x, order, delay, normalize),
            Measure::SpectralEntropy {
                welch,
                nperseg,
                normalize,
            } => spectral_entropy(x, welch, nperseg, normalize),
            Measure::SvdEntropy {
                order,
                delay,
                normalize,
            } => svd_entropy(x, order, delay, normalize),
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
            Measure::PermEntropy {
                order,
                delay,
                normalize,
            } => {
                p.push(format!("order={order}"));
                p.push(format!("delay={delay}"));
                flag(&mut p, normalize, "normalize=true");
                "perm_entropy"
            }
            Measure::SpectralEntropy {
                welch,
                nperseg,
                normalize,
            } => {
                p.push(format!("method={}", if welch { "welch" } else { "fft" }));
                if welch {
                    p.push(format!("nperseg={nperseg}"));
                }
                flag(&mut p, normalize, "normalize=true");
                "spectral_entropy"
            }
            Measure::SvdEntropy {
                order,
                delay,
                normalize,
            } => {
                p.push(format!("order={order}"));
                p.push(format!("delay={delay}"));
                flag(&mut p, normalize, "normalize=true");
                "svd_entropy"
            }
            Measure::AppEntropy { order, tolerance }
            | Measure::SampleEntropy { order, tolerance } => {
                p.push(format!("order={order}"));
                if let Some(t) = tolerance {
                    p.push(format!("tolerance={t}"));
                }
                if matches!(self.measure, Measure::AppEntropy { .. }) {
                    "app_entropy"
                } else {
                    "sample_entropy"
                }
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
        if p.is_empty() {
            base.to_string()
        } else {
            format!("{base}({})", p.join(", "))
        }
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
            Measure::SpectralEntropy {
                welch,
                nperseg: p.int("nperseg", 256, 2, 1 << 24)?,
                normalize: p.bool("normalize", false)?,
            }
        }
        "svd_entropy" => Measure::SvdEntropy {
            order: p.int("order", 3, 2, 64)?,
            delay: p.int("delay", 1, 1, 1 << 20)?,
            normalize: p.bool("normalize", false)?,
        },
        "app_entropy" => Measure::AppEntropy {
            order: p.int("order", 2, 1, 64)?,
            tolerance: tolerance(p)?,
        },
        "sample_entropy" => Measure::SampleEntropy {
            order: p.int("order", 2, 1, 64)?,
            tolerance: tolerance(p)?,
        },
        "lziv_complexity" => Measure::LzivComplexity {
            normalize: p.bool("normalize", false)?,
        },
        "num_zerocross" => Measure::NumZerocross {
            normalize: p.bool("normalize", false)?,
        },
        "hjorth_mobility" => Measure::HjorthMobility,
        "hjorth_complexity" => Measure::HjorthComplexity,
        "petrosian_fd" => Measure::PetrosianFd,
        "katz_fd" => Measure::KatzFd,
        "higuchi_fd" => Measure::HiguchiFd {
            kmax: p.int("kmax", 10, 1, 1 << 16)?,
        },
        _ => Measure::DetrendedFluctuation,
    };
    Ok(Box::new(EntropyFeature {
        measure,
        window: p.window(Window::Whole)?,
    }))
}

macro_rules! entry {
    ($name:literal, $unit:literal, $summary:literal, $params:literal) => {
        CatalogueEntry {
            name: $name,
            group: "entropy",
            unit: $unit,
            summary: $summary,
            params: $params,
            build: |p| build($name, p),
        }
    };
}

pub(crate) fn entries() -> Vec<CatalogueEntry> {
    vec![
        entry!(
            "perm_entropy",
            "bit",
            "permutation entropy",
            "order=3, delay=1, normalize=false, window=whole"
        ),
        entry!(
            "spectral_entropy",
            "bit",
            "entropy of the normalised power spectrum",
            "method=fft|welch, nperseg=256, normalize=false, window=whole"
        ),
        entry!(
            "svd_entropy",
            "bit",
            "entropy of the delay-embedding singular values",
            "order=3, delay=1, normalize=false, window=whole"
        ),
        entry!(
            "app_entropy",
            "nat",
            "approximate entropy (Chebyshev)",
            "order=2, tolerance=0.2*std, window=whole"
        ),
        entry!(
            "sample_entropy",
            "nat",
            "sample entropy (Chebyshev)",
            "order=2, tolerance=0.2*std, window=whole"
        ),
        entry!(
            "lziv_complexity",
            "count",
            "Lempel-Ziv complexity of x >= median(x)",
            "normalize=false, window=whole"
        ),
        entry!(
            "num_zerocross",
            "count",
            "number of sign changes",
            "normalize=false, window=whole"
        ),
        entry!(
            "hjorth_mobility",
            "1/sample",
            "Hjorth mobility sqrt(var(dx)/var(x))",
            "window=whole"
        ),
        entry!(
            "hjorth_complexity",
            "1",
            "Hjorth complexity",
            "window=whole"
        ),
        entry!(
            "petrosian_fd",
            "1",
            "Petrosian fractal dimension",
            "window=whole"
        ),
        entry!("katz_fd", "1", "Katz fractal dimension", "window=whole"),
        entry!(
            "higuchi_fd",
            "1",
            "Higuchi fractal dimension",
            "kmax=10, window=whole"
        ),
        entry!(
            "detrended_fluctuation",
            "1",
            "DFA scaling exponent",
            "window=whole"
        ),
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
        let x: Vec<f64> = (0..1000)
            .map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / 1000.0).sin())
            .collect();
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
