"""Does a rerun of a study panel's report reproduce the committed files bitwise? (issue: reruns)

Recomputes the report runs of ``--methods`` of ``--panel`` in THIS process, from the committed
``chosen_<method>.json`` and the pilot's ``pilot.json`` (the same panel, design, seeds, time grid and
calls as ``jnigt reproduce --study convergence``; jnigt.experiments.study), and compares every array with
``report_<method>.npz`` byte for byte. Prints one JSON line per method: which runs (seeds) differ, and the
largest absolute difference of the evaluation returns. Start it in separate processes, under different
load, to check that reruns agree with each other and with the committed run, e.g.:

    python scripts/rerun_check.py --out docs/results/convergence --panel main_c --methods rennala
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from jnigt.experiments import reproducible, study  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results/convergence", help="the study's output folder")
    ap.add_argument("--panel", required=True)
    ap.add_argument("--methods", nargs="*", default=None, help="default: every method with a report")
    ap.add_argument("--size", default="cpu", choices=("tiny", "cpu", "full"))
    a = ap.parse_args(argv)
    reproducible.pin_codegen()
    table = study.study_panels(a.size)
    if a.panel not in table:
        print(f"--panel: must be one of {', '.join(table)} (got {a.panel!r})", file=sys.stderr)
        return 2
    design = study.DESIGNS[a.size]
    with open(os.path.join(a.out, "pilot", a.panel, "pilot.json")) as f:
        plan = json.load(f)
    if plan.get("rounds") is None:
        print(f"{a.panel}: too short to decide at this size (no report runs to check)", file=sys.stderr)
        return 1
    panel, make_runner, times = study.panel_setup(table[a.panel], design, plan, fast_compile=a.size == "tiny")
    files = study.PanelFiles(os.path.join(a.out, panel.name))
    methods = a.methods or [m for m in panel.methods if os.path.exists(files.report(m))]
    for m in methods:
        stored = study.load_runs(files.report(m))
        with open(files.chosen(m)) as f:
            chosen = json.load(f)
        fresh = study.report_runs(make_runner(m), panel, design, m, chosen, times)
        differ = [
            int(s)
            for k, s in enumerate(stored.seeds)
            if fresh.eval_return[k].tobytes() != stored.eval_return[k].tobytes()
            or fresh.env_steps[k].tobytes() != stored.env_steps[k].tobytes()
        ]
        gap = float(np.max(np.abs(fresh.eval_return - stored.eval_return)))
        print(
            json.dumps(
                dict(panel=panel.name, method=m, runs=int(fresh.seeds.size), differ=differ, max_abs=gap)
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
