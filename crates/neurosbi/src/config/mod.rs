//! Fit files: the TOML that describes a whole job (model, stimuli, observations, features,
//! priors, inference settings, seed, output folder). The format is documented in
//! `docs/model-file.md`. Everything is checked here, before any simulation runs.

use crate::error::{Error, Result};
use crate::problem::{FreeParameter, Observed, Output, Problem, SPIKES, is_spike_train};
use crate::quantity::{Unit, parse_quantity};
use crate::spec::{ProblemSpec, QuantitySpec};
use neurosbi_flows::{EstimatorConfig, TrainConfig};
use neurosbi_infer::{Marginal, Method, MethodOptions, OptionValue, PosteriorKind};
use neurosbi_sim::units::lookup_unit;
use neurosbi_sim::{ModelSpec, Stimulus};
use rand_distr::{Distribution, StandardNormal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod checks;
mod data;
mod files;
mod inference;
mod read;
mod recording;
mod stimulus;
mod validate;

pub use checks::fits_in_memory;
pub use data::{NumberTable, parse_csv, parse_npy};
pub use files::{DATA_LIMIT, TOML_LIMIT, read_bounded, read_text_bounded};
pub use validate::noise_seed;

use inference::{inference, prior};
use stimulus::{read_matrix, stimulus};

/// Inference settings of a fit file.
#[derive(Clone, Debug)]
pub struct InferenceSettings {
    /// Method.
    pub method: Method,
    /// Method name as written (`npe`, `snpe`, `nle`, `nre`...).
    pub method_name: String,
    /// How the posterior samples (`posterior = "..."`; `None`: the method's default).
    pub posterior: Option<PosteriorKind>,
    /// Density estimator.
    pub estimator: EstimatorConfig,
    /// Estimator name as written.
    pub estimator_name: String,
    /// Simulations per round.
    pub rounds: Vec<usize>,
    /// Training settings.
    pub train: TrainConfig,
    /// Posterior samples to draw.
    pub samples: usize,
    /// Simulations per batch given to the simulator.
    pub batch_size: usize,
    /// Posterior-predictive simulations to draw for the trace plot.
    pub predictive: usize,
    /// Fraction of invalid simulations above which a run warns, naming where they fail.
    pub warn_invalid: f64,
    /// Fraction of invalid simulations above which a round stops with an error.
    pub max_invalid: f64,
}

/// A parsed and checked fit file.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// The fit file.
    pub file: PathBuf,
    /// Job name (the model file's name without extension).
    pub name: String,
    /// The problem.
    pub problem: Problem,
    /// Observed data, or `None` when it is simulated from `truth`.
    pub observed: Option<Vec<Observed>>,
    /// Ground truth of the free parameters (display units), when known.
    pub truth: Option<Vec<f64>>,
    /// Inference settings.
    pub inference: InferenceSettings,
    /// Master seed.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// The model's description as text (the model file, or the inline `[model]` table as
    /// TOML), for the report.
    pub model_text: String,
    /// The files the problem was read from (model file, data, stimuli), for the report's
    /// provenance.
    pub inputs: Vec<InputFile>,
}

/// A file a fit reads (besides the fit file itself).
#[derive(Clone, Debug, PartialEq)]
pub struct InputFile {
    /// The fit-file key that names it (`model`, `outputs.v.data`, `stimuli.I.from`, ...).
    pub key: String,
    /// The path, resolved against the fit file's folder.
    pub path: PathBuf,
    /// For the observed data of an output read from a recording (ABF, NWB): the output's
    /// variable and the sweeps taken, in the order of the traces.
    pub recording: Option<(String, Vec<usize>)>,
}

const TOP_KEYS: [&str; 13] = [
    "model",
    "dt",
    "duration",
    "method",
    "seed",
    "output",
    "stimuli",
    "outputs",
    "synthetic",
    "priors",
    "fixed",
    "inference",
    "features",
];

struct Ctx<'a> {
    file: &'a str,
    dir: &'a Path,
    /// The machine's memory, bytes (for [`Ctx::need`]).
    memory: f64,
}

impl Ctx<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::config(self.file, key, msg)
    }

    fn quantity_text(&self, key: &str, v: &toml::Value) -> Result<String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            other => Err(self.err(
                key,
                format!(
                    "expected a quantity such as \"10*nS\", found {}",
                    other.type_str()
                ),
            )),
        }
    }

    /// A quantity of dimension `dim_of` (a unit name such as "second").
    fn quantity(&self, key: &str, v: &toml::Value, dim_of: &str) -> Result<f64> {
        let text = self.quantity_text(key, v)?;
        self.quantity_of(key, &QuantitySpec::Text(text), dim_of)
    }

    /// The quantity of a description, parsed when it is text.
    fn quantity_spec(&self, key: &str, q: &QuantitySpec) -> Result<neurosbi_sim::Quantity> {
        match q {
            QuantitySpec::Text(t) => parse_quantity(self.file, key, t),
            QuantitySpec::Number(n) => parse_quantity(self.file, key, &n.to_string()),
            QuantitySpec::Si(q) => Ok(*q),
        }
    }

    /// A quantity of a description, of dimension `dim_of` (a unit name such as "second").
    fn quantity_of(&self, key: &str, v: &QuantitySpec, dim_of: &str) -> Result<f64> {
        let q = self.quantity_spec(key, v)?;
        let text = v.text();
        let want = lookup_unit(dim_of).expect("known unit").dim;
        if q.dim != want {
            return Err(self.err(
                key,
                format!("\"{text}\" has dimension {}, expected {want}", q.dim),
            ));
        }
        Ok(q.value)
    }

    fn check_keys(&self, prefix: &str, t: &toml::Table, allowed: &[&str]) -> Result<()> {
        for k in t.keys() {
            if !allowed.contains(&k.as_str()) {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                return Err(self.err(
                    &key,
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn path(&self, key: &str, v: &toml::Value) -> Result<PathBuf> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(key, "expected a file path (string)"))?;
        Ok(self.dir.join(s))
    }
}

fn table<'a>(ctx: &Ctx, t: &'a toml::Table, key: &str) -> Result<Option<&'a toml::Table>> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::Table(t)) => Ok(Some(t)),
        Some(o) => Err(ctx.err(key, format!("expected a table, found {}", o.type_str()))),
    }
}

fn usize_of(ctx: &Ctx, key: &str, v: &toml::Value) -> Result<usize> {
    v.as_integer()
        .filter(|i| *i > 0)
        .map(|i| i as usize)
        .ok_or_else(|| ctx.err(key, "expected a positive integer"))
}

impl FitConfig {
    /// Reads and checks a fit file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_text_bounded(path, TOML_LIMIT).map_err(Error::io(path))?;
        Self::parse(path, &text)
    }

    /// Parses fit-file text; `path` names it in errors and anchors relative paths. The text
    /// becomes a [`ProblemSpec`], checked by [`ProblemSpec::validate`] like every other
    /// door's.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        ProblemSpec::from_toml(path, text)?.validate(path)
    }

    /// The observation: the data, or the simulation of the ground truth.
    pub fn observation(&self) -> Result<Vec<Observed>> {
        match (&self.observed, &self.truth) {
            (Some(o), _) => Ok(o.clone()),
            (None, Some(t)) => self.problem.synthetic_observation(t),
            (None, None) => Err(Error::invalid(
                "observation",
                "neither data nor ground truth",
            )),
        }
    }
}
