#!/usr/bin/env python3
"""Generate Brian2 reference fixtures for circuits (issue 23).

For each model spec of `models.py`: generate its input arrays (fixed numpy seeds), render
the spec into a Brian2 script (numpy code-generation target), execute that script, and write
`tests/fixtures/brian_circuits/<model>.json` (+ `<model>.<key>.npy` for big arrays). The
rendered script is stored in the fixture (`brian_code`), so the fixture says exactly what ran.
Brian2's abstract and numpy code of every code object goes to `generated/<model>.txt`.

Usage (from the repository root; Brian2 2.11.0 needs Python >= 3.13):
    /work/venv-lang/bin/python scripts/brian_circuits/generate.py [model ...]
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "fixtures" / "brian_circuits"
GENERATED = HERE / "generated"
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from models import ARRAY  # noqa: E402

# A record stored inline in JSON up to this many numbers, as .npy above.
INLINE_LIMIT = 60_000


# ---------------------------------------------------------------------------------------
# input arrays (fixed seeds; everything they produce is stored in the fixture)

def make_arrays(spec: dict) -> tuple[dict[str, np.ndarray], dict]:
    name = spec["name"]
    if name == "coba":
        seed = 20261206
        rng = np.random.default_rng(seed)
        n, n_exc, p = 4000, 3200, 0.02
        # v0 = (randn*5 - 55) mV, rounded to 1 nV so that each value prints short
        v0 = np.round((rng.standard_normal(n) * 5.0 - 55.0) * 1e6) / 1e9
        adjacency = rng.random((n, n)) < p  # adjacency[i, j]: synapse i -> j (i == j allowed)
        pre, post = np.nonzero(adjacency)  # sorted by i, then j
        exc = pre < n_exc
        arrays = {
            "neurons_v0": v0,
            "exc_i": pre[exc].astype(np.int16), "exc_j": post[exc].astype(np.int16),
            "inh_i": pre[~exc].astype(np.int16), "inh_j": post[~exc].astype(np.int16),
        }
        how = {
            "seed": seed,
            "rule": "rng = numpy.random.default_rng(seed); v0 = round((rng.standard_normal(4000)*5 - 55)*1e6)/1e9 "
                    "(volt); adjacency = rng.random((4000, 4000)) < 0.02; (i, j) = nonzero(adjacency) "
                    "(sorted by i then j, i == j allowed); exc: i < 3200, inh: i >= 3200",
        }
        return arrays, how
    if name == "stdp":
        seed = 20261207
        rng = np.random.default_rng(seed)
        n, rate, dt, duration = 1000, 15.0, 1e-4, 10.0
        n_steps = int(round(duration / dt))
        idx, steps = [], []
        for k in range(n):
            # Poisson process on the dt grid: Bernoulli(rate*dt) per step, drawn as
            # geometric gaps (at most one spike per neuron and step)
            s = np.cumsum(rng.geometric(rate * dt, size=int(rate * duration * 2) + 50)) - 1
            s = s[s < n_steps]
            idx.append(np.full(len(s), k))
            steps.append(s)
        idx = np.concatenate(idx)
        steps = np.concatenate(steps)
        order = np.lexsort((idx, steps))  # by step, then index
        w0 = np.round(rng.random(n) * 0.01 * 1e9) / 1e9
        arrays = {
            "inputs_i": idx[order].astype(np.int16),
            "inputs_step": steps[order].astype(np.int32),
            "stdp_i": np.arange(n, dtype=np.int32),
            "stdp_j": np.zeros(n, dtype=np.int32),
            "stdp_w0": w0,
        }
        how = {
            "seed": seed,
            "rule": "rng = numpy.random.default_rng(seed); for each input k in 0..999: steps = "
                    "cumsum(rng.geometric(15 Hz*dt, size=350)) - 1, kept while < 100000 (Bernoulli(1.5e-3) "
                    "per step); sorted by (step, index); then w0 = round(rng.random(1000)*gmax*1e9)/1e9; "
                    "spike time = step*dt",
        }
        return arrays, how
    return {}, {}


# ---------------------------------------------------------------------------------------
# rendering a spec into a Brian2 script

def q(s: str) -> str:
    """A Python literal for a Brian2 string, triple-quoted when it spans lines."""
    if "\n" in s:
        assert "'''" not in s
        return "'''" + s + "'''"
    return repr(s)


class MethodChoices(logging.Handler):
    """Collects Brian's "No numerical integration method specified for group 'X', using
    method 'M'" messages as {X: M}."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.methods: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"No numerical integration method specified for group '([^']+)', "
                     r"using method '([^']+)'", record.getMessage())
        if m:
            self.methods[m.group(1)] = m.group(2)


def render(spec: dict) -> tuple[str, str]:
    lines = [
        "from brian2 import *",
        "# `arrays`: the fixture's stored arrays (JSON lists or .npy files), SI values / indices",
        "prefs.codegen.target = 'numpy'",
        f"defaultclock.dt = {spec['dt']}",
    ]
    for name, expr in spec["namespace"]:
        lines.append(f"{name} = {expr}")
    lines.append("namespace = {" + ", ".join(f"{n!r}: {n}" for n, _ in spec["namespace"]) + "}")
    names = []
    for obj in spec["objects"]:
        name = obj["name"]
        names.append(name)
        kind = obj["kind"]
        if kind == "NeuronGroup":
            args = [str(obj["N"]), q(obj["model"])]
            for key in ("threshold", "reset", "refractory"):
                if obj.get(key) is not None:
                    args.append(f"{key}={q(obj[key])}")
            if obj.get("method") is not None:
                args.append(f"method={obj['method']!r}")
            args += [f"name={name!r}", "namespace=namespace"]
            lines.append(f"{name} = NeuronGroup(" + ", ".join(args) + ")")
        elif kind == "SpikeGeneratorGroup":
            lines.append(
                f"{name} = SpikeGeneratorGroup({obj['N']}, arrays[{obj['indices']!r}], "
                f"arrays[{obj['steps']!r}]*defaultclock.dt, name={name!r})"
            )
        elif kind == "Synapses":
            args = [obj["source"], obj["target"]]
            if obj["model"]:
                args.append(f"model={q(obj['model'])}")
            for key in ("on_pre", "on_post"):
                if obj.get(key) is not None:
                    args.append(f"{key}={q(obj[key])}")
            if obj.get("method") is not None:
                args.append(f"method={obj['method']!r}")
            args += [f"name={name!r}", "namespace=namespace"]
            lines.append(f"{name} = Synapses(" + ", ".join(args) + ")")
            conn = obj["connect"]
            if "condition" in conn:
                lines.append(f"{name}.connect(condition={conn['condition']!r})")
            else:
                def ref(v):
                    return f"arrays[{v!r}]" if isinstance(v, ARRAY) else repr(v)
                lines.append(f"{name}.connect(i={ref(conn['i'])}, j={ref(conn['j'])})")
            if obj.get("delay") is not None:
                lines.append(f"{name}.delay = {obj['delay']!r}")
        else:
            raise ValueError(kind)
        for var, value in obj.get("initial", []):
            if isinstance(value, ARRAY):
                lines.append(f"{name}.{var}_ = arrays[{value!r}]")
            else:
                lines.append(f"{name}.{var} = {value!r}")
    for mon in spec["monitors"]:
        name = mon["name"]
        names.append(name)
        if mon["kind"] == "StateMonitor":
            lines.append(f"{name} = StateMonitor({mon['source']}, {mon['variables']!r}, "
                         f"record={mon['record']!r}, name={name!r})")
        else:
            lines.append(f"{name} = SpikeMonitor({mon['source']}, name={name!r})")
    lines.append("net = Network(" + ", ".join(names) + ")")
    setup = "\n".join(lines) + "\n"
    run = f"net.run({spec['duration']})\n"
    return setup, run


# ---------------------------------------------------------------------------------------
# helpers

def si(x) -> float:
    return float(np.asarray(x))


def dims(x) -> str:
    """Brian2's display name of the unit of x ('V', 'A', 'S', 'F', 's', 'Hz', '1')."""
    from brian2 import get_dimensions, get_unit
    d = get_dimensions(x)
    return "1" if d.is_dimensionless else str(get_unit(d))


def floats(a) -> list:
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=float).ravel()]


class Writer:
    def __init__(self, model: str):
        self.model = model
        self.files: list[Path] = []

    def npy(self, key: str, array: np.ndarray) -> dict:
        path = OUT / f"{self.model}.{key}.npy"
        np.save(path, np.ascontiguousarray(array))
        self.files.append(path)
        return {"npy": path.name, "dtype": str(array.dtype), "shape": list(array.shape)}

    def array(self, key: str, array: np.ndarray, limit: int = INLINE_LIMIT):
        array = np.asarray(array)
        if array.size > limit:
            return self.npy(key, array)
        if array.dtype.kind in "iu":
            return [int(x) for x in array.ravel()] if array.ndim == 1 else array.tolist()
        if array.ndim == 1:
            return floats(array)
        return [self.array(key, row, limit) for row in array]


def state_vars(obj) -> list[str]:
    """Variables defined by the equations (differential equations and parameters), in order,
    then a Synapses' event-driven variables and `lastupdate` (the time of their last update)."""
    out = []
    for eq in obj.equations.ordered:
        if eq.type in ("differential equation", "parameter"):
            out.append(eq.varname)
    event_driven = getattr(obj, "event_driven", None)
    if event_driven is not None and len(event_driven):
        out += [eq.varname for eq in event_driven.ordered if eq.varname not in out] + ["lastupdate"]
    return out


def cv(isi: np.ndarray):
    if len(isi) < 2:
        return None
    return float(np.std(isi) / np.mean(isi))


# ---------------------------------------------------------------------------------------

def run_model(spec: dict) -> dict:
    import brian2
    from brian2 import device, get_device, second

    brian2.start_scope()
    brian2.BrianLogger.suppress_name("resolution_conflict")
    arrays, array_rule = make_arrays(spec)
    setup, run = render(spec)
    scope: dict = {"arrays": arrays}
    exec(compile(setup, f"<{spec['name']} setup>", "exec"), scope)  # noqa: S102 - our own code
    net = scope["net"]
    writer = Writer(spec["name"])
    for old in OUT.glob(f"{spec['name']}.*.npy"):
        old.unlink()

    dt = si(scope["defaultclock"].dt)
    duration = si(eval(spec["duration"], scope))  # noqa: S307
    n_steps = int(round(duration / dt))

    # initial state and connectivity, as set before the run
    objects_out = []
    for obj_spec in spec["objects"]:
        obj = scope[obj_spec["name"]]
        entry = {k: v for k, v in obj_spec.items() if k != "initial"}
        entry["initial_assignments"] = [[var, str(val), "array" if isinstance(val, ARRAY) else "expression"]
                                        for var, val in obj_spec.get("initial", [])]
        for key in ("connect",):
            if key in entry and isinstance(entry[key], dict):
                entry[key] = {k: (f"arrays[{v!r}]" if isinstance(v, ARRAY) else v) for k, v in entry[key].items()}
        for key in ("indices", "steps"):
            if key in entry:
                entry[key] = f"arrays[{entry[key]!r}]"
        if obj_spec["kind"] in ("NeuronGroup", "Synapses"):
            entry["state_variables"] = state_vars(obj)
            entry["equations_as_parsed"] = str(obj.equations)
            init = {}
            for var in entry["state_variables"]:
                init[var] = {"unit": dims(getattr(obj, var)),
                             "values": writer.array(f"{obj_spec['name']}_{var}_0",
                                                    np.asarray(getattr(obj, var + "_")), 20_000)}
            entry["initial"] = init
        if obj_spec["kind"] == "Synapses":
            # int16 when both groups have fewer than 32768 neurons (halves the .npy files)
            itype = np.int16 if max(len(obj.source), len(obj.target)) < 32768 else np.int32
            i = np.asarray(obj.i[:]).astype(itype)
            j = np.asarray(obj.j[:]).astype(itype)
            conn = obj_spec["connect"]
            if isinstance(conn.get("i"), ARRAY):
                assert np.array_equal(i, arrays[conn["i"]]) and np.array_equal(j, arrays[conn["j"]])
            entry["n_synapses"] = int(len(i))
            entry["i"] = writer.array(f"{obj_spec['name']}_i", i, 2000)
            entry["j"] = writer.array(f"{obj_spec['name']}_j", j, 2000)
            if obj_spec.get("on_pre") is not None:
                d = np.asarray(obj.delay_[:], dtype=float)
                if d.size == 1 or np.all(d == d.flat[0]):
                    entry["delay_values"] = float(d.flat[0]) if d.size else 0.0
                else:
                    entry["delay_values"] = floats(d)
                # Brian2's SpikeQueue: steps = (int)(delay/dt + 0.5)
                d_steps = (d / dt + 0.5).astype(int)
                entry["delay_steps"] = (int(d_steps[0]) if isinstance(entry["delay_values"], float)
                                        else [int(x) for x in d_steps])
        if obj_spec["kind"] == "SpikeGeneratorGroup":
            entry["indices_values"] = writer.array("inputs_i", arrays[obj_spec["indices"]], 0)
            entry["steps_values"] = writer.array("inputs_step", arrays[obj_spec["steps"]], 0)
        objects_out.append(entry)

    # Brian logs the method it picks for an object that names none; keep those choices.
    chosen = MethodChoices()
    logging.getLogger("brian2").addHandler(chosen)
    try:
        exec(compile(run, f"<{spec['name']} run>", "exec"), scope)  # noqa: S102
    finally:
        logging.getLogger("brian2").removeHandler(chosen)

    schedule = [[o.when, int(o.order), o.name, type(o).__name__] for o in net.sorted_objects]
    summary = str(net.scheduling_summary())
    # Every clock-driven synapse state updater runs before the state updater of its source
    # group, so it reads v_pre as it was at the start of the step (asserted, and noted).
    position = {o.name: k for k, o in enumerate(net.sorted_objects)}
    schedule_facts = []
    for obj_spec in spec["objects"]:
        if obj_spec["kind"] != "Synapses":
            continue
        name, source = obj_spec["name"], obj_spec["source"]
        if f"{name}_stateupdater" in position and f"{source}_stateupdater" in position:
            assert position[f"{name}_stateupdater"] < position[f"{source}_stateupdater"], name
            schedule_facts.append(f"{name}_stateupdater runs before {source}_stateupdater: "
                                  f"the synapse reads the pre-synaptic state of the step start")
        for k, o in enumerate(net.sorted_objects):
            if type(o).__name__ == "SummedVariableUpdater" and o.name.startswith(name + "_summed"):
                target = obj_spec["target"]
                assert k < position[f"{target}_stateupdater"]
                schedule_facts.append(f"{o.name} (groups, order {o.order}) runs before every "
                                      f"state updater (order 0), from the state of the step start")

    records = {}
    for mon_spec in spec["monitors"]:
        mon = scope[mon_spec["name"]]
        if mon_spec["kind"] == "StateMonitor":
            k = mon_spec["record_every"]
            assert len(mon.t) == n_steps, (len(mon.t), n_steps)
            t_steps = np.round(np.asarray(mon.t_) / dt).astype(int)
            assert np.array_equal(t_steps, np.arange(n_steps))
            keep = mon_spec.get("keep_steps", n_steps)
            rec = {"source": mon_spec["source"], "indices": mon_spec["record"], "record_every": k,
                   "steps_kept": keep, "n_samples": len(range(0, keep, k)), "when": mon.when,
                   "values": {}}
            for var in mon_spec["variables"]:
                data = np.asarray(getattr(mon, var + "_"))[:, :keep:k]
                rec["values"][var] = {"unit": dims(getattr(mon, var)),
                                      "data": writer.array(f"{mon_spec['name']}_{var}", data, 10_000)}
            records[mon_spec["name"]] = rec
        else:
            i = np.asarray(mon.i[:], dtype=np.int32)
            t = np.asarray(mon.t_[:], dtype=float)
            steps = np.round(t / dt).astype(np.int32)
            assert np.array_equal(steps * dt, t) or np.allclose(steps * dt, t, rtol=0, atol=1e-12)
            rec = {"source": mon_spec["source"], "count": int(len(i))}
            if "equals" in mon_spec:
                ki, ks = mon_spec["equals"]
                assert np.array_equal(i, arrays[ki]) and np.array_equal(steps, arrays[ks])
                rec["equals_arrays"] = [ki, ks]
            if not mon_spec.get("store", True):
                records[mon_spec["name"]] = rec
                continue
            if len(i) > 2000:
                rec["i_step"] = writer.npy("spikes", np.stack([i, steps]))
            else:
                rec["i"] = [int(x) for x in i]
                rec["t"] = floats(t)
                rec["step"] = [int(x) for x in steps]
            records[mon_spec["name"]] = rec

    final = {}
    for obj_spec in spec["objects"]:
        if obj_spec["kind"] == "Synapses" and obj_spec.get("on_post") is not None:
            obj = scope[obj_spec["name"]]
            final[obj_spec["name"]] = {var: writer.array(f"{obj_spec['name']}_{var}_final",
                                                         np.asarray(getattr(obj, var + "_")), 20_000)
                                       for var in state_vars(obj)}

    fixture = {
        "model": spec["name"],
        "description": spec["description"],
        "generator": "scripts/brian_circuits/generate.py (specs in scripts/brian_circuits/models.py)",
        "brian2_version": brian2.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "codegen_target": "numpy",
        "dt": dt,
        "dt_expr": spec["dt"],
        "duration": duration,
        "duration_expr": spec["duration"],
        "n_steps": n_steps,
        "namespace": {n: {"expr": e, "value": si(scope[n]), "unit": dims(scope[n])}
                      for n, e in spec["namespace"]},
        "arrays_rule": array_rule,
        "objects": objects_out,
        "schedule": schedule,
        "scheduling_summary": summary,
        "schedule_facts": schedule_facts,
        "records": records,
        "final": final,
        "brian_code": setup + run,
        "files": [],
    }
    if chosen.methods:
        # Only where an object names no method, so the older fixtures regenerate unchanged.
        fixture["methods_chosen_by_brian"] = chosen.methods
    extra = analyse(spec, fixture, scope, dt, duration, writer)
    fixture.update(extra)
    fixture["files"] = [p.name for p in writer.files]
    write_generated(spec["name"], net, summary)
    return fixture


def analyse(spec, fixture, scope, dt, duration, writer) -> dict:
    """Summary statistics for the chaotic network."""
    if spec["name"] != "coba":
        return {}
    mon = scope["spikes_neurons"]
    i = np.asarray(mon.i[:])
    t = np.asarray(mon.t_[:])
    n = 4000
    counts = np.bincount(i, minlength=n)
    rates = counts / duration
    cvs = []
    for k in range(n):
        isi = np.diff(np.sort(t[i == k]))
        cvs.append(cv(isi))
    bins = np.arange(0, int(round(duration / 1e-3)) + 1) * 1e-3
    steps = np.round(t / dt).astype(int)
    pop_counts = np.bincount(steps // 10, minlength=len(bins) - 1)
    valid = np.array([c for c in cvs if c is not None])
    late = t >= 0.1
    late_counts = np.bincount(i[late], minlength=n)
    late_cvs = [cv(np.diff(np.sort(t[late & (i == k)]))) for k in range(n)]
    late_valid = np.array([c for c in late_cvs if c is not None])
    return {
        "statistics": {
            "definitions": (
                "rate[k] = spike count of neuron k / duration (Hz); cv[k] = std(ISI)/mean(ISI) of "
                "neuron k's inter-spike intervals (numpy std, ddof 0; null with fewer than 3 "
                "spikes); population_rate[b] = spikes with step // 10 == b (1 ms bins of 10 "
                "steps) / (4000 * 1 ms) in Hz"
            ),
            "mean_rate": float(rates.mean()),
            "mean_rate_exc": float(rates[:3200].mean()),
            "mean_rate_inh": float(rates[3200:].mean()),
            "mean_cv": float(valid.mean()),
            "n_cv_defined": int(len(valid)),
            "after_100ms": {
                "definition": "the same over spikes with t >= 0.1 s only (rate = count / 0.9 s)",
                "mean_rate": float((late_counts / (duration - 0.1)).mean()),
                "mean_rate_exc": float((late_counts[:3200] / (duration - 0.1)).mean()),
                "mean_rate_inh": float((late_counts[3200:] / (duration - 0.1)).mean()),
                "mean_cv": float(late_valid.mean()),
                "n_cv_defined": int(len(late_valid)),
            },
            "rate": floats(rates),
            "cv": [None if c is None else c for c in cvs],
            "population_rate": floats(pop_counts[: len(bins) - 1] / (n * 1e-3)),
        }
    }


def write_generated(model: str, net, summary: str) -> None:
    GENERATED.mkdir(parents=True, exist_ok=True)
    import brian2
    parts = [f"# Brian2 {brian2.__version__}, numpy target, model {model}\n\n## schedule\n{summary}\n"]
    for obj in net.sorted_objects:
        if type(obj).__name__ in ("StateMonitor", "SpikeMonitor"):
            continue
        code = getattr(obj, "abstract_code", None)
        if code:
            if isinstance(code, dict):
                code = "\n".join(f"[{k}]\n{v}" for k, v in code.items())
            parts.append(f"\n## {obj.name} ({type(obj).__name__}, when={obj.when}, order={obj.order}): abstract code\n{code}\n")
        for codeobj in getattr(obj, "code_objects", []) or []:
            c = getattr(codeobj, "code", None)
            if c is not None:
                parts.append(f"\n## {obj.name}: generated numpy code ({codeobj.name})\n{c}\n")
    (GENERATED / f"{model}.txt").write_text("".join(parts))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:])
    for spec in models.all_models():
        if wanted and spec["name"] not in wanted:
            continue
        fixture = run_model(spec)
        path = OUT / f"{spec['name']}.json"
        with path.open("w") as fh:
            json.dump(fixture, fh, separators=(",", ":"))
            fh.write("\n")
        size = path.stat().st_size + sum((OUT / f).stat().st_size for f in fixture["files"])
        spikes = {k: v["count"] for k, v in fixture["records"].items() if "count" in v}
        print(f"{path.relative_to(ROOT)}: {fixture['n_steps']} steps, spikes {spikes}, "
              f"{size/1e6:.2f} MB with {len(fixture['files'])} .npy")
        if "statistics" in fixture:
            s = fixture["statistics"]
            print(f"  coba: mean rate {s['mean_rate']:.3f} Hz (exc {s['mean_rate_exc']:.3f}, inh "
                  f"{s['mean_rate_inh']:.3f}), mean CV {s['mean_cv']:.3f} over {s['n_cv_defined']}")
    import brian2
    print(f"Brian2 {brian2.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    main()
