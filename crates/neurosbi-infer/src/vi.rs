//! Variational posteriors: a normalising flow q(theta) fitted to a posterior's potential by
//! minimising the reverse KL divergence (sbi `VIPosterior`, `vi_method = "rKL"`).
//!
//! The flow lives in the prior's unconstrained space and its forward direction is sampling:
//! `u = loc + exp(log_scale) * f_L(... f_1(z))`, `z ~ N(0, I)`, where each `f_l` is a
//! RealNVP affine coupling layer (Dinh et al. 2017) whose scale and shift come from a small
//! MLP of the other half of the coordinates. Reparameterised samples and their log density
//! come out of one pass, so each step of the reverse-KL gradient costs one flow pass and one
//! potential evaluation with its gradient. In one dimension the flow is the affine layer
//! alone (a Gaussian in unconstrained space).

use crate::error::{InferError, Result, invalid_arg};
use crate::prior::{Marginal, PriorSpec};
use neurosbi_flows::candle_core::{self, DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

impl From<candle_core::Error> for InferError {
    fn from(e: candle_core::Error) -> Self {
        InferError::Flow(e.into())
    }
}

/// Settings of variational inference (defaults follow sbi's `VIPosterior.train`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViConfig {
    /// Samples per gradient step (sbi: 256).
    pub num_particles: usize,
    /// Adam learning rate (sbi: 1e-3).
    pub learning_rate: f64,
    /// Learning rate multiplied by this after every step (sbi: 0.999).
    pub learning_rate_decay: f64,
    /// Maximum steps (sbi: 2 000).
    pub max_iterations: usize,
    /// Steps before convergence is checked.
    pub min_iterations: usize,
    /// Stop when the mean loss over a window of 100 steps improved by less than this
    /// since the previous window.
    pub tolerance: f64,
    /// Gradient norm clip (sbi: 10).
    pub clip_max_norm: f64,
    /// Affine coupling layers (none in one dimension).
    pub num_layers: usize,
    /// Hidden width of the coupling MLPs.
    pub hidden_features: usize,
}

impl Default for ViConfig {
    fn default() -> Self {
        Self {
            num_particles: 256,
            learning_rate: 1e-3,
            learning_rate_decay: 0.999,
            max_iterations: 2000,
            min_iterations: 300,
            tolerance: 1e-3,
            clip_max_norm: 10.0,
            num_layers: 4,
            hidden_features: 32,
        }
    }
}

impl ViConfig {
    fn validate(&self) -> Result<()> {
        let bad = |w: &str, r: &str| Err(invalid_arg(&format!("vi.{w}"), r));
        if self.num_particles < 2 {
            return bad("num_particles", "must be >= 2");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be positive");
        }
        if !(self.learning_rate_decay > 0.0 && self.learning_rate_decay <= 1.0) {
            return bad("learning_rate_decay", "must be in (0, 1]");
        }
        if self.max_iterations == 0 || self.hidden_features == 0 {
            return bad("max_iterations", "iterations and widths must be positive");
        }
        if self.clip_max_norm.is_nan() || self.clip_max_norm <= 0.0 {
            return bad("clip_max_norm", "must be positive");
        }
        Ok(())
    }
}

/// The bijection between the prior's support and R^d in tensor form, and the log density
/// terms the reverse KL needs in unconstrained coordinates.
#[derive(Clone, Debug)]
pub(crate) enum Support {
    Independent(Vec<Marginal>),
    /// Multivariate normal prior (identity map): mean and precision, row-major.
    Gaussian {
        mean: Vec<f64>,
        precision: Vec<f64>,
        log_norm: f64,
    },
}

fn log_sigmoid(u: &Tensor) -> candle_core::Result<Tensor> {
    // log sigmoid(u) = -softplus(-u) = min(u, 0) - log(1 + exp(-|u|)).
    let m = u.minimum(0f32)?;
    m - ((u.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

fn column(u: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    u.narrow(1, k, 1)?.squeeze(1)
}

impl Support {
    pub(crate) fn from_spec(spec: Option<PriorSpec>) -> Result<Self> {
        match spec {
            Some(PriorSpec::Independent(p)) => Ok(Support::Independent(p.marginals().to_vec())),
            Some(PriorSpec::MultivariateNormal(p)) => {
                let d = p.mean().len();
                let cov = nalgebra::DMatrix::from_row_slice(d, d, p.cov());
                let c = cov
                    .cholesky()
                    .ok_or_else(|| invalid_arg("prior covariance", "not positive definite"))?;
                let log_det: f64 = (0..d).map(|i| 2.0 * c.l()[(i, i)].ln()).sum();
                let inv = c.inverse();
                let precision = (0..d * d).map(|i| inv[(i / d, i % d)]).collect();
                Ok(Support::Gaussian {
                    mean: p.mean().to_vec(),
                    precision,
                    log_norm: -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det),
                })
            }
            None => Err(invalid_arg(
                "posterior = vi",
                "variational inference needs a built-in prior (a user Prior has no differentiable form)",
            )),
        }
    }

    /// theta(u), column by column (matches `Prior::constrain`).
    pub(crate) fn constrain(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        let Support::Independent(ms) = self else {
            return Ok(u.clone());
        };
        let cols = ms
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let c = column(u, k)?;
                match *m {
                    Marginal::Uniform { low, high } => {
                        (candle_nn::ops::sigmoid(&c)? * (high - low))? + low
                    }
                    Marginal::Normal { .. } => Ok(c),
                    Marginal::LogUniform { low, high } => {
                        let (a, b) = (low.ln(), high.ln());
                        ((candle_nn::ops::sigmoid(&c)? * (b - a))? + a)?.exp()
                    }
                    Marginal::LogNormal { .. } => c.exp(),
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::stack(&cols, 1)
    }

    /// log |d theta / d u| per row.
    pub(crate) fn log_jacobian(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        let b = u.dim(0)?;
        let mut acc = Tensor::zeros(b, DType::F32, u.device())?;
        let Support::Independent(ms) = self else {
            return Ok(acc);
        };
        for (k, m) in ms.iter().enumerate() {
            let c = column(u, k)?;
            let term = match *m {
                Marginal::Uniform { low, high } => {
                    ((log_sigmoid(&c)? + log_sigmoid(&c.neg()?)?)? + (high - low).ln())?
                }
                Marginal::Normal { .. } => continue,
                Marginal::LogUniform { low, high } => {
                    let (a, b2) = (low.ln(), high.ln());
                    let lt = ((candle_nn::ops::sigmoid(&c)? * (b2 - a))? + a)?;
                    ((lt + (log_sigmoid(&c)? + log_sigmoid(&c.neg()?)?)?)? + (b2 - a).ln())?
                }
                Marginal::LogNormal { .. } => c,
            };
            acc = (acc + term)?;
        }
        Ok(acc)
    }

    /// log prior(theta(u)) + log |d theta / d u| per row: the prior's density in u.
    pub(crate) fn log_prior_u(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        let b = u.dim(0)?;
        match self {
            Support::Independent(ms) => {
                let mut acc = Tensor::zeros(b, DType::F32, u.device())?;
                for (k, m) in ms.iter().enumerate() {
                    let c = column(u, k)?;
                    let normal = |mean: f64, sd: f64| -> candle_core::Result<Tensor> {
                        let z = ((c.clone() - mean)? / sd)?;
                        (z.sqr()? * -0.5)? - (sd.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln())
                    };
                    let term = match *m {
                        // Uniform and log-uniform: the prior and the Jacobian leave the
                        // logistic density of u.
                        Marginal::Uniform { .. } | Marginal::LogUniform { .. } => {
                            (log_sigmoid(&c)? + log_sigmoid(&c.neg()?)?)?
                        }
                        Marginal::Normal { mean, std } => normal(mean, std)?,
                        Marginal::LogNormal { mu, sigma } => normal(mu, sigma)?,
                    };
                    acc = (acc + term)?;
                }
                Ok(acc)
            }
            Support::Gaussian {
                mean,
                precision,
                log_norm,
            } => {
                let d = mean.len();
                let m = Tensor::from_vec(
                    mean.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    (1, d),
                    u.device(),
                )?;
                let p = Tensor::from_vec(
                    precision.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    (d, d),
                    u.device(),
                )?;
                let c = u.broadcast_sub(&m)?;
                let q = (c.matmul(&p)? * &c)?.sum(1)?;
                (q * -0.5)? + *log_norm
            }
        }
    }
}

struct Coupling {
    /// Indices of the conditioning and the transformed coordinates.
    cond: Vec<u32>,
    trans: Vec<u32>,
    /// Inverse of the permutation `cond ++ trans`.
    restore: Vec<u32>,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    w3: Var,
    b3: Var,
}

/// Scales are bounded to `exp(+-3)` per layer for stable early steps.
const SCALE_BOUND: f64 = 3.0;

fn uniform_var(rng: &mut ChaCha8Rng, rows: usize, cols: usize, bound: f64) -> Result<Var> {
    use rand::RngExt;
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        v,
        (rows, cols),
        &Device::Cpu,
    )?)?)
}

fn zeros_var(rows: usize, cols: usize) -> Result<Var> {
    Ok(Var::zeros((rows, cols), DType::F32, &Device::Cpu)?)
}

impl Coupling {
    fn new(d: usize, layer: usize, hidden: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        // Alternate which half conditions, and shift the split so every coordinate is
        // transformed by some layer for odd d too.
        let (mut cond, mut trans) = (Vec::new(), Vec::new());
        for k in 0..d {
            if (k + layer).is_multiple_of(2) {
                cond.push(k as u32);
            } else {
                trans.push(k as u32);
            }
        }
        let mut restore = vec![0u32; d];
        for (pos, &k) in cond.iter().chain(trans.iter()).enumerate() {
            restore[k as usize] = pos as u32;
        }
        let (a, b) = (cond.len(), trans.len());
        let bound = |fan_in: usize| 1.0 / (fan_in as f64).sqrt();
        Ok(Self {
            w1: uniform_var(rng, a, hidden, bound(a))?,
            b1: zeros_var(1, hidden)?,
            w2: uniform_var(rng, hidden, hidden, bound(hidden))?,
            b2: zeros_var(1, hidden)?,
            // Zero output layer: every coupling starts as the identity.
            w3: zeros_var(hidden, 2 * b)?,
            b3: zeros_var(1, 2 * b)?,
            cond,
            trans,
            restore,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
            self.w3.clone(),
            self.b3.clone(),
        ]
    }

    fn scale_shift(&self, xa: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let h = xa
            .matmul(self.w1.as_tensor())?
            .broadcast_add(self.b1.as_tensor())?
            .tanh()?;
        let h = h
            .matmul(self.w2.as_tensor())?
            .broadcast_add(self.b2.as_tensor())?
            .tanh()?;
        let o = h
            .matmul(self.w3.as_tensor())?
            .broadcast_add(self.b3.as_tensor())?;
        let b = self.trans.len();
        let s = ((o.narrow(1, 0, b)? / SCALE_BOUND)?.tanh()? * SCALE_BOUND)?;
        Ok((s, o.narrow(1, b, b)?))
    }

    fn idx(v: &[u32]) -> candle_core::Result<Tensor> {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu)
    }

    /// y and log |dy/dx| per row.
    fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let xa = x.index_select(&Self::idx(&self.cond)?, 1)?;
        let xb = x.index_select(&Self::idx(&self.trans)?, 1)?;
        let (s, t) = self.scale_shift(&xa)?;
        let yb = ((xb * s.exp()?)? + t)?;
        let y = Tensor::cat(&[&xa, &yb], 1)?.index_select(&Self::idx(&self.restore)?, 1)?;
        Ok((y, s.sum(1)?))
    }

    /// x and log |dy/dx| per row (of the forward map at x).
    fn inverse(&self, y: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let ya = y.index_select(&Self::idx(&self.cond)?, 1)?;
        let yb = y.index_select(&Self::idx(&self.trans)?, 1)?;
        let (s, t) = self.scale_shift(&ya)?;
        let xb = ((yb - t)? * s.neg()?.exp()?)?;
        let x = Tensor::cat(&[&ya, &xb], 1)?.index_select(&Self::idx(&self.restore)?, 1)?;
        Ok((x, s.sum(1)?))
    }
}

/// A trained variational posterior q(theta) for one observation.
pub struct VariationalFlow {
    dim: usize,
    layers: Vec<Coupling>,
    loc: Var,
    log_scale: Var,
    support: Support,
    /// Final mean reverse-KL loss (up to the potential's unknown normaliser).
    pub final_loss: f64,
    /// Steps taken.
    pub iterations: usize,
}

impl std::fmt::Debug for VariationalFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VariationalFlow")
            .field("dim", &self.dim)
            .field("layers", &self.layers.len())
            .field("final_loss", &self.final_loss)
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// The potential a flow is fitted to: per-row log density of theta up to a constant,
/// differentiable, and whether it already contains the prior.
pub trait TensorPotential {
    /// Unnormalised log density of theta (rows of `theta`), shape (B,).
    fn log_density(&self, theta: &Tensor) -> candle_core::Result<Tensor>;
    /// True when `log_density` excludes the prior (NLE / NRE); false for NPE's q(theta | x).
    fn needs_prior(&self) -> bool;
}

fn normal_tensor(n: usize, d: usize, rng: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            z as f32
        })
        .collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu)
}

impl VariationalFlow {
    fn new(
        support: Support,
        d: usize,
        loc: &[f64],
        log_scale: &[f64],
        cfg: &ViConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let layers = if d >= 2 {
            (0..cfg.num_layers)
                .map(|l| Coupling::new(d, l, cfg.hidden_features, rng))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let t = |v: &[f64]| -> Result<Var> {
            Ok(Var::from_tensor(&Tensor::from_vec(
                v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                (1, d),
                &Device::Cpu,
            )?)?)
        };
        Ok(Self {
            dim: d,
            layers,
            loc: t(loc)?,
            log_scale: t(log_scale)?,
            support,
            final_loss: f64::NAN,
            iterations: 0,
        })
    }

    fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = self.layers.iter().flat_map(Coupling::vars).collect();
        v.push(self.loc.clone());
        v.push(self.log_scale.clone());
        v
    }

    /// Reparameterised draws: (u, log q(u)) for base noise z.
    fn push_forward(&self, z: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let d = self.dim as f64;
        let mut lq = ((z.sqr()?.sum(1)? * -0.5)? - 0.5 * d * (2.0 * std::f64::consts::PI).ln())?;
        let mut x = z.clone();
        for l in &self.layers {
            let (y, ld) = l.forward(&x)?;
            lq = (lq - ld)?;
            x = y;
        }
        let u = x
            .broadcast_mul(&self.log_scale.as_tensor().exp()?)?
            .broadcast_add(self.loc.as_tensor())?;
        let lq = (lq
            - self
                .log_scale
                .as_tensor()
                .sum_all()?
                .broadcast_as(z.dim(0)?)?)?;
        Ok((u, lq))
    }

    /// Fits the flow to `target` by reverse KL over the support of `prior` (a built-in
    /// prior). `init` are rows of theta roughly from the posterior (e.g. importance-resampled
    /// prior draws): the affine layer starts at their unconstrained mean and spread.
    pub fn fit(
        target: &dyn TensorPotential,
        prior: &dyn crate::Prior,
        init: &[f64],
        cfg: &ViConfig,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let support = Support::from_spec(prior.spec())?;
        let d = prior.dim();
        let n0 = crate::error::rows_of("VI initial draws", init, d)?;
        if n0 < 2 {
            return Err(invalid_arg("VI initial draws", "need at least 2 rows"));
        }
        let mut u0 = vec![0.0; init.len()];
        for (r, o) in init.chunks(d).zip(u0.chunks_mut(d)) {
            prior.unconstrain(r, o);
        }
        let mut mean = vec![0.0; d];
        let mut var = vec![0.0; d];
        for r in u0.chunks(d) {
            for k in 0..d {
                mean[k] += r[k] / n0 as f64;
            }
        }
        for r in u0.chunks(d) {
            for k in 0..d {
                var[k] += (r[k] - mean[k]).powi(2) / (n0 - 1) as f64;
            }
        }
        let log_scale: Vec<f64> = var.iter().map(|v| 0.5 * v.max(1e-12).ln()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flow = Self::new(support, d, &mean, &log_scale, cfg, &mut rng)?;
        let vars = flow.vars();
        use candle_nn::Optimizer;
        use neurosbi_flows::candle_core::backprop::GradStore;
        let mut opt = candle_nn::AdamW::new(
            vars.clone(),
            candle_nn::ParamsAdamW {
                lr: cfg.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let mut losses = Vec::with_capacity(cfg.max_iterations);
        let mut lr = cfg.learning_rate;
        let window = 100;
        for it in 0..cfg.max_iterations {
            let z = normal_tensor(cfg.num_particles, d, &mut rng)?;
            let (u, lq) = flow.push_forward(&z)?;
            let theta = flow.support.constrain(&u)?;
            let mut lp = target.log_density(&theta)?;
            lp = if target.needs_prior() {
                (lp + flow.support.log_prior_u(&u)?)?
            } else {
                (lp + flow.support.log_jacobian(&u)?)?
            };
            let loss = (lq - lp)?.mean_all()?;
            let lv = f64::from(loss.to_scalar::<f32>()?);
            if !lv.is_finite() {
                return Err(InferError::NonFinite {
                    what: format!(
                        "variational loss at step {it} (the potential is not finite at some draw)"
                    ),
                    index: it,
                });
            }
            losses.push(lv);
            let mut grads: GradStore = loss.backward()?;
            let mut sq = 0.0f64;
            for v in &vars {
                if let Some(g) = grads.get(v.as_tensor()) {
                    sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
                }
            }
            let norm = sq.sqrt();
            if norm > cfg.clip_max_norm {
                let f = cfg.clip_max_norm / norm;
                for v in &vars {
                    if let Some(g) = grads.remove(v.as_tensor()) {
                        grads.insert(v.as_tensor(), (g * f)?);
                    }
                }
            }
            opt.step(&grads)?;
            lr *= cfg.learning_rate_decay;
            opt.set_learning_rate(lr);
            flow.iterations = it + 1;
            if it + 1 >= cfg.min_iterations.max(2 * window) && (it + 1) % window == 0 {
                let n = losses.len();
                let last: f64 = losses[n - window..].iter().sum::<f64>() / window as f64;
                let prev: f64 =
                    losses[n - 2 * window..n - window].iter().sum::<f64>() / window as f64;
                if prev - last < cfg.tolerance {
                    break;
                }
            }
        }
        let n = losses.len();
        let k = n.min(window);
        flow.final_loss = losses[n - k..].iter().sum::<f64>() / k as f64;
        Ok(flow)
    }

    /// Dimension of theta.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `n` draws of theta (row-major), deterministic for the seed.
    pub fn sample(&self, n: usize, seed: u64, prior: &dyn crate::Prior) -> Result<Vec<f64>> {
        let d = self.dim;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * d);
        let chunk = 10_000;
        let mut done = 0;
        while done < n {
            let m = chunk.min(n - done);
            let z = normal_tensor(m, d, &mut rng)?;
            let (u, _) = self.push_forward(&z)?;
            let u: Vec<f64> = u
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from)
                .collect();
            let mut t = vec![0.0; d];
            for r in u.chunks(d) {
                prior.constrain(r, &mut t);
                out.extend_from_slice(&t);
            }
            done += m;
        }
        Ok(out)
    }

    /// log q(theta) for rows of theta (`-inf` outside the prior support).
    pub fn log_prob(&self, theta: &[f64], prior: &dyn crate::Prior) -> Result<Vec<f64>> {
        let d = self.dim;
        let n = crate::error::rows_of("theta", theta, d)?;
        let mut u = vec![0.0; n * d];
        let mut inside = vec![true; n];
        for (i, (r, o)) in theta.chunks(d).zip(u.chunks_mut(d)).enumerate() {
            if prior.in_support(r) {
                prior.unconstrain(r, o);
                if o.iter().any(|v| !v.is_finite()) {
                    inside[i] = false;
                    o.fill(0.0);
                }
            } else {
                inside[i] = false;
            }
        }
        let ut = Tensor::from_vec(
            u.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (n, d),
            &Device::Cpu,
        )?;
        // Invert the affine layer, then the couplings in reverse order.
        let mut x = ut
            .broadcast_sub(self.loc.as_tensor())?
            .broadcast_div(&self.log_scale.as_tensor().exp()?)?;
        let mut ld = self
            .log_scale
            .as_tensor()
            .sum_all()?
            .broadcast_as(n)?
            .contiguous()?;
        for l in self.layers.iter().rev() {
            let (xp, s) = l.inverse(&x)?;
            ld = (ld + s)?;
            x = xp;
        }
        let lz = ((x.sqr()?.sum(1)? * -0.5)? - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln())?;
        let jac = self.support.log_jacobian(&ut)?;
        let lq = ((lz - ld)? - jac)?;
        let v = lq.to_vec1::<f32>()?;
        Ok(v.into_iter()
            .zip(inside)
            .map(|(l, ok)| if ok { f64::from(l) } else { f64::NEG_INFINITY })
            .collect())
    }
}
