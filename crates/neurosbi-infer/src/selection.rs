//! Choosing a method and a posterior kind by name, with option checking.
//!
//! Names follow the Python `sbi` toolkit (`npe`, `snpe_c`, `nle`, `nre_c`, `bnre`, ...). Every
//! option is checked against the method: an option that does not apply to the chosen method,
//! a value out of range, or a posterior kind the method cannot build is an error naming the
//! option and the method.

use crate::error::{Result, invalid_arg};
use crate::kde::KdeBandwidth;
use crate::methods::Method;
use crate::posterior::PosteriorKind;
use std::collections::BTreeMap;

/// The value of one method option.
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// A number (integers are given as numbers too).
    Number(f64),
    /// A string (e.g. `posterior = "sir"`).
    Text(String),
    /// A flag.
    Bool(bool),
}

impl From<f64> for OptionValue {
    fn from(v: f64) -> Self {
        OptionValue::Number(v)
    }
}
impl From<usize> for OptionValue {
    fn from(v: usize) -> Self {
        OptionValue::Number(v as f64)
    }
}
impl From<&str> for OptionValue {
    fn from(v: &str) -> Self {
        OptionValue::Text(v.to_string())
    }
}
impl From<bool> for OptionValue {
    fn from(v: bool) -> Self {
        OptionValue::Bool(v)
    }
}

/// Named options of a method (`num_atoms`, `gamma`, `posterior`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MethodOptions {
    entries: BTreeMap<String, OptionValue>,
}

impl MethodOptions {
    /// No options: every method's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) an option, builder style.
    pub fn with(mut self, name: &str, value: impl Into<OptionValue>) -> Self {
        self.insert(name, value);
        self
    }
    /// Adds (or replaces) an option.
    pub fn insert(&mut self, name: &str, value: impl Into<OptionValue>) {
        self.entries.insert(name.to_lowercase(), value.into());
    }
    /// The value of an option, if given.
    pub fn get(&self, name: &str) -> Option<&OptionValue> {
        self.entries.get(name)
    }
    /// Option names given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// Every accepted method name and the canonical name it stands for.
pub const METHOD_NAMES: &[(&str, &str)] = &[
    ("npe", "npe"),
    ("snpe", "npe"),
    ("snpe_c", "npe"),
    ("npe_c", "npe"),
    ("apt", "npe"),
    ("snpe_a", "npe_a"),
    ("npe_a", "npe_a"),
    ("snpe_b", "npe_b"),
    ("npe_b", "npe_b"),
    ("tsnpe", "tsnpe"),
    ("nle", "nle"),
    ("snle", "nle"),
    ("nle_a", "nle"),
    ("mnle", "mnle"),
    ("nre", "nre_a"),
    ("snre", "nre_a"),
    ("nre_a", "nre_a"),
    ("snre_a", "nre_a"),
    ("nre_b", "nre_b"),
    ("snre_b", "nre_b"),
    ("nre_c", "nre_c"),
    ("snre_c", "nre_c"),
    ("bnre", "bnre"),
    ("fmpe", "fmpe"),
    ("npse", "npse"),
    ("abc_rejection", "abc_rejection"),
    ("rejection_abc", "abc_rejection"),
    ("mcabc", "abc_rejection"),
    ("smc_abc", "smc_abc"),
    ("smcabc", "smc_abc"),
];

/// Options each canonical method accepts besides `posterior`.
fn method_options(canonical: &str) -> &'static [&'static str] {
    match canonical {
        "npe" | "nre_b" => &["num_atoms"],
        "npe_a" => &["num_components", "train_on"],
        "tsnpe" => &["epsilon"],
        "nre_c" => &["num_classes", "gamma"],
        "bnre" => &["regularization_strength"],
        "mnle" => &["num_discrete"],
        "npse" => &["sde"],
        "abc_rejection" => &["quantile", "eps", "regression_adjustment", "kde"],
        "smc_abc" => &[
            "population_size",
            "epsilon_quantile",
            "kernel_scale",
            "regression_adjustment",
            "use_last_pop_samples",
            "kde",
        ],
        _ => &[],
    }
}

fn canonical(name: &str) -> Result<&'static str> {
    let lower = name.trim().to_lowercase();
    METHOD_NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let mut names: Vec<&str> = METHOD_NAMES.iter().map(|(n, _)| *n).collect();
            names.dedup();
            invalid_arg(
                "method",
                format!(
                    "unknown method `{name}` (expected one of {})",
                    names.join(", ")
                ),
            )
        })
}

struct Reader<'a> {
    method: &'static str,
    options: &'a MethodOptions,
}

impl Reader<'_> {
    fn what(&self, option: &str) -> String {
        format!("option `{option}` of method `{}`", self.method)
    }
    fn number(&self, option: &str, default: f64) -> Result<f64> {
        match self.options.get(option) {
            None => Ok(default),
            Some(OptionValue::Number(v)) if v.is_finite() => Ok(*v),
            Some(v) => Err(invalid_arg(
                &self.what(option),
                format!("expected a finite number, got {v:?}"),
            )),
        }
    }
    fn positive(&self, option: &str, default: f64) -> Result<f64> {
        let v = self.number(option, default)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(invalid_arg(
                &self.what(option),
                format!("{v} is not positive"),
            ))
        }
    }
    fn fraction(&self, option: &str, default: f64) -> Result<f64> {
        let v = self.number(option, default)?;
        if v > 0.0 && v < 1.0 {
            Ok(v)
        } else {
            Err(invalid_arg(
                &self.what(option),
                format!("{v} is not in (0, 1)"),
            ))
        }
    }
    fn count(&self, option: &str, default: usize, min: usize) -> Result<usize> {
        let v = self.number(option, default as f64)?;
        if v.fract() != 0.0 || v < min as f64 || v > 1e9 {
            return Err(invalid_arg(
                &self.what(option),
                format!("{v} is not a whole number >= {min}"),
            ));
        }
        Ok(v as usize)
    }
    fn flag(&self, option: &str, default: bool) -> Result<bool> {
        match self.options.get(option) {
            None => Ok(default),
            Some(OptionValue::Bool(b)) => Ok(*b),
            Some(v) => Err(invalid_arg(
                &self.what(option),
                format!("expected true or false, got {v:?}"),
            )),
        }
    }
    /// `kde`: none, cv, scott, silverman (strings) or a bandwidth (number).
    fn kde(&self) -> Result<KdeBandwidth> {
        let parsed = match self.options.get("kde") {
            None => return Ok(KdeBandwidth::None),
            Some(OptionValue::Text(s)) => KdeBandwidth::parse(s),
            Some(OptionValue::Number(h)) => KdeBandwidth::parse(&h.to_string()),
            Some(v) => Err(format!("expected a string or a number, got {v:?}")),
        };
        parsed.map_err(|why| invalid_arg(&self.what("kde"), why))
    }
    /// A string option that must be one of `values`' names; gives that name's value.
    fn choice<T: Copy>(&self, option: &str, default: &str, values: &[(&str, T)]) -> Result<T> {
        let v = self.text(option, default)?;
        values
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                invalid_arg(
                    &self.what(option),
                    format!("unknown value `{v}` (expected {})", names.join(" or ")),
                )
            })
    }
    fn text(&self, option: &str, default: &str) -> Result<String> {
        match self.options.get(option) {
            None => Ok(default.to_string()),
            Some(OptionValue::Text(s)) => Ok(s.to_lowercase()),
            Some(v) => Err(invalid_arg(
                &self.what(option),
                format!("expected a string, got {v:?}"),
            )),
        }
    }
}

impl Method {
    /// The method called `name` (sbi's names and aliases, see [`METHOD_NAMES`]) with its
    /// options; options not given take sbi's defaults. Options that do not apply to the
    /// method, out-of-range values and a `posterior` kind the method cannot build are errors
    /// naming the option and the method.
    ///
    /// ```
    /// use neurosbi_infer::{Method, MethodOptions};
    /// let m = Method::from_name("nre_c", &MethodOptions::new().with("gamma", 2.0))?;
    /// assert_eq!(m, Method::NreC { num_classes: 5, gamma: 2.0 });
    /// let err = Method::from_name("nle", &MethodOptions::new().with("num_atoms", 5usize));
    /// assert!(err.unwrap_err().to_string().contains("num_atoms"));
    /// # Ok::<(), neurosbi_infer::InferError>(())
    /// ```
    pub fn from_name(name: &str, options: &MethodOptions) -> Result<Method> {
        let c = canonical(name)?;
        let allowed = method_options(c);
        for o in options.names() {
            if o != "posterior" && !allowed.contains(&o) {
                let list = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(invalid_arg(
                    &format!("option `{o}`"),
                    format!(
                        "does not apply to method `{c}` (its options: {list}; all take `posterior`)"
                    ),
                ));
            }
        }
        let r = Reader { method: c, options };
        let m = match c {
            "npe" => Method::Npe {
                num_atoms: r.count("num_atoms", 10, 2)?,
            },
            "npe_a" => {
                let num_components = r.count("num_components", 10, 1)?;
                // One Gaussian fits the last round's proposal posterior exactly when the
                // posterior is Gaussian, but not the mixture over all rounds; with several
                // components, q / proposal is unbounded in q's tails unless the prior is
                // part of the proposal mixture (docs/methods.md, SNPE-A).
                let default = if num_components == 1 { "last" } else { "all" };
                let last_round_only =
                    r.choice("train_on", default, &[("all", false), ("last", true)])?;
                Method::NpeA {
                    num_components,
                    last_round_only,
                }
            }
            "npe_b" => Method::NpeB,
            "tsnpe" => Method::Tsnpe {
                epsilon: r.fraction("epsilon", 1e-4)?,
            },
            "nle" => Method::Nle,
            "mnle" => Method::Mnle {
                num_discrete: r.count("num_discrete", 1, 1)?,
            },
            "nre_a" => Method::NreA,
            "nre_b" => Method::NreB {
                num_atoms: r.count("num_atoms", 10, 2)?,
            },
            "nre_c" => Method::NreC {
                num_classes: r.count("num_classes", 5, 1)?,
                gamma: r.positive("gamma", 1.0)?,
            },
            "bnre" => {
                let l = r.number("regularization_strength", 100.0)?;
                if l < 0.0 {
                    return Err(invalid_arg(
                        &r.what("regularization_strength"),
                        format!("{l} is negative"),
                    ));
                }
                Method::Bnre {
                    regularization_strength: l,
                }
            }
            "fmpe" => Method::Fmpe,
            "npse" => Method::Npse {
                variance_preserving: r.choice("sde", "ve", &[("ve", false), ("vp", true)])?,
            },
            "abc_rejection" => {
                let quantile = r.fraction("quantile", 0.01)?;
                let eps = match options.get("eps") {
                    Some(_) => Some(r.positive("eps", 1.0)?),
                    None => None,
                };
                if eps.is_some() && options.get("quantile").is_some() {
                    return Err(invalid_arg(
                        &r.what("eps"),
                        "give either `quantile` or `eps`, not both",
                    ));
                }
                Method::RejectionAbc {
                    quantile: if eps.is_some() { None } else { Some(quantile) },
                    eps,
                    regression_adjustment: r.flag("regression_adjustment", false)?,
                    kde: r.kde()?,
                }
            }
            "smc_abc" => Method::SmcAbc {
                population_size: r.count("population_size", 1000, 2)?,
                epsilon_quantile: r.fraction("epsilon_quantile", 0.5)?,
                kernel_scale: r.positive("kernel_scale", 2.0)?,
                regression_adjustment: r.flag("regression_adjustment", false)?,
                use_last_pop_samples: r.flag("use_last_pop_samples", true)?,
                kde: r.kde()?,
            },
            _ => unreachable!("every canonical name is matched"),
        };
        if options.get("posterior").is_some() {
            PosteriorKind::from_options(&m, options)?;
        }
        Ok(m)
    }

    /// Canonical name (`npe`, `nre_c`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Npe { .. } => "npe",
            Method::NpeA { .. } => "npe_a",
            Method::NpeB => "npe_b",
            Method::Tsnpe { .. } => "tsnpe",
            Method::Nle => "nle",
            Method::Mnle { .. } => "mnle",
            Method::NreA => "nre_a",
            Method::NreB { .. } => "nre_b",
            Method::NreC { .. } => "nre_c",
            Method::Bnre { .. } => "bnre",
            Method::Fmpe => "fmpe",
            Method::Npse { .. } => "npse",
            Method::RejectionAbc { .. } => "abc_rejection",
            Method::SmcAbc { .. } => "smc_abc",
        }
    }

    /// Options this method accepts besides `posterior`.
    pub fn option_names(&self) -> &'static [&'static str] {
        method_options(self.name())
    }

    /// Posterior kinds this method can build; the first is its default.
    pub fn posterior_kinds(&self) -> &'static [PosteriorKind] {
        use PosteriorKind::*;
        match self {
            Method::Npe { .. } | Method::NpeB | Method::Tsnpe { .. } => {
                &[Direct, Mcmc, Sir, Rejection, Vi]
            }
            // Their log_prob goes through an ODE solve without gradients: no VI.
            Method::Fmpe | Method::Npse { .. } => &[Direct, Sir, Rejection, Mcmc],
            // The trained MDN is the proposal posterior; the correction makes it a ratio of
            // densities, which these kinds sample (no direct draws).
            Method::NpeA { .. } => &[Sir, Mcmc, Rejection, Vi],
            Method::Nle
            | Method::Mnle { .. }
            | Method::NreA
            | Method::NreB { .. }
            | Method::NreC { .. }
            | Method::Bnre { .. } => &[Mcmc, Sir, Rejection, Vi],
            // ABC keeps accepted samples for the one observation; "direct" resamples them.
            Method::RejectionAbc { .. } | Method::SmcAbc { .. } => &[Direct],
        }
    }

    /// Errors unless this method can build posteriors of `kind`.
    pub fn check_posterior(&self, kind: PosteriorKind) -> Result<()> {
        if self.posterior_kinds().contains(&kind) {
            return Ok(());
        }
        let list: Vec<&str> = self.posterior_kinds().iter().map(|k| k.name()).collect();
        Err(invalid_arg(
            &format!("option `posterior` of method `{}`", self.name()),
            format!(
                "method `{}` cannot build a `{}` posterior (it builds: {})",
                self.name(),
                kind.name(),
                list.join(", ")
            ),
        ))
    }
}

impl PosteriorKind {
    /// Every kind, by name.
    pub const ALL: [PosteriorKind; 5] = [
        PosteriorKind::Direct,
        PosteriorKind::Mcmc,
        PosteriorKind::Sir,
        PosteriorKind::Rejection,
        PosteriorKind::Vi,
    ];

    /// Name as written in model files (`direct`, `mcmc`, `sir`, `rejection`, `vi`).
    pub fn name(self) -> &'static str {
        match self {
            PosteriorKind::Direct => "direct",
            PosteriorKind::Mcmc => "mcmc",
            PosteriorKind::Sir => "sir",
            PosteriorKind::Rejection => "rejection",
            PosteriorKind::Vi => "vi",
        }
    }

    /// The kind called `name` (`importance` is accepted for `sir`, `variational` for `vi`).
    pub fn from_name(name: &str) -> Result<Self> {
        let l = name.trim().to_lowercase();
        let k = match l.as_str() {
            "direct" => PosteriorKind::Direct,
            "mcmc" | "slice" => PosteriorKind::Mcmc,
            "sir" | "importance" => PosteriorKind::Sir,
            "rejection" => PosteriorKind::Rejection,
            "vi" | "variational" => PosteriorKind::Vi,
            _ => {
                return Err(invalid_arg(
                    "posterior",
                    format!(
                        "unknown posterior kind `{name}` (expected direct, mcmc, sir, rejection, vi)"
                    ),
                ));
            }
        };
        Ok(k)
    }

    /// The `posterior` option of `options` (the method's default when absent), checked
    /// against the method.
    pub fn from_options(method: &Method, options: &MethodOptions) -> Result<Self> {
        let kind = match options.get("posterior") {
            None => return Ok(method.posterior_kinds()[0]),
            Some(OptionValue::Text(s)) => Self::from_name(s).map_err(|_| {
                invalid_arg(
                    &format!("option `posterior` of method `{}`", method.name()),
                    format!(
                        "unknown posterior kind `{s}` (expected direct, mcmc, sir, rejection, vi)"
                    ),
                )
            })?,
            Some(v) => {
                return Err(invalid_arg(
                    &format!("option `posterior` of method `{}`", method.name()),
                    format!("expected a string, got {v:?}"),
                ));
            }
        };
        method.check_posterior(kind)?;
        Ok(kind)
    }
}
