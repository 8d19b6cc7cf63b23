//! [`ConditionalEstimator`]: a conditional density q(inputs | context) with built-in
//! z-scoring, training, sampling and persistence.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::FlowError;
use crate::config::{EmbeddingConfig, EstimatorConfig, EstimatorKind, TrainConfig};
use crate::embedding::Embedding;
use crate::error::rows_of;
use crate::maf::Maf;
use crate::mdn::Mdn;
use crate::nn::{Params, std_normal_log_prob};
use crate::nsf::Nsf;
use crate::persist;
use crate::train::{TrainObserver, TrainReport, TrainState, fit};
use crate::zscore::ZScore;

#[derive(Clone)]
pub(crate) enum Net {
    Maf(Maf),
    Nsf(Nsf),
    Mdn(Mdn),
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
        let header = Header {
            config: cfg.clone(),
            d_in,
            d_ctx,
            seed,
            inputs: ZScore::fit(inputs, d_in, d_in),
            context: ZScore::fit(context, d_ctx, group.max(1)),
            permutations: Vec::new(),
        };
        Self::build(header, Device::Cpu)
    }

    fn build(mut header: Header, device: Device) -> Result<Self, FlowError> {
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
        let mut params = Params::new(&device);
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
        };
        let (in_mean, in_std) = header.inputs.tensors(&device)?;
        let (ctx_mean, ctx_std) = header.context.tensors(&device)?;
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
    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    #[cfg(test)]
    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// Standardised, embedded context.
    fn embed(&self, context: &Tensor) -> candle_core::Result<Tensor> {
        let c = context
            .to_dtype(DType::F32)?
            .broadcast_sub(&self.ctx_mean)?
            .broadcast_div(&self.ctx_std)?;
        match &self.embedding {
            Some(e) => e.forward(&c),
            None => Ok(c),
        }
    }

    /// Differentiable log q(inputs | context) in raw units (z-scoring and its log-Jacobian
    /// included), shape (B,). `context` has B rows or one row (broadcast).
    pub fn log_prob_tensor(
        &self,
        inputs: &Tensor,
        context: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let b = inputs.dim(0)?;
        let mut ctx = self.embed(context)?;
        if ctx.dim(0)? != b {
            ctx = ctx.broadcast_as((b, ctx.dim(1)?))?.contiguous()?;
        }
        let x = inputs
            .to_dtype(DType::F32)?
            .broadcast_sub(&self.in_mean)?
            .broadcast_div(&self.in_std)?;
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
        };
        lp - self.header.inputs.log_std_sum()
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
        let (di, dc) = (self.header.d_in, self.header.d_ctx);
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
                parts.push(inverse(&z.narrow(0, s, len)?, &ctx)?);
            }
            Tensor::cat(&parts, 0)
        };
        let x = match &self.net {
            Net::Maf(f) => flow_sample(&|z, c| f.inverse(z, Some(c)), &mut rng)?,
            Net::Nsf(f) => flow_sample(&|z, c| f.inverse(z, Some(c)), &mut rng)?,
            Net::Mdn(m) => m.sample(n, &ctx1, &mut rng)?,
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

    /// Trains with maximum likelihood (loss = -mean log q). Calling again continues from the
    /// current weights (with `cfg.resume`, also from the optimiser state and epoch count).
    pub fn train(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
    ) -> Result<TrainReport, FlowError> {
        self.train_with_loss(inputs, context, cfg, obs, &|s, x, c| {
            s.log_prob_tensor(x, c)?.mean_all()?.neg()
        })
    }

    /// Trains with a caller-supplied loss on a batch (e.g. the APT / SNPE-C atomic loss).
    /// The closure gets the estimator and the batch's inputs (B, d_in) and context
    /// (B, d_ctx) in RAW units (f32), and returns a scalar loss to minimise; the validation
    /// loss uses the same closure.
    pub fn train_with_loss(
        &mut self,
        inputs: &[f64],
        context: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
        loss: &dyn Fn(&Self, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<TrainReport, FlowError> {
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
