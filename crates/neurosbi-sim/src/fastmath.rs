//! Branch-free `exp`, `expm1` and `exprel` that vectorise inside batch kernels.
//!
//! `f64::exp` is a libm call that LLVM cannot vectorise (~5.5 ns a lane here); these run at
//! well under 1 ns a lane when inlined into a lane loop (see shared/design/PERFORMANCE.md).
//! No crate offers a vectorisable, branch-free f64 exp with ulp-level accuracy that inlines
//! into our loops, so it is written here: Cody-Waite range reduction with a two-part ln 2,
//! a degree-11 polynomial for `e^r - 1` on |r| <= ln2/2 (a Chebyshev fit, 1.6e-17
//! relative), and 2^k assembled from the exponent bits. `expm1` shares the reduction, so
//! near 0 (k = 0) it is the polynomial itself and keeps full relative accuracy. NaN
//! propagates; arguments are clamped to [-708, 709] so 2^k stays a normal number.
//!
//! The polynomial uses fused multiply-adds (`mul_add`). They are exact-rounded by IEEE 754
//! wherever they run, so results are bit-identical between the simulator's AVX-512, AVX2
//! (both compiled with FMA enabled) and portable versions; the portable one pays a libm call
//! per `mul_add` on CPUs without FMA, which only changes its speed.

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;

/// `x = k ln2 + r` with |r| <= ln2/2: returns 2^k and `e^r - 1`.
///
/// Written for the fewest vector operations, since the simulator's kernels spend most of
/// their time here (issue 24's profile): the clamp is two min/max operations (a NaN `x`
/// may clamp to a bound, but `r`, computed from `x` itself, stays NaN, so the result is NaN
/// all the same) and the polynomial has degree 11 instead of a degree-13 Taylor series.
#[inline(always)]
fn reduce(x: f64) -> (f64, f64) {
    // `a < b ? a : b` is one `minpd`/`maxpd` on x86 (unlike `f64::min`, which must return
    // the other operand for NaN).
    let xc = if x < 709.0 { x } else { 709.0 };
    let xc = if xc > -708.0 { xc } else { -708.0 };
    let kf = xc.mul_add(LOG2E, SHIFT);
    let k = kf - SHIFT;
    // k = 0 gives r = x exactly, which is what keeps expm1 accurate near 0.
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    // e^r - 1 = r + r^2 q(r) with q of degree 9: Chebyshev fit of (e^r - 1 - r)/r^2 on
    // [-ln2/2, ln2/2] (mpmath `chebyfit`, 50 digits; q within 1.1e-16, e^r within 1.6e-17
    // relative with the coefficients rounded to f64). Horner with FMAs, the leading terms
    // added last so that their rounding is not amplified by the chain.
    let mut q: f64 = 2.510_037_583_256_123_4e-8;
    q = q.mul_add(r, 2.762_007_587_998_336_7e-7);
    q = q.mul_add(r, 2.755_726_848_031_002_4e-6);
    q = q.mul_add(r, 2.480_152_132_236_869_2e-5);
    q = q.mul_add(r, 1.984_126_986_304_054_5e-4);
    q = q.mul_add(r, 1.388_888_891_719_671_9e-3);
    q = q.mul_add(r, 8.333_333_333_330_065e-3);
    q = q.mul_add(r, 4.166_666_666_662_416_4e-2);
    q = q.mul_add(r, 0.166_666_666_666_666_69);
    q = q.mul_add(r, 0.500_000_000_000_000_1);
    let em = (r * r).mul_add(q, r);
    let ki = (kf.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let scale = f64::from_bits(((ki + 1023) << 52) as u64);
    (scale, em)
}

/// Fast `exp(x)`, within 2 ulp of `f64::exp` on [-708, 709].
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let (scale, em) = reduce(x);
    scale.mul_add(em, scale)
}

/// Fast `exp(x) - 1`, accurate to a few ulp relative to the result, also near 0.
#[inline(always)]
pub fn expm1(x: f64) -> f64 {
    // 2^k (e^r - 1) + (2^k - 1): exact to the last operation for k = 0 (|x| <= ln2/2), and
    // for k != 0 the result is at least 0.29 in magnitude, so nothing cancels.
    let (scale, em) = reduce(x);
    scale.mul_add(em, scale - 1.0)
}

/// Fast `exprel(x) = (exp(x) - 1)/x`, equal to 1 at 0.
#[inline(always)]
pub fn exprel(x: f64) -> f64 {
    let q = expm1(x) / x;
    if x == 0.0 { 1.0 } else { q }
}

/// Fast `efun(x) = x/(exp(x) - 1) = 1/exprel(x)`, the form of the Hodgkin-Huxley rate
/// functions: one `expm1` and one division, equal to 1 at 0, with [`exprel`]'s accuracy
/// (`expm1` keeps the relative error small near 0 without a series branch).
#[inline(always)]
pub fn efun(x: f64) -> f64 {
    let q = x / expm1(x);
    if x == 0.0 { 1.0 } else { q }
}

/// `2^52` as bits of an f64: OR-ing a 52-bit integer into its mantissa and subtracting
/// `2^52` converts it exactly with vector-friendly bit operations (AVX-512F has no
/// 64-bit integer to float conversion).
const TWO52_BITS: u64 = 0x4330_0000_0000_0000;
const TWO52: f64 = 4_503_599_627_370_496.0;

/// An integer below 2^52 as f64, exactly.
#[inline(always)]
pub fn small_u64_to_f64(n: u64) -> f64 {
    f64::from_bits(TWO52_BITS | n) - TWO52
}

/// Fast natural logarithm of a positive normal number, within a few ulp of `f64::ln`.
///
/// `x = 2^e m` with m in [sqrt(1/2), sqrt(2)), then `ln m = 2 atanh(s)`, s = (m-1)/(m+1),
/// |s| < 0.172, as the odd series 2s (1 + s^2/3 + ... + s^22/23) (truncation below 1e-18).
/// Zero, negative, subnormal and non-finite arguments give meaningless values: callers pass
/// numbers known to be in range (uniform variates in (0, 1]).
#[inline(always)]
pub fn ln_positive(x: f64) -> f64 {
    let bits = x.to_bits();
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = small_u64_to_f64(bits >> 52) - 1023.0 + if big { 1.0 } else { 0.0 };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut q: f64 = 1.0 / 23.0;
    q = q.mul_add(z, 1.0 / 21.0);
    q = q.mul_add(z, 1.0 / 19.0);
    q = q.mul_add(z, 1.0 / 17.0);
    q = q.mul_add(z, 1.0 / 15.0);
    q = q.mul_add(z, 1.0 / 13.0);
    q = q.mul_add(z, 1.0 / 11.0);
    q = q.mul_add(z, 1.0 / 9.0);
    q = q.mul_add(z, 1.0 / 7.0);
    q = q.mul_add(z, 1.0 / 5.0);
    q = q.mul_add(z, 1.0 / 3.0);
    let two_s = 2.0 * s;
    let ln_m = (two_s * z).mul_add(q, two_s);
    e.mul_add(LN2_HI, e.mul_add(LN2_LO, ln_m))
}

/// Fast `(sin 2 pi u, cos 2 pi u)` for u in [0, 1), within a few 1e-16 of the libm values.
///
/// `4u = q + t` with integer q (the quadrant) and |t| <= 1/2 (both exact), so the angle
/// `a = t pi/2` lies in [-pi/4, pi/4] where short Taylor series converge fast (degree 15
/// and 16: truncation below 1e-16); the quadrant swaps and negates them.
#[inline(always)]
pub fn sincos_turns(u: f64) -> (f64, f64) {
    let v = u * 4.0;
    let q = (v + SHIFT) - SHIFT;
    let a = (v - q) * std::f64::consts::FRAC_PI_2;
    let a2 = a * a;
    let mut ps: f64 = -1.0 / 1_307_674_368_000.0;
    ps = ps.mul_add(a2, 1.0 / 6_227_020_800.0);
    ps = ps.mul_add(a2, -1.0 / 39_916_800.0);
    ps = ps.mul_add(a2, 1.0 / 362_880.0);
    ps = ps.mul_add(a2, -1.0 / 5040.0);
    ps = ps.mul_add(a2, 1.0 / 120.0);
    ps = ps.mul_add(a2, -1.0 / 6.0);
    let sin_a = (a * a2).mul_add(ps, a);
    let mut pc: f64 = 1.0 / 20_922_789_888_000.0;
    pc = pc.mul_add(a2, -1.0 / 87_178_291_200.0);
    pc = pc.mul_add(a2, 1.0 / 479_001_600.0);
    pc = pc.mul_add(a2, -1.0 / 3_628_800.0);
    pc = pc.mul_add(a2, 1.0 / 40320.0);
    pc = pc.mul_add(a2, -1.0 / 720.0);
    pc = pc.mul_add(a2, 1.0 / 24.0);
    let cos_a = (a2 * a2).mul_add(pc, 1.0 - 0.5 * a2);
    // q is 0..=4 (4 is a full turn, like 0).
    let (s, c) = if q == 1.0 {
        (cos_a, -sin_a)
    } else if q == 2.0 {
        (-sin_a, -cos_a)
    } else if q == 3.0 {
        (-cos_a, sin_a)
    } else {
        (sin_a, cos_a)
    };
    (s, c)
}

/// Scalar `exprel` on the standard library (constant folding and references).
pub fn exprel_scalar(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { x.exp_m1() / x }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error in units of machine epsilon (an ulp is 1-2 of these).
    fn ulps(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs() / f64::EPSILON
    }

    /// Distance in representable doubles (same sign assumed).
    fn ulp_distance(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst_bits = 0;
        for k in 0..200_001 {
            let x = -700.0 + 1400.0 * k as f64 / 200_000.0;
            worst_bits = worst_bits.max(ulp_distance(exp(x), x.exp()));
        }
        assert!(worst_bits <= 2, "worst {worst_bits} ulp");
    }

    #[test]
    fn exp_relative_error_is_a_few_epsilon() {
        let mut worst = 0.0f64;
        let n = 200_001;
        for k in 0..n {
            let x = -700.0 + 1400.0 * k as f64 / (n - 1) as f64;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        for k in 0..20_001 {
            let x = -2.0 + 4.0 * k as f64 / 20_000.0;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 3.0, "worst {worst} eps");
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn efun_is_the_reciprocal_of_exprel() {
        for k in -4000..=4000 {
            let x = k as f64 * 1e-3 + 1e-7 * (k % 7) as f64;
            let want = x / x.exp_m1();
            if x != 0.0 {
                assert!(ulps(efun(x), want) < 4.0, "x={x}: {} vs {want}", efun(x));
            }
        }
        for x in [1e-9, -1e-9, 9.9e-7, -9.9e-7, 1e-300] {
            assert!(ulps(efun(x), 1.0 / exprel_scalar(x)) < 4.0, "x={x}");
        }
        assert_eq!(efun(0.0), 1.0);
    }

    #[test]
    fn expm1_and_exprel_keep_relative_accuracy_near_zero() {
        for k in -2000..=2000 {
            let x = k as f64 * 1e-3;
            let e = expm1(x);
            let r = x.exp_m1();
            if r != 0.0 {
                assert!(ulps(e, r) < 4.0, "x={x}: {e} vs {r}");
            }
            assert!(ulps(exprel(x), exprel_scalar(x)) < 4.0, "x={x}");
        }
        for x in [1e-300, -1e-300, 1e-12, -1e-12] {
            assert!((exprel(x) - 1.0).abs() < 1e-11);
        }
        assert_eq!(exprel(0.0), 1.0);
        assert!(exprel(f64::NAN).is_nan());
    }

    #[test]
    fn ln_is_within_a_few_ulp_of_libm() {
        let mut worst = 0u64;
        // Uniform variates' range, dense near 1 and down to 2^-32, plus other magnitudes.
        for k in 1..=200_000u64 {
            let u = k as f64 / 200_000.0;
            for x in [
                u,
                u * 2f64.powi(-32) + 2f64.powi(-33),
                1.0 - u * 1e-6,
                u * 1e5,
            ] {
                let (a, b) = (ln_positive(x), x.ln());
                if b != 0.0 {
                    worst = worst.max(ulp_distance(a.abs(), b.abs()));
                    assert_eq!(a.signum(), b.signum(), "x={x}");
                }
            }
        }
        assert!(worst <= 3, "worst {worst} ulp");
        assert_eq!(ln_positive(1.0), 0.0);
    }

    #[test]
    fn sincos_turns_matches_libm() {
        let mut worst = 0.0f64;
        for k in 0..400_000u64 {
            let u = k as f64 / 400_000.0 + 1.3e-7;
            let u = u - u.floor();
            let (s, c) = sincos_turns(u);
            let th = 2.0 * std::f64::consts::PI * u;
            worst = worst.max((s - th.sin()).abs()).max((c - th.cos()).abs());
        }
        // libm's own angle 2*pi*u carries a rounding of up to ~4e-16 near a full turn.
        assert!(worst < 1e-15, "worst {worst}");
        assert_eq!(sincos_turns(0.0), (0.0, 1.0));
        for (u, s, c) in [(0.25, 1.0, 0.0), (0.5, 0.0, -1.0), (0.75, -1.0, 0.0)] {
            let (gs, gc) = sincos_turns(u);
            assert!((gs - s).abs() < 1e-16 && (gc - c).abs() < 1e-16, "u={u}");
        }
    }

    #[test]
    fn small_integers_convert_exactly() {
        for n in [0u64, 1, 12345, u32::MAX as u64, (1 << 52) - 1] {
            assert_eq!(small_u64_to_f64(n), n as f64);
        }
    }
}
