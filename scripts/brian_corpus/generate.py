"""Runs every model of `corpus.py` in Brian2 2.11 (numpy target) and writes the committed
fixture `crates/neurosbi-sim/tests/fixtures/brian_corpus.json`, which the Rust test
`tests/brian_corpus.rs` runs verbatim and compares against.

Usage (from the repository root; BRIAN2_REPO and MODELFITTING_REPO are git clones of the
two repositories, at least at the commits that corpus.py records):

    python3.13 -m venv /work/venv-lang && /work/venv-lang/bin/pip install brian2==2.11.0 numpy==2.5.5 sympy==1.14.0
    BRIAN2_REPO=... MODELFITTING_REPO=... /work/venv-lang/bin/python scripts/brian_corpus/generate.py
"""
import json
import os
import subprocess
import sys

import brian2
import numpy as np
from brian2 import (NeuronGroup, Network, SpikeMonitor, StateMonitor, TimedArray, defaultclock,
                    prefs)
import brian2.units.allunits as allunits

sys.path.insert(0, os.path.dirname(__file__))
from corpus import CORPUS  # noqa: E402

prefs.codegen.target = "numpy"
OUT = "crates/neurosbi-sim/tests/fixtures/brian_corpus.json"
RECORD_SAMPLES = 0.1e-3  # one recorded sample per 0.1 ms


def units_ns():
    ns = {k: v for k, v in vars(allunits).items() if not k.startswith("_")}
    ns.update({k: getattr(brian2, k) for k in ("ms", "mV", "nA", "pA", "nS", "uS", "pF", "nF",
                                                 "uF", "mS", "uA", "um", "cm", "Hz")})
    return ns


def ev(text, extra=None):
    return eval(text, units_ns(), dict(extra or {}))


def check_verbatim(entry):
    """The equations occur in the source file at the recorded commit, character for character."""
    repo, commit = entry["source"]
    root = os.environ["BRIAN2_REPO" if repo.endswith("/brian2") else "MODELFITTING_REPO"]
    src = subprocess.run(["git", "-C", root, "show", f"{commit}:{entry['path']}"],
                         check=True, capture_output=True, text=True).stdout
    if entry["equations"] not in src:
        raise SystemExit(f"{entry['name']}: equations not found verbatim in {entry['path']}")
    for key in ("threshold", "reset"):
        if entry[key] is not None and entry[key] not in src:
            raise SystemExit(f"{entry['name']}: {key} {entry[key]!r} not in {entry['path']}")


def step_values(spec, dt, n):
    vals = np.zeros(n)
    if "random_every" in spec:
        # Uniform values held for `random_every` (a TimedArray of rand() values), sampled on dt.
        every = int(round(float(ev(spec["random_every"])) / dt))
        held = np.random.default_rng(spec["seed"]).random(n // every + 1)
        return held[np.arange(n) // every]
    for start, value in spec["steps"]:
        k0 = int(round(float(ev(start)) / dt))
        vals[k0:] = float(ev(value))
    return vals


N_STAT = 200  # neurons of a statistical comparison


def neuron_stats(spikes, trace, duration):
    """Per-neuron statistics: rate (Hz), ISI CV (nan below 3 spikes), mean and std of trace."""
    isi = np.diff(spikes)
    cv = float(np.std(isi) / np.mean(isi)) if len(spikes) >= 3 else float("nan")
    return [len(spikes) / duration, cv, float(np.mean(trace)), float(np.std(trace))]


def run(entry):
    if entry.get("expected") == "rejected":
        out = {k: entry[k] for k in ("name", "path", "equations", "threshold", "reset",
                                     "refractory", "method", "namespace", "initial", "record",
                                     "feature")}
        out.update(expected="rejected", repository=entry["source"][0], commit=entry["source"][1],
                   params={k: float(ev(v)) for k, v in entry["params"].items()},
                   dt=float(ev(entry["dt"])), n_steps=1, record_every=1, inputs={},
                   input_units={})
        return out
    stat = entry.get("statistics", False)
    n_neurons = N_STAT if stat else 1
    brian2.seed(22)
    dt = float(ev(entry["dt"]))
    duration = float(ev(entry["duration"]))
    n_steps = int(round(duration / dt))
    defaultclock.dt = dt * brian2.second
    ns = {k: ev(v) for k, v in entry["namespace"].items()}
    eqs = entry["equations"]
    inputs = {}
    for name, spec in entry.get("inputs", {}).items():
        vals = step_values(spec, dt, n_steps)
        inputs[name] = vals.tolist()
        unit = ev(spec["unit"])
        ta = TimedArray(vals * unit, dt=dt * brian2.second)
        if f"{name}(t" in eqs:
            ns[name] = ta
        else:
            # brian2modelfitting's Inferencer feeds an input this way.
            ns[f"ta_{name}"] = ta
            eqs = eqs + f"\n{name} = ta_{name}(t) : {spec['unit']}\n"
    kw = dict(method=entry["method"]) if entry["method"] else {}
    for key in ("threshold", "reset"):
        if entry[key]:
            kw[key] = entry[key]
    if entry["refractory"]:
        r = entry["refractory"]
        try:
            kw["refractory"] = ev(r)
        except Exception:
            kw["refractory"] = r
    G = NeuronGroup(n_neurons, eqs, namespace=ns, **kw)
    params = {}
    for name, value in entry["params"].items():
        q = ev(value)
        setattr(G, name, q)
        params[name] = float(q)
    for var, text in entry["initial"]:
        G.__setattr__(var, text)
    every = max(1, int(round(RECORD_SAMPLES / dt)))
    mon = StateMonitor(G, entry["record"], record=True)
    spk = SpikeMonitor(G) if entry["threshold"] else None
    net = Network(G, mon, *([spk] if spk is not None else []))
    net.run(duration * brian2.second, namespace=ns)
    recs = np.asarray(getattr(mon, entry["record"] + "_"))
    rec = recs[0][::every]
    out = {k: entry[k] for k in ("name", "path", "equations", "threshold", "reset",
                                 "refractory", "method", "namespace", "initial", "record")}
    out.update(
        repository=entry["source"][0], commit=entry["source"][1], params=params, dt=dt,
        n_steps=n_steps, record_every=every, inputs=inputs,
        input_units={k: v["unit"] for k, v in entry.get("inputs", {}).items()},
        tolerance=entry.get("tolerance", 1e-4), expected=entry.get("expected", "statistics" if stat else "match"),
        feature=entry.get("feature"),
        compare_until=float(ev(entry["compare_until"])) if "compare_until" in entry else None,
        spikes=[float(t) for t in spk.t_] if spk is not None else [], recorded=[float(x) for x in rec],
        brian2_version=brian2.__version__,
    )
    if stat:
        trains = spk.spike_trains() if spk is not None else {}
        per = np.array([neuron_stats(np.asarray(trains[k]) if k in trains else np.zeros(0),
                                     recs[k], duration) for k in range(n_neurons)])
        out["n_neurons"] = n_neurons
        out["statistics"] = {}
        for j, key in enumerate(("rate", "cv", "mean", "std")):
            col = per[:, j][np.isfinite(per[:, j])]
            if len(col) >= 10:
                out["statistics"][key] = [float(np.mean(col)),
                                          float(np.std(col, ddof=1) / np.sqrt(len(col)))]
        out["spikes"], out["recorded"] = [], []
    return out


def main():
    fixtures = []
    for entry in CORPUS:
        check_verbatim(entry)
        fx = run(entry)
        print(f"{entry['name']}: {fx['expected']}, {len(fx.get('spikes', []))} spikes, "
              f"{fx.get('statistics', '')}")
        fixtures.append(fx)
    with open(OUT, "w") as f:
        json.dump({"brian2_version": brian2.__version__, "numpy_version": np.__version__,
                   "models": fixtures}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
