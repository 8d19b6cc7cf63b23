//! Integrity of a fit's folder: simulations of another problem are never reused, nothing the
//! user made is lost, an interrupted run resumes, two runs never share a folder, and every
//! output file truncated, bit-flipped, swapped or deleted ends in an error naming the file or
//! in the same result as before (the corruption matrix of docs/reliability.md).

use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, export, fit, load_posterior, rebuild_report, redraw};
use neurosbi::outdir::OutDir;
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/small_hh_noise.toml")
}

/// The scale-out example made small: two store chunks, a short training.
fn text() -> String {
    std::fs::read_to_string(example())
        .unwrap()
        .replace("simulations = 2000", "simulations = 1000")
        .replace("samples = 2000", "samples = 300")
        .replace("max_epochs = 40", "max_epochs = 3")
        .replace("predictive = 5", "predictive = 2")
}

fn config(text: &str) -> FitConfig {
    FitConfig::parse(&example(), text).expect("valid fit file")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-integrity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts(out: &Path, force: bool) -> FitOptions {
    FitOptions {
        quiet: true,
        force,
        out: Some(out.to_path_buf()),
        ..FitOptions::default()
    }
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn simulations_of_another_problem_are_never_reused() {
    let out = out_dir("stale");
    let first = fit(&config(&text()), &opts(&out, false)).unwrap();
    let samples = read(out.join("samples.csv"));
    // Another prior: refused, naming what changed and both ways out; nothing is touched.
    let wider = text().replace("\"80*mS/cm**2\"", "\"90*mS/cm**2\"");
    let err = fit(&config(&wider), &opts(&out, false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("priors") && err.contains("--force") && err.contains("--out"),
        "{err}"
    );
    assert_eq!(read(out.join("samples.csv")), samples);
    // With --force the problem is simulated anew.
    let second = fit(&config(&wider), &opts(&out, true)).unwrap();
    assert_ne!(first.samples, second.samples);
    let store = neurosbi::infer::Store::open(out.join("simulations")).unwrap();
    let p = config(&wider);
    let fp = p.problem.fingerprint(&p.observation().unwrap(), p.seed);
    assert_eq!(store.fingerprint(), &fp);
    // Settings that do not change the simulations reuse them (chunks not rewritten).
    let chunk = out.join("simulations/r0000_c00000000.chunk");
    let stamp = std::fs::metadata(&chunk).unwrap().modified().unwrap();
    let more = wider.replace("samples = 300", "samples = 301");
    fit(&config(&more), &opts(&out, true)).unwrap();
    assert_eq!(
        std::fs::metadata(&chunk).unwrap().modified().unwrap(),
        stamp
    );
    // A stimulus, a feature or the seed change the simulations too.
    for (what, edited) in [
        ("stimuli", more.replace("\"0.5*nA\"", "\"0.6*nA\"")),
        ("seed", more.replace("seed = 7", "seed = 8")),
    ] {
        let err = fit(&config(&edited), &opts(&out, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{what}: {err}");
    }
}

#[test]
fn force_never_deletes_the_fit_file_and_a_crash_leaves_the_previous_results() {
    let out = out_dir("input");
    std::fs::create_dir_all(&out).unwrap();
    // The fit file lives in its own output folder, as `fit.toml` (one of the output names).
    let file = out.join("fit.toml");
    let model = example().parent().unwrap().join("models/hh_b.toml");
    let own = text().replace("models/hh_b.toml", &model.display().to_string());
    std::fs::write(&file, &own).unwrap();
    let cfg = FitConfig::from_file(&file).unwrap();
    fit(&cfg, &opts(&out, false)).unwrap();
    fit(&cfg, &opts(&out, true)).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), own);
    // A run that dies after writing its posterior (a lock of a dead process, a half-written
    // staging folder) neither blocks the next run nor costs the previous results.
    let samples = read(out.join("samples.csv"));
    std::fs::create_dir_all(out.join(".partial/posterior")).unwrap();
    std::fs::write(out.join(".partial/posterior/posterior.meta"), b"half").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    std::fs::write(out.join(".lock"), format!("4294967294 {}", host.trim())).unwrap();
    assert_eq!(read(out.join("samples.csv")), samples);
    fit(&cfg, &opts(&out, false)).expect("resumes without --force");
    assert_eq!(read(out.join("samples.csv")), samples);
    assert!(!out.join(".partial").exists() && !out.join(".lock").exists());
}

#[test]
fn a_second_run_on_the_same_folder_is_refused() {
    let out = out_dir("lock");
    let held = OutDir::open(&out).unwrap();
    let err = fit(&config(&text()), &opts(&out, false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another neurosbi run") && err.contains(".lock"),
        "{err}"
    );
    drop(held);
    let err = fit(&config(&text()), &opts(Path::new(""), false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("working directory"), "{err}");
}

/// What a damaged file does to the commands that read it.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Truncate,
    FlipByte,
    Delete,
}

fn damage(p: &Path, fault: Fault) {
    let mut b = read(p);
    match fault {
        Fault::Truncate => std::fs::write(p, &b[..b.len() / 2]).unwrap(),
        Fault::FlipByte => {
            let i = b.len() / 2;
            b[i] ^= 0x04;
            std::fs::write(p, b).unwrap();
        }
        Fault::Delete => std::fs::remove_file(p).unwrap(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs the commands that read `name`; each must fail naming the damaged file or give the
/// undamaged result. Returns a line for the matrix.
fn readers_of(name: &str, cfg: &FitConfig, out: &Path, reference: &[f64]) -> Vec<String> {
    let file_name = Path::new(name).file_name().unwrap().to_str().unwrap();
    let named = |e: String| {
        e.contains(file_name) || (name.starts_with("simulations/") && e.contains("simulations"))
    };
    let mut outcomes = Vec::new();
    let mut judge = |cmd: &str, r: Result<Option<Vec<f64>>, String>| {
        let verdict = match r {
            Err(e) if named(e.clone()) => "error naming the file".to_string(),
            Err(e) => panic!("{name}, {cmd}: error does not name the file: {e}"),
            Ok(Some(s)) if s == reference => "same result".to_string(),
            Ok(Some(_)) => panic!("{name}, {cmd}: a different result without an error"),
            Ok(None) => panic!("{name}, {cmd}: ran on a damaged file without an error"),
        };
        outcomes.push(format!("{cmd}: {verdict}"));
    };
    let o = opts(out, true);
    if name.starts_with("posterior/") {
        let x_o = cfg
            .problem
            .observed_features(&cfg.observation().unwrap())
            .unwrap();
        let r = load_posterior(out)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                p.sample(50, &x_o, 3)
                    .map(|d| Some(d.theta))
                    .map_err(|e| e.to_string())
            });
        judge("sample", r);
    } else if name.starts_with("simulations/") {
        judge(
            "export",
            export(out).map(|_| None).map_err(|e| e.to_string()),
        );
        let r = fit(cfg, &opts(out, false)).map(|f| Some(f.samples));
        judge("fit", r.map_err(|e| e.to_string()));
    } else if ["samples.csv", "training.csv"].contains(&name) {
        judge(
            "plot",
            redraw(cfg, &o).map(|_| None).map_err(|e| e.to_string()),
        );
    } else {
        let r = rebuild_report(cfg, &o).map(|_| None);
        judge("report", r.map_err(|e| e.to_string()));
    }
    outcomes
}

#[test]
fn corruption_matrix_every_output_damaged_ends_in_a_named_error_or_the_same_result() {
    let pristine = out_dir("matrix-pristine");
    let cfg = config(&text());
    let reference = fit(&cfg, &opts(&pristine, false)).unwrap().samples;
    let work = out_dir("matrix");
    let mut files = vec![
        "posterior/posterior.meta",
        "posterior/estimator.safetensors",
        "simulations/store.meta",
        "simulations/r0000_c00000000.chunk",
        "simulations/r0000_c00000001.chunk",
        "samples.csv",
        "training.csv",
        "summary.json",
        "observation.csv",
        "timings.csv",
        "pairplot.svg",
        "traces.svg",
        "training.svg",
        "run.json",
    ];
    files.sort();
    let mut matrix = Vec::new();
    for name in &files {
        for fault in [Fault::Truncate, Fault::FlipByte, Fault::Delete] {
            copy_dir(&pristine, &work);
            damage(&work.join(name), fault);
            let o = readers_of(name, &cfg, &work, &reference);
            matrix.push(format!("{name} {fault:?}: {}", o.join("; ")));
        }
    }
    // Swapped files: two chunks, and two figures.
    for (a, b) in [
        (
            "simulations/r0000_c00000000.chunk",
            "simulations/r0000_c00000001.chunk",
        ),
        ("pairplot.svg", "traces.svg"),
    ] {
        copy_dir(&pristine, &work);
        let (pa, pb) = (work.join(a), work.join(b));
        let tmp = work.join("swap.tmp");
        std::fs::rename(&pa, &tmp).unwrap();
        std::fs::rename(&pb, &pa).unwrap();
        std::fs::rename(&tmp, &pb).unwrap();
        let o = readers_of(a, &cfg, &work, &reference);
        matrix.push(format!("{a} <-> {b}: {}", o.join("; ")));
    }
    // The matrix, for docs/reliability.md.
    eprintln!("corruption matrix:\n{}", matrix.join("\n"));
    assert_eq!(matrix.len(), files.len() * 3 + 2);
}

#[test]
fn abc_methods_run_through_fit_without_a_map() {
    for method in ["rejection_abc", "smc_abc"] {
        let out = out_dir(method);
        let mut t = text().replace("method = \"npe\"", &format!("method = \"{method}\""));
        if method == "smc_abc" {
            t = t.replace("max_epochs = 3", "population_size = 100");
        } else {
            t = t.replace("max_epochs = 3", "");
        }
        let f = fit(&config(&t), &opts(&out, false)).unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(f.samples.len(), 300 * 2, "{method}");
        assert!(
            f.summary
                .iter()
                .all(|s| s.map.is_nan() && s.mean.is_finite()),
            "{method}"
        );
        assert!(out.join("report.html").exists() && out.join("run.json").exists());
        rebuild_report(&config(&t), &opts(&out, true)).unwrap_or_else(|e| panic!("{method}: {e}"));
    }
}

#[test]
fn many_invalid_simulations_give_a_loud_warning_with_named_parameters() {
    use neurosbi::fit::invalid_lines;
    let mut set = neurosbi::infer::SimulationSet {
        dim_theta: 2,
        dim_x: 1,
        ..Default::default()
    };
    for i in 0..200 {
        let row = [(i % 20) as f64, (i / 20) as f64];
        set.n_attempted += 1;
        if row[0] < 8.0 {
            set.n_invalid += 1;
            set.invalid_theta.extend(row);
            set.reasons.add("simulator error: spike train empty".into());
        } else {
            set.theta.extend(row);
        }
    }
    let names = ["gNa".to_string(), "gK".to_string()];
    let text = invalid_lines(&set.invalid_report(), &names, 0.2);
    assert!(
        text.starts_with("WARNING: 40 % of the simulations are invalid"),
        "{text}"
    );
    assert!(
        text.contains("80 x simulator error: spike train empty"),
        "{text}"
    );
    assert!(
        text.contains("quartile of gNa") && !text.contains("gK"),
        "{text}"
    );
    let calm = invalid_lines(&set.invalid_report(), &names, 0.5);
    assert!(
        !calm.contains("WARNING") && calm.contains("120 of 200 simulations valid"),
        "{calm}"
    );
}

#[test]
fn invalid_thresholds_are_read_and_checked() {
    let t = text().replace(
        "predictive = 2",
        "predictive = 2\nwarn_invalid = 0.05\nmax_invalid = 0.5",
    );
    let cfg = config(&t);
    assert_eq!(
        (cfg.inference.warn_invalid, cfg.inference.max_invalid),
        (0.05, 0.5)
    );
    let d = config(&text());
    assert_eq!(
        (d.inference.warn_invalid, d.inference.max_invalid),
        (0.2, 0.99)
    );
    let bad = text().replace("predictive = 2", "predictive = 2\nmax_invalid = 1.5");
    let err = FitConfig::parse(&example(), &bad).unwrap_err().to_string();
    assert!(
        err.contains("inference.max_invalid") && err.contains("fraction"),
        "{err}"
    );
}
