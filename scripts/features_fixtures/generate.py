#!/usr/bin/env python3
"""Reference fixtures for crates/neurosbi-features.

Simulates Hodgkin-Huxley (sbi tutorial kinetics) and AdEx traces with numpy at several
stimuli and noise levels, adds edge cases (no spike, one spike, a spike cut at the very
end, a flat line), and records what the peers compute on them:

* eFEL (`efel.get_feature_values`, default settings) for every catalogued eFEL feature,
  as the raw arrays eFEL returns (null when eFEL returns None);
* antropy for every catalogued measure, with the arguments written in the spec string;
* the sbi HH tutorial's `calculate_summary_statistics` (copied semantics, numpy/scipy);
* scipy/numpy moments in the stimulus window.

Usage (venv outside the repo):
    python3 -m venv /work/venvs/features
    /work/venvs/features/bin/pip install -r scripts/features_fixtures/requirements.txt
    /work/venvs/features/bin/python scripts/features_fixtures/generate.py

Writes crates/neurosbi-features/tests/fixtures/reference.json. Samples are rounded to
1e-5 mV *before* the peers see them, so Rust reads exactly the peers' input.
"""
import json
import math
import os
import sys
from importlib.metadata import version

import numpy as np
import scipy.stats as spstats

import antropy as ant
import efel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "neurosbi-features", "tests", "fixtures", "reference.json")

EFEL_FEATURES = [
    "spike_count", "mean_frequency", "time_to_first_spike", "time_to_second_spike",
    "time_to_last_spike", "inv_first_ISI", "doublet_ISI", "ISI_CV", "ISI_values",
    "all_ISI_values", "adaptation_index2", "burst_number", "peak_voltage", "AP_height",
    "AP_amplitude", "AP_begin_voltage", "AP_width", "AP_duration", "AP_duration_half_width",
    "AP_rise_time", "AP_fall_time", "AHP_depth_abs", "AHP_depth", "voltage_base",
    "steady_state_voltage_stimend", "voltage_deflection", "voltage_deflection_vb_ssse",
    "minimum_voltage", "maximum_voltage", "sag_amplitude", "ohmic_input_resistance",
    "decay_time_constant_after_stim",
]

# (spec understood by neurosbi-features, python callable on the trace)
ANTROPY = [
    ("perm_entropy", lambda x: ant.perm_entropy(x)),
    ("perm_entropy(order=4, delay=2, normalize=true)", lambda x: ant.perm_entropy(x, order=4, delay=2, normalize=True)),
    ("perm_entropy(order=5, delay=1)", lambda x: ant.perm_entropy(x, order=5, delay=1)),
    ("spectral_entropy(method=fft)", lambda x: ant.spectral_entropy(x, sf=1000.0, method="fft")),
    ("spectral_entropy(method=welch)", lambda x: ant.spectral_entropy(x, sf=1000.0, method="welch")),
    ("spectral_entropy(method=welch, nperseg=100, normalize=true)",
     lambda x: ant.spectral_entropy(x, sf=1000.0, method="welch", nperseg=100, normalize=True)),
    ("svd_entropy", lambda x: ant.svd_entropy(x)),
    ("svd_entropy(order=4, delay=2, normalize=true)", lambda x: ant.svd_entropy(x, order=4, delay=2, normalize=True)),
    ("app_entropy", lambda x: ant.app_entropy(x)),
    ("sample_entropy", lambda x: ant.sample_entropy(x)),
    ("sample_entropy(order=3, tolerance=0.5)", lambda x: ant.sample_entropy(x, order=3, tolerance=0.5)),
    ("lziv_complexity", lambda x: ant.lziv_complexity((x >= np.median(x)).astype(int))),
    ("lziv_complexity(normalize=true)", lambda x: ant.lziv_complexity((x >= np.median(x)).astype(int), normalize=True)),
    ("num_zerocross", lambda x: ant.num_zerocross(x)),
    ("num_zerocross(normalize=true)", lambda x: ant.num_zerocross(x, normalize=True)),
    ("hjorth_mobility", lambda x: ant.hjorth_params(x)[0]),
    ("hjorth_complexity", lambda x: ant.hjorth_params(x)[1]),
    ("petrosian_fd", lambda x: ant.petrosian_fd(x)),
    ("katz_fd", lambda x: ant.katz_fd(x)),
    ("higuchi_fd", lambda x: ant.higuchi_fd(x)),
    ("higuchi_fd(kmax=5)", lambda x: ant.higuchi_fd(x, kmax=5)),
    ("detrended_fluctuation", lambda x: ant.detrended_fluctuation(x)),
]


def hh(i_na, dt, t_end, t_on, t_off, noise, seed, g_na=50.0, g_k=5.0):
    """sbi tutorial HH (Pospischil, M-current), exponential Euler, current in nA."""
    rng = np.random.default_rng(seed)
    area = math.pi * (70e-4) ** 2  # cm^2
    gl, gm, c, el, ena, ek, vt, tau_max = 0.1, 0.07, 1.0, -70.0, 53.0, -107.0, -60.0, 6e2
    n_steps = int(round(t_end / dt)) + 1
    t = np.arange(n_steps) * dt
    i_amp = i_na * 1e-3 / area  # uA/cm^2
    stim = np.where((t >= t_on) & (t < t_off), i_amp, 0.0)

    def efun(z):
        return np.where(np.abs(z) < 1e-4, 1 - z / 2, z / np.expm1(z))

    def rates(v):
        v1 = v - vt
        am = 0.32 * efun(-0.25 * (v1 - 13.0)) / 0.25
        bm = 0.28 * efun(0.2 * (v1 - 40.0)) / 0.2
        ah = 0.128 * np.exp(-(v1 - 17.0) / 18.0)
        bh = 4.0 / (1.0 + np.exp(-0.2 * (v1 - 40.0)))
        an = 0.032 * efun(-0.2 * (v1 - 15.0)) / 0.2
        bn = 0.5 * np.exp(-(v1 - 10.0) / 40.0)
        return am, bm, ah, bh, an, bn

    v = np.empty(n_steps)
    v[0] = el
    am, bm, ah, bh, an, bn = rates(el)
    m, h, n = am / (am + bm), ah / (ah + bh), an / (an + bn)
    p = 1.0 / (1.0 + np.exp(-(el + 35.0) / 10.0))
    for k in range(1, n_steps):
        vk = v[k - 1]
        am, bm, ah, bh, an, bn = rates(vk)
        p_inf = 1.0 / (1.0 + np.exp(-(vk + 35.0) / 10.0))
        tau_p = tau_max / (3.3 * np.exp((vk + 35.0) / 20.0) + np.exp(-(vk + 35.0) / 20.0))
        m = (am / (am + bm)) + (m - am / (am + bm)) * np.exp(-dt * (am + bm))
        h = (ah / (ah + bh)) + (h - ah / (ah + bh)) * np.exp(-dt * (ah + bh))
        n = (an / (an + bn)) + (n - an / (an + bn)) * np.exp(-dt * (an + bn))
        p = p_inf + (p - p_inf) * np.exp(-dt / tau_p)
        g = gl + 50.0 * 0 + g_na * m ** 3 * h + g_k * n ** 4 + gm * p
        e = gl * el + g_na * m ** 3 * h * ena + (g_k * n ** 4 + gm * p) * ek
        i_tot = stim[k - 1] + noise * rng.standard_normal() / math.sqrt(dt)
        v_inf = (e + i_tot) / g
        tau_v = c / g
        v[k] = v_inf + (vk - v_inf) * np.exp(-dt / tau_v)
    return v


def adex(i_na, dt, t_end, t_on, t_off, noise, seed, a=4.0, b=0.0805, tau_w=144.0, v_r=-70.6):
    """Adaptive exponential IF (Brette & Gerstner 2005), Euler, mV / ms / nA / nS / pF."""
    rng = np.random.default_rng(seed)
    c, gl, el, vt, dT = 281.0, 30.0, -70.6, -50.4, 2.0
    n_steps = int(round(t_end / dt)) + 1
    v = np.empty(n_steps)
    v[0], w = el, 0.0
    for k in range(1, n_steps):
        t = (k - 1) * dt
        i = (i_na if t_on <= t < t_off else 0.0) * 1e3  # pA
        vk = v[k - 1]
        if vk >= 0.0:  # the sample after a peak is the reset
            vk = v_r
            w += b * 1e3
        dv = (-gl * (vk - el) + gl * dT * np.exp(min((vk - vt) / dT, 30.0)) - w + i) / c
        dw = (a * (vk - el) - w) / tau_w
        vn = vk + dt * dv + noise * math.sqrt(dt) * rng.standard_normal()
        w = w + dt * dw
        v[k] = min(vn, 20.0)
    return v


def sbi_tutorial_stats(x, dt, t_on, t_off):
    """sbi's `calculate_summary_statistics` (hh_helper_functions.py), seven statistics."""
    n_mom = 4
    t = np.arange(x.size) * dt
    v = np.array(x)
    ind = np.where(v < -10)
    v[ind] = -10
    ind = np.where(np.diff(v) < 0)
    v[ind] = -10
    ind = np.where(np.diff(v) < 0)
    spike_times = np.array(t)[ind]
    spike_times_stim = spike_times[(spike_times > t_on) & (spike_times < t_off)]
    if spike_times_stim.shape[0] > 0:
        spike_times_stim = spike_times_stim[np.append(1, np.diff(spike_times_stim)) > 0.5]
    rest_pot = np.mean(x[t < t_on])
    rest_pot_std = np.std(x[int(0.9 * t_on / dt): int(t_on / dt)])
    std_pw = np.power(np.std(x[(t > t_on) & (t < t_off)]), np.linspace(3, n_mom, n_mom - 2))
    std_pw = np.concatenate((np.ones(1), std_pw))
    moments = spstats.moment(x[(t > t_on) & (t < t_off)], np.linspace(2, n_mom, n_mom - 1)) / std_pw
    return np.concatenate((np.array([spike_times_stim.shape[0]]),
                           np.array([rest_pot, rest_pot_std, np.mean(x[(t > t_on) & (t < t_off)])]), moments))


def enc(x):
    """JSON-safe float: NaN and infinities as strings."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def traces():
    t_on, t_off, t_end, dt = 10.0, 110.0, 120.0, 0.025
    out = []
    for i_na, noise, seed in [(0.5, 0.0, 1), (0.3, 0.1, 2), (1.0, 0.1, 3), (0.2, 0.0, 4), (0.05, 0.05, 5)]:
        out.append((f"hh_I{i_na}_noise{noise}", hh(i_na, dt, t_end, t_on, t_off, noise, seed), dt, t_on, t_off, i_na))
    # Hyperpolarising step: subthreshold features (sag, input resistance, decay).
    out.append(("hh_I-0.2", hh(-0.2, dt, t_end, t_on, t_off - 20.0, 0.0, 6), dt, t_on, t_off - 20.0, -0.2))
    out.append(("adex_I1.5", adex(1.5, dt, t_end, t_on, t_off, 0.0, 7), dt, t_on, t_off, 1.5))
    out.append(("adex_burst_I1.2", adex(1.2, dt, t_end, t_on, t_off, 0.0, 8, v_r=-47.2), dt, t_on, t_off, 1.2))
    out.append(("adex_I1.4_noise0.5", adex(1.4, dt, t_end, t_on, t_off, 0.5, 9), dt, t_on, t_off, 1.4))
    # Longer trace (>= 5000 samples): antropy's sample_entropy takes its KD-tree path.
    out.append(("adex_long_I1.2_noise0.3", adex(1.2, 0.02, 150.0, 10.0, 140.0, 0.3, 10), 0.02, 10.0, 140.0, 1.2))
    # The sbi tutorial's own sampling (dt 0.01 ms, 12 001 samples): eFEL decimates to 0.1 ms.
    out.append(("hh_dt0.01_I0.7_noise0.1", hh(0.7, 0.01, t_end, t_on, t_off, 0.1, 12), 0.01, t_on, t_off, 0.7))
    out.append(("adex_dt0.01_I1.3", adex(1.3, 0.01, t_end, t_on, t_off, 0.2, 13), 0.01, t_on, t_off, 1.3))
    # Spikes before the declared stimulus window (exercises eFEL's in-window filters).
    late = hh(1.0, dt, t_end, t_on, t_off, 0.1, 3)
    out.append(("hh_declared_stim_40_90", late, dt, 40.0, 90.0, 1.0))
    # Edge cases.
    one = hh(3.0, dt, 40.0, 10.0, 12.0, 0.0, 11)
    out.append(("one_spike", one, dt, 10.0, 30.0, 3.0))
    full = hh(0.5, dt, t_end, t_on, t_off, 0.0, 1)
    first_peak = int(np.argmax(full > -20.0))
    out.append(("spike_at_end", full[: first_peak + 3], dt, t_on, (first_peak + 2) * dt, 0.5))
    out.append(("flat", np.full(2001, -65.0), dt, 10.0, 40.0, 0.1))
    return out


def main():
    fixtures = []
    for name, v, dt, t_on, t_off, i_na in traces():
        v = np.round(np.asarray(v, dtype=np.float64), 5)
        t = np.arange(v.size) * dt
        trace = {"T": t, "V": v, "stim_start": [t_on], "stim_end": [t_off], "stimulus_current": [i_na]}
        efel.reset()
        res = efel.get_feature_values([trace], EFEL_FEATURES, raise_warnings=False)[0]
        efel_out = {k: (None if res[k] is None else [enc(a) for a in np.atleast_1d(res[k])]) for k in EFEL_FEATURES}
        ant_out = {}
        for spec, f in ANTROPY:
            try:
                ant_out[spec] = enc(f(v))
            except Exception as e:  # noqa: BLE001 - record the peer's refusal
                ant_out[spec] = f"error: {type(e).__name__}"
        stim = v[(t > t_on) & (t < t_off)]
        moments = {
            "mean(window=stim)": enc(np.mean(stim)),
            "std(window=stim)": enc(np.std(stim)),
            "var(window=stim)": enc(np.var(stim)),
            "skew(window=stim)": enc(spstats.skew(stim)),
            "kurtosis(window=stim)": enc(spstats.kurtosis(stim)),
            "kurtosis(window=stim, fisher=false)": enc(spstats.kurtosis(stim, fisher=False)),
            "min(window=stim)": enc(np.min(stim)),
            "max(window=stim)": enc(np.max(stim)),
            "percentile(q=90, window=stim)": enc(np.percentile(stim, 90)),
            "percentile(q=12.5)": enc(np.percentile(v, 12.5)),
        }
        fixtures.append({
            "name": name, "dt": dt, "stim_start": t_on, "stim_end": t_off, "stimulus_current": i_na,
            "v": [float(x) for x in v], "efel": efel_out, "antropy": ant_out,
            "sbi_hh_tutorial": [enc(x) for x in sbi_tutorial_stats(v, dt, t_on, t_off)],
            "moments": moments,
        })
        n_spikes = efel_out["spike_count"]
        print(f"{name}: {v.size} samples, eFEL spike_count {n_spikes}", file=sys.stderr)
    meta = {k: version(k) for k in ["efel", "antropy", "numpy", "scipy", "scikit-learn", "numba"]}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/features_fixtures/generate.py", "versions": meta, "traces": fixtures}, f,
                  separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
