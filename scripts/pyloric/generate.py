#!/usr/bin/env python3
"""Reference fixtures for the pyloric network statistics (issue 23).

Runs the `pyloric` package of Deistler, Macke & Gonçalves (mackelab/pyloric, the
simulator and statistics behind Gonçalves et al. 2020) noise-free on parameter sets
drawn from its prior, and writes what the Rust side checks against into
crates/neurosbi-features/tests/fixtures/pyloric/:

  meta.json              provenance, settings, and per case: the 31 parameters, the 15
                         statistics (package order, null = NaN), the spike times and the
                         burst starts/ends of each neuron as the package detects them
  traces_1ms.npy         float32 (n_cases, 3, 11000): membrane potential [mV] of AB/PD,
                         LP, PY of every case, every 40th step (1 ms) of the 11 s run
  full_<case>.npy        int16 (3, 140000): full-resolution 3.5 s runs of a few cases,
                         quantised to 0.01 mV; the package's statistics in meta.json
                         were computed on exactly these quantised values (q / 100.0)
  prior_observation.json the 31-parameter prior and the observation of preparation
                         845_082_0044 (Gonçalves et al. 2020)

Usage (see scripts/pyloric/README.md for building the package):

  PYTHONPATH=$PYLORIC_SRC:scripts/pyloric/shim python scripts/pyloric/generate.py \
      --pyloric-src $PYLORIC_SRC --imm-npz PATH/190807_summstats_prep845_082_0044.npz

No Python is needed to run the Rust tests; this script is only rerun to refresh them.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shim"))  # torch / sbi stand-ins, see shim/

import pyloric  # noqa: E402
from pyloric import simulate, summary_stats  # noqa: E402
from pyloric.prior import prior_bounds  # noqa: E402
from pyloric.summary_statistics import PrinzStats  # noqa: E402
from pyloric.utils import create_neurons, select_names, to_pyloric_pd  # noqa: E402

OUT = os.path.join(
    HERE, "..", "..", "crates", "neurosbi-features", "tests", "fixtures", "pyloric"
)
SEED = 20200923  # draws from the prior
N_DRAWS = 150  # uniform draws from the prior, at most
N_DRAWS_PRINZ = 150  # draws with Prinz model neurons, at most
N_FINITE = 12  # cases whose 15 statistics are all defined
N_NAN = 12  # cases with at least one NaN statistic
DT = 0.025
T_MAX = 11000
BURN_IN = 1000
T_MAX_FULL = 3500  # full-resolution runs
N_FULL_FINITE, N_FULL_NAN = 2, 1
SUBSAMPLE = 40  # 1 ms
QUANT = 100.0  # int16 per 0.01 mV

STAT_NAMES = [
    "cycle_period",
    "burst_durations.AB/PD",
    "burst_durations.LP",
    "burst_durations.PY",
    "duty_cycles.AB/PD",
    "duty_cycles.LP",
    "duty_cycles.PY",
    "start_phases.LP",
    "start_phases.PY",
    "starts_to_starts.AB/PD-LP",
    "starts_to_starts.LP-PY",
    "ends_to_starts.AB/PD-LP",
    "ends_to_starts.LP-PY",
    "phase_gaps.AB/PD-LP",
    "phase_gaps.LP-PY",
]

DEFAULT_SETUP = {
    "membrane_gbar": np.ones((3, 8), dtype=bool),
    "Q10_gbar_mem": np.zeros(8, dtype=bool),
    "Q10_gbar_syn": np.zeros(2, dtype=bool),
    "Q10_tau_m": np.zeros(1, dtype=bool),
    "Q10_tau_h": np.zeros(1, dtype=bool),
    "Q10_tau_CaBuff": np.zeros(1, dtype=bool),
    "Q10_tau_syn": np.zeros(2, dtype=bool),
}


def git_commit(path):
    marker = os.path.join(path, "COMMIT")
    if os.path.exists(marker):
        return open(marker).read().strip()
    return subprocess.check_output(["git", "-C", path, "rev-parse", "HEAD"], text=True).strip()


def run(theta, t_max):
    """The package's own simulate() with its noise switched off."""
    return simulate(to_pyloric_pd(theta).loc[0], dt=DT, t_max=t_max, noise_std=0.0, seed=0)


def stats_and_spikes(out):
    """The 15 statistics via the package's summary_stats, and its internal detail."""
    ss = summary_stats(out, t_burn_in=BURN_IN).to_numpy()[0].astype(float)
    assert ss.shape == (15,)
    # What summary_stats does inside (PrinzStats.calc_dict), to read the spike times.
    ps = PrinzStats(setup={}, t_on=BURN_IN, t_off=out["t_max"], dt=out["dt"])
    v = out["voltage"][:, int(BURN_IN / DT) : int(out["t_max"] / DT)]
    detail = ps.calc_summ_stats(v, np.zeros_like(v), out["t_max"], out["dt"])
    assert np.allclose(detail["cycle_period"], ss[0], equal_nan=True)
    per_neuron = {}
    for nt, name in zip(["PM", "LP", "PY"], ["AB/PD", "LP", "PY"]):
        d = detail[nt]
        per_neuron[name] = {
            "spike_times": [float(x) for x in d["spike_times"]],
            "burst_starts": [float(x) for x in d["burst_start_times"]],
            "burst_ends": [float(x) for x in d["burst_end_times"]],
        }
    return ss, per_neuron, bool(detail["triphasic"]), bool(detail["pyloric_like"])


def nullable(xs):
    return [None if np.isnan(x) else float(x) for x in xs]


def category(ss):
    """finite: all 15 defined; partial: a cycle period but NaN elsewhere; none: no cycle."""
    if not np.isnan(ss).any():
        return "finite"
    return "none" if np.isnan(ss[0]) else "partial"


def draws(lo, hi, names):
    """Parameter sets: first uniform draws from the package's prior box; then, because
    only a small fraction of those is pyloric, draws that take the membrane conductances
    of one of Prinz et al.'s (2004) model neurons (pyloric.utils.create_neurons, all
    inside the box) and the synapses uniform from the prior. Both are seeded."""
    rng = np.random.RandomState(SEED)
    for i in range(N_DRAWS):
        yield f"prior-{i}", lo + (hi - lo) * rng.random_sample(len(lo))
    rng = np.random.RandomState(SEED + 1)
    models = {
        "PM": [f"PM_{k}" for k in range(5)],
        "LP": [f"LP_{k}" for k in range(5)],
        "PY": [f"PY_{k}" for k in range(6)],
    }
    for i in range(N_DRAWS_PRINZ):
        theta = lo + (hi - lo) * rng.random_sample(len(lo))
        for j, n in enumerate(["PM", "LP", "PY"]):
            key = models[n][rng.randint(len(models[n]))]
            theta[8 * j : 8 * j + 8] = create_neurons([[n, key, 1.0]])[0]
        yield f"prinz-{i}", theta


def prior_and_observation(args, names):
    lo, hi = prior_bounds(DEFAULT_SETUP, synapses_log_space=True)
    obs = np.load(args.imm_npz)["summ_stats"]
    labels_2020 = (
        ["cycle_period", "burst_length_PM", "burst_length_LP", "burst_length_PY"]
        + ["end_to_start_PM_LP", "end_to_start_LP_PY"]
        + ["start_to_start_PM_LP", "start_to_start_PM_PY"]
        + ["duty_cycle_PM", "duty_cycle_LP", "duty_cycle_PY"]
        + ["phase_gap_PM_LP", "phase_gap_LP_PY", "phase_LP", "phase_PY"]
        + ["plateau_length_PM", "plateau_length_LP", "plateau_length_PY"]
    )
    o = dict(zip(labels_2020, obs.tolist()))
    package_order = [
        o["cycle_period"],
        o["burst_length_PM"], o["burst_length_LP"], o["burst_length_PY"],
        o["duty_cycle_PM"], o["duty_cycle_LP"], o["duty_cycle_PY"],
        o["phase_LP"], o["phase_PY"],
        o["start_to_start_PM_LP"], o["start_to_start_PM_PY"] - o["start_to_start_PM_LP"],
        o["end_to_start_PM_LP"], o["end_to_start_LP_PY"],
        o["phase_gap_PM_LP"], o["phase_gap_LP_PY"],
    ]
    units = ["mS/cm**2"] * 24 + ["ln(mS)"] * 7
    return {
        "prior": {
            "kind": "independent uniform (box), pyloric.prior.prior_bounds",
            "source": f"mackelab/pyloric@{args.commit} pyloric/prior.py",
            "names": names,
            "low": lo.tolist(),
            "high": hi.tolist(),
            "units": units,
            "note": "membrane maximal conductances are uniform on a linear scale in "
            "mS/cm**2 (the simulator multiplies them by the area 0.628e-3 cm**2); "
            "synaptic conductances are uniform in the natural log of the conductance in "
            "mS (ln 1e-8 .. ln 1e-3, AB-LP up to ln 1e-2); the simulator uses exp(value).",
        },
        "observation_845_082_0044": {
            "source": "mackelab/IdentifyMechanisticModels_2020@"
            + args.imm_commit
            + " 7_stg/results/31D_experimental/190807_summstats_prep845_082_0044.npz",
            "labels_2020": labels_2020,
            "values_2020": obs.tolist(),
            "note": "18 values in the order of 7_stg/model/inference/summstats.py "
            "PrinzStats (include_plateaus=True, pyloric_like dropped): the delays are "
            "start-to-start PM->LP and PM->PY; the last three are plateau lengths. "
            "package_order maps the 15 statistics to pyloric.summary_stats' order; its "
            "starts_to_starts LP-PY is derived as start_to_start_PM_PY - start_to_start_PM_LP "
            "(exact up to rounding, both are means over the same periods).",
            "package_order_names": STAT_NAMES,
            "package_order": package_order,
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyloric-src", required=True)
    ap.add_argument("--imm-npz", required=True)
    ap.add_argument("--imm-commit", default="b93c90ec6156ae5f8afee6aaac7317373e9caf5e")
    args = ap.parse_args()
    args.commit = git_commit(args.pyloric_src)
    os.makedirs(OUT, exist_ok=True)

    type_names, channel_names = select_names()
    names = [f"{t}.{c}" for t, c in zip(type_names, channel_names)]
    lo, hi = prior_bounds(DEFAULT_SETUP, synapses_log_space=True)
    want = {"finite": N_FINITE, "partial": N_NAN // 2, "none": N_NAN - N_NAN // 2}
    full_want = {"finite": N_FULL_FINITE, "partial": N_FULL_NAN, "none": 0}
    cases, traces = [], []
    for label, theta in draws(lo, hi, names):
        out = run(theta, T_MAX)
        ss, per_neuron, triphasic, pyloric_like = stats_and_spikes(out)
        cat = category(ss)
        print(f"{label}: {cat}", flush=True)
        # Uniform draws fill the non-pyloric quota; Prinz-neuron draws only top up
        # the pyloric ones.
        if want[cat] == 0 or (label.startswith("prinz") and cat != "finite"):
            continue
        want[cat] -= 1
        traces.append(out["voltage"][:, ::SUBSAMPLE].astype(np.float32))
        case = {
            "draw": label,
            "category": cat,
            "params": theta.tolist(),
            "stats": nullable(ss),
            "triphasic": triphasic,
            "pyloric_like": pyloric_like,
            "neurons": per_neuron,
        }
        if full_want[cat] > 0:
            full_want[cat] -= 1
            case["full"] = full_run(theta, label)
        cases.append(case)
        print(f"  kept: {nullable(ss)}", flush=True)
        if not any(want.values()):
            break

    np.save(os.path.join(OUT, "traces_1ms.npy"), np.stack(traces))
    meta = {
        "generator": "scripts/pyloric/generate.py",
        "package": {
            "repo": "mackelab/pyloric",
            "commit": args.commit,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "scipy": __import__("scipy").__version__,
            "pandas": __import__("pandas").__version__,
        },
        "settings": {
            "dt_ms": DT,
            "t_max_ms": T_MAX,
            "burn_in_ms": BURN_IN,
            "noise_std": 0.0,
            "temperature_K": 283,
            "seed": SEED,
            "n_draws_prior": N_DRAWS,
            "n_draws_prinz": N_DRAWS_PRINZ,
            "subsample": SUBSAMPLE,
            "t_max_full_ms": T_MAX_FULL,
            "full_quantum_mV": 1.0 / QUANT,
            "missing": {k: v for k, v in want.items() if v},
        },
        "param_names": names,
        "stat_names": STAT_NAMES,
        "cases": cases,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=None, separators=(",", ":"))
    with open(os.path.join(OUT, "prior_observation.json"), "w") as f:
        json.dump(prior_and_observation(args, names), f, indent=1)


def full_run(theta, draw):
    """A short full-resolution run, quantised, and the package's statistics on it."""
    out = run(theta, T_MAX_FULL)
    q = np.round(out["voltage"] * QUANT)
    assert np.abs(q).max() < 32767
    q = q.astype(np.int16)
    out["voltage"] = q.astype(np.float64) / QUANT
    ss, per_neuron, triphasic, pyloric_like = stats_and_spikes(out)
    fname = f"full_{draw}.npy"
    np.save(os.path.join(OUT, fname), q)
    return {
        "file": fname,
        "stats": nullable(ss),
        "triphasic": triphasic,
        "pyloric_like": pyloric_like,
        "neurons": per_neuron,
    }


if __name__ == "__main__":
    main()
