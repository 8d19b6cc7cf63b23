#!/usr/bin/env python3
"""Re-simulate two circuit fixtures without Brian2 (numpy only), from the fixture's own data,
with the semantics written in README.md, and compare with what Brian2 recorded.

- graded_pair_euler: summed variable computed first from the state at the step start, then
  every state updater from the state at the step start (Jacobi), threshold with a
  condition-refractoriness on the new state.
- delays: LIF with duration refractoriness, per-synapse delays through a spike queue
  (delivery at step k + round(delay/dt)), on_pre (order -1) before on_post (order 1) in the
  'synapses' slot after 'thresholds', reset last, lazy event-driven traces, and on_pre's
  `v_post += w` dropped for refractory targets (v is `(unless refractory)`).

Usage: /work/venv-lang/bin/python scripts/brian_circuits/check_fixtures.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "brian_circuits"


def ns(f):
    return {k: v["value"] for k, v in f["namespace"].items()}


def init(f, name):
    obj = next(o for o in f["objects"] if o["name"] == name)
    return {k: np.array(v["values"], dtype=float) for k, v in obj["initial"].items()}


def check_graded_pair_euler():
    f = json.loads((FIX / "graded_pair_euler.json").read_text())
    c = ns(f)
    dt, n_steps = f["dt"], f["n_steps"]
    pre, post, syn = init(f, "pre"), init(f, "post"), init(f, "pre_post")
    vp, np_, vq, nq, s, g = pre["v"][0], pre["n"][0], post["v"][0], post["n"][0], syn["s"][0], syn["g"][0]
    I_syn = post["I_syn"][0]
    nr_p = nr_q = True

    def ml(v, n, I):
        m_inf = 0.5 * (1 + math.tanh((v - c["V_1"]) / c["V_2"]))
        n_inf = 0.5 * (1 + math.tanh((v - c["V_3"]) / c["V_4"]))
        lam = c["phi"] * math.cosh((v - c["V_3"]) / (2 * c["V_4"]))
        dv = (-c["g_L"] * (v - c["V_L"]) - c["g_Ca"] * m_inf * (v - c["V_Ca"])
              - c["g_K"] * n * (v - c["V_K"]) + I) / c["C"]
        return dv, lam * (n_inf - n)

    rec = {"vp": [], "vq": [], "s": [], "I": []}
    spk_p, spk_q = [], []
    th = -20e-3
    for k in range(n_steps):
        t = k * dt
        rec["vp"].append(vp); rec["vq"].append(vq); rec["s"].append(s); rec["I"].append(I_syn)
        I_syn = g * s * (c["E_syn"] - vq)                               # groups, order -1
        nr_q = nr_q or not (vq > th)                                    # post_stateupdater
        dv, dn = ml(vq, nq, c["I_bias"] + I_syn)
        vq, nq = vq + dt * dv, nq + dt * dn
        s_inf = 1 / (1 + math.exp((c["V_th"] - vp) / c["Delta"]))       # pre_post_stateupdater
        s = s + dt * (s_inf - s) / c["tau_s"]                           # (old v_pre)
        nr_p = nr_p or not (vp > th)                                    # pre_stateupdater
        dv, dn = ml(vp, np_, c["I_step"] * int(t >= c["t_on"]))
        vp, np_ = vp + dt * dv, np_ + dt * dn
        if vq > th and nr_q:                                            # thresholds
            spk_q.append(k); nr_q = False
        if vp > th and nr_p:
            spk_p.append(k); nr_p = False
    r = f["records"]
    k = r["state_pre"]["record_every"]
    err = {
        "v_pre": np.abs(np.array(rec["vp"][::k]) - r["state_pre"]["values"]["v"]["data"][0]).max(),
        "v_post": np.abs(np.array(rec["vq"][::k]) - r["state_post"]["values"]["v"]["data"][0]).max(),
        "I_syn": np.abs(np.array(rec["I"][::k]) - r["state_post"]["values"]["I_syn"]["data"][0]).max(),
        "s": np.abs(np.array(rec["s"][::k]) - r["state_pre_post"]["values"]["s"]["data"][0]).max(),
    }
    ok = spk_p == r["spikes_pre"]["step"] and spk_q == r["spikes_post"]["step"]
    print(f"graded_pair_euler: spike steps equal: {ok}; max abs errors {err}")
    assert ok and err["v_pre"] < 1e-9 and err["v_post"] < 1e-9 and err["s"] < 1e-9
    # the other orders would differ: e.g. s from the *new* v_pre
    return ok


def check_delays():
    f = json.loads((FIX / "delays.json").read_text())
    c = ns(f)
    dt, n_steps = f["dt"], f["n_steps"]
    cells, rec = init(f, "cells"), next(o for o in f["objects"] if o["name"] == "rec")
    v, drive = cells["v"].copy(), cells["drive"]
    N = len(v)
    si, sj = np.array(rec["i"]), np.array(rec["j"])
    w = np.array(rec["initial"]["w"]["values"], dtype=float)
    Apre = np.zeros(len(si)); Apost = np.zeros(len(si)); last = np.zeros(len(si))
    dsteps = np.array(rec["delay_steps"])
    ref_steps = int((2e-3 + 1e-3 * dt) / dt)                        # timestep(2*ms, dt)
    lastspike = np.full(N, -1e4)
    queue: dict[int, list[int]] = {}
    spikes = []
    vrec = []
    for k in range(n_steps):
        t = k * dt
        vrec.append(v.copy())
        nr = ((t - lastspike + 1e-3 * dt) / dt).astype(np.int64) >= ref_steps
        v = v + dt * nr * (c["El"] - v + drive) / c["taum"]
        spk = np.nonzero((v > c["Vt"]) & nr)[0]
        lastspike[spk] = t
        nr[spk] = False
        spikes += [(k, int(x)) for x in spk]
        for n in spk:                                                  # push with delays
            for syn in np.nonzero(si == n)[0]:
                queue.setdefault(k + int(dsteps[syn]), []).append(int(syn))
        arriving = np.array(sorted(queue.pop(k, [])), dtype=int)       # rec_pre, order -1
        if len(arriving):
            Apost[arriving] *= np.exp(-(t - last[arriving]) / c["taupost"])
            Apre[arriving] *= np.exp(-(t - last[arriving]) / c["taupre"])
            # `v` is (unless refractory): Brian2 drops on_pre writes to it for refractory targets
            # (including neurons that spiked in this very step)
            ok_target = nr[sj[arriving]]
            np.add.at(v, sj[arriving][ok_target], w[arriving][ok_target])
            Apre[arriving] += c["dApre"]
            w[arriving] = np.clip(w[arriving] + Apost[arriving] * c["wmax"], 0, c["wmax"])
            last[arriving] = t
        post_syn = np.nonzero(np.isin(sj, spk))[0]                     # rec_post, order 1
        if len(post_syn):
            Apost[post_syn] *= np.exp(-(t - last[post_syn]) / c["taupost"])
            Apre[post_syn] *= np.exp(-(t - last[post_syn]) / c["taupre"])
            Apost[post_syn] += c["dApost"]
            w[post_syn] = np.clip(w[post_syn] + Apre[post_syn] * c["wmax"], 0, c["wmax"])
            last[post_syn] = t
        v[spk] = c["Vr"]                                               # resets
    r = f["records"]["spikes_cells"]
    brian = sorted(zip(r["step"], r["i"]))
    ok = sorted(spikes) == brian
    vr = np.array(vrec)[:: f["records"]["state_cells"]["record_every"]].T
    verr = np.abs(vr - np.array(f["records"]["state_cells"]["values"]["v"]["data"])).max()
    werr = np.abs(w - np.array(f["final"]["rec"]["w"])).max()
    print(f"delays: {len(spikes)} spikes, equal to Brian2's: {ok}; max |v - v_brian| {verr:.3g} V, "
          f"max |w_final - w_brian| {werr:.3g} V")
    assert ok and verr < 1e-12 and werr < 1e-12


if __name__ == "__main__":
    check_graded_pair_euler()
    check_delays()
