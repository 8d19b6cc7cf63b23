//! The simulation-based inference engine: priors, the `Simulator` trait, a resumable
//! simulation store, NPE / NLE / NRE, posteriors, samplers and diagnostics.
