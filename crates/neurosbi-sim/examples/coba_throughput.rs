//! `cargo xtask bench coba`: wall time of Brian's COBA network (4 000 LIF neurons,
//! 320 000 synapses, 1 s at dt 0.1 ms; `tests/fixtures/brian_circuits/coba.json`) in the
//! network layout on one pinned CPU, next to Brian2 C++ standalone on one thread in the
//! same run (`scripts/brian_circuits/time_coba.py`, with the interpreter `BRIAN_PYTHON`,
//! default `/work/venv-lang/bin/python`; skipped with the reason when Brian2 is missing).
//!
//! `cargo run --release -p neurosbi-sim --example coba_throughput [-- REPEAT]`

#[path = "common/coba.rs"]
mod coba;
#[path = "common/pin.rs"]
mod pin;
use std::process::Command;
use std::time::Instant;

fn main() {
    let repeat: usize = std::env::args()
        .nth(1)
        .map_or(3, |a| a.parse().expect("REPEAT must be a number"));
    let _ = pin::pin_to_one_cpu();
    let t0 = Instant::now();
    let (_, net, run) = coba::coba();
    println!(
        "neurosbi: fixture read and network built in {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    let mut best = f64::INFINITY;
    let mut spikes = 0;
    for k in 0..repeat {
        let t0 = Instant::now();
        let out = net.simulate(&run).expect("COBA runs");
        let secs = t0.elapsed().as_secs_f64();
        best = best.min(secs);
        spikes = out.spikes("neurons").unwrap().iter().map(Vec::len).sum();
        println!("neurosbi run {}: {secs:.3} s, {spikes} spikes", k + 1);
    }
    println!(
        "neurosbi network layout, 1 thread: min {best:.3} s over {repeat} runs ({spikes} spikes)"
    );
    let python = std::env::var("BRIAN_PYTHON").unwrap_or("/work/venv-lang/bin/python".into());
    let script = coba::dir().join("../../../scripts/brian_circuits/time_coba.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["--repeat", &repeat.to_string()])
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!(
                "Brian2 side skipped: {python} {script:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("Brian2 side skipped: cannot run {python}: {e}");
            return;
        }
    };
    print!("{text}");
    // "... min wall W s, min _last_run_time L s over R runs"
    let field = |key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.contains("min wall"))?;
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    if let (Some(wall), Some(run_time)) = (field("min wall "), field("min _last_run_time ")) {
        println!(
            "ratio: Brian2 C++ standalone / neurosbi = {:.2}x (process wall time) and {:.2}x \
             (Brian's simulation loop alone)",
            wall / best,
            run_time / best
        );
    }
}
