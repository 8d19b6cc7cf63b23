//! A fit file with a mistake fails while it is read (before any simulation), and the message
//! names the file, the key and what was expected.

use neurosbi::config::FitConfig;
use std::path::{Path, PathBuf};

const GOOD: &str = r#"
model = "models/hh_c.toml"
dt = "0.05*ms"
duration = "100*ms"
[stimuli.I]
kind = "step"
amplitude = "1*nA"
start = "20*ms"
[outputs.v]
unit = "mV"
features = ["spike_count", "mean(window=stim)"]
[priors]
gNa = ["0.5*uS", "80*uS"]
gK = ["1e-4*uS", "15*uS"]
[synthetic]
gNa = "32*uS"
gK = "1*uS"
"#;

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bad.toml")
}

fn error_of(text: &str) -> String {
    FitConfig::parse(&path(), text)
        .expect_err("must fail")
        .to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not mention `{p}`");
    }
}

#[test]
fn the_good_file_parses() {
    let cfg = FitConfig::parse(&path(), GOOD).unwrap();
    assert_eq!(cfg.problem.dim_theta(), 2);
    assert_eq!(cfg.problem.dim_x(), 2);
    assert_eq!(cfg.problem.n_steps, 2000);
    // The step is on from 20 ms: sample 399 off, 400 on (1 nA).
    let s = &cfg.problem.stimuli[0].values;
    assert_eq!(s[399], 0.0);
    assert!((s[400] - 1e-9).abs() < 1e-21);
    assert_eq!(cfg.truth.as_deref(), Some(&[32.0, 1.0][..]));
}

#[test]
fn unknown_key_is_named() {
    let msg = error_of(&GOOD.replace("duration =", "durration ="));
    assert_mentions(&msg, &["bad.toml", "durration", "unknown key"]);
}

#[test]
fn wrong_unit_is_named() {
    let msg = error_of(&GOOD.replace("gK = [\"1e-4*uS\"", "gK = [\"1e-4*mV\""));
    assert_mentions(&msg, &["bad.toml", "priors.gK", "dimension"]);
}

#[test]
fn unknown_unit_is_named() {
    let msg = error_of(&GOOD.replace("\"80*uS\"", "\"80*uSS\""));
    assert_mentions(&msg, &["priors.gNa", "uSS"]);
}

#[test]
fn missing_prior_for_a_free_parameter_is_named() {
    let text = r#"
dt = "0.1*ms"
duration = "10*ms"
[model]
equations = "dv/dt = (El - v)/tau : volt\nEl : volt (constant)\ntau : second (constant)"
method = "exponential_euler"
[outputs.v]
unit = "mV"
features = ["mean"]
[priors]
tau = ["5*ms", "50*ms"]
[synthetic]
tau = "10*ms"
"#;
    let msg = error_of(text);
    assert_mentions(&msg, &["priors.El", "missing prior"]);
}

#[test]
fn unknown_feature_is_named() {
    let msg = error_of(&GOOD.replace("\"spike_count\"", "\"spike_cnt\""));
    assert_mentions(&msg, &["outputs.v.features", "spike_cnt"]);
}

#[test]
fn observation_of_wrong_length_is_named() {
    let dir = std::env::temp_dir().join(format!("neurosbi-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("v.csv");
    let row: Vec<String> = (0..1999).map(|_| "-70".to_string()).collect();
    std::fs::write(&data, row.join(",") + "\n").unwrap();
    let text = GOOD
        .replace("[synthetic]\ngNa = \"32*uS\"\ngK = \"1*uS\"\n", "")
        .replace(
            "unit = \"mV\"\n",
            &format!("unit = \"mV\"\ndata = \"{}\"\n", data.display()),
        );
    let msg = error_of(&text);
    assert_mentions(&msg, &["outputs.v.data", "1999 samples", "expected 2000"]);
}

#[test]
fn observation_unit_must_match_the_variable() {
    let msg = error_of(&GOOD.replace("unit = \"mV\"", "unit = \"nA\""));
    assert_mentions(&msg, &["outputs.v.unit", "nA"]);
}

#[test]
fn stimulus_for_unknown_input_and_wrong_unit() {
    let msg = error_of(&GOOD.replace("amplitude = \"1*nA\"", "amplitude = \"1*mV\""));
    assert_mentions(&msg, &["stimuli.I.amplitude", "dimension"]);
    let msg = error_of(&GOOD.replace("[stimuli.I]", "[stimuli.J]"));
    assert_mentions(&msg, &["stimuli.I", "missing"]);
}

#[test]
fn toml_syntax_error_gives_the_line() {
    let msg = error_of("model = \"models/hh_c.toml\"\ndt = \n");
    assert_mentions(&msg, &["bad.toml", "line 2"]);
}

#[test]
fn training_device_is_checked_when_the_file_is_read() {
    let with = |d: &str| format!("{GOOD}[inference]\ndevice = \"{d}\"\n");
    let cfg = FitConfig::parse(&path(), &with("cpu")).unwrap();
    assert_eq!(cfg.inference.train.device.as_deref(), Some("cpu"));
    let msg = error_of(&with("tpu"));
    assert_mentions(&msg, &["bad.toml", "inference.device", "tpu"]);
    if neurosbi::flows::device_from_name("cuda").is_err() {
        // A CPU-only build (or no GPU): refused before any simulation, saying why.
        let msg = error_of(&with("cuda"));
        assert_mentions(&msg, &["inference.device", "cuda"]);
    }
}

#[test]
fn every_shipped_example_fit_file_reads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            FitConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "{n} example fit files");
}

/// A passive membrane (linear equations, no method of its own), everything but the method.
const LINEAR: &str = r#"
dt = "0.1*ms"
duration = "10*ms"
[fixed]
El = "-70*mV"
[outputs.v]
unit = "mV"
features = ["mean"]
[priors]
tau = ["5*ms", "50*ms"]
[synthetic]
tau = "10*ms"
"#;

const LINEAR_MODEL: &str = "equations = \"dv/dt = (El - v)/tau : volt\\nEl : volt (constant)\\ntau : second (constant)\"\n";

/// A scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("neurosbi-bad-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_linear_model_gets_exact_unless_the_fit_file_names_a_method() {
    use neurosbi_sim::Method;
    let inline = format!("method = \"exponential_euler\"\n{LINEAR}[model]\n{LINEAR_MODEL}");
    let cfg = FitConfig::parse(&path(), &inline).unwrap();
    assert_eq!(cfg.problem.model.method(), Method::ExponentialEuler);
    let dir = scratch("method");
    std::fs::write(dir.join("passive.toml"), LINEAR_MODEL).unwrap();
    let by_file = format!("model = \"passive.toml\"\nmethod = \"exponential_euler\"\n{LINEAR}");
    let cfg = FitConfig::parse(&dir.join("fit.toml"), &by_file).unwrap();
    assert_eq!(cfg.problem.model.method(), Method::ExponentialEuler);
    // Without the override the model gets Brian's default for a linear model: `exact`.
    let plain = format!("{LINEAR}[model]\n{LINEAR_MODEL}");
    let cfg = FitConfig::parse(&path(), &plain).unwrap();
    assert_eq!(cfg.problem.model.method(), Method::Exact);
    let msg = error_of(&format!(
        "method = \"eulerr\"\n{LINEAR}[model]\n{LINEAR_MODEL}"
    ));
    assert_mentions(&msg, &["bad.toml", "`method`", "eulerr"]);
}

#[test]
fn files_that_are_not_regular_or_too_large_are_refused() {
    let msg = error_of(&GOOD.replace("models/hh_c.toml", "/dev/zero"));
    assert_mentions(
        &msg,
        &["bad.toml", "`model`", "/dev/zero", "not a regular file"],
    );
    let msg = error_of(&GOOD.replace("models/hh_c.toml", "/tmp"));
    assert_mentions(&msg, &["`model`", "a directory"]);
    let e = FitConfig::from_file(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["/dev/zero", "not a regular file"]);
    let no_synthetic = GOOD.replace("[synthetic]\ngNa = \"32*uS\"\ngK = \"1*uS\"\n", "");
    let with_data = |data: &str| {
        no_synthetic.replace(
            "unit = \"mV\"\n",
            &format!("unit = \"mV\"\ndata = \"{data}\"\n"),
        )
    };
    let msg = error_of(&with_data("/dev/zero"));
    assert_mentions(&msg, &["outputs.v.data", "/dev/zero", "not a regular file"]);
    let stim = GOOD.replace(
        "kind = \"step\"\namplitude = \"1*nA\"\nstart = \"20*ms\"\n",
        "kind = \"file\"\nfile = \"/dev/zero\"\nunit = \"nA\"\n",
    );
    let msg = error_of(&stim);
    assert_mentions(&msg, &["stimuli.I.file", "/dev/zero", "not a regular file"]);
    #[cfg(unix)]
    {
        let dir = scratch("fifo");
        let fifo = dir.join("v.csv");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let msg = error_of(&with_data(&fifo.display().to_string()));
            assert_mentions(&msg, &["outputs.v.data", "a FIFO"]);
        }
    }
}

#[test]
fn a_parameter_both_fixed_and_free_is_named() {
    let msg = error_of(&format!("{GOOD}[fixed]\ngK = \"2*uS\"\n"));
    assert_mentions(&msg, &["bad.toml", "priors.gK", "fixed.gK", "both"]);
}

#[test]
fn a_ground_truth_outside_its_prior_is_named() {
    let msg = error_of(&GOOD.replace("gNa = \"32*uS\"", "gNa = \"100*uS\""));
    assert_mentions(
        &msg,
        &["synthetic.gNa", "100", "[0.5, 80]", "uS", "outside"],
    );
}

#[test]
fn a_duration_that_is_not_a_multiple_of_dt_names_the_nearest() {
    let msg = error_of(&GOOD.replace("duration = \"100*ms\"", "duration = \"100.03*ms\""));
    assert_mentions(
        &msg,
        &[
            "`duration`",
            "100.03 ms",
            "0.05 ms",
            "100 ms",
            "100.05 ms",
            "whole multiple",
        ],
    );
    // Rounding error of the decimal text is not a mistake.
    let ok = GOOD
        .replace("dt = \"0.05*ms\"", "dt = \"0.1*ms\"")
        .replace("duration = \"100*ms\"", "duration = \"0.3*second\"");
    FitConfig::parse(&path(), &ok).unwrap();
}

#[test]
fn windows_past_the_run_or_backwards_are_errors() {
    let msg = error_of(&GOOD.replace("start = \"20*ms\"", "start = \"20*ms\"\nstop = \"120*ms\""));
    assert_mentions(&msg, &["stimuli.I", "ends after the run", "100 ms"]);
    let msg = error_of(&GOOD.replace("start = \"20*ms\"", "start = \"-5*ms\""));
    assert_mentions(&msg, &["stimuli.I", "negative"]);
    let msg = error_of(&GOOD.replace("start = \"20*ms\"", "start = \"20*ms\"\nstop = \"10*ms\""));
    assert_mentions(&msg, &["stimuli.I", "starts at or after its end"]);
    let msg = error_of(&format!(
        "{GOOD}[features]\nwindow = [\"50*ms\", \"150*ms\"]\n"
    ));
    assert_mentions(&msg, &["features.window", "ends after the run"]);
    let pulses = GOOD.replace(
        "kind = \"step\"\namplitude = \"1*nA\"\nstart = \"20*ms\"\n",
        "kind = \"pulses\"\namplitude = \"1*nA\"\nwidth = \"1*ms\"\nperiod = \"10*ms\"\ncount = 1000000000000\n",
    );
    let msg = error_of(&pulses);
    assert_mentions(&msg, &["stimuli.I", "ends after the run"]);
}

/// GOOD with the observation read from a CSV of 2000 samples of `value`.
fn with_trace(name: &str, value: f64, unit: &str) -> String {
    let dir = scratch(name);
    let data = dir.join("v.csv");
    let row: Vec<String> = (0..2000).map(|_| value.to_string()).collect();
    std::fs::write(&data, row.join(",") + "\n").unwrap();
    GOOD.replace("[synthetic]\ngNa = \"32*uS\"\ngK = \"1*uS\"\n", "")
        .replace(
            "unit = \"mV\"\n",
            &format!("unit = \"{unit}\"\ndata = \"{}\"\n", data.display()),
        )
}

#[test]
fn voltage_data_in_the_wrong_unit_is_named() {
    let msg = error_of(&with_trace("volts", -0.07, "mV"));
    assert_mentions(
        &msg,
        &["outputs.v.data", "0.07 mV", "-200 mV", "unit = \"volt\""],
    );
    let msg = error_of(&with_trace("millivolts", -70.0, "volt"));
    assert_mentions(&msg, &["outputs.v.data", "70 volt", "unit = \"mV\""]);
    let msg = error_of(&with_trace("microvolts", -70000.0, "mV"));
    assert_mentions(&msg, &["outputs.v.data", "70000 mV", "unit = \"uV\""]);
    FitConfig::parse(&path(), &with_trace("fine", -70.0, "mV")).unwrap();
}

#[test]
fn runs_larger_than_the_machine_are_refused_before_allocating() {
    let msg = error_of(&GOOD.replace("duration = \"100*ms\"", "duration = \"1e30*second\""));
    assert_mentions(
        &msg,
        &["`duration`", "this run needs", "GB", "the machine has"],
    );
    let noise = GOOD.replace(
        "kind = \"step\"\namplitude = \"1*nA\"\nstart = \"20*ms\"\n",
        "kind = \"noise\"\nstd = \"1*nA\"\ntraces = 1000000000000\n",
    );
    let msg = error_of(&noise);
    assert_mentions(&msg, &["stimuli.I", "the stimulus", "the machine has"]);
    for (key, value, what) in [
        ("samples", "1000000000000000", "the samples"),
        ("predictive", "1000000000000", "posterior-predictive"),
        ("batch_size", "1000000000000", "one batch"),
        ("simulations", "1000000000000000", "simulations"),
        ("hidden_features", "100000000", "density estimator"),
    ] {
        let msg = error_of(&format!("{GOOD}[inference]\n{key} = {value}\n"));
        assert_mentions(&msg, &[&format!("inference.{key}"), what, "this run needs"]);
    }
}

#[test]
fn an_empty_output_folder_is_refused() {
    let msg = error_of(&format!("output = \"\"\n{GOOD}"));
    assert_mentions(&msg, &["bad.toml", "`output`", "working directory"]);
}
