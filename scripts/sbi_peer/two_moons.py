"""sbi 0.27's methods with their defaults (sbibm's settings for the sequential ones) on
sbibm's two_moons simulator.

Trains on N simulations and writes 10 000 posterior draws for sbibm's observation 1, to
compare with neurosbi's draws of the same method (`SBIBM_DUMP=<dir> SBIBM_TASKS=two_moons
SBIBM_BUDGETS=N SBIBM_OBS=1 SBIBM_METHOD=<method> [SBIBM_ROUNDS=10] cargo xtask bench sbibm`)
through a C2ST against sbibm's reference samples of that observation.

- fmpe, npse, nre_a, bnre: one round of N simulations from the prior.
- npe_mdn: one round of N simulations, NPE with sbi's MDN (10 components).
- npe_b, npe_c: 10 rounds of N/10 simulations with an NSF, each round's proposal the current
  posterior at observation 1 (npe_c: APT with 10 atoms, prior samples kept, as sbibm).

usage: python two_moons.py fmpe|npse|nre_a|bnre|npe_mdn|npe_b|npe_c N OUT.csv [SEED]
"""

import math
import sys
import time

import numpy as np
import torch
from sbi.inference import BNRE, FMPE, NPE_B, NPE_C, NPSE, NRE_A
from sbi.utils import BoxUniform

method, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
torch.manual_seed(int(sys.argv[4]) if len(sys.argv) > 4 else 0)


def simulate(theta):
    m = theta.shape[0]
    a = (torch.rand(m) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(m)
    s = 1 / math.sqrt(2)
    return torch.stack(
        [
            r * torch.cos(a) + 0.25 - (theta[:, 0] + theta[:, 1]).abs() * s,
            r * torch.sin(a) + (-theta[:, 0] + theta[:, 1]) * s,
        ],
        1,
    )


prior = BoxUniform(-torch.ones(2), torch.ones(2))
x_o = torch.tensor([[-0.6396706, 0.16234657]])  # sbibm two_moons observation 1
t0 = time.time()
if method in ("npe_b", "npe_c"):
    inference = {"npe_b": NPE_B, "npe_c": NPE_C}[method](
        prior=prior, density_estimator="nsf", show_progress_bars=False
    )
    proposal = prior
    for r in range(10):
        theta = proposal.sample((n // 10,))
        kw = {"num_atoms": 10} if method == "npe_c" else {}
        est = inference.append_simulations(theta, simulate(theta), proposal=proposal).train(
            discard_prior_samples=False, **kw
        )
        proposal = inference.build_posterior(est).set_default_x(x_o)
        print(f"round {r}: {inference.epoch} epochs, {time.time() - t0:.0f} s", flush=True)
    posterior = proposal
else:
    methods = {"fmpe": FMPE, "npse": NPSE, "nre_a": NRE_A, "bnre": BNRE, "npe_mdn": NPE_C}
    kw = {"density_estimator": "mdn"} if method == "npe_mdn" else {}
    inference = methods[method](prior=prior, show_progress_bars=False, **kw)
    theta = prior.sample((n,))
    inference.append_simulations(theta, simulate(theta)).train()
    print(f"{method} n {n}: train {time.time() - t0:.1f} s, {inference.epoch} epochs", flush=True)
    posterior = inference.build_posterior().set_default_x(x_o)
draws = posterior.sample((10000,), show_progress_bars=False)
np.savetxt(out, draws.numpy(), delimiter=",", header="parameter_1,parameter_2", comments="")
