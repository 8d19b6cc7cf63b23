//! Damaged and foreign files, and selections that do not exist: clear errors, never a panic.

use std::path::{Path, PathBuf};

use neurosbi_io::{ChannelSelector, Error, open, parse_abf};
use proptest::prelude::*;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/abf")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(sample(name)).unwrap()
}

#[test]
fn a_truncated_file_names_what_is_missing() {
    for name in ["17o05028_ic_steps.abf", "pclamp11_4ch_abf1.abf"] {
        let data = bytes(name);
        let cut = &data[..data.len() - 1000];
        let err = parse_abf(Path::new(name), cut).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with(name) && msg.contains("truncated"), "{msg}");
        assert!(msg.contains("needs bytes"), "{msg}");
    }
}

#[test]
fn another_format_with_an_abf_name_is_refused() {
    let err = parse_abf(
        Path::new("cell.abf"),
        b"\x89HDF\r\n\x1a\n rest of an HDF5 file",
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
    assert!(
        err.to_string().contains("cell.abf: not an ABF file"),
        "{err}"
    );
    let err = parse_abf(Path::new("empty.abf"), b"").unwrap_err();
    assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
}

#[test]
fn an_unknown_version_is_refused() {
    let mut v2 = bytes("17o05027_ic_ramp.abf");
    v2[7] = 3; // major version byte of ABF2
    let err = parse_abf(Path::new("x.abf"), &v2).unwrap_err();
    assert!(
        err.to_string()
            .contains("ABF version 3.6.0.0 is not supported"),
        "{err}"
    );
    let mut v1 = bytes("pclamp11_4ch_abf1.abf");
    v1[4..8].copy_from_slice(&7.5f32.to_le_bytes());
    let err = parse_abf(Path::new("y.abf"), &v1).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
}

#[test]
fn a_missing_channel_or_sweep_lists_those_that_exist() {
    let rec = open(sample("2018_12_15_0000.abf")).unwrap();
    let err = rec
        .channel_index(&ChannelSelector::Name("Vm".into()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no channel \"Vm\""), "{msg}");
    assert!(
        msg.contains("4 channel(s): 0 \"IN 0\" (pA), 1 \"IN 1\" (pA)"),
        "{msg}"
    );
    assert!(rec.channel_index(&ChannelSelector::Index(4)).is_err());
    let err = rec.sweep(0, 10).unwrap_err().to_string();
    assert!(
        err.contains("no sweep 10; the file has 10 sweep(s), numbered 0 to 9"),
        "{err}"
    );
    let err = rec.command_waveform(99, 0).unwrap_err().to_string();
    assert!(
        err.contains("no command output 99; the file has 8"),
        "{err}"
    );
}

#[test]
fn a_missing_file_names_it() {
    let err = open("/no/such/cell.abf").unwrap_err().to_string();
    assert!(err.starts_with("/no/such/cell.abf: "), "{err}");
    let err = open("/dev/zero").unwrap_err().to_string();
    assert!(err.contains("/dev/zero: not a regular file"), "{err}");
}

fn mutated(data: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut copy = data.to_vec();
    for &(at, value) in edits {
        let i = at % copy.len();
        copy[i] = value;
    }
    copy
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Bytes changed anywhere in the header of a real file (ABF1 and ABF2), or the file cut
    /// anywhere: the reader returns a recording or an error, and never panics.
    #[test]
    fn mutated_headers_never_panic(
        edits in prop::collection::vec((0usize..8192, any::<u8>()), 1..12),
        cut in 0usize..400_000,
        which in 0usize..3,
    ) {
        let name = ["17o05027_ic_ramp.abf", "pclamp11_4ch_abf1.abf", "File_axon_7.abf"][which];
        let data = bytes(name);
        let edited = mutated(&data, &edits);
        if let Ok(rec) = parse_abf(Path::new(name), &edited) {
            for c in 0..rec.channels.len() {
                for s in 0..rec.sweep_count().min(3) {
                    let _ = rec.sweep(c, s);
                }
            }
            for d in 0..rec.commands.len() {
                let _ = rec.command_waveform(d, 0);
            }
        }
        let _ = parse_abf(Path::new(name), &data[..cut.min(data.len())]);
    }
}
