//! Lexer and parser of Brian-style expressions, and their printing.
//!
//! Precedence follows Python (which Brian's strings are): `or` < `and` < `not` <
//! comparisons < `+ -` < `* /` < unary minus < `**` (right-associative, so `-x**2` is
//! `-(x**2)` and `2**-1` is allowed).

use crate::error::{Location, Result, SimError};
use std::fmt;

/// Maps byte offsets of one source string to 1-based line and column.
#[derive(Clone, Debug)]
pub struct Source {
    origin: String,
    line_starts: Vec<usize>,
    text: String,
}

impl Source {
    /// A source text with the name used in error messages (e.g. `equations`).
    pub fn new(origin: impl Into<String>, text: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        Source {
            origin: origin.into(),
            line_starts,
            text: text.to_string(),
        }
    }

    /// The location of a byte offset.
    pub fn locate(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let end = offset.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count())
            + 1;
        Location {
            origin: self.origin.clone(),
            line,
            col,
        }
    }

    /// The name of this source in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `**`
    Pow,
    /// `//` (Python's floor division: `floor(a/b)`)
    FloorDiv,
    /// `%` (Python's modulo, with the sign of the divisor: `a - b*floor(a/b)`)
    Mod,
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
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "**",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    /// Whether the operator is a comparison.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
        )
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `not x`
    Not,
}

/// An expression with the byte offset where it starts in its [`Source`].
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Byte offset of its first character in the source.
    pub offset: usize,
}

/// The forms of an expression.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// A numeric literal.
    Num(f64),
    /// A name: variable, parameter, input, constant, unit or special symbol.
    Name(String),
    /// A unary operation.
    Unary(UnOp, Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(String, Vec<Expr>),
}

impl PartialEq for Expr {
    /// Structural equality that ignores source offsets.
    fn eq(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (ExprKind::Num(a), ExprKind::Num(b)) => a.to_bits() == b.to_bits(),
            (ExprKind::Name(a), ExprKind::Name(b)) => a == b,
            (ExprKind::Unary(o1, a), ExprKind::Unary(o2, b)) => o1 == o2 && a == b,
            (ExprKind::Binary(o1, a1, b1), ExprKind::Binary(o2, a2, b2)) => {
                o1 == o2 && a1 == a2 && b1 == b2
            }
            (ExprKind::Call(f1, a1), ExprKind::Call(f2, a2)) => f1 == f2 && a1 == a2,
            _ => false,
        }
    }
}

impl Expr {
    /// Every name the expression mentions (with repetitions).
    pub fn names(&self, out: &mut Vec<String>) {
        match &self.kind {
            ExprKind::Num(_) => {}
            ExprKind::Name(n) => out.push(n.clone()),
            ExprKind::Unary(_, a) => a.names(out),
            ExprKind::Binary(_, a, b) => {
                a.names(out);
                b.names(out);
            }
            ExprKind::Call(_, args) => args.iter().for_each(|a| a.names(out)),
        }
    }
}

impl fmt::Display for Expr {
    /// Prints with full parentheses around compound operands, so that parsing the output
    /// gives back the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn operand(e: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match e.kind {
                ExprKind::Num(v) if v < 0.0 || v.is_sign_negative() => write!(f, "({e})"),
                ExprKind::Num(_) | ExprKind::Name(_) | ExprKind::Call(..) => write!(f, "{e}"),
                _ => write!(f, "({e})"),
            }
        }
        match &self.kind {
            ExprKind::Num(v) => write!(f, "{v:?}"),
            ExprKind::Name(n) => write!(f, "{n}"),
            ExprKind::Unary(op, a) => {
                match op {
                    UnOp::Neg => write!(f, "-")?,
                    UnOp::Pos => write!(f, "+")?,
                    UnOp::Not => write!(f, "not ")?,
                }
                operand(a, f)
            }
            ExprKind::Binary(op, a, b) => {
                operand(a, f)?;
                write!(f, " {} ", op.symbol())?;
                operand(b, f)
            }
            ExprKind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (k, a) in args.iter().enumerate() {
                    if k > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    end: usize,
}

const OPS: [&str; 15] = [
    "**", "//", "<=", ">=", "==", "!=", "+", "-", "*", "/", "<", ">", "=", ":", "%",
];

impl<'a> Lexer<'a> {
    fn next(&mut self, src: &Source) -> Result<(Tok, usize)> {
        let bytes = self.text.as_bytes();
        while self.pos < self.end && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= self.end {
            return Ok((Tok::End, start));
        }
        let c = bytes[start];
        if c.is_ascii_digit()
            || (c == b'.' && start + 1 < self.end && bytes[start + 1].is_ascii_digit())
        {
            let mut p = start;
            while p < self.end && (bytes[p].is_ascii_digit() || bytes[p] == b'.') {
                p += 1;
            }
            if p < self.end && (bytes[p] == b'e' || bytes[p] == b'E') {
                let mut q = p + 1;
                if q < self.end && (bytes[q] == b'+' || bytes[q] == b'-') {
                    q += 1;
                }
                if q < self.end && bytes[q].is_ascii_digit() {
                    while q < self.end && bytes[q].is_ascii_digit() {
                        q += 1;
                    }
                    p = q;
                }
            }
            let lit = &self.text[start..p];
            let v: f64 = lit.parse().map_err(|_| {
                SimError::syntax(src.locate(start), format!("malformed number `{lit}`"))
            })?;
            self.pos = p;
            return Ok((Tok::Num(v), start));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut p = start;
            while p < self.end && (bytes[p].is_ascii_alphanumeric() || bytes[p] == b'_') {
                p += 1;
            }
            self.pos = p;
            return Ok((Tok::Ident(self.text[start..p].to_string()), start));
        }
        match c {
            b'(' => {
                self.pos += 1;
                return Ok((Tok::LParen, start));
            }
            b')' => {
                self.pos += 1;
                return Ok((Tok::RParen, start));
            }
            b',' => {
                self.pos += 1;
                return Ok((Tok::Comma, start));
            }
            _ => {}
        }
        for op in OPS {
            if self.text[start..self.end].starts_with(op) {
                self.pos += op.len();
                return Ok((Tok::Op(op), start));
            }
        }
        let ch = self.text[start..].chars().next().unwrap_or('?');
        Err(SimError::syntax(
            src.locate(start),
            format!("unexpected character `{ch}`"),
        ))
    }
}

/// A recursive-descent parser over one expression inside a source text.
struct Parser<'a> {
    lex: Lexer<'a>,
    src: &'a Source,
    tok: Tok,
    tok_at: usize,
    /// Open recursive calls (parentheses, unary operators, exponents), which a flat tree
    /// does not show: `((((1))))` is one node but nine stack frames per parenthesis.
    nesting: usize,
}

/// The deepest expression accepted, counted both as nesting while parsing and as the
/// depth of the built tree. Every later pass over expressions (lowering, printing,
/// linearity analysis, code generation, dropping) recurses once per tree level, so this
/// one bound keeps them all within the default 2 MiB thread stack; lowering re-checks it
/// after inlining subexpressions (see `check.rs`).
pub const MAX_DEPTH: usize = 256;

/// A parsed subtree with the depth of its tree (a leaf has depth 1).
type Node = (Expr, usize);

fn too_deep(src: &Source, offset: usize, depth: usize) -> SimError {
    SimError::syntax(
        src.locate(offset),
        format!("expression nested too deeply: depth {depth} exceeds the limit of {MAX_DEPTH}"),
    )
}

impl<'a> Parser<'a> {
    fn bump(&mut self) -> Result<()> {
        let (t, at) = self.lex.next(self.src)?;
        self.tok = t;
        self.tok_at = at;
        Ok(())
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(SimError::syntax(self.src.locate(self.tok_at), msg))
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::Num(v) => format!("number {v}"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Op(o) => format!("`{o}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::End => "the end of the expression".into(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident(s) if s == kw)
    }

    fn enter(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep(self.src, self.tok_at, self.nesting));
        }
        Ok(())
    }

    /// A node over `children`, refused when it would make the tree too deep.
    fn node(&self, kind: ExprKind, offset: usize, child_depth: usize) -> Result<Node> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(self.src, offset, depth));
        }
        Ok((Expr { kind, offset }, depth))
    }

    fn bin(&self, op: BinOp, (a, da): Node, (b, db): Node) -> Result<Node> {
        let offset = a.offset;
        self.node(
            ExprKind::Binary(op, Box::new(a), Box::new(b)),
            offset,
            da.max(db),
        )
    }

    fn or(&mut self) -> Result<Node> {
        self.enter()?;
        let mut lhs = self.and()?;
        while self.is_kw("or") {
            self.bump()?;
            let rhs = self.and()?;
            lhs = self.bin(BinOp::Or, lhs, rhs)?;
        }
        self.nesting -= 1;
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Node> {
        let mut lhs = self.not()?;
        while self.is_kw("and") {
            self.bump()?;
            let rhs = self.not()?;
            lhs = self.bin(BinOp::And, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Node> {
        if self.is_kw("not") {
            let at = self.tok_at;
            self.bump()?;
            self.enter()?;
            let (a, d) = self.not()?;
            self.nesting -= 1;
            return self.node(ExprKind::Unary(UnOp::Not, Box::new(a)), at, d);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node> {
        let first = self.additive()?;
        let mut result: Option<Node> = None;
        let mut lhs = first;
        // Python chains comparisons: `a < b <= c` means `(a < b) and (b <= c)`, with `b`
        // evaluated once there; here it is written twice, which is the same for the
        // side-effect-free expressions of a model.
        while let Some(op) = self.comparison_op() {
            self.bump()?;
            let rhs = self.additive()?;
            let next = rhs.clone();
            let cmp = self.bin(op, lhs, rhs)?;
            result = Some(match result {
                None => cmp,
                Some(acc) => self.bin(BinOp::And, acc, cmp)?,
            });
            lhs = next;
        }
        Ok(result.unwrap_or(lhs))
    }

    fn comparison_op(&self) -> Option<BinOp> {
        Some(match self.tok {
            Tok::Op("<") => BinOp::Lt,
            Tok::Op("<=") => BinOp::Le,
            Tok::Op(">") => BinOp::Gt,
            Tok::Op(">=") => BinOp::Ge,
            Tok::Op("==") => BinOp::Eq,
            Tok::Op("!=") => BinOp::Ne,
            _ => return None,
        })
    }

    fn additive(&mut self) -> Result<Node> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.tok {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump()?;
            let rhs = self.multiplicative()?;
            lhs = self.bin(op, lhs, rhs)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Node> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.tok {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("//") => BinOp::FloorDiv,
                Tok::Op("%") => BinOp::Mod,
                _ => return Ok(lhs),
            };
            self.bump()?;
            let rhs = self.unary()?;
            lhs = self.bin(op, lhs, rhs)?;
        }
    }

    fn unary(&mut self) -> Result<Node> {
        let op = match self.tok {
            Tok::Op("-") => UnOp::Neg,
            Tok::Op("+") => UnOp::Pos,
            _ => return self.power(),
        };
        let at = self.tok_at;
        self.bump()?;
        self.enter()?;
        let (a, d) = self.unary()?;
        self.nesting -= 1;
        self.node(ExprKind::Unary(op, Box::new(a)), at, d)
    }

    fn power(&mut self) -> Result<Node> {
        let base = self.atom()?;
        if self.tok == Tok::Op("**") {
            self.bump()?;
            self.enter()?;
            let exp = self.unary()?;
            self.nesting -= 1;
            return self.bin(BinOp::Pow, base, exp);
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Node> {
        let at = self.tok_at;
        match self.tok.clone() {
            Tok::Num(v) => {
                self.bump()?;
                Ok((
                    Expr {
                        kind: ExprKind::Num(v),
                        offset: at,
                    },
                    1,
                ))
            }
            Tok::Ident(name) => {
                if matches!(name.as_str(), "and" | "or" | "not") {
                    return self.err(format!("expected a value, found keyword `{name}`"));
                }
                self.bump()?;
                if self.tok == Tok::LParen {
                    return self.call(name, at);
                }
                Ok((
                    Expr {
                        kind: ExprKind::Name(name),
                        offset: at,
                    },
                    1,
                ))
            }
            Tok::LParen => {
                self.bump()?;
                let e = self.or()?;
                if self.tok != Tok::RParen {
                    return self.err(format!("expected `)`, found {}", self.describe()));
                }
                self.bump()?;
                Ok(e)
            }
            _ => self.err(format!("expected a value, found {}", self.describe())),
        }
    }

    /// The arguments of a call to `name` (at `at`), with the current token on `(`.
    fn call(&mut self, name: String, at: usize) -> Result<Node> {
        self.bump()?;
        let mut args = Vec::new();
        let mut depth = 0;
        if self.tok != Tok::RParen {
            loop {
                let (a, d) = self.or()?;
                args.push(a);
                depth = depth.max(d);
                match self.tok {
                    Tok::Comma => self.bump()?,
                    Tok::RParen => break,
                    _ => {
                        return self.err(format!(
                            "expected `,` or `)` in the arguments of `{name}`, found {}",
                            self.describe()
                        ));
                    }
                }
            }
        }
        self.bump()?;
        self.node(ExprKind::Call(name, args), at, depth)
    }
}

/// Parses the expression in `src`'s text between byte offsets `start` and `end`.
pub fn parse_expr_range(src: &Source, text: &str, start: usize, end: usize) -> Result<Expr> {
    let mut p = Parser {
        lex: Lexer {
            text,
            pos: start,
            end,
        },
        src,
        tok: Tok::End,
        tok_at: start,
        nesting: 0,
    };
    p.bump()?;
    if p.tok == Tok::End {
        return p.err("empty expression");
    }
    let (e, _) = p.or()?;
    if p.tok != Tok::End {
        return p.err(format!(
            "unexpected {} after a complete expression",
            p.describe()
        ));
    }
    Ok(e)
}

/// Parses a whole string as one expression; `origin` names it in errors.
pub fn parse_expr(origin: &str, text: &str) -> Result<Expr> {
    let src = Source::new(origin, text);
    parse_expr_range(&src, text, 0, text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_python() {
        let e = parse_expr("t", "-x**2 + 3*y/z").unwrap();
        assert_eq!(e.to_string(), "(-(x ** 2.0)) + ((3.0 * y) / z)");
        let e = parse_expr("t", "a > 1 and not b < 2 or c == 3").unwrap();
        assert_eq!(
            e.to_string(),
            "((a > 1.0) and (not (b < 2.0))) or (c == 3.0)"
        );
        let e = parse_expr("t", "2**-1").unwrap();
        assert_eq!(e.to_string(), "2.0 ** (-1.0)");
        let e = parse_expr("t", "a**b**c").unwrap();
        assert_eq!(e.to_string(), "a ** (b ** c)");
    }

    #[test]
    fn chained_comparisons_floor_division_and_modulo() {
        let e = parse_expr("t", "a < b <= c").unwrap();
        assert_eq!(e.to_string(), "(a < b) and (b <= c)");
        let e = parse_expr("t", "0 < x < 1 < y").unwrap();
        assert_eq!(e.to_string(), "((0.0 < x) and (x < 1.0)) and (1.0 < y)");
        let e = parse_expr("t", "a // b % c * d").unwrap();
        assert_eq!(e.to_string(), "((a // b) % c) * d");
        let again = parse_expr("t", &e.to_string()).unwrap();
        assert_eq!(e, again);
    }

    #[test]
    fn numbers_in_all_spellings() {
        for (s, v) in [("1e-3", 1e-3), (".5", 0.5), ("3.", 3.0), ("2E+2", 200.0)] {
            match parse_expr("t", s).unwrap().kind {
                ExprKind::Num(x) => assert_eq!(x, v),
                k => panic!("{k:?}"),
            }
        }
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let text = "a + b\n  + (c * )";
        let src = Source::new("equations", text);
        let err = parse_expr_range(&src, text, 0, text.len()).unwrap_err();
        match err {
            SimError::Syntax { at, .. } => {
                assert_eq!((at.line, at.col), (2, 10));
                assert_eq!(at.origin, "equations");
            }
            e => panic!("{e:?}"),
        }
        assert!(parse_expr("t", "f(a,").is_err());
        assert!(parse_expr("t", "a < b <").is_err());
        assert!(parse_expr("t", "").is_err());
        assert!(parse_expr("t", "a $ b").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(parse_expr("t", &s).is_err());
        let s = "-".repeat(10_000) + "1";
        assert!(parse_expr("t", &s).is_err());
    }
}
