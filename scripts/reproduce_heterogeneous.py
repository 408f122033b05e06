"""Reproduce the heterogeneous panels: Malenia NIGT vs AFedPG with n = 2, h = (1, 10) and mirrored
observations (panel ``hetero``), and, beyond the paper, Malenia NIGT vs AFedPG vs Synchronized NIGT with
n = 10 agents of different physics (panel ``physics``). Each method tuned per panel, compared at equal
simulated time. A thin wrapper over ``jnigt.experiments`` (see scripts/reproduce_paper.py for outputs).

Usage:
    PYTHONPATH=. python scripts/reproduce_heterogeneous.py [--size tiny|cpu|full] [--out runs/paper]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import reproduce_paper  # noqa: E402

from jnigt.experiments import commands  # noqa: E402

PANELS = ("hetero", "physics")


def main(argv: Sequence[str] | None = None) -> int:
    args = reproduce_paper.parse(argv, "Heterogeneous panels (Malenia NIGT) at equal time.", PANELS)
    return commands.reproduce_command(args)


if __name__ == "__main__":
    sys.exit(main())
