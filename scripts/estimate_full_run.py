"""Expected run time of ``jnigt reproduce --size SIZE`` from the env steps each panel will simulate
(``jnigt.experiments.crosscheck.planned_env_steps``: rounds by T_end predicted by ``jnigt.theory.round_time``
x trajectories per round x H x runs of the size's grid) at an ASSUMED throughput in env steps per second
(policy gradients included). An estimate, not a measurement.

    PYTHONPATH=.:.pp python scripts/estimate_full_run.py --size full --steps-per-second 2e5
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jnigt.experiments import crosscheck, panels, tuning  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="full", choices=panels.SIZES)
    p.add_argument("--steps-per-second", type=float, default=2e5)
    p.add_argument("--panels", default="", help="comma-separated panel names (default: all of the size)")
    a = p.parse_args(argv)
    table = panels.panels_for(a.size)
    names = [x for x in a.panels.split(",") if x] or list(table)
    total = 0.0
    for name in names:
        panel = table[name]
        steps = crosscheck.planned_env_steps(panel, panel.grid or tuning.GRIDS[a.size])
        s = sum(steps.values())
        total += s
        per = ", ".join(f"{panels.LABELS[m]} {v:.2g}" for m, v in steps.items())
        print(f"{name:18s} {s:.3g} env steps ({per}): {s / a.steps_per_second / 3600:.1f} h", flush=True)
    print(
        f"all {len(names)} panels: {total:.3g} env steps, {total / a.steps_per_second / 3600:.0f} h "
        f"at an assumed {a.steps_per_second:.3g} env steps/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
