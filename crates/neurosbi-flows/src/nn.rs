//! Building blocks: a named parameter store initialised from our own seeded RNG, linear
//! layers, MLP / residual nets, and an Adam optimiser with global-norm clipping.

use candle_core::{D, DType, Device, Result, Tensor, Var, backprop::GradStore};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// All trainable tensors of a model, in creation order, with stable names for persistence.
#[derive(Clone)]
pub(crate) struct Params {
    pub(crate) vars: Vec<(String, Var)>,
    pub(crate) device: Device,
    /// F32 for every model; F64 only for the reference copies of
    /// `ConditionalEstimator::f64_reference` that measure f32 rounding.
    pub(crate) dtype: DType,
}

impl Params {
    pub(crate) fn new(device: &Device) -> Self {
        Self::with_dtype(device, DType::F32)
    }

    pub(crate) fn with_dtype(device: &Device, dtype: DType) -> Self {
        Self {
            vars: Vec::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// A new variable filled from U(-bound, bound) with our RNG (candle's own initialisers
    /// cannot be seeded).
    pub(crate) fn uniform(
        &mut self,
        name: String,
        shape: &[usize],
        bound: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Var> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect();
        self.with_values(name, shape, data)
    }

    pub(crate) fn with_values(
        &mut self,
        name: String,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<Var> {
        let v =
            Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?)?;
        self.vars.push((name, v.clone()));
        Ok(v)
    }

    /// Linear layer with PyTorch's default initialisation, U(+-1/sqrt(fan_in)) for both
    /// weights and bias, so that untrained nets behave like sbi's.
    pub(crate) fn linear(
        &mut self,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Linear> {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        self.linear_with_bound(name, fan_in, fan_out, bound, bound, rng)
    }

    pub(crate) fn linear_with_bound(
        &mut self,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        w_bound: f64,
        b_bound: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Linear> {
        let w = self.uniform(format!("{name}.weight"), &[fan_in, fan_out], w_bound, rng)?;
        let b = self.uniform(format!("{name}.bias"), &[fan_out], b_bound, rng)?;
        Ok(Linear { w, b })
    }

    pub(crate) fn num_values(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Copies of the current values (for "best weights" bookkeeping).
    pub(crate) fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.vars
            .iter()
            .map(|(_, v)| v.as_tensor().copy())
            .collect()
    }

    pub(crate) fn restore(&self, snap: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.vars.iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }

    /// The values as host vectors (f32, flattened), one per variable.
    pub(crate) fn to_host(&self) -> Result<HostWeights> {
        self.vars
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect()
    }

    /// Sets the values from host vectors as returned by [`Params::to_host`].
    pub(crate) fn set_host(&self, host: &[Vec<f32>]) -> Result<()> {
        for ((_, v), w) in self.vars.iter().zip(host) {
            let t = v.as_tensor();
            v.set(&Tensor::from_vec(w.clone(), t.shape(), t.device())?)?;
        }
        Ok(())
    }
}

/// One piece of an in-place Adam update: weights, first and second moments, gradient.
type AdamPiece<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a [f32]);

/// Parameter values on the host, one flattened f32 vector per variable of a [`Params`].
pub(crate) type HostWeights = Vec<Vec<f32>>;

/// Affine layer `x W + b` with `W` stored as (in, out) so no transpose is needed.
#[derive(Clone)]
pub(crate) struct Linear {
    pub(crate) w: Var,
    pub(crate) b: Var,
}

impl Linear {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::fastops::linear(x, self.w.as_tensor(), self.b.as_tensor())
    }
    /// Forward with an elementwise 0/1 mask on the weights (MADE).
    pub(crate) fn forward_masked(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        crate::fastops::linear(x, &(self.w.as_tensor() * mask)?, self.b.as_tensor())
    }
}

/// Numerically stable softplus, `relu(x) + ln(1 + exp(-|x|))` (candle-nn has none).
pub(crate) fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Inverse of softplus for a positive scalar (used for identity initialisations).
pub(crate) fn inv_softplus(y: f64) -> f64 {
    y.exp_m1().ln()
}

/// Sum of log N(z; 0, I) over the last dimension, shape (B,).
pub(crate) fn std_normal_log_prob(z: &Tensor) -> Result<Tensor> {
    let d = z.dim(D::Minus1)? as f64;
    (z.sqr()?.sum(D::Minus1)? * -0.5)? - 0.5 * d * (2.0 * std::f64::consts::PI).ln()
}

/// ReLU multi-layer perceptron: `n_hidden` hidden layers, linear output.
#[derive(Clone)]
pub(crate) struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    pub(crate) fn new(
        p: &mut Params,
        name: &str,
        d_in: usize,
        hidden: usize,
        n_hidden: usize,
        d_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mut layers = Vec::new();
        let mut prev = d_in;
        for i in 0..n_hidden {
            layers.push(p.linear(&format!("{name}.{i}"), prev, hidden, rng)?);
            prev = hidden;
        }
        layers.push(p.linear(&format!("{name}.out"), prev, d_out, rng)?);
        Ok(Self { layers })
    }
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
}

/// nflows' `ResidualNet` with context: a linear layer on `[inputs, context]`, `num_blocks`
/// pre-activation residual blocks (ReLU, linear, ReLU, linear, gated by
/// `sigmoid(linear(context))`, as nflows' GLU), and a linear output layer. The last linear
/// of each block starts near zero (U(+-1e-3)), as nflows' `zero_initialization`.
#[derive(Clone)]
pub(crate) struct ResidualNet {
    pub(crate) initial: Linear,
    pub(crate) blocks: Vec<(Linear, Linear, Option<Linear>)>,
    pub(crate) last: Linear,
}

impl ResidualNet {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        p: &mut Params,
        name: &str,
        d_in: usize,
        d_ctx: usize,
        hidden: usize,
        num_blocks: usize,
        d_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let initial = p.linear(&format!("{name}.initial"), d_in + d_ctx, hidden, rng)?;
        let mut blocks = Vec::new();
        for i in 0..num_blocks {
            let l0 = p.linear(&format!("{name}.block{i}.linear0"), hidden, hidden, rng)?;
            let l1 = p.linear_with_bound(
                &format!("{name}.block{i}.linear1"),
                hidden,
                hidden,
                1e-3,
                1e-3,
                rng,
            )?;
            let c = if d_ctx > 0 {
                Some(p.linear(&format!("{name}.block{i}.context"), d_ctx, hidden, rng)?)
            } else {
                None
            };
            blocks.push((l0, l1, c));
        }
        let last = p.linear(&format!("{name}.final"), hidden, d_out, rng)?;
        Ok(Self {
            initial,
            blocks,
            last,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, ctx: Option<&Tensor>) -> Result<Tensor> {
        let input = match ctx {
            Some(c) => Tensor::cat(&[x, c], 1)?,
            None => x.clone(),
        };
        let mut h = self.initial.forward(&input)?;
        for (l0, l1, c) in &self.blocks {
            let t = l1.forward(&l0.forward(&h.relu()?)?.relu()?)?;
            let t = match (c, ctx) {
                (Some(cl), Some(cx)) => (t * candle_nn::ops::sigmoid(&cl.forward(cx)?)?)?,
                _ => t,
            };
            h = (h + t)?;
        }
        self.last.forward(&h)
    }
}

/// Adam (Kingma & Ba 2015, as `torch.optim.Adam` with weight decay 0) with optional
/// global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`. The update runs on
/// host vectors: one pass per variable instead of a dozen candle ops.
pub(crate) struct Adam {
    lr: f64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
}

impl Adam {
    pub(crate) fn new(params: &Params, lr: f64) -> Self {
        let m = params
            .vars
            .iter()
            .map(|(_, v)| vec![0.0; v.elem_count()])
            .collect::<Vec<_>>();
        Self {
            lr,
            v: m.clone(),
            m,
            t: 0,
        }
    }

    pub(crate) fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update; returns the gradient norm before clipping.
    pub(crate) fn step(
        &mut self,
        params: &Params,
        grads: &GradStore,
        clip: Option<f64>,
    ) -> Result<f64> {
        let mut gs: Vec<Option<Vec<f32>>> = Vec::with_capacity(params.vars.len());
        for (_, v) in &params.vars {
            match grads.get(v.as_tensor()) {
                Some(g) => gs.push(Some(
                    g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
                )),
                None => gs.push(None),
            }
        }
        self.step_host(params, &gs, clip)
    }

    /// [`Adam::step`] with gradients given as host vectors, one per variable of `params`
    /// (`None`: no gradient, the variable is left alone).
    pub(crate) fn step_host(
        &mut self,
        params: &Params,
        gs: &[Option<Vec<f32>>],
        clip: Option<f64>,
    ) -> Result<f64> {
        let mut host = params.to_host()?;
        let norm = self.step_in_place(&mut host, gs, clip);
        params.set_host(&host)?;
        Ok(norm)
    }

    /// One update of host weights in place (native training keeps its weights on the host
    /// between steps and writes them to the tensors once per epoch). Returns the gradient
    /// norm before clipping. Element-wise, so splitting it over threads changes no value.
    pub(crate) fn step_in_place(
        &mut self,
        host: &mut [Vec<f32>],
        gs: &[Option<Vec<f32>>],
        clip: Option<f64>,
    ) -> f64 {
        let sq: f64 = gs
            .iter()
            .flatten()
            .map(|g| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
            .sum();
        let norm = sq.sqrt();
        let scale = match clip {
            Some(c) if norm > c => (c / (norm + 1e-6)) as f32,
            _ => 1.0,
        };
        self.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f32);
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2_sqrt = (1.0 - b2.powi(self.t)).sqrt() as f32;
        let step = (self.lr / bc1) as f32;
        let (b1, b2) = (b1 as f32, b2 as f32);
        // Pieces of a few thousand values: enough to be worth a task, and they keep the
        // second thread busy between the parallel gradient passes instead of asleep.
        const PIECE: usize = 4096;
        let mut jobs: Vec<AdamPiece<'_>> = Vec::new();
        for (((w, m), v), g) in host
            .iter_mut()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
            .zip(gs)
        {
            let Some(g) = g else { continue };
            for (((w, m), v), g) in w
                .chunks_mut(PIECE)
                .zip(m.chunks_mut(PIECE))
                .zip(v.chunks_mut(PIECE))
                .zip(g.chunks(PIECE))
            {
                jobs.push((w, m, v, g));
            }
        }
        let jobs: Vec<std::sync::Mutex<AdamPiece<'_>>> =
            jobs.into_iter().map(std::sync::Mutex::new).collect();
        crate::team::par_map(jobs.len(), |i| {
            let mut piece = jobs[i].lock().unwrap_or_else(|e| e.into_inner());
            let (w, m, v, g) = &mut *piece;
            // Zipped slices instead of indexing: no bounds checks, so the loop vectorises.
            for (((wj, mj), vj), &gj) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(*g) {
                let gj = gj * scale;
                *mj = b1 * *mj + (1.0 - b1) * gj;
                *vj = b2 * *vj + (1.0 - b2) * gj * gj;
                *wj -= step * *mj / (vj.sqrt() / bc2_sqrt + eps);
            }
        });
        norm
    }
}
