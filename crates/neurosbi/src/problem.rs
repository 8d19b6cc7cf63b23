//! A fitting problem: the model with its fixed parameters, the stimuli, the recorded outputs
//! and their features, the free parameters with priors; and the [`NeuronSimulator`] that
//! turns parameter rows into feature vectors for the inference engine.

use crate::error::{Error, Result};
use crate::external::{self, ExternalFeature};
use crate::quantity::Unit;
use neurosbi_features::{FeatureSet, Recording};
use neurosbi_infer::{Fingerprint, IndependentPrior, Marginal, SimRng, SimulationError, Simulator};
use neurosbi_sim::{CompiledKernel, Model, RunConfig, SimResult, Stimulus};
use rand::RngExt;
use std::sync::Arc;

/// Name of the pseudo-variable for spike trains in outputs.
pub const SPIKES: &str = "spikes";

/// Whether output `var` is a spike train: `spikes` (the model's own threshold) or
/// `spikes_NAME` (spiking neuron NAME of a circuit, e.g. `spikes_cells_3`).
pub fn is_spike_train(var: &str) -> bool {
    var == SPIKES || var.starts_with("spikes_")
}

/// Spike times (s) of spike-train output `var` in simulation `n`.
fn spike_times<'a>(res: &'a SimResult, var: &str, n: usize) -> &'a [f64] {
    match var.strip_prefix("spikes_") {
        Some(name) => res.event_spikes(name, n).unwrap_or(&[]),
        None => res.spikes.get(n).map_or(&[], Vec::as_slice),
    }
}

/// A parameter fitted by inference.
#[derive(Clone, Debug)]
pub struct FreeParameter {
    /// Model parameter name.
    pub name: String,
    /// Unit the prior, samples and summary are written in.
    pub unit: Unit,
    /// Prior marginal, in `unit`.
    pub prior: Marginal,
}

/// One recorded output: a variable (or [`SPIKES`]) with its unit and features.
#[derive(Clone)]
pub struct Output {
    /// Recorded variable name, or `spikes`.
    pub variable: String,
    /// Unit of the traces given to the features (mV for eFEL-style features).
    pub unit: Unit,
    /// Feature specifications, as written.
    pub feature_names: Vec<String>,
    /// The features.
    pub features: FeatureSet,
    /// Other recorded variables the features read alongside (a circuit's neurons).
    pub with: Vec<String>,
    /// Features the calling program computes (see [`crate::external`]), after the
    /// catalogue's in each trace's columns.
    pub external: Vec<ExternalFeature>,
}

impl Output {
    /// Feature values per trace: the catalogue's, then the external ones.
    pub fn columns_per_trace(&self) -> usize {
        self.features.n_outputs() + self.external.len()
    }

    /// Names of a trace's feature values, in column order.
    pub fn output_names(&self) -> Vec<String> {
        let mut names = self.features.output_names();
        names.extend(self.external.iter().map(|e| e.name.clone()));
        names
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("variable", &self.variable)
            .field("features", &self.feature_names)
            .field("external", &self.external)
            .finish()
    }
}

/// Observed data of one output: traces (in the output's unit) or spike trains (ms), one per
/// input trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// `n_traces` traces of `n_steps` samples.
    Traces(Vec<Vec<f64>>),
    /// `n_traces` spike trains, times in ms.
    Spikes(Vec<Vec<f64>>),
    /// The features' values measured elsewhere (`n_traces` rows of the output's feature
    /// values, concatenated; NaN where undefined), as the pyloric observation of
    /// Gonçalves et al. (2020) is published: no traces to compare with.
    Features(Vec<f64>),
}

/// Everything needed to simulate the model and compute features for parameter rows.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The compiled model.
    pub model: Arc<Model>,
    /// Time step (s).
    pub dt: f64,
    /// Steps per simulation.
    pub n_steps: usize,
    /// Input stimuli (SI), `n_traces` rows each.
    pub stimuli: Vec<Stimulus>,
    /// Input traces per parameter set.
    pub n_traces: usize,
    /// Stimulus window for the features (ms).
    pub window: (f64, f64),
    /// Values of every model parameter in model order (SI); free ones are overwritten.
    pub base: Vec<f64>,
    /// Free parameters.
    pub free: Vec<FreeParameter>,
    /// Recorded outputs.
    pub outputs: Vec<Output>,
    /// Seed of the simulator's noise for the observation and predictive traces.
    pub noise_seed: u64,
}

impl Problem {
    /// Number of free parameters.
    pub fn dim_theta(&self) -> usize {
        self.free.len()
    }

    /// Length of a feature vector: for each output, for each trace, for each feature.
    pub fn dim_x(&self) -> usize {
        self.outputs
            .iter()
            .map(|o| o.columns_per_trace() * self.n_traces)
            .sum()
    }

    /// Feature column names, `variable/trace/feature`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for o in &self.outputs {
            let names = o.output_names();
            for t in 0..self.n_traces {
                v.extend(names.iter().map(|n| format!("{}/{t}/{n}", o.variable)));
            }
        }
        v
    }

    /// Free parameter names.
    pub fn parameter_names(&self) -> Vec<String> {
        self.free.iter().map(|p| p.name.clone()).collect()
    }

    /// The prior over the free parameters (in their display units).
    pub fn prior(&self) -> Result<IndependentPrior> {
        Ok(IndependentPrior::new(
            self.free.iter().map(|p| p.prior).collect(),
        )?)
    }

    /// What determines the simulations of this problem run with `seed`, part by part (see
    /// [`Fingerprint`]): the stores and shards of a run carry it, so simulations made for
    /// another model, prior, stimulus or feature set are never reused. Estimator, training and
    /// sampling settings are left out: retraining on the same simulations stays possible.
    pub fn fingerprint(&self, observed: &[Observed], seed: u64) -> Fingerprint {
        let bits = |vals: &mut dyn Iterator<Item = &f64>| -> Vec<u8> {
            vals.flat_map(|v| v.to_bits().to_le_bytes()).collect()
        };
        let mut stimuli = Vec::new();
        for s in &self.stimuli {
            stimuli.extend(format!("{}:{}:", s.name, s.n_traces).into_bytes());
            stimuli.extend(bits(&mut s.values.iter()));
        }
        let names: Vec<&str> = self
            .model
            .parameters()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let mut values = format!("{names:?}").into_bytes();
        values.extend(bits(&mut self.base.iter()));
        let priors: Vec<String> = self
            .free
            .iter()
            .map(|p| {
                format!(
                    "{} [{} = {:e}] {:?}",
                    p.name, p.unit.name, p.unit.scale, p.prior
                )
            })
            .collect();
        let features: Vec<String> = self
            .outputs
            .iter()
            .map(|o| {
                // External features by their provenance (name, code hash): the engine cannot
                // see their code, so this is all that tells two functions apart.
                // Appended only when present, so the stores of problems without them keep
                // their fingerprints.
                let mut text = format!(
                    "{} [{} = {:e}] {:?}",
                    o.variable, o.unit.name, o.unit.scale, o.feature_names
                );
                if !o.external.is_empty() {
                    let external: Vec<String> = o.external.iter().map(|e| e.provenance()).collect();
                    text.push_str(&format!(" external {external:?}"));
                }
                text
            })
            .collect();
        // Spike-train features compare with the observed trains, so those are inputs too.
        let mut spikes = Vec::new();
        for (o, obs) in self.outputs.iter().zip(observed) {
            if let (true, Observed::Spikes(trains)) = (is_spike_train(&o.variable), obs) {
                for t in trains {
                    spikes.extend(bits(&mut t.iter()));
                    spikes.push(b';');
                }
            }
        }
        Fingerprint::new()
            .with("format", neurosbi_infer::STORE_FORMAT_VERSION.to_le_bytes())
            .with("model", self.model.canonical_form())
            .with("constants and fixed values", values)
            .with("stimuli", stimuli)
            .with(
                "dt and duration",
                bits(&mut [self.dt, self.n_steps as f64].iter()),
            )
            .with("priors", format!("{priors:?}"))
            .with("features", format!("{features:?} window {:?}", self.window))
            .with("observed spike trains", spikes)
            .with("seed", seed.to_le_bytes())
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.model
            .parameters()
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| Error::invalid(name, "not a parameter of the model"))
    }

    /// Full SI parameter rows for rows of free-parameter values (display units).
    pub fn full_rows(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let d = self.dim_theta();
        if d == 0 || !theta.len().is_multiple_of(d) {
            return Err(Error::invalid(
                "theta",
                format!(
                    "{} values is not a whole number of rows of {d}",
                    theta.len()
                ),
            ));
        }
        let idx: Vec<usize> = self
            .free
            .iter()
            .map(|p| self.index_of(&p.name))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(theta.len() / d * self.base.len());
        for row in theta.chunks(d) {
            let mut full = self.base.clone();
            for ((j, p), v) in idx.iter().zip(&self.free).zip(row) {
                full[*j] = v * p.unit.scale;
            }
            out.extend(full);
        }
        Ok(out)
    }

    fn recorded(&self) -> Vec<String> {
        let mut r: Vec<String> = Vec::new();
        for o in &self.outputs {
            for v in std::iter::once(&o.variable).chain(&o.with) {
                if !is_spike_train(v) && !r.contains(v) {
                    r.push(v.clone());
                }
            }
        }
        r
    }

    fn run_config(&self, seed: u64) -> RunConfig {
        let mut cfg = RunConfig::new(self.dt, self.n_steps).seed(seed);
        cfg.record = self.recorded();
        cfg
    }

    /// Simulates rows of free-parameter values (display units), recording every output.
    pub fn simulate(&self, theta: &[f64], seed: u64) -> Result<SimResult> {
        let params = self.full_rows(theta)?;
        let cfg = self.run_config(seed);
        Ok(self
            .model
            .simulate(&params, self.n_traces, &self.stimuli, &cfg)?)
    }

    /// Feature vectors (row per parameter set) of a simulation result; NaN for undefined
    /// features and for whole rows whose simulation failed. An external feature that fails
    /// makes every row NaN here; [`Problem::features_checked`] returns its error.
    pub fn features_of(&self, res: &SimResult, observed: Option<&[Observed]>) -> Vec<f64> {
        let n = res.n_neurons / self.n_traces * self.dim_x();
        self.features_checked(res, observed)
            .unwrap_or_else(|_| vec![f64::NAN; n])
    }

    /// [`Problem::features_of`], with the error of an external feature (a function of the
    /// calling program that raised or returned a non-number) instead of NaN rows.
    pub fn features_checked(
        &self,
        res: &SimResult,
        observed: Option<&[Observed]>,
    ) -> Result<Vec<f64>> {
        let n_sets = res.n_neurons / self.n_traces;
        let dx = self.dim_x();
        let mut x = vec![f64::NAN; n_sets * dx];
        let failed = |s: usize| (0..self.n_traces).any(|k| res.is_failed(s * self.n_traces + k));
        let external: Vec<Vec<f64>> = self
            .outputs
            .iter()
            .map(|o| external::values_of_result(o, res, self.n_traces, self.dt, failed))
            .collect::<Result<_>>()?;
        let dt_ms = self.dt * 1e3;
        let zeros = vec![0.0; self.n_steps];
        let spikes_ms: Vec<Vec<f64>> = res
            .spikes
            .iter()
            .map(|s| s.iter().map(|t| t * 1e3).collect())
            .collect();
        for (s, row) in x.chunks_mut(dx.max(1)).enumerate() {
            if failed(s) {
                continue;
            }
            let mut col = 0;
            for (oi, o) in self.outputs.iter().enumerate() {
                let m = o.features.n_outputs();
                let mut cells = vec![Ok(0.0); m];
                for k in 0..self.n_traces {
                    let neuron = s * self.n_traces + k;
                    let scaled: Vec<f64>;
                    let values: &[f64] = if is_spike_train(&o.variable) {
                        &zeros
                    } else {
                        let tr = res.trace(&o.variable, neuron).unwrap_or(&[]);
                        scaled = tr.iter().map(|v| v / o.unit.scale).collect();
                        &scaled
                    };
                    let others_scaled: Vec<Vec<f64>> = o
                        .with
                        .iter()
                        .map(|w| {
                            let tr = res.trace(w, neuron).unwrap_or(&[]);
                            tr.iter().map(|v| v / o.unit.scale).collect()
                        })
                        .collect();
                    let others: Vec<&[f64]> = others_scaled.iter().map(Vec::as_slice).collect();
                    let mut rec = Recording::new(values, dt_ms)
                        .with_stimulus(self.window.0, self.window.1)
                        .with_others(&others);
                    // A circuit neuron's train is its own; otherwise the model's threshold's.
                    let own_ms: Vec<f64>;
                    let sp = if o.variable.starts_with("spikes_") {
                        own_ms = spike_times(res, &o.variable, neuron)
                            .iter()
                            .map(|t| t * 1e3)
                            .collect();
                        Some(&own_ms)
                    } else {
                        spikes_ms.get(neuron)
                    };
                    if let Some(sp) = sp {
                        rec = rec.with_spikes(sp);
                    }
                    if let Some(Observed::Spikes(obs)) = observed.and_then(|o| o.get(oi))
                        && let Some(r) = obs.get(k)
                    {
                        rec = rec.with_reference_spikes(r);
                    }
                    if o.features.compute_into(&rec, &mut cells).is_ok() {
                        for (c, v) in cells.iter().enumerate() {
                            row[col + c] = v.unwrap_or(f64::NAN);
                        }
                    }
                    col += m;
                    let k = o.external.len();
                    row[col..col + k].copy_from_slice(&external[oi][neuron * k..(neuron + 1) * k]);
                    col += k;
                }
            }
        }
        Ok(x)
    }

    /// Features of observed data (one row).
    pub fn observed_features(&self, observed: &[Observed]) -> Result<Vec<f64>> {
        if observed.len() != self.outputs.len() {
            return Err(Error::invalid(
                "observation",
                format!(
                    "{} outputs observed, the problem has {}",
                    observed.len(),
                    self.outputs.len()
                ),
            ));
        }
        let dt_ms = self.dt * 1e3;
        let zeros = vec![0.0; self.n_steps];
        let mut x = Vec::with_capacity(self.dim_x());
        for (o, obs) in self.outputs.iter().zip(observed) {
            let m = o.features.n_outputs();
            if !o.with.is_empty() && !matches!(obs, Observed::Features(_)) {
                return Err(Error::invalid(
                    format!("observed output `{}`", o.variable),
                    format!(
                        "its features also read {}: give the observation as `statistics` \
                         (or use a synthetic one)",
                        o.with.join(", ")
                    ),
                ));
            }
            let rows = match obs {
                Observed::Traces(r) | Observed::Spikes(r) => r,
                Observed::Features(v) => {
                    let m = o.columns_per_trace();
                    if v.len() != m * self.n_traces {
                        return Err(Error::invalid(
                            format!("observed output `{}`", o.variable),
                            format!(
                                "{} feature values, expected {m} per trace x {} traces",
                                v.len(),
                                self.n_traces
                            ),
                        ));
                    }
                    x.extend(v);
                    continue;
                }
            };
            if rows.len() != self.n_traces {
                return Err(Error::invalid(
                    format!("observed output `{}`", o.variable),
                    format!("{} traces, the stimuli have {}", rows.len(), self.n_traces),
                ));
            }
            let ext = external::values_of_observed(o, obs, rows, self.dt)?;
            let k = o.external.len();
            for (t, r) in rows.iter().enumerate() {
                let rec = match obs {
                    Observed::Traces(_) | Observed::Features(_) => Recording::new(r, dt_ms),
                    Observed::Spikes(_) => Recording::new(&zeros, dt_ms)
                        .with_spikes(r)
                        .with_reference_spikes(r),
                }
                .with_stimulus(self.window.0, self.window.1);
                let mut cells = vec![Ok(0.0); m];
                o.features.compute_into(&rec, &mut cells).map_err(|e| {
                    Error::invalid(format!("observed output `{}`", o.variable), e.to_string())
                })?;
                x.extend(cells.iter().map(|c| c.unwrap_or(f64::NAN)));
                x.extend(&ext[t * k..(t + 1) * k]);
            }
        }
        Ok(x)
    }

    /// Observed data produced by simulating one parameter row (synthetic ground truth).
    pub fn synthetic_observation(&self, truth: &[f64]) -> Result<Vec<Observed>> {
        let res = self.simulate(truth, self.noise_seed)?;
        if !res.failed.is_empty() {
            return Err(Error::invalid(
                "synthetic",
                format!(
                    "the simulation of the ground truth failed (variable {} not finite at step {})",
                    res.failed[0].variable, res.failed[0].step
                ),
            ));
        }
        let mut observed = self.observed_from(&res, 0);
        // Features that read other variables alongside are observed as their values: the
        // trace of the output alone would not give them.
        let x = self.features_checked(&res, None)?;
        let mut col = 0;
        for (o, obs) in self.outputs.iter().zip(observed.iter_mut()) {
            let m = o.columns_per_trace() * self.n_traces;
            if !o.with.is_empty() {
                *obs = Observed::Features(x[col..col + m].to_vec());
            }
            col += m;
        }
        Ok(observed)
    }

    /// The outputs of parameter set `s` of a simulation result, as observed data.
    pub fn observed_from(&self, res: &SimResult, s: usize) -> Vec<Observed> {
        self.outputs
            .iter()
            .map(|o| {
                let rows = (0..self.n_traces).map(|k| {
                    let n = s * self.n_traces + k;
                    if is_spike_train(&o.variable) {
                        spike_times(res, &o.variable, n)
                            .iter()
                            .map(|t| t * 1e3)
                            .collect()
                    } else {
                        res.trace(&o.variable, n)
                            .unwrap_or(&[])
                            .iter()
                            .map(|v| v / o.unit.scale)
                            .collect()
                    }
                });
                if is_spike_train(&o.variable) {
                    Observed::Spikes(rows.collect())
                } else {
                    Observed::Traces(rows.collect())
                }
            })
            .collect()
    }
}

/// The model as a [`Simulator`] for the inference engine: parameter rows (display units)
/// to feature vectors. Noisy models simulate row by row with the row's own stream, so the
/// results do not depend on how rows are batched.
pub struct NeuronSimulator {
    problem: Problem,
    kernel: CompiledKernel,
    inputs: Vec<String>,
    noisy: bool,
    observed: Option<Vec<Observed>>,
}

impl NeuronSimulator {
    /// Compiles the model for the problem's time step and recordings.
    pub fn new(problem: Problem, observed: Option<Vec<Observed>>) -> Result<Self> {
        for o in &problem.outputs {
            for e in &o.external {
                e.function(&o.variable)?;
            }
        }
        let record = problem.recorded();
        let kernel = CompiledKernel::new(&problem.model, problem.dt, &record)?;
        let inputs = problem
            .model
            .inputs()
            .iter()
            .map(|v| v.name.clone())
            .collect();
        let noisy = !problem.model.noise_sources().is_empty();
        Ok(Self {
            problem,
            kernel,
            inputs,
            noisy,
            observed,
        })
    }

    /// The problem.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    fn run(&self, theta: &[f64], set_seeds: Vec<u64>) -> Result<Vec<f64>> {
        let p = &self.problem;
        let params = p.full_rows(theta)?;
        let cfg = p.run_config(0).set_seeds(set_seeds);
        let res = neurosbi_sim::run::simulate(
            &self.kernel,
            &params,
            p.n_traces,
            &p.stimuli,
            &self.inputs,
            &cfg,
        )?;
        p.features_checked(&res, self.observed.as_deref())
    }
}

impl Simulator for NeuronSimulator {
    fn dim_theta(&self) -> usize {
        self.problem.dim_theta()
    }
    fn x_names(&self) -> Vec<String> {
        self.problem.feature_names()
    }
    fn dim_x(&self) -> usize {
        self.problem.dim_x()
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        let err = |e: Error| SimulationError(e.to_string());
        // Each simulation's noise comes from its own row's random stream (one seed per
        // parameter set), so results do not depend on batching, threads or shards.
        let set_seeds: Vec<u64> = if self.noisy {
            rngs.iter_mut().map(|r| r.random()).collect()
        } else {
            Vec::new()
        };
        let xs = self.run(theta, set_seeds).map_err(err)?;
        x.copy_from_slice(&xs);
        Ok(())
    }
}

/// Checks at compile time that the kernel can be shared across the runner's threads.
#[allow(dead_code)]
fn assert_sync() {
    fn is<T: Sync + Send>() {}
    is::<NeuronSimulator>();
}
