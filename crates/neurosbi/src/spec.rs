//! One problem description: [`ProblemSpec`], the user-level description of a fitting job
//! that every door produces and consumes. A fit file is read into one
//! ([`ProblemSpec::from_toml`]), the Rust [`crate::InferencerBuilder`] writes its fields into
//! one, and any other front end (a Python package) can build one through serde (TOML or
//! JSON). [`ProblemSpec::validate`] is the single place where a description is checked and
//! turned into a [`crate::problem::Problem`] with its inference settings; see
//! `docs/architecture.md`, "One problem description".
//!
//! Values are kept as the user wrote them (quantity text such as `"0.05*ms"`, unit names,
//! file paths relative to the fit file), or as numbers where a program supplies them (SI
//! quantities, inline data rows, prior marginals in their display unit), so a description
//! can be written back and validated again to the same problem.

use neurosbi_infer::Marginal;
use neurosbi_sim::{ModelDescription, Quantity};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Named entries in the order they were written. Order matters: free parameters are
/// numbered in the order of their priors, outputs in the order they are listed, and that
/// order is the order of the columns of every saved simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct Entries<V>(pub Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<V> Entries<V> {
    /// The value of `name`, when present.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// Whether `name` is present.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(n, v)| (n, v))
    }
    /// The names in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(n, _)| n)
    }
    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Appends an entry.
    pub fn push(&mut self, name: impl Into<String>, value: V) {
        self.0.push((name.into(), value));
    }
}

impl<V: Serialize> Serialize for Entries<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of named entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V_(std::marker::PhantomData))
    }
}

/// A quantity: text as in a fit file (`"0.05*ms"`), a bare number (dimensionless, as in a
/// fit file), or a value in SI base units with its dimension (from a program).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuantitySpec {
    /// Quantity text, e.g. `"0.05*ms"`.
    Text(String),
    /// A dimensionless number.
    Number(f64),
    /// A value in SI base units with its dimension.
    Si(Quantity),
}

impl QuantitySpec {
    /// A value in SI base units of the dimension of the unit named `unit` (e.g. `"second"`).
    pub fn si(value: f64, unit: &str) -> Self {
        let dim = neurosbi_sim::units::lookup_unit(unit).map_or_else(Default::default, |u| u.dim);
        QuantitySpec::Si(Quantity { value, dim })
    }
    /// The quantity as text, for messages (SI values are written as numbers with their
    /// dimension).
    pub fn text(&self) -> String {
        match self {
            QuantitySpec::Text(t) => t.clone(),
            QuantitySpec::Number(n) => n.to_string(),
            QuantitySpec::Si(q) => format!("{} (SI, dimension {})", q.value, q.dim),
        }
    }
}

/// Where the model comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A model-library file (relative to the fit file's folder); its `[parameters]` are the
    /// default values of parameters that are neither fixed nor free.
    File(String),
    /// A model built in code: its description (no default parameter values).
    Description {
        /// The description the model is built from.
        description: ModelDescription,
    },
    /// A model-file table written inline (`[model]`), same schema as a model file.
    Inline(toml::Table),
}

/// A stimulus of one model input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StimulusSpec {
    /// Sample values given directly, SI, one row of `duration / dt` samples per trace.
    Values {
        /// The rows.
        values: Vec<Vec<f64>>,
    },
    /// A generated stimulus or a data file, as written in a fit file's `[stimuli.NAME]`
    /// (`kind = "step" | "ramp" | "pulses" | "noise" | "file"` with its keys).
    Written(toml::Table),
}

/// Observed data of an output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataSpec {
    /// A CSV, `.npy` or recording (`.abf`) file, relative to the fit file's folder.
    File(String),
    /// Rows given directly: traces in the output's unit, or spike times in `time_unit`.
    Rows(Vec<Vec<f64>>),
}

/// One recorded output (`[outputs.VAR]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Unit of the traces given to the features (default: `ms` for spikes, else `1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Feature names from the catalogue (`neurosbi features`).
    #[serde(default)]
    pub features: Vec<String>,
    /// Observed data; every output has data, or none has and `synthetic` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
    /// Unit of spike times in `data` (default: ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<String>,
    /// Sweeps of a recording (`data = "cell.abf"`) to take, from 0 (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweeps: Option<Vec<usize>>,
    /// Channel of a recording (default: its only channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelSpec>,
    /// Allow linear interpolation of a recording sampled more coarsely than `dt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolate: Option<bool>,
    /// Other variables recorded with this one and read by its features (the neurons of a
    /// circuit for the `pyloric` statistics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<String>,
    /// The observation as feature values measured elsewhere (one per feature output and
    /// trace, `nan` where undefined) instead of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Vec<f64>>,
    /// Names of features the calling program computes (the Python package's callables; see
    /// [`crate::external`]), after `features` in each trace's columns. Only a program that
    /// attaches their functions ([`crate::Inferencer::from_spec_with`]) can simulate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_features: Vec<String>,
}

/// A channel of a recording, by index (from 0) or by its name in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelSpec {
    /// By index, from 0.
    Index(usize),
    /// By name (`"IN 0"`).
    Name(String),
}

/// A prior of one free parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PriorSpec {
    /// A marginal in its display unit (from a program: `Marginal::Uniform { low: 0.5, high:
    /// 80.0 }` in `"uS"`), used as given.
    Marginal {
        /// Unit the marginal, samples and summaries are written in.
        unit: String,
        /// The marginal, in `unit`.
        marginal: Marginal,
    },
    /// As written in a fit file: `[low, high]` (uniform) or a table
    /// `{ kind, low/high | mean/std | median/sigma, unit }` of quantities.
    Written(toml::Value),
}

/// The `[features]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSpec {
    /// Stimulus window `[start, stop]` seen by windowed features (default: the stimulus's,
    /// else the whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[QuantitySpec; 2]>,
}

/// A whole fitting job as the user describes it. Its TOML form is the fit file (see
/// `docs/model-file.md`); optional parts are `None` or empty, and [`ProblemSpec::validate`]
/// says what is missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemSpec {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSource>,
    /// Integration method replacing the model's (`method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Time step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<QuantitySpec>,
    /// Duration of every simulation, a whole multiple of `dt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<QuantitySpec>,
    /// Master seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Output folder (default `neurosbi-out/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// One stimulus per model input.
    #[serde(default)]
    pub stimuli: Entries<StimulusSpec>,
    /// The `[features]` table.
    #[serde(default)]
    pub features: FeaturesSpec,
    /// Recorded outputs with their features and data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Entries<OutputSpec>>,
    /// Priors of the free parameters, in the order of the parameter columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priors: Option<Entries<PriorSpec>>,
    /// Values of parameters that are not fitted.
    #[serde(default)]
    pub fixed: Entries<QuantitySpec>,
    /// Ground truth of the free parameters, whose simulation is the observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<Entries<QuantitySpec>>,
    /// Inference settings, as in a fit file's `[inference]` table (method and its options,
    /// estimator, simulations, rounds, training, samples, batch size, predictive, posterior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<toml::Table>,
}

/// File name that errors of a description built in code are reported under.
pub const BUILDER_ORIGIN: &str = "Inferencer::builder";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Inferencer;
    use crate::config::FitConfig;
    use neurosbi_sim::units::lookup_unit;
    use neurosbi_sim::{Model, Quantity};
    use std::path::{Path, PathBuf};

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    /// TOML and JSON give back the same description.
    fn round_trip(spec: &ProblemSpec) {
        let toml_text = toml::to_string(spec).expect("to TOML");
        let back: ProblemSpec = toml::from_str(&toml_text).expect("from TOML");
        assert_eq!(&back, spec, "TOML round trip:\n{toml_text}");
        let json = serde_json::to_string(spec).expect("to JSON");
        let back: ProblemSpec = serde_json::from_str(&json).expect("from JSON");
        assert_eq!(&back, spec, "JSON round trip:\n{json}");
    }

    /// Two validated descriptions are the same problem, observation and settings.
    fn same_problem(a: &FitConfig, b: &FitConfig) {
        let (oa, ob) = (a.observation().unwrap(), b.observation().unwrap());
        assert_eq!(oa, ob);
        assert_eq!(
            a.problem.fingerprint(&oa, a.seed),
            b.problem.fingerprint(&ob, b.seed)
        );
        assert_eq!(a.problem.noise_seed, b.problem.noise_seed);
        assert_eq!(a.truth, b.truth);
        assert_eq!(format!("{:?}", a.inference), format!("{:?}", b.inference));
        assert_eq!((&a.out, &a.name, a.seed), (&b.out, &b.name, b.seed));
    }

    #[test]
    fn fit_files_round_trip_through_toml_and_json_to_the_same_problem() {
        for name in [
            "small_hh_noise.toml",
            "hh_c_synthetic.toml",
            "expif_spikes.toml",
        ] {
            let path = examples().join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = ProblemSpec::from_toml(&path, &text).unwrap();
            round_trip(&spec);
            let direct = FitConfig::parse(&path, &text).unwrap();
            let toml_text = toml::to_string(&spec).unwrap();
            let again: ProblemSpec = toml::from_str(&toml_text).unwrap();
            same_problem(&direct, &again.validate(&path).unwrap());
            // The serialised description is itself a fit file.
            same_problem(&direct, &FitConfig::parse(&path, &toml_text).unwrap());
        }
    }

    #[test]
    fn a_builder_description_round_trips_to_the_same_problem() {
        let volt = lookup_unit("volt").unwrap().dim;
        let model = Model::new(
            &ModelDescription::new("dv/dt = (El - v)/tau + I/C : volt\ntau : second (constant)")
                .input("I", lookup_unit("amp").unwrap().dim)
                .constant("El", Quantity::new(-0.07, volt))
                .constant(
                    "C",
                    Quantity::new(100e-12, lookup_unit("farad").unwrap().dim),
                )
                .initial("v", "El")
                .method("exponential_euler"),
        )
        .unwrap();
        let n = 200;
        let step: Vec<f64> = (0..n).map(|k| if k >= 50 { 0.1e-9 } else { 0.0 }).collect();
        let v: Vec<f64> = (0..n).map(|k| -70.0 + (k as f64 / 20.0).min(5.0)).collect();
        let spec = Inferencer::builder(model)
            .dt(1e-4)
            .input("I", vec![step])
            .output_traces("v", "mV", vec![v])
            .features("v", &["mean(window=stim)", "max"])
            .stimulus_window(5.0, 20.0)
            .prior(
                "tau",
                "ms",
                Marginal::LogNormal {
                    mu: 2.0,
                    sigma: 0.5,
                },
            )
            .seed(3)
            .into_spec();
        round_trip(&spec);
        let origin = Path::new(BUILDER_ORIGIN);
        let json: ProblemSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        same_problem(
            &spec.validate(origin).unwrap(),
            &json.validate(origin).unwrap(),
        );
        let toml_back: ProblemSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        same_problem(
            &spec.validate(origin).unwrap(),
            &toml_back.validate(origin).unwrap(),
        );
    }
}
