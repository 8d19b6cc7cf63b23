//! Figures: pairplot of posterior samples, posterior-predictive traces over the observed
//! ones, and training curves; each as SVG text and as a PNG file.

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
            let h = hist(&cols[c], xlo, xhi, bins);
            let hmax = h.iter().cloned().fold(1.0, f64::max);
            let mut ch = ChartBuilder::on(area)
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(10)
                .build_cartesian_2d(xlo..xhi, 0.0..hmax * 1.05)
                .map_err(|x| e(&x))?;
            ch.configure_mesh()
                .disable_y_mesh()
                .disable_x_mesh()
                .y_labels(0)
                .x_labels(4)
                .x_desc(xl)
                .draw()
                .map_err(|x| e(&x))?;
            let w = (xhi - xlo) / bins as f64;
            ch.draw_series(h.iter().enumerate().map(|(b, v)| {
                let x0 = xlo + b as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, *v)], RGBColor(70, 110, 180).filled())
            }))
            .map_err(|x| e(&x))?;
            if let Some(t) = p.truth {
                ch.draw_series(LineSeries::new(
                    [(t[c], 0.0), (t[c], hmax * 1.05)],
                    RED.stroke_width(2),
                ))
                .map_err(|x| e(&x))?;
            }
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
        ch.draw_series(LineSeries::new(
            p.observed
                .iter()
                .enumerate()
                .step_by(step)
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
    fn histogram_counts_every_sample_inside() {
        let v = [0.1, 0.2, 0.9, 1.5, -0.1];
        let h = hist(&v, 0.0, 1.0, 4);
        assert_eq!(h.iter().sum::<f64>(), 3.0);
        assert_eq!(h[0], 2.0);
        assert_eq!(h[3], 1.0);
    }
}
