#!/usr/bin/env python3
"""How far the COBA fixture can be compared spike by spike: rerun the fixture's model
(numpy target) with every initial v scaled by (1 + eps) (and, separately, with the
excitatory weight we scaled so) and report the first step at which the spike trains
differ from the fixture, and the change of the summary statistics.

Usage: /work/venv-lang/bin/python scripts/brian_circuits/coba_sensitivity.py [--we-only] [eps ...]
(default eps: 1e-15 1e-12 1e-9 1e-6; each variant is a 1 s numpy run, ~1 min)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import models  # noqa: E402


def run(arrays, spec):
    import brian2
    brian2.start_scope()
    setup, run_code = generate.render(spec)
    scope = {"arrays": arrays}
    exec(compile(setup + run_code, "<coba>", "exec"), scope)  # noqa: S102
    mon = scope["spikes_neurons"]
    # copies: the monitor's arrays are freed with the scope
    return np.array(mon.i[:], dtype=np.int64), np.round(np.array(mon.t_[:]) / 1e-4).astype(int)


def stats(i, steps):
    t = steps * 1e-4
    i = np.asarray(i, dtype=np.int64)
    if i.size and i.min() < 0:
        raise ValueError(f"negative index {i.min()} {i.dtype} {len(i)}")
    counts = np.bincount(i, minlength=4000)
    cvs = []
    for k in range(4000):
        isi = np.diff(np.sort(t[i == k]))
        if len(isi) >= 2:
            cvs.append(np.std(isi) / np.mean(isi))
    return counts.mean(), float(np.mean(cvs))


WE_ONLY = "--we-only" in sys.argv
EPSILONS = [float(x) for x in sys.argv[1:] if x != "--we-only"] or [1e-15, 1e-12, 1e-9, 1e-6]


def main():
    spec = models.coba()
    spec["monitors"] = [m for m in spec["monitors"] if m["kind"] == "SpikeMonitor"]
    base_arrays, _ = generate.make_arrays(spec)
    ref = np.load(generate.OUT / "coba.spikes.npy")
    ref_set = set(zip(ref[1].tolist(), ref[0].tolist()))
    r_rate, r_cv = stats(ref[0], ref[1])
    print(f"fixture: mean rate {r_rate:.4f} Hz, mean CV {r_cv:.4f}")
    # Moving the v0 of one neuron by 1 nV, or reordering the synapses, changes nothing either
    # (checked: the early volley resets most neurons to exactly Vr, and all increments of ge
    # are the same number, so their order does not matter).
    variants = {}
    for eps in EPSILONS:
        if not WE_ONLY:
            a = dict(base_arrays)
            a["neurons_v0"] = a["neurons_v0"] * (1 + eps)
            variants[f"every v0 * (1 + {eps:g})"] = (a, spec)
        spec_we = dict(spec)
        spec_we["namespace"] = [(n, f"0.6*(1 + {eps!r})" if n == "we" else e)
                                for n, e in spec["namespace"]]
        variants[f"we = 0.6*(1 + {eps:g})"] = (base_arrays, spec_we)
    for name, (arrays, variant_spec) in variants.items():
        i, steps = run(arrays, variant_spec)
        diff = sorted(set(zip(steps.tolist(), i.tolist())) ^ ref_set)
        rate, cvm = stats(i, steps)
        first = f"{diff[0][0] * 0.1:.1f} ms" if diff else "never"
        print(f"{name}: {len(i)} spikes, first differing spike at {first}; mean rate {rate:.4f} Hz "
              f"({100 * (rate / r_rate - 1):+.2f} %), mean CV {cvm:.4f} ({100 * (cvm / r_cv - 1):+.2f} %)")


if __name__ == "__main__":
    main()
