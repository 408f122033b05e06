"""Estimates the CPU time of ``jnigt reproduce --study theory-lqr --size cpu`` from a timed slice.

The slice: for Rennala NIGT and AFedPG at n = 10 and n = 100 (h_i = sqrt(i), M = n), one traced-times runner
of the study (jnigt/experiments/theory_lqr.py ``Runners``), called twice on ``runs_per_call`` runs of
``--gradients`` gradients each: the first call's process CPU time is compile + run, the second's is the run
alone, so CPU per (run x gradient) and per compile are measured separately (process CPU time, not wall:
the number does not depend on how loaded the machine is). The study's total is then

    sum over stages of runs x gradients x (CPU per run-gradient of that method and n) + compiles x CPU per compile

with Synchronized NIGT and Malenia NIGT costed as Rennala NIGT (the same round work per gradient), the stages'
run counts and budgets read from ``theory_lqr.DESIGNS["cpu"]``, and the instance and heterogeneous
stationary points taken from the tiny size's measured stages (printed beside). Wall time on an otherwise idle
2-core machine is at most this CPU time (XLA's CPU code runs on both cores, so often less).

    python scripts/theory_lqr_estimate.py --gradients 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jnigt.experiments import theory_lqr  # noqa: E402
from jnigt.training import methods  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gradients", type=int, default=1000, help="gradients per run in the slice")
    ap.add_argument("--agents", default="10,100")
    a = ap.parse_args(argv)
    d = theory_lqr.DESIGNS["cpu"]
    runners = theory_lqr.Runners(d, j_star=-8.0, fast_compile=False)
    cost, compile_cpu = {}, []
    for n in (int(x) for x in a.agents.split(",")):
        h = theory_lqr.step_times(n, "sqrt")
        t_end = theory_lqr.t_end(d, n, "sqrt") * a.gradients / d.gradients
        times = theory_lqr.log_grid(t_end, d.grid_points)
        seeds = np.arange(d.runs_per_call)
        for method in ("rennala", "afedpg"):
            c0 = time.process_time()
            r = runners.get(method, n, n, "sqrt")
            r(seeds, 0.01, 0.1, times, step_time=h, comm_time=np.zeros(n))
            c1 = time.process_time()
            r(seeds + 100, 0.01, 0.1, times, step_time=h, comm_time=np.zeros(n))
            c2 = time.process_time()
            cost[method, n] = (c2 - c1) / (seeds.size * a.gradients)
            compile_cpu.append((c1 - c0) - (c2 - c1))
            print(
                f"{method} n={n}: compile {compile_cpu[-1]:.1f} s CPU, run {c2 - c1:.1f} s CPU for "
                f"{seeds.size} x {a.gradients} gradients = {1e6 * cost[method, n]:.1f} us CPU per gradient",
                flush=True,
            )
    per_compile = float(np.mean(compile_cpu))
    total, compiles = 0.0, 0
    ns = sorted({n for _, n in cost})
    for _, n, _ in d.scenarios():
        near = min(ns, key=lambda m: abs(m - n))
        for method in theory_lqr.METHODS:
            c = cost["rennala" if methods.get(method).BATCHES else "afedpg", near]
            grid = len(d.alphas(method)) * len(d.momenta) * len(d.batch_sizes(method, n))
            runs = grid * d.tune_seeds + d.report_seeds
            total += runs * d.gradients * c + d.map_seeds * len(d.map_ratios) * d.map_budget * d.gradients * c
            compiles += len(d.batch_sizes(method, n))
    for _, n, _ in d.hetero:
        near = min(ns, key=lambda m: abs(m - n))
        for method in theory_lqr.HETERO_METHODS:
            c = cost["rennala" if methods.get(method).BATCHES else "afedpg", near]
            runs = len(d.alphas(method)) * len(d.momenta) * d.tune_seeds + d.report_seeds
            total += runs * d.hetero_gradients * c
            compiles += 1
    print(
        f"estimate for --size cpu: runs {total / 60:.0f} min CPU + {compiles} compiles x {per_compile:.0f} s = "
        f"{(total + compiles * per_compile) / 60:.0f} min CPU (plus the instance and heterogeneous stationary "
        "points, about 1 min CPU at tiny size)"
    )


if __name__ == "__main__":
    main()
