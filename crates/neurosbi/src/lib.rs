//! neurosbi: the full posterior distribution over a neuron model's parameters from recorded
//! voltage traces or spike trains.
//!
//! This facade re-exports the layers; each is usable on its own.

pub use neurosbi_features as features;
pub use neurosbi_flows as flows;
pub use neurosbi_infer as infer;
pub use neurosbi_sim as sim;

pub mod config;
pub mod error;
pub mod fit;
pub mod plot;
pub mod problem;
pub mod quantity;
pub mod report;
pub mod summary;

pub use error::{Error, Result};
