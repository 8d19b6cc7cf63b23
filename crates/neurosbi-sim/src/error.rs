//! Typed errors of the simulator: every message says what is wrong and where.

use crate::units::Dimension;
use std::fmt;

/// Where in the user's text something is: which text (the equations, the threshold, an
/// initial value, ...), and the 1-based line and column in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Which string of the model description, e.g. `equations`, `threshold`, `reset`.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}, column {}", self.origin, self.line, self.col)
    }
}

/// Errors from parsing, checking, compiling and running a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The text does not follow the grammar.
    #[error("syntax error at {at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What was expected or found.
        message: String,
    },
    /// A name that is neither a variable, a parameter, an input, a constant nor a unit.
    #[error("unknown identifier `{name}` at {at}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownIdentifier {
        /// The name.
        name: String,
        /// Where.
        at: Location,
        /// The closest known name, if any is close.
        suggestion: Option<String>,
    },
    /// Two dimensions that must agree do not.
    #[error("dimension mismatch at {at}: {context}: {left} vs {right}")]
    Dimension {
        /// Where.
        at: Location,
        /// What was being checked (an addition, a function argument, a declared unit...).
        context: String,
        /// Dimension of the left side (or the found dimension).
        left: Dimension,
        /// Dimension of the right side (or the expected dimension).
        right: Dimension,
    },
    /// Exponential Euler needs `dx/dt = A*x + B` with A and B free of x.
    #[error(
        "the equation for `{variable}` is not linear in `{variable}` ({reason}), so exponential_euler cannot integrate it; use another method such as rk4 or euler"
    )]
    NotLinear {
        /// The state variable.
        variable: String,
        /// What makes it non-linear.
        reason: String,
    },
    /// A structural problem in the model (duplicate names, a missing declaration, ...).
    #[error("invalid model: {0}")]
    Model(String),
    /// A stimulus of the wrong shape or for an unknown input.
    #[error("stimulus `{input}`: {message}")]
    Stimulus {
        /// Input variable name.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// A run configuration that cannot work (dt, steps, parameters, recorded names).
    #[error("invalid run configuration: {0}")]
    Config(String),
}

impl SimError {
    /// A syntax error at a location.
    pub(crate) fn syntax(at: Location, message: impl Into<String>) -> Self {
        SimError::Syntax {
            at,
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// The closest candidate to `name` by edit distance, if it is close enough to be a
/// plausible typo.
pub(crate) fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(name, c);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (name.chars().count() / 3).max(1);
    best.filter(|&(d, _)| d <= limit)
        .map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let names = ["gNa", "gK", "gl", "ENa"];
        assert_eq!(closest("gNA", names.iter().copied()), Some("gNa".into()));
        assert_eq!(closest("completely_else", names.iter().copied()), None);
    }
}
