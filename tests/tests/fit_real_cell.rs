//! A real neuron, end to end: `examples/real_cell_adex.toml` as shipped (5000 simulations,
//! about 20 s in the test profile on 2 cores) fits AdEx to four sweeps of a recorded
//! current-clamp step protocol (pyABF's `17o05028_ic_steps.abf`). Checked: the
//! posterior-predictive spike counts cover the recorded ones on most sweeps, and the report
//! shows each recorded sweep under its predictive traces, the observed and predicted features
//! side by side, and the inputs with their real SHA-256.

use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, FitOutcome, fit};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The sweeps of the example, in the order of the observation's traces.
const SWEEPS: [usize; 4] = [8, 10, 12, 15];

/// Sweeps whose recorded spike count must fall inside the predictive 90 % interval. With seed
/// 7 all four do (sweeps 8, 10, 12, 15: 11, 15, 18, 21 spikes against 90 % intervals of
/// about [4, 20], [6, 21], [7, 20], [10, 29]); the model has one `EL` for every sweep while the
/// cell's baseline drifts from sweep to sweep (docs/real-data.md), so one sweep may miss after
/// an unrelated change of numerics; three of four must not.
const MIN_COVERED: usize = 3;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/real_cell_adex.toml")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-real-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One fit shared by the tests of this file.
fn fitted() -> &'static (FitConfig, FitOutcome) {
    static FITTED: OnceLock<(FitConfig, FitOutcome)> = OnceLock::new();
    FITTED.get_or_init(|| {
        let cfg = FitConfig::from_file(&example()).expect("valid fit file");
        let opts = FitOptions {
            quiet: true,
            out: Some(out_dir("adex")),
            ..FitOptions::default()
        };
        let t = std::time::Instant::now();
        let outcome = fit(&cfg, &opts).expect("fit runs");
        eprintln!("real-cell fit: {:.1} s", t.elapsed().as_secs_f64());
        (cfg, outcome)
    })
}

/// A CSV written by the fit: header and rows of numbers.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(|c| c.trim_matches('"').to_string())
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// The `q` quantile of sorted values, by linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let (i, f) = (h.floor() as usize, h - h.floor());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

#[test]
fn predictive_spike_counts_cover_the_recorded_ones_on_most_sweeps() {
    let (cfg, out) = fitted();
    let (names, observed) = csv(&out.out.join("observation.csv"));
    let (pnames, predictive) = csv(&out.out.join("predictive.csv"));
    assert_eq!(names, pnames);
    assert!(
        predictive.len() >= cfg.inference.predictive,
        "{} predictive simulations, expected {}",
        predictive.len(),
        cfg.inference.predictive
    );
    let mut covered = Vec::new();
    let mut lines = Vec::new();
    for (k, sweep) in SWEEPS.iter().enumerate() {
        let col = names
            .iter()
            .position(|n| n == &format!("v/{k}/spike_count"))
            .expect("a spike-count column per sweep");
        let obs = observed[0][col];
        let mut pred: Vec<f64> = predictive
            .iter()
            .map(|r| r[col])
            .filter(|v| v.is_finite())
            .collect();
        assert!(
            pred.len() * 2 >= predictive.len(),
            "sweep {sweep}: most predictive runs valid"
        );
        pred.sort_by(f64::total_cmp);
        let (lo, hi) = (quantile(&pred, 0.05), quantile(&pred, 0.95));
        lines.push(format!(
            "sweep {sweep}: recorded {obs} spikes, predictive 90 % [{lo}, {hi}], median {}",
            quantile(&pred, 0.5)
        ));
        if (lo..=hi).contains(&obs) {
            covered.push(*sweep);
        }
    }
    eprintln!("{}", lines.join("\n"));
    assert!(
        covered.len() >= MIN_COVERED,
        "only sweeps {covered:?} covered:\n{}",
        lines.join("\n")
    );
    // The posterior is informed: narrower than the prior in most parameters.
    let narrower = out
        .summary
        .iter()
        .zip(&cfg.problem.free)
        .filter(|(s, p)| match p.prior {
            neurosbi::infer::Marginal::Uniform { low, high } => {
                s.q975 - s.q025 < 0.8 * (high - low)
            }
            _ => false,
        })
        .count();
    assert!(
        narrower >= 2,
        "the posterior barely narrowed: {:?}",
        out.summary
    );
}

fn sha256_of(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every `attr="..."` value in `html`, in order.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.split(&key)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn report_shows_sweeps_features_simulations_model_and_provenance() {
    let (cfg, out) = fitted();
    let html = std::fs::read_to_string(out.out.join("report.html")).unwrap();
    // Each figure once, and one per recorded sweep, drawn to its own files.
    let ids = attrs(&html, "id");
    let figs: Vec<&String> = ids.iter().filter(|i| i.starts_with("fig-")).collect();
    for id in &figs {
        assert_eq!(ids.iter().filter(|i| i == id).count(), 1, "{id} twice");
    }
    assert_eq!(
        html.matches("<img").count(),
        figs.len(),
        "every image is a figure"
    );
    for s in SWEEPS {
        assert!(
            ids.contains(&format!("fig-v-sweep-{s}")),
            "no figure of sweep {s}"
        );
        for ext in ["svg", "png"] {
            let f = out.out.join(format!("v_sweep_{s}.{ext}"));
            assert!(std::fs::metadata(&f).unwrap().len() > 1000, "{f:?}");
        }
        assert!(html.contains(&format!("Sweep {s} of 17o05028_ic_steps.abf")));
    }
    assert!(ids.contains(&"fig-pairplot".to_string()));
    assert!(
        !ids.contains(&"fig-traces".to_string()),
        "the sweeps replace the trace grid"
    );
    assert_eq!(
        figs.len(),
        SWEEPS.len() + 2,
        "pairplot, sweeps, training: {figs:?}"
    );
    assert!(
        !html.contains("failed to load"),
        "no test-harness line for the reader"
    );
    // Observed features in the table equal the observation, in order.
    let obs = cfg.observation().unwrap();
    let x_o = cfg.problem.observed_features(&obs).unwrap();
    let shown: Vec<f64> = attrs(&html, "data-observed")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(shown, x_o);
    assert!(html.contains("<td>v/3/spike_count</td><td>sweep 15</td>"));
    // Simulations with reasons, the model and the fit file.
    let (valid, invalid) = out.simulations[0];
    assert!(
        html.contains(&format!("{valid} valid and {invalid} invalid simulations")),
        "counts"
    );
    assert!(html.contains(&format!(
        "{valid} of {} simulations valid",
        valid as u64 + invalid
    )));
    assert!(html.contains("dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C"));
    assert!(html.contains("reset: v = Vr; w += b"));
    let fit_text = std::fs::read_to_string(example()).unwrap();
    let first_line = fit_text.lines().next().unwrap();
    assert!(html.contains(&first_line.replace('&', "&amp;").replace('<', "&lt;")));
    // Provenance: version, seed, each input's real SHA-256.
    assert!(html.contains(&format!(
        "neurosbi {}, seed {}",
        env!("CARGO_PKG_VERSION"),
        cfg.seed
    )));
    let abf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/neurosbi-io/tests/data/abf/17o05028_ic_steps.abf");
    let sums = attrs(&html.replace("<code class=\"sha256\">", "sha=\""), "sha")
        .into_iter()
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect::<Vec<_>>();
    for f in [example(), abf] {
        let want = sha256_of(&f);
        assert!(sums.contains(&want), "{f:?}: {want} not among {sums:?}");
    }
    // fit file, stimulus file, data file
    assert_eq!(sums.len(), 3, "{sums:?}");
}

#[test]
fn the_report_is_rebuilt_from_the_output_folder() {
    let (cfg, out) = fitted();
    let before = std::fs::read_to_string(out.out.join("report.html")).unwrap();
    let opts = FitOptions {
        quiet: true,
        out: Some(out.out.clone()),
        force: true,
        ..FitOptions::default()
    };
    neurosbi::fit::rebuild_report(cfg, &opts).unwrap();
    let after = std::fs::read_to_string(out.out.join("report.html")).unwrap();
    let head = |h: &str| h[..h.find("<h2>Timings").unwrap()].to_string();
    assert_eq!(head(&after), head(&before));
    // The folder of a fit made before per-sweep figures existed: the report shows the traces.
    let old = out_dir("no-sweeps");
    std::fs::create_dir_all(&old).unwrap();
    for e in std::fs::read_dir(&out.out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().unwrap().is_file() && !name.contains("_sweep_") {
            std::fs::copy(e.path(), old.join(&name)).unwrap();
        }
    }
    let sims = old.join("simulations");
    std::fs::create_dir_all(&sims).unwrap();
    for e in std::fs::read_dir(out.out.join("simulations")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), sims.join(e.file_name())).unwrap();
    }
    let opts = FitOptions {
        out: Some(old.clone()),
        ..opts
    };
    neurosbi::fit::rebuild_report(cfg, &opts).unwrap();
    let html = std::fs::read_to_string(old.join("report.html")).unwrap();
    assert!(html.contains("id=\"fig-traces\"") && !html.contains("fig-v-sweep-"));
}

#[test]
fn the_report_renders_every_figure_in_headless_chromium() {
    let (_, out) = fitted();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!(
            "SKIPPED the_report_renders_every_figure_in_headless_chromium: {chromium} is absent (install Debian's chromium package)"
        );
        return;
    }
    let report = out.out.join("report.html");
    let profile = out_dir("chromium-profile");
    let dom = neurosbi_e2e_tests::render_in_chromium(&chromium, &report, &profile);
    let text = String::from_utf8_lossy(&dom.stdout);
    let attr = |name: &str| attrs(&text, name).first().cloned();
    assert_eq!(
        attr("data-checked").as_deref(),
        Some("yes"),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert_eq!(
        attr("data-images").as_deref(),
        Some(format!("{}", SWEEPS.len() + 2).as_str()),
        "pairplot, 4 sweeps, training curves"
    );
    assert_eq!(attr("data-broken").as_deref(), Some("0"));
    assert_eq!(attr("data-errors").as_deref(), Some("0"));
}
