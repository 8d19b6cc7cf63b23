//! [`RatioClassifier`]: logit(theta, x) for neural ratio estimation, with built-in z-scoring
//! of both arguments, an optional embedding net for x, training, and persistence.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::FlowError;
use crate::config::{EmbeddingConfig, TrainConfig};
use crate::embedding::Embedding;
use crate::error::rows_of;
use crate::nn::{Mlp, Params, ResidualNet};
use crate::persist;
use crate::train::{TrainObserver, TrainReport, TrainState, fit};
use crate::zscore::ZScore;

/// Network family of a ratio classifier (sbi's `classifier_nn(model=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassifierKind {
    /// ReLU MLP with two hidden layers.
    Mlp,
    /// nflows-style residual net with `num_blocks` blocks (sbi's default "resnet").
    Residual,
}

/// Architecture of a [`RatioClassifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Network family.
    pub kind: ClassifierKind,
    /// Hidden width (sbi: 50).
    pub hidden_features: usize,
    /// Residual blocks (sbi: 2).
    pub num_blocks: usize,
    /// Optional embedding net applied to the (z-scored) x.
    pub embedding: Option<EmbeddingConfig>,
}

impl ClassifierConfig {
    /// sbi's "mlp" classifier.
    pub fn mlp() -> Self {
        Self {
            kind: ClassifierKind::Mlp,
            hidden_features: 50,
            num_blocks: 2,
            embedding: None,
        }
    }
    /// sbi's default "resnet" classifier.
    pub fn residual() -> Self {
        Self {
            kind: ClassifierKind::Residual,
            hidden_features: 50,
            num_blocks: 2,
            embedding: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    config: ClassifierConfig,
    d_theta: usize,
    d_x: usize,
    seed: u64,
    theta: ZScore,
    x: ZScore,
}

#[derive(Clone)]
enum Body {
    Mlp(Mlp),
    Residual(ResidualNet),
}

/// Ratio classifier for NRE: a scalar logit(theta, x).
pub struct RatioClassifier {
    header: Header,
    params: Params,
    body: Body,
    embedding: Option<Embedding>,
    device: Device,
    stats: [Tensor; 4],
    state: Option<TrainState>,
}

impl std::fmt::Debug for RatioClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatioClassifier")
            .field("config", &self.header.config)
            .field("d_theta", &self.header.d_theta)
            .field("d_x", &self.header.d_x)
            .finish()
    }
}

impl RatioClassifier {
    /// Builds an untrained classifier; z-score statistics come from the given pairs.
    pub fn new(
        cfg: &ClassifierConfig,
        theta: &[f64],
        x: &[f64],
        d_theta: usize,
        d_x: usize,
        seed: u64,
    ) -> Result<Self, FlowError> {
        let n = rows_of("theta", theta, d_theta)?;
        let m = rows_of("x", x, d_x)?;
        if n != m {
            return Err(FlowError::Shape {
                what: "x",
                expected: n * d_x,
                rows: n,
                dim: d_x,
                got: x.len(),
            });
        }
        if n < 2 {
            return Err(FlowError::Invalid {
                what: "theta",
                why: format!("{n} rows; z-scoring needs at least 2"),
            });
        }
        let group = match &cfg.embedding {
            Some(EmbeddingConfig::DeepSets { trial_dim, .. }) => *trial_dim,
            Some(EmbeddingConfig::Convolutional { .. }) => 1,
            _ => d_x,
        };
        let header = Header {
            config: cfg.clone(),
            d_theta,
            d_x,
            seed,
            theta: ZScore::fit(theta, d_theta, d_theta),
            x: ZScore::fit(x, d_x, group.max(1)),
        };
        Self::build(header, Device::Cpu)
    }

    fn build(header: Header, device: Device) -> Result<Self, FlowError> {
        let cfg = &header.config;
        if cfg.hidden_features == 0 || header.d_theta == 0 || header.d_x == 0 {
            return Err(FlowError::Invalid {
                what: "classifier",
                why: "widths and dimensions must be positive".into(),
            });
        }
        for (what, z, d) in [
            ("theta statistics", &header.theta, header.d_theta),
            ("x statistics", &header.x, header.d_x),
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
                let (e, d) = Embedding::new(e, &mut params, header.d_x, &mut rng)?;
                (Some(e), d)
            }
            None => (None, header.d_x),
        };
        let d_in = header.d_theta + d_emb;
        let h = cfg.hidden_features;
        let body = match cfg.kind {
            ClassifierKind::Mlp => Body::Mlp(Mlp::new(
                &mut params,
                "classifier",
                d_in,
                h,
                2,
                1,
                &mut rng,
            )?),
            ClassifierKind::Residual => Body::Residual(ResidualNet::new(
                &mut params,
                "classifier",
                d_in,
                0,
                h,
                cfg.num_blocks,
                1,
                &mut rng,
            )?),
        };
        let (tm, ts) = header.theta.tensors(&device, DType::F32)?;
        let (xm, xs) = header.x.tensors(&device, DType::F32)?;
        Ok(Self {
            header,
            params,
            body,
            embedding,
            device,
            stats: [tm, ts, xm, xs],
            state: None,
        })
    }

    /// Dimension of theta.
    pub fn dim_theta(&self) -> usize {
        self.header.d_theta
    }
    /// Dimension of x.
    pub fn dim_x(&self) -> usize {
        self.header.d_x
    }
    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A copy with weights and statistics on `device` (see
    /// [`crate::ConditionalEstimator::to_device`]); the optimiser state is not carried over.
    pub fn to_device(&self, device: &Device) -> Result<Self, FlowError> {
        let moved = Self::build(self.header.clone(), device.clone())?;
        crate::device::copy_params(&self.params, &moved.params)?;
        Ok(moved)
    }

    /// Differentiable logits for B pairs in raw units, shape (B,). `x` may have one row.
    pub fn logits_tensor(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        let [tm, ts, xm, xs] = &self.stats;
        let b = theta.dim(0)?;
        let t = theta
            .to_dtype(DType::F32)?
            .broadcast_sub(tm)?
            .broadcast_div(ts)?;
        let mut e = x
            .to_dtype(DType::F32)?
            .broadcast_sub(xm)?
            .broadcast_div(xs)?;
        if let Some(emb) = &self.embedding {
            e = emb.forward(&e)?;
        }
        if e.dim(0)? != b {
            e = e.broadcast_as((b, e.dim(1)?))?.contiguous()?;
        }
        let input = Tensor::cat(&[&t, &e], 1)?;
        let out = match &self.body {
            Body::Mlp(m) => m.forward(&input)?,
            Body::Residual(r) => r.forward(&input, None)?,
        };
        out.squeeze(1)
    }

    fn tensor(&self, data: &[f64], dim: usize) -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (data.len() / dim, dim),
            &self.device,
        )
    }

    /// Logits for n pairs; `x` has n rows or one row (broadcast).
    pub fn logits(&self, theta: &[f64], x: &[f64]) -> Result<Vec<f64>, FlowError> {
        let n = rows_of("theta", theta, self.header.d_theta)?;
        let m = rows_of("x", x, self.header.d_x)?;
        if m != n && m != 1 {
            return Err(FlowError::Shape {
                what: "x",
                expected: n * self.header.d_x,
                rows: n,
                dim: self.header.d_x,
                got: x.len(),
            });
        }
        let t = self.tensor(theta, self.header.d_theta)?;
        let xx = self.tensor(x, self.header.d_x)?;
        let l = self.logits_tensor(&t, &xx)?.detach();
        Ok(l.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
    }

    /// Trains with a loss on a batch of (theta, x) pairs in raw units, e.g.
    /// [`crate::losses::nre_a_loss`] or [`crate::losses::nre_b_loss`].
    pub fn train_with_loss(
        &mut self,
        theta: &[f64],
        x: &[f64],
        cfg: &TrainConfig,
        obs: &mut dyn TrainObserver,
        loss: &dyn Fn(&Self, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<TrainReport, FlowError> {
        if let Some(dev) = crate::device::training_device(cfg, &self.device)? {
            let mut moved = self.to_device(&dev)?;
            let here = TrainConfig {
                device: None,
                ..cfg.clone()
            };
            let rep = moved.train_with_loss(theta, x, &here, obs, loss)?;
            *self = moved.to_device(&self.device)?;
            return Ok(rep);
        }
        let n = rows_of("theta", theta, self.header.d_theta)?;
        let m = rows_of("x", x, self.header.d_x)?;
        if n != m {
            return Err(FlowError::Shape {
                what: "x",
                expected: n * self.header.d_x,
                rows: n,
                dim: self.header.d_x,
                got: x.len(),
            });
        }
        let t = self.tensor(theta, self.header.d_theta)?;
        let xx = self.tensor(x, self.header.d_x)?;
        let mut state = self.state.take();
        let this = &*self;
        let res = fit(&this.params, &mut state, n, cfg, obs, &|idx| {
            loss(this, &t.index_select(idx, 0)?, &xx.index_select(idx, 0)?)
        });
        self.state = state;
        res
    }

    /// Writes the classifier to one safetensors file (see [`crate::ConditionalEstimator::save`]).
    pub fn save(&self, path: &Path) -> Result<(), FlowError> {
        let json = serde_json::to_string(&self.header).map_err(|e| FlowError::Invalid {
            what: "header",
            why: e.to_string(),
        })?;
        persist::save(path, "ratio-classifier", json, &self.params)
    }

    /// Reads a classifier written by [`RatioClassifier::save`].
    pub fn load(path: &Path) -> Result<Self, FlowError> {
        let loaded = persist::load(path, "ratio-classifier")?;
        let header: Header =
            serde_json::from_str(&loaded.model_json).map_err(|e| FlowError::Load {
                path: path.display().to_string(),
                why: format!("bad model description: {e}"),
            })?;
        let c = Self::build(header, Device::Cpu).map_err(|e| FlowError::Load {
            path: path.display().to_string(),
            why: format!("cannot rebuild the architecture: {e}"),
        })?;
        persist::restore_params(path, &c.params, &loaded)?;
        Ok(c)
    }
}
