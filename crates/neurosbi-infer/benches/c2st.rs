//! The C2ST classifier (sbibm's protocol: 5 folds, two hidden layers of 10*dim units, trained
//! until sklearn's stopping rule) on two nearly equal Gaussian sample sets, 2 000 rows each.
//! It dominates the time of `cargo xtask bench sbibm` on the 10-D tasks.
//!
//! `cargo bench -p neurosbi-infer --bench c2st` (also part of `cargo xtask bench all`).

use criterion::{Criterion, criterion_group, criterion_main};
use neurosbi_infer::diagnostics::{C2stConfig, c2st};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn sets(n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let y = (0..n * d)
        .map(|i| {
            let v: f64 = StandardNormal.sample(&mut rng);
            if i % d == 0 { v + 0.1 } else { v }
        })
        .collect();
    (x, y)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("c2st");
    g.sample_size(10);
    for d in [5, 10] {
        let (x, y) = sets(2000, d);
        g.bench_function(format!("{d}-D, 2000 vs 2000 rows"), |b| {
            b.iter(|| c2st(&x, &y, d, &C2stConfig::default()).expect("c2st"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
