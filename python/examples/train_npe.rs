//! Trains NPE from Rust on arrays written by the Python tests, for the bit-for-bit test
//! (python/tests/test_api.py::test_python_matches_rust_bit_for_bit):
//!
//! `train_npe THETA.f64 X.f64 DIM_THETA DIM_X LOW HIGH MAX_EPOCHS SEED OUT_DIR`
//!
//! THETA.f64 and X.f64 are row-major little-endian float64; the prior is a box with the same
//! LOW and HIGH in every dimension; the other training settings are sbi's defaults, as in
//! `neurosbi.NPE(prior).train(max_num_epochs=MAX_EPOCHS, seed=SEED)`.

use std::sync::Arc;

use neurosbi_flows::{EstimatorConfig, NoObserver, TrainConfig};
use neurosbi_infer::{IndependentPrior, train_npe};

fn read_f64(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 9 {
        return Err(
            "usage: train_npe THETA.f64 X.f64 DIM_THETA DIM_X LOW HIGH MAX_EPOCHS SEED OUT_DIR"
                .into(),
        );
    }
    let (theta, x) = (read_f64(&a[0]), read_f64(&a[1]));
    let (dim_theta, dim_x): (usize, usize) = (a[2].parse()?, a[3].parse()?);
    let (low, high): (f64, f64) = (a[4].parse()?, a[5].parse()?);
    let prior = Arc::new(IndependentPrior::uniform_box(dim_theta, low, high)?);
    let train = TrainConfig {
        max_epochs: Some(a[6].parse()?),
        seed: a[7].parse()?,
        ..TrainConfig::default()
    };
    // The training's own wall time, for `cargo xtask bench python` (stderr, so the
    // bit-for-bit test is unaffected).
    let t0 = std::time::Instant::now();
    let (posterior, _) = train_npe(
        prior,
        &theta,
        &x,
        dim_x,
        &EstimatorConfig::maf(),
        &train,
        &mut NoObserver,
    )?;
    eprintln!("train_npe: trained in {:.3} s", t0.elapsed().as_secs_f64());
    posterior.save(std::path::Path::new(&a[8]))?;
    Ok(())
}
