#!/usr/bin/env python
"""Start N local processes of ``jnigt train`` that form one multi-process JAX run on this machine.

    python scripts/launch_local.py --num-processes 2 --devices-per-process 2 -- \\
        --method rennala --env inverted_pendulum --rounds 20 --out runs/two_procs

Every child gets ``--coordinator 127.0.0.1:<free port> --num-processes N --process-id i`` (CPU
collectives through gloo, see ``jnigt.distributed.initialize``) and its own
``XLA_FLAGS=--xla_force_host_platform_device_count=K``, so the agents mesh spans N * K devices.
Arguments after ``--`` (or any unknown ones) go to ``jnigt train`` unchanged. Process 0 writes
metrics and plots; its output is shown, the others' go to ``<log-dir>/proc<i>.log`` (or are shown
too with ``--show-all``). If one child fails or the launcher is interrupted, the others are killed.
Returns the first non-zero exit code (0 if all succeeded).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(devices_per_process: int, base: dict | None = None) -> dict:
    """The parent's environment without its XLA_FLAGS device count, with K host devices instead."""
    env = dict(os.environ if base is None else base)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
    env["XLA_FLAGS"] = " ".join(flags)
    env.setdefault("JAX_PLATFORMS", "cpu")
    for name in ("JNIGT_COORDINATOR", "JNIGT_NUM_PROCESSES", "JNIGT_PROCESS_ID"):
        env.pop(name, None)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in paths if p != REPO])
    return env


def _stop(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        if p.poll() is None:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def launch(
    num_processes: int,
    devices_per_process: int,
    train_args: list[str],
    *,
    log_dir: str | None = None,
    show_all: bool = False,
    timeout: float | None = None,
    port: int | None = None,
) -> int:
    """Run the children; return 0 if all exit 0, else the first failure's code (124 on timeout)."""
    if num_processes < 1 or devices_per_process < 1:
        raise ValueError("--num-processes and --devices-per-process must be >= 1")
    for flag in ("--coordinator", "--num-processes", "--process-id"):
        if any(a == flag or a.startswith(flag + "=") for a in train_args):
            raise ValueError(f"{flag} is set by the launcher; do not pass it to jnigt train")
    coordinator = f"127.0.0.1:{port or free_port()}"
    log_dir = log_dir or tempfile.mkdtemp(prefix="jnigt_launch_")
    os.makedirs(log_dir, exist_ok=True)
    env = child_env(devices_per_process)
    procs: list[subprocess.Popen] = []
    logs = []
    code = 0
    start = time.monotonic()
    try:
        for i in range(num_processes):
            cmd = [sys.executable, "-m", "jnigt.cli", "train", *train_args]
            if num_processes > 1:
                cmd += [
                    "--coordinator",
                    coordinator,
                    "--num-processes",
                    str(num_processes),
                    "--process-id",
                    str(i),
                ]
            if i == 0 or show_all:
                out = None
            else:
                out = open(os.path.join(log_dir, f"proc{i}.log"), "w")
                logs.append(out)
            procs.append(
                subprocess.Popen(
                    cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out is not None else None
                )
            )
        print(
            f"launch_local: {num_processes} process(es) x {devices_per_process} device(s), "
            f"coordinator {coordinator}, logs of processes 1.. in {log_dir}",
            file=sys.stderr,
            flush=True,
        )
        pending = set(range(num_processes))
        while pending:
            for i in sorted(pending):
                rc = procs[i].poll()
                if rc is None:
                    continue
                pending.discard(i)
                if rc != 0 and code == 0:
                    code = rc
                    print(
                        f"launch_local: process {i} exited with {rc}; stopping the others",
                        file=sys.stderr,
                        flush=True,
                    )
                    _stop(procs)
            if timeout is not None and time.monotonic() - start > timeout and pending:
                print(f"launch_local: timeout after {timeout:.0f} s; stopping", file=sys.stderr, flush=True)
                code = code or 124
                _stop(procs)
            time.sleep(0.2)
    except KeyboardInterrupt:
        code = code or 130
    finally:
        _stop(procs)
        for f in logs:
            f.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run `jnigt train` as N local processes (jax.distributed, gloo CPU collectives). "
        "Unknown arguments, or those after --, go to jnigt train."
    )
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument(
        "--devices-per-process", type=int, default=1, help="forced host CPU devices per process (XLA_FLAGS)"
    )
    parser.add_argument("--log-dir", default=None, help="logs of processes 1..N-1 (default: a temp dir)")
    parser.add_argument("--show-all", action="store_true", help="show every process's output here")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before everything is stopped")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    try:
        return launch(
            args.num_processes,
            args.devices_per_process,
            rest,
            log_dir=args.log_dir,
            show_all=args.show_all,
            timeout=args.timeout,
            port=args.port,
        )
    except ValueError as e:
        print(f"launch_local: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
