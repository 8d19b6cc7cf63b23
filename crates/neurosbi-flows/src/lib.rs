//! Conditional neural density estimators on candle: `q(theta | x)` (NPE) and `q(x | theta)`
//! (NLE) as mixture density networks, masked autoregressive flows and neural spline flows,
//! ratio classifiers for NRE, and embedding networks, with their training loop and
//! one-file persistence. Defaults follow the Python `sbi` toolkit 0.27.
//!
//! All data crossing the API is `f64`, row-major, with explicit dimensions; inside candle
//! the networks compute in `f32`. Training is deterministic for a seed on the CPU.
//!
//! * [`ConditionalEstimator`]: MDN, MAF or NSF ([`EstimatorConfig::mdn`], `maf`, `nsf`)
//!   with z-scoring of inputs and context built in, an optional [`EmbeddingConfig`] net on
//!   the context, [`ConditionalEstimator::train`] (Adam, early stopping, clipping, resume)
//!   or [`ConditionalEstimator::train_with_loss`] for custom losses, `log_prob`,
//!   `sample`, and one-file `save` / `load` (safetensors with a versioned JSON header).
//! * Generative kinds behind the same [`ConditionalEstimator`] API:
//!   flow matching ([`EstimatorConfig::fmpe`], FMPE) and score matching with a
//!   variance-exploding or variance-preserving SDE ([`EstimatorConfig::npse_ve`],
//!   [`EstimatorConfig::npse_vp`], NPSE), each a vector-field MLP with sbi's defaults,
//!   trained with its regression loss, sampled by integrating the probability-flow ODE with
//!   fixed-step RK4 (all rows of a chunk per step) and evaluated through the same ODE with
//!   the exact divergence (forward-mode tangents); and mixed discrete/continuous likelihoods
//!   ([`EstimatorConfig::mnle`], MNLE) with an autoregressive categorical part and an NSF
//!   for the continuous part.
//! * [`RatioClassifier`] with the NRE-A / NRE-B losses in [`losses`].
//! * [`device_from_name`] and `to_device` move a model to a CUDA GPU (crate feature `cuda`).
//!
//! On the CPU the heavy operations run through fused custom ops (linear layer with bias,
//! matrix product, rational tanh, the NSF's spline, each with its backward); candle's own
//! threaded matrix product was 4x slower for nets of this size on a busy 2-core machine.
//! A MAF, or an NSF with two or more inputs, without embedding net goes further: its
//! likelihood training (also APT's atomic loss, [`ConditionalEstimator::train_atomic`])
//! and its `log_prob` run in one native kernel (forward, backward and all gradients, no
//! graph) over fixed row chunks on the rayon pool, summed in chunk order, so the numbers do
//! not depend on the thread count. Sampling (the inverse) still runs on the graph.
//!
//! The ODE of FMPE / NPSE uses a fixed number of RK4 steps
//! ([`VectorFieldConfig::ode_steps`]) rather than sbi's adaptive solver, so that each row's
//! result is independent of the rows it is batched with and the cost is known in advance.
//!
//! One deliberate difference from nflows: MADE hidden units may have degree 0 (context
//! only), so the first feature of every MAF transform depends on the context; in nflows
//! its scale and shift are constants.
//!
//! ```
//! use neurosbi_flows::{ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig};
//! // theta | x ~ N(x, 0.5^2), 1-D, 400 pairs.
//! let x: Vec<f64> = (0..400).map(|i| (i as f64 / 40.0).sin()).collect();
//! let theta: Vec<f64> = x.iter().enumerate().map(|(i, v)| v + 0.5 * ((i * 7919 % 101) as f64 / 50.0 - 1.0)).collect();
//! let mut cfg = EstimatorConfig::maf();
//! cfg.num_transforms = 2;
//! let mut q = ConditionalEstimator::new(&cfg, &theta, &x, 1, 1, 0)?;
//! let train = TrainConfig { max_epochs: Some(3), ..TrainConfig::default() };
//! let report = q.train(&theta, &x, &train, &mut NoObserver)?;
//! assert_eq!(report.epochs, 3);
//! let draws = q.sample(100, &[0.3], 1)?;
//! assert_eq!(draws.len(), 100);
//! let lp = q.log_prob(&draws, &[0.3])?;
//! assert!(lp.iter().all(|v| v.is_finite()));
//! # Ok::<(), neurosbi_flows::FlowError>(())
//! ```

mod classifier;
mod config;
mod device;
mod embedding;
mod error;
mod estimator;
mod fastops;
mod fused_maf;
mod fused_nsf;
mod fused_spline;
pub mod losses;
mod maf;
mod mdn;
mod mnle;
mod nn;
mod nsf;
mod persist;
mod spline;
mod team;
mod train;
mod vfield;
mod vfops;
mod zscore;

pub use candle_core;
pub use classifier::{ClassifierConfig, ClassifierKind, RatioClassifier};
pub use config::{EmbeddingConfig, EstimatorConfig, EstimatorKind, TrainConfig, VectorFieldConfig};
pub use error::FlowError;
pub use estimator::ConditionalEstimator;
pub use fused_maf::mm as small_matmul;
pub use persist::FORMAT_VERSION;
pub use train::{NoObserver, TrainObserver, TrainReport};

pub use device::device_from_name;

#[cfg(test)]
mod tests;
