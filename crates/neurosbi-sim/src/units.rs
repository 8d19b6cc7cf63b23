//! Physical dimensions and SI units with prefixes, as Brian2 spells them.
//!
//! Every value inside the simulator is held in SI base units; a unit name only contributes
//! a scale factor and a [`Dimension`]. Exponents are `f64` because Brian allows
//! `second**-0.5` (the unit of white noise `xi`) and `sqrt` of dimensional quantities.

use std::fmt;

/// Names of the seven SI base dimensions, in the order of [`Dimension::exponents`].
const BASE_NAMES: [&str; 7] = [
    "metre", "kilogram", "second", "amp", "kelvin", "mole", "candela",
];

/// A physical dimension: exponents of the SI base units (m, kg, s, A, K, mol, cd).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Dimension {
    /// Exponents of metre, kilogram, second, amp, kelvin, mole, candela.
    pub exponents: [f64; 7],
}

impl PartialEq for Dimension {
    fn eq(&self, other: &Self) -> bool {
        // Exponents are small rationals; tolerance only absorbs sums like 0.5 + 0.5.
        self.exponents
            .iter()
            .zip(other.exponents.iter())
            .all(|(a, b)| (a - b).abs() < 1e-9)
    }
}

impl Dimension {
    /// The dimension of a pure number.
    pub const DIMENSIONLESS: Dimension = Dimension {
        exponents: [0.0; 7],
    };

    /// A dimension from base exponents (m, kg, s, A, K, mol, cd).
    pub const fn new(m: f64, kg: f64, s: f64, a: f64, k: f64, mol: f64, cd: f64) -> Self {
        Dimension {
            exponents: [m, kg, s, a, k, mol, cd],
        }
    }

    /// Whether this is the dimension of a pure number.
    pub fn is_dimensionless(&self) -> bool {
        *self == Self::DIMENSIONLESS
    }

    /// Product of two dimensions.
    pub fn mul(&self, other: &Self) -> Self {
        let mut e = self.exponents;
        for (x, y) in e.iter_mut().zip(other.exponents.iter()) {
            *x += y;
        }
        Dimension { exponents: e }
    }

    /// Quotient of two dimensions.
    pub fn div(&self, other: &Self) -> Self {
        self.mul(&other.powf(-1.0))
    }

    /// Raise to a real power.
    pub fn powf(&self, p: f64) -> Self {
        let mut e = self.exponents;
        for x in e.iter_mut() {
            *x *= p;
            if *x == 0.0 {
                *x = 0.0; // normalise -0.0 so Display never prints it
            }
        }
        Dimension { exponents: e }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_dimensionless() {
            return write!(f, "1 (dimensionless)");
        }
        let mut first = true;
        for (name, &e) in BASE_NAMES.iter().zip(self.exponents.iter()) {
            if e.abs() < 1e-9 {
                continue;
            }
            if !first {
                write!(f, " * ")?;
            }
            first = false;
            if (e - 1.0).abs() < 1e-9 {
                write!(f, "{name}")?;
            } else if (e - e.round()).abs() < 1e-9 {
                write!(f, "{name}**{}", e.round() as i64)?;
            } else {
                write!(f, "{name}**{e}")?;
            }
        }
        Ok(())
    }
}

/// A value with a dimension, in SI base units.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quantity {
    /// Magnitude in SI base units.
    pub value: f64,
    /// Physical dimension.
    pub dim: Dimension,
}

impl Quantity {
    /// A quantity from a value in SI units and its dimension.
    pub fn new(value: f64, dim: Dimension) -> Self {
        Quantity { value, dim }
    }

    /// A pure number.
    pub fn dimensionless(value: f64) -> Self {
        Quantity {
            value,
            dim: Dimension::DIMENSIONLESS,
        }
    }
}

const M: Dimension = Dimension::new(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
const KG: Dimension = Dimension::new(0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0);
const S: Dimension = Dimension::new(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0);
const A: Dimension = Dimension::new(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0);
const K: Dimension = Dimension::new(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0);
const MOL: Dimension = Dimension::new(0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0);
const CD: Dimension = Dimension::new(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0);
// Derived units, written out as base exponents.
const HZ: Dimension = Dimension::new(0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0);
const NEWTON: Dimension = Dimension::new(1.0, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0);
const JOULE: Dimension = Dimension::new(2.0, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0);
const WATT: Dimension = Dimension::new(2.0, 1.0, -3.0, 0.0, 0.0, 0.0, 0.0);
const PASCAL: Dimension = Dimension::new(-1.0, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0);
const COULOMB: Dimension = Dimension::new(0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0);
const VOLT: Dimension = Dimension::new(2.0, 1.0, -3.0, -1.0, 0.0, 0.0, 0.0);
const OHM: Dimension = Dimension::new(2.0, 1.0, -3.0, -2.0, 0.0, 0.0, 0.0);
const SIEMENS: Dimension = Dimension::new(-2.0, -1.0, 3.0, 2.0, 0.0, 0.0, 0.0);
const FARAD: Dimension = Dimension::new(-2.0, -1.0, 4.0, 2.0, 0.0, 0.0, 0.0);
const WEBER: Dimension = Dimension::new(2.0, 1.0, -2.0, -1.0, 0.0, 0.0, 0.0);
const TESLA: Dimension = Dimension::new(0.0, 1.0, -2.0, -1.0, 0.0, 0.0, 0.0);
const HENRY: Dimension = Dimension::new(2.0, 1.0, -2.0, -2.0, 0.0, 0.0, 0.0);
const MOLAR: Dimension = Dimension::new(-3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0);
const LITRE: Dimension = Dimension::new(3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
const LUX: Dimension = Dimension::new(-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0);
const GRAY: Dimension = Dimension::new(2.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0);
const KATAL: Dimension = Dimension::new(0.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0);

/// Base and derived units: (full name, short symbol, scale to SI, dimension).
/// Prefixed forms (`mV`, `nsiemens`, `umetre`, ...) are derived from this table.
const UNITS: &[(&str, &str, f64, Dimension)] = &[
    ("metre", "m", 1.0, M),
    ("meter", "", 1.0, M),
    ("gram", "g", 1e-3, KG),
    ("gramme", "", 1e-3, KG),
    ("second", "s", 1.0, S),
    ("amp", "A", 1.0, A),
    ("ampere", "", 1.0, A),
    ("kelvin", "K", 1.0, K),
    ("mole", "mol", 1.0, MOL),
    ("mol", "", 1.0, MOL),
    ("candela", "cd", 1.0, CD),
    ("hertz", "Hz", 1.0, HZ),
    ("newton", "N", 1.0, NEWTON),
    ("joule", "J", 1.0, JOULE),
    ("watt", "W", 1.0, WATT),
    ("pascal", "Pa", 1.0, PASCAL),
    ("coulomb", "", 1.0, COULOMB),
    ("volt", "V", 1.0, VOLT),
    ("ohm", "", 1.0, OHM),
    ("siemens", "S", 1.0, SIEMENS),
    ("farad", "F", 1.0, FARAD),
    ("weber", "Wb", 1.0, WEBER),
    ("tesla", "T", 1.0, TESLA),
    ("henry", "H", 1.0, HENRY),
    ("molar", "M", 1e3, MOLAR),
    ("litre", "l", 1e-3, LITRE),
    ("liter", "L", 1e-3, LITRE),
    // Further units of Brian's `allunits` (full names only, as there).
    ("kilogram", "", 1.0, KG),
    ("kilogramme", "", 1.0, KG),
    ("candle", "", 1.0, CD),
    ("radian", "", 1.0, Dimension::DIMENSIONLESS),
    ("steradian", "", 1.0, Dimension::DIMENSIONLESS),
    ("lumen", "", 1.0, CD),
    ("lux", "", 1.0, LUX),
    ("becquerel", "", 1.0, HZ),
    ("gray", "", 1.0, GRAY),
    ("sievert", "", 1.0, GRAY),
    ("katal", "", 1.0, KATAL),
];

/// SI prefixes: (long prefix, short prefix, factor, whether the short prefix also goes
/// with unit symbols). Brian's scaled units are the short prefixes on full names (`Tvolt`,
/// `dasecond`, `avolt`); the prefixes of its short names (`mV`, `nS`, `kHz`, `cm`) go with
/// symbols too. The other prefixes do not, so that names such as `EL` or `aF` stay unknown
/// identifiers rather than exa-litres and atto-farads.
const PREFIXES: &[(&str, &str, f64, bool)] = &[
    ("yocto", "y", 1e-24, false),
    ("zepto", "z", 1e-21, false),
    ("atto", "a", 1e-18, false),
    ("femto", "f", 1e-15, true),
    ("pico", "p", 1e-12, true),
    ("nano", "n", 1e-9, true),
    ("micro", "u", 1e-6, true),
    ("milli", "m", 1e-3, true),
    ("centi", "c", 1e-2, true),
    // Before `d`: `dametre` is a decametre (and `damp` a deciamp, as `mp` is no unit).
    ("deca", "da", 1e1, false),
    ("deci", "d", 1e-1, true),
    ("hecto", "h", 1e2, false),
    ("kilo", "k", 1e3, true),
    ("mega", "M", 1e6, true),
    ("giga", "G", 1e9, true),
    ("tera", "T", 1e12, false),
    ("peta", "P", 1e15, false),
    ("exa", "E", 1e18, false),
    ("zetta", "Z", 1e21, false),
    ("yotta", "Y", 1e24, false),
];

/// Looks up a unit name such as `mV`, `nsiemens`, `umetre`, `um`, `Mohm`, `cm`, `Hz`,
/// `cm2`, `umetre3`.
///
/// Returns the unit as a quantity (scale in SI and dimension), or `None` if the name is not
/// a unit. Brian's conventions: prefixes combine with the full name (`msecond`, `umetre`,
/// all twenty SI prefixes from `y` to `Y`) and, for the common ones, with the symbol (`ms`,
/// `um`, `nS`, `mM`); names are case-sensitive (`mS` is millisiemens, `ms` millisecond);
/// `ohm` has no symbol and takes prefixes on its full name (`Mohm`, `kohm`). As in Brian, a
/// full name, prefixed or not, takes an exponent suffix `2` or `3` (`metre2`, `umetre3`,
/// `msiemens2`), and so do `cm`, `mm` and `um` (`cm2`, `um3`).
pub fn lookup_unit(name: &str) -> Option<Quantity> {
    if let Some((q, _)) = lookup_plain(name) {
        return Some(q);
    }
    let (rest, p) = match name.as_bytes().last() {
        Some(b'2') => (&name[..name.len() - 1], 2.0),
        Some(b'3') => (&name[..name.len() - 1], 3.0),
        _ => return None,
    };
    match lookup_plain(rest) {
        Some((q, full)) if full || matches!(rest, "cm" | "mm" | "um") => {
            Some(Quantity::new(q.value.powf(p), q.dim.powf(p)))
        }
        _ => None,
    }
}

/// A unit name without an exponent suffix, and whether it is a full name (with or without
/// a short prefix), as opposed to a symbol or a long prefix.
fn lookup_plain(name: &str) -> Option<(Quantity, bool)> {
    // Full names first: `mol` is a full name of its own besides the symbol of `mole`.
    let base = |n: &str| -> Option<(f64, Dimension, bool)> {
        let full = UNITS.iter().find(|(full, _, _, _)| *full == n);
        full.or_else(|| {
            UNITS
                .iter()
                .find(|(_, sym, _, _)| !sym.is_empty() && *sym == n)
        })
        .map(|&(full, _, s, d)| (s, d, full == n))
    };
    if let Some((s, d, full)) = base(name) {
        return Some((Quantity::new(s, d), full));
    }
    for &(long, short, factor, with_symbols) in PREFIXES {
        for p in [long, short] {
            if let Some(rest) = name.strip_prefix(p) {
                if rest.is_empty() {
                    continue;
                }
                // Short prefixes go with full names and (the common ones) with symbols;
                // long prefixes only with full names ("millivolt", not "milliV").
                let found = UNITS
                    .iter()
                    .find(|(full, _, _, _)| *full == rest)
                    .or_else(|| {
                        UNITS.iter().find(|(_, sym, _, _)| {
                            p == short && with_symbols && !sym.is_empty() && *sym == rest
                        })
                    });
                if let Some(&(full, _, s, d)) = found {
                    return Some((Quantity::new(s * factor, d), p == short && full == rest));
                }
            }
        }
    }
    None
}

/// All unit names that [`lookup_unit`] resolves without a prefix, for documentation and
/// error suggestions.
pub fn base_unit_names() -> impl Iterator<Item = &'static str> {
    UNITS.iter().flat_map(|(full, sym, _, _)| {
        std::iter::once(*full).chain((!sym.is_empty()).then_some(*sym))
    })
}

/// SI prefixes, for documentation.
pub fn prefixes() -> impl Iterator<Item = (&'static str, &'static str, f64)> {
    PREFIXES.iter().map(|&(l, s, f, _)| (l, s, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_units_resolve_to_si() {
        let mv = lookup_unit("mV").unwrap();
        assert_eq!(mv.value, 1e-3);
        assert_eq!(mv.dim, VOLT);
        assert_eq!(lookup_unit("mvolt").unwrap(), mv);
        assert_eq!(lookup_unit("millivolt").unwrap(), mv);
        let um = lookup_unit("um").unwrap();
        assert_eq!(um.value, 1e-6);
        assert_eq!(um.dim, M);
        assert_eq!(lookup_unit("umetre").unwrap(), um);
        assert_eq!(lookup_unit("nS").unwrap().value, 1e-9);
        assert_eq!(lookup_unit("nS").unwrap().dim, SIEMENS);
        assert_eq!(lookup_unit("nsiemens").unwrap().value, 1e-9);
        assert_eq!(lookup_unit("mM").unwrap().value, 1.0);
        assert_eq!(lookup_unit("Mohm").unwrap().value, 1e6);
        assert_eq!(lookup_unit("cm").unwrap().value, 1e-2);
        assert_eq!(lookup_unit("kg").unwrap().value, 1.0);
        assert_eq!(lookup_unit("ms").unwrap().dim, S);
        assert_eq!(lookup_unit("Hz").unwrap().dim, HZ);
        assert_eq!(lookup_unit("kHz").unwrap().value, 1e3);
        assert!(lookup_unit("foo").is_none());
        assert!(lookup_unit("m").is_some());
    }

    #[test]
    fn derived_dimensions_are_consistent() {
        // Ohm's law and the membrane equation's dimensions.
        assert_eq!(VOLT.div(&A), OHM);
        assert_eq!(A.div(&VOLT), SIEMENS);
        assert_eq!(COULOMB.div(&VOLT), FARAD);
        assert_eq!(FARAD.div(&SIEMENS), S);
        assert_eq!(A.div(&FARAD), VOLT.div(&S));
    }

    #[test]
    fn display_names_base_units() {
        assert_eq!(
            VOLT.to_string(),
            "metre**2 * kilogram * second**-3 * amp**-1"
        );
        assert_eq!(S.powf(-0.5).to_string(), "second**-0.5");
        assert_eq!(Dimension::DIMENSIONLESS.to_string(), "1 (dimensionless)");
    }
}
