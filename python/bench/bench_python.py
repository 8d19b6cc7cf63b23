"""`cargo xtask bench python`: the Python package's speed figures (issue 20).

1. sbi's two_moons, 10 000 user-supplied (theta, x), default MAF: wall time to a trained
   posterior and 10 000 samples, neurosbi from Python vs the pure Rust path (the
   `train_npe` example on the same arrays and settings) and vs sbi when sbi and torch are
   importable.
2. The HH tutorial through API 1 (10 000 simulations) vs `neurosbi fit` on its fit file.
3. `simulate_for_sbi`: overhead per batch beyond the simulator's own time.

NEUROSBI_BENCH_N scales the sizes down (e.g. 1000) for a quick check.
"""

import os
import pathlib
import subprocess
import tempfile
import time

import numpy as np

import neurosbi

N = int(os.environ.get("NEUROSBI_BENCH_N", "10000"))
RUST_NPE = os.environ.get("NEUROSBI_TRAIN_NPE_EXAMPLE")
CLI = os.environ.get("NEUROSBI_CLI")
HERE = pathlib.Path(__file__).resolve().parent


def two_moons(n, seed=0):
    """sbibm's two_moons simulator."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1, 1, size=(n, 2))
    a = rng.uniform(-np.pi / 2, np.pi / 2, n)
    r = rng.normal(0.1, 0.01, n)
    p = np.column_stack([r * np.cos(a) + 0.25, r * np.sin(a)])
    x = p + np.column_stack([-np.abs(theta.sum(1)) / np.sqrt(2),
                             (-theta[:, 0] + theta[:, 1]) / np.sqrt(2)])
    return theta, x


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def bench_two_moons():
    theta, x = two_moons(N)
    x_o = np.zeros(2)
    prior = neurosbi.BoxUniform(low=[-1, -1], high=[1, 1])

    inference = neurosbi.NPE(prior).append_simulations(theta, x)
    t_train, _ = timed(lambda: inference.train(seed=0))
    posterior = inference.build_posterior()
    t_sample, _ = timed(lambda: posterior.sample((N,), x=x_o, seed=1))
    t_py = t_train + t_sample
    print(f"two_moons {N} pairs, MAF: neurosbi from Python {t_py:.2f} s (training "
          f"{t_train:.2f} s, {N} samples {t_sample:.2f} s)")
    if RUST_NPE:
        with tempfile.TemporaryDirectory() as d:
            theta.astype("<f8").tofile(f"{d}/t.f64")
            x.astype("<f8").tofile(f"{d}/x.f64")
            args = [RUST_NPE, f"{d}/t.f64", f"{d}/x.f64", "2", "2", "-1", "1", "100000", "0",
                    f"{d}/post"]
            r = subprocess.run(args, check=True, capture_output=True, text=True)
        t_rust = float(r.stderr.split("trained in ")[1].split()[0])
        print(f"  the same training from Rust (train_npe, bit-identical network) {t_rust:.2f} s:"
              f" Python overhead {100 * (t_train - t_rust) / t_rust:+.1f} % (target < 10 %)")
    try:
        import torch
        from sbi.inference import NPE as SbiNPE
        from sbi.utils import BoxUniform as SbiBox
    except ImportError:
        print("  sbi/torch not importable: the sbi side is skipped")
        return
    import sbi

    torch.manual_seed(0)
    print(f"  sbi {sbi.__version__}, torch {torch.__version__}, {torch.get_num_threads()} "
          "torch threads")

    def sbi_side():
        p = SbiBox(low=-torch.ones(2), high=torch.ones(2))
        inf = SbiNPE(p)
        inf.append_simulations(torch.tensor(theta, dtype=torch.float32),
                               torch.tensor(x, dtype=torch.float32)).train()
        return inf.build_posterior().sample((N,), x=torch.zeros(2))

    t_sbi, _ = timed(sbi_side)
    print(f"  sbi {t_sbi:.2f} s: neurosbi is {t_sbi / t_py:.1f}x faster (target >= 10x)")


def bench_hh():
    import json

    nb = json.load(open(HERE.parent / "examples" / "hh_tutorial.ipynb"))
    # The notebook's first four code cells: imports, stimulus, model, the Inferencer.
    code = "\n".join([c["source"] for c in nb["cells"] if c["cell_type"] == "code"][:4])
    scope = {}
    exec(code.replace("500 if QUICK else 10_000", str(N)), scope)
    inferencer = scope["inferencer"]
    priors = dict(g_Na=["0.5*uS", "80*uS"], g_K=["1e-4*uS", "15*uS"])
    t_api, _ = timed(lambda: (inferencer.infer(n_samples=N, seed=0, progress=False, **priors),
                              inferencer.sample((N,))))
    print(f"HH tutorial, {N} simulations: API 1 {t_api:.2f} s")
    if CLI:
        with tempfile.TemporaryDirectory() as d:
            inferencer.to_fit_file(f"{d}/hh.toml", samples=N, output=f"{d}/out")
            t_cli, _ = timed(lambda: subprocess.run([CLI, "fit", f"{d}/hh.toml", "--quiet"],
                                                     check=True))
        print(f"  neurosbi fit {t_cli:.2f} s (writes figures and report too): API 1 / fit = "
              f"{t_api / t_cli:.2f} (target <= 1.2)")


def bench_simulate_for_sbi():
    prior = neurosbi.BoxUniform(low=[-1, -1], high=[1, 1])
    n, batch = 100 * N // 10, 100
    theta = prior.sample((n,), seed=0)
    t_sim, _ = timed(lambda: [theta[i:i + batch] * 2.0 for i in range(0, n, batch)])
    t_all, _ = timed(lambda: neurosbi.simulate_for_sbi(lambda t: t * 2.0, prior, n,
                                                       simulation_batch_size=batch, seed=0,
                                                       show_progress_bar=False))
    per_batch = (t_all - t_sim) / (n // batch) * 1e3
    print(f"simulate_for_sbi: {n // batch} batches of {batch}: overhead {per_batch:.3f} ms "
          "per batch (target < 1 ms)")


if __name__ == "__main__":
    bench_simulate_for_sbi()
    bench_two_moons()
    bench_hh()
