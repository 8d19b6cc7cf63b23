"""sbi 0.27's sequential NPE (NPE_B or NPE_C/APT) with sbibm's settings on two_moons.

10 rounds of N/10 simulations each, an NSF, the next round's proposal being the posterior
at sbibm's observation 1; writes 10 000 posterior draws, to compare with neurosbi's draws of
the same method (`SBIBM_DUMP=<dir> SBIBM_TASKS=two_moons SBIBM_BUDGETS=N SBIBM_OBS=1
SBIBM_METHOD=npe_b|npe SBIBM_ROUNDS=10 cargo xtask bench sbibm`) through a C2ST against
sbibm's reference samples of that observation.

usage: python seq_two_moons.py npe_b|npe_c N OUT.csv [SEED]
"""

import math
import sys
import time

import numpy as np
import torch
from sbi.inference import NPE_B, NPE_C
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
inference = {"npe_b": NPE_B, "npe_c": NPE_C}[method](
    prior=prior, density_estimator="nsf", show_progress_bars=False
)
proposal = prior
t0 = time.time()
for r in range(10):
    theta = proposal.sample((n // 10,))
    x = simulate(theta)
    kw = {"num_atoms": 10} if method == "npe_c" else {}
    est = inference.append_simulations(theta, x, proposal=proposal).train(
        discard_prior_samples=False, **kw
    )
    proposal = inference.build_posterior(est).set_default_x(x_o)
    print(f"round {r}: {inference.epoch} epochs, {time.time() - t0:.0f} s", flush=True)
draws = proposal.sample((10000,), show_progress_bars=False)
np.savetxt(out, draws.numpy(), delimiter=",", header="parameter_1,parameter_2", comments="")
