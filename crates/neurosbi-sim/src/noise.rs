//! Gaussian white noise for a block of neurons: one independent stream per neuron.
//!
//! Each neuron (lane) keeps its own ChaCha8 stream, so a neuron's noise depends only on the
//! seed and its index, never on the batch, block or thread that runs it. Normal variates
//! come from the Box-Muller transform of two 32-bit uniforms taken from one 64-bit draw,
//! computed for all lanes at once with the vectorisable functions of [`crate::fastmath`]:
//! a per-lane ziggurat (rand_distr's `StandardNormal`) is branchy scalar code that cost
//! about a quarter of a noisy Hodgkin-Huxley step. Box-Muller gives two variates per draw;
//! the second is kept for the lane's next request. 32-bit uniforms bound |z| by
//! sqrt(2 ln 2^32) = 6.66, a tail of probability 3e-11 per draw (as in cuRAND's normals).

use crate::fastmath::{ln_positive, sincos_turns, small_u64_to_f64};
use crate::vm::{LANES, Lanes};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// 2^-32
const INV_2_32: f64 = 1.0 / 4_294_967_296.0;

/// Mixed into the seed of the streams of `rand()` and `randn()`, which are kept apart from
/// those of the white noise.
pub(crate) const RAND_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The random stream of one neuron: stream `stream` of `seed ^ salt` (salt 0 for white
/// noise, [`RAND_SALT`] for `rand()`/`randn()`). Every runner derives its neurons' streams
/// here, so a neuron's noise is the same through every door.
pub(crate) fn neuron_stream(seed: u64, salt: u64, stream: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ salt);
    r.set_stream(stream);
    r
}

/// Two independent standard normal variates from 64 random bits (Box-Muller).
#[inline(always)]
pub fn box_muller(bits: u64) -> (f64, f64) {
    // u1 in (0, 1] (never 0, so the logarithm is finite), u2 in [0, 1).
    let u1 = (small_u64_to_f64(bits >> 32) + 1.0) * INV_2_32;
    let u2 = small_u64_to_f64(bits & 0xffff_ffff) * INV_2_32;
    let r = (-2.0 * ln_positive(u1)).sqrt();
    let (s, c) = sincos_turns(u2);
    (r * c, r * s)
}

/// Standard normal variates for the lanes of a block, one stream per lane.
pub struct LaneNormals {
    rngs: Vec<ChaCha8Rng>,
    bits: [u64; LANES],
    spare: Lanes,
    have_spare: bool,
}

impl LaneNormals {
    /// Streams for the lanes (at most [`LANES`]; missing lanes repeat the last stream's
    /// values and must be ignored by the caller).
    pub fn new(rngs: Vec<ChaCha8Rng>) -> Self {
        assert!(
            !rngs.is_empty() && rngs.len() <= LANES,
            "one to LANES streams"
        );
        LaneNormals {
            rngs,
            bits: [0; LANES],
            spare: [0.0; LANES],
            have_spare: false,
        }
    }

    /// Writes the next variate of the first `width` lanes' streams, times `scale`, into
    /// `out` (a lane's values depend only on its stream, not on `width`).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // lane loops index several arrays at once
    pub fn fill(&mut self, scale: f64, out: &mut Lanes, width: usize) {
        let width = width.min(LANES);
        if self.have_spare {
            for l in 0..width {
                out[l] = scale * self.spare[l];
            }
            self.have_spare = false;
            return;
        }
        let n = self.rngs.len();
        for (b, rng) in self.bits.iter_mut().zip(self.rngs.iter_mut()) {
            *b = rng.next_u64();
        }
        for l in n..width {
            self.bits[l] = self.bits[n - 1];
        }
        for l in 0..width {
            let (z0, z1) = box_muller(self.bits[l]);
            out[l] = scale * z0;
            self.spare[l] = z1;
        }
        self.have_spare = true;
    }
}

/// The draws of `rand()` (uniform in [0, 1)) and `randn()` (standard normal) calls for the
/// lanes of a block, one stream per neuron, kept apart from the white noise's streams so
/// that adding a `rand()` to a reset does not change a model's noise.
pub struct LaneDraws {
    rngs: Vec<ChaCha8Rng>,
    normal: Vec<bool>,
}

impl LaneDraws {
    /// Streams for the lanes (as [`LaneNormals::new`]); `normal[k]` says whether call `k`
    /// is `randn()`.
    pub fn new(rngs: Vec<ChaCha8Rng>, normal: Vec<bool>) -> Self {
        assert!(
            !rngs.is_empty() && rngs.len() <= LANES,
            "one to LANES streams"
        );
        LaneDraws { rngs, normal }
    }

    /// Writes a fresh draw of every call into `regs` (one register per call), for the
    /// first `width` lanes.
    // Inlined into the runner's per-instruction-set copies: called, it would run without
    // FMA, and `box_muller`'s `mul_add`s would go through libm's software `fma` (measured:
    // 110 ns per normal draw and lane, most of a noisy pyloric step).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // lane loops index several arrays at once
    pub fn fill(&mut self, regs: &mut [Lanes], width: usize) {
        let n = self.rngs.len();
        let width = width.clamp(n, LANES);
        let mut bits = [0u64; LANES];
        for (out, &normal) in regs.iter_mut().zip(&self.normal) {
            // The streams first, then the transform on every lane at once (vectorised);
            // the values are those of drawing and transforming lane by lane.
            for (b, rng) in bits.iter_mut().zip(self.rngs.iter_mut()) {
                *b = rng.next_u64();
            }
            for l in n..width {
                bits[l] = bits[n - 1];
            }
            if normal {
                for l in 0..width {
                    out[l] = box_muller(bits[l]).0;
                }
            } else {
                for l in 0..width {
                    out[l] = (bits[l] >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn draws(seed: u64, stream: u64, n: usize) -> Vec<f64> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        let mut g = LaneNormals::new(vec![r]);
        let mut out = [0.0; LANES];
        (0..n)
            .map(|_| {
                g.fill(1.0, &mut out, LANES);
                out[0]
            })
            .collect()
    }

    /// Standard normal CDF by Abramowitz-Stegun 7.1.26 (error below 1.5e-7, far below the
    /// KS bound used).
    fn phi(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.327_591_1 * z);
        let poly = t
            * (0.254_829_592
                + t * (-0.284_496_736
                    + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        let erf = 1.0 - poly * (-z * z).exp();
        if x >= 0.0 {
            0.5 * (1.0 + erf)
        } else {
            0.5 * (1.0 - erf)
        }
    }

    #[test]
    fn variates_are_standard_normal() {
        let n = 200_000;
        let mut z = draws(7, 3, n);
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // Five standard errors.
        assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
        assert!(
            (var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
            "var {var}"
        );
        assert!(
            (kurt - 3.0).abs() < 5.0 * (24.0 / n as f64).sqrt(),
            "kurtosis {kurt}"
        );
        z.sort_by(f64::total_cmp);
        let ks = z
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let f = phi(v);
                (f - i as f64 / n as f64)
                    .abs()
                    .max((f - (i + 1) as f64 / n as f64).abs())
            })
            .fold(0.0, f64::max);
        // Kolmogorov-Smirnov at the 0.1 % level.
        assert!(ks < 1.95 / (n as f64).sqrt(), "KS statistic {ks}");
    }

    #[test]
    fn consecutive_variates_are_uncorrelated() {
        // Pairs from one draw (z0, z1) and across draws (z1, next z0).
        let n = 200_000;
        let z = draws(11, 0, n);
        let lag1 = z.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1) as f64;
        let lag2 = z.windows(3).map(|w| w[0] * w[2]).sum::<f64>() / (n - 2) as f64;
        assert!(lag1.abs() < 5.0 / (n as f64).sqrt(), "lag-1 {lag1}");
        assert!(lag2.abs() < 5.0 / (n as f64).sqrt(), "lag-2 {lag2}");
    }

    #[test]
    fn each_lane_follows_its_own_stream() {
        // Lane 5 of a full block gives what a block holding only that stream gives.
        let rngs: Vec<ChaCha8Rng> = (0..LANES as u64)
            .map(|k| {
                let mut r = ChaCha8Rng::seed_from_u64(9);
                r.set_stream(k);
                r
            })
            .collect();
        let mut block = LaneNormals::new(rngs);
        let alone = draws(9, 5, 9);
        let mut out = [0.0; LANES];
        for want in alone {
            block.fill(2.0, &mut out, LANES);
            assert_eq!(out[5], 2.0 * want);
        }
    }
}
