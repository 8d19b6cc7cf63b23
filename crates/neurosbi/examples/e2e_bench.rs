//! End-to-end speed benchmark of the sbi Hodgkin-Huxley tutorial workload (`cargo xtask bench
//! e2e`): model B (`examples/models/hh_b.toml`, free gNa and gK, membrane noise), 10 000
//! simulations of 120 ms at dt 0.01 ms with the tutorial's 0.5 nA step, the tutorial's seven
//! statistics, single-round NPE with a MAF, 10 000 posterior samples. Prints wall seconds per
//! phase (simulation, features, training, sampling) and in total.
//!
//! When Brian2 and sbi are importable by `python3` (or `$NEUROSBI_PYTHON`), the same pipeline
//! runs in Python (`scripts/e2e_peer/hh_sbi_e2e.py`) in the same run and the speed ratio is
//! printed; otherwise the Python side is skipped with the reason.
//!
//! The problem is built by the facade's fit-file parser from a fit file written here (the
//! same settings as `examples/hh_b_two_rounds.toml`, one round), so the workload is exactly
//! what `neurosbi fit` would run. Simulation and features are timed apart, which the fused
//! simulator of `neurosbi fit` cannot do: simulations run in chunks (parallel inside the
//! simulator), their traces are kept, and the features are then computed in parallel over
//! the chunks.
//!
//! Environment: `NEUROSBI_E2E_SIMS` and `NEUROSBI_E2E_SAMPLES` override the 10 000 / 10 000
//! (for a quick smoke run); `NEUROSBI_E2E_SEED` the seed (3).

use neurosbi::config::FitConfig;
use neurosbi::flows::NoObserver;
use neurosbi::infer::{Prior, sample_prior, train_npe};
use neurosbi::sim::SimResult;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// Simulations per call of the simulator: big enough to fill the threads, small enough that
/// one chunk's traces (500 x 12 000 samples) stay around 50 MB.
const CHUNK: usize = 500;
/// Default seed of the whole run (`NEUROSBI_E2E_SEED` overrides it).
const DEFAULT_SEED: u64 = 3;

fn env_count(name: &str, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 2)
            .ok_or_else(|| format!("{name}={v}: expected an integer >= 2"))?),
        Err(_) => Ok(default),
    }
}

fn fit_text(sims: usize, samples: usize, seed: u64) -> String {
    format!(
        r#"model = "models/hh_b.toml"
dt = "0.01*ms"
duration = "120*ms"
seed = {seed}
output = "neurosbi-out/e2e_bench"

# The tutorial's 0.5 nA over pi*(70 um)^2 (the model divides by its area) from 10 to 110 ms.
[stimuli.I]
kind = "step"
amplitude = "0.5*nA"
start = "10*ms"
stop = "110*ms"

[outputs.v]
unit = "mV"
features = ["sbi_hh_tutorial"]

[priors]
gNa = ["0.5*mS/cm**2", "80*mS/cm**2"]
gK = ["1e-4*mS/cm**2", "15*mS/cm**2"]

[synthetic]
gNa = "50*mS/cm**2"
gK = "5*mS/cm**2"

[inference]
method = "npe"
estimator = "maf"
simulations = {sims}
samples = {samples}
"#
    )
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sims = env_count("NEUROSBI_E2E_SIMS", 10_000)?;
    let samples = env_count("NEUROSBI_E2E_SAMPLES", 10_000)?;
    let seed = match std::env::var("NEUROSBI_E2E_SEED") {
        Ok(v) => v
            .parse::<u64>()
            .map_err(|_| format!("NEUROSBI_E2E_SEED={v}: expected a non-negative integer"))?,
        Err(_) => DEFAULT_SEED,
    };
    println!(
        "e2e: sbi HH tutorial (model B), {sims} simulations of 120 ms at dt 0.01 ms, \
         7 statistics, NPE (MAF), {samples} samples; {} threads",
        rayon::current_num_threads()
    );
    let t_total = Instant::now();

    // Setup: parse the fit file (never written to disk: only its folder resolves the model
    // path), simulate the synthetic observation and compute its features.
    let t = Instant::now();
    let cfg = FitConfig::parse(
        &examples_dir().join("e2e_bench.toml"),
        &fit_text(sims, samples, seed),
    )?;
    let problem = &cfg.problem;
    let observed = cfg.observation()?;
    let x_o = problem.observed_features(&observed)?;
    let setup = t.elapsed().as_secs_f64();

    // Simulation.
    let prior: Arc<dyn Prior> = Arc::new(problem.prior()?);
    let d = problem.dim_theta();
    let theta = sample_prior(prior.as_ref(), sims, seed);
    let t = Instant::now();
    let results: Vec<SimResult> = theta
        .chunks(CHUNK * d)
        .enumerate()
        .map(|(i, rows)| {
            problem
                .simulate(rows, seed.wrapping_add(1 + i as u64))
                .map_err(Box::new)
        })
        .collect::<Result<_, _>>()?;
    let t_sim = t.elapsed().as_secs_f64();

    // Features (parallel over chunks; each chunk's rows in order).
    let t = Instant::now();
    let x: Vec<f64> = results
        .par_iter()
        .map(|r| problem.features_of(r, Some(&observed)))
        .collect::<Vec<_>>()
        .concat();
    drop(results);
    let t_feat = t.elapsed().as_secs_f64();

    // Training on the valid rows (sbi drops non-finite x the same way).
    let dx = problem.dim_x();
    let t = Instant::now();
    let (mut th_ok, mut x_ok) = (Vec::new(), Vec::new());
    for (th, xr) in theta.chunks(d).zip(x.chunks(dx)) {
        if xr.iter().all(|v| v.is_finite()) {
            th_ok.extend_from_slice(th);
            x_ok.extend_from_slice(xr);
        }
    }
    let n_valid = th_ok.len() / d;
    let (posterior, rep) = train_npe(
        prior,
        &th_ok,
        &x_ok,
        dx,
        &cfg.inference.estimator,
        &cfg.inference.train,
        &mut NoObserver,
    )?;
    let t_train = t.elapsed().as_secs_f64();

    // Sampling.
    let t = Instant::now();
    let draws = posterior.sample(samples, &x_o, seed ^ 0x5a5a)?;
    let t_samp = t.elapsed().as_secs_f64();
    let total = t_total.elapsed().as_secs_f64();

    let names = problem.parameter_names();
    let truth = cfg.truth.clone().unwrap_or_default();
    println!(
        "valid simulations: {n_valid} of {sims}; training: {} epochs, best validation loss {:.4}; \
         acceptance {:.3}",
        rep.epochs, rep.best_val_loss, draws.acceptance_rate
    );
    let shown: Vec<String> = x_o.iter().map(|v| format!("{v:.4}")).collect();
    println!("observed statistics: [{}]", shown.join(", "));
    for (j, name) in names.iter().enumerate() {
        let col: Vec<f64> = draws.theta.iter().skip(j).step_by(d).copied().collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        let tr = truth
            .get(j)
            .map(|v| format!(" (truth {v})"))
            .unwrap_or_default();
        println!("posterior {name}: mean {mean:.3} sd {sd:.3}{tr}");
    }
    let phases = [
        ("setup", setup),
        ("simulation", t_sim),
        ("features", t_feat),
        ("training", t_train),
        ("sampling", t_samp),
        ("total", total),
    ];
    println!("phase          seconds");
    for (p, s) in phases {
        println!("{p:<14} {s:>8.2}");
    }
    println!(
        "target: total under 60 s: {}",
        if total < 60.0 { "met" } else { "NOT met" }
    );

    peer(sims, samples, seed, &phases);
    Ok(())
}

/// Whether `python -c <code>` succeeds; the last stderr line when it does not.
fn probe(python: &str, code: &str) -> Result<(), String> {
    match Command::new(python).args(["-c", code]).output() {
        Err(e) => Err(format!("{python} cannot be run: {e}")),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("import failed")
            .to_string()),
    }
}

/// Runs the Python peer when Brian2 and sbi are importable and prints the ratios per phase and
/// in total. With Brian2 alone (sbi needs torch), runs the Brian2 half (simulation and
/// features) and prints that ratio, labelled as partial.
fn peer(sims: usize, samples: usize, seed: u64, ours: &[(&str, f64)]) {
    let python = std::env::var("NEUROSBI_PYTHON").unwrap_or_else(|_| "python3".into());
    let full = match probe(&python, "import brian2, sbi, torch") {
        Ok(()) => true,
        Err(why) => {
            if let Err(b) = probe(&python, "import brian2") {
                println!("python peer: skipped (Brian2 + sbi not importable by {python}: {b})");
                return;
            }
            println!(
                "python peer: sbi/torch not importable by {python} ({why}); \
                 running the Brian2 half only (simulation + features)"
            );
            false
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e_peer/hh_sbi_e2e.py");
    let script = script.canonicalize().unwrap_or(script);
    println!(
        "python peer: running {} (this takes long)",
        script.display()
    );
    let mut cmd = Command::new(&python);
    cmd.arg(&script).args([
        "--sims",
        &sims.to_string(),
        "--samples",
        &samples.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    if !full {
        cmd.arg("--skip-inference");
    }
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "python peer: failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("python peer: failed to start: {e}");
            return;
        }
    };
    // Its remarks (valid count, observed statistics, posterior mean) come on stderr after `#`.
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(r) = l.strip_prefix("# ") {
            println!("python peer: {r}");
        }
    }
    // The script prints one `phase seconds` line per phase, `total` last.
    let text = String::from_utf8_lossy(&out.stdout);
    let theirs: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| {
            let (p, s) = l.split_once(' ')?;
            Some((p.to_string(), s.trim().parse().ok()?))
        })
        .collect();
    let get = |set: &[(&str, f64)], p: &str| set.iter().find(|(q, _)| *q == p).map(|x| x.1);
    let theirs_ref: Vec<(&str, f64)> = theirs.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    println!("phase          python s  ratio");
    for (p, s) in &theirs_ref {
        // Without sbi the peer's total lacks training and sampling: not comparable.
        if !full && *p == "total" {
            continue;
        }
        if let Some(o) = get(ours, p).filter(|o| *o > 0.0 && *s > 0.0) {
            println!("{p:<14} {s:>8.2} {:>6.1}x", s / o);
        }
    }
    let (label, ratio) = if full {
        ("total", get(&theirs_ref, "total").zip(get(ours, "total")))
    } else {
        let sum = |set: &[(&str, f64)]| Some(get(set, "simulation")? + get(set, "features")?);
        (
            "simulation + features (partial: no sbi)",
            sum(&theirs_ref).zip(sum(ours)),
        )
    };
    match ratio {
        Some((p, o)) => println!(
            "ratio python / neurosbi, {label}: {:.1}x (target > 20x: {})",
            p / o,
            if p / o > 20.0 { "met" } else { "NOT met" }
        ),
        None => println!("python peer: its output lacks the phase lines"),
    }
}
