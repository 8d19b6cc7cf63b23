//! Large ABF files (8 MB and more) are read without holding their samples twice: the
//! samples come from the file in blocks rather than from a copy of the whole file. Every
//! sample file, padded past that size, reads exactly as it does from memory.

use neurosbi_io::{RawSweep, Recording, parse_abf, read_abf};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/abf")
}

fn raw(r: &Recording, c: usize, s: usize) -> Vec<f64> {
    match r.raw_sweep(c, s).unwrap() {
        RawSweep::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        RawSweep::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        RawSweep::F64(v) => v.to_vec(),
    }
}

fn same(a: &Recording, b: &Recording, what: &str) {
    assert_eq!(a.sweep_count(), b.sweep_count(), "{what}: sweeps");
    assert_eq!(a.channels, b.channels, "{what}: channels");
    assert_eq!(a.sample_rate_hz, b.sample_rate_hz, "{what}: rate");
    assert_eq!(a.tags, b.tags, "{what}: tags");
    for c in 0..a.channels.len() {
        for s in 0..a.sweep_count() {
            assert_eq!(raw(a, c, s), raw(b, c, s), "{what}: channel {c} sweep {s}");
        }
    }
}

#[test]
fn padded_sample_files_read_from_disk_as_from_memory() {
    let tmp = std::env::temp_dir().join(format!("neurosbi-io-large-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(data_dir()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "abf") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let want = parse_abf(&path, &bytes).unwrap();
        // Past the size from which the samples are streamed.
        let mut padded = bytes.clone();
        padded.resize(bytes.len() + (9 << 20), 0xAB);
        let big = tmp.join(path.file_name().unwrap());
        std::fs::write(&big, &padded).unwrap();
        let got = read_abf(&big).unwrap();
        same(&got, &want, &path.display().to_string());
        n += 1;
    }
    assert!(n >= 10, "only {n} sample files");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_large_file_cut_short_names_what_is_missing() {
    let path = data_dir().join("17o05028_ic_steps.abf");
    let bytes = std::fs::read(&path).unwrap();
    // A 9 MB file whose samples (1.9 MB) start 5 kB before its end.
    let mut cut = bytes.clone();
    cut.resize(9 << 20, 0);
    let entry = 76 + 16 * 10;
    let block = ((9u32 << 20) - 5120) / 512;
    cut[entry..entry + 4].copy_from_slice(&block.to_le_bytes());
    let tmp = std::env::temp_dir().join(format!("neurosbi-io-cut-{}.abf", std::process::id()));
    std::fs::write(&tmp, &cut).unwrap();
    let e = read_abf(&tmp).unwrap_err().to_string();
    let _ = std::fs::remove_file(&tmp);
    assert!(
        e.contains("neurosbi-io-cut-") && e.contains("samples"),
        "{e}"
    );
}
