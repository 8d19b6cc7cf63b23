#!/usr/bin/env python3
"""Checks that MODEL.md describes the package's simulator exactly: a fresh numpy
implementation written from MODEL.md alone (equations, constants, initial values,
update order) against `pyloric.simulate` on fixture cases, noise-free.

  PYTHONPATH=$PYLORIC_SRC python scripts/pyloric/check_model_md.py [t_max_ms]

Prints the largest difference in V (mV) per case; differences at rounding level mean
the description is complete.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shim"))
from pyloric import simulate  # noqa: E402
from pyloric.utils import to_pyloric_pd  # noqa: E402

FIX = os.path.join(HERE, "..", "..", "crates", "neurosbi-features", "tests", "fixtures", "pyloric")


def mh(v, a, b):
    return 1.0 / (1.0 + np.exp((v + a) / b))


def mh2(v, a1, b1, a2, b2):
    return 1.0 / (np.exp((v + a1) / b1) + np.exp((v + a2) / b2))


def gates(v, ca):
    """(x_inf, tau) of the 11 gates in the order mNa, hNa, mCaT, hCaT, mCaS, hCaS, mA, hA,
    mKCa, mKd, mH (MODEL.md, "Gating functions")."""
    return [
        (mh(v, 25.5, -5.29), 2.64 - 2.52 * mh(v, 120, -25)),
        (mh(v, 48.9, 5.18), (1.34 / (1 + np.exp((v + 62.9) / -10))) * (1.5 + 1 / (1 + np.exp((v + 34.9) / 3.6)))),
        (mh(v, 27.1, -7.2), 43.4 - 42.6 * mh(v, 68.1, -20.5)),
        (mh(v, 32.1, 5.5), 210 - 179.6 * mh(v, 55, -16.9)),
        (mh(v, 33, -8.1), 2.8 + 14 * mh2(v, 27, 10, 70, -13)),
        (mh(v, 60, 6.2), 120 + 300 * mh2(v, 55, 9, 65, -16)),
        (mh(v, 27.2, -8.7), 23.2 - 20.8 * mh(v, 32.9, -15.2)),
        (mh(v, 56.9, 4.9), 77.2 - 58.4 * mh(v, 38.9, -26.5)),
        (ca / (ca + 3) * mh(v, 28.3, -12.6), 180.6 - 150.2 * mh(v, 46, -22.7)),
        (mh(v, 12.3, -11.8), 14.4 - 12.8 * mh(v, 28.3, -19.2)),
        (mh(v, 75, 5.5), 2 / (np.exp(-14.59 - 0.086 * v) + np.exp(-1.87 + 0.0701 * v))),
    ]


# (post, pre, E_syn, k_minus) of the seven synapses, in prior order.
SYNAPSES = [(1, 0, -70, 40), (1, 0, -80, 100), (2, 0, -70, 40), (2, 0, -80, 100),
            (0, 1, -70, 40), (2, 1, -70, 40), (1, 2, -70, 40)]


def simulate_from_model_md(theta, dt, n):
    g = np.reshape(theta[:24], (3, 8)) * 0.628e-3  # mS
    gsyn = np.exp(theta[24:])
    C, rtzf = 0.6283e-3, 8.31451e3 * 283 / (2 * 96485.3415)
    E = dict(Na=50.0, K=-80.0, H=-20.0, leak=-50.0)
    v, ca = np.full(3, -50.0), np.full(3, 0.05)
    x = np.zeros((11, 3))
    s = np.zeros(7)
    out = np.empty((3, n))
    out[:, 0] = v
    for i in range(1, n):
        gs, gse = np.zeros(3), np.zeros(3)
        for k, (post, pre, es, km) in enumerate(SYNAPSES):
            gs[post] += gsyn[k] * s[k]
            gse[post] += gsyn[k] * s[k] * es
        c = np.array([g[:, 0] * x[0] ** 3 * x[1], g[:, 1] * x[2] ** 3 * x[3], g[:, 2] * x[4] ** 3 * x[5],
                      g[:, 3] * x[6] ** 3 * x[7], g[:, 4] * x[8] ** 4, g[:, 5] * x[9] ** 4,
                      g[:, 6] * x[10], g[:, 7]])
        eca = rtzf * np.log(3000.0 / ca)
        ica = (c[1] + c[2]) * (v - eca)
        cainf = 0.05 - 14961 * ica
        ca_new = cainf + (ca - cainf) * np.exp(-dt / 200)
        G = c.sum(axis=0) + gs
        rev = np.array([E["Na"] + 0 * eca, eca, eca, E["K"] + 0 * eca, E["K"] + 0 * eca,
                        E["K"] + 0 * eca, E["H"] + 0 * eca, E["leak"] + 0 * eca])
        drive = (c * rev).sum(axis=0) + gse
        # G = 0 happens at the first step when g_leak = 0 (all gates and s start at 0).
        safe = np.where(G == 0, 1.0, G)
        v_new = np.where(G == 0, v + dt * drive / C,
                         drive / safe + (v - drive / safe) * np.exp(-dt * G / C))
        for j, (xi, tau) in enumerate(gates(v, ca)):
            x[j] = xi + (x[j] - xi) * np.exp(-dt / tau)
        for k, (post, pre, es, km) in enumerate(SYNAPSES):
            sinf = 1 / (1 + np.exp((-35.0 - v[pre]) / 5.0))
            tau = km * (1 - sinf)
            s[k] = sinf if dt > tau else s[k] + (sinf - s[k]) * dt / tau
        v, ca = v_new, ca_new
        out[:, i] = v
    return out


def main():
    t_max = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    meta = json.load(open(os.path.join(FIX, "meta.json")))
    dt = meta["settings"]["dt_ms"]
    for case in meta["cases"][::4]:
        theta = np.asarray(case["params"])
        ref = simulate(to_pyloric_pd(theta).loc[0], dt=dt, t_max=t_max, noise_std=0.0, seed=0)["voltage"]
        ours = simulate_from_model_md(theta, dt, ref.shape[1])
        print(f"{case['draw']}: max |V_MODEL.md - V_package| = {np.abs(ours - ref).max():.3e} mV "
              f"over {t_max} ms")


if __name__ == "__main__":
    main()
