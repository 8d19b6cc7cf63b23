"""Hand-written models for Brian features that the corpus examples use rarely or not at all
(refractory periods read from state variables and parameters, `lastspike` in expressions,
resets that write parameters, `poisson()`),
run in Brian2 2.11 (numpy target) by `generate.run` and written to
`crates/neurosbi-sim/tests/fixtures/brian_language.json`, which `tests/brian_corpus.rs`
(`hand_written_models_match_brian2`) compares against exactly as the corpus.

    /work/venv-lang/bin/python scripts/brian_corpus/language.py
"""
import json
import os
import sys

import brian2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from generate import run  # noqa: E402

OUT = "crates/neurosbi-sim/tests/fixtures/brian_language.json"
SOURCE = ("neurosbi", "hand-written")
PATH = "scripts/brian_corpus/language.py"

MODELS = [
    dict(
        # The refractory period is a state variable: it grows by 3 ms at each spike and decays
        # between spikes; Brian evaluates `timestep(t - lastspike, dt) >= timestep(ref, dt)`
        # at every step.
        name="refractory_from_a_state_variable", source=SOURCE, path=PATH,
        equations="""
dv/dt = (1.5 - v)/(10*ms) : 1 (unless refractory)
dref/dt = -ref/(50*ms) : second
""",
        threshold="v > 1", reset="v = 0\nref += 3*ms", refractory="ref", method="exact",
        namespace={}, params={}, initial=[("ref", "1*ms")],
        dt="0.1*ms", duration="300*ms", record="v", tolerance=1e-9,
    ),
    dict(
        # `lastspike` read in a subexpression (a current pulse for 5 ms after each spike) and a
        # refractory period that depends on an adaptation variable.
        name="lastspike_in_equations", source=SOURCE, path=PATH,
        equations="""
dv/dt = (I0 - v)/(10*ms) : 1 (unless refractory)
I0 = 1.2 + 0.8*int(t - lastspike < 5*ms) : 1
dw/dt = -w/(30*ms) : 1
""",
        threshold="v > 1", reset="v = 0\nw += 1", refractory="2*ms + w*ms", method="euler",
        namespace={}, params={}, initial=[],
        dt="0.1*ms", duration="300*ms", record="v", tolerance=1e-9,
    ),
    dict(
        # `lastspike` in the reset (it is the current spike's time there) and the threshold.
        name="lastspike_in_reset_and_threshold", source=SOURCE, path=PATH,
        equations="""
dv/dt = (1.5 - v)/(10*ms) : 1
dlast/dt = 0 : second
""",
        threshold="v > 1 and t - lastspike > 8*ms", reset="v = 0\nlast = lastspike",
        refractory="v > 0.5", method="euler",
        namespace={}, params={}, initial=[("last", "-1*second")],
        dt="0.1*ms", duration="200*ms", record="last", tolerance=1e-12,
    ),
    dict(
        # A refractory period given by a parameter.
        name="refractory_from_a_parameter", source=SOURCE, path=PATH,
        equations="""
dv/dt = (1.5 - v)/(10*ms) : 1 (unless refractory)
ref : second (constant)
""",
        threshold="v > 1", reset="v = 0", refractory="ref", method="exact",
        namespace={}, params={"ref": "4.05*ms"}, initial=[],
        dt="0.1*ms", duration="200*ms", record="v", tolerance=1e-9,
    ),
    dict(
        # A reset that writes a parameter, which keeps the new value: the drive falls and the
        # threshold rises with each spike (`exact`, whose constant term reads the parameter).
        name="reset_writes_a_parameter", source=SOURCE, path=PATH,
        equations="""
dv/dt = (2 - a - v)/(10*ms) : 1
a : 1
""",
        threshold="v > 1 + 0.2*a", reset="v = 0\na += 0.1", refractory=None, method="exact",
        namespace={}, params={"a": "0"}, initial=[],
        dt="0.1*ms", duration="200*ms", record="v", tolerance=1e-9,
    ),
    dict(
        # The same, recording the parameter itself.
        name="reset_writes_a_parameter_recorded", source=SOURCE, path=PATH,
        equations="""
dv/dt = (2 - a - v)/(10*ms) : 1
a : 1
""",
        threshold="v > 1 + 0.2*a", reset="v = 0\na += 0.1", refractory=None, method="exact",
        namespace={}, params={"a": "0"}, initial=[],
        dt="0.1*ms", duration="200*ms", record="a", tolerance=1e-12,
    ),
    dict(
        # `poisson()` in the reset (one draw per neuron and spike, here every step, with a
        # mean that reads the state) and in an initial value; compared statistically over
        # 200 neurons.
        name="poisson_in_reset_and_initial", source=SOURCE, path=PATH,
        equations="""
dx/dt = 0/second : 1
l : 1 (constant)
""",
        threshold="True", reset="x = poisson(l + 0.1*x)", refractory=None, method="euler",
        namespace={}, params={"l": "3.5"}, initial=[("x", "poisson(20)")],
        dt="0.1*ms", duration="100*ms", record="x", statistics=True,
    ),
]


def main():
    fixtures = []
    for entry in MODELS:
        fx = run(entry)
        print(f"{entry['name']}: {fx['expected']}, {len(fx['spikes'])} spikes {fx['spikes'][:6]} "
              f"{fx.get('statistics', '')}")
        fixtures.append(fx)
    with open(OUT, "w") as f:
        json.dump({"brian2_version": brian2.__version__, "numpy_version": np.__version__,
                   "models": fixtures}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
