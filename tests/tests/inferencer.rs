//! The library API: `Inferencer` on HH model C with a trace simulated from the truth.

use neurosbi::prelude::*;
use std::path::Path;

fn hh_c() -> Model {
    let spec = ModelSpec::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/hh_c.toml"),
    )
    .unwrap();
    spec.build().unwrap()
}

const DT: f64 = 5e-5; // 0.05 ms
const N: usize = 3000; // 150 ms

fn step() -> Vec<f64> {
    (0..N).map(|k| if k >= 1000 { 1e-9 } else { 0.0 }).collect()
}

/// The observed trace in mV, simulated at gNa 32 uS, gK 1 uS.
fn observed() -> Vec<f64> {
    let model = hh_c();
    let cfg = neurosbi::sim::RunConfig::new(DT, N).record(&["v"]);
    let stim = Stimulus::from_rows("I", &[step()]).unwrap();
    let res = model.simulate(&[32e-6, 1e-6], 1, &[stim], &cfg).unwrap();
    res.trace("v", 0).unwrap().iter().map(|v| v * 1e3).collect()
}

fn builder() -> neurosbi::InferencerBuilder {
    Inferencer::builder(hh_c())
        .dt(DT)
        .input("I", vec![step()])
        .output_traces("v", "mV", vec![observed()])
        .features(
            "v",
            &[
                "spike_count",
                "mean(window=stim)",
                "std(window=stim)",
                "max(window=stim)",
            ],
        )
        .stimulus_window(50.0, 150.0)
        .seed(9)
}

#[test]
fn infer_sample_log_prob_map_traces_and_persistence() {
    let mut inf = builder()
        .prior(
            "gNa",
            "uS",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .prior(
            "gK",
            "uS",
            Marginal::Uniform {
                low: 1e-4,
                high: 15.0,
            },
        )
        .build()
        .unwrap();
    inf.infer(&InferSettings::npe(1000), None).unwrap();
    let s = inf.sample(2000, 1).unwrap();
    assert_eq!(s.len(), 4000);
    let mean_gk = s.chunks(2).map(|r| r[1]).sum::<f64>() / 2000.0;
    assert!(
        (mean_gk - 1.0).abs() < 0.5,
        "posterior mean of gK {mean_gk} uS, truth 1"
    );
    let lp = inf.log_prob(&[32.0, 1.0, 70.0, 12.0]).unwrap();
    assert!(
        lp[0] > lp[1],
        "the truth is more probable than a far point: {lp:?}"
    );
    let map = inf.map(2).unwrap();
    assert!((map[1] - 1.0).abs() < 0.5, "MAP {map:?}");
    let c = inf.conditional_corrcoeff(&[32.0, 1.0], 30).unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(c[0], 1.0);
    assert_eq!(c[1], c[2]);
    assert!(c[1].abs() <= 1.0);
    let traces = inf.generate_traces(3, 4).unwrap();
    assert_eq!(traces.len(), 3);
    match &traces[0][0] {
        Observed::Traces(r) => assert_eq!(r[0].len(), N),
        other => panic!("expected traces, got {other:?}"),
    }
    let dir = std::env::temp_dir().join(format!("neurosbi-inferencer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    inf.save(&dir.join("posterior")).unwrap();
    inf.pairplot(&dir, &s, Some(&[32.0, 1.0])).unwrap();
    assert!(dir.join("pairplot.svg").exists() && dir.join("pairplot.png").exists());
    inf.conditional_pairplot(&dir, &[32.0, 1.0], 20).unwrap();
    assert!(dir.join("conditional_pairplot.png").exists());
    let mut again = builder()
        .prior(
            "gNa",
            "uS",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .prior(
            "gK",
            "uS",
            Marginal::Uniform {
                low: 1e-4,
                high: 15.0,
            },
        )
        .build()
        .unwrap();
    again.load(&dir.join("posterior")).unwrap();
    assert_eq!(
        again.sample(2000, 1).unwrap(),
        s,
        "loaded posterior, same seed, same samples"
    );
}

#[test]
fn errors_say_which_parameter_input_or_output() {
    let e = builder()
        .prior(
            "gNa",
            "uS",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`gK`") && e.contains("missing"), "{e}");
    let e = builder()
        .prior(
            "gNa",
            "mV",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .prior(
            "gK",
            "uS",
            Marginal::Uniform {
                low: 1e-4,
                high: 15.0,
            },
        )
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("priors.gNa") && e.contains("mV"), "{e}");
    let e = Inferencer::builder(hh_c())
        .dt(DT)
        .input("I", vec![step()])
        .output_traces("v", "mV", vec![vec![-70.0; N - 1]])
        .features("v", &["mean"])
        .prior(
            "gNa",
            "uS",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .prior(
            "gK",
            "uS",
            Marginal::Uniform {
                low: 1e-4,
                high: 15.0,
            },
        )
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("outputs.v.data") && e.contains(&format!("expected {N}")),
        "{e}"
    );
    let e = builder()
        .prior(
            "gNa",
            "uS",
            Marginal::Uniform {
                low: 0.5,
                high: 80.0,
            },
        )
        .prior(
            "gK",
            "uS",
            Marginal::Uniform {
                low: 1e-4,
                high: 15.0,
            },
        )
        .output_traces("w", "mV", vec![observed()])
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("outputs.w") && e.contains("cannot be recorded"),
        "{e}"
    );
}

/// A fit file for HH model B (membrane noise): the same problem is described below through
/// the builder.
const NOISY_FIT: &str = r#"
model = "models/hh_b.toml"
dt = "0.025*ms"
duration = "60*ms"
seed = 7

[stimuli.I]
kind = "step"
amplitude = "0.5*nA"
start = "10*ms"
stop = "50*ms"

[outputs.v]
unit = "mV"
features = ["sbi_hh_tutorial"]

[priors]
gNa = ["0.5*mS/cm**2", "80*mS/cm**2"]
gK = ["1e-4*mS/cm**2", "15*mS/cm**2"]

[synthetic]
gNa = "50*mS/cm**2"
gK = "5*mS/cm**2"
"#;

/// The builder's description of `NOISY_FIT` (parsed as `cfg`, observed traces `v`): the values
/// the fit file's text evaluates to, since the builder takes SI numbers.
fn builder_like(model: Model, cfg: &FitConfig, v: &[Vec<f64>]) -> Inferencer {
    let mut b = Inferencer::builder(model)
        .dt(cfg.problem.dt)
        .input("I", vec![cfg.problem.stimuli[0].values.clone()])
        .output_traces("v", "mV", v.to_vec())
        .features("v", &["sbi_hh_tutorial"])
        .stimulus_window(10.0, 50.0)
        .seed(7);
    for p in &cfg.problem.free {
        b = b.prior(&p.name, &p.unit.name, p.prior);
    }
    b.build().unwrap()
}

/// Bit patterns, so NaN features compare equal to themselves.
fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// The fit file and the builder describe one problem; with the same seed they must build
/// the same problem: the same noise seed (so the same synthetic observation), the same
/// observed features and the same simulations for the same parameter rows and seed.
#[test]
fn fit_file_and_builder_give_identical_results_for_the_same_seed() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let cfg = FitConfig::parse(&examples.join("noisy_same_problem.toml"), NOISY_FIT).unwrap();
    let observed = cfg.observation().unwrap();
    let Observed::Traces(v) = &observed[0] else {
        panic!("expected traces, got {:?}", observed[0]);
    };
    let model = ModelSpec::from_file(&examples.join("models/hh_b.toml"))
        .unwrap()
        .build()
        .unwrap();
    assert!(
        !model.noise_sources().is_empty(),
        "model B has membrane noise"
    );
    let inf = builder_like(model, &cfg, v);
    let f = &cfg.problem;
    let mut l = inf.problem().clone();
    assert_eq!(l.noise_seed, f.noise_seed, "one noise seed for one seed");
    assert_eq!((l.dt, l.n_steps, l.window), (f.dt, f.n_steps, f.window));
    // The free parameters' entries of `base` are overwritten by every simulation; the model
    // file gives them default values there, a model built in code has none.
    let names: Vec<_> = l
        .model
        .parameters()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    for p in &f.free {
        let j = names.iter().position(|n| *n == p.name).unwrap();
        l.base[j] = f.base[j];
    }
    assert_eq!(bits(&l.base), bits(&f.base));
    assert_eq!(
        l.fingerprint(&observed, 7),
        f.fingerprint(&observed, 7),
        "same model, stimuli, priors, features"
    );
    assert_eq!(
        bits(inf.observed_features()),
        bits(&f.observed_features(&observed).unwrap())
    );
    let truth = cfg.truth.clone().unwrap();
    assert_eq!(
        l.synthetic_observation(&truth).unwrap(),
        observed,
        "the builder's problem simulates the fit file's observation"
    );
    let theta = [50.0, 5.0, 20.0, 2.0];
    let (rf, rl) = (
        f.simulate(&theta, 11).unwrap(),
        l.simulate(&theta, 11).unwrap(),
    );
    assert_eq!(
        bits(&f.features_of(&rf, Some(&observed))),
        bits(&l.features_of(&rl, Some(&observed)))
    );
}

/// A tiny NPE run on the fit file's description and on the builder's gives the same
/// posterior samples: one validation, one noise seed, one observation.
#[test]
fn fit_file_and_builder_give_identical_posterior_samples() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let path = examples.join("noisy_same_problem.toml");
    let spec = neurosbi::spec::ProblemSpec::from_toml(&path, NOISY_FIT).unwrap();
    let mut from_file = Inferencer::from_spec(&spec, &path).unwrap();
    let cfg = FitConfig::parse(&path, NOISY_FIT).unwrap();
    let observed = cfg.observation().unwrap();
    let Observed::Traces(v) = &observed[0] else {
        panic!("expected traces");
    };
    let model = ModelSpec::from_file(&examples.join("models/hh_b.toml"))
        .unwrap()
        .build()
        .unwrap();
    let mut built = builder_like(model, &cfg, v);
    let settings = InferSettings {
        train: TrainConfig {
            max_epochs: Some(3),
            ..TrainConfig::default()
        },
        ..InferSettings::npe(200)
    };
    from_file.infer(&settings, None).unwrap();
    built.infer(&settings, None).unwrap();
    let (a, b) = (
        from_file.sample(100, 5).unwrap(),
        built.sample(100, 5).unwrap(),
    );
    assert_eq!(bits(&a), bits(&b));
}
