//! Model files: a TOML description of a model (equations, constants, inputs, initial
//! values, threshold / reset / refractory, method, default parameters and priors), as
//! shipped in `examples/models/`.

use crate::check::{Scope, eval_constant};
use crate::error::{Result, SimError};
use crate::model::{Model, ModelDescription};
use crate::units::Quantity;
use std::path::Path;

/// A model file's contents, with every quantity evaluated to SI.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// Short name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// The description to build the model from.
    pub model: ModelDescription,
    /// Default (or ground-truth) value of free parameters, SI.
    pub parameters: Vec<(String, Quantity)>,
    /// Uniform prior bounds per free parameter, SI.
    pub priors: Vec<(String, Quantity, Quantity)>,
}

fn spec_err(file: &str, key: &str, message: impl std::fmt::Display) -> SimError {
    SimError::Model(format!("{file}: `{key}`: {message}"))
}

const KNOWN_KEYS: [&str; 12] = [
    "name",
    "description",
    "method",
    "threshold",
    "reset",
    "refractory",
    "equations",
    "inputs",
    "constants",
    "initial",
    "parameters",
    "priors",
];

/// Largest model file [`ModelSpec::from_file`] reads.
pub const MAX_MODEL_FILE_BYTES: u64 = 16 << 20;

impl ModelSpec {
    /// Reads a model file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let fail = |why: String| SimError::Model(format!("model file {}: {why}", path.display()));
        // A FIFO or a device in its place would hang or exhaust memory; a model file is small.
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(fail("is not a regular file".into()));
        }
        if meta.len() > MAX_MODEL_FILE_BYTES {
            return Err(fail(format!(
                "is {} bytes; a model file is at most {MAX_MODEL_FILE_BYTES}",
                meta.len()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses model-file text; `file` names it in errors.
    ///
    /// Files are read by [`ModelSpec::from_file`] up to [`MAX_MODEL_FILE_BYTES`].
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        Self::parse_with_method(file, text, None)
    }

    /// [`parse`](Self::parse) with the file's integration method replaced by `method` when
    /// one is given (a fit file's `method`), before the model is checked: a model whose
    /// equations need a method named takes it from there.
    pub fn parse_with_method(file: &str, text: &str, method: Option<&str>) -> Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            SimError::Model(format!("{file}{at}: {}", e.message()))
        })?;
        for key in table.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                let hint = crate::error::closest(key, KNOWN_KEYS.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(spec_err(file, key, format!("unknown key{hint}")));
            }
        }
        let string = |key: &str| -> Result<Option<String>> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(spec_err(
                    file,
                    key,
                    format!("expected a string, found {}", other.type_str()),
                )),
            }
        };
        let sub = |key: &str| -> Result<Vec<(String, toml::Value)>> {
            match table.get(key) {
                None => Ok(Vec::new()),
                Some(toml::Value::Table(t)) => {
                    Ok(t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }
                Some(other) => Err(spec_err(
                    file,
                    key,
                    format!("expected a table, found {}", other.type_str()),
                )),
            }
        };
        let equations =
            string("equations")?.ok_or_else(|| spec_err(file, "equations", "missing"))?;
        let mut scope = Scope::new();
        let quantity = |scope: &mut Scope, key: &str, v: &toml::Value| -> Result<Quantity> {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(spec_err(
                        file,
                        key,
                        format!(
                            "expected a quantity such as \"10*nS\", found {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            eval_constant(scope, key, &text).map_err(|e| spec_err(file, key, e))
        };
        let mut desc = ModelDescription::new(equations);
        desc.method = string("method")?;
        if let Some(m) = method {
            desc.method = Some(m.to_string());
        }
        desc.threshold = string("threshold")?;
        desc.reset = string("reset")?;
        desc.refractory = string("refractory")?;
        for (name, v) in sub("constants")? {
            let q = quantity(&mut scope, &format!("constants.{name}"), &v)?;
            scope
                .symbols
                .insert(name.clone(), crate::check::Symbol::Const(q));
            desc.constants.push((name, q));
        }
        for (name, v) in sub("inputs")? {
            let q = quantity(&mut scope, &format!("inputs.{name}"), &v)?;
            desc.inputs.push((name, q.dim));
        }
        // A table (in the order written: the TOML reader preserves it), or, to assign a
        // variable more than once as Brian scripts do, an array of `[name, value]` pairs.
        let initial = match table.get("initial") {
            Some(toml::Value::Array(a)) => {
                let mut pairs = Vec::new();
                for (k, item) in a.iter().enumerate() {
                    match item.as_array().map(|p| p.as_slice()) {
                        Some([toml::Value::String(n), v]) => pairs.push((n.clone(), v.clone())),
                        _ => {
                            return Err(spec_err(
                                file,
                                &format!("initial[{k}]"),
                                "expected a pair [\"name\", \"value\"]",
                            ));
                        }
                    }
                }
                pairs
            }
            _ => sub("initial")?,
        };
        for (name, v) in initial {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(spec_err(
                        file,
                        &format!("initial.{name}"),
                        format!("expected an expression, found {}", other.type_str()),
                    ));
                }
            };
            desc.initial.push((name, text));
        }
        let mut parameters = Vec::new();
        for (name, v) in sub("parameters")? {
            let q = quantity(&mut scope, &format!("parameters.{name}"), &v)?;
            parameters.push((name, q));
        }
        let mut priors = Vec::new();
        for (name, v) in sub("priors")? {
            let key = format!("priors.{name}");
            let toml::Value::Array(a) = &v else {
                return Err(spec_err(file, &key, "expected [low, high]"));
            };
            if a.len() != 2 {
                return Err(spec_err(
                    file,
                    &key,
                    format!("expected [low, high], found {} values", a.len()),
                ));
            }
            let lo = quantity(&mut scope, &key, &a[0])?;
            let hi = quantity(&mut scope, &key, &a[1])?;
            if lo.dim != hi.dim || lo.value.partial_cmp(&hi.value) != Some(std::cmp::Ordering::Less)
            {
                return Err(spec_err(
                    file,
                    &key,
                    "the bounds must have the same unit and low < high",
                ));
            }
            priors.push((name, lo, hi));
        }
        let spec = ModelSpec {
            name: string("name")?.unwrap_or_default(),
            description: string("description")?.unwrap_or_default(),
            model: desc,
            parameters,
            priors,
        };
        // Check the model and that parameters and priors name real parameters with the
        // right units, before anyone runs anything.
        let model = Model::new(&spec.model).map_err(|e| SimError::Model(format!("{file}: {e}")))?;
        for (name, q) in spec
            .parameters
            .iter()
            .map(|(n, q)| (n, q))
            .chain(spec.priors.iter().map(|(n, l, _)| (n, l)))
        {
            match model.parameters().iter().find(|p| &p.name == name) {
                None => {
                    return Err(spec_err(
                        file,
                        name,
                        format!(
                            "not a parameter of the model (parameters: {})",
                            model
                                .parameters()
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                Some(p) if p.dim != q.dim => {
                    return Err(spec_err(
                        file,
                        name,
                        format!("has dimension {} but the parameter is {}", q.dim, p.dim),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(spec)
    }

    /// Builds the model.
    pub fn build(&self) -> Result<Model> {
        Model::new(&self.model)
    }

    /// The default parameter values in the model's parameter order (SI); an error names
    /// any parameter without a value.
    pub fn default_parameters(&self, model: &Model) -> Result<Vec<f64>> {
        model
            .parameters()
            .iter()
            .map(|p| {
                self.parameters
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, q)| q.value)
                    .ok_or_else(|| SimError::Config(format!("no value for parameter `{}`", p.name)))
            })
            .collect()
    }
}
