//! The batch runner: many neurons, blocks of [`LANES`] in parallel, Brian's step order.
//!
//! Per time step `k` (t = k*dt), as Brian2 schedules a `NeuronGroup` with monitors:
//! record the state (so sample 0 is the initial state); decide refractoriness from the
//! state at the step's start; integrate; test the threshold on the new state (only where
//! not refractory); record spikes at time `t` (the step's start); run the reset.

use crate::error::{Result, SimError};
use crate::events::Events;
use crate::kernel::{Kernel, RefractoryKind};
use crate::noise::{LaneDraws, LaneNormals, RAND_SALT, neuron_stream};
use crate::vm::{LANES, Lanes};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The values of one input variable for every trace: `n_traces x n_steps`, row-major, SI.
/// Sample `k` holds for `k*dt <= t < (k+1)*dt`; past the end the last sample holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Stimulus {
    /// Input variable name.
    pub name: String,
    /// Number of traces (rows).
    pub n_traces: usize,
    /// Values, row-major.
    pub values: Vec<f64>,
}

impl Stimulus {
    /// A stimulus from rows of equal length.
    pub fn from_rows(name: impl Into<String>, rows: &[Vec<f64>]) -> Result<Self> {
        let name = name.into();
        let len = rows.first().map_or(0, Vec::len);
        if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != len) {
            return Err(SimError::Stimulus {
                input: name,
                message: format!("trace {k} has {} samples but trace 0 has {len}", r.len()),
            });
        }
        Ok(Stimulus {
            name,
            n_traces: rows.len(),
            values: rows.concat(),
        })
    }

    /// Samples per trace.
    pub fn n_steps(&self) -> usize {
        self.values.len().checked_div(self.n_traces).unwrap_or(0)
    }
}

/// How to run a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Time step (s).
    pub dt: f64,
    /// Number of steps.
    pub n_steps: usize,
    /// Names of the quantities to record (state variables or subexpressions).
    pub record: Vec<String>,
    /// Record every this many steps (1 = every step).
    pub record_every: usize,
    /// Seed of the noise; neuron `i` uses stream `i`, so results do not depend on threads
    /// or block size.
    pub seed: u64,
    /// Optional seed per parameter set: when given (one per set), neuron `s*n_traces + k`
    /// draws its noise from stream `k` of `set_seeds[s]` instead, so a simulation's noise
    /// depends only on its own seed, not on which batch or shard it ran in.
    pub set_seeds: Vec<u64>,
}

impl RunConfig {
    /// A configuration recording nothing but spikes.
    pub fn new(dt: f64, n_steps: usize) -> Self {
        RunConfig {
            dt,
            n_steps,
            record: Vec::new(),
            record_every: 1,
            seed: 0,
            set_seeds: Vec::new(),
        }
    }
    /// Records these names.
    pub fn record(mut self, names: &[&str]) -> Self {
        self.record = names.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Records every `k` steps.
    pub fn record_every(mut self, k: usize) -> Self {
        self.record_every = k;
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Seeds the noise of each parameter set separately (see [`RunConfig::set_seeds`]).
    pub fn set_seeds(mut self, seeds: Vec<u64>) -> Self {
        self.set_seeds = seeds;
        self
    }
    /// Number of recorded samples per neuron.
    pub fn n_samples(&self) -> usize {
        self.n_steps.div_ceil(self.record_every.max(1))
    }
}

/// A neuron whose state stopped being finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Neuron index.
    pub neuron: usize,
    /// The first step at whose end a non-finite state was seen (checked every 32 steps
    /// and at the end, so the blow-up happened at or before it).
    pub step: usize,
    /// The state variable that was not finite.
    pub variable: String,
}

/// Results of a batch run.
#[derive(Clone, Debug, Default)]
pub struct SimResult {
    /// Number of neurons simulated.
    pub n_neurons: usize,
    /// Samples per neuron in each recording.
    pub n_samples: usize,
    /// Recorded quantities: name and values, neuron-major (`n_neurons x n_samples`).
    pub recordings: Vec<(String, Vec<f64>)>,
    /// Spike times (s) per neuron.
    pub spikes: Vec<Vec<f64>>,
    /// A circuit's spike sources (see [`crate::circuit`]): name and spike times (s) per
    /// simulated circuit.
    pub events: Vec<(String, Vec<Vec<f64>>)>,
    /// Neurons that blew up (NaN or infinite state); the others are valid.
    pub failed: Vec<Failure>,
}

impl SimResult {
    /// The recorded trace of `name` for `neuron`.
    pub fn trace(&self, name: &str, neuron: usize) -> Option<&[f64]> {
        let (_, v) = self.recordings.iter().find(|(n, _)| n == name)?;
        v.get(neuron * self.n_samples..(neuron + 1) * self.n_samples)
    }
    /// Spike times (s) of the circuit's spike source `name` in simulation `neuron`.
    pub fn event_spikes(&self, name: &str, neuron: usize) -> Option<&[f64]> {
        let (_, v) = self.events.iter().find(|(n, _)| n == name)?;
        v.get(neuron).map(Vec::as_slice)
    }
    /// Whether a neuron failed.
    pub fn is_failed(&self, neuron: usize) -> bool {
        self.failed.iter().any(|f| f.neuron == neuron)
    }
}

/// Steps between checks for non-finite states (a blown-up neuron stays non-finite).
const CHECK_EVERY: usize = 32;

/// Simulates `n_sets x n_traces` neurons: parameter set `s` (row `s` of `params`,
/// `n_sets x n_params`, SI) with trace `k` of every stimulus is neuron `s*n_traces + k`
/// (brian2modelfitting's sample-major order).
pub fn simulate<K: Kernel>(
    kernel: &K,
    params: &[f64],
    n_traces: usize,
    stimuli: &[Stimulus],
    input_names: &[String],
    cfg: &RunConfig,
) -> Result<SimResult> {
    let layout = kernel.layout();
    let np = layout.n_params;
    if cfg.record_every == 0 {
        return Err(SimError::Config("record_every must be at least 1".into()));
    }
    if !(cfg.dt > 0.0 && cfg.dt.is_finite()) {
        return Err(SimError::Config(format!(
            "dt must be positive, got {}",
            cfg.dt
        )));
    }
    if n_traces == 0 {
        return Err(SimError::Config("n_traces must be at least 1".into()));
    }
    if np == 0 && !params.is_empty() || np > 0 && !params.len().is_multiple_of(np) {
        return Err(SimError::Config(format!(
            "parameters: {} values is not a whole number of sets of {np}",
            params.len()
        )));
    }
    if np > 0 && params.is_empty() {
        return Err(SimError::Config(format!(
            "no parameter sets given; the model has {np} parameter(s) per neuron"
        )));
    }
    if let Some(k) = params.iter().position(|v| !v.is_finite()) {
        return Err(SimError::Config(format!(
            "parameter set {} has a non-finite value in parameter {}",
            k / np.max(1),
            k % np.max(1)
        )));
    }
    let n_sets = params.len().checked_div(np).unwrap_or(1);
    if !cfg.set_seeds.is_empty() && cfg.set_seeds.len() != n_sets {
        return Err(SimError::Config(format!(
            "{} noise seeds for {n_sets} parameter sets; give one per set or none",
            cfg.set_seeds.len()
        )));
    }
    // Order stimuli as the model's inputs.
    let mut ordered: Vec<&Stimulus> = Vec::new();
    for name in input_names {
        let s = stimuli
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| SimError::Stimulus {
                input: name.clone(),
                message: "no stimulus given for this input".into(),
            })?;
        if s.n_traces != n_traces {
            return Err(SimError::Stimulus {
                input: name.clone(),
                message: format!("has {} traces, expected {n_traces}", s.n_traces),
            });
        }
        if s.values.len() != n_traces * cfg.n_steps {
            return Err(SimError::Stimulus {
                input: name.clone(),
                message: format!(
                    "has {} samples per trace, expected {} (one per step)",
                    s.values.len() as f64 / n_traces as f64,
                    cfg.n_steps
                ),
            });
        }
        if let Some(k) = s.values.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Stimulus {
                input: name.clone(),
                message: format!(
                    "trace {} sample {} is not finite",
                    k / cfg.n_steps,
                    k % cfg.n_steps
                ),
            });
        }
        ordered.push(s);
    }
    if let Some(s) = stimuli.iter().find(|s| !input_names.contains(&s.name)) {
        return Err(SimError::Stimulus {
            input: s.name.clone(),
            message: format!(
                "the model has no such input (inputs: {})",
                input_names.join(", ")
            ),
        });
    }
    let n = n_sets * n_traces;
    let n_samples = cfg.n_samples();
    let n_rec = cfg.record.len();
    let mut buffers: Vec<Vec<f64>> = (0..n_rec).map(|_| vec![0.0; n * n_samples]).collect();
    let blocks = blocks(n);
    // Each block gets its own slice of every recording buffer.
    let mut per_block: Vec<Vec<&mut [f64]>> = (0..blocks.len())
        .map(|_| Vec::with_capacity(n_rec))
        .collect();
    for buf in buffers.iter_mut() {
        let mut rest: &mut [f64] = buf;
        for (b, block) in blocks.iter().enumerate() {
            let (head, tail) = rest.split_at_mut(block.count * n_samples);
            per_block[b].push(head);
            rest = tail;
        }
    }
    let ctx = BlockCtx {
        kernel,
        params,
        np,
        n_traces,
        stimuli: &ordered,
        cfg,
    };
    let outs: Vec<BlockOut> = per_block
        .into_par_iter()
        .enumerate()
        .map(|(b, mut rec)| ctx.run_block(blocks[b], &mut rec))
        .collect();
    let mut spikes = Vec::with_capacity(n);
    let mut failed = Vec::new();
    let mut events: Vec<(String, Vec<Vec<f64>>)> = kernel
        .events()
        .iter()
        .map(|e| (e.name.clone(), Vec::with_capacity(n)))
        .collect();
    for out in outs {
        spikes.extend(out.spikes);
        failed.extend(out.failed);
        for (all, block) in events.iter_mut().zip(out.events) {
            all.1.extend(block);
        }
    }
    Ok(SimResult {
        n_neurons: n,
        n_samples,
        recordings: cfg.record.iter().cloned().zip(buffers).collect(),
        spikes,
        events,
        failed,
    })
}

/// A block of neurons run together: `count` neurons from `first`, computed on `width`
/// lanes (1, 4, 8 or [`LANES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    first: usize,
    count: usize,
    width: usize,
}

/// Cuts `n` neurons into blocks: full blocks of [`LANES`], then a remainder of more than
/// half a block as one more, or else blocks of 8 (4 for 2-4 neurons, 1 for one), so that a
/// run of a few neurons costs in proportion to its size rather than a whole block.
fn blocks(n: usize) -> Vec<Block> {
    let mut out: Vec<Block> = (0..n / LANES)
        .map(|b| Block {
            first: b * LANES,
            count: LANES,
            width: LANES,
        })
        .collect();
    let mut first = n - n % LANES;
    if n - first > LANES / 2 {
        out.push(Block {
            first,
            count: n - first,
            width: LANES,
        });
        return out;
    }
    while first < n {
        let count = (n - first).min(8);
        // Measured per step of HH model B: one lane alone costs 0.29 us, 2 or 4 lanes
        // 0.41 us, 8 lanes 0.68 us, 64 lanes 1.0 us (issue 24).
        let width = match count {
            1 => 1,
            2..=4 => 4,
            _ => 8,
        };
        out.push(Block {
            first,
            count,
            width,
        });
        first += count;
    }
    out
}

/// What one block's run gives back.
struct BlockOut {
    spikes: Vec<Vec<f64>>,
    /// Per event source, per lane.
    events: Vec<Vec<Vec<f64>>>,
    failed: Vec<Failure>,
}

struct BlockCtx<'a, K: Kernel> {
    kernel: &'a K,
    params: &'a [f64],
    np: usize,
    n_traces: usize,
    stimuli: &'a [&'a Stimulus],
    cfg: &'a RunConfig,
}

impl<K: Kernel> BlockCtx<'_, K> {
    fn run_block(&self, b: Block, rec: &mut [&mut [f64]]) -> BlockOut {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
                return unsafe { self.run_block_avx512(b, rec) };
            }
            if fma && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { self.run_block_avx2(b, rec) };
            }
        }
        self.run_block_generic(b, rec)
    }

    // The whole time loop is compiled once per instruction set so that every inlined lane
    // loop uses the widest vectors. FMA is enabled only for the explicit `mul_add`s of
    // fastmath (exact-rounded everywhere); LLVM never contracts a plain `a * b + c` on its
    // own, so results stay bit-identical across the three versions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn run_block_avx512(&self, b: Block, rec: &mut [&mut [f64]]) -> BlockOut {
        self.run_block_generic(b, rec)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_block_avx2(&self, b: Block, rec: &mut [&mut [f64]]) -> BlockOut {
        self.run_block_generic(b, rec)
    }

    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // lane loops index several registers at once
    fn run_block_generic(&self, b: Block, rec: &mut [&mut [f64]]) -> BlockOut {
        let k = self.kernel;
        let layout = k.layout();
        let cfg = self.cfg;
        let dt = cfg.dt;
        let (first, valid, w) = (b.first, b.count, b.width);
        // Unused lanes of the last block repeat its last neuron, so they stay finite.
        let neuron = |l: usize| first + l.min(valid - 1);
        let mut frame: Vec<Lanes> = vec![[0.0; LANES]; k.n_regs()];
        for p in 0..self.np {
            for l in 0..LANES {
                frame[layout.param(p)][l] = self.params[(neuron(l) / self.n_traces) * self.np + p];
            }
        }
        for l in 0..LANES {
            frame[layout.index()][l] = neuron(l) as f64;
        }
        let trace: Vec<usize> = (0..LANES).map(|l| neuron(l) % self.n_traces).collect();
        let shared_trace = trace.iter().all(|&t| t == trace[0]).then_some(trace[0]);
        // One stream per neuron, by its index or by its set's seed and its trace.
        let streams = |salt: u64| -> Vec<ChaCha8Rng> {
            (0..valid)
                .map(|l| {
                    let g = neuron(l);
                    let (seed, stream) = if cfg.set_seeds.is_empty() {
                        (cfg.seed, g)
                    } else {
                        (cfg.set_seeds[g / self.n_traces], g % self.n_traces)
                    };
                    neuron_stream(seed, salt, stream as u64)
                })
                .collect()
        };
        let mut normals: Option<LaneNormals> =
            (layout.n_noise > 0).then(|| LaneNormals::new(streams(0)));
        let rand_normal = k.rand_normal();
        let mut draws: Option<LaneDraws> =
            (!rand_normal.is_empty()).then(|| LaneDraws::new(streams(RAND_SALT), rand_normal));
        let rand_regs = layout.rand(0)..layout.rand(layout.n_rand);
        if let Some(d) = draws.as_mut() {
            d.fill(&mut frame[rand_regs.clone()], LANES);
        }
        // Initial values may read inputs: sample 0, as a Brian TimedArray at t = 0.
        if cfg.n_steps > 0 {
            for (i, s) in self.stimuli.iter().enumerate() {
                for l in 0..LANES {
                    frame[layout.input(i, false)][l] = s.values[trace[l] * cfg.n_steps];
                }
            }
        }
        k.init(&mut frame);
        let sqrt_dt = dt.sqrt();
        let mut tmp: Lanes = [0.0; LANES];
        let refractory = k.refractory();
        // Brian: refractory while timestep(t - lastspike, dt) < timestep(refractory, dt).
        let mut ref_steps = [0i64; LANES];
        if refractory == RefractoryKind::Duration {
            k.refractory_duration(&mut frame, &mut tmp);
            for l in 0..LANES {
                ref_steps[l] = crate::kernel::timestep(tmp[l], dt) as i64;
            }
        }
        let mut last_spike = [i64::MIN / 2; LANES];
        // Brian's `lastspike` before the first spike.
        const NEVER: f64 = crate::events::NEVER;
        let has_events = !k.events().is_empty();
        let mut events = Events::new(k, &mut frame, dt, valid);
        if layout.lastspike {
            frame[layout.lastspike()] = [NEVER; LANES];
        }
        let mut not_ref: Lanes = [1.0; LANES];
        let mut spikes: Vec<Vec<f64>> = vec![Vec::new(); valid];
        let mut failed: Vec<Failure> = Vec::new();
        let mut is_failed = [false; LANES];
        let mut mask: Lanes = [0.0; LANES];
        let n_samples = cfg.n_samples();
        let n_steps = cfg.n_steps;
        let has_inputs = !self.stimuli.is_empty();
        for step in 0..n_steps {
            let t = step as f64 * dt;
            frame[layout.time()] = [t; LANES];
            if has_inputs {
                let nxt = (step + 1).min(n_steps - 1);
                for (i, s) in self.stimuli.iter().enumerate() {
                    let (now_r, next_r) = (layout.input(i, false), layout.input(i, true));
                    if let Some(t) = shared_trace {
                        // One trace for the whole block (the common single-stimulus case):
                        // a broadcast instead of a gather per lane.
                        frame[now_r] = [s.values[t * n_steps + step]; LANES];
                        frame[next_r] = [s.values[t * n_steps + nxt]; LANES];
                        continue;
                    }
                    for l in 0..w {
                        let row = trace[l] * n_steps;
                        frame[now_r][l] = s.values[row + step];
                        frame[next_r][l] = s.values[row + nxt];
                    }
                }
            }
            if step % cfg.record_every == 0 {
                let sample = step / cfg.record_every;
                for (r, buf) in rec.iter_mut().enumerate() {
                    k.record(&mut frame, r, &mut tmp);
                    for l in 0..valid {
                        buf[l * n_samples + sample] = tmp[l];
                    }
                }
            }
            // This step's draws, before the refractory program, which may read them too.
            if let Some(d) = draws.as_mut() {
                d.fill(&mut frame[rand_regs.clone()], w);
            }
            // Brian evaluates a varying duration or a condition at every step, before the
            // update.
            match refractory {
                RefractoryKind::DurationEachStep => k.refractory_duration(&mut frame, &mut tmp),
                RefractoryKind::Condition => k.refractory_condition_width(&mut frame, &mut tmp, w),
                RefractoryKind::None | RefractoryKind::Duration => {}
            }
            crate::events::not_refractory_now(
                refractory,
                step,
                dt,
                &last_spike,
                &mut ref_steps,
                &tmp,
                &mut not_ref,
                w,
            );
            frame[layout.not_refractory()] = not_ref;
            if has_events {
                events.refractoriness(k, &mut frame, step, dt, w);
            }
            if let Some(g) = normals.as_mut() {
                for kk in 0..layout.n_noise {
                    g.fill(sqrt_dt, &mut frame[layout.noise(kk)], w);
                }
            }
            k.step_width(&mut frame, w);
            if k.threshold_width(&mut frame, &mut mask, w) {
                let mut any = false;
                for l in 0..w {
                    let spike = mask[l] != 0.0 && not_ref[l] != 0.0;
                    mask[l] = if spike { 1.0 } else { 0.0 };
                    any |= spike;
                }
                if any {
                    for l in 0..w {
                        if mask[l] != 0.0 {
                            if l < valid {
                                spikes[l].push(t);
                            }
                            last_spike[l] = step as i64;
                            if layout.lastspike {
                                frame[layout.lastspike()][l] = t;
                            }
                            if refractory != RefractoryKind::None {
                                not_ref[l] = 0.0;
                            }
                        }
                    }
                    k.reset(&mut frame, &mask);
                }
            }
            if has_events {
                events.fire(k, &mut frame, step, t, w);
            }
            if (step + 1) % CHECK_EVERY == 0 || step + 1 == n_steps {
                for j in 0..layout.n_states {
                    for l in 0..valid {
                        if !is_failed[l] && !frame[j][l].is_finite() {
                            is_failed[l] = true;
                            failed.push(Failure {
                                neuron: first + l,
                                step,
                                variable: k.state_names()[j].clone(),
                            });
                        }
                    }
                }
            }
        }
        failed.sort_by_key(|f| f.neuron);
        BlockOut {
            spikes,
            events: events.spikes,
            failed,
        }
    }
}
