//! Feature throughput (`cargo bench -p neurosbi-features --bench features`).
//!
//! * The sbi HH tutorial's seven statistics on 10 000 traces of 12 001 samples, one
//!   thread: samples per second per core (target >= 20 M).
//! * The eFEL-style set and the antropy set on 1 000 traces: time per trace, printed
//!   next to eFEL's and antropy's own time per trace measured in the same run when
//!   `python3` (or `$NEUROSBI_PYTHON`) can import them; skipped otherwise.
//!
//! * The 15 pyloric statistics of one 11-s simulation (three traces of 440 000 samples at
//!   0.025 ms; the package's own full-resolution fixtures): time per simulation, the cost
//!   a pyloric fit adds to each simulation.
//!
//! Traces are simulated here (sbi tutorial Hodgkin-Huxley, exponential Euler, dt 0.01 ms,
//! 120 ms, step current 10-110 ms, varied amplitude and noise). The 10 000 recordings of
//! the first benchmark are views of 100 distinct traces (10 MB), so the data still come
//! from memory rather than L1/L2.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use neurosbi_features::{Catalogue, FeatureSet, Recording};

const DT: f64 = 0.01;
const N: usize = 12_001;
const T_ON: f64 = 10.0;
const T_OFF: f64 = 110.0;

/// sbi tutorial HH (with M-current); `amp` in uA/cm^2, noise as in generate.py.
fn hh_trace(amp: f64, noise: f64, seed: u64, n: usize) -> Vec<f64> {
    let (gl, gm, el, ena, ek, vt, gna, gk) = (0.1, 0.07, -70.0, 53.0, -107.0, -60.0, 50.0, 5.0);
    let efun = |z: f64| {
        if z.abs() < 1e-4 {
            1.0 - z / 2.0
        } else {
            z / z.exp_m1()
        }
    };
    let rates = |v: f64| {
        let v1 = v - vt;
        (
            0.32 * efun(-0.25 * (v1 - 13.0)) / 0.25,
            0.28 * efun(0.2 * (v1 - 40.0)) / 0.2,
            0.128 * (-(v1 - 17.0) / 18.0).exp(),
            4.0 / (1.0 + (-0.2 * (v1 - 40.0)).exp()),
            0.032 * efun(-0.2 * (v1 - 15.0)) / 0.2,
            0.5 * (-(v1 - 10.0) / 40.0).exp(),
        )
    };
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut gauss = move || {
        // Sum of 4 uniforms: cheap, deterministic, roughly normal (variance 1).
        let mut acc = 0.0;
        for _ in 0..4 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            acc += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        }
        acc * 3f64.sqrt()
    };
    let (am, bm, ah, bh, an, bn) = rates(el);
    let (mut m, mut h, mut nn) = (am / (am + bm), ah / (ah + bh), an / (an + bn));
    let mut p = 1.0 / (1.0 + (-(el + 35.0) / 10.0f64).exp());
    let mut v = el;
    let mut out = Vec::with_capacity(n);
    out.push(v);
    for k in 1..n {
        let t = (k - 1) as f64 * DT;
        let (am, bm, ah, bh, an, bn) = rates(v);
        let p_inf = 1.0 / (1.0 + (-(v + 35.0) / 10.0).exp());
        let tau_p = 600.0 / (3.3 * ((v + 35.0) / 20.0).exp() + (-(v + 35.0) / 20.0).exp());
        m = am / (am + bm) + (m - am / (am + bm)) * (-DT * (am + bm)).exp();
        h = ah / (ah + bh) + (h - ah / (ah + bh)) * (-DT * (ah + bh)).exp();
        nn = an / (an + bn) + (nn - an / (an + bn)) * (-DT * (an + bn)).exp();
        p = p_inf + (p - p_inf) * (-DT / tau_p).exp();
        let g = gl + gna * m.powi(3) * h + gk * nn.powi(4) + gm * p;
        let e = gl * el + gna * m.powi(3) * h * ena + (gk * nn.powi(4) + gm * p) * ek;
        let i = if (T_ON..T_OFF).contains(&t) { amp } else { 0.0 } + noise * gauss() / DT.sqrt();
        let v_inf = (e + i) / g;
        v = v_inf + (v - v_inf) * (-DT * g).exp();
        out.push(v);
    }
    out
}

fn traces(count: usize, n: usize) -> Vec<Vec<f64>> {
    (0..count)
        .map(|k| {
            hh_trace(
                1.0 + 3.0 * (k % 10) as f64 / 9.0,
                0.1 * (k % 3) as f64,
                k as u64,
                n,
            )
        })
        .collect()
}

fn one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

/// Writes traces as raw little-endian f64 and times `code` on them in Python; returns
/// seconds per trace, or None when the peer is not importable.
fn python_time_per_trace(module: &str, data: &[Vec<f64>], code: &str) -> Option<f64> {
    let py = std::env::var("NEUROSBI_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}, numpy")])
        .output()
        .ok()?
        .status
        .success();
    if !ok {
        return None;
    }
    let path = std::env::temp_dir().join(format!(
        "neurosbi_bench_{module}_{}.bin",
        std::process::id()
    ));
    let mut f = std::fs::File::create(&path).ok()?;
    for tr in data {
        for x in tr {
            f.write_all(&x.to_le_bytes()).ok()?;
        }
    }
    drop(f);
    let script = format!(
        "import numpy as np, time\nX = np.fromfile(r'{}', dtype='<f8').reshape({}, {})\ndt = {DT}\nt = np.arange(X.shape[1]) * dt\n{code}\nprint(elapsed / X.shape[0])\n",
        path.display(),
        data.len(),
        data[0].len()
    );
    let out = Command::new(&py).args(["-c", &script]).output().ok();
    let _ = std::fs::remove_file(&path);
    let out = out?;
    if !out.status.success() {
        eprintln!(
            "peer timing failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

fn bench_sbi(c: &mut Criterion) {
    let pool = traces(100, N);
    let recs: Vec<Recording> = (0..10_000)
        .map(|k| Recording::new(&pool[k % pool.len()], DT).with_stimulus(T_ON, T_OFF))
        .collect();
    let set = FeatureSet::from_names(&["sbi_hh_tutorial"]).unwrap();
    let start = Instant::now();
    let m = one_thread(|| set.compute_batch(&recs, 1).unwrap());
    let secs = start.elapsed().as_secs_f64();
    let samples = (recs.len() * N) as f64;
    assert_eq!(m.n_failed(), 0);
    println!(
        "sbi_hh_tutorial: 10000 x {N} samples in {secs:.3} s on one thread = {:.1} M samples/s per core (target 20)",
        samples / secs / 1e6
    );
    let mut g = c.benchmark_group("sbi_hh_tutorial");
    g.throughput(Throughput::Elements((1000 * N) as u64));
    g.bench_function("1000 traces x 12001, 1 thread", |b| {
        b.iter(|| one_thread(|| set.compute_batch(&recs[..1000], 1).unwrap()))
    });
    g.finish();
}

fn catalogue_group(group: &str) -> Vec<&'static str> {
    Catalogue::standard()
        .entries()
        .iter()
        .filter(|e| e.group == group)
        .map(|e| e.name)
        .collect()
}

fn time_set(set: &FeatureSet, recs: &[Recording]) -> f64 {
    let start = Instant::now();
    let m = one_thread(|| set.compute_batch(recs, 1).unwrap());
    std::hint::black_box(m);
    start.elapsed().as_secs_f64() / recs.len() as f64
}

fn report(name: &str, ours: f64, peer: Option<f64>, peer_name: &str) {
    match peer {
        Some(p) => println!(
            "{name}: {:.3} ms per trace; {peer_name} {:.3} ms per trace; speed-up {:.1}x (target 5x)",
            ours * 1e3,
            p * 1e3,
            p / ours
        ),
        None => println!(
            "{name}: {:.3} ms per trace; {peer_name} not importable, not measured",
            ours * 1e3
        ),
    }
}

fn bench_efel(c: &mut Criterion) {
    let data = traces(1000, N);
    let recs: Vec<Recording> = data
        .iter()
        .map(|v| {
            Recording::new(v, DT)
                .with_stimulus(T_ON, T_OFF)
                .with_stimulus_current(0.5)
        })
        .collect();
    let names = catalogue_group("efel");
    let set = FeatureSet::from_names(&names).unwrap();
    let ours = time_set(&set, &recs);
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let peer = python_time_per_trace(
        "efel",
        &data[..100],
        &format!(
            "import efel\nnames = [{list}]\ntraces = [{{'T': t, 'V': x, 'stim_start': [{T_ON}], 'stim_end': [{T_OFF}], 'stimulus_current': [0.5]}} for x in X]\nt0 = time.perf_counter()\nfor tr in traces:\n    efel.get_feature_values([tr], names, raise_warnings=False)\nelapsed = time.perf_counter() - t0"
        ),
    );
    report(
        &format!(
            "eFEL set ({} features), 1000 traces x {N}, one thread",
            names.len()
        ),
        ours,
        peer,
        "eFEL (100 traces)",
    );
    let mut g = c.benchmark_group("efel_set");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 traces, 1 thread", |b| {
        b.iter(|| one_thread(|| set.compute_batch(&recs[..100], 1).unwrap()))
    });
    g.finish();
}

fn bench_antropy(c: &mut Criterion) {
    // 4 000 samples (40 ms): app/sample entropy are quadratic in the length, and below
    // 5 000 samples antropy's sample_entropy takes its fast numba path.
    const M: usize = 4_000;
    let data: Vec<Vec<f64>> = traces(1000, N)
        .into_iter()
        .map(|v| v[1000..1000 + M].to_vec())
        .collect();
    let recs: Vec<Recording> = data.iter().map(|v| Recording::new(v, DT)).collect();
    let specs = [
        "perm_entropy",
        "spectral_entropy(method=fft)",
        "spectral_entropy(method=welch)",
        "svd_entropy",
        "app_entropy",
        "sample_entropy",
        "lziv_complexity",
        "num_zerocross",
        "hjorth_mobility",
        "hjorth_complexity",
        "petrosian_fd",
        "katz_fd",
        "higuchi_fd",
        "detrended_fluctuation",
    ];
    let set = FeatureSet::from_names(&specs).unwrap();
    let ours = time_set(&set, &recs);
    let peer = python_time_per_trace(
        "antropy",
        &data[..50],
        "import antropy as ant\nfor x in X[:2]:\n    ant.sample_entropy(x); ant.higuchi_fd(x); ant.detrended_fluctuation(x); ant.lziv_complexity((x >= np.median(x)).astype(int))\nt0 = time.perf_counter()\nfor x in X:\n    ant.perm_entropy(x); ant.spectral_entropy(x, 1e5, method='fft'); ant.spectral_entropy(x, 1e5, method='welch')\n    ant.svd_entropy(x); ant.app_entropy(x); ant.sample_entropy(x); ant.lziv_complexity((x >= np.median(x)).astype(int))\n    ant.num_zerocross(x); ant.hjorth_params(x); ant.petrosian_fd(x); ant.katz_fd(x); ant.higuchi_fd(x); ant.detrended_fluctuation(x)\nelapsed = time.perf_counter() - t0",
    );
    report(
        &format!(
            "antropy set ({} measures), 1000 traces x {M}, one thread",
            specs.len()
        ),
        ours,
        peer,
        "antropy (50 traces, numba warmed up)",
    );
    let mut g = c.benchmark_group("antropy_set");
    g.throughput(Throughput::Elements(20));
    g.bench_function("20 traces x 4000, 1 thread", |b| {
        b.iter(|| one_thread(|| set.compute_batch(&recs[..20], 1).unwrap()))
    });
    g.finish();
}

/// The pyloric fixture's full-resolution traces of one simulation (quantised to 0.01 mV,
/// as the package saw them).
fn pyloric_traces(file: &str) -> [Vec<f64>; 3] {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pyloric/");
    let bytes = std::fs::read(format!("{path}{file}")).expect("the pyloric fixtures");
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let n = npy.shape()[1] as usize;
    let q: Vec<i16> = npy.into_vec().unwrap();
    [0, 1, 2].map(|i| {
        q[i * n..(i + 1) * n]
            .iter()
            .map(|&x| f64::from(x) / 100.0)
            .collect()
    })
}

fn bench_pyloric(c: &mut Criterion) {
    use neurosbi_features::pyloric::{PyloricSettings, pyloric_stats};
    let settings = PyloricSettings {
        dt: 0.025,
        burn_in: 1000.0,
    };
    let mut g = c.benchmark_group("pyloric_stats");
    g.throughput(Throughput::Elements(1));
    // A pyloric rhythm and a non-pyloric one (prior draws 13 and 20 of the fixtures).
    for file in ["full_prior-13.npy", "full_prior-20.npy"] {
        let v = pyloric_traces(file);
        g.bench_function(format!("one 11-s simulation ({file})"), |b| {
            b.iter(|| pyloric_stats([&v[0], &v[1], &v[2]], &settings).unwrap())
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    bench_sbi(&mut c);
    bench_efel(&mut c);
    bench_antropy(&mut c);
    bench_pyloric(&mut c);
    c.final_summary();
}
