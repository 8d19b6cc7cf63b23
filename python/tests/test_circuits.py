"""Circuits from Python: a model file's groups and synapses (as a path or as a dict of its
tables) through ``neurosbi.simulate`` and ``neurosbi.Inferencer``."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import neurosbi

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAIR = ROOT / "examples/models/graded_pair.toml"


def fixture_circuit(f):
    """The Brian2 fixture's circuit as a model file's tables, and its parameter values (the
    same translation as crates/neurosbi-sim/tests/brian_circuits.rs: thresholds only detect
    spikes there, so they are left out)."""
    model = {"method": "rk4", "constants": {n: q["expr"] for n, q in f["namespace"].items()},
             "groups": {}, "synapses": {}}
    params = {}
    for o in f["objects"]:
        initial = {}
        for var, expr, _ in o["initial_assignments"]:
            if any(line.strip().startswith(f"{var} :") for line in o["model"].splitlines()):
                params[f"{var}_{o['name']}"] = expr  # a parameter, set once
            else:
                initial[var] = expr
        table = {"equations": o["model"], "initial": initial}
        if o["kind"] == "NeuronGroup":
            model["groups"][o["name"]] = table
        else:
            table.update(source=o["source"], target=o["target"],
                         connect={"i": o["i"], "j": o["j"]})
            model["synapses"][o["name"]] = table
    return model, params


def test_a_circuit_dict_simulates_as_brian2_and_the_rust_side():
    f = json.loads((ROOT / "tests/fixtures/brian_circuits/graded_pair_rk4.json").read_text())
    model, params = fixture_circuit(f)
    names = [f"{var}_{r['source']}" for r in f["records"].values() if "values" in r
             for var in r["values"]]
    out = neurosbi.simulate(model, dt=f["dt"], duration=f["duration"], params=params,
                            record=names)
    for r in f["records"].values():
        if "values" not in r:
            continue
        for var, rec in r["values"].items():
            want = np.array(rec["data"][0])
            ours = out[f"{var}_{r['source']}"][::r["record_every"]][:len(want)]
            rmse = np.sqrt(np.mean((ours - want) ** 2))
            # The tolerance of crates/neurosbi-sim/tests/brian_circuits.rs for this fixture.
            assert rmse < 1e-9, (var, r["source"], rmse)


def test_model_file_parameters_and_bad_values():
    base = neurosbi.simulate(PAIR, dt="0.05*ms", duration="200*ms", record=["v_post"])
    assert base["v_post"].shape == (4000,)
    stronger = neurosbi.simulate(PAIR, dt="0.05*ms", duration="200*ms",
                                 params={"g_syn": "8*mS/cm**2"}, record=["v_post"])
    # More coupling drives the follower higher (as tests/tests/circuits.rs asserts).
    assert stronger["v_post"].max() > base["v_post"].max()
    with pytest.raises(ValueError, match=r"params\.g_syn: has dimension .*the parameter is"):
        neurosbi.simulate(PAIR, dt="0.05*ms", duration="10*ms", params={"g_syn": "3*mV"})
    with pytest.raises(ValueError, match=r"params\.g_nope: not a parameter"):
        neurosbi.simulate(PAIR, dt="0.05*ms", duration="10*ms", params={"g_nope": 1.0})


def pair_inferencer():
    return neurosbi.Inferencer(dt="0.05*ms", duration="200*ms", model=PAIR,
                               output={"v_post": None}, features={"v_post": ["mean", "max"]},
                               units={"v_post": "mV"}, synthetic={"g_syn": "3*mS/cm**2"})


def test_the_inferencer_fits_a_circuit_model_file():
    inf = pair_inferencer()
    inf.set_priors(g_syn=["0*mS/cm**2", "8*mS/cm**2"])
    v = neurosbi.simulate(PAIR, dt="0.05*ms", duration="200*ms",
                          params={"g_syn": "3*mS/cm**2"}, record=["v_post"])["v_post"] * 1e3
    np.testing.assert_allclose(inf.x_o, [v.mean(), v.max()], rtol=1e-12)


CLI = os.environ.get("NEUROSBI_CLI")


@pytest.mark.skipif(not CLI, reason="NEUROSBI_CLI is not set")
def test_a_circuit_fit_agrees_with_the_cli(tmp_path):
    inf = pair_inferencer()
    inf.infer(n_samples=60, seed=3, train_kwargs=dict(max_num_epochs=2),
              g_syn=["0*mS/cm**2", "8*mS/cm**2"])
    inf.to_fit_file(tmp_path / "pair.toml", samples=50, output=tmp_path / "out")
    subprocess.run([CLI, "fit", str(tmp_path / "pair.toml"), "--quiet"], check=True)
    assert np.array_equal(np.load(tmp_path / "out" / "samples.npy"), inf.sample((50,)))


def test_a_spiking_circuit_gives_brian2s_spikes_per_neuron():
    """Brian2's `delays` fixture (10 LIF neurons, 90 synapses with per-synapse delays,
    on_pre into an (unless refractory) variable, STDP with event-driven traces) from a
    dict: every neuron's spike steps equal Brian's, as in
    crates/neurosbi-sim/tests/brian_spiking.rs."""
    f = json.loads((ROOT / "tests/fixtures/brian_circuits/delays.json").read_text())
    g, s = f["objects"]
    n = g["N"]
    assigned = {v: e for v, e, _ in g["initial_assignments"]}
    drive = assigned["drive"]
    w = s["initial_assignments"][0][1]
    quantity = lambda expr, i, j=0: expr.replace("i", f"({i})").replace("j", f"({j})")
    params = {f"drive_cells_{k}": quantity(drive, k) for k in range(n)}
    params.update({f"w_rec_{m}": quantity(w, i, j)
                   for m, (i, j) in enumerate(zip(s["i"], s["j"]))})
    model = {
        "constants": {name: q["expr"] for name, q in f["namespace"].items()},
        "groups": {"cells": {"n": n, "equations": g["model"], "threshold": g["threshold"],
                             "reset": g["reset"], "refractory": g["refractory"],
                             "method": g["method"], "initial": {"v": assigned["v"]}}},
        "synapses": {"rec": {"source": "cells", "target": "cells", "equations": s["model"],
                             "on_pre": s["on_pre"], "on_post": s["on_post"],
                             "delay": s["delay"], "connect": s["connect"]["condition"]}},
    }
    out = neurosbi.simulate(model, dt=f["dt"], duration=f["duration"], params=params,
                            record=[])
    sp = f["records"]["spikes_cells"]
    for k in range(n):
        want = [st for i, st in zip(sp["i"], sp["step"]) if i == k]
        ours = np.round(out[f"spikes_cells_{k}"] / f["dt"]).astype(int).tolist()
        assert ours == want, k
    assert sum(len(out[f"spikes_cells_{k}"]) for k in range(n)) == 377
