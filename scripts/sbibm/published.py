#!/usr/bin/env python3
"""Prints sbibm's published C2ST means per (task, algorithm) at 1 000 and 10 000 simulations,
as the Rust table `SBIBM_PUBLISHED_BY_ALGORITHM` in xtask/src/main.rs.

Inputs are the per-observation results of Lueckmann et al. (2021) from
github.com/sbi-benchmark/results: `benchmarking_sbi/results/main_paper.csv` and, for
gaussian_mixture (fixed in sbibm 1.1.0 and rerun), `gaussian_mixture_rerun/results/
gaussian_mixture_rerun.csv`.

    python3 scripts/sbibm/published.py main_paper.csv gaussian_mixture_rerun.csv
"""
import csv
import sys
from collections import defaultdict

TASKS = ["gaussian_linear", "two_moons", "slcp", "gaussian_mixture", "bernoulli_glm"]
ALGOS = ["NPE", "SNPE", "NLE", "SNLE", "NRE", "SNRE", "REJ-ABC", "SMC-ABC"]
BUDGETS = {"10³": 0, "10⁴": 1}


def means(path, keep):
    acc = defaultdict(list)
    for row in csv.DictReader(open(path, encoding="utf-8")):
        if keep(row["task"]) and row["num_simulations"] in BUDGETS:
            acc[(row["task"], row["algorithm"], BUDGETS[row["num_simulations"]])].append(
                float(row["C2ST"])
            )
    return {k: sum(v) / len(v) for k, v in acc.items() if len(v) == 10}


def main():
    main_paper, rerun = sys.argv[1], sys.argv[2]
    m = means(main_paper, lambda t: t in TASKS and t != "gaussian_mixture")
    m.update(means(rerun, lambda t: t == "gaussian_mixture"))
    rows = [(t, a, m[(t, a, 0)], m[(t, a, 1)]) for t in TASKS for a in ALGOS]
    print(f"const SBIBM_PUBLISHED_BY_ALGORITHM: [(&str, &str, f64, f64); {len(rows)}] = [")
    for t, a, lo, hi in rows:
        print(f'    ("{t}", "{a}", {lo:.3f}, {hi:.3f}),')
    print("];")


if __name__ == "__main__":
    main()
