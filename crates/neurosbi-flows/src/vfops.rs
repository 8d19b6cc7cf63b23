//! Fused CPU kernels for the vector-field network: GELU (tanh form) and layer norm as one
//! pass each, with their backward, and the layer norm's forward-mode tangent map.
//!
//! Composed from stock candle ops, a GELU costs 8 tensor ops and a layer norm 10; on
//! 100 000-element tensors each op is a fresh allocation with page faults, which made one
//! ODE step of 1 000 rows cost ~15 ms. Other devices and dtypes fall back to the composed
//! forms.

use crate::fastops::tanh_rational;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, D, DType, Layout, Result, Shape, Tensor};

pub(crate) const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
pub(crate) const GELU_A: f64 = 0.044_715;
pub(crate) const LN_EPS: f64 = 1e-5;

#[inline(always)]
fn gelu_scalar(x: f32) -> (f32, f32) {
    const C: f32 = SQRT_2_OVER_PI as f32;
    const A: f32 = GELU_A as f32;
    let x2 = x * x;
    let th = tanh_rational(C * x * (1.0 + A * x2));
    let half = 0.5 * (1.0 + th);
    let dy = half + 0.5 * x * (1.0 - th * th) * C * (1.0 + 3.0 * A * x2);
    (half * x, dy)
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: input not contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        _ => candle_core::bail!("{what}: f32 only"),
    }
}

fn fast(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

struct Gelu;
struct GeluDeriv;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "vf-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let v = contiguous_f32(s, l, "gelu")?;
        let out = v.iter().map(|&x| gelu_scalar(x).0).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.mul(&gelu_deriv(arg)?)?))
    }
}

impl CustomOp1 for GeluDeriv {
    fn name(&self) -> &'static str {
        "vf-gelu-deriv"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let v = contiguous_f32(s, l, "gelu derivative")?;
        let out = v.iter().map(|&x| gelu_scalar(x).1).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// GELU in its tanh form (PyTorch `approximate="tanh"`): `0.5 x (1 + tanh(c (x + a x^3)))`.
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    if fast(x) {
        return x.contiguous()?.apply_op1(Gelu);
    }
    let u = ((x.sqr()? * (SQRT_2_OVER_PI * GELU_A))? + SQRT_2_OVER_PI)?.mul(x)?;
    ((u.tanh()? + 1.0)? * 0.5)?.mul(x)
}

/// Derivative of [`gelu`] (not differentiable itself).
pub(crate) fn gelu_deriv(x: &Tensor) -> Result<Tensor> {
    if fast(x) {
        return x.contiguous()?.apply_op1(GeluDeriv);
    }
    let x2 = x.sqr()?;
    let th = ((&x2 * (SQRT_2_OVER_PI * GELU_A))? + SQRT_2_OVER_PI)?
        .mul(x)?
        .tanh()?;
    let half = ((&th + 1.0)? * 0.5)?;
    let du = ((x2 * (3.0 * GELU_A * SQRT_2_OVER_PI))? + SQRT_2_OVER_PI)?;
    half + ((th.sqr()?.neg()? + 1.0)? * 0.5)?.mul(x)?.mul(&du)?
}

/// Layer norm over the last dimension of a (B, H) tensor with weight and bias (H,).
struct LayerNorm;

/// Per row: mean and 1 / sqrt(var + eps).
fn row_stats(x: &[f32], h: usize) -> impl Iterator<Item = (&[f32], f32, f32)> {
    x.chunks_exact(h).map(move |r| {
        let m = r.iter().sum::<f32>() / h as f32;
        let v = r.iter().map(|&a| (a - m) * (a - m)).sum::<f32>() / h as f32;
        (r, m, 1.0 / (v + LN_EPS as f32).sqrt())
    })
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "vf-layer-norm"
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
        let x = contiguous_f32(s1, l1, "layer norm")?;
        let g = contiguous_f32(s2, l2, "layer norm weight")?;
        let b = contiguous_f32(s3, l3, "layer norm bias")?;
        let h = g.len();
        let mut out = Vec::with_capacity(x.len());
        for (r, m, inv) in row_stats(x, h) {
            out.extend(
                r.iter()
                    .zip(g.iter().zip(b))
                    .map(|(&a, (&g, &b))| (a - m) * inv * g + b),
            );
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, xhat, inv) = layer_norm_composed(x, gamma, &gamma.zeros_like()?)?;
        let gg = grad.broadcast_mul(gamma)?;
        let dx = gg
            .broadcast_sub(&gg.mean_keepdim(D::Minus1)?)?
            .sub(&xhat.broadcast_mul(&gg.mul(&xhat)?.mean_keepdim(D::Minus1)?)?)?
            .broadcast_mul(&inv)?;
        let dgamma = grad.mul(&xhat)?.sum(0)?;
        let dbeta = grad.sum(0)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// (output, normalised input, 1 / std) from stock ops.
fn layer_norm_composed(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let inv = (xc.sqr()?.mean_keepdim(D::Minus1)? + LN_EPS)?
        .sqrt()?
        .recip()?;
    let xhat = xc.broadcast_mul(&inv)?;
    let y = xhat.broadcast_mul(gamma)?.broadcast_add(beta)?;
    Ok((y, xhat, inv))
}

/// Layer norm (PyTorch's eps 1e-5) of (B, H) rows; differentiable.
pub(crate) fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    if fast(x) && x.rank() == 2 {
        return x.contiguous()?.apply_op3(gamma, beta, LayerNorm);
    }
    Ok(layer_norm_composed(x, gamma, beta)?.0)
}

/// Tangent map of the layer norm at x (B, H) applied to tangents t (B, k, H):
/// `gamma / s (t_c - xhat mean(xhat t_c))`, `t_c = t - mean(t)`. Not differentiable.
struct LayerNormJvp;

impl CustomOp3 for LayerNormJvp {
    fn name(&self) -> &'static str {
        "vf-layer-norm-jvp"
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
        let x = contiguous_f32(s1, l1, "layer norm tangent")?;
        let t = contiguous_f32(s2, l2, "layer norm tangent")?;
        let g = contiguous_f32(s3, l3, "layer norm tangent")?;
        let h = g.len();
        let rows = x.len() / h;
        let k = t.len() / x.len();
        let mut out = vec![0f32; t.len()];
        let mut xhat = vec![0f32; h];
        for (i, (r, m, inv)) in row_stats(x, h).enumerate() {
            for (xh, &a) in xhat.iter_mut().zip(r) {
                *xh = (a - m) * inv;
            }
            for j in 0..k {
                let off = (i * k + j) * h;
                let tr = &t[off..off + h];
                let tm = tr.iter().sum::<f32>() / h as f32;
                let proj = tr
                    .iter()
                    .zip(&xhat)
                    .map(|(&a, &xh)| (a - tm) * xh)
                    .sum::<f32>()
                    / h as f32;
                for c in 0..h {
                    out[off + c] = g[c] * inv * (tr[c] - tm - xhat[c] * proj);
                }
            }
        }
        debug_assert_eq!(rows * k * h, out.len());
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }
}

/// Layer-norm output and the tangents pushed through it.
pub(crate) fn layer_norm_with_tangents(
    x: &Tensor,
    t: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
) -> Result<(Tensor, Tensor)> {
    if fast(x) && x.rank() == 2 {
        let x = x.contiguous()?;
        let y = x.apply_op3(gamma, beta, LayerNorm)?;
        let ty = x.apply_op3(&t.contiguous()?, gamma, LayerNormJvp)?;
        return Ok((y, ty));
    }
    let (y, xhat, inv) = layer_norm_composed(x, gamma, beta)?;
    let tc = t.broadcast_sub(&t.mean_keepdim(D::Minus1)?)?;
    let xh = xhat.unsqueeze(1)?;
    let proj = tc.broadcast_mul(&xh)?.mean_keepdim(D::Minus1)?;
    let ty = tc
        .sub(&xh.broadcast_mul(&proj)?)?
        .broadcast_mul(&inv.unsqueeze(1)?)?
        .broadcast_mul(gamma)?;
    Ok((y, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < tol, "max difference {d}");
    }

    #[test]
    fn fused_ops_match_composed_forms_and_autograd() {
        let (b, h) = (4, 6);
        let xv: Vec<f32> = (0..b * h)
            .map(|i| ((i as f32) * 0.71).sin() * 2.5)
            .collect();
        let x = Var::from_tensor(&t(xv.clone(), &[b, h])).unwrap();
        let gamma =
            Var::from_tensor(&t((0..h).map(|i| 1.0 + 0.1 * i as f32).collect(), &[h])).unwrap();
        let beta = Var::from_tensor(&t((0..h).map(|i| 0.05 * i as f32).collect(), &[h])).unwrap();
        let w = t(
            (0..b * h).map(|i| ((i as f32) * 0.3).cos()).collect(),
            &[b, h],
        );
        // Fused and composed forwards and gradients agree.
        let fused =
            (layer_norm(&gelu(x.as_tensor()).unwrap(), &gamma, &beta).unwrap() * &w).unwrap();
        let xd = x.as_tensor().to_dtype(DType::F64).unwrap();
        let (g64, b64) = (
            gamma.as_tensor().to_dtype(DType::F64).unwrap(),
            beta.as_tensor().to_dtype(DType::F64).unwrap(),
        );
        let composed = (layer_norm(&gelu(&xd).unwrap(), &g64, &b64).unwrap()
            * w.to_dtype(DType::F64).unwrap())
        .unwrap();
        close(&fused, &composed.to_dtype(DType::F32).unwrap(), 1e-5);
        let gf = fused.sum_all().unwrap().backward().unwrap();
        let x64 = Var::from_tensor(&xd).unwrap();
        let g64v = Var::from_tensor(&g64).unwrap();
        let b64v = Var::from_tensor(&b64).unwrap();
        let comp = (layer_norm(&gelu(x64.as_tensor()).unwrap(), &g64v, &b64v).unwrap()
            * w.to_dtype(DType::F64).unwrap())
        .unwrap();
        let gc = comp.sum_all().unwrap().backward().unwrap();
        for (vf, vc) in [
            (x.as_tensor(), x64.as_tensor()),
            (gamma.as_tensor(), g64v.as_tensor()),
            (beta.as_tensor(), b64v.as_tensor()),
        ] {
            close(
                gf.get(vf).unwrap(),
                &gc.get(vc).unwrap().to_dtype(DType::F32).unwrap(),
                1e-4,
            );
        }
        // Tangent map against the composed form.
        let tv = t(
            (0..b * 3 * h).map(|i| ((i as f32) * 0.13).sin()).collect(),
            &[b, 3, h],
        );
        let (y, ty) = layer_norm_with_tangents(x.as_tensor(), &tv, &gamma, &beta).unwrap();
        let (y2, ty2) =
            layer_norm_with_tangents(&xd, &tv.to_dtype(DType::F64).unwrap(), &g64, &b64).unwrap();
        close(&y, &y2.to_dtype(DType::F32).unwrap(), 1e-5);
        close(&ty, &ty2.to_dtype(DType::F32).unwrap(), 1e-5);
        close(
            &gelu_deriv(x.as_tensor()).unwrap(),
            &gelu_deriv(&xd).unwrap().to_dtype(DType::F32).unwrap(),
            1e-5,
        );
    }
}
