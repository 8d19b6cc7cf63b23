//! Summary statistics for neuron recordings: turns voltage traces, other recorded variables
//! and spike trains into the fixed-length feature vectors that inference trains on.
//!
//! Features are chosen by name with parameters, as with eFEL and antropy, and computed
//! for one recording or for a batch in parallel. A feature that has no meaning for the
//! data (the ISI CV of one spike) gives an [`Undefined`] with a reason; a recording
//! that cannot be analysed at all (NaN samples: a failed simulation) gives a
//! [`RecordingError`], so callers can tell the two apart.
//!
//! ```
//! use neurosbi_features::{FeatureSet, Recording};
//!
//! let dt = 0.1; // ms
//! let v: Vec<f64> = (0..1000).map(|i| -65.0 + (i as f64 * dt / 10.0).sin()).collect();
//! let set = FeatureSet::from_names(&["mean(window=stim)", "std", "spike_count", "perm_entropy(order=3)"])?;
//! let rec = Recording::new(&v, dt).with_stimulus(20.0, 80.0);
//! let x = set.compute(&rec)?;
//! assert_eq!(x.len(), 4);
//! assert_eq!(x[2], Ok(0.0)); // no spike crosses eFEL's -20 mV threshold
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Units: times in ms, voltages in mV (eFEL's conventions). The catalogue is listed by
//! [`Catalogue::standard`] and documented in `docs/features.md`.

pub mod efel;
pub mod entropy;
pub mod error;
pub mod feature;
pub mod moments;
pub mod params;
pub mod pyloric;
pub mod recording;
pub mod set;
pub mod spiketrain;

pub use error::{FeatureError, RecordingError};
pub use feature::{Feature, Input, Outcome, Reducer, Undefined};
pub use params::{ParamValue, Params};
pub use recording::{Recording, Window};
pub use set::{Catalogue, CatalogueEntry, FeatureMatrix, FeatureSet, RowFailure};
