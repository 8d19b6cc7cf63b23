//! Posterior summaries and tabular outputs (CSV, .npy).

use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Summary of one parameter's posterior marginal.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParameterSummary {
    /// Parameter name.
    pub name: String,
    /// Unit of the numbers.
    pub unit: String,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (ddof 0).
    pub std: f64,
    /// Median.
    pub median: f64,
    /// 2.5 % quantile.
    pub q025: f64,
    /// 97.5 % quantile.
    pub q975: f64,
    /// Maximum a posteriori estimate; NaN where the posterior has no density (ABC), written
    /// as `null` in JSON and read back as NaN.
    #[serde(deserialize_with = "null_as_nan")]
    pub map: f64,
    /// Ground truth, when known.
    pub truth: Option<f64>,
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Linear-interpolation quantile of sorted values (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let f = pos - i as f64;
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// Summarises row-major samples `n x names.len()`.
pub fn summarise(
    samples: &[f64],
    names: &[String],
    units: &[String],
    map: &[f64],
    truth: Option<&[f64]>,
) -> Vec<ParameterSummary> {
    let d = names.len();
    let n = samples.len() / d.max(1);
    (0..d)
        .map(|j| {
            let mut c: Vec<f64> = (0..n).map(|i| samples[i * d + j]).collect();
            let mean = c.iter().sum::<f64>() / n as f64;
            let var = c.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            c.sort_by(f64::total_cmp);
            ParameterSummary {
                name: names[j].clone(),
                unit: units[j].clone(),
                mean,
                std: var.sqrt(),
                median: quantile(&c, 0.5),
                q025: quantile(&c, 0.025),
                q975: quantile(&c, 0.975),
                map: map.get(j).copied().unwrap_or(f64::NAN),
                truth: truth.map(|t| t[j]),
            }
        })
        .collect()
}

/// CSV text of records, quoted where a cell needs it (a feature name holding a comma).
fn csv_of<I, R>(records: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for r in records {
        // Writing to memory cannot fail.
        w.write_record(r).expect("CSV into memory");
    }
    let bytes = w.into_inner().expect("CSV into memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells")
}

/// CSV text of a row-major matrix with a header.
pub fn csv_text(header: &[String], data: &[f64]) -> String {
    let d = header.len().max(1);
    let rows = data
        .chunks(d)
        .map(|row| row.iter().map(f64::to_string).collect::<Vec<_>>());
    csv_of(std::iter::once(header.to_vec()).chain(rows))
}

/// The summary as CSV.
pub fn summary_csv(rows: &[ParameterSummary]) -> String {
    let header = [
        "parameter",
        "unit",
        "mean",
        "std",
        "median",
        "q2.5",
        "q97.5",
        "map",
        "truth",
    ];
    let body = rows.iter().map(|r| {
        let numbers = [r.mean, r.std, r.median, r.q025, r.q975, r.map];
        [r.name.clone(), r.unit.clone()]
            .into_iter()
            .chain(numbers.iter().map(f64::to_string))
            .chain([r.truth.map(|t| t.to_string()).unwrap_or_default()])
            .collect::<Vec<_>>()
    });
    csv_of(std::iter::once(header.map(String::from).to_vec()).chain(body))
}

/// The summary as an aligned text table (for the terminal).
pub fn summary_table(rows: &[ParameterSummary]) -> String {
    let mut s = format!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "parameter", "mean", "std", "median", "2.5%", "97.5%", "MAP", "truth"
    );
    for r in rows {
        let name = format!(
            "{}{}",
            r.name,
            if r.unit.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.unit)
            }
        );
        let _ = writeln!(
            s,
            "{:<12} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10}",
            name,
            r.mean,
            r.std,
            r.median,
            r.q025,
            r.q975,
            r.map,
            r.truth
                .map(|t| format!("{t:.4}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    s
}

/// Writes bytes to `path` through a temporary file and a rename.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1,2,3,4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925]
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile(&s, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile(&s, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&s, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn summary_of_two_columns() {
        let samples = [1.0, 10.0, 3.0, 30.0];
        let names = ["a".to_string(), "b".to_string()];
        let units = [String::new(), "mV".into()];
        let s = summarise(&samples, &names, &units, &[2.0, 20.0], Some(&[2.5, 25.0]));
        assert_eq!(s[0].mean, 2.0);
        assert_eq!(s[0].std, 1.0);
        assert_eq!(s[1].median, 20.0);
        assert_eq!(s[1].truth, Some(25.0));
        let csv = summary_csv(&s);
        assert!(csv.lines().nth(2).unwrap().starts_with("b,mV,20,10,20"));
    }

    #[test]
    fn a_header_with_commas_round_trips() {
        let header = ["perm_entropy(order=3, delay=1)".to_string(), "mean".into()];
        let text = csv_text(&header, &[1.5, -2.0, 3.0, f64::NAN]);
        assert!(
            text.starts_with("\"perm_entropy(order=3, delay=1)\",mean\n"),
            "{text}"
        );
        let back = crate::config::parse_csv(&text, false).unwrap();
        assert_eq!(back.header.as_deref(), Some(&header[..]));
        assert_eq!(back.rows[0], vec![1.5, -2.0]);
        assert_eq!(back.rows[1][0], 3.0);
        assert!(back.rows[1][1].is_nan());
    }
}
