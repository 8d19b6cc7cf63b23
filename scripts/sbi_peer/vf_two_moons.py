"""sbi 0.27's FMPE or NPSE with its defaults on sbibm's two_moons simulator.

Trains on N fresh simulations and writes 10 000 posterior draws for sbibm's observation 1,
to compare with neurosbi's draws of the same method (`SBIBM_DUMP=<dir> SBIBM_TASKS=two_moons
SBIBM_BUDGETS=N SBIBM_OBS=1 SBIBM_METHOD=fmpe|npse cargo xtask bench sbibm`) through a C2ST
against sbibm's reference samples of that observation.

usage: python vf_two_moons.py fmpe|npse N OUT.csv [SEED]
"""

import math
import sys
import time

import numpy as np
import torch
from sbi.inference import FMPE, NPSE
from sbi.utils import BoxUniform

method, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
torch.manual_seed(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
theta = torch.rand(n, 2) * 2 - 1
a = (torch.rand(n) - 0.5) * math.pi
r = 0.1 + 0.01 * torch.randn(n)
s = 1 / math.sqrt(2)
x = torch.stack(
    [
        r * torch.cos(a) + 0.25 - (theta[:, 0] + theta[:, 1]).abs() * s,
        r * torch.sin(a) + (-theta[:, 0] + theta[:, 1]) * s,
    ],
    1,
)
prior = BoxUniform(-torch.ones(2), torch.ones(2))
inference = {"fmpe": FMPE, "npse": NPSE}[method](prior=prior, show_progress_bars=False)
t0 = time.time()
inference.append_simulations(theta, x).train()
print(f"{method} n {n}: train {time.time() - t0:.1f} s, {inference.epoch} epochs", flush=True)
x_o = torch.tensor([[-0.6396706, 0.16234657]])  # sbibm two_moons observation 1
draws = inference.build_posterior().sample((10000,), x=x_o, show_progress_bars=False)
np.savetxt(out, draws.numpy(), delimiter=",", header="parameter_1,parameter_2", comments="")
