//! The high-level [`Inferencer`]: brian2modelfitting's `Inferencer` as a Rust API, without its
//! limits (several inputs and outputs, any prior of the inference engine, units checked).

use crate::config::InferenceSettings;
use crate::error::{Error, Result};
use crate::external::BatchFeature;
use crate::plot::{self, PairData};
use crate::problem::{NeuronSimulator, Observed, Problem, SPIKES};
use crate::spec::{BUILDER_ORIGIN, DataSpec, Entries, FeaturesSpec, ModelSource, OutputSpec};
use crate::spec::{PriorSpec, ProblemSpec, QuantitySpec, StimulusSpec};
use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig, TrainObserver};
use neurosbi_infer::{
    InferenceConfig, InferenceReport, Marginal, Method, Posterior, Prior, Quiet, RunConfig,
    RunObserver, Store,
};
use neurosbi_sim::{Model, Quantity};
use std::path::Path;
use std::sync::Arc;

/// Builds an [`Inferencer`]; every mistake is reported by [`InferencerBuilder::build`] with
/// the parameter, input or output it concerns.
pub struct InferencerBuilder {
    model: Model,
    dt: Option<f64>,
    inputs: Vec<(String, Vec<Vec<f64>>)>,
    outputs: Vec<(String, String, Observed)>,
    features: Vec<(String, Vec<String>)>,
    priors: Vec<(String, String, Marginal)>,
    fixed: Vec<(String, Quantity)>,
    window: Option<(f64, f64)>,
    seed: u64,
}

impl InferencerBuilder {
    /// Time step (s).
    pub fn dt(mut self, dt: f64) -> Self {
        self.dt = Some(dt);
        self
    }
    /// An input variable: `n_traces` rows of `n_steps` values (SI).
    pub fn input(mut self, name: &str, rows: Vec<Vec<f64>>) -> Self {
        self.inputs.push((name.to_string(), rows));
        self
    }
    /// A recorded variable: one trace per input trace, in `unit` (e.g. `"mV"`).
    pub fn output_traces(mut self, variable: &str, unit: &str, rows: Vec<Vec<f64>>) -> Self {
        self.outputs.push((
            variable.to_string(),
            unit.to_string(),
            Observed::Traces(rows),
        ));
        self
    }
    /// Recorded spike trains, one per input trace, times in ms.
    pub fn output_spikes(mut self, trains_ms: Vec<Vec<f64>>) -> Self {
        self.outputs.push((
            SPIKES.to_string(),
            "ms".to_string(),
            Observed::Spikes(trains_ms),
        ));
        self
    }
    /// Features of an output, by catalogue name (`neurosbi features`).
    pub fn features(mut self, variable: &str, names: &[&str]) -> Self {
        self.features.push((
            variable.to_string(),
            names.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }
    /// A prior for a free parameter, written in `unit` (e.g. `"uS"`): samples and plots use it.
    pub fn prior(mut self, name: &str, unit: &str, marginal: Marginal) -> Self {
        self.priors
            .push((name.to_string(), unit.to_string(), marginal));
        self
    }
    /// The value of a parameter that is not fitted.
    pub fn fixed(mut self, name: &str, value: Quantity) -> Self {
        self.fixed.push((name.to_string(), value));
        self
    }
    /// Stimulus window seen by the features, in ms (default: the whole trace).
    pub fn stimulus_window(mut self, on_ms: f64, off_ms: f64) -> Self {
        self.window = Some((on_ms, off_ms));
        self
    }
    /// Seed of everything random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The builder's fields as a problem description: the model's description, `dt` and
    /// the duration (from the first input's or trace's length) in SI, the inputs' rows as
    /// stimulus values, the outputs with their data and features, the priors as marginals
    /// in their units, the window in ms. [`InferencerBuilder::build`] validates exactly this.
    pub fn into_spec(self) -> ProblemSpec {
        let n_steps = self
            .inputs
            .first()
            .and_then(|(_, r)| r.first())
            .or_else(|| {
                self.outputs.iter().find_map(|(_, _, o)| match o {
                    Observed::Traces(r) => r.first(),
                    Observed::Spikes(_) | Observed::Features(_) => None,
                })
            })
            .map(Vec::len);
        let features = self.features;
        let outputs = self
            .outputs
            .into_iter()
            .map(|(var, unit, obs)| {
                let features = features
                    .iter()
                    .find(|(v, _)| *v == var)
                    .map(|(_, f)| f.clone())
                    .unwrap_or_default();
                let out = match obs {
                    Observed::Traces(rows) | Observed::Spikes(rows) => OutputSpec {
                        unit: Some(unit),
                        features,
                        data: Some(DataSpec::Rows(rows)),
                        ..OutputSpec::default()
                    },
                    Observed::Features(v) => OutputSpec {
                        unit: Some(unit),
                        features,
                        statistics: Some(v),
                        ..OutputSpec::default()
                    },
                };
                (var, out)
            })
            .collect();
        ProblemSpec {
            model: Some(ModelSource::Description {
                description: self.model.description().clone(),
            }),
            dt: self.dt.map(|dt| QuantitySpec::si(dt, "second")),
            duration: self
                .dt
                .zip(n_steps)
                .map(|(dt, n)| QuantitySpec::si(n as f64 * dt, "second")),
            seed: self.seed,
            stimuli: Entries(
                self.inputs
                    .into_iter()
                    .map(|(n, values)| (n, StimulusSpec::Values { values }))
                    .collect(),
            ),
            features: FeaturesSpec {
                // Written in ms as a fit file would, so both read the same window.
                window: self.window.map(|(on, off)| {
                    [
                        QuantitySpec::Text(format!("{on}*ms")),
                        QuantitySpec::Text(format!("{off}*ms")),
                    ]
                }),
            },
            outputs: Some(Entries(outputs)),
            priors: Some(Entries(
                self.priors
                    .into_iter()
                    .map(|(n, unit, marginal)| (n, PriorSpec::Marginal { unit, marginal }))
                    .collect(),
            )),
            fixed: Entries(
                self.fixed
                    .into_iter()
                    .map(|(n, q)| (n, QuantitySpec::Si(q)))
                    .collect(),
            ),
            ..ProblemSpec::default()
        }
    }

    /// Checks everything and builds the inferencer: [`InferencerBuilder::into_spec`], then
    /// [`Inferencer::from_spec`]. Errors name the key of the description (`priors.gK`,
    /// `outputs.v.data`, `stimuli.I`).
    pub fn build(self) -> Result<Inferencer> {
        Inferencer::from_spec(&self.into_spec(), Path::new(BUILDER_ORIGIN))
    }
}

/// Settings of [`Inferencer::infer`].
#[derive(Clone, Debug)]
pub struct InferSettings {
    /// Simulations per round.
    pub rounds: Vec<usize>,
    /// Method.
    pub method: Method,
    /// Density estimator.
    pub estimator: EstimatorConfig,
    /// Training settings.
    pub train: TrainConfig,
    /// How the posterior samples (`None`: the method's default; see
    /// [`Method::posterior_kinds`]).
    pub posterior: Option<neurosbi_infer::PosteriorKind>,
}

impl InferSettings {
    /// `n` simulations in one round of NPE with a MAF (sbi's defaults).
    pub fn npe(n: usize) -> Self {
        Self {
            rounds: vec![n],
            method: Method::npe(),
            estimator: EstimatorConfig::maf(),
            train: TrainConfig::default(),
            posterior: None,
        }
    }
}

/// Posterior inference over a neuron model's parameters from observed traces or spikes.
///
/// Built with [`Inferencer::builder`]; [`Inferencer::infer`] simulates, trains and keeps the
/// posterior, after which it can be sampled, evaluated and plotted.
pub struct Inferencer {
    spec: ProblemSpec,
    problem: Problem,
    observed: Vec<Observed>,
    x_o: Vec<f64>,
    seed: u64,
    settings: InferenceSettings,
    posterior: Option<Posterior>,
    report: Option<InferenceReport>,
}

impl Inferencer {
    /// Starts building an inferencer for `model`.
    pub fn builder(model: Model) -> InferencerBuilder {
        InferencerBuilder {
            model,
            dt: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            features: Vec::new(),
            priors: Vec::new(),
            fixed: Vec::new(),
            window: None,
            seed: 0,
        }
    }

    /// Validates a problem description (see [`ProblemSpec::validate`]; `file` names it in
    /// errors and anchors its relative paths) and builds the inferencer for its observation:
    /// its data, or the simulation of its synthetic ground truth.
    pub fn from_spec(spec: &ProblemSpec, file: &Path) -> Result<Inferencer> {
        Self::from_spec_with(spec, file, Vec::new())
    }

    /// [`Inferencer::from_spec`] with the functions of the description's external features
    /// (`outputs.VAR.external_features`), as `(output, name, function)`: each name needs
    /// exactly one function.
    pub fn from_spec_with(
        spec: &ProblemSpec,
        file: &Path,
        functions: Vec<(String, String, Arc<dyn BatchFeature>)>,
    ) -> Result<Inferencer> {
        let mut cfg = spec.validate(file)?;
        attach(&mut cfg.problem, functions)?;
        let observed = cfg.observation()?;
        let x_o = cfg.problem.observed_features(&observed)?;
        Ok(Inferencer {
            spec: spec.clone(),
            problem: cfg.problem,
            observed,
            x_o,
            seed: spec.seed,
            settings: cfg.inference,
            posterior: None,
            report: None,
        })
    }

    /// The problem description this inferencer was built from.
    pub fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    /// The problem (model, stimuli, features, priors).
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The description's validated inference settings (its `[inference]` table, with the
    /// fit file's defaults); `crate::fit::inference_config_for` turns them into what `fit`
    /// runs.
    pub fn settings(&self) -> &InferenceSettings {
        &self.settings
    }

    /// The observation (data, or the simulation of the synthetic ground truth).
    pub fn observed(&self) -> &[Observed] {
        &self.observed
    }

    /// Features of the observation.
    pub fn observed_features(&self) -> &[f64] {
        &self.x_o
    }

    /// Simulates, trains and keeps the posterior. With `store`, simulations go to that
    /// folder and a later call with the same settings reuses them (continue); without it,
    /// every call starts again (restart).
    pub fn infer(&mut self, settings: &InferSettings, store: Option<&Path>) -> Result<&Posterior> {
        let cfg = InferenceConfig {
            method: settings.method,
            rounds: settings.rounds.clone(),
            estimator: settings.estimator.clone(),
            train: settings.train.clone(),
            run: RunConfig {
                seed: self.seed,
                ..RunConfig::default()
            },
            seed: self.seed,
            posterior: settings.posterior,
            ..InferenceConfig::default()
        };
        self.infer_with(&cfg, store, &mut Quiet, &mut NoObserver)
    }

    /// [`Inferencer::infer`] with every engine setting given (`cfg`; its seed decides the
    /// simulations) and observers of the simulations and the training (progress bars).
    pub fn infer_with(
        &mut self,
        cfg: &InferenceConfig,
        store: Option<&Path>,
        sim_observer: &mut dyn RunObserver,
        train_observer: &mut dyn TrainObserver,
    ) -> Result<&Posterior> {
        let sim = NeuronSimulator::new(self.problem.clone(), Some(self.observed.clone()))?;
        let prior: Arc<dyn Prior> = Arc::new(self.problem.prior()?);
        let mut st = match store {
            None => None,
            Some(dir) => Some(Store::open_or_create(
                dir,
                self.problem.dim_theta(),
                self.problem.dim_x(),
                self.problem.fingerprint(&self.observed, self.seed),
            )?),
        };
        let (post, report) = neurosbi_infer::infer(
            &sim,
            prior,
            Some(&self.x_o),
            cfg,
            st.as_mut(),
            sim_observer,
            train_observer,
        )?;
        self.report = Some(report);
        Ok(self.posterior.insert(post))
    }

    /// The trained posterior.
    pub fn posterior(&self) -> Result<&Posterior> {
        self.posterior
            .as_ref()
            .ok_or_else(|| Error::invalid("posterior", "not trained yet: call infer() or load()"))
    }

    /// Training and simulation report of the last `infer`.
    pub fn report(&self) -> Option<&InferenceReport> {
        self.report.as_ref()
    }

    /// `n` posterior samples for the observation (row-major, prior units).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f64>> {
        Ok(self.posterior()?.sample(n, &self.x_o, seed)?.theta)
    }

    /// Samples for another observation (same outputs and features), without retraining.
    pub fn sample_for(&self, observed: &[Observed], n: usize, seed: u64) -> Result<Vec<f64>> {
        let x = self.problem.observed_features(observed)?;
        Ok(self.posterior()?.sample(n, &x, seed)?.theta)
    }

    /// Log posterior density of parameter rows given the observation.
    pub fn log_prob(&self, theta: &[f64]) -> Result<Vec<f64>> {
        Ok(self.posterior()?.log_prob(theta, &self.x_o)?)
    }

    /// Maximum a posteriori estimate.
    pub fn map(&self, seed: u64) -> Result<Vec<f64>> {
        Ok(self.posterior()?.map(&self.x_o, seed)?)
    }

    /// Posterior-predictive simulations: for each of `n` posterior samples, every output
    /// variable's traces (or spike trains), as [`Observed`] per output.
    pub fn generate_traces(&self, n: usize, seed: u64) -> Result<Vec<Vec<Observed>>> {
        let theta = self.sample(n, seed)?;
        let res = self.problem.simulate(&theta, seed ^ 0x77)?;
        Ok((0..n)
            .map(|s| self.problem.observed_from(&res, s))
            .collect())
    }

    /// Writes `pairplot.svg` and `.png` of `samples` into `dir` (truth marked when given).
    pub fn pairplot(&self, dir: &Path, samples: &[f64], truth: Option<&[f64]>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        plot::pairplot(
            dir,
            "pairplot",
            &PairData {
                samples,
                labels: &self.labels(),
                truth,
            },
        )?;
        Ok(())
    }

    fn labels(&self) -> Vec<String> {
        self.problem
            .free
            .iter()
            .map(|p| format!("{}{}", p.name, p.unit.suffix()))
            .collect()
    }

    fn bounds(&self, j: usize) -> (f64, f64) {
        match self.problem.free[j].prior {
            Marginal::Uniform { low, high } | Marginal::LogUniform { low, high } => (low, high),
            Marginal::Normal { mean, std } => (mean - 3.0 * std, mean + 3.0 * std),
            Marginal::LogNormal { mu, sigma } => {
                ((mu - 3.0 * sigma).exp(), (mu + 3.0 * sigma).exp())
            }
        }
    }

    /// The posterior density of parameters `i` and `j` on a `res x res` grid over their
    /// prior ranges, the others held at `condition`; normalised to sum to 1.
    pub fn conditional_grid(
        &self,
        condition: &[f64],
        i: usize,
        j: usize,
        res: usize,
    ) -> Result<Vec<f64>> {
        let d = self.problem.dim_theta();
        if condition.len() != d {
            return Err(Error::invalid(
                "condition",
                format!("{} values, expected {d}", condition.len()),
            ));
        }
        let (ai, bi) = self.bounds(i);
        let (aj, bj) = self.bounds(j);
        let mut theta = Vec::with_capacity(res * res * d);
        for r in 0..res {
            for c in 0..res {
                let mut row = condition.to_vec();
                row[i] = ai + (c as f64 + 0.5) / res as f64 * (bi - ai);
                row[j] = aj + (r as f64 + 0.5) / res as f64 * (bj - aj);
                theta.extend(row);
            }
        }
        let lp = self.posterior()?.potential(&theta, &self.x_o)?;
        let m = lp
            .iter()
            .cloned()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = lp
            .iter()
            .map(|v| if v.is_finite() { (v - m).exp() } else { 0.0 })
            .collect();
        let z: f64 = p.iter().sum();
        Ok(p.iter().map(|v| v / z.max(f64::MIN_POSITIVE)).collect())
    }

    /// Correlation coefficients of the conditional posterior (sbi's
    /// `conditional_corrcoeff`): for each pair, the correlation of the 2-D conditional density
    /// on a grid over the prior range, the other parameters held at `condition`.
    pub fn conditional_corrcoeff(&self, condition: &[f64], res: usize) -> Result<Vec<f64>> {
        let d = self.problem.dim_theta();
        let mut c = vec![1.0; d * d];
        for i in 0..d {
            for j in 0..i {
                let p = self.conditional_grid(condition, i, j, res)?;
                let (mut mx, mut my) = (0.0, 0.0);
                for r in 0..res {
                    for k in 0..res {
                        let w = p[r * res + k];
                        mx += w * k as f64;
                        my += w * r as f64;
                    }
                }
                let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
                for r in 0..res {
                    for k in 0..res {
                        let w = p[r * res + k];
                        let (dx, dy) = (k as f64 - mx, r as f64 - my);
                        sxx += w * dx * dx;
                        syy += w * dy * dy;
                        sxy += w * dx * dy;
                    }
                }
                let rho = sxy / (sxx * syy).sqrt().max(f64::MIN_POSITIVE);
                c[i * d + j] = rho;
                c[j * d + i] = rho;
            }
        }
        Ok(c)
    }

    /// Writes `conditional_pairplot.svg`/`.png`: the conditional density of every pair on a
    /// grid, the other parameters held at `condition` (marked in red).
    pub fn conditional_pairplot(&self, dir: &Path, condition: &[f64], res: usize) -> Result<()> {
        // Draw grid-weighted points so the pairplot's 2-D histograms show the densities.
        let d = self.problem.dim_theta();
        let mut samples = Vec::new();
        for i in 0..d {
            for j in 0..i {
                let p = self.conditional_grid(condition, i, j, res)?;
                let (ai, bi) = self.bounds(i);
                let (aj, bj) = self.bounds(j);
                for r in 0..res {
                    for c in 0..res {
                        let copies = (p[r * res + c] * 4000.0).round() as usize;
                        for _ in 0..copies {
                            let mut row = condition.to_vec();
                            row[i] = ai + (c as f64 + 0.5) / res as f64 * (bi - ai);
                            row[j] = aj + (r as f64 + 0.5) / res as f64 * (bj - aj);
                            samples.extend(row);
                        }
                    }
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        plot::pairplot(
            dir,
            "conditional_pairplot",
            &PairData {
                samples: &samples,
                labels: &self.labels(),
                truth: Some(condition),
            },
        )?;
        Ok(())
    }

    /// Saves the trained posterior into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        Ok(self.posterior()?.save(dir)?)
    }

    /// Loads a posterior saved by [`Inferencer::save`] (for the same problem).
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let p = Posterior::load(dir)?;
        if p.dim_theta() != self.problem.dim_theta() || p.dim_x() != self.problem.dim_x() {
            return Err(Error::invalid(
                dir.display().to_string(),
                format!(
                    "posterior of {} parameters and {} features, this problem has {} and {}",
                    p.dim_theta(),
                    p.dim_x(),
                    self.problem.dim_theta(),
                    self.problem.dim_x()
                ),
            ));
        }
        self.posterior = Some(p);
        Ok(())
    }
}

/// Attaches the functions of external features to the problem's outputs.
fn attach(
    problem: &mut Problem,
    functions: Vec<(String, String, Arc<dyn BatchFeature>)>,
) -> Result<()> {
    for (output, name, f) in functions {
        let key = format!("outputs.{output}.external_features");
        let o = problem
            .outputs
            .iter_mut()
            .find(|o| o.variable == output)
            .ok_or_else(|| Error::invalid(&key, format!("`{output}` is not an output")))?;
        let e = o
            .external
            .iter_mut()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::invalid(&key, format!("`{name}` is not listed there")))?;
        if e.function.replace(f).is_some() {
            return Err(Error::invalid(&key, format!("`{name}` has two functions")));
        }
    }
    Ok(())
}
