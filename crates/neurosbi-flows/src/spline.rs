//! Monotonic rational-quadratic spline with linear tails (Durkan et al. 2019, "Neural Spline
//! Flows", eqs. 4-8 and appendix A), as nflows' `unconstrained_rational_quadratic_spline`:
//! the spline maps `[-B, B]` onto itself and is the identity outside, with unit derivative at
//! both ends. Written with one-hot bin selection instead of gathers so candle's autograd
//! differentiates through it.

use candle_core::{D, DType, Result, Tensor};

use crate::nn::softplus;

/// nflows' defaults.
pub(crate) const MIN_BIN_WIDTH: f64 = 1e-3;
pub(crate) const MIN_BIN_HEIGHT: f64 = 1e-3;
pub(crate) const MIN_DERIVATIVE: f64 = 1e-3;

/// Knot positions (N, K+1) from unnormalised bin sizes (N, K), spanning `[-b, b]`.
fn knots(unnorm: &Tensor, min_size: f64, b: f64) -> Result<Tensor> {
    let k = unnorm.dim(D::Minus1)?;
    let sizes =
        ((candle_nn::ops::softmax(unnorm, D::Minus1)? * (1.0 - min_size * k as f64))? + min_size)?;
    // Cumulative sum as a product with a constant 0/1 matrix: entry (i, j) = [i < j].
    let mut tri = vec![0f32; k * (k + 1)];
    for i in 0..k {
        for j in (i + 1)..=k {
            tri[i * (k + 1) + j] = 1.0;
        }
    }
    let tri = Tensor::from_vec(tri, (k, k + 1), unnorm.device())?.to_dtype(unnorm.dtype())?;
    (crate::fastops::matmul(&sizes, &tri)? * (2.0 * b))? - b
}

/// Index of the bin holding `v` (N,) among knots (N, K+1), as a one-hot (N, K) constant.
fn one_hot_bin(v: &Tensor, knots: &Tensor) -> Result<Tensor> {
    let k = knots.dim(D::Minus1)? - 1;
    let interior = knots.narrow(1, 1, k - 1)?.detach();
    let bin = v
        .detach()
        .unsqueeze(1)?
        .broadcast_ge(&interior)?
        .to_dtype(DType::F32)?
        .sum(1)?;
    let ar = Tensor::arange(0u32, k as u32, v.device())?.to_dtype(DType::F32)?;
    bin.unsqueeze(1)?
        .broadcast_eq(&ar.unsqueeze(0)?)?
        .to_dtype(v.dtype())
}

fn pick(onehot: &Tensor, t: &Tensor) -> Result<Tensor> {
    (onehot * t)?.sum(1)
}

/// Transforms `x` (N,) with spline parameters `uw`, `uh` (N, K) and `ud` (N, K-1).
/// Returns (y, log|dy/dx|) when `inverse` is false, else (x, log|dx/dy|) for input y.
pub(crate) fn rq_spline(
    x: &Tensor,
    uw: &Tensor,
    uh: &Tensor,
    ud: &Tensor,
    bound: f64,
    inverse: bool,
) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    let k = uw.dim(1)?;
    let inside = x.ge(-bound)?.mul(&x.le(bound)?)?;
    let xc = x.clamp(-bound, bound)?;
    let cw = knots(uw, MIN_BIN_WIDTH, bound)?;
    let ch = knots(uh, MIN_BIN_HEIGHT, bound)?;
    // Boundary derivatives are exactly 1 so the linear tails join smoothly.
    let ones = Tensor::ones((n, 1), x.dtype(), x.device())?;
    let inner = (softplus(ud)? + MIN_DERIVATIVE)?;
    let derivs = Tensor::cat(&[&ones, &inner, &ones], 1)?;
    let onehot = if inverse {
        one_hot_bin(&xc, &ch)?
    } else {
        one_hot_bin(&xc, &cw)?
    };
    let lo_w = cw.narrow(1, 0, k)?;
    let lo_h = ch.narrow(1, 0, k)?;
    let xk = pick(&onehot, &lo_w)?;
    let wk = pick(&onehot, &(cw.narrow(1, 1, k)? - &lo_w)?)?;
    let yk = pick(&onehot, &lo_h)?;
    let hk = pick(&onehot, &(ch.narrow(1, 1, k)? - &lo_h)?)?;
    let dk = pick(&onehot, &derivs.narrow(1, 0, k)?)?;
    let dk1 = pick(&onehot, &derivs.narrow(1, 1, k)?)?;
    let s = (&hk / &wk)?;
    let dsum = ((&dk1 + &dk)? - (&s * 2.0)?)?;
    let (out, xi) = if !inverse {
        let xi = ((&xc - &xk)? / &wk)?;
        let xi1 = (&xi * (1.0 - &xi)?)?;
        let num = (&hk * ((&s * xi.sqr()?)? + (&dk * &xi1)?)?)?;
        let den = (&s + (&dsum * &xi1)?)?;
        ((&yk + (num / den)?)?, xi)
    } else {
        let dy = (&xc - &yk)?;
        let a = ((&hk * (&s - &dk)?)? + (&dy * &dsum)?)?;
        let b = ((&hk * &dk)? - (&dy * &dsum)?)?;
        let c = (&s * &dy)?.neg()?;
        let disc = (b.sqr()? - ((a * &c)? * 4.0)?)?.relu()?;
        // Citardauq form of the root, stable when a is near zero (nflows does the same).
        let xi = ((c * 2.0)? / (b.neg()? - disc.sqrt()?)?)?;
        (((&xi * &wk)? + &xk)?, xi)
    };
    let xi1 = (&xi * (1.0 - &xi)?)?;
    let den = (&s + (&dsum * &xi1)?)?;
    let dnum = (s.sqr()?
        * (((&dk1 * xi.sqr()?)? + ((&s * 2.0)? * &xi1)?)? + (&dk * (1.0 - &xi)?.sqr()?)?)?)?;
    let mut logdet = (dnum.log()? - (den.log()? * 2.0)?)?;
    if inverse {
        logdet = logdet.neg()?;
    }
    let y = inside.where_cond(&out, x)?;
    let logdet = inside.where_cond(&logdet, &logdet.zeros_like()?)?;
    Ok((y, logdet))
}
