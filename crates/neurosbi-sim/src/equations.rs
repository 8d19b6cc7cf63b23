//! Equation sets in Brian's syntax: differential equations, subexpressions and parameters,
//! plus reset statements.
//!
//! ```text
//! dv/dt = (gl*(El - v) + I)/C : volt (unless refractory)   # a differential equation
//! I_l = gl*(El - v) : amp                                  # a subexpression
//! gl : siemens (constant)                                  # a parameter
//! ```
//! A statement continues over several lines while a parenthesis is open, a line ends in
//! `\`, or (as in Brian, whose expressions run up to the `:`) the equation has not reached
//! its `: unit` yet. `#` starts a comment.

use crate::error::{Result, SimError};
use crate::syntax::{Expr, ExprKind, Source, parse_expr_range};
use crate::units::{Dimension, Quantity, lookup_unit};
use std::fmt;

/// What an equation line declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EquationKind {
    /// `dx/dt = expr : unit`
    Differential,
    /// `name = expr : unit`
    Subexpression,
    /// `name : unit`
    Parameter,
}

/// Flags in parentheses after the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags {
    /// `(constant)`: a parameter that does not change during a run.
    pub constant: bool,
    /// `(unless refractory)`: the variable is frozen while the neuron is refractory.
    pub unless_refractory: bool,
    /// `(shared)`: one value for the whole group. A Brian group here is the neurons of one
    /// parameter set (its stimulus traces), which share their parameters already.
    pub shared: bool,
    /// `(constant over dt)`: a subexpression evaluated once at the start of each step and
    /// held while the step is integrated.
    pub constant_over_dt: bool,
    /// `(clock-driven)`: a synaptic differential equation integrated every step.
    pub clock_driven: bool,
    /// `(event-driven)`: a synaptic differential equation updated only at spikes.
    pub event_driven: bool,
    /// `(summed)`: a synaptic subexpression summed into a post-synaptic parameter.
    pub summed: bool,
}

/// One line of an equation set.
#[derive(Clone, Debug)]
pub struct Equation {
    /// Kind of declaration.
    pub kind: EquationKind,
    /// The variable declared.
    pub name: String,
    /// The right-hand side (none for parameters).
    pub expr: Option<Expr>,
    /// The declared unit as written.
    pub unit: Expr,
    /// The declared unit's dimension.
    pub dim: Dimension,
    /// Flags.
    pub flags: Flags,
    /// Byte offset of the declared name in the source (for errors).
    pub offset: usize,
}

/// A parsed set of equations with its source text (for error locations).
#[derive(Clone, Debug)]
pub struct EquationSet {
    /// The equations in the order written.
    pub equations: Vec<Equation>,
    /// The text they were parsed from.
    pub source: Source,
}

/// Splits a text into logical statements: byte ranges into a sanitised copy of the text in
/// which comments and line continuations are blanked out (same length, so byte offsets and
/// error locations stay those of the original).
pub(crate) fn statements(text: &str, split_on_semicolon: bool) -> (String, Vec<(usize, usize)>) {
    let mut clean: Vec<u8> = text.as_bytes().to_vec();
    let mut out = Vec::new();
    let mut depth: i64 = 0;
    let mut start = 0;
    let mut i = 0;
    // Equations only: whether the statement so far has its `:` (else it goes on).
    let mut has_colon = split_on_semicolon;
    while i < clean.len() {
        match clean[i] {
            b'#' => {
                while i < clean.len() && clean[i] != b'\n' {
                    clean[i] = b' ';
                    i += 1;
                }
                continue;
            }
            b'\\' => {
                let mut j = i + 1;
                while j < clean.len()
                    && (clean[j] == b' ' || clean[j] == b'\t' || clean[j] == b'\r')
                {
                    j += 1;
                }
                if j < clean.len() && clean[j] == b'\n' {
                    for c in &mut clean[i..=j] {
                        *c = b' ';
                    }
                    i = j + 1;
                    continue;
                }
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b':' if depth <= 0 => has_colon = true,
            b'\n' if depth <= 0 && (has_colon || clean[start..i].trim_ascii().is_empty()) => {
                out.push((start, i));
                start = i + 1;
                depth = 0;
                has_colon = split_on_semicolon;
            }
            b';' if split_on_semicolon && depth <= 0 => {
                clean[i] = b' ';
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push((start, clean.len()));
    let clean = String::from_utf8(clean)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let out = out
        .into_iter()
        .filter_map(|(s, e)| {
            let seg = &clean[s..e];
            let lead = seg.len() - seg.trim_start().len();
            let trimmed = seg.trim();
            (!trimmed.is_empty()).then(|| (s + lead, s + lead + trimmed.len()))
        })
        .collect();
    (clean, out)
}

/// Finds a byte at parenthesis depth 0 in `text[s..e]`, from the left or the right.
fn find_top(
    text: &str,
    s: usize,
    e: usize,
    pred: impl Fn(&[u8], usize) -> bool,
    from_right: bool,
) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0i64;
    let idx: Box<dyn Iterator<Item = usize>> = if from_right {
        Box::new((s..e).rev())
    } else {
        Box::new(s..e)
    };
    for i in idx {
        let c = b[i];
        let (open, close) = if from_right {
            (b')', b'(')
        } else {
            (b'(', b')')
        };
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
        } else if depth == 0 && pred(b, i) {
            return Some(i);
        }
    }
    None
}

fn is_assign(b: &[u8], i: usize) -> bool {
    b[i] == b'='
        && !(i > 0 && matches!(b[i - 1], b'=' | b'<' | b'>' | b'!'))
        && !(i + 1 < b.len() && b[i + 1] == b'=')
}

/// Built-in names that the user cannot declare or shadow: the clock, the neuron index, white
/// noise and the logical keywords.
pub(crate) fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "t" | "dt" | "i" | "xi" | "and" | "or" | "not" | "not_refractory" | "lastspike"
    ) || name.starts_with("xi_")
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Evaluates a unit expression (`volt`, `amp/metre**2`, `1`, `second**-0.5`).
pub fn eval_unit(src: &Source, e: &Expr) -> Result<Quantity> {
    let at = || src.locate(e.offset);
    match &e.kind {
        ExprKind::Num(v) => Ok(Quantity::dimensionless(*v)),
        ExprKind::Name(n) => lookup_unit(n).ok_or_else(|| SimError::UnknownIdentifier {
            name: n.clone(),
            at: at(),
            suggestion: crate::error::closest(n, crate::units::base_unit_names()),
        }),
        ExprKind::Unary(crate::syntax::UnOp::Neg, a) => {
            let q = eval_unit(src, a)?;
            Ok(Quantity::new(-q.value, q.dim))
        }
        ExprKind::Binary(op, a, b) => {
            let (qa, qb) = (eval_unit(src, a)?, eval_unit(src, b)?);
            use crate::syntax::BinOp::*;
            match op {
                Mul => Ok(Quantity::new(qa.value * qb.value, qa.dim.mul(&qb.dim))),
                Div => Ok(Quantity::new(qa.value / qb.value, qa.dim.div(&qb.dim))),
                Pow if qb.dim.is_dimensionless() => Ok(Quantity::new(
                    qa.value.powf(qb.value),
                    qa.dim.powf(qb.value),
                )),
                _ => Err(SimError::syntax(at(), format!("`{e}` is not a unit"))),
            }
        }
        _ => Err(SimError::syntax(at(), format!("`{e}` is not a unit"))),
    }
}

impl EquationSet {
    /// Parses an equation set; `origin` names the text in error messages.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let source = Source::new(origin, text);
        let (clean, stmts) = statements(text, false);
        let mut equations: Vec<Equation> = Vec::new();
        for (s, e) in stmts {
            let eq = parse_statement(&source, &clean, s, e)?;
            if let Some(prev) = equations.iter().find(|p| p.name == eq.name) {
                let first = source.locate(prev.offset);
                return Err(SimError::syntax(
                    source.locate(eq.offset),
                    format!(
                        "`{}` is declared twice (first at line {})",
                        eq.name, first.line
                    ),
                ));
            }
            equations.push(eq);
        }
        Ok(EquationSet { equations, source })
    }

    /// The equation declaring `name`.
    pub fn get(&self, name: &str) -> Option<&Equation> {
        self.equations.iter().find(|e| e.name == name)
    }
}

fn parse_statement(src: &Source, text: &str, s: usize, e: usize) -> Result<Equation> {
    let colon = find_top(text, s, e, |b, i| b[i] == b':', true).ok_or_else(|| {
        SimError::syntax(
            src.locate(s),
            "expected `: unit` at the end of the equation",
        )
    })?;
    // Unit and optional flags after the colon.
    let (mut us, mut ue) = (colon + 1, e);
    let mut flags = Flags::default();
    let right = text[us..ue].trim_end();
    if right.ends_with(')') {
        let close = us + right.len() - 1;
        // Matching parenthesis of the final `)`.
        let mut depth = 0i64;
        let mut open_at = None;
        for i in (us..=close).rev() {
            match text.as_bytes()[i] {
                b')' => depth += 1,
                b'(' => {
                    depth -= 1;
                    if depth == 0 {
                        open_at = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        // A final parenthesised group is a flag list unless it is part of the unit
        // (`siemens/(metre**2)`: the text before it ends in an operator).
        if let Some(o) = open_at
            && !text[us..o].trim().is_empty()
            && !text[us..o].trim_end().ends_with(['*', '/', '+', '-'])
        {
            for flag in text[o + 1..close].split(',') {
                match flag
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .as_str()
                {
                    "constant" => flags.constant = true,
                    "unless refractory" => flags.unless_refractory = true,
                    "shared" => flags.shared = true,
                    "constant over dt" => flags.constant_over_dt = true,
                    "clock-driven" => flags.clock_driven = true,
                    "event-driven" => flags.event_driven = true,
                    "summed" => flags.summed = true,
                    other => {
                        let at = o + 1 + text[o + 1..close].find(flag.trim()).unwrap_or(0);
                        return Err(SimError::syntax(
                            src.locate(at),
                            format!(
                                "unknown flag `{other}`; known flags: constant, unless refractory, shared, \
                                 constant over dt, clock-driven, event-driven, summed"
                            ),
                        ));
                    }
                }
            }
            ue = o;
        }
    }
    while us < ue && text.as_bytes()[us].is_ascii_whitespace() {
        us += 1;
    }
    let unit = parse_expr_range(src, text, us, ue)?;
    let dim = eval_unit(src, &unit)?.dim;

    let assign = find_top(text, s, colon, is_assign, false);
    let (lhs_s, lhs_e) = (s, assign.unwrap_or(colon));
    let lhs = text[lhs_s..lhs_e].trim();
    let name_offset = lhs_s + (text[lhs_s..lhs_e].len() - text[lhs_s..lhs_e].trim_start().len());
    let (kind, name, expr) = match assign {
        Some(a) => {
            if let Some(b) = find_top(text, a + 1, colon, is_assign, false) {
                return Err(SimError::syntax(
                    src.locate(b),
                    "a second `=` in one equation: the equation before it lacks its `: unit` \
                     (as in Brian, an equation runs over lines up to its `:`)",
                ));
            }
            let expr = parse_expr_range(src, text, a + 1, colon)?;
            let compact: String = lhs.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(var) = compact
                .strip_prefix('d')
                .and_then(|r| r.strip_suffix("/dt"))
                && is_identifier(var)
            {
                (EquationKind::Differential, var.to_string(), Some(expr))
            } else if is_identifier(lhs) {
                (EquationKind::Subexpression, lhs.to_string(), Some(expr))
            } else {
                return Err(SimError::syntax(
                    src.locate(name_offset),
                    format!("expected `dx/dt` or a name before `=`, found `{lhs}`"),
                ));
            }
        }
        None => {
            if !is_identifier(lhs) {
                return Err(SimError::syntax(
                    src.locate(name_offset),
                    format!("expected a parameter name before `:`, found `{lhs}`"),
                ));
            }
            (EquationKind::Parameter, lhs.to_string(), None)
        }
    };
    if is_reserved(&name) {
        return Err(SimError::syntax(
            src.locate(name_offset),
            format!("`{name}` is a reserved name and cannot be declared"),
        ));
    }
    if flags.unless_refractory && kind != EquationKind::Differential {
        return Err(SimError::syntax(
            src.locate(name_offset),
            format!(
                "`(unless refractory)` applies to differential equations only, not to `{name}`"
            ),
        ));
    }
    check_flags(src, name_offset, &name, kind, &flags)?;
    Ok(Equation {
        kind,
        name,
        expr,
        unit,
        dim,
        flags,
        offset: name_offset,
    })
}

/// Which flags go with which kind of equation (as Brian checks them); whether a flag is
/// allowed in a neuron group or in synapses is checked where the equations are used.
fn check_flags(src: &Source, at: usize, name: &str, kind: EquationKind, f: &Flags) -> Result<()> {
    let misplaced = |flag: &str, want: &str| {
        Err(SimError::syntax(
            src.locate(at),
            format!("`({flag})` applies to {want} only, not to `{name}`"),
        ))
    };
    let differential = kind == EquationKind::Differential;
    let subexpression = kind == EquationKind::Subexpression;
    if f.clock_driven && !differential {
        return misplaced("clock-driven", "differential equations");
    }
    if f.event_driven && !differential {
        return misplaced("event-driven", "differential equations");
    }
    if f.constant_over_dt && !subexpression {
        return misplaced("constant over dt", "subexpressions");
    }
    if f.summed && !subexpression {
        return misplaced("summed", "subexpressions");
    }
    if f.clock_driven && f.event_driven {
        return Err(SimError::syntax(
            src.locate(at),
            format!("`{name}` cannot be both clock-driven and event-driven"),
        ));
    }
    if f.summed && (f.constant_over_dt || f.shared) {
        return Err(SimError::syntax(
            src.locate(at),
            format!(
                "`(summed)` cannot be combined with `(shared)` or `(constant over dt)` (`{name}`)"
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for Equation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EquationKind::Differential => write!(f, "d{}/dt = ", self.name)?,
            EquationKind::Subexpression => write!(f, "{} = ", self.name)?,
            EquationKind::Parameter => write!(f, "{}", self.name)?,
        }
        if let Some(e) = &self.expr {
            write!(f, "{e}")?;
        }
        write!(f, " : {}", self.unit)?;
        let mut fl = Vec::new();
        if self.flags.constant {
            fl.push("constant");
        }
        if self.flags.unless_refractory {
            fl.push("unless refractory");
        }
        if self.flags.shared {
            fl.push("shared");
        }
        for (on, name) in [
            (self.flags.constant_over_dt, "constant over dt"),
            (self.flags.clock_driven, "clock-driven"),
            (self.flags.event_driven, "event-driven"),
            (self.flags.summed, "summed"),
        ] {
            if on {
                fl.push(name);
            }
        }
        if !fl.is_empty() {
            write!(f, " ({})", fl.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for EquationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.equations {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Update operators of reset statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`
    Set,
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
}

/// One statement of a reset: `target op= expr`.
#[derive(Clone, Debug)]
pub struct Statement {
    /// Assigned variable.
    pub target: String,
    /// Update operator.
    pub op: AssignOp,
    /// Right-hand side.
    pub expr: Expr,
    /// Byte offset of the target (for errors).
    pub offset: usize,
}

impl fmt::Display for AssignOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        })
    }
}

impl fmt::Display for Statement {
    /// Prints the statement so that parsing it gives it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.target, self.op, self.expr)
    }
}

/// Parses reset code: statements separated by newlines or `;`.
pub fn parse_statements(src: &Source, text: &str) -> Result<Vec<Statement>> {
    let (clean, stmts) = statements(text, true);
    let mut out = Vec::new();
    for (s, e) in stmts {
        let b = clean.as_bytes();
        let eq = find_top(
            &clean,
            s,
            e,
            |b, i| b[i] == b'=' && !(i + 1 < b.len() && b[i + 1] == b'='),
            false,
        )
        .ok_or_else(|| {
            SimError::syntax(
                src.locate(s),
                "expected an assignment such as `v = El` or `w += b`",
            )
        })?;
        let (op, lhs_end) = match eq.checked_sub(1).map(|p| b[p]) {
            Some(b'+') => (AssignOp::Add, eq - 1),
            Some(b'-') => (AssignOp::Sub, eq - 1),
            Some(b'*') => (AssignOp::Mul, eq - 1),
            Some(b'/') => (AssignOp::Div, eq - 1),
            Some(b'<' | b'>' | b'!') => {
                return Err(SimError::syntax(
                    src.locate(s),
                    "expected an assignment, found a comparison",
                ));
            }
            _ => (AssignOp::Set, eq),
        };
        let target = clean[s..lhs_end].trim();
        if !is_identifier(target) {
            return Err(SimError::syntax(
                src.locate(s),
                format!("expected a variable name before `=`, found `{target}`"),
            ));
        }
        let expr = parse_expr_range(src, &clean, eq + 1, e)?;
        out.push(Statement {
            target: target.to_string(),
            op,
            expr,
            offset: s,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HH: &str = "
# membrane
dv/dt = (gl*(El - v) - gNa*m**3*h*(v - ENa)
         - gK*n**4*(v - EK) + I)/C : volt (unless refractory)
dm/dt = alpha_m*(1-m) - beta_m*m : 1
alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
beta_m = 0.28/ms : Hz   # comment
gNa : siemens (constant)
";

    #[test]
    fn parses_all_line_kinds_and_multiline_statements() {
        let set = EquationSet::parse("equations", HH).unwrap();
        let kinds: Vec<_> = set
            .equations
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("v", EquationKind::Differential),
                ("m", EquationKind::Differential),
                ("alpha_m", EquationKind::Subexpression),
                ("beta_m", EquationKind::Subexpression),
                ("gNa", EquationKind::Parameter),
            ]
        );
        assert!(set.get("v").unwrap().flags.unless_refractory);
        assert!(set.get("gNa").unwrap().flags.constant);
        assert_eq!(set.get("m").unwrap().dim, Dimension::DIMENSIONLESS);
        assert_eq!(
            set.get("alpha_m").unwrap().dim,
            lookup_unit("Hz").unwrap().dim
        );
    }

    #[test]
    fn printing_and_reparsing_is_stable() {
        let set = EquationSet::parse("equations", HH).unwrap();
        let printed = set.to_string();
        let again = EquationSet::parse("equations", &printed).unwrap();
        assert_eq!(printed, again.to_string());
        for (a, b) in set.equations.iter().zip(again.equations.iter()) {
            assert_eq!(a.expr, b.expr);
        }
    }

    #[test]
    fn errors_name_the_line() {
        let err =
            EquationSet::parse("equations", "dv/dt = -v/tau : volt\ndw/dt = : 1").unwrap_err();
        assert!(
            matches!(err, SimError::Syntax { ref at, .. } if at.line == 2),
            "{err}"
        );
        let err = EquationSet::parse("equations", "dv/dt = -v/tau : volt (sometimes)").unwrap_err();
        assert!(
            err.to_string().contains("unknown flag `sometimes`"),
            "{err}"
        );
        let err = EquationSet::parse("equations", "dv/dt = -v/tau : volts").unwrap_err();
        assert!(err.to_string().contains("did you mean `volt`"), "{err}");
        let err = EquationSet::parse("equations", "dv/dt = -v/tau").unwrap_err();
        assert!(err.to_string().contains("expected `: unit`"), "{err}");
        let err = EquationSet::parse("equations", "v : volt\nv : volt").unwrap_err();
        assert!(err.to_string().contains("declared twice"), "{err}");
        let set = EquationSet::parse(
            "equations",
            "g : siemens/(metre**2)\nh : siemens/(metre**2) (constant)",
        )
        .unwrap();
        assert!(!set.get("g").unwrap().flags.constant && set.get("h").unwrap().flags.constant);
        assert_eq!(
            set.get("g").unwrap().dim,
            lookup_unit("siemens")
                .unwrap()
                .dim
                .div(&lookup_unit("metre").unwrap().dim.powf(2.0))
        );
    }

    #[test]
    fn reset_statements() {
        let src = Source::new("reset", "v = Vr\nw += b; x *= 2");
        let st = parse_statements(&src, "v = Vr\nw += b; x *= 2").unwrap();
        let ops: Vec<_> = st.iter().map(|s| (s.target.as_str(), s.op)).collect();
        assert_eq!(
            ops,
            vec![
                ("v", AssignOp::Set),
                ("w", AssignOp::Add),
                ("x", AssignOp::Mul)
            ]
        );
        assert!(parse_statements(&src, "v == 3").is_err());
    }
}
