//! The [`Simulator`] trait and a parallel runner whose results are bit-identical for any thread
//! count, batch size or chunking: parameter draw `i` and simulation `i` each use their own random
//! stream derived from (seed, i).

use crate::error::{InferError, Result, rows_of};
use crate::invalid::InvalidReasons;
use crate::prior::Prior;
use crate::rng::{SimRng, purpose, stream_rng};
use rayon::prelude::*;
use std::ops::ControlFlow;

/// Error reported by a simulator for a batch or a single simulation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("simulator error: {0}")]
pub struct SimulationError(pub String);

/// A stochastic simulator `x ~ p(x | theta)` over batches.
pub trait Simulator: Sync {
    /// Number of parameters per simulation.
    fn dim_theta(&self) -> usize;
    /// Length of one output vector.
    fn dim_x(&self) -> usize;
    /// Simulates `n = rngs.len()` rows: `theta` is `n x dim_theta`, `x` is `n x dim_x` to fill;
    /// row `i` must draw its randomness only from `rngs[i]`. A failed row may be written as NaN;
    /// an `Err` for the batch makes the runner retry the rows one by one, so a failure never
    /// depends on how rows were batched.
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError>;

    /// Names of the outputs, for messages about invalid simulations (empty: `x[j]`).
    fn x_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where the parameters of simulation `index` come from.
pub trait ThetaSource: Sync {
    /// Parameter dimension.
    fn dim(&self) -> usize;
    /// Writes the parameters of simulation `index` for the run seeded with `seed`.
    fn draw(&self, seed: u64, index: u64, out: &mut [f64]);
}

/// Draws parameters from a prior (or any [`Prior`] used as a proposal), one stream per index.
pub struct FromPrior<'a>(pub &'a dyn Prior);

impl ThetaSource for FromPrior<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn draw(&self, seed: u64, index: u64, out: &mut [f64]) {
        let mut rng = stream_rng(seed, purpose::THETA, index);
        self.0.sample_into(&mut rng, out);
    }
}

/// Parameters given up front (row `index` of a row-major matrix).
pub struct FromRows<'a> {
    rows: &'a [f64],
    dim: usize,
}

impl<'a> FromRows<'a> {
    /// Wraps a row-major `n x dim` matrix.
    pub fn new(rows: &'a [f64], dim: usize) -> Result<Self> {
        rows_of("theta rows", rows, dim)?;
        Ok(Self { rows, dim })
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl ThetaSource for FromRows<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn draw(&self, _seed: u64, index: u64, out: &mut [f64]) {
        let i = index as usize;
        out.copy_from_slice(&self.rows[i * self.dim..(i + 1) * self.dim]);
    }
}

/// Settings of a simulation run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Seed of the run; with the index it fixes every draw.
    pub seed: u64,
    /// Rows handed to the simulator per call.
    pub batch_size: usize,
    /// Rows per chunk (unit of progress reports and of store writes).
    pub chunk_size: usize,
    /// A round with a larger fraction of invalid simulations stops with
    /// [`InferError::TooManyInvalid`] instead of training on the few valid ones.
    pub max_invalid_fraction: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            batch_size: 100,
            chunk_size: 1000,
            max_invalid_fraction: 0.99,
        }
    }
}

/// Simulations for a contiguous range of indices; invalid rows are dropped and listed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// First simulation index of the chunk.
    pub start: u64,
    /// Number of simulations attempted.
    pub n: u32,
    /// Offsets (from `start`) of invalid simulations, ascending.
    pub invalid: Vec<u32>,
    /// First simulator error message in the chunk, if any.
    pub first_error: Option<String>,
    /// Parameters of the invalid simulations, row-major (where the model fails).
    pub invalid_theta: Vec<f64>,
    /// Why the invalid simulations failed.
    pub reasons: InvalidReasons,
    /// Parameters of the valid simulations, row-major.
    pub theta: Vec<f64>,
    /// Outputs of the valid simulations, row-major.
    pub x: Vec<f64>,
}

/// Progress report given to a [`RunObserver`] after each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Simulations done in this run (valid or not), including resumed ones.
    pub done: u64,
    /// Simulations planned.
    pub total: u64,
    /// Invalid simulations so far.
    pub invalid: u64,
}

/// Watches a run; returning `Break` stops it after the current chunk (which is kept).
pub trait RunObserver {
    /// Called after each finished chunk.
    fn on_chunk(&mut self, progress: Progress) -> ControlFlow<()>;
}

/// An observer that does nothing.
pub struct Quiet;

impl RunObserver for Quiet {
    fn on_chunk(&mut self, _: Progress) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

impl<F: FnMut(Progress) -> ControlFlow<()>> RunObserver for F {
    fn on_chunk(&mut self, progress: Progress) -> ControlFlow<()> {
        self(progress)
    }
}

/// Checks that the parameter source and simulator agree on the dimension.
pub(crate) fn check_dims(sim: &dyn Simulator, source: &dyn ThetaSource) -> Result<()> {
    if sim.dim_theta() != source.dim() {
        return Err(InferError::DimMismatch {
            what: "simulator dim_theta vs prior/proposal dimension".into(),
            expected: source.dim(),
            got: sim.dim_theta(),
        });
    }
    if sim.dim_x() == 0 {
        return Err(crate::error::invalid_arg("simulator dim_x", "must be > 0"));
    }
    Ok(())
}

/// Simulates indices `start .. start + n` (parallel over batches) and drops invalid rows.
pub fn simulate_chunk(
    sim: &dyn Simulator,
    source: &dyn ThetaSource,
    seed: u64,
    start: u64,
    n: usize,
    batch_size: usize,
) -> Result<Chunk> {
    check_dims(sim, source)?;
    let (dt, dx) = (sim.dim_theta(), sim.dim_x());
    let bs = batch_size.max(1);
    let mut theta = vec![0.0; n * dt];
    let mut x = vec![f64::NAN; n * dx];
    let errors: Vec<Vec<Option<String>>> = theta
        .par_chunks_mut(bs * dt)
        .zip(x.par_chunks_mut(bs * dx))
        .enumerate()
        .map(|(b, (th, xs))| {
            let first = start + (b * bs) as u64;
            let rows = th.len() / dt;
            for r in 0..rows {
                source.draw(seed, first + r as u64, &mut th[r * dt..(r + 1) * dt]);
            }
            let mut rngs: Vec<SimRng> = (0..rows)
                .map(|r| stream_rng(seed, purpose::SIMULATION, first + r as u64))
                .collect();
            match sim.simulate(th, &mut rngs, xs) {
                Ok(()) => vec![None; rows],
                Err(_) => {
                    // Retry one by one with fresh streams so the outcome of each row is the
                    // same as in any other batching.
                    (0..rows)
                        .map(|r| {
                            let mut rng = [stream_rng(seed, purpose::SIMULATION, first + r as u64)];
                            let xr = &mut xs[r * dx..(r + 1) * dx];
                            let res = sim.simulate(&th[r * dt..(r + 1) * dt], &mut rng, xr);
                            res.err().map(|e| {
                                xr.fill(f64::NAN);
                                e.0
                            })
                        })
                        .collect()
                }
            }
        })
        .collect();
    let errors: Vec<Option<String>> = errors.into_iter().flatten().collect();
    let first_error = errors.iter().flatten().next().cloned();
    let mut invalid = Vec::new();
    let mut invalid_theta = Vec::new();
    let mut reasons = InvalidReasons::default();
    let mut keep_t = Vec::with_capacity(theta.len());
    let mut keep_x = Vec::with_capacity(x.len());
    let names = sim.x_names();
    for i in 0..n {
        let (th, xr) = (&theta[i * dt..(i + 1) * dt], &x[i * dx..(i + 1) * dx]);
        match (&errors[i], xr.iter().position(|v| !v.is_finite())) {
            (None, None) => {
                keep_t.extend_from_slice(th);
                keep_x.extend_from_slice(xr);
            }
            (err, col) => {
                invalid.push(i as u32);
                invalid_theta.extend_from_slice(th);
                reasons.add(match (err, col) {
                    (Some(e), _) => format!("simulator error: {e}"),
                    (None, Some(j)) => match names.get(j) {
                        Some(name) => format!("undefined or non-finite output x[{j}] ({name})"),
                        None => format!("non-finite output x[{j}]"),
                    },
                    (None, None) => unreachable!("matched above"),
                });
            }
        }
    }
    Ok(Chunk {
        start,
        n: n as u32,
        invalid,
        first_error,
        invalid_theta,
        reasons,
        theta: keep_t,
        x: keep_x,
    })
}

/// Valid simulations gathered from a run or a store, with the count of invalid ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimulationSet {
    /// Parameter dimension.
    pub dim_theta: usize,
    /// Output dimension.
    pub dim_x: usize,
    /// Parameters, row-major.
    pub theta: Vec<f64>,
    /// Outputs, row-major.
    pub x: Vec<f64>,
    /// Simulations attempted.
    pub n_attempted: u64,
    /// Invalid simulations (excluded).
    pub n_invalid: u64,
    /// First simulator error message seen, if any.
    pub first_error: Option<String>,
    /// Parameters of the invalid simulations, row-major.
    pub invalid_theta: Vec<f64>,
    /// Why the invalid simulations failed.
    pub reasons: InvalidReasons,
}

impl SimulationSet {
    /// Number of valid simulations.
    pub fn len(&self) -> usize {
        self.theta.len().checked_div(self.dim_theta).unwrap_or(0)
    }
    /// Whether there are no valid simulations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn push_chunk(&mut self, c: &Chunk) {
        self.theta.extend_from_slice(&c.theta);
        self.x.extend_from_slice(&c.x);
        self.n_attempted += c.n as u64;
        self.n_invalid += c.invalid.len() as u64;
        if self.first_error.is_none() {
            self.first_error.clone_from(&c.first_error);
        }
        self.invalid_theta.extend_from_slice(&c.invalid_theta);
        self.reasons.merge(&c.reasons);
    }
    /// Errors with [`InferError::AllSimulationsInvalid`] if nothing valid is left, and with
    /// [`InferError::TooManyInvalid`] if more than `max_fraction` of the simulations were
    /// invalid (the model fails over most of the prior; training on the rest would be
    /// silently biased).
    pub fn require_valid(&self, max_fraction: f64) -> Result<()> {
        if self.is_empty() {
            return Err(InferError::AllSimulationsInvalid {
                n: self.n_attempted as usize,
                first_error: self
                    .first_error
                    .clone()
                    .unwrap_or_else(|| "non-finite output".into()),
            });
        }
        let report = self.invalid_report();
        if report.fraction() > max_fraction {
            return Err(InferError::TooManyInvalid {
                max_fraction,
                report: Box::new(report),
            });
        }
        Ok(())
    }

    /// Counts, reasons and the parameter region of the invalid simulations.
    pub fn invalid_report(&self) -> crate::invalid::InvalidReport {
        crate::invalid::InvalidReport::new(self)
    }

    /// Appends the simulations of `other` (same dimensions).
    pub fn append(&mut self, other: SimulationSet) {
        self.theta.extend(other.theta);
        self.x.extend(other.x);
        self.n_attempted += other.n_attempted;
        self.n_invalid += other.n_invalid;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.invalid_theta.extend(other.invalid_theta);
        self.reasons.merge(&other.reasons);
    }
}

/// Runs `n` simulations in memory (chunked, parallel inside each chunk), reporting progress;
/// the observer may stop the run early. Errors if every simulation was invalid.
pub fn simulate(
    sim: &dyn Simulator,
    source: &dyn ThetaSource,
    n: usize,
    cfg: &RunConfig,
    observer: &mut dyn RunObserver,
) -> Result<SimulationSet> {
    check_dims(sim, source)?;
    if cfg.chunk_size == 0 {
        return Err(crate::error::invalid_arg("chunk_size", "must be > 0"));
    }
    let mut set = SimulationSet {
        dim_theta: sim.dim_theta(),
        dim_x: sim.dim_x(),
        ..Default::default()
    };
    let mut start = 0usize;
    while start < n {
        let len = cfg.chunk_size.min(n - start);
        let c = simulate_chunk(sim, source, cfg.seed, start as u64, len, cfg.batch_size)?;
        set.push_chunk(&c);
        start += len;
        let p = Progress {
            done: start as u64,
            total: n as u64,
            invalid: set.n_invalid,
        };
        if observer.on_chunk(p).is_break() {
            break;
        }
    }
    set.require_valid(cfg.max_invalid_fraction)?;
    Ok(set)
}

/// Simulates the given parameter rows (e.g. posterior-predictive checks); invalid rows come back
/// as NaN rows in place, so the output stays aligned with the input.
pub fn simulate_rows(
    sim: &dyn Simulator,
    theta: &[f64],
    seed: u64,
    batch_size: usize,
) -> Result<Vec<f64>> {
    let rows = FromRows::new(theta, sim.dim_theta())?;
    let n = rows.len();
    check_dims(sim, &rows)?;
    let c = simulate_chunk(sim, &rows, seed, 0, n, batch_size)?;
    let dx = sim.dim_x();
    let mut out = vec![f64::NAN; n * dx];
    let mut k = 0;
    let mut inv = c.invalid.iter().peekable();
    for i in 0..n {
        if inv.peek() == Some(&&(i as u32)) {
            inv.next();
            continue;
        }
        out[i * dx..(i + 1) * dx].copy_from_slice(&c.x[k * dx..(k + 1) * dx]);
        k += 1;
    }
    Ok(out)
}
