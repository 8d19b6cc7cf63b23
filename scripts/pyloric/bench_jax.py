"""Seconds per 11-s pyloric simulation with the JAX `pyloric-network-simulator` package
(PyPI 0.1.3, Alexandre René), for `cargo xtask bench pyloric`, which runs it next to
neurosbi and the `pyloric` package in the same run.

It is another implementation of the Prinz et al. (2004) network, not of the `pyloric`
package: four cells (AB and PD separate), its own synapse parameters, and SciPy's adaptive
RK45 (`solve_ivp`) calling a `jax.jit`-compiled right-hand side; so only its cost per
simulated second compares, not its traces. Its model 'AB/PD 1', 'LP 1', 'PY 1' with the
package's example connectivity, started from its thermalised state (computed once, not
timed), simulated for T ms (recorded every ms), one thread (XLA's thread pool off), after one
short warm-up call that compiles the right-hand side. Prints one JSON line:
{"seconds_per_simulation": ..., "t_max_ms": T, "rhs_evaluations": ..., "v_min_mv": ...,
"v_max_mv": ...}.

    python scripts/pyloric/bench_jax.py T
"""

import json
import os
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numpy as np  # noqa: E402
from pyloric_network_simulator import prinz2004 as pz  # noqa: E402

t_max = float(sys.argv[1]) if len(sys.argv) > 1 else 11000.0
model = pz.Prinz2004(
    pop_sizes={"PD": 1, "AB": 1, "LP": 1, "PY": 1},
    gs=[[0, 0, 3, 0], [0, 0, 3, 3], [3, 3, 0, 3], [3, 3, 3, 0]],
    g_ion=pz.neuron_models.loc[["AB/PD 1", "AB/PD 1", "LP 1", "PY 1"]],
)
x0 = model.get_thermalization()
t_eval = np.arange(0.0, t_max, 1.0)
model.integrate(0.0, x0, t_eval[:10])  # compiles the right-hand side
start = time.perf_counter()
r = model.integrate(0.0, x0, t_eval)
elapsed = time.perf_counter() - start
v = np.asarray(pz.SimResult(t_eval, r.y, model.pop_slices).V)
if np.isnan(v).any():
    sys.exit("the JAX simulation produced NaN")
print(json.dumps({"seconds_per_simulation": elapsed, "t_max_ms": t_max,
                  "rhs_evaluations": int(r.nfev), "v_min_mv": float(v.min()),
                  "v_max_mv": float(v.max())}))
