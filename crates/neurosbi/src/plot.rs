//! Figures: pairplot of posterior samples, posterior-predictive traces over the observed
//! ones, training curves, and the diagnostics of `neurosbi check` (SBC rank histograms,
//! expected coverage, posterior-predictive feature intervals); each as SVG text and as a
//! PNG file.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The font used for PNG text (DejaVu Sans, see assets/DejaVuSans-LICENSE.txt); SVG text is
/// rendered by the viewer.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; a failure would only lose PNG text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn perr(path: &str) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Plot {
        path: path.to_string(),
        message,
    }
}

type Draw<'a> = dyn Fn(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String> + 'a;
type DrawPng<'a> =
    dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String> + 'a;

/// Renders a figure to `stem.svg` and `stem.png` in `dir`; returns the SVG text.
fn render(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    svg: &Draw<'_>,
    png: &DrawPng<'_>,
) -> Result<String> {
    register_font();
    let svg_path = dir.join(format!("{stem}.svg"));
    let png_path = dir.join(format!("{stem}.png"));
    let name = svg_path.display().to_string();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&name)(e.to_string()))?;
        svg(&root).map_err(perr(&name))?;
        root.present().map_err(|e| perr(&name)(e.to_string()))?;
    }
    std::fs::write(&svg_path, &text).map_err(Error::io(&svg_path))?;
    let pname = png_path.display().to_string();
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&pname)(e.to_string()))?;
        png(&root).map_err(perr(&pname))?;
        root.present().map_err(|e| perr(&pname)(e.to_string()))?;
    }
    Ok(text)
}

/// Axis range covering the central 99 % of `v` (and `extra` values such as the truth),
/// widened by 5 %.
fn range(v: &[f64], extra: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = if s.is_empty() {
        (0.0, 1.0)
    } else {
        (
            s[(s.len() as f64 * 0.005) as usize],
            s[((s.len() as f64 * 0.995) as usize).min(s.len() - 1)],
        )
    };
    for e in extra.iter().filter(|x| x.is_finite()) {
        lo = lo.min(*e);
        hi = hi.max(*e);
    }
    let w = (hi - lo).max(1e-12 * lo.abs().max(1.0));
    (lo - 0.05 * w, hi + 0.05 * w)
}

fn hist(v: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    for x in v {
        if *x >= lo && *x < hi {
            let b = (((x - lo) / (hi - lo)) * bins as f64) as usize;
            h[b.min(bins - 1)] += 1.0;
        }
    }
    h
}

/// Pairplot data: samples (row-major `n x d`), names, optional truth and conditioning point.
pub struct PairData<'a> {
    /// Samples.
    pub samples: &'a [f64],
    /// Axis labels.
    pub labels: &'a [String],
    /// Ground truth to mark.
    pub truth: Option<&'a [f64]>,
}

fn pair_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &PairData<'_>,
) -> std::result::Result<(), String> {
    let d = p.labels.len();
    let n = p.samples.len() / d.max(1);
    let col = |j: usize| -> Vec<f64> { (0..n).map(|i| p.samples[i * d + j]).collect() };
    let cols: Vec<Vec<f64>> = (0..d).map(col).collect();
    let ranges: Vec<(f64, f64)> = (0..d)
        .map(|j| range(&cols[j], p.truth.map(|t| &t[j..=j]).unwrap_or(&[])))
        .collect();
    let areas = root.split_evenly((d, d));
    let bins = 40;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for (k, area) in areas.iter().enumerate() {
        let (r, c) = (k / d, k % d);
        if r < c {
            continue;
        }
        let (xlo, xhi) = ranges[c];
        let xl = if r == d - 1 { p.labels[c].as_str() } else { "" };
        if r == c {
            let truth = p.truth.map(|t| t[c]);
            histogram_panel(area, &cols[c], (xlo, xhi), bins, (xl, 4, 10), truth)?;
        } else {
            let (ylo, yhi) = ranges[r];
            let yl = if c == 0 { p.labels[r].as_str() } else { "" };
            let mut ch = ChartBuilder::on(area)
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(xlo..xhi, ylo..yhi)
                .map_err(|x| e(&x))?;
            ch.configure_mesh()
                .disable_mesh()
                .x_labels(4)
                .y_labels(4)
                .x_desc(xl)
                .y_desc(yl)
                .draw()
                .map_err(|x| e(&x))?;
            let nb = 30;
            let mut grid = vec![0.0f64; nb * nb];
            for (&x, &y) in cols[c].iter().zip(&cols[r]) {
                if x >= xlo && x < xhi && y >= ylo && y < yhi {
                    let bx = (((x - xlo) / (xhi - xlo)) * nb as f64) as usize;
                    let by = (((y - ylo) / (yhi - ylo)) * nb as f64) as usize;
                    grid[by.min(nb - 1) * nb + bx.min(nb - 1)] += 1.0;
                }
            }
            let gmax = grid.iter().cloned().fold(1.0, f64::max);
            let (wx, wy) = ((xhi - xlo) / nb as f64, (yhi - ylo) / nb as f64);
            ch.draw_series(
                grid.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(g, v)| {
                        let (bx, by) = (g % nb, g / nb);
                        let a = (v / gmax).sqrt();
                        let shade = |base: f64| (255.0 - a * (255.0 - base)) as u8;
                        let color = RGBColor(shade(30.0), shade(60.0), shade(140.0));
                        let x0 = xlo + bx as f64 * wx;
                        let y0 = ylo + by as f64 * wy;
                        Rectangle::new([(x0, y0), (x0 + wx, y0 + wy)], color.filled())
                    }),
            )
            .map_err(|x| e(&x))?;
            if let Some(t) = p.truth {
                ch.draw_series(std::iter::once(Cross::new(
                    (t[c], t[r]),
                    7,
                    RED.stroke_width(2),
                )))
                .map_err(|x| e(&x))?;
            }
        }
    }
    Ok(())
}

/// Writes `pairplot.svg` and `pairplot.png` (or `stem`): marginal histograms on the diagonal,
/// 2-D histograms below it, the truth in red. Returns the SVG text.
pub fn pairplot(dir: &Path, stem: &str, p: &PairData<'_>) -> Result<String> {
    let d = p.labels.len().max(1) as u32;
    let size = (220 * d + 40, 220 * d + 20);
    render(dir, stem, size, &|a| pair_draw(a, p), &|a| pair_draw(a, p))
}

/// Marginal histograms of many parameters on a grid, each over a given axis range (e.g. the
/// prior's support): what a pairplot of 31 parameters cannot show legibly.
pub struct MarginalData<'a> {
    /// Samples (row-major `n x d`).
    pub samples: &'a [f64],
    /// Axis labels (one per parameter).
    pub labels: &'a [String],
    /// Axis range per parameter.
    pub ranges: &'a [(f64, f64)],
    /// Panels per row.
    pub columns: usize,
}

fn marginals_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &MarginalData<'_>,
) -> std::result::Result<(), String> {
    let d = m.labels.len();
    let cols = m.columns.max(1);
    let areas = root.split_evenly((d.div_ceil(cols), cols));
    let bins = 30;
    for (j, area) in areas.iter().enumerate().take(d) {
        let (lo, hi) = m.ranges[j];
        let col: Vec<f64> = m.samples.iter().skip(j).step_by(d).copied().collect();
        histogram_panel(
            area,
            &col,
            (lo, hi),
            bins,
            (m.labels[j].as_str(), 3, 6),
            None,
        )?;
    }
    Ok(())
}

/// One histogram panel of `v` over `(lo, hi)` with its x label, number of x ticks and y
/// label area (`label`), and a red line at `truth`: a pairplot's diagonal, a marginal.
fn histogram_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    v: &[f64],
    (lo, hi): (f64, f64),
    bins: usize,
    (label, x_ticks, y_area): (&str, usize, u32),
    truth: Option<f64>,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let h = hist(v, lo, hi, bins);
    let hmax = h.iter().cloned().fold(1.0, f64::max);
    let mut ch = ChartBuilder::on(area)
        .margin(6)
        .x_label_area_size(30)
        .y_label_area_size(y_area)
        .build_cartesian_2d(lo..hi, 0.0..hmax * 1.05)
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_labels(x_ticks)
        .x_desc(label)
        .draw()
        .map_err(|x| e(&x))?;
    let w = (hi - lo) / bins as f64;
    ch.draw_series(h.iter().enumerate().map(|(b, v)| {
        let x0 = lo + b as f64 * w;
        Rectangle::new([(x0, 0.0), (x0 + w, *v)], RGBColor(70, 110, 180).filled())
    }))
    .map_err(|x| e(&x))?;
    if let Some(t) = truth {
        ch.draw_series(LineSeries::new(
            [(t, 0.0), (t, hmax * 1.05)],
            RED.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// Writes `stem.svg`/`.png`: one marginal histogram per parameter (see [`MarginalData`]).
/// Returns the SVG text.
pub fn marginals(dir: &Path, stem: &str, m: &MarginalData<'_>) -> Result<String> {
    let rows = m.labels.len().div_ceil(m.columns.max(1)) as u32;
    let size = (180 * m.columns.max(1) as u32, 130 * rows.max(1));
    render(dir, stem, size, &|a| marginals_draw(a, m), &|a| {
        marginals_draw(a, m)
    })
}

/// Traces to overlay: observed (black) and predictive (blue), per output and input trace.
pub struct TracePanel {
    /// Title, e.g. `v, trace 0`.
    pub title: String,
    /// Time step (ms).
    pub dt_ms: f64,
    /// Observed samples (or spike times in ms when `spikes`).
    pub observed: Vec<f64>,
    /// Predictive simulations.
    pub predicted: Vec<Vec<f64>>,
    /// Axis label.
    pub unit: String,
    /// Whether these are spike trains (raster) instead of traces.
    pub spikes: bool,
}

fn traces_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[TracePanel],
) -> std::result::Result<(), String> {
    let areas = root.split_evenly((panels.len().max(1), 1));
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for (p, area) in panels.iter().zip(areas.iter()) {
        if p.spikes {
            let tmax = p
                .observed
                .iter()
                .chain(p.predicted.iter().flatten())
                .cloned()
                .fold(1.0, f64::max);
            let rows = p.predicted.len() as f64 + 1.0;
            let mut ch = ChartBuilder::on(area)
                .caption(&p.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..tmax * 1.02, -0.5..rows)
                .map_err(|x| e(&x))?;
            ch.configure_mesh()
                .disable_mesh()
                .x_desc("time (ms)")
                .y_desc("train")
                .draw()
                .map_err(|x| e(&x))?;
            let mut ticks = Vec::new();
            for t in &p.observed {
                ticks.push((*t, 0.0, BLACK));
            }
            for (k, tr) in p.predicted.iter().enumerate() {
                for t in tr {
                    ticks.push((*t, k as f64 + 1.0, RGBColor(70, 110, 180)));
                }
            }
            ch.draw_series(ticks.into_iter().map(|(t, y, c)| {
                PathElement::new(vec![(t, y - 0.4), (t, y + 0.4)], c.stroke_width(1))
            }))
            .map_err(|x| e(&x))?;
            continue;
        }
        let n = p.observed.len();
        let t_end = n as f64 * p.dt_ms;
        let all = p.observed.iter().chain(p.predicted.iter().flatten());
        let (lo, hi) = all
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        let (lo, hi) = if lo < hi {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        };
        let pad = 0.05 * (hi - lo);
        let mut ch = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_end, (lo - pad)..(hi + pad))
            .map_err(|x| e(&x))?;
        ch.configure_mesh()
            .disable_mesh()
            .x_desc("time (ms)")
            .y_desc(p.unit.as_str())
            .draw()
            .map_err(|x| e(&x))?;
        // Thin long traces for drawing: at most ~2000 points per line.
        let step = (n / 2000).max(1);
        for tr in &p.predicted {
            ch.draw_series(LineSeries::new(
                tr.iter()
                    .enumerate()
                    .step_by(step)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (i as f64 * p.dt_ms, *v)),
                RGBColor(70, 110, 180).mix(0.35).stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        }
        // Gaps (NaN) in the observed trace are left out, as in the predicted ones; a panel
        // without a recorded trace passes only NaN.
        ch.draw_series(LineSeries::new(
            p.observed
                .iter()
                .enumerate()
                .step_by(step)
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64 * p.dt_ms, *v)),
            BLACK.stroke_width(1),
        ))
        .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// Writes `traces.svg`/`.png`: posterior-predictive simulations (blue) over the observed
/// data (black). Returns the SVG text.
pub fn traces(dir: &Path, panels: &[TracePanel]) -> Result<String> {
    let size = (900, 260 * panels.len().max(1) as u32);
    render(dir, "traces", size, &|a| traces_draw(a, panels), &|a| {
        traces_draw(a, panels)
    })
}

/// Writes `stem.svg`/`.png` with one panel (a recorded sweep under its posterior-predictive
/// simulations). Returns the SVG text.
pub fn trace_figure(dir: &Path, stem: &str, panel: &TracePanel) -> Result<String> {
    let one = std::slice::from_ref(panel);
    render(dir, stem, (900, 300), &|a| traces_draw(a, one), &|a| {
        traces_draw(a, one)
    })
}

fn curves_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rounds: &[(Vec<f64>, Vec<f64>)],
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut pts: Vec<(f64, f64, bool, usize)> = Vec::new();
    let mut epoch = 0usize;
    for (r, (tr, va)) in rounds.iter().enumerate() {
        for (i, (a, b)) in tr.iter().zip(va).enumerate() {
            pts.push(((epoch + i + 1) as f64, *a, true, r));
            pts.push(((epoch + i + 1) as f64, *b, false, r));
        }
        epoch += tr.len();
    }
    let fin: Vec<f64> = pts.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let (lo, hi) = range(&fin, &[]);
    let mut ch = ChartBuilder::on(root)
        .caption("training (per-pair loss)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..(epoch.max(1) as f64 + 1.0), lo..hi)
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .disable_mesh()
        .x_desc("epoch (all rounds)")
        .y_desc("loss")
        .draw()
        .map_err(|x| e(&x))?;
    for (train, color, label) in [
        (true, RGBColor(70, 110, 180), "training"),
        (false, RGBColor(220, 120, 30), "validation"),
    ] {
        for r in 0..rounds.len() {
            let s = ch
                .draw_series(LineSeries::new(
                    pts.iter()
                        .filter(|p| p.2 == train && p.3 == r && p.1.is_finite())
                        .map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(|x| e(&x))?;
            if r == 0 {
                s.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// Writes `training.svg`/`.png`: training and validation loss per epoch, rounds in sequence.
pub fn training_curves(dir: &Path, rounds: &[(Vec<f64>, Vec<f64>)]) -> Result<String> {
    render(
        dir,
        "training",
        (800, 400),
        &|a| curves_draw(a, rounds),
        &|a| curves_draw(a, rounds),
    )
}

/// Equal-width histogram bins of SBC ranks in `0..=n_posterior`.
fn rank_histogram(ranks: &[usize], n_posterior: usize, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    for &r in ranks {
        let b = (r * bins / (n_posterior + 1)).min(bins - 1);
        h[b] += 1.0;
    }
    h
}

/// The band that each bin count of a uniform rank histogram stays in with probability 0.99
/// (binomial, normal approximation), as in Talts et al. 2018's figures.
fn uniform_band(n: usize, bins: usize) -> (f64, f64) {
    let p = 1.0 / bins as f64;
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    ((mean - 2.576 * sd).max(0.0), mean + 2.576 * sd)
}

fn sbc_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    names: &[String],
    ranks: &[usize],
    n_posterior: usize,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let dim = names.len().max(1);
    let rounds = ranks.len() / dim;
    let bins = (rounds / 10).clamp(4, 20);
    let (band_lo, band_hi) = uniform_band(rounds, bins);
    let panels = root.split_evenly((1, dim));
    for (j, (panel, name)) in panels.iter().zip(names).enumerate() {
        let col: Vec<usize> = ranks.iter().skip(j).step_by(dim).copied().collect();
        let h = rank_histogram(&col, n_posterior, bins);
        let top = h.iter().copied().fold(band_hi, f64::max) * 1.1;
        let mut ch = ChartBuilder::on(panel)
            .caption(format!("SBC ranks: {name}"), ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..bins as f64, 0.0..top)
            .map_err(|x| e(&x))?;
        ch.configure_mesh()
            .disable_mesh()
            .x_desc("rank bin")
            .y_desc("count")
            .draw()
            .map_err(|x| e(&x))?;
        ch.draw_series(std::iter::once(Rectangle::new(
            [(0.0, band_lo), (bins as f64, band_hi)],
            RGBColor(200, 200, 200).mix(0.6).filled(),
        )))
        .map_err(|x| e(&x))?;
        ch.draw_series(h.iter().enumerate().map(|(b, &c)| {
            Rectangle::new(
                [(b as f64 + 0.05, 0.0), (b as f64 + 0.95, c)],
                RGBColor(70, 110, 180).filled(),
            )
        }))
        .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// Writes `check_sbc.svg`/`.png`: the SBC rank histogram of each parameter (`ranks` row-major,
/// one column per name) over the grey band a uniform histogram stays in 99 % of the time.
pub fn sbc_ranks(
    dir: &Path,
    names: &[String],
    ranks: &[usize],
    n_posterior: usize,
) -> Result<String> {
    let w = 320 * names.len().max(1) as u32;
    render(
        dir,
        "check_sbc",
        (w.max(480), 320),
        &|a| sbc_draw(a, names, ranks, n_posterior),
        &|a| sbc_draw(a, names, ranks, n_posterior),
    )
}

fn coverage_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    levels: &[f64],
    coverage: &[f64],
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut ch = ChartBuilder::on(root)
        .caption("expected coverage", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .disable_mesh()
        .x_desc("credibility level")
        .y_desc("empirical coverage")
        .draw()
        .map_err(|x| e(&x))?;
    ch.draw_series(LineSeries::new(
        [(0.0, 0.0), (1.0, 1.0)],
        RGBColor(150, 150, 150).stroke_width(1),
    ))
    .map_err(|x| e(&x))?
    .label("calibrated")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    let pts: Vec<(f64, f64)> = levels
        .iter()
        .copied()
        .zip(coverage.iter().copied())
        .collect();
    let blue = RGBColor(70, 110, 180);
    ch.draw_series(LineSeries::new(pts.iter().copied(), blue.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label("posterior")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    ch.draw_series(pts.iter().map(|&p| Circle::new(p, 3, blue.filled())))
        .map_err(|x| e(&x))?;
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// Writes `check_coverage.svg`/`.png`: empirical against nominal coverage of central
/// credible intervals (under the diagonal: overconfident; above: underconfident).
pub fn coverage(dir: &Path, levels: &[f64], coverage: &[f64]) -> Result<String> {
    render(
        dir,
        "check_coverage",
        (480, 420),
        &|a| coverage_draw(a, levels, coverage),
        &|a| coverage_draw(a, levels, coverage),
    )
}

/// One summary feature of the posterior-predictive check, in the feature's own unit.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictiveFeature {
    /// Feature column name.
    pub name: String,
    /// Value of the observation.
    pub observed: f64,
    /// 2.5 %, 50 % and 97.5 % quantiles over the posterior-predictive simulations.
    pub quantiles: [f64; 3],
}

fn ppc_draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[PredictiveFeature],
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    // Each feature on its own scale: positions relative to its 95 % interval, so that
    // features of different units share one axis (-1 and 1 are the interval's ends).
    let rel = |r: &PredictiveFeature, v: f64| {
        let [lo, mid, hi] = r.quantiles;
        let half = ((hi - lo) / 2.0).max(1e-300);
        ((v - mid) / half).clamp(-4.0, 4.0)
    };
    let n = rows.len().max(1) as i32;
    let mut ch = ChartBuilder::on(root)
        .caption(
            "posterior predictive: observed feature vs 95 % predictive interval",
            ("sans-serif", 14),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(170)
        .build_cartesian_2d(-4.2..4.2, (0..n).into_segmented())
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .disable_mesh()
        .x_desc("position relative to the interval (-1, 1: its ends)")
        .y_labels(n as usize)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => rows
                .get(*i as usize)
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|x| e(&x))?;
    let grey = RGBColor(150, 150, 150);
    for (i, r) in rows.iter().enumerate() {
        let y = SegmentValue::CenterOf(i as i32);
        ch.draw_series(LineSeries::new(
            [(-1.0, y.clone()), (1.0, y.clone())],
            grey.stroke_width(4),
        ))
        .map_err(|x| e(&x))?;
        let v = rel(r, r.observed);
        let color = if v.abs() <= 1.0 {
            RGBColor(70, 110, 180)
        } else {
            RGBColor(200, 50, 50)
        };
        ch.draw_series(std::iter::once(Circle::new((v, y), 5, color.filled())))
            .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// Writes `check_ppc.svg`/`.png`: for each feature, where the observed value falls relative
/// to the central 95 % interval of the posterior-predictive simulations (red: outside).
pub fn predictive_features(dir: &Path, rows: &[PredictiveFeature]) -> Result<String> {
    let h = 80 + 28 * rows.len().max(1) as u32;
    render(dir, "check_ppc", (720, h), &|a| ppc_draw(a, rows), &|a| {
        ppc_draw(a, rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_covers_truth_and_central_mass() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let (lo, hi) = range(&v, &[2000.0]);
        assert!(lo < 5.0 && hi > 2000.0);
    }

    #[test]
    fn rank_histogram_counts_every_rank_once_and_uniform_band_holds_its_mean() {
        let ranks: Vec<usize> = (0..=99).collect();
        let h = rank_histogram(&ranks, 99, 10);
        assert_eq!(h, vec![10.0; 10]);
        let (lo, hi) = uniform_band(100, 10);
        assert!(lo < 10.0 && hi > 10.0 && lo > 0.0);
        // The top rank lands in the last bin, never past it.
        assert_eq!(rank_histogram(&[99], 99, 7)[6], 1.0);
    }

    #[test]
    fn histogram_counts_every_sample_inside() {
        let v = [0.1, 0.2, 0.9, 1.5, -0.1];
        let h = hist(&v, 0.0, 1.0, 4);
        assert_eq!(h.iter().sum::<f64>(), 3.0);
        assert_eq!(h[0], 2.0);
        assert_eq!(h[3], 1.0);
    }
}
