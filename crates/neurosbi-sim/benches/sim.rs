//! Criterion benches of the simulator: HH model C (exponential Euler, dt 0.01 ms) for the
//! equation-string path and the native model, and the cost of parsing and compiling.
//! `cargo xtask bench sim` also runs the `sim_throughput` example, which prints
//! neuron-steps per second and the string/native ratio for 1 / 1 000 / 10 000 neurons.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use neurosbi_sim::{
    CompiledKernel, HodgkinHuxleyC, ModelSpec, RunConfig, Stimulus, simulate_native,
};
use std::hint::black_box;
use std::path::PathBuf;

fn hh_c() -> ModelSpec {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    ModelSpec::from_file(&root.join("examples/models/hh_c.toml")).expect("model file")
}

fn bench(c: &mut Criterion) {
    let spec = hh_c();
    let model = spec.build().expect("model");
    let n = 1000;
    let n_steps = 2000; // 20 ms
    let stim: Vec<f64> = (0..n_steps)
        .map(|k| if k >= 500 { 1e-9 } else { 0.0 })
        .collect();
    let stimuli = [Stimulus::from_rows("I", &[stim]).expect("stimulus")];
    let params: Vec<f64> = (0..n)
        .flat_map(|k| {
            let u = (k as f64 * 0.618_033_988_75).fract();
            [(0.5 + 79.5 * u) * 1e-6, (1e-4 + 15.0 * (1.0 - u)) * 1e-6]
        })
        .collect();
    let cfg = RunConfig::new(1e-5, n_steps);
    let mut g = c.benchmark_group("hh_c_1000_neurons_20ms");
    g.sample_size(10);
    g.throughput(Throughput::Elements((n * n_steps) as u64));
    g.bench_function("equation_string", |b| {
        b.iter(|| {
            model
                .simulate(black_box(&params), 1, &stimuli, &cfg)
                .expect("run")
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            simulate_native(
                HodgkinHuxleyC::default(),
                black_box(&params),
                1,
                &stimuli,
                &cfg,
            )
            .expect("run")
        })
    });
    g.finish();
    c.bench_function("parse_check_compile_hh_c", |b| {
        b.iter(|| {
            let m = spec.build().expect("model");
            CompiledKernel::new(&m, 1e-5, &[]).expect("compile")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
