//! Large networks for one parameter set: each neuron of a group on its own lane (the
//! group's compiled kernel advancing blocks of 64 neurons, as for single-neuron fits), and
//! spikes delivered through sparse synapse lists. Brian's COBA network (4 000 neurons,
//! 320 000 synapses) is the reference case; a [`crate::circuit`] with a whole circuit per
//! lane is the layout for many parameter sets of a small circuit instead.
//!
//! One step runs in Brian's order: every group's refractoriness and state update, every
//! threshold, the synaptic pathways (`NAME_pre`, by name; delayed spikes from a queue),
//! the resets. Synapses here act through `on_pre` statements `X_post += expr` /
//! `X_post -= expr` on state variables of the target group, with `expr` fixed per synapse
//! (constants, `i`, `j`, the synapse's parameters); as in Brian, an `(unless refractory)`
//! target is not changed while its neuron is refractory. Groups may have white noise,
//! `rand()` / `randn()` and inputs ([`NetworkRun::seed`], [`NetworkRun::inputs`]).
//!
//! ```
//! use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
//! use neurosbi_sim::network::{Network, NetworkRun};
//!
//! let mut g = GroupDescription::new("n", "dv/dt = (2*mV + ge - v)/(10*ms) : volt\ndge/dt = -ge/(5*ms) : volt");
//! g.n = 3;
//! g.threshold = Some("v > 1*mV".into());
//! g.reset = Some("v = 0*mV".into());
//! let mut s = SynapseDescription::new("e", "n", "n", "");
//! s.on_pre = Some("ge_post += 0.5*mV".into());
//! s.connect = Connect::Condition("i != j".into());
//! let mut c = CircuitDescription::new(vec![g], vec![s]);
//! c.method = Some("euler".into());
//! let net = Network::new(&c, &[]).unwrap();
//! let out = net.simulate(&NetworkRun::new(1e-4, 2000)).unwrap();
//! assert!(!out.spikes("n").unwrap()[0].is_empty());
//! ```

use crate::circuit::{self, CircuitDescription, SynapseDescription};
use crate::equations::{AssignOp, EquationKind, EquationSet, parse_statements};
use crate::error::{Result, SimError};
use crate::events::{NEVER, not_refractory_now};
use crate::kernel::{CompiledKernel, Kernel, RefractoryKind, timestep};
use crate::model::{Model, ModelDescription};
use crate::noise::{LaneDraws, LaneNormals, RAND_SALT, neuron_stream};
use crate::syntax::{Source, parse_expr};
use crate::vm::{LANES, Lanes};

/// A network checked and ready to run (see the module doc).
pub struct Network {
    groups: Vec<Group>,
    pathways: Vec<Pathway>,
}

struct Group {
    name: String,
    n: usize,
    model: Model,
    /// Parameter values, the same for every neuron.
    params: Vec<f64>,
}

/// One synapse object's `on_pre`, as sparse lists by pre-synaptic neuron.
struct Pathway {
    source: usize,
    target: usize,
    /// Synapses of pre-synaptic neuron `i`: `start[i]..start[i + 1]`.
    start: Vec<usize>,
    post: Vec<u32>,
    delay: Vec<f64>,
    effects: Vec<Effect>,
}

/// `X_post += value` per synapse.
struct Effect {
    state: usize,
    values: Vec<f64>,
    /// `X` is `(unless refractory)` in a group with refractoriness.
    conditional: bool,
}

/// What to run: time step, steps, recordings and initial values given per neuron.
#[derive(Clone, Debug)]
pub struct NetworkRun {
    /// Time step (s).
    pub dt: f64,
    /// Number of steps.
    pub n_steps: usize,
    /// Recorded: group, variable, neurons.
    pub record: Vec<(String, String, Vec<usize>)>,
    /// Record every this many steps (at the step's start).
    pub record_every: usize,
    /// Initial values given per neuron (group, state variable, one value per neuron, SI),
    /// replacing the group's `initial`.
    pub initial: Vec<(String, String, Vec<f64>)>,
    /// Parameter values given per neuron (group, parameter, one value per neuron, SI),
    /// replacing the value given to [`Network::new`] for that group: heterogeneous
    /// neurons, as Brian's `G.tau = ...` with an array or an expression of `i`.
    pub parameters: Vec<(String, String, Vec<f64>)>,
    /// Values of each group input (group, input, one value per step, SI), the same for
    /// every neuron of the group (a Brian `TimedArray` of one dimension).
    pub inputs: Vec<(String, String, Vec<f64>)>,
    /// Seed of the white noise and of `rand()` / `randn()`: the `k`-th neuron of the
    /// network (groups in order) draws from stream `k`, as neuron `k` of
    /// [`crate::run::simulate`] with the same seed, so an unconnected group gives the same
    /// numbers through both doors.
    pub seed: u64,
}

impl NetworkRun {
    /// `n_steps` steps of `dt` seconds, recording spikes only.
    pub fn new(dt: f64, n_steps: usize) -> Self {
        NetworkRun {
            dt,
            n_steps,
            record: Vec::new(),
            record_every: 1,
            initial: Vec::new(),
            parameters: Vec::new(),
            inputs: Vec::new(),
            seed: 0,
        }
    }
}

/// Spike times and recorded traces of a network run.
#[derive(Clone, Debug, Default)]
pub struct NetworkResult {
    /// Per group: spike times (s) per neuron.
    pub spikes: Vec<(String, Vec<Vec<f64>>)>,
    /// Per recording: group, variable, neuron and samples.
    pub traces: Vec<(String, String, usize, Vec<f64>)>,
}

impl NetworkResult {
    /// The spike trains of group `name`.
    pub fn spikes(&self, name: &str) -> Option<&[Vec<f64>]> {
        self.spikes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }
    /// The recorded trace of `var` of neuron `k` of `group`.
    pub fn trace(&self, group: &str, var: &str, k: usize) -> Option<&[f64]> {
        self.traces
            .iter()
            .find(|(g, v, n, _)| g == group && v == var && *n == k)
            .map(|(_, _, _, t)| t.as_slice())
    }
}

impl Network {
    /// Checks a circuit for the network layout; `values` gives each group parameter
    /// (`{param}_{group}`, SI) for all neurons of its group.
    pub fn new(c: &CircuitDescription, values: &[(String, f64)]) -> Result<Self> {
        let mut groups = Vec::new();
        for g in &c.groups {
            let at = |m: String| SimError::Model(format!("groups.{}: {m}", g.name));
            let mut desc = ModelDescription::new(g.equations.clone());
            desc.threshold = g.threshold.clone();
            desc.reset = g.reset.clone();
            desc.refractory = g.refractory.clone();
            desc.method = g.method.clone().or(c.method.clone());
            desc.constants = c.constants.iter().chain(&g.constants).cloned().collect();
            desc.initial = g.initial.clone();
            desc.inputs = g.inputs.clone();
            let model = Model::new(&desc).map_err(|e| at(e.to_string()))?;
            let params = model
                .parameters()
                .iter()
                .map(|p| {
                    let key = format!("{}_{}", p.name, g.name);
                    values
                        .iter()
                        .find(|(n, _)| *n == key)
                        .map(|v| v.1)
                        .ok_or_else(|| {
                            at(format!(
                                "no value for parameter `{}` (give `{key}`)",
                                p.name
                            ))
                        })
                })
                .collect::<Result<Vec<f64>>>()?;
            groups.push(Group {
                name: g.name.clone(),
                n: g.n,
                model,
                params,
            });
        }
        let mut synapses: Vec<&SynapseDescription> = c.synapses.iter().collect();
        // Brian runs the pathways by name (all are `NAME_pre`, order -1).
        synapses.sort_by(|a, b| a.name.cmp(&b.name));
        let pathways = synapses
            .into_iter()
            .map(|s| pathway(c, s, &groups))
            .collect::<Result<Vec<_>>>()?;
        Ok(Network { groups, pathways })
    }

    /// Runs the network.
    pub fn simulate(&self, run: &NetworkRun) -> Result<NetworkResult> {
        if !(run.dt > 0.0 && run.dt.is_finite()) || run.record_every == 0 {
            return Err(SimError::Config(format!(
                "network run: dt must be a positive duration (got {} s) and record_every >= 1",
                run.dt
            )));
        }
        let mut state = Runner::new(self, run)?;
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
                unsafe { state.run_avx512(self, run) };
                return state.finish(self, run);
            }
        }
        state.run_generic(self, run);
        state.finish(self, run)
    }
}

/// A synapse object for the network layout: connections, delays and the per-synapse
/// increments of its `on_pre` statements.
fn pathway(c: &CircuitDescription, s: &SynapseDescription, groups: &[Group]) -> Result<Pathway> {
    let fail = |m: String| SimError::Model(format!("synapses.{}: {m}", s.name));
    let find = |g: &str| {
        groups
            .iter()
            .position(|x| x.name == g)
            .ok_or_else(|| fail(format!("group `{g}` does not exist")))
    };
    let (source, target) = (find(&s.source)?, find(&s.target)?);
    let eqs = EquationSet::parse(&format!("synapses.{}.equations", s.name), &s.equations)?;
    if let Some(e) = eqs
        .equations
        .iter()
        .find(|e| e.kind != EquationKind::Parameter)
    {
        return Err(fail(format!(
            "`{}`: the network layout supports synapses with parameters only (no \
             differential equations or subexpressions yet)",
            e.name
        )));
    }
    if s.on_post.as_deref().is_some_and(|t| !t.trim().is_empty()) {
        return Err(fail(
            "`on_post` is not supported in the network layout yet".into(),
        ));
    }
    if groups[source].model.threshold.is_none() {
        return Err(fail(format!(
            "source group `{}` has no threshold",
            s.source
        )));
    }
    let (n_pre, n_post) = (groups[source].n, groups[target].n);
    let mut pairs = circuit::connections(s, n_pre, n_post).map_err(|e| fail(e.to_string()))?;
    // Brian's synapse order, by pre-synaptic neuron (stable: explicit lists keep theirs).
    pairs.sort_by_key(|&(i, _)| i);
    let mut start = vec![0usize; n_pre + 1];
    for &(i, _) in &pairs {
        start[i + 1] += 1;
    }
    for i in 0..n_pre {
        start[i + 1] += start[i];
    }
    let post: Vec<u32> = pairs.iter().map(|&(_, j)| j as u32).collect();
    let delay = pairs
        .iter()
        .map(|&(i, j)| circuit::delay_seconds(c, s, i, j, n_pre, n_post))
        .collect::<Result<Vec<f64>>>()?;
    let text = s.on_pre.clone().unwrap_or_default();
    let origin = format!("synapses.{}.on_pre", s.name);
    let src = Source::new(&origin, &text);
    let tmodel = &groups[target].model;
    let mut effects = Vec::new();
    for st in parse_statements(&src, &text)? {
        let at = src.locate(st.offset);
        // Brian reads a name the synapse does not declare as the target neuron's.
        let name = st.target.strip_suffix("_post").unwrap_or(&st.target);
        let state = tmodel.state_vars().iter().position(|x| x.name == name);
        let (Some(state), AssignOp::Add | AssignOp::Sub) = (state, st.op) else {
            return Err(SimError::syntax(
                at,
                "the network layout supports `X_post += expr` and `X_post -= expr` on a \
                 state variable of the target group",
            ));
        };
        let var = &tmodel.state_vars()[state];
        let sign = if st.op == AssignOp::Sub { -1.0 } else { 1.0 };
        let values = increments(c, s, &eqs, &st.expr, &pairs, (n_pre, n_post))?;
        if let Some((dim, _)) = values.first().filter(|(d, _)| *d != var.dim) {
            return Err(SimError::Dimension {
                at,
                context: format!("`{}` vs the increment", st.target),
                left: var.dim,
                right: *dim,
            });
        }
        effects.push(Effect {
            state,
            values: values.into_iter().map(|(_, v)| sign * v).collect(),
            conditional: var.unless_refractory
                && tmodel.refractory != crate::model::Refractory::None,
        });
    }
    Ok(Pathway {
        source,
        target,
        start,
        post,
        delay,
        effects,
    })
}

/// The value of an `on_pre` right-hand side for every synapse: constants, `i`, `j`,
/// `N_pre`, `N_post` and the synapse's parameters (given by its `initial` expressions).
fn increments(
    c: &CircuitDescription,
    s: &SynapseDescription,
    eqs: &EquationSet,
    expr: &crate::syntax::Expr,
    pairs: &[(usize, usize)],
    (n_pre, n_post): (usize, usize),
) -> Result<Vec<(crate::units::Dimension, f64)>> {
    let origin = format!("synapses.{}.on_pre", s.name);
    let mut scope = crate::check::Scope::new();
    for (n, q) in c.constants.iter().chain(&s.constants) {
        scope
            .symbols
            .insert(n.clone(), crate::check::Symbol::Const(*q));
    }
    let params: Vec<&str> = eqs.equations.iter().map(|e| e.name.as_str()).collect();
    let per_synapse = {
        let mut names = Vec::new();
        expr.names(&mut names);
        names
            .iter()
            .any(|n| ["i", "j"].contains(&n.as_str()) || params.contains(&n.as_str()))
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (k, &(i, j)) in pairs.iter().enumerate() {
        if k > 0 && !per_synapse {
            out.push(out[0]);
            continue;
        }
        let sub = |n: &str| -> Option<crate::syntax::Expr> {
            match n {
                "i" => Some(circuit::num(i as f64)),
                "j" => Some(circuit::num(j as f64)),
                "N_pre" => Some(circuit::num(n_pre as f64)),
                "N_post" => Some(circuit::num(n_post as f64)),
                p if params.contains(&p) => {
                    let (_, text) = s.initial.iter().find(|(v, _)| v == p)?;
                    let e = parse_expr(&origin, text).ok()?;
                    Some(circuit::rename(&e, &|m| match m {
                        "i" => Some(circuit::num(i as f64)),
                        "j" => Some(circuit::num(j as f64)),
                        _ => None,
                    }))
                }
                _ => None,
            }
        };
        let e = circuit::rename(expr, &sub);
        let q = crate::check::eval_constant(&mut scope, &origin, &format!("({e})"))?;
        out.push((q.dim, q.value));
    }
    Ok(out)
}

/// Per group and parameter, the per-neuron values given in the run, if any: each for a
/// parameter of an existing group, once, with one finite value per neuron.
fn neuron_parameters<'a>(
    net: &Network,
    run: &'a NetworkRun,
) -> Result<Vec<Vec<Option<&'a [f64]>>>> {
    let fail = |m: String| SimError::Config(format!("network run: parameters: {m}"));
    let mut out: Vec<Vec<Option<&[f64]>>> = net
        .groups
        .iter()
        .map(|g| vec![None; g.params.len()])
        .collect();
    for (g, name, values) in &run.parameters {
        let Some(gi) = net.groups.iter().position(|x| x.name == *g) else {
            return Err(fail(format!("`{name}` is given for `{g}`: no such group")));
        };
        let group = &net.groups[gi];
        let Some(p) = group
            .model
            .parameters()
            .iter()
            .position(|v| v.name == *name)
        else {
            return Err(fail(format!("`{g}` has no parameter `{name}`")));
        };
        if out[gi][p].is_some() {
            return Err(fail(format!("`{name}` of `{g}` is given twice")));
        }
        if values.len() != group.n || values.iter().any(|v| !v.is_finite()) {
            return Err(fail(format!(
                "`{name}` of `{g}`: {} finite values needed (one per neuron), got {}",
                group.n,
                values.len()
            )));
        }
        out[gi][p] = Some(values);
    }
    Ok(out)
}

/// Each group's input values per step, in its model's input order: every input given once,
/// with one finite value per step, and nothing given that no group reads.
fn group_inputs(net: &Network, run: &NetworkRun) -> Result<Vec<Vec<Vec<f64>>>> {
    let fail = |m: String| SimError::Config(format!("network run: {m}"));
    for (g, name, values) in &run.inputs {
        let Some(group) = net.groups.iter().find(|x| x.name == *g) else {
            return Err(fail(format!(
                "input `{name}` is given for `{g}`: no such group"
            )));
        };
        if !group.model.inputs().iter().any(|v| v.name == *name) {
            return Err(fail(format!("`{g}` has no input `{name}`")));
        }
        if run
            .inputs
            .iter()
            .filter(|(h, n, _)| h == g && n == name)
            .count()
            > 1
        {
            return Err(fail(format!("input `{name}` of `{g}` is given twice")));
        }
        if values.len() != run.n_steps || values.iter().any(|v| !v.is_finite()) {
            return Err(fail(format!(
                "input `{name}` of `{g}`: {} finite values needed (one per step), got {}",
                run.n_steps,
                values.len()
            )));
        }
    }
    net.groups
        .iter()
        .map(|group| {
            group
                .model
                .inputs()
                .iter()
                .map(|v| {
                    match run
                        .inputs
                        .iter()
                        .find(|(g, n, _)| *g == group.name && *n == v.name)
                    {
                        Some((_, _, values)) => Ok(values.clone()),
                        None => Err(fail(format!(
                            "no values for input `{}` of `{}`",
                            v.name, group.name
                        ))),
                    }
                })
                .collect()
        })
        .collect()
}

/// Block `bi`'s threshold on its new state, where not refractory: its spikes recorded,
/// its neurons made refractory (at once, as Brian's thresholder does).
#[inline(always)]
fn threshold(
    k: &CompiledKernel,
    b: &mut Block,
    bi: usize,
    n: usize,
    spikes: &mut [Vec<f64>],
    step: usize,
    t: f64,
) {
    let layout = k.layout();
    b.fired = false;
    if !k.threshold_width(&mut b.frame, &mut b.mask, LANES) {
        return;
    }
    // Branch-free over the lanes (vectorised); spikes are rare, so the lanes are visited
    // one by one only when some neuron of the block spiked.
    let mut any = false;
    for l in 0..LANES {
        let spike = (b.mask[l] != 0.0) & (b.not_ref[l] != 0.0);
        b.mask[l] = f64::from(u8::from(spike));
        any |= spike;
    }
    if !any {
        return;
    }
    let refractory = k.refractory() != RefractoryKind::None;
    for l in 0..LANES {
        if b.mask[l] == 0.0 {
            continue;
        }
        if bi * LANES + l >= n {
            // Lanes past the group repeat its last neuron.
            b.mask[l] = 0.0;
            continue;
        }
        b.fired = true;
        spikes[bi * LANES + l].push(t);
        b.last[l] = step as i64;
        if layout.lastspike {
            b.frame[layout.lastspike()][l] = t;
        }
        if refractory {
            b.not_ref[l] = 0.0;
            b.frame[layout.not_refractory()][l] = 0.0;
        }
    }
}

/// Per group and block: the register file and the spike-source state.
struct Block {
    frame: Vec<Lanes>,
    last: [i64; LANES],
    ref_steps: [i64; LANES],
    not_ref: Lanes,
    mask: Lanes,
    fired: bool,
    /// White noise and `rand()` / `randn()` streams of the block's neurons.
    normals: Option<LaneNormals>,
    draws: Option<LaneDraws>,
}

/// A delayed increment: target group, neuron, state variable, value, and whether it is
/// dropped while the neuron is refractory.
type Delivery = (u32, u32, u32, f64, bool);

struct Runner {
    kernels: Vec<CompiledKernel>,
    blocks: Vec<Vec<Block>>,
    /// Spike times per group and neuron.
    spikes: Vec<Vec<Vec<f64>>>,
    /// Delayed increments, by the step they are due (modulo the ring's length).
    queue: Vec<Vec<Delivery>>,
    /// Delay in steps per pathway and synapse.
    delay_steps: Vec<Vec<u32>>,
    traces: Vec<Vec<f64>>,
    failed: Option<(String, usize, usize)>,
    /// Per group, each model input's values per step (in the model's input order).
    inputs: Vec<Vec<Vec<f64>>>,
}

impl Runner {
    fn new(net: &Network, run: &NetworkRun) -> Result<Self> {
        let inputs = group_inputs(net, run)?;
        let per_neuron = neuron_parameters(net, run)?;
        let mut kernels = Vec::new();
        let mut blocks = Vec::new();
        let mut first = 0;
        for ((g, inputs), per_neuron) in net.groups.iter().zip(&inputs).zip(&per_neuron) {
            let names: Vec<String> = run
                .record
                .iter()
                .filter(|(gr, _, _)| *gr == g.name)
                .map(|(_, v, _)| v.clone())
                .collect();
            let k = CompiledKernel::new(&g.model, run.dt, &names)?;
            let layout = k.layout();
            let mut bs = Vec::new();
            for b in 0..g.n.div_ceil(LANES) {
                let mut frame = vec![[0.0; LANES]; k.n_regs()];
                for (p, v) in g.params.iter().enumerate() {
                    frame[layout.param(p)] = match per_neuron[p] {
                        // Lanes past the group repeat its last neuron.
                        Some(vals) => std::array::from_fn(|l| vals[(b * LANES + l).min(g.n - 1)]),
                        None => [*v; LANES],
                    };
                }
                for (l, i) in frame[layout.index()].iter_mut().enumerate() {
                    *i = (b * LANES + l).min(g.n - 1) as f64;
                }
                let valid = LANES.min(g.n - b * LANES);
                let streams = |salt: u64| -> Vec<_> {
                    let at = (first + b * LANES) as u64;
                    (0..valid as u64)
                        .map(|l| neuron_stream(run.seed, salt, at + l))
                        .collect()
                };
                let normals = (layout.n_noise > 0).then(|| LaneNormals::new(streams(0)));
                let rand_normal = k.rand_normal();
                let mut draws = (!rand_normal.is_empty())
                    .then(|| LaneDraws::new(streams(RAND_SALT), rand_normal));
                if let Some(d) = draws.as_mut() {
                    d.fill(
                        &mut frame[layout.rand(0)..layout.rand(layout.n_rand)],
                        LANES,
                    );
                }
                // Initial values may read inputs: sample 0, as a Brian TimedArray at t = 0.
                for (i, values) in inputs.iter().enumerate() {
                    if let Some(v) = values.first() {
                        frame[layout.input(i, false)] = [*v; LANES];
                    }
                }
                k.init(&mut frame);
                let mut ref_steps = [0i64; LANES];
                if k.refractory() == RefractoryKind::Duration {
                    let mut tmp = [0.0; LANES];
                    k.refractory_duration(&mut frame, &mut tmp);
                    for l in 0..LANES {
                        ref_steps[l] = timestep(tmp[l], run.dt) as i64;
                    }
                }
                if layout.lastspike {
                    frame[layout.lastspike()] = [NEVER; LANES];
                }
                bs.push(Block {
                    frame,
                    last: [i64::MIN / 2; LANES],
                    ref_steps,
                    not_ref: [1.0; LANES],
                    mask: [0.0; LANES],
                    fired: false,
                    normals,
                    draws,
                });
            }
            kernels.push(k);
            blocks.push(bs);
            first += g.n;
        }
        let mut me = Runner {
            spikes: net.groups.iter().map(|g| vec![Vec::new(); g.n]).collect(),
            kernels,
            blocks,
            queue: Vec::new(),
            delay_steps: Vec::new(),
            traces: Vec::new(),
            failed: None,
            inputs,
        };
        me.set_initial(net, run)?;
        me.delay_steps = net
            .pathways
            .iter()
            .map(|p| {
                p.delay
                    .iter()
                    .map(|d| (d / run.dt + 0.5).floor() as u32)
                    .collect()
            })
            .collect();
        let depth = me.delay_steps.iter().flatten().max().copied().unwrap_or(0);
        me.queue = vec![Vec::new(); depth as usize + 1];
        for (g, var, neurons) in &run.record {
            let gi = net
                .groups
                .iter()
                .position(|x| x.name == *g)
                .ok_or_else(|| {
                    SimError::Config(format!("cannot record `{var}` of `{g}`: no such group"))
                })?;
            if let Some(k) = neurons.iter().find(|&&k| k >= net.groups[gi].n) {
                return Err(SimError::Config(format!(
                    "cannot record neuron {k} of `{g}`: it has {}",
                    net.groups[gi].n
                )));
            }
            for _ in neurons {
                me.traces
                    .push(Vec::with_capacity(run.n_steps / run.record_every + 1));
            }
        }
        Ok(me)
    }

    /// Initial values given per neuron.
    fn set_initial(&mut self, net: &Network, run: &NetworkRun) -> Result<()> {
        for (g, var, values) in &run.initial {
            let gi = net.groups.iter().position(|x| x.name == *g);
            let j = gi.and_then(|gi| {
                net.groups[gi]
                    .model
                    .state_vars()
                    .iter()
                    .position(|v| v.name == *var)
            });
            let (Some(gi), Some(j)) = (gi, j) else {
                return Err(SimError::Config(format!(
                    "initial values: `{g}` has no state variable `{var}`"
                )));
            };
            if values.len() != net.groups[gi].n || values.iter().any(|v| !v.is_finite()) {
                return Err(SimError::Config(format!(
                    "initial values of `{var}` in `{g}`: {} finite values needed, got {}",
                    net.groups[gi].n,
                    values.len()
                )));
            }
            for (k, v) in values.iter().enumerate() {
                self.blocks[gi][k / LANES].frame[j][k % LANES] = *v;
            }
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn run_avx512(&mut self, net: &Network, run: &NetworkRun) {
        self.run_generic(net, run);
    }

    #[inline(always)]
    fn run_generic(&mut self, net: &Network, run: &NetworkRun) {
        let dt = run.dt;
        let sqrt_dt = dt.sqrt();
        for step in 0..run.n_steps {
            let t = step as f64 * dt;
            if step % run.record_every == 0 {
                self.record(net, run);
            }
            // Each block is advanced and tested against its threshold while its registers
            // are in cache (a neuron's threshold reads only its own new state).
            for (g, k) in self.kernels.iter().enumerate() {
                let layout = k.layout();
                let kind = k.refractory();
                let n = net.groups[g].n;
                let inputs = &self.inputs[g];
                let nxt = (step + 1).min(run.n_steps - 1);
                for (bi, b) in self.blocks[g].iter_mut().enumerate() {
                    b.frame[layout.time()] = [t; LANES];
                    for (i, values) in inputs.iter().enumerate() {
                        b.frame[layout.input(i, false)] = [values[step]; LANES];
                        b.frame[layout.input(i, true)] = [values[nxt]; LANES];
                    }
                    // This step's draws, before the refractory program, which may read them.
                    if let Some(d) = b.draws.as_mut() {
                        d.fill(
                            &mut b.frame[layout.rand(0)..layout.rand(layout.n_rand)],
                            LANES,
                        );
                    }
                    let mut tmp = [0.0; LANES];
                    match kind {
                        RefractoryKind::DurationEachStep => {
                            k.refractory_duration(&mut b.frame, &mut tmp)
                        }
                        RefractoryKind::Condition => {
                            k.refractory_condition_width(&mut b.frame, &mut tmp, LANES)
                        }
                        RefractoryKind::None | RefractoryKind::Duration => {}
                    }
                    let (last, steps, nr) = (&b.last, &mut b.ref_steps, &mut b.not_ref);
                    not_refractory_now(kind, step, dt, last, steps, &tmp, nr, LANES);
                    b.frame[layout.not_refractory()] = b.not_ref;
                    if let Some(g) = b.normals.as_mut() {
                        for kk in 0..layout.n_noise {
                            g.fill(sqrt_dt, &mut b.frame[layout.noise(kk)], LANES);
                        }
                    }
                    k.step_width(&mut b.frame, LANES);
                    threshold(k, b, bi, n, &mut self.spikes[g], step, t);
                }
            }
            self.deliver(net, step);
            for (g, k) in self.kernels.iter().enumerate() {
                for b in self.blocks[g].iter_mut().filter(|b| b.fired) {
                    k.reset(&mut b.frame, &b.mask);
                }
            }
            if (step + 1) % 32 == 0 || step + 1 == run.n_steps {
                self.check_finite(net, step);
            }
        }
    }

    /// Brian's `synapses` slot: each pathway's spikes of this step (zero delay) and the
    /// delayed ones now due.
    #[inline(always)]
    fn deliver(&mut self, net: &Network, step: usize) {
        let ring = self.queue.len();
        for (p, pw) in net.pathways.iter().enumerate() {
            let (src, tgt) = (pw.source, pw.target);
            let layout = self.kernels[tgt].layout();
            for bi in 0..self.blocks[src].len() {
                if !self.blocks[src][bi].fired {
                    continue;
                }
                let mask = self.blocks[src][bi].mask;
                for l in (0..LANES).filter(|&l| mask[l] != 0.0) {
                    let i = bi * LANES + l;
                    for s in pw.start[i]..pw.start[i + 1] {
                        let j = pw.post[s] as usize;
                        let d = self.delay_steps[p][s] as usize;
                        for e in &pw.effects {
                            if d == 0 {
                                let b = &mut self.blocks[tgt][j / LANES];
                                let lane = j % LANES;
                                if !e.conditional || b.frame[layout.not_refractory()][lane] != 0.0 {
                                    b.frame[layout.state(e.state)][lane] += e.values[s];
                                }
                            } else {
                                self.queue[(step + d) % ring].push((
                                    tgt as u32,
                                    j as u32,
                                    e.state as u32,
                                    e.values[s],
                                    e.conditional,
                                ));
                            }
                        }
                    }
                }
            }
        }
        let due = std::mem::take(&mut self.queue[step % ring]);
        for &(g, j, state, v, conditional) in &due {
            let layout = self.kernels[g as usize].layout();
            let b = &mut self.blocks[g as usize][j as usize / LANES];
            let lane = j as usize % LANES;
            if !conditional || b.frame[layout.not_refractory()][lane] != 0.0 {
                b.frame[layout.state(state as usize)][lane] += v;
            }
        }
        self.queue[step % ring] = due;
        self.queue[step % ring].clear();
    }

    fn record(&mut self, net: &Network, run: &NetworkRun) {
        let mut r = 0;
        let mut k_of_group = vec![0usize; net.groups.len()];
        for (g, _, neurons) in &run.record {
            let gi = net
                .groups
                .iter()
                .position(|x| x.name == *g)
                .expect("checked");
            let k = k_of_group[gi];
            k_of_group[gi] += 1;
            for &n in neurons {
                let mut out = [0.0; LANES];
                let b = &mut self.blocks[gi][n / LANES];
                self.kernels[gi].record(&mut b.frame, k, &mut out);
                self.traces[r].push(out[n % LANES]);
                r += 1;
            }
        }
    }

    fn check_finite(&mut self, net: &Network, step: usize) {
        if self.failed.is_some() {
            return;
        }
        for (g, k) in self.kernels.iter().enumerate() {
            for (bi, b) in self.blocks[g].iter().enumerate() {
                for j in 0..k.layout().n_states {
                    for l in 0..LANES.min(net.groups[g].n - bi * LANES) {
                        if !b.frame[j][l].is_finite() {
                            self.failed = Some((k.state_names()[j].clone(), bi * LANES + l, step));
                            return;
                        }
                    }
                }
            }
        }
    }

    fn finish(self, net: &Network, run: &NetworkRun) -> Result<NetworkResult> {
        if let Some((var, k, step)) = self.failed {
            return Err(SimError::Config(format!(
                "network run: `{var}` of neuron {k} stopped being finite by step {step}"
            )));
        }
        let mut traces = Vec::new();
        let mut it = self.traces.into_iter();
        for (g, var, neurons) in &run.record {
            for &n in neurons {
                traces.push((
                    g.clone(),
                    var.clone(),
                    n,
                    it.next().expect("one per neuron"),
                ));
            }
        }
        Ok(NetworkResult {
            spikes: net
                .groups
                .iter()
                .map(|g| g.name.clone())
                .zip(self.spikes)
                .collect(),
            traces,
        })
    }
}
