//! [`ProblemSpec::validate`]: the one place where a problem description is checked and
//! turned into a [`Problem`] with its inference settings. Fit files and the
//! [`crate::InferencerBuilder`] both end here, so they refuse the same mistakes with the same
//! messages and build the same problem (noise seed included) from the same description.

use super::*;
use crate::spec::{DataSpec, ModelSource, OutputSpec, PriorSpec, ProblemSpec, StimulusSpec};
use neurosbi_sim::Model;

/// The seed of the simulator's noise for the observation and the predictive traces, from
/// the master seed. Derived here and nowhere else, so every door simulates the same
/// observation for the same seed (and saved results of fit files stay valid).
pub fn noise_seed(seed: u64) -> u64 {
    neurosbi_infer::rng::derive_seed(seed, 77)
}

/// The model, its default parameter values (SI, from a model file's `[parameters]`), and its
/// description as text.
type BuiltModel = (Model, Vec<(String, neurosbi_sim::Quantity)>, String);

/// Observed data of every output, or the ground truth (display units) to simulate.
type Observation = (Option<Vec<Observed>>, Option<Vec<f64>>);

/// Stimuli, traces per input, stimulus window (s) when a stimulus has one.
type BuiltStimuli = (Vec<Stimulus>, usize, Option<(f64, f64)>);

impl ProblemSpec {
    /// Checks everything and builds the problem, the observation (or ground truth) and the
    /// inference settings. `file` names the description in errors (a fit file, or
    /// [`crate::spec::BUILDER_ORIGIN`]), its folder anchors relative paths and its stem is the
    /// job name.
    pub fn validate(&self, file: &Path) -> Result<FitConfig> {
        let file_name = file.display().to_string();
        let ctx = Ctx {
            file: &file_name,
            dir: file.parent().unwrap_or(Path::new(".")),
            memory: checks::machine_memory(),
        };
        let (model, defaults, model_text) = self.model(&ctx)?;
        let (dt, duration, n_steps) = self.times(&ctx)?;
        let (stimuli, n_traces, window) = self.stimuli(&ctx, &model, dt, n_steps)?;
        let window = self.window(&ctx, window, duration)?;
        let (base, free) = self.parameters(&ctx, &model, &defaults)?;
        let (outputs, observed_files) = self.outputs(&ctx, &model, dt, n_steps, n_traces)?;
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
            noise_seed: noise_seed(self.seed),
        };
        let (observed, truth) = self.observation(&ctx, &problem, observed_files)?;
        let inference = inference(&ctx, self.inference.as_ref())?;
        checks::run_size(&ctx, &inference, &problem)?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "fit".into());
        let out = match &self.output {
            None => PathBuf::from("neurosbi-out").join(&name),
            Some(s) if s.trim().is_empty() => return Err(ctx.err("output", read::EMPTY_OUTPUT)),
            Some(s) => PathBuf::from(s),
        };
        Ok(FitConfig {
            file: file.to_path_buf(),
            name,
            problem,
            observed,
            truth,
            inference,
            seed: self.seed,
            out,
            model_text,
            inputs: self.input_files(&ctx, n_traces),
        })
    }

    /// The files this description reads: the model file, data files and stimulus files.
    fn input_files(&self, ctx: &Ctx, n_traces: usize) -> Vec<InputFile> {
        let mut v = Vec::new();
        if let Some(ModelSource::File(p)) = &self.model {
            v.push(InputFile {
                key: "model".into(),
                path: ctx.dir.join(p),
                recording: None,
            });
        }
        for (name, st) in self.stimuli.iter() {
            let StimulusSpec::Written(t) = st else {
                continue;
            };
            let from_file = if t.contains_key("kind") {
                "file"
            } else {
                "from"
            };
            if let Some(p) = t.get(from_file).and_then(toml::Value::as_str) {
                v.push(InputFile {
                    key: format!("stimuli.{name}.{from_file}"),
                    path: ctx.dir.join(p),
                    recording: None,
                });
            }
        }
        for (var, o) in self.outputs.iter().flat_map(|o| o.iter()) {
            if let Some(DataSpec::File(p)) = &o.data {
                let recording = recording::is_recording(Path::new(p)).then(|| {
                    let sweeps = o.sweeps.clone().unwrap_or_else(|| (0..n_traces).collect());
                    (var.clone(), sweeps)
                });
                v.push(InputFile {
                    key: format!("outputs.{var}.data"),
                    path: ctx.dir.join(p),
                    recording,
                });
            }
        }
        v
    }

    /// The model, with `method` (when given) replacing the model's before it is checked.
    fn model(&self, ctx: &Ctx) -> Result<BuiltModel> {
        if let Some(m) = &self.method {
            neurosbi_sim::Method::parse(m).map_err(|e| ctx.err("method", e.to_string()))?;
        }
        let method = self.method.as_deref();
        let with = || method.map_or(String::new(), |m| format!(" (with method = \"{m}\")"));
        let (name, text) = match &self.model {
            None => return Err(ctx.err("model", "missing (a model file path or a [model] table)")),
            Some(ModelSource::Description { description }) => {
                let mut d = description.clone();
                if let Some(m) = method {
                    d.method = Some(m.to_string());
                }
                let model =
                    Model::new(&d).map_err(|e| ctx.err("model", format!("{e}{}", with())))?;
                let text = toml::to_string(&d).unwrap_or_else(|_| format!("{d:#?}"));
                return Ok((model, Vec::new(), text));
            }
            Some(ModelSource::File(p)) => {
                let mp = ctx.dir.join(p);
                let text = read_text_bounded(&mp, TOML_LIMIT).map_err(|e| {
                    ctx.err(
                        "model",
                        format!("cannot read model file {}: {e}", mp.display()),
                    )
                })?;
                (mp.display().to_string(), text)
            }
            Some(ModelSource::Inline(t)) => {
                let src = toml::to_string(t).map_err(|e| ctx.err("model", e.to_string()))?;
                (format!("{} [model]", ctx.file), src)
            }
        };
        let spec = ModelSpec::parse_with_method(&name, &text, method)
            .map_err(|e| ctx.err("model", format!("{e}{}", with())))?;
        let model = spec.build().map_err(|e| ctx.err("model", e.to_string()))?;
        Ok((model, spec.parameters, text))
    }

    /// `dt`, `duration` (s) and the number of steps.
    fn times(&self, ctx: &Ctx) -> Result<(f64, f64, usize)> {
        let dt = self
            .dt
            .as_ref()
            .ok_or_else(|| ctx.err("dt", "missing (e.g. dt = \"0.01*ms\")"))?;
        let dt = ctx.quantity_of("dt", dt, "second")?;
        if dt <= 0.0 {
            return Err(ctx.err("dt", "must be positive"));
        }
        let duration = self
            .duration
            .as_ref()
            .ok_or_else(|| ctx.err("duration", "missing (e.g. duration = \"350*ms\")"))?;
        let duration = ctx.quantity_of("duration", duration, "second")?;
        let n_steps = checks::step_count(ctx, dt, duration)?;
        Ok((dt, duration, n_steps))
    }

    /// One stimulus per model input, all with the same number of traces.
    fn stimuli(&self, ctx: &Ctx, model: &Model, dt: f64, n_steps: usize) -> Result<BuiltStimuli> {
        let mut stimuli = Vec::new();
        let mut window = None;
        for input in model.inputs() {
            let key = format!("stimuli.{}", input.name);
            let st = self.stimuli.get(&input.name).ok_or_else(|| {
                ctx.err(
                    &key,
                    format!(
                        "missing: the model has input `{}`, give its stimulus",
                        input.name
                    ),
                )
            })?;
            let (rows, w) = match st {
                StimulusSpec::Written(t) => {
                    stimulus(ctx, &key, t, &input.dim, dt, n_steps, self.seed)?
                }
                StimulusSpec::Values { values } => (given_rows(ctx, &key, values, n_steps)?, None),
            };
            if window.is_none() {
                window = w;
            }
            stimuli.push(Stimulus::from_rows(&input.name, &rows)?);
        }
        if let Some(k) = self
            .stimuli
            .keys()
            .find(|k| !model.inputs().iter().any(|i| &i.name == *k))
        {
            return Err(ctx.err(
                &format!("stimuli.{k}"),
                format!(
                    "not an input of the model (inputs: {})",
                    names(model.inputs())
                ),
            ));
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
        Ok((stimuli, n_traces, window))
    }

    /// The stimulus window seen by the features, ms: `[features] window`, else the first
    /// stimulus's, else the whole run.
    fn window(&self, ctx: &Ctx, stim: Option<(f64, f64)>, duration: f64) -> Result<(f64, f64)> {
        let mut window = stim;
        if let Some([a, b]) = &self.features.window {
            let on = ctx.quantity_of("features.window", a, "second")?;
            let off = ctx.quantity_of("features.window", b, "second")?;
            checks::window(ctx, "features.window", (on, off), duration)?;
            window = Some((on, off));
        }
        let window = window.unwrap_or((0.0, duration));
        Ok((window.0 * 1e3, window.1 * 1e3))
    }

    /// Every model parameter's value (SI, model order; free ones 0 here) and the free
    /// parameters with their priors, in the order of the priors.
    fn parameters(
        &self,
        ctx: &Ctx,
        model: &Model,
        defaults: &[(String, neurosbi_sim::Quantity)],
    ) -> Result<(Vec<f64>, Vec<FreeParameter>)> {
        let params = model.parameters();
        let mut base: Vec<Option<f64>> = params
            .iter()
            .map(|p| {
                defaults
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, q)| q.value)
            })
            .collect();
        let param_index = |key: &str, name: &str| -> Result<usize> {
            params.iter().position(|p| p.name == name).ok_or_else(|| {
                ctx.err(
                    key,
                    format!(
                        "`{name}` is not a parameter of the model (parameters: {})",
                        names(params)
                    ),
                )
            })
        };
        for (name, v) in self.fixed.iter() {
            let key = format!("fixed.{name}");
            let j = param_index(&key, name)?;
            let q = ctx.quantity_spec(&key, v)?;
            if q.dim != params[j].dim {
                return Err(ctx.err(
                    &key,
                    format!(
                        "has dimension {}, the parameter is {}",
                        q.dim, params[j].dim
                    ),
                ));
            }
            base[j] = Some(q.value);
        }
        let priors = self
            .priors
            .as_ref()
            .ok_or_else(|| ctx.err("priors", "missing: give a prior for each free parameter"))?;
        let mut free = Vec::new();
        for (name, v) in priors.iter() {
            let key = format!("priors.{name}");
            let j = param_index(&key, name)?;
            if self.fixed.contains_key(name) {
                return Err(ctx.err(
                    &key,
                    format!(
                        "`{name}` is both fixed (fixed.{name}) and free (priors.{name}): remove one"
                    ),
                ));
            }
            let (prior, unit) = match v {
                PriorSpec::Written(v) => prior(ctx, &key, v, &params[j].dim)?,
                PriorSpec::Marginal { unit, marginal } => {
                    marginal_prior(ctx, &key, unit, marginal, &params[j].dim)?
                }
            };
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
        let base = base
            .iter()
            .zip(params)
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
        Ok((base, free))
    }

    /// The recorded outputs with their features, and each one's observed data when given.
    fn outputs(
        &self,
        ctx: &Ctx,
        model: &Model,
        dt: f64,
        n_steps: usize,
        n_traces: usize,
    ) -> Result<(Vec<Output>, Vec<Option<Observed>>)> {
        let outs = self.outputs.as_ref().ok_or_else(|| {
            ctx.err(
                "outputs",
                "missing: give at least one recorded output with features",
            )
        })?;
        if outs.is_empty() {
            return Err(ctx.err(
                "outputs",
                "empty: give at least one recorded output with features",
            ));
        }
        let recordable = model.recordable();
        let mut outputs = Vec::new();
        let mut observed = Vec::new();
        for (var, o) in outs.iter() {
            let key = format!("outputs.{var}");
            let sources: Vec<String> = model
                .description()
                .events
                .iter()
                .map(|e| format!("spikes_{}", e.name))
                .collect();
            if !is_spike_train(var) && !recordable.contains(var) {
                return Err(ctx.err(
                    &key,
                    format!(
                        "`{var}` cannot be recorded (recordable: spikes, {})",
                        sources
                            .iter()
                            .chain(&recordable)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if var == SPIKES && model.description().threshold.is_none() {
                let hint = if sources.is_empty() {
                    String::new()
                } else {
                    format!("; a circuit's neurons: {}", sources.join(", "))
                };
                return Err(ctx.err(
                    &key,
                    format!("spike trains need a threshold in the model{hint}"),
                ));
            }
            if var != SPIKES && is_spike_train(var) && !sources.contains(var) {
                return Err(ctx.err(
                    &key,
                    format!(
                        "`{var}` is not a spiking neuron of the circuit (spike trains: {})",
                        if sources.is_empty() {
                            "none".to_string()
                        } else {
                            sources.join(", ")
                        }
                    ),
                ));
            }
            let unit = output_unit(ctx, &key, var, o, model)?;
            if o.features.is_empty() && o.external_features.is_empty() {
                return Err(ctx.err(
                    &format!("{key}.features"),
                    "empty: give at least one feature",
                ));
            }
            let features = crate::raw::feature_set(&o.features, n_steps)
                .map_err(|e| ctx.err(&format!("{key}.features"), e))?;
            let dim = model
                .state_vars()
                .iter()
                .find(|s| &s.name == var)
                .map(|s| s.dim);
            for w in &o.with {
                if !recordable.contains(w) {
                    return Err(ctx.err(
                        &format!("{key}.with"),
                        format!(
                            "`{w}` cannot be recorded (recordable: {})",
                            recordable.join(", ")
                        ),
                    ));
                }
            }
            let obs = match &o.statistics {
                Some(_) if o.data.is_some() => {
                    return Err(ctx.err(
                        &key,
                        "give the observation as `data` (traces) or as `statistics`, not both",
                    ));
                }
                Some(v)
                    if v.len() != (features.n_outputs() + o.external_features.len()) * n_traces =>
                {
                    let mut names = features.output_names();
                    names.extend(o.external_features.iter().cloned());
                    return Err(ctx.err(
                        &format!("{key}.statistics"),
                        format!(
                            "{} values; the features {names:?} give {} per trace, x {n_traces} trace(s)",
                            v.len(),
                            names.len()
                        ),
                    ));
                }
                Some(v) => Some(Observed::Features(v.clone())),
                None => observed_data(ctx, &key, var, o, &unit, dim, (dt, n_steps))?,
            };
            if let Some(Observed::Traces(r) | Observed::Spikes(r)) = &obs
                && r.len() != n_traces
            {
                return Err(ctx.err(
                    &format!("{key}.data"),
                    format!("{} traces, the stimuli have {n_traces}", r.len()),
                ));
            }
            observed.push(obs);
            outputs.push(Output {
                variable: var.clone(),
                unit,
                feature_names: o.features.clone(),
                features,
                with: o.with.clone(),
                external: external_features(ctx, &key, var, o)?,
            });
        }
        Ok((outputs, observed))
    }

    /// The observation: data for every output, or a synthetic ground truth (display units).
    fn observation(
        &self,
        ctx: &Ctx,
        problem: &Problem,
        observed: Vec<Option<Observed>>,
    ) -> Result<Observation> {
        let n_files = observed.iter().filter(|o| o.is_some()).count();
        let s = match (&self.synthetic, n_files) {
            (Some(_), n) if n > 0 => {
                return Err(ctx.err(
                    "synthetic",
                    "give either [synthetic] or data files for the outputs, not both",
                ));
            }
            (Some(s), _) => s,
            (None, n) if n == problem.outputs.len() => {
                return Ok((Some(observed.into_iter().flatten().collect()), None));
            }
            (None, _) => {
                let missing = problem
                    .outputs
                    .iter()
                    .zip(&observed)
                    .find(|(_, o)| o.is_none())
                    .map(|(o, _)| o.variable.clone())
                    .unwrap_or_default();
                return Err(ctx.err(
                    &format!("outputs.{missing}.data"),
                    "missing: give the observed data file, or a [synthetic] ground truth",
                ));
            }
        };
        if let Some(k) = s
            .keys()
            .find(|k| !problem.free.iter().any(|p| &p.name == *k))
        {
            return Err(ctx.err(
                &format!("synthetic.{k}"),
                "not a free parameter (set fixed values under [fixed])",
            ));
        }
        let mut truth = Vec::new();
        for p in &problem.free {
            let key = format!("synthetic.{}", p.name);
            let v = s.get(&p.name).ok_or_else(|| {
                ctx.err(&key, "missing ground-truth value for this free parameter")
            })?;
            let q = ctx.quantity_spec(&key, v)?;
            let dim = problem
                .model
                .parameters()
                .iter()
                .find(|x| x.name == p.name)
                .map(|x| x.dim)
                .ok_or_else(|| ctx.err(&key, "not a parameter of the model"))?;
            if q.dim != dim {
                return Err(ctx.err(
                    &key,
                    format!("has dimension {}, the parameter is {dim}", q.dim),
                ));
            }
            let value = q.value / p.unit.scale;
            checks::truth_in_prior(ctx, &key, value, p)?;
            truth.push(value);
        }
        Ok((None, Some(truth)))
    }
}

/// Names of model variables, for messages.
fn names(vars: &[neurosbi_sim::Var]) -> String {
    vars.iter()
        .map(|v| v.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stimulus rows given as values (SI): every row `n_steps` long.
fn given_rows(ctx: &Ctx, key: &str, rows: &[Vec<f64>], n_steps: usize) -> Result<Vec<Vec<f64>>> {
    if rows.is_empty() {
        return Err(ctx.err(key, "no data rows"));
    }
    if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_steps) {
        return Err(ctx.err(
            key,
            format!(
                "trace {k} has {} samples, expected {n_steps} (duration / dt)",
                r.len()
            ),
        ));
    }
    Ok(rows.to_vec())
}

/// A prior given as a marginal in its display unit, checked against the parameter.
fn marginal_prior(
    ctx: &Ctx,
    key: &str,
    unit: &str,
    m: &Marginal,
    pdim: &neurosbi_sim::Dimension,
) -> Result<(Marginal, Unit)> {
    let u = Unit::named(unit)
        .ok_or_else(|| ctx.err(&format!("{key}.unit"), format!("unknown unit `{unit}`")))?;
    let udim = u.dim().unwrap_or(*pdim);
    if udim != *pdim {
        return Err(ctx.err(
            &format!("{key}.unit"),
            format!("unit `{unit}` has dimension {udim}, the parameter is {pdim}"),
        ));
    }
    m.validate(0).map_err(|e| ctx.err(key, e.to_string()))?;
    Ok((*m, u))
}

/// The unit of an output, checked against the variable's dimension.
fn output_unit(ctx: &Ctx, key: &str, var: &str, o: &OutputSpec, model: &Model) -> Result<Unit> {
    let unit = match &o.unit {
        None if is_spike_train(var) => Unit::named("ms").expect("ms"),
        None => Unit::named("1").expect("1"),
        Some(name) => Unit::named(name)
            .ok_or_else(|| ctx.err(&format!("{key}.unit"), format!("unknown unit `{name}`")))?,
    };
    if !is_spike_train(var)
        && let Some(d) = model
            .state_vars()
            .iter()
            .find(|s| s.name == var)
            .map(|s| s.dim)
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
    Ok(unit)
}

/// The observed data of an output, when given: read (file) or taken (rows), checked
/// against the run's length and the unit.
fn observed_data(
    ctx: &Ctx,
    key: &str,
    var: &str,
    o: &OutputSpec,
    unit: &Unit,
    dim: Option<neurosbi_sim::Dimension>,
    (dt, n_steps): (f64, usize),
) -> Result<Option<Observed>> {
    let dkey = format!("{key}.data");
    let from_recording =
        matches!(&o.data, Some(DataSpec::File(p)) if recording::is_recording(Path::new(p)));
    if !from_recording && (o.sweeps.is_some() || o.channel.is_some() || o.interpolate.is_some()) {
        return Err(ctx.err(
            key,
            "`sweeps`, `channel` and `interpolate` choose from a recording: give `data = \"cell.abf\"`",
        ));
    }
    let (rows, origin) = match &o.data {
        None => return Ok(None),
        Some(DataSpec::File(p)) if from_recording => {
            let (Some(dim), false) = (dim, is_spike_train(var)) else {
                return Err(ctx.err(
                    &dkey,
                    "a recording gives traces of a state variable, not spike times",
                ));
            };
            let path = ctx.dir.join(p);
            let rec = recording::open(ctx, &dkey, &path)?;
            let take = recording::Take {
                sweeps: o.sweeps.as_deref(),
                interpolate: o.interpolate.unwrap_or(false),
                target: var,
                dim,
                scale: unit.scale,
            };
            let rows = recording::channel_traces(
                ctx,
                &dkey,
                &rec,
                o.channel.as_ref(),
                &take,
                dt,
                n_steps,
            )?;
            (rows, format!("{}: ", path.display()))
        }
        Some(DataSpec::File(p)) => {
            let path = ctx.dir.join(p);
            let rows = read_matrix(ctx, &dkey, &path, is_spike_train(var))?;
            (rows, format!("{}: ", path.display()))
        }
        Some(DataSpec::Rows(r)) => (r.clone(), String::new()),
    };
    if is_spike_train(var) {
        let tu = match &o.time_unit {
            None => 1.0,
            Some(u) => {
                Unit::named(u)
                    .ok_or_else(|| ctx.err(&format!("{key}.time_unit"), read::TIME_UNIT))?
                    .scale
                    * 1e3
            }
        };
        return Ok(Some(Observed::Spikes(
            rows.into_iter()
                .map(|r| r.into_iter().map(|x| x * tu).collect())
                .collect(),
        )));
    }
    if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_steps) {
        return Err(ctx.err(
            &dkey,
            format!(
                "{origin}trace {k} has {} samples, expected {n_steps} (duration / dt)",
                r.len()
            ),
        ));
    }
    checks::voltage_data(ctx, &dkey, unit, &rows)?;
    Ok(Some(Observed::Traces(rows)))
}

/// The external features an output names (their functions are attached later): distinct
/// names, on traces only.
fn external_features(
    ctx: &Ctx,
    key: &str,
    var: &str,
    o: &crate::spec::OutputSpec,
) -> Result<Vec<crate::external::ExternalFeature>> {
    let names = &o.external_features;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let key = format!("{key}.external_features");
    if is_spike_train(var) {
        return Err(ctx.err(
            &key,
            "features of the calling program read traces, not spike trains",
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() || names[..i].contains(n) || o.features.contains(n) {
            return Err(ctx.err(&key, format!("`{n}`: names must be distinct and not empty")));
        }
    }
    Ok(names
        .iter()
        .map(|n| crate::external::ExternalFeature::named(n))
        .collect())
}
