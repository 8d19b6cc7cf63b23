//! Spike and action-potential features with eFEL's definitions and defaults
//! (eFEL 5.7: threshold -20 mV, derivative threshold 10 mV/ms, traces interpolated to
//! 0.1 ms before analysis; times in ms, voltages in mV).
//!
//! [`efel_values`] returns exactly the array eFEL returns for a feature (per spike for
//! spike-shape features); [`EfelFeature`] reduces it to one number with a [`Reducer`].

mod trace;

pub use trace::{EfelResult, EfelTrace, interpolate};

use crate::error::FeatureError;
use crate::feature::{Feature, Input, Outcome, Reducer, Undefined};
use crate::params::Params;
use crate::set::CatalogueEntry;

/// eFEL settings used by the catalogued features (eFEL's defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EfelSettings {
    /// Spike detection threshold (mV), `Threshold`.
    pub threshold: f64,
    /// AP onset dV/dt threshold (mV/ms), `DerivativeThreshold`.
    pub derivative_threshold: f64,
    /// AP end dV/dt threshold (mV/ms), `DownDerivativeThreshold`.
    pub down_derivative_threshold: f64,
    /// Interpolation step (ms), `interp_step`.
    pub interp_step: f64,
    /// Samples dV/dt must stay above threshold at AP onset, `DerivativeWindow`.
    pub derivative_window: usize,
    /// `burst_factor`.
    pub burst_factor: f64,
    /// `ignore_first_ISI`.
    pub ignore_first_isi: bool,
}

impl Default for EfelSettings {
    fn default() -> Self {
        Self {
            threshold: -20.0,
            derivative_threshold: 10.0,
            down_derivative_threshold: -12.0,
            interp_step: 0.1,
            derivative_window: 3,
            burst_factor: 1.5,
            ignore_first_isi: true,
        }
    }
}

macro_rules! efel_kinds {
    ($($variant:ident => $name:literal, $per_spike:literal, $unit:literal, $summary:literal;)*) => {
        /// The eFEL features of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types, missing_docs)]
        pub enum EfelKind { $($variant),* }

        impl EfelKind {
            /// All kinds.
            pub const ALL: &'static [EfelKind] = &[$(EfelKind::$variant),*];
            /// eFEL's name.
            pub fn name(self) -> &'static str { match self { $(EfelKind::$variant => $name),* } }
            /// Whether eFEL returns one value per spike (reduced by a [`Reducer`]).
            pub fn per_spike(self) -> bool { match self { $(EfelKind::$variant => $per_spike),* } }
            /// Unit.
            pub fn unit(self) -> &'static str { match self { $(EfelKind::$variant => $unit),* } }
            /// One-line definition.
            pub fn summary(self) -> &'static str { match self { $(EfelKind::$variant => $summary),* } }
            /// Kind called `name`.
            pub fn from_name(name: &str) -> Option<Self> { Self::ALL.iter().copied().find(|k| k.name() == name) }
        }
    };
}

efel_kinds! {
    spike_count => "spike_count", false, "count", "number of peaks (0 without spikes)";
    mean_frequency => "mean_frequency", false, "Hz", "spikes in [stim_start, stim_end] * 1000 / (last such peak - stim_start)";
    time_to_first_spike => "time_to_first_spike", false, "ms", "first peak time - stim_start";
    time_to_second_spike => "time_to_second_spike", false, "ms", "second peak time - stim_start";
    time_to_last_spike => "time_to_last_spike", false, "ms", "last peak time - stim_start";
    inv_first_ISI => "inv_first_ISI", false, "Hz", "1000 / first ISI";
    doublet_ISI => "doublet_ISI", false, "ms", "first ISI";
    ISI_CV => "ISI_CV", false, "1", "std (ddof 1) / mean of ISIs, first ISI ignored";
    ISI_values => "ISI_values", true, "ms", "ISIs with the first ignored (reducer mean gives the mean ISI)";
    all_ISI_values => "all_ISI_values", true, "ms", "all ISIs";
    adaptation_index2 => "adaptation_index2", false, "1", "mean of (ISI(i+1)-ISI(i))/(ISI(i+1)+ISI(i)) from the second ISI, spikes in the stimulus";
    burst_number => "burst_number", false, "count", "number of bursts (ISI > burst_factor * median of preceding ISIs)";
    peak_voltage => "peak_voltage", true, "mV", "voltage at each peak";
    AP_height => "AP_height", true, "mV", "voltage at each peak (same as peak_voltage)";
    AP_amplitude => "AP_amplitude", true, "mV", "peak voltage - voltage at AP begin, peaks in the stimulus";
    AP_begin_voltage => "AP_begin_voltage", true, "mV", "voltage at AP begin";
    AP_width => "AP_width", true, "ms", "time above Threshold between AHP minima";
    AP_duration => "AP_duration", true, "ms", "AP end time - AP begin time";
    AP_duration_half_width => "AP_duration_half_width", true, "ms", "width at half (begin-to-peak) amplitude";
    AP_rise_time => "AP_rise_time", true, "ms", "peak time - AP begin time";
    AP_fall_time => "AP_fall_time", true, "ms", "AP end time - peak time";
    AHP_depth_abs => "AHP_depth_abs", true, "mV", "voltage at each AHP minimum";
    AHP_depth => "AHP_depth", true, "mV", "AHP minimum - voltage_base";
    voltage_base => "voltage_base", false, "mV", "mean voltage in [0.9, 1.0] * stim_start";
    steady_state_voltage_stimend => "steady_state_voltage_stimend", false, "mV", "mean voltage over the last 10 % of the stimulus";
    voltage_deflection => "voltage_deflection", false, "mV", "mean of 5 samples ending 5 samples before stim_end - mean before stim_start";
    voltage_deflection_vb_ssse => "voltage_deflection_vb_ssse", false, "mV", "steady_state_voltage_stimend - voltage_base";
    minimum_voltage => "minimum_voltage", false, "mV", "minimum voltage in [stim_start, stim_end)";
    maximum_voltage => "maximum_voltage", false, "mV", "maximum voltage in [stim_start, stim_end)";
    sag_amplitude => "sag_amplitude", false, "mV", "steady_state_voltage_stimend - minimum_voltage, for hyperpolarising steps";
    ohmic_input_resistance => "ohmic_input_resistance", false, "MOhm", "voltage_deflection / stimulus_current (mV / nA)";
    decay_time_constant_after_stim => "decay_time_constant_after_stim", false, "ms", "exponential decay constant fitted 1 to 10 ms after stim_end";
}

fn fail<T>(reason: &'static str) -> EfelResult<T> {
    Err(reason)
}

fn non_empty(v: &[usize], what: &'static str) -> EfelResult<()> {
    if v.is_empty() { Err(what) } else { Ok(()) }
}

fn all_isi(tr: &EfelTrace) -> EfelResult<Vec<f64>> {
    let pt = tr.peak_times()?;
    if pt.len() < 2 {
        return fail("two spikes required for ISIs");
    }
    Ok(pt.windows(2).map(|w| w[1] - w[0]).collect())
}

fn isi_values(tr: &EfelTrace) -> EfelResult<Vec<f64>> {
    let mut isi = all_isi(tr)?;
    if tr.settings.ignore_first_isi {
        isi.remove(0);
    }
    Ok(isi)
}

fn voltage_base(tr: &EfelTrace) -> EfelResult<f64> {
    tr.valid()?;
    let (start, end) = (tr.stim_start * 0.9, tr.stim_start * 1.0);
    if start >= end {
        return fail("voltage_base: window [0.9, 1.0] * stim_start is empty");
    }
    let a = tr.t.iter().position(|&t| t >= start).unwrap_or(0);
    let mut b = tr.t.len();
    for i in (1..tr.t.len()).rev() {
        if tr.t[i] - end < 1e-10 {
            b = i + 1;
            break;
        }
    }
    let m = tr.mean_between(a, b);
    if m.is_finite() {
        Ok(m)
    } else {
        fail("voltage_base: no samples in the window")
    }
}

fn steady_state_stimend(tr: &EfelTrace) -> EfelResult<f64> {
    tr.valid()?;
    let start = tr.stim_end - 0.1 * (tr.stim_end - tr.stim_start);
    let (a, b) = (tr.index_at(start), tr.index_at(tr.stim_end));
    if b <= a {
        fail("steady_state_voltage_stimend: empty window")
    } else {
        Ok(tr.mean_between(a, b))
    }
}

fn min_max_voltage(tr: &EfelTrace) -> EfelResult<(f64, f64)> {
    tr.valid()?;
    let last = *tr.t.last().unwrap_or(&0.0);
    if tr.stim_start > last {
        return fail("stimulus start larger than max time in trace");
    }
    let a = tr.index_at(tr.stim_start);
    let b = tr.index_at(tr.stim_end.min(last));
    if a >= tr.t.len() || b >= tr.t.len() {
        return fail("stimulus index not found");
    }
    if a >= b {
        // std::min_element on an empty range points at its end.
        return Ok((tr.v[b], tr.v[b]));
    }
    let s = &tr.v[a..b];
    Ok((
        s.iter().copied().fold(f64::INFINITY, f64::min),
        s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    ))
}

fn voltage_deflection(tr: &EfelTrace) -> EfelResult<f64> {
    tr.valid()?;
    const W: usize = 5;
    let (mut base, mut base_n, mut end_idx) = (0.0, 0usize, 0usize);
    for (i, &t) in tr.t.iter().enumerate() {
        if t < tr.stim_start {
            base += tr.v[i];
            base_n += 1;
        }
        if t > tr.stim_end {
            end_idx = i;
            break;
        }
    }
    if base_n == 0 || end_idx < 2 * W {
        return fail("voltage_deflection: no baseline or stimulus end too early");
    }
    let wind: f64 = tr.v[end_idx - 2 * W..end_idx - W].iter().sum::<f64>() / W as f64;
    Ok(wind - base / base_n as f64)
}

fn decay_time_constant(tr: &EfelTrace) -> EfelResult<f64> {
    tr.valid()?;
    let s = tr.index_at(tr.stim_start);
    let a = tr.index_at(tr.stim_end + 1.0);
    let b = tr.index_at(tr.stim_end + 10.0);
    if s >= tr.v.len() || b <= a {
        return fail("no data points to calculate decay_time_constant_after_stim");
    }
    let reference = tr.v[s];
    let (mut sx, mut sy, mut sx2, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for i in a..b {
        let (x, y) = (tr.t[i], (tr.v[i] - reference).abs().ln());
        sx += x;
        sy += y;
        sx2 += x * x;
        sxy += x * y;
    }
    let n = (b - a) as f64;
    let slope = (n * sxy - sx * sy) / (n * sx2 - sx * sx);
    let tau = (-1.0 / slope).abs();
    if tau.is_finite() {
        Ok(tau)
    } else {
        fail("decay fit is degenerate")
    }
}

fn burst_number(tr: &EfelTrace) -> EfelResult<f64> {
    let (Ok(isi), Ok(pt)) = (isi_values(tr), tr.peak_times()) else {
        return Ok(0.0);
    };
    if isi.len() < 4 {
        return Ok(0.0);
    }
    let f = tr.settings.burst_factor;
    let mut idx: Vec<usize> = Vec::new();
    let mut count: isize = -1;
    for i in 1..isi.len() - 1 {
        let prev = &isi[(count + 1) as usize..i];
        if prev.is_empty() {
            continue;
        }
        let med = crate::moments::percentile(prev, 50.0);
        if isi[i] > f * med && isi[i + 1] < isi[i] / f {
            idx.push(i + 1);
            count = i as isize - 1;
        }
    }
    if idx.is_empty() {
        return Ok(0.0);
    }
    idx.push(pt.len() - 1);
    let extra = idx.windows(2).filter(|w| w[1] - w[0] != 1).count();
    Ok((1 + extra) as f64)
}

/// eFEL's value array for `kind` (one value for scalar features).
pub fn efel_values(tr: &EfelTrace, kind: EfelKind) -> EfelResult<Vec<f64>> {
    use EfelKind as K;
    let one = |x: EfelResult<f64>| x.map(|v| vec![v]);
    match kind {
        K::spike_count => Ok(vec![tr.peaks().map(|p| p.len()).unwrap_or(0) as f64]),
        K::mean_frequency => {
            let pt = tr.peak_times()?;
            if pt.is_empty() {
                return fail("no spikes");
            }
            let (mut last, mut n) = (0.0, 0);
            for &t in &pt {
                if t >= tr.stim_start && t <= tr.stim_end {
                    last = t;
                    n += 1;
                }
            }
            if last == tr.stim_start {
                return fail("prevent divide by zero");
            }
            Ok(vec![n as f64 * 1000.0 / (last - tr.stim_start)])
        }
        K::time_to_first_spike | K::time_to_second_spike | K::time_to_last_spike => {
            let pt = tr.peak_times()?;
            let t = match kind {
                K::time_to_first_spike => pt.first(),
                K::time_to_second_spike => pt.get(1),
                _ => pt.last(),
            };
            t.map(|t| vec![t - tr.stim_start])
                .ok_or("not enough spikes")
        }
        K::inv_first_ISI => Ok(vec![1000.0 / all_isi(tr)?[0]]),
        K::doublet_ISI => Ok(vec![all_isi(tr)?[0]]),
        K::ISI_CV => {
            let isi = isi_values(tr)?;
            if isi.len() < 2 {
                return fail("ISI_CV needs two ISIs after the ignored first one");
            }
            let n = isi.len() as f64;
            let m = isi.iter().sum::<f64>() / n;
            let var = isi.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
            Ok(vec![var.sqrt() / m])
        }
        K::ISI_values => isi_values(tr),
        K::all_ISI_values => all_isi(tr),
        K::adaptation_index2 => {
            let pt = tr.peak_times()?;
            let s: Vec<f64> = pt
                .iter()
                .copied()
                .filter(|&t| t >= tr.stim_start && t <= tr.stim_end)
                .collect();
            if pt.len() < 4 || s.len() < 4 {
                return fail("at least 4 spikes within the stimulus needed for adaptation_index2");
            }
            let isi: Vec<f64> = s[1..].windows(2).map(|w| w[1] - w[0]).collect();
            let adi: f64 = isi.windows(2).map(|w| (w[1] - w[0]) / (w[1] + w[0])).sum();
            Ok(vec![adi / (isi.len() - 1) as f64])
        }
        K::burst_number => one(burst_number(tr)),
        K::peak_voltage | K::AP_height => {
            let p = tr.peaks()?;
            non_empty(p, "no peaks")?;
            Ok(p.iter().map(|&i| tr.v[i]).collect())
        }
        K::AP_amplitude => {
            let p = tr.peaks()?;
            non_empty(p, "no peaks")?;
            let apbi = tr.ap_begin()?;
            non_empty(apbi, "no AP begin")?;
            let during: Vec<f64> = p
                .iter()
                .filter(|&&i| tr.t[i] >= tr.stim_start && tr.t[i] <= tr.stim_end)
                .map(|&i| tr.v[i])
                .collect();
            if during.len() > apbi.len() {
                return fail("more peaks during the stimulus than AP_begin_indices");
            }
            Ok(during
                .iter()
                .zip(apbi)
                .map(|(pv, &b)| pv - tr.v[b])
                .collect())
        }
        K::AP_begin_voltage => {
            let apbi = tr.ap_begin()?;
            non_empty(apbi, "no AP begin")?;
            Ok(apbi.iter().map(|&b| tr.v[b]).collect())
        }
        K::AP_width => {
            let p = tr.peaks()?;
            non_empty(p, "no peaks")?;
            let ahp = tr.min_ahp()?;
            let th = tr.settings.threshold;
            let mut idx = vec![0usize];
            idx.extend_from_slice(ahp);
            Ok(idx
                .windows(2)
                .map(|w| {
                    let onset = (w[0]..w[1]).find(|&k| tr.v[k] >= th).unwrap_or(w[1]);
                    let end = (onset..w[1]).find(|&k| tr.v[k] <= th).unwrap_or(w[1]);
                    tr.t[end] - tr.t[onset]
                })
                .collect())
        }
        K::AP_duration => {
            let (b, e) = (tr.ap_begin()?, tr.ap_end()?);
            non_empty(b, "no AP begin")?;
            non_empty(e, "no AP end")?;
            Ok(b.iter().zip(e).map(|(&b, &e)| tr.t[e] - tr.t[b]).collect())
        }
        K::AP_duration_half_width => {
            let (p, b, e) = (tr.peaks()?, tr.ap_begin()?, tr.ap_end()?);
            non_empty(b, "no AP begin")?;
            non_empty(e, "no AP end")?;
            let v = &tr.v;
            let n = b.len().min(p.len());
            let mut rise = vec![0usize; n];
            for i in 0..n {
                if p[i] < b[i] {
                    return fail("peak and AP begin indices out of order");
                }
                let half = (v[p[i]] + v[b[i]]) / 2.0;
                rise[i] = b[i] + argmin_abs(&v[b[i]..p[i]], half);
            }
            let mut fall = vec![0usize; n];
            for i in 0..n {
                let Some(&ei) = e.get(i) else { continue };
                if p[i] > ei {
                    continue;
                }
                let half = (v[p[i]] + v[b[i]]) / 2.0;
                fall[i] = p[i] + argmin_abs(&v[p[i]..ei], half);
            }
            Ok(rise
                .iter()
                .zip(&fall)
                .map(|(&r, &f)| tr.t[f] - tr.t[r])
                .collect())
        }
        K::AP_rise_time => {
            let (p, b) = (tr.peaks()?, tr.ap_begin()?);
            non_empty(p, "no peaks")?;
            non_empty(b, "no AP begin")?;
            let np: Vec<usize> = p.iter().copied().filter(|&i| i > b[0]).collect();
            let n = b.len().min(p.len()).min(np.len());
            let v = &tr.v;
            Ok((0..n)
                .map(|i| {
                    let (bi, pi) = (b[i], np[i]);
                    let amp = v[pi] - v[bi];
                    let (begin_v, end_v) = (v[bi], v[bi] + amp);
                    let mut j = bi;
                    while j < pi && v[j] < begin_v - 1e-13 {
                        j += 1;
                    }
                    let begin = j;
                    let mut j = pi;
                    while j > bi && v[j] > end_v + 1e-13 {
                        j -= 1;
                    }
                    tr.t[j] - tr.t[begin]
                })
                .collect())
        }
        K::AP_fall_time => {
            let (p, e) = (tr.peaks()?, tr.ap_end()?);
            non_empty(p, "no peaks")?;
            non_empty(e, "no AP end")?;
            let np: Vec<usize> = p
                .iter()
                .copied()
                .filter(|&i| tr.t[i] > tr.stim_start)
                .collect();
            let n = p.len().min(e.len()).min(np.len());
            Ok((0..n).map(|i| tr.t[e[i]] - tr.t[np[i]]).collect())
        }
        K::AHP_depth_abs => Ok(tr.min_ahp()?.iter().map(|&i| tr.v[i]).collect()),
        K::AHP_depth => {
            let vb = voltage_base(tr)?;
            Ok(tr.min_ahp()?.iter().map(|&i| tr.v[i] - vb).collect())
        }
        K::voltage_base => one(voltage_base(tr)),
        K::steady_state_voltage_stimend => one(steady_state_stimend(tr)),
        K::voltage_deflection => one(voltage_deflection(tr)),
        K::voltage_deflection_vb_ssse => one(Ok(steady_state_stimend(tr)? - voltage_base(tr)?)),
        K::minimum_voltage => one(min_max_voltage(tr).map(|m| m.0)),
        K::maximum_voltage => one(min_max_voltage(tr).map(|m| m.1)),
        K::sag_amplitude => {
            let ssse = steady_state_stimend(tr)?;
            let vd = ssse - voltage_base(tr)?;
            let min = min_max_voltage(tr)?.0;
            if vd <= 0.0 {
                Ok(vec![ssse - min])
            } else {
                fail("sag_amplitude: voltage deflection is positive")
            }
        }
        K::ohmic_input_resistance => {
            let vd = voltage_deflection(tr)?;
            match tr.stimulus_current {
                Some(i) if i != 0.0 => Ok(vec![vd / i]),
                Some(_) => fail("stimulus current is zero"),
                None => fail("the recording has no stimulus_current"),
            }
        }
        K::decay_time_constant_after_stim => one(decay_time_constant(tr)),
    }
}

fn argmin_abs(v: &[f64], target: f64) -> usize {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if (x - target).abs() < (v[best] - target).abs() {
            best = k;
        }
    }
    best
}

/// An eFEL feature reduced to one number.
#[derive(Debug, Clone, PartialEq)]
pub struct EfelFeature {
    /// Which feature.
    pub kind: EfelKind,
    /// Reducer for per-spike features (ignored for scalar ones).
    pub reducer: Reducer,
    /// eFEL settings.
    pub settings: EfelSettings,
}

impl Feature for EfelFeature {
    fn name(&self) -> String {
        let d = EfelSettings::default();
        let mut p = Vec::new();
        if self.kind.per_spike() && self.reducer != Reducer::Mean {
            p.push(format!("reducer={}", self.reducer.label()));
        }
        let s = &self.settings;
        for (k, a, b) in [
            ("threshold", s.threshold, d.threshold),
            (
                "derivative_threshold",
                s.derivative_threshold,
                d.derivative_threshold,
            ),
            ("interp_step", s.interp_step, d.interp_step),
        ] {
            if a != b {
                p.push(format!("{k}={a}"));
            }
        }
        if p.is_empty() {
            self.kind.name().into()
        } else {
            format!("{}({})", self.kind.name(), p.join(", "))
        }
    }

    fn compute(&self, input: &Input<'_>, out: &mut [Outcome]) {
        let tr = input.efel(&self.settings);
        out[0] = match efel_values(&tr, self.kind) {
            Err(reason) => Err(Undefined(reason)),
            Ok(v) if self.kind.per_spike() => self.reducer.reduce(&v),
            Ok(v) => v
                .first()
                .copied()
                .ok_or(Undefined("eFEL returned no value")),
        }
        .and_then(|x| {
            if x.is_finite() {
                Ok(x)
            } else {
                Err(Undefined("eFEL value is not finite"))
            }
        });
    }
}

fn build(p: &mut Params) -> Result<Box<dyn Feature>, FeatureError> {
    let kind = EfelKind::from_name(p.feature()).ok_or_else(|| FeatureError::UnknownFeature {
        name: p.feature().to_string(),
        close_matches: Vec::new(),
    })?;
    let reducer = if kind.per_spike() {
        let r = p.choice("reducer", &["mean", "first", "last", "std"])?;
        Reducer::from_name(r).unwrap_or(Reducer::Mean)
    } else {
        Reducer::Mean
    };
    let d = EfelSettings::default();
    let settings = EfelSettings {
        threshold: p.f64("threshold", d.threshold)?,
        derivative_threshold: p.f64("derivative_threshold", d.derivative_threshold)?,
        interp_step: p.positive("interp_step", d.interp_step)?,
        ..d
    };
    Ok(Box::new(EfelFeature {
        kind,
        reducer,
        settings,
    }))
}

pub(crate) fn entries() -> Vec<CatalogueEntry> {
    EfelKind::ALL
        .iter()
        .map(|&k| CatalogueEntry {
            name: k.name(),
            group: "efel",
            unit: k.unit(),
            summary: k.summary(),
            params: if k.per_spike() {
                "reducer=mean|first|last|std, threshold=-20, derivative_threshold=10, interp_step=0.1"
            } else {
                "threshold=-20, derivative_threshold=10, interp_step=0.1"
            },
            build,
        })
        .collect()
}
