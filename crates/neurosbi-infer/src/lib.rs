//! The simulation-based inference engine: priors, the [`Simulator`] trait, a resumable
//! simulation [`Store`], the methods of the Python `sbi` toolkit chosen by name
//! ([`Method::from_name`]: NPE, SNPE-A/B/C, TSNPE, NLE, MNLE, NRE-A/B/C, BNRE, FMPE, NPSE,
//! rejection and SMC ABC) run by [`infer`], one [`Posterior`] type whatever the method (direct,
//! MCMC, importance, rejection and variational sampling, ensembles; see [`PosteriorKind`]),
//! diagnostics and the sbibm benchmark tasks.
//!
//! Any simulator can be used, not only neuron models: implement [`Simulator`] over batches of
//! parameter rows. Every random draw is seeded per simulation index, so a run gives the same
//! numbers whatever the thread count, batch size or interruption.
//!
//! ```
//! use neurosbi_infer::{FromPrior, IndependentPrior, Quiet, RunConfig, SimRng, SimulationError, Simulator, simulate};
//! use rand::RngExt;
//!
//! /// x = theta + uniform noise.
//! struct Noisy;
//! impl Simulator for Noisy {
//!     fn dim_theta(&self) -> usize { 2 }
//!     fn dim_x(&self) -> usize { 2 }
//!     fn simulate(&self, theta: &[f64], rngs: &mut [SimRng], x: &mut [f64]) -> Result<(), SimulationError> {
//!         for (i, rng) in rngs.iter_mut().enumerate() {
//!             for j in 0..2 { x[2 * i + j] = theta[2 * i + j] + rng.random::<f64>() - 0.5; }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let prior = IndependentPrior::uniform(&[-1.0, -1.0], &[1.0, 1.0])?;
//! let cfg = RunConfig { seed: 7, ..Default::default() };
//! let sims = simulate(&Noisy, &FromPrior(&prior), 500, &cfg, &mut Quiet)?;
//! assert_eq!(sims.len(), 500);
//! assert!(sims.theta.iter().all(|t| t.abs() <= 1.0));
//! # Ok::<(), neurosbi_infer::InferError>(())
//! ```

#![warn(missing_docs)]

pub mod abc;
pub mod diagnostics;
pub mod error;
pub mod invalid;
pub mod kde;
pub mod mcmc;
pub mod methods;
pub mod posterior;
pub mod prior;
pub mod provenance;
pub mod rng;
pub mod samplers;
pub mod selection;
pub mod simulator;
pub mod store;
pub mod tasks;
pub mod vi;

pub use abc::{AbcSamples, Distance, RejectionAbcConfig, SmcAbcConfig, rejection_abc, smc_abc};
pub use error::{InferError, Result};
pub use invalid::{InvalidReasons, InvalidReport};
pub use kde::KdeBandwidth;
pub use methods::{
    InferenceConfig, InferenceReport, Method, infer, round_proposal_rows, train_nle, train_npe,
    train_nre,
};
pub use posterior::{
    Draws, Estimator, POSTERIOR_FORMAT_VERSION, Posterior, PosteriorKind, PosteriorSettings,
    ProposalMixture,
};
pub use prior::{
    IndependentPrior, Marginal, MultivariateNormalPrior, Prior, PriorSpec, sample_prior,
};
pub use provenance::Fingerprint;
pub use rng::{SimRng, stream_rng};
pub use samplers::{Gaussian, RejectionSettings, WeightedDraws, effective_sample_size};
pub use selection::{METHOD_NAMES, MethodOptions, OptionValue};
pub use simulator::{
    Chunk, FromPrior, FromRows, Progress, Quiet, RunConfig, RunObserver, SimulationError,
    SimulationSet, Simulator, ThetaSource, simulate, simulate_rows,
};
pub use store::{STORE_FORMAT_VERSION, Store, write_npy};
pub use vi::{TensorPotential, VariationalFlow, ViConfig};
