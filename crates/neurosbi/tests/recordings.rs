//! Recordings (`.abf`, `.nwb` with feature `nwb`) in fit files and `neurosbi inspect`: the observation and the stimulus
//! come from the file, in the model's units, at the fit's dt; wrong channels, sweeps, units and
//! sampling rates are refused with the file and the key named.

use std::path::{Path, PathBuf};
use std::process::Command;

use neurosbi::config::FitConfig;
use neurosbi::problem::Observed;

/// A real current-clamp recording: 16 sweeps, 20 kHz, `IN 0` in mV, steps of -50 pA + 10 pA
/// per sweep on command 0 (pA).
fn steps_abf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../neurosbi-io/tests/data/abf/17o05028_ic_steps.abf")
}

/// A fit file for the AdEx model over `body` (outputs and stimuli), written to a fresh folder.
fn fit_file(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("neurosbi-rec-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/adex.toml");
    let text = format!(
        "model = {models:?}\nseed = 1\n{body}\n\
         [priors]\na = [\"-12*nS\", \"12*nS\"]\nb = [\"0*pA\", \"150*pA\"]\ntau_w = [\"20*ms\", \"400*ms\"]\n\
         [inference]\nsimulations = 100\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn error_of(name: &str, body: &str) -> String {
    match FitConfig::from_file(&fit_file(name, body)) {
        Ok(_) => panic!("{name}: accepted"),
        Err(e) => e.to_string(),
    }
}

fn body(dt: &str, output_extra: &str, stim_extra: &str) -> String {
    let abf = steps_abf();
    format!(
        "dt = \"{dt}\"\nduration = \"600*ms\"\n[stimuli.I]\nfrom = {abf:?}\nsweeps = [2, 5, 9]\n{stim_extra}\n\
         [outputs.v]\nunit = \"mV\"\nfeatures = [\"spike_count\", \"mean\"]\ndata = {abf:?}\n\
         sweeps = [2, 5, 9]\n{output_extra}\n"
    )
}

#[test]
fn observation_and_stimulus_come_from_the_recording() {
    let cfg =
        FitConfig::from_file(&fit_file("ok", &body("0.1*ms", "channel = \"IN 0\"", ""))).unwrap();
    let rec = neurosbi::io::open(steps_abf()).unwrap();
    assert_eq!(cfg.problem.n_traces, 3);
    assert_eq!(cfg.problem.n_steps, 6000);
    let Observed::Traces(rows) = &cfg.observed.as_ref().unwrap()[0] else {
        panic!("no traces")
    };
    // 20 kHz file, dt 0.1 ms: every second sample, in mV as the output's unit says.
    for (row, sweep) in rows.iter().zip([2, 5, 9]) {
        let file = rec.sweep(0, sweep).unwrap();
        for (k, v) in row.iter().enumerate().step_by(97) {
            assert_eq!(*v, file[2 * k], "sweep {sweep} sample {k}");
        }
    }
    // The stimulus is the epoch table's command, pA -> A: sweep 2 steps to -50 + 2*10 pA.
    let stim = &cfg.problem.stimuli[0];
    let n = cfg.problem.n_steps;
    let sweep2 = &stim.values[..n];
    let wave = rec.command_waveform(0, 2).unwrap();
    for (k, v) in sweep2.iter().enumerate().step_by(101) {
        assert!((v - wave[2 * k] * 1e-12).abs() < 1e-24, "sample {k}");
    }
    assert!(
        sweep2.iter().any(|v| (v + 30e-12).abs() < 1e-20),
        "no -30 pA step"
    );
    let sweep9 = &stim.values[2 * n..];
    assert!(
        sweep9.iter().any(|v| (v - 40e-12).abs() < 1e-20),
        "no +40 pA step"
    );
}

#[test]
fn a_recording_in_the_wrong_units_names_file_channel_and_variable() {
    // Voltage-clamp file: its only channel is in pA, `v` is a voltage.
    let vc = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../neurosbi-io/tests/data/abf/171116sh_0014.abf");
    let b = body("0.1*ms", "", "").replace(
        &format!("data = {:?}", steps_abf()),
        &format!("data = {vc:?}"),
    );
    let e = error_of("units", &b);
    assert!(
        e.contains("outputs.v.data") && e.contains("171116sh_0014.abf"),
        "{e}"
    );
    assert!(
        e.contains("channel 0 \"IN 0\"") && e.contains("pA") && e.contains("`v`"),
        "{e}"
    );
}

#[test]
fn a_file_coarser_than_dt_needs_interpolate() {
    let e = error_of("coarse", &body("0.01*ms", "", ""));
    assert!(
        e.contains("coarser than the fit's dt") && e.contains("interpolate = true"),
        "{e}"
    );
    let ok = body("0.01*ms", "interpolate = true", "interpolate = true");
    let cfg = FitConfig::from_file(&fit_file("interp", &ok)).unwrap();
    assert_eq!(cfg.problem.n_steps, 60_000);
}

#[test]
fn missing_channels_and_sweeps_are_listed() {
    let e = error_of("channel", &body("0.1*ms", "channel = \"Vm\"", ""));
    assert!(
        e.contains("no channel \"Vm\"") && e.contains("0 \"IN 0\" (mV)"),
        "{e}"
    );
    let e = error_of(
        "sweep",
        &body("0.1*ms", "", "").replace("[2, 5, 9]", "[2, 5, 16]"),
    );
    assert!(e.contains("no sweep 16; the file has 16 sweep(s)"), "{e}");
    let e = error_of(
        "long",
        &body("0.1*ms", "", "").replace("600*ms", "4*second"),
    );
    assert!(e.contains("the sweep lasts 3000 ms"), "{e}");
    let e = error_of(
        "csv",
        "dt = \"0.1*ms\"\nduration = \"600*ms\"\n[stimuli.I]\nkind = \"step\"\namplitude = \"0.1*nA\"\n[outputs.v]\nfeatures = [\"mean\"]\ndata = \"v.csv\"\nsweeps = [1]\n",
    );
    assert!(e.contains("choose from a recording"), "{e}");
}

#[test]
fn inspect_prints_channels_units_sweeps_and_epochs() {
    let out = Command::new(env!("CARGO_BIN_EXE_neurosbi"))
        .args(["inspect", steps_abf().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "ABF 2.6.0.0",
        "sampling rate 20000 Hz",
        "16 sweep(s) of 3000 ms",
        "0  \"IN 0\"  in mV",
        "0  \"Cmd 0\"  in pA",
        "epoch B: step     level -50 pA (+10 pA per sweep), 500 ms",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_neurosbi"))
        .args(["inspect", "Cargo.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("not an ABF file"),
        "{err}"
    );
}

/// The real-cell example reads its observation and stimulus from the committed recording.
#[test]
fn the_real_cell_example_is_a_valid_fit_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/real_cell_adex.toml");
    let cfg = FitConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.problem.n_traces, 4);
    let Observed::Traces(rows) = &cfg.observed.as_ref().unwrap()[0] else {
        panic!("no traces")
    };
    // Recorded spikes overshoot 0 mV in every chosen sweep (+30 to +100 pA).
    assert!(rows.iter().all(|r| r.iter().any(|v| *v > 20.0)));
}

/// A gap-free recording with the membrane potential and the injected current recorded side by
/// side: the stimulus comes from the recorded command channel, in the model's units.
#[test]
fn the_stimulus_can_come_from_a_recorded_channel() {
    let abf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../neurosbi-io/tests/data/abf/2020_07_29_0062.abf");
    let b = format!(
        "dt = \"0.1*ms\"\nduration = \"1*second\"\n[stimuli.I]\nfrom = {abf:?}\nchannel = \"I_Com\"\n\
         [outputs.v]\nunit = \"mV\"\nfeatures = [\"mean\"]\ndata = {abf:?}\n"
    );
    let e = error_of("no-channel", &b);
    assert!(
        e.contains("give `channel`") && e.contains("1 \"I_Com\" (pA)"),
        "{e}"
    );
    let b = b.replace("features", "channel = \"Potential\"\nfeatures");
    let cfg =
        FitConfig::from_file(&fit_file("recorded-command", &b)).unwrap_or_else(|e| panic!("{e}"));
    let rec = neurosbi::io::open(&abf).unwrap();
    // 10 kHz file at dt 0.1 ms: the file's own samples, pA -> A.
    let current = rec.sweep(1, 0).unwrap();
    let stim = &cfg.problem.stimuli[0].values;
    assert_eq!(stim.len(), 10_000);
    for (k, v) in stim.iter().enumerate().step_by(331) {
        assert!(
            (v - current[k] * 1e-12).abs() <= 1e-9 * v.abs().max(1e-15),
            "sample {k}"
        );
    }
    let e = error_of(
        "both",
        &b.replace("channel = \"I_Com\"", "channel = \"I_Com\"\ncommand = 0"),
    );
    assert!(e.contains("not both"), "{e}");
}

/// NWB (feature `nwb`): the same fit-file keys and `neurosbi inspect` read the NWB file that
/// pynwb wrote from the same recording (its even sweeps, V and A), through the same code.
#[cfg(feature = "nwb")]
#[test]
fn an_nwb_recording_gives_the_observation_the_stimulus_and_inspect() {
    let nwb =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../neurosbi-io/tests/data/nwb/ic_steps.nwb");
    let b = format!(
        "dt = \"0.1*ms\"\nduration = \"600*ms\"\n[stimuli.I]\nfrom = {nwb:?}\nchannel = \"stimulus\"\n\
         sweeps = [1, 2]\n[outputs.v]\nunit = \"mV\"\nfeatures = [\"spike_count\", \"mean\"]\n\
         data = {nwb:?}\nchannel = \"Vm\"\nsweeps = [1, 2]\n"
    );
    let cfg = FitConfig::from_file(&fit_file("nwb", &b)).unwrap_or_else(|e| panic!("{e}"));
    let abf = neurosbi::io::open(steps_abf()).unwrap();
    let Observed::Traces(rows) = &cfg.observed.as_ref().unwrap()[0] else {
        panic!("no traces")
    };
    let n = cfg.problem.n_steps;
    let stim = &cfg.problem.stimuli[0].values;
    // NWB sweeps 1 and 2 are ABF sweeps 2 and 4; 20 kHz at dt 0.1 ms is every second sample.
    for (i, (row, sweep)) in rows.iter().zip([2, 4]).enumerate() {
        let mv = abf.sweep(0, sweep).unwrap();
        let pa = abf.command_waveform(0, sweep).unwrap();
        for k in (0..n).step_by(53) {
            assert!(
                (row[k] - mv[2 * k]).abs() < 1e-6,
                "sweep {sweep} sample {k}: V -> mV"
            );
            let a = stim[i * n + k];
            assert!(
                (a - pa[2 * k] * 1e-12).abs() < 1e-17,
                "sweep {sweep} sample {k}: A"
            );
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_neurosbi"))
        .args(["inspect", nwb.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "NWB 2.",
        "sampling rate 20000 Hz",
        "8 sweep(s)",
        "\"Vm\"  in V",
        "\"stimulus\"  in A",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

/// Without the `nwb` feature an NWB file is refused with how to enable it.
#[cfg(not(feature = "nwb"))]
#[test]
fn nwb_skipped_built_without_the_nwb_feature_and_an_nwb_file_says_how_to_enable() {
    let nwb =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../neurosbi-io/tests/data/nwb/ic_steps.nwb");
    let b = format!(
        "dt = \"0.1*ms\"\nduration = \"600*ms\"\n[stimuli.I]\nfrom = {nwb:?}\nchannel = \"stimulus\"\n\
         [outputs.v]\nunit = \"mV\"\nfeatures = [\"mean\"]\ndata = {nwb:?}\n"
    );
    eprintln!(
        "NWB fit-file test skipped: built without the `nwb` feature \
         (`cargo test -p neurosbi --features nwb --test recordings`, or `cargo xtask test`)"
    );
    let e = error_of("nwb-off", &b);
    assert!(
        e.contains("ic_steps.nwb") && e.contains("--features nwb"),
        "{e}"
    );
}
