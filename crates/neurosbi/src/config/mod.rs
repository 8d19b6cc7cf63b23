//! Fit files: the TOML that describes a whole job (model, stimuli, observations, features,
//! priors, inference settings, seed, output folder). The format is documented in
//! `docs/model-file.md`. Everything is checked here, before any simulation runs.

use crate::error::{Error, Result};
use crate::problem::{FreeParameter, Observed, Output, Problem, SPIKES};
use crate::quantity::{Unit, parse_quantity};
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
mod stimulus;

pub use data::{NumberTable, parse_csv, parse_npy};
pub use files::{DATA_LIMIT, TOML_LIMIT, read_bounded, read_text_bounded};

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
        let q = parse_quantity(self.file, key, &text)?;
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

/// The fit file's integration method (`method`), checked.
fn method_override(ctx: &Ctx, top: &toml::Table) -> Result<Option<String>> {
    let Some(m) = top.get("method") else {
        return Ok(None);
    };
    let name = m
        .as_str()
        .ok_or_else(|| ctx.err("method", "expected an integration method name"))?;
    neurosbi_sim::Method::parse(name).map_err(|e| ctx.err("method", e.to_string()))?;
    Ok(Some(name.to_string()))
}

/// The model: a model-library file or an inline table of the same schema, with the fit
/// file's `method` (when given) replacing the model's before the model is checked.
fn model_spec(ctx: &Ctx, top: &toml::Table) -> Result<ModelSpec> {
    let method = method_override(ctx, top)?;
    let (name, text) = match top.get("model") {
        Some(toml::Value::String(p)) => {
            let mp = ctx.dir.join(p);
            let text = read_text_bounded(&mp, TOML_LIMIT).map_err(|e| {
                ctx.err(
                    "model",
                    format!("cannot read model file {}: {e}", mp.display()),
                )
            })?;
            (mp.display().to_string(), text)
        }
        Some(toml::Value::Table(t)) => {
            let src = toml::to_string(t).map_err(|e| ctx.err("model", e.to_string()))?;
            (format!("{} [model]", ctx.file), src)
        }
        Some(o) => {
            return Err(ctx.err(
                "model",
                format!(
                    "expected a path to a model file or a table, found {}",
                    o.type_str()
                ),
            ));
        }
        None => return Err(ctx.err("model", "missing (a model file path or a [model] table)")),
    };
    ModelSpec::parse_with_method(&name, &text, method.as_deref()).map_err(|e| {
        let with = method.map_or(String::new(), |m| format!(" (with method = \"{m}\")"));
        ctx.err("model", format!("{e}{with}"))
    })
}

impl FitConfig {
    /// Reads and checks a fit file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_text_bounded(path, TOML_LIMIT).map_err(Error::io(path))?;
        Self::parse(path, &text)
    }

    /// Parses fit-file text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let file = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let ctx = Ctx {
            file: &file,
            dir,
            memory: checks::machine_memory(),
        };
        let top: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ctx.err(&format!("line {line}"), e.message().to_string())
        })?;
        ctx.check_keys("", &top, &TOP_KEYS)?;

        let spec = model_spec(&ctx, &top)?;
        let model = spec.build().map_err(|e| ctx.err("model", e.to_string()))?;

        let dt = ctx.quantity(
            "dt",
            top.get("dt")
                .ok_or_else(|| ctx.err("dt", "missing (e.g. dt = \"0.01*ms\")"))?,
            "second",
        )?;
        if dt <= 0.0 {
            return Err(ctx.err("dt", "must be positive"));
        }
        let duration = ctx.quantity(
            "duration",
            top.get("duration")
                .ok_or_else(|| ctx.err("duration", "missing (e.g. duration = \"350*ms\")"))?,
            "second",
        )?;
        let n_steps = checks::step_count(&ctx, dt, duration)?;
        let seed = match top.get("seed") {
            None => 0,
            Some(v) => v
                .as_integer()
                .filter(|i| *i >= 0)
                .ok_or_else(|| ctx.err("seed", "expected a non-negative integer"))?
                as u64,
        };

        // Stimuli, one per model input.
        let stim_t = table(&ctx, &top, "stimuli")?;
        let mut stimuli = Vec::new();
        let mut window: Option<(f64, f64)> = None;
        for input in model.inputs() {
            let key = format!("stimuli.{}", input.name);
            let st = stim_t
                .and_then(|t| t.get(&input.name))
                .and_then(|v| v.as_table())
                .ok_or_else(|| {
                    ctx.err(
                        &key,
                        format!(
                            "missing: the model has input `{}`, give its stimulus",
                            input.name
                        ),
                    )
                })?;
            let (rows, w) = stimulus(&ctx, &key, st, &input.dim, dt, n_steps, seed)?;
            if window.is_none() {
                window = w;
            }
            stimuli.push(Stimulus::from_rows(&input.name, &rows)?);
        }
        if let Some(t) = stim_t {
            for k in t.keys() {
                if !model.inputs().iter().any(|i| &i.name == k) {
                    return Err(ctx.err(
                        &format!("stimuli.{k}"),
                        format!(
                            "not an input of the model (inputs: {})",
                            model
                                .inputs()
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let n_traces = stimuli.first().map_or(1, |s| s.n_traces);
        if let Some(s) = stimuli.iter().find(|s| s.n_traces != n_traces) {
            return Err(ctx.err(
                &format!("stimuli.{}", s.name),
                format!(
                    "has {} traces, the first stimulus has {n_traces}",
                    s.n_traces
                ),
            ));
        }
        if let Some(f) = table(&ctx, &top, "features")? {
            ctx.check_keys("features", f, &["window"])?;
            if let Some(w) = f.get("window") {
                let a = w
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| ctx.err("features.window", "expected [start, stop]"))?;
                let on = ctx.quantity("features.window", &a[0], "second")?;
                let off = ctx.quantity("features.window", &a[1], "second")?;
                checks::window(&ctx, "features.window", (on, off), duration)?;
                window = Some((on, off));
            }
        }
        let window = window.unwrap_or((0.0, duration));
        let window = (window.0 * 1e3, window.1 * 1e3);

        // Parameters: fixed values, then priors for the free ones.
        let mut base: Vec<Option<f64>> = model
            .parameters()
            .iter()
            .map(|p| {
                spec.parameters
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, q)| q.value)
            })
            .collect();
        let param_index = |key: &str, name: &str| -> Result<usize> {
            model
                .parameters()
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| {
                    ctx.err(
                        key,
                        format!(
                            "`{name}` is not a parameter of the model (parameters: {})",
                            model
                                .parameters()
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        };
        if let Some(f) = table(&ctx, &top, "fixed")? {
            for (name, v) in f {
                let key = format!("fixed.{name}");
                let j = param_index(&key, name)?;
                let text = ctx.quantity_text(&key, v)?;
                let q = parse_quantity(&file, &key, &text)?;
                if q.dim != model.parameters()[j].dim {
                    return Err(ctx.err(
                        &key,
                        format!(
                            "has dimension {}, the parameter is {}",
                            q.dim,
                            model.parameters()[j].dim
                        ),
                    ));
                }
                base[j] = Some(q.value);
            }
        }
        let priors = table(&ctx, &top, "priors")?
            .ok_or_else(|| ctx.err("priors", "missing: give a prior for each free parameter"))?;
        let mut free = Vec::new();
        let fixed = table(&ctx, &top, "fixed")?;
        for (name, v) in priors {
            let key = format!("priors.{name}");
            let j = param_index(&key, name)?;
            if fixed.is_some_and(|f| f.contains_key(name)) {
                return Err(ctx.err(
                    &key,
                    format!(
                        "`{name}` is both fixed (fixed.{name}) and free (priors.{name}): remove one"
                    ),
                ));
            }
            let (prior, unit) = prior(&ctx, &key, v, &model.parameters()[j].dim)?;
            free.push(FreeParameter {
                name: name.clone(),
                unit,
                prior,
            });
            base[j].get_or_insert(0.0);
        }
        if free.is_empty() {
            return Err(ctx.err("priors", "no free parameter: give at least one prior"));
        }
        let base: Vec<f64> = base
            .iter()
            .zip(model.parameters())
            .map(|(b, p)| {
                b.ok_or_else(|| {
                    ctx.err(
                        &format!("priors.{}", p.name),
                        format!(
                            "missing prior for free parameter `{}` (or give it a value under [fixed])",
                            p.name
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;

        // Outputs and their features.
        let outs = table(&ctx, &top, "outputs")?.ok_or_else(|| {
            ctx.err(
                "outputs",
                "missing: give at least one recorded output with features",
            )
        })?;
        let recordable = model.recordable();
        let mut outputs = Vec::new();
        let mut observed_files: Vec<Option<Observed>> = Vec::new();
        for (var, v) in outs {
            let key = format!("outputs.{var}");
            let t = v
                .as_table()
                .ok_or_else(|| ctx.err(&key, "expected a table"))?;
            ctx.check_keys(&key, t, &["unit", "features", "data", "time_unit"])?;
            if var != SPIKES && !recordable.contains(var) {
                return Err(ctx.err(
                    &key,
                    format!(
                        "`{var}` cannot be recorded (recordable: spikes, {})",
                        recordable.join(", ")
                    ),
                ));
            }
            if var == SPIKES && spec.model.threshold.is_none() {
                return Err(ctx.err(&key, "spike trains need a threshold in the model"));
            }
            let unit = match t.get("unit") {
                None if var == SPIKES => Unit::named("ms").expect("ms"),
                None => Unit::named("1").expect("1"),
                Some(u) => {
                    let name = u.as_str().ok_or_else(|| {
                        ctx.err(
                            &format!("{key}.unit"),
                            "expected a unit name such as \"mV\"",
                        )
                    })?;
                    Unit::named(name).ok_or_else(|| {
                        ctx.err(&format!("{key}.unit"), format!("unknown unit `{name}`"))
                    })?
                }
            };
            if var != SPIKES {
                let vdim = model
                    .state_vars()
                    .iter()
                    .find(|s| &s.name == var)
                    .map(|s| s.dim);
                if let Some(d) = vdim
                    && !unit.name.is_empty()
                    && unit.dim().is_some_and(|u| u != d)
                {
                    return Err(ctx.err(
                        &format!("{key}.unit"),
                        format!(
                            "`{}` does not match the dimension {d} of `{var}`",
                            unit.name
                        ),
                    ));
                }
            }
            let names: Vec<String> = t
                .get("features")
                .and_then(|f| f.as_array())
                .ok_or_else(|| {
                    ctx.err(
                        &format!("{key}.features"),
                        "missing: a list of feature names from `neurosbi features`",
                    )
                })?
                .iter()
                .map(|f| {
                    f.as_str()
                        .map(String::from)
                        .ok_or_else(|| ctx.err(&format!("{key}.features"), "expected strings"))
                })
                .collect::<Result<_>>()?;
            if names.is_empty() {
                return Err(ctx.err(
                    &format!("{key}.features"),
                    "empty: give at least one feature",
                ));
            }
            let features = crate::raw::feature_set(&names, n_steps)
                .map_err(|e| ctx.err(&format!("{key}.features"), e))?;
            let obs = match t.get("data") {
                None => None,
                Some(p) => {
                    let path = ctx.path(&format!("{key}.data"), p)?;
                    let rows = read_matrix(&ctx, &format!("{key}.data"), &path, var == SPIKES)?;
                    if var == SPIKES {
                        let tu = match t.get("time_unit") {
                            None => 1.0,
                            Some(u) => {
                                let u = u.as_str().and_then(Unit::named).ok_or_else(|| {
                                    ctx.err(
                                        &format!("{key}.time_unit"),
                                        "expected a time unit such as \"ms\" or \"second\"",
                                    )
                                })?;
                                u.scale * 1e3
                            }
                        };
                        Some(Observed::Spikes(
                            rows.into_iter()
                                .map(|r| r.into_iter().map(|x| x * tu).collect())
                                .collect(),
                        ))
                    } else {
                        if let Some((k, r)) =
                            rows.iter().enumerate().find(|(_, r)| r.len() != n_steps)
                        {
                            return Err(ctx.err(
                                &format!("{key}.data"),
                                format!("{}: trace {k} has {} samples, expected {n_steps} (duration / dt)", path.display(), r.len()),
                            ));
                        }
                        checks::voltage_data(&ctx, &format!("{key}.data"), &unit, &rows)?;
                        Some(Observed::Traces(rows))
                    }
                }
            };
            if let Some(Observed::Traces(r) | Observed::Spikes(r)) = &obs
                && r.len() != n_traces
            {
                return Err(ctx.err(
                    &format!("{key}.data"),
                    format!("{} traces, the stimuli have {n_traces}", r.len()),
                ));
            }
            observed_files.push(obs);
            outputs.push(Output {
                variable: var.clone(),
                unit,
                feature_names: names,
                features,
            });
        }

        let problem = Problem {
            model: Arc::new(model),
            dt,
            n_steps,
            stimuli,
            n_traces,
            window,
            base,
            free,
            outputs,
            noise_seed: neurosbi_infer::rng::derive_seed(seed, 77),
        };

        // Observation: files for every output, or a synthetic ground truth.
        let synthetic = table(&ctx, &top, "synthetic")?;
        let n_files = observed_files.iter().filter(|o| o.is_some()).count();
        let (observed, truth) = match (synthetic, n_files) {
            (Some(_), n) if n > 0 => {
                return Err(ctx.err(
                    "synthetic",
                    "give either [synthetic] or data files for the outputs, not both",
                ));
            }
            (Some(s), _) => {
                let mut truth = Vec::new();
                for k in s.keys() {
                    if !problem.free.iter().any(|p| &p.name == k) {
                        return Err(ctx.err(
                            &format!("synthetic.{k}"),
                            "not a free parameter (set fixed values under [fixed])",
                        ));
                    }
                }
                for p in &problem.free {
                    let key = format!("synthetic.{}", p.name);
                    let v = s.get(&p.name).ok_or_else(|| {
                        ctx.err(&key, "missing ground-truth value for this free parameter")
                    })?;
                    let text = ctx.quantity_text(&key, v)?;
                    let q = parse_quantity(&file, &key, &text)?;
                    let j = problem
                        .model
                        .parameters()
                        .iter()
                        .position(|x| x.name == p.name)
                        .expect("checked");
                    if q.dim != problem.model.parameters()[j].dim {
                        return Err(ctx.err(
                            &key,
                            format!(
                                "has dimension {}, the parameter is {}",
                                q.dim,
                                problem.model.parameters()[j].dim
                            ),
                        ));
                    }
                    let value = q.value / p.unit.scale;
                    checks::truth_in_prior(&ctx, &key, value, p)?;
                    truth.push(value);
                }
                (None, Some(truth))
            }
            (None, n) if n == problem.outputs.len() => (
                Some(
                    observed_files
                        .into_iter()
                        .map(|o| o.expect("counted"))
                        .collect(),
                ),
                None,
            ),
            (None, _) => {
                let missing = problem
                    .outputs
                    .iter()
                    .zip(&observed_files)
                    .find(|(_, o)| o.is_none())
                    .map(|(o, _)| o.variable.clone())
                    .unwrap_or_default();
                return Err(ctx.err(
                    &format!("outputs.{missing}.data"),
                    "missing: give the observed data file, or a [synthetic] ground truth",
                ));
            }
        };

        let inference = inference(&ctx, table(&ctx, &top, "inference")?)?;
        checks::run_size(&ctx, &inference, &problem)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "fit".into());
        let out = match top.get("output") {
            None => PathBuf::from("neurosbi-out").join(&name),
            Some(v) => PathBuf::from(
                v.as_str()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| {
                        ctx.err(
                            "output",
                            "expected a folder path (an empty one would write into the working directory)",
                        )
                    })?,
            ),
        };
        Ok(FitConfig {
            file: path.to_path_buf(),
            name,
            problem,
            observed,
            truth,
            inference,
            seed,
            out,
        })
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
