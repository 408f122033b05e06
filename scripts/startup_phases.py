"""Where the first (cold-cache) run of the README's main job spends its time, from the timestamps of its output.

Runs the README's ``jnigt compare`` command (scripts/bench_startup.py's ``readme_main_job``) once in a fresh
process with an empty compilation cache and a new output folder, reads its output as it comes and prints:

- set-up: until the first ``compiling`` line (imports, environments, trainers);
- compile: until the progress bar restarts after the last ``compiling`` line (tracing and compiling; the
  ``compiling`` lines' own times are printed too: a program is traced between its line and the next);
- training: until the last ``median final return`` line (the tuning and report runs);
- files and exit: the rest (files, figure, summary, interpreter exit).

``--fast-compile`` runs the same job with ``EqualTimeRunner(fast_compile=True)`` (XLA optimisation level 0).
Wall-clock seconds of one run: they move with the machine's load.

    python scripts/startup_phases.py
    python scripts/startup_phases.py --fast-compile
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_startup import ROOT, readme_main_job  # noqa: E402

RUNNER = (
    "import functools, sys; from jnigt.experiments import compare; "
    "compare.run_panel = functools.partial(compare.run_panel, fast_compile=sys.argv[1] == '1'); "
    "from jnigt.cli import main; sys.exit(main(sys.argv[2:]))"
)


def timed_lines(cmd: list[str], env: dict) -> tuple[list[tuple[float, str]], float, int]:
    """Every line of ``cmd``'s stdout and stderr (tqdm's ``\\r`` updates count as lines) with its time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, buf = [], ""
    while ch := p.stdout.read(1):
        if ch in "\r\n":
            if buf.strip():
                lines.append((time.perf_counter() - t0, buf))
            buf = ""
        else:
            buf += ch
    rc = p.wait()
    return lines, time.perf_counter() - t0, rc


def phases(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    compiling = [k for k, (_, s) in enumerate(lines) if "compiling" in s]
    if not compiling:
        raise SystemExit("no 'compiling' line: the cache was not empty")
    last = compiling[-1]
    restart = next(t for t, s in lines[last + 1 :] if "0%|" in s or "[00:0" in s)
    trained = [t for t, s in lines if "median final return" in s][-1]
    first = lines[compiling[0]][0]
    for k in compiling:
        print(f"  at {lines[k][0]:6.1f} s: {lines[k][1].split('compiling', 1)[1].strip()}")
    return {
        "set-up": first,
        "compile": restart - first,
        "training": trained - restart,
        "files and exit": total - trained,
        "total": total,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast-compile", action="store_true")
    a = p.parse_args(argv)
    args = readme_main_job(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JNIGT_JAX_CACHE": os.path.join(tmp, "cache"), "PYTHONUNBUFFERED": "1"}
        out = os.path.join(tmp, "out")
        cmd = [sys.executable, "-c", RUNNER, "1" if a.fast_compile else "0", *args, "--out", out]
        lines, total, rc = timed_lines(cmd, env)
    if rc != 0:
        print("\n".join(s for _, s in lines[-20:]))
        raise SystemExit(f"the main job failed ({rc})")
    print(
        f"jnigt {' '.join(args)}  (empty cache, fast_compile={a.fast_compile}, load {os.getloadavg()[0]:.1f})"
    )
    for name, seconds in phases(lines, total).items():
        print(f"  {name:15s} {seconds:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
