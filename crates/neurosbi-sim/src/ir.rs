//! The checked, unit-free intermediate form of expressions.
//!
//! Names are resolved, constants and units folded to SI numbers and subexpressions
//! inlined, so an [`Ex`] refers only to per-neuron slots (state, parameters, inputs, noise)
//! and the clock. Its smart constructors fold constants and drop neutral elements, which
//! keeps the symbolic linearity analysis of exponential Euler readable.

/// One-argument functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// `exp`
    Exp,
    /// `log` (natural)
    Log,
    /// `log10`
    Log10,
    /// `sqrt`
    Sqrt,
    /// `abs`
    Abs,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tan`
    Tan,
    /// `tanh`
    Tanh,
    /// `sinh`
    Sinh,
    /// `cosh`
    Cosh,
    /// `sign` (-1, 0, 1)
    Sign,
    /// `floor`
    Floor,
    /// `ceil`
    Ceil,
    /// `int`: truncation toward zero, as Brian's `int`.
    Int,
    /// `exprel(x) = (exp(x) - 1)/x`, 1 at 0.
    Exprel,
    /// `arcsin`
    Arcsin,
    /// `arccos`
    Arccos,
    /// `arctan`
    Arctan,
    /// `expm1(x) = exp(x) - 1`, accurate near 0.
    Expm1,
    /// `log1p(x) = log(1 + x)`, accurate near 0.
    Log1p,
}

impl Func {
    /// The function of a name.
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "exp" => Func::Exp,
            "log" => Func::Log,
            "log10" => Func::Log10,
            "sqrt" => Func::Sqrt,
            "abs" => Func::Abs,
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "tanh" => Func::Tanh,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "sign" => Func::Sign,
            "floor" => Func::Floor,
            "ceil" => Func::Ceil,
            "int" => Func::Int,
            "exprel" => Func::Exprel,
            "arcsin" => Func::Arcsin,
            "arccos" => Func::Arccos,
            "arctan" => Func::Arctan,
            "expm1" => Func::Expm1,
            "log1p" => Func::Log1p,
            _ => return None,
        })
    }

    /// Whether the argument must be dimensionless (and the result is).
    pub fn needs_dimensionless(self) -> bool {
        // `int` is dimensionless as in Brian (truncating an SI value would depend on units).
        !matches!(
            self,
            Func::Abs | Func::Sign | Func::Floor | Func::Ceil | Func::Sqrt
        )
    }

    /// Scalar evaluation (for constant folding and reference semantics).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Func::Exp => x.exp(),
            Func::Log => x.ln(),
            Func::Log10 => x.log10(),
            Func::Sqrt => x.sqrt(),
            Func::Abs => x.abs(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Tanh => x.tanh(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x * 0.0 // keeps NaN as NaN, 0 as 0
                }
            }
            Func::Floor => x.floor(),
            Func::Ceil => x.ceil(),
            Func::Int => x.trunc(),
            Func::Exprel => crate::fastmath::exprel_scalar(x),
            Func::Arcsin => x.asin(),
            Func::Arccos => x.acos(),
            Func::Arctan => x.atan(),
            Func::Expm1 => x.exp_m1(),
            Func::Log1p => x.ln_1p(),
        }
    }

    /// Every function name, for documentation and suggestions.
    pub const NAMES: [&'static str; 22] = [
        "exp", "log", "log10", "sqrt", "abs", "sin", "cos", "tan", "tanh", "sinh", "cosh", "sign",
        "floor", "ceil", "int", "exprel", "clip", "arcsin", "arccos", "arctan", "expm1", "log1p",
    ];
}

/// Comparison operators; results are 1.0 (true) or 0.0 (false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Cmp {
    /// Scalar evaluation.
    #[inline(always)]
    pub fn eval(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// A per-neuron value slot that expressions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// State variable by index.
    State(usize),
    /// Parameter by index.
    Param(usize),
    /// Input variable by index (stimulus value at the current time).
    Input(usize),
    /// White-noise source by index (`xi`, `xi_name`).
    Noise(usize),
    /// Simulation time `t` (seconds).
    Time,
    /// The time step `dt` (seconds), fixed per run.
    Dt,
    /// Neuron index `i`.
    Index,
    /// Brian's `not_refractory` of spike source `s` (0: the model's own threshold; a
    /// circuit's neurons are sources 1, 2, ...): 1 while not refractory, else 0.
    NotRefractory(usize),
    /// Brian's `lastspike` of spike source `s`: the time of its last spike (seconds),
    /// -1e4 s before the first one.
    LastSpike(usize),
    /// The draw of one `rand()` / `randn()` call, fresh for each neuron at each step
    /// (and for the initial values).
    Rand(usize),
}

/// A checked expression in SI units.
#[derive(Clone, Debug, PartialEq)]
pub enum Ex {
    /// A number.
    Num(f64),
    /// A per-neuron slot.
    Slot(Slot),
    /// Sum.
    Add(Box<Ex>, Box<Ex>),
    /// Difference.
    Sub(Box<Ex>, Box<Ex>),
    /// Product.
    Mul(Box<Ex>, Box<Ex>),
    /// Quotient.
    Div(Box<Ex>, Box<Ex>),
    /// Negation.
    Neg(Box<Ex>),
    /// Power.
    Pow(Box<Ex>, Box<Ex>),
    /// A function of one argument.
    Call(Func, Box<Ex>),
    /// `clip(x, low, high)`.
    Clip(Box<Ex>, Box<Ex>, Box<Ex>),
    /// Brian's `poisson(lambda)`: the Poisson quantile of a uniform draw `u` (a
    /// [`Slot::Rand`]) for the mean `lambda`, as `Poisson(u, lambda)`.
    Poisson(Box<Ex>, Box<Ex>),
    /// Comparison (1.0 or 0.0).
    Cmp(Cmp, Box<Ex>, Box<Ex>),
    /// Logical and of two truth values.
    And(Box<Ex>, Box<Ex>),
    /// Logical or.
    Or(Box<Ex>, Box<Ex>),
    /// Logical not.
    Not(Box<Ex>),
}

/// `a + b`, folded.
pub fn add(a: Ex, b: Ex) -> Ex {
    match (&a, &b) {
        (Ex::Num(x), Ex::Num(y)) => Ex::Num(x + y),
        (Ex::Num(x), _) if *x == 0.0 => b,
        (_, Ex::Num(y)) if *y == 0.0 => a,
        _ => Ex::Add(Box::new(a), Box::new(b)),
    }
}

/// `a - b`, folded.
pub fn sub(a: Ex, b: Ex) -> Ex {
    match (&a, &b) {
        (Ex::Num(x), Ex::Num(y)) => Ex::Num(x - y),
        (_, Ex::Num(y)) if *y == 0.0 => a,
        (Ex::Num(x), _) if *x == 0.0 => neg(b),
        _ => Ex::Sub(Box::new(a), Box::new(b)),
    }
}

/// `a * b`, folded. Multiplying by an exact zero gives zero (as in symbolic algebra).
pub fn mul(a: Ex, b: Ex) -> Ex {
    match (&a, &b) {
        (Ex::Num(x), Ex::Num(y)) => Ex::Num(x * y),
        (Ex::Num(x), _) | (_, Ex::Num(x)) if *x == 0.0 => Ex::Num(0.0),
        (Ex::Num(x), _) if *x == 1.0 => b,
        (_, Ex::Num(y)) if *y == 1.0 => a,
        _ => Ex::Mul(Box::new(a), Box::new(b)),
    }
}

/// `a / b`, folded.
pub fn div(a: Ex, b: Ex) -> Ex {
    match (&a, &b) {
        (Ex::Num(x), Ex::Num(y)) => Ex::Num(x / y),
        (Ex::Num(x), _) if *x == 0.0 => Ex::Num(0.0),
        (_, Ex::Num(y)) if *y == 1.0 => a,
        _ => Ex::Div(Box::new(a), Box::new(b)),
    }
}

/// `-a`, folded.
pub fn neg(a: Ex) -> Ex {
    match a {
        Ex::Num(x) => Ex::Num(-x),
        Ex::Neg(inner) => *inner,
        _ => Ex::Neg(Box::new(a)),
    }
}

impl Ex {
    /// The operands of a node.
    fn children(&self) -> impl Iterator<Item = &Ex> {
        let (a, b, c): (Option<&Ex>, Option<&Ex>, Option<&Ex>) = match self {
            Ex::Num(_) | Ex::Slot(_) => (None, None, None),
            Ex::Neg(a) | Ex::Call(_, a) | Ex::Not(a) => (Some(a), None, None),
            Ex::Add(a, b)
            | Ex::Sub(a, b)
            | Ex::Mul(a, b)
            | Ex::Div(a, b)
            | Ex::Pow(a, b)
            | Ex::Cmp(_, a, b)
            | Ex::And(a, b)
            | Ex::Or(a, b)
            | Ex::Poisson(a, b) => (Some(a), Some(b), None),
            Ex::Clip(a, b, c) => (Some(a), Some(b), Some(c)),
        };
        a.into_iter().chain(b).chain(c)
    }

    /// Depth of the tree (a leaf has depth 1). Iterative, so that it is safe on any tree:
    /// it is what checks that trees stay within [`crate::syntax::MAX_DEPTH`].
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((e, d)) = stack.pop() {
            deepest = deepest.max(d);
            stack.extend(e.children().map(|c| (c, d + 1)));
        }
        deepest
    }

    /// Whether the expression reads `slot`.
    pub fn depends_on(&self, slot: Slot) -> bool {
        let mut found = false;
        self.visit(&mut |e| {
            if let Ex::Slot(s) = e
                && *s == slot
            {
                found = true;
            }
        });
        found
    }

    /// Calls `f` on every node (pre-order).
    pub fn visit(&self, f: &mut impl FnMut(&Ex)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }

    /// Replaces slots by expressions (simultaneously).
    pub fn subst(&self, f: &impl Fn(Slot) -> Option<Ex>) -> Ex {
        let s = |e: &Ex| Box::new(e.subst(f));
        match self {
            Ex::Num(v) => Ex::Num(*v),
            Ex::Slot(slot) => f(*slot).unwrap_or(Ex::Slot(*slot)),
            Ex::Add(a, b) => Ex::Add(s(a), s(b)),
            Ex::Sub(a, b) => Ex::Sub(s(a), s(b)),
            Ex::Mul(a, b) => Ex::Mul(s(a), s(b)),
            Ex::Div(a, b) => Ex::Div(s(a), s(b)),
            Ex::Neg(a) => Ex::Neg(s(a)),
            Ex::Pow(a, b) => Ex::Pow(s(a), s(b)),
            Ex::Call(func, a) => Ex::Call(*func, s(a)),
            Ex::Clip(a, b, c) => Ex::Clip(s(a), s(b), s(c)),
            Ex::Poisson(a, b) => Ex::Poisson(s(a), s(b)),
            Ex::Cmp(c, a, b) => Ex::Cmp(*c, s(a), s(b)),
            Ex::And(a, b) => Ex::And(s(a), s(b)),
            Ex::Or(a, b) => Ex::Or(s(a), s(b)),
            Ex::Not(a) => Ex::Not(s(a)),
        }
    }

    /// Splits `self = A*x + B` for the slot `x`.
    ///
    /// This is the conditional linearity of Brian's exponential Euler, which groups the
    /// expanded expression by powers of `x` (sympy's `collect`): terms proportional to `x`
    /// form `A`; terms where `x` occurs only inside functions, denominators or exponents
    /// belong to `B` (so the exponential term of AdEx is allowed and frozen over a step);
    /// `x` multiplied by itself or raised to a power is an error that says so.
    pub fn linear_in(&self, x: Slot) -> Result<(Ex, Ex), String> {
        if !self.depends_on(x) {
            return Ok((Ex::Num(0.0), self.clone()));
        }
        let is_zero = |e: &Ex| matches!(e, Ex::Num(v) if *v == 0.0);
        match self {
            Ex::Slot(s) if *s == x => Ok((Ex::Num(1.0), Ex::Num(0.0))),
            Ex::Add(a, b) => {
                let (aa, ab) = a.linear_in(x)?;
                let (ba, bb) = b.linear_in(x)?;
                Ok((add(aa, ba), add(ab, bb)))
            }
            Ex::Sub(a, b) => {
                let (aa, ab) = a.linear_in(x)?;
                let (ba, bb) = b.linear_in(x)?;
                Ok((sub(aa, ba), sub(ab, bb)))
            }
            Ex::Neg(a) => {
                let (aa, ab) = a.linear_in(x)?;
                Ok((neg(aa), neg(ab)))
            }
            Ex::Mul(a, b) => {
                let (aa, ab) = a.linear_in(x)?;
                let (ba, bb) = b.linear_in(x)?;
                match (is_zero(&aa), is_zero(&ba)) {
                    (false, false) => Err("it is multiplied by itself".into()),
                    (false, true) => Ok((mul(aa, (**b).clone()), mul(ab, (**b).clone()))),
                    (true, false) => Ok((mul((**a).clone(), ba), mul((**a).clone(), bb))),
                    (true, true) => Ok((Ex::Num(0.0), self.clone())),
                }
            }
            Ex::Div(a, b) => {
                if b.depends_on(x) {
                    return Ok((Ex::Num(0.0), self.clone()));
                }
                let (aa, ab) = a.linear_in(x)?;
                Ok((div(aa, (**b).clone()), div(ab, (**b).clone())))
            }
            Ex::Pow(base, e) => {
                if matches!(**e, Ex::Num(p) if p == 1.0) {
                    return base.linear_in(x);
                }
                let (ba, _) = base.linear_in(x)?;
                if !is_zero(&ba) && !e.depends_on(x) {
                    return Err("it is raised to a power".into());
                }
                Ok((Ex::Num(0.0), self.clone()))
            }
            _ => Ok((Ex::Num(0.0), self.clone())),
        }
    }

    /// Evaluates with slot values from `f` (reference semantics, used by tests and folding).
    pub fn eval(&self, f: &impl Fn(Slot) -> f64) -> f64 {
        let b = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            Ex::Num(v) => *v,
            Ex::Slot(s) => f(*s),
            Ex::Add(a, c) => a.eval(f) + c.eval(f),
            Ex::Sub(a, c) => a.eval(f) - c.eval(f),
            Ex::Mul(a, c) => a.eval(f) * c.eval(f),
            Ex::Div(a, c) => a.eval(f) / c.eval(f),
            Ex::Neg(a) => -a.eval(f),
            Ex::Pow(a, c) => a.eval(f).powf(c.eval(f)),
            Ex::Call(func, a) => func.eval(a.eval(f)),
            Ex::Clip(a, lo, hi) => clip(a.eval(f), lo.eval(f), hi.eval(f)),
            Ex::Poisson(u, lambda) => poisson_quantile(u.eval(f), lambda.eval(f)),
            Ex::Cmp(c, a, d) => b(c.eval(a.eval(f), d.eval(f))),
            Ex::And(a, c) => b(a.eval(f) != 0.0 && c.eval(f) != 0.0),
            Ex::Or(a, c) => b(a.eval(f) != 0.0 || c.eval(f) != 0.0),
            Ex::Not(a) => b(a.eval(f) == 0.0),
        }
    }
}

/// `clip` with NaN passed through (a blow-up must stay visible).
#[inline(always)]
pub fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// The smallest `k` with `P(X <= k) > u` for `X ~ Poisson(lambda)`: a Poisson draw from one
/// uniform draw `u` in [0, 1) (inverse transform). 0 for `lambda <= 0`, NaN for NaN.
pub fn poisson_quantile(u: f64, lambda: f64) -> f64 {
    if lambda.is_nan() || u.is_nan() {
        return f64::NAN;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    if lambda.is_infinite() {
        return f64::INFINITY;
    }
    // Terms in the log domain, so that `exp(-lambda)` cannot underflow; the walk stops
    // well past the mean, where the remaining mass is below rounding.
    let log_lambda = lambda.ln();
    let mut log_p = -lambda;
    let mut cdf = log_p.exp();
    let mut k = 0.0;
    let last = lambda + 40.0 * lambda.sqrt() + 40.0;
    while cdf <= u && k < last {
        k += 1.0;
        log_p += log_lambda - f64::ln(k);
        cdf += log_p.exp();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Ex {
        Ex::Slot(Slot::State(0))
    }
    fn p(k: usize) -> Ex {
        Ex::Slot(Slot::Param(k))
    }

    #[test]
    fn linear_split_of_a_membrane_equation() {
        // (p0*(p1 - v) + p2)/p3
        let e = div(add(mul(p(0), sub(p(1), v())), p(2)), p(3));
        let (a, b) = e.linear_in(Slot::State(0)).unwrap();
        assert!(!a.depends_on(Slot::State(0)) && !b.depends_on(Slot::State(0)));
        let vals = [2.0, -3.0, 0.5, 4.0];
        let env = |x: f64| move |s: Slot| if let Slot::Param(k) = s { vals[k] } else { x };
        for x in [-2.0, 0.0, 1.5] {
            let lhs = e.eval(&env(x));
            let rhs = a.eval(&env(x)) * x + b.eval(&env(x));
            assert!((lhs - rhs).abs() < 1e-12);
        }
    }

    #[test]
    fn powers_of_the_variable_are_reported() {
        let e = add(mul(v(), v()), p(0));
        assert!(
            e.linear_in(Slot::State(0))
                .unwrap_err()
                .contains("multiplied by itself")
        );
        let e = Ex::Pow(Box::new(sub(v(), p(1))), Box::new(Ex::Num(2.0)));
        assert!(e.linear_in(Slot::State(0)).unwrap_err().contains("power"));
    }

    #[test]
    fn terms_inside_functions_go_to_b_as_in_brian() {
        // AdEx: -v + exp(v): A = -1, B = exp(v).
        let ex = Ex::Call(Func::Exp, Box::new(v()));
        let e = add(neg(v()), ex.clone());
        let (a, b) = e.linear_in(Slot::State(0)).unwrap();
        assert_eq!(a, Ex::Num(-1.0));
        assert_eq!(b, ex);
        let e = div(p(0), v());
        let (a, _) = e.linear_in(Slot::State(0)).unwrap();
        assert_eq!(a, Ex::Num(0.0));
    }
}
