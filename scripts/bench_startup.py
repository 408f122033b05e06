"""Start-up of the README's main job against today's main job of a reference commit, as ratios from one run.

The main job is the README's ``jnigt compare ...`` command (read from README.md of ``--new``, or
``--new-args``); the reference job is ``jnigt train`` with no options at ``--ref`` (default 96d72d7, the
main branch whose README's main job was ``jnigt train``: Rennala NIGT then AFedPG). Each measurement is a
fresh process running the job into a new output folder, timed from start to exit:

- ``reference``: the reference job, empty compilation cache (the first run on a machine, before);
- ``cold``: the main job, empty compilation cache (the first run on a machine, now);
- ``warm``: the main job again into a new folder, with the cache the cold run filled (any later run).

Both codes are unpacked with ``git archive`` into a temporary folder (the checkout may change while the
script runs) and imported ahead of the editable install. ``--repeats`` rounds of the three, interleaved so
that a change of machine load hits all of them alike. The cold and warm runs must end with the same
numbers (the main job's ``compare_summary.csv`` returns), or the script fails. Prints one JSON (and writes
it to ``--json``): wall-clock and CPU seconds of each run, the ratios reference / cold and the warm
wall-clock seconds (medians over the repeats), against the goals of issue 19 (cold at least 1.5x faster
than the reference, warm at most 20 s). On a shared machine the wall-clock figures move with the load of
others; the CPU figures less so (but they do not credit compiling in parallel).

    nice python scripts/bench_startup.py [--ref 96d72d7] [--repeats 1] [--json startup.json]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
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
GOAL_COLD_RATIO, GOAL_WARM_SECONDS = 1.5, 20.0

#: runs ``jnigt ARGS`` from the code at sys.argv[1] (first on sys.path, before the editable install)
RUNNER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import jnigt; "
    "assert jnigt.__file__.startswith(sys.argv[1]), jnigt.__file__; "
    "from jnigt.cli import main; sys.exit(main(sys.argv[2:]))"
)


def unpack(ref: str, into: str) -> None:
    """The code of commit ``ref`` in ``into`` (``jnigt`` and ``jnigt_envs`` importable from it)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    os.symlink(os.path.join(into, "envs"), os.path.join(into, "jnigt_envs"))


def readme_main_job(code: str) -> list[str]:
    """The arguments after ``jnigt`` of the first ``jnigt compare`` command of ``code``'s README.md."""
    spec = importlib.util.spec_from_file_location(
        "cdc", os.path.join(code, "scripts", "check_doc_commands.py")
    )
    cdc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cdc)
    import pathlib

    for _, command in cdc.commands(pathlib.Path(code)):
        for part in command.split(" && "):
            if part.startswith("jnigt compare"):
                return shlex.split(part)[1:]
    raise SystemExit(f"{code}/README.md has no jnigt compare command")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(code: str, args: list[str], out: str, cache: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``jnigt ARGS --out OUT`` process with cache folder ``cache``."""
    env = {**os.environ, "JNIGT_JAX_CACHE": cache}
    t0, c0 = time.perf_counter(), _cpu()
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, code, *args, "--out", out], env=env, capture_output=True, text=True
    )
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"{code}: jnigt {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return seconds, cpu


def final_returns(out: str) -> dict:
    with open(os.path.join(out, "compare_summary.csv"), newline="") as f:
        return {r["method"]: (r["median_return_half"], r["median_final_return"]) for r in csv.DictReader(f)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="96d72d7", help="reference commit (its main job: jnigt train)")
    p.add_argument("--ref-args", default="train", help="the reference job's arguments after jnigt")
    p.add_argument("--new", default="HEAD", help="the code to time against it")
    p.add_argument("--new-args", default=None, help="default: the README's jnigt compare command")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        ref, new = (os.path.join(tmp, k) for k in ("ref", "new"))
        for commit, folder in ((a.ref, ref), (a.new, new)):
            os.makedirs(folder)
            unpack(commit, folder)
        jobs = {
            "reference": (ref, shlex.split(a.ref_args)),
            "cold": (new, shlex.split(a.new_args) if a.new_args else readme_main_job(new)),
        }
        jobs["warm"] = jobs["cold"]
        seconds = {k: [] for k in jobs}
        cpu = {k: [] for k in jobs}
        for i in range(a.repeats):
            cache = os.path.join(tmp, f"cache{i}")  # empty: the cold run fills it, the warm run reads it
            finals = {}
            for kind, (code, args) in jobs.items():
                out = os.path.join(tmp, f"{kind}{i}")
                wall, used = run(
                    code, args, out, os.path.join(tmp, f"refcache{i}") if kind == "reference" else cache
                )
                seconds[kind].append(round(wall, 1))
                cpu[kind].append(round(used, 1))
                if kind != "reference":
                    finals[kind] = final_returns(out)
                print(f"{kind} {i}: {wall:.1f} s ({used:.1f} s CPU)", file=sys.stderr, flush=True)
            if finals["cold"] != finals["warm"]:
                raise SystemExit(f"the cold and warm runs end with different numbers: {json.dumps(finals)}")
    med = {k: statistics.median(v) for k, v in seconds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "reference_command": f"jnigt {a.ref_args} --out <new folder> (at {a.ref}, empty cache)",
        "main_job_command": "jnigt " + shlex.join(jobs["cold"][1]) + " --out <new folder>",
        "new": subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", a.new], capture_output=True, text=True
        ).stdout.strip(),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "reference_over_cold": round(med["reference"] / med["cold"], 3),
        "cpu_reference_over_cold": round(med_cpu["reference"] / med_cpu["cold"], 3),
        "warm_seconds": round(med["warm"], 1),
        "warm_cpu_seconds": round(med_cpu["warm"], 1),
        "goal_cold_ratio_at_least": GOAL_COLD_RATIO,
        "goal_warm_seconds_at_most": GOAL_WARM_SECONDS,
        "cold_goal_met": med["reference"] / med["cold"] >= GOAL_COLD_RATIO,
        "warm_goal_met": med["warm"] <= GOAL_WARM_SECONDS,
        "same_final_numbers_cold_warm": True,
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
