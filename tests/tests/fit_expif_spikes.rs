//! End to end on the exponential integrate-and-fire neuron fitted from spike trains only
//! (brian2modelfitting's IF example: truth gl 30 nS, C 1 nF): the posterior covers the truth
//! and is much narrower than the prior for both parameters.

use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, fit};
use std::path::Path;

const FIT: &str = r#"
model = "models/expif.toml"
dt = "0.1*ms"
duration = "300*ms"
seed = 5
[stimuli.I]
kind = "step"
amplitude = ["1*nA", "2*nA"]
start = "20*ms"
stop = "280*ms"
[outputs.spikes]
features = ["train_count(window=stim)", "train_latency"]
[priors]
gl = ["10*nS", "100*nS"]
C = ["0.1*nF", "10*nF"]
[synthetic]
gl = "30*nS"
C = "1*nF"
[inference]
simulations = 2000
samples = 4000
predictive = 3
"#;

#[test]
fn gl_and_c_from_spikes_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/e2e_expif.toml");
    let cfg = FitConfig::parse(&path, FIT).unwrap();
    let out = std::env::temp_dir().join(format!("neurosbi-e2e-{}-expif", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = FitOptions {
        quiet: true,
        out: Some(out),
        ..FitOptions::default()
    };
    let res = fit(&cfg, &opts).unwrap();
    let prior_std = [(100.0 - 10.0) / 12f64.sqrt(), (10.0 - 0.1) / 12f64.sqrt()];
    for (s, ps) in res.summary.iter().zip(prior_std) {
        let truth = s.truth.unwrap();
        assert!(
            s.q025 <= truth && truth <= s.q975,
            "{}: 95 % interval [{}, {}] misses {truth}",
            s.name,
            s.q025,
            s.q975
        );
        assert!(
            s.std * 3.0 <= ps,
            "{}: std {} vs prior std {ps}",
            s.name,
            s.std
        );
    }
}
