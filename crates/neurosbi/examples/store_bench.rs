//! `cargo xtask bench store`: disk overhead per simulation of the store and of shard files
//! beyond the raw f64 payload, and write / merge throughput, on a cheap synthetic simulator
//! (so the figures measure the storage, not the neuron model).
//!
//! NEUROSBI_BENCH_N sets the number of simulations (default 1 000 000), NEUROSBI_BENCH_DIMS
//! the parameter and feature dimensions (default `2,7`: the small HH example's).

use neurosbi::infer::{FromPrior, Marginal, SimRng, SimulationError, Simulator, Store};
use neurosbi::scale::{RunIdentity, ShardHeader, ShardSpec, merge, shards_dir, write_shard};
use rand::RngExt;
use std::path::Path;
use std::time::Instant;

/// x_j = sum(theta) * (j + 1) + N(0, 1) noise: cheap, seeded per row.
struct Cheap {
    dt: usize,
    dx: usize,
}

impl Simulator for Cheap {
    fn dim_theta(&self) -> usize {
        self.dt
    }
    fn dim_x(&self) -> usize {
        self.dx
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for ((t, rng), xr) in theta
            .chunks(self.dt)
            .zip(rngs.iter_mut())
            .zip(x.chunks_mut(self.dx))
        {
            let s: f64 = t.iter().sum();
            for (j, v) in xr.iter_mut().enumerate() {
                *v = s * (j + 1) as f64 + rng.random::<f64>() - 0.5;
            }
        }
        Ok(())
    }
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::var("NEUROSBI_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dims: Vec<usize> = std::env::var("NEUROSBI_BENCH_DIMS")
        .unwrap_or_else(|_| "2,7".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let (dt, dx) = (dims[0], dims[1]);
    let sim = Cheap { dt, dx };
    let prior = neurosbi::infer::IndependentPrior::new(vec![
        Marginal::Uniform {
            low: 0.0,
            high: 1.0
        };
        dt
    ])?;
    let payload = n * (dt + dx) as u64 * 8;
    let root = std::env::temp_dir().join(format!("neurosbi-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mb = |b: u64, s: f64| b as f64 / s / 1e6;
    println!(
        "store bench: {n} simulations, {dt} parameters + {dx} features (raw payload {:.1} MB, {} bytes per simulation)",
        payload as f64 / 1e6,
        (dt + dx) * 8
    );

    let run = RunIdentity {
        fingerprint: neurosbi::infer::Fingerprint::new().with("bench", "bench"),
        seed: 11,
        dim_theta: dt as u32,
        dim_x: dx as u32,
    };
    // One process into the store.
    let direct = root.join("direct");
    let t = Instant::now();
    let mut store = Store::create(direct.join("simulations"), dt, dx, run.fingerprint.clone())?;
    let r = store.add_round(n, 11, neurosbi::fit::STORE_CHUNK_SIZE as u64, "prior")?;
    store.run_round(
        r,
        &sim,
        &FromPrior(&prior),
        1000,
        &mut neurosbi::infer::Quiet,
    )?;
    let s_store = t.elapsed().as_secs_f64();
    let b_store = dir_bytes(&direct.join("simulations"));
    println!(
        "store:  {:>12} bytes, overhead {:.3} bytes/simulation; write {:.2} s ({:.2} M simulations/s, {:.0} MB/s, simulation included)",
        b_store,
        (b_store as f64 - payload as f64) / n as f64,
        s_store,
        n as f64 / s_store / 1e6,
        mb(b_store, s_store)
    );

    // Four shards, then merge.
    let sharded = root.join("sharded");
    let sdir = shards_dir(&sharded);
    std::fs::create_dir_all(&sdir)?;
    let t = Instant::now();
    for i in 0..4 {
        let spec = ShardSpec::new(i, 4)?;
        let (start, end) = spec.range(n);
        let header = ShardHeader {
            run: run.clone(),
            round: 0,
            round_size: n,
            round_seed: 11,
            source: "prior".into(),
            shard: i,
            num_shards: 4,
            start,
            end,
        };
        write_shard(
            &sdir.join(neurosbi::scale::shard_file_name(0, spec)),
            &header,
            &sim,
            &FromPrior(&prior),
            1000,
            &mut |_| {},
        )?;
    }
    let s_shards = t.elapsed().as_secs_f64();
    let b_shards = dir_bytes(&sdir);
    println!(
        "shards: {:>12} bytes in 4 files, overhead {:.3} bytes/simulation; write {:.2} s ({:.2} M simulations/s, simulation included)",
        b_shards,
        (b_shards as f64 - payload as f64) / n as f64,
        s_shards,
        n as f64 / s_shards / 1e6
    );
    let t = Instant::now();
    merge(&sharded, None)?;
    let s_merge = t.elapsed().as_secs_f64();
    println!(
        "merge:  {:.2} s ({:.2} M simulations/s, {:.0} MB/s of shards read twice, store written once)",
        s_merge,
        n as f64 / s_merge / 1e6,
        mb(b_shards, s_merge)
    );
    let a = Store::open(direct.join("simulations"))?.load()?;
    let b = Store::open(sharded.join("simulations"))?.load()?;
    let same = a
        .theta
        .iter()
        .zip(&b.theta)
        .all(|(p, q)| p.to_bits() == q.to_bits())
        && a.x
            .iter()
            .zip(&b.x)
            .all(|(p, q)| p.to_bits() == q.to_bits())
        && a.theta.len() == b.theta.len();
    println!("merged store bit-identical to the one-process store: {same}");
    println!(
        "disk per million simulations: {:.1} MB store ({:.1} MB payload), {:.1} MB more while shards are kept",
        b_store as f64 / n as f64,
        payload as f64 / n as f64,
        b_shards as f64 / n as f64
    );
    let _ = std::fs::remove_dir_all(&root);
    if !same {
        return Err("merged store differs from the one-process store".into());
    }
    Ok(())
}
