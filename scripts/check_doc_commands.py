"""Run (or list) every shell command of the ```bash blocks of README.md and docs/*.md.

The Python blocks are run by the test suite (tests/test_docs.py), and so are the README's training and
comparison commands at a tiny size; the shell commands as written train, tune and benchmark for minutes
to hours, so they are run here, outside the suite:

    python scripts/check_doc_commands.py --dry-run     # list each command and what would run
    python scripts/check_doc_commands.py               # run them all as written (hours)
    python scripts/check_doc_commands.py --tiny        # run them all with tiny overrides (minutes)
    python scripts/check_doc_commands.py --only compare # only the commands matching a regex

Commands run one after the other, in the order of the docs, in ONE working folder: a copy of this
checkout's files (tracked and untracked, not ignored; ``--work DIR`` to choose it, kept afterwards), so
that a command can read what an earlier one wrote (``jnigt plot runs/one ...``) and nothing lands in the
checkout. Run as written, every training and comparison command (``jnigt train``, ``jnigt compare``) must
also LEARN: its final evaluation above its initial one (for ``jnigt compare``: every method's median over
the report seeds; :func:`learned`). The tiny overrides (:data:`TINY`, ``--tiny``) only append options that
shrink the work (rounds, seeds, grid points, sizes); later options win in tyro and argparse, so the
command's own options stay as written otherwise; shrunk runs are not asked to learn. ``pip install ...``
parts of a command are skipped unless ``--install``, which first makes a fresh virtual environment in the
working folder and runs every command with it (as on a fresh machine). Exit status: 0 when every command
that ran exited 0 (and learned), 1 otherwise; each command's output is in ``<work>/logs/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\s*$")

#: (regex searched in one command, options appended to it): the first match applies.
TINY_TRAIN = "--rounds 2 --eval-every 2 --eval-episodes 2"
TINY_COMPARE = "--rounds 2 --grid-points 3 --tune-seeds 1 --seeds 2 --eval-episodes 2"
TINY = [
    (r"^python -m pytest\b", "--collect-only"),  # the full suite is .ci/run's job
    (r"^jnigt train --help", ""),
    (r"^jnigt train\b", TINY_TRAIN),
    (r"^jnigt compare\b", TINY_COMPARE),
    (r"^jnigt sweep\b", "--rounds 2 --grid-points 3 --seeds 1 --eval-episodes 2"),
    (r"^jnigt reproduce\b", "--size tiny"),
    (r"scripts/launch_local\.py", TINY_TRAIN),
    (r"scripts/bench_sweep\.py .*--ks", "--ks 2 --rounds 1 --reps 1 --seq-runs 1 --loop-runs 1"),
    (r"scripts/ray_vs_simulator\.py", "--envs lqr --agents 4 --time-scales 1e-3 --rounds 2"),
]
#: the commands that train or compare, and so must learn when run as written
LEARNS = re.compile(r"^jnigt (train|compare)\b(?!.*--help)")


def code_blocks(path: pathlib.Path, language: str) -> list[tuple[int, str]]:
    """(first line number, source) of every fenced block of ``language`` in ``path``."""
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if lang is None:
            if fence is not None:
                lang, start, body = fence.group(1), number + 1, []
        elif fence is not None and fence.group(1) == "":
            if lang == language:
                blocks.append((start, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    if lang is not None:
        raise ValueError(f"{path.name}: the code block opened at line {start - 1} is never closed")
    return blocks


def doc_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def commands(root: pathlib.Path = ROOT) -> list[tuple[str, str]]:
    """("FILE:LINE", command) of every command of every bash block, backslash continuations joined and
    trailing ``# comments`` dropped."""
    out = []
    for path in doc_files(root):
        for start, source in code_blocks(path, "bash"):
            pending, first = "", start
            for offset, line in enumerate(source.splitlines()):
                if not pending:
                    first = start + offset
                line = line.rstrip()
                if line.endswith("\\"):
                    pending += line[:-1].strip() + " "
                    continue
                command = re.sub(r"\s+#\s.*$", "", pending + line.strip()).strip()
                pending = ""
                if command and not command.startswith("#"):
                    out.append((f"{path.name}:{first}", command))
    return out


def tiny(command: str) -> str:
    """``command`` with the tiny overrides of :data:`TINY` appended to each of its ``&&`` parts."""
    parts = []
    for part in command.split(" && "):
        for pattern, extra in TINY:
            if re.search(pattern, part):
                part = f"{part} {extra}".strip()
                break
        parts.append(part)
    return " && ".join(parts)


def without_installs(command: str) -> tuple[str, list[str]]:
    """(the command without its ``pip install`` parts, the parts dropped)."""
    parts = command.split(" && ")
    kept = [p for p in parts if not p.startswith("pip install")]
    return " && ".join(kept), [p for p in parts if p.startswith("pip install")]


def learned(part: str, cwd: pathlib.Path) -> str | None:
    """None when the training or comparison command ``part`` (already run in ``cwd``) learned, else why not:
    ``jnigt train``: the run's last evaluation above its first (metrics.jsonl); ``jnigt compare``: every
    method's median return over the report seeds at the last grid time above that at time 0."""
    args = shlex.split(part)[2:]
    if part.startswith("jnigt train"):
        from jnigt import cli

        opts, (config,) = cli.parse_train(args)
        path = cwd / opts.out / f"{config.method}+{config.optimizer}" / "metrics.jsonl"
        evals = [
            r["eval_return"] for r in map(json.loads, path.read_text().splitlines()) if "eval_return" in r
        ]
        if len(evals) < 2 or not (evals[-1] is not None and evals[0] is not None and evals[-1] > evals[0]):
            return f"{path}: evaluations {evals[0]} -> {evals[-1]}" if evals else f"{path}: no evaluation"
        return None
    from jnigt.cli_support import parse
    from jnigt.experiments.commands import CompareArgs

    path = cwd / parse(CompareArgs, args, "jnigt compare").out / "compare_curves.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    worse = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        times = sorted({float(r["time"]) for r in mine})
        first, last = (
            statistics.median(float(r["eval_return"]) for r in mine if float(r["time"]) == t)
            for t in (times[0], times[-1])
        )
        if not last > first:
            worse.append(f"{method} {first:.4g} -> {last:.4g}")
    return f"{path}: median return did not rise: {', '.join(worse)}" if worse else None


def copy_checkout(dest: pathlib.Path) -> None:
    """The checkout's files (tracked and untracked, not ignored) into ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="list the commands and what would run; run nothing")
    p.add_argument(
        "--tiny", action="store_true", help="append the tiny overrides (minutes; nothing must learn)"
    )
    p.add_argument("--install", action="store_true", help="run the pip install parts, in a fresh venv")
    p.add_argument("--only", default=None, help="run only the commands matching this regex")
    p.add_argument("--work", default=None, help="working folder (default: a new temporary one)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per command")
    a = p.parse_args(argv)

    planned = []
    for where, written in commands():
        if a.only is not None and not re.search(a.only, written):
            continue
        run = tiny(written) if a.tiny else written
        skipped: list[str] = []
        if not a.install:
            run, skipped = without_installs(run)
        planned.append((where, written, run, skipped))
    if a.dry_run:
        for where, written, run, skipped in planned:
            print(f"{where}: {written}")
            if run != written or skipped:
                print(
                    f"    runs: {run or '(nothing)'}"
                    + (f"   [skipped: {' && '.join(skipped)}]" if skipped else "")
                )
        print(f"{len(planned)} commands")
        return 0

    work = pathlib.Path(a.work or tempfile.mkdtemp(prefix="jnigt_doc_commands_")).resolve()
    checkout = work / "checkout"
    if checkout.exists():
        shutil.rmtree(checkout)
    copy_checkout(checkout)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PWD=str(checkout))
    if a.install:
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
        env["PATH"] = f"{work / 'venv' / 'bin'}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(work / "venv")
    elif shutil.which("jnigt", path=env["PATH"]) is None:
        print("check_doc_commands: jnigt is not installed here; pip install -e . first, or pass --install")
        return 2
    print(f"working folder {checkout} (logs in {logs})", flush=True)
    passed = failed = 0
    for k, (where, written, run, skipped) in enumerate(planned):
        if not run:
            print(f"SKIP {where}: {written} (pip install only; pass --install)", flush=True)
            continue
        log = logs / f"{k:02d}.log"
        t0 = time.perf_counter()
        with open(log, "w") as f:
            f.write(f"$ {run}\n")
            f.flush()
            try:
                rc = subprocess.run(
                    run,
                    shell=True,
                    executable="/bin/bash",
                    cwd=checkout,
                    env=env,
                    stdout=f,
                    stderr=f,
                    timeout=a.timeout,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        if rc == 0 and not a.tiny:
            for part in run.split(" && "):
                if LEARNS.search(part):
                    why = learned(part, checkout)
                    if why is not None:
                        rc = "did not learn"
                        with open(log, "a") as f:
                            f.write(f"did not learn: {why}\n")
        status = "PASS" if rc == 0 else f"FAIL ({rc if isinstance(rc, str) else f'exit {rc}'})"
        passed, failed = passed + (rc == 0), failed + (rc != 0)
        note = f"   [skipped: {' && '.join(skipped)}]" if skipped else ""
        print(f"{status} {where} {time.perf_counter() - t0:.0f} s: {run}{note}", flush=True)
        if rc != 0:
            tail = log.read_text().splitlines()[-5:]
            print("\n".join("    " + line for line in tail), flush=True)
    print(f"{passed} passed, {failed} failed, {len(planned) - passed - failed} skipped; logs in {logs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
