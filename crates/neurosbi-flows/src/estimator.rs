//! [`ConditionalEstimator`]: a conditional density q(inputs | context) with built-in
//! z-scoring, training, sampling and persistence.

use std::cell::RefCell;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::FlowError;
use crate::config::{EmbeddingConfig, EstimatorConfig, EstimatorKind, TrainConfig};
use crate::embedding::Embedding;
use crate::error::rows_of;
use crate::fused_maf::{Evaluation, FusedMaf, Grads, NativeFlow};
use crate::fused_nsf::FusedNsf;
use crate::maf::Maf;
use crate::mdn::Mdn;
use crate::mnle::Mixed;
use crate::nn::{Params, std_normal_log_prob};
use crate::nsf::Nsf;
use crate::persist;
use crate::train::{
    Objective, Phase, TrainObserver, TrainReport, TrainState, fit, fit_objective, fit_phased,
};
use crate::vfield::VectorField;
use crate::zscore::ZScore;

/// MNLE refuses discrete columns with more distinct values than this (almost surely a
/// continuous column given as discrete).
const MAX_CATEGORIES: usize = 1024;
/// Seed offsets of the training and validation noise of the vector-field losses.
const TRAIN_NOISE: u64 = 0x7f4a_7c15_9e37_79b9;
const VALIDATION_NOISE: u64 = 0x94d0_49bb_1331_11eb;

#[derive(Clone)]
pub(crate) enum Net {
    Maf(Maf),
    Nsf(Nsf),
    Mdn(Mdn),
    Field(VectorField),
    Mixed(Mixed),
}

/// Everything but the weights, as stored in the file header.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    config: EstimatorConfig,
    d_in: usize,
    d_ctx: usize,
    seed: u64,
    inputs: ZScore,
    context: ZScore,
    permutations: Vec<Vec<u32>>,
    /// MNLE: the sorted distinct values of each discrete column.
    #[serde(default)]
    categories: Vec<Vec<f64>>,
}

/// A conditional density q(inputs | context): inputs = theta for NPE, = x for NLE.
///
/// Inputs and context are standardised with statistics of the data given to
/// [`ConditionalEstimator::new`]; densities are reported in raw units (the Jacobian of the
/// standardisation is included).
pub struct ConditionalEstimator {
    header: Header,
    params: Params,
    net: Net,
    embedding: Option<Embedding>,
    device: Device,
    in_mean: Tensor,
    in_std: Tensor,
    ctx_mean: Tensor,
    ctx_std: Tensor,
    state: Option<TrainState>,
}

impl std::fmt::Debug for ConditionalEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionalEstimator")
            .field("config", &self.header.config)
            .field("d_in", &self.header.d_in)
            .field("d_ctx", &self.header.d_ctx)
            .field("parameters", &self.params.num_values())
            .finish()
    }
}

impl ConditionalEstimator {
    /// Builds an untrained estimator; z-score statistics are computed from the given data
    /// (row-major, `d_in` and `d_ctx` values per row, same number of rows).
    pub fn new(
        cfg: &EstimatorConfig,
        inputs: &[f64],
        context: &[f64],
        d_in: usize,
        d_ctx: usize,
        seed: u64,
    ) -> Result<Self, FlowError> {
        let n = rows_of("inputs", inputs, d_in)?;
        let m = rows_of("context", context, d_ctx)?;
        if n != m {
            return Err(FlowError::Shape {
                what: "context",
                expected: n * d_ctx,
                rows: n,
                dim: d_ctx,
                got: context.len(),
            });
        }
        if n < 2 {
            return Err(FlowError::Invalid {
                what: "inputs",
                why: format!("{n} rows; z-scoring needs at least 2"),
            });
        }
        let group = match &cfg.embedding {
            Some(EmbeddingConfig::DeepSets { trial_dim, .. }) => *trial_dim,
            Some(EmbeddingConfig::Convolutional { .. }) => 1,
            _ => d_ctx,
        };
        let (input_stats, categories) = if cfg.kind == EstimatorKind::Mnle {
            mixed_statistics(cfg, inputs, d_in)?
        } else {
            (ZScore::fit(inputs, d_in, d_in), Vec::new())
        };
        let header = Header {
            config: cfg.clone(),
            d_in,
            d_ctx,
            seed,
            inputs: input_stats,
            context: ZScore::fit(context, d_ctx, group.max(1)),
            permutations: Vec::new(),
            categories,
        };
        Self::build(header, Device::Cpu)
    }

    fn build(header: Header, device: Device) -> Result<Self, FlowError> {
        Self::build_as(header, device, DType::F32)
    }

    /// [`Self::build`] with parameters of `dtype` (F64 only for [`Self::f64_reference`]).
    fn build_as(mut header: Header, device: Device, dtype: DType) -> Result<Self, FlowError> {
        let cfg = &header.config;
        cfg.validate()?;
        if header.d_in == 0 || header.d_ctx == 0 {
            return Err(FlowError::Invalid {
                what: "dimensions",
                why: "d_in and d_ctx must be positive".into(),
            });
        }
        for (what, z, d) in [
            ("input statistics", &header.inputs, header.d_in),
            ("context statistics", &header.context, header.d_ctx),
        ] {
            if z.mean.len() != d
                || z.std.len() != d
                || z.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            {
                return Err(FlowError::Invalid {
                    what,
                    why: format!("need {d} finite means and positive deviations"),
                });
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(header.seed);
        let mut params = Params::with_dtype(&device, dtype);
        let (embedding, d_emb) = match &cfg.embedding {
            Some(e) => {
                let (e, d) = Embedding::new(e, &mut params, header.d_ctx, &mut rng)?;
                (Some(e), d)
            }
            None => (None, header.d_ctx),
        };
        let (d, h) = (header.d_in, cfg.hidden_features);
        let net = match cfg.kind {
            EstimatorKind::Maf => {
                let mut maf = Maf::new(&mut params, d, d_emb, h, cfg.num_transforms, &mut rng)?;
                if header.permutations.is_empty() {
                    header.permutations = maf.permutations();
                } else {
                    maf.set_permutations(&header.permutations).map_err(|why| {
                        FlowError::Invalid {
                            what: "permutations",
                            why,
                        }
                    })?;
                }
                Net::Maf(maf)
            }
            EstimatorKind::Nsf => Net::Nsf(Nsf::new(
                &mut params,
                d,
                d_emb,
                h,
                cfg.num_transforms,
                cfg.num_bins,
                cfg.tail_bound,
                &mut rng,
            )?),
            EstimatorKind::Mdn => Net::Mdn(Mdn::new(
                &mut params,
                d,
                d_emb,
                h,
                cfg.num_components,
                &mut rng,
            )?),
            EstimatorKind::Fmpe | EstimatorKind::NpseVe | EstimatorKind::NpseVp => {
                Net::Field(VectorField::new(
                    &mut params,
                    cfg.kind,
                    d,
                    d_emb,
                    h,
                    &cfg.vector_field,
                    &mut rng,
                )?)
            }
            EstimatorKind::Mnle => {
                let k = cfg.num_discrete;
                if k >= d
                    || header.categories.len() != k
                    || header.categories.iter().any(|c| c.is_empty())
                {
                    return Err(FlowError::Invalid {
                        what: "num_discrete",
                        why: format!(
                            "{k} discrete columns of {d} need at least one continuous column and {k} category lists (have {})",
                            header.categories.len()
                        ),
                    });
                }
                let cats: Vec<usize> = header.categories.iter().map(Vec::len).collect();
                Net::Mixed(Mixed::new(
                    &mut params,
                    &cats,
                    d - k,
                    d_emb,
                    h,
                    cfg.num_transforms,
                    cfg.num_bins,
                    cfg.tail_bound,
                    &mut rng,
                )?)
            }
        };
        let (in_mean, in_std) = header.inputs.tensors(&device, dtype)?;
        let (ctx_mean, ctx_std) = header.context.tensors(&device, dtype)?;
        Ok(Self {
            header,
            params,
            net,
            embedding,
            device,
            in_mean,
            in_std,
            ctx_mean,
            ctx_std,
            state: None,
        })
    }

    /// Dimension of the modelled variable.
    pub fn dim_inputs(&self) -> usize {
        self.header.d_in
    }
    /// Dimension of the conditioning variable (before any embedding).
    pub fn dim_context(&self) -> usize {
        self.header.d_ctx
    }
    /// The architecture.
    pub fn config(&self) -> &EstimatorConfig {
        &self.header.config
    }
    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.params.num_values()
    }
    /// Sets the number of fixed Runge-Kutta steps of the probability-flow ODE: FMPE samples
    /// and evaluates densities with it, NPSE evaluates densities with it (and samples with
    /// it only when `vector_field.sde_steps` is 0; by default NPSE samples with the reverse
    /// SDE). Fewer is faster and less accurate; kept by `save`.
    pub fn set_ode_steps(&mut self, steps: usize) -> Result<(), FlowError> {
        let Net::Field(f) = &mut self.net else {
            return Err(FlowError::Invalid {
                what: "ode_steps",
                why: format!("a {:?} estimator has no ODE", self.header.config.kind),
            });
        };
        if steps == 0 {
            return Err(FlowError::Invalid {
                what: "ode_steps",
                why: "must be positive".into(),
            });
        }
        f.set_steps(steps);
        self.header.config.vector_field.ode_steps = steps;
        Ok(())
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `cfg` for training where the model already is.
    fn here(cfg: &TrainConfig) -> TrainConfig {
        TrainConfig {
            device: None,
            ..cfg.clone()
        }
    }

    /// A copy with weights and statistics on `device` (e.g. from
    /// [`crate::device_from_name`]); `train`, `log_prob` and `sample` then run there.
    /// Sampling stays deterministic for a seed (base draws come from the host RNG). The
    /// optimiser state of a resumable `train` is not carried over.
    pub fn to_device(&self, device: &Device) -> Result<Self, FlowError> {
        let moved = Self::build(self.header.clone(), device.clone())?;
        crate::device::copy_params(&self.params, &moved.params)?;
        Ok(moved)
    }

    /// A copy of a MAF or NSF without embedding net whose graph computes in f64 with the
    /// same (f32-valued) weights: the reference that tells how far the f32 evaluations
    /// (graph, native kernel, GPU) are from the model's exact density. On the CPU only;
    /// `log_prob_tensor` of the copy takes and returns f64 tensors.
    #[doc(hidden)]
    pub fn f64_reference(&self) -> Result<Self, FlowError> {
        let fits = matches!(
            self.header.config.kind,
            EstimatorKind::Maf | EstimatorKind::Nsf
        ) && self.embedding.is_none();
        if !fits {
            return Err(FlowError::Invalid {
                what: "f64 reference",
                why: format!(
                    "only for a MAF or NSF without embedding net, not {:?}",
                    self.header.config.kind
                ),
            });
        }
        let copy = Self::build_as(self.header.clone(), Device::Cpu, DType::F64)?;
        for ((_, src), (_, dst)) in self.params.vars.iter().zip(&copy.params.vars) {
            dst.set(
                &src.as_tensor()
                    .to_device(&Device::Cpu)?
                    .to_dtype(DType::F64)?,
            )?;
        }
        Ok(copy)
    }

    #[cfg(test)]
    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// Standardised, embedded context.
    fn embed(&self, context: &Tensor) -> candle_core::Result<Tensor> {
        let c = context
            .to_dtype(self.ctx_mean.dtype())?
            .broadcast_sub(&self.ctx_mean)?
            .broadcast_div(&self.ctx_std)?;
        match &self.embedding {
            Some(e) => e.forward(&c),
            None => Ok(c),
        }
    }

    /// Differentiable log q(inputs | context) in raw units (z-scoring and its log-Jacobian
    /// included), shape (B,). `context` has B rows or one row (broadcast).
    ///
    /// For FMPE and NPSE the value comes from integrating the probability-flow ODE with
    /// the exact divergence and is detached (not differentiable); MNLE is differentiable
    /// in its parameters (not in the discrete inputs).
    pub fn log_prob_tensor(
        &self,
        inputs: &Tensor,
        context: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let b = inputs.dim(0)?;
        let mut ctx = self.embed(context)?;
        if let Net::Field(f) = &self.net {
            // The field projects a shared context row once; no broadcast needed.
            let x = self.standardise(inputs)?;
            return f.log_prob(&x, &ctx)? - self.header.inputs.log_std_sum();
        }
        if ctx.dim(0)? != b {
            ctx = ctx.broadcast_as((b, ctx.dim(1)?))?.contiguous()?;
        }
        if let Net::Mixed(m) = &self.net {
            return self.mixed_log_prob(m, inputs, &ctx);
        }
        let x = self.standardise(inputs)?;
        let lp = match &self.net {
            Net::Maf(f) => {
                let (z, ld) = f.forward(&x, Some(&ctx))?;
                (std_normal_log_prob(&z)? + ld)?
            }
            Net::Nsf(f) => {
                let (z, ld) = f.forward(&x, Some(&ctx))?;
                (std_normal_log_prob(&z)? + ld)?
            }
            Net::Mdn(m) => m.log_prob(&x, &ctx)?,
            Net::Field(_) | Net::Mixed(_) => unreachable!("handled above"),
        };
        lp - self.header.inputs.log_std_sum()
    }

    /// Inputs in standardised units, in the model's dtype (f32).
    fn standardise(&self, inputs: &Tensor) -> candle_core::Result<Tensor> {
        inputs
            .to_dtype(self.in_mean.dtype())?
            .broadcast_sub(&self.in_mean)?
            .broadcast_div(&self.in_std)
    }

    /// Category indices of the discrete columns of raw input rows.
    fn category_indices(&self, inputs: &Tensor) -> candle_core::Result<Vec<u32>> {
        let k = self.header.config.num_discrete;
        let rows: Vec<Vec<f32>> = inputs.narrow(1, 0, k)?.to_dtype(DType::F32)?.to_vec2()?;
        let mut idx = Vec::with_capacity(rows.len() * k);
        for (r, row) in rows.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let cats = &self.header.categories[j];
                match cats.iter().position(|&c| c as f32 == v) {
                    Some(i) => idx.push(i as u32),
                    None => candle_core::bail!(
                        "row {r}, discrete column {j}: value {v} is not one of the categories seen in training ({cats:?})"
                    ),
                }
            }
        }
        Ok(idx)
    }

    fn mixed_log_prob(
        &self,
        m: &Mixed,
        inputs: &Tensor,
        ctx: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (k, d) = (self.header.config.num_discrete, self.header.d_in);
        let idx = self.category_indices(inputs)?;
        let mut cont = inputs.to_dtype(DType::F32)?.narrow(1, k, d - k)?;
        let mut jac = None;
        if self.header.config.log_transform {
            cont = cont.log()?;
            jac = Some(cont.sum(D::Minus1)?);
        }
        let z = cont
            .broadcast_sub(&self.in_mean.narrow(1, k, d - k)?)?
            .broadcast_div(&self.in_std.narrow(1, k, d - k)?)?;
        let lp = (m.log_prob(&idx, &z, ctx)? - self.header.inputs.log_std_sum())?;
        match jac {
            Some(j) => lp - j,
            None => Ok(lp),
        }
    }

    /// Checks MNLE inputs (known categories, positive values under the log transform)
    /// so that bad rows give a typed error naming the row and column.
    fn check_mixed_inputs(&self, inputs: &[f64]) -> Result<(), FlowError> {
        if self.header.config.kind != EstimatorKind::Mnle {
            return Ok(());
        }
        let (k, d) = (self.header.config.num_discrete, self.header.d_in);
        for (r, row) in inputs.chunks_exact(d).enumerate() {
            for (j, &v) in row[..k].iter().enumerate() {
                let cats = &self.header.categories[j];
                if !cats.iter().any(|&c| c as f32 == v as f32) {
                    return Err(FlowError::Invalid {
                        what: "inputs",
                        why: format!(
                            "row {r}, discrete column {j}: value {v} is not one of the categories seen in training ({cats:?})"
                        ),
                    });
                }
            }
            if self.header.config.log_transform
                && let Some(c) = row[k..].iter().position(|&v| v <= 0.0)
            {
                return Err(FlowError::Invalid {
                    what: "inputs",
                    why: format!(
                        "row {r}, column {}: value {} is not positive (log_transform is on)",
                        k + c,
                        row[k + c]
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_pairs(&self, inputs: &[f64], context: &[f64]) -> Result<(usize, usize), FlowError> {
        let n = rows_of("inputs", inputs, self.header.d_in)?;
        let m = rows_of("context", context, self.header.d_ctx)?;
        if m != n && m != 1 {
            return Err(FlowError::Shape {
                what: "context",
                expected: n * self.header.d_ctx,
                rows: n,
                dim: self.header.d_ctx,
                got: context.len(),
            });
        }
        Ok((n, m))
    }

    fn tensor(&self, data: &[f64], dim: usize) -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (data.len() / dim, dim),
            &self.device,
        )
    }

    /// log q for n rows; `context` has n rows or exactly 1 row (broadcast).
    pub fn log_prob(&self, inputs: &[f64], context: &[f64]) -> Result<Vec<f64>, FlowError> {
        self.log_prob_impl(inputs, context)
    }

    fn log_prob_impl(&self, inputs: &[f64], context: &[f64]) -> Result<Vec<f64>, FlowError> {
        let (n, m) = self.check_pairs(inputs, context)?;
        self.check_mixed_inputs(inputs)?;
        let (di, dc) = (self.header.d_in, self.header.d_ctx);
        if let Some(kernel) = self.native_kernel()? {
            // The native kernel: no graph per chunk, rows in parallel (MCMC potentials).
            let x = standardised_f32(inputs, &self.header.inputs);
            let c = standardised_f32(context, &self.header.context);
            debug_assert!(m == 1 || m == n);
            return Ok(kernel.log_probs(&x, &c));
        }
        let mut out = Vec::with_capacity(n);
        const CHUNK: usize = 1024;
        for s in (0..n).step_by(CHUNK) {
            let e = (s + CHUNK).min(n);
            let x = self.tensor(&inputs[s * di..e * di], di)?;
            let c = if m == 1 {
                self.tensor(context, dc)?
            } else {
                self.tensor(&context[s * dc..e * dc], dc)?
            };
            let lp = self.log_prob_tensor(&x, &c)?.detach();
            out.extend(lp.to_vec1::<f32>()?.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// `n` draws (row-major n x d_in) given ONE context row, deterministic for the seed.
    pub fn sample(&self, n: usize, context: &[f64], seed: u64) -> Result<Vec<f64>, FlowError> {
        self.sample_impl(n, context, seed)
    }

    fn sample_impl(&self, n: usize, context: &[f64], seed: u64) -> Result<Vec<f64>, FlowError> {
        let dc = self.header.d_ctx;
        if context.len() != dc {
            return Err(FlowError::Shape {
                what: "context",
                expected: dc,
                rows: 1,
                dim: dc,
                got: context.len(),
            });
        }
        rows_of("context", context, dc)?;
        let d = self.header.d_in;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ctx1 = self.embed(&self.tensor(context, dc)?)?.detach();
        // Flows transform the base draws in chunks: small tensors stay in cache and reuse
        // freed memory (one 10 000-row pass allocated ~1.6 GB in fresh pages). All base
        // draws come first, so the result does not depend on the chunk size.
        const CHUNK: usize = 512;
        let flow_sample = |inverse: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
                           rng: &mut ChaCha8Rng|
         -> candle_core::Result<Tensor> {
            let z: Vec<f32> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
            let z = Tensor::from_vec(z, (n, d), &self.device)?;
            let mut parts = Vec::with_capacity(n.div_ceil(CHUNK));
            for s in (0..n).step_by(CHUNK) {
                let len = CHUNK.min(n - s);
                let ctx = ctx1.broadcast_as((len, ctx1.dim(1)?))?.contiguous()?;
                // Detached, each chunk's output drops the graph of its intermediates (which
                // it would otherwise keep alive through the weights' Vars): with a million
                // rows those graphs filled the memory.
                parts.push(inverse(&z.narrow(0, s, len)?, &ctx)?.detach());
            }
            Tensor::cat(&parts, 0)
        };
        let x = match &self.net {
            Net::Maf(f) => flow_sample(&|z, c| f.inverse(z, Some(c)), &mut rng)?,
            Net::Nsf(f) => flow_sample(&|z, c| f.inverse(z, Some(c)), &mut rng)?,
            Net::Mdn(m) => m.sample(n, &ctx1, &mut rng)?,
            Net::Field(f) => {
                // The ODE steps whole chunks of rows at once (one graph per stage).
                let z: Vec<f32> = (0..n * d)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect();
                f.sample(&Tensor::from_vec(z, (n, d), &self.device)?, &ctx1)?
            }
            Net::Mixed(m) => return self.mixed_sample(m, n, &ctx1, &mut rng),
        };
        let x = x
            .broadcast_mul(&self.in_std)?
            .broadcast_add(&self.in_mean)?;
        Ok(x.flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect())
    }

    fn mixed_sample(
        &self,
        m: &Mixed,
        n: usize,
        ctx1: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<f64>, FlowError> {
        let (k, d) = (self.header.config.num_discrete, self.header.d_in);
        let (idx, z) = m.sample(n, d - k, ctx1, rng)?;
        let mut cont = z
            .broadcast_mul(&self.in_std.narrow(1, k, d - k)?)?
            .broadcast_add(&self.in_mean.narrow(1, k, d - k)?)?;
        if self.header.config.log_transform {
            cont = cont.exp()?;
        }
        let cont: Vec<f32> = cont.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(n * d);
        for r in 0..n {
            for j in 0..k {
                out.push(self.header.categories[j][idx[r * k + j] as usize]);
            }
            out.extend(
                cont[r * (d - k)..(r + 1) * (d - k)]
                    .iter()
                    .map(|&v| f64::from(v)),
            );
        }
        Ok(out)
    }

    /// Trains the estimator: maximum likelihood (loss = -mean log q) for MDN, MAF, NSF and
    /// MNLE; the conditional flow-matching loss for FMPE and the denoising score-matching
    /// loss for NPSE. Calling again continues from the current weights (with
    /// `cfg.resume`, also from the optimiser state and epoch count).
    pub fn train(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
    ) -> Result<TrainReport, FlowError> {
        if let Some(dev) = crate::device::training_device(cfg, &self.device)? {
            let mut moved = self.to_device(&dev)?;
            let rep = moved.train(inputs, context, &Self::here(cfg), obs)?;
            *self = moved.to_device(&self.device)?;
            return Ok(rep);
        }
        if self.header.config.kind.is_vector_field() {
            return self.train_field(inputs, context, cfg, obs);
        }
        if self.has_native_kernel() {
            // The native kernels of crate::fused_maf and crate::fused_nsf: same loss as the
            // graph, faster, and parallel over row chunks.
            return self.train_native(inputs, context, cfg, obs, &|k, x, c, rows, want| {
                k.evaluate(x, c, rows, want)
            });
        }
        self.train_with_loss(inputs, context, cfg, obs, &|s, x, c| {
            s.log_prob_tensor(x, c)?.mean_all()?.neg()
        })
    }

    /// Whether a native kernel applies: a MAF, or an NSF with 2 or more inputs, without
    /// embedding net, on the CPU.
    fn has_native_kernel(&self) -> bool {
        let net = match &self.net {
            Net::Maf(_) => true,
            Net::Nsf(_) => self.header.d_in >= 2,
            _ => false,
        };
        net && self.embedding.is_none() && self.device.is_cpu()
    }

    /// The native kernel of the current weights, when one applies.
    fn native_kernel(&self) -> candle_core::Result<Option<Box<dyn NativeFlow + Send>>> {
        if !self.has_native_kernel() {
            return Ok(None);
        }
        let (d, dc) = (self.header.d_in, self.header.d_ctx);
        let log_std_sum = self.header.inputs.log_std_sum();
        Ok(Some(match &self.net {
            Net::Maf(maf) => Box::new(FusedMaf::new(maf, &self.params, dc, log_std_sum)?),
            Net::Nsf(nsf) => Box::new(FusedNsf::new(nsf, &self.params, d, dc, log_std_sum)?),
            _ => unreachable!("has_native_kernel admits MAF and NSF only"),
        }))
    }

    /// The training loop over a native objective: `eval` gets the kernel (the current
    /// weights), the standardised inputs and context, the batch rows and whether gradients
    /// are wanted, and returns batch sums.
    fn train_native(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
        eval: &NativeEval<'_>,
    ) -> Result<TrainReport, FlowError> {
        let n = self.check_training_pairs(inputs, context)?;
        let x = standardised_f32(inputs, &self.header.inputs);
        let c = standardised_f32(context, &self.header.context);
        let mut state = self.state.take();
        let this = &*self;
        let Some(kernel) = this.native_kernel()? else {
            unreachable!("native training is only called when a kernel applies")
        };
        // One kernel for the whole run; each call loads the step's weights into it.
        let kernel = std::cell::RefCell::new(kernel);
        let loss = |host: &[Vec<f32>], rows: &[u32], want: bool| {
            let mut k = kernel.borrow_mut();
            k.load(host);
            Ok(mean_of(eval(&**k, &x, &c, rows, want), rows.len()))
        };
        let res = fit_objective(
            &this.params,
            &mut state,
            n,
            cfg,
            obs,
            Objective::Native(&loss),
            false,
        );
        self.state = state;
        res
    }

    fn train_field(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
    ) -> Result<TrainReport, FlowError> {
        let n = self.check_training_pairs(inputs, context)?;
        let x = self.tensor(inputs, self.header.d_in)?;
        let c = self.tensor(context, self.header.d_ctx)?;
        let mut state = self.state.take();
        // Fresh noise for each resumed call: the stream follows the epochs already run.
        let done = state
            .as_ref()
            .filter(|_| cfg.resume)
            .map_or(0, |s| s.epochs());
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ TRAIN_NOISE);
        rng.set_stream(done as u64);
        let rng = RefCell::new(rng);
        let this = &*self;
        let Net::Field(field) = &this.net else {
            unreachable!("train_field is only called for vector-field kinds")
        };
        let loss = |idx: &Tensor, phase: Phase| {
            let xb = this.standardise(&x.index_select(idx, 0)?)?;
            let cb = this.embed(&c.index_select(idx, 0)?)?;
            match phase {
                Phase::Train => field.loss(&xb, &cb, &mut rng.borrow_mut(), false),
                Phase::Validation(k) => {
                    let mut r = ChaCha8Rng::seed_from_u64(cfg.seed ^ VALIDATION_NOISE);
                    r.set_stream(k as u64);
                    field.loss(&xb, &cb, &mut r, true)
                }
            }
        };
        // Flow- and score-matching losses are noisy regressions: average the weights.
        let res = fit_phased(&this.params, &mut state, n, cfg, obs, &loss, true);
        self.state = state;
        res
    }

    fn check_training_pairs(&self, inputs: &[f64], context: &[f64]) -> Result<usize, FlowError> {
        let (n, m) = self.check_pairs(inputs, context)?;
        if m != n {
            return Err(FlowError::Shape {
                what: "context",
                expected: n * self.header.d_ctx,
                rows: n,
                dim: self.header.d_ctx,
                got: context.len(),
            });
        }
        self.check_mixed_inputs(inputs)?;
        Ok(n)
    }

    /// Trains with a caller-supplied loss on a batch (e.g. the APT / SNPE-C atomic loss).
    /// The closure gets the estimator and the batch's inputs (B, d_in) and context
    /// (B, d_ctx) in RAW units (f32), and returns a scalar loss to minimise; the validation
    /// loss uses the same closure.
    ///
    /// Not available for FMPE and NPSE (their log-density comes from an ODE solve and is
    /// not differentiable here): they return [`FlowError::Invalid`] naming
    /// `train_with_loss`; train them with [`ConditionalEstimator::train`].
    pub fn train_with_loss(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
        loss: &dyn Fn(&Self, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<TrainReport, FlowError> {
        if let Some(dev) = crate::device::training_device(cfg, &self.device)? {
            let mut moved = self.to_device(&dev)?;
            let rep = moved.train_with_loss(inputs, context, &Self::here(cfg), obs, loss)?;
            *self = moved.to_device(&self.device)?;
            return Ok(rep);
        }
        let kind = self.header.config.kind;
        if kind.is_vector_field() {
            return Err(FlowError::Invalid {
                what: "train_with_loss",
                why: format!(
                    "a {kind:?} estimator trains only with its own regression loss (use train); custom likelihood losses such as APT's need MDN, MAF, NSF or MNLE"
                ),
            });
        }
        let n = self.check_training_pairs(inputs, context)?;
        let x = self.tensor(inputs, self.header.d_in)?;
        let c = self.tensor(context, self.header.d_ctx)?;
        let mut state = self.state.take();
        let this = &*self;
        let res = fit(&this.params, &mut state, n, cfg, obs, &|idx| {
            loss(this, &x.index_select(idx, 0)?, &c.index_select(idx, 0)?)
        });
        self.state = state;
        res
    }

    /// The APT / SNPE-C atomic loss (Greenberg et al. 2019, eq. 6; sbi
    /// `_log_prob_proposal_posterior_atomic`) of a batch as a differentiable scalar: for each
    /// row i the atoms are its own input and the inputs of the next `num_atoms - 1` rows of
    /// the (shuffled) batch, and loss = -mean_i [l_ii - logsumexp_j l_ij] with
    /// `l_ij = log q(input_j | context_i) - log_prior_j`. `log_prior` holds log p of each
    /// row's raw input; `num_atoms` is capped at the batch size.
    pub fn atomic_loss_tensor(
        &self,
        inputs: &Tensor,
        context: &Tensor,
        log_prior: &[f32],
        num_atoms: usize,
    ) -> candle_core::Result<Tensor> {
        let b = inputs.dim(0)?;
        if log_prior.len() != b {
            candle_core::bail!(
                "atomic loss: {} log-prior values for {b} rows",
                log_prior.len()
            );
        }
        let k = num_atoms.clamp(2, b.max(2)).min(b);
        let mut cols = Vec::with_capacity(k);
        for j in 0..k {
            let idx: Vec<u32> = (0..b).map(|i| ((i + j) % b) as u32).collect();
            let idx = Tensor::from_vec(idx, b, inputs.device())?;
            let atoms = inputs.index_select(&idx, 0)?;
            let lp: Vec<f32> = (0..b).map(|i| log_prior[(i + j) % b]).collect();
            let lp = Tensor::from_vec(lp, b, inputs.device())?;
            cols.push((self.log_prob_tensor(&atoms, context)? - lp)?.unsqueeze(1)?);
        }
        let logits = Tensor::cat(&cols, 1)?;
        let m = logits.max_keepdim(D::Minus1)?.detach();
        let z = logits.broadcast_sub(&m)?;
        let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
        z.broadcast_sub(&lse)?.narrow(1, 0, 1)?.mean_all()?.neg()
    }

    /// Trains with the APT / SNPE-C atomic loss ([`Self::atomic_loss_tensor`]) for
    /// sequential NPE: `inputs` are parameters drawn from proposals, `log_prior` their log
    /// prior density (one per row). A MAF without embedding net on the CPU uses the
    /// native kernel; other estimators the candle graph.
    pub fn train_atomic(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        log_prior: &[f64],
        num_atoms: usize,
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
    ) -> Result<TrainReport, FlowError> {
        let n = self.check_training_pairs(inputs, context)?;
        if log_prior.len() != n {
            return Err(FlowError::Shape {
                what: "log_prior",
                expected: n,
                rows: n,
                dim: 1,
                got: log_prior.len(),
            });
        }
        // Atoms come from proposals inside the prior's support; clamp so that a stray
        // -inf cannot turn the softmax into NaN.
        let lp: Vec<f64> = log_prior.iter().map(|v| v.max(-1e30)).collect();
        if !self.has_native_kernel() || cfg.device.is_some() {
            let lp32: Vec<f32> = lp.iter().map(|&v| v as f32).collect();
            return self.train_atomic_graph(inputs, context, &lp32, num_atoms, cfg, obs);
        }
        self.train_native(inputs, context, cfg, obs, &|k, x, c, rows, want| {
            k.evaluate_atomic(x, c, &lp, rows, num_atoms, want)
        })
    }

    /// The graph version; it works on row indices (through `fit`), not on batch tensors
    /// as `train_with_loss` does, because each row's log prior is looked up by index.
    fn train_atomic_graph(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        log_prior: &[f32],
        num_atoms: usize,
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
    ) -> Result<TrainReport, FlowError> {
        if let Some(dev) = crate::device::training_device(cfg, &self.device)? {
            let mut moved = self.to_device(&dev)?;
            let rep = moved.train_atomic_graph(
                inputs,
                context,
                log_prior,
                num_atoms,
                &Self::here(cfg),
                obs,
            )?;
            *self = moved.to_device(&self.device)?;
            return Ok(rep);
        }
        let n = self.check_training_pairs(inputs, context)?;
        let x = self.tensor(inputs, self.header.d_in)?;
        let c = self.tensor(context, self.header.d_ctx)?;
        let mut state = self.state.take();
        let this = &*self;
        let res = fit(&this.params, &mut state, n, cfg, obs, &|idx| {
            let rows = idx.to_vec1::<u32>()?;
            let lp: Vec<f32> = rows.iter().map(|&r| log_prior[r as usize]).collect();
            this.atomic_loss_tensor(
                &x.index_select(idx, 0)?,
                &c.index_select(idx, 0)?,
                &lp,
                num_atoms,
            )
        });
        self.state = state;
        res
    }

    /// Writes the estimator (format version, architecture, z-score statistics, weights) to
    /// one safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), FlowError> {
        let json = serde_json::to_string(&self.header).map_err(|e| FlowError::Invalid {
            what: "header",
            why: e.to_string(),
        })?;
        persist::save(path, "conditional-estimator", json, &self.params)
    }

    /// Reads an estimator written by [`ConditionalEstimator::save`], checking the format
    /// version and every tensor's name and shape.
    pub fn load(path: &Path) -> Result<Self, FlowError> {
        let loaded = persist::load(path, "conditional-estimator")?;
        let header: Header =
            serde_json::from_str(&loaded.model_json).map_err(|e| FlowError::Load {
                path: path.display().to_string(),
                why: format!("bad model description: {e}"),
            })?;
        let est = Self::build(header, Device::Cpu).map_err(|e| FlowError::Load {
            path: path.display().to_string(),
            why: format!("cannot rebuild the architecture: {e}"),
        })?;
        persist::restore_params(path, &est.params, &loaded)?;
        Ok(est)
    }
}

/// A native MAF objective: (kernel, standardised inputs, standardised context, batch rows,
/// gradients wanted) to batch sums.
type NativeEval<'a> =
    dyn Fn(&dyn NativeFlow, &[f32], &[f32], &[u32], bool) -> Evaluation + Sync + 'a;

/// Loss and gradients of a batch sum turned into those of the batch mean.
fn mean_of(ev: Evaluation, rows: usize) -> (f64, Option<Grads>) {
    let inv = 1.0 / rows.max(1) as f64;
    let grads = ev.grads.map(|gs| {
        gs.into_iter()
            .map(|g| {
                g.map(|mut g| {
                    g.iter_mut().for_each(|v| *v *= inv as f32);
                    g
                })
            })
            .collect()
    });
    (ev.loss_sum * inv, grads)
}

/// Rows standardised as the graph does it: f32 values minus the f32 mean, over the f32 std.
fn standardised_f32(data: &[f64], z: &ZScore) -> Vec<f32> {
    let dim = z.mean.len().max(1);
    data.iter()
        .enumerate()
        .map(|(i, &v)| (v as f32 - z.mean[i % dim] as f32) / z.std[i % dim] as f32)
        .collect()
}

/// Input statistics and category lists of an MNLE: the discrete columns keep their values
/// (mean 0, deviation 1), the continuous ones are standardised after the optional log.
fn mixed_statistics(
    cfg: &EstimatorConfig,
    inputs: &[f64],
    d: usize,
) -> Result<(ZScore, Vec<Vec<f64>>), FlowError> {
    let k = cfg.num_discrete;
    if k == 0 || k >= d {
        return Err(FlowError::Invalid {
            what: "num_discrete",
            why: format!(
                "{k} discrete columns of {d}: MNLE needs at least one discrete and one continuous column"
            ),
        });
    }
    let mut categories = Vec::with_capacity(k);
    for j in 0..k {
        let mut vals: Vec<f64> = inputs.chunks_exact(d).map(|r| r[j]).collect();
        vals.sort_by(f64::total_cmp);
        vals.dedup();
        if vals.len() > MAX_CATEGORIES {
            return Err(FlowError::Invalid {
                what: "num_discrete",
                why: format!(
                    "discrete column {j} has {} distinct values (at most {MAX_CATEGORIES}); is it continuous?",
                    vals.len()
                ),
            });
        }
        categories.push(vals);
    }
    let mut cont = Vec::with_capacity(inputs.len() / d * (d - k));
    for (r, row) in inputs.chunks_exact(d).enumerate() {
        for (c, &v) in row[k..].iter().enumerate() {
            if cfg.log_transform && v <= 0.0 {
                return Err(FlowError::Invalid {
                    what: "inputs",
                    why: format!(
                        "row {r}, column {}: value {v} is not positive (log_transform is on)",
                        k + c
                    ),
                });
            }
            cont.push(if cfg.log_transform { v.ln() } else { v });
        }
    }
    let z = ZScore::fit(&cont, d - k, d - k);
    let mean = std::iter::repeat_n(0.0, k).chain(z.mean).collect();
    let std = std::iter::repeat_n(1.0, k).chain(z.std).collect();
    Ok((ZScore { mean, std }, categories))
}
