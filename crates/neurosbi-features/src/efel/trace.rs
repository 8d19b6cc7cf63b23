//! eFEL's analysis of one trace, step for step as its C++ core (eFEL 5.7, `LibV*`
//! successors `SpikeEvent.cpp`, `SpikeShape.cpp`, `Subthreshold.cpp`, `Utils.cpp`):
//! linear interpolation to `interp_step`, peak detection, AHP minima, AP begin/end
//! indices. Each intermediate is computed once, on first use.

use std::cell::OnceCell;

use super::EfelSettings;
use crate::recording::Recording;

/// Result of one eFEL quantity: its values, or why eFEL fails to compute it.
pub type EfelResult<T> = Result<T, &'static str>;

/// Longest interpolated trace analysed (samples).
const MAX_INTERPOLATED: f64 = 5e7;

/// An interpolated trace and its lazily computed spike analysis.
pub struct EfelTrace {
    /// Interpolated times (ms).
    pub t: Vec<f64>,
    /// Interpolated voltages (mV).
    pub v: Vec<f64>,
    /// Stimulus onset (ms).
    pub stim_start: f64,
    /// Stimulus offset (ms).
    pub stim_end: f64,
    /// Stimulus amplitude (nA), if given.
    pub stimulus_current: Option<f64>,
    pub(crate) settings: EfelSettings,
    valid: EfelResult<()>,
    peaks: OnceCell<EfelResult<Vec<usize>>>,
    min_ahp: OnceCell<EfelResult<Vec<usize>>>,
    dvdt: OnceCell<Vec<f64>>,
    ap_begin: OnceCell<EfelResult<Vec<usize>>>,
    ap_end: OnceCell<EfelResult<Vec<usize>>>,
}

/// eFEL's `LinearInterpolation`: abscissae accumulate `step` from the first time (as
/// numpy.arange), one more point is added when the last falls short of the end.
pub fn interpolate(step: f64, x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (start, stop) = (x[0], x[x.len() - 1]);
    let size = ((stop - start) / step).ceil() as usize;
    let mut ix = Vec::with_capacity(size + 1);
    let mut xc = start;
    for _ in 0..size {
        ix.push(xc);
        xc += step;
    }
    if ix.last().is_none_or(|&l| l < stop) {
        ix.push(xc);
    }
    let mut iy = Vec::with_capacity(ix.len());
    let mut j = 0usize;
    for &xv in &ix {
        while x[j + 1] < xv {
            j += 1;
            if j + 1 >= x.len() {
                j = x.len() - 1;
                break;
            }
        }
        if j == x.len() - 1 {
            iy.push(y[j]);
            break;
        }
        let dydx = (y[j + 1] - y[j]) / (x[j + 1] - x[j]);
        iy.push(y[j] + dydx * (xv - x[j]));
    }
    ix.truncate(iy.len());
    (ix, iy)
}

/// eFEL's `getCentralDifferenceDerivative` with dx = 1.
fn central_difference(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let mut d = Vec::with_capacity(n);
    d.push(v[1] - v[0]);
    for i in 1..n - 1 {
        d.push((v[i + 1] - v[i - 1]) / 2.0);
    }
    d.push(v[n - 1] - v[n - 2]);
    d
}

/// eFEL's `first_min_element`: the first local minimum that stays the lowest for two
/// further samples, else the global (first) minimum.
fn first_min_element(v: &[f64]) -> usize {
    if v.is_empty() {
        return 0;
    }
    let (mut lowest, mut lowest_min, mut counter) = (0usize, 0usize, 0);
    for k in 1..v.len() {
        if v[k] < v[lowest] {
            lowest = k;
        }
        if v[k] >= v[lowest_min] {
            counter += 1;
        }
        if v[k] < v[lowest_min] {
            counter = 0;
            lowest_min = k;
        }
        if counter == 2 {
            return lowest_min;
        }
    }
    lowest
}

/// Index of the first minimum of a non-empty slice (`std::min_element`).
fn argmin(v: &[f64]) -> usize {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if x < v[best] {
            best = k;
        }
    }
    best
}

impl EfelTrace {
    /// Interpolates `rec` as eFEL does (times `i * dt`).
    pub fn new(rec: &Recording<'_>, settings: &EfelSettings) -> Self {
        let n = rec.values.len();
        // Interpolation to a fixed step can blow a coarse, long trace up without bound.
        let interpolated = rec.duration() / settings.interp_step;
        let (t, v, valid) = if n < 3 {
            (
                Vec::new(),
                Vec::new(),
                Err("eFEL needs at least three samples"),
            )
        } else if interpolated.is_nan() || interpolated > MAX_INTERPOLATED {
            (
                Vec::new(),
                Vec::new(),
                Err("interpolated trace would exceed 50 million samples"),
            )
        } else {
            let t: Vec<f64> = (0..n).map(|i| rec.time(i)).collect();
            let (t, v) = interpolate(settings.interp_step, &t, rec.values);
            (t, v, Ok(()))
        };
        Self {
            t,
            v,
            stim_start: rec.stim_start,
            stim_end: rec.stim_end,
            stimulus_current: rec.stimulus_current,
            settings: settings.clone(),
            valid,
            peaks: OnceCell::new(),
            min_ahp: OnceCell::new(),
            dvdt: OnceCell::new(),
            ap_begin: OnceCell::new(),
            ap_end: OnceCell::new(),
        }
    }

    /// Fails when the trace was too short to interpolate.
    pub fn valid(&self) -> EfelResult<()> {
        self.valid
    }

    /// First index with `t >= x` (eFEL's `get_index`), `len` when none.
    pub fn index_at(&self, x: f64) -> usize {
        self.t.partition_point(|&t| t < x)
    }

    /// `peak_indices`: maximum between each upward and the next downward threshold crossing.
    pub fn peaks(&self) -> EfelResult<&[usize]> {
        self.peaks
            .get_or_init(|| {
                self.valid?;
                let (v, th) = (&self.v, self.settings.threshold);
                let (mut up, mut dn) = (Vec::new(), Vec::new());
                for i in 1..v.len() {
                    if v[i] > th && v[i - 1] < th {
                        up.push(i);
                    } else if v[i] < th && v[i - 1] > th {
                        dn.push(i);
                    }
                }
                if dn.is_empty() {
                    return Err("voltage never goes below or above threshold in spike detection");
                }
                if up.is_empty() {
                    return Err("voltage never goes above threshold in spike detection");
                }
                let skip = dn.iter().take_while(|&&d| d < up[0]).count();
                let dn = &dn[skip..];
                up.truncate(dn.len());
                let mut peaks = Vec::with_capacity(up.len());
                for (&u, &d) in up.iter().zip(dn) {
                    let (mut best, mut at) = (-1e9, None);
                    for (j, &x) in v.iter().enumerate().take(d + 1).skip(u) {
                        if best < x {
                            best = x;
                            at = Some(j);
                        }
                    }
                    if let Some(j) = at {
                        peaks.push(j);
                    }
                }
                Ok(peaks)
            })
            .as_ref()
            .map(|p| p.as_slice())
            .map_err(|e| *e)
    }

    /// `peak_time`.
    pub fn peak_times(&self) -> EfelResult<Vec<f64>> {
        Ok(self.peaks()?.iter().map(|&i| self.t[i]).collect())
    }

    /// `min_AHP_indices`: first minimum between consecutive peaks and after the last one.
    pub fn min_ahp(&self) -> EfelResult<&[usize]> {
        self.min_ahp
            .get_or_init(|| {
                let peaks = self.peaks()?;
                if peaks.is_empty() {
                    return Err("no peaks for min_AHP_indices");
                }
                let end = self.v.len();
                let mut out = Vec::new();
                for (k, &p) in peaks.iter().enumerate() {
                    let next = peaks.get(k + 1).copied().unwrap_or(end);
                    if next < p {
                        continue;
                    }
                    let idx = p + first_min_element(&self.v[p..next]);
                    if idx != end - 1 {
                        out.push(idx);
                    }
                }
                if out.is_empty() {
                    Err("no AHP minimum found")
                } else {
                    Ok(out)
                }
            })
            .as_ref()
            .map(|p| p.as_slice())
            .map_err(|e| *e)
    }

    /// dV/dt by central differences (mV/ms).
    pub fn dvdt(&self) -> &[f64] {
        self.dvdt.get_or_init(|| {
            if self.v.len() < 2 {
                return Vec::new();
            }
            let dv = central_difference(&self.v);
            let dt = central_difference(&self.t);
            dv.iter().zip(&dt).map(|(a, b)| a / b).collect()
        })
    }

    /// `AP_begin_indices`: last sample before each peak (after stimulus onset) where
    /// dV/dt rises through `DerivativeThreshold` and stays above it for
    /// `DerivativeWindow` samples.
    pub fn ap_begin(&self) -> EfelResult<&[usize]> {
        self.ap_begin
            .get_or_init(|| {
                let pi = self.peaks()?;
                if pi.is_empty() {
                    return Err("no peaks for AP_begin_indices");
                }
                let ahpi: &[usize] = self.min_ahp().unwrap_or(&[]);
                let dvdt = self.dvdt();
                let th = self.settings.derivative_threshold;
                let width = self.settings.derivative_window;
                let stim_begin = self.index_at(self.stim_start);
                let mut minima = vec![match stim_begin {
                    0 => 0,
                    1 => 0,
                    s => s - 2,
                }];
                minima.extend(ahpi.iter().copied().filter(|&a| a > stim_begin));
                let peaks: Vec<usize> = pi.iter().copied().filter(|&p| p > stim_begin).collect();
                if minima.len() < peaks.len() {
                    return Err("more peaks than min_AHP in AP_begin_indices");
                }
                let end = self.t.len() as isize;
                let mut out = Vec::new();
                for (i, &peak) in peaks.iter().enumerate() {
                    let lo = minima[i];
                    let mut newbegin = peak as isize;
                    let mut skip = false;
                    let mut begin;
                    loop {
                        // Search backwards from newbegin-1 down to lo for dV/dt <= th;
                        // begin is one past the hit, or lo when there is none.
                        begin = lo as isize;
                        let mut k = newbegin - 1;
                        while k >= lo as isize {
                            if dvdt[k as usize] <= th {
                                begin = k + 1;
                                break;
                            }
                            k -= 1;
                        }
                        if begin > end - width as isize {
                            begin = end - width as isize;
                        }
                        if begin == lo as isize || begin < 0 {
                            skip = true;
                            break;
                        }
                        newbegin = begin - 1;
                        let b = begin as usize;
                        if !dvdt[b..(b + width).min(dvdt.len())].iter().any(|&d| d < th) {
                            break;
                        }
                    }
                    if !skip {
                        out.push(begin as usize);
                    }
                }
                Ok(out)
            })
            .as_ref()
            .map(|p| p.as_slice())
            .map_err(|e| *e)
    }

    /// `AP_end_indices`: after the steepest fall following each peak, the first sample
    /// where dV/dt is back above `DownDerivativeThreshold`.
    pub fn ap_end(&self) -> EfelResult<&[usize]> {
        self.ap_end
            .get_or_init(|| {
                let pi = self.peaks()?;
                if pi.is_empty() {
                    return Err("no peaks for AP_end_indices");
                }
                let dvdt = self.dvdt();
                let th = self.settings.down_derivative_threshold;
                let stim_begin = self.index_at(self.stim_start);
                let mut peaks: Vec<usize> =
                    pi.iter().copied().filter(|&p| p > stim_begin).collect();
                peaks.push(self.v.len() - 1);
                let mut out = Vec::new();
                for w in peaks.windows(2) {
                    let (start, end) = (w[0] + 1, w[1]);
                    if start >= end || start >= dvdt.len() || end >= dvdt.len() {
                        continue;
                    }
                    let steepest = start + argmin(&dvdt[start..end]);
                    if let Some(k) = (steepest..end).find(|&k| dvdt[k] >= th) {
                        out.push(k);
                    }
                }
                Ok(out)
            })
            .as_ref()
            .map(|p| p.as_slice())
            .map_err(|e| *e)
    }

    /// Mean of `v` over `[a, b)`; NaN when empty (as eFEL's `vec_mean`).
    pub fn mean_between(&self, a: usize, b: usize) -> f64 {
        let s = &self.v[a.min(b)..b];
        s.iter().sum::<f64>() / s.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_reproduces_lines_and_appends_the_end() {
        let x = [0.0, 0.25, 0.5, 0.75, 1.0, 1.05];
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let (ix, iy) = interpolate(0.1, &x, &y);
        assert_eq!(ix.len(), 12);
        for (a, b) in ix.iter().zip(&iy) {
            if *a <= 1.05 {
                assert!((b - (2.0 * a + 1.0)).abs() < 1e-12);
            }
        }
        assert_eq!(*iy.last().unwrap(), y[5]);
    }

    #[test]
    fn first_min_element_takes_a_settled_minimum() {
        assert_eq!(first_min_element(&[5.0, 3.0, 4.0, 4.0, 1.0]), 1);
        assert_eq!(first_min_element(&[5.0, 3.0, 2.0]), 2);
    }
}
