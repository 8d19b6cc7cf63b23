//! Circuit model files through the fit-file door: a graded pair fitted from a synthetic
//! observation, features that read several neurons (`with`), observations given as
//! statistics measured elsewhere (`statistics`), and a spiking circuit's spike trains as
//! outputs, up to a whole fit that recovers a synaptic weight and a drive.

use neurosbi::prelude::{FitConfig, FitOptions, Observed};
use std::path::{Path, PathBuf};

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/circuit_test.toml")
}

fn fit(outputs: &str) -> String {
    format!(
        r#"
model = "models/graded_pair.toml"
dt = "0.05*ms"
duration = "200*ms"
seed = 3
{outputs}
[priors]
g_syn = ["0*mS/cm**2", "8*mS/cm**2"]
[inference]
simulations = 20
"#
    )
}

const SYNTHETIC: &str = r#"
[outputs.v_post]
unit = "mV"
with = ["v_pre"]
features = ["mean", "max"]
[synthetic]
g_syn = "3*mS/cm**2"
"#;

#[test]
fn a_circuit_model_file_fits_through_the_fit_file() {
    let cfg = FitConfig::parse(&path(), &fit(SYNTHETIC)).unwrap();
    let p = &cfg.problem;
    assert_eq!(p.free[0].name, "g_syn");
    let obs = cfg.observation().unwrap();
    // An output whose features read other variables is observed as feature values.
    let Observed::Features(x) = &obs[0] else {
        panic!("expected feature values, got {:?}", obs[0]);
    };
    assert_eq!(x.len(), 2);
    assert_eq!(p.observed_features(&obs).unwrap(), *x);
    // The follower is driven: it leaves rest, and more coupling drives it further.
    let res = p
        .simulate(&[0.0, 3.0, 8.0], cfg.problem.noise_seed)
        .unwrap();
    let xs = p.features_of(&res, None);
    let (uncoupled, x3, x8) = (xs[1], xs[3], xs[5]);
    assert!(
        uncoupled < -50.0,
        "without the synapse v_post stays near rest: {uncoupled}"
    );
    assert!(
        x3 > uncoupled + 5.0 && x8 > x3,
        "max v_post: {uncoupled} {x3} {x8}"
    );
    assert_eq!(
        x3, x[1],
        "the synthetic observation is the truth's simulation"
    );
}

#[test]
fn statistics_measured_elsewhere_are_the_observation() {
    let text = fit(r#"
[outputs.v_post]
unit = "mV"
with = ["v_pre"]
features = ["mean", "max"]
statistics = [-55.5, nan]
"#);
    let cfg = FitConfig::parse(&path(), &text).unwrap();
    let obs = cfg.observation().unwrap();
    let x = cfg.problem.observed_features(&obs).unwrap();
    assert_eq!(x[0], -55.5);
    assert!(x[1].is_nan());
}

#[test]
fn bad_circuit_outputs_are_named() {
    let text = fit(r#"
[outputs.v_post]
unit = "mV"
features = ["mean", "max"]
statistics = [-55.5]
"#);
    let e = FitConfig::parse(&path(), &text).unwrap_err().to_string();
    assert!(
        e.contains("outputs.v_post.statistics") && e.contains("1 values"),
        "{e}"
    );

    let text = fit(r#"
[outputs.v_post]
unit = "mV"
with = ["v_nowhere"]
features = ["mean"]
[synthetic]
g_syn = "3*mS/cm**2"
"#);
    let e = FitConfig::parse(&path(), &text).unwrap_err().to_string();
    assert!(
        e.contains("outputs.v_post.with") && e.contains("v_nowhere"),
        "{e}"
    );
}

/// A spiking circuit's neurons are spike-train outputs by name (`spikes_cells_1`): the
/// synthetic observation is that neuron's train, its features count those spikes, and a
/// name that is not a spiking neuron is refused with the ones that are.
/// Two LIF neurons coupled both ways by delta synapses (`v_post += w`); neuron 1 stays
/// below threshold without input from neuron 0.
const SPIKING_NET: &str = r#"
method = "euler"
[constants]
tau = "10*ms"
[groups.cells]
n = 2
equations = """
dv/dt = (drive - v)/tau : volt
drive : volt (constant)
"""
threshold = "v > 10*mV"
reset = "v = 0*mV"
[synapses.rec]
source = "cells"
target = "cells"
equations = "w : volt"
on_pre = "v_post += w"
connect = "i != j"
[parameters]
drive_cells_0 = "15*mV"
drive_cells_1 = "9*mV"
w_rec_1 = "0*mV"
"#;

fn spiking_net_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("neurosbi-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("net.toml"), SPIKING_NET).unwrap();
    dir
}

#[test]
fn a_spiking_circuits_neurons_are_spike_train_outputs() {
    let dir = spiking_net_dir("spiking-circuit");
    let fit = |output: &str| {
        format!(
            r#"
model = "net.toml"
dt = "0.1*ms"
duration = "200*ms"
seed = 1
[outputs.{output}]
features = ["train_count"]
[priors]
w_rec_0 = ["0*mV", "3*mV"]
[synthetic]
w_rec_0 = "2*mV"
[inference]
simulations = 20
"#
        )
    };
    let file = dir.join("fit.toml");
    let cfg = FitConfig::parse(&file, &fit("spikes_cells_1")).unwrap();
    let obs = cfg.observation().unwrap();
    let Observed::Spikes(trains) = &obs[0] else {
        panic!("expected spike trains, got {:?}", obs[0]);
    };
    assert!(!trains[0].is_empty(), "the driven neuron fires");
    let x = cfg.problem.observed_features(&obs).unwrap();
    assert_eq!(x, [trains[0].len() as f64]);
    // Without the synapse neuron 1 (drive 9 mV, threshold 10 mV) stays silent.
    let res = cfg
        .problem
        .simulate(&[0.0, 3.0], cfg.problem.noise_seed)
        .unwrap();
    let xs = cfg.problem.features_of(&res, None);
    assert_eq!(xs[0], 0.0);
    assert!(xs[1] > 0.0, "{xs:?}");

    let e = FitConfig::parse(&file, &fit("spikes_cells_7"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("outputs.spikes_cells_7") && e.contains("spikes_cells_0, spikes_cells_1"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A whole fit of a spiking circuit from its spike trains: the drive of neuron 0 and the
/// weight of its synapse onto neuron 1 (silent without it) from both neurons' spike counts,
/// latencies and intervals. The posterior must hold the true values inside its 90 % interval
/// and be much narrower than the prior.
#[test]
fn a_spiking_circuit_fit_recovers_drive_and_weight() {
    let dir = spiking_net_dir("spiking-circuit-fit");
    let text = r#"
model = "net.toml"
dt = "0.1*ms"
duration = "200*ms"
seed = 5
[outputs.spikes_cells_0]
features = ["train_count", "train_latency"]
[outputs.spikes_cells_1]
features = ["train_count", "train_latency", "train_isi_mean"]
[priors]
drive_cells_0 = ["11*mV", "25*mV"]
w_rec_0 = ["0*mV", "3*mV"]
[synthetic]
drive_cells_0 = "17*mV"
w_rec_0 = "1.6*mV"
[inference]
method = "npe"
simulations = 2000
samples = 4000
max_epochs = 60
predictive = 2
"#;
    let file = dir.join("fit.toml");
    std::fs::write(&file, text).unwrap();
    let cfg = FitConfig::from_file(&file).unwrap();
    let out = dir.join("out");
    let opts = FitOptions {
        quiet: true,
        out: Some(out),
        ..FitOptions::default()
    };
    let f = neurosbi::prelude::fit(&cfg, &opts).expect("the spiking circuit fits");
    let truth = [17.0, 1.6];
    let prior_width = [14.0, 3.0];
    for (k, name) in ["drive_cells_0", "w_rec_0"].iter().enumerate() {
        let mut col: Vec<f64> = f.samples.iter().skip(k).step_by(2).copied().collect();
        col.sort_by(f64::total_cmp);
        let q = |p: f64| col[((col.len() - 1) as f64 * p) as usize];
        let (lo, hi) = (q(0.05), q(0.95));
        println!(
            "{name}: true {}, 90 % interval [{lo:.3}, {hi:.3}]",
            truth[k]
        );
        assert!(
            lo <= truth[k] && truth[k] <= hi,
            "{name}: 90 % interval [{lo}, {hi}]"
        );
        assert!(
            hi - lo < 0.3 * prior_width[k],
            "{name}: 90 % interval [{lo}, {hi}] is wide"
        );
    }
    // Draws too weak to make neuron 1 fire have no latency: left out and counted, the rest
    // train the estimator.
    let (valid, invalid) = f.simulations[0];
    assert_eq!(valid as u64 + invalid, 2000);
    assert!(valid > 1000, "{:?}", f.simulations);
    std::fs::remove_dir_all(&dir).ok();
}
