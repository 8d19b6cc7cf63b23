#!/usr/bin/env python3
"""Probe the Brian2 scheduling semantics that `neurosbi-sim` must reproduce.

Each check asserts what it observes, so a Brian2 release that behaves differently
fails here rather than silently changing the fixtures.

Usage (from the repository root):
    /work/venvs/brian2/bin/python scripts/brian2_fixtures/semantics.py
"""

import numpy as np

import brian2
from brian2 import (
    NeuronGroup,
    SpikeMonitor,
    StateMonitor,
    TimedArray,
    mV,
    ms,
    nA,
    pF,
    prefs,
    run,
    start_scope,
)

prefs.codegen.target = "numpy"
DT = 0.1 * ms
dt = float(DT)


def timed_array_indexing() -> None:
    """dv/dt = I/C under euler: the step starting at t_k = k*dt uses sample k; past
    the end the last sample holds."""
    start_scope()
    rng = np.random.default_rng(1)
    values = rng.uniform(-1, 1, 20)
    stim = TimedArray(values * nA, dt=DT)
    g = NeuronGroup(1, "dv/dt = stim(t)/(100*pF) : volt", method="euler", dt=DT,
                    namespace={"stim": stim})
    mon = StateMonitor(g, "v", record=0)
    run(30 * DT)
    v = np.asarray(mon.v_[0])
    increments = np.diff(v) / (dt / float(100 * pF))
    assert not np.allclose(increments[:19], values[1:20] * 1e-9, rtol=1e-9, atol=0)
    assert np.allclose(increments, np.r_[values, np.full(10, values[-1])][:29] * 1e-9, rtol=1e-9, atol=0)
    assert v[0] == 0.0
    print("TimedArray: step k (t = k*dt) reads sample k; samples past the end repeat the last one; "
          "StateMonitor sample 0 is the initial state")


def spike_time_and_order() -> None:
    """Constant drift: the spike is reported at the START time of the step whose
    update crossed the threshold; the reset is visible in the next 'start' sample."""
    start_scope()
    g = NeuronGroup(1, "dv/dt = 1*mV/ms : volt", threshold="v > 1.05*mV", reset="v = 0*mV",
                    method="euler", dt=DT)
    start = StateMonitor(g, "v", record=0)  # when='start'
    at_thr = StateMonitor(g, "v", record=0, when="thresholds")
    spikes = SpikeMonitor(g)
    run(30 * DT)
    v0 = np.asarray(start.v_[0])
    v1 = np.asarray(at_thr.v_[0])
    t_spike = float(spikes.t_[0])
    k = int(round(t_spike / dt))
    # the update of step k (from k*dt to (k+1)*dt) took v from 1.0 mV to 1.1 mV
    assert abs(v0[k] - 1.0e-3) < 1e-12 and abs(v1[k] - 1.1e-3) < 1e-12, (v0[k], v1[k])
    assert t_spike == k * dt == 10 * dt
    assert v0[k + 1] == 0.0  # reset already applied at the start of step k+1
    print(f"spike time: t of the step start (k*dt) although v crossed during [k*dt, (k+1)*dt); "
          f"here k = {k}; first spike at {t_spike*1e3:.1f} ms; reset visible at sample k+1")
    intervals = np.diff(np.asarray(spikes.t_)) / dt
    print(f"  inter-spike intervals in steps: {np.unique(np.round(intervals))}")


def refractory_duration() -> None:
    """refractory=0.5*ms (5 steps) with (unless refractory): integration is frozen
    in steps k+1..k+4 after a spike at step k and resumes in step k+5."""
    start_scope()
    g = NeuronGroup(1, "dv/dt = 1*mV/ms : volt (unless refractory)", threshold="v > 1.05*mV",
                    reset="v = 0*mV", refractory=0.5 * ms, method="euler", dt=DT)
    mon = StateMonitor(g, ["v", "not_refractory"], record=0)
    spikes = SpikeMonitor(g)
    run(40 * DT)
    v = np.asarray(mon.v_[0])
    k = int(round(float(spikes.t_[0]) / dt))
    frozen = v[k + 1:k + 6]
    assert np.all(frozen == 0.0), frozen
    assert v[k + 6] > 0.0
    nr = np.asarray(mon.not_refractory[0])
    print(f"refractory duration: spike at step {k}; v held at the reset value at the starts of "
          f"steps {k+1}..{k+5}, integrates again in step {k+5} "
          f"(not_refractory = timestep(t - lastspike) >= timestep(ref)); "
          f"not_refractory recorded at start of steps {k}..{k+6}: {nr[k:k+7].astype(int).tolist()}")
    isi = np.diff(np.asarray(spikes.t_)) / dt
    print(f"  inter-spike intervals in steps: {np.unique(np.round(isi))} "
          f"(4 frozen steps k+1..k+4, then 11 integrating steps, the 11th crossing)")


def refractory_condition() -> None:
    """refractory='v > 0.55*mV': leaving refractoriness is decided at the start of the
    state update from the OLD state; the threshold uses the NEW state."""
    start_scope()
    stim = TimedArray(np.r_[np.full(10, 0.1), np.full(7, -0.1), np.full(10, 0.1)] * nA, dt=DT)
    g = NeuronGroup(1, "dv/dt = stim(t)/(100*pF) : volt", threshold="v > 0.55*mV",
                    refractory="v > 0.55*mV", method="euler", dt=DT, namespace={"stim": stim})
    mon = StateMonitor(g, ["v", "not_refractory"], record=0)
    spikes = SpikeMonitor(g)
    run(25 * DT)
    v = np.asarray(mon.v_[0]) / 1e-3
    nr = np.asarray(mon.not_refractory[0]).astype(int)
    steps = np.round(np.asarray(spikes.t_) / dt).astype(int)
    print(f"refractory condition: v (mV) at step starts {np.round(v, 3).tolist()}")
    print(f"  not_refractory at step starts {nr.tolist()}; spikes at steps {steps.tolist()}")
    assert steps.tolist() == [5, 19], steps


if __name__ == "__main__":
    print(f"Brian2 {brian2.__version__}")
    timed_array_indexing()
    spike_time_and_order()
    refractory_duration()
    refractory_condition()
