"""Are two runs of the convergence study the same, file by file? (issue: reruns)

Compares every stage and result file of study folder ``--fresh`` (e.g. a rerun of ``jnigt reproduce
--study convergence`` into a new folder) with the same file of ``--stored`` (e.g. the committed
docs/results/convergence): the tuning tables, chosen points, pilot decisions and plans, results.md,
summary.csv and curves.csv byte for byte, and the report runs (``report_<method>.npz``) array by array
(an npz archive's bytes also hold the time it was written). Figures (PNG) and logs are not compared.
Prints one JSON object: how many files were compared, which differ (with, for report runs, the seeds
whose arrays differ), and which exist in only one folder. Exit 0 when every file is the same, 1 if not:

    python scripts/compare_studies.py --fresh runs/convergence --stored docs/results/convergence
"""

import argparse
import json
import os
import sys

import numpy as np

COMPARED = (".csv", ".json", ".md", ".npz")
SKIPPED = ("README.md",)  # the folder's hand-written description, not an output


def files_of(folder: str) -> set[str]:
    out = set()
    for root, _, names in os.walk(folder):
        for name in names:
            if name.endswith(COMPARED) and name not in SKIPPED:
                out.add(os.path.relpath(os.path.join(root, name), folder))
    return out


def npz_difference(a: str, b: str) -> dict | None:
    """None when the archives hold the same arrays bitwise; else the differing arrays (and seeds)."""
    with np.load(a) as x, np.load(b) as y:
        if sorted(x.files) != sorted(y.files):
            return dict(arrays=sorted(set(x.files) ^ set(y.files)))
        differ = [k for k in x.files if x[k].dtype != y[k].dtype or x[k].tobytes() != y[k].tobytes()]
        if not differ:
            return None
        out: dict = dict(arrays=differ)
        if (
            "seeds" in x.files
            and "eval_return" in differ
            and x["eval_return"].shape == y["eval_return"].shape
        ):
            rows = [
                i
                for i in range(len(x["seeds"]))
                if x["eval_return"][i].tobytes() != y["eval_return"][i].tobytes()
            ]
            out["seeds"] = [int(x["seeds"][i]) for i in rows]
            out["max_abs_eval_return"] = float(np.max(np.abs(x["eval_return"] - y["eval_return"])))
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", required=True, help="a study folder (the rerun)")
    ap.add_argument("--stored", default="docs/results/convergence", help="the study folder compared with")
    a = ap.parse_args(argv)
    for name, folder in (("--fresh", a.fresh), ("--stored", a.stored)):
        if not os.path.isdir(folder):
            print(f"{name}: not a folder: {folder!r}", file=sys.stderr)
            return 2
    fresh, stored = files_of(a.fresh), files_of(a.stored)
    differ = {}
    for rel in sorted(fresh & stored):
        f, s = os.path.join(a.fresh, rel), os.path.join(a.stored, rel)
        if rel.endswith(".npz"):
            d = npz_difference(f, s)
            if d is not None:
                differ[rel] = d
        else:
            with open(f, "rb") as x, open(s, "rb") as y:
                if x.read() != y.read():
                    differ[rel] = "bytes differ"
    out = dict(
        compared=len(fresh & stored),
        same=len(fresh & stored) - len(differ),
        differ=differ,
        only_fresh=sorted(fresh - stored),
        only_stored=sorted(stored - fresh),
    )
    print(json.dumps(out, indent=1))
    return 0 if not differ and fresh == stored else 1


if __name__ == "__main__":
    sys.exit(main())
