//! Fuzzing the fit-file reader (stable Rust, proptest): arbitrary text and arbitrary edits of
//! the shipped fit files are read into a checked problem or refused with a message; never a
//! panic or a hang.

use neurosbi::config::FitConfig;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn examples() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    v.sort();
    v
}

/// Reads `text` as the fit file `path`, and its observation when it parses.
fn read(path: &Path, text: &str) -> Result<(), String> {
    let cfg = FitConfig::parse(path, text).map_err(|e| e.to_string())?;
    // Synthetic observations simulate; keep the fuzz cheap by checking real data only.
    if cfg.observed.is_some() {
        cfg.observation().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    DuplicateLine(usize),
    DropLine(usize),
    ReplaceValue(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        Just("\"\"".to_string()),
        Just("\"1e30*second\"".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("\"/dev/zero\"".to_string()),
        Just("[".to_string()),
        Just("\"nan*mV\"".to_string()),
        Just("1e308".to_string()),
        "[ -~]{0,12}".prop_map(|s| s),
    ];
    prop_oneof![
        (any::<usize>(), "[ -~\n]{1,8}").prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), token).prop_map(|(i, t)| Edit::ReplaceValue(i, t)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match e {
        Edit::Insert(i, s) => {
            let k = text
                .char_indices()
                .map(|(k, _)| k)
                .nth(i % text.len().max(1))
                .unwrap_or(0);
            let mut t = text.to_string();
            t.insert_str(k, s);
            return t;
        }
        Edit::Delete(i, len) => {
            let chars: Vec<char> = text.chars().collect();
            let k = i % chars.len().max(1);
            return chars[..k]
                .iter()
                .chain(chars[(k + len).min(chars.len())..].iter())
                .collect();
        }
        Edit::DuplicateLine(i) => {
            if let Some(l) = lines.get(i % n).cloned() {
                lines.insert(i % n, l);
            }
        }
        Edit::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        Edit::ReplaceValue(i, t) => {
            if let Some(l) = lines.get_mut(i % n)
                && let Some((k, _)) = l.split_once('=')
            {
                *l = format!("{k}= {t}");
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn edited_fit_files_are_read_or_refused(which in any::<usize>(), edits in proptest::collection::vec(edit(), 1..4)) {
        let ex = examples();
        let (path, text) = &ex[which % ex.len()];
        let mut t = text.clone();
        for e in &edits {
            t = apply(&t, e);
        }
        if let Err(msg) = read(path, &t) {
            prop_assert!(!msg.is_empty());
        }
    }

    #[test]
    fn arbitrary_text_is_refused_with_a_message(text in "[ -~\n]{0,400}") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fuzz.toml");
        if let Err(msg) = read(&path, &text) {
            prop_assert!(!msg.is_empty());
        }
    }
}

#[test]
fn every_shipped_fit_file_is_read() {
    for (path, text) in examples() {
        FitConfig::parse(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
