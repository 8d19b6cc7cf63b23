"""sbi's "getting started" flow with neurosbi: only the imports change.

sbi's version (sbi 0.27, docs "Getting started"):

    from sbi.inference import NPE, simulate_for_sbi
    from sbi.utils import BoxUniform

Run: python python/examples/sbi_getting_started.py  (NEUROSBI_QUICK=1: a shorter run)
"""

import os

import numpy as np

from neurosbi import NPE, BoxUniform, simulate_for_sbi

QUICK = os.environ.get("NEUROSBI_QUICK") == "1"
num_dim = 3
prior = BoxUniform(low=-2 * np.ones(num_dim), high=2 * np.ones(num_dim))
rng = np.random.default_rng(0)


def simulator(theta):
    # Linear Gaussian: x = theta + 1 + noise (sbi's example simulator), one row per theta.
    return theta + 1.0 + rng.standard_normal(theta.shape) * 0.1


theta, x = simulate_for_sbi(simulator, proposal=prior, num_simulations=2000, seed=0,
                            simulation_batch_size=100)
inference = NPE(prior=prior)
density_estimator = inference.append_simulations(theta, x).train(
    max_num_epochs=30 if QUICK else None, seed=0)
posterior = inference.build_posterior(density_estimator)

x_obs = np.array([0.8, 0.6, 0.4])
samples = posterior.sample((10000,), x=x_obs, seed=1)
print("posterior mean", samples.mean(axis=0), "(true posterior mean: x_obs - 1)")
assert np.allclose(samples.mean(axis=0), x_obs - 1.0, atol=0.1)
