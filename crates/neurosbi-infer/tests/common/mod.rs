//! Setup shared by the integration tests.

use neurosbi_infer::tasks::{GaussianLinear, Task};
use neurosbi_infer::{FromPrior, Prior, Quiet, RunConfig, SimulationSet, simulate};
use std::sync::Arc;

/// sbibm's gaussian_linear task, its prior, and `n` simulations from the prior (seed 1).
pub fn gaussian_linear_simulations(n: usize) -> (GaussianLinear, Arc<dyn Prior>, SimulationSet) {
    let task = GaussianLinear::new();
    let prior: Arc<dyn Prior> = Arc::from(task.prior().spec().unwrap().build().unwrap());
    let sims = simulate(
        &task,
        &FromPrior(prior.as_ref()),
        n,
        &RunConfig {
            seed: 1,
            ..Default::default()
        },
        &mut Quiet,
    )
    .unwrap();
    (task, prior, sims)
}
