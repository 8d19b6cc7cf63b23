//! `report.html`: one self-contained page (figures inlined as data URIs, no network) with the
//! summary table, each figure once, the observed features beside their posterior-predictive
//! distribution, the valid and invalid simulations with their reasons, the model and the fit
//! file, the provenance of the inputs (SHA-256 of each file) and the run's timings. A small
//! inline script records image load failures and script errors into the page's `<body>`
//! attributes (`data-images`, `data-broken`, `data-errors`), so a headless browser can check
//! that the page rendered; nothing of it is shown to the reader.

use crate::error::Result;
use crate::summary::{ParameterSummary, write_file};
use base64::Engine;
use std::fmt::Write as _;
use std::path::Path;

/// One figure of the report: a unique id (the `id` of its `<figure>`), a caption and the
/// SVG text.
pub struct Figure<'a> {
    /// Unique id, e.g. `pairplot` or `sweep-8`.
    pub id: String,
    /// Caption.
    pub caption: String,
    /// SVG text.
    pub svg: &'a str,
}

/// One row of the table of observed and posterior-predictive features.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureRow {
    /// Feature column name (`v/0/spike_count`).
    pub name: String,
    /// What the column is, for the reader (`sweep 8`); empty when the name says it.
    pub what: String,
    /// Observed value.
    pub observed: f64,
    /// Predictive 5 %, 50 % and 95 % quantiles (NaN when no predictive simulation is valid
    /// for this feature).
    pub predictive: [f64; 3],
    /// Predictive simulations with a finite value of this feature.
    pub n: usize,
}

impl FeatureRow {
    /// Whether the observed value lies in the predictive 90 % interval.
    pub fn inside(&self) -> bool {
        (self.predictive[0]..=self.predictive[2]).contains(&self.observed)
    }
}

/// An input file and its SHA-256, for the provenance table.
pub struct InputChecksum {
    /// The fit-file key naming it (`fit file`, `model`, `outputs.v.data`, ...).
    pub key: String,
    /// The path as given.
    pub path: String,
    /// Hex SHA-256 of the file's bytes (or why it could not be read).
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// What the report shows.
pub struct ReportInput<'a> {
    /// Job name.
    pub title: &'a str,
    /// Posterior summary.
    pub summary: &'a [ParameterSummary],
    /// Method description.
    pub method: &'a str,
    /// Valid and invalid simulations per round.
    pub simulations: &'a [(usize, u64)],
    /// Why simulations were invalid (counts per reason; the text of `InvalidReport::describe`).
    pub invalid: &'a str,
    /// Observed features with their posterior-predictive distribution.
    pub features: &'a [FeatureRow],
    /// Posterior-predictive simulations behind `features`.
    pub predictive_runs: usize,
    /// Seconds per phase.
    pub timings: &'a [(String, f64)],
    /// Figures, each shown once.
    pub figures: &'a [Figure<'a>],
    /// The model's equations.
    pub equations: &'a str,
    /// The model's whole description, when it is not the fit file's (a model file).
    pub model_file: Option<(&'a str, &'a str)>,
    /// The fit file: name and text.
    pub fit_file: Option<(&'a str, &'a str)>,
    /// neurosbi version.
    pub version: &'a str,
    /// Seed of the run.
    pub seed: u64,
    /// Input files with their checksums.
    pub inputs: &'a [InputChecksum],
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

const CHECK_SCRIPT: &str = r#"<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    if (e.target && e.target.tagName === 'IMG') {
      errors.push('image failed: ' + (e.target.alt || '?'));
    } else {
      errors.push('script error: ' + e.message);
    }
    document.body.setAttribute('data-errors', String(errors.length));
  }, true);
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
    document.body.setAttribute('data-images', String(imgs.length));
    document.body.setAttribute('data-broken', String(broken.length));
    document.body.setAttribute('data-errors', String(errors.length));
    document.body.setAttribute('data-checked', 'yes');
  });
})();
</script>"#;

/// Builds the HTML text.
pub fn html(r: &ReportInput<'_>) -> Result<String> {
    let mut s = String::new();
    let (valid, invalid) = r
        .simulations
        .iter()
        .fold((0usize, 0u64), |(a, b), (v, i)| (a + v, b + i));
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>neurosbi: {t}</title>{CHECK_SCRIPT}<style>\
body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
th{{background:#f0f0f0}}td:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #eee}}\
figure{{margin:1.5em 0}}figcaption{{color:#555}}pre{{background:#f7f7f7;padding:8px;overflow-x:auto}}\
td.out{{color:#b00}}</style></head><body data-checked=\"no\">\
<h1>Posterior for {t}</h1><p>{m}; {valid} valid and {invalid} invalid simulations \
(per round, valid / invalid: {sims}).</p>",
        t = esc(r.title),
        m = esc(r.method),
        sims = r
            .simulations
            .iter()
            .map(|(v, i)| format!("{v} / {i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.push_str("<h2>Summary</h2><table><tr><th>parameter</th><th>unit</th><th>mean</th><th>std</th><th>median</th><th>2.5 %</th><th>97.5 %</th><th>MAP</th><th>truth</th></tr>");
    for p in r.summary {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{:.5}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(&p.unit),
            p.mean,
            p.std,
            p.median,
            p.q025,
            p.q975,
            p.map,
            p.truth
                .map(|t| format!("{t:.5}"))
                .unwrap_or_else(|| "–".into())
        );
    }
    s.push_str("</table>");
    let b64 = base64::engine::general_purpose::STANDARD;
    for f in r.figures {
        let _ = write!(
            s,
            "<figure id=\"fig-{id}\"><img alt=\"{c}\" src=\"data:image/svg+xml;base64,{d}\"><figcaption>{c}</figcaption></figure>",
            id = esc(&f.id),
            c = esc(&f.caption),
            d = b64.encode(f.svg.as_bytes())
        );
    }
    let _ = write!(
        s,
        "<h2 id=\"features\">Observed and predicted features</h2><p>Features of the observation \
and of {n} posterior-predictive simulations (model at posterior samples): median and 90 % \
interval (5 % to 95 %); red: the observed value lies outside it.</p><table><tr><th>feature</th>\
<th>of</th><th>observed</th><th>predictive median</th><th>5 %</th><th>95 %</th><th>valid runs</th></tr>",
        n = r.predictive_runs
    );
    for f in r.features {
        let [lo, mid, hi] = f.predictive;
        let class = if f.n > 0 && !f.inside() {
            " class=\"out\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td{class} data-observed=\"{:e}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.what),
            f.observed,
            num(f.observed),
            num(mid),
            num(lo),
            num(hi),
            f.n
        );
    }
    let _ = write!(
        s,
        "</table><h2 id=\"simulations\">Simulations</h2><pre>{}</pre>",
        esc(r.invalid)
    );
    let _ = write!(
        s,
        "<h2 id=\"model\">Model</h2><pre>{}</pre>",
        esc(r.equations)
    );
    if let Some((name, text)) = r.model_file {
        let _ = write!(
            s,
            "<details><summary>model file {}</summary><pre>{}</pre></details>",
            esc(name),
            esc(text)
        );
    }
    if let Some((name, text)) = r.fit_file {
        let _ = write!(
            s,
            "<h2 id=\"fit-file\">Fit file</h2><p>{}</p><pre>{}</pre>",
            esc(name),
            esc(text)
        );
    }
    let _ = write!(
        s,
        "<h2 id=\"provenance\">Provenance</h2><p>neurosbi {v}, seed {seed}.</p>\
<table><tr><th>input</th><th>file</th><th>bytes</th><th>SHA-256</th></tr>",
        v = esc(r.version),
        seed = r.seed
    );
    for f in r.inputs {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code class=\"sha256\">{}</code></td></tr>",
            esc(&f.key),
            esc(&f.path),
            f.bytes,
            esc(&f.sha256)
        );
    }
    s.push_str("</table><h2>Timings</h2><table><tr><th>phase</th><th>seconds</th></tr>");
    for (n, v) in r.timings {
        let _ = write!(s, "<tr><td>{}</td><td>{v:.2}</td></tr>", esc(n));
    }
    s.push_str("</table><p>Files in this folder: samples.csv / samples.npy (posterior samples), summary.csv, observation.csv and predictive.csv (features of the observation and of the posterior-predictive simulations), pairplot.svg/.png, traces.svg/.png (and sweep_N.svg/.png for a recording), training.svg/.png, run.json (provenance and checksums of every output), posterior/ (the trained posterior, for <code>neurosbi sample</code>), simulations/ (the simulation store).</p></body></html>\n");
    Ok(s)
}

/// Writes `report.html` into `dir`.
pub fn write(dir: &Path, r: &ReportInput<'_>) -> Result<()> {
    write_file(&dir.join("report.html"), html(r)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_self_contained_and_escaped() {
        let sum = vec![ParameterSummary {
            name: "g<Na>".into(),
            unit: "uS".into(),
            mean: 1.0,
            std: 0.1,
            median: 1.0,
            q025: 0.8,
            q975: 1.2,
            map: 1.0,
            truth: Some(1.0),
        }];
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>";
        let h = html(&ReportInput {
            title: "t",
            summary: &sum,
            method: "NPE",
            simulations: &[(10, 2)],
            invalid: "10 of 12 simulations valid\n  2 x diverged",
            features: &[FeatureRow {
                name: "v/0/spike_count".into(),
                what: "sweep 3".into(),
                observed: 7.0,
                predictive: [2.0, 4.0, 6.0],
                n: 20,
            }],
            predictive_runs: 20,
            timings: &[],
            figures: &[Figure {
                id: "fig".into(),
                caption: "a <figure>".into(),
                svg,
            }],
            equations: "dv/dt = -v/tau : volt",
            model_file: None,
            fit_file: Some(("fit.toml", "seed = 1")),
            version: "0.1.0",
            seed: 1,
            inputs: &[InputChecksum {
                key: "outputs.v.data".into(),
                path: "cell.abf".into(),
                sha256: "ab".repeat(32),
                bytes: 3,
            }],
        })
        .unwrap();
        assert_eq!(h.matches("id=\"fig-fig\"").count(), 1);
        assert!(h.contains("a &lt;figure&gt;"));
        assert!(h.contains("10 valid and 2 invalid simulations"));
        assert!(h.contains("2 x diverged"));
        assert!(h.contains("class=\"out\""), "7 lies outside [2, 6]");
        assert!(h.contains(&"ab".repeat(32)));
        assert!(
            !h.contains("failed to load"),
            "no test-harness text for the reader"
        );
        assert!(h.contains("g&lt;Na&gt;"));
        assert!(h.contains("data:image/svg+xml;base64,"));
        assert!(!h.contains("http://") || !h.contains("src=\"http"));
        assert!(!h.contains("<svg"), "figures are inlined as data URIs");
    }
}
