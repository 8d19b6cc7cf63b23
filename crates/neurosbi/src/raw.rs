//! The `raw(every=K)` pseudo-feature: the trace itself, every K-th sample, for inference
//! on raw traces through an embedding network (`[inference] embedding = "cnn"`).

use neurosbi_features::{Catalogue, Feature, FeatureError, FeatureSet, Input, Outcome};

/// Every `every`-th sample of a trace of `n_steps` samples.
#[derive(Clone, Debug)]
pub struct RawTrace {
    /// Keep one sample in this many.
    pub every: usize,
    /// Samples of the full trace.
    pub n_steps: usize,
}

impl Feature for RawTrace {
    fn name(&self) -> String {
        format!("raw(every={})", self.every)
    }
    fn n_outputs(&self) -> usize {
        self.n_steps.div_ceil(self.every)
    }
    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let v = input.recording().values;
        for (i, o) in out.iter_mut().enumerate() {
            *o = match v.get(i * self.every) {
                Some(x) => Ok(*x),
                None => Err(neurosbi_features::Undefined("trace shorter than expected")),
            };
        }
    }
}

/// Parses `raw` or `raw(every=K)`; `None` when `spec` is another feature.
pub fn parse_raw(spec: &str) -> Option<Result<usize, String>> {
    let s = spec.trim();
    if s == "raw" {
        return Some(Ok(1));
    }
    let inner = s.strip_prefix("raw(")?.strip_suffix(')')?;
    let v = inner
        .trim()
        .strip_prefix("every")?
        .trim_start()
        .strip_prefix('=')?;
    Some(
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|k| *k > 0)
            .ok_or_else(|| format!("`{spec}`: every must be a positive integer")),
    )
}

/// Builds a feature set from catalogue names and `raw(every=K)` entries.
pub fn feature_set(names: &[String], n_steps: usize) -> Result<FeatureSet, String> {
    let cat = Catalogue::standard();
    let mut set = FeatureSet::new();
    for n in names {
        match parse_raw(n) {
            Some(Ok(every)) => set.push(Box::new(RawTrace { every, n_steps })),
            Some(Err(e)) => return Err(e),
            None => set.push(cat.build(n).map_err(|e: FeatureError| e.to_string())?),
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neurosbi_features::Recording;

    #[test]
    fn raw_keeps_every_kth_sample() {
        let set = feature_set(&["raw(every=3)".into(), "max".into()], 7).unwrap();
        assert_eq!(set.n_outputs(), 4);
        let v = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = set.compute(&Recording::new(&v, 0.1)).unwrap();
        let x: Vec<f64> = x.into_iter().map(|o| o.unwrap()).collect();
        assert_eq!(x, vec![0.0, 3.0, 6.0, 6.0]);
    }

    #[test]
    fn raw_spec_errors() {
        assert!(parse_raw("raw(every=0)").unwrap().is_err());
        assert!(parse_raw("mean").is_none());
        assert_eq!(parse_raw("raw").unwrap(), Ok(1));
    }
}
