"""The Python peer of `cargo xtask bench flows`: sbi 0.27 trains the same default MAF / NSF
on the same 10 000 two-moons pairs that the Rust bench trains on, in the same run.

The Rust bench writes the pairs (theta0, theta1, x0, x1 per row, little-endian f64) to a file
and calls this script with it; this script prints one line per estimator:

    peer <name> epochs <n> seconds <total> per_epoch <s> best_val <loss> sample10k <s>

which the bench reads to print the ratio. sbi's own defaults are used throughout
(batch 200, lr 5e-4, 10 % validation, stop after 20 epochs, clip 5); `--max-epochs` caps the
epochs as the Rust side does. Torch runs on `--threads` threads (2: this machine's cores).

Usage: NEUROSBI_PYTHON=<python with sbi==0.27.0 and torch> cargo xtask bench flows
(install: pip install -r scripts/sbi_peer/requirements.txt; torch's CPU wheel is enough).
"""
import argparse
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--estimators", default="maf,nsf")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import sbi
    from sbi.inference import NPE
    from sbi.utils import BoxUniform

    print(f"peer sbi {sbi.__version__} torch {torch.__version__} threads {torch.get_num_threads()}",
          flush=True)
    data = np.fromfile(args.data, dtype="<f8").reshape(-1, 4)
    theta = torch.tensor(data[:, :2], dtype=torch.float32)
    x = torch.tensor(data[:, 2:], dtype=torch.float32)
    prior = BoxUniform(-torch.ones(2), torch.ones(2))
    for name in args.estimators.split(","):
        torch.manual_seed(args.seed)
        inference = NPE(prior=prior, density_estimator=name, show_progress_bars=False)
        inference.append_simulations(theta, x)
        t0 = time.perf_counter()
        estimator = inference.train(max_num_epochs=args.max_epochs)
        total = time.perf_counter() - t0
        summary = inference._summary
        epochs = summary["epochs_trained"][-1]
        best = summary["best_validation_loss"][-1]
        posterior = inference.build_posterior(estimator)
        x_o = torch.zeros(1, 2)
        posterior.sample((10_000,), x=x_o, show_progress_bars=False)  # warm-up
        t1 = time.perf_counter()
        posterior.sample((10_000,), x=x_o, show_progress_bars=False)
        t_sample = time.perf_counter() - t1
        print(f"peer {name} epochs {epochs} seconds {total:.3f} per_epoch {total / epochs:.4f} "
              f"best_val {float(best):.4f} sample10k {t_sample:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
