#!/usr/bin/env python
"""Time per training round against the number of devices on the ``agents`` mesh axis.

    python scripts/bench_devices.py                       # 1, 2, 4, 8 forced host CPU devices
    python scripts/bench_devices.py --env hopper --method malenia --devices 1,2,4,8 --chunks 5

Each device count runs in its own subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=D``
and the same config; the first chunk (compilation) is excluded, the next ``--chunks`` chunks of
``--rounds-per-chunk`` rounds are timed one by one (block_until_ready after each). Printed: median and
best seconds per round and the ratio to the 1-device median.

On a CPU the forced host devices are not extra hardware: 8 "devices" share the same cores, so no
speed-up is expected there; the ratios measure the overhead of the collective path (slot split,
shard_map, psum) and how the work spreads over XLA's CPU threads. On several GPUs or a TPU slice
each device is real hardware and the same run shows the scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOTE = """\
Note: on a CPU, --xla_force_host_platform_device_count=D splits the SAME {cores} core(s) into D
logical devices. The work per round is the same trajectories at every D (the slots are spread over
the devices, not multiplied). Up to D = {cores} a gain can appear, because one device's program does
not always keep every core busy; beyond {cores} devices nothing can run faster, so a ratio near or
above 1 there is the cost of the collective path (per-device programs, the psum, synchronisation),
not a scaling result. Other jobs on the machine add noise. Speed-ups need real devices (several
GPUs, a TPU slice, several hosts): run this script there with --no-force."""


def worker(args) -> dict:
    import jax

    from jnigt.training.config import TrainConfig
    from jnigt.training.loop import Trainer

    config = TrainConfig(
        env=args.env,
        backend=None if args.backend == "none" else args.backend,
        method=args.method,
        optimizer="nigt",
        num_agents=args.num_agents,
        horizon=args.horizon,
        batch_size=args.batch_size,
        hidden_sizes=(64, 64),
        rounds=args.rounds_per_chunk * (args.chunks + 1),
        eval_every=args.rounds_per_chunk,
    )
    trainer = Trainer(config, num_devices=args.worker, use_pmap=args.pmap)
    k = config.eval_every
    # the training steps only (no evaluation): a lax.scan of the public trainer.step
    chunk = jax.jit(lambda s: jax.lax.scan(lambda c, _: trainer.step(c), s, None, length=k))
    state = trainer.init(config.seed)
    t0 = time.perf_counter()
    state, metrics = chunk(state)  # compile + first chunk, not timed
    jax.block_until_ready((state, metrics))
    compile_s = time.perf_counter() - t0
    per_round = []
    for _ in range(args.chunks):
        t0 = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready((state, metrics))
        per_round.append((time.perf_counter() - t0) / args.rounds_per_chunk)
    return dict(
        devices=trainer.num_devices,
        platform=jax.devices()[0].platform,
        compile_s=compile_s,
        per_round=per_round,
        env_steps=int(state.env_steps),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="1,2,4,8", help="comma list of device counts")
    p.add_argument("--env", default="inverted_pendulum")
    p.add_argument("--backend", default="spring")
    p.add_argument("--method", default="rennala", choices=("rennala", "malenia", "synchronized"))
    p.add_argument("--num-agents", type=int, default=8)
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds-per-chunk", type=int, default=5)
    p.add_argument("--chunks", type=int, default=3, help="timed chunks (after the compile chunk)")
    p.add_argument("--pmap", action="store_true", help="time the pmap path instead of shard_map")
    p.add_argument(
        "--no-force",
        action="store_true",
        help="do not force host CPU devices (real GPUs/TPUs: use the visible ones)",
    )
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    counts = [int(x) for x in args.devices.split(",") if x.strip()]
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for d in counts:
        env = dict(os.environ)
        if not args.no_force:
            flags = [
                f
                for f in env.get("XLA_FLAGS", "").split()
                if not f.startswith("--xla_force_host_platform_device_count")
            ]
            env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={d}"])
            env["JAX_PLATFORMS"] = "cpu"
        env["PYTHONPATH"] = os.pathsep.join(
            [REPO] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x]
        )
        cmd = [sys.executable, os.path.abspath(__file__), *passthrough, "--worker", str(d)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            print(f"devices={d}: failed (exit {out.returncode})\n{out.stderr[-3000:]}", file=sys.stderr)
            return 1
        r = json.loads(lines[-1][len("RESULT ") :])
        results.append(r)
        print(
            f"devices={d}: median {statistics.median(r['per_round']) * 1e3:.1f} ms/round "
            f"(compile {r['compile_s']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    base = statistics.median(results[0]["per_round"])
    mapper = "pmap" if args.pmap else "shard_map"
    print(
        f"\n{args.method}+nigt on {args.env}/{args.backend}, n={args.num_agents}, batch {args.batch_size}, "
        f"horizon {args.horizon}, {mapper}, {args.chunks} timed chunks x {args.rounds_per_chunk} rounds "
        f"(compile excluded), platform {results[0]['platform']}"
    )
    print(
        f"{'devices':>7} {'median ms/round':>16} {'best ms/round':>14} {'ratio to ' + str(counts[0]) + ' dev':>15}"
    )
    for r in results:
        med = statistics.median(r["per_round"])
        print(f"{r['devices']:>7} {med * 1e3:>16.2f} {min(r['per_round']) * 1e3:>14.2f} {med / base:>15.2f}")
    if not args.no_force:
        print()
        print(NOTE.format(cores=os.cpu_count()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), results=results), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
