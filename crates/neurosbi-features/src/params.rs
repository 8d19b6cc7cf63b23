//! Parsing of feature specifications such as `perm_entropy(order=3, delay=1)` and typed
//! access to their parameters, with errors that name the feature and the parameter.

use crate::error::{FeatureError, close_matches};
use crate::recording::Window;

/// A parameter value as written: a number or a word.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A number.
    Num(f64),
    /// A bare word, e.g. `stim` or `welch`.
    Word(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Num(x) => write!(f, "{x}"),
            ParamValue::Word(w) => f.write_str(w),
        }
    }
}

/// The parameters given to one feature. Builders read them with the typed getters, each
/// of which records the name as accepted; [`Params::finish`] then rejects any parameter
/// that no getter asked for.
#[derive(Debug, Clone)]
pub struct Params {
    feature: String,
    given: Vec<(String, ParamValue)>,
    accepted: Vec<&'static str>,
}

impl Params {
    /// Parameters of `feature` (used directly by tests and custom catalogues).
    pub fn new(feature: &str, given: Vec<(String, ParamValue)>) -> Self {
        Self {
            feature: feature.to_string(),
            given,
            accepted: Vec::new(),
        }
    }

    /// Feature name these parameters belong to.
    pub fn feature(&self) -> &str {
        &self.feature
    }

    fn lookup(&mut self, name: &'static str) -> Option<ParamValue> {
        self.accepted.push(name);
        self.given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn bad(&self, param: &str, reason: impl Into<String>) -> FeatureError {
        FeatureError::BadParameter {
            feature: self.feature.clone(),
            param: param.to_string(),
            reason: reason.into(),
        }
    }

    /// A real number, `default` if absent.
    pub fn f64(&mut self, name: &'static str, default: f64) -> Result<f64, FeatureError> {
        match self.lookup(name) {
            None => Ok(default),
            Some(ParamValue::Num(x)) if x.is_finite() => Ok(x),
            Some(v) => Err(self.bad(name, format!("expected a finite number, got `{v}`"))),
        }
    }

    /// A real number that must be strictly positive.
    pub fn positive(&mut self, name: &'static str, default: f64) -> Result<f64, FeatureError> {
        let x = self.f64(name, default)?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(self.bad(name, format!("must be > 0, got {x}")))
        }
    }

    /// An optional real number.
    pub fn opt_f64(&mut self, name: &'static str) -> Result<Option<f64>, FeatureError> {
        match self.lookup(name) {
            None => Ok(None),
            Some(ParamValue::Num(x)) if x.is_finite() => Ok(Some(x)),
            Some(v) => Err(self.bad(name, format!("expected a finite number, got `{v}`"))),
        }
    }

    /// An integer in `[min, max]`.
    pub fn int(
        &mut self,
        name: &'static str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, FeatureError> {
        match self.lookup(name) {
            None => Ok(default),
            Some(ParamValue::Num(x)) if x.fract() == 0.0 && x >= min as f64 && x <= max as f64 => {
                Ok(x as usize)
            }
            Some(v) => Err(self.bad(
                name,
                format!("expected an integer in [{min}, {max}], got `{v}`"),
            )),
        }
    }

    /// A word from `choices` (the first is the default).
    pub fn choice(
        &mut self,
        name: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, FeatureError> {
        match self.lookup(name) {
            None => Ok(choices[0]),
            Some(ParamValue::Word(w)) => {
                choices.iter().find(|c| **c == w).copied().ok_or_else(|| {
                    self.bad(
                        name,
                        format!("expected one of {}, got `{w}`", choices.join(", ")),
                    )
                })
            }
            Some(v) => Err(self.bad(
                name,
                format!("expected one of {}, got `{v}`", choices.join(", ")),
            )),
        }
    }

    /// A boolean (`true`/`false` or 1/0).
    pub fn bool(&mut self, name: &'static str, default: bool) -> Result<bool, FeatureError> {
        match self.lookup(name) {
            None => Ok(default),
            Some(ParamValue::Word(w)) if w == "true" => Ok(true),
            Some(ParamValue::Word(w)) if w == "false" => Ok(false),
            Some(ParamValue::Num(x)) if x == 1.0 || x == 0.0 => Ok(x == 1.0),
            Some(v) => Err(self.bad(name, format!("expected true or false, got `{v}`"))),
        }
    }

    /// A window: `window=whole|before|stim|after`, or explicit `start=`/`stop=` times in ms
    /// (which take precedence).
    pub fn window(&mut self, default: Window) -> Result<Window, FeatureError> {
        let start = self.opt_f64("start")?;
        let stop = self.opt_f64("stop")?;
        let named = match self.lookup("window") {
            None => default,
            Some(ParamValue::Word(w)) => Window::from_name(&w).ok_or_else(|| {
                self.bad(
                    "window",
                    format!("expected whole, before, stim, after, got `{w}`"),
                )
            })?,
            Some(v) => {
                return Err(self.bad(
                    "window",
                    format!("expected whole, before, stim, after, got `{v}`"),
                ));
            }
        };
        match (start, stop) {
            (None, None) => Ok(named),
            (Some(a), Some(b)) if a < b => Ok(Window::Times { start: a, stop: b }),
            (Some(a), Some(b)) => {
                Err(self.bad("start", format!("start ({a}) must be before stop ({b})")))
            }
            _ => Err(self.bad(
                if start.is_none() { "start" } else { "stop" },
                "give both start and stop",
            )),
        }
    }

    /// Fails on any given parameter that no getter accepted.
    pub fn finish(&self) -> Result<(), FeatureError> {
        for (k, _) in &self.given {
            if !self.accepted.iter().any(|a| a == k) {
                let mut accepted: Vec<String> =
                    self.accepted.iter().map(|s| s.to_string()).collect();
                accepted.dedup();
                return Err(FeatureError::UnknownParameter {
                    feature: self.feature.clone(),
                    param: k.clone(),
                    close_matches: close_matches(k, self.accepted.iter().copied()),
                    accepted: if accepted.is_empty() {
                        vec!["(none)".into()]
                    } else {
                        accepted
                    },
                });
            }
        }
        Ok(())
    }
}

/// Splits `name(k=v, ...)` into the name and its parameters.
pub fn parse_spec(spec: &str) -> Result<(String, Vec<(String, ParamValue)>), FeatureError> {
    let err = |position: usize, reason: &str| FeatureError::Syntax {
        spec: spec.to_string(),
        position,
        reason: reason.to_string(),
    };
    let s = spec.trim();
    let offset = spec.len() - spec.trim_start().len();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let name_end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    if name_end == 0 {
        return Err(err(offset, "expected a feature name"));
    }
    let name = s[..name_end].to_string();
    let rest = s[name_end..].trim();
    if rest.is_empty() {
        return Ok((name, Vec::new()));
    }
    let pos_rest = offset + s.len() - s[name_end..].trim_start().len();
    if !rest.starts_with('(') {
        return Err(err(pos_rest, "expected `(` after the feature name"));
    }
    if !rest.ends_with(')') {
        return Err(err(offset + s.len(), "expected `)` at the end"));
    }
    let inner = &rest[1..rest.len() - 1];
    let mut params = Vec::new();
    if inner.trim().is_empty() {
        return Ok((name, params));
    }
    let mut pos = pos_rest + 1;
    for item in inner.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            return Err(err(pos, "expected `name=value`"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.chars().all(is_ident) {
            return Err(err(pos, "expected a parameter name"));
        }
        if v.is_empty() {
            return Err(err(pos + item.len(), "expected a value after `=`"));
        }
        let value = match v.parse::<f64>() {
            Ok(x) => ParamValue::Num(x),
            Err(_) if v.chars().all(|c| is_ident(c) || c == '.' || c == '-') => {
                ParamValue::Word(v.to_string())
            }
            Err(_) => return Err(err(pos, "expected a number or a word")),
        };
        if params.iter().any(|(p, _): &(String, ParamValue)| p == k) {
            return Err(err(pos, "parameter given twice"));
        }
        params.push((k.to_string(), value));
        pos += item.len() + 1;
    }
    Ok((name, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_parameters() {
        let (n, p) = parse_spec(" perm_entropy(order=3, delay=1, normalize=true) ").unwrap();
        assert_eq!(n, "perm_entropy");
        assert_eq!(p[0], ("order".into(), ParamValue::Num(3.0)));
        assert_eq!(p[2], ("normalize".into(), ParamValue::Word("true".into())));
        assert_eq!(parse_spec("spike_count").unwrap().1.len(), 0);
    }

    #[test]
    fn syntax_errors_say_where() {
        for bad in [
            "mean(window=",
            "mean(window)",
            "(x=1)",
            "mean(a=1, a=2)",
            "mean x",
        ] {
            assert!(
                matches!(parse_spec(bad), Err(FeatureError::Syntax { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_parameter_lists_close_matches() {
        let (_, given) = parse_spec("mean(windw=stim)").unwrap();
        let mut p = Params::new("mean", given);
        let _ = p.window(Window::Whole).unwrap();
        match p.finish() {
            Err(FeatureError::UnknownParameter { close_matches, .. }) => {
                assert_eq!(close_matches[0], "window")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn typed_getters_reject_bad_values() {
        let mut p = Params::new("x", vec![("order".into(), ParamValue::Num(2.5))]);
        assert!(matches!(
            p.int("order", 3, 2, 10),
            Err(FeatureError::BadParameter { .. })
        ));
        let mut p = Params::new(
            "x",
            vec![("window".into(), ParamValue::Word("middle".into()))],
        );
        assert!(p.window(Window::Whole).is_err());
        let mut p = Params::new("x", vec![("start".into(), ParamValue::Num(5.0))]);
        assert!(p.window(Window::Whole).is_err());
    }
}
