"""Seconds per pyloric simulation with the `pyloric` package (Gonçalves et al. 2020),
for `cargo xtask bench pyloric`, which runs this next to neurosbi in the same run.

Simulates the first N parameter sets of the fixture cases
(crates/neurosbi-features/tests/fixtures/pyloric/meta.json) for T ms at dt 0.025 ms,
noise off, one after another in this process (one core), and prints one JSON line:
{"seconds_per_simulation": ..., "n": N, "t_max_ms": T}.

    PYTHONPATH=$PYLORIC_SRC python scripts/pyloric/bench.py N T
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shim"))  # torch / sbi stand-ins, see shim/

import numpy as np  # noqa: E402
from pyloric import simulate  # noqa: E402
from pyloric.utils import to_pyloric_pd  # noqa: E402

n = int(sys.argv[1])
t_max = float(sys.argv[2])
meta = os.path.join(HERE, "../../crates/neurosbi-features/tests/fixtures/pyloric/meta.json")
cases = json.load(open(meta))["cases"][:n]
# Warm-up (imports, first call).
simulate(to_pyloric_pd(np.array([cases[0]["params"]])).loc[0], dt=0.025, t_max=100.0,
         noise_std=0.0, seed=0)
start = time.perf_counter()
for c in cases:
    theta = to_pyloric_pd(np.array([c["params"]])).loc[0]
    simulate(theta, dt=0.025, t_max=t_max, noise_std=0.0, seed=0)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds_per_simulation": elapsed / len(cases), "n": len(cases),
                  "t_max_ms": t_max}))
