"""Start-up of the README's main job (``jnigt train``) against a reference commit, as ratios from one run.

Each measurement is a fresh process running ``jnigt train --out <new folder>`` (plus ``--args``), timed
from start to exit: the reference code (``--ref``, default commit 7719c8f: the main branch before the
compiled-ahead start-up), then the code of ``--new`` (default HEAD: the last commit of this checkout)
with an empty compilation cache (cold: the first run on a machine), then ``--new`` again with that cache
(warm: any later run). Both are unpacked with ``git archive`` into a temporary folder, so the checkout
may change while the script runs. ``--repeats`` rounds of the three, interleaved so that a change of machine load hits
all of them alike. Every run must end with the same final numbers (metrics.jsonl's last rows), or the
script fails. Prints one JSON: the wall-clock and CPU seconds of each run and the ratios reference/cold,
reference/warm (medians over the repeats). On a shared machine the wall-clock figures move with the
load of others; the CPU figures less so (but they do not credit compiling in parallel).

    python scripts/bench_startup.py [--ref 7719c8f] [--repeats 1] [--args "--rounds 20"]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: runs ``jnigt train`` from the code at sys.argv[1] (first on sys.path, before the editable install)
RUNNER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import jnigt; "
    "assert jnigt.__file__.startswith(sys.argv[1]), jnigt.__file__; "
    "from jnigt.cli import main; sys.exit(main(['train', *sys.argv[2:]]))"
)


def unpack(ref: str, into: str) -> None:
    """The code of commit ``ref`` in ``into`` (``jnigt`` and ``jnigt_envs`` importable from it)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    os.symlink(os.path.join(into, "envs"), os.path.join(into, "jnigt_envs"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(code: str, out: str, cache: str, extra: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``jnigt train`` process."""
    env = {**os.environ, "JNIGT_JAX_CACHE": cache}
    t0, c0 = time.perf_counter(), _cpu()
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, code, "--out", out, *extra], env=env, capture_output=True, text=True
    )
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"{code}: jnigt train failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return seconds, cpu


def final_rows(out: str) -> dict:
    rows = {}
    for path in sorted(glob.glob(os.path.join(out, "*", "metrics.jsonl"))):
        with open(path) as f:
            rows[os.path.basename(os.path.dirname(path))] = [json.loads(line) for line in f if line.strip()][
                -1
            ]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="7719c8f", help="reference commit (today's main)")
    p.add_argument("--new", default="HEAD", help="the code to time against it")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--args", default="", help="extra jnigt train options, e.g. '--rounds 20'")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    extra = shlex.split(a.args)
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        ref, new = (os.path.join(tmp, k) for k in ("ref", "new"))
        for commit, folder in ((a.ref, ref), (a.new, new)):
            os.makedirs(folder)
            unpack(commit, folder)
        seconds = {"reference": [], "cold": [], "warm": []}
        cpu = {"reference": [], "cold": [], "warm": []}
        finals = {}
        for i in range(a.repeats):
            cache = os.path.join(tmp, f"cache{i}")  # empty: the cold run fills it, the warm run reads it
            for kind, code in (("reference", ref), ("cold", new), ("warm", new)):
                out = os.path.join(tmp, f"{kind}{i}")
                # the reference's jnigt train has no cache (and ignores JNIGT_JAX_CACHE)
                wall, used = run(code, out, cache, extra)
                seconds[kind].append(round(wall, 1))
                cpu[kind].append(round(used, 1))
                finals[kind] = final_rows(out)
                print(f"{kind} {i}: {wall:.1f} s ({used:.1f} s CPU)", file=sys.stderr, flush=True)
        if not (finals["reference"] == finals["cold"] == finals["warm"]):
            raise SystemExit(f"the runs end with different numbers: {json.dumps(finals)}")
    med = {k: statistics.median(v) for k, v in seconds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "command": "jnigt train --out <new folder> " + a.args,
        "reference": a.ref,
        "new": subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", a.new], capture_output=True, text=True
        ).stdout.strip(),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "reference_over_cold": round(med["reference"] / med["cold"], 3),
        "reference_over_warm": round(med["reference"] / med["warm"], 3),
        "cpu_reference_over_cold": round(med_cpu["reference"] / med_cpu["cold"], 3),
        "cpu_reference_over_warm": round(med_cpu["reference"] / med_cpu["warm"], 3),
        "warm_seconds": round(med["warm"], 1),
        "same_final_numbers": True,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
