//! Maximum-likelihood training step of the MAF as one native kernel: forward pass,
//! backward pass and every parameter gradient for a batch, without a candle graph.
//!
//! Why by hand: a candle graph step of this small net spends a large share of its time
//! outside the matrix products (op dispatch, allocations, gradient accumulation;
//! PERFORMANCE.md), and one graph cannot be split across threads. Here a batch is cut into
//! row chunks whose size depends only on the batch size; the chunks run on the rayon pool
//! and their gradients are summed in chunk order, so the numbers do not depend on the
//! thread count. The maths is that of [`crate::maf`] (same rational tanh, softplus and
//! masks); tests compare loss and gradients with candle's autograd of that graph.

use candle_core::{Result, TensorId};
use rayon::prelude::*;

use crate::fastops::tanh_rational;
use crate::maf::Maf;
use crate::nn::{Linear, Params};

/// Rows per chunk at most; a batch is split into equal chunks of at most this many rows.
pub(crate) const MAX_CHUNK: usize = 100;

/// `dst (m x n, row-major) (+)= A B` with A (m x k) and B (k x n) given by their row and
/// column strides, single-threaded (the parallelism is over chunks). Exported as
/// [`crate::small_matmul`] for other small native nets (the C2ST classifier of
/// `neurosbi-infer`); panics if `dst` or an operand is too small for the shapes.
///
/// Why by hand: these products are small (tens of rows and columns, k from 2 to 100) and
/// many (about 45 per chunk and step), where a general gemm's blocking and dispatch cost
/// more than the arithmetic. B is copied row-major with its columns padded to a multiple of
/// [`NB`], and a 4 x NB register tile of the result accumulates over k; the widest vector
/// unit with FMA is picked at run time. Results do not depend on the thread count (each
/// chunk is computed alike), only, in the last bits, on the instruction set.
#[allow(clippy::too_many_arguments)]
pub fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n, "fused maf: destination too small");
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last(m, k, a_rs, a_cs) < a.len() && last(k, n, b_rs, b_cs) < b.len(),
        "fused maf: operand too small"
    );
    let n_pad = n.div_ceil(NB) * NB;
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            // Masked loads read only the first n columns, so a row-major B is used in place
            // and any other layout is copied row-major without padding.
            let copy;
            let (bp, b_stride) = if b_cs == 1 {
                (b, b_rs)
            } else {
                copy = copy_row_major(b, b_rs, b_cs, k, n, n);
                (&copy[..], n)
            };
            let args = MmArgs {
                m,
                n,
                k,
                n_pad,
                a,
                a_rs,
                a_cs,
                bp,
                b_stride,
                accumulate,
            };
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            return unsafe { mm_avx512(&args, dst) };
        }
    }
    let bp = copy_row_major(b, b_rs, b_cs, k, n, n_pad);
    let args = MmArgs {
        m,
        n,
        k,
        n_pad,
        a,
        a_rs,
        a_cs,
        bp: &bp,
        b_stride: n_pad,
        accumulate,
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { mm_avx2(&args, dst) };
        }
    }
    mm_tiles(&args, dst);
}

/// B (k x n) row-major with `width >= n` columns, the extra ones zero.
fn copy_row_major(
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    k: usize,
    n: usize,
    width: usize,
) -> Vec<f32> {
    let mut bp = vec![0f32; k * width];
    for p in 0..k {
        for (j, v) in bp[p * width..p * width + n].iter_mut().enumerate() {
            *v = b[p * b_rs + j * b_cs];
        }
    }
    bp
}

/// Columns of one register tile.
const NB: usize = 16;

struct MmArgs<'a> {
    m: usize,
    n: usize,
    k: usize,
    n_pad: usize,
    a: &'a [f32],
    a_rs: usize,
    a_cs: usize,
    /// B with contiguous columns: row p starts at `p * b_stride`. Padded with zero columns
    /// to `n_pad` except on the AVX-512 path, whose loads are masked.
    bp: &'a [f32],
    b_stride: usize,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn mm_avx512(args: &MmArgs<'_>, dst: &mut [f32]) {
    // Up to 4 rows x 4 column registers (64 columns) per tile: 16 independent accumulator
    // chains hide the FMA latency, and each loaded B vector serves 4 rows.
    let tiles = args.n_pad / NB;
    let mut i = 0;
    while i < args.m {
        let rows = (args.m - i).min(4);
        let mut t = 0;
        while t < tiles {
            let c = (tiles - t).min(4);
            match (rows, c) {
                (4, 4) => tile_avx512::<4, 4>(args, i, t, dst),
                (4, 3) => tile_avx512::<4, 3>(args, i, t, dst),
                (4, 2) => tile_avx512::<4, 2>(args, i, t, dst),
                (4, _) => tile_avx512::<4, 1>(args, i, t, dst),
                (_, 4) => tile_avx512::<1, 4>(args, i, t, dst),
                (_, 3) => tile_avx512::<1, 3>(args, i, t, dst),
                (_, 2) => tile_avx512::<1, 2>(args, i, t, dst),
                _ => tile_avx512::<1, 1>(args, i, t, dst),
            }
            t += c;
        }
        i += if rows == 4 { 4 } else { 1 };
    }
}

/// Rows `i..i+R`, column registers `t..t+C` (16 columns each), accumulators in zmm
/// registers; the last register's columns past `n` are masked off in loads and stores.
/// LLVM does not vectorise the portable tile across its unrolled columns, hence the
/// intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn tile_avx512<const R: usize, const C: usize>(
    args: &MmArgs<'_>,
    i: usize,
    t: usize,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    let MmArgs {
        m,
        n,
        k,
        n_pad,
        a,
        a_rs,
        a_cs,
        bp,
        b_stride,
        accumulate,
    } = *args;
    assert!(i + R <= m && (i + R - 1) * a_rs + (k - 1) * a_cs < a.len());
    assert!((k - 1) * b_stride + n <= bp.len() && (t + C) * NB <= n_pad && dst.len() >= m * n);
    let masks: [__mmask16; C] = std::array::from_fn(|c| {
        let col0 = (t + c) * NB;
        let valid = n.saturating_sub(col0).min(NB);
        ((1u32 << valid) - 1) as __mmask16
    });
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    if accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                // SAFETY: the masked-off lanes are not read; the others are columns < n of
                // row i + r < m of `dst` (asserted above).
                *v = unsafe {
                    _mm512_maskz_loadu_ps(masks[c], dst.as_ptr().add((i + r) * n + (t + c) * NB))
                };
            }
        }
    }
    for p in 0..k {
        // SAFETY: p < k and only columns < n are loaded (masked), so every B element read lies
        // inside `bp`; the A indices are bounded by the assert above.
        unsafe {
            let bv: [__m512; C] = std::array::from_fn(|c| {
                _mm512_maskz_loadu_ps(masks[c], bp.as_ptr().add(p * b_stride + (t + c) * NB))
            });
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.get_unchecked((i + r) * a_rs + p * a_cs));
                for (v, b) in row.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(av, *b, *v);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe {
                _mm512_mask_storeu_ps(
                    dst.as_mut_ptr().add((i + r) * n + (t + c) * NB),
                    masks[c],
                    *v,
                )
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mm_avx2(args: &MmArgs<'_>, dst: &mut [f32]) {
    let mut i = 0;
    while i + 4 <= args.m {
        tile_avx2::<4>(args, i, dst);
        i += 4;
    }
    while i < args.m {
        tile_avx2::<1>(args, i, dst);
        i += 1;
    }
}

/// [`tile_avx512`] with two ymm registers per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2<const R: usize>(args: &MmArgs<'_>, i: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let MmArgs {
        n,
        k,
        n_pad,
        a,
        a_rs,
        a_cs,
        bp,
        accumulate,
        ..
    } = *args;
    assert!(i + R <= args.m && (i + R - 1) * a_rs + (k - 1) * a_cs < a.len());
    assert!(bp.len() >= k * n_pad && n_pad % NB == 0);
    for jb in (0..n_pad).step_by(NB) {
        let cols = NB.min(n - jb);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if accumulate {
            for (r, v) in acc.iter_mut().enumerate() {
                let mut t = [0f32; NB];
                t[..cols].copy_from_slice(&dst[(i + r) * n + jb..(i + r) * n + jb + cols]);
                // SAFETY: `t` holds 16 floats.
                unsafe {
                    v[0] = _mm256_loadu_ps(t.as_ptr());
                    v[1] = _mm256_loadu_ps(t.as_ptr().add(8));
                }
            }
        }
        for p in 0..k {
            // SAFETY: as in `tile_avx512`.
            unsafe {
                let b0 = _mm256_loadu_ps(bp.as_ptr().add(p * n_pad + jb));
                let b1 = _mm256_loadu_ps(bp.as_ptr().add(p * n_pad + jb + 8));
                for (r, v) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.get_unchecked((i + r) * a_rs + p * a_cs));
                    v[0] = _mm256_fmadd_ps(av, b0, v[0]);
                    v[1] = _mm256_fmadd_ps(av, b1, v[1]);
                }
            }
        }
        for (r, v) in acc.iter().enumerate() {
            let mut t = [0f32; NB];
            // SAFETY: `t` holds 16 floats.
            unsafe {
                _mm256_storeu_ps(t.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), v[1]);
            }
            dst[(i + r) * n + jb..(i + r) * n + jb + cols].copy_from_slice(&t[..cols]);
        }
    }
}

#[inline(always)]
fn mm_tiles(args: &MmArgs<'_>, dst: &mut [f32]) {
    let mut i = 0;
    while i + 4 <= args.m {
        tile_rows::<4>(args, i, dst);
        i += 4;
    }
    while i < args.m {
        tile_rows::<1>(args, i, dst);
        i += 1;
    }
}

/// Rows `i..i+R` of the result, NB columns at a time (portable fallback).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the tile loops index accumulators and operands together
fn tile_rows<const R: usize>(args: &MmArgs<'_>, i: usize, dst: &mut [f32]) {
    let MmArgs {
        n,
        k,
        n_pad,
        a,
        a_rs,
        a_cs,
        bp,
        accumulate,
        ..
    } = *args;
    for jb in (0..n_pad).step_by(NB) {
        let cols = NB.min(n - jb);
        let mut acc = [[0f32; NB]; R];
        if accumulate {
            for r in 0..R {
                let row = &dst[(i + r) * n + jb..(i + r) * n + jb + cols];
                acc[r][..cols].copy_from_slice(row);
            }
        }
        for p in 0..k {
            let brow: &[f32; NB] = bp[p * n_pad + jb..p * n_pad + jb + NB]
                .try_into()
                .expect("tile of NB columns");
            for r in 0..R {
                let av = a[(i + r) * a_rs + p * a_cs];
                for j in 0..NB {
                    acc[r][j] += av * brow[j];
                }
            }
        }
        for r in 0..R {
            dst[(i + r) * n + jb..(i + r) * n + jb + cols].copy_from_slice(&acc[r][..cols]);
        }
    }
}

/// Rows of `bias` repeated `m` times (the start of `x W + b`).
#[inline(always)]
pub(crate) fn tile(bias: &[f32], m: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * bias.len());
    for _ in 0..m {
        out.extend_from_slice(bias);
    }
    out
}

/// `acc[j] += sum_r g[r, j]`.
#[inline(always)]
pub(crate) fn add_colsum(acc: &mut [f32], g: &[f32]) {
    for row in g.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Stable softplus as [`crate::nn::softplus`]: `max(x, 0) + ln(1 + exp(-|x|))`.
#[inline]
pub(crate) fn softplus(x: f32) -> f32 {
    x.max(0.0) + (1.0 + (-x.abs()).exp()).ln()
}

#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The gradient accumulator of parameter `i`, created as zeros on first use.
pub(crate) fn slot<'a>(
    grads: &'a mut [Option<Vec<f32>>],
    sizes: &[usize],
    i: usize,
) -> &'a mut [f32] {
    grads[i].get_or_insert_with(|| vec![0f32; sizes[i]])
}

/// The position of the variable with tensor id `id` in `params.vars`.
pub(crate) fn var_index(params: &Params, id: TensorId) -> Result<usize> {
    params
        .vars
        .iter()
        .position(|(_, v)| v.as_tensor().id() == id)
        .ok_or_else(|| candle_core::Error::Msg("native flow: weight not in params".into()))
}

/// One dense layer on the host: weights (in, out) already masked, bias, mask, and the
/// indices of its weight and bias in `Params::vars`.
pub(crate) struct HostLinear {
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
    mask: Option<Vec<f32>>,
    pub(crate) n_in: usize,
    pub(crate) n_out: usize,
    pub(crate) w_var: usize,
    pub(crate) b_var: usize,
}

impl HostLinear {
    /// Reloads the weight (masked as in `read`) and bias from host weights.
    pub(crate) fn load(&mut self, host: &[Vec<f32>]) {
        let src = &host[self.w_var];
        match &self.mask {
            Some(m) => {
                for ((w, s), mi) in self.w.iter_mut().zip(src).zip(m) {
                    *w = s * mi;
                }
            }
            None => self.w.copy_from_slice(src),
        }
        self.b.copy_from_slice(&host[self.b_var]);
    }

    pub(crate) fn read(
        l: &Linear,
        mask: Option<&candle_core::Tensor>,
        params: &Params,
    ) -> Result<Self> {
        let (n_in, n_out) = l.w.as_tensor().dims2()?;
        let mut w = l.w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let mask = match mask {
            Some(m) => {
                let m = m.flatten_all()?.to_vec1::<f32>()?;
                for (wi, mi) in w.iter_mut().zip(&m) {
                    *wi *= mi;
                }
                Some(m)
            }
            None => None,
        };
        Ok(Self {
            w,
            b: l.b.as_tensor().to_vec1::<f32>()?,
            mask,
            n_in,
            n_out,
            w_var: var_index(params, l.w.as_tensor().id())?,
            b_var: var_index(params, l.b.as_tensor().id())?,
        })
    }
}

/// One MADE transform and the permutation after it.
struct HostMade {
    initial: HostLinear,
    context: Option<HostLinear>,
    hidden: Vec<HostLinear>,
    last: HostLinear,
    perm: Vec<usize>,
}

/// Activations of one transform kept for the backward pass.
struct Saved {
    z: Vec<f32>,
    a0: Vec<f32>,
    hidden: Vec<Vec<f32>>,
    u: Vec<f32>,
    scale: Vec<f32>,
}

/// d loss / dz at the top of a pass (m x d) and the row weights of the loss sum.
pub(crate) type TopGradient = (Vec<f32>, Vec<f32>);

/// The base Gaussian's end of a pass over `m` rows: each row's loss -log q from the final
/// z (m x d) and its summed log-determinant, and, when `mode` asks for gradients, the
/// gradient with respect to z of the weighted loss sum (z times the row's weight) and the
/// row weights (which each log-determinant's gradient is minus of).
pub(crate) fn base_gaussian(
    z: Vec<f32>,
    logdet: &[f32],
    d: usize,
    gauss_norm: f32,
    log_std_sum: f32,
    mode: Mode<'_>,
) -> (Vec<f64>, Option<TopGradient>) {
    let losses: Vec<f64> = logdet
        .iter()
        .enumerate()
        .map(|(r, ld)| {
            // In f32 and in the graph's order, so both paths round alike.
            let sq: f32 = z[r * d..(r + 1) * d].iter().map(|v| v * v).sum();
            let lp = (sq * -0.5 - gauss_norm) + ld - log_std_sum;
            -f64::from(lp)
        })
        .collect();
    let w: Vec<f32> = match mode {
        Mode::Value => return (losses, None),
        Mode::Sum => vec![1.0; logdet.len()],
        Mode::Weighted(f) => f(&losses),
    };
    let mut gz = z;
    for (g, wr) in gz.chunks_exact_mut(d.max(1)).zip(&w) {
        g.iter_mut().for_each(|v| *v *= wr);
    }
    (losses, Some((gz, w)))
}

/// Gradients per variable of `Params::vars` (`None`: the variable got none).
pub(crate) type Grads = Vec<Option<Vec<f32>>>;

/// Sums chunk results in chunk order (so the thread count cannot change the numbers).
fn reduce(parts: Vec<Evaluation>) -> Evaluation {
    let mut total = Evaluation {
        loss_sum: 0.0,
        grads: None,
    };
    for p in parts {
        total.loss_sum += p.loss_sum;
        total.grads = match (total.grads, p.grads) {
            (None, g) => g,
            (Some(mut acc), Some(g)) => {
                for (a, gi) in acc.iter_mut().zip(g) {
                    match (a.as_mut(), gi) {
                        (Some(a), Some(gi)) => a.iter_mut().zip(gi).for_each(|(x, y)| *x += y),
                        (None, Some(gi)) => *a = Some(gi),
                        _ => {}
                    }
                }
                Some(acc)
            }
            (acc, None) => acc,
        };
    }
    total
}

/// What a pass computes besides the per-row losses.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// Nothing.
    Value,
    /// Gradients of the sum of the row losses.
    Sum,
    /// Gradients of `sum_r w_r loss_r`, with the weights computed from the row losses.
    Weighted(&'a dyn Fn(&[f64]) -> Vec<f32>),
}

/// A snapshot of a MAF's weights on the host, able to evaluate the negative log-likelihood
/// of standardised rows and its gradient.
pub(crate) struct FusedMaf {
    d: usize,
    k: usize,
    layers: Vec<HostMade>,
    /// 0.5 d ln(2 pi), the base Gaussian's normaliser.
    gauss_norm: f32,
    /// Sum of ln std of the inputs (the standardisation's log-Jacobian).
    log_std_sum: f32,
    n_vars: usize,
    var_sizes: Vec<usize>,
}

/// Loss summed over rows and, when asked, gradients summed over rows (one per parameter of
/// `Params::vars`; `None` for parameters outside the MAF).
pub(crate) struct Evaluation {
    pub(crate) loss_sum: f64,
    pub(crate) grads: Option<Grads>,
}

/// Defines `simd_pass`, which runs the type's `pass_impl` compiled for the widest vector
/// unit the CPU has. The element-wise loops of a pass (activations, bias rows, derivative
/// products) vectorise to the widest registers only when compiled for them. Every such loop
/// is lane-independent and sums keep their order, so the versions give identical numbers.
macro_rules! simd_pass {
    () => {
        fn simd_pass(
            &self,
            z: Vec<f32>,
            ctx: Vec<f32>,
            mode: $crate::fused_maf::Mode<'_>,
        ) -> (Vec<f64>, Option<$crate::fused_maf::Grads>) {
            #[cfg(target_arch = "x86_64")]
            {
                let fma = std::arch::is_x86_feature_detected!("fma");
                if fma && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
                    return unsafe { self.pass_avx512(z, ctx, mode) };
                }
                if fma && std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { self.pass_avx2(z, ctx, mode) };
                }
            }
            self.pass_impl(z, ctx, mode)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,fma")]
        fn pass_avx512(
            &self,
            z: Vec<f32>,
            ctx: Vec<f32>,
            mode: $crate::fused_maf::Mode<'_>,
        ) -> (Vec<f64>, Option<$crate::fused_maf::Grads>) {
            self.pass_impl(z, ctx, mode)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn pass_avx2(
            &self,
            z: Vec<f32>,
            ctx: Vec<f32>,
            mode: $crate::fused_maf::Mode<'_>,
        ) -> (Vec<f64>, Option<$crate::fused_maf::Grads>) {
            self.pass_impl(z, ctx, mode)
        }
    };
}
pub(crate) use simd_pass;

/// A flow whose per-row negative log-likelihood and its parameter gradients are computed
/// natively on the host ([`FusedMaf`], [`crate::fused_nsf::FusedNsf`]); batching, chunking
/// over threads and the APT loss are shared here.
pub(crate) trait NativeFlow: Sync {
    /// (input dimension, context dimension).
    fn dims(&self) -> (usize, usize);

    /// Replaces every weight with the values in `host` (one vector per variable of the
    /// `Params` the kernel was read from), as native training does after each step.
    fn load(&mut self, host: &[Vec<f32>]);

    /// Per-row negative log-likelihood of the gathered rows `z` (m x d) given `ctx`
    /// (m x k), and the gradients that `mode` asks for.
    fn pass(&self, z: Vec<f32>, ctx: Vec<f32>, mode: Mode<'_>) -> (Vec<f64>, Option<Grads>);

    /// Negative log-likelihood of the rows `rows` of `x` (standardised inputs, n x d) given
    /// the same rows of `c` (standardised context, n x k), summed; gradients if `grads`.
    fn evaluate(&self, x: &[f32], c: &[f32], rows: &[u32], grads: bool) -> Evaluation {
        let b = rows.len();
        let n_chunks = b.div_ceil(MAX_CHUNK).max(1);
        let size = b.div_ceil(n_chunks).max(1);
        let chunks: Vec<&[u32]> = rows.chunks(size).collect();
        let parts = crate::team::par_map(chunks.len(), |i| self.chunk(x, c, chunks[i], grads));
        reduce(parts)
    }

    /// The APT / SNPE-C atomic loss of the batch `rows` with `num_atoms` atoms (the row's
    /// own input and those of the next `num_atoms - 1` rows of the batch, cyclically),
    /// summed over the batch, and its gradient if asked. `log_prior` holds log p of each
    /// row's raw input. See [`crate::ConditionalEstimator::train_atomic`].
    fn evaluate_atomic(
        &self,
        x: &[f32],
        c: &[f32],
        log_prior: &[f64],
        rows: &[u32],
        num_atoms: usize,
        grads: bool,
    ) -> Evaluation {
        let b = rows.len();
        let k = num_atoms.clamp(2, b.max(2)).min(b);
        let (d, kc) = self.dims();
        // Groups (one per batch row, its k atoms) never straddle chunks: each chunk
        // normalises its own groups.
        let per_chunk = (MAX_CHUNK / k).max(1);
        let groups: Vec<usize> = (0..b).collect();
        let chunks: Vec<&[usize]> = groups.chunks(per_chunk).collect();
        let parts: Vec<Evaluation> = crate::team::par_map(chunks.len(), |ci| {
            let gs = chunks[ci];
            let mut z = Vec::with_capacity(gs.len() * k * d);
            let mut ctx = Vec::with_capacity(gs.len() * k * kc);
            let mut lp = Vec::with_capacity(gs.len() * k);
            for &i in gs {
                let own = rows[i] as usize;
                for j in 0..k {
                    let atom = rows[(i + j) % b] as usize;
                    z.extend_from_slice(&x[atom * d..(atom + 1) * d]);
                    ctx.extend_from_slice(&c[own * kc..(own + 1) * kc]);
                    lp.push(log_prior[atom]);
                }
            }
            // loss_i = -l_i0 + logsumexp_j l_ij with l_ij = -nll_ij - log p(atom);
            // d loss_i / d nll_ij = [j == 0] - softmax_j(l_i)_j.
            let softmax = |nll: &[f64]| -> (Vec<f64>, Vec<f64>) {
                let mut losses = Vec::with_capacity(gs.len());
                let mut w = Vec::with_capacity(nll.len());
                for (n, p) in nll.chunks_exact(k).zip(lp.chunks_exact(k)) {
                    let l: Vec<f64> = n.iter().zip(p).map(|(a, b)| -a - b).collect();
                    let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let se: f64 = l.iter().map(|v| (v - mx).exp()).sum();
                    let lse = mx + se.ln();
                    losses.push(lse - l[0]);
                    for (j, v) in l.iter().enumerate() {
                        let p = (v - lse).exp();
                        w.push(if j == 0 { 1.0 - p } else { -p });
                    }
                }
                (losses, w)
            };
            let weights = |nll: &[f64]| -> Vec<f32> {
                softmax(nll).1.into_iter().map(|v| v as f32).collect()
            };
            let mode = if grads {
                Mode::Weighted(&weights)
            } else {
                Mode::Value
            };
            let (nll, g) = self.pass(z, ctx, mode);
            Evaluation {
                loss_sum: softmax(&nll).0.iter().sum(),
                grads: g,
            }
        });
        reduce(parts)
    }

    /// log q of standardised rows `x` (n x d) given standardised context `c` (n x k, or
    /// one row shared by all), including the standardisation's log-Jacobian.
    fn log_probs(&self, x: &[f32], c: &[f32]) -> Vec<f64> {
        let (d, k) = self.dims();
        let n = x.len() / d.max(1);
        let shared = k > 0 && c.len() == k && n != 1;
        let idx: Vec<usize> = (0..n).collect();
        let parts: Vec<Vec<f64>> = idx
            .par_chunks(MAX_CHUNK)
            .map(|rows| {
                let (s, e) = (rows[0], rows[rows.len() - 1] + 1);
                let ctx = if shared {
                    c.repeat(e - s)
                } else {
                    c[s * k..e * k].to_vec()
                };
                let (losses, _) = self.pass(x[s * d..e * d].to_vec(), ctx, Mode::Value);
                losses.into_iter().map(|l| -l).collect()
            })
            .collect();
        parts.concat()
    }

    fn chunk(&self, x: &[f32], c: &[f32], rows: &[u32], want_grads: bool) -> Evaluation {
        let ((d, k), m) = (self.dims(), rows.len());
        let mut z = Vec::with_capacity(m * d);
        let mut ctx = Vec::with_capacity(m * k);
        for &r in rows {
            let r = r as usize;
            z.extend_from_slice(&x[r * d..(r + 1) * d]);
            ctx.extend_from_slice(&c[r * k..(r + 1) * k]);
        }
        let mode = if want_grads { Mode::Sum } else { Mode::Value };
        let (losses, grads) = self.pass(z, ctx, mode);
        Evaluation {
            loss_sum: losses.iter().sum(),
            grads,
        }
    }
}

impl FusedMaf {
    /// Reads the current weights of `maf` (all of whose parameters must be in `params`).
    /// `log_std_sum` is the log-Jacobian of the inputs' standardisation.
    pub(crate) fn new(maf: &Maf, params: &Params, d_ctx: usize, log_std_sum: f64) -> Result<Self> {
        let mut layers = Vec::new();
        for (made, perm) in maf.layers() {
            layers.push(HostMade {
                initial: HostLinear::read(&made.initial, Some(&made.initial_mask), params)?,
                context: made
                    .context
                    .as_ref()
                    .map(|c| HostLinear::read(c, None, params))
                    .transpose()?,
                hidden: made
                    .hidden
                    .iter()
                    .map(|(l, m)| HostLinear::read(l, Some(m), params))
                    .collect::<Result<_>>()?,
                last: HostLinear::read(&made.last, Some(&made.last_mask), params)?,
                perm: perm.iter().map(|&p| p as usize).collect(),
            });
        }
        let d = maf.dim();
        Ok(Self {
            d,
            k: d_ctx,
            layers,
            gauss_norm: (0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()) as f32,
            log_std_sum: log_std_sum as f32,
            n_vars: params.vars.len(),
            var_sizes: params.vars.iter().map(|(_, v)| v.elem_count()).collect(),
        })
    }

    simd_pass!();

    #[inline(always)]
    fn pass_impl(
        &self,
        mut z: Vec<f32>,
        ctx: Vec<f32>,
        mode: Mode<'_>,
    ) -> (Vec<f64>, Option<Grads>) {
        let (d, k) = (self.d, self.k);
        let m = z.len() / d.max(1);
        let mut logdet = vec![0f32; m];
        let mut saved = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let h = l.initial.n_out;
            let mut a0 = tile(&l.initial.b, m);
            mm(m, h, d, &mut a0, true, &z, (d, 1), &l.initial.w, (h, 1));
            if let Some(cl) = &l.context {
                for row in a0.chunks_exact_mut(h) {
                    for (v, bi) in row.iter_mut().zip(&cl.b) {
                        *v += bi;
                    }
                }
                mm(m, h, k, &mut a0, true, &ctx, (k, 1), &cl.w, (h, 1));
            }
            let mut hs: Vec<Vec<f32>> = Vec::with_capacity(l.hidden.len());
            for hl in &l.hidden {
                let prev = hs.last().unwrap_or(&a0);
                let mut pre = tile(&hl.b, m);
                mm(
                    m,
                    hl.n_out,
                    hl.n_in,
                    &mut pre,
                    true,
                    prev,
                    (hl.n_in, 1),
                    &hl.w,
                    (hl.n_out, 1),
                );
                for v in pre.iter_mut() {
                    *v = tanh_rational(*v);
                }
                hs.push(pre);
            }
            let top = hs.last().unwrap_or(&a0);
            let lo = &l.last;
            let mut out = tile(&lo.b, m);
            mm(
                m,
                2 * d,
                lo.n_in,
                &mut out,
                true,
                top,
                (lo.n_in, 1),
                &lo.w,
                (2 * d, 1),
            );
            let mut u = vec![0f32; m * d];
            let mut scale = vec![0f32; m * d];
            let mut next = vec![0f32; m * d];
            let mut y = vec![0f32; d];
            for r in 0..m {
                let mut ld = 0f32;
                for j in 0..d {
                    let uj = out[r * 2 * d + j];
                    let sc = softplus(uj) + 1e-3;
                    u[r * d + j] = uj;
                    scale[r * d + j] = sc;
                    ld += sc.ln();
                    y[j] = z[r * d + j] * sc + out[r * 2 * d + d + j];
                }
                logdet[r] += ld;
                for (i, &p) in l.perm.iter().enumerate() {
                    next[r * d + i] = y[p];
                }
            }
            saved.push(Saved {
                z: std::mem::replace(&mut z, next),
                a0,
                hidden: hs,
                u,
                scale,
            });
        }
        let (losses, top) = base_gaussian(z, &logdet, d, self.gauss_norm, self.log_std_sum, mode);
        let Some((mut gz, w)) = top else {
            return (losses, None);
        };
        let mut grads: Grads = vec![None; self.n_vars];
        let sizes = &self.var_sizes;
        for (l, s) in self.layers.iter().zip(saved).rev() {
            let mut gy = vec![0f32; m * d];
            for r in 0..m {
                for (i, &p) in l.perm.iter().enumerate() {
                    gy[r * d + p] = gz[r * d + i];
                }
            }
            let mut gout = vec![0f32; m * 2 * d];
            let mut gz_in = vec![0f32; m * d];
            for r in 0..m {
                for j in 0..d {
                    let idx = r * d + j;
                    let g = gy[idx];
                    let gscale = g * s.z[idx] - w[r] / s.scale[idx];
                    gout[r * 2 * d + j] = gscale * sigmoid(s.u[idx]);
                    gout[r * 2 * d + d + j] = g;
                    gz_in[idx] = g * s.scale[idx];
                }
            }
            let lo = &l.last;
            let top = s.hidden.last().unwrap_or(&s.a0);
            mm(
                lo.n_in,
                2 * d,
                m,
                slot(&mut grads, sizes, lo.w_var),
                true,
                top,
                (1, lo.n_in),
                &gout,
                (2 * d, 1),
            );
            add_colsum(slot(&mut grads, sizes, lo.b_var), &gout);
            let mut gh = vec![0f32; m * lo.n_in];
            mm(
                m,
                lo.n_in,
                2 * d,
                &mut gh,
                false,
                &gout,
                (2 * d, 1),
                &lo.w,
                (1, 2 * d),
            );
            for (i, hl) in l.hidden.iter().enumerate().rev() {
                let h = &s.hidden[i];
                for (g, hv) in gh.iter_mut().zip(h) {
                    *g *= 1.0 - hv * hv;
                }
                let prev = if i == 0 { &s.a0 } else { &s.hidden[i - 1] };
                mm(
                    hl.n_in,
                    hl.n_out,
                    m,
                    slot(&mut grads, sizes, hl.w_var),
                    true,
                    prev,
                    (1, hl.n_in),
                    &gh,
                    (hl.n_out, 1),
                );
                add_colsum(slot(&mut grads, sizes, hl.b_var), &gh);
                let mut next = vec![0f32; m * hl.n_in];
                mm(
                    m,
                    hl.n_in,
                    hl.n_out,
                    &mut next,
                    false,
                    &gh,
                    (hl.n_out, 1),
                    &hl.w,
                    (1, hl.n_out),
                );
                gh = next;
            }
            let il = &l.initial;
            let h = il.n_out;
            mm(
                d,
                h,
                m,
                slot(&mut grads, sizes, il.w_var),
                true,
                &s.z,
                (1, d),
                &gh,
                (h, 1),
            );
            add_colsum(slot(&mut grads, sizes, il.b_var), &gh);
            if let Some(cl) = &l.context {
                mm(
                    k,
                    h,
                    m,
                    slot(&mut grads, sizes, cl.w_var),
                    true,
                    &ctx,
                    (1, k),
                    &gh,
                    (h, 1),
                );
                add_colsum(slot(&mut grads, sizes, cl.b_var), &gh);
            }
            mm(m, d, h, &mut gz_in, true, &gh, (h, 1), &il.w, (1, h));
            gz = gz_in;
        }
        // Masked weights only ever enter through W * mask, so their gradient is masked too.
        for l in &self.layers {
            for hl in std::iter::once(&l.initial)
                .chain(&l.hidden)
                .chain([&l.last])
            {
                if let (Some(mask), Some(g)) = (&hl.mask, grads[hl.w_var].as_mut()) {
                    for (gi, mi) in g.iter_mut().zip(mask) {
                        *gi *= mi;
                    }
                }
            }
        }
        (losses, Some(grads))
    }
}

impl NativeFlow for FusedMaf {
    fn dims(&self) -> (usize, usize) {
        (self.d, self.k)
    }

    fn load(&mut self, host: &[Vec<f32>]) {
        for l in &mut self.layers {
            l.initial.load(host);
            if let Some(c) = &mut l.context {
                c.load(host);
            }
            for h in &mut l.hidden {
                h.load(host);
            }
            l.last.load(host);
        }
    }

    fn pass(&self, z: Vec<f32>, ctx: Vec<f32>, mode: Mode<'_>) -> (Vec<f64>, Option<Grads>) {
        self.simd_pass(z, ctx, mode)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nn::std_normal_log_prob;
    use candle_core::{Device, Tensor};

    /// `mm` on every layout the kernel uses (plain, transposed A, transposed B, both), sizes
    /// around the 4-row and 16-column tiles, with and without accumulation, against a plain
    /// triple loop; on x86-64 the AVX2 and portable paths are checked too.
    #[test]
    fn small_matrix_products_match_a_plain_loop() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for &(m, n, k) in &[
            (1, 1, 1),
            (4, 16, 3),
            (5, 17, 2),
            (7, 50, 9),
            (100, 50, 50),
            (50, 4, 100),
            (3, 64, 1),
            (9, 33, 70),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                let start: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                for accumulate in [false, true] {
                    let mut want = if accumulate {
                        start.clone()
                    } else {
                        vec![0.0; m * n]
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let mut acc = 0f64;
                            for p in 0..k {
                                acc += f64::from(a[i * sa.0 + p * sa.1])
                                    * f64::from(b[p * sb.0 + j * sb.1]);
                            }
                            want[i * n + j] += acc as f32;
                        }
                    }
                    let check = |got: &[f32], path: &str| {
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                "{path} m={m} n={n} k={k} ta={ta} tb={tb} acc={accumulate}: {g} vs {w}"
                            );
                        }
                    };
                    let mut got = start.clone();
                    mm(m, n, k, &mut got, accumulate, &a, sa, &b, sb);
                    check(&got, "dispatched");
                    let n_pad = n.div_ceil(NB) * NB;
                    let bp = copy_row_major(&b, sb.0, sb.1, k, n, n_pad);
                    let args = MmArgs {
                        m,
                        n,
                        k,
                        n_pad,
                        a: &a,
                        a_rs: sa.0,
                        a_cs: sa.1,
                        bp: &bp,
                        b_stride: n_pad,
                        accumulate,
                    };
                    let mut got = start.clone();
                    mm_tiles(&args, &mut got);
                    check(&got, "portable");
                    #[cfg(target_arch = "x86_64")]
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        let mut got = start.clone();
                        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                        unsafe { mm_avx2(&args, &mut got) };
                        check(&got, "avx2");
                    }
                }
            }
        }
    }
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub(crate) fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim)
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect()
    }

    /// A flow's forward pass as a graph: standardised rows and context to (z, log|det J|).
    pub(crate) type GraphForward<'a> =
        &'a dyn Fn(&Tensor, Option<&Tensor>) -> candle_core::Result<(Tensor, Tensor)>;

    /// Loss and gradients of the candle graph of the same flow (the reference).
    fn graph(
        forward: GraphForward<'_>,
        p: &Params,
        x: &[f32],
        c: &[f32],
        d: usize,
        k: usize,
        off: f64,
    ) -> (f64, Vec<Vec<f32>>) {
        let n = x.len() / d;
        let xt = Tensor::from_vec(x.to_vec(), (n, d), &Device::Cpu).unwrap();
        let ct = Tensor::from_vec(c.to_vec(), (n, k), &Device::Cpu).unwrap();
        let (z, ld) = forward(&xt, (k > 0).then_some(&ct)).unwrap();
        let lp = (std_normal_log_prob(&z).unwrap() + ld).unwrap();
        let loss = ((lp.mean_all().unwrap().neg().unwrap()) + off).unwrap();
        let grads = loss.backward().unwrap();
        let g = p
            .vars
            .iter()
            .map(|(_, v)| {
                grads
                    .get(v.as_tensor())
                    .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                    .unwrap_or_else(|| vec![0.0; v.elem_count()])
            })
            .collect();
        (loss.to_scalar::<f32>().unwrap() as f64, g)
    }

    /// Moves every weight of `p` away from its initialisation so every term matters.
    pub(crate) fn perturb(p: &Params, seed: u64, scale: f64) {
        for (i, (_, v)) in p.vars.iter().enumerate() {
            let w = data(1, v.elem_count(), seed + i as u64);
            let t = Tensor::from_vec(w, v.as_tensor().shape(), &Device::Cpu).unwrap();
            v.set(&(t * scale).unwrap()).unwrap();
        }
    }

    /// Checks a native kernel's summed loss and gradients over all `n` rows of `x`, and its
    /// loss on a subset of rows, against candle's autograd of `forward` with the same
    /// weights `p` (`off`: the kernel's log-std offset).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assert_matches_graph(
        kernel: &dyn NativeFlow,
        forward: GraphForward<'_>,
        p: &Params,
        x: &[f32],
        c: &[f32],
        off: f64,
        label: &str,
    ) {
        let (d, k) = kernel.dims();
        let n = x.len() / d;
        let (l_ref, g_ref) = graph(forward, p, x, c, d, k, off);
        let rows: Vec<u32> = (0..n as u32).collect();
        let ev = kernel.evaluate(x, c, &rows, true);
        let loss = ev.loss_sum / n as f64;
        assert!(
            (loss - l_ref).abs() < 1e-5 * l_ref.abs().max(1.0),
            "{label}: loss {loss} vs graph {l_ref}"
        );
        let grads = ev.grads.unwrap();
        for (i, (name, _)) in p.vars.iter().enumerate() {
            let ours: Vec<f32> = grads[i]
                .as_ref()
                .unwrap_or_else(|| panic!("{label}: {name} got no gradient"))
                .iter()
                .map(|g| g / n as f32)
                .collect();
            let scale = g_ref[i].iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (j, (a, b)) in ours.iter().zip(&g_ref[i]).enumerate() {
                assert!(
                    (a - b).abs() < 2e-4 * scale,
                    "{label}: {name}[{j}] = {a} vs graph {b} (scale {scale})"
                );
            }
        }
        // A subset of rows is the loss of those rows alone.
        let sub = [3u32, 0, 7];
        let ev_sub = kernel.evaluate(x, c, &sub, false);
        let pick = |src: &[f32], dim: usize| -> Vec<f32> {
            sub.iter()
                .flat_map(|&r| src[r as usize * dim..(r as usize + 1) * dim].to_vec())
                .collect()
        };
        let (l_sub, _) = graph(forward, p, &pick(x, d), &pick(c, k), d, k, off);
        assert!(
            (ev_sub.loss_sum / 3.0 - l_sub).abs() < 1e-5 * l_sub.abs().max(1.0),
            "{label}: subset loss {} vs graph {l_sub}",
            ev_sub.loss_sum / 3.0
        );
        assert!(ev_sub.grads.is_none());
    }

    #[test]
    fn loss_and_gradients_match_candle_autograd() {
        for (d, k, n) in [
            (3usize, 2usize, 250usize),
            (1, 0, 37),
            (2, 5, 100),
            (5, 3, 201),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(d as u64 * 10 + k as u64);
            let mut p = Params::new(&Device::Cpu);
            let maf = Maf::new(&mut p, d, k, 16, 3, &mut rng).unwrap();
            perturb(&p, 100, 0.4);
            let (x, c) = (data(n, d, 1), data(n, k, 2));
            let off = 0.37;
            let kernel = FusedMaf::new(&maf, &p, k, off).unwrap();
            let forward = |x: &Tensor, c: Option<&Tensor>| maf.forward(x, c);
            assert_matches_graph(&kernel, &forward, &p, &x, &c, off, &format!("d {d} k {k}"));
        }
    }

    #[test]
    fn atomic_loss_and_gradients_match_candle_autograd() {
        let (d, k, b, atoms) = (3usize, 2usize, 23usize, 5usize);
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let mut p = Params::new(&Device::Cpu);
        let maf = Maf::new(&mut p, d, k, 12, 2, &mut rng).unwrap();
        for (i, (_, v)) in p.vars.iter().enumerate() {
            let w = data(1, v.elem_count(), 300 + i as u64);
            let t = Tensor::from_vec(w, v.as_tensor().shape(), &Device::Cpu).unwrap();
            v.set(&(t * 0.4).unwrap()).unwrap();
        }
        let n = 40;
        let (x, c) = (data(n, d, 5), data(n, k, 6));
        let log_prior: Vec<f64> = (0..n).map(|i| -0.3 * i as f64 / n as f64).collect();
        let rows: Vec<u32> = (0..b as u32).map(|i| (i * 7) % n as u32).collect();
        let off = 0.2;
        // Reference: the atomic loss built from the graph's log q.
        let dev = Device::Cpu;
        let gather = |src: &[f32], dim: usize, idx: &[usize]| {
            let v: Vec<f32> = idx
                .iter()
                .flat_map(|&r| src[r * dim..(r + 1) * dim].to_vec())
                .collect();
            Tensor::from_vec(v, (idx.len(), dim), &dev).unwrap()
        };
        let own: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
        let ctx = gather(&c, k, &own);
        let mut cols = Vec::new();
        for j in 0..atoms {
            let atom: Vec<usize> = (0..b).map(|i| own[(i + j) % b]).collect();
            let (z, ld) = maf.forward(&gather(&x, d, &atom), Some(&ctx)).unwrap();
            let lq = ((std_normal_log_prob(&z).unwrap() + ld).unwrap() - off).unwrap();
            let lp: Vec<f32> = atom.iter().map(|&a| log_prior[a] as f32).collect();
            let lp = Tensor::from_vec(lp, b, &dev).unwrap();
            cols.push((lq - lp).unwrap().unsqueeze(1).unwrap());
        }
        let logits = Tensor::cat(&cols, 1).unwrap();
        let ls = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let loss = ls
            .narrow(1, 0, 1)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        let l_ref = loss.to_scalar::<f32>().unwrap() as f64;

        let kernel = FusedMaf::new(&maf, &p, k, off).unwrap();
        let ev = kernel.evaluate_atomic(&x, &c, &log_prior, &rows, atoms, true);
        assert!(
            (ev.loss_sum / b as f64 - l_ref).abs() < 1e-5 * l_ref.abs().max(1.0),
            "{} vs graph {l_ref}",
            ev.loss_sum / b as f64
        );
        let ours = ev.grads.unwrap();
        for (i, (name, v)) in p.vars.iter().enumerate() {
            let g_ref = grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let g = ours[i].as_ref().unwrap();
            let scale = g_ref.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (j, (a, r)) in g.iter().zip(&g_ref).enumerate() {
                let a = a / b as f32;
                assert!(
                    (a - r).abs() < 2e-4 * scale,
                    "{name}[{j}] = {a} vs graph {r}"
                );
            }
        }
        // The same batch without gradients gives the same loss.
        let ev2 = kernel.evaluate_atomic(&x, &c, &log_prior, &rows, atoms, false);
        assert_eq!(ev2.loss_sum.to_bits(), ev.loss_sum.to_bits());
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (d, k, n) = (4, 3, 333);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut p = Params::new(&Device::Cpu);
        let maf = Maf::new(&mut p, d, k, 20, 2, &mut rng).unwrap();
        let kernel = FusedMaf::new(&maf, &p, k, 0.0).unwrap();
        let (x, c) = (data(n, d, 3), data(n, k, 4));
        let rows: Vec<u32> = (0..n as u32).rev().collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| kernel.evaluate(&x, &c, &rows, true))
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits());
        assert_eq!(a.grads, b.grads);
        let lp: Vec<f64> = (0..n).map(|i| -(i as f64) / 100.0).collect();
        let atomic = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| kernel.evaluate_atomic(&x, &c, &lp, &rows[..210], 10, true))
        };
        let (a, b) = (atomic(1), atomic(3));
        assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits());
        assert_eq!(a.grads, b.grads);
    }
}
