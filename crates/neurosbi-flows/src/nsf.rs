//! Neural spline flow as built by sbi 0.27 `build_nsf`: rational-quadratic spline coupling
//! transforms (alternating masks, nflows' `ResidualNet` conditioner with 2 blocks and ReLU)
//! each followed by an LU-parametrised linear map initialised at the identity. For 1-D
//! inputs there is nothing to couple on, so the spline parameters come from the context
//! alone (sbi's `ContextSplineMap`: linear, ReLU, linear, ReLU, linear) and there is no LU
//! layer.

use candle_core::{CpuStorage, CustomOp3, D, Layout, Result, Shape, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::fused_spline::spline_forward;
use crate::nn::{Mlp, Params, ResidualNet, inv_softplus, softplus};
use crate::spline::rq_spline;

const LU_EPS: f64 = 1e-3;

#[derive(Clone)]
pub(crate) enum Conditioner {
    Residual(ResidualNet),
    ContextOnly(Mlp),
}

#[derive(Clone)]
pub(crate) struct Coupling {
    pub(crate) identity: Vec<u32>,
    pub(crate) transform: Vec<u32>,
    /// Column order that puts `[identity, transform]` back in place.
    unshuffle: Vec<u32>,
    pub(crate) net: Conditioner,
}

/// `y = L U x + b`, L unit lower triangular, U upper triangular with diagonal
/// softplus(.) + 1e-3 (nflows' `LULinear`).
#[derive(Clone)]
pub(crate) struct LuLinear {
    d: usize,
    pub(crate) lower: candle_core::Var,
    pub(crate) upper: candle_core::Var,
    pub(crate) diag: candle_core::Var,
    pub(crate) bias: candle_core::Var,
    lower_place: Tensor,
    upper_place: Tensor,
    diag_place: Tensor,
}

fn placement(d: usize, cells: &[(usize, usize)], p: &Params) -> Result<Tensor> {
    let mut m = vec![0f32; cells.len() * d * d];
    for (r, &(i, j)) in cells.iter().enumerate() {
        m[r * d * d + i * d + j] = 1.0;
    }
    Tensor::from_vec(m, (cells.len(), d * d), &p.device)?.to_dtype(p.dtype)
}

impl LuLinear {
    #[cfg(test)]
    fn new_for_test(p: &mut Params, d: usize) -> Self {
        Self::new(p, "lu", d).expect("layer")
    }

    fn new(p: &mut Params, name: &str, d: usize) -> Result<Self> {
        let m = d * (d - 1) / 2;
        let lower = p.with_values(format!("{name}.lower"), &[1, m], vec![0.0; m])?;
        let upper = p.with_values(format!("{name}.upper"), &[1, m], vec![0.0; m])?;
        let diag = p.with_values(
            format!("{name}.diag"),
            &[1, d],
            vec![inv_softplus(1.0 - LU_EPS) as f32; d],
        )?;
        let bias = p.with_values(format!("{name}.bias"), &[d], vec![0.0; d])?;
        let lower_cells: Vec<_> = (0..d).flat_map(|i| (0..i).map(move |j| (i, j))).collect();
        let upper_cells: Vec<_> = (0..d)
            .flat_map(|i| (i + 1..d).map(move |j| (i, j)))
            .collect();
        let diag_cells: Vec<_> = (0..d).map(|i| (i, i)).collect();
        Ok(Self {
            d,
            lower,
            upper,
            diag,
            bias,
            lower_place: placement(d, &lower_cells, p)?,
            upper_place: placement(d, &upper_cells, p)?,
            diag_place: placement(d, &diag_cells, p)?,
        })
    }

    /// Weight matrix W = L U (d, d) and log|det W|.
    fn weight(&self) -> Result<(Tensor, Tensor)> {
        let d = self.d;
        let dev = self.bias.device();
        if dev.is_cpu() && self.diag.dtype() == candle_core::DType::F32 {
            let out = self.lower.as_tensor().apply_op3(
                self.upper.as_tensor(),
                self.diag.as_tensor(),
                LuWeight { d },
            )?;
            return Ok((out.narrow(0, 0, d * d)?.reshape((d, d))?, out.get(d * d)?));
        }
        self.weight_graph()
    }

    /// [`Self::weight`] from candle ops (any device; the reference for the fused op).
    fn weight_graph(&self) -> Result<(Tensor, Tensor)> {
        let d = self.d;
        let dev = self.bias.device();
        let diag = (softplus(self.diag.as_tensor())? + LU_EPS)?;
        let eye = Tensor::eye(d, self.diag.dtype(), dev)?;
        let mm = crate::fastops::matmul;
        let l = (mm(self.lower.as_tensor(), &self.lower_place)?.reshape((d, d))? + eye)?;
        let u = (mm(self.upper.as_tensor(), &self.upper_place)? + mm(&diag, &self.diag_place)?)?
            .reshape((d, d))?;
        Ok((crate::fastops::matmul(&l, &u)?, diag.log()?.sum_all()?))
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (w, ld) = self.weight()?;
        let y = crate::fastops::matmul(x, &w.t()?)?.broadcast_add(self.bias.as_tensor())?;
        Ok((y, ld.broadcast_as(x.dim(0)?)?.contiguous()?))
    }

    /// Inverse for sampling: W is inverted on the host in f64 (d is small).
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let (w, _) = self.weight()?;
        let d = self.d;
        let w: Vec<f64> = w
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|&v| v as f64)
            .collect();
        let inv =
            invert(&w, d).ok_or_else(|| candle_core::Error::Msg("singular LU layer".into()))?;
        let inv = Tensor::from_vec(
            inv.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (d, d),
            y.device(),
        )?;
        crate::fastops::matmul(&y.broadcast_sub(self.bias.as_tensor())?, &inv.t()?)
    }
}

/// L (unit lower), U (upper with softplus(diag) + eps on the diagonal), both row-major,
/// of an LU layer of dimension `d` from its raw parameters.
pub(crate) fn lu_factors(
    d: usize,
    lower: &[f32],
    upper: &[f32],
    diag: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut l = vec![0f32; d * d];
    let mut u = vec![0f32; d * d];
    let (mut a, mut b) = (0, 0);
    for i in 0..d {
        l[i * d + i] = 1.0;
        for j in 0..i {
            l[i * d + j] = lower[a];
            a += 1;
        }
        u[i * d + i] = crate::fused_maf::softplus(diag[i]) + LU_EPS as f32;
        for j in i + 1..d {
            u[i * d + j] = upper[b];
            b += 1;
        }
    }
    (l, u)
}

/// Gradients of the raw parameters (lower, upper, diag) of an LU layer from those of its
/// weight W = L U (`gw`, row-major d x d) and of log|det W| (`glog`).
pub(crate) fn lu_grads(
    d: usize,
    (l, u): (&[f32], &[f32]),
    diag: &[f32],
    gw: &[f32],
    glog: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // W = L U: dL = dW U^T, dU = L^T dW.
    let dl = |i: usize, j: usize| (0..d).map(|k| gw[i * d + k] * u[j * d + k]).sum::<f32>();
    let du = |i: usize, j: usize| (0..d).map(|k| l[k * d + i] * gw[k * d + j]).sum::<f32>();
    let m = d * (d - 1) / 2;
    let mut g_lower = Vec::with_capacity(m);
    let mut g_upper = Vec::with_capacity(m);
    let mut g_diag = Vec::with_capacity(d);
    for i in 0..d {
        for j in 0..i {
            g_lower.push(dl(i, j));
        }
        let uii = u[i * d + i];
        g_diag.push((du(i, i) + glog / uii) * crate::fused_maf::sigmoid(diag[i]));
        for j in i + 1..d {
            g_upper.push(du(i, j));
        }
    }
    (g_lower, g_upper, g_diag)
}

/// `(lower (1, m), upper (1, m), diag (1, d)) -> (d * d + 1,)`: W = L U row-major, then
/// log|det W|, in one pass with an analytic backward. As a graph this is ~20 tiny ops per
/// layer and call (placements, softplus, eye, products), a large share of an NSF step in 2-D.
struct LuWeight {
    d: usize,
}

impl LuWeight {
    fn slices<'a>(s: &'a CpuStorage, l: &Layout, n: usize, what: &str) -> Result<&'a [f32]> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("lu weight: {what} must be f32")
        };
        match l.contiguous_offsets() {
            Some((a, b)) if b - a == n => Ok(&v[a..b]),
            _ => candle_core::bail!("lu weight: {what} must be contiguous with {n} values"),
        }
    }
}

impl CustomOp3 for LuWeight {
    fn name(&self) -> &'static str {
        "lu-weight"
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
        let d = self.d;
        let m = d * (d - 1) / 2;
        let lower = Self::slices(s1, l1, m, "lower")?;
        let upper = Self::slices(s2, l2, m, "upper")?;
        let diag = Self::slices(s3, l3, d, "diag")?;
        let (l, u) = lu_factors(d, lower, upper, diag);
        let mut out = vec![0f32; d * d + 1];
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] = (0..d).map(|k| l[i * d + k] * u[k * d + j]).sum();
            }
            out[d * d] += u[i * d + i].ln();
        }
        Ok((CpuStorage::F32(out), Shape::from(d * d + 1)))
    }

    fn bwd(
        &self,
        lower: &Tensor,
        upper: &Tensor,
        diag: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.d;
        let lv = lower.flatten_all()?.to_vec1::<f32>()?;
        let uv = upper.flatten_all()?.to_vec1::<f32>()?;
        let dv = diag.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let (l, u) = lu_factors(d, &lv, &uv, &dv);
        let (g_lower, g_upper, g_diag) = lu_grads(d, (&l, &u), &dv, &g[..d * d], g[d * d]);
        let t = |v: Vec<f32>, like: &Tensor| Tensor::from_vec(v, like.shape(), like.device());
        Ok((
            Some(t(g_lower, lower)?),
            Some(t(g_upper, upper)?),
            Some(t(g_diag, diag)?),
        ))
    }
}

/// Gauss-Jordan inverse with partial pivoting of a row-major d x d matrix.
pub(crate) fn invert(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; d * d];
    for i in 0..d {
        inv[i * d + i] = 1.0;
    }
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| m[i * d + c].abs().total_cmp(&m[j * d + c].abs()))?;
        if m[p * d + c].abs() < 1e-300 {
            return None;
        }
        for j in 0..d {
            m.swap(c * d + j, p * d + j);
            inv.swap(c * d + j, p * d + j);
        }
        let piv = m[c * d + c];
        for j in 0..d {
            m[c * d + j] /= piv;
            inv[c * d + j] /= piv;
        }
        for i in 0..d {
            if i != c {
                let f = m[i * d + c];
                for j in 0..d {
                    m[i * d + j] -= f * m[c * d + j];
                    inv[i * d + j] -= f * inv[c * d + j];
                }
            }
        }
    }
    Some(inv)
}

/// Stack of spline couplings and LU layers.
#[derive(Clone)]
pub(crate) struct Nsf {
    pub(crate) layers: Vec<(Coupling, Option<LuLinear>)>,
    pub(crate) num_bins: usize,
    pub(crate) bound: f64,
    /// nflows divides the width and height logits by sqrt(hidden features).
    pub(crate) logit_scale: f64,
}

impl Nsf {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        p: &mut Params,
        d: usize,
        d_ctx: usize,
        hidden: usize,
        num_transforms: usize,
        num_bins: usize,
        bound: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let per_dim = 3 * num_bins - 1;
        let mut layers = Vec::new();
        for t in 0..num_transforms {
            let name = format!("nsf.{t}");
            let (identity, transform): (Vec<u32>, Vec<u32>) = if d == 1 {
                (vec![], vec![0])
            } else {
                // sbi's create_alternating_binary_mask(even = t % 2 == 0): features
                // t%2, t%2 + 2, ... are transformed.
                let all: Vec<u32> = (0..d as u32).collect();
                let (tr, id): (Vec<u32>, Vec<u32>) =
                    all.iter().partition(|&&i| (i as usize) % 2 == t % 2);
                (id, tr)
            };
            let net = if d == 1 {
                Conditioner::ContextOnly(Mlp::new(p, &name, d_ctx, hidden, 2, per_dim, rng)?)
            } else {
                Conditioner::Residual(ResidualNet::new(
                    p,
                    &name,
                    identity.len(),
                    d_ctx,
                    hidden,
                    2,
                    transform.len() * per_dim,
                    rng,
                )?)
            };
            let order: Vec<u32> = identity.iter().chain(transform.iter()).copied().collect();
            let mut unshuffle = vec![0u32; d];
            for (pos, &f) in order.iter().enumerate() {
                unshuffle[f as usize] = pos as u32;
            }
            let lu = if d > 1 {
                Some(LuLinear::new(p, &format!("{name}.lu"), d)?)
            } else {
                None
            };
            layers.push((
                Coupling {
                    identity,
                    transform,
                    unshuffle,
                    net,
                },
                lu,
            ));
        }
        Ok(Self {
            layers,
            num_bins,
            bound,
            logit_scale: 1.0 / (hidden as f64).sqrt(),
        })
    }

    fn coupling(
        &self,
        c: &Coupling,
        x: &Tensor,
        ctx: Option<&Tensor>,
        inverse: bool,
    ) -> Result<(Tensor, Tensor)> {
        let dev = x.device();
        let n = x.dim(0)?;
        let k = self.num_bins;
        let idx = |v: &[u32]| Tensor::from_vec(v.to_vec(), v.len(), dev);
        let xt = x.index_select(&idx(&c.transform)?, 1)?;
        let nt = c.transform.len();
        let params = match &c.net {
            Conditioner::ContextOnly(mlp) => match ctx {
                Some(cx) => mlp.forward(cx)?,
                None => mlp.forward(&Tensor::zeros((n, 0), x.dtype(), dev)?)?,
            },
            Conditioner::Residual(net) => {
                net.forward(&x.index_select(&idx(&c.identity)?, 1)?, ctx)?
            }
        };
        let params = params.reshape((n * nt, 3 * k - 1))?;
        let fused = !inverse && dev.is_cpu() && x.dtype() == candle_core::DType::F32;
        let (yt, ld) = if fused {
            spline_forward(&xt.flatten_all()?, &params, k, self.bound, self.logit_scale)?
        } else {
            let uw = (params.narrow(1, 0, k)? * self.logit_scale)?;
            let uh = (params.narrow(1, k, k)? * self.logit_scale)?;
            let ud = params.narrow(1, 2 * k, k - 1)?;
            rq_spline(&xt.flatten_all()?, &uw, &uh, &ud, self.bound, inverse)?
        };
        let yt = yt.reshape((n, nt))?;
        let ld = ld.reshape((n, nt))?.sum(D::Minus1)?;
        let y = if c.identity.is_empty() {
            yt
        } else {
            let xi = x.index_select(&idx(&c.identity)?, 1)?;
            Tensor::cat(&[&xi, &yt], 1)?.index_select(&idx(&c.unshuffle)?, 1)?
        };
        Ok((y, ld))
    }

    /// Data to base space: (z, log|det J|).
    pub(crate) fn forward(&self, x: &Tensor, ctx: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let mut z = x.clone();
        let mut logdet = Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?;
        for (c, lu) in &self.layers {
            let (y, ld) = self.coupling(c, &z, ctx, false)?;
            logdet = (logdet + ld)?;
            z = y;
            if let Some(lu) = lu {
                let (y, ld) = lu.forward(&z)?;
                logdet = (logdet + ld)?;
                z = y;
            }
        }
        Ok((z, logdet))
    }

    /// Base space to data space.
    pub(crate) fn inverse(&self, z: &Tensor, ctx: Option<&Tensor>) -> Result<Tensor> {
        let mut x = z.clone();
        for (c, lu) in self.layers.iter().rev() {
            if let Some(lu) = lu {
                x = lu.inverse(&x)?;
            }
            x = self.coupling(c, &x, ctx, true)?.0;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn fused_lu_weight_matches_the_graph_and_its_gradients() {
        for d in [2usize, 3, 5] {
            let mut p = Params::new(&candle_core::Device::Cpu);
            let lu = LuLinear::new_for_test(&mut p, d);
            let mut rng = ChaCha8Rng::seed_from_u64(d as u64);
            for (_, v) in &p.vars {
                let vals: Vec<f32> = (0..v.elem_count())
                    .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                    .collect();
                v.set(&Tensor::from_vec(vals, v.shape(), &candle_core::Device::Cpu).unwrap())
                    .unwrap();
            }
            let cot: Vec<f32> = (0..d * d).map(|_| rng.random::<f32>() - 0.5).collect();
            let cot = Tensor::from_vec(cot, (d, d), &candle_core::Device::Cpu).unwrap();
            let run = |(w, ld): (Tensor, Tensor)| {
                let obj = ((&w * &cot).unwrap().sum_all().unwrap() + (&ld * 0.7).unwrap()).unwrap();
                let g = obj.backward().unwrap();
                let grads: Vec<Vec<f32>> = p
                    .vars
                    .iter()
                    .filter_map(|(_, v)| g.get(v.as_tensor()))
                    .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                    .collect();
                (
                    w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    ld.to_scalar::<f32>().unwrap(),
                    grads,
                )
            };
            let (w1, l1, g1) = run(lu.weight().unwrap());
            let (w2, l2, g2) = run(lu.weight_graph().unwrap());
            assert_eq!(g1.len(), 3, "lower, upper and diag get gradients");
            assert_eq!(g1.len(), g2.len());
            for (a, b) in w1.iter().zip(&w2) {
                assert!((a - b).abs() < 1e-5, "d {d}: W {a} vs graph {b}");
            }
            assert!((l1 - l2).abs() < 1e-5, "d {d}: log det {l1} vs graph {l2}");
            for (ga, gb) in g1.iter().zip(&g2) {
                for (a, b) in ga.iter().zip(gb) {
                    assert!((a - b).abs() < 1e-5, "d {d}: gradient {a} vs graph {b}");
                }
            }
        }
    }
}
