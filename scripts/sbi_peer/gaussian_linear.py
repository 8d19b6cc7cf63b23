"""sbi 0.27's sequential NPE-A (and APT) with its defaults on sbibm's gaussian_linear.

theta ~ N(0, 0.1 I_10), x ~ N(theta, 0.1 I_10); 10 rounds of N/10 simulations, each round's
proposal the posterior at sbibm's observation 1; writes 10 000 posterior draws, to compare
with neurosbi's (`SBIBM_DUMP=<dir> SBIBM_TASKS=gaussian_linear SBIBM_BUDGETS=N SBIBM_OBS=1
SBIBM_METHOD=npe_a|npe SBIBM_ROUNDS=10 cargo xtask bench sbibm`) through a C2ST against
sbibm's reference samples of that observation.

npe_mdn: one round of N simulations, NPE with sbi's MDN (10 components).

usage: python gaussian_linear.py npe_a|npe_c|npe_mdn N OUT.csv [SEED]
"""

import sys
import time

import numpy as np
import torch
from sbi.inference import NPE_A, NPE_C
from torch.distributions import MultivariateNormal

method, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
torch.manual_seed(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
prior = MultivariateNormal(torch.zeros(10), 0.1 * torch.eye(10))
x_o = torch.tensor(
    [[1.0471346, 0.5566712, -0.23618454, 0.027879834, -1.0051446,
      -0.007930746, 0.06117077, -0.29286885, -0.38539964, 0.2449614]]
)  # sbibm gaussian_linear observation 1
if method == "npe_a":
    inference = NPE_A(prior=prior, show_progress_bars=False)
else:
    estimator = "mdn" if method == "npe_mdn" else "nsf"
    inference = NPE_C(prior=prior, density_estimator=estimator, show_progress_bars=False)
rounds = 1 if method == "npe_mdn" else 10
proposal = prior
t0 = time.time()
for r in range(rounds):
    theta = proposal.sample((n // rounds,))
    x = theta + 0.1**0.5 * torch.randn_like(theta)
    kw = {} if method == "npe_a" else {"num_atoms": 10, "discard_prior_samples": False}
    inference.append_simulations(theta, x, proposal=proposal).train(**kw)
    proposal = inference.build_posterior().set_default_x(x_o)
    print(f"round {r}: {inference.epoch} epochs, {time.time() - t0:.0f} s", flush=True)
draws = proposal.sample((10000,), show_progress_bars=False)
np.savetxt(out, draws.numpy(), delimiter=",", comments="")
