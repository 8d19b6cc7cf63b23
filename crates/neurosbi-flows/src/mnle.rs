//! Mixed neural likelihood estimation (Boelts et al. 2022, eLife), as sbi's
//! `MixedDensityEstimator`: q(x | theta) = q(x_disc | theta) q(x_cont | x_disc, theta).
//!
//! The discrete part is an autoregressive product of categoricals: column j's logits come
//! from a ReLU MLP (2 hidden layers) of the embedded context and the category indices of
//! columns 0..j (sbi uses a residual MADE for the same factorisation). The continuous part
//! is a neural spline flow whose context is a shallow ReLU net of [discrete indices,
//! embedded context], sbi's "combined embedding net".
//!
//! Layout differs from sbi on purpose: our inputs put the discrete columns first
//! (`[discrete | continuous]`), sbi puts them last.

use candle_core::{D, Result, Tensor};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::nn::{Linear, Mlp, Params, std_normal_log_prob};
use crate::nsf::Nsf;

#[derive(Clone)]
pub(crate) struct Mixed {
    num_cats: Vec<usize>,
    heads: Vec<Mlp>,
    combine: (Linear, Linear),
    flow: Nsf,
}

impl Mixed {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        p: &mut Params,
        num_cats: &[usize],
        d_cont: usize,
        d_ctx: usize,
        hidden: usize,
        num_transforms: usize,
        num_bins: usize,
        tail_bound: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let k = num_cats.len();
        let heads = num_cats
            .iter()
            .enumerate()
            .map(|(j, &c)| {
                Mlp::new(
                    p,
                    &format!("mnle.discrete{j}"),
                    d_ctx + j,
                    hidden,
                    2,
                    c,
                    rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let combine = (
            p.linear("mnle.combine0", k + d_ctx, hidden, rng)?,
            p.linear("mnle.combine1", hidden, hidden, rng)?,
        );
        let flow = Nsf::new(
            p,
            d_cont,
            hidden,
            hidden,
            num_transforms,
            num_bins,
            tail_bound,
            rng,
        )?;
        Ok(Self {
            num_cats: num_cats.to_vec(),
            heads,
            combine,
            flow,
        })
    }

    fn head_input(ctx: &Tensor, idx: &Tensor, j: usize) -> Result<Tensor> {
        if j == 0 {
            Ok(ctx.clone())
        } else {
            Tensor::cat(&[ctx, &idx.narrow(1, 0, j)?], 1)
        }
    }

    fn flow_context(&self, ctx: &Tensor, idx: &Tensor) -> Result<Tensor> {
        let c = self
            .combine
            .0
            .forward(&Tensor::cat(&[idx, ctx], 1)?)?
            .relu()?;
        self.combine.1.forward(&c)?.relu()
    }

    /// log q for category indices `idx` (B x k, row-major), standardised continuous
    /// values `cont` (B, d_cont) and embedded context (B, e). Shape (B,).
    pub(crate) fn log_prob(&self, idx: &[u32], cont: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let b = cont.dim(0)?;
        let k = self.num_cats.len();
        let dev = cont.device();
        let idx_f = Tensor::from_vec(
            idx.iter().map(|&i| i as f32).collect::<Vec<_>>(),
            (b, k),
            dev,
        )?;
        let mut lp = Tensor::zeros(b, cont.dtype(), dev)?;
        for (j, (head, &c)) in self.heads.iter().zip(&self.num_cats).enumerate() {
            let logits = head.forward(&Self::head_input(ctx, &idx_f, j)?)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let mut onehot = vec![0f32; b * c];
            for r in 0..b {
                onehot[r * c + idx[r * k + j] as usize] = 1.0;
            }
            let onehot = Tensor::from_vec(onehot, (b, c), dev)?;
            lp = (lp + logp.mul(&onehot)?.sum(D::Minus1)?)?;
        }
        let (z, ld) = self
            .flow
            .forward(cont, Some(&self.flow_context(ctx, &idx_f)?))?;
        lp + (std_normal_log_prob(&z)? + ld)?
    }

    /// `n` draws for one embedded context row (1, e): category indices (n x k) and
    /// standardised continuous values (n, d_cont). All random numbers are drawn first, so
    /// the result does not depend on the chunk size.
    pub(crate) fn sample(
        &self,
        n: usize,
        d_cont: usize,
        ctx1: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Tensor)> {
        let k = self.num_cats.len();
        let dev = ctx1.device();
        let u: Vec<f64> = (0..n * k).map(|_| rng.random::<f64>()).collect();
        let z: Vec<f32> = (0..n * d_cont)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        let z = Tensor::from_vec(z, (n, d_cont), dev)?;
        const CHUNK: usize = 512;
        let mut idx = vec![0u32; n * k];
        let mut parts = Vec::with_capacity(n.div_ceil(CHUNK));
        for s in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - s);
            let ctx = ctx1.broadcast_as((len, ctx1.dim(1)?))?.contiguous()?;
            let mut chunk_idx = vec![0f32; len * k];
            for (j, (head, &c)) in self.heads.iter().zip(&self.num_cats).enumerate() {
                let prev = Tensor::from_vec(chunk_idx.clone(), (len, k), dev)?;
                let logits = head.forward(&Self::head_input(&ctx, &prev, j)?)?;
                let probs: Vec<Vec<f32>> =
                    candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2()?;
                for (r, pr) in probs.iter().enumerate() {
                    // Inverse CDF; the last category takes any rounding remainder.
                    let target = u[(s + r) * k + j];
                    let mut acc = 0.0f64;
                    let mut pick = c - 1;
                    for (i, &pi) in pr.iter().enumerate() {
                        acc += pi as f64;
                        if target < acc {
                            pick = i;
                            break;
                        }
                    }
                    chunk_idx[r * k + j] = pick as f32;
                    idx[(s + r) * k + j] = pick as u32;
                }
            }
            let idx_t = Tensor::from_vec(chunk_idx, (len, k), dev)?;
            let fctx = self.flow_context(&ctx, &idx_t)?;
            // Detached so that each chunk's intermediates are freed (see the estimator's sample).
            parts.push(
                self.flow
                    .inverse(&z.narrow(0, s, len)?, Some(&fctx))?
                    .detach(),
            );
        }
        Ok((idx, Tensor::cat(&parts, 0)?))
    }
}
