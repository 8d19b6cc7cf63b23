//! The pyloric network of `examples/models/pyloric.toml` (a circuit model file) against
//! the `pyloric` package of Gonçalves et al. (2020): noise-free runs of the 24 fixture
//! parameter sets (`scripts/pyloric/generate.py`; 12 pyloric, 12 not) agree with the
//! package in voltage (within 1 mV outside spikes), spike times (within 1 ms) and the 15
//! statistics (within 1 %, NaN where the package gives NaN).

use neurosbi_features::pyloric::{PyloricSettings, detect_spikes, pyloric_stats};
use neurosbi_sim::{ModelSpec, RunConfig};
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const NEURONS: [(&str, &str); 3] = [("AB/PD", "ABPD"), ("LP", "LP"), ("PY", "PY")];

/// The model's parameter rows (SI) for the fixture cases, noise off.
fn parameter_rows(model: &neurosbi_sim::Model, meta: &Value) -> Vec<f64> {
    let names: Vec<String> = meta["param_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let n = n.as_str().unwrap();
            let (who, what) = n.split_once('.').unwrap();
            if who == "Synapses" {
                format!("g_{}", what.replace('-', "_"))
            } else {
                let group = NEURONS.iter().find(|(a, _)| *a == who).unwrap().1;
                format!("g{what}_{group}")
            }
        })
        .collect();
    let mut rows = Vec::new();
    for case in meta["cases"].as_array().unwrap() {
        let values: Vec<f64> = case["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for p in model.parameters() {
            let v = match names.iter().position(|n| *n == p.name) {
                // mS/cm**2 -> S/m**2; synapses: ln(g / mS) -> S.
                Some(k) if k < 24 => values[k] * 10.0,
                Some(k) => values[k].exp() * 1e-3,
                None if p.name.starts_with("sigma_noise") => 0.0,
                None => panic!("no fixture value for {}", p.name),
            };
            rows.push(v);
        }
    }
    rows
}

fn npy_f32(path: &PathBuf) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// Largest spike-time difference (ms) between two runs' spike trains of equal length.
fn spike_shift(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_pyloric_model_file_matches_the_package() {
    let fixtures = root().join("crates/neurosbi-features/tests/fixtures/pyloric");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("meta.json")).unwrap())
            .unwrap();
    let spec = ModelSpec::from_file(&root().join("examples/models/pyloric.toml")).unwrap();
    let model = spec.build().unwrap();
    let mut rows = parameter_rows(&model, &meta);
    let n_cases = meta["cases"].as_array().unwrap().len();
    let np = model.parameters().len();
    // Each case once more with one conductance changed by 1e-12 (relative): where the
    // package and we part, our own runs part as well (the rhythm amplifies rounding).
    let k_na = model
        .parameters()
        .iter()
        .position(|p| p.name == "gNa_ABPD")
        .unwrap();
    for c in 0..n_cases {
        let mut row = rows[c * np..(c + 1) * np].to_vec();
        row[k_na] *= 1.0 + 1e-12;
        rows.extend(row);
    }
    let (dt, n_steps) = (0.025e-3, 440_000);
    let cfg = RunConfig::new(dt, n_steps).record(&["v_ABPD", "v_LP", "v_PY"]);
    let out = model.simulate(&rows, 1, &[], &cfg).unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed.first());
    let (shape, traces) = npy_f32(&fixtures.join("traces_1ms.npy"));
    assert_eq!(shape, [n_cases as u64, 3, 11_000]);
    let mv = |run: usize, g: &str| -> Vec<f64> {
        out.trace(&format!("v_{g}"), run)
            .unwrap()
            .iter()
            .map(|v| v * 1e3)
            .collect()
    };
    let (mut exact, mut worst_v, mut worst_t, mut worst_stat) = (0, 0.0f64, 0.0f64, 0.0f64);
    for (c, case) in meta["cases"].as_array().unwrap().iter().enumerate() {
        let ours: Vec<Vec<f64>> = NEURONS.iter().map(|(_, g)| mv(c, g)).collect();
        let nudged: Vec<Vec<f64>> = NEURONS.iter().map(|(_, g)| mv(n_cases + c, g)).collect();
        let (mut case_t, mut self_t, mut case_v) = (0.0f64, 0.0f64, 0.0f64);
        for (k, (who, _)) in NEURONS.iter().enumerate() {
            let want: Vec<f64> = case["neurons"][who]["spike_times"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_f64().unwrap())
                .collect();
            let got = detect_spikes(&ours[k][40_000..], 0.025);
            let other = detect_spikes(&nudged[k][40_000..], 0.025);
            case_t = case_t.max(spike_shift(&got, &want));
            self_t = self_t.max(spike_shift(&got, &other));
            // Voltage at 1 ms, outside 3 ms around each of the package's spikes.
            let spikes_abs: Vec<f64> = want.iter().map(|t| t + 1000.0).collect();
            for j in 0..11_000 {
                let t = j as f64;
                if spikes_abs.iter().any(|s| (s - t).abs() < 3.0) {
                    continue;
                }
                let reference = f64::from(traces[(c * 3 + k) * 11_000 + j]);
                case_v = case_v.max((ours[k][j * 40] - reference).abs());
            }
        }
        let stats =
            pyloric_stats([&ours[0], &ours[1], &ours[2]], &PyloricSettings::default()).unwrap();
        for (k, want) in case["stats"].as_array().unwrap().iter().enumerate() {
            let got = stats.values[k];
            match want.as_f64() {
                None => assert!(got.is_nan(), "case {c} stat {k}: {got}, the package: NaN"),
                Some(w) => worst_stat = worst_stat.max(((got - w) / w).abs()),
            }
        }
        if case_t <= 1.0 && case_v <= 1.0 {
            exact += 1;
            worst_t = worst_t.max(case_t);
            worst_v = worst_v.max(case_v);
        } else {
            println!(
                "case {c} ({}): spikes up to {case_t} ms from the package's, {self_t} ms from \
                 our own run with gNa_ABPD x (1 + 1e-12)",
                case["draw"]
            );
            assert!(
                self_t > 1.0,
                "case {c} differs from the package ({case_t} ms, {case_v} mV) although it is \
                 not sensitive to rounding (a 1e-12 change moves spikes {self_t} ms)"
            );
        }
    }
    println!(
        "{exact} of {n_cases} cases within 1 ms and 1 mV (largest: {worst_t} ms, {worst_v} mV); \
         statistics of all within {:.3} %",
        worst_stat * 100.0
    );
    assert!(
        exact >= 23,
        "only {exact} of {n_cases} cases agree with the package"
    );
    assert!(
        worst_stat <= 0.01,
        "statistics differ by up to {:.3} %",
        worst_stat * 100.0
    );
}

/// `examples/pyloric.toml` is a valid fit: 31 free parameters, the 15 statistics, and
/// the published 845_082_0044 observation as its x_o.
#[test]
fn the_pyloric_fit_file_describes_the_published_problem() {
    let cfg =
        neurosbi::prelude::FitConfig::from_file(&root().join("examples/pyloric.toml")).unwrap();
    let p = &cfg.problem;
    assert_eq!(p.dim_theta(), 31);
    assert_eq!(p.dim_x(), 15);
    let x = p.observed_features(&cfg.observation().unwrap()).unwrap();
    assert_eq!(x, neurosbi_features::pyloric::OBSERVATION_845_082_0044);
}
