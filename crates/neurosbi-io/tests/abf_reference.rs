//! Every ABF sample file against the reference values pyabf and neo give for it
//! (written by `scripts/io_fixtures/generate_abf.py`).

use std::path::{Path, PathBuf};

use neurosbi_io::{RawSweep, Recording, open};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every (reference, recording) pair; at least 10 files.
fn cases() -> Vec<(Value, Recording)> {
    let mut refs: Vec<PathBuf> = std::fs::read_dir(data_dir().join("reference"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    refs.sort();
    assert!(refs.len() >= 10, "only {} reference files", refs.len());
    refs.iter()
        .map(|p| {
            let r: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            let file = data_dir().join("abf").join(r["file"].as_str().unwrap());
            let rec = open(&file).unwrap_or_else(|e| panic!("{e}"));
            (r, rec)
        })
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn header_facts_match_pyabf_and_neo() {
    for (r, rec) in cases() {
        let name = r["file"].as_str().unwrap();
        assert_eq!(
            rec.format,
            format!("ABF {}", r["version"].as_str().unwrap()),
            "{name}"
        );
        assert!(
            close(rec.sample_rate_hz, f(&r["sample_rate_hz"]), 1e-12),
            "{name}: rate"
        );
        assert_eq!(
            rec.sample_rate_hz as i64,
            r["pyabf_rate_hz"].as_i64().unwrap(),
            "{name}"
        );
        let names: Vec<String> = rec.channels.iter().map(|c| c.name.clone()).collect();
        let units: Vec<String> = rec.channels.iter().map(|c| c.units.clone()).collect();
        assert_eq!(names, strings(&r["channel_names"]), "{name}: channel names");
        assert_eq!(units, strings(&r["channel_units"]), "{name}: channel units");
        // pyabf lists an ABF2 file's DACs only up to its number of ADCs.
        let dac_units = strings(&r["dac_units"]);
        let dac_names = strings(&r["dac_names"]);
        for (d, u) in dac_units.iter().enumerate() {
            assert_eq!(&rec.commands[d].units, u, "{name}: DAC {d} units");
            assert_eq!(&rec.commands[d].name, &dac_names[d], "{name}: DAC {d} name");
        }
        let lengths: Vec<usize> = (0..rec.sweep_count())
            .map(|s| rec.sweep_len(s).unwrap())
            .collect();
        let want: Vec<usize> = r["sweep_lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            rec.sweep_count(),
            r["sweep_count"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(lengths, want, "{name}: sweep lengths");
    }
}

fn raw_sha256(raw: RawSweep) -> String {
    let mut h = Sha256::new();
    match raw {
        RawSweep::I16(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        RawSweep::F32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        RawSweep::F64(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Stored samples equal bit for bit and gain/offset equal to 1e-12 make every scaled sample
/// equal; the strided values and the sums check the scaled values end to end at 1e-9.
#[test]
fn every_sample_of_every_sweep_matches_neo() {
    let mut checked = 0usize;
    for (r, rec) in cases() {
        let name = r["file"].as_str().unwrap();
        for (s, per_channel) in r["sweeps"].as_array().unwrap().iter().enumerate() {
            for (c, want) in per_channel.as_array().unwrap().iter().enumerate() {
                let at = format!("{name} sweep {s} channel {c}");
                let raw = rec.raw_sweep(c, s).unwrap();
                assert_eq!(
                    raw_sha256(raw),
                    want["raw_sha256"].as_str().unwrap(),
                    "{at}"
                );
                assert!(
                    close(rec.channels[c].gain, f(&want["gain"]), 1e-12),
                    "{at}: gain"
                );
                assert!(
                    close(rec.channels[c].offset, f(&want["offset"]), 1e-12),
                    "{at}"
                );
                let values = rec.sweep(c, s).unwrap();
                let step = want["sample_step"].as_u64().unwrap() as usize;
                let strided: Vec<f64> = values.iter().step_by(step).copied().collect();
                let expected: Vec<f64> = want["sample_value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(f)
                    .collect();
                assert_eq!(strided.len(), expected.len(), "{at}");
                for (k, (a, b)) in strided.iter().zip(&expected).enumerate() {
                    assert!(close(*a, *b, 1e-9), "{at} sample {}: {a} vs {b}", k * step);
                }
                let sum: f64 = values.iter().sum();
                let scale = values.iter().map(|v| v.abs()).sum::<f64>().max(1e-300);
                assert!((sum - f(&want["sum"])).abs() <= 1e-9 * scale, "{at}: sum");
                checked += values.len();
            }
        }
    }
    assert!(checked > 1_000_000, "only {checked} samples compared");
}

#[test]
fn tags_match_pyabf() {
    let mut seen = 0;
    for (r, rec) in cases() {
        let name = r["file"].as_str().unwrap();
        let tags = r["tags"].as_array().unwrap();
        assert_eq!(rec.tags.len(), tags.len(), "{name}");
        for (t, want) in rec.tags.iter().zip(tags) {
            // pyabf rounds ABF2 tag times to 10 us.
            assert!(
                (t.time_s - f(&want["time_s"])).abs() < 1e-5,
                "{name}: {t:?} vs {want}"
            );
            assert_eq!(t.comment, want["comment"].as_str().unwrap(), "{name}");
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} tags in the sample files");
}

/// The epoch table, each sweep's epochs (start, stop, level) and sweep 0's command waveform
/// against pyabf's `EpochTable` and `sweepC`. pyabf takes ABF1's holding level from the first
/// epoch's level, not from the header's holding level, so for ABF1 the holding stretches
/// before and after the table are not compared.
#[test]
fn epochs_and_command_waveforms_match_pyabf() {
    let (mut tables, mut waveforms) = (0, 0);
    for (r, rec) in cases() {
        let name = r["file"].as_str().unwrap();
        let abf1 = r["major"].as_i64() == Some(1);
        if r["operation_mode"].as_i64() == Some(1) {
            // Event-driven: the reader gives no epoch table (pyabf draws a flat holding level).
            assert!(rec.commands.iter().all(|c| c.epochs.is_none()), "{name}");
            continue;
        }
        for want in r["epochs"].as_array().unwrap() {
            let d = want["dac"].as_u64().unwrap() as usize;
            let at = format!("{name} DAC {d}");
            let command = &rec.commands[d];
            let pyabf_has_waveform = !want["command_sweep0"].is_null();
            assert_eq!(command.epochs.is_some(), pyabf_has_waveform, "{at}");
            let Some(rows) = &command.epochs else {
                continue;
            };
            tables += 1;
            if !abf1 {
                assert!(
                    close(command.holding, f(&want["holding"]), 1e-12),
                    "{at}: holding"
                );
            }
            assert_eq!(
                command.return_to_holding,
                want["return_to_holding"].as_bool().unwrap()
            );
            let want_rows = want["rows"].as_array().unwrap();
            assert_eq!(rows.len(), want_rows.len(), "{at}: rows");
            for (row, w) in rows.iter().zip(want_rows) {
                assert_eq!(row.kind.name(), w["type"].as_str().unwrap(), "{at}");
                assert_eq!(row.first_level, f(&w["first_level"]), "{at}");
                assert_eq!(row.delta_level, f(&w["delta_level"]), "{at}");
                assert_eq!(row.first_duration, w["first_duration"].as_i64().unwrap());
                assert_eq!(row.delta_duration, w["delta_duration"].as_i64().unwrap());
                assert_eq!(row.pulse_period, w["pulse_period"].as_i64().unwrap());
                assert_eq!(row.pulse_width, w["pulse_width"].as_i64().unwrap());
            }
            for (s, sweep) in want["sweeps"].as_array().unwrap().iter().enumerate() {
                let got = rec.sweep_epochs(d, s).unwrap();
                let sweep = sweep.as_array().unwrap();
                assert_eq!(got.len(), sweep.len(), "{at} sweep {s}");
                for (i, (e, w)) in got.iter().zip(sweep).enumerate() {
                    assert_eq!(
                        e.start as u64,
                        w["start"].as_u64().unwrap(),
                        "{at} sweep {s}"
                    );
                    assert_eq!(e.stop as u64, w["stop"].as_u64().unwrap(), "{at} sweep {s}");
                    let edge = i == 0 || i + 1 == got.len();
                    if !(abf1 && edge) {
                        assert!(
                            close(e.level, f(&w["level"]), 1e-12),
                            "{at} sweep {s} epoch {i}"
                        );
                    }
                }
            }
            if abf1 {
                continue;
            }
            let w = &want["command_sweep0"];
            let wave = rec.command_waveform(d, 0).unwrap();
            assert_eq!(wave.len() as u64, w["len"].as_u64().unwrap(), "{at}");
            let step = w["sample_step"].as_u64().unwrap() as usize;
            let expected: Vec<f64> = w["sample_value"]
                .as_array()
                .unwrap()
                .iter()
                .map(f)
                .collect();
            let strided: Vec<f64> = wave.iter().step_by(step).copied().collect();
            assert_eq!(strided.len(), expected.len(), "{at}");
            for (a, b) in strided.iter().zip(&expected) {
                assert!(close(*a, *b, 1e-9), "{at}: command {a} vs {b}");
            }
            let sum: f64 = wave.iter().sum();
            assert!(close(sum, f(&w["sum"]), 1e-9), "{at}: command sum {sum}");
            waveforms += 1;
        }
    }
    assert!(
        tables >= 10 && waveforms >= 8,
        "{tables} tables, {waveforms} waveforms"
    );
}
