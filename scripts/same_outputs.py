"""Whether two folders of experiment outputs (what ``jnigt reproduce``, ``compare`` and ``sweep`` write)
hold the same files, byte for byte, but for what depends on the machine and the clock: the ``wall_s``
column and keys and the ``machine`` key. A check for refactors that must not change behaviour:

    git archive OLD_COMMIT | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old:/tmp/old/envs jnigt reproduce --size tiny --out /tmp/a/reproduce --no-progress
    jnigt reproduce --size tiny --out /tmp/b/reproduce --no-progress
    python scripts/same_outputs.py /tmp/a /tmp/b

Prints every file that differs (or exists on one side only) and exits 1 if any does, else 0.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys

VOLATILE = ("wall_s", "machine")


def _drop(x):
    if isinstance(x, dict):
        return {k: _drop(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_drop(v) for v in x]
    return x


def content(path: str):
    """What must not change in the file at ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(data.decode())))
        keep = [i for i, c in enumerate(rows[0] if rows else []) if c not in VOLATILE]
        return [[r[i] for i in keep] for r in rows]
    if path.endswith(".json"):  # re-serialised: key order counts
        return json.dumps(_drop(json.loads(data)))
    if path.endswith(".jsonl"):
        return [json.dumps(_drop(json.loads(line))) for line in data.decode().splitlines()]
    return data


def files(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: same_outputs.py FOLDER_A FOLDER_B", file=sys.stderr)
        return 2
    a, b = argv
    names_a, names_b = files(a), files(b)
    differ = sorted(names_a ^ names_b)
    differ += sorted(
        n for n in names_a & names_b if content(os.path.join(a, n)) != content(os.path.join(b, n))
    )
    for n in differ:
        print(f"differs: {n}")
    print(
        f"{len(names_a & names_b) - len(set(differ) & names_a & names_b)} of {len(names_a | names_b)} files the same"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
