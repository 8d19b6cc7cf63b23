//! Batch simulator for neuron models written as Brian-style equation strings with units,
//! or as native Rust code.
//!
//! A [`Model`] is parsed and dimension-checked from equations, compiled for a time step
//! into a register program over blocks of 64 neurons, and run for many parameter sets and
//! stimulus traces at once ([`Model::simulate`]), in parallel and deterministically.
//!
//! ```
//! use neurosbi_sim::{Model, ModelDescription, RunConfig, Quantity, units::lookup_unit};
//!
//! // A leaky integrator driven to 10 mV above rest: v(t) = 10 mV (1 - exp(-t/tau)).
//! let desc = ModelDescription::new("dv/dt = (v_inf - v)/tau : volt\ntau : second (constant)")
//!     .constant("v_inf", Quantity::new(0.010, lookup_unit("volt").unwrap().dim))
//!     // Exact for this equation (Brian2 would pick its `exact` method).
//!     .method("exponential_euler");
//! let model = Model::new(&desc).unwrap();
//! let cfg = RunConfig::new(1e-4, 200).record(&["v"]);
//! // Two neurons: tau = 10 ms and tau = 20 ms.
//! let out = model.simulate(&[0.010, 0.020], 1, &[], &cfg).unwrap();
//! let v = out.trace("v", 0).unwrap();
//! let t = 199.0 * 1e-4;
//! assert!((v[199] - 0.010 * (1.0 - (-t / 0.010f64).exp())).abs() < 1e-9);
//! ```

// Errors carry both dimensions and a source location so messages can say what and where;
// they are only built on the cold path, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod canonical;
pub mod check;
pub mod circuit;
mod divide;
pub mod equations;
pub mod error;
mod events;
pub mod exact;
pub mod fastmath;
pub mod integrate;
pub mod ir;
pub mod kernel;
pub mod model;
pub mod native;
pub mod network;
pub mod noise;
pub mod profile;
pub mod run;
pub mod spec;
pub mod syntax;
pub mod units;
pub mod vm;

pub use error::{Location, Result, SimError};
pub use kernel::{CompiledKernel, Kernel};
pub use model::{
    EventSource, Method, Model, ModelDescription, PathwayDescription, Phase, Refractory, Var,
};
pub use native::{HodgkinHuxleyC, NativeKernel, NativeModel};
pub use run::{Failure, RunConfig, SimResult, Stimulus};
pub use spec::ModelSpec;
pub use units::{Dimension, Quantity};

impl Model {
    /// Simulates `n_sets x n_traces` neurons (see [`run::simulate`]): `params` holds one
    /// row of [`Model::parameters`] values (SI) per set; trace `k` of each stimulus drives
    /// neuron `s*n_traces + k`.
    pub fn simulate(
        &self,
        params: &[f64],
        n_traces: usize,
        stimuli: &[Stimulus],
        cfg: &RunConfig,
    ) -> Result<SimResult> {
        let kernel = CompiledKernel::new(self, cfg.dt, &cfg.record)?;
        let inputs: Vec<String> = self.inputs().iter().map(|v| v.name.clone()).collect();
        run::simulate(&kernel, params, n_traces, stimuli, &inputs, cfg)
    }
}

/// Parses a quantity such as `10*nS`, `-70*mV` or `1*uF/cm**2` (numbers and units) into SI.
pub fn parse_quantity(text: &str) -> Result<Quantity> {
    let mut scope = check::Scope::new();
    check::eval_constant(&mut scope, "quantity", text)
}

/// Simulates a native model like [`Model::simulate`].
pub fn simulate_native<M: NativeModel>(
    model: M,
    params: &[f64],
    n_traces: usize,
    stimuli: &[Stimulus],
    cfg: &RunConfig,
) -> Result<SimResult> {
    let inputs: Vec<String> = model.inputs().into_iter().map(|v| v.name).collect();
    let kernel = NativeKernel::new(model, cfg.dt, &cfg.record)?;
    run::simulate(&kernel, params, n_traces, stimuli, &inputs, cfg)
}
