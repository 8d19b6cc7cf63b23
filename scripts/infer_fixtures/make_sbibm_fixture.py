"""Builds crates/neurosbi-infer/{data/sbibm_observations.json,tests/fixtures/sbibm_reference.json} from the sbibm 1.1 PyPI package.

Usage (venv outside the repo):
    python3 -m venv /work/venvs/sbibm && /work/venvs/sbibm/bin/pip install --no-deps sbibm==1.1.0 numpy
    /work/venvs/sbibm/bin/python scripts/infer_fixtures/make_sbibm_fixture.py

It records, per task, the 10 observations and true parameters, and for tasks whose reference
posterior sbibm obtained by MCMC / SIR (slcp, bernoulli_glm) the first N_REF of its 10 000
reference samples, so CI can check our own reference samplers without Python. The Bernoulli GLM
stimulus is regenerated exactly as sbibm does (numpy RandomState(42).randn(100), float32).
"""
import bz2, csv, json, os, sys
import numpy as np
import importlib.util

N_REF = 1000
ROOT = os.path.join(os.path.dirname(importlib.util.find_spec("sbibm").origin), "tasks")
CRATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "neurosbi-infer")
# Observations are small and compiled into the library; reference samples are for tests only.
OUT_OBS = os.path.join(CRATE, "data", "sbibm_observations.json")
OUT_REF = os.path.join(CRATE, "tests", "fixtures", "sbibm_reference.json")


def read_csv(path):
    opener = bz2.open if path.endswith(".bz2") else open
    with opener(path, "rt") as f:
        rows = list(csv.reader(f))[1:]
    return [[float(v) for v in r] for r in rows]


def r5(rows):
    return [[float("%.6g" % v) for v in r] for r in rows]


tasks = {}
for name in ["gaussian_linear", "gaussian_linear_uniform", "two_moons", "slcp", "gaussian_mixture", "bernoulli_glm"]:
    obs, truth, refs, raw = [], [], [], []
    for i in range(1, 11):
        d = os.path.join(ROOT, name, "files", f"num_observation_{i}")
        obs.append(read_csv(os.path.join(d, "observation.csv"))[0])
        truth.append(read_csv(os.path.join(d, "true_parameters.csv"))[0])
        if name in ("slcp", "bernoulli_glm"):
            refs.append(r5(read_csv(os.path.join(d, "reference_posterior_samples.csv.bz2"))[:N_REF]))
        if name == "bernoulli_glm":
            raw.append(read_csv(os.path.join(d, "observation_raw.csv"))[0])
    tasks[name] = {"observations": obs, "true_parameters": truth, "reference_samples": refs, "observations_raw": raw}

stimulus = np.random.RandomState(42).randn(100).astype(np.float32)
obs = {
    "source": "sbibm 1.1.0 (PyPI), scripts/infer_fixtures/make_sbibm_fixture.py",
    "bernoulli_glm_stimulus": [float(v) for v in stimulus],
    "tasks": {k: {"observations": v["observations"], "true_parameters": v["true_parameters"]} for k, v in tasks.items()},
}
ref = {
    "source": obs["source"],
    "tasks": {k: {"reference_samples": v["reference_samples"], "observations_raw": v["observations_raw"]}
              for k, v in tasks.items() if v["reference_samples"]},
}
for path, data in [(OUT_OBS, obs), (OUT_REF, ref)]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")
