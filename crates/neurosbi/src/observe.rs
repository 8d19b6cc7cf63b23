//! New observations for a trained posterior (`neurosbi sample FILE --data OUTPUT=FILE`): the
//! fit file is re-read with the named outputs' `data` replaced, so the new traces or spike
//! trains pass exactly the checks and conversions of the fit file's own data (units, sample
//! counts, trace counts, spike time units) and give features in the same layout.

use crate::config::FitConfig;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Parses `OUTPUT=FILE` (the command line's `--data`).
pub fn parse_data_arg(arg: &str) -> Result<(String, PathBuf)> {
    match arg.split_once('=') {
        Some((name, file)) if !name.trim().is_empty() && !file.trim().is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(file.trim())))
        }
        _ => Err(Error::invalid(
            "--data",
            format!("`{arg}`: expected OUTPUT=FILE, e.g. v=recordings/v.csv"),
        )),
    }
}

/// The fit file `file` (its text `text`) with the data of the named outputs replaced by the
/// given files (relative paths are taken from the current folder). Every output must end
/// up with data: one without data in the fit file needs its own `OUTPUT=FILE`. A
/// `[synthetic]` ground truth is dropped: it described the fit file's data.
pub fn with_data(file: &Path, text: &str, data: &[(String, PathBuf)]) -> Result<FitConfig> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Error::invalid(file.display().to_string(), e.message().to_string())
    })?;
    let outputs = table
        .get_mut("outputs")
        .and_then(|o| o.as_table_mut())
        .ok_or_else(|| Error::invalid(file.display().to_string(), "no [outputs] table"))?;
    let names: Vec<String> = outputs.keys().cloned().collect();
    for (name, path) in data {
        let Some(out) = outputs.get_mut(name).and_then(|o| o.as_table_mut()) else {
            return Err(Error::invalid(
                format!("--data {name}=..."),
                format!(
                    "{} has no output `{name}` (its outputs: {})",
                    file.display(),
                    names.join(", ")
                ),
            ));
        };
        let abs = std::path::absolute(path).map_err(Error::io(path))?;
        if !abs.is_file() {
            return Err(Error::invalid(
                format!("--data {name}={}", path.display()),
                "no such file",
            ));
        }
        out.insert(
            "data".into(),
            toml::Value::String(abs.display().to_string()),
        );
    }
    if let Some(missing) = names.iter().find(|n| {
        outputs
            .get(n.as_str())
            .and_then(|o| o.as_table())
            .is_some_and(|o| !o.contains_key("data"))
    }) {
        return Err(Error::invalid(
            format!("--data {missing}=FILE"),
            format!(
                "missing: {} gives no data for output `{missing}`, so the new observation needs it",
                file.display()
            ),
        ));
    }
    // The fit file's ground truth described its synthetic data, not the new recording.
    table.remove("synthetic");
    let text = toml::to_string(&table)
        .map_err(|e| Error::invalid(file.display().to_string(), e.to_string()))?;
    FitConfig::parse(file, &text)
}

/// [`with_data`] on the fit file that `cfg` was read from.
pub fn with_data_file(cfg: &FitConfig, data: &[(String, PathBuf)]) -> Result<FitConfig> {
    let text = crate::config::read_text_bounded(&cfg.file, crate::config::TOML_LIMIT)
        .map_err(Error::io(&cfg.file))?;
    with_data(&cfg.file, &text, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_arguments_need_a_name_and_a_file() {
        assert_eq!(
            parse_data_arg("v=a/b.csv").unwrap(),
            ("v".to_string(), PathBuf::from("a/b.csv"))
        );
        for bad in ["v", "=x.csv", "v=", ""] {
            let e = parse_data_arg(bad).unwrap_err().to_string();
            assert!(e.contains("OUTPUT=FILE"), "{bad}: {e}");
        }
    }
}
