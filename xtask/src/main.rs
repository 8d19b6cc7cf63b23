//! Developer tasks for the neurosbi workspace, run as `cargo xtask <task>`.
//!
//! - `cargo xtask test`: the project's test command (README). Runs the whole workspace's
//!   tests; tests that need a system component bring it up themselves or print why they skip.
//! - `cargo xtask bench [sim|features|flows|sbibm|e2e|store|all]`: runs the criterion and
//!   ratio benchmarks and prints the figures the issues name.

use anyhow::{Context, Result, bail};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test|bench [sim|features|flows|all]>");
            bail!("unknown or missing task")
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-targets"]).args(extra);
    run(cmd)?;
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    run(doc)
}

fn bench(args: &[String]) -> Result<()> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let known = ["sim", "features", "flows", "all"];
    if !known.contains(&which) {
        bail!("unknown bench `{which}`; known: {}", known.join(", "));
    }
    if which == "sim" || which == "all" {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "neurosbi-sim", "--bench", "sim"]);
        run(cmd)?;
        let mut ratio = cargo();
        ratio.args([
            "run",
            "--release",
            "-p",
            "neurosbi-sim",
            "--example",
            "sim_throughput",
        ]);
        run(ratio)?;
    }
    for (name, krate) in [("features", "neurosbi-features"), ("flows", "neurosbi-flows")] {
        if which == name || which == "all" {
            let mut cmd = cargo();
            cmd.args(["bench", "-p", krate, "--bench", name]);
            run(cmd)?;
        }
    }
    Ok(())
}
