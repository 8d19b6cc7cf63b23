//! The pyloric statistics against the `pyloric` package (mackelab/pyloric) on its own
//! noise-free simulations, written by `scripts/pyloric/generate.py` into
//! `tests/fixtures/pyloric/` (see `meta.json` for the package commit and settings).
//!
//! - From the package's spike times: bursts equal the package's, every statistic equals
//!   the package's to 1e-6 (relative), NaN exactly where the package has NaN, and the
//!   triphasic / pyloric-like classification agrees.
//! - From full-resolution voltage traces (the same quantised values the package saw):
//!   spike times equal the package's, and the statistics as above.
//! - Invariants on synthetic triphasic rhythms: shifting all times changes nothing,
//!   doubling them doubles the durations and leaves phases and duty cycles.

use neurosbi_features::pyloric::{
    Bursts, OBSERVATION_845_082_0044, PyloricSettings, STAT_NAMES, pyloric_stats, stats_from_spikes,
};
use proptest::prelude::*;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pyloric");

fn meta() -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/meta.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The package's statistics, NaN for null.
fn package_stats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// Spike times of AB/PD, LP, PY as the package detected them.
fn package_spikes(neurons: &Value) -> [Vec<f64>; 3] {
    ["AB/PD", "LP", "PY"].map(|n| floats(&neurons[n]["spike_times"]))
}

fn assert_stats(ours: &[f64], theirs: &[f64], what: &str) {
    assert_eq!(ours.len(), 15);
    for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let name = STAT_NAMES[k];
        assert_eq!(
            a.is_nan(),
            b.is_nan(),
            "{what}: {name}: ours {a}, package {b}"
        );
        if !b.is_nan() {
            let tol = 1e-6 * b.abs().max(1e-9);
            assert!(
                (a - b).abs() <= tol,
                "{what}: {name}: ours {a}, package {b}"
            );
        }
    }
}

#[test]
fn observation_constant_is_the_published_one() {
    let text = std::fs::read_to_string(format!("{DIR}/prior_observation.json")).unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    let obs = &root["observation_845_082_0044"];
    let names: Vec<&str> = obs["package_order_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(names, STAT_NAMES);
    assert_stats(
        &OBSERVATION_845_082_0044,
        &floats(&obs["package_order"]),
        "observation",
    );
    // Consistency of the published values: phase = delay / period, duty = burst / period.
    let o = OBSERVATION_845_082_0044;
    assert!((o[7] - o[9] / o[0]).abs() < 1e-9 && (o[4] - o[1] / o[0]).abs() < 1e-9);
}

#[test]
fn fixtures_hold_pyloric_and_non_pyloric_cases() {
    let meta = meta();
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let all_defined = |c: &&Value| package_stats(&c["stats"]).iter().all(|x| !x.is_nan());
    let n_defined = cases.iter().filter(all_defined).count();
    assert!(
        n_defined >= 5 && cases.len() - n_defined >= 5,
        "{n_defined} pyloric"
    );
}

#[test]
fn statistics_from_the_package_spike_times_match_the_package() {
    for case in meta()["cases"].as_array().unwrap() {
        let what = case["draw"].as_str().unwrap();
        let spikes = package_spikes(&case["neurons"]);
        let s = stats_from_spikes([&spikes[0], &spikes[1], &spikes[2]]);
        assert_stats(&s.values, &package_stats(&case["stats"]), what);
        assert_eq!(s.triphasic, case["triphasic"].as_bool().unwrap(), "{what}");
        assert_eq!(
            s.pyloric_like,
            case["pyloric_like"].as_bool().unwrap(),
            "{what}"
        );
        for (n, name) in ["AB/PD", "LP", "PY"].iter().enumerate() {
            let b = Bursts::from_spikes(&spikes[n]);
            assert_eq!(
                b.starts,
                floats(&case["neurons"][name]["burst_starts"]),
                "{what} {name}"
            );
            assert_eq!(
                b.ends,
                floats(&case["neurons"][name]["burst_ends"]),
                "{what} {name}"
            );
        }
    }
}

/// A full-resolution run: `int16` (3, n) in units of 0.01 mV.
fn full_traces(file: &str) -> [Vec<f64>; 3] {
    let bytes = std::fs::read(format!("{DIR}/{file}")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    assert_eq!(shape[0], 3);
    assert_eq!(npy.order(), npyz::Order::C);
    let q: Vec<i16> = npy.into_vec().unwrap();
    let n = shape[1] as usize;
    // The generator gave the package exactly `q as f64 / 100.0` (numpy does the same
    // IEEE division), so both sides see identical samples.
    [0, 1, 2].map(|i| {
        q[i * n..(i + 1) * n]
            .iter()
            .map(|&x| f64::from(x) / 100.0)
            .collect()
    })
}

#[test]
fn statistics_from_full_traces_match_the_package_end_to_end() {
    let meta = meta();
    let settings = PyloricSettings {
        dt: meta["settings"]["dt_ms"].as_f64().unwrap(),
        burn_in: meta["settings"]["burn_in_ms"].as_f64().unwrap(),
    };
    let mut checked = 0;
    for case in meta["cases"].as_array().unwrap() {
        let Some(full) = case.get("full") else {
            continue;
        };
        let what = format!("{} (full)", case["draw"].as_str().unwrap());
        let v = full_traces(full["file"].as_str().unwrap());
        let expected = package_spikes(&full["neurons"]);
        let skip = (settings.burn_in / settings.dt) as usize;
        for n in 0..3 {
            let ours = neurosbi_features::pyloric::detect_spikes(&v[n][skip..], settings.dt);
            // Same samples, same indices: the times differ only by serde_json's float
            // parsing (not correctly rounded without `float_roundtrip`), below 1e-9 ms.
            let same = ours.len() == expected[n].len()
                && ours
                    .iter()
                    .zip(&expected[n])
                    .all(|(a, b)| (a - b).abs() < 1e-9);
            assert!(
                same,
                "{what}: spikes of neuron {n}: {ours:?} vs {:?}",
                expected[n]
            );
        }
        let s = pyloric_stats([&v[0], &v[1], &v[2]], &settings).unwrap();
        assert_stats(&s.values, &package_stats(&full["stats"]), &what);
        assert_eq!(s.triphasic, full["triphasic"].as_bool().unwrap(), "{what}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} full-resolution cases");
}

/// Spike times of a synthetic triphasic rhythm on a 0.25 ms grid (so sums are exact):
/// `cycles` periods of `period` ms; neuron n starts at `phase[n] * period` into each
/// period and fires every `isi` ms for `duty[n] * period` ms.
fn rhythm(period: f64, phase: [f64; 3], duty: [f64; 3], isi: f64, cycles: usize) -> [Vec<f64>; 3] {
    let grid = |t: f64| (t * 4.0).round() / 4.0;
    [0, 1, 2].map(|n| {
        let mut out = Vec::new();
        for c in 0..cycles {
            let start = grid(c as f64 * period + phase[n] * period);
            let spikes = (duty[n] * period / isi) as usize + 1;
            out.extend((0..spikes).map(|k| start + k as f64 * isi));
        }
        out
    })
}

fn rhythm_strategy() -> impl Strategy<Value = [Vec<f64>; 3]> {
    period_and_rhythm().prop_map(|(_, s)| s)
}

fn period_and_rhythm() -> impl Strategy<Value = (f64, [Vec<f64>; 3])> {
    (
        (2000u32..8000).prop_map(|q| f64::from(q) / 4.0),
        (0.2f64..0.45, 0.55f64..0.8),
        (0.15f64..0.3, 0.15f64..0.3, 0.15f64..0.3),
        (8u32..80).prop_map(|q| f64::from(q) / 4.0),
    )
        .prop_map(|(period, (lp, py), (d0, d1, d2), isi)| {
            (period, rhythm(period, [0.0, lp, py], [d0, d1, d2], isi, 8))
        })
}

fn stats_of(s: &[Vec<f64>; 3]) -> [f64; 15] {
    stats_from_spikes([&s[0], &s[1], &s[2]]).values
}

proptest! {
    #[test]
    fn synthetic_rhythms_are_triphasic_with_their_period((period, s) in period_and_rhythm()) {
        let r = stats_from_spikes([&s[0], &s[1], &s[2]]);
        prop_assert!(r.triphasic && r.all_defined());
        // AB/PD starts exactly every `period` ms (on the grid), eight bursts.
        prop_assert_eq!(Bursts::from_spikes(&s[0]).starts.len(), 8);
        prop_assert_eq!(r.values[0], period);
        // Burst duration of AB/PD: its spikes span duty * period to within one ISI.
        let ab_duration = s[0].iter().take_while(|&&t| t < period / 2.0).last().unwrap() - s[0][0];
        prop_assert_eq!(r.values[1], ab_duration);
        // Phase = delay / period, phase gap = gap / period.
        prop_assert!((r.values[7] - r.values[9] / r.values[0]).abs() < 1e-12);
        prop_assert!((r.values[13] - r.values[11] / r.values[0]).abs() < 1e-12);
    }

    #[test]
    fn shifting_all_times_changes_nothing(s in rhythm_strategy(), shift in 0u32..40_000) {
        let shift = f64::from(shift) / 4.0;
        let moved = s.clone().map(|v| v.into_iter().map(|t| t + shift).collect::<Vec<_>>());
        prop_assert_eq!(stats_of(&s), stats_of(&moved));
    }

    #[test]
    fn doubling_all_times_doubles_durations_and_keeps_phases(s in rhythm_strategy()) {
        // Intra-burst intervals stay under 150 ms and bursts over 40 ms, so the bursts
        // are the same; powers of two keep the arithmetic exact.
        let slow = s.clone().map(|v| v.into_iter().map(|t| 2.0 * t).collect::<Vec<_>>());
        let (a, b) = (stats_of(&s), stats_of(&slow));
        for k in [0, 1, 2, 3, 9, 10, 11, 12] {
            prop_assert_eq!(2.0 * a[k], b[k], "{}", STAT_NAMES[k]);
        }
        for k in [4, 5, 6, 7, 8, 13, 14] {
            prop_assert_eq!(a[k], b[k], "{}", STAT_NAMES[k]);
        }
    }
}
