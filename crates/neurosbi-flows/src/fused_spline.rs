//! The forward rational-quadratic spline of [`crate::spline`] as one candle custom op on
//! the CPU, with an analytic backward.
//!
//! Why by hand: as a graph the spline is ~60 small ops forward and twice that backward
//! (softmax, cumulative sums, one-hot bin selection), which dominates a neural spline flow's
//! training step; here it is one pass over the rows each way. Same maths and constants as
//! [`crate::spline::rq_spline`] (nflows' minimum bin sizes and derivative, linear tails);
//! tests compare values and gradients with candle's autograd of that graph.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::fused_maf::{sigmoid, softplus};
use crate::spline::{MIN_BIN_HEIGHT, MIN_BIN_WIDTH, MIN_DERIVATIVE};

/// `(x (N,), params (N, 3K-1)) -> (N, 2)` holding `[y, log|dy/dx|]`; `params` are the raw
/// conditioner outputs: K width and K height logits (multiplied by `logit_scale` here) and
/// K-1 unconstrained inner derivatives.
pub(crate) struct SplineForward {
    pub(crate) bins: usize,
    pub(crate) bound: f32,
    pub(crate) logit_scale: f32,
}

/// Normalised bin sizes from logits: softmax * (1 - K min) + min, with the softmax kept.
fn sizes(logits: &[f32], scale: f32, min: f32, out: &mut [f32], soft: &mut [f32]) {
    let mx = logits
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
    let mut sum = 0f32;
    for (s, &v) in soft.iter_mut().zip(logits) {
        *s = (v * scale - mx).exp();
        sum += *s;
    }
    let k = logits.len() as f32;
    for (o, s) in out.iter_mut().zip(soft.iter_mut()) {
        *s /= sum;
        *o = *s * (1.0 - min * k) + min;
    }
}

/// Per-thread buffers of the per-row functions (bin sizes, softmaxes, size gradients), so
/// that rows allocate nothing.
pub(crate) struct Scratch {
    w: Vec<f32>,
    h: Vec<f32>,
    soft_w: Vec<f32>,
    soft_h: Vec<f32>,
    gw: Vec<f32>,
    gh: Vec<f32>,
}

impl Scratch {
    pub(crate) fn new(bins: usize) -> Self {
        let v = || vec![0f32; bins];
        Self {
            w: v(),
            h: v(),
            soft_w: v(),
            soft_h: v(),
            gw: v(),
            gh: v(),
        }
    }
}

/// Everything about one row that the backward pass needs.
pub(crate) struct Row {
    inside: bool,
    bin: usize,
    xi: f32,
    s: f32,
    wk: f32,
    hk: f32,
    dk: f32,
    dk1: f32,
    pub(crate) y: f32,
    pub(crate) logdet: f32,
}

impl SplineForward {
    /// Evaluates one row; fills the scratch's bin sizes and their softmaxes.
    pub(crate) fn row(&self, x: f32, p: &[f32], sc: &mut Scratch) -> Row {
        let (k, b) = (self.bins, self.bound);
        sizes(
            &p[..k],
            self.logit_scale,
            MIN_BIN_WIDTH as f32,
            &mut sc.w,
            &mut sc.soft_w,
        );
        sizes(
            &p[k..2 * k],
            self.logit_scale,
            MIN_BIN_HEIGHT as f32,
            &mut sc.h,
            &mut sc.soft_h,
        );
        let (w, h) = (&sc.w, &sc.h);
        if !(x >= -b && x <= b) {
            return Row {
                inside: false,
                bin: 0,
                xi: 0.0,
                s: 0.0,
                wk: 0.0,
                hk: 0.0,
                dk: 0.0,
                dk1: 0.0,
                y: x,
                logdet: 0.0,
            };
        }
        // Knots as the graph builds them (cumulative sums scaled to [-B, B]); the bin is
        // the number of interior knots at or below x.
        let mut bin = 0;
        let mut cw = 0f32;
        let mut xk = -b;
        for j in 1..k {
            cw += w[j - 1];
            let knot = cw * (2.0 * b) - b;
            if x >= knot {
                bin = j;
                xk = knot;
            }
        }
        let ch: f32 = h[..bin].iter().sum();
        let yk = ch * (2.0 * b) - b;
        let wk = (cw_at(w, bin + 1) * (2.0 * b) - b) - xk;
        let hk = ((ch + h[bin]) * (2.0 * b) - b) - yk;
        let deriv = |j: usize| {
            if j == 0 || j == k {
                1.0
            } else {
                softplus(p[2 * k + j - 1]) + MIN_DERIVATIVE as f32
            }
        };
        let (dk, dk1) = (deriv(bin), deriv(bin + 1));
        let s = hk / wk;
        let xi = (x - xk) / wk;
        let xi1 = xi * (1.0 - xi);
        let dsum = dk1 + dk - 2.0 * s;
        let num = hk * (s * xi * xi + dk * xi1);
        let den = s + dsum * xi1;
        let dnum = s * s * (dk1 * xi * xi + 2.0 * s * xi1 + dk * (1.0 - xi) * (1.0 - xi));
        Row {
            inside: true,
            bin,
            xi,
            s,
            wk,
            hk,
            dk,
            dk1,
            y: yk + num / den,
            logdet: dnum.ln() - 2.0 * den.ln(),
        }
    }

    /// The backward pass of one row: given the gradients `gy` and `gl` of y and
    /// log|dy/dx|, writes the gradient of the row's raw parameters into `out` (3K-1) and
    /// returns that of x.
    pub(crate) fn row_backward(
        &self,
        x: f32,
        p: &[f32],
        gy: f32,
        gl: f32,
        sc: &mut Scratch,
        out: &mut [f32],
    ) -> f32 {
        let (k, b) = (self.bins, self.bound);
        let r = self.row(x, p, sc);
        if !r.inside {
            out.fill(0.0);
            return gy;
        }
        let Row {
            bin,
            xi,
            s,
            wk,
            hk,
            dk,
            dk1,
            ..
        } = r;
        let xi1 = xi * (1.0 - xi);
        let dsum = dk1 + dk - 2.0 * s;
        let num_n = s * xi * xi + dk * xi1;
        let den = s + dsum * xi1;
        let m = dk1 * xi * xi + 2.0 * s * xi1 + dk * (1.0 - xi) * (1.0 - xi);
        // y = yk + hk N / den
        let dy_dn = hk / den;
        let dy_dden = -hk * num_n / (den * den);
        let g_s = gy * (dy_dn * xi * xi + dy_dden * (1.0 - 2.0 * xi1))
            + gl * (2.0 / s + 2.0 * xi1 / m - 2.0 * (1.0 - 2.0 * xi1) / den);
        let g_xi = gy
            * (dy_dn * (2.0 * s * xi + dk * (1.0 - 2.0 * xi)) + dy_dden * dsum * (1.0 - 2.0 * xi))
            + gl * ((2.0 * dk1 * xi + 2.0 * s * (1.0 - 2.0 * xi) - 2.0 * dk * (1.0 - xi)) / m
                - 2.0 * dsum * (1.0 - 2.0 * xi) / den);
        let g_dk =
            gy * (dy_dn + dy_dden) * xi1 + gl * ((1.0 - xi) * (1.0 - xi) / m - 2.0 * xi1 / den);
        let g_dk1 = gy * dy_dden * xi1 + gl * (xi * xi / m - 2.0 * xi1 / den);
        let mut g_hk = gy * num_n / den + g_s / wk;
        let mut g_wk = -g_s * hk / (wk * wk) - g_xi * xi / wk;
        let g_xk = -g_xi / wk;
        let g_yk = gy;
        let gx = g_xi / wk;
        // Knot sums: xk = 2B sum_{j<bin} w_j - B, wk = 2B w_bin (likewise heights).
        g_hk *= 2.0 * b;
        g_wk *= 2.0 * b;
        for j in 0..k {
            sc.gw[j] = if j < bin { 2.0 * b * g_xk } else { 0.0 };
            sc.gh[j] = if j < bin { 2.0 * b * g_yk } else { 0.0 };
        }
        sc.gw[bin] += g_wk;
        sc.gh[bin] += g_hk;
        for (g, soft, min, off) in [
            (&sc.gw, &sc.soft_w, MIN_BIN_WIDTH as f32, 0),
            (&sc.gh, &sc.soft_h, MIN_BIN_HEIGHT as f32, k),
        ] {
            // Through size = softmax * (1 - K min) + min and the logit scale.
            let dot: f32 = g.iter().zip(soft.iter()).map(|(a, c)| a * c).sum();
            let f = (1.0 - min * k as f32) * self.logit_scale;
            for j in 0..k {
                out[off + j] = f * soft[j] * (g[j] - dot);
            }
        }
        out[2 * k..].fill(0.0);
        if bin >= 1 {
            out[2 * k + bin - 1] += g_dk * sigmoid(p[2 * k + bin - 1]);
        }
        if bin < k - 1 {
            out[2 * k + bin] += g_dk1 * sigmoid(p[2 * k + bin]);
        }
        gx
    }

    fn check(&self, l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
        let n = l1.shape().elem_count();
        let (n2, width) = l2.shape().dims2()?;
        if n2 != n || width != 3 * self.bins - 1 {
            candle_core::bail!(
                "spline: {n} inputs with parameters {:?} (expected ({n}, {}))",
                l2.shape(),
                3 * self.bins - 1
            );
        }
        let (Some((s1, _)), Some((s2, _))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("spline: inputs must be contiguous")
        };
        Ok((n, s1, s2))
    }
}

/// Sum of the first `j` bin sizes.
fn cw_at(w: &[f32], j: usize) -> f32 {
    w[..j].iter().sum()
}

impl CustomOp2 for SplineForward {
    fn name(&self) -> &'static str {
        "rq-spline-forward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(p)) = (s1, s2) else {
            candle_core::bail!("spline: f32 only")
        };
        let (n, o1, o2) = self.check(l1, l2)?;
        let (k, width) = (self.bins, 3 * self.bins - 1);
        let mut sc = Scratch::new(k);
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            let r = self.row(x[o1 + i], &p[o2 + i * width..o2 + (i + 1) * width], &mut sc);
            out.push(r.y);
            out.push(r.logdet);
        }
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (k, width) = (self.bins, 3 * self.bins - 1);
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ps = params.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let n = xs.len();
        let mut gx = vec![0f32; n];
        let mut gp = vec![0f32; n * width];
        let mut sc = Scratch::new(k);
        for i in 0..n {
            gx[i] = self.row_backward(
                xs[i],
                &ps[i * width..(i + 1) * width],
                gs[2 * i],
                gs[2 * i + 1],
                &mut sc,
                &mut gp[i * width..(i + 1) * width],
            );
        }
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), x.device())?),
            Some(Tensor::from_vec(gp, params.shape(), params.device())?),
        ))
    }
}

/// `(y, log|dy/dx|)` of the forward spline for `x` (N,) and raw `params` (N, 3K-1), through
/// the fused op; callers check that the tensors are f32 on the CPU.
pub(crate) fn spline_forward(
    x: &Tensor,
    params: &Tensor,
    bins: usize,
    bound: f64,
    logit_scale: f64,
) -> Result<(Tensor, Tensor)> {
    let out = x.contiguous()?.apply_op2(
        &params.contiguous()?,
        SplineForward {
            bins,
            bound: bound as f32,
            logit_scale: logit_scale as f32,
        },
    )?;
    Ok((
        out.narrow(1, 0, 1)?.squeeze(1)?,
        out.narrow(1, 1, 1)?.squeeze(1)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spline::rq_spline;
    use candle_core::{Device, Var};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn values_and_gradients_match_the_graph() {
        let (n, k, bound, scale) = (400usize, 10usize, 3.0f64, 0.14f64);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Inputs inside, outside and on the boundary; logits large enough to matter.
        let mut xs: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 8.0 - 4.0).collect();
        xs[0] = 3.0;
        xs[1] = -3.0;
        let ps: Vec<f32> = (0..n * (3 * k - 1))
            .map(|_| rng.random::<f32>() * 6.0 - 3.0)
            .collect();
        let dev = Device::Cpu;
        let x = Var::from_vec(xs, n, &dev).unwrap();
        let p = Var::from_vec(ps, (n, 3 * k - 1), &dev).unwrap();
        // Random cotangents for y and log det so both gradients are exercised.
        let cy: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
        let cl: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
        let cy = Tensor::from_vec(cy, n, &dev).unwrap();
        let cl = Tensor::from_vec(cl, n, &dev).unwrap();
        let objective = |y: &Tensor, l: &Tensor| {
            ((y * &cy).unwrap().sum_all().unwrap() + (l * &cl).unwrap().sum_all().unwrap()).unwrap()
        };
        let (yf, lf) = spline_forward(x.as_tensor(), p.as_tensor(), k, bound, scale).unwrap();
        let gf = objective(&yf, &lf).backward().unwrap();
        let pt = p.as_tensor();
        let uw = (pt.narrow(1, 0, k).unwrap() * scale).unwrap();
        let uh = (pt.narrow(1, k, k).unwrap() * scale).unwrap();
        let ud = pt.narrow(1, 2 * k, k - 1).unwrap();
        let (yg, lg) = rq_spline(x.as_tensor(), &uw, &uh, &ud, bound, false).unwrap();
        let gg = objective(&yg, &lg).backward().unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (u, w)) in a.iter().zip(b).enumerate() {
                assert!(
                    (u - w).abs() < 2e-4 * scale,
                    "{what}[{i}]: {u} vs graph {w}"
                );
            }
        };
        close(&v(&yf), &v(&yg), "y");
        close(&v(&lf), &v(&lg), "logdet");
        // At x = +-B exactly the graph's clamp splits the gradient between its two sides
        // (an artefact of the tie); compare dx away from those two points.
        close(
            &v(gf.get(x.as_tensor()).unwrap())[2..],
            &v(gg.get(x.as_tensor()).unwrap())[2..],
            "dx",
        );
        close(
            &v(gf.get(p.as_tensor()).unwrap()),
            &v(gg.get(p.as_tensor()).unwrap()),
            "dparams",
        );
    }
}
