//! Fast elementwise kernels as candle custom ops (CPU), each with its backward.
//!
//! candle applies `tanh` one element at a time through libm, which costs half of a MAF
//! training step (PERFORMANCE.md); a branch-free rational approximation vectorises.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], +-1 beyond: the minimax rational approximation
/// used by Eigen's `ptanh_float` (degree 13/6), max error ~1e-7 in f32.
// The published coefficients are kept as written (a few digits beyond f32).
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn tanh_rational(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = -2.760_768_5e-16f32;
    let p = p * x2 + 2.000_187_9e-13;
    let p = p * x2 - 8.604_671_5e-11;
    let p = p * x2 + 5.122_297e-8;
    let p = p * x2 + 1.485_722_4e-5;
    let p = p * x2 + 6.372_619_3e-4;
    let p = p * x2 + 4.893_524_6e-3;
    let q = 1.198_258_4e-6f32;
    let q = q * x2 + 1.185_347e-4;
    let q = q * x2 + 2.268_434_6e-3;
    let q = q * x2 + 4.893_525e-3;
    x * p / q
}

struct FastTanh;

impl CustomOp1 for FastTanh {
    fn name(&self) -> &'static str {
        "fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-tanh needs a contiguous input")
        };
        match storage {
            CpuStorage::F32(v) => {
                let out: Vec<f32> = v[start..end].iter().map(|&x| tanh_rational(x)).collect();
                Ok((CpuStorage::F32(out), layout.shape().clone()))
            }
            CpuStorage::F64(v) => {
                let out: Vec<f64> = v[start..end].iter().map(|&x| x.tanh()).collect();
                Ok((CpuStorage::F64(out), layout.shape().clone()))
            }
            _ => candle_core::bail!("fast-tanh supports f32 and f64"),
        }
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((grad_res * (1.0 - res.sqr()?)?)?))
    }
}

/// tanh, through the fast kernel on the CPU and candle's own elsewhere.
pub(crate) fn tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(FastTanh)
    } else {
        x.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn rational_tanh_is_accurate() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f64 * 1e-4;
            let e = (tanh_rational(x as f32) as f64 - x.tanh()).abs();
            worst = worst.max(e);
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(tanh_rational(1e4), 1.0);
        assert_eq!(tanh_rational(-1e4), -1.0);
    }

    #[test]
    fn fast_tanh_gradient_matches_autograd_and_finite_differences() {
        let xs = vec![-3.0f32, -0.7, 0.0, 0.2, 1.5, 9.0];
        let v = Var::from_vec(xs.clone(), xs.len(), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(vec![1.0f32, -2.0, 0.5, 3.0, -1.0, 2.0], 6, &Device::Cpu).unwrap();
        let ours = (tanh(v.as_tensor()).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let stock = (v.as_tensor().tanh().unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g1 = ours.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let g2 = stock.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let wv = w.to_vec1::<f32>().unwrap();
        for i in 0..xs.len() {
            assert!(
                (g1[i] - g2[i]).abs() < 1e-6,
                "{i}: {} vs candle {}",
                g1[i],
                g2[i]
            );
            let x = xs[i] as f64;
            let fd = ((x + 1e-5).tanh() - (x - 1e-5).tanh()) / 2e-5 * wv[i] as f64;
            assert!(
                (g1[i] as f64 - fd).abs() < 1e-5,
                "{i}: {} vs fd {fd}",
                g1[i]
            );
        }
    }
}

/// Matrix product `a b` of 2-D tensors through `gemm` without threads. candle's matmul
/// picks rayon parallelism from `RAYON_NUM_THREADS` alone, and its threaded path (packing
/// buffers, wake-ups) made a MAF epoch 4x slower on a busy 2-core machine.
struct SerialMatMul;

/// `dst (m x n, row-major) (+)= a b` for strided 2-D views, without threads.
fn gemm_into<T: Copy + 'static>(
    dst: &mut [T],
    read_dst: bool,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    one: T,
) -> Result<()> {
    let (m, k) = la.shape().dims2()?;
    let (k2, n) = lb.shape().dims2()?;
    if k != k2 || dst.len() != m * n {
        candle_core::bail!(
            "serial matmul: shapes ({m}, {k}) x ({k2}, {n}) into {}",
            dst.len()
        );
    }
    let (sa, sb) = (la.stride(), lb.stride());
    // Bounds of the strided views, so the raw-pointer product below stays in range.
    let extent = |rows: usize, cols: usize, st: &[usize], off: usize| {
        if rows == 0 || cols == 0 {
            off
        } else {
            off + (rows - 1) * st[0] + (cols - 1) * st[1] + 1
        }
    };
    if extent(m, k, sa, la.start_offset()) > a.len()
        || extent(k, n, sb, lb.start_offset()) > b.len()
    {
        candle_core::bail!("serial matmul: layout exceeds storage");
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    // SAFETY: every element read lies within `a` and `b` (checked above); `dst` holds
    // m * n elements written with row stride n and column stride 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            a.as_ptr().add(la.start_offset()),
            sa[1] as isize,
            sa[0] as isize,
            b.as_ptr().add(lb.start_offset()),
            sb[1] as isize,
            sb[0] as isize,
            one,
            one,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

impl SerialMatMul {
    fn run<T: Copy + Default + 'static>(
        a: &[T],
        la: &Layout,
        b: &[T],
        lb: &Layout,
        one: T,
    ) -> Result<(Vec<T>, Shape)> {
        let (m, _) = la.shape().dims2()?;
        let (_, n) = lb.shape().dims2()?;
        let mut dst = vec![T::default(); m * n];
        gemm_into(&mut dst, false, a, la, b, lb, one)?;
        Ok((dst, Shape::from((m, n))))
    }
}

/// `x W + 1 b^T` in one pass: the output starts as copies of the bias and gemm accumulates
/// into it, so a layer costs one allocation instead of three (product, rank-1 bias, sum).
struct SerialLinear;

impl SerialLinear {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Copy + 'static>(
        x: &[T],
        lx: &Layout,
        w: &[T],
        lw: &Layout,
        b: &[T],
        lb: &Layout,
        one: T,
    ) -> Result<(Vec<T>, Shape)> {
        let (m, _) = lx.shape().dims2()?;
        let (_, n) = lw.shape().dims2()?;
        let Some((s, e)) = lb.contiguous_offsets() else {
            candle_core::bail!("serial linear: bias not contiguous")
        };
        if e - s != n {
            candle_core::bail!("serial linear: bias has {} values for {n} outputs", e - s);
        }
        let bias = &b[s..e];
        let mut dst = Vec::with_capacity(m * n);
        for _ in 0..m {
            dst.extend_from_slice(bias);
        }
        gemm_into(&mut dst, true, x, lx, w, lw, one)?;
        Ok((dst, Shape::from((m, n))))
    }
}

impl candle_core::CustomOp3 for SerialLinear {
    fn name(&self) -> &'static str {
        "serial-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (d, s) = Self::run(x, l1, w, l2, b, l3, 1f32)?;
                Ok((CpuStorage::F32(d), s))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (d, s) = Self::run(x, l1, w, l2, b, l3, 1f64)?;
                Ok((CpuStorage::F64(d), s))
            }
            _ => candle_core::bail!("serial linear supports f32 and f64"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ones = Tensor::ones((1, grad.dim(0)?), grad.dtype(), grad.device())?;
        let db = matmul(&ones, grad)?.squeeze(0)?;
        Ok((
            Some(matmul(grad, &w.t()?)?),
            Some(matmul(&x.t()?, grad)?),
            Some(db),
        ))
    }
}

/// `x W + b` for x (B, in), W (in, out), b (out): one fused pass on the CPU.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fast = x.device().is_cpu()
        && x.rank() == 2
        && w.rank() == 2
        && b.rank() == 1
        && x.dtype() == w.dtype()
        && x.dtype() == b.dtype()
        && matches!(x.dtype(), DType::F32 | DType::F64);
    if fast {
        x.apply_op3(w, b, SerialLinear)
    } else {
        x.matmul(w)?.broadcast_add(b)
    }
}

impl CustomOp2 for SerialMatMul {
    fn name(&self) -> &'static str {
        "serial-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let (d, s) = Self::run(a, l1, b, l2, 1f32)?;
                Ok((CpuStorage::F32(d), s))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let (d, s) = Self::run(a, l1, b, l2, 1f64)?;
                Ok((CpuStorage::F64(d), s))
            }
            _ => candle_core::bail!("serial matmul supports f32 and f64 pairs"),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(matmul(grad, &b.t()?)?), Some(matmul(&a.t()?, grad)?)))
    }
}

/// `a b` for 2-D tensors: single-threaded gemm on the CPU, candle's matmul elsewhere.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fast = a.device().is_cpu()
        && a.rank() == 2
        && b.rank() == 2
        && a.dtype() == b.dtype()
        && matches!(a.dtype(), DType::F32 | DType::F64);
    if fast {
        a.apply_op2(b, SerialMatMul)
    } else {
        a.matmul(b)
    }
}

#[cfg(test)]
mod matmul_tests {
    #[test]
    fn serial_linear_matches_candle_and_its_gradients() {
        let x =
            Var::from_tensor(&t((0..15).map(|i| (i as f64 * 0.41).sin()).collect(), 5, 3)).unwrap();
        let w =
            Var::from_tensor(&t((0..12).map(|i| (i as f64 * 0.23).cos()).collect(), 3, 4)).unwrap();
        let b = Var::from_vec(vec![0.1f64, -0.2, 0.3, 0.7], 4, &Device::Cpu).unwrap();
        let wt = t((0..20).map(|i| i as f64 * 0.1 - 1.0).collect(), 5, 4);
        let ours = linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        let stock = x
            .as_tensor()
            .matmul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let diff = (&ours - &stock)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < 1e-12);
        let g1 = (ours.tanh().unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (stock.tanh().unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            let a = g1
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let c = g2
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for (p, q) in a.iter().zip(&c) {
                assert!((p - q).abs() < 1e-12, "{p} vs {q}");
            }
        }
        // Finite differences in the bias.
        let gb = g1.get(b.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        for i in 0..4 {
            let f = |d: f64| {
                let mut bv = vec![0.1f64, -0.2, 0.3, 0.7];
                bv[i] += d;
                let bt = Tensor::from_vec(bv, 4, &Device::Cpu).unwrap();
                (linear(x.as_tensor(), w.as_tensor(), &bt)
                    .unwrap()
                    .tanh()
                    .unwrap()
                    * &wt)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (f(1e-6) - f(-1e-6)) / 2e-6;
            assert!((fd - gb[i]).abs() < 1e-7, "{i}: {} vs fd {fd}", gb[i]);
        }
    }

    use super::*;
    use candle_core::{Device, Var};

    fn t(data: Vec<f64>, r: usize, c: usize) -> Tensor {
        Tensor::from_vec(data, (r, c), &Device::Cpu).unwrap()
    }

    #[test]
    fn serial_matmul_matches_candle_including_strided_views() {
        let a = t((0..12).map(|i| (i as f64 * 0.37).sin()).collect(), 3, 4);
        let b = t((0..20).map(|i| (i as f64 * 0.11).cos()).collect(), 4, 5);
        let want = a.matmul(&b).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(matmul(&a, &b).unwrap().to_vec2::<f64>().unwrap().len(), 3);
        let got = matmul(&a, &b).unwrap().to_vec2::<f64>().unwrap();
        for (r1, r2) in got.iter().zip(&want) {
            for (x, y) in r1.iter().zip(r2) {
                assert!((x - y).abs() < 1e-12);
            }
        }
        // Transposed and narrowed operands (non-unit column strides, offsets).
        let bt = b.t().unwrap().contiguous().unwrap(); // (5, 4)
        let got = matmul(&a.narrow(0, 1, 2).unwrap(), &bt.t().unwrap())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        for (r1, r2) in got.iter().zip(&want[1..]) {
            for (x, y) in r1.iter().zip(r2) {
                assert!((x - y).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn serial_matmul_gradients_match_candle_and_finite_differences() {
        let av: Vec<f64> = (0..6).map(|i| (i as f64 * 0.7).sin()).collect();
        let bv: Vec<f64> = (0..12).map(|i| (i as f64 * 0.3).cos()).collect();
        let w = t((0..8).map(|i| i as f64 - 3.5).collect(), 2, 4);
        let loss = |mm: &dyn Fn(&Tensor, &Tensor) -> Tensor, a: &Tensor, b: &Tensor| {
            (mm(a, b).tanh().unwrap() * &w).unwrap().sum_all().unwrap()
        };
        let ours = |a: &Tensor, b: &Tensor| matmul(a, b).unwrap();
        let stock = |a: &Tensor, b: &Tensor| a.matmul(b).unwrap();
        let a = Var::from_tensor(&t(av.clone(), 2, 3)).unwrap();
        let b = Var::from_tensor(&t(bv.clone(), 3, 4)).unwrap();
        let g1 = loss(&ours, a.as_tensor(), b.as_tensor())
            .backward()
            .unwrap();
        let g2 = loss(&stock, a.as_tensor(), b.as_tensor())
            .backward()
            .unwrap();
        let flat = |g: &candle_core::backprop::GradStore, v: &Var| {
            g.get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        for (x, y) in flat(&g1, &a)
            .iter()
            .zip(flat(&g2, &a))
            .chain(flat(&g1, &b).iter().zip(flat(&g2, &b)))
        {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        let ga = flat(&g1, &a);
        for i in 0..av.len() {
            let f = |d: f64| {
                let mut p = av.clone();
                p[i] += d;
                loss(&ours, &t(p, 2, 3), &t(bv.clone(), 3, 4))
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (f(1e-6) - f(-1e-6)) / 2e-6;
            assert!((fd - ga[i]).abs() < 1e-7, "{i}: {} vs fd {fd}", ga[i]);
        }
    }
}
