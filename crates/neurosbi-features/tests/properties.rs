//! Property tests: invariances of the statistics, no panic on arbitrary input, and batch
//! results independent of the thread count.

use neurosbi_features::{Catalogue, FeatureSet, Outcome, Recording, RecordingError};
use proptest::prelude::*;

fn all_features() -> FeatureSet {
    let cat = Catalogue::standard();
    let names: Vec<&str> = cat.entries().iter().map(|e| e.name).collect();
    FeatureSet::from_names_in(&cat, &names).unwrap()
}

fn spiky_trace(n: usize, seed: u64) -> Vec<f64> {
    // Deterministic pseudo-random walk with occasional spike-like excursions.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = -65.0;
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            v += u - 0.02 * (v + 65.0);
            if i % 97 < 3 {
                v + 90.0 * (1.0 - (i % 97) as f64 / 3.0)
            } else {
                v
            }
        })
        .collect()
}

fn same(a: &Outcome, b: &Outcome, rel: f64) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => (x - y).abs() <= rel * x.abs().max(y.abs()) + 1e-12,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_on_arbitrary_finite_input(
        v in prop::collection::vec(prop_oneof![-1e6f64..1e6, -1e300f64..1e300, -1e-300f64..1e-300], 0..400),
        dt in 0.005f64..1.0,
        on in -50.0f64..200.0,
        len in 0.0f64..200.0,
    ) {
        let set = all_features();
        let rec = Recording::new(&v, dt).with_stimulus(on, on + len).with_reference_spikes(&[5.0, 20.0]);
        match set.compute(&rec) {
            Ok(out) => {
                prop_assert_eq!(out.len(), set.n_outputs());
                for (name, o) in set.output_names().iter().zip(out) {
                    if let Ok(x) = o { prop_assert!(!x.is_nan(), "{} gave NaN instead of Undefined", name); }
                }
            }
            Err(e) => prop_assert!(v.is_empty() && e == RecordingError::Empty),
        }
    }

    #[test]
    fn non_finite_input_is_a_recording_error(
        mut v in prop::collection::vec(-100.0f64..100.0, 1..200),
        at in 0usize..200,
        bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
    ) {
        let i = at % v.len();
        v[i] = bad;
        let set = all_features();
        let err = set.compute(&Recording::new(&v, 0.1)).unwrap_err();
        let ok = matches!(err, RecordingError::NonFinite { index, .. } if index == i);
        prop_assert!(ok, "{:?}", err);
    }

    #[test]
    fn mean_shifts_with_an_offset_and_spread_does_not(
        v in prop::collection::vec(-100.0f64..100.0, 2..300),
        c in -1000.0f64..1000.0,
    ) {
        let set = FeatureSet::from_names(&["mean", "std", "var", "min", "max", "percentile(q=30)", "skew"]).unwrap();
        let w: Vec<f64> = v.iter().map(|x| x + c).collect();
        let a = set.compute(&Recording::new(&v, 0.1)).unwrap();
        let b = set.compute(&Recording::new(&w, 0.1)).unwrap();
        for k in [0usize, 3, 4, 5] {
            prop_assert!((b[k].unwrap() - a[k].unwrap() - c).abs() < 1e-9 * (1.0 + c.abs() + a[k].unwrap().abs()));
        }
        let scale = 1.0 + c.abs() + a[0].unwrap().abs();
        prop_assert!((b[1].unwrap() - a[1].unwrap()).abs() < 1e-9 * scale);
        prop_assert!((b[2].unwrap() - a[2].unwrap()).abs() < 1e-7 * scale * scale);
    }

    #[test]
    fn entropies_are_invariant_to_scaling(seed in 0u64..1000, k in -3i32..4, offset in -50.0f64..50.0) {
        // Powers of two scale exactly, so tolerance comparisons (<= r) cannot flip.
        let v = spiky_trace(600, seed);
        let s = 2f64.powi(k);
        let w: Vec<f64> = v.iter().map(|x| x * s).collect();
        let specs = [
            "perm_entropy", "perm_entropy(order=5, delay=2)", "spectral_entropy(method=fft)",
            "spectral_entropy(method=welch)", "svd_entropy", "app_entropy", "sample_entropy",
            "lziv_complexity", "hjorth_mobility", "hjorth_complexity", "katz_fd", "petrosian_fd",
            "higuchi_fd", "detrended_fluctuation",
        ];
        let set = FeatureSet::from_names(&specs).unwrap();
        let a = set.compute(&Recording::new(&v, 0.1)).unwrap();
        let b = set.compute(&Recording::new(&w, 0.1)).unwrap();
        for (i, spec) in specs.iter().enumerate() {
            prop_assert!(same(&a[i], &b[i], 1e-9), "{}: {:?} vs {:?}", spec, a[i], b[i]);
        }
        // Ordinal measures also ignore an offset.
        let u: Vec<f64> = v.iter().map(|x| x + offset).collect();
        let c = set.compute(&Recording::new(&u, 0.1)).unwrap();
        prop_assert!(same(&a[0], &c[0], 0.0));
        prop_assert!(same(&a[7], &c[7], 0.0));
    }
}

#[test]
fn batch_is_independent_of_thread_count() {
    let traces: Vec<Vec<f64>> = (0..24).map(|s| spiky_trace(2000, s)).collect();
    let recs: Vec<Recording> = traces
        .iter()
        .map(|v| Recording::new(v, 0.05).with_stimulus(10.0, 80.0))
        .collect();
    let set = all_features();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| set.compute_batch(&recs, 2).unwrap())
    };
    let (a, b) = (run(1), run(2));
    let (va, vb) = (a.values(), b.values());
    assert_eq!(va.len(), 12 * 2 * set.n_outputs());
    assert!(va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()));
    // The synthetic traces spike every 97 samples: the eFEL count sees them.
    let col = set
        .output_names()
        .iter()
        .position(|n| n == "spike_count")
        .unwrap();
    assert!(a.get(0, col).unwrap() >= 10.0);
}
