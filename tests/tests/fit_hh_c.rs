//! End to end on HH model C with synthetic data from the known truth (gNa 32 uS, gK 1 uS):
//! the posterior covers the truth and is much narrower than the prior, a saved posterior
//! resamples identically, and the report renders in headless Chromium.

use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, FitOutcome, fit, load_posterior};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FIT: &str = r#"
model = "models/hh_c.toml"
dt = "0.025*ms"
duration = "200*ms"
seed = 3
[stimuli.I]
kind = "step"
amplitude = "1*nA"
start = "50*ms"
stop = "200*ms"
[outputs.v]
unit = "mV"
features = ["spike_count", "mean(window=stim)", "std(window=stim)", "max(window=stim)"]
[priors]
gNa = ["0.5*uS", "80*uS"]
gK = ["1e-4*uS", "15*uS"]
[synthetic]
gNa = "32*uS"
gK = "1*uS"
[inference]
simulations = 1500
samples = 4000
predictive = 5
"#;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config() -> FitConfig {
    FitConfig::parse(&examples().join("e2e_hh_c.toml"), FIT).expect("valid fit file")
}

/// One fit shared by the tests of this file.
fn fitted() -> &'static (FitConfig, FitOutcome) {
    static FITTED: OnceLock<(FitConfig, FitOutcome)> = OnceLock::new();
    FITTED.get_or_init(|| {
        let cfg = config();
        let opts = FitOptions {
            quiet: true,
            out: Some(out_dir("hh_c")),
            ..FitOptions::default()
        };
        let outcome = fit(&cfg, &opts).expect("fit runs");
        (cfg, outcome)
    })
}

#[test]
fn posterior_covers_truth_and_is_narrower_than_prior() {
    let (_, out) = fitted();
    // Uniform prior std: (high - low) / sqrt(12).
    let prior_std = [(80.0 - 0.5) / 12f64.sqrt(), (15.0 - 1e-4) / 12f64.sqrt()];
    for (s, ps) in out.summary.iter().zip(prior_std) {
        let truth = s.truth.expect("synthetic truth");
        assert!(
            s.q025 <= truth && truth <= s.q975,
            "{}: 95 % interval [{}, {}] misses the truth {truth}",
            s.name,
            s.q025,
            s.q975
        );
        assert!(
            s.std * 3.0 <= ps,
            "{}: posterior std {} is not 3x smaller than the prior's {ps}",
            s.name,
            s.std
        );
    }
    assert_eq!(out.samples.len(), 4000 * 2);
}

#[test]
fn saved_posterior_resamples_identically() {
    let (cfg, out) = fitted();
    let post = load_posterior(&out.out).expect("posterior saved");
    let obs = cfg.observation().unwrap();
    let x_o = cfg.problem.observed_features(&obs).unwrap();
    let a = post.sample(500, &x_o, 11).unwrap().theta;
    let again = load_posterior(&out.out).unwrap();
    let b = again.sample(500, &x_o, 11).unwrap().theta;
    assert_eq!(a, b, "same seed, same samples after a reload");
    let c = again.sample(500, &x_o, 12).unwrap().theta;
    assert_ne!(a, c, "another seed gives other samples");
    // The samples file holds what fit() returned.
    let csv = std::fs::read_to_string(out.out.join("samples.csv")).unwrap();
    let first: Vec<f64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first, out.samples[..2].to_vec());
}

#[test]
fn existing_outputs_of_another_run_are_not_overwritten_without_force() {
    let (cfg, out) = fitted();
    let before = std::fs::read(out.out.join("summary.csv")).unwrap();
    let opts = FitOptions {
        quiet: true,
        out: Some(out.out.clone()),
        ..FitOptions::default()
    };
    // Other sampling settings: the same simulations, but other outputs.
    let mut other = cfg.clone();
    other.inference.samples += 1;
    let err = fit(&other, &opts).unwrap_err().to_string();
    assert!(
        err.contains("another run")
            && err.contains("inference settings")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.out.join("summary.csv")).unwrap(), before);
}

#[test]
fn report_renders_in_headless_chromium() {
    let (_, out) = fitted();
    let report = out.out.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=\"http"),
        "the report must not load anything from the network"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!(
            "SKIPPED report_renders_in_headless_chromium: {chromium} is absent (install Debian's chromium package)"
        );
        return;
    }
    let render = |page: &Path| -> (String, String) {
        let profile = out_dir("chromium-profile");
        let dom = neurosbi_e2e_tests::render_in_chromium(&chromium, page, &profile);
        (
            String::from_utf8_lossy(&dom.stdout).to_string(),
            String::from_utf8_lossy(&dom.stderr).to_string(),
        )
    };
    let attr_of = |text: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = text.find(&key)? + key.len();
        Some(text[i..].split('"').next()?.to_string())
    };
    // The check itself must be able to fail: a copy with a corrupt image is caught.
    let broken = out.out.join("broken.html");
    std::fs::write(
        &broken,
        html.replacen(
            "data:image/svg+xml;base64,",
            "data:image/svg+xml;base64,AAAA",
            1,
        ),
    )
    .unwrap();
    let (text, _) = render(&broken);
    assert_eq!(
        attr_of(&text, "data-broken").as_deref(),
        Some("1"),
        "a corrupt image is detected"
    );
    std::fs::remove_file(&broken).unwrap();
    let (text, stderr) = render(&report);
    let attr = |name: &str| attr_of(&text, name);
    assert_eq!(
        attr("data-checked").as_deref(),
        Some("yes"),
        "the page's load handler did not run:\n{stderr}"
    );
    let images: usize = attr("data-images").unwrap().parse().unwrap();
    assert_eq!(
        images, 3,
        "expected the pairplot, the predictive traces and the training curves, each once"
    );
    assert_eq!(
        attr("data-broken").as_deref(),
        Some("0"),
        "some images did not load"
    );
    assert_eq!(
        attr("data-errors").as_deref(),
        Some("0"),
        "script errors in the report"
    );
}

#[test]
fn report_shows_each_figure_once_the_features_and_the_inputs() {
    use sha2::Digest;
    let (cfg, out) = fitted();
    let html = std::fs::read_to_string(out.out.join("report.html")).unwrap();
    let ids: Vec<&str> = html
        .split("<figure id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(ids, ["fig-pairplot", "fig-traces", "fig-training"]);
    assert_eq!(
        html.matches("<img").count(),
        ids.len(),
        "one image per figure"
    );
    assert!(!html.contains("failed to load") && !html.contains("render-status"));
    // The observed features as the observation gives them, in order.
    let x_o = cfg
        .problem
        .observed_features(&cfg.observation().unwrap())
        .unwrap();
    let shown: Vec<f64> = html
        .split("data-observed=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(shown, x_o);
    // The model file with its real SHA-256; the model's equations.
    let model = examples().join("models/hh_c.toml");
    let bytes = std::fs::read(&model).unwrap();
    let sum: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        html.contains(&format!("<code class=\"sha256\">{sum}</code>")),
        "model checksum"
    );
    assert!(html.contains(&format!("<td>{}</td>", bytes.len())));
    assert!(html.contains("<h2 id=\"model\">Model</h2><pre>dv/dt"));
    assert!(html.contains(&format!("seed {}", cfg.seed)));
}

#[test]
fn interrupted_simulations_resume_to_the_same_result() {
    let (cfg, full) = fitted();
    let dir = out_dir("resume");
    let opts = FitOptions {
        quiet: true,
        out: Some(dir.clone()),
        ..FitOptions::default()
    };
    neurosbi::fit::simulate_only(cfg, &opts).unwrap();
    // Lose the last chunk, as if the run had been stopped before writing it.
    let mut chunks: Vec<PathBuf> = std::fs::read_dir(dir.join("simulations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "chunk"))
        .collect();
    chunks.sort();
    assert!(chunks.len() >= 2, "1500 simulations in chunks of 500");
    let kept = std::fs::metadata(&chunks[0]).unwrap().modified().unwrap();
    std::fs::remove_file(chunks.last().unwrap()).unwrap();
    let resumed = fit(cfg, &opts).unwrap();
    assert_eq!(
        std::fs::metadata(&chunks[0]).unwrap().modified().unwrap(),
        kept,
        "stored chunks are reused, not simulated again"
    );
    assert!(
        chunks.last().unwrap().exists(),
        "the missing chunk is simulated"
    );
    assert_eq!(resumed.simulations, full.simulations);
    assert_eq!(
        resumed.samples, full.samples,
        "same seed, same posterior samples"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn report_and_figures_are_rebuilt_from_the_output_folder() {
    let (cfg, out) = fitted();
    let dir = out_dir("rebuild");
    copy_dir(&out.out, &dir);
    let mut opts = FitOptions {
        quiet: true,
        out: Some(dir.clone()),
        ..FitOptions::default()
    };
    let err = neurosbi::fit::rebuild_report(cfg, &opts).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    opts.force = true;
    let before = std::fs::read_to_string(dir.join("report.html")).unwrap();
    std::fs::remove_file(dir.join("pairplot.svg")).unwrap();
    neurosbi::fit::redraw(cfg, &opts).unwrap();
    assert!(dir.join("pairplot.svg").exists());
    neurosbi::fit::rebuild_report(cfg, &opts).unwrap();
    let after = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let summary = |h: &str| {
        h[..h.find("<h2>Timings").unwrap()]
            .split("<figure")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(summary(&after), summary(&before), "same summary table");
    assert_eq!(
        after.matches("<img").count(),
        before.matches("<img").count()
    );
}

#[test]
fn check_calibrates_and_places_the_observation_in_its_predictive_distribution() {
    let (cfg, out) = fitted();
    let dir = out_dir("check");
    copy_dir(&out.out, &dir);
    let opts = FitOptions {
        quiet: true,
        out: Some(dir.clone()),
        ..FitOptions::default()
    };
    let rep = neurosbi::fit::check(cfg, &opts, 40, 60).expect("check runs");
    assert_eq!(rep.sbc_ks.len(), cfg.problem.dim_theta());
    assert!(rep.sbc_ks.iter().all(|(_, p)| (0.0..=1.0).contains(p)));
    // Coverage is a fraction that grows with the level.
    assert_eq!(rep.coverage.len(), 19);
    assert!(rep.coverage.windows(2).all(|w| w[1].1 >= w[0].1));
    assert!(rep.coverage.iter().all(|(_, c)| (0.0..=1.0).contains(c)));
    // The synthetic observation comes from the model at the truth, which the posterior
    // covers: its features fall inside their predictive intervals (one miss allowed).
    assert_eq!(rep.predictive.len(), cfg.problem.dim_x());
    assert!(
        rep.predictive
            .iter()
            .all(|r| { r.quantiles[0] <= r.quantiles[1] && r.quantiles[1] <= r.quantiles[2] })
    );
    assert!(
        rep.predictive_outliers().len() <= 1,
        "outside: {:?}",
        rep.predictive_outliers()
    );
    for f in [
        "check.csv",
        "check_sbc.svg",
        "check_coverage.png",
        "check_ppc.svg",
    ] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    let csv = std::fs::read_to_string(dir.join("check.csv")).unwrap();
    assert_eq!(csv.matches("ppc_observed,").count(), cfg.problem.dim_x());
    // A second check without --force keeps the first one's files.
    let err = neurosbi::fit::check(cfg, &opts, 5, 5).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
}

#[test]
fn a_new_recording_gives_the_features_of_the_same_traces() {
    let (cfg, out) = fitted();
    let dir = out_dir("new_data");
    std::fs::create_dir_all(&dir).unwrap();
    let observed = cfg.observation().unwrap();
    let neurosbi::problem::Observed::Traces(rows) = &observed[0] else {
        panic!("HH C observes voltage traces");
    };
    // The synthetic observation written as a recording (mV, one trace per line).
    let text: String = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let file = dir.join("v.csv");
    std::fs::write(&file, text).unwrap();
    let path = examples().join("e2e_hh_c.toml");
    let data = [("v".to_string(), file.clone())];
    let new = neurosbi::observe::with_data(&path, FIT, &data).expect("new data accepted");
    let a = cfg.problem.observed_features(&observed).unwrap();
    let b = new
        .problem
        .observed_features(&new.observation().unwrap())
        .unwrap();
    assert_eq!(a, b);
    let posterior = load_posterior(&out.out).unwrap();
    assert_eq!(posterior.sample(50, &b, 1).unwrap().theta.len(), 100);

    // Wrong output name, a missing file and a truncated trace are errors naming them.
    let e = neurosbi::observe::with_data(&path, FIT, &[("w".into(), file.clone())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no output `w`") && e.contains("v"), "{e}");
    let e = neurosbi::observe::with_data(&path, FIT, &[("v".into(), dir.join("none.csv"))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.csv") && e.contains("no such file"), "{e}");
    let short = dir.join("short.csv");
    std::fs::write(&short, "1,2,3\n").unwrap();
    let e = neurosbi::observe::with_data(&path, FIT, &[("v".into(), short)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("outputs.v.data") && e.contains("3 samples"),
        "{e}"
    );
}
