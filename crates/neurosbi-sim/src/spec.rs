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

const KNOWN_KEYS: [&str; 14] = [
    "groups",
    "synapses",
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
        let mut scope = Scope::new();
        let desc = if table.contains_key("groups") {
            circuit_description(file, &table, &mut scope, method)?
        } else {
            let equations =
                string("equations")?.ok_or_else(|| spec_err(file, "equations", "missing"))?;
            let mut desc = ModelDescription::new(equations);
            desc.method = string("method")?;
            if let Some(m) = method {
                desc.method = Some(m.to_string());
            }
            desc.threshold = string("threshold")?;
            desc.reset = string("reset")?;
            desc.refractory = string("refractory")?;
            desc.constants = constants(file, &table, "", &mut scope)?;
            for (name, v) in sub("inputs")? {
                let q = quantity(file, &mut scope, &format!("inputs.{name}"), &v)?;
                desc.inputs.push((name, q.dim));
            }
            desc.initial = initial_values(file, &table, "")?;
            desc
        };
        let mut parameters = Vec::new();
        for (name, v) in sub("parameters")? {
            let q = quantity(file, &mut scope, &format!("parameters.{name}"), &v)?;
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
            let lo = quantity(file, &mut scope, &key, &a[0])?;
            let hi = quantity(file, &mut scope, &key, &a[1])?;
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

/// A quantity written as a string (`"10*nS"`) or a number, evaluated to SI.
fn quantity(file: &str, scope: &mut Scope, key: &str, v: &toml::Value) -> Result<Quantity> {
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
}

/// The sub-table `key` of `table` (`prefix` names `table` in errors), empty if absent.
fn sub_table<'a>(
    file: &str,
    table: &'a toml::Table,
    prefix: &str,
    key: &str,
) -> Result<Vec<(&'a String, &'a toml::Value)>> {
    match table.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Table(t)) => Ok(t.iter().collect()),
        Some(other) => Err(spec_err(
            file,
            &format!("{prefix}{key}"),
            format!("expected a table, found {}", other.type_str()),
        )),
    }
}

/// An optional string entry.
fn string_at(file: &str, table: &toml::Table, prefix: &str, key: &str) -> Result<Option<String>> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(spec_err(
            file,
            &format!("{prefix}{key}"),
            format!("expected a string, found {}", other.type_str()),
        )),
    }
}

/// The `constants` table, each added to `scope` so later quantities may use it.
fn constants(
    file: &str,
    table: &toml::Table,
    prefix: &str,
    scope: &mut Scope,
) -> Result<Vec<(String, Quantity)>> {
    let mut out = Vec::new();
    for (name, v) in sub_table(file, table, prefix, "constants")? {
        let q = quantity(file, scope, &format!("{prefix}constants.{name}"), v)?;
        scope
            .symbols
            .insert(name.clone(), crate::check::Symbol::Const(q));
        out.push((name.clone(), q));
    }
    Ok(out)
}

/// The `initial` values: a table (in the order written: the TOML reader preserves it),
/// or, to assign a variable more than once as Brian scripts do, an array of
/// `[name, value]` pairs; expressions as strings (numbers accepted).
fn initial_values(file: &str, table: &toml::Table, prefix: &str) -> Result<Vec<(String, String)>> {
    let pairs: Vec<(String, toml::Value)> = match table.get("initial") {
        Some(toml::Value::Array(a)) => {
            let mut pairs = Vec::new();
            for (k, item) in a.iter().enumerate() {
                match item.as_array().map(|p| p.as_slice()) {
                    Some([toml::Value::String(n), v]) => pairs.push((n.clone(), v.clone())),
                    _ => {
                        return Err(spec_err(
                            file,
                            &format!("{prefix}initial[{k}]"),
                            "expected a pair [\"name\", \"value\"]",
                        ));
                    }
                }
            }
            pairs
        }
        _ => sub_table(file, table, prefix, "initial")?
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut out = Vec::new();
    for (name, v) in pairs {
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(spec_err(
                    file,
                    &format!("{prefix}initial.{name}"),
                    format!("expected an expression, found {}", other.type_str()),
                ));
            }
        };
        out.push((name, text));
    }
    Ok(out)
}

/// Refuses keys of `table` outside `known`, suggesting the closest.
fn known_keys(file: &str, table: &toml::Table, prefix: &str, known: &[&str]) -> Result<()> {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            let hint = crate::error::closest(key, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(spec_err(
                file,
                &format!("{prefix}{key}"),
                format!("unknown key{hint}"),
            ));
        }
    }
    Ok(())
}

/// The named tables under `key` (`[groups.NAME]`), in file order.
fn objects<'a>(
    file: &str,
    table: &'a toml::Table,
    key: &str,
) -> Result<Vec<(&'a String, &'a toml::Table)>> {
    sub_table(file, table, "", key)?
        .into_iter()
        .map(|(name, v)| match v {
            toml::Value::Table(t) => Ok((name, t)),
            other => Err(spec_err(
                file,
                &format!("{key}.{name}"),
                format!("expected a table, found {}", other.type_str()),
            )),
        })
        .collect()
}

const GROUP_KEYS: [&str; 10] = [
    "n",
    "order",
    "equations",
    "threshold",
    "reset",
    "refractory",
    "method",
    "inputs",
    "constants",
    "initial",
];
const SYNAPSE_KEYS: [&str; 12] = [
    "source",
    "order",
    "target",
    "equations",
    "on_pre",
    "on_post",
    "delay",
    "method",
    "connect",
    "constants",
    "initial",
    "model",
];

/// A circuit model file (`[groups.NAME]`, `[synapses.NAME]`) flattened into one model
/// (see [`crate::circuit`]); `method` (a fit file's) replaces every object's.
fn circuit_description(
    file: &str,
    table: &toml::Table,
    scope: &mut Scope,
    method: Option<&str>,
) -> Result<ModelDescription> {
    use crate::circuit::{CircuitDescription, GroupDescription, SynapseDescription};
    for key in [
        "equations",
        "threshold",
        "reset",
        "refractory",
        "inputs",
        "initial",
    ] {
        if table.contains_key(key) {
            return Err(spec_err(
                file,
                key,
                "a circuit model file (one with [groups.NAME]) gives this per group, in \
                 [groups.NAME]",
            ));
        }
    }
    let mut c = CircuitDescription::new(Vec::new(), Vec::new());
    c.constants = constants(file, table, "", scope)?;
    c.method = method
        .map(str::to_string)
        .or(string_at(file, table, "", "method")?);
    for (name, t) in objects(file, table, "groups")? {
        let p = format!("groups.{name}.");
        known_keys(file, t, &p, &GROUP_KEYS)?;
        let equations = string_at(file, t, &p, "equations")?
            .ok_or_else(|| spec_err(file, &format!("{p}equations"), "missing"))?;
        let mut g = GroupDescription::new(name.clone(), equations);
        g.n = match t.get("n") {
            None => 1,
            Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
            Some(other) => {
                return Err(spec_err(
                    file,
                    &format!("{p}n"),
                    format!("expected a positive integer, found {other}"),
                ));
            }
        };
        g.threshold = string_at(file, t, &p, "threshold")?;
        g.reset = string_at(file, t, &p, "reset")?;
        g.refractory = string_at(file, t, &p, "refractory")?;
        g.method = if method.is_some() {
            None
        } else {
            string_at(file, t, &p, "method")?
        };
        g.order = order(file, t, &p)?;
        let mut local = scope_of(&c.constants);
        g.constants = constants(file, t, &p, &mut local)?;
        for (input, v) in sub_table(file, t, &p, "inputs")? {
            let q = quantity(file, &mut local, &format!("{p}inputs.{input}"), v)?;
            g.inputs.push((input.clone(), q.dim));
        }
        g.initial = initial_values(file, t, &p)?;
        c.groups.push(g);
    }
    for (name, t) in objects(file, table, "synapses")? {
        let p = format!("synapses.{name}.");
        known_keys(file, t, &p, &SYNAPSE_KEYS)?;
        let need = |key: &str| -> Result<String> {
            string_at(file, t, &p, key)?
                .ok_or_else(|| spec_err(file, &format!("{p}{key}"), "missing"))
        };
        let equations = string_at(file, t, &p, "equations")?
            .or(string_at(file, t, &p, "model")?)
            .unwrap_or_default();
        let mut s =
            SynapseDescription::new(name.clone(), need("source")?, need("target")?, equations);
        s.on_pre = string_at(file, t, &p, "on_pre")?;
        s.on_post = string_at(file, t, &p, "on_post")?;
        s.delay = string_at(file, t, &p, "delay")?;
        s.method = if method.is_some() {
            None
        } else {
            string_at(file, t, &p, "method")?
        };
        s.order = order(file, t, &p)?;
        s.connect = connect(file, t, &p)?;
        let mut local = scope_of(&c.constants);
        s.constants = constants(file, t, &p, &mut local)?;
        s.initial = initial_values(file, t, &p)?;
        c.synapses.push(s);
    }
    c.flatten()
        .map_err(|e| SimError::Model(format!("{file}: {e}")))
}

/// Brian's `order` of an object (default 0).
fn order(file: &str, t: &toml::Table, p: &str) -> Result<i64> {
    match t.get("order") {
        None => Ok(0),
        Some(toml::Value::Integer(n)) => Ok(*n),
        Some(other) => Err(spec_err(
            file,
            &format!("{p}order"),
            format!("expected an integer, found {other}"),
        )),
    }
}

/// A scope holding `constants` (an object's own constants may use the file's).
fn scope_of(constants: &[(String, Quantity)]) -> Scope {
    let mut scope = Scope::new();
    for (n, q) in constants {
        scope
            .symbols
            .insert(n.clone(), crate::check::Symbol::Const(*q));
    }
    scope
}

/// `connect`: absent or `"all"` (every pair), a condition of `i` and `j` (`"i != j"`),
/// explicit lists `{ i = [0, 1], j = [1, 0] }`, or random `{ p = 0.1, seed = 1 }` (with an
/// optional `condition`).
fn connect(file: &str, t: &toml::Table, p: &str) -> Result<crate::circuit::Connect> {
    use crate::circuit::Connect;
    let key = format!("{p}connect");
    let index_list = |v: Option<&toml::Value>, which: &str| -> Result<Vec<usize>> {
        let Some(toml::Value::Array(a)) = v else {
            return Err(spec_err(
                file,
                &key,
                format!("expected `{which} = [indices]`"),
            ));
        };
        a.iter()
            .map(|x| match x {
                toml::Value::Integer(n) if *n >= 0 => Ok(*n as usize),
                other => Err(spec_err(
                    file,
                    &key,
                    format!("`{which}`: expected a neuron index, found {other}"),
                )),
            })
            .collect()
    };
    match t.get("connect") {
        None => Ok(Connect::All),
        Some(toml::Value::String(s)) if s.trim() == "all" => Ok(Connect::All),
        Some(toml::Value::String(s)) => Ok(Connect::Condition(s.clone())),
        Some(toml::Value::Table(c)) if c.contains_key("p") => {
            if let Some(k) = c
                .keys()
                .find(|k| !["p", "seed", "condition"].contains(&k.as_str()))
            {
                return Err(spec_err(
                    file,
                    &key,
                    format!("unknown key `{k}` (random connections take p, seed, condition)"),
                ));
            }
            let p = match c.get("p") {
                Some(toml::Value::Float(x)) => *x,
                Some(toml::Value::Integer(n)) => *n as f64,
                _ => return Err(spec_err(file, &key, "`p` must be a number")),
            };
            let seed = match c.get("seed") {
                Some(toml::Value::Integer(n)) if *n >= 0 => *n as u64,
                _ => {
                    return Err(spec_err(
                        file,
                        &key,
                        "random connections need `seed = <integer >= 0>`",
                    ));
                }
            };
            let condition = match c.get("condition") {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(spec_err(file, &key, "`condition` must be a string")),
            };
            Ok(Connect::Random { condition, p, seed })
        }
        Some(toml::Value::Table(c)) => {
            if let Some(k) = c.keys().find(|k| !["i", "j"].contains(&k.as_str())) {
                return Err(spec_err(
                    file,
                    &key,
                    format!(
                        "unknown key `{k}`: give `i` and `j` index lists, or a condition string"
                    ),
                ));
            }
            let (i, j) = (index_list(c.get("i"), "i")?, index_list(c.get("j"), "j")?);
            if i.len() != j.len() {
                return Err(spec_err(
                    file,
                    &key,
                    format!("`i` has {} indices and `j` {}", i.len(), j.len()),
                ));
            }
            Ok(Connect::Pairs(i.into_iter().zip(j).collect()))
        }
        Some(other) => Err(spec_err(
            file,
            &key,
            format!(
                "expected \"all\", a condition string or {{ i = [...], j = [...] }}, found {}",
                other.type_str()
            ),
        )),
    }
}
