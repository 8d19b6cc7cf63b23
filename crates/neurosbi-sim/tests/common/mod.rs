//! Reading the Brian2 circuit fixtures (`tests/fixtures/brian_circuits`), shared by the
//! circuit test binaries.

use neurosbi_sim::Model;
use serde_json::Value;
use std::path::PathBuf;

/// The fixture `name.json`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/brian_circuits")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A JSON string.
pub fn text(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

/// The model's parameter row from values given by name (every parameter needs one).
pub fn params_by_name(model: &Model, values: &[(String, f64)]) -> Vec<f64> {
    model
        .parameters()
        .iter()
        .map(|p| {
            values
                .iter()
                .find(|(n, _)| *n == p.name)
                .unwrap_or_else(|| panic!("no value for {}", p.name))
                .1
        })
        .collect()
}
