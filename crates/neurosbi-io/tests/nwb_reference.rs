//! NWB 2.x files written by pynwb from the sample ABF files (scripts/io_fixtures/generate_nwb.py)
//! against the values pynwb reads back. Without the `nwb` feature, the files must be refused
//! with an error that says how to enable NWB support.

use std::path::{Path, PathBuf};

#[cfg(not(feature = "nwb"))]
use neurosbi_io::Error;
use neurosbi_io::open;

fn nwb(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nwb")
        .join(name)
}

const FILES: [&str; 3] = ["ic_steps", "ic_ramp", "axon5"];

#[cfg(not(feature = "nwb"))]
#[test]
fn nwb_tests_skipped_built_without_the_nwb_feature_and_nwb_files_say_so() {
    // Says, in every plain `cargo test`, that the NWB reference tests did not run and why.
    eprintln!(
        "NWB reference tests skipped: neurosbi-io built without the `nwb` feature \
         (run `cargo test -p neurosbi-io --features nwb` with libhdf5-dev and pkg-config \
         installed, `--features nwb-static` with cmake >= 3.26, or `cargo xtask test`)"
    );
    for name in FILES {
        let err = open(nwb(&format!("{name}.nwb"))).unwrap_err();
        assert!(matches!(err, Error::NoNwbSupport { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{name}.nwb")), "{msg}");
        // Both ways to get NWB support: the system library or HDF5 compiled from source.
        assert!(msg.contains("--features nwb`"), "{msg}");
        assert!(msg.contains("--features nwb-static"), "{msg}");
    }
    let bytes = std::fs::read(nwb("ic_ramp.nwb")).unwrap();
    let err = neurosbi_io::parse("cell.nwb", &bytes).unwrap_err();
    assert!(matches!(err, Error::NoNwbSupport { .. }), "{err}");
}

#[cfg(feature = "nwb")]
mod with_nwb {
    use super::*;
    use serde_json::Value;

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }

    fn reference(name: &str) -> Value {
        let text = std::fs::read_to_string(nwb(&format!("reference/{name}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_file_matches_pynwb() {
        for name in FILES {
            let r = reference(name);
            let rec = open(nwb(&format!("{name}.nwb"))).unwrap_or_else(|e| panic!("{e}"));
            assert!(rec.format.starts_with("NWB 2."), "{}", rec.format);
            let rate = r["sample_rate_hz"].as_f64().unwrap();
            assert!(
                close(rec.sample_rate_hz, rate),
                "{name}: rate {}",
                rec.sample_rate_hz
            );
            let units: Vec<&str> = rec.channels.iter().map(|c| c.units.as_str()).collect();
            let want: Vec<&str> = r["channel_units"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap())
                .collect();
            assert_eq!(units, want, "{name}: units");
            let names: Vec<&str> = rec.channels.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                ["Vm", "stimulus"][..want.len()],
                "{name}: channel names"
            );
            let count = r["sweep_count"].as_u64().unwrap() as usize;
            assert_eq!(rec.sweep_count(), count, "{name}: sweeps");
            for (s, row) in r["sweeps"].as_array().unwrap().iter().enumerate() {
                for (c, want) in row.as_array().unwrap().iter().enumerate() {
                    let got = rec.sweep(c, s).unwrap();
                    let at = format!("{name} sweep {s} channel {c} ({})", want["series"]);
                    assert_eq!(
                        got.len() as u64,
                        want["len"].as_u64().unwrap(),
                        "{at}: length"
                    );
                    let sum: f64 = got.iter().sum();
                    let want_sum = want["sum"].as_f64().unwrap();
                    // A sum of values of both signs cancels; compare it on the scale of its terms.
                    let scale = got
                        .iter()
                        .map(|v| v.abs())
                        .sum::<f64>()
                        .max(f64::MIN_POSITIVE);
                    assert!(
                        (sum - want_sum).abs() <= 1e-9 * scale,
                        "{at}: sum {sum} vs {want_sum}"
                    );
                    let stride = want["stride"].as_u64().unwrap() as usize;
                    let values = want["values"].as_array().unwrap();
                    assert_eq!(values.len(), got.len().div_ceil(stride), "{at}");
                    for (k, v) in values.iter().enumerate() {
                        let (g, w) = (got[k * stride], v.as_f64().unwrap());
                        assert!(close(g, w), "{at}: sample {} is {g}, pynwb {w}", k * stride);
                    }
                }
            }
        }
    }

    #[test]
    fn conversion_and_offset_are_applied() {
        // ic_steps stores int16 ADC codes; the offset (about -70 mV) is part of every value.
        let r = reference("ic_steps");
        let first = &r["sweeps"][0][0];
        assert!(first["offset"].as_f64().unwrap() < -0.06);
        assert!(first["conversion"].as_f64().unwrap() < 1e-4);
        let rec = open(nwb("ic_steps.nwb")).unwrap();
        let v = rec.sweep(0, 0).unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((-0.09..-0.05).contains(&mean), "resting potential {mean} V");
        // The file keeps the ABF's even sweeps; its step (samples 2937..12937) is -50 pA in
        // ABF sweep 0 and 10 pA more per ABF sweep, so 20 pA more per sweep here.
        for s in 0..rec.sweep_count() {
            let i = rec.sweep(1, s).unwrap()[5000];
            let want = (-50.0 + 20.0 * s as f64) * 1e-12;
            assert!(
                (i - want).abs() < 1e-17,
                "sweep {s}: {i} A, expected {want} A"
            );
        }
    }

    #[test]
    fn nwb_without_current_clamp_data_is_refused() {
        let err = open(nwb("no_current_clamp.nwb")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no_current_clamp.nwb"), "{msg}");
        assert!(msg.contains("no current-clamp data"), "{msg}");
        assert!(msg.contains("VoltageClampSeries"), "{msg}");
    }

    #[test]
    fn truncated_and_foreign_files_give_errors_not_panics() {
        let dir = std::env::temp_dir().join(format!("neurosbi-io-nwb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let full = std::fs::read(nwb("ic_ramp.nwb")).unwrap();
        for keep in [8, 100, 2048, full.len() / 2, full.len() - 1000] {
            let path = dir.join(format!("cut{keep}.nwb"));
            std::fs::write(&path, &full[..keep]).unwrap();
            let err = open(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("cut{keep}.nwb")), "{msg}");
        }
        // HDF5 magic followed by garbage.
        let path = dir.join("garbage.nwb");
        let mut junk = b"\x89HDF\r\n\x1a\n".to_vec();
        junk.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
        std::fs::write(&path, &junk).unwrap();
        let msg = open(&path).unwrap_err().to_string();
        assert!(msg.contains("garbage.nwb") && msg.contains("HDF5"), "{msg}");
        // An ABF file renamed .nwb is still read as ABF (the reader goes by content).
        let abf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/abf/17o05027_ic_ramp.abf");
        let path = dir.join("renamed.nwb");
        std::fs::copy(abf, &path).unwrap();
        assert!(open(&path).unwrap().format.starts_with("ABF"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
