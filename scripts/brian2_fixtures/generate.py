#!/usr/bin/env python3
"""Generate Brian2 reference fixtures for the `neurosbi-sim` tests.

Reads the model files in `examples/models/*.toml`, builds a Brian2 `NeuronGroup`
from each (numpy code generation target), runs the reference stimuli and writes
one JSON fixture per run into `crates/neurosbi-sim/tests/fixtures/brian2/`.
It also writes Brian2's generated abstract code (state updater, threshold,
reset) to `scripts/brian2_fixtures/generated/`, and smoke-runs every model of
the library in Brian2 so that a model Brian2 rejects is caught here.

Usage (from the repository root):
    /work/venvs/brian2/bin/python scripts/brian2_fixtures/generate.py
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tomllib
from pathlib import Path

import numpy as np

import brian2
from brian2 import (
    NeuronGroup,
    SpikeMonitor,
    StateMonitor,
    TimedArray,
    prefs,
    run,
    start_scope,
)
from brian2.units import allunits, stdunits
from brian2.units.fundamentalunits import Quantity, Unit

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"
OUT = ROOT / "crates" / "neurosbi-sim" / "tests" / "fixtures" / "brian2"
GENERATED = Path(__file__).resolve().parent / "generated"

prefs.codegen.target = "numpy"

# Names usable in the TOML value expressions: every Brian2 unit plus a few
# functions. Builtins are removed so an expression cannot do anything else.
UNITS: dict[str, object] = {}
for module in (allunits, stdunits):
    for key, value in vars(module).items():
        if isinstance(value, (Unit, Quantity)):
            UNITS[key] = value
UNITS.update(
    exp=np.exp, log=np.log, sqrt=np.sqrt, pi=np.pi, abs=abs, sin=np.sin, cos=np.cos
)


def evaluate(expr: str, scope: dict[str, object]):
    """Evaluate a TOML value expression with Brian2's units and earlier constants."""
    return eval(expr, {"__builtins__": {}}, dict(scope))  # noqa: S307 - trusted repo files


def si(value) -> float:
    """A number or quantity as a plain float in SI base units."""
    return float(np.asarray(value))


def load_model(name: str) -> dict:
    path = MODELS / f"{name}.toml"
    with path.open("rb") as fh:
        model = tomllib.load(fh)
    model["_path"] = path.relative_to(ROOT).as_posix()
    return model


def namespace_of(model: dict) -> dict[str, object]:
    scope = dict(UNITS)
    for key, expr in model.get("constants", {}).items():
        scope[key] = evaluate(expr, scope)
    return scope


def build(model: dict, dt, inputs: dict[str, np.ndarray]):
    """Build a one-neuron NeuronGroup for `model`; `inputs` holds per-step SI values."""
    scope = namespace_of(model)
    namespace = {k: v for k, v in scope.items() if k in model.get("constants", {})}
    lines = [model["equations"].rstrip("\n")]
    for var, unit_expr in model.get("inputs", {}).items():
        unit = evaluate(unit_expr, UNITS)
        array_name = f"stim_{var}"
        # TimedArray on the simulation dt: sample k is used for k*dt <= t < (k+1)*dt.
        namespace[array_name] = TimedArray(inputs[var] * unit, dt=dt)
        lines.append(f"{var} = {array_name}(t) : {unit_expr}")
    kwargs = {}
    for key in ("threshold", "reset", "refractory"):
        value = model.get(key, "")
        if value and value.strip():
            kwargs[key] = value.strip()
    group = NeuronGroup(
        1,
        "\n".join(lines),
        method=model["method"],
        namespace=namespace,
        dt=dt,
        name="neuron",
        **kwargs,
    )
    for key, expr in model.get("parameters", {}).items():
        setattr(group, key, evaluate(expr, scope))
    for key, expr in model.get("initial", {}).items():
        setattr(group, key, evaluate(expr, scope))
    return group, scope


def state_variables(group) -> list[str]:
    # diff_eq_names is a set; keep the equations' order so the JSON is reproducible
    return [eq.varname for eq in group.equations.ordered if eq.varname in group.equations.diff_eq_names]


def quantize(values: np.ndarray, exponent: int) -> list[float]:
    """Round to multiples of 10**exponent, each value the double nearest its short
    decimal, so that JSON stores it exactly in few characters."""
    return [float(f"{int(round(x * 10.0**-exponent))}e{exponent}") for x in values]


def simulate(model: dict, dt, duration, inputs, record_every: int) -> dict:
    start_scope()
    group, scope = build(model, dt, inputs)
    names = state_variables(group)
    state_mon = StateMonitor(group, names, record=0)  # default when='start'
    spike_mon = SpikeMonitor(group)
    run(duration)
    n_steps = len(state_mon.t)
    recorded = {}
    for var in names:
        series = np.asarray(getattr(state_mon, var + "_")[0])
        recorded[var] = [float(x) for x in series[::record_every]]
    return {
        "group": group,
        "scope": scope,
        "n_steps": n_steps,
        "recorded": recorded,
        "spikes": [float(x) for x in np.asarray(spike_mon.t_)],
        "t0": float(state_mon.t_[0]),
    }


def fluctuating(n_steps: int, dt_s: float, seed: int) -> np.ndarray:
    """0.6 nA + 0.4 nA * a unit-variance Ornstein-Uhlenbeck-like sequence (tau 3 ms),
    piecewise constant on a 0.05 ms grid so that the dt 0.01 ms and 0.05 ms runs
    see the same function of time; quantised to 1 pA."""
    coarse_dt = 5e-5
    per = int(round(coarse_dt / dt_s))
    n_coarse = -(-n_steps // per)
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n_coarse)
    decay = math.exp(-coarse_dt / 3e-3)
    smooth = np.empty(n_coarse)
    smooth[0] = white[0]
    for k in range(1, n_coarse):
        smooth[k] = decay * smooth[k - 1] + math.sqrt(1 - decay * decay) * white[k]
    current = 0.6e-9 + 0.4e-9 * np.repeat(smooth, per)[:n_steps]
    return np.array(quantize(current, -12))


def write_code(model_name: str, group) -> None:
    GENERATED.mkdir(parents=True, exist_ok=True)
    parts = [f"# Brian2 {brian2.__version__}, numpy target, model {model_name}\n"]
    objs = [("state updater", group.state_updater)]
    objs += [(f"thresholder[{k}]", v) for k, v in group.thresholder.items()]
    objs += [(f"resetter[{k}]", v) for k, v in group.resetter.items()]
    for label, obj in objs:
        parts.append(f"\n## {label}: abstract code\n{obj.abstract_code}\n")
        codeobj = getattr(obj, "codeobj", None)
        if codeobj is not None:
            parts.append(f"\n## {label}: generated numpy code\n{codeobj.code}\n")
    (GENERATED / f"{model_name}.txt").write_text("".join(parts))


def write_fixture(model: dict, tag: str, dt, duration, inputs, record_every, stimulus) -> dict:
    dt_s = si(dt)
    res = simulate(model, dt, duration, inputs, record_every)
    n_steps = res["n_steps"]
    for var, values in inputs.items():
        assert len(values) == n_steps, (var, len(values), n_steps)
    scope = res["scope"]
    fixture = {
        "model": model["name"],
        "model_file": model["_path"],
        "brian2_version": brian2.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "codegen_target": "numpy",
        "method": model["method"],
        "dt": dt_s,
        "duration": si(duration),
        "n_steps": n_steps,
        "constants": {k: si(scope[k]) for k in model.get("constants", {})},
        "parameters": {k: si(evaluate(e, scope)) for k, e in model.get("parameters", {}).items()},
        "initial": {k: si(evaluate(e, scope)) for k, e in model.get("initial", {}).items()},
        "stimulus": stimulus,
        "inputs": {k: [float(x) for x in v] for k, v in inputs.items()},
        "record_every": record_every,
        "recorded": res["recorded"],
        "spikes": res["spikes"],
    }
    us = int(round(dt_s * 1e6))
    path = OUT / f"{model['name']}_{tag}_{us}us.json"
    OUT.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        json.dump(fixture, fh, separators=(",", ":"))
        fh.write("\n")
    write_code(model["name"], res["group"])
    spikes = res["spikes"]
    isi = np.diff(spikes) * 1e3 if len(spikes) > 1 else np.array([])
    v = np.array(res["recorded"]["v"]) * 1e3
    print(
        f"{path.relative_to(ROOT)}: {n_steps} steps, {len(spikes)} spikes"
        + (f", first {spikes[0]*1e3:.2f} ms, ISI {isi.min():.2f}..{isi.max():.2f} ms" if len(isi) else "")
        + f", v in [{v.min():.2f}, {v.max():.2f}] mV, {path.stat().st_size/1e6:.2f} MB"
    )
    return res


def check_hh_c_initial() -> None:
    """The TOML's gate initial values must be what Brian2's example computes."""
    model = load_model("hh_c")
    start_scope()
    brian2.BrianLogger.suppress_name("unused_brian_object")
    group, scope = build(model, 0.05 * brian2.ms, {"I": np.zeros(1)})
    group.v = scope["Eleak"]
    for gate in ("m", "h", "n"):
        setattr(group, gate, f"1/(1 + beta{gate}/alpha{gate})")
        expected = float(getattr(group, gate)[0])
        stored = float(evaluate(model["initial"][gate], scope))
        assert expected == stored, (gate, expected, stored)
    print("hh_c initial gates equal Brian2's steady-state expressions at Eleak")


def smoke_all() -> None:
    """Build and run every library model for 20 ms under a 0.5 nA step."""
    for path in sorted(MODELS.glob("*.toml")):
        model = load_model(path.stem)
        dt = 0.01 * brian2.ms
        n = 2000
        inputs = {var: np.where(np.arange(n) >= 200, 0.5e-9, 0.0) for var in model.get("inputs", {})}
        res = simulate(model, dt, n * dt, inputs, 10)
        v = np.array(res["recorded"]["v"]) * 1e3
        assert np.all(np.isfinite(v)), path
        write_code(model["name"], res["group"])
        print(f"smoke {path.name}: {len(res['spikes'])} spikes in 20 ms, v in [{v.min():.2f}, {v.max():.2f}] mV")


def main() -> None:
    ms = brian2.ms
    check_hh_c_initial()
    smoke_all()

    hh_c = load_model("hh_c")
    duration = 350 * ms
    for dt, k in ((0.01 * ms, 10), (0.05 * ms, 2)):
        n = int(round(si(duration) / si(dt)))
        on = int(round(si(50 * ms) / si(dt)))
        step = np.where(np.arange(n) >= on, 1e-9, 0.0)
        write_fixture(hh_c, "step", dt, duration, {"I": step}, k,
                      "1 nA for t >= 50 ms (sample k = 1e-9 A for k >= 50 ms/dt), 0 before")
        fl = fluctuating(n, si(dt), seed=20251125)
        write_fixture(hh_c, "fluct", dt, duration, {"I": fl}, k,
                      "0.6 nA + 0.4 nA * unit-variance AR(1) sequence (tau 3 ms, numpy default_rng "
                      "seed 20251125, piecewise constant on a 0.05 ms grid), rounded to 1 pA")

    adex = load_model("adex")
    dt, duration, k = 0.01 * ms, 300 * ms, 10
    n = int(round(si(duration) / si(dt)))
    on = int(round(si(20 * ms) / si(dt)))
    step = np.where(np.arange(n) >= on, 500e-12, 0.0)
    write_fixture(adex, "step", dt, duration, {"I": step}, k, "500 pA for t >= 20 ms, 0 before")
    ramp = np.array(quantize(np.arange(n) * (1e-9 / n), -15))
    write_fixture(adex, "ramp", dt, duration, {"I": ramp}, k,
                  "linear ramp: sample k = k/n_steps * 1 nA, rounded to 1 fA")
    print(f"Brian2 {brian2.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    # Brian2 iterates over sets when it generates code; a fixed hash seed makes the
    # generated listings (and so every output file) identical from run to run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    main()
