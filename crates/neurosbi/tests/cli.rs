//! The `neurosbi` program as a user meets it: ordinary errors print one clear message and no
//! stack trace (also with RUST_BACKTRACE=1 set, as many Rust users have it), and bad
//! command-line values are refused before any work.

use std::process::Command;

fn neurosbi(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neurosbi"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the program runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ordinary_errors_print_no_backtrace_even_with_rust_backtrace_set() {
    for args in [
        &["validate", "no-such-file.toml"][..],
        &["validate", "/dev/zero"][..],
        &["sample", "../../examples/hh_c_synthetic.toml", "--n", "0"][..],
    ] {
        let (ok, err) = neurosbi(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("stack backtrace"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let (_, err) = neurosbi(&["sample", "../../examples/hh_c_synthetic.toml", "--n", "0"]);
    assert!(err.contains("--n 0"), "{err}");
    for args in [
        &[
            "sample",
            "../../examples/hh_c_synthetic.toml",
            "--n",
            "100000000000000",
        ][..],
        &[
            "check",
            "../../examples/hh_c_synthetic.toml",
            "--n-sbc",
            "100000000",
            "--n-posterior",
            "1000000",
        ][..],
    ] {
        let (ok, err) = neurosbi(args);
        assert!(
            !ok && err.contains("the machine has") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
    }
    let (_, err) = neurosbi(&[
        "check",
        "../../examples/hh_c_synthetic.toml",
        "--n-sbc",
        "0",
    ]);
    assert!(err.contains("--n-sbc"), "{err}");
    let (_, err) = neurosbi(&["validate", "/dev/zero"]);
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
}
