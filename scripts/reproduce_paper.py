"""Reproduce the paper's homogeneous panels: Rennala NIGT, Synchronized NIGT and AFedPG, each tuned
(alpha, eta, M) per panel, compared at equal simulated time (see docs/algorithms.md#experiments).

A thin wrapper over ``jnigt.experiments`` (panels, tuning protocol, statistics: see that package).
Panels: main_a/b/c, reacher_c, walker2d_c, hopper_c, n100_a, n100_c, decreasing, main_c_trajectory
(``jnigt.experiments.panels``; the table is printed and written to <out>/panels.md). Outputs under
--out (default runs/paper), per panel: <panel>_tuning.csv, <panel>_chosen.json, <panel>_curves.csv,
<panel>_summary.csv, <panel>_theory.csv (theory cross-check), <panel>.png; for all: summary.csv,
summary.jsonl, walls.json, theory_crosscheck.md. Expected run time: see ``jnigt reproduce --help``.

Usage:
    PYTHONPATH=. python scripts/reproduce_paper.py [--size tiny|cpu|full] [--out runs/paper]
        [--panels main_a,main_c] [--no-cache]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jnigt.experiments import commands  # noqa: E402

PANELS = (
    "main_a",
    "main_b",
    "main_c",
    "reacher_c",
    "walker2d_c",
    "hopper_c",
    "n100_a",
    "n100_c",
    "decreasing",
    "main_c_trajectory",
)


def parse(argv, description, default_panels):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", choices=("tiny", "cpu", "full"), default="cpu")
    p.add_argument("--out", default=os.path.join("runs", "paper"))
    p.add_argument("--panels", default=",".join(default_panels), help="comma-separated panel names")
    p.add_argument("--runs-per-call", type=int, default=None)
    p.add_argument("--cache-dir", default=None, help="default: $JNIGT_JAX_CACHE, else ~/.cache/jnigt/jax")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    return commands.ReproduceArgs(
        size=a.size,
        panels=tuple(x for x in a.panels.split(",") if x),
        out=a.out,
        runs_per_call=a.runs_per_call,
        cache_dir=a.cache_dir,
        no_cache=a.no_cache,
        progress=not a.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return commands.reproduce_command(parse(argv, "The paper's homogeneous panels at equal time.", PANELS))


if __name__ == "__main__":
    sys.exit(main())
