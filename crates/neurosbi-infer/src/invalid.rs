//! Invalid simulations: how many, why, and where in parameter space they fail.
//!
//! A model that fails over part of the prior biases the posterior towards the rest without a
//! word unless the failures are shown. [`InvalidReport`] counts them by reason and finds the
//! parameters along which the failure rate changes most (by quartiles of the simulated
//! parameters), so a user can see "gNa below 12: 96 % invalid" rather than a bare count.

use crate::simulator::SimulationSet;
use serde::{Deserialize, Serialize};

/// How many invalid simulations failed for which reason (in order of first appearance).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidReasons(pub Vec<(String, u64)>);

impl InvalidReasons {
    /// Counts one more simulation that failed for `reason`.
    pub fn add(&mut self, reason: String) {
        self.add_n(reason, 1);
    }
    fn add_n(&mut self, reason: String, n: u64) {
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => self.0.push((reason, n)),
        }
    }
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &InvalidReasons) {
        for (r, n) in &other.0 {
            self.add_n(r.clone(), *n);
        }
    }
}

/// Failure rate of one parameter's quartiles (of all simulated values of that parameter).
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterRegion {
    /// Index of the parameter.
    pub index: usize,
    /// Quartile edges: min, 25 %, 50 %, 75 %, max.
    pub edges: [f64; 5],
    /// Fraction of invalid simulations in each quartile.
    pub invalid_rate: [f64; 4],
    /// Range of the valid simulations' values (NaN when none is valid).
    pub valid_range: (f64, f64),
}

impl ParameterRegion {
    /// How much failure depends on this parameter: the larger of the spread of the quartile
    /// failure rates and the share of the simulated range where no simulation was valid.
    pub fn spread(&self) -> f64 {
        let (lo, hi) = self
            .invalid_rate
            .iter()
            .fold((1.0f64, 0.0f64), |(a, b), &r| (a.min(r), b.max(r)));
        (hi - lo).max(1.0 - self.valid_share())
    }

    /// Share of the simulated range spanned by the valid simulations.
    pub fn valid_share(&self) -> f64 {
        let width = self.edges[4] - self.edges[0];
        let (a, b) = self.valid_range;
        if width > 0.0 && a <= b {
            (b - a) / width
        } else {
            1.0
        }
    }
}

/// Counts, reasons and parameter region of a set's invalid simulations.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidReport {
    /// Simulations attempted.
    pub attempted: u64,
    /// Invalid ones.
    pub invalid: u64,
    /// Why they failed.
    pub reasons: InvalidReasons,
    /// Per parameter, failure rate by quartile, the most uneven first.
    pub regions: Vec<ParameterRegion>,
}

impl InvalidReport {
    /// The report of `set`.
    pub fn new(set: &SimulationSet) -> Self {
        let d = set.dim_theta;
        let mut regions: Vec<ParameterRegion> = if set.invalid_theta.is_empty() || d == 0 {
            Vec::new()
        } else {
            (0..d).map(|j| region_of(set, j)).collect()
        };
        regions.sort_by(|a, b| b.spread().total_cmp(&a.spread()));
        Self {
            attempted: set.n_attempted,
            invalid: set.n_invalid,
            reasons: set.reasons.clone(),
            regions,
        }
    }

    /// Fraction of invalid simulations (0 when none were attempted).
    pub fn fraction(&self) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            self.invalid as f64 / self.attempted as f64
        }
    }

    /// Several lines for people: counts, reasons, and the (at most 3) parameters along which
    /// the failure rate changes by more than 20 points, named by `names`.
    pub fn describe(&self, names: &[String]) -> String {
        let mut s = format!(
            "{} of {} simulations valid, {} invalid ({:.1} %)",
            self.attempted - self.invalid,
            self.attempted,
            self.invalid,
            100.0 * self.fraction()
        );
        for (r, n) in &self.reasons.0 {
            s.push_str(&format!("\n  {n} x {r}"));
        }
        for g in self.regions.iter().filter(|g| g.spread() > 0.2).take(3) {
            let name = names
                .get(g.index)
                .cloned()
                .unwrap_or_else(|| format!("parameter {}", g.index + 1));
            let e = g.edges;
            if g.valid_share() < 0.5 {
                s.push_str(&format!(
                    "\n  valid only for {name} in [{:.4}, {:.4}] (simulated [{:.4}, {:.4}])",
                    g.valid_range.0, g.valid_range.1, e[0], e[4]
                ));
                continue;
            }
            let r = g.invalid_rate.map(|v| 100.0 * v);
            s.push_str(&format!(
                "\n  invalid by quartile of {name}: [{:.4}, {:.4}] {:.0} %, [{:.4}, {:.4}] {:.0} %, \
                 [{:.4}, {:.4}] {:.0} %, [{:.4}, {:.4}] {:.0} %",
                e[0], e[1], r[0], e[1], e[2], r[1], e[2], e[3], r[2], e[3], e[4], r[3]
            ));
        }
        s
    }
}

fn region_of(set: &SimulationSet, j: usize) -> ParameterRegion {
    let d = set.dim_theta;
    let column = |rows: &[f64]| -> Vec<f64> { rows.chunks(d).map(|r| r[j]).collect() };
    let (valid, invalid) = (column(&set.theta), column(&set.invalid_theta));
    let mut all: Vec<f64> = valid.iter().chain(&invalid).copied().collect();
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    let edges = [q(0.0), q(0.25), q(0.5), q(0.75), q(1.0)];
    let bin = |v: f64| edges[1..4].iter().filter(|&&e| v > e).count();
    let (mut bad, mut total) = ([0u64; 4], [0u64; 4]);
    for &v in &valid {
        total[bin(v)] += 1;
    }
    for &v in &invalid {
        total[bin(v)] += 1;
        bad[bin(v)] += 1;
    }
    let invalid_rate = std::array::from_fn(|k| {
        if total[k] == 0 {
            0.0
        } else {
            bad[k] as f64 / total[k] as f64
        }
    });
    let valid_range = valid
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    ParameterRegion {
        index: j,
        edges,
        invalid_rate,
        valid_range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_that_decides_failure_comes_first() {
        // Two parameters on a grid; a simulation fails exactly when the second is below 0.3.
        let mut set = SimulationSet {
            dim_theta: 2,
            dim_x: 1,
            ..Default::default()
        };
        for i in 0..100 {
            let row = [(i % 10) as f64 / 10.0, (i / 10) as f64 / 10.0];
            set.n_attempted += 1;
            if row[1] < 0.3 {
                set.n_invalid += 1;
                set.invalid_theta.extend(row);
                set.reasons.add("non-finite output x[0]".into());
            } else {
                set.theta.extend(row);
                set.x.push(1.0);
            }
        }
        let r = set.invalid_report();
        assert_eq!((r.attempted, r.invalid), (100, 30));
        assert_eq!(r.regions[0].index, 1);
        assert_eq!(r.regions[0].invalid_rate[0], 1.0);
        assert_eq!(r.regions[0].invalid_rate[3], 0.0);
        assert!(r.regions[1].spread() < 0.2);
        let text = r.describe(&["a".into(), "b".into()]);
        assert!(
            text.contains("70 of 100 simulations valid, 30 invalid (30.0 %)"),
            "{text}"
        );
        assert!(text.contains("30 x non-finite output x[0]"), "{text}");
        assert!(
            text.contains("quartile of b") && !text.contains("quartile of a"),
            "{text}"
        );
    }
}
