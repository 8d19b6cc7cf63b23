//! Lane-wise division, bit-identical to `/`, at a fifth of its cost on AVX-512.
//!
//! Divisions were the largest cost of compiled rate functions (185 of the pyloric step's
//! 459 instructions divide; `vdivpd` takes ~0.7 ns a lane here). On CPUs with AVX-512 a
//! reciprocal estimate (`vrcp14pd`, 14 bits), two Newton steps (`y += y (1 - b y)`) and
//! Markstein's correction of the quotient (`q += (a - b q) y`, the residual exact through
//! an FMA) give the correctly rounded quotient in ~0.13 ns a lane; the tests compare it
//! bit for bit with `/` (hundreds of millions of pairs, incl. mantissas near all ones).
//! Lanes where the sequence is not proven to be exact (operands or quotient near the ends
//! of the exponent range, zeros, infinities, NaN) are recomputed with `/`, so results are
//! the same as plain division on every CPU: a model gives the same numbers with or without
//! AVX-512. The sequence runs on the FMA ports instead of the divider, so it pays only in
//! programs where divisions dominate: each compiled program decides (`vm::divides_much`).
//! Written by hand because it must inline into the simulator's lane loops and
//! agree bit for bit with `/`; no crate offers that.

use crate::vm::Lanes;

/// `d[l] = a[l] / b[l]` for the first `W` lanes, exactly as `/` rounds; through the
/// reciprocal sequence where `fast` (the caller's program divides a lot) and the CPU has
/// AVX-512, else with `/`.
#[inline(always)]
pub fn div_lanes<const W: usize>(d: &mut Lanes, a: &Lanes, b: &Lanes, fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast && W.is_multiple_of(8) && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above) and W <= LANES lanes are read.
        unsafe { avx512::div::<W>(d, a, b) };
        return;
    }
    for l in 0..W {
        d[l] = a[l] / b[l];
    }
}

/// `d[l] = k / b[l]` for the first `W` lanes, exactly as `/` rounds (see [`div_lanes`]).
#[inline(always)]
pub fn kdiv_lanes<const W: usize>(d: &mut Lanes, k: f64, b: &Lanes, fast: bool) {
    div_lanes::<W>(d, &[k; crate::vm::LANES], b, fast)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::vm::Lanes;
    use std::arch::x86_64::*;

    /// The fast path's range: both operands with |x| in [2^-480, 2^480], so the quotient,
    /// the reciprocal and the residual `a - b q` stay normal numbers far from overflow,
    /// where the Newton-Markstein sequence is exact. As bits shifted left by one (sign
    /// dropped) and offset by the lower bound: one unsigned comparison per operand.
    const LO2: u64 = (1023 - 480) << 53;
    const SPAN2: u64 = (960 << 53) | ((1 << 53) - 2);

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn div<const W: usize>(d: &mut Lanes, a: &Lanes, b: &Lanes) {
        let one = _mm512_set1_pd(1.0);
        let lo2 = _mm512_set1_epi64(LO2 as i64);
        let off =
            |x: __m512d| _mm512_sub_epi64(_mm512_slli_epi64::<1>(_mm512_castpd_si512(x)), lo2);
        // The largest offset exponent seen, over all chunks: checking once per call keeps
        // mask operations (one port) out of the loop.
        let mut worst = _mm512_setzero_si512();
        for c in 0..W / 8 {
            // SAFETY: c*8 + 8 <= W <= LANES, inside every array.
            let (a, b) = unsafe {
                (
                    _mm512_loadu_pd(a.as_ptr().add(c * 8)),
                    _mm512_loadu_pd(b.as_ptr().add(c * 8)),
                )
            };
            let mut y = _mm512_rcp14_pd(b);
            y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(b, y, one), y);
            y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(b, y, one), y);
            let q0 = _mm512_mul_pd(a, y);
            let r = _mm512_fnmadd_pd(b, q0, a);
            let q = _mm512_fmadd_pd(r, y, q0);
            worst = _mm512_max_epu64(worst, _mm512_max_epu64(off(a), off(b)));
            // SAFETY: as for the loads.
            unsafe { _mm512_storeu_pd(d.as_mut_ptr().add(c * 8), q) };
        }
        let span2 = _mm512_set1_epi64(SPAN2 as i64);
        if _mm512_cmpgt_epu64_mask(worst, span2) != 0 {
            // Some lane is outside the proven range (zero, subnormal, huge, infinite, NaN):
            // only those lanes are redone with `vdivpd` (IEEE division, as `/`). A model
            // with a zero operand in a few lanes of a block (a silent synapse, a gate at
            // rest) pays for those lanes, not for a whole second division of the block.
            for c in 0..W / 8 {
                // SAFETY: c*8 + 8 <= W <= LANES, inside every array.
                unsafe {
                    let (pa, pb) = (a.as_ptr().add(c * 8), b.as_ptr().add(c * 8));
                    let (a, b) = (_mm512_loadu_pd(pa), _mm512_loadu_pd(pb));
                    let bad = _mm512_cmpgt_epu64_mask(_mm512_max_epu64(off(a), off(b)), span2);
                    if bad != 0 {
                        let pd = d.as_mut_ptr().add(c * 8);
                        let q = _mm512_mask_div_pd(_mm512_loadu_pd(pd), bad, a, b);
                        _mm512_storeu_pd(pd, q);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::LANES;

    /// xorshift64: a fixed stream, no dependency.
    fn stream(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    fn check(a: &Lanes, b: &Lanes) -> Result<(), String> {
        let mut d = [0.0; LANES];
        div_lanes::<LANES>(&mut d, a, b, true);
        for l in 0..LANES {
            let t = a[l] / b[l];
            let same = d[l].to_bits() == t.to_bits() || (d[l].is_nan() && t.is_nan());
            if !same {
                return Err(format!(
                    "{:e} / {:e}: {:e}, `/` gives {:e}",
                    a[l], b[l], d[l], t
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn random_pairs_are_bit_identical_to_division() {
        let mut rnd = stream(0x9e37_79b9_7f4a_7c15);
        let (mut a, mut b) = ([0.0; LANES], [0.0; LANES]);
        for it in 0..200_000u64 {
            for l in 0..LANES {
                let ea = (rnd() % 700) + 1023 - 350;
                let eb = (rnd() % 700) + 1023 - 350;
                let mut mb = rnd() & ((1 << 52) - 1);
                match it % 4 {
                    1 => mb |= (1 << 52) - 1 - (rnd() & 0xff), // mantissa near all ones
                    2 => mb &= 0xff,                           // near a power of two
                    _ => {}
                }
                let ma = if it % 8 == 3 {
                    mb ^ (rnd() & 3)
                } else {
                    rnd() & ((1 << 52) - 1)
                };
                a[l] = f64::from_bits((ea << 52) | ma | ((rnd() & 1) << 63));
                b[l] = f64::from_bits((eb << 52) | mb | ((rnd() & 1) << 63));
            }
            check(&a, &b).unwrap();
        }
    }

    #[test]
    fn special_values_and_range_ends_are_as_division() {
        let specials = [
            0.0,
            -0.0,
            1.0,
            -3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
            5e-324,
            1e-310,
            f64::MAX,
            1e300,
            1e-300,
            2f64.powi(1000),
            2f64.powi(-960),
            2f64.powi(-1000),
            0.1,
        ];
        let n = specials.len();
        let (mut a, mut b) = ([1.0; LANES], [1.0; LANES]);
        let mut l = 0;
        for i in 0..n {
            for j in 0..n {
                a[l] = specials[i];
                b[l] = specials[j];
                l += 1;
                if l == LANES || (i == n - 1 && j == n - 1) {
                    check(&a, &b).unwrap();
                    l = 0;
                }
            }
        }
    }

    #[test]
    fn narrow_widths_and_constant_numerators_agree() {
        let mut rnd = stream(7);
        let b: Lanes = std::array::from_fn(|_| (rnd() % 10_000) as f64 / 77.0 - 60.0);
        let mut d = [f64::NAN; LANES];
        kdiv_lanes::<8>(&mut d, -2.5, &b, true);
        for l in 0..8 {
            assert_eq!(d[l].to_bits(), (-2.5 / b[l]).to_bits());
        }
        assert!(d[8].is_nan(), "lanes past W are untouched");
        div_lanes::<4>(&mut d, &b, &b, true);
        assert!(d[..4].iter().zip(&b).all(|(q, x)| *q == x / x));
    }
}
