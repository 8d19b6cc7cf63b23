//! `cargo xtask bench pyloric`: seconds per 11-s pyloric simulation (dt 0.025 ms, noise
//! off, 10 s after the package's 1 s burn-in) per core, for `examples/models/pyloric.toml`
//! and, in the same run, for the `pyloric` package of Gonçalves et al. (2020)
//! (`scripts/pyloric/bench.py`), with their ratio.
//!
//! Third, where `PYLORIC_JAX_PYTHON` (default `/work/venv-jax/bin/python`) imports it, the
//! JAX `pyloric-network-simulator` package (`scripts/pyloric/bench_jax.py`: another model
//! variant with an adaptive RK45 solver, so only the cost per simulated second compares).
//!
//! Parameter sets: the 24 fixture cases (`scripts/pyloric/generate.py`), repeated to fill
//! the lanes. neurosbi runs one block of 64 circuits on one thread (pinned to one CPU), so
//! seconds per simulation are per core. The package runs where `PYLORIC_PYTHON` (default
//! `/work/venv-pyloric/bin/python`) imports it from `PYLORIC_SRC` (default
//! `/work/venv-pyloric/src/pyloric`); otherwise its side is skipped with the reason.
//!
//! `cargo run --release -p neurosbi-sim --example pyloric_throughput [-- N_PACKAGE]`

#[path = "common/pin.rs"]
mod pin;
use neurosbi_sim::{CompiledKernel, ModelSpec, RunConfig};
use pin::pin_to_one_cpu;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const T_MAX_MS: f64 = 11_000.0;
const DT: f64 = 0.025e-3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Parameter rows (SI) of the fixture cases, cycled to `n` rows, noise off.
fn rows(model: &neurosbi_sim::Model, n: usize) -> Vec<f64> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            root().join("crates/neurosbi-features/tests/fixtures/pyloric/meta.json"),
        )
        .expect("the pyloric fixtures"),
    )
    .unwrap();
    let names: Vec<String> = meta["param_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let (who, what) = n.as_str().unwrap().split_once('.').unwrap();
            match who {
                "Synapses" => format!("g_{}", what.replace('-', "_")),
                "AB/PD" => format!("g{what}_ABPD"),
                g => format!("g{what}_{g}"),
            }
        })
        .collect();
    let cases = meta["cases"].as_array().unwrap();
    let mut out = Vec::new();
    for r in 0..n {
        let v: Vec<f64> = cases[r % cases.len()]["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        for p in model.parameters() {
            out.push(match names.iter().position(|n| *n == p.name) {
                Some(k) if k < 24 => v[k] * 10.0, // mS/cm**2 -> S/m**2
                Some(k) => v[k].exp() * 1e-3,     // ln(g / mS) -> S
                None => 0.0,                      // sigma_noise_*: noise off
            });
        }
    }
    out
}

/// Runs a timing script with `python` and returns its `seconds_per_simulation`, or why it
/// could not run (`hint`: the environment variable and README that say how to set it up).
fn python_timing(
    python: &str,
    args: &[String],
    envs: &[(&str, String)],
    hint: &str,
) -> Result<f64, String> {
    let mut cmd = Command::new(python);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {python}: {e} ({hint})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        return Err(format!("it did not run ({last}); {hint}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["seconds_per_simulation"]
        .as_f64()
        .ok_or_else(|| "no timing in its output".into())
}

/// The `pyloric` package's seconds per simulation, or why it could not run.
fn package(n: usize) -> Result<f64, String> {
    let python =
        std::env::var("PYLORIC_PYTHON").unwrap_or_else(|_| "/work/venv-pyloric/bin/python".into());
    let src =
        std::env::var("PYLORIC_SRC").unwrap_or_else(|_| "/work/venv-pyloric/src/pyloric".into());
    let script = root().join("scripts/pyloric/bench.py");
    python_timing(
        &python,
        &[
            script.display().to_string(),
            n.to_string(),
            T_MAX_MS.to_string(),
        ],
        &[("PYTHONPATH", src)],
        "set PYLORIC_PYTHON, see scripts/pyloric/README.md",
    )
}

/// The JAX `pyloric-network-simulator` package's seconds per simulation (another model
/// variant and an adaptive solver: see `scripts/pyloric/bench_jax.py`), or why not.
fn jax_package() -> Result<f64, String> {
    let python =
        std::env::var("PYLORIC_JAX_PYTHON").unwrap_or_else(|_| "/work/venv-jax/bin/python".into());
    let script = root().join("scripts/pyloric/bench_jax.py");
    python_timing(
        &python,
        &[script.display().to_string(), T_MAX_MS.to_string()],
        &[],
        "set PYLORIC_JAX_PYTHON, see scripts/pyloric/README.md",
    )
}

fn main() {
    let n_package: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let spec = ModelSpec::from_file(&root().join("examples/models/pyloric.toml")).unwrap();
    let model = spec.build().unwrap();
    let cpu = pin_to_one_cpu();
    let n_steps = (T_MAX_MS * 1e-3 / DT).round() as usize;
    let kernel = CompiledKernel::new(&model, DT, &[]).unwrap();
    let inputs: Vec<String> = Vec::new();
    println!(
        "pyloric network: {} states, {} parameters, {} instructions per step; {n_steps} steps of {} ms; pinned to CPU {cpu:?}",
        model.state_vars().len(),
        model.parameters().len(),
        kernel.step_len(),
        DT * 1e3
    );
    // One block of 64 circuits on this thread.
    let n = 64;
    let params = rows(&model, n);
    let cfg = RunConfig::new(DT, n_steps);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut ours = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let res = pool.install(|| {
            neurosbi_sim::run::simulate(&kernel, &params, 1, &[], &inputs, &cfg)
                .expect("the pyloric network simulates")
        });
        ours = ours.min(start.elapsed().as_secs_f64() / n as f64);
        assert!(res.failed.is_empty());
    }
    println!("neurosbi: {ours:.4} s per simulation per core (best of 3 runs of {n})");
    match package(n_package) {
        Ok(theirs) => println!(
            "pyloric package: {theirs:.4} s per simulation ({n_package} runs)\nratio: neurosbi is {:.1}x faster per core (target: 30x)",
            theirs / ours
        ),
        Err(why) => println!("pyloric package: skipped: {why}"),
    }
    match jax_package() {
        Ok(theirs) => println!(
            "JAX pyloric-network-simulator (RK45, its own model variant): {theirs:.4} s per simulation\nratio: neurosbi is {:.0}x faster per core",
            theirs / ours
        ),
        Err(why) => println!("JAX pyloric-network-simulator: skipped: {why}"),
    }
}
