#!/usr/bin/env python3
"""Re-simulate every fixture with an independent plain-Python loop that follows the
semantics documented in README.md, and report how closely it reproduces Brian2.

This checks the documented semantics (what a reimplementation must do), not Brian2:
order update -> threshold -> reset within a step, spike time = step start,
TimedArray sample k during step k, refractory condition evaluated on the old state,
exponential Euler with A and B of every variable taken from the state at the step start.
Needs only the Python standard library.

Usage (from the repository root):
    python3 scripts/brian2_fixtures/check_fixtures.py
"""

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates" / "neurosbi-sim" / "tests" / "fixtures" / "brian2"
MV = 1e-3
MS = 1e-3


def hh_c_rates(v, c):
    vt = c["VT"]
    am = (-0.32 / MV) * (v - vt - 13 * MV) / (math.exp(-(v - vt - 13 * MV) / (4 * MV)) - 1) / MS
    bm = (0.28 / MV) * (v - vt - 40 * MV) / (math.exp((v - vt - 40 * MV) / (5 * MV)) - 1) / MS
    ah = 0.128 * math.exp(-(v - vt - 17 * MV) / (18 * MV)) / MS
    bh = 4 / (1 + math.exp(-(v - vt - 40 * MV) / (5 * MV))) / MS
    an = (-0.032 / MV) * (v - vt - 15 * MV) / (math.exp(-(v - vt - 15 * MV) / (5 * MV)) - 1) / MS
    bn = 0.5 * math.exp(-(v - vt - 10 * MV) / (40 * MV)) / MS
    return am, bm, ah, bh, an, bn


def exp_euler(x, a, b, dt):
    """x' = a*x + b over one step, as Brian2 writes it: -B/A + (x + B/A)*exp(A*dt)."""
    ba = b / a
    return -ba + (ba + x) * math.exp(a * dt)


def run_hh_c(fx):
    c, p, dt = fx["constants"], fx["parameters"], fx["dt"]
    s = dict(fx["initial"])
    v, m, h, n = s["v"], s["m"], s["h"], s["n"]
    current = fx["inputs"]["I"]
    not_refractory = True
    trace, spikes = [], []
    for k in range(fx["n_steps"]):
        trace.append(v)  # StateMonitor, when='start'
        t = k * dt
        # refractory as a condition: leaving it is decided on the state at the step start
        not_refractory = not_refractory or not (m > 0.5)
        am, bm, ah, bh, an, bn = hh_c_rates(v, c)
        g_tot = p["gNa"] * m**3 * h + p["gK"] * n**4 + c["gleak"]
        a_v = -g_tot / c["C"]
        b_v = (p["gNa"] * m**3 * h * c["ENa"] + p["gK"] * n**4 * c["EK"] + c["gleak"] * c["Eleak"]
               + current[min(k, len(current) - 1)]) / c["C"]
        v, m, h, n = (
            exp_euler(v, a_v, b_v, dt),
            exp_euler(m, -(am + bm), am, dt),
            exp_euler(h, -(ah + bh), ah, dt),
            exp_euler(n, -(an + bn), an, dt),
        )
        if m > 0.5 and not_refractory:
            spikes.append(t)
            not_refractory = False
    return trace, spikes


def run_adex(fx):
    c, p, dt = fx["constants"], fx["parameters"], fx["dt"]
    v, w = fx["initial"]["v"], fx["initial"]["w"]
    current = fx["inputs"]["I"]
    trace, spikes = [], []
    for k in range(fx["n_steps"]):
        trace.append(v)
        i_k = current[min(k, len(current) - 1)]
        dv = (c["gL"] * (c["EL"] - v) + c["gL"] * c["DeltaT"] * math.exp((v - c["VT"]) / c["DeltaT"])
              + i_k - w) / c["C"]
        dw = (p["a"] * (v - c["EL"]) - w) / p["tau_w"]
        v, w = v + dt * dv, w + dt * dw
        if v > 0.0:
            spikes.append(k * dt)
            v = c["Vr"]
            w += p["b"]
    return trace, spikes


def main():
    for path in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(path.read_text())
        trace, spikes = {"hh_c": run_hh_c, "adex": run_adex}[fx["model"]](fx)
        k = fx["record_every"]
        ours = trace[::k]
        ref = fx["recorded"]["v"]
        assert len(ours) == len(ref)
        max_dv = max(abs(a - b) for a, b in zip(ours, ref))
        ref_spikes = fx["spikes"]
        same_count = len(spikes) == len(ref_spikes)
        max_dt = max((abs(a - b) for a, b in zip(spikes, ref_spikes)), default=0.0)
        print(f"{path.name}: spikes {len(spikes)} vs Brian2 {len(ref_spikes)}, "
              f"max |spike time diff| {max_dt / fx['dt']:.0f} dt, max |v diff| {max_dv / MV:.3g} mV")
        assert same_count and max_dt < 0.5 * fx["dt"], path.name


if __name__ == "__main__":
    main()
