//! Quantities with units written as text (`"0.5*uS"`, `"-70*mV"`), as in model files.

use crate::error::{Error, Result};
use neurosbi_sim::units::lookup_unit;
use neurosbi_sim::{ModelSpec, Quantity};

/// Evaluates a constant expression with units (`"10*nS"`, `"1e-4*uS"`, `"200*pF"`) to SI.
/// `key` names where it came from in errors.
pub fn parse_quantity(file: &str, key: &str, text: &str) -> Result<Quantity> {
    // The simulator's constant evaluator is private to it; a one-constant model file
    // reaches it through the public model-file parser, so both read units identically.
    let mut t = toml::Table::new();
    t.insert("equations".into(), "dq__/dt = 0*Hz : 1".into());
    // Named, since a linear model without a method is refused.
    t.insert("method".into(), "euler".into());
    let mut c = toml::Table::new();
    c.insert("q".into(), text.into());
    t.insert("constants".into(), c.into());
    let src = toml::to_string(&t).map_err(|e| Error::config(file, key, e.to_string()))?;
    let spec = ModelSpec::parse(file, &src).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.replace("`constants.q`: ", "");
        Error::config(
            file,
            key,
            format!("expected a quantity such as \"10*nS\", got \"{text}\": {msg}"),
        )
    })?;
    Ok(spec.model.constants[0].1)
}

/// A display unit: its name and the SI value of one of it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// Name as written (`uS`), empty for SI without a name.
    pub name: String,
    /// SI value of one unit.
    pub scale: f64,
}

impl Unit {
    /// Looks a unit up by name (`mV`, `uS`, `1` for dimensionless) or as a unit expression
    /// (`mS/cm**2`).
    pub fn named(name: &str) -> Option<Unit> {
        if name == "1" || name.is_empty() {
            return Some(Unit {
                name: String::new(),
                scale: 1.0,
            });
        }
        let scale = match lookup_unit(name) {
            Some(q) => q.value,
            None => parse_quantity("unit", "unit", name).ok()?.value,
        };
        Some(Unit {
            name: name.to_string(),
            scale,
        })
    }

    /// The dimension of the unit.
    pub fn dim(&self) -> Option<neurosbi_sim::Dimension> {
        if self.name.is_empty() {
            return Some(neurosbi_sim::Dimension::DIMENSIONLESS);
        }
        lookup_unit(&self.name)
            .or_else(|| parse_quantity("unit", "unit", &self.name).ok())
            .map(|q| q.dim)
    }

    /// The unit a quantity text is written in: what follows the leading number and `*`
    /// (`"0.5*uS"` -> uS, `"0.5*mS/cm**2"` -> mS/cm**2), else SI.
    pub fn of_text(text: &str) -> Unit {
        text.split_once('*')
            .filter(|(n, _)| n.trim().parse::<f64>().is_ok())
            .and_then(|(_, u)| Unit::named(u.trim()))
            .unwrap_or(Unit {
                name: String::new(),
                scale: 1.0,
            })
    }

    /// Label for tables and axes: ` (uS)` or empty.
    pub fn suffix(&self) -> String {
        if self.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_evaluate_to_si() {
        let q = parse_quantity("f", "k", "0.5*uS").unwrap();
        assert!((q.value - 0.5e-6).abs() < 1e-18);
        assert_eq!(q.dim, lookup_unit("siemens").unwrap().dim);
        let q = parse_quantity("f", "k", "-70*mV").unwrap();
        assert!((q.value + 0.07).abs() < 1e-15);
        let q = parse_quantity("f", "k", "3").unwrap();
        assert!(q.dim.is_dimensionless());
    }

    #[test]
    fn bad_quantity_names_file_and_key() {
        let e = parse_quantity("fit.toml", "priors.gNa", "5*uSS").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("fit.toml") && s.contains("priors.gNa") && s.contains("uSS"),
            "{s}"
        );
    }

    #[test]
    fn unit_of_text() {
        let u = Unit::of_text("1e-4*uS");
        assert_eq!(u.name, "uS");
        assert!((u.scale - 1e-6).abs() < 1e-20);
        assert_eq!(Unit::of_text("0.3").name, "");
        let u = Unit::of_text("0.5*mS/cm**2");
        assert_eq!(u.name, "mS/cm**2");
        assert!((u.scale - 10.0).abs() < 1e-12, "1 mS/cm^2 = 10 S/m^2");
    }
}
