//! neurosbi: the full posterior distribution over a neuron model's parameters from recorded
//! voltage traces or spike trains, by simulation-based inference.
//!
//! This facade joins the layers (re-exported as [`sim`], [`features`], [`flows`], [`infer`]):
//! fit files and the `neurosbi fit` job ([`config`], [`fit`]), the high-level
//! [`Inferencer`], figures ([`plot`]) and the HTML report ([`report`]).
//!
//! ```
//! use neurosbi::prelude::*;
//!
//! // A passive membrane driven by a current step; fit its time constant.
//! let model = Model::new(
//!     &ModelDescription::new("dv/dt = (El - v)/tau + I/C : volt\ntau : second (constant)")
//!         .input("I", lookup_unit("amp").unwrap().dim)
//!         .constant("El", Quantity::new(-0.07, lookup_unit("volt").unwrap().dim))
//!         .constant("C", Quantity::new(100e-12, lookup_unit("farad").unwrap().dim))
//!         .initial("v", "El")
//!         .method("exponential_euler"),
//! )?;
//! let n = 500; // 50 ms at dt 0.1 ms
//! let step: Vec<f64> = (0..n).map(|k| if k >= 100 { 0.1e-9 } else { 0.0 }).collect();
//! let v_obs: Vec<f64> = (0..n).map(|k| -70.0 + if k > 100 { 20.0 * (1.0 - (-(k as f64 - 100.0) * 0.1 / 20.0).exp()) } else { 0.0 }).collect();
//! let inf = Inferencer::builder(model)
//!     .dt(1e-4)
//!     .input("I", vec![step])
//!     .output_traces("v", "mV", vec![v_obs])
//!     .features("v", &["mean(window=stim)", "max"])
//!     .stimulus_window(10.0, 50.0)
//!     .prior("tau", "ms", Marginal::Uniform { low: 5.0, high: 50.0 })
//!     .build()?;
//! assert_eq!(inf.observed_features().len(), 2);
//!
//! // Mistakes name what is wrong: a prior in the wrong unit.
//! let model = Model::new(
//!     &ModelDescription::new("dv/dt = -v/tau : volt\ntau : second (constant)")
//!         .method("exponential_euler"),
//! )?;
//! let err = Inferencer::builder(model)
//!     .dt(1e-4)
//!     .output_traces("v", "mV", vec![vec![0.0; 10]])
//!     .features("v", &["mean"])
//!     .prior("tau", "mV", Marginal::Uniform { low: 5.0, high: 50.0 })
//!     .build()
//!     .err()
//!     .unwrap();
//! assert!(err.to_string().contains("priors.tau"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Errors carry the lower layers' errors (with source locations) so messages say what and
// where; they are built on the cold path only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub use neurosbi_features as features;
pub use neurosbi_flows as flows;
pub use neurosbi_infer as infer;
pub use neurosbi_io as io;
pub use neurosbi_sim as sim;

pub mod config;
pub mod error;
pub mod external;
pub mod fit;
pub mod inferencer;
#[cfg(feature = "mpi")]
pub mod mpi_gather;
pub mod observe;
pub mod outdir;
pub mod plot;
pub mod problem;
pub mod quantity;
pub mod raw;
pub mod report;
pub mod scale;
pub mod slurm;
pub mod spec;
pub mod summary;

pub use error::{Error, Result};
pub use inferencer::{InferSettings, Inferencer, InferencerBuilder};

/// The names most programs need.
pub mod prelude {
    pub use crate::config::FitConfig;
    pub use crate::error::{Error, Result};
    pub use crate::fit::{FitOptions, fit};
    pub use crate::inferencer::{InferSettings, Inferencer};
    pub use crate::problem::{Observed, Problem};
    pub use neurosbi_features::FeatureSet;
    pub use neurosbi_flows::{EstimatorConfig, TrainConfig};
    pub use neurosbi_infer::{Marginal, Method, Posterior};
    pub use neurosbi_sim::units::lookup_unit;
    pub use neurosbi_sim::{Model, ModelDescription, ModelSpec, Quantity, Stimulus};
}
