//! Name resolution, dimension checking and constant folding: syntax trees to [`Ex`].

use crate::error::{Location, Result, SimError, closest};
use crate::ir::{self, Cmp, Ex, Func, Slot};
use crate::syntax::{BinOp, Expr, ExprKind, MAX_DEPTH, Source, UnOp};
use crate::units::{Dimension, Quantity, lookup_unit};
use std::collections::HashMap;

/// What a name refers to.
#[derive(Clone, Debug)]
pub(crate) enum Symbol {
    /// A per-neuron slot with its dimension.
    Slot(Slot, Dimension),
    /// A subexpression, lowered on first use.
    Subexpr(usize),
    /// A constant from the namespace.
    Const(Quantity),
}

/// The names visible to expressions of one model.
pub(crate) struct Scope {
    pub symbols: HashMap<String, Symbol>,
    /// Subexpressions: name, source, declared dimension, lowered form once known.
    pub subexprs: Vec<SubexprEntry>,
    /// Noise sources met so far (`xi`, `xi_name`).
    pub noise: Vec<String>,
    /// Random draws met so far, one per call of `rand()` (false) or `randn()` (true).
    pub rand: Vec<bool>,
    /// Depth in the lowered tree of the node being lowered, subexpressions written out:
    /// bounds both the recursion of lowering and the depth of what it builds.
    level: usize,
}

pub(crate) struct SubexprEntry {
    pub name: String,
    pub expr: Expr,
    pub dim: Dimension,
    pub lowered: Option<Ex>,
    /// Tree depth of `lowered`.
    pub depth: usize,
    pub in_progress: bool,
}

/// Where expressions are being checked, which decides the symbols allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Right-hand side of a differential equation: noise allowed.
    Differential,
    /// Anything per-neuron without noise.
    Plain,
    /// Constant expressions only (namespace values, units, numbers).
    Constant,
}

const NOISE_DIM: Dimension = Dimension::new(0.0, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0);
pub(crate) const SECOND: Dimension = Dimension::new(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0);

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Scope {
            symbols: HashMap::new(),
            subexprs: Vec::new(),
            noise: Vec::new(),
            rand: Vec::new(),
            level: 0,
        }
    }

    fn all_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.symbols.keys().cloned().collect();
        v.extend(["t", "dt", "i", "xi", "pi", "inf", "True", "False"].map(String::from));
        v.extend(Func::NAMES.iter().map(|s| s.to_string()));
        v
    }

    /// Lowers `e` (from `src`), returning its form and dimension.
    pub fn lower(&mut self, src: &Source, e: &Expr, ctx: Context) -> Result<(Ex, Dimension)> {
        self.level += 1;
        let r = self
            .check_depth(src, e.offset, 0)
            .and_then(|()| self.lower_node(src, e, ctx));
        self.level -= 1;
        r
    }

    /// Refuses a node at the current level whose lowered form adds `extra` levels below it.
    fn check_depth(&self, src: &Source, offset: usize, extra: usize) -> Result<()> {
        let depth = self.level + extra;
        if depth > MAX_DEPTH {
            return Err(SimError::syntax(
                src.locate(offset),
                format!(
                    "expression nested too deeply: depth {depth} exceeds the limit of {MAX_DEPTH} (with subexpressions written out)"
                ),
            ));
        }
        Ok(())
    }

    fn lower_node(&mut self, src: &Source, e: &Expr, ctx: Context) -> Result<(Ex, Dimension)> {
        let at = |o: usize| src.locate(o);
        match &e.kind {
            ExprKind::Num(v) => Ok((Ex::Num(*v), Dimension::DIMENSIONLESS)),
            ExprKind::Name(n) => self.name(src, n, e.offset, ctx),
            ExprKind::Unary(op, a) => {
                let (x, d) = self.lower(src, a, ctx)?;
                match op {
                    UnOp::Neg => Ok((ir::neg(x), d)),
                    UnOp::Pos => Ok((x, d)),
                    UnOp::Not => {
                        require_dimensionless(&d, at(a.offset), "operand of `not`")?;
                        Ok((not(x), d))
                    }
                }
            }
            ExprKind::Binary(op, a, b) => {
                let (x, dx) = self.lower(src, a, ctx)?;
                let (y, dy) = self.lower(src, b, ctx)?;
                let same = |what: &str| -> Result<()> {
                    if dx != dy {
                        return Err(SimError::Dimension {
                            at: at(e.offset),
                            context: format!("the two sides of {what} `{e}`"),
                            left: dx,
                            right: dy,
                        });
                    }
                    Ok(())
                };
                match op {
                    BinOp::Add => {
                        same("an addition")?;
                        Ok((ir::add(x, y), dx))
                    }
                    BinOp::Sub => {
                        same("a subtraction")?;
                        Ok((ir::sub(x, y), dx))
                    }
                    BinOp::Mul => Ok((ir::mul(x, y), dx.mul(&dy))),
                    BinOp::Div => Ok((ir::div(x, y), dx.div(&dy))),
                    BinOp::FloorDiv => {
                        same("a floor division")?;
                        Ok((floor_div(x, y), Dimension::DIMENSIONLESS))
                    }
                    BinOp::Mod => {
                        same("a modulo")?;
                        let q = floor_div(x.clone(), y.clone());
                        Ok((ir::sub(x, ir::mul(y, q)), dx))
                    }
                    BinOp::Pow => {
                        require_dimensionless(&dy, at(b.offset), "an exponent")?;
                        let dim = if dx.is_dimensionless() {
                            dx
                        } else {
                            match y {
                                Ex::Num(p) => dx.powf(p),
                                _ => {
                                    return Err(SimError::syntax(
                                        at(b.offset),
                                        format!(
                                            "the exponent of a quantity with units ({dx}) must be a constant number"
                                        ),
                                    ));
                                }
                            }
                        };
                        let folded = match (&x, &y) {
                            (Ex::Num(a), Ex::Num(p)) => Ex::Num(a.powf(*p)),
                            _ => Ex::Pow(Box::new(x), Box::new(y)),
                        };
                        Ok((folded, dim))
                    }
                    BinOp::And | BinOp::Or => {
                        require_dimensionless(&dx, at(a.offset), "operand of a logical operator")?;
                        require_dimensionless(&dy, at(b.offset), "operand of a logical operator")?;
                        let v = if *op == BinOp::And {
                            Ex::And(Box::new(x), Box::new(y))
                        } else {
                            Ex::Or(Box::new(x), Box::new(y))
                        };
                        Ok((fold(v), Dimension::DIMENSIONLESS))
                    }
                    cmp => {
                        same("a comparison")?;
                        let c = match cmp {
                            BinOp::Lt => Cmp::Lt,
                            BinOp::Le => Cmp::Le,
                            BinOp::Gt => Cmp::Gt,
                            BinOp::Ge => Cmp::Ge,
                            BinOp::Eq => Cmp::Eq,
                            _ => Cmp::Ne,
                        };
                        Ok((
                            fold(Ex::Cmp(c, Box::new(x), Box::new(y))),
                            Dimension::DIMENSIONLESS,
                        ))
                    }
                }
            }
            ExprKind::Call(name, args) => {
                if let Some(r) = self.special_call(src, e, name, args, ctx) {
                    return r;
                }
                if name == "clip" {
                    if args.len() != 3 {
                        return Err(SimError::syntax(
                            at(e.offset),
                            format!(
                                "`clip` takes 3 arguments (value, low, high), got {}",
                                args.len()
                            ),
                        ));
                    }
                    let (x, dx) = self.lower(src, &args[0], ctx)?;
                    let (lo, dl) = self.lower(src, &args[1], ctx)?;
                    let (hi, dh) = self.lower(src, &args[2], ctx)?;
                    for (d, arg) in [(dl, &args[1]), (dh, &args[2])] {
                        if d != dx {
                            return Err(SimError::Dimension {
                                at: at(arg.offset),
                                context: "a bound of `clip` and its value".into(),
                                left: d,
                                right: dx,
                            });
                        }
                    }
                    return Ok((fold(Ex::Clip(Box::new(x), Box::new(lo), Box::new(hi))), dx));
                }
                let Some(f) = Func::from_name(name) else {
                    return Err(SimError::UnknownIdentifier {
                        name: format!("{name}()"),
                        at: at(e.offset),
                        suggestion: closest(name, Func::NAMES.iter().copied()),
                    });
                };
                if args.len() != 1 {
                    return Err(SimError::syntax(
                        at(e.offset),
                        format!("`{name}` takes 1 argument, got {}", args.len()),
                    ));
                }
                let (x, d) = self.lower(src, &args[0], ctx)?;
                let dim = if f.needs_dimensionless() {
                    if !d.is_dimensionless() {
                        return Err(SimError::Dimension {
                            at: at(args[0].offset),
                            context: format!("the argument of `{name}` must be dimensionless"),
                            left: d,
                            right: Dimension::DIMENSIONLESS,
                        });
                    }
                    d
                } else if f == Func::Sqrt {
                    d.powf(0.5)
                } else if f == Func::Sign {
                    Dimension::DIMENSIONLESS
                } else {
                    d
                };
                let v = match x {
                    Ex::Num(a) => Ex::Num(f.eval(a)),
                    x => Ex::Call(f, Box::new(x)),
                };
                Ok((v, dim))
            }
        }
    }

    /// Brian's calls that are not plain functions: `rand()`, `randn()`, `timestep(x, dt)`
    /// and inputs called as TimedArrays, `stim(t)` or `stim(t, i)`.
    fn special_call(
        &mut self,
        src: &Source,
        e: &Expr,
        name: &str,
        args: &[Expr],
        ctx: Context,
    ) -> Option<Result<(Ex, Dimension)>> {
        let at = src.locate(e.offset);
        let arity = |n: usize, form: &str| -> Result<()> {
            if args.len() != n {
                return Err(SimError::syntax(
                    at.clone(),
                    format!(
                        "`{name}` takes {n} argument(s), as in `{form}`; got {}",
                        args.len()
                    ),
                ));
            }
            Ok(())
        };
        match name {
            "rand" | "randn" if !self.symbols.contains_key(name) => Some((|| {
                arity(0, &format!("{name}()"))?;
                if ctx == Context::Constant {
                    return Err(SimError::syntax(
                        at.clone(),
                        format!("`{name}()` is random and cannot be used in a constant"),
                    ));
                }
                if ctx == Context::Differential {
                    return Err(SimError::syntax(
                        at.clone(),
                        format!(
                            "`{name}()` cannot appear in a differential equation (Brian refuses it too); white noise is written `xi`"
                        ),
                    ));
                }
                self.rand.push(name == "randn");
                Ok((
                    Ex::Slot(Slot::Rand(self.rand.len() - 1)),
                    Dimension::DIMENSIONLESS,
                ))
            })()),
            "poisson" if !self.symbols.contains_key(name) => Some((|| {
                arity(1, "poisson(lambda)")?;
                if ctx == Context::Constant {
                    return Err(SimError::syntax(
                        at.clone(),
                        "`poisson()` is random and cannot be used in a constant",
                    ));
                }
                if ctx == Context::Differential {
                    return Err(SimError::syntax(
                        at.clone(),
                        "`poisson()` cannot appear in a differential equation (Brian refuses it too)",
                    ));
                }
                let (lambda, d) = self.lower(src, &args[0], ctx)?;
                if !d.is_dimensionless() {
                    return Err(SimError::Dimension {
                        at: at.clone(),
                        context: "the mean of `poisson`".into(),
                        left: d,
                        right: Dimension::DIMENSIONLESS,
                    });
                }
                self.rand.push(false);
                let u = Ex::Slot(Slot::Rand(self.rand.len() - 1));
                Ok((
                    Ex::Poisson(Box::new(u), Box::new(lambda)),
                    Dimension::DIMENSIONLESS,
                ))
            })()),
            "timestep" if !self.symbols.contains_key(name) => Some((|| {
                arity(2, "timestep(t, dt)")?;
                let (x, dx) = self.lower(src, &args[0], ctx)?;
                let (step, ds) = self.lower(src, &args[1], ctx)?;
                if dx != SECOND || ds != SECOND {
                    return Err(SimError::Dimension {
                        at: at.clone(),
                        context: "both arguments of `timestep` must be durations".into(),
                        left: if dx != SECOND { dx } else { ds },
                        right: SECOND,
                    });
                }
                // Brian: int((x + 1e-3*dt)/dt), robust to the rounding of x.
                let shifted = ir::add(x, ir::mul(Ex::Num(1e-3), step.clone()));
                Ok((floor_div(shifted, step), Dimension::DIMENSIONLESS))
            })()),
            _ => match self.symbols.get(name) {
                Some(Symbol::Slot(Slot::Input(k), d)) => {
                    let (k, d) = (*k, *d);
                    let is = |a: &Expr, n: &str| matches!(&a.kind, ExprKind::Name(x) if x == n);
                    let ok = match args {
                        [a] => is(a, "t"),
                        [a, b] => is(a, "t") && is(b, "i"),
                        _ => false,
                    };
                    Some(if ok {
                        Ok((Ex::Slot(Slot::Input(k)), d))
                    } else {
                        Err(SimError::syntax(
                            at,
                            format!(
                                "the input `{name}` is a TimedArray sampled at the current time: call it as `{name}(t)` or `{name}(t, i)` (other arguments are not supported)"
                            ),
                        ))
                    })
                }
                _ => None,
            },
        }
    }

    fn name(
        &mut self,
        src: &Source,
        n: &str,
        offset: usize,
        ctx: Context,
    ) -> Result<(Ex, Dimension)> {
        let at = src.locate(offset);
        let not_here = |what: &str| {
            Err(SimError::syntax(
                at.clone(),
                format!(
                    "`{n}` is {what} and cannot be used here (only constants, units and numbers)"
                ),
            ))
        };
        if let Some(sym) = self.symbols.get(n).cloned() {
            return match sym {
                Symbol::Const(q) => Ok((Ex::Num(q.value), q.dim)),
                Symbol::Slot(s, d) => {
                    if ctx == Context::Constant && !matches!(s, Slot::Dt) {
                        return not_here("a per-neuron value");
                    }
                    Ok((Ex::Slot(s), d))
                }
                Symbol::Subexpr(k) => {
                    if ctx == Context::Constant {
                        return not_here("a subexpression");
                    }
                    self.subexpr(src, k, offset)
                }
            };
        }
        match n {
            "t" | "i" if ctx == Context::Constant => not_here("a per-neuron value"),
            "t" => Ok((Ex::Slot(Slot::Time), SECOND)),
            "dt" => Ok((Ex::Slot(Slot::Dt), SECOND)),
            "i" => Ok((Ex::Slot(Slot::Index), Dimension::DIMENSIONLESS)),
            "not_refractory" if ctx == Context::Constant => not_here("a per-neuron value"),
            "not_refractory" => Ok((Ex::Slot(Slot::NotRefractory(0)), Dimension::DIMENSIONLESS)),
            "lastspike" if ctx == Context::Constant => not_here("a per-neuron value"),
            "lastspike" => Ok((Ex::Slot(Slot::LastSpike(0)), SECOND)),
            _ if n == "xi" || n.starts_with("xi_") => {
                if ctx != Context::Differential {
                    return Err(SimError::syntax(
                        at,
                        format!("white noise `{n}` may appear only in differential equations"),
                    ));
                }
                let k = match self.noise.iter().position(|x| x == n) {
                    Some(k) => k,
                    None => {
                        self.noise.push(n.to_string());
                        self.noise.len() - 1
                    }
                };
                Ok((Ex::Slot(Slot::Noise(k)), NOISE_DIM))
            }
            _ if builtin_constant(n).is_some() => Ok((
                Ex::Num(builtin_constant(n).unwrap_or(f64::NAN)),
                Dimension::DIMENSIONLESS,
            )),
            _ => match lookup_unit(n) {
                Some(q) => Ok((Ex::Num(q.value), q.dim)),
                None => Err(SimError::UnknownIdentifier {
                    name: n.to_string(),
                    at,
                    suggestion: closest(n, self.all_names().iter().map(|s| s.as_str())),
                }),
            },
        }
    }

    fn subexpr(&mut self, src: &Source, k: usize, offset: usize) -> Result<(Ex, Dimension)> {
        if let Some(l) = &self.subexprs[k].lowered {
            // The name's node is replaced by the whole lowered tree.
            self.check_depth(src, offset, self.subexprs[k].depth - 1)?;
            return Ok((l.clone(), self.subexprs[k].dim));
        }
        if self.subexprs[k].in_progress {
            return Err(SimError::syntax(
                src.locate(offset),
                format!(
                    "subexpression `{}` refers to itself (directly or through others)",
                    self.subexprs[k].name
                ),
            ));
        }
        self.subexprs[k].in_progress = true;
        let expr = self.subexprs[k].expr.clone();
        // Its root takes the name's place, on the name's level.
        self.level -= 1;
        let lowered = self.lower(src, &expr, Context::Plain);
        self.level += 1;
        let (x, d) = lowered?;
        let declared = self.subexprs[k].dim;
        if d != declared {
            return Err(SimError::Dimension {
                at: src.locate(expr.offset),
                context: format!(
                    "subexpression `{}`: right-hand side vs declared unit",
                    self.subexprs[k].name
                ),
                left: d,
                right: declared,
            });
        }
        self.subexprs[k].in_progress = false;
        self.subexprs[k].depth = x.depth();
        self.subexprs[k].lowered = Some(x.clone());
        Ok((x, d))
    }
}

fn require_dimensionless(d: &Dimension, at: Location, what: &str) -> Result<()> {
    if !d.is_dimensionless() {
        return Err(SimError::Dimension {
            at,
            context: format!("{what} must be dimensionless"),
            left: *d,
            right: Dimension::DIMENSIONLESS,
        });
    }
    Ok(())
}

/// Python's `a // b`, `floor(a/b)`, folded when both are numbers.
fn floor_div(a: Ex, b: Ex) -> Ex {
    match ir::div(a, b) {
        Ex::Num(q) => Ex::Num(q.floor()),
        q => Ex::Call(Func::Floor, Box::new(q)),
    }
}

/// Brian's built-in constants (numpy's `pi`, `e`, `inf`) and Python's booleans; the
/// namespace and the equations may shadow them, as in Brian.
fn builtin_constant(n: &str) -> Option<f64> {
    Some(match n {
        "pi" => std::f64::consts::PI,
        "e" => std::f64::consts::E,
        "inf" => f64::INFINITY,
        "True" => 1.0,
        "False" => 0.0,
        _ => return None,
    })
}

fn not(x: Ex) -> Ex {
    fold(Ex::Not(Box::new(x)))
}

/// Folds an expression whose operands are all numbers.
fn fold(e: Ex) -> Ex {
    let all_num = match &e {
        Ex::Cmp(_, a, b) | Ex::And(a, b) | Ex::Or(a, b) => {
            matches!((&**a, &**b), (Ex::Num(_), Ex::Num(_)))
        }
        Ex::Not(a) => matches!(**a, Ex::Num(_)),
        Ex::Clip(a, b, c) => matches!((&**a, &**b, &**c), (Ex::Num(_), Ex::Num(_), Ex::Num(_))),
        _ => false,
    };
    if all_num {
        Ex::Num(e.eval(&|_| f64::NAN))
    } else {
        e
    }
}

/// Evaluates a constant expression (numbers, units, constants of `scope`) from text.
pub(crate) fn eval_constant(scope: &mut Scope, origin: &str, text: &str) -> Result<Quantity> {
    let src = Source::new(origin, text);
    let e = crate::syntax::parse_expr(origin, text)?;
    let (x, d) = scope.lower(&src, &e, Context::Constant)?;
    match x {
        Ex::Num(v) => Ok(Quantity::new(v, d)),
        _ => Err(SimError::syntax(
            src.locate(0),
            format!("`{text}` is not a constant expression"),
        )),
    }
}
