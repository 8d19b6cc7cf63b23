//! `report.html`: one self-contained page (figures inlined as data URIs, no network) with the
//! summary table, the figures, the observation's features and the run's timings. A small
//! inline script records image load failures and script errors into the page's `<body>`
//! attributes, so a headless browser can check that the page rendered.

use crate::error::Result;
use crate::summary::{ParameterSummary, write_file};
use base64::Engine;
use std::fmt::Write as _;
use std::path::Path;

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
    /// Feature names.
    pub features: &'a [String],
    /// Observed feature values.
    pub x_o: &'a [f64],
    /// Seconds per phase.
    pub timings: &'a [(String, f64)],
    /// Figures: caption and SVG text.
    pub figures: &'a [(&'a str, &'a str)],
    /// An extra PNG figure: caption and file.
    pub png: Option<(&'a str, &'a Path)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    var s = document.getElementById('render-status');
    if (s) { s.textContent = imgs.length + ' figures, ' + broken.length + ' failed to load, ' + errors.length + ' errors'; }
  });
})();
</script>"#;

/// Builds the HTML text.
pub fn html(r: &ReportInput<'_>) -> Result<String> {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>neurosbi: {t}</title>{CHECK_SCRIPT}<style>\
body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
th{{background:#f0f0f0}}td:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #eee}}\
figure{{margin:1.5em 0}}figcaption{{color:#555}}</style></head><body data-checked=\"no\">\
<h1>Posterior for {t}</h1><p>{m}; simulations per round (valid / invalid): {sims}.</p>\
<p id=\"render-status\">rendering…</p>",
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
    for (cap, svg) in r.figures {
        let _ = write!(
            s,
            "<figure><img alt=\"{c}\" src=\"data:image/svg+xml;base64,{d}\"><figcaption>{c}</figcaption></figure>",
            c = esc(cap),
            d = b64.encode(svg.as_bytes())
        );
    }
    if let Some((cap, path)) = r.png {
        let bytes = std::fs::read(path).map_err(crate::error::Error::io(path))?;
        let _ = write!(
            s,
            "<figure><img alt=\"{c}\" src=\"data:image/png;base64,{d}\"><figcaption>{c}</figcaption></figure>",
            c = esc(cap),
            d = b64.encode(&bytes)
        );
    }
    s.push_str("<h2>Observed features</h2><table><tr><th>feature</th><th>value</th></tr>");
    for (n, v) in r.features.iter().zip(r.x_o) {
        let _ = write!(s, "<tr><td>{}</td><td>{v:.5}</td></tr>", esc(n));
    }
    s.push_str("</table><h2>Timings</h2><table><tr><th>phase</th><th>seconds</th></tr>");
    for (n, v) in r.timings {
        let _ = write!(s, "<tr><td>{}</td><td>{v:.2}</td></tr>", esc(n));
    }
    s.push_str("</table><p>Files in this folder: samples.csv / samples.npy (posterior samples), summary.csv, pairplot.svg/.png, traces.svg/.png, training.svg/.png, posterior/ (the trained posterior, for <code>neurosbi sample</code>), simulations/ (the simulation store).</p></body></html>\n");
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
        let h = html(&ReportInput {
            title: "t",
            summary: &sum,
            method: "NPE",
            simulations: &[(10, 0)],
            features: &["a".into()],
            x_o: &[1.0],
            timings: &[],
            figures: &[("fig", "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>")],
            png: None,
        })
        .unwrap();
        assert!(h.contains("g&lt;Na&gt;"));
        assert!(h.contains("data:image/svg+xml;base64,"));
        assert!(!h.contains("http://") || !h.contains("src=\"http"));
        assert!(!h.contains("<svg"), "figures are inlined as data URIs");
    }
}
