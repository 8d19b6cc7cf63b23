//! Features computed by the calling program (`neurosbi::external`): the hook the Python
//! package's feature callables use. Their values go after the catalogue's, they are called
//! with whole batches, the fingerprint tells two functions apart by their provenance, and a
//! door without the function refuses to run.

use neurosbi::external::BatchFeature;
use neurosbi::prelude::*;
use neurosbi::spec::ProblemSpec;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The mean of each trace (SI), recording the size of every batch it is called with.
struct Mean {
    tag: &'static str,
    batches: Mutex<Vec<usize>>,
}

impl BatchFeature for Mean {
    fn provenance(&self) -> String {
        format!("test mean {}", self.tag)
    }
    fn compute(&self, traces: &[&[f64]], _dt: f64, out: &mut [f64]) -> Result<(), String> {
        self.batches.lock().unwrap().push(traces.len());
        for (t, o) in traces.iter().zip(out) {
            *o = t.iter().sum::<f64>() / t.len() as f64;
        }
        Ok(())
    }
}

const N: usize = 400;

fn spec() -> ProblemSpec {
    let model = Model::new(
        &ModelDescription::new("dv/dt = (El - v)/tau + I/C : volt\ntau : second (constant)")
            .input("I", lookup_unit("amp").unwrap().dim)
            .constant("El", Quantity::new(-0.07, lookup_unit("volt").unwrap().dim))
            .constant("C", Quantity::new(1e-10, lookup_unit("farad").unwrap().dim))
            .initial("v", "El")
            .method("exponential_euler"),
    )
    .unwrap();
    let step: Vec<f64> = (0..N).map(|k| if k >= 50 { 1e-10 } else { 0.0 }).collect();
    let v: Vec<f64> = (0..N).map(|k| -70.0 + (k as f64) * 0.01).collect();
    let mut spec = Inferencer::builder(model)
        .dt(1e-4)
        .input("I", vec![step])
        .output_traces("v", "mV", vec![v])
        .features("v", &["max"])
        .prior(
            "tau",
            "ms",
            Marginal::Uniform {
                low: 5.0,
                high: 50.0,
            },
        )
        .seed(2)
        .into_spec();
    let outputs = spec.outputs.as_mut().unwrap();
    outputs.0[0].1.external_features = vec!["mean_si".into()];
    spec
}

fn with(f: &Arc<Mean>) -> Inferencer {
    let f: Arc<dyn BatchFeature> = f.clone();
    Inferencer::from_spec_with(
        &spec(),
        Path::new("test"),
        vec![("v".into(), "mean_si".into(), f)],
    )
    .unwrap()
}

fn mean(tag: &'static str) -> Arc<Mean> {
    Arc::new(Mean {
        tag,
        batches: Mutex::new(Vec::new()),
    })
}

#[test]
fn external_values_follow_the_catalogue_s_and_come_in_batches() {
    let f = mean("a");
    let mut inf = with(&f);
    let x = inf.observed_features().to_vec();
    let v_max_mv = -70.0 + 399.0 * 0.01;
    let v_mean_si = (0..N).map(|k| -0.070 + k as f64 * 1e-5).sum::<f64>() / N as f64;
    assert_eq!(x.len(), 2);
    assert!((x[0] - v_max_mv).abs() < 1e-9, "{x:?}");
    assert!((x[1] - v_mean_si).abs() < 1e-12, "{x:?}");
    assert_eq!(inf.problem().feature_names(), ["v/0/max", "v/0/mean_si"]);
    inf.infer(&InferSettings::npe(300), None).unwrap();
    let batches = f.batches.lock().unwrap().clone();
    assert_eq!(batches[0], 1, "the observation");
    assert_eq!(batches.iter().sum::<usize>(), 1 + 300);
    assert!(
        batches[1..].iter().any(|&b| b > 1),
        "one call per batch: {batches:?}"
    );
}

#[test]
fn the_fingerprint_tells_functions_apart_and_a_door_without_them_refuses() {
    let fp = |inf: &Inferencer| inf.problem().fingerprint(inf.observed(), 2);
    let (a, a2, b) = (with(&mean("a")), with(&mean("a")), with(&mean("b")));
    assert_eq!(fp(&a).digest(), fp(&a2).digest());
    assert_eq!(fp(&a).changes(&fp(&b)), ["features"]);
    let e = Inferencer::from_spec(&spec(), Path::new("test"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("outputs.v.external_features") && e.contains("`mean_si`"),
        "{e}"
    );
}
