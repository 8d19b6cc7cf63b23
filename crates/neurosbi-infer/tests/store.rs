use neurosbi_infer::store::StopAfterChunks;
use neurosbi_infer::{
    Fingerprint, FromPrior, IndependentPrior, InferError, Progress, Quiet, RunConfig,
    STORE_FORMAT_VERSION, SimRng, SimulationError, Simulator, Store, simulate,
};
use rand::RngExt;
use std::ops::ControlFlow;

/// x = (theta_0 + noise, theta_1 * noise); fails (NaN) when theta_0 > 0.9 and errors for the
/// whole batch when any theta_1 < -0.95, to exercise both failure paths.
struct Toy;

impl Simulator for Toy {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        3
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        if theta.chunks(2).any(|t| t[1] < -0.95) {
            return Err(SimulationError("theta_1 below -0.95".into()));
        }
        for (i, rng) in rngs.iter_mut().enumerate() {
            let (a, b) = (theta[2 * i], theta[2 * i + 1]);
            let e: f64 = rng.random();
            x[3 * i] = if a > 0.9 { f64::NAN } else { a + e };
            x[3 * i + 1] = b * rng.random::<f64>();
            x[3 * i + 2] = e;
        }
        Ok(())
    }
}

fn prior() -> IndependentPrior {
    IndependentPrior::uniform(&[-1.0, -1.0], &[1.0, 1.0]).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-infer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn results_are_bit_identical_for_any_threads_batch_and_chunk_size() {
    let p = prior();
    let run = |threads: usize, batch: usize, chunk: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let cfg = RunConfig {
            seed: 11,
            batch_size: batch,
            chunk_size: chunk,
            ..Default::default()
        };
        pool.install(|| simulate(&Toy, &FromPrior(&p), 1000, &cfg, &mut Quiet).unwrap())
    };
    let a = run(1, 1000, 1000);
    for (t, b, c) in [(2, 7, 130), (3, 1, 1000), (2, 64, 64)] {
        let o = run(t, b, c);
        assert_eq!(a.theta, o.theta);
        assert_eq!(a.x, o.x);
        assert_eq!(a.n_invalid, o.n_invalid);
    }
    // Invalid rows are counted and excluded, both NaN rows and rows of failed batches.
    assert!(a.n_invalid > 0 && a.n_invalid < 200, "{}", a.n_invalid);
    assert_eq!(a.len() as u64 + a.n_invalid, 1000);
    assert!(a.x.iter().all(|v| v.is_finite()));
    assert!(a.theta.chunks(2).all(|t| t[0] <= 0.9 && t[1] >= -0.95));
    assert_eq!(a.first_error.as_deref(), Some("theta_1 below -0.95"));
}

#[test]
fn invalid_count_matches_the_failure_rule() {
    let p = prior();
    let cfg = RunConfig {
        seed: 5,
        batch_size: 50,
        chunk_size: 300,
        ..Default::default()
    };
    let s = simulate(&Toy, &FromPrior(&p), 2000, &cfg, &mut Quiet).unwrap();
    // Recompute the parameters of every index and count the rows the rule makes invalid.
    let src = FromPrior(&p);
    let mut bad = 0;
    let mut t = [0.0; 2];
    for i in 0..2000 {
        neurosbi_infer::ThetaSource::draw(&src, 5, i, &mut t);
        if t[0] > 0.9 || t[1] < -0.95 {
            bad += 1;
        }
    }
    assert_eq!(s.n_invalid, bad);
}

#[test]
fn bad_input_gives_typed_errors() {
    struct Wrong;
    impl Simulator for Wrong {
        fn dim_theta(&self) -> usize {
            3
        }
        fn dim_x(&self) -> usize {
            1
        }
        fn simulate(
            &self,
            _: &[f64],
            _: &mut [SimRng],
            x: &mut [f64],
        ) -> Result<(), SimulationError> {
            x.fill(f64::NAN);
            Ok(())
        }
    }
    let p = prior();
    let e = simulate(
        &Wrong,
        &FromPrior(&p),
        10,
        &RunConfig::default(),
        &mut Quiet,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::DimMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ),
        "{e}"
    );
    let p3 = IndependentPrior::uniform_box(3, 0.0, 1.0).unwrap();
    let e = simulate(
        &Wrong,
        &FromPrior(&p3),
        10,
        &RunConfig::default(),
        &mut Quiet,
    )
    .unwrap_err();
    assert!(
        matches!(e, InferError::AllSimulationsInvalid { n: 10, .. }),
        "{e}"
    );
}

#[test]
fn observer_sees_progress_and_can_stop_the_run() {
    let p = prior();
    let mut seen = Vec::new();
    let mut obs = |pr: Progress| {
        seen.push(pr.done);
        if pr.done >= 300 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let cfg = RunConfig {
        seed: 1,
        batch_size: 10,
        chunk_size: 100,
        ..Default::default()
    };
    let s = simulate(&Toy, &FromPrior(&p), 1000, &cfg, &mut obs).unwrap();
    assert_eq!(seen, vec![100, 200, 300]);
    assert_eq!(s.n_attempted, 300);
}

#[test]
fn interrupted_then_resumed_store_equals_uninterrupted_run() {
    let p = prior();
    let (d1, d2) = (tmp("resume-a"), tmp("resume-b"));
    let full = Store::create(&d1, 2, 3, Fingerprint::new()).unwrap();
    let mut full = full;
    let r = full.add_round(1050, 42, 100, "prior").unwrap();
    let rep = full
        .run_round(r, &Toy, &FromPrior(&p), 25, &mut Quiet)
        .unwrap();
    assert!(rep.complete && rep.chunks_run == 11);

    let mut part = Store::create(&d2, 2, 3, Fingerprint::new()).unwrap();
    let r = part.add_round(1050, 42, 100, "prior").unwrap();
    let rep = part
        .run_round(
            r,
            &Toy,
            &FromPrior(&p),
            7,
            &mut StopAfterChunks { remaining: 4 },
        )
        .unwrap();
    assert_eq!((rep.chunks_run, rep.complete), (4, false));
    // A crash mid-chunk leaves at most a temporary file behind; it is ignored.
    std::fs::write(d2.join("r0000_c00000004.tmp"), b"partial").unwrap();
    drop(part);
    let reopened = Store::open(&d2).unwrap();
    assert_eq!(reopened.load().unwrap().n_attempted, 400);
    let rep = reopened
        .run_round(0, &Toy, &FromPrior(&p), 33, &mut Quiet)
        .unwrap();
    assert_eq!(
        (rep.chunks_resumed, rep.chunks_run, rep.complete),
        (4, 7, true)
    );
    let (a, b) = (full.load().unwrap(), reopened.load().unwrap());
    assert_eq!(a, b);
    // And both equal the in-memory runner with the same seed.
    let mem = simulate(
        &Toy,
        &FromPrior(&p),
        1050,
        &RunConfig {
            seed: 42,
            batch_size: 100,
            chunk_size: 1050,
            ..Default::default()
        },
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(mem.theta, a.theta);
    assert_eq!(mem.x, a.x);
    assert_eq!(mem.n_invalid, a.n_invalid);
}

#[test]
fn store_overhead_is_under_ten_bytes_per_simulation() {
    let p = prior();
    let d = tmp("overhead");
    let mut s = Store::create(&d, 2, 3, Fingerprint::new()).unwrap();
    let r = s.add_round(5000, 3, 1000, "prior").unwrap();
    s.run_round(r, &Toy, &FromPrior(&p), 100, &mut Quiet)
        .unwrap();
    let set = s.load().unwrap();
    let payload = (set.theta.len() + set.x.len()) * 8;
    let on_disk: u64 = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let per_sim = (on_disk as f64 - payload as f64) / 5000.0;
    assert!(per_sim < 10.0, "{per_sim} bytes of overhead per simulation");
}

#[test]
fn rounds_append_and_stores_merge() {
    let p = prior();
    let (da, db) = (tmp("merge-a"), tmp("merge-b"));
    let mut a = Store::create(&da, 2, 3, Fingerprint::new()).unwrap();
    let r0 = a.add_round(300, 1, 100, "prior").unwrap();
    a.run_round(r0, &Toy, &FromPrior(&p), 50, &mut Quiet)
        .unwrap();
    let r1 = a.add_round(200, 2, 100, "prior").unwrap();
    a.run_round(r1, &Toy, &FromPrior(&p), 50, &mut Quiet)
        .unwrap();
    assert_eq!(a.load().unwrap().n_attempted, 500);
    let mut b = Store::create(&db, 2, 3, Fingerprint::new()).unwrap();
    let r = b.add_round(150, 9, 100, "prior").unwrap();
    b.run_round(r, &Toy, &FromPrior(&p), 50, &mut Quiet)
        .unwrap();
    let before = a.load().unwrap();
    a.merge_from(&b).unwrap();
    let after = Store::open(&da).unwrap().load().unwrap();
    let bs = b.load().unwrap();
    assert_eq!(after.n_attempted, 650);
    assert_eq!(after.theta, [before.theta, bs.theta].concat());
    assert_eq!(Store::open(&da).unwrap().rounds().len(), 3);
    // Dimension mismatch on merge is a typed error naming the dimensions.
    let dc = tmp("merge-c");
    let c = Store::create(&dc, 2, 4, Fingerprint::new()).unwrap();
    let e = a.merge_from(&c).unwrap_err();
    assert!(
        matches!(&e, InferError::StoreMismatch { changes, .. } if changes[0].contains("4 features, now 2 and 3")),
        "{e}"
    );
    // So is a store of another problem, naming what changed.
    let dd = tmp("merge-d");
    let fp = |prior: &str| Fingerprint::new().with("model", "m").with("priors", prior);
    let d = Store::create(&dd, 2, 3, fp("uniform(0, 2)")).unwrap();
    let mut e_store = Store::create(tmp("merge-e"), 2, 3, fp("uniform(0, 3)")).unwrap();
    let e = e_store.merge_from(&d).unwrap_err().to_string();
    assert!(e.contains("priors changed") && e.contains("--force"), "{e}");
    // Running a simulator of other dimensions into a store is refused.
    assert!(matches!(
        c.run_round(0, &Toy, &FromPrior(&p), 1, &mut Quiet)
            .unwrap_err(),
        InferError::DimMismatch { .. }
    ));
}

#[test]
fn store_of_another_format_version_is_refused() {
    let d = tmp("version");
    let s = Store::create(&d, 2, 3, Fingerprint::new()).unwrap();
    drop(s);
    let meta = d.join("store.meta");
    let mut bytes = std::fs::read(&meta).unwrap();
    assert_eq!(bytes[0] as u32, STORE_FORMAT_VERSION);
    bytes[0] = 99;
    std::fs::write(&meta, bytes).unwrap();
    let e = Store::open(&d).unwrap_err();
    assert!(
        matches!(
            e,
            InferError::FormatVersion {
                found: 99,
                expected: STORE_FORMAT_VERSION,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("store.meta"));
}

#[test]
fn npy_export_has_a_valid_header_and_payload() {
    let p = prior();
    let d = tmp("npy");
    let mut s = Store::create(&d, 2, 3, Fingerprint::new()).unwrap();
    let r = s.add_round(100, 4, 100, "prior").unwrap();
    s.run_round(r, &Toy, &FromPrior(&p), 100, &mut Quiet)
        .unwrap();
    let (tp, xp) = (d.join("theta.npy"), d.join("x.npy"));
    s.export_npy(&tp, &xp).unwrap();
    let set = s.load().unwrap();
    let bytes = std::fs::read(&xp).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.contains(&format!("'shape': ({}, 3)", set.len())),
        "{header}"
    );
    assert!(header.ends_with('\n'));
    let vals: Vec<f64> = bytes[10 + hlen..]
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(vals, set.x);
}
