#!/usr/bin/env python3
"""Wall time of the COBA fixture model (4000 neurons, 1 s, dt 0.1 ms) in Brian2 C++ standalone,
one thread, for the issue 23 speed comparison.

Same model as `tests/fixtures/brian_circuits/coba.json` (the spec in `models.py`, the same
seeded connectivity and initial v), with a SpikeMonitor on all neurons and no StateMonitor.
The project is generated and compiled first (`device.build(run=False)`), then the binary is run
`--repeat` times; for each run this prints the wall time of `device.run()` (process start,
loading the arrays, simulation, writing results) and Brian's own `device._last_run_time` (the
time of the simulation loop, measured inside the binary).

Usage (from the repository root):
    /work/venv-lang/bin/python scripts/brian_circuits/time_coba.py [--repeat 3] [--dir /tmp/coba_standalone]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import generate  # noqa: E402
import models  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/neurosbi_coba_standalone")
    args = ap.parse_args()

    import brian2
    from brian2 import device, prefs, set_device

    set_device("cpp_standalone", build_on_run=False)
    prefs.devices.cpp_standalone.openmp_threads = 0  # no OpenMP: one thread

    spec = models.coba()
    spec["monitors"] = [m for m in spec["monitors"] if m["kind"] == "SpikeMonitor"]
    arrays, _ = generate.make_arrays(spec)
    setup, run = generate.render(spec)
    setup = setup.replace("prefs.codegen.target = 'numpy'\n", "")
    scope: dict = {"arrays": arrays}
    exec(compile(setup + run, "<coba standalone>", "exec"), scope)  # noqa: S102

    t0 = time.perf_counter()
    device.build(directory=args.dir, compile=True, run=False, clean=True)
    print(f"generate + compile: {time.perf_counter() - t0:.1f} s  (project in {args.dir})")
    print(f"compiler flags: {prefs.codegen.cpp.extra_compile_args_gcc}")
    walls, loops = [], []
    for k in range(args.repeat):
        t0 = time.perf_counter()
        device.run(directory=args.dir, with_output=False, run_args=[])
        wall = time.perf_counter() - t0
        walls.append(wall)
        loops.append(float(device._last_run_time))
        n_spikes = len(scope["spikes_neurons"].i[:]) if k == 0 else None
        print(f"run {k + 1}: wall {wall:.3f} s, Brian _last_run_time {device._last_run_time:.3f} s"
              + (f", {n_spikes} spikes" if n_spikes is not None else ""))
    print(f"Brian2 {brian2.__version__} C++ standalone, 1 thread: min wall {min(walls):.3f} s, "
          f"min _last_run_time {min(loops):.3f} s over {args.repeat} runs")

    # how long the C++ run (compiled with -ffast-math etc.) follows the numpy-target fixture:
    # the network is chaotic, so this is the horizon for comparing spike times
    mon = scope["spikes_neurons"]
    ours = set(zip(np.round(np.asarray(mon.t_) / 1e-4).astype(int).tolist(), np.asarray(mon.i).tolist()))
    fixture = np.load(generate.OUT / "coba.spikes.npy")
    theirs = set(zip(fixture[1].tolist(), fixture[0].tolist()))
    diff = sorted(ours ^ theirs)
    first = diff[0][0] * 0.1 if diff else None
    print(f"standalone vs numpy fixture: {len(ours)} vs {len(theirs)} spikes; "
          + (f"first differing spike at {first:.1f} ms" if diff else "identical spike trains"))


if __name__ == "__main__":
    main()
