//! Block kernels: what the batch runner calls to advance 64 neurons by one step.
//!
//! A kernel works on a register file ("frame") whose first registers have fixed roles,
//! described by [`Layout`]; the runner fills parameters, inputs, time, index, the
//! refractory flag and noise increments, and reads states back.

use crate::error::{Result, SimError};
use crate::integrate::{self, StepAlgebra};
use crate::ir::{Ex, Slot};
use crate::model::{Model, Refractory};
use crate::vm::{Builder, Compiled, Lanes, NodeId};

/// Roles of the first registers of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// State variables.
    pub n_states: usize,
    /// Parameters.
    pub n_params: usize,
    /// Input variables.
    pub n_inputs: usize,
    /// Noise sources.
    pub n_noise: usize,
    /// Calls of `rand()` / `randn()`.
    pub n_rand: usize,
    /// Whether a register holds `lastspike` (after the random draws; only for models that
    /// read it, so that the others keep their programs).
    pub lastspike: bool,
    /// Spike sources: the model's own threshold (source 0), then a circuit's spiking
    /// neurons, each with its `not_refractory` (and `lastspike`) register.
    pub n_sources: usize,
}

impl Layout {
    /// Register of state `j`.
    pub fn state(&self, j: usize) -> usize {
        j
    }
    /// Register of parameter `k`.
    pub fn param(&self, k: usize) -> usize {
        self.n_states + k
    }
    /// Register of input `k` at the step's start (`next`: at its end).
    pub fn input(&self, k: usize, next: bool) -> usize {
        self.n_states + self.n_params + k + if next { self.n_inputs } else { 0 }
    }
    /// Register holding `t`.
    pub fn time(&self) -> usize {
        self.n_states + self.n_params + 2 * self.n_inputs
    }
    /// Register holding the neuron index `i`.
    pub fn index(&self) -> usize {
        self.time() + 1
    }
    /// Register holding 1 where not refractory.
    pub fn not_refractory(&self) -> usize {
        self.not_refractory_of(0)
    }
    /// Register holding 1 where spike source `s` is not refractory.
    pub fn not_refractory_of(&self, s: usize) -> usize {
        self.time() + 2 + s
    }
    /// Register holding the Wiener increment of noise `k`.
    pub fn noise(&self, k: usize) -> usize {
        self.time() + 2 + self.n_sources.max(1) + k
    }
    /// Register holding the draw of random call `k` (`rand()` or `randn()`).
    pub fn rand(&self, k: usize) -> usize {
        self.noise(self.n_noise) + k
    }
    /// Register holding `lastspike` (seconds), if [`Layout::lastspike`].
    pub fn lastspike(&self) -> usize {
        self.lastspike_of(0)
    }
    /// Register holding `lastspike` of spike source `s`, if [`Layout::lastspike`].
    pub fn lastspike_of(&self, s: usize) -> usize {
        self.rand(self.n_rand) + s
    }
    /// Number of fixed registers.
    pub fn n_fixed(&self) -> usize {
        self.rand(self.n_rand)
            + if self.lastspike {
                self.n_sources.max(1)
            } else {
                0
            }
    }
    /// Which fixed registers hold run-constant values (parameters and index).
    pub fn invariant(&self) -> Vec<bool> {
        (0..self.n_fixed())
            .map(|r| (self.param(0)..self.param(self.n_params)).contains(&r) || r == self.index())
            .collect()
    }
}

/// How refractoriness is decided for a kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RefractoryKind {
    /// Never refractory.
    None,
    /// For a duration after each spike, per neuron, fixed for the run (see
    /// [`Kernel::refractory_duration`], called once after `init`).
    Duration,
    /// For a duration after each spike that is evaluated at every step, at its start (it
    /// reads state variables, `t`, `lastspike`, inputs or random draws), as Brian does:
    /// `not_refractory = timestep(t - lastspike, dt) >= timestep(duration, dt)`.
    DurationEachStep,
    /// While the kernel's refractory condition holds.
    Condition,
}

/// What the runner needs from a model to advance a block of [`crate::vm::LANES`] neurons.
pub trait Kernel: Sync {
    /// Register roles.
    fn layout(&self) -> Layout;
    /// Registers a frame needs.
    fn n_regs(&self) -> usize;
    /// Names of the state variables.
    fn state_names(&self) -> Vec<String>;
    /// Computes initial states (parameters and index are filled).
    fn init(&self, frame: &mut [Lanes]);
    /// Advances the states by one step.
    fn step(&self, frame: &mut [Lanes]);
    /// Writes the spike condition (1/0) and returns true, or returns false if there is none.
    fn threshold(&self, frame: &mut [Lanes], out: &mut Lanes) -> bool;
    /// Applies the reset to the lanes where `mask` is 1.
    fn reset(&self, frame: &mut [Lanes], mask: &Lanes);
    /// Refractoriness.
    fn refractory(&self) -> RefractoryKind;
    /// Writes the refractory duration in seconds (once after `init` for
    /// [`RefractoryKind::Duration`], at every step for [`RefractoryKind::DurationEachStep`]).
    fn refractory_duration(&self, frame: &mut [Lanes], out: &mut Lanes);
    /// Writes the refractory condition (1 = refractory).
    fn refractory_condition(&self, frame: &mut [Lanes], out: &mut Lanes);
    /// Whether each random register ([`Layout::rand`]) holds a normal draw (else uniform).
    fn rand_normal(&self) -> Vec<bool> {
        Vec::new()
    }
    /// A circuit's spike sources beyond the model's own threshold (source `s` here is
    /// [`Layout::not_refractory_of`]`(s + 1)`), by name.
    fn events(&self) -> &[EventInfo] {
        &[]
    }
    /// Statements run on a source's spikes: the source (index into [`Kernel::events`]) and
    /// the delay in steps, in the order Brian runs them.
    fn pathways(&self) -> &[(usize, usize)] {
        &[]
    }
    /// Writes the spike condition of event source `s` (1/0).
    fn event_threshold(&self, s: usize, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let _ = (s, frame, out, width);
    }
    /// Writes event source `s`'s refractory duration (s) or condition (1 = refractory).
    fn event_refractory(&self, s: usize, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let _ = (s, frame, out, width);
    }
    /// Applies event source `s`'s reset to the lanes where `mask` is 1.
    fn event_reset(&self, s: usize, frame: &mut [Lanes], mask: &Lanes) {
        let _ = (s, frame, mask);
    }
    /// Runs pathway `p`'s statements on the lanes where `mask` is 1.
    fn pathway(&self, p: usize, frame: &mut [Lanes], mask: &Lanes) {
        let _ = (p, frame, mask);
    }
    /// Writes recorded quantity `k` (as listed by the run's record names) into `out`.
    fn record(&self, frame: &mut [Lanes], k: usize, out: &mut Lanes);
    /// [`Kernel::step`] where only the first `width` lanes matter (a block of a few
    /// neurons); lanes past it may be left stale. By default all lanes are computed.
    // Inlined into the runner's per-instruction-set copies, like the methods it wraps: a
    // call would run the kernel without FMA, through libm's software `fma`.
    #[inline(always)]
    fn step_width(&self, frame: &mut [Lanes], width: usize) {
        let _ = width;
        self.step(frame);
    }
    /// [`Kernel::threshold`] where only the first `width` lanes matter.
    #[inline(always)]
    fn threshold_width(&self, frame: &mut [Lanes], out: &mut Lanes, width: usize) -> bool {
        let _ = width;
        self.threshold(frame, out)
    }
    /// [`Kernel::refractory_condition`] where only the first `width` lanes matter.
    #[inline(always)]
    fn refractory_condition_width(&self, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let _ = width;
        self.refractory_condition(frame, out);
    }
}

/// A spike source of a circuit as the runner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventInfo {
    /// Name (`E_3`).
    pub name: String,
    /// How its refractoriness is decided.
    pub refractory: RefractoryKind,
}

/// Symbolic step algebra: builds DAG nodes for a model's formulas.
struct Symbolic<'a> {
    b: &'a mut Builder,
    model: &'a Model,
    layout: Layout,
    dt: f64,
    /// While a circuit's phase is integrated: the states of that phase, and the latest
    /// value of every state (the other phases' are held during this one).
    phase: Option<(Vec<usize>, Vec<NodeId>)>,
}

impl Symbolic<'_> {
    fn lower(&mut self, e: &Ex, x: &[NodeId], stage: f64) -> NodeId {
        let layout = self.layout;
        let dt = self.dt;
        let slot = |b: &mut Builder, s: Slot| -> NodeId {
            match s {
                Slot::State(j) => x[j],
                Slot::Param(k) => b.fixed(layout.param(k) as u32),
                Slot::Input(k) => b.fixed(layout.input(k, stage >= 1.0) as u32),
                Slot::Noise(_) => b.num(0.0),
                Slot::Time => {
                    let t = b.fixed(layout.time() as u32);
                    let off = b.num(stage * dt);
                    b.add(t, off)
                }
                Slot::Dt => b.num(dt),
                Slot::Index => b.fixed(layout.index() as u32),
                Slot::NotRefractory(s) => b.fixed(layout.not_refractory_of(s) as u32),
                Slot::Rand(k) => b.fixed(layout.rand(k) as u32),
                Slot::LastSpike(s) => b.fixed(layout.lastspike_of(s) as u32),
            }
        };
        self.b.lower(e, &slot)
    }

    fn current(&mut self) -> Vec<NodeId> {
        if let Some((_, base)) = &self.phase {
            return base.clone();
        }
        (0..self.layout.n_states)
            .map(|j| self.b.fixed(j as u32))
            .collect()
    }

    /// The global index of the integrator's state `j`.
    fn global(&self, j: usize) -> usize {
        self.phase.as_ref().map_or(j, |(p, _)| p[j])
    }

    /// The full state vector with the integrator's (phase-local) values `x` written in.
    fn full(&mut self, x: &[NodeId]) -> Vec<NodeId> {
        match &self.phase {
            None => x.to_vec(),
            Some((p, base)) => {
                let mut full = base.clone();
                for (k, &j) in p.iter().enumerate() {
                    full[j] = x[k];
                }
                full
            }
        }
    }

    /// The global indices of the states being integrated.
    fn integrated(&self) -> Vec<usize> {
        match &self.phase {
            None => (0..self.layout.n_states).collect(),
            Some((p, _)) => p.clone(),
        }
    }
}

/// The step program's new states: `(constant over dt)` values assigned from the state at
/// the step's start, then each phase integrated in turn (a circuit's objects in Brian's
/// order). A model with neither gets the single-phase program unchanged.
fn step_nodes(alg: &mut Symbolic, model: &Model) -> Vec<NodeId> {
    if model.pre_step.is_empty() && model.phases.is_empty() {
        return integrate::step(alg, model.method);
    }
    let start = alg.current();
    let mut base = start.clone();
    for (j, e) in &model.pre_step {
        base[*j] = alg.lower(e, &start, 0.0);
    }
    // Held states have zero derivative, so every method leaves them as assigned.
    let phases = if model.phases.is_empty() {
        vec![((0..model.states.len()).collect(), model.method)]
    } else {
        model.phases.clone()
    };
    for (phase, method) in phases {
        alg.phase = Some((phase.clone(), base.clone()));
        let new = integrate::step(alg, method);
        for (k, &j) in phase.iter().enumerate() {
            base[j] = new[k];
        }
    }
    alg.phase = None;
    base
}

impl StepAlgebra for Symbolic<'_> {
    type V = NodeId;
    fn n_states(&self) -> usize {
        self.phase
            .as_ref()
            .map_or(self.layout.n_states, |(p, _)| p.len())
    }
    fn n_noise(&self) -> usize {
        self.layout.n_noise
    }
    fn dt(&self) -> f64 {
        self.dt
    }
    fn state(&mut self, j: usize) -> NodeId {
        match &self.phase {
            Some((p, base)) => base[p[j]],
            None => self.b.fixed(j as u32),
        }
    }
    fn num(&mut self, v: f64) -> NodeId {
        self.b.num(v)
    }
    fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.b.add(a, b)
    }
    fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.b.sub(a, b)
    }
    fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.b.mul(a, b)
    }
    fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.b.div(a, b)
    }
    fn if_zero(&mut self, a: NodeId, x: NodeId, y: NodeId) -> NodeId {
        let zero = self.b.num(0.0);
        let c = self.b.cmp(crate::ir::Cmp::Eq, a, zero);
        self.b.select(c, x, y)
    }
    fn exp_euler(&mut self, x: NodeId, a: NodeId, b: NodeId) -> NodeId {
        self.b.exp_euler(x, a, b, self.dt)
    }
    fn not_refractory(&mut self, j: usize) -> NodeId {
        let s = self.model.refractory_source[self.global(j)];
        self.b.fixed(self.layout.not_refractory_of(s) as u32)
    }
    fn frozen_when_refractory(&self, j: usize) -> bool {
        let j = self.global(j);
        let refractory = match self.model.refractory_source[j] {
            0 => &self.model.refractory,
            s => &self.model.events[s - 1].refractory,
        };
        self.model.states[j].unless_refractory && *refractory != Refractory::None
    }
    fn drift(&mut self, x: &[NodeId], stage: f64) -> Vec<NodeId> {
        let model = self.model;
        let full = self.full(x);
        self.integrated()
            .into_iter()
            .map(|j| self.lower(&model.drift[j], &full, stage))
            .collect()
    }
    fn diffusion(&mut self, x: &[NodeId], stage: f64) -> Vec<Vec<NodeId>> {
        let model = self.model;
        let full = self.full(x);
        self.integrated()
            .into_iter()
            .map(|j| {
                model.diffusion[j]
                    .iter()
                    .map(|e| self.lower(e, &full, stage))
                    .collect()
            })
            .collect()
    }
    fn linear(&mut self) -> Vec<(NodeId, NodeId)> {
        let model = self.model;
        let x = self.current();
        self.integrated()
            .into_iter()
            .map(|j| {
                let (a, b) = model.linear[j]
                    .as_ref()
                    .expect("exponential Euler is only selected for linear equations");
                (self.lower(a, &x, 0.0), self.lower(b, &x, 0.0))
            })
            .collect()
    }
    fn linear_system(&mut self) -> (Vec<Vec<NodeId>>, Vec<NodeId>) {
        let model = self.model;
        let x = self.current();
        // A circuit's object: its own states, the others held at their latest values (`x`).
        let own;
        let sys = match &self.phase {
            Some((p, _)) => {
                own = crate::exact::linear_system_of(&model.drift, &model.states, p);
                own.as_ref()
            }
            None => model.exact.as_ref(),
        }
        .expect("exact is only selected for linear systems");
        let m = sys
            .m
            .iter()
            .map(|row| row.iter().map(|e| self.lower(e, &x, 0.0)).collect())
            .collect();
        let c = sys.c.iter().map(|e| self.lower(e, &x, 0.0)).collect();
        (m, c)
    }
    fn dw(&mut self, k: usize) -> NodeId {
        self.b.fixed(self.layout.noise(k) as u32)
    }
    fn is_zero(&self, v: NodeId) -> bool {
        self.b.is_const(v, 0.0)
    }
}

/// An equation-string model compiled for one time step and one set of recorded names.
#[derive(Clone, Debug)]
pub struct CompiledKernel {
    layout: Layout,
    code: Compiled,
    state_names: Vec<String>,
    has_threshold: bool,
    /// Registers the reset writes: state variables and written parameters.
    reset_targets: Vec<Target>,
    refractory: RefractoryKind,
    rand_normal: Vec<bool>,
    /// For each recorded name: a state register, or an output of the record program.
    record: Vec<Recorded>,
    events: Vec<EventInfo>,
    /// Registers each event source's reset writes.
    event_targets: Vec<Vec<Target>>,
    /// Source and delay (steps) of each pathway.
    pathways: Vec<(usize, usize)>,
    /// Registers each pathway writes.
    pathway_targets: Vec<Vec<Target>>,
}

/// A register that statements write, and the `not_refractory` register that must be 1
/// for the write to happen: Brian writes an `(unless refractory)` variable from a synaptic
/// pathway only where its neuron is not refractory (resets write it regardless).
type Target = (usize, Option<usize>);

#[derive(Clone, Copy, Debug)]
enum Recorded {
    State(usize),
    Program(usize),
}

const INIT: usize = 0;
const STEP: usize = 1;
const THRESHOLD: usize = 2;
const RESET: usize = 3;
const REFRACTORY: usize = 4;
const RECORD: usize = 5;
/// Event source `s`'s threshold, reset and refractoriness programs are
/// `EVENTS + 3*s + (0, 1, 2)`; pathway `p`'s is `EVENTS + 3*n_events + p`.
const EVENTS: usize = 6;

/// The kind of refractoriness a lowered refractory period asks for.
fn refractory_kind(r: &Refractory) -> RefractoryKind {
    match r {
        Refractory::None => RefractoryKind::None,
        Refractory::Duration(e) if crate::model::reads_running_values(e) => {
            RefractoryKind::DurationEachStep
        }
        Refractory::Duration(_) => RefractoryKind::Duration,
        Refractory::Condition(_) => RefractoryKind::Condition,
    }
}

/// The register a reset or pathway statement writes.
fn target_register(layout: Layout, target: Slot) -> usize {
    match target {
        Slot::Param(k) => layout.param(k),
        Slot::State(j) => layout.state(j),
        _ => unreachable!("statements write state variables and parameters"),
    }
}

/// Brian's `timestep(x, dt)`: the number of whole steps in `x`, robust to rounding.
pub fn timestep(x: f64, dt: f64) -> u64 {
    ((x + 1e-3 * dt) / dt).floor().max(0.0) as u64
}

impl CompiledKernel {
    /// Compiles `model` for time step `dt`, recording the names in `record`.
    pub fn new(model: &Model, dt: f64, record: &[String]) -> Result<Self> {
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(SimError::Config(format!(
                "dt must be a positive duration, got {dt} s"
            )));
        }
        let layout = Layout {
            n_states: model.states.len(),
            n_params: model.params.len(),
            n_inputs: model.inputs.len(),
            n_noise: model.noise.len(),
            n_rand: model.rand.len(),
            lastspike: model.reads_lastspike(),
            n_sources: 1 + model.events.len(),
        };
        // A parameter that a reset or pathway writes changes during the run.
        let mut invariant = layout.invariant();
        for k in model.written_params() {
            invariant[layout.param(k)] = false;
        }
        let mut b = Builder::new(invariant);
        let mut alg = Symbolic {
            b: &mut b,
            model,
            layout,
            dt,
            phase: None,
        };
        let x = alg.current();
        let init: Vec<NodeId> = model
            .initial
            .iter()
            .map(|e| alg.lower(e, &x, 0.0))
            .collect();
        let step = step_nodes(&mut alg, model);
        let threshold: Vec<NodeId> = model
            .threshold
            .iter()
            .map(|e| alg.lower(e, &x, 0.0))
            .collect();
        let reset: Vec<NodeId> = model
            .reset
            .iter()
            .map(|(_, e)| alg.lower(e, &x, 0.0))
            .collect();
        let refr: Vec<NodeId> = match &model.refractory {
            Refractory::Condition(e) | Refractory::Duration(e) => vec![alg.lower(e, &x, 0.0)],
            Refractory::None => vec![],
        };
        let mut rec = Vec::new();
        let mut rec_nodes = Vec::new();
        for name in record {
            if let Some(j) = model.states.iter().position(|s| &s.name == name) {
                rec.push(Recorded::State(j));
            } else if let Some((_, e, _)) = model.subexprs.iter().find(|s| &s.0 == name) {
                rec.push(Recorded::Program(rec_nodes.len()));
                rec_nodes.push(alg.lower(e, &x, 0.0));
            } else if let Some(p) = model
                .written_params()
                .find(|&p| &model.params[p].name == name)
            {
                // A parameter the reset writes: its register.
                rec.push(Recorded::State(layout.param(p)));
            } else {
                return Err(SimError::Config(format!(
                    "cannot record `{name}`: not a state variable, subexpression or parameter written by the reset (recordable: {})",
                    model.recordable().join(", ")
                )));
            }
        }
        let mut programs = vec![init, step, threshold, reset, refr, rec_nodes];
        for ev in &model.events {
            programs.push(vec![alg.lower(&ev.threshold, &x, 0.0)]);
            programs.push(
                ev.reset
                    .iter()
                    .map(|(_, e)| alg.lower(e, &x, 0.0))
                    .collect(),
            );
            programs.push(match &ev.refractory {
                Refractory::Condition(e) | Refractory::Duration(e) => vec![alg.lower(e, &x, 0.0)],
                Refractory::None => vec![],
            });
        }
        for p in &model.pathways {
            programs.push(
                p.effects
                    .iter()
                    .map(|(_, e)| alg.lower(e, &x, 0.0))
                    .collect(),
            );
        }
        let code = b.compile(&programs);
        let targets = |effects: &[(Slot, Ex)]| -> Vec<Target> {
            effects
                .iter()
                .map(|(t, _)| (target_register(layout, *t), None))
                .collect()
        };
        let conditional = |effects: &[(Slot, Ex)]| -> Vec<Target> {
            effects
                .iter()
                .map(|(t, _)| {
                    let when = match *t {
                        Slot::State(j) if model.states[j].unless_refractory => {
                            match model.refractory_source[j] {
                                0 if model.refractory == Refractory::None => None,
                                s if s > 0
                                    && model.events[s - 1].refractory == Refractory::None =>
                                {
                                    None
                                }
                                s => Some(layout.not_refractory_of(s)),
                            }
                        }
                        _ => None,
                    };
                    (target_register(layout, *t), when)
                })
                .collect()
        };
        Ok(CompiledKernel {
            layout,
            code,
            state_names: model.states.iter().map(|s| s.name.clone()).collect(),
            has_threshold: model.threshold.is_some(),
            reset_targets: targets(&model.reset),
            rand_normal: model.rand.clone(),
            refractory: refractory_kind(&model.refractory),
            record: rec,
            events: model
                .events
                .iter()
                .zip(&model.description.events)
                .map(|(ev, d)| EventInfo {
                    name: d.name.clone(),
                    refractory: refractory_kind(&ev.refractory),
                })
                .collect(),
            event_targets: model.events.iter().map(|ev| targets(&ev.reset)).collect(),
            // Brian: a delay of `d` seconds is `round(d/dt)` steps.
            pathways: model
                .pathways
                .iter()
                .map(|p| (p.source - 1, (p.delay / dt + 0.5).floor() as usize))
                .collect(),
            pathway_targets: model
                .pathways
                .iter()
                .map(|p| conditional(&p.effects))
                .collect(),
        })
    }

    /// Instructions per step (for diagnostics and tests of the compiler).
    pub fn step_len(&self) -> usize {
        self.code.programs[STEP].len()
    }

    /// The step program and the registers a frame needs (diagnostics: [`crate::profile`]).
    pub(crate) fn step_program(&self) -> (&crate::vm::Program, usize) {
        (&self.code.programs[STEP], self.code.n_regs)
    }

    /// A readable listing of the prologue and step programs.
    pub fn listing(&self) -> String {
        format!(
            "registers: {} ({} fixed)\nprologue:\n{}step:\n{}",
            self.code.n_regs,
            self.layout.n_fixed(),
            self.code.prologue.listing(),
            self.code.programs[STEP].listing()
        )
    }

    /// A readable listing of every program: prologue, initial values, step, threshold,
    /// reset, refractoriness and recordings (for tests that two models compile alike).
    pub fn full_listing(&self) -> String {
        let names = ["init", "step", "threshold", "reset", "refractory", "record"];
        let mut s = format!(
            "registers: {} ({} fixed)\nprologue:\n{}",
            self.code.n_regs,
            self.layout.n_fixed(),
            self.code.prologue.listing()
        );
        for (name, p) in names.iter().zip(&self.code.programs) {
            s.push_str(&format!("{name}:\n{}", p.listing()));
        }
        s
    }

    /// Runs a statements program (reset, pathway) and writes its new values into
    /// `targets` on the lanes where `mask` is 1.
    fn assign_masked(&self, prog: usize, targets: &[Target], frame: &mut [Lanes], mask: &Lanes) {
        let p = &self.code.programs[prog];
        if p.outputs.is_empty() {
            return;
        }
        p.exec(frame, self.code.n_regs);
        // Every new value is computed before any target is written.
        let new: Vec<Lanes> = p.outputs.iter().map(|&r| frame[r as usize]).collect();
        for (&(j, when), v) in targets.iter().zip(new) {
            let allowed = when.map(|r| frame[r]);
            for l in 0..crate::vm::LANES {
                if mask[l] != 0.0 && allowed.is_none_or(|a| a[l] != 0.0) {
                    frame[j][l] = v[l];
                }
            }
        }
    }

    #[inline(always)]
    fn run_into_states(&self, prog: usize, frame: &mut [Lanes], width: usize) {
        let p = &self.code.programs[prog];
        p.exec_width(frame, self.code.n_regs, width);
        // Outputs are all computed before any state is overwritten. An output that is
        // another state's register (a permutation) needs a copy through a buffer.
        let crossed = p
            .outputs
            .iter()
            .enumerate()
            .any(|(j, &r)| (r as usize) < p.outputs.len() && r as usize != j);
        if crossed {
            let vals: Vec<Lanes> = p.outputs.iter().map(|&r| frame[r as usize]).collect();
            frame[..vals.len()].copy_from_slice(&vals);
        } else {
            for (j, &r) in p.outputs.iter().enumerate() {
                if r as usize != j {
                    frame[j] = frame[r as usize];
                }
            }
        }
    }
}

impl Kernel for CompiledKernel {
    fn layout(&self) -> Layout {
        self.layout
    }
    fn n_regs(&self) -> usize {
        self.code.n_regs
    }
    fn state_names(&self) -> Vec<String> {
        self.state_names.clone()
    }
    fn init(&self, frame: &mut [Lanes]) {
        self.code.prologue.exec(frame, self.code.n_regs);
        self.run_into_states(INIT, frame, crate::vm::LANES);
    }
    #[inline(always)]
    fn step(&self, frame: &mut [Lanes]) {
        self.step_width(frame, crate::vm::LANES);
    }
    #[inline(always)]
    fn step_width(&self, frame: &mut [Lanes], width: usize) {
        self.run_into_states(STEP, frame, width);
    }
    #[inline(always)]
    fn threshold(&self, frame: &mut [Lanes], out: &mut Lanes) -> bool {
        self.threshold_width(frame, out, crate::vm::LANES)
    }
    #[inline(always)]
    fn threshold_width(&self, frame: &mut [Lanes], out: &mut Lanes, width: usize) -> bool {
        if !self.has_threshold {
            return false;
        }
        let p = &self.code.programs[THRESHOLD];
        p.exec_width(frame, self.code.n_regs, width);
        *out = frame[p.outputs[0] as usize];
        true
    }
    fn reset(&self, frame: &mut [Lanes], mask: &Lanes) {
        self.assign_masked(RESET, &self.reset_targets, frame, mask);
    }
    fn events(&self) -> &[EventInfo] {
        &self.events
    }
    fn pathways(&self) -> &[(usize, usize)] {
        &self.pathways
    }
    #[inline(always)]
    fn event_threshold(&self, s: usize, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let p = &self.code.programs[EVENTS + 3 * s];
        p.exec_width(frame, self.code.n_regs, width);
        *out = frame[p.outputs[0] as usize];
    }
    #[inline(always)]
    fn event_refractory(&self, s: usize, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let p = &self.code.programs[EVENTS + 3 * s + 2];
        p.exec_width(frame, self.code.n_regs, width);
        *out = frame[p.outputs[0] as usize];
    }
    fn event_reset(&self, s: usize, frame: &mut [Lanes], mask: &Lanes) {
        self.assign_masked(EVENTS + 3 * s + 1, &self.event_targets[s], frame, mask);
    }
    fn pathway(&self, p: usize, frame: &mut [Lanes], mask: &Lanes) {
        let prog = EVENTS + 3 * self.events.len() + p;
        self.assign_masked(prog, &self.pathway_targets[p], frame, mask);
    }
    fn refractory(&self) -> RefractoryKind {
        self.refractory
    }
    fn rand_normal(&self) -> Vec<bool> {
        self.rand_normal.clone()
    }
    fn refractory_duration(&self, frame: &mut [Lanes], out: &mut Lanes) {
        // Same program as the condition: a model has one or the other.
        self.refractory_condition(frame, out);
    }
    #[inline(always)]
    fn refractory_condition(&self, frame: &mut [Lanes], out: &mut Lanes) {
        self.refractory_condition_width(frame, out, crate::vm::LANES);
    }
    #[inline(always)]
    fn refractory_condition_width(&self, frame: &mut [Lanes], out: &mut Lanes, width: usize) {
        let p = &self.code.programs[REFRACTORY];
        p.exec_width(frame, self.code.n_regs, width);
        *out = frame[p.outputs[0] as usize];
    }
    #[inline(always)]
    fn record(&self, frame: &mut [Lanes], k: usize, out: &mut Lanes) {
        match self.record[k] {
            Recorded::State(j) => *out = frame[j],
            Recorded::Program(o) => {
                let p = &self.code.programs[RECORD];
                // The record program computes every subexpression at once; the runner asks
                // for recorded names in order, so run it for the first and read the rest.
                if o == 0 {
                    p.exec(frame, self.code.n_regs);
                }
                *out = frame[p.outputs[o] as usize];
            }
        }
    }
}
