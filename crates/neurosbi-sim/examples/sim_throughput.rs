//! Throughput of HH model C (4 states, exponential Euler, dt 0.01 ms, 200 ms, 1 nA step
//! from 50 ms): equation-string path vs the native model, 1 / 1 000 / 10 000 neurons, one
//! thread and all threads. Prints neuron-steps per second and the ratio. Run with
//! `cargo xtask bench sim` (or `cargo run --release -p neurosbi-sim --example sim_throughput`).

use neurosbi_sim::{HodgkinHuxleyC, ModelSpec, RunConfig, Stimulus, simulate_native};
use std::path::PathBuf;
use std::time::Instant;

/// Peak resident memory of this process in MB (Linux), for the memory target.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec = ModelSpec::from_file(&root.join("examples/models/hh_c.toml")).expect("model file");
    let model = spec.build().expect("model");
    let dt = 1e-5;
    let n_steps = 20_000;
    let stim: Vec<f64> = (0..n_steps)
        .map(|k| if k >= 5000 { 1e-9 } else { 0.0 })
        .collect();
    let stimuli = [Stimulus::from_rows("I", &[stim]).expect("stimulus")];
    let cfg = RunConfig::new(dt, n_steps);
    let threads_all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rss_before = peak_rss_mb();
    println!("HH model C, exponential Euler, dt 0.01 ms, 200 ms ({n_steps} steps), spikes only");
    println!(
        "{:>8} {:>8} {:>18} {:>18} {:>8}",
        "neurons", "threads", "string [Mn-st/s]", "native [Mn-st/s]", "ratio"
    );
    // SIM_THROUGHPUT_N=1000 restricts the sizes (for profiling).
    let sizes: Vec<usize> = match std::env::var("SIM_THROUGHPUT_N") {
        Ok(v) => vec![v.parse().expect("SIM_THROUGHPUT_N must be a number")],
        Err(_) => vec![1, 1_000, 10_000],
    };
    for &n in &sizes {
        // Parameters spread over the prior box, deterministic.
        let params: Vec<f64> = (0..n)
            .flat_map(|k| {
                let u = (k as f64 * 0.618_033_988_75).fract();
                let w = (k as f64 * 0.414_213_562_37).fract();
                [(0.5 + 79.5 * u) * 1e-6, (1e-4 + 14.9999 * w) * 1e-6]
            })
            .collect();
        for &threads in &[1usize, threads_all] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let reps = if n == 1 { 20 } else { 1 };
            let time = |f: &dyn Fn() -> usize| {
                let _ = f(); // warm-up
                let t0 = Instant::now();
                let mut spikes = 0;
                for _ in 0..reps {
                    spikes = f();
                }
                (t0.elapsed().as_secs_f64() / reps as f64, spikes)
            };
            let (ts, ss) = pool.install(|| {
                time(&|| {
                    let r = model.simulate(&params, 1, &stimuli, &cfg).expect("run");
                    r.spikes.iter().map(Vec::len).sum()
                })
            });
            let (tn, sn) = pool.install(|| {
                time(&|| {
                    let r = simulate_native(HodgkinHuxleyC::default(), &params, 1, &stimuli, &cfg)
                        .expect("run");
                    r.spikes.iter().map(Vec::len).sum()
                })
            });
            let work = (n * n_steps) as f64;
            println!(
                "{n:>8} {threads:>8} {:>18.1} {:>18.1} {:>8.2}   (spikes: {ss} vs {sn})",
                work / ts / 1e6,
                work / tn / 1e6,
                tn / ts
            );
        }
    }
    if let (Some(before), Some(after)) = (rss_before, peak_rss_mb()) {
        println!(
            "peak resident memory: {after:.1} MB for the whole benchmark ({before:.1} MB before the first run); target for 10 000 neurons recording spikes: < 50 MB"
        );
    }
}
