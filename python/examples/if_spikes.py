"""brian2modelfitting's examples/IF_sbi.py with neurosbi: an exponential integrate-and-fire
neuron fitted from its spike train, three rounds of SNPE.

Differences: the synthetic spike train is simulated by neurosbi from the ground truth
(``synthetic=``) instead of by Brian; the spike features are catalogue names (count and
latency) instead of lambdas; constants are quantity text (Brian quantities work too when
Brian2 is installed).

Run: python python/examples/if_spikes.py  (NEUROSBI_QUICK=1: a shorter run)
"""

import os

import numpy as np

import neurosbi

QUICK = os.environ.get("NEUROSBI_QUICK") == "1"
dt_ms = 0.1
inp_trace = np.hstack([np.zeros(50), np.ones(250), np.zeros(300)]) * 10  # nA: 5..30 ms
ground_truth_params = {"gl": "30*nS", "C": "1*nF"}
eqs_inf = """
    dv/dt = (gl*(El - v) + gl*DeltaT*exp((v - VT) / DeltaT) + I) / C : volt
    gl    : siemens (constant)
    C     : farad (constant)
    """

inferencer = neurosbi.Inferencer(
    dt=dt_ms, model=eqs_inf, input={"I": inp_trace.reshape(1, -1)},
    output={"spikes": None}, features={"spikes": ["train_count", "train_latency"]},
    method="exponential_euler", threshold="v > -50*mV", reset="v = -70*mV",
    param_init={"v": "-70*mV"}, units={"dt": "ms", "I": "nA"},
    namespace={"El": "-70*mV", "VT": "-50*mV", "DeltaT": "2*mV"},
    synthetic=ground_truth_params)

posterior = inferencer.infer(n_samples=300 if QUICK else 3000, n_rounds=2 if QUICK else 3,
                             train_kwargs={"max_num_epochs": 10} if QUICK else None, seed=0,
                             gl=["10*nS", "100*nS"], C=["0.1*nF", "10*nF"])
samples = inferencer.sample((3000,))
print("observed features (count, latency in ms):", inferencer.x_o)
print("posterior mean", dict(zip(inferencer.param_names, samples.mean(axis=0))),
      inferencer.param_units)
inferencer.pairplot(points={"gl": 30.0, "C": 1.0}).save(
    os.path.join(os.environ.get("TMPDIR", "/tmp"), "if_spikes_pairplot.svg"))
spikes = inferencer.generate_traces(output_var="spikes")
print("spike times of one posterior sample (ms):", spikes[0])
assert samples.shape == (3000, 2) and inferencer.x_o[0] >= 1
