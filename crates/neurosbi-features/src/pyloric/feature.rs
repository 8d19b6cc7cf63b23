//! `pyloric` in the feature catalogue: the 15 statistics of a pyloric circuit from the
//! voltage of AB/PD (the output's trace) and of LP and PY (its `with` traces).

use super::{PyloricSettings, STAT_NAMES, pyloric_stats};
use crate::feature::{Feature, Input, Outcome, Undefined};
use crate::set::CatalogueEntry;

/// The catalogue's `pyloric(burn_in=1000)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyloricFeature {
    /// Time discarded at the start (ms).
    pub burn_in: f64,
}

impl Feature for PyloricFeature {
    fn name(&self) -> String {
        if self.burn_in == 1000.0 {
            "pyloric".into()
        } else {
            format!("pyloric(burn_in={})", self.burn_in)
        }
    }

    fn n_outputs(&self) -> usize {
        STAT_NAMES.len()
    }

    fn output_names(&self) -> Vec<String> {
        STAT_NAMES
            .iter()
            .map(|s| format!("{}.{s}", self.name()))
            .collect()
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let rec = input.recording();
        let [lp, py] = match rec.others {
            [lp, py] => [*lp, *py],
            _ => {
                out.fill(Err(Undefined(
                    "pyloric needs the voltages of AB/PD, LP and PY: give LP and PY in `with`",
                )));
                return;
            }
        };
        let settings = PyloricSettings {
            dt: rec.dt,
            burn_in: self.burn_in,
        };
        match pyloric_stats([rec.values, lp, py], &settings) {
            Ok(s) => {
                for (o, v) in out.iter_mut().zip(s.values) {
                    // The papers: a statistic of non-pyloric activity is undefined.
                    *o = if v.is_nan() {
                        Err(Undefined(
                            "not defined for this activity (not triphasic or too few bursts)",
                        ))
                    } else {
                        Ok(v)
                    };
                }
            }
            Err(_) => out.fill(Err(Undefined("the traces cannot be analysed"))),
        }
    }
}

/// The catalogue entry.
pub(crate) fn entries() -> Vec<CatalogueEntry> {
    vec![CatalogueEntry {
        name: "pyloric",
        group: "circuit",
        unit: "ms, 1 (phases and duty cycles)",
        summary: "the 15 statistics of the pyloric rhythm (Prinz et al. 2004; Gonçalves et al. 2020) from AB/PD's trace with LP's and PY's in `with`",
        params: "burn_in=1000 (ms)",
        build: |p| {
            Ok(Box::new(PyloricFeature {
                burn_in: p.f64("burn_in", 1000.0)?,
            }))
        },
    }]
}
