//! Maximum-likelihood training step of the neural spline flow as one native kernel: the
//! residual conditioners, the rational-quadratic splines and the LU layers, forward and
//! backward, without a candle graph.
//!
//! Why by hand: the graph step of this net is ~300 small ops per transform (the conditioner's
//! products, gathers, concatenations, the spline's custom op, the LU products) whose dispatch
//! and allocation cost more than their arithmetic at the batch sizes of NPE (PERFORMANCE.md);
//! it was 10x slower per epoch than the native MAF. Batching, thread chunks and the APT loss
//! are [`NativeFlow`]'s, shared with [`crate::fused_maf::FusedMaf`]. The maths is that of
//! [`crate::nsf`]; tests compare loss and gradients with candle's autograd of that graph.

use candle_core::Result;

use crate::fused_maf::{
    Grads, HostLinear, Mode, NativeFlow, add_colsum, base_gaussian, mm, sigmoid, simd_pass, slot,
    tile, var_index,
};
use crate::fused_spline::{Scratch, SplineForward};
use crate::nn::Params;
use crate::nsf::{Conditioner, LuLinear, Nsf, lu_factors, lu_grads};

/// An LU layer's weight W = L U, its factors and log|det W|, on the host.
struct HostLu {
    d: usize,
    lower_var: usize,
    upper_var: usize,
    diag_var: usize,
    bias_var: usize,
    diag_raw: Vec<f32>,
    l: Vec<f32>,
    u: Vec<f32>,
    w: Vec<f32>,
    logdet: f32,
    bias: Vec<f32>,
}

impl HostLu {
    fn read(lu: &LuLinear, params: &Params, d: usize) -> Result<Self> {
        let idx = |v: &candle_core::Var| var_index(params, v.as_tensor().id());
        let mut out = Self {
            d,
            lower_var: idx(&lu.lower)?,
            upper_var: idx(&lu.upper)?,
            diag_var: idx(&lu.diag)?,
            bias_var: idx(&lu.bias)?,
            diag_raw: Vec::new(),
            l: Vec::new(),
            u: Vec::new(),
            w: Vec::new(),
            logdet: 0.0,
            bias: Vec::new(),
        };
        let host = |v: &candle_core::Var| v.as_tensor().flatten_all()?.to_vec1::<f32>();
        out.set(
            &host(&lu.lower)?,
            &host(&lu.upper)?,
            &host(&lu.diag)?,
            &host(&lu.bias)?,
        );
        Ok(out)
    }

    fn load(&mut self, host: &[Vec<f32>]) {
        let [lower, upper, diag, bias] =
            [self.lower_var, self.upper_var, self.diag_var, self.bias_var].map(|i| &host[i]);
        self.set(lower, upper, diag, bias);
    }

    /// Recomputes W and log|det W| from the raw parameters, in the order of the graph's
    /// fused LU op (so both round alike).
    fn set(&mut self, lower: &[f32], upper: &[f32], diag: &[f32], bias: &[f32]) {
        let d = self.d;
        let (l, u) = lu_factors(d, lower, upper, diag);
        self.w = vec![0f32; d * d];
        self.logdet = 0.0;
        for i in 0..d {
            for j in 0..d {
                self.w[i * d + j] = (0..d).map(|k| l[i * d + k] * u[k * d + j]).sum();
            }
            self.logdet += u[i * d + i].ln();
        }
        (self.l, self.u) = (l, u);
        self.diag_raw = diag.to_vec();
        self.bias = bias.to_vec();
    }
}

/// One residual block: ReLU, linear, ReLU, linear, times a context gate.
struct HostBlock {
    l0: HostLinear,
    l1: HostLinear,
    gate: Option<HostLinear>,
}

/// One spline coupling transform, its residual conditioner and the LU layer after it.
struct HostCoupling {
    identity: Vec<usize>,
    transform: Vec<usize>,
    initial: HostLinear,
    blocks: Vec<HostBlock>,
    last: HostLinear,
    lu: HostLu,
}

/// Activations of one residual block kept for the backward pass.
struct SavedBlock {
    h_in: Vec<f32>,
    a: Vec<f32>,
    a2: Vec<f32>,
    t2: Vec<f32>,
    gate: Option<Vec<f32>>,
}

/// Activations of one transform kept for the backward pass.
struct SavedLayer {
    z_in: Vec<f32>,
    inp: Vec<f32>,
    blocks: Vec<SavedBlock>,
    h_top: Vec<f32>,
    params: Vec<f32>,
    mid: Vec<f32>,
}

/// A snapshot of an NSF's weights on the host (coupling NSFs only: 2 or more inputs), able
/// to evaluate the negative log-likelihood of standardised rows and its gradient.
pub(crate) struct FusedNsf {
    d: usize,
    k: usize,
    layers: Vec<HostCoupling>,
    spline: SplineForward,
    /// 0.5 d ln(2 pi), the base Gaussian's normaliser.
    gauss_norm: f32,
    /// Sum of ln std of the inputs (the standardisation's log-Jacobian).
    log_std_sum: f32,
    n_vars: usize,
    var_sizes: Vec<usize>,
}

impl FusedNsf {
    /// Reads the current weights of `nsf` (inputs of dimension `d` >= 2, context `d_ctx`;
    /// all its parameters must be in `params`). `log_std_sum` is the log-Jacobian of the
    /// inputs' standardisation.
    pub(crate) fn new(
        nsf: &Nsf,
        params: &Params,
        d: usize,
        d_ctx: usize,
        log_std_sum: f64,
    ) -> Result<Self> {
        let mut layers = Vec::new();
        for (c, lu) in &nsf.layers {
            let (Conditioner::Residual(net), Some(lu)) = (&c.net, lu) else {
                candle_core::bail!("native nsf: only coupling transforms (2 or more inputs)")
            };
            let read = |l| HostLinear::read(l, None, params);
            layers.push(HostCoupling {
                identity: c.identity.iter().map(|&i| i as usize).collect(),
                transform: c.transform.iter().map(|&i| i as usize).collect(),
                initial: read(&net.initial)?,
                blocks: net
                    .blocks
                    .iter()
                    .map(|(l0, l1, g)| {
                        Ok(HostBlock {
                            l0: read(l0)?,
                            l1: read(l1)?,
                            gate: g.as_ref().map(read).transpose()?,
                        })
                    })
                    .collect::<Result<_>>()?,
                last: read(&net.last)?,
                lu: HostLu::read(lu, params, d)?,
            });
        }
        Ok(Self {
            d,
            k: d_ctx,
            layers,
            spline: SplineForward {
                bins: nsf.num_bins,
                bound: nsf.bound as f32,
                logit_scale: nsf.logit_scale as f32,
            },
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
        let m = z.len() / d;
        let p = 3 * self.spline.bins - 1;
        let mut sc = Scratch::new(self.spline.bins);
        let mut logdet = vec![0f32; m];
        let mut saved = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let nt = l.transform.len();
            let ni = l.identity.len() + k;
            let mut inp = Vec::with_capacity(m * ni);
            for r in 0..m {
                inp.extend(l.identity.iter().map(|&i| z[r * d + i]));
                inp.extend_from_slice(&ctx[r * k..(r + 1) * k]);
            }
            let hd = l.initial.n_out;
            let mut h = tile(&l.initial.b, m);
            mm(
                m,
                hd,
                ni,
                &mut h,
                true,
                &inp,
                (ni, 1),
                &l.initial.w,
                (hd, 1),
            );
            let mut blocks = Vec::with_capacity(l.blocks.len());
            for b in &l.blocks {
                let a: Vec<f32> = h.iter().map(|v| v.max(0.0)).collect();
                let mut a2 = tile(&b.l0.b, m);
                mm(m, hd, hd, &mut a2, true, &a, (hd, 1), &b.l0.w, (hd, 1));
                a2.iter_mut().for_each(|v| *v = v.max(0.0));
                let mut t2 = tile(&b.l1.b, m);
                mm(m, hd, hd, &mut t2, true, &a2, (hd, 1), &b.l1.w, (hd, 1));
                let gate = b.gate.as_ref().map(|gl| {
                    let mut g = tile(&gl.b, m);
                    mm(m, hd, k, &mut g, true, &ctx, (k, 1), &gl.w, (hd, 1));
                    g.iter_mut().for_each(|v| *v = sigmoid(*v));
                    g
                });
                let h_in = h.clone();
                match &gate {
                    Some(g) => {
                        for ((hv, t), gv) in h.iter_mut().zip(&t2).zip(g) {
                            *hv += t * gv;
                        }
                    }
                    None => h.iter_mut().zip(&t2).for_each(|(hv, t)| *hv += t),
                }
                blocks.push(SavedBlock {
                    h_in,
                    a,
                    a2,
                    t2,
                    gate,
                });
            }
            let no = l.last.n_out;
            let mut params = tile(&l.last.b, m);
            mm(
                m,
                no,
                hd,
                &mut params,
                true,
                &h,
                (hd, 1),
                &l.last.w,
                (no, 1),
            );
            let z_in = z.clone();
            for r in 0..m {
                let mut ld = 0f32;
                for (j, &t) in l.transform.iter().enumerate() {
                    let off = (r * nt + j) * p;
                    let row = self
                        .spline
                        .row(z_in[r * d + t], &params[off..off + p], &mut sc);
                    z[r * d + t] = row.y;
                    ld += row.logdet;
                }
                logdet[r] += ld;
            }
            // y = x W^T + b.
            let lu = &l.lu;
            let mut y = tile(&lu.bias, m);
            mm(m, d, d, &mut y, true, &z, (d, 1), &lu.w, (1, d));
            logdet.iter_mut().for_each(|v| *v += lu.logdet);
            saved.push(SavedLayer {
                z_in,
                inp,
                blocks,
                h_top: h,
                params,
                mid: std::mem::replace(&mut z, y),
            });
        }
        let (losses, top) = base_gaussian(z, &logdet, d, self.gauss_norm, self.log_std_sum, mode);
        let Some((mut gz, w)) = top else {
            return (losses, None);
        };
        let mut grads: Grads = vec![None; self.n_vars];
        let sizes = &self.var_sizes;
        let w_sum: f32 = w.iter().sum();
        for (l, s) in self.layers.iter().zip(saved).rev() {
            let lu = &l.lu;
            let mut gw = vec![0f32; d * d];
            mm(d, d, m, &mut gw, false, &gz, (1, d), &s.mid, (d, 1));
            add_colsum(slot(&mut grads, sizes, lu.bias_var), &gz);
            let (g_lower, g_upper, g_diag) = lu_grads(d, (&lu.l, &lu.u), &lu.diag_raw, &gw, -w_sum);
            for (var, g) in [
                (lu.lower_var, g_lower),
                (lu.upper_var, g_upper),
                (lu.diag_var, g_diag),
            ] {
                let acc = slot(&mut grads, sizes, var);
                acc.iter_mut().zip(&g).for_each(|(a, v)| *a += v);
            }
            let mut gmid = vec![0f32; m * d];
            mm(m, d, d, &mut gmid, false, &gz, (d, 1), &lu.w, (d, 1));
            let nt = l.transform.len();
            let no = l.last.n_out;
            let mut gparams = vec![0f32; m * no];
            // Identity columns pass through the coupling; transform columns are overwritten.
            let mut gz_in = gmid.clone();
            for r in 0..m {
                for (j, &t) in l.transform.iter().enumerate() {
                    let off = (r * nt + j) * p;
                    gz_in[r * d + t] = self.spline.row_backward(
                        s.z_in[r * d + t],
                        &s.params[off..off + p],
                        gmid[r * d + t],
                        -w[r],
                        &mut sc,
                        &mut gparams[off..off + p],
                    );
                }
            }
            let hd = l.initial.n_out;
            mm(
                hd,
                no,
                m,
                slot(&mut grads, sizes, l.last.w_var),
                true,
                &s.h_top,
                (1, hd),
                &gparams,
                (no, 1),
            );
            add_colsum(slot(&mut grads, sizes, l.last.b_var), &gparams);
            let mut gh = vec![0f32; m * hd];
            mm(
                m,
                hd,
                no,
                &mut gh,
                false,
                &gparams,
                (no, 1),
                &l.last.w,
                (1, no),
            );
            for (b, sb) in l.blocks.iter().zip(s.blocks).rev() {
                let gt2: Vec<f32> = match (&b.gate, &sb.gate) {
                    (Some(gl), Some(g)) => {
                        let gpre: Vec<f32> = gh
                            .iter()
                            .zip(&sb.t2)
                            .zip(g)
                            .map(|((gv, t), gt)| gv * t * gt * (1.0 - gt))
                            .collect();
                        mm(
                            k,
                            hd,
                            m,
                            slot(&mut grads, sizes, gl.w_var),
                            true,
                            &ctx,
                            (1, k),
                            &gpre,
                            (hd, 1),
                        );
                        add_colsum(slot(&mut grads, sizes, gl.b_var), &gpre);
                        gh.iter().zip(g).map(|(a, b)| a * b).collect()
                    }
                    _ => gh.clone(),
                };
                mm(
                    hd,
                    hd,
                    m,
                    slot(&mut grads, sizes, b.l1.w_var),
                    true,
                    &sb.a2,
                    (1, hd),
                    &gt2,
                    (hd, 1),
                );
                add_colsum(slot(&mut grads, sizes, b.l1.b_var), &gt2);
                let mut gt1 = vec![0f32; m * hd];
                mm(m, hd, hd, &mut gt1, false, &gt2, (hd, 1), &b.l1.w, (1, hd));
                for (g, a) in gt1.iter_mut().zip(&sb.a2) {
                    if *a <= 0.0 {
                        *g = 0.0;
                    }
                }
                mm(
                    hd,
                    hd,
                    m,
                    slot(&mut grads, sizes, b.l0.w_var),
                    true,
                    &sb.a,
                    (1, hd),
                    &gt1,
                    (hd, 1),
                );
                add_colsum(slot(&mut grads, sizes, b.l0.b_var), &gt1);
                let mut ga = vec![0f32; m * hd];
                mm(m, hd, hd, &mut ga, false, &gt1, (hd, 1), &b.l0.w, (1, hd));
                for ((g, a), hv) in gh.iter_mut().zip(&ga).zip(&sb.h_in) {
                    if *hv > 0.0 {
                        *g += a;
                    }
                }
            }
            let ni = l.identity.len() + k;
            mm(
                ni,
                hd,
                m,
                slot(&mut grads, sizes, l.initial.w_var),
                true,
                &s.inp,
                (1, ni),
                &gh,
                (hd, 1),
            );
            add_colsum(slot(&mut grads, sizes, l.initial.b_var), &gh);
            let mut ginp = vec![0f32; m * ni];
            mm(
                m,
                ni,
                hd,
                &mut ginp,
                false,
                &gh,
                (hd, 1),
                &l.initial.w,
                (1, hd),
            );
            for r in 0..m {
                for (a, &i) in l.identity.iter().enumerate() {
                    gz_in[r * d + i] += ginp[r * ni + a];
                }
            }
            gz = gz_in;
        }
        (losses, Some(grads))
    }
}

impl NativeFlow for FusedNsf {
    fn dims(&self) -> (usize, usize) {
        (self.d, self.k)
    }

    fn load(&mut self, host: &[Vec<f32>]) {
        for l in &mut self.layers {
            l.initial.load(host);
            for b in &mut l.blocks {
                b.l0.load(host);
                b.l1.load(host);
                if let Some(g) = &mut b.gate {
                    g.load(host);
                }
            }
            l.last.load(host);
            l.lu.load(host);
        }
    }

    fn pass(&self, z: Vec<f32>, ctx: Vec<f32>, mode: Mode<'_>) -> (Vec<f64>, Option<Grads>) {
        self.simd_pass(z, ctx, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused_maf::tests::{assert_matches_graph, data, perturb};
    use candle_core::{Device, Tensor};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn nsf(d: usize, k: usize, seed: u64) -> (Nsf, Params) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = Params::new(&Device::Cpu);
        let nsf = Nsf::new(&mut p, d, k, 12, 3, 6, 3.0, &mut rng).unwrap();
        (nsf, p)
    }

    #[test]
    fn loss_and_gradients_match_candle_autograd() {
        // Inputs in [-4, 4] reach both linear tails of the [-3, 3] splines.
        for (d, k, n) in [(2usize, 3usize, 120usize), (3, 0, 57), (5, 2, 201)] {
            let (flow, p) = nsf(d, k, 40 + d as u64);
            perturb(&p, 500, 0.3);
            let x: Vec<f32> = data(n, d, 1).iter().map(|v| 2.0 * v).collect();
            let c = data(n, k, 2);
            let off = -0.21;
            let kernel = FusedNsf::new(&flow, &p, d, k, off).unwrap();
            let forward = |x: &Tensor, c: Option<&Tensor>| flow.forward(x, c);
            assert_matches_graph(&kernel, &forward, &p, &x, &c, off, &format!("d {d} k {k}"));
        }
    }

    #[test]
    fn reloaded_weights_give_the_kernel_of_those_weights() {
        let (d, k, n) = (3, 2, 40);
        let (flow, p) = nsf(d, k, 3);
        let (x, c) = (data(n, d, 5), data(n, k, 6));
        let rows: Vec<u32> = (0..n as u32).collect();
        let mut kernel = FusedNsf::new(&flow, &p, d, k, 0.0).unwrap();
        perturb(&p, 900, 0.3);
        let host: Vec<Vec<f32>> = p
            .vars
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        kernel.load(&host);
        let fresh = FusedNsf::new(&flow, &p, d, k, 0.0).unwrap();
        let (a, b) = (
            kernel.evaluate(&x, &c, &rows, true),
            fresh.evaluate(&x, &c, &rows, true),
        );
        assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits());
        assert_eq!(a.grads, b.grads);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (d, k, n) = (4, 3, 333);
        let (flow, p) = nsf(d, k, 9);
        perturb(&p, 700, 0.3);
        let kernel = FusedNsf::new(&flow, &p, d, k, 0.0).unwrap();
        let (x, c) = (data(n, d, 3), data(n, k, 4));
        let rows: Vec<u32> = (0..n as u32).rev().collect();
        let lp: Vec<f64> = (0..n).map(|i| -(i as f64) / 100.0).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    (
                        kernel.evaluate(&x, &c, &rows, true),
                        kernel.evaluate_atomic(&x, &c, &lp, &rows[..210], 10, true),
                    )
                })
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.0.loss_sum.to_bits(), b.0.loss_sum.to_bits());
        assert_eq!(a.0.grads, b.0.grads);
        assert_eq!(a.1.loss_sum.to_bits(), b.1.loss_sum.to_bits());
        assert_eq!(a.1.grads, b.1.grads);
    }
}
