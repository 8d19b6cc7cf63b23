//! Simulator throughput next to a C reference loop of the same work, in the same run.
//!
//! The work (issue 24): HH model B of the sbi tutorial without noise (5 states with the
//! M-current) and HH model C (Brian2's SBI example), exponential Euler, dt 0.01 ms, 200 ms,
//! a 0.5 nA step from 10 to 190 ms, (gNa, gK) spread over the prior, spikes only. The C side
//! is `benches/c/hh_loop.c`, compiled here with the system C compiler at
//! `-O3 -march=native -ffast-math` (skipped, with the reason printed, when there is none).
//! The equation-string side reads `benches/c/hh_b.toml` / `hh_c.toml`, which differ from the
//! example models only in what the C loop does too: no noise, and a spike is an upward
//! crossing of -20 mV (threshold and refractory condition `v > -20*mV`). Spike counts per
//! neuron are compared; with libm's and our own `exp` rounding differently, a neuron near
//! a bifurcation may gain or lose a spike, so up to 1 % of neurons may differ by one.
//!
//! Timings: each configuration runs 5 times, the sides alternating, and the median is
//! printed, with everything pinned to one core for the one-thread rows. The all-threads
//! rows compare the string path per core with the one-thread C loop.
//! `cargo xtask bench sim` runs it (or `cargo run --release -p neurosbi-sim --example
//! sim_throughput`; `SIM_THROUGHPUT_N=10000` restricts the sizes, `SIM_REPS` the repeats).

use neurosbi_sim::{HodgkinHuxleyC, Model, ModelSpec, RunConfig, Stimulus, simulate_native};
#[path = "common/pin.rs"]
mod pin;
use pin::pin_to_one_cpu;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DT: f64 = 1e-5;
const N_STEPS: usize = 20_000;
const AMP: f64 = 0.5e-9;
const T_ON: f64 = 0.01;
const T_OFF: f64 = 0.19;

/// Peak resident memory of this process in MB (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Compiles the C reference loop; `Err` says why it cannot run here.
fn build_c(dir: &Path) -> Result<PathBuf, String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/c/hh_loop.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let exe = dir.join("hh_loop");
    let out = Command::new(&cc)
        .args(["-O3", "-march=native", "-ffast-math"])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .map_err(|e| format!("no C compiler (`{cc}`: {e})"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cc}` failed on {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// One run of the C loop: (seconds, spike count per neuron).
fn run_c(exe: &Path, model: &str, n: usize, counts: &Path) -> (f64, Vec<usize>) {
    let out = Command::new(exe)
        .args([model, &n.to_string(), &N_STEPS.to_string(), &DT.to_string()])
        .args([AMP.to_string(), T_ON.to_string(), T_OFF.to_string()])
        .arg(counts)
        .output()
        .expect("run the C loop");
    assert!(out.status.success(), "C loop failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("time");
    let per_neuron = std::fs::read_to_string(counts)
        .expect("counts")
        .lines()
        .map(|l| l.parse().expect("count"))
        .collect();
    (secs, per_neuron)
}

/// (gNa, gK) of neuron `k` in the model's SI units, as `hh_loop.c` spreads them.
fn params(n: usize, si_per_unit: f64) -> Vec<f64> {
    (0..n)
        .flat_map(|k| {
            let u = (k as f64 * 0.618_033_988_75).fract();
            let w = (k as f64 * 0.414_213_562_37).fract();
            [
                (0.5 + 79.5 * u) * si_per_unit,
                (1e-4 + 14.9999 * w) * si_per_unit,
            ]
        })
        .collect()
}

fn stimulus() -> Stimulus {
    let row: Vec<f64> = (0..N_STEPS)
        .map(|k| {
            let t = k as f64 * DT;
            if (T_ON..T_OFF).contains(&t) { AMP } else { 0.0 }
        })
        .collect();
    Stimulus::from_rows("I", &[row]).expect("stimulus")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Neurons whose spike counts differ, and the largest difference.
fn count_mismatch(a: &[usize], b: &[usize]) -> (usize, usize) {
    let d = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y));
    (d.clone().filter(|&d| d > 0).count(), d.max().unwrap_or(0))
}

fn load(file: &str) -> Model {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spec = ModelSpec::from_file(&root.join(file)).expect("bench model file");
    spec.build().expect("bench model")
}

/// One model and parameter batch, measured on every side.
struct Case<'a> {
    label: &'static str,
    model: &'a Model,
    params: &'a [f64],
    stim: &'a [Stimulus],
    cfg: &'a RunConfig,
}

/// Spike-count comparison with the C loop: ((neurons that differ, largest difference),
/// C's counts, ours).
type Mismatch = ((usize, usize), Vec<usize>, Vec<usize>);

impl Case<'_> {
    /// Times C (when given), the equation-string path and (model C) the native model,
    /// alternating, `reps` times each, on the current thread pool.
    fn measure(
        &self,
        reps: usize,
        c: Option<&PathBuf>,
        counts_file: &Path,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Option<Mismatch>) {
        let (mut tc, mut ts, mut tn) = (Vec::new(), Vec::new(), Vec::new());
        let mut mismatch = None;
        let string = || {
            let r = self.model.simulate(self.params, 1, self.stim, self.cfg);
            r.expect("run")
        };
        for _ in 0..reps {
            if let Some(exe) = c {
                let n = self.params.len() / 2;
                let (secs, c_counts) = run_c(exe, &self.label.to_lowercase(), n, counts_file);
                tc.push(secs);
                let ours: Vec<usize> = string().spikes.iter().map(Vec::len).collect();
                mismatch = Some((count_mismatch(&c_counts, &ours), c_counts, ours));
            }
            let t0 = Instant::now();
            string();
            ts.push(t0.elapsed().as_secs_f64());
            if self.label == "C" {
                let t0 = Instant::now();
                let hh = HodgkinHuxleyC::default();
                simulate_native(hh, self.params, 1, self.stim, self.cfg).expect("run");
                tn.push(t0.elapsed().as_secs_f64());
            }
        }
        (tc, ts, tn, mismatch)
    }
}

struct Row {
    model: &'static str,
    n: usize,
    threads: usize,
    /// The C loop's time (one thread), measured in this row or, for the all-threads row,
    /// in the one-thread row before it.
    c: Option<f64>,
    /// Whether `c` was measured in this row (printed in the C column).
    c_here: bool,
    string: f64,
    native: Option<f64>,
}

impl Row {
    fn print(&self) {
        let rate = |s: f64| (self.n * N_STEPS) as f64 / s / 1e6;
        let per_core = |s: f64| rate(s) / self.threads as f64;
        let c = match self.c {
            Some(s) if self.c_here => format!("{:.1}", rate(s)),
            _ => "-".into(),
        };
        let native = self
            .native
            .map_or("-".into(), |s| format!("{:.1}", rate(s)));
        let vs_c = self.c.map_or("-".into(), |c| {
            format!("{:.2}", per_core(self.string) / rate(c))
        });
        let nat = self
            .native
            .map_or("-".into(), |s| format!("{:.2}", s / self.string));
        println!(
            "{:>5} {:>7} {:>7} {:>10} {:>10} {:>10} {:>14} {:>15}",
            self.model,
            self.n,
            self.threads,
            c,
            format!("{:.1}", rate(self.string)),
            native,
            vs_c,
            nat
        );
    }
}

fn main() {
    let reps: usize = std::env::var("SIM_REPS").map_or(5, |v| v.parse().expect("SIM_REPS"));
    let sizes: Vec<usize> = match std::env::var("SIM_THROUGHPUT_N") {
        Ok(v) => vec![v.parse().expect("SIM_THROUGHPUT_N must be a number")],
        Err(_) => vec![1, 8, 63, 1_000, 10_000],
    };
    let threads_all = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Build the all-threads pool before pinning: its workers keep the full CPU set.
    let pool_all = rayon::ThreadPoolBuilder::new()
        .num_threads(threads_all)
        .build()
        .expect("pool");
    let cpu = pin_to_one_cpu();
    let pool_one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let tmp = std::env::temp_dir().join(format!("neurosbi-sim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let c_exe = build_c(&tmp);
    match (&c_exe, cpu) {
        (Ok(_), Some(cpu)) => println!(
            "C reference: benches/c/hh_loop.c, cc -O3 -march=native -ffast-math; one-thread rows pinned to CPU {cpu}"
        ),
        (Ok(_), None) => println!("C reference: benches/c/hh_loop.c (could not pin to a CPU)"),
        (Err(why), _) => println!("C reference skipped: {why}"),
    }
    println!(
        "exponential Euler, dt 0.01 ms, 200 ms ({N_STEPS} steps), 0.5 nA from 10 to 190 ms, spikes only; median of {reps}"
    );
    println!(
        "{:>5} {:>7} {:>7} {:>10} {:>10} {:>10} {:>14} {:>15}",
        "model",
        "neurons",
        "threads",
        "C Mn-st/s",
        "string",
        "native",
        "string/C/core",
        "string/native"
    );
    let stim = [stimulus()];
    let cfg = RunConfig::new(DT, N_STEPS);
    let counts_file = tmp.join("counts.txt");
    let rss_before = peak_rss_mb();
    for (label, file, si) in [
        ("B", "benches/c/hh_b.toml", 10.0),
        ("C", "benches/c/hh_c.toml", 1e-6),
    ] {
        let model = load(file);
        for &n in &sizes {
            let p = params(n, si);
            let mut c_time = None;
            for (threads, pool) in [(1, &pool_one), (threads_all, &pool_all)] {
                if threads > 1 && n < 1000 {
                    continue;
                }
                let c = if threads == 1 {
                    c_exe.as_ref().ok()
                } else {
                    None
                };
                let run = Case {
                    label,
                    model: &model,
                    params: &p,
                    stim: &stim,
                    cfg: &cfg,
                };
                let (tc, ts, tn, mismatch) = pool.install(|| run.measure(reps, c, &counts_file));
                let c_here = !tc.is_empty();
                if c_here {
                    c_time = Some(median(tc));
                }
                Row {
                    model: label,
                    n,
                    threads,
                    c: c_time,
                    c_here,
                    string: median(ts),
                    native: (!tn.is_empty()).then(|| median(tn)),
                }
                .print();
                if let Some(((differ, max), c_counts, ours)) = mismatch {
                    let (sc, so): (usize, usize) = (c_counts.iter().sum(), ours.iter().sum());
                    println!(
                        "      spikes: C {sc}, string {so}; {differ} of {n} neurons differ (by at most {max})"
                    );
                    assert!(
                        differ * 100 <= n.max(100) && max <= 1,
                        "model {label}, {n} neurons: spike counts disagree with the C loop beyond the tolerance"
                    );
                }
            }
        }
    }
    println!("native: the hand-written HodgkinHuxleyC (threshold m > 0.5), on model C's work");
    if let (Some(before), Some(after)) = (rss_before, peak_rss_mb()) {
        println!("peak resident memory: {after:.1} MB ({before:.1} MB before the first run)");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
