//! Fuzzing of the model-building entry points (equations, threshold, reset, refractory,
//! initial values, model files, quantities): whatever the text, building a model returns
//! `Ok` or an error with a message, and a model that builds also compiles and runs a few
//! steps. Inputs are bounded so that every case is quick; a panic fails the case and a
//! stack overflow aborts the run.

// Errors are built once per case; their size does not matter.
#![allow(clippy::result_large_err)]

use neurosbi_sim::{Model, ModelDescription, ModelSpec, RunConfig, SimError};
use proptest::prelude::*;
use std::sync::OnceLock;

/// The shipped models, as descriptions to mutate.
fn shipped() -> &'static [ModelDescription] {
    static MODELS: OnceLock<Vec<ModelDescription>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        let models: Vec<_> = paths
            .iter()
            .map(|p| ModelSpec::from_file(p).unwrap().model)
            .collect();
        assert!(models.len() >= 5, "shipped models not found in {dir:?}");
        models
    })
}

/// Builds the model and, if it builds, runs it for a few steps; errors must say something.
fn check(desc: &ModelDescription) -> Result<(), TestCaseError> {
    match Model::new(desc) {
        Err(e) => prop_assert!(!e.to_string().trim().is_empty(), "empty message: {e:?}"),
        Ok(model) => run_briefly(&model)?,
    }
    Ok(())
}

fn run_briefly(model: &Model) -> Result<(), TestCaseError> {
    if !model.inputs().is_empty() {
        return Ok(());
    }
    let params = vec![1e-3; model.parameters().len()];
    let names = model.recordable();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let cfg = RunConfig::new(1e-4, 5).record(&names);
    if let Err(e) = model.simulate(&params, 1, &[], &cfg) {
        prop_assert!(!e.to_string().trim().is_empty(), "empty message: {e:?}");
    }
    Ok(())
}

/// A description whose every string is `text` (or the equations are, and the rest empty).
fn everywhere(text: &str) -> Vec<ModelDescription> {
    vec![
        ModelDescription::new(text),
        ModelDescription::new("dv/dt = -v/ms : 1")
            .method("euler")
            .threshold(text)
            .reset(text)
            .refractory(text)
            .initial("v", text),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    DuplicateLine(usize),
    DeleteLine(usize),
}

/// Characters that matter to the grammar, plus anything.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(
            "()+-*/:=<>!#\\\n\t ,.;0123456789eExvtdmi_\u{e9}\u{3bb}\u{0}".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), interesting_char()).prop_map(|(p, c)| Edit::Insert(p, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting_char()).prop_map(|(p, c)| Edit::Replace(p, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DeleteLine),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = |p: usize, n: usize| if n == 0 { 0 } else { p % n };
    match *edit {
        Edit::Insert(p, c) => chars.insert(at(p, chars.len() + 1), c),
        Edit::Delete(p) if !chars.is_empty() => {
            chars.remove(at(p, chars.len()));
        }
        Edit::Replace(p, c) if !chars.is_empty() => {
            let k = at(p, chars.len());
            chars[k] = c;
        }
        Edit::DuplicateLine(k) if !lines.is_empty() => {
            let k = at(k, lines.len());
            lines.insert(k, lines[k]);
            return lines.join("\n");
        }
        Edit::DeleteLine(k) if !lines.is_empty() => {
            lines.remove(at(k, lines.len()));
            return lines.join("\n");
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// Deep and long expressions: chains of every operator, nested parentheses, unary
/// operators, powers and calls, around and past the depth limit.
fn deep_expression() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["+", "-", "*", "/", "**", " and ", " or ", " < ", ", "]);
    let piece = prop_oneof![
        (op.clone(), 1usize..20_000).prop_map(|(op, n)| vec!["v"; n].join(op)),
        (1usize..600).prop_map(|n| format!("{}v{}", "(".repeat(n), ")".repeat(n))),
        (1usize..600).prop_map(|n| format!("{}v{}", "(v + ".repeat(n), ")".repeat(n))),
        (1usize..600).prop_map(|n| format!("{}v", "-".repeat(n))),
        (1usize..600).prop_map(|n| format!("{}v", "not ".repeat(n))),
        (1usize..600).prop_map(|n| format!("{}v{}", "exp(".repeat(n), ")".repeat(n))),
        (1usize..600).prop_map(|n| format!("{}1", "1**".repeat(n))),
        (1usize..600).prop_map(|n| "(".repeat(n)),
    ];
    (prop::collection::vec(piece, 1..4), op).prop_map(|(pieces, op)| pieces.join(op))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        for desc in everywhere(&text) {
            check(&desc)?;
        }
        let _ = neurosbi_sim::parse_quantity(&text);
        let _ = ModelSpec::parse("fuzz.toml", &text);
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in "\\PC{0,120}", grammar in "[-+*/()<>=!:#,.;\\\\ \\n0-9a-z_]{0,120}") {
        for t in [&text, &grammar] {
            for desc in everywhere(t) {
                check(&desc)?;
            }
            let _ = neurosbi_sim::parse_quantity(t);
            let toml = format!("equations = '''\n{t}\n'''\nmethod = \"euler\"\n");
            let _ = ModelSpec::parse("fuzz.toml", &toml);
        }
    }

    #[test]
    fn edited_shipped_models_never_panic(
        k in 0usize..64,
        edits in prop::collection::vec(edit(), 1..6),
        target in 0usize..3,
    ) {
        let models = shipped();
        let mut desc = models[k % models.len()].clone();
        let field = match target {
            0 => &mut desc.equations,
            1 => desc.threshold.get_or_insert_with(String::new),
            _ => desc.reset.get_or_insert_with(String::new),
        };
        for e in &edits {
            *field = apply(field, e);
        }
        check(&desc)?;
        // Without its method, as a model copied from Brian would be.
        desc.method = None;
        check(&desc)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn deep_and_long_expressions_are_errors_or_models(e in deep_expression()) {
        for desc in everywhere(&format!("dv/dt = ({e})/ms : 1")) {
            check(&desc.method("euler"))?;
        }
        for desc in everywhere(&e) {
            check(&desc)?;
        }
    }
}

/// Every shipped model still builds unedited (the base of the edits above).
#[test]
fn shipped_models_build() {
    for desc in shipped() {
        Model::new(desc).unwrap_or_else(|e: SimError| panic!("{e}"));
    }
}
