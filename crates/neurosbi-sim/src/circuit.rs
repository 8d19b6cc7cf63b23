//! Circuits: several neuron groups and the synapses between them, with Brian2's semantics,
//! flattened into one model whose every lane is a whole circuit (one parameter set).
//!
//! Each object is checked on its own first (so errors name the group or synapse, with the
//! line and column in its own equations), then written out as one equation set in which
//! every name carries its object: variable `v` of group `LP` becomes `v_LP` (`v_LP_3` for
//! neuron 3 of a larger group), parameter `g` of synapse `AB_LP` becomes `g_AB_LP`.
//!
//! Brian's step order is kept: `(summed)` variables are computed first, from the state at
//! the step's start, and held over the step (`(constant over dt)` in the flat model); then
//! each object's state updater runs in Brian's order (by `order`, then by name: here all
//! orders are 0, so by the name `{object}_stateupdater`), each reading the others' latest
//! values — a synapse updated after its pre-synaptic group sees that group's new voltage.
//!
//! ```
//! use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
//! use neurosbi_sim::{Model, RunConfig};
//!
//! let group = |name: &str| GroupDescription::new(name, "dv/dt = (-v + I)/(10*ms) : volt\nI : volt");
//! let mut syn = SynapseDescription::new("pre_post", "pre", "post",
//!     "w : 1\nI_post = w*v_pre : volt (summed)");
//! syn.connect = Connect::All;
//! let mut circuit = CircuitDescription::new(vec![group("pre"), group("post")], vec![syn]);
//! circuit.method = Some("euler".into());
//! circuit.groups[0].initial.push(("v".into(), "1*mV".into()));
//! let model = Model::new(&circuit.flatten().unwrap()).unwrap();
//! let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
//! assert_eq!(names, ["I_pre", "w_pre_post"]);
//! let out = model.simulate(&[0.0, 0.5], 1, &[], &RunConfig::new(1e-4, 100).record(&["v_post"])).unwrap();
//! assert!(out.trace("v_post", 0).unwrap()[99] > 0.0);
//! ```

use crate::equations::{AssignOp, EquationKind, EquationSet, parse_statements};
use crate::error::{Result, SimError};
use crate::model::{EventSource, Model, ModelDescription, PathwayDescription, Phase};
use crate::syntax::{Expr, ExprKind, Source, parse_expr};
use crate::units::{Dimension, Quantity};
use std::collections::BTreeMap;

/// One neuron group: `n` neurons sharing equations (Brian's `NeuronGroup`).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDescription {
    /// Name (an identifier); suffix of its variables in the flat model.
    pub name: String,
    /// Number of neurons.
    pub n: usize,
    /// Equations (Brian syntax).
    pub equations: String,
    /// Spike condition.
    pub threshold: Option<String>,
    /// Reset statements.
    pub reset: Option<String>,
    /// Refractory duration or condition.
    pub refractory: Option<String>,
    /// Integration method (default: the circuit's).
    pub method: Option<String>,
    /// Brian's `order`: objects are integrated by (order, name).
    pub order: i64,
    /// Input variables read from stimuli (one stimulus per neuron in the flat model).
    pub inputs: Vec<(String, Dimension)>,
    /// Constants of this group only.
    pub constants: Vec<(String, Quantity)>,
    /// Initial values.
    pub initial: Vec<(String, String)>,
}

impl GroupDescription {
    /// A group of one neuron with these equations.
    pub fn new(name: impl Into<String>, equations: impl Into<String>) -> Self {
        GroupDescription {
            name: name.into(),
            n: 1,
            equations: equations.into(),
            threshold: None,
            reset: None,
            refractory: None,
            method: None,
            order: 0,
            inputs: Vec::new(),
            constants: Vec::new(),
            initial: Vec::new(),
        }
    }
}

/// Which pairs of neurons a synapse object connects (Brian's `Synapses.connect`).
#[derive(Clone, Debug, PartialEq)]
pub enum Connect {
    /// Every pre-synaptic neuron to every post-synaptic one (`connect()`).
    All,
    /// The pairs where a condition of `i`, `j`, `N_pre` and `N_post` holds
    /// (`connect(condition='i != j')`).
    Condition(String),
    /// Explicit index lists (`connect(i=[...], j=[...])`).
    Pairs(Vec<(usize, usize)>),
    /// Each pair (where `condition` holds, if given) with probability `p`
    /// (`connect(condition=..., p=...)`), drawn from a stream seeded by `seed`: the same
    /// seed gives the same synapses. Brian draws from numpy's generator, so its synapses
    /// for a given seed differ; to rebuild a Brian network exactly, give its `i`/`j` lists.
    Random {
        /// Condition on `i`, `j`, `N_pre`, `N_post`.
        condition: Option<String>,
        /// Probability of each candidate pair.
        p: f64,
        /// Seed of the draws.
        seed: u64,
    },
}

/// One synapse object: synapses from `source` to `target` (Brian's `Synapses`).
#[derive(Clone, Debug, PartialEq)]
pub struct SynapseDescription {
    /// Name (an identifier).
    pub name: String,
    /// Pre-synaptic group.
    pub source: String,
    /// Post-synaptic group.
    pub target: String,
    /// Equations: `(clock-driven)` differential equations, `(summed)` variables,
    /// subexpressions and parameters; `X_pre` / `X_post` read the groups' variables.
    pub equations: String,
    /// Statements run on a pre-synaptic spike.
    pub on_pre: Option<String>,
    /// Statements run on a post-synaptic spike.
    pub on_post: Option<String>,
    /// Transmission delay.
    pub delay: Option<String>,
    /// Integration method of the clock-driven equations (default: the circuit's).
    pub method: Option<String>,
    /// Brian's `order`: objects are integrated by (order, name).
    pub order: i64,
    /// Connection pattern.
    pub connect: Connect,
    /// Constants of this object only.
    pub constants: Vec<(String, Quantity)>,
    /// Initial values.
    pub initial: Vec<(String, String)>,
}

impl SynapseDescription {
    /// Synapses from `source` to `target` with these equations, connected all to all.
    pub fn new(
        name: impl Into<String>,
        source: impl Into<String>,
        target: impl Into<String>,
        equations: impl Into<String>,
    ) -> Self {
        SynapseDescription {
            name: name.into(),
            source: source.into(),
            target: target.into(),
            equations: equations.into(),
            on_pre: None,
            on_post: None,
            delay: None,
            method: None,
            order: 0,
            connect: Connect::All,
            constants: Vec::new(),
            initial: Vec::new(),
        }
    }
}

/// A circuit: groups, synapses, and constants shared by all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct CircuitDescription {
    /// Constants every object sees.
    pub constants: Vec<(String, Quantity)>,
    /// Neuron groups.
    pub groups: Vec<GroupDescription>,
    /// Synapse objects.
    pub synapses: Vec<SynapseDescription>,
    /// Integration method of every object that names none (none: Brian's choice for the
    /// whole circuit).
    pub method: Option<String>,
}

/// Largest number of state variables a flattened circuit may have: beyond it a circuit is
/// a network, which this layout (a whole circuit per lane) does not suit.
pub const MAX_FLAT_STATES: usize = 4096;

impl CircuitDescription {
    /// A circuit of these groups and synapses.
    pub fn new(groups: Vec<GroupDescription>, synapses: Vec<SynapseDescription>) -> Self {
        CircuitDescription {
            constants: Vec::new(),
            groups,
            synapses,
            method: None,
        }
    }

    /// Checks every object and writes the circuit as one model (see the module doc).
    pub fn flatten(&self) -> Result<ModelDescription> {
        check_names(self)?;
        let mut groups = BTreeMap::new();
        for g in &self.groups {
            let method = g.method.as_ref().or(self.method.as_ref());
            groups.insert(g.name.as_str(), Checked::group(self, g, method)?);
        }
        let mut synapses = Vec::new();
        for s in &self.synapses {
            let method = s.method.as_ref().or(self.method.as_ref());
            synapses.push(CheckedSynapse::new(self, s, &groups, method)?);
        }
        for g in &self.groups {
            if g.threshold.is_none() && (g.reset.is_some() || g.refractory.is_some()) {
                return Err(SimError::Model(format!(
                    "groups.{}: a reset or refractory period needs a threshold",
                    g.name
                )));
            }
        }
        let mut flat = Flat::default();
        for (s, checked) in self.synapses.iter().zip(&synapses) {
            checked.emit(self, s, &mut flat)?;
        }
        for g in &self.groups {
            groups[g.name.as_str()].emit_group(g, &mut flat)?;
        }
        let desc = flat.finish(self)?;
        // What only the whole circuit can get wrong (a method for the schedule).
        Model::new(&desc).map_err(|e| SimError::Model(format!("circuit: {e}")))?;
        Ok(desc)
    }
}

/// An object name: an identifier of the equations that starts with a letter.
fn is_identifier(s: &str) -> bool {
    crate::equations::is_identifier(s) && !s.starts_with('_')
}

/// Object names: identifiers, unique, and at least one group.
fn check_names(c: &CircuitDescription) -> Result<()> {
    if c.groups.is_empty() {
        return Err(SimError::Model("circuit: no neuron groups".into()));
    }
    let mut seen: Vec<&str> = Vec::new();
    let names = c
        .groups
        .iter()
        .map(|g| ("groups", &g.name))
        .chain(c.synapses.iter().map(|s| ("synapses", &s.name)));
    for (kind, name) in names {
        if !is_identifier(name) {
            return Err(SimError::Model(format!(
                "{kind}.{name}: an object name must be an identifier (letters, digits, `_`, \
                 starting with a letter)"
            )));
        }
        if seen.contains(&name.as_str()) {
            return Err(SimError::Model(format!(
                "{kind}.{name}: two objects are named `{name}`"
            )));
        }
        seen.push(name);
    }
    for g in &c.groups {
        if g.n == 0 {
            return Err(SimError::Model(format!(
                "groups.{}: `n` must be at least 1",
                g.name
            )));
        }
    }
    Ok(())
}

/// Every name in an expression with the offset of its node.
fn names_at(e: &Expr, out: &mut Vec<(String, usize)>) {
    match &e.kind {
        ExprKind::Num(_) => {}
        ExprKind::Name(n) => out.push((n.clone(), e.offset)),
        ExprKind::Unary(_, a) => names_at(a, out),
        ExprKind::Binary(_, a, b) => {
            names_at(a, out);
            names_at(b, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|a| names_at(a, out)),
    }
}

/// The expression with names replaced where `f` gives a replacement.
pub(crate) fn rename(e: &Expr, f: &dyn Fn(&str) -> Option<Expr>) -> Expr {
    let kind = match &e.kind {
        ExprKind::Name(n) => return f(n).unwrap_or_else(|| e.clone()),
        ExprKind::Num(v) => ExprKind::Num(*v),
        ExprKind::Unary(op, a) => ExprKind::Unary(*op, Box::new(rename(a, f))),
        ExprKind::Binary(op, a, b) => {
            ExprKind::Binary(*op, Box::new(rename(a, f)), Box::new(rename(b, f)))
        }
        ExprKind::Call(name, args) => {
            ExprKind::Call(name.clone(), args.iter().map(|a| rename(a, f)).collect())
        }
    };
    Expr {
        kind,
        offset: e.offset,
    }
}

fn name(n: String) -> Expr {
    Expr {
        kind: ExprKind::Name(n),
        offset: 0,
    }
}

pub(crate) fn num(v: f64) -> Expr {
    Expr {
        kind: ExprKind::Num(v),
        offset: 0,
    }
}

/// The suffix of neuron (or synapse) `k` of an object of `n`.
fn suffix(object: &str, k: usize, n: usize) -> String {
    if n == 1 {
        format!("_{object}")
    } else {
        format!("_{object}_{k}")
    }
}

/// A white-noise name with its object's suffix, still a noise name (`xi_...`).
fn noise_name(n: &str, sfx: &str) -> Option<String> {
    (n == "xi" || n.starts_with("xi_")).then(|| format!("{n}{sfx}"))
}

/// A group checked on its own: its equations, and the dimension of every variable.
struct Checked {
    eqs: EquationSet,
    vars: BTreeMap<String, Dimension>,
    params: Vec<String>,
}

impl Checked {
    fn group(
        c: &CircuitDescription,
        g: &GroupDescription,
        method: Option<&String>,
    ) -> Result<Self> {
        let at = |e: SimError| SimError::Model(format!("groups.{}: {e}", g.name));
        let mut desc = ModelDescription::new(g.equations.clone());
        desc.threshold = g.threshold.clone();
        desc.reset = g.reset.clone();
        desc.refractory = g.refractory.clone();
        desc.method = method.cloned();
        desc.inputs = g.inputs.clone();
        desc.constants = c.constants.iter().chain(&g.constants).cloned().collect();
        desc.initial = g.initial.clone();
        let model = Model::new(&desc).map_err(at)?;
        let eqs = EquationSet::parse(&format!("groups.{}.equations", g.name), &g.equations)?;
        let mut vars: BTreeMap<String, Dimension> = BTreeMap::new();
        for v in model
            .state_vars()
            .iter()
            .chain(model.parameters())
            .chain(model.inputs())
        {
            vars.insert(v.name.clone(), v.dim);
        }
        for (n, _, d) in &model.subexprs {
            vars.insert(n.clone(), *d);
        }
        let params = model.parameters().iter().map(|p| p.name.clone()).collect();
        Ok(Checked { eqs, vars, params })
    }

    /// The group's neurons into the flat model.
    fn emit_group(&self, g: &GroupDescription, flat: &mut Flat) -> Result<()> {
        let own: Vec<&str> = self.eqs.equations.iter().map(|e| e.name.as_str()).collect();
        let mut phase = Vec::new();
        for k in 0..g.n {
            let sfx = suffix(&g.name, k, g.n);
            let renamer = |n: &str| -> Option<Expr> {
                if own.contains(&n)
                    || g.inputs.iter().any(|(i, _)| i == n)
                    || g.constants.iter().any(|(c, _)| c == n)
                {
                    return Some(name(format!("{n}{sfx}")));
                }
                match n {
                    "i" => Some(num(k as f64)),
                    "N" => Some(num(g.n as f64)),
                    // A neuron's spike-source variables; without a threshold it never
                    // spikes nor is refractory (Brian's values before a spike).
                    "not_refractory" if g.threshold.is_none() => Some(num(1.0)),
                    "lastspike" if g.threshold.is_none() => Some(num(-1e4)),
                    "not_refractory" | "lastspike" => Some(name(format!("{n}{sfx}"))),
                    _ => noise_name(n, &sfx).map(name),
                }
            };
            let mut frozen = Vec::new();
            for eq in &self.eqs.equations {
                let new = format!("{}{sfx}", eq.name);
                if eq.flags.unless_refractory {
                    frozen.push(new.clone());
                }
                if eq.kind == EquationKind::Parameter
                    && flat
                        .summed_targets
                        .contains_key(&(g.name.clone(), eq.name.clone()))
                {
                    // Brian sets the sum to zero where no synapse arrives.
                    let sum = flat
                        .summed
                        .remove(&new)
                        .map_or_else(|| format!("0 * ({})", eq.unit), |t| t.join(" + "));
                    flat.line(format!("{new} = {sum} : {} (constant over dt)", eq.unit));
                    continue;
                }
                let mut e = eq.clone();
                e.name = new.clone();
                e.expr = eq.expr.as_ref().map(|x| rename(x, &renamer));
                if eq.kind == EquationKind::Differential {
                    phase.push(new.clone());
                }
                flat.line(e.to_string());
            }
            for (input, dim) in &g.inputs {
                flat.desc.inputs.push((format!("{input}{sfx}"), *dim));
            }
            for (cname, q) in &g.constants {
                flat.desc.constants.push((format!("{cname}{sfx}"), *q));
            }
            for (var, text) in &g.initial {
                let origin = format!("groups.{}.initial.{var}", g.name);
                let e = rename(&parse_expr(&origin, text)?, &renamer);
                flat.desc
                    .initial
                    .push((format!("{var}{sfx}"), e.to_string()));
            }
            let expr = |origin: String, text: &Option<String>| -> Result<Option<String>> {
                text.as_ref()
                    .map(|t| Ok(rename(&parse_expr(&origin, t)?, &renamer).to_string()))
                    .transpose()
            };
            if let Some(threshold) = expr(format!("groups.{}.threshold", g.name), &g.threshold)? {
                let reset = g
                    .reset
                    .as_ref()
                    .map(|r| statements(&format!("groups.{}.reset", g.name), r, &renamer))
                    .transpose()?;
                flat.desc.events.push(EventSource {
                    name: sfx[1..].to_string(),
                    threshold,
                    reset,
                    refractory: expr(format!("groups.{}.refractory", g.name), &g.refractory)?,
                    frozen,
                });
            }
        }
        let key = (g.order, format!("{}_stateupdater", g.name));
        let method = g.method.clone();
        flat.phases.push((
            key,
            Phase {
                states: phase,
                method,
            },
        ));
        Ok(())
    }
}

/// Statements with names replaced, one per line.
fn statements(origin: &str, text: &str, f: &dyn Fn(&str) -> Option<Expr>) -> Result<String> {
    let src = Source::new(origin, text);
    let mut out = Vec::new();
    for st in parse_statements(&src, text)? {
        let target = match f(&st.target) {
            Some(Expr {
                kind: ExprKind::Name(n),
                ..
            }) => n,
            _ => st.target.clone(),
        };
        let op = match st.op {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        };
        out.push(format!("{target} {op} {}", rename(&st.expr, f)));
    }
    Ok(out.join("\n"))
}

/// A synapse object checked on its own, with its expanded connections.
struct CheckedSynapse {
    eqs: EquationSet,
    pairs: Vec<(usize, usize)>,
    /// Delay of the `on_pre` pathway per synapse (seconds).
    delays: Vec<f64>,
    /// Each `(event-driven)` variable and its value at a spike from its value at
    /// `lastupdate` (an expression of the variable, `t` and `lastupdate`).
    event_driven: Vec<(String, String)>,
    /// The target group's variables: Brian reads a name the synapse does not declare as
    /// the target neuron's (`ge += w` is `ge_post += w`).
    post_vars: Vec<String>,
}

/// Brian's update of `(event-driven)` variables, run first in `on_pre` / `on_post`: the
/// exact solution of `dX/dt = A*X + B` from `lastupdate` to `t`, with `A` and `B` the
/// equation's right-hand side evaluated at `X = 1` and `X = 0` (it must be linear in `X`
/// and read no other variable that changes).
fn event_driven_updates(eqs: &EquationSet, model: &Model) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let states: Vec<&str> = model.state_vars().iter().map(|v| v.name.as_str()).collect();
    for eq in eqs.equations.iter().filter(|e| e.flags.event_driven) {
        let at = eqs.source.locate(eq.offset);
        let j = states.iter().position(|n| *n == eq.name).expect("declared");
        let (a, b) = model.linear[j].as_ref().map_err(|e| {
            SimError::syntax(
                at.clone(),
                format!("event-driven `{}` must be linear in itself: {e}", eq.name),
            )
        })?;
        let moving = |x: &crate::ir::Ex| {
            let mut m = false;
            x.visit(&mut |n| {
                m |= matches!(
                    n,
                    crate::ir::Ex::Slot(
                        crate::ir::Slot::State(_)
                            | crate::ir::Slot::Input(_)
                            | crate::ir::Slot::Time
                            | crate::ir::Slot::Noise(_)
                    )
                )
            });
            m
        };
        if moving(a) || moving(b) {
            return Err(SimError::syntax(
                at,
                format!(
                    "event-driven `{}` may depend only on itself and constants (it is solved \
                     exactly between spikes)",
                    eq.name
                ),
            ));
        }
        let rhs = eq
            .expr
            .as_ref()
            .expect("differential equations have a right-hand side");
        let x = &eq.name;
        let at_value = |v: &str| {
            rename(rhs, &|n| {
                (n == x).then(|| {
                    parse_expr("", &format!("({v}*({}))", eq.unit)).expect("a number times a unit")
                })
            })
        };
        let (f1, f0) = (at_value("1"), at_value("0"));
        let a = format!("(({f1}) - ({f0}))/(1*({}))", eq.unit);
        let b = format!("({f0})");
        out.push((
            x.clone(),
            format!("({x} + {b}/{a})*exp({a}*(t - lastupdate)) - {b}/{a}"),
        ));
    }
    Ok(out)
}

/// The `delay` of synapse (`i`, `j`): a duration of constants, `i`, `j`, `N_pre` and
/// `N_post` (0 if absent).
pub(crate) fn delay_seconds(
    c: &CircuitDescription,
    s: &SynapseDescription,
    i: usize,
    j: usize,
    n_pre: usize,
    n_post: usize,
) -> Result<f64> {
    let Some(text) = s.delay.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(0.0);
    };
    let origin = format!("synapses.{}.delay", s.name);
    let e = rename(&parse_expr(&origin, text)?, &|n| match n {
        "i" => Some(num(i as f64)),
        "j" => Some(num(j as f64)),
        "N_pre" => Some(num(n_pre as f64)),
        "N_post" => Some(num(n_post as f64)),
        _ => None,
    });
    let mut scope = crate::check::Scope::new();
    for (n, q) in c.constants.iter().chain(&s.constants) {
        scope
            .symbols
            .insert(n.clone(), crate::check::Symbol::Const(*q));
    }
    let q = crate::check::eval_constant(&mut scope, &origin, &e.to_string())?;
    if q.dim != crate::check::SECOND || !(q.value >= 0.0 && q.value.is_finite()) {
        return Err(SimError::Model(format!(
            "{origin}: `{text}` must be a duration >= 0 of constants, i and j (synapse \
             ({i}, {j}) gives {} {})",
            q.value, q.dim
        )));
    }
    Ok(q.value)
}

/// The variables `on_pre` / `on_post` statements write exist: the synapse's own, or a
/// group's through `_pre` / `_post`.
fn check_targets(
    origin: &str,
    text: &str,
    eqs: &EquationSet,
    pre: &Checked,
    post: &Checked,
) -> Result<()> {
    let src = Source::new(origin, text);
    for st in parse_statements(&src, text)? {
        let t = st.target.as_str();
        let known = eqs.equations.iter().any(|e| e.name == t && !e.flags.summed)
            || t.strip_suffix("_pre")
                .is_some_and(|v| pre.vars.contains_key(v))
            || t.strip_suffix("_post")
                .is_some_and(|v| post.vars.contains_key(v));
        if !known {
            return Err(SimError::syntax(
                src.locate(st.offset),
                format!(
                    "`{t}` is not a variable of the synapse, nor a group's variable with \
                     `_pre` / `_post`"
                ),
            ));
        }
    }
    Ok(())
}

impl CheckedSynapse {
    fn new(
        c: &CircuitDescription,
        s: &SynapseDescription,
        groups: &BTreeMap<&str, Checked>,
        method: Option<&String>,
    ) -> Result<Self> {
        let fail = |m: String| SimError::Model(format!("synapses.{}: {m}", s.name));
        let group = |role: &str, g: &str| {
            groups.get(g).ok_or_else(|| {
                fail(format!(
                    "{role} `{g}` is not a group of the circuit (groups: {})",
                    c.groups
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let (pre, post) = (group("source", &s.source)?, group("target", &s.target)?);
        for (what, text, role, g) in [
            ("on_pre", &s.on_pre, "source", &s.source),
            ("on_post", &s.on_post, "target", &s.target),
        ] {
            let spiking = c
                .groups
                .iter()
                .any(|x| x.name == *g && x.threshold.is_some());
            if text.as_deref().is_some_and(|t| !t.trim().is_empty()) && !spiking {
                return Err(fail(format!(
                    "`{what}` runs on spikes of the {role} group `{g}`, which has no threshold"
                )));
            }
        }
        let origin = format!("synapses.{}.equations", s.name);
        let eqs = EquationSet::parse(&origin, &s.equations)?;
        let declared: Vec<&str> = eqs.equations.iter().map(|e| e.name.as_str()).collect();
        // The groups' variables the equations read, as inputs of the check model.
        let mut inputs: Vec<(String, Dimension)> = Vec::new();
        let mut refs = Vec::new();
        for eq in &eqs.equations {
            if let Some(e) = &eq.expr {
                names_at(e, &mut refs);
            }
        }
        for (n, at) in refs {
            if declared.contains(&n.as_str()) || inputs.iter().any(|(i, _)| *i == n) {
                continue;
            }
            let side = if let Some(v) = n.strip_suffix("_pre") {
                Some((v, pre, &s.source))
            } else {
                n.strip_suffix("_post").map(|v| (v, post, &s.target))
            };
            let Some((v, g, gname)) = side else {
                if n == "j" {
                    inputs.push(("j".into(), Dimension::DIMENSIONLESS));
                }
                continue;
            };
            let dim = g.vars.get(v).ok_or_else(|| {
                SimError::syntax(
                    eqs.source.locate(at),
                    format!(
                        "`{n}`: group `{gname}` has no variable `{v}` (it has: {})",
                        g.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            inputs.push((n, *dim));
        }
        for eq in eqs.equations.iter().filter(|e| e.flags.summed) {
            check_summed(&eqs, eq, post, &s.target)?;
        }
        for eq in &eqs.equations {
            if eq.kind == EquationKind::Differential
                && !eq.flags.clock_driven
                && !eq.flags.event_driven
            {
                return Err(SimError::syntax(
                    eqs.source.locate(eq.offset),
                    format!(
                        "d{}/dt: a synaptic differential equation needs `(clock-driven)` (or \
                         `(event-driven)`), as in Brian",
                        eq.name
                    ),
                ));
            }
        }
        // Checked as clock-driven: an event-driven variable obeys the same equation, solved
        // exactly between events (below).
        let text = if eqs.equations.iter().any(|e| e.flags.event_driven) {
            let lines: Vec<String> = eqs
                .equations
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    if e.flags.event_driven {
                        e.flags.event_driven = false;
                        e.flags.clock_driven = true;
                    }
                    e.to_string()
                })
                .collect();
            lines.join("\n")
        } else {
            s.equations.clone()
        };
        let mut desc = ModelDescription::new(text);
        desc.synapse = true;
        desc.method = method.cloned();
        desc.inputs = inputs;
        desc.constants = c.constants.iter().chain(&s.constants).cloned().collect();
        desc.initial = s.initial.clone();
        let model = Model::new(&desc).map_err(|e| fail(e.to_string()))?;
        let event_driven = event_driven_updates(&eqs, &model).map_err(|e| fail(e.to_string()))?;
        let n_pre = c
            .groups
            .iter()
            .find(|g| g.name == s.source)
            .map_or(1, |g| g.n);
        let n_post = c
            .groups
            .iter()
            .find(|g| g.name == s.target)
            .map_or(1, |g| g.n);
        let pairs = connections(s, n_pre, n_post).map_err(|e| fail(e.to_string()))?;
        for (what, text) in [("on_pre", &s.on_pre), ("on_post", &s.on_post)] {
            if let Some(t) = text {
                check_targets(&format!("synapses.{}.{what}", s.name), t, &eqs, pre, post)?;
            }
        }
        let delays = pairs
            .iter()
            .map(|&(i, j)| delay_seconds(c, s, i, j, n_pre, n_post))
            .collect::<Result<Vec<f64>>>()?;
        Ok(CheckedSynapse {
            eqs,
            pairs,
            delays,
            event_driven,
            post_vars: post.vars.keys().cloned().collect(),
        })
    }

    /// The synapses into the flat model; summed terms go to their targets.
    fn emit(&self, c: &CircuitDescription, s: &SynapseDescription, flat: &mut Flat) -> Result<()> {
        let n_pre = c
            .groups
            .iter()
            .find(|g| g.name == s.source)
            .map_or(1, |g| g.n);
        let n_post = c
            .groups
            .iter()
            .find(|g| g.name == s.target)
            .map_or(1, |g| g.n);
        let mut own: Vec<&str> = self.eqs.equations.iter().map(|e| e.name.as_str()).collect();
        if !self.event_driven.is_empty() {
            own.push("lastupdate");
        }
        for eq in self.eqs.equations.iter().filter(|e| e.flags.summed) {
            let v = eq.name.strip_suffix("_post").expect("checked summed name");
            let key = (s.target.clone(), v.to_string());
            if let Some(other) = flat.summed_targets.insert(key, s.name.clone()) {
                return Err(SimError::Model(format!(
                    "synapses.{}: `{v}` of group `{}` is already the target of a summed \
                     variable of synapses `{other}`; as in Brian, one variable takes the sum of \
                     one synapse object (declare one variable per synapse object and add them)",
                    s.name, s.target
                )));
            }
        }
        let mut phase = Vec::new();
        let n_syn = self.pairs.len();
        for (m, &(a, b)) in self.pairs.iter().enumerate() {
            let sfx = suffix(&s.name, m, n_syn);
            let (pre_sfx, post_sfx) = (suffix(&s.source, a, n_pre), suffix(&s.target, b, n_post));
            let renamer = |n: &str| -> Option<Expr> {
                if own.contains(&n) || s.constants.iter().any(|(c, _)| c == n) {
                    return Some(name(format!("{n}{sfx}")));
                }
                if let Some(v) = n.strip_suffix("_pre") {
                    return Some(name(format!("{v}{pre_sfx}")));
                }
                if let Some(v) = n.strip_suffix("_post") {
                    return Some(name(format!("{v}{post_sfx}")));
                }
                if self.post_vars.iter().any(|v| v == n) {
                    return Some(name(format!("{n}{post_sfx}")));
                }
                match n {
                    "i" => Some(num(a as f64)),
                    "j" => Some(num(b as f64)),
                    "N_pre" => Some(num(n_pre as f64)),
                    "N_post" => Some(num(n_post as f64)),
                    _ => noise_name(n, &sfx).map(name),
                }
            };
            for eq in &self.eqs.equations {
                if eq.flags.event_driven {
                    // Held between events (zero drift, so every method leaves it as is);
                    // the pathways bring it up to date, as Brian does.
                    let n = format!("{}{sfx}", eq.name);
                    flat.synapse_lines
                        .push(format!("d{n}/dt = 0*({})/second : {}", eq.unit, eq.unit));
                    phase.push(n);
                    continue;
                }
                let expr = eq.expr.as_ref().map(|x| rename(x, &renamer));
                if eq.flags.summed {
                    let v = eq.name.strip_suffix("_post").expect("checked summed name");
                    let target = format!("{v}{post_sfx}");
                    let e = expr.expect("subexpressions have a right-hand side");
                    flat.summed
                        .entry(target)
                        .or_default()
                        .push(format!("({e})"));
                    continue;
                }
                let mut e = eq.clone();
                e.name = format!("{}{sfx}", eq.name);
                e.expr = expr;
                e.flags.clock_driven = false;
                if eq.kind == EquationKind::Differential {
                    phase.push(e.name.clone());
                }
                flat.synapse_lines.push(e.to_string());
            }
            for (cname, q) in &s.constants {
                flat.desc.constants.push((format!("{cname}{sfx}"), *q));
            }
            // Brian's pathways run in the `synapses` slot by (order, name): every
            // `NAME_pre` (order -1) before every `NAME_post` (order 1).
            if !self.event_driven.is_empty() {
                let n = format!("lastupdate{sfx}");
                flat.synapse_lines
                    .push(format!("d{n}/dt = 0*second/second : second"));
                phase.push(n);
            }
            for (what, text, key, source, delay) in [
                (
                    "on_pre",
                    &s.on_pre,
                    (-1, format!("{}_pre", s.name)),
                    &pre_sfx,
                    self.delays[m],
                ),
                (
                    "on_post",
                    &s.on_post,
                    (1, format!("{}_post", s.name)),
                    &post_sfx,
                    0.0,
                ),
            ] {
                let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) else {
                    continue;
                };
                let origin = format!("synapses.{}.{what}", s.name);
                let mut lines: Vec<String> = self
                    .event_driven
                    .iter()
                    .map(|(x, update)| format!("{x} = {update}"))
                    .collect();
                lines.push(text.to_string());
                if !self.event_driven.is_empty() {
                    lines.push("lastupdate = t".into());
                }
                let statements = statements(&origin, &lines.join("\n"), &renamer)?;
                flat.pathways.push((
                    key,
                    PathwayDescription {
                        origin,
                        source: source[1..].to_string(),
                        delay,
                        statements,
                    },
                ));
            }
            for (var, text) in &s.initial {
                let origin = format!("synapses.{}.initial.{var}", s.name);
                let e = rename(&parse_expr(&origin, text)?, &renamer);
                flat.desc
                    .initial
                    .push((format!("{var}{sfx}"), e.to_string()));
            }
        }
        let key = (s.order, format!("{}_stateupdater", s.name));
        let method = s.method.clone();
        flat.phases.push((
            key,
            Phase {
                states: phase,
                method,
            },
        ));
        Ok(())
    }
}

/// A `(summed)` variable names a parameter of the post-synaptic group, with its unit.
fn check_summed(
    eqs: &EquationSet,
    eq: &crate::equations::Equation,
    post: &Checked,
    target: &str,
) -> Result<()> {
    let at = eqs.source.locate(eq.offset);
    let Some(v) = eq.name.strip_suffix("_post") else {
        return Err(SimError::syntax(
            at,
            format!(
                "summed variable `{}` must name a variable of the post-synaptic group with \
                 the suffix `_post` (e.g. `I_syn_post`)",
                eq.name
            ),
        ));
    };
    if !post.params.iter().any(|p| p == v) {
        return Err(SimError::syntax(
            at,
            format!(
                "`{}`: the target of a summed variable must be a parameter of group `{target}` \
                 (declare `{v} : <unit>` in its equations){}",
                eq.name,
                if post.vars.contains_key(v) {
                    format!("; `{v}` is a state variable or subexpression there")
                } else {
                    String::new()
                }
            ),
        ));
    }
    let want = post.vars[v];
    if want != eq.dim {
        return Err(SimError::Dimension {
            at,
            context: format!("summed variable `{}` vs `{v}` of group `{target}`", eq.name),
            left: eq.dim,
            right: want,
        });
    }
    Ok(())
}

/// The (pre, post) index pairs of a synapse object, in Brian's order (by `i`, then `j`).
pub(crate) fn connections(
    s: &SynapseDescription,
    n_pre: usize,
    n_post: usize,
) -> Result<Vec<(usize, usize)>> {
    let origin = format!("synapses.{}.connect", s.name);
    match &s.connect {
        Connect::All => Ok((0..n_pre)
            .flat_map(|i| (0..n_post).map(move |j| (i, j)))
            .collect()),
        Connect::Pairs(p) => {
            if let Some(&(i, j)) = p.iter().find(|&&(i, j)| i >= n_pre || j >= n_post) {
                return Err(SimError::Model(format!(
                    "{origin}: pair ({i}, {j}) is out of range: `{}` has {n_pre} neuron(s), \
                     `{}` has {n_post}",
                    s.source, s.target
                )));
            }
            Ok(p.clone())
        }
        Connect::Condition(text) => condition_pairs(&origin, text, n_pre, n_post),
        Connect::Random { condition, p, seed } => {
            if !(0.0..=1.0).contains(p) {
                return Err(SimError::Model(format!(
                    "{origin}: `p` must be a probability in [0, 1], got {p}"
                )));
            }
            let candidates = match condition {
                Some(text) => condition_pairs(&origin, text, n_pre, n_post)?,
                None => (0..n_pre)
                    .flat_map(|i| (0..n_post).map(move |j| (i, j)))
                    .collect(),
            };
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            // A uniform draw in [0, 1) from 53 random bits, one per candidate pair.
            let mut uniform = || (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            Ok(candidates.into_iter().filter(|_| uniform() < *p).collect())
        }
    }
}

/// The pairs, in Brian's order, where a condition of `i`, `j`, `N_pre` and `N_post` holds.
fn condition_pairs(
    origin: &str,
    text: &str,
    n_pre: usize,
    n_post: usize,
) -> Result<Vec<(usize, usize)>> {
    let cond = parse_expr(origin, text)?;
    let mut out = Vec::new();
    for i in 0..n_pre {
        for j in 0..n_post {
            let e = rename(&cond, &|n| match n {
                "i" => Some(num(i as f64)),
                "j" => Some(num(j as f64)),
                "N_pre" => Some(num(n_pre as f64)),
                "N_post" => Some(num(n_post as f64)),
                _ => None,
            });
            let mut scope = crate::check::Scope::new();
            let q = crate::check::eval_constant(&mut scope, origin, &e.to_string())?;
            if !q.dim.is_dimensionless() {
                return Err(SimError::Model(format!(
                    "{origin}: `{text}` must be a condition of i and j"
                )));
            }
            if q.value != 0.0 {
                out.push((i, j));
            }
        }
    }
    Ok(out)
}

/// The flat model being written.
#[derive(Default)]
struct Flat {
    desc: ModelDescription,
    lines: Vec<String>,
    /// Synapse equations, written after the groups' (synapses are read first, so that
    /// their summed terms are known when the groups are written).
    synapse_lines: Vec<String>,
    /// Summed terms per flat target name.
    summed: BTreeMap<String, Vec<String>>,
    /// (group, variable) of every summed target, also where no synapse arrives, with the
    /// synapse object summing into it.
    summed_targets: BTreeMap<(String, String), String>,
    /// Per object: Brian's sort key (order, updater name) and its phase.
    phases: Vec<((i64, String), Phase)>,
    /// Pathways with Brian's sort key (order, pathway name), in synapse order.
    pathways: Vec<((i64, String), PathwayDescription)>,
}

impl Flat {
    fn line(&mut self, l: String) {
        self.lines.push(l);
    }

    fn finish(mut self, c: &CircuitDescription) -> Result<ModelDescription> {
        // Summed targets of neurons without incoming synapses were written as parameters
        // already; any left over name a neuron that does not exist (a bug).
        debug_assert!(
            self.summed.is_empty(),
            "unplaced summed terms: {:?}",
            self.summed
        );
        let n_states: usize = self.phases.iter().map(|(_, p)| p.states.len()).sum();
        if n_states > MAX_FLAT_STATES {
            return Err(SimError::Model(format!(
                "circuit: {n_states} state variables in all; a circuit simulated one instance \
                 per lane may have at most {MAX_FLAT_STATES}"
            )));
        }
        // Brian runs the state updaters of one slot by (order, name).
        self.phases.sort_by(|a, b| a.0.cmp(&b.0));
        // Stable: one object's synapses keep their order.
        self.pathways.sort_by(|a, b| a.0.cmp(&b.0));
        self.desc.pathways = self.pathways.into_iter().map(|(_, p)| p).collect();
        self.desc.schedule = self
            .phases
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| !p.states.is_empty())
            .collect();
        self.lines.append(&mut self.synapse_lines);
        self.desc.equations = self.lines.join("\n");
        self.desc.method = c.method.clone();
        self.desc.constants = c
            .constants
            .iter()
            .cloned()
            .chain(self.desc.constants)
            .collect();
        Ok(self.desc)
    }
}
