//! Compares our reference posteriors with sbibm's published reference samples: C2ST (sbibm's
//! protocol) and the means, per observation.
//!
//! sbibm ships its samples as `sbibm/tasks/<task>/files/num_observation_<i>/
//! reference_posterior_samples.csv.bz2`; unpack them as `<dir>/<task>_<i>.csv`, e.g.
//! `bunzip2 -c .../num_observation_7/reference_posterior_samples.csv.bz2 > /tmp/ref/slcp_7.csv`,
//! then `cargo run --release -p neurosbi-infer --example reference_check -- /tmp/ref slcp 1-10
//! 5000` (directory, task, observations `a-b`, draws per set).

use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use neurosbi_infer::tasks::task_by_name;

fn means(s: &[f64], d: usize) -> Vec<f64> {
    let n = (s.len() / d) as f64;
    (0..d)
        .map(|k| s.iter().skip(k).step_by(d).sum::<f64>() / n)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, task, range, n] = args.as_slice() else {
        return Err("usage: reference_check <dir> <task> <first-last> <draws>".into());
    };
    let (first, last) = range
        .split_once('-')
        .ok_or("observations as first-last, e.g. 1-10")?;
    let (first, last): (usize, usize) = (first.parse()?, last.parse()?);
    let n: usize = n.parse()?;
    let t = task_by_name(task)?;
    let d = t.dim_theta();
    for i in first..=last {
        let path = format!("{dir}/{task}_{i}.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut theirs = Vec::with_capacity(n * d);
        for (line_no, line) in text.lines().skip(1).take(n).enumerate() {
            for cell in line.split(',') {
                theirs.push(
                    cell.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("{path}:{}: {e}", line_no + 2))?,
                );
            }
        }
        let ours = t.reference_posterior(&t.observation(i)?, theirs.len() / d, 1)?;
        let acc = c2st(&theirs, &ours, d, &C2stConfig::default())?;
        println!(
            "{task} observation {i}: C2ST(sbibm, ours) {acc:.4}; means {:.3?} vs {:.3?}",
            means(&theirs, d),
            means(&ours, d)
        );
    }
    Ok(())
}
