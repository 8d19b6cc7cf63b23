//! A neuron model described by equation strings, checked into unit-free expressions.

use crate::equations::EquationSet;
use crate::error::{Result, SimError};
use crate::ir::{Ex, Slot};
use crate::units::{Dimension, Quantity};
use std::fmt;

// `Model::new` and the method Brian2 would choose: checking a description is most of the
// code behind a model, so it has a file of its own.
mod build;

/// Integration methods (Brian's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Brian's `exact` (alias `linear`): the exact solution of a linear system with
    /// coefficients constant over a step (see [`crate::exact`]).
    Exact,
    /// Forward Euler (first order).
    Euler,
    /// Midpoint Runge-Kutta (second order).
    Rk2,
    /// Classical Runge-Kutta (fourth order).
    Rk4,
    /// Brian's stochastic Heun (Stratonovich); its drift is an Euler step.
    Heun,
    /// Exponential Euler for conditionally linear equations, `x <- x*e^(A dt) + B(e^(A dt)-1)/A`.
    ExponentialEuler,
    /// Euler-Maruyama for stochastic equations (strong order 0.5, 1 for additive noise).
    EulerMaruyama,
    /// Brian's derivative-free Milstein.
    Milstein,
}

impl Method {
    /// All methods with their names.
    pub const ALL: [(&'static str, Method); 8] = [
        ("exact", Method::Exact),
        ("euler", Method::Euler),
        ("rk2", Method::Rk2),
        ("rk4", Method::Rk4),
        ("heun", Method::Heun),
        ("exponential_euler", Method::ExponentialEuler),
        ("euler_maruyama", Method::EulerMaruyama),
        ("milstein", Method::Milstein),
    ];

    /// The method of a name (`euler-maruyama` and `euler_maruyama` both work).
    pub fn parse(name: &str) -> Result<Method> {
        let norm = name.trim().to_ascii_lowercase().replace('-', "_");
        // Brian's old name of `exact`.
        let norm = if norm == "linear" {
            "exact".into()
        } else {
            norm
        };
        Method::ALL
            .iter()
            .find(|(n, _)| *n == norm)
            .map(|&(_, m)| m)
            .ok_or_else(|| {
                SimError::Model(format!(
                    "unknown integration method `{name}`; known methods: {}",
                    Method::ALL.map(|(n, _)| n).join(", ")
                ))
            })
    }

    /// Theoretical order of convergence on deterministic equations (Brian's heun and
    /// milstein take an Euler step for the drift).
    pub fn order(self) -> f64 {
        match self {
            Method::Euler
            | Method::EulerMaruyama
            | Method::Milstein
            | Method::Heun
            | Method::ExponentialEuler => 1.0,
            // No discretisation error at all on the equations it accepts.
            Method::Exact => f64::INFINITY,
            Method::Rk2 => 2.0,
            Method::Rk4 => 4.0,
        }
    }

    fn supports_noise(self) -> bool {
        matches!(
            self,
            Method::Euler | Method::EulerMaruyama | Method::Milstein | Method::Heun
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Method::ALL
            .iter()
            .find(|(_, m)| m == self)
            .map_or("?", |(n, _)| n);
        write!(f, "{name}")
    }
}

/// The error for `exact` named on equations it cannot integrate.
pub(crate) fn exact_refused(why: &str) -> SimError {
    SimError::Model(format!(
        "method `exact` (Brian's `linear`) cannot integrate these equations: {why}; name another method, e.g. exponential_euler or rk4"
    ))
}

/// Refractoriness.
#[derive(Clone, Debug, PartialEq)]
pub enum Refractory {
    /// None.
    None,
    /// A duration after each spike (seconds): constant, or an expression of parameters
    /// and constants evaluated per neuron.
    Duration(Ex),
    /// Refractory while this condition holds (evaluated at the start of each step).
    Condition(Ex),
}

/// A lowered spike source of a circuit (see [`EventSource`]).
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) threshold: Ex,
    pub(crate) reset: Vec<(Slot, Ex)>,
    pub(crate) refractory: Refractory,
}

/// A lowered pathway (see [`PathwayDescription`]).
#[derive(Clone, Debug)]
pub(crate) struct Pathway {
    /// Spike source (1, 2, ...: `events[source - 1]`).
    pub(crate) source: usize,
    /// Delay in seconds.
    pub(crate) delay: f64,
    /// New values of what the statements change, as a reset's.
    pub(crate) effects: Vec<(Slot, Ex)>,
}

/// A declared variable with its dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dim: Dimension,
    /// Frozen while refractory (`(unless refractory)`).
    pub unless_refractory: bool,
}

/// Everything needed to build a [`Model`]: equation strings, their namespace and options.
/// Serialisable, so a problem description can carry a model built in code.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDescription {
    /// The equations (Brian syntax, see `docs/model-language.md`).
    pub equations: String,
    /// Spike condition, e.g. `v > -20*mV`.
    pub threshold: Option<String>,
    /// Reset statements, e.g. `v = Vr; w += b`.
    pub reset: Option<String>,
    /// A duration (`2*ms`) or a condition (`m > 0.5`).
    pub refractory: Option<String>,
    /// Integration method; `None` picks one in Brian2's order: `exact` (linear systems
    /// without noise: an error here, since neurosbi has no `exact` yet), then `euler`
    /// (`euler_maruyama` for additive noise), then `heun` (multiplicative noise).
    pub method: Option<String>,
    /// Input variables read from stimulus arrays, with their dimensions.
    pub inputs: Vec<(String, Dimension)>,
    /// Named constants (the namespace), in SI units.
    pub constants: Vec<(String, Quantity)>,
    /// Initial values: state variable and an expression of constants and parameters.
    pub initial: Vec<(String, String)>,
    /// For circuits (see [`crate::circuit`]): the state variables of each object, in the
    /// order Brian integrates the objects; each phase reads the others' latest values.
    /// Empty: every state is integrated at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Phase>,
    /// For circuits: spike sources beyond the model's own threshold (one per neuron of a
    /// group with a threshold), whose `not_refractory_NAME` and `lastspike_NAME` the
    /// equations may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventSource>,
    /// For circuits: statements run when a source of `events` spikes (Brian's synaptic
    /// pathways, `on_pre` / `on_post`), in the order Brian runs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pathways: Vec<PathwayDescription>,
    /// The equations are a synapse's (checked on their own): synaptic flags are allowed.
    #[serde(skip)]
    pub(crate) synapse: bool,
}

/// A spike source of a circuit: one neuron's threshold, reset and refractoriness.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSource {
    /// Name (`E_3`): `not_refractory_E_3` and `lastspike_E_3` are its variables.
    pub name: String,
    /// Spike condition.
    pub threshold: String,
    /// Reset statements.
    pub reset: Option<String>,
    /// A duration or a condition.
    pub refractory: Option<String>,
    /// State variables frozen while this source is refractory (`(unless refractory)`).
    pub frozen: Vec<String>,
}

/// Statements run when spike source `source` fires, `delay` seconds later (Brian runs a
/// delayed pathway `round(delay/dt)` steps after the spike).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathwayDescription {
    /// Where the statements come from, for errors (`synapses.EE.on_pre`).
    pub origin: String,
    /// Name of the spiking source (an [`EventSource`]).
    pub source: String,
    /// Delay in seconds.
    pub delay: f64,
    /// Statements, one per line.
    pub statements: String,
}

/// One object of a circuit as its model integrates it: its state variables and method
/// (`None`: the model's).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phase {
    /// State variables integrated together.
    pub states: Vec<String>,
    /// Integration method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl ModelDescription {
    /// A description with just equations.
    pub fn new(equations: impl Into<String>) -> Self {
        ModelDescription {
            equations: equations.into(),
            ..Default::default()
        }
    }
    /// Sets the threshold.
    pub fn threshold(mut self, t: impl Into<String>) -> Self {
        self.threshold = Some(t.into());
        self
    }
    /// Sets the reset.
    pub fn reset(mut self, r: impl Into<String>) -> Self {
        self.reset = Some(r.into());
        self
    }
    /// Sets the refractoriness.
    pub fn refractory(mut self, r: impl Into<String>) -> Self {
        self.refractory = Some(r.into());
        self
    }
    /// Sets the integration method.
    pub fn method(mut self, m: impl Into<String>) -> Self {
        self.method = Some(m.into());
        self
    }
    /// Declares an input variable with its dimension.
    pub fn input(mut self, name: impl Into<String>, dim: Dimension) -> Self {
        self.inputs.push((name.into(), dim));
        self
    }
    /// Adds a constant.
    pub fn constant(mut self, name: impl Into<String>, q: Quantity) -> Self {
        self.constants.push((name.into(), q));
        self
    }
    /// Sets an initial value expression.
    pub fn initial(mut self, var: impl Into<String>, expr: impl Into<String>) -> Self {
        self.initial.push((var.into(), expr.into()));
        self
    }
}

/// A checked model: state variables, parameters and inputs with units, and the
/// right-hand sides as unit-free expressions in SI.
#[derive(Clone, Debug)]
pub struct Model {
    pub(crate) states: Vec<Var>,
    pub(crate) params: Vec<Var>,
    pub(crate) inputs: Vec<Var>,
    pub(crate) noise: Vec<String>,
    /// One entry per `rand()` (false) / `randn()` (true) call.
    pub(crate) rand: Vec<bool>,
    pub(crate) drift: Vec<Ex>,
    /// `diffusion[j][k]`: coefficient of noise `k` in the equation of state `j`.
    pub(crate) diffusion: Vec<Vec<Ex>>,
    /// `dx_j/dt = A_j x_j + B_j`, or why not.
    pub(crate) linear: Vec<std::result::Result<(Ex, Ex), SimError>>,
    /// `dX/dt = M X + c` as Brian's `exact` needs it, or why not.
    pub(crate) exact: std::result::Result<crate::exact::LinearSystem, String>,
    pub(crate) threshold: Option<Ex>,
    /// New values of the variables a reset changes: state variables (`Slot::State`) and,
    /// as Brian allows, parameters (`Slot::Param`), which then keep the value for the rest
    /// of the run.
    pub(crate) reset: Vec<(Slot, Ex)>,
    pub(crate) refractory: Refractory,
    /// Spike sources 1, 2, ... (a circuit's neurons); source 0 is the fields above.
    pub(crate) events: Vec<Source>,
    /// What runs when a source spikes.
    pub(crate) pathways: Vec<Pathway>,
    /// Per state: the spike source whose refractoriness freezes it, if it is
    /// `(unless refractory)` (0: the model's own).
    pub(crate) refractory_source: Vec<usize>,
    pub(crate) initial: Vec<Ex>,
    pub(crate) subexprs: Vec<(String, Ex, Dimension)>,
    pub(crate) method: Method,
    /// `(constant over dt)` states and the expression each takes at a step's start.
    pub(crate) pre_step: Vec<(usize, Ex)>,
    /// States integrated together with their method, phase after phase (the objects of a
    /// circuit in Brian's order); empty: all states in one phase with `method`.
    pub(crate) phases: Vec<(Vec<usize>, Method)>,
    pub(crate) equations: EquationSet,
    /// What the model was built from (with the method in use), so it can be rebuilt or
    /// written down: a problem description holds this, not the compiled model.
    pub(crate) description: ModelDescription,
}

impl Model {
    /// Every expression the compiled kernel is built from.
    pub(crate) fn expressions(&self) -> impl Iterator<Item = &Ex> {
        let linear = self.linear.iter().flatten().flat_map(|(a, b)| [a, b]);
        let exact = self
            .exact
            .iter()
            .flat_map(|s| s.m.iter().flatten().chain(&s.c));
        let refractory = match &self.refractory {
            Refractory::None => None,
            Refractory::Duration(e) | Refractory::Condition(e) => Some(e),
        };
        let events = self.events.iter().flat_map(|s| {
            let r = match &s.refractory {
                Refractory::None => None,
                Refractory::Duration(e) | Refractory::Condition(e) => Some(e),
            };
            std::iter::once(&s.threshold)
                .chain(s.reset.iter().map(|(_, e)| e))
                .chain(r)
        });
        let pathways = self
            .pathways
            .iter()
            .flat_map(|p| p.effects.iter().map(|(_, e)| e));
        self.drift
            .iter()
            .chain(self.diffusion.iter().flatten())
            .chain(events)
            .chain(pathways)
            .chain(linear)
            .chain(exact)
            .chain(&self.threshold)
            .chain(self.reset.iter().map(|(_, e)| e))
            .chain(refractory)
            .chain(&self.initial)
            .chain(self.subexprs.iter().map(|(_, e, _)| e))
            .chain(self.pre_step.iter().map(|(_, e)| e))
    }

    /// Whether an expression reads `lastspike`.
    pub(crate) fn reads_lastspike(&self) -> bool {
        let mut found = false;
        for e in self.expressions() {
            e.visit(&mut |n| found |= matches!(n, Ex::Slot(Slot::LastSpike(_))));
        }
        found
    }

    /// State variables.
    pub fn state_vars(&self) -> &[Var] {
        &self.states
    }
    /// Parameters (one value per neuron, set per run).
    pub fn parameters(&self) -> &[Var] {
        &self.params
    }
    /// Input variables (stimulus arrays).
    pub fn inputs(&self) -> &[Var] {
        &self.inputs
    }
    /// Noise sources.
    pub fn noise_sources(&self) -> &[String] {
        &self.noise
    }
    /// The integration method in use: given, or chosen in Brian2's order (see
    /// [`ModelDescription::method`]): `euler` without noise, `euler_maruyama` with additive
    /// noise, `heun` with multiplicative noise.
    pub fn method(&self) -> Method {
        self.method
    }
    /// A circuit's objects in the order they are integrated: the state variables of each
    /// and its method (named, else Brian's choice for that object's equations alone, as
    /// Brian logs it); empty for a single group, which uses [`Model::method`].
    pub fn phase_methods(&self) -> Vec<(Vec<&str>, Method)> {
        self.phases
            .iter()
            .map(|(idx, m)| {
                (
                    idx.iter().map(|&j| self.states[j].name.as_str()).collect(),
                    *m,
                )
            })
            .collect()
    }
    /// The parsed equations.
    pub fn equations(&self) -> &EquationSet {
        &self.equations
    }
    /// The description this model was built from; its `method` is the one in use after
    /// [`Model::with_method`].
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }
    /// Names that can be recorded: state variables and subexpressions.
    pub fn recordable(&self) -> Vec<String> {
        self.states
            .iter()
            .map(|s| s.name.clone())
            .chain(self.subexprs.iter().map(|s| s.0.clone()))
            .chain(self.written_params().map(|k| self.params[k].name.clone()))
            .collect()
    }

    /// Parameters that the reset writes (they change during a run, so they can be recorded).
    pub(crate) fn written_params(&self) -> impl Iterator<Item = usize> + '_ {
        let events = self.events.iter().flat_map(|s| &s.reset);
        let pathways = self.pathways.iter().flat_map(|p| &p.effects);
        let mut seen = Vec::new();
        self.reset.iter().chain(events).chain(pathways).filter_map(
            move |(target, _)| match target {
                Slot::Param(k) if !seen.contains(k) => {
                    seen.push(*k);
                    Some(*k)
                }
                _ => None,
            },
        )
    }
    /// Changes the integration method (checked as at construction).
    pub fn with_method(mut self, method: Method) -> Result<Model> {
        if !self.noise.is_empty() && !method.supports_noise() {
            return Err(SimError::Model(format!(
                "method {method} cannot integrate stochastic equations"
            )));
        }
        if method == Method::ExponentialEuler
            && let Some(e) = self.linear.iter().find_map(|l| l.as_ref().err())
        {
            return Err(e.clone());
        }
        for (idx, m) in &mut self.phases {
            if method == Method::Exact
                && let Err(why) = crate::exact::linear_system_of(&self.drift, &self.states, idx)
            {
                return Err(exact_refused(&why));
            }
            *m = method;
        }
        if method == Method::Exact
            && self.phases.is_empty()
            && let Err(why) = &self.exact
        {
            return Err(exact_refused(why));
        }
        self.method = if method == Method::Euler && !self.noise.is_empty() {
            Method::EulerMaruyama
        } else {
            method
        };
        self.description.method = Some(self.method.to_string());
        Ok(self)
    }
}

/// Whether an expression reads something that changes while the neuron runs (so that a
/// refractory duration made of it is evaluated at every step).
pub(crate) fn reads_running_values(x: &Ex) -> bool {
    let mut varying = false;
    x.visit(&mut |e| {
        varying |= matches!(
            e,
            Ex::Slot(
                Slot::State(_)
                    | Slot::Input(_)
                    | Slot::Time
                    | Slot::Noise(_)
                    | Slot::NotRefractory(_)
                    | Slot::LastSpike(_)
                    | Slot::Rand(_)
            )
        );
    });
    varying
}
