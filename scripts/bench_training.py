"""Training throughput and agent scaling of the jnigt training loop (issue: simulated async training).

1. Throughput: env steps per second of a Rennala NIGT training chunk (timing, slot layout,
   trajectories, gradients, aggregation, NIGT step; evaluation excluded) against raw vmapped
   Brax stepping with random actions, same env, backend, batch (= batch_size slots) and horizon,
   measured alternately in one run. Both count B * H scheduled steps (masked steps after a
   termination cost the same compute in both).
2. Scaling: time per round at a fixed batch for n = 10, 100, 1000, 10000 agents (h_i = sqrt(i)),
   as ratios to n = 10.

    python scripts/bench_training.py --env hopper --backend spring --batch 256 --horizon 100
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpomdp import _raw_rollout  # noqa: E402

import jnigt_envs  # noqa: E402
from jnigt.training import TrainConfig, Trainer  # noqa: E402


def steps_fn(trainer):
    """eval_every training steps in one jitted lax.scan of the public ``trainer.step`` (no evaluation)."""
    k = trainer.config.eval_every
    return jax.jit(lambda s: jax.lax.scan(lambda c, _: trainer.step(c), s, None, length=k))


def _chunk_timer(trainer):
    chunk = steps_fn(trainer)
    state = trainer.init(trainer.config.seed)
    state, _ = chunk(state)  # compile
    jax.block_until_ready(state.params)
    holder = [state]

    def run(_):
        holder[0], m = chunk(holder[0])
        return holder[0].params

    return run


def _median_times(fns, reps):
    times = [[] for _ in fns]
    for fn in fns:
        jax.block_until_ready(fn(0))  # warm up
    for i in range(reps):
        for j, fn in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(fn(1 + i))
            times[j].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="spring")
    p.add_argument("--batch", type=int, default=256, help="batch_size M = trajectories per round")
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--rounds-per-chunk", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--scaling-env", default="inverted_pendulum")
    p.add_argument("--scaling-batch", type=int, default=32)
    p.add_argument("--scaling-agents", default="10,100,1000,10000")
    p.add_argument("--skip-throughput", action="store_true")
    a = p.parse_args(argv)
    print(f"device={jax.devices()[0].platform} x{jax.device_count()}")

    if not a.skip_throughput:
        cfg = TrainConfig(
            env=a.env,
            backend=a.backend,
            method="rennala",
            num_agents=10,
            step_model="sqrt",
            horizon=a.horizon,
            batch_size=a.batch,
            rounds=a.rounds_per_chunk,
            eval_every=a.rounds_per_chunk,
        )
        trainer = Trainer(cfg, num_devices=1)
        train_fn = _chunk_timer(trainer)
        raw = _raw_rollout(jnigt_envs.make_env(a.env, backend=a.backend), a.batch, a.horizon)
        jax.block_until_ready(raw(jax.random.key(0)))
        t_train, t_raw = _median_times([train_fn, lambda i: raw(jax.random.key(i))], a.reps)
        steps_round = a.batch * a.horizon
        train_rate = steps_round * a.rounds_per_chunk / t_train
        raw_rate = steps_round / t_raw
        print(
            f"throughput: env={a.env} backend={a.backend} batch={a.batch} horizon={a.horizon} "
            f"policy_params={trainer.num_params}"
        )
        print(f"  raw brax stepping     : {raw_rate:12.0f} env steps/s")
        print(f"  rennala_nigt training : {train_rate:12.0f} env steps/s")
        print(f"  ratio training/raw    : {train_rate / raw_rate:.3f}")

    ns = [int(x) for x in a.scaling_agents.split(",")]
    per_round = []
    for n in ns:
        cfg = TrainConfig(
            env=a.scaling_env,
            backend=a.backend,
            method="rennala",
            num_agents=n,
            step_model="sqrt",
            horizon=a.horizon,
            batch_size=a.scaling_batch,
            rounds=a.rounds_per_chunk,
            eval_every=a.rounds_per_chunk,
        )
        fn = _chunk_timer(Trainer(cfg, num_devices=1))
        (t,) = _median_times([fn], a.reps)
        per_round.append(t / a.rounds_per_chunk)
    print(
        f"scaling: env={a.scaling_env} batch={a.scaling_batch} horizon={a.horizon} (time per round, ratio to n={ns[0]})"
    )
    for n, t in zip(ns, per_round):
        print(f"  n={n:6d}: {t * 1e3:9.1f} ms/round  ratio {t / per_round[0]:.2f}")


if __name__ == "__main__":
    main()
