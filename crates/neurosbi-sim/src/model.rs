//! A neuron model described by equation strings, checked into unit-free expressions.

use crate::check::{Context, Scope, SubexprEntry, Symbol};
use crate::equations::{AssignOp, EquationKind, EquationSet, parse_statements};
use crate::error::{Result, SimError};
use crate::ir::{self, Ex, Slot};
use crate::syntax::{MAX_DEPTH, Source, parse_expr};
use crate::units::{Dimension, Quantity};
use std::fmt;

/// Integration methods (Brian's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
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
    pub const ALL: [(&'static str, Method); 7] = [
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
    pub(crate) drift: Vec<Ex>,
    /// `diffusion[j][k]`: coefficient of noise `k` in the equation of state `j`.
    pub(crate) diffusion: Vec<Vec<Ex>>,
    /// `dx_j/dt = A_j x_j + B_j`, or why not.
    pub(crate) linear: std::result::Result<Vec<(Ex, Ex)>, SimError>,
    pub(crate) threshold: Option<Ex>,
    pub(crate) reset: Vec<(usize, Ex)>,
    pub(crate) refractory: Refractory,
    pub(crate) initial: Vec<Ex>,
    pub(crate) subexprs: Vec<(String, Ex, Dimension)>,
    pub(crate) method: Method,
    pub(crate) equations: EquationSet,
    /// What the model was built from (with the method in use), so it can be rebuilt or
    /// written down: a problem description holds this, not the compiled model.
    pub(crate) description: ModelDescription,
}

impl Model {
    /// Parses and checks a model description.
    pub fn new(desc: &ModelDescription) -> Result<Model> {
        let eqs = EquationSet::parse("equations", &desc.equations)?;
        let src = eqs.source.clone();
        let mut scope = Scope::new();
        for (name, q) in &desc.constants {
            if crate::equations::is_reserved(name) {
                return Err(SimError::Model(format!(
                    "constant `{name}` would hide a built-in name; rename it"
                )));
            }
            scope.symbols.insert(name.clone(), Symbol::Const(*q));
        }
        let (mut states, mut params, mut inputs) = (Vec::new(), Vec::new(), Vec::new());
        for eq in &eqs.equations {
            let var = Var {
                name: eq.name.clone(),
                dim: eq.dim,
                unless_refractory: eq.flags.unless_refractory,
            };
            if desc.constants.iter().any(|(n, _)| *n == eq.name) {
                return Err(SimError::syntax(
                    src.locate(eq.offset),
                    format!(
                        "`{}` is declared in the equations and also given as a constant",
                        eq.name
                    ),
                ));
            }
            let sym = match eq.kind {
                EquationKind::Differential => {
                    states.push(var);
                    Symbol::Slot(Slot::State(states.len() - 1), eq.dim)
                }
                EquationKind::Parameter => {
                    params.push(var);
                    Symbol::Slot(Slot::Param(params.len() - 1), eq.dim)
                }
                EquationKind::Subexpression => {
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
        if states.is_empty() {
            return Err(SimError::Model(
                "the equations declare no differential equation".into(),
            ));
        }

        // Right-hand sides, split into drift and noise coefficients.
        let second = Dimension::new(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0);
        let mut rhs = Vec::new();
        for eq in eqs
            .equations
            .iter()
            .filter(|e| e.kind == EquationKind::Differential)
        {
            let e = eq
                .expr
                .as_ref()
                .expect("differential equations have a right-hand side");
            let (x, d) = scope.lower(&src, e, Context::Differential)?;
            let want = eq.dim.div(&second);
            if d != want {
                return Err(SimError::Dimension {
                    at: src.locate(e.offset),
                    context: format!("d{}/dt: right-hand side vs declared unit / second", eq.name),
                    left: d,
                    right: want,
                });
            }
            rhs.push((x, eq.offset, eq.name.clone()));
        }
        // Lower every subexpression, used or not, so errors in unused ones surface too.
        for k in 0..scope.subexprs.len() {
            let ex = crate::syntax::Expr {
                kind: crate::syntax::ExprKind::Name(scope.subexprs[k].name.clone()),
                offset: scope.subexprs[k].expr.offset,
            };
            scope.lower(&src, &ex, Context::Plain)?;
        }
        let n_noise = scope.noise.len();
        let mut drift = Vec::new();
        let mut diffusion = Vec::new();
        for (x, _offset, name) in &rhs {
            let mut rest = x.clone();
            let mut g = Vec::new();
            for k in 0..n_noise {
                let (gk, r) = rest.linear_in(Slot::Noise(k)).map_err(|why| {
                    SimError::Model(format!(
                        "the noise `{}` must enter d{name}/dt linearly (as `g*{}`), but {why}",
                        scope.noise[k], scope.noise[k]
                    ))
                })?;
                if gk.depends_on(Slot::Noise(k)) || r.depends_on(Slot::Noise(k)) {
                    return Err(SimError::Model(format!(
                        "the noise `{}` must enter d{name}/dt as an additive term `g*{}` (not inside a function, a denominator, a power or a comparison)",
                        scope.noise[k], scope.noise[k]
                    )));
                }
                g.push(gk);
                rest = r;
            }
            drift.push(rest);
            diffusion.push(g);
        }
        let linear = drift
            .iter()
            .enumerate()
            .map(|(j, f)| {
                f.linear_in(Slot::State(j))
                    .map_err(|reason| SimError::NotLinear {
                        variable: states[j].name.clone(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>>>();

        let state_index = |name: &str| states.iter().position(|s: &Var| s.name == name);
        let lower_plain =
            |scope: &mut Scope, origin: &str, text: &str| -> Result<(Ex, Dimension)> {
                let s = Source::new(origin, text);
                let e = parse_expr(origin, text)?;
                scope.lower(&s, &e, Context::Plain)
            };

        let threshold = match desc
            .threshold
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => None,
            Some(t) => {
                let (x, d) = lower_plain(&mut scope, "threshold", t)?;
                if !d.is_dimensionless() {
                    return Err(SimError::Dimension {
                        at: Source::new("threshold", t).locate(0),
                        context: "the threshold must be a condition (e.g. `v > -20*mV`)".into(),
                        left: d,
                        right: Dimension::DIMENSIONLESS,
                    });
                }
                Some(x)
            }
        };

        let mut reset = Vec::new();
        if let Some(text) = desc.reset.as_deref().filter(|t| !t.trim().is_empty()) {
            let rsrc = Source::new("reset", text);
            // Statements run in order: later ones see earlier assignments.
            let mut current: Vec<Option<Ex>> = vec![None; states.len()];
            for st in parse_statements(&rsrc, text)? {
                let Some(j) = state_index(&st.target) else {
                    return Err(SimError::UnknownIdentifier {
                        name: st.target.clone(),
                        at: rsrc.locate(st.offset),
                        suggestion: crate::error::closest(
                            &st.target,
                            states.iter().map(|s| s.name.as_str()),
                        ),
                    });
                };
                let (x, d) = scope.lower(&rsrc, &st.expr, Context::Plain)?;
                let x = x.subst(&|s| match s {
                    Slot::State(k) => current[k].clone(),
                    _ => None,
                });
                let old = current[j].clone().unwrap_or(Ex::Slot(Slot::State(j)));
                let dim_ok = match st.op {
                    AssignOp::Set | AssignOp::Add | AssignOp::Sub => d == states[j].dim,
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
                            states[j].dim
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
                current[j] = Some(new);
            }
            reset = current
                .into_iter()
                .enumerate()
                .filter_map(|(j, e)| e.map(|e| (j, e)))
                .collect();
        }

        let refractory = match desc
            .refractory
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => Refractory::None,
            Some(t) => {
                let (x, d) = lower_plain(&mut scope, "refractory", t)?;
                if d == second {
                    let mut varying = false;
                    x.visit(&mut |e| {
                        if matches!(
                            e,
                            Ex::Slot(Slot::State(_) | Slot::Input(_) | Slot::Time | Slot::Noise(_))
                        ) {
                            varying = true;
                        }
                    });
                    if varying || matches!(x, Ex::Num(v) if !(v >= 0.0 && v.is_finite())) {
                        return Err(SimError::Model(format!(
                            "refractory `{t}` must be a non-negative duration of constants and parameters, or a condition"
                        )));
                    }
                    Refractory::Duration(x)
                } else if d.is_dimensionless() {
                    Refractory::Condition(x)
                } else {
                    return Err(SimError::Dimension {
                        at: Source::new("refractory", t).locate(0),
                        context: "refractory must be a duration or a condition".into(),
                        left: d,
                        right: second,
                    });
                }
            }
        };

        let mut initial: Vec<Ex> = vec![Ex::Num(0.0); states.len()];
        for (var, text) in &desc.initial {
            let origin = format!("initial value of `{var}`");
            let Some(j) = state_index(var) else {
                return Err(SimError::Model(format!(
                    "initial value given for `{var}`, which is not a state variable (state variables: {})",
                    states
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let (x, d) = lower_plain(&mut scope, &origin, text)?;
            if d != states[j].dim {
                return Err(SimError::Dimension {
                    at: Source::new(origin.clone(), text).locate(0),
                    context: format!("initial value of `{var}` vs its declared unit"),
                    left: d,
                    right: states[j].dim,
                });
            }
            let mut bad = false;
            x.visit(&mut |e| {
                if matches!(
                    e,
                    Ex::Slot(Slot::State(_) | Slot::Input(_) | Slot::Time | Slot::Noise(_))
                ) {
                    bad = true;
                }
            });
            if bad {
                return Err(SimError::Model(format!(
                    "{origin} may use constants, parameters and `i` only"
                )));
            }
            initial[j] = x;
        }

        let subexprs = scope
            .subexprs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.lowered.clone().unwrap_or(Ex::Num(f64::NAN)),
                    s.dim,
                )
            })
            .collect();

        let method = match &desc.method {
            Some(m) => Method::parse(m)?,
            None => default_method(&drift, &diffusion)?,
        };
        let mut method = method;
        if n_noise > 0 {
            if !method.supports_noise() {
                return Err(SimError::Model(format!(
                    "method {method} cannot integrate stochastic equations (they use {}); use euler_maruyama, milstein or heun",
                    scope.noise.join(", ")
                )));
            }
            if method == Method::Euler {
                method = Method::EulerMaruyama;
            }
        }
        if method == Method::ExponentialEuler
            && let Err(e) = &linear
        {
            return Err(e.clone());
        }
        let model = Model {
            states,
            params,
            inputs,
            noise: scope.noise,
            drift,
            diffusion,
            linear,
            threshold,
            reset,
            refractory,
            initial,
            subexprs,
            method,
            equations: eqs,
            description: desc.clone(),
        };
        // Lowering and the reset check bound every tree they build, and the linear split
        // never deepens a tree, so the compiler's recursion over these is bounded too.
        debug_assert!(model.expressions().all(|e| e.depth() <= MAX_DEPTH));
        Ok(model)
    }

    /// Every expression the compiled kernel is built from.
    fn expressions(&self) -> impl Iterator<Item = &Ex> {
        let linear = self.linear.iter().flatten().flat_map(|(a, b)| [a, b]);
        let refractory = match &self.refractory {
            Refractory::None => None,
            Refractory::Duration(e) | Refractory::Condition(e) => Some(e),
        };
        self.drift
            .iter()
            .chain(self.diffusion.iter().flatten())
            .chain(linear)
            .chain(&self.threshold)
            .chain(self.reset.iter().map(|(_, e)| e))
            .chain(refractory)
            .chain(&self.initial)
            .chain(self.subexprs.iter().map(|(_, e, _)| e))
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
            .collect()
    }
    /// Changes the integration method (checked as at construction).
    pub fn with_method(mut self, method: Method) -> Result<Model> {
        if !self.noise.is_empty() && !method.supports_noise() {
            return Err(SimError::Model(format!(
                "method {method} cannot integrate stochastic equations"
            )));
        }
        if method == Method::ExponentialEuler
            && let Err(e) = &self.linear
        {
            return Err(e.clone());
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

/// The method Brian2 picks when none is named: the first of `exact`, `euler`, `heun` that
/// can integrate the equations. A model copied from Brian without its method must not
/// silently simulate differently, so where Brian would take `exact` this is an error.
fn default_method(drift: &[Ex], diffusion: &[Vec<Ex>]) -> Result<Method> {
    let stochastic = diffusion.iter().any(|g| !g.is_empty());
    if !stochastic {
        if is_linear_system(drift) {
            return Err(SimError::Model(
                "this model names no `method`; Brian2 would integrate it with `exact` (its \
                 equations are linear with coefficients constant over a step), which neurosbi \
                 does not have yet: name a method, e.g. method = \"exponential_euler\" (exact \
                 for uncoupled linear equations with inputs constant over a step) or \"rk4\""
                    .into(),
            ));
        }
        return Ok(Method::Euler);
    }
    // Brian's `euler` takes additive noise only; `heun` is its Stratonovich scheme.
    if diffusion.iter().flatten().any(varies_within_step) {
        Ok(Method::Heun)
    } else {
        Ok(Method::EulerMaruyama)
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

/// Whether `dX/dt = M X + B` with `M` and `B` free of state variables and of `t`: what
/// Brian's `exact` (`LinearStateUpdater`) accepts. Inputs are allowed, as Brian allows a
/// `TimedArray` whose steps are those of the simulation. (Brian also gives up on `exact`
/// when sympy cannot solve or exponentiate `M`, e.g. for a pure integrator `dv/dt = I/C`;
/// those are refused here too, which costs the user a `method` line but never a silent
/// difference.)
fn is_linear_system(drift: &[Ex]) -> bool {
    let n = drift.len();
    let constant = |e: &Ex| {
        let mut ok = true;
        e.visit(&mut |n| ok &= !matches!(n, Ex::Slot(Slot::State(_) | Slot::Time)));
        ok
    };
    drift.iter().all(|f| {
        let mut rest = f.clone();
        for k in 0..n {
            match rest.linear_in(Slot::State(k)) {
                Ok((a, b)) if constant(&a) => rest = b,
                _ => return false,
            }
        }
        constant(&rest)
    })
}
