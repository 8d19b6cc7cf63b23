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

impl FitConfig {
    /// Reads and checks a fit file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(path, &text)
    }

    /// Parses fit-file text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let file = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let ctx = Ctx { file: &file, dir };
        let top: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ctx.err(&format!("line {line}"), e.message().to_string())
        })?;
        ctx.check_keys("", &top, &TOP_KEYS)?;

        // The model: a model-library file or an inline table of the same schema.
        let spec = match top.get("model") {
            Some(toml::Value::String(p)) => {
                let mp = dir.join(p);
                ModelSpec::from_file(&mp).map_err(|e| ctx.err("model", e.to_string()))?
            }
            Some(toml::Value::Table(t)) => {
                let src = toml::to_string(t).map_err(|e| ctx.err("model", e.to_string()))?;
                ModelSpec::parse(&format!("{file} [model]"), &src)
                    .map_err(|e| ctx.err("model", e.to_string()))?
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
        let mut model = spec.build().map_err(|e| ctx.err("model", e.to_string()))?;
        if let Some(m) = top.get("method") {
            let name = m
                .as_str()
                .ok_or_else(|| ctx.err("method", "expected an integration method name"))?;
            let method =
                neurosbi_sim::Method::parse(name).map_err(|e| ctx.err("method", e.to_string()))?;
            model = model
                .with_method(method)
                .map_err(|e| ctx.err("method", e.to_string()))?;
        }

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
        let n_steps = (duration / dt).round() as usize;
        if n_steps < 2 {
            return Err(ctx.err("duration", "must cover at least two time steps"));
        }
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
        for (name, v) in priors {
            let key = format!("priors.{name}");
            let j = param_index(&key, name)?;
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
                    truth.push(q.value / p.unit.scale);
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
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "fit".into());
        let out = match top.get("output") {
            None => PathBuf::from("neurosbi-out").join(&name),
            Some(v) => PathBuf::from(
                v.as_str()
                    .ok_or_else(|| ctx.err("output", "expected a folder path"))?,
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

type StimRows = (Vec<Vec<f64>>, Option<(f64, f64)>);

/// Builds the rows of one stimulus; returns them with the stimulus window (s) when the
/// kind has one.
fn stimulus(
    ctx: &Ctx,
    key: &str,
    t: &toml::Table,
    dim: &neurosbi_sim::Dimension,
    dt: f64,
    n_steps: usize,
    seed: u64,
) -> Result<StimRows> {
    let kind = t.get("kind").and_then(|k| k.as_str()).ok_or_else(|| {
        ctx.err(
            &format!("{key}.kind"),
            "missing: one of step, ramp, pulses, noise, file",
        )
    })?;
    let allowed: &[&str] = match kind {
        "step" => &["kind", "amplitude", "start", "stop"],
        "ramp" => &["kind", "from", "to", "start", "stop"],
        "pulses" => &["kind", "amplitude", "start", "width", "period", "count"],
        "noise" => &["kind", "mean", "std", "seed", "traces"],
        "file" => &["kind", "file", "unit"],
        other => {
            return Err(ctx.err(
                &format!("{key}.kind"),
                format!(
                    "unknown stimulus kind `{other}` (expected step, ramp, pulses, noise or file)"
                ),
            ));
        }
    };
    ctx.check_keys(key, t, allowed)?;
    let amp = |k: &str, default: Option<f64>| -> Result<Vec<f64>> {
        let kk = format!("{key}.{k}");
        let one = |v: &toml::Value| -> Result<f64> {
            let text = ctx.quantity_text(&kk, v)?;
            let q = parse_quantity(ctx.file, &kk, &text)?;
            if q.dim != *dim {
                return Err(ctx.err(
                    &kk,
                    format!("\"{text}\" has dimension {}, the input is {dim}", q.dim),
                ));
            }
            Ok(q.value)
        };
        match t.get(k) {
            None => default
                .map(|d| vec![d])
                .ok_or_else(|| ctx.err(&kk, "missing")),
            Some(toml::Value::Array(a)) if !a.is_empty() => a.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    };
    let time = |k: &str, default: f64| -> Result<f64> {
        t.get(k).map_or(Ok(default), |v| {
            ctx.quantity(&format!("{key}.{k}"), v, "second")
        })
    };
    let duration = n_steps as f64 * dt;
    // Sample k holds for k*dt <= t < (k+1)*dt; a step is on where its sample time lies in
    // [start, stop).
    let on = |i: usize, a: f64, b: f64| {
        let ti = i as f64 * dt;
        ti >= a - 1e-9 * dt && ti < b - 1e-9 * dt
    };
    Ok(match kind {
        "step" => {
            let (a, b) = (time("start", 0.0)?, time("stop", duration)?);
            let rows = amp("amplitude", None)?
                .into_iter()
                .map(|amp| {
                    (0..n_steps)
                        .map(|i| if on(i, a, b) { amp } else { 0.0 })
                        .collect()
                })
                .collect();
            (rows, Some((a, b)))
        }
        "ramp" => {
            let (a, b) = (time("start", 0.0)?, time("stop", duration)?);
            let from = amp("from", Some(0.0))?;
            let to = amp("to", None)?;
            let n = from.len().max(to.len());
            let rows = (0..n)
                .map(|r| {
                    let (f, g) = (from[r.min(from.len() - 1)], to[r.min(to.len() - 1)]);
                    (0..n_steps)
                        .map(|i| {
                            if on(i, a, b) {
                                f + (g - f) * (i as f64 * dt - a) / (b - a)
                            } else {
                                0.0
                            }
                        })
                        .collect()
                })
                .collect();
            (rows, Some((a, b)))
        }
        "pulses" => {
            let a = time("start", 0.0)?;
            let width = time("width", 0.0)?;
            let period = time("period", 0.0)?;
            if width <= 0.0 || period < width {
                return Err(ctx.err(key, "pulses need width > 0 and period >= width"));
            }
            let count = t
                .get("count")
                .map_or(Ok(1), |v| usize_of(ctx, &format!("{key}.count"), v))?;
            let rows = amp("amplitude", None)?
                .into_iter()
                .map(|amp| {
                    (0..n_steps)
                        .map(|i| {
                            let on_any = (0..count).any(|c| {
                                let s = a + c as f64 * period;
                                on(i, s, s + width)
                            });
                            if on_any { amp } else { 0.0 }
                        })
                        .collect()
                })
                .collect();
            (rows, Some((a, a + (count - 1) as f64 * period + width)))
        }
        "noise" => {
            let mean = amp("mean", Some(0.0))?;
            let std = amp("std", None)?;
            let traces = t
                .get("traces")
                .map_or(Ok(1), |v| usize_of(ctx, &format!("{key}.traces"), v))?;
            let s = match t.get("seed") {
                None => seed,
                Some(v) => v.as_integer().filter(|i| *i >= 0).ok_or_else(|| {
                    ctx.err(&format!("{key}.seed"), "expected a non-negative integer")
                })? as u64,
            };
            let rows = (0..traces)
                .map(|r| {
                    let mut rng = neurosbi_infer::stream_rng(s, 0x5715, r as u64);
                    let (m, sd) = (mean[r.min(mean.len() - 1)], std[r.min(std.len() - 1)]);
                    (0..n_steps)
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            m + sd * z
                        })
                        .collect()
                })
                .collect();
            (rows, None)
        }
        _ => {
            let fk = format!("{key}.file");
            let path = ctx.path(&fk, t.get("file").ok_or_else(|| ctx.err(&fk, "missing"))?)?;
            let uk = format!("{key}.unit");
            let uname = t
                .get("unit")
                .and_then(|u| u.as_str())
                .ok_or_else(|| ctx.err(&uk, "missing: the unit of the values, e.g. \"nA\""))?;
            let unit = Unit::named(uname)
                .ok_or_else(|| ctx.err(&uk, format!("unknown unit `{uname}`")))?;
            if lookup_unit(uname).is_some_and(|u| u.dim != *dim) {
                return Err(ctx.err(
                    &uk,
                    format!("`{uname}` does not match the input's dimension {dim}"),
                ));
            }
            let rows = read_matrix(ctx, &fk, &path, false)?;
            if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_steps) {
                return Err(ctx.err(
                    &fk,
                    format!(
                        "{}: trace {k} has {} samples, expected {n_steps} (duration / dt)",
                        path.display(),
                        r.len()
                    ),
                ));
            }
            (
                rows.into_iter()
                    .map(|r| r.into_iter().map(|v| v * unit.scale).collect())
                    .collect(),
                None,
            )
        }
    })
}

/// Reads rows of numbers from a CSV (one trace per line; a non-numeric first line is a
/// header) or a 1-D/2-D `.npy`. `ragged` allows rows of different lengths (spike times).
fn read_matrix(ctx_file: &Ctx, key: &str, path: &Path, ragged: bool) -> Result<Vec<Vec<f64>>> {
    let err = |m: String| ctx_file.err(key, format!("{}: {m}", path.display()));
    if path.extension().is_some_and(|e| e == "npy") {
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| err(e.to_string()))?;
        let shape = npy.shape().to_vec();
        let data: Vec<f64> = match npy.dtype() {
            npyz::DType::Plain(t)
                if t.size_field() == 4 && t.type_char() == npyz::TypeChar::Float =>
            {
                npy.into_vec::<f32>()
                    .map_err(|e| err(e.to_string()))?
                    .into_iter()
                    .map(f64::from)
                    .collect()
            }
            _ => npy
                .into_vec::<f64>()
                .map_err(|e| err(format!("{e} (expected float64 or float32)")))?,
        };
        return match shape.as_slice() {
            [n] => Ok(vec![data[..*n as usize].to_vec()]),
            [r, c] => Ok(data
                .chunks(*c as usize)
                .take(*r as usize)
                .map(|x| x.to_vec())
                .collect()),
            s => Err(err(format!(
                "expected a 1-D or 2-D array, found shape {s:?}"
            ))),
        };
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && !ragged) {
            continue;
        }
        let cells: Vec<&str> = line
            .split([',', ';', '\t', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let parsed: std::result::Result<Vec<f64>, _> =
            cells.iter().map(|c| c.parse::<f64>()).collect();
        match parsed {
            Ok(r) => rows.push(r),
            Err(_) if i == 0 => {} // header
            Err(e) => {
                return Err(err(format!(
                    "line {}: {e} (expected numbers separated by commas)",
                    i + 1
                )));
            }
        }
    }
    if !ragged && rows.is_empty() {
        return Err(err("no data rows".into()));
    }
    Ok(rows)
}

/// Reads a prior: `[low, high]` (uniform) or a table `{ kind, ... }`; returns the marginal in
/// the unit the bounds are written in, and that unit.
fn prior(
    ctx: &Ctx,
    key: &str,
    v: &toml::Value,
    dim: &neurosbi_sim::Dimension,
) -> Result<(Marginal, Unit)> {
    let (kind, a, b, ka, kb, unit_override) = match v {
        toml::Value::Array(arr) if arr.len() == 2 => ("uniform".to_string(), arr[0].clone(), arr[1].clone(), "low", "high", None),
        toml::Value::Table(t) => {
            let kind = t.get("kind").and_then(|k| k.as_str()).unwrap_or("uniform").to_string();
            let (ka, kb) = match kind.as_str() {
                "uniform" | "loguniform" | "log-uniform" => ("low", "high"),
                "normal" => ("mean", "std"),
                "lognormal" | "log-normal" => ("median", "sigma"),
                o => return Err(ctx.err(&format!("{key}.kind"), format!("unknown prior `{o}` (expected uniform, loguniform, normal, lognormal)"))),
            };
            ctx.check_keys(key, t, &["kind", ka, kb, "unit"])?;
            let get = |k: &str| t.get(k).cloned().ok_or_else(|| ctx.err(&format!("{key}.{k}"), "missing"));
            (kind, get(ka)?, get(kb)?, ka, kb, t.get("unit").and_then(|u| u.as_str()).map(String::from))
        }
        _ => return Err(ctx.err(key, "expected [low, high] (uniform) or a table such as { kind = \"loguniform\", low = \"1*nS\", high = \"100*nS\" }")),
    };
    let ta = ctx.quantity_text(&format!("{key}.{ka}"), &a)?;
    let tb = ctx.quantity_text(&format!("{key}.{kb}"), &b)?;
    let qa = parse_quantity(ctx.file, &format!("{key}.{ka}"), &ta)?;
    let qb = parse_quantity(ctx.file, &format!("{key}.{kb}"), &tb)?;
    let unit = match unit_override {
        Some(u) => Unit::named(&u)
            .ok_or_else(|| ctx.err(&format!("{key}.unit"), format!("unknown unit `{u}`")))?,
        None => Unit::of_text(&ta),
    };
    let check = |q: &neurosbi_sim::Quantity, k: &str, text: &str| -> Result<()> {
        if q.dim != *dim {
            return Err(ctx.err(
                &format!("{key}.{k}"),
                format!("\"{text}\" has dimension {}, the parameter is {dim}", q.dim),
            ));
        }
        Ok(())
    };
    let (a, b) = (qa.value / unit.scale, qb.value / unit.scale);
    let m = match kind.as_str() {
        "uniform" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::Uniform { low: a, high: b }
        }
        "loguniform" | "log-uniform" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::LogUniform { low: a, high: b }
        }
        "normal" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::Normal { mean: a, std: b }
        }
        _ => {
            check(&qa, ka, &ta)?;
            if !qb.dim.is_dimensionless() {
                return Err(ctx.err(
                    &format!("{key}.sigma"),
                    "sigma of a log-normal is dimensionless",
                ));
            }
            Marginal::LogNormal {
                mu: a.ln(),
                sigma: qb.value,
            }
        }
    };
    m.validate(0).map_err(|e| ctx.err(key, e.to_string()))?;
    Ok((m, unit))
}

/// `[inference]` keys that are method options (sbi's names), handed to `Method::from_name`.
const METHOD_OPTION_KEYS: &[&str] = &[
    "posterior",
    "num_atoms",
    "num_classes",
    "gamma",
    "regularization_strength",
    "epsilon",
    "num_discrete",
    "sde",
    "quantile",
    "eps",
    "population_size",
    "epsilon_quantile",
    "kernel_scale",
    "regression_adjustment",
];

fn inference(ctx: &Ctx, t: Option<&toml::Table>) -> Result<InferenceSettings> {
    let empty = toml::Table::new();
    let t = t.unwrap_or(&empty);
    ctx.check_keys(
        "inference",
        t,
        &[
            "method",
            "estimator",
            "simulations",
            "rounds",
            "samples",
            "hidden_features",
            "num_transforms",
            "num_components",
            "num_bins",
            "max_epochs",
            "device",
            "training_batch_size",
            "learning_rate",
            "stop_after_epochs",
            "validation_fraction",
            "batch_size",
            "predictive",
            "embedding",
        ]
        .iter()
        .chain(METHOD_OPTION_KEYS)
        .copied()
        .collect::<Vec<_>>(),
    )?;
    let s = |k: &str, d: &str| -> Result<String> {
        t.get(k).map_or(Ok(d.to_string()), |v| {
            v.as_str()
                .map(str::to_lowercase)
                .ok_or_else(|| ctx.err(&format!("inference.{k}"), "expected a string"))
        })
    };
    let n = |k: &str, d: usize| -> Result<usize> {
        t.get(k)
            .map_or(Ok(d), |v| usize_of(ctx, &format!("inference.{k}"), v))
    };
    let f = |k: &str, d: f64| -> Result<f64> {
        t.get(k).map_or(Ok(d), |v| {
            v.as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|x| *x > 0.0)
                .ok_or_else(|| ctx.err(&format!("inference.{k}"), "expected a positive number"))
        })
    };
    let method_name = s("method", "npe")?;
    // Method options (sbi's names); Method::from_name rejects those that do not apply.
    let mut options = MethodOptions::new();
    let mut option_keys = METHOD_OPTION_KEYS.to_vec();
    if matches!(method_name.as_str(), "npe_a" | "snpe_a") {
        // For NPE-A `num_components` sizes its mixture density network.
        option_keys.push("num_components");
    }
    for k in option_keys {
        if let Some(v) = t.get(k) {
            let v = match v {
                toml::Value::Integer(i) => OptionValue::Number(*i as f64),
                toml::Value::Float(f) => OptionValue::Number(*f),
                toml::Value::String(s) => OptionValue::Text(s.clone()),
                toml::Value::Boolean(b) => OptionValue::Bool(*b),
                _ => {
                    return Err(ctx.err(
                        &format!("inference.{k}"),
                        "expected a number, string or boolean",
                    ));
                }
            };
            options.insert(k, v);
        }
    }
    let method = Method::from_name(&method_name, &options)
        .map_err(|e| ctx.err("inference.method", e.to_string()))?;
    let posterior = match options.get("posterior") {
        Some(_) => Some(
            PosteriorKind::from_options(&method, &options)
                .map_err(|e| ctx.err("inference.posterior", e.to_string()))?,
        ),
        None => None,
    };
    let estimator_name = s("estimator", "maf")?;
    let mut estimator = match estimator_name.as_str() {
        "maf" => EstimatorConfig::maf(),
        "nsf" => EstimatorConfig::nsf(),
        "mdn" => EstimatorConfig::mdn(),
        o => {
            return Err(ctx.err(
                "inference.estimator",
                format!("unknown estimator `{o}` (expected maf, nsf, mdn)"),
            ));
        }
    };
    estimator.hidden_features = n("hidden_features", estimator.hidden_features)?;
    estimator.num_transforms = n("num_transforms", estimator.num_transforms)?;
    estimator.num_components = n("num_components", estimator.num_components)?;
    estimator.num_bins = n("num_bins", estimator.num_bins)?;
    match s("embedding", "none")?.as_str() {
        "none" => {}
        "cnn" => {
            estimator.embedding = Some(neurosbi_flows::EmbeddingConfig::Convolutional {
                channels: 8,
                num_layers: 3,
                kernel_size: 5,
                output_dim: 8,
            })
        }
        "mlp" | "fc" => {
            estimator.embedding = Some(neurosbi_flows::EmbeddingConfig::FullyConnected {
                hidden_features: 50,
                num_layers: 2,
                output_dim: 20,
            })
        }
        o => {
            return Err(ctx.err(
                "inference.embedding",
                format!("unknown embedding `{o}` (expected none, cnn, mlp)"),
            ));
        }
    }
    let n_rounds = n("rounds", 1)?;
    let rounds = match t.get("simulations") {
        None => vec![1000; n_rounds],
        Some(toml::Value::Array(a)) => {
            let r: Vec<usize> = a
                .iter()
                .map(|v| usize_of(ctx, "inference.simulations", v))
                .collect::<Result<_>>()?;
            if t.contains_key("rounds") && r.len() != n_rounds {
                return Err(ctx.err(
                    "inference.simulations",
                    format!("{} entries but rounds = {n_rounds}", r.len()),
                ));
            }
            r
        }
        Some(v) => vec![usize_of(ctx, "inference.simulations", v)?; n_rounds],
    };
    let mut train = TrainConfig::default();
    if let Some(v) = t.get("max_epochs") {
        train.max_epochs = Some(usize_of(ctx, "inference.max_epochs", v)?);
    }
    train.batch_size = n("training_batch_size", train.batch_size)?;
    train.learning_rate = f("learning_rate", train.learning_rate)?;
    train.stop_after_epochs = n("stop_after_epochs", train.stop_after_epochs)?;
    train.validation_fraction = f("validation_fraction", train.validation_fraction)?;
    if let Some(v) = t.get("device") {
        let name = v.as_str().ok_or_else(|| {
            ctx.err(
                "inference.device",
                "expected \"cpu\", \"cuda\" or \"cuda:N\"",
            )
        })?;
        // Checked now, so a GPU request on a CPU-only build fails before any simulation.
        neurosbi_flows::device_from_name(name)
            .map_err(|e| ctx.err("inference.device", e.to_string()))?;
        train.device = Some(name.to_string());
    }
    Ok(InferenceSettings {
        method,
        method_name,
        posterior,
        estimator,
        estimator_name,
        rounds,
        train,
        samples: n("samples", 10_000)?,
        batch_size: n("batch_size", 100)?,
        predictive: n("predictive", 20)?,
    })
}

#[cfg(test)]
mod method_tests {
    use super::FitConfig;
    use neurosbi_infer::{Method, PosteriorKind};
    use std::path::Path;

    const BASE: &str = r#"
model = "models/hh_c.toml"
dt = "0.05*ms"
duration = "100*ms"
[stimuli.I]
kind = "step"
amplitude = "1*nA"
start = "20*ms"
[outputs.v]
unit = "mV"
features = ["spike_count", "mean(window=stim)"]
[priors]
gNa = ["0.5*uS", "80*uS"]
gK = ["1e-4*uS", "15*uS"]
[synthetic]
gNa = "32*uS"
gK = "1*uS"
[inference]
"#;

    fn parse(extra: &str) -> Result<FitConfig, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/m.toml");
        FitConfig::parse(&path, &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn method_options_and_posterior_kind_are_read() {
        let c =
            parse("method = \"nre_c\"\ngamma = 2\nnum_classes = 3\nposterior = \"sir\"\n").unwrap();
        assert_eq!(
            c.inference.method,
            Method::NreC {
                num_classes: 3,
                gamma: 2.0
            }
        );
        assert_eq!(c.inference.posterior, Some(PosteriorKind::Sir));
        let c = parse("method = \"snpe_a\"\nnum_components = 2\n").unwrap();
        assert_eq!(c.inference.method, Method::NpeA { num_components: 2 });
        assert_eq!(c.inference.posterior, None);
    }

    #[test]
    fn inapplicable_options_name_the_option_and_the_method() {
        let e = parse("method = \"nle\"\nnum_atoms = 5\n").unwrap_err();
        assert!(e.contains("num_atoms") && e.contains("nle"), "{e}");
        let e = parse("method = \"nle\"\nposterior = \"direct\"\n").unwrap_err();
        assert!(e.contains("posterior") && e.contains("nle"), "{e}");
        let e = parse("method = \"bnre\"\nregularization_strength = [1]\n").unwrap_err();
        assert!(e.contains("regularization_strength"), "{e}");
    }
}
