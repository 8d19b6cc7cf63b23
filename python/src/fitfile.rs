//! A problem description built in code, written as a fit file that `neurosbi fit` reads to
//! the same problem, bit for bit: the fit-file reader takes quantities only as text, models
//! only as files or `[model]` tables, data and stimuli only as files. So a model built in
//! code becomes a `[model]` table (constants as exact text), SI quantities become text in
//! the SI unit of their dimension (`value*volt`: one multiplication by 1.0, exact), and
//! stimulus values and data rows become `.npy`/CSV files beside the fit file.

use std::path::Path;

use neurosbi::spec::{DataSpec, ModelSource, PriorSpec, ProblemSpec, QuantitySpec, StimulusSpec};
use neurosbi_sim::{Dimension, Quantity};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::Error;

/// The shortest unit name of scale 1 (SI) for `dim`, e.g. `V`, `S`, `A`.
pub(crate) fn si_unit_name(dim: &Dimension) -> Option<&'static str> {
    use neurosbi_sim::units::{base_unit_names, lookup_unit};
    base_unit_names()
        .filter(|n| lookup_unit(n).is_some_and(|q| q.dim == *dim && q.value == 1.0))
        .min_by_key(|n| n.len())
}

/// SI unit text for `dim`: a named unit, else a product of base units (`metre**-2*...`).
fn si_unit_text(dim: &Dimension) -> String {
    if let Some(n) = si_unit_name(dim) {
        return n.to_string();
    }
    let names = [
        "metre", "kilogram", "second", "amp", "kelvin", "mole", "candela",
    ];
    let parts: Vec<String> = names
        .iter()
        .zip(dim.exponents)
        .filter(|(_, e)| *e != 0.0)
        .map(|(n, e)| format!("{n}**{e}"))
        .collect();
    parts.join("*")
}

/// Exact quantity text: `{value:?}*unit` (Rust's `{:?}` of f64 reads back to the same bits).
fn text_of(q: &Quantity) -> String {
    if q.dim.is_dimensionless() {
        format!("{:?}", q.value)
    } else {
        format!("{:?}*{}", q.value, si_unit_text(&q.dim))
    }
}

fn text_spec(q: &QuantitySpec) -> QuantitySpec {
    match q {
        QuantitySpec::Si(q) => QuantitySpec::Text(text_of(q)),
        other => other.clone(),
    }
}

fn invalid(msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("to_fit_file: {msg}"))
}

fn toml_err(e: impl std::fmt::Display) -> PyErr {
    Error::new_err(e.to_string())
}

/// The `[model]` table (model-file schema) of a model description.
fn model_table(d: &neurosbi_sim::ModelDescription) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("equations".into(), d.equations.clone().into());
    for (k, v) in [
        ("threshold", &d.threshold),
        ("reset", &d.reset),
        ("refractory", &d.refractory),
        ("method", &d.method),
    ] {
        if let Some(v) = v {
            t.insert(k.into(), v.clone().into());
        }
    }
    let table = |rows: Vec<(String, String)>| -> toml::Value {
        toml::Value::Table(rows.into_iter().map(|(k, v)| (k, v.into())).collect())
    };
    let inputs = d
        .inputs
        .iter()
        .map(|(n, dim)| (n.clone(), si_unit_text(dim)));
    t.insert("inputs".into(), table(inputs.collect()));
    let constants = d.constants.iter().map(|(n, q)| (n.clone(), text_of(q)));
    t.insert("constants".into(), table(constants.collect()));
    t.insert("initial".into(), table(d.initial.clone()));
    t
}

fn write_rows(path: &Path, rows: &[Vec<f64>]) -> PyResult<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    neurosbi_infer::write_npy(path, &flat, rows.len(), cols).map_err(crate::to_py)
}

/// Writes the description `spec_json` (JSON of `ProblemSpec`) as the fit file `path`, with
/// its arrays in files named after it (`NAME.I.npy`, `NAME.v.npy`, `NAME.spikes.csv`).
#[pyfunction]
pub(crate) fn write_fit_file(spec_json: &str, path: &str) -> PyResult<()> {
    let mut spec: ProblemSpec = serde_json::from_str(spec_json).map_err(invalid)?;
    let path = Path::new(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .map_or("fit".into(), |s| s.to_string_lossy().to_string());
    if let Some(ModelSource::Description { description }) = &spec.model {
        spec.model = Some(ModelSource::Inline(model_table(description)));
    }
    spec.dt = spec.dt.as_ref().map(text_spec);
    spec.duration = spec.duration.as_ref().map(text_spec);
    if let Some(w) = &spec.features.window {
        spec.features.window = Some([text_spec(&w[0]), text_spec(&w[1])]);
    }
    for (_, q) in spec.fixed.0.iter_mut() {
        *q = text_spec(q);
    }
    for (_, q) in spec.synthetic.iter_mut().flat_map(|s| s.0.iter_mut()) {
        *q = text_spec(q);
    }
    let inputs = match &spec.model {
        Some(ModelSource::Inline(t)) => t.get("inputs").and_then(|v| v.as_table()).cloned(),
        _ => None,
    };
    for (name, st) in spec.stimuli.0.iter_mut() {
        if let StimulusSpec::Values { values } = st {
            let file = format!("{stem}.{name}.npy");
            write_rows(&dir.join(&file), values)?;
            let unit = inputs
                .as_ref()
                .and_then(|t| t.get(name.as_str()))
                .and_then(|u| u.as_str())
                .ok_or_else(|| invalid(format!("stimuli.{name}: the input's unit is unknown")))?;
            let mut t = toml::Table::new();
            t.insert("kind".into(), "file".into());
            t.insert("file".into(), file.into());
            t.insert("unit".into(), unit.into());
            *st = StimulusSpec::Written(t);
        }
    }
    for (var, out) in spec.outputs.iter_mut().flat_map(|o| o.0.iter_mut()) {
        if let Some(DataSpec::Rows(rows)) = &out.data {
            let file = if var.as_str() == neurosbi::problem::SPIKES {
                // Spike trains are ragged: one CSV line per train.
                let file = format!("{stem}.{var}.csv");
                let text: String = rows
                    .iter()
                    .map(|r| {
                        let cells: Vec<String> = r.iter().map(|v| format!("{v:?}")).collect();
                        cells.join(",") + "\n"
                    })
                    .collect();
                let p = dir.join(&file);
                std::fs::write(&p, text).map_err(|e| invalid(format!("{}: {e}", p.display())))?;
                file
            } else {
                let file = format!("{stem}.{var}.npy");
                write_rows(&dir.join(&file), rows)?;
                file
            };
            out.data = Some(DataSpec::File(file));
        }
    }
    if let Some((name, _)) = spec
        .priors
        .iter()
        .flat_map(|p| p.iter())
        .find(|(_, p)| matches!(p, PriorSpec::Marginal { .. }))
    {
        return Err(invalid(format!(
            "priors.{name}: a prior given as a marginal has no fit-file form; give it as text"
        )));
    }
    let text = toml::to_string(&spec).map_err(toml_err)?;
    std::fs::write(path, text).map_err(|e| invalid(format!("{}: {e}", path.display())))
}
