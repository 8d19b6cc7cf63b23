//! The catalogue as users see it: documented, named, extensible, and spike-train features
//! through the public API.

use neurosbi_features::{
    Catalogue, CatalogueEntry, Feature, FeatureError, FeatureSet, Input, Outcome, Params,
    Recording, Undefined,
};

#[test]
fn every_catalogued_feature_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/features.md"
    ))
    .unwrap();
    for e in Catalogue::standard().entries() {
        assert!(
            doc.contains(&format!("`{}`", e.name)),
            "docs/features.md lacks `{}`",
            e.name
        );
    }
}

#[test]
fn names_round_trip_through_the_parser() {
    let cat = Catalogue::standard();
    for spec in [
        "mean(window=stim)",
        "percentile(q=90, start=5, stop=50)",
        "perm_entropy(order=4, delay=2, normalize=true)",
        "AP_amplitude(reducer=first)",
        "spike_count(threshold=-30)",
        "train_fano(bin=20, window=stim)",
    ] {
        let f = cat.build(spec).unwrap();
        let again = cat.build(&f.name()).unwrap();
        assert_eq!(f.name(), again.name(), "{spec}");
    }
}

/// A user feature: the fraction of samples above a level.
struct FractionAbove(f64);

impl Feature for FractionAbove {
    fn name(&self) -> String {
        format!("fraction_above(level={})", self.0)
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let v = input.recording().values;
        out[0] = Ok(v.iter().filter(|&&x| x > self.0).count() as f64 / v.len() as f64);
    }
}

#[test]
fn users_extend_the_catalogue() {
    let mut cat = Catalogue::standard();
    cat.register(CatalogueEntry {
        name: "fraction_above",
        group: "user",
        unit: "1",
        summary: "fraction of samples above a level",
        params: "level=0",
        build: |p: &mut Params| Ok(Box::new(FractionAbove(p.f64("level", 0.0)?))),
    });
    let set = FeatureSet::from_names_in(&cat, &["fraction_above(level=1.5)", "max"]).unwrap();
    let v = [1.0, 2.0, 3.0, 0.0];
    assert_eq!(
        set.compute(&Recording::new(&v, 1.0)).unwrap(),
        vec![Ok(0.5), Ok(3.0)]
    );
    let err = FeatureSet::from_names_in(&cat, &["fraction_above(levl=1)"]).unwrap_err();
    assert!(
        matches!(err, FeatureError::UnknownParameter { ref close_matches, .. } if close_matches[0] == "level")
    );
    // A pushed feature needs no catalogue entry.
    let mut set = FeatureSet::new();
    set.push(Box::new(FractionAbove(2.5)));
    assert_eq!(
        set.compute(&Recording::new(&v, 1.0)).unwrap(),
        vec![Ok(0.25)]
    );
}

#[test]
fn spike_train_features_use_recorded_or_detected_spikes() {
    // Square pulses every 20 ms crossing -20 mV between samples.
    let dt = 0.1;
    let v: Vec<f64> = (0..2000)
        .map(|i| {
            if i % 200 >= 100 && i % 200 < 110 {
                0.0
            } else {
                -70.0
            }
        })
        .collect();
    let set = FeatureSet::from_names(&[
        "train_count",
        "train_rate",
        "train_isi_mean",
        "train_latency",
        "train_isi_cv",
        "gamma_factor(delta=2)",
    ])
    .unwrap();
    let reference: Vec<f64> = (0..10).map(|k| 9.95 + 20.0 * k as f64).collect();
    let rec = Recording::new(&v, dt)
        .with_stimulus(5.0, 150.0)
        .with_reference_spikes(&reference);
    let x = set.compute(&rec).unwrap();
    assert_eq!(x[0], Ok(10.0));
    assert!((x[1].unwrap() - 10.0 * 1000.0 / 199.9).abs() < 1e-9);
    assert!((x[2].unwrap() - 20.0).abs() < 1e-9);
    // The crossing between samples 99 (-70) and 100 (0) is interpolated at 9.9 + 5/7 * 0.1.
    assert!((x[3].unwrap() - (9.9 + 50.0 / 70.0 * 0.1 - 5.0)).abs() < 1e-9);
    assert!(x[4].unwrap().abs() < 1e-9);
    assert!((x[5].unwrap() - 1.0).abs() < 1e-9);
    // Recorded spikes take precedence over detection.
    let spikes = [50.0, 60.0];
    let x = set.compute(&rec.with_spikes(&spikes)).unwrap();
    assert_eq!(x[0], Ok(2.0));
    assert_eq!(
        x[4],
        Err(Undefined("fewer than three spikes (two intervals)"))
    );
    // No reference train: the coincidence factor is undefined, with the reason.
    let x = set.compute(&Recording::new(&v, dt)).unwrap();
    assert_eq!(x[5], Err(Undefined("no reference spike train")));
}

#[test]
fn efel_features_are_undefined_without_spikes_and_count_zero() {
    let v = vec![-65.0; 3000];
    let set = FeatureSet::from_names(&[
        "spike_count",
        "ISI_CV",
        "AP_amplitude",
        "voltage_base",
        "burst_number",
    ])
    .unwrap();
    let x = set
        .compute(&Recording::new(&v, 0.05).with_stimulus(20.0, 120.0))
        .unwrap();
    assert_eq!(x[0], Ok(0.0));
    assert!(x[1].is_err() && x[2].is_err());
    assert!((x[3].unwrap() + 65.0).abs() < 1e-12);
    assert_eq!(x[4], Ok(0.0));
}
