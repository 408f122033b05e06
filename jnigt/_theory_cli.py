"""``jnigt theory``: print the predicted-time table (docs/algorithms.md#theory) and optionally plot it."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import numpy as np

from jnigt import theory, timing, validate
from jnigt.plotting import plot_predicted_times
from jnigt.report import format_table

__all__ = ["theory_main"]


def _log_n_values(max_agents: int, points: int = 30) -> list[int]:
    max_agents = validate.integer("max_agents", max_agents, 1)
    return sorted({int(round(x)) for x in np.logspace(0, math.log10(max_agents), points)} | {1, max_agents})


def _build_parser(prog: str = "jnigt theory") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Print the predicted times (Theorems 4.4, 5.1 and Table 1 of arXiv 2509.24305, see "
        "docs/algorithms.md#theory; constants and log factors dropped) and optionally plot them against the "
        "number of agents.",
    )
    p.add_argument("--agents", type=int, default=10, help="number of agents n for the table (default 10)")
    p.add_argument(
        "--step",
        choices=timing.DETERMINISTIC_STEP_MODELS,
        default="sqrt",
        help="step-time model: equal h_i=1, sqrt h_i=sqrt(i), decreasing h_i=sqrt(n+1-i) (default sqrt)",
    )
    p.add_argument(
        "--comm",
        choices=timing.COMM_MODELS,
        default="sqrt",
        help="communication model: zero, sqrt kappa_i=sqrt(i), sqrt_d kappa_i=sqrt(i) d^(1/4); "
        "kappa = max_i kappa_i (default sqrt)",
    )
    p.add_argument(
        "--num-params",
        type=int,
        default=None,
        help="number of policy parameters d (required for --comm sqrt_d)",
    )
    p.add_argument("--eps", type=float, default=0.1, help="target gradient norm eps > 0 (default 0.1)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount factor in [0, 1) (default 0.99)")
    p.add_argument("--L-g", dest="L_g", type=float, default=1.0, help="smoothness constant L_g (default 1)")
    p.add_argument(
        "--L-h", dest="L_h", type=float, default=1.0, help="Hessian-Lipschitz constant L_h (default 1)"
    )
    p.add_argument("--D", dest="D", type=float, default=1.0, help="initial gap D (default 1)")
    p.add_argument("--sigma", type=float, default=1.0, help="gradient noise sigma (default 1)")
    p.add_argument(
        "--formulas",
        choices=theory.FORMULAS,
        default="theorem",
        help="theorem: Rennala/Malenia NIGT from Theorems 4.4/5.1; table: all in Table 1 form "
        "(default theorem)",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also draw predicted time vs number of agents (log-log) into this PNG file",
    )
    p.add_argument(
        "--max-agents",
        type=int,
        default=1000,
        help="largest number of agents on the plot's x axis (default 1000)",
    )
    return p


def theory_main(argv: Sequence[str] | None = None) -> int:
    """``jnigt theory``: print the comparison table, optionally draw the plot.  Returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        c = theory.Constants(L_g=args.L_g, L_h=args.L_h, D=args.D, sigma=args.sigma, gamma=args.gamma)
        print(format_table(args.agents, args.step, args.comm, args.eps, c, args.num_params, args.formulas))
        if args.plot:
            plot_predicted_times(
                args.plot,
                _log_n_values(args.max_agents),
                args.step,
                args.comm,
                args.eps,
                c,
                args.num_params,
                args.formulas,
            )
            print(f"plot written to {args.plot}")
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(theory_main())
