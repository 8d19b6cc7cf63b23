"""The Python peer of `cargo xtask bench e2e`: the sbi Hodgkin-Huxley tutorial workload with
Brian2 + sbi, timed per phase.

Model B is read from examples/models/hh_b.toml (the same equations, constants and initial
state neurosbi simulates), all parameter sets are simulated at once in one Brian2
NeuronGroup (the fastest way Brian2 offers), the tutorial's seven statistics
(`calculate_summary_statistics` of sbi's HH_helper_functions.py, moments with numpy instead of
scipy.stats.moment: the same central moments) are computed per trace, NPE with a MAF is
trained with sbi's defaults and 10 000 samples are drawn at the synthetic observation
(gNa = 50, gK = 5 mS/cm2).

Prints one `phase seconds` line per phase and `total <seconds>` last; the Rust bench reads
the `total` line.

Usage (venv outside the repo; torch makes it a large install):
    python3 -m venv /work/venvs/e2e_peer
    /work/venvs/e2e_peer/bin/pip install -r scripts/e2e_peer/requirements.txt
    NEUROSBI_PYTHON=/work/venvs/e2e_peer/bin/python cargo xtask bench e2e

`--skip-inference` stops after the features (checks the Brian2 half without sbi/torch).
"""
import argparse
import os
import sys
import time
import tomllib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "examples", "models", "hh_b.toml")

DT_MS = 0.01
DURATION_MS = 120.0
T_ON, T_OFF = 10.0, 110.0
AMPLITUDE_NA = 0.5
PRIOR_LOW = [0.5, 1e-4]
PRIOR_HIGH = [80.0, 15.0]
TRUTH = [50.0, 5.0]


def simulate(theta, seed):
    """Voltage traces (mV), one row per parameter row (mS/cm2)."""
    import brian2 as b2

    with open(MODEL, "rb") as f:
        spec = tomllib.load(f)
    b2.start_scope()
    b2.defaultclock.dt = DT_MS * b2.ms
    b2.seed(seed)
    ns = {k: v for k, v in vars(b2).items() if not k.startswith("_")}
    consts = {k: eval(v, ns) for k, v in spec["constants"].items()}
    n_steps = int(round(DURATION_MS / DT_MS))
    on, off = int(round(T_ON / DT_MS)), int(round(T_OFF / DT_MS))
    current = np.zeros(n_steps)
    current[on:off] = AMPLITUDE_NA
    consts["I_stim"] = b2.TimedArray(current * b2.nA, dt=DT_MS * b2.ms)
    eqs = spec["equations"] + "\nI = I_stim(t) : amp\n"
    group = b2.NeuronGroup(
        len(theta),
        eqs,
        method=spec["method"],
        threshold=spec["threshold"],
        refractory=spec["refractory"],
        namespace=consts,
    )
    for var, val in spec["initial"].items():
        setattr(group, var, eval(val, ns))
    group.gNa = theta[:, 0] * b2.mS / b2.cm**2
    group.gK = theta[:, 1] * b2.mS / b2.cm**2
    mon = b2.StateMonitor(group, "v", record=True)
    b2.run(DURATION_MS * b2.ms)
    return np.asarray(mon.v / b2.mV)


def summary_statistics(x, dt=DT_MS, t_on=T_ON, t_off=T_OFF):
    """The tutorial's seven statistics of one trace (mV, ms)."""
    n_mom = 4
    t = np.arange(x.size) * dt
    v = np.array(x)
    v[v < -10] = -10
    v[np.where(np.diff(v) < 0)] = -10
    spike_times = t[np.where(np.diff(v) < 0)]
    stim = spike_times[(spike_times > t_on) & (spike_times < t_off)]
    if stim.shape[0] > 0:
        stim = stim[np.append(1, np.diff(stim)) > 0.5]
    rest_pot = np.mean(x[t < t_on])
    rest_pot_std = np.std(x[int(0.9 * t_on / dt): int(t_on / dt)])
    during = x[(t > t_on) & (t < t_off)]
    centred = during - during.mean()
    std = np.std(during)
    moments = np.array([np.mean(centred**2), np.mean(centred**3) / std**3, np.mean(centred**4) / std**4])
    return np.concatenate(([stim.shape[0]], [rest_pot, rest_pot_std, np.mean(during)], moments))


def features(traces):
    return np.array([summary_statistics(tr) for tr in traces])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    t_total = time.perf_counter()

    t = time.perf_counter()
    x_o = features(simulate(np.array([TRUTH]), a.seed))[0]
    setup = time.perf_counter() - t

    theta = rng.uniform(PRIOR_LOW, PRIOR_HIGH, size=(a.sims, 2))
    t = time.perf_counter()
    traces = simulate(theta, a.seed + 1)
    t_sim = time.perf_counter() - t

    t = time.perf_counter()
    x = features(traces)
    del traces
    t_feat = time.perf_counter() - t
    ok = np.all(np.isfinite(x), axis=1)
    print(f"# valid simulations {int(ok.sum())} of {a.sims}; x_o {np.round(x_o, 4).tolist()}", file=sys.stderr)

    t_train = t_samp = 0.0
    if not a.skip_inference:
        import torch
        from sbi.utils import BoxUniform

        try:
            from sbi.inference import NPE
        except ImportError:  # sbi < 0.23
            from sbi.inference import SNPE as NPE

        torch.manual_seed(a.seed)
        prior = BoxUniform(low=torch.tensor(PRIOR_LOW), high=torch.tensor(PRIOR_HIGH))
        t = time.perf_counter()
        inference = NPE(prior=prior, density_estimator="maf")
        inference.append_simulations(
            torch.as_tensor(theta[ok], dtype=torch.float32), torch.as_tensor(x[ok], dtype=torch.float32)
        )
        estimator = inference.train()
        summary = getattr(inference, "summary", None) or getattr(inference, "_summary", {})
        epochs = summary.get("epochs_trained", ["?"])
        print(f"# sbi trained {epochs[-1] if epochs else '?'} epochs", file=sys.stderr)
        posterior = inference.build_posterior(estimator)
        t_train = time.perf_counter() - t

        t = time.perf_counter()
        samples = posterior.sample((a.samples,), x=torch.as_tensor(x_o, dtype=torch.float32))
        t_samp = time.perf_counter() - t
        mean = samples.mean(0).tolist()
        print(f"# posterior mean gNa {mean[0]:.3f} gK {mean[1]:.3f} (truth {TRUTH})", file=sys.stderr)

    total = time.perf_counter() - t_total
    for name, s in [
        ("setup", setup),
        ("simulation", t_sim),
        ("features", t_feat),
        ("training", t_train),
        ("sampling", t_samp),
        ("total", total),
    ]:
        print(f"{name} {s:.3f}")


if __name__ == "__main__":
    main()
