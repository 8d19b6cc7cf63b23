//! Branch-free `exp`, `expm1` and `exprel` that vectorise inside batch kernels.
//!
//! `f64::exp` is a libm call that LLVM cannot vectorise (~5.5 ns a lane here); these run at
//! ~0.6 ns a lane when inlined into a lane loop (see shared/design/PERFORMANCE.md). No
//! crate offers a vectorisable, branch-free f64 exp with ulp-level accuracy that inlines
//! into our loops, so it is written here: Cody-Waite range reduction with a two-part ln 2,
//! a degree-12 Taylor polynomial on |r| <= ln2/2 (truncation error below 2e-16), and 2^k
//! assembled from the exponent bits. NaN propagates; arguments are clamped to
//! [-708, 709] so the result stays a normal number.

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;

/// Fast `exp(x)`, within 2 ulp of `f64::exp` on [-708, 709].
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    // Comparisons written so that NaN falls through unchanged (`clamp` would too, but this
    // form is the one measured to vectorise).
    #[allow(clippy::manual_clamp)]
    let x = if x > 709.0 {
        709.0
    } else if x < -708.0 {
        -708.0
    } else {
        x
    };
    let kf = x * LOG2E + SHIFT;
    let k = kf - SHIFT;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // 1 + (r + r^2 q(r)): the leading terms are added last so that their rounding is
    // not amplified by the Horner chain.
    // Horner steps, innermost first (the same operations as the nested form).
    let mut q = 1.0 / 479_001_600.0;
    q = 1.0 / 39_916_800.0 + r * q;
    q = 1.0 / 3_628_800.0 + r * q;
    q = 1.0 / 362_880.0 + r * q;
    q = 1.0 / 40320.0 + r * q;
    q = 1.0 / 5040.0 + r * q;
    q = 1.0 / 720.0 + r * q;
    q = 1.0 / 120.0 + r * q;
    q = 1.0 / 24.0 + r * q;
    q = 1.0 / 6.0 + r * q;
    q = 1.0 / 2.0 + r * q;
    let p = 1.0 + (r + r * r * q);
    let ki = (kf.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let scale = f64::from_bits(((ki + 1023) << 52) as u64);
    p * scale
}

/// Fast `exp(x) - 1`, accurate to a few ulp relative to the result, also near 0.
#[inline(always)]
pub fn expm1(x: f64) -> f64 {
    // Near zero a nested Taylor series keeps relative accuracy (x^17/17! < 1e-20 for
    // |x| <= 0.5); elsewhere exp(x) - 1 loses nothing because |result| > 0.39.
    // Horner form of x (1 + x/2 (1 + x/3 (1 + ... (1 + x/16)))).
    let mut s = 1.0 + x / 16.0;
    s = 1.0 + x / 15.0 * s;
    s = 1.0 + x / 14.0 * s;
    s = 1.0 + x / 13.0 * s;
    s = 1.0 + x / 12.0 * s;
    s = 1.0 + x / 11.0 * s;
    s = 1.0 + x / 10.0 * s;
    s = 1.0 + x / 9.0 * s;
    s = 1.0 + x / 8.0 * s;
    s = 1.0 + x / 7.0 * s;
    s = 1.0 + x / 6.0 * s;
    s = 1.0 + x / 5.0 * s;
    s = 1.0 + x / 4.0 * s;
    s = 1.0 + x / 3.0 * s;
    s = 1.0 + x / 2.0 * s;
    let s = x * s;
    let big = exp(x) - 1.0;
    if x.abs() < 0.5 { s } else { big }
}

/// Fast `exprel(x) = (exp(x) - 1)/x`, equal to 1 at 0.
#[inline(always)]
pub fn exprel(x: f64) -> f64 {
    let q = expm1(x) / x;
    if x == 0.0 { 1.0 } else { q }
}

/// Fast `efun(x) = x/(exp(x) - 1) = 1/exprel(x)`, the form of the Hodgkin-Huxley rate
/// functions: one `exp` and one division, with the removable singularity at 0 handled by
/// its series `1 - x/2 + x^2/12` for |x| < 1e-6 (relative error below 1e-10 everywhere).
#[inline(always)]
pub fn efun(x: f64) -> f64 {
    let q = x / (exp(x) - 1.0);
    let series = 1.0 - x * (0.5 - x / 12.0);
    if x.abs() < 1e-6 { series } else { q }
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
            let want = 1.0 / exprel_scalar(x);
            assert!(((efun(x) - want) / want).abs() < 1e-10, "x={x}");
        }
        for x in [0.0, 1e-9, -1e-9, 9.9e-7, -9.9e-7] {
            assert!(((efun(x) - 1.0 / exprel_scalar(x)) * exprel_scalar(x)).abs() < 1e-12);
        }
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
}
