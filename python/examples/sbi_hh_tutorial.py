"""sbi's Hodgkin-Huxley tutorial (docs/tutorials/Example_00_HodgkinHuxleyModel.ipynb) with
neurosbi's sbi-style API: a Python simulator through ``simulate_for_sbi``, NPE, sampling.

Differences from sbi's version: the simulator (sbi's ``HH_helper_functions.HHsimulator``,
same equations, constants, noise and exponential-Euler steps) is vectorised over the
batch of parameter sets with numpy instead of one Python loop per simulation, and the
seven summary statistics are computed without scipy. The imports are the only change to
the inference code. (neurosbi itself simulates this model in Rust: examples/hh_b_*.toml.)

Run: python python/examples/sbi_hh_tutorial.py  (NEUROSBI_QUICK=1: a shorter run)
"""

import os

import numpy as np

from neurosbi import NPE, BoxUniform, simulate_for_sbi

QUICK = os.environ.get("NEUROSBI_QUICK") == "1"
DT, DURATION, T_ON = 0.01 if not QUICK else 0.025, 120.0 if not QUICK else 60.0, 10.0
T = np.arange(0, DURATION + DT, DT)
A_SOMA = np.pi * (70.0 * 1e-4) ** 2  # cm2
I_INJ = np.zeros_like(T)
I_INJ[int(round(T_ON / DT)):int(round((DURATION - T_ON) / DT))] = 5e-4 / A_SOMA  # uA/cm2
G_LEAK, GBAR_M, TAU_MAX, VT, NOISE = 0.1, 0.07, 6e2, -60.0, 0.1
E_LEAK, C, E_NA, E_K = -70.0, 1.0, 53.0, -107.0


def efun(z):
    safe = np.where(np.abs(z) < 1e-4, 1.0, z)
    return np.where(np.abs(z) < 1e-4, 1 - z / 2, safe / np.expm1(safe))


def rates(v):
    am = 0.32 * efun(-0.25 * (v - VT - 13.0)) / 0.25
    bm = 0.28 * efun(0.2 * (v - VT - 40.0)) / 0.2
    ah = 0.128 * np.exp(-(v - VT - 17.0) / 18.0)
    bh = 4.0 / (1 + np.exp(-0.2 * (v - VT - 40.0)))
    an = 0.032 * efun(-0.2 * (v - VT - 15.0)) / 0.2
    bn = 0.5 * np.exp(-(v - VT - 10.0) / 40)
    p_inf = 1.0 / (1.0 + np.exp(-0.1 * (v + 35.0)))
    tau_p = TAU_MAX / (3.3 * np.exp(0.05 * (v + 35.0)) + np.exp(-0.05 * (v + 35.0)))
    return (am, bm), (ah, bh), (an, bn), (p_inf, tau_p)


def relax(x, a, b):
    """One exponential-Euler step of a gate with rates a, b."""
    inf, tau = a / (a + b), 1 / (a + b)
    return inf + (x - inf) * np.exp(-DT / tau)


def hh_simulator(theta, rng):
    """Voltage traces (batch, steps) for rows theta = (gbar_Na, gbar_K) in mS/cm2."""
    g_na, g_k = theta[:, 0], theta[:, 1]
    v = np.full(len(theta), E_LEAK)
    (am, bm), (ah, bh), (an, bn), (p, _) = rates(v)
    m, h, n = am / (am + bm), ah / (ah + bh), an / (an + bn)
    out = np.empty((len(theta), len(T)))
    out[:, 0] = v
    for i in range(1, len(T)):
        tau_v_inv = (m**3 * g_na * h + n**4 * g_k + G_LEAK + GBAR_M * p) / C
        v_inf = (m**3 * g_na * h * E_NA + n**4 * g_k * E_K + G_LEAK * E_LEAK
                 + GBAR_M * p * E_K + I_INJ[i - 1]
                 + NOISE * rng.standard_normal(len(theta)) / DT**0.5) / (tau_v_inv * C)
        v = v_inf + (v - v_inf) * np.exp(-DT * tau_v_inv)
        (am, bm), (ah, bh), (an, bn), (p_inf, tau_p) = rates(v)
        m, h, n = relax(m, am, bm), relax(h, ah, bh), relax(n, an, bn)
        p = p_inf + (p - p_inf) * np.exp(-DT / tau_p)
        out[:, i] = v
    return out


def summary_statistics(v):
    """sbi's seven statistics per trace: spike count, resting mean and std, and mean,
    variance, skewness, kurtosis of v during the stimulus."""
    on, off = int(round(T_ON / DT)), int(round((DURATION - T_ON) / DT))
    clipped = np.maximum(v, -10.0)
    peaks = (clipped[:, 1:-1] > clipped[:, :-2]) & (clipped[:, 1:-1] >= clipped[:, 2:]) \
        & (clipped[:, 1:-1] > -10.0)
    count = peaks.sum(axis=1)
    rest = v[:, int(0.9 * on):on]
    stim = v[:, on:off]
    mean, var = stim.mean(axis=1), stim.var(axis=1)
    centred = stim - mean[:, None]
    skew = (centred**3).mean(axis=1) / var**1.5
    kurt = (centred**4).mean(axis=1) / var**2
    return np.column_stack([count, rest.mean(axis=1), rest.std(axis=1), mean, var, skew, kurt])


rng = np.random.default_rng(0)


def simulator(theta):
    return summary_statistics(hh_simulator(theta, rng))


prior = BoxUniform(low=np.array([0.5, 1e-4]), high=np.array([80.0, 15.0]))
theta, x = simulate_for_sbi(simulator, proposal=prior, seed=0,
                            num_simulations=300 if QUICK else 10000,
                            simulation_batch_size=100, num_workers=1)
inference = NPE(prior)
density_estimator = inference.append_simulations(theta, x).train(
    max_num_epochs=20 if QUICK else None, seed=0)
posterior = inference.build_posterior(density_estimator)

true_params = np.array([[50.0, 5.0]])
x_o = simulator(true_params)
samples = posterior.sample((10000,), x=x_o, seed=0)
print("observed statistics", x_o.round(2))
print("posterior mean", samples.mean(axis=0), "(truth 50, 5)")
assert samples.shape == (10000, 2) and x_o[0, 0] >= 1
