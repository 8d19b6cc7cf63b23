//! Building a [`Model`] from its description: declaring the names, lowering every
//! expression in the model's scope, and choosing the integration method.
//!
//! The stages run in a fixed order because lowering fills the scope as it goes (the
//! noise sources, the lowered subexpressions) and because the first error met is the one
//! reported.

use super::{Method, Model, ModelDescription, Refractory, Var};
use crate::check::{Context, Scope, SubexprEntry, Symbol};
use crate::equations::{AssignOp, EquationKind, EquationSet, Statement, parse_statements};
use crate::error::{Result, SimError};
use crate::ir::{self, Ex, Slot};
use crate::syntax::{Expr, ExprKind, MAX_DEPTH, Source, parse_expr};
use crate::units::Dimension;

const SECOND: Dimension = Dimension::new(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0);

impl Model {
    /// Parses and checks a model description.
    pub fn new(desc: &ModelDescription) -> Result<Model> {
        let eqs = EquationSet::parse("equations", &desc.equations)?;
        let mut scope = constants_scope(desc)?;
        refuse_synapse_flags(desc, &eqs)?;
        let (states, params) = declare_equations(desc, &eqs, &mut scope)?;
        let inputs = declare_inputs(desc, &mut scope)?;
        declare_sources(desc, &mut scope)?;
        let rhs = lower_equations(&eqs, &mut scope)?;
        let pre_step = lower_constant_over_dt(&eqs, &states, &mut scope)?;
        lower_subexpressions(&eqs.source, &mut scope)?;
        let (drift, diffusion) = split_noise(&rhs, &scope.noise)?;
        refuse_rand_in_equations(&drift, &diffusion, &states)?;
        let linear = linear_split(&drift, &states);
        let exact = crate::exact::linear_system(&drift, &states);
        let threshold = lower_threshold("threshold", desc.threshold.as_deref(), &mut scope)?;
        let reset = lower_statements("reset", desc.reset.as_deref(), &states, &params, &mut scope)?;
        let refractory = lower_refractory("refractory", desc.refractory.as_deref(), &mut scope)?;
        let (events, pathways) = lower_events(desc, &states, &params, &mut scope)?;
        let refractory_source = refractory_sources(desc, &states)?;
        let initial = lower_initial(desc, &states, &mut scope)?;
        let subexprs = lowered_subexprs(&scope);
        let method = choose_method(desc, &diffusion, &scope.noise, &linear, &exact)?;
        let phases = schedule(desc, &states, &pre_step, &drift, &linear, &diffusion)?;
        let model = Model {
            states,
            params,
            inputs,
            noise: scope.noise,
            rand: scope.rand,
            drift,
            diffusion,
            linear,
            exact,
            threshold,
            reset,
            refractory,
            events,
            pathways,
            refractory_source,
            initial,
            subexprs,
            method,
            pre_step,
            phases,
            equations: eqs,
            description: desc.clone(),
        };
        // Lowering and the reset check bound every tree they build, and the linear split
        // never deepens a tree, so the compiler's recursion over these is bounded too.
        debug_assert!(model.expressions().all(|e| e.depth() <= MAX_DEPTH));
        Ok(model)
    }
}

/// A scope holding the description's constants.
fn constants_scope(desc: &ModelDescription) -> Result<Scope> {
    let mut scope = Scope::new();
    for (name, q) in &desc.constants {
        if crate::equations::is_reserved(name) {
            return Err(SimError::Model(format!(
                "constant `{name}` would hide a built-in name; rename it"
            )));
        }
        scope.symbols.insert(name.clone(), Symbol::Const(*q));
    }
    Ok(scope)
}

/// Adds the names the equations declare to `scope`; returns the state variables and the
/// parameters, in the order written.
fn declare_equations(
    desc: &ModelDescription,
    eqs: &EquationSet,
    scope: &mut Scope,
) -> Result<(Vec<Var>, Vec<Var>)> {
    let (mut states, mut params) = (Vec::new(), Vec::new());
    for eq in &eqs.equations {
        let var = Var {
            name: eq.name.clone(),
            dim: eq.dim,
            unless_refractory: eq.flags.unless_refractory,
        };
        if desc.constants.iter().any(|(n, _)| *n == eq.name) {
            return Err(SimError::syntax(
                eqs.source.locate(eq.offset),
                format!(
                    "`{}` is declared in the equations and also given as a constant",
                    eq.name
                ),
            ));
        }
        let sym = match eq.kind {
            // Held over the step like a state whose derivative is zero, and assigned at
            // the step's start (see `lower_constant_over_dt`).
            _ if is_state(eq) => {
                states.push(var);
                Symbol::Slot(Slot::State(states.len() - 1), eq.dim)
            }
            EquationKind::Parameter => {
                params.push(var);
                Symbol::Slot(Slot::Param(params.len() - 1), eq.dim)
            }
            EquationKind::Subexpression | EquationKind::Differential => {
                scope.subexprs.push(SubexprEntry {
                    name: eq.name.clone(),
                    expr: eq
                        .expr
                        .clone()
                        .expect("subexpressions have a right-hand side"),
                    dim: eq.dim,
                    lowered: None,
                    depth: 0,
                    in_progress: false,
                });
                Symbol::Subexpr(scope.subexprs.len() - 1)
            }
        };
        scope.symbols.insert(eq.name.clone(), sym);
    }
    Ok((states, params))
}

/// Adds the description's inputs to `scope`, which must not know their names yet.
fn declare_inputs(desc: &ModelDescription, scope: &mut Scope) -> Result<Vec<Var>> {
    let mut inputs = Vec::new();
    for (name, dim) in &desc.inputs {
        if scope.symbols.contains_key(name) {
            return Err(SimError::Model(format!(
                "input `{name}` is also declared in the equations or as a constant"
            )));
        }
        inputs.push(Var {
            name: name.clone(),
            dim: *dim,
            unless_refractory: false,
        });
        scope.symbols.insert(
            name.clone(),
            Symbol::Slot(Slot::Input(inputs.len() - 1), *dim),
        );
    }
    Ok(inputs)
}

/// The right-hand sides of the differential equations, noise still in them, each with
/// the name of its state variable.
fn lower_equations(eqs: &EquationSet, scope: &mut Scope) -> Result<Vec<(Ex, String)>> {
    let src = &eqs.source;
    let mut rhs = Vec::new();
    for eq in eqs.equations.iter().filter(|e| is_state(e)) {
        if eq.kind == EquationKind::Subexpression {
            rhs.push((Ex::Num(0.0), eq.name.clone()));
            continue;
        }
        let e = eq
            .expr
            .as_ref()
            .expect("differential equations have a right-hand side");
        let (x, d) = scope.lower(src, e, Context::Differential)?;
        let want = eq.dim.div(&SECOND);
        if d != want {
            return Err(SimError::Dimension {
                at: src.locate(e.offset),
                context: format!("d{}/dt: right-hand side vs declared unit / second", eq.name),
                left: d,
                right: want,
            });
        }
        rhs.push((x, eq.name.clone()));
    }
    Ok(rhs)
}

/// Whether an equation declares a state variable: a differential equation, or a
/// subexpression held over each step.
fn is_state(eq: &crate::equations::Equation) -> bool {
    eq.kind == EquationKind::Differential || eq.flags.constant_over_dt
}

/// The `(constant over dt)` subexpressions: each is a state with zero derivative, assigned
/// its expression of the state at the start of every step (before integration), as Brian
/// evaluates such subexpressions once per step.
fn lower_constant_over_dt(
    eqs: &EquationSet,
    states: &[Var],
    scope: &mut Scope,
) -> Result<Vec<(usize, Ex)>> {
    let src = &eqs.source;
    let mut out = Vec::new();
    for eq in eqs.equations.iter().filter(|e| e.flags.constant_over_dt) {
        let e = eq
            .expr
            .as_ref()
            .expect("subexpressions have a right-hand side");
        let (x, d) = scope.lower(src, e, Context::Plain)?;
        if d != eq.dim {
            return Err(SimError::Dimension {
                at: src.locate(e.offset),
                context: format!("`{}`: right-hand side vs declared unit", eq.name),
                left: d,
                right: eq.dim,
            });
        }
        let j = states
            .iter()
            .position(|s| s.name == eq.name)
            .expect("declared as a state");
        out.push((j, x));
    }
    Ok(out)
}

/// Synaptic flags belong to synapse equations; a neuron group's equations refuse them.
fn refuse_synapse_flags(desc: &ModelDescription, eqs: &EquationSet) -> Result<()> {
    for eq in &eqs.equations {
        let f = eq.flags;
        let flag = if f.event_driven {
            "event-driven"
        } else if desc.synapse {
            continue;
        } else if f.clock_driven {
            "clock-driven"
        } else if f.summed {
            "summed"
        } else {
            continue;
        };
        let why = if desc.synapse {
            "event-driven synaptic variables are not supported yet: write the variable as \
             clock-driven (integrated every step), or update it in `on_pre`"
                .to_string()
        } else {
            "it belongs to synapse equations (a `[synapses.NAME]` table of a circuit model \
             file), not to a neuron group"
                .to_string()
        };
        return Err(SimError::syntax(
            eqs.source.locate(eq.offset),
            format!("`{}` is flagged `({flag})`: {why}", eq.name),
        ));
    }
    Ok(())
}

/// The integration phases: one per object of a circuit, in Brian's order (the
/// description's `schedule`), each with its method (its own, else the circuit's, else the
/// one Brian picks for that object's equations alone), or none for a single group (all
/// states at once with the model's method).
fn schedule(
    desc: &ModelDescription,
    states: &[Var],
    pre_step: &[(usize, Ex)],
    drift: &[Ex],
    linear: &[Result<(Ex, Ex)>],
    diffusion: &[Vec<Ex>],
) -> Result<Vec<(Vec<usize>, Method)>> {
    if desc.schedule.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = vec![false; states.len()];
    for (j, _) in pre_step {
        seen[*j] = true;
    }
    let mut phases = Vec::new();
    for phase in &desc.schedule {
        let mut idx = Vec::new();
        for name in &phase.states {
            let j = states.iter().position(|s| &s.name == name).ok_or_else(|| {
                SimError::Model(format!("schedule: `{name}` is not a state variable"))
            })?;
            if std::mem::replace(&mut seen[j], true) {
                return Err(SimError::Model(format!(
                    "schedule: `{name}` is integrated twice or is held over the step"
                )));
            }
            idx.push(j);
        }
        let named = phase.method.as_deref().or(desc.method.as_deref());
        let m = phase_method(named, &idx, states, drift, linear, diffusion)?;
        phases.push((idx, m));
    }
    if let Some(j) = seen.iter().position(|s| !s) {
        return Err(SimError::Model(format!(
            "schedule: state `{}` is in no phase",
            states[j].name
        )));
    }
    Ok(phases)
}

/// The method of one phase (named, else Brian's default for its equations alone), checked
/// against its states' noise and linearity.
fn phase_method(
    named: Option<&str>,
    idx: &[usize],
    states: &[Var],
    drift: &[Ex],
    linear: &[Result<(Ex, Ex)>],
    diffusion: &[Vec<Ex>],
) -> Result<Method> {
    let exact = || crate::exact::linear_system_of(drift, states, idx);
    let mut m = match named {
        Some(name) => Method::parse(name)?,
        None => {
            let own: Vec<Vec<Ex>> = idx.iter().map(|&j| diffusion[j].clone()).collect();
            default_method(&own, &exact())
        }
    };
    if m == Method::Exact
        && let Err(why) = exact()
    {
        return Err(super::exact_refused(&format!(
            "{why} (the object integrating `{}`)",
            states[idx[0]].name
        )));
    }
    let noisy = idx.iter().any(|&j| !diffusion[j].is_empty());
    if noisy && !m.supports_noise() {
        return Err(SimError::Model(format!(
            "method {m} cannot integrate the stochastic equation of `{}`",
            states[idx[0]].name
        )));
    }
    if m == Method::Euler && noisy {
        m = Method::EulerMaruyama;
    }
    if m == Method::ExponentialEuler
        && let Some(e) = idx.iter().find_map(|&j| linear[j].as_ref().err())
    {
        return Err(e.clone());
    }
    Ok(m)
}

/// Lowers every subexpression, used or not, so errors in unused ones surface too.
fn lower_subexpressions(src: &Source, scope: &mut Scope) -> Result<()> {
    for k in 0..scope.subexprs.len() {
        let ex = Expr {
            kind: ExprKind::Name(scope.subexprs[k].name.clone()),
            offset: scope.subexprs[k].expr.offset,
        };
        scope.lower(src, &ex, Context::Plain)?;
    }
    Ok(())
}

/// Splits each right-hand side into its drift and its coefficients of the `noise`
/// sources, which must enter additively.
fn split_noise(rhs: &[(Ex, String)], noise: &[String]) -> Result<(Vec<Ex>, Vec<Vec<Ex>>)> {
    let mut drift = Vec::new();
    let mut diffusion = Vec::new();
    for (x, name) in rhs {
        let mut rest = x.clone();
        let mut g = Vec::new();
        for (k, xi) in noise.iter().enumerate() {
            let (gk, r) = rest.linear_in(Slot::Noise(k)).map_err(|why| {
                SimError::Model(format!(
                    "the noise `{xi}` must enter d{name}/dt linearly (as `g*{xi}`), but {why}"
                ))
            })?;
            if gk.depends_on(Slot::Noise(k)) || r.depends_on(Slot::Noise(k)) {
                return Err(SimError::Model(format!(
                    "the noise `{xi}` must enter d{name}/dt as an additive term `g*{xi}` (not inside a function, a denominator, a power or a comparison)"
                )));
            }
            g.push(gk);
            rest = r;
        }
        drift.push(rest);
        diffusion.push(g);
    }
    Ok((drift, diffusion))
}

/// Brian evaluates `rand()` once per call, which an integrator's stages cannot honour; a
/// subexpression that draws may feed thresholds, resets and recordings, not equations.
fn refuse_rand_in_equations(drift: &[Ex], diffusion: &[Vec<Ex>], states: &[Var]) -> Result<()> {
    for (j, f) in drift.iter().enumerate() {
        let mut random = false;
        f.visit(&mut |e| random |= matches!(e, Ex::Slot(Slot::Rand(_))));
        diffusion[j]
            .iter()
            .for_each(|g| g.visit(&mut |e| random |= matches!(e, Ex::Slot(Slot::Rand(_)))));
        if random {
            return Err(SimError::Model(format!(
                "d{}/dt reads `rand()` or `randn()` through a subexpression; flag that subexpression `(constant over dt)` (one draw per step, as Brian requires), or write white noise as `xi`",
                states[j].name
            )));
        }
    }
    Ok(())
}

/// `dx_j/dt = A_j x_j + B_j` for every state, or why not: only exponential Euler needs
/// it, so failing here is not yet an error.
fn linear_split(drift: &[Ex], states: &[Var]) -> Vec<Result<(Ex, Ex)>> {
    drift
        .iter()
        .enumerate()
        .map(|(j, f)| {
            f.linear_in(Slot::State(j))
                .map_err(|reason| SimError::NotLinear {
                    variable: states[j].name.clone(),
                    reason,
                })
        })
        .collect()
}

/// Every subexpression with its lowered form and dimension, for recording.
fn lowered_subexprs(scope: &Scope) -> Vec<(String, Ex, Dimension)> {
    scope
        .subexprs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.lowered.clone().unwrap_or(Ex::Num(f64::NAN)),
                s.dim,
            )
        })
        .collect()
}

/// Parses and lowers a per-neuron expression given outside the equations.
fn lower_plain(scope: &mut Scope, origin: &str, text: &str) -> Result<(Ex, Dimension)> {
    let s = Source::new(origin, text);
    let e = parse_expr(origin, text)?;
    scope.lower(&s, &e, Context::Plain)
}

/// A description's optional text, absent when blank.
fn non_blank(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// The names of a circuit's spike sources: `not_refractory_NAME` and `lastspike_NAME`.
fn declare_sources(desc: &ModelDescription, scope: &mut Scope) -> Result<()> {
    if !desc.events.is_empty()
        && [&desc.threshold, &desc.reset, &desc.refractory]
            .iter()
            .any(|t| non_blank(t.as_deref()).is_some())
    {
        return Err(SimError::Model(
            "a model with event sources (a circuit) has no threshold, reset or refractory \
             period of its own: give them to its sources"
                .into(),
        ));
    }
    for (k, e) in desc.events.iter().enumerate() {
        for (var, slot, dim) in [
            (
                "not_refractory",
                Slot::NotRefractory(k + 1),
                Dimension::DIMENSIONLESS,
            ),
            ("lastspike", Slot::LastSpike(k + 1), SECOND),
        ] {
            let name = format!("{var}_{}", e.name);
            if scope
                .symbols
                .insert(name.clone(), Symbol::Slot(slot, dim))
                .is_some()
            {
                return Err(SimError::Model(format!(
                    "`{name}` is both declared and the variable of spike source `{}`",
                    e.name
                )));
            }
        }
    }
    Ok(())
}

/// A circuit's spike sources and the statements their spikes trigger.
fn lower_events(
    desc: &ModelDescription,
    states: &[Var],
    params: &[Var],
    scope: &mut Scope,
) -> Result<(Vec<super::Source>, Vec<super::Pathway>)> {
    let mut events = Vec::new();
    for e in &desc.events {
        let at = |what: &str| format!("{what} of `{}`", e.name);
        let threshold =
            lower_threshold(&at("threshold"), Some(&e.threshold), scope)?.ok_or_else(|| {
                SimError::Model(format!("spike source `{}` has no threshold", e.name))
            })?;
        let reset = lower_statements(&at("reset"), e.reset.as_deref(), states, params, scope)?;
        let refractory = lower_refractory(&at("refractory"), e.refractory.as_deref(), scope)?;
        events.push(super::Source {
            threshold,
            reset,
            refractory,
        });
    }
    let mut pathways = Vec::new();
    for p in &desc.pathways {
        let source = desc
            .events
            .iter()
            .position(|e| e.name == p.source)
            .ok_or_else(|| {
                SimError::Model(format!(
                    "{}: spike source `{}` does not exist (a threshold is needed)",
                    p.origin, p.source
                ))
            })?;
        if !(p.delay >= 0.0 && p.delay.is_finite()) {
            return Err(SimError::Model(format!(
                "{}: the delay must be a finite duration >= 0, got {} s",
                p.origin, p.delay
            )));
        }
        let effects = lower_statements(&p.origin, Some(&p.statements), states, params, scope)?;
        pathways.push(super::Pathway {
            source: source + 1,
            delay: p.delay,
            effects,
        });
    }
    Ok((events, pathways))
}

/// Per state, the spike source whose refractoriness freezes it (0: the model's own).
fn refractory_sources(desc: &ModelDescription, states: &[Var]) -> Result<Vec<usize>> {
    let mut out = vec![0; states.len()];
    for (k, e) in desc.events.iter().enumerate() {
        for name in &e.frozen {
            let j = states
                .iter()
                .position(|v| v.name == *name && v.unless_refractory)
                .ok_or_else(|| {
                    SimError::Model(format!(
                        "spike source `{}` freezes `{name}`, which is not an `(unless \
                         refractory)` state variable",
                        e.name
                    ))
                })?;
            out[j] = k + 1;
        }
    }
    Ok(out)
}

/// The threshold condition, if any.
fn lower_threshold(origin: &str, text: Option<&str>, scope: &mut Scope) -> Result<Option<Ex>> {
    let Some(t) = non_blank(text) else {
        return Ok(None);
    };
    let (x, d) = lower_plain(scope, origin, t)?;
    if !d.is_dimensionless() {
        return Err(SimError::Dimension {
            at: Source::new(origin, t).locate(0),
            context: "the threshold must be a condition (e.g. `v > -20*mV`)".into(),
            left: d,
            right: Dimension::DIMENSIONLESS,
        });
    }
    Ok(Some(x))
}

/// Statements (a reset, a synaptic pathway) folded into one new value per state variable
/// they change.
fn lower_statements(
    origin: &str,
    text: Option<&str>,
    states: &[Var],
    params: &[Var],
    scope: &mut Scope,
) -> Result<Vec<(Slot, Ex)>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let rsrc = Source::new(origin, text);
    // Statements run in order: later ones see earlier assignments. Targets are state
    // variables, then parameters (Brian lets a reset write a parameter, which then keeps
    // the new value).
    let targets: Vec<(Slot, &Var)> = states
        .iter()
        .enumerate()
        .map(|(j, v)| (Slot::State(j), v))
        .chain(params.iter().enumerate().map(|(k, v)| (Slot::Param(k), v)))
        .collect();
    let mut current: Vec<Option<Ex>> = vec![None; targets.len()];
    for st in parse_statements(&rsrc, text)? {
        let Some(j) = targets.iter().position(|(_, v)| v.name == st.target) else {
            return Err(SimError::UnknownIdentifier {
                name: st.target.clone(),
                at: rsrc.locate(st.offset),
                suggestion: crate::error::closest(
                    &st.target,
                    targets.iter().map(|(_, v)| v.name.as_str()),
                ),
            });
        };
        let (x, d) = scope.lower(&rsrc, &st.expr, Context::Plain)?;
        let x = x.subst(&|s| {
            let k = targets.iter().position(|(t, _)| *t == s)?;
            current[k].clone()
        });
        let (slot, var) = targets[j];
        let old = current[j].clone().unwrap_or(Ex::Slot(slot));
        current[j] = Some(assign(&rsrc, &st, var, old, x, d)?);
    }
    Ok(current
        .into_iter()
        .zip(&targets)
        .filter_map(|(e, (slot, _))| e.map(|e| (*slot, e)))
        .collect())
}

/// The value of `state` after the reset statement `st`, which combines its value so far,
/// `old`, with the lowered right-hand side `x` of dimension `d`.
fn assign(rsrc: &Source, st: &Statement, state: &Var, old: Ex, x: Ex, d: Dimension) -> Result<Ex> {
    let dim_ok = match st.op {
        AssignOp::Set | AssignOp::Add | AssignOp::Sub => d == state.dim,
        AssignOp::Mul | AssignOp::Div => d.is_dimensionless(),
    };
    if !dim_ok {
        return Err(SimError::Dimension {
            at: rsrc.locate(st.expr.offset),
            context: format!("reset of `{}`", st.target),
            left: d,
            right: if matches!(st.op, AssignOp::Mul | AssignOp::Div) {
                Dimension::DIMENSIONLESS
            } else {
                state.dim
            },
        });
    }
    let new = match st.op {
        AssignOp::Set => x,
        AssignOp::Add => ir::add(old, x),
        AssignOp::Sub => ir::sub(old, x),
        AssignOp::Mul => ir::mul(old, x),
        AssignOp::Div => ir::div(old, x),
    };
    // Statements compose (`v += 1` repeated nests `v`), so their depth adds up.
    let depth = new.depth();
    if depth > MAX_DEPTH {
        return Err(SimError::syntax(
            rsrc.locate(st.offset),
            format!(
                "reset nested too deeply: `{}` after this statement has depth {depth}, which exceeds the limit of {MAX_DEPTH}",
                st.target
            ),
        ));
    }
    Ok(new)
}

/// The refractory period: a duration (fixed per neuron, or read from state variables,
/// `lastspike` or `t` at every step, as Brian does), or a condition.
fn lower_refractory(origin: &str, text: Option<&str>, scope: &mut Scope) -> Result<Refractory> {
    let Some(t) = non_blank(text) else {
        return Ok(Refractory::None);
    };
    let (x, d) = lower_plain(scope, origin, t)?;
    if d == SECOND {
        // A negative duration never makes a neuron refractory, as in Brian.
        if matches!(x, Ex::Num(v) if !v.is_finite()) {
            return Err(SimError::Model(format!(
                "refractory `{t}` must be a finite duration or a condition"
            )));
        }
        Ok(Refractory::Duration(x))
    } else if d.is_dimensionless() {
        Ok(Refractory::Condition(x))
    } else {
        Err(SimError::Dimension {
            at: Source::new(origin, t).locate(0),
            context: "refractory must be a duration or a condition".into(),
            left: d,
            right: SECOND,
        })
    }
}

/// The initial value of every state variable: as given, else zero. As in Brian, the
/// assignments run in sequence and a value may read state variables (directly or through
/// subexpressions): it sees the latest earlier assignment of each (`v = 0*mV`, then
/// `m = f(v)` reads 0 mV even if `v = 25*mV` follows). A variable with no earlier
/// assignment is read at its first later one (dependency order, so a value may be written
/// before the values it reads), or as zero if it is never assigned or is the variable being
/// assigned; `t` is 0 and inputs read their first sample (a TimedArray at `t = 0`).
fn lower_initial(desc: &ModelDescription, states: &[Var], scope: &mut Scope) -> Result<Vec<Ex>> {
    let mut given: Vec<Assignment> = Vec::new();
    for (var, text) in &desc.initial {
        let origin = format!("initial value of `{var}`");
        let Some(j) = states.iter().position(|s| s.name == *var) else {
            return Err(SimError::Model(format!(
                "initial value given for `{var}`, which is not a state variable (state variables: {})",
                states
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let (x, d) = lower_plain(scope, &origin, text)?;
        if d != states[j].dim {
            return Err(SimError::Dimension {
                at: Source::new(origin.clone(), text).locate(0),
                context: format!("initial value of `{var}` vs its declared unit"),
                left: d,
                right: states[j].dim,
            });
        }
        // Initial values are computed at t = 0.
        let x = x.subst(&|s| match s {
            Slot::Time => Some(Ex::Num(0.0)),
            // Brian's values before any spike.
            Slot::LastSpike(_) => Some(Ex::Num(-1e4)),
            Slot::NotRefractory(_) => Some(Ex::Num(1.0)),
            _ => None,
        });
        given.push(Assignment {
            state: j,
            expr: x,
            origin,
        });
    }
    let mut resolved: Vec<Option<Ex>> = vec![None; given.len()];
    (0..states.len())
        .map(|j| match given.iter().rposition(|a| a.state == j) {
            Some(p) => resolve_initial(p, &given, states, &mut resolved, &mut Vec::new()),
            None => Ok(Ex::Num(0.0)),
        })
        .collect()
}

/// One initial-value assignment, lowered.
struct Assignment {
    state: usize,
    expr: Ex,
    origin: String,
}

/// The value of assignment `p` with the values it reads written in; `visiting` is the
/// chain of assignments being resolved, for the error on a cycle.
fn resolve_initial(
    p: usize,
    given: &[Assignment],
    states: &[Var],
    resolved: &mut [Option<Ex>],
    visiting: &mut Vec<usize>,
) -> Result<Ex> {
    if let Some(e) = &resolved[p] {
        return Ok(e.clone());
    }
    if let Some(at) = visiting.iter().position(|&q| q == p) {
        let chain: Vec<&str> = visiting[at..]
            .iter()
            .chain([&p])
            .map(|&q| states[given[q].state].name.as_str())
            .collect();
        return Err(SimError::Model(format!(
            "initial values depend on each other in a cycle: {}",
            chain.join(" -> ")
        )));
    }
    let a = &given[p];
    visiting.push(p);
    let mut values: Vec<Option<Ex>> = vec![None; states.len()];
    for (k, value) in values.iter_mut().enumerate() {
        if !a.expr.depends_on(Slot::State(k)) {
            continue;
        }
        let earlier = given[..p].iter().rposition(|b| b.state == k);
        let later = (k != a.state)
            .then(|| {
                given[p + 1..]
                    .iter()
                    .position(|b| b.state == k)
                    .map(|q| p + 1 + q)
            })
            .flatten();
        *value = Some(match earlier.or(later) {
            Some(q) => resolve_initial(q, given, states, resolved, visiting)?,
            None => Ex::Num(0.0),
        });
    }
    visiting.pop();
    let e = a.expr.subst(&|s| match s {
        Slot::State(k) => values[k].clone(),
        _ => None,
    });
    if e.depth() > MAX_DEPTH {
        return Err(SimError::Model(format!(
            "{} nests too deeply with the initial values it reads written in (depth {} exceeds {MAX_DEPTH})",
            a.origin,
            e.depth()
        )));
    }
    resolved[p] = Some(e.clone());
    Ok(e)
}

/// The method named in the description, or Brian2's default, checked against the noise
/// and the linear split; `euler` with noise means Euler-Maruyama.
fn choose_method(
    desc: &ModelDescription,
    diffusion: &[Vec<Ex>],
    noise: &[String],
    linear: &[Result<(Ex, Ex)>],
    exact: &std::result::Result<crate::exact::LinearSystem, String>,
) -> Result<Method> {
    let mut method = match &desc.method {
        Some(m) => Method::parse(m)?,
        None => default_method(diffusion, exact),
    };
    if !noise.is_empty() {
        if !method.supports_noise() {
            return Err(SimError::Model(format!(
                "method {method} cannot integrate stochastic equations (they use {}); use euler_maruyama, milstein or heun",
                noise.join(", ")
            )));
        }
        if method == Method::Euler {
            method = Method::EulerMaruyama;
        }
    }
    // A circuit's objects may name their own methods: checked per object (`schedule`).
    if method == Method::ExponentialEuler
        && desc.schedule.is_empty()
        && let Some(e) = linear.iter().find_map(|l| l.as_ref().err())
    {
        return Err(e.clone());
    }
    // A circuit's objects are integrated in turn, each as its own system (`schedule`).
    if method == Method::Exact
        && desc.schedule.is_empty()
        && let Err(why) = exact
    {
        return Err(super::exact_refused(why));
    }
    Ok(method)
}

/// The method Brian2 picks when none is named: the first of `exact`, `euler`, `heun` that
/// can integrate the equations.
fn default_method(
    diffusion: &[Vec<Ex>],
    exact: &std::result::Result<crate::exact::LinearSystem, String>,
) -> Method {
    let stochastic = diffusion.iter().any(|g| !g.is_empty());
    if !stochastic {
        return if exact.is_ok() {
            Method::Exact
        } else {
            Method::Euler
        };
    }
    // Brian's `euler` takes additive noise only; `heun` is its Stratonovich scheme.
    if diffusion.iter().flatten().any(varies_within_step) {
        Method::Heun
    } else {
        Method::EulerMaruyama
    }
}

/// Whether a value may change during a step: it reads a state variable or the clock.
/// Inputs count too: Brian writes them `I(t)` with a `TimedArray`, and it calls noise
/// multiplicative as soon as its coefficient mentions `t`.
fn varies_within_step(e: &Ex) -> bool {
    let mut varies = false;
    e.visit(&mut |n| {
        varies |= matches!(n, Ex::Slot(Slot::State(_) | Slot::Time | Slot::Input(_)));
    });
    varies
}
