"""Throughput of the vmapped equal-time sweep (jnigt.experiments.EqualTimeRunner).

For K runs of ONE configuration (Rennala NIGT, seeds 0..K-1, same alpha and eta) running ``--rounds``
rounds (T_end = rounds x the first round time, evaluated at t = 0 and T_end), it measures in one process:

  sweep       K runs vmapped in one jitted program;
  raw Brax    vmapped Brax stepping with random actions at the same total batch (K x M trajectories of
              H steps, one jitted lax.scan) -- the ceiling for the env-stepping part;
  sequential  the same K runs one after another (the K = 1 program, compiled once, called K times);
  event loop  a plain Python event loop per run (jnigt.experiments.eventloop.RennalaEventLoop: heapq of
              finish times, one jitted single-trajectory gradient per arrival, the same NIGT update).

Env steps counted = trajectories computed x H (training K x rounds x M, plus 2 x eval_episodes evaluation
episodes per run for the sweep and the sequential runs; masked steps after a termination cost the
same compute everywhere). ``--seq-runs`` / ``--loop-runs`` time only that many of the K runs and scale
linearly to K (stated in the output). Compile times are excluded (measured and printed separately).

    python scripts/bench_sweep.py --env inverted_pendulum --horizon 200 --batch 20 --agents 10 --ks 16,64
    python scripts/bench_sweep.py --env hopper --horizon 100 --ks 16,64

``--startup``: instead, the start-up time of one small comparison (``jnigt.experiments.commands.
compare_command``: inverted_pendulum, H=50, n=4, Rennala NIGT vs AFedPG, 2 seeds, 3 rounds) run twice in
fresh processes sharing a new persistent compilation cache folder: first run (cold) vs second (cached).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from jnigt.experiments import EqualTimeRunner, time_grid  # noqa: E402
from jnigt.experiments.eventloop import RennalaEventLoop  # noqa: E402
from jnigt.training import TrainConfig, Trainer  # noqa: E402


def _raw_rollout(env, batch: int, horizon: int):
    """Raw vmapped Brax stepping with random actions, ``batch`` envs x ``horizon`` steps in one jitted
    scan. Returns a sum over rewards AND observations: inverted_pendulum's reward is a constant 1, so a
    sum of rewards alone would let XLA drop the physics."""

    def one(key):
        k0, k1 = jax.random.split(key)
        state = env.reset(k0)

        def body(st, k):
            a = jax.random.uniform(k, (env.action_size,), minval=-1.0, maxval=1.0)
            nst = env.step(st, a)
            nst = jax.tree.map(lambda n, o: jnp.astype(jnp.asarray(n), jnp.asarray(o).dtype), nst, st)
            return nst, nst.reward + jnp.sum(nst.obs)

        _, out = jax.lax.scan(body, state, jax.random.split(k1, horizon))
        return jnp.sum(out)

    return jax.jit(lambda key: jax.vmap(one)(jax.random.split(key, batch)))


def _best(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t)
    return min(out)


STARTUP = """
import time; t0 = time.time()
from jnigt.experiments import commands
commands.compare_command(commands.CompareArgs(env="inverted_pendulum", backend="spring", num_agents=4,
    horizon=50, rounds=3, grid_points=4, eval_episodes=2, methods=("rennala", "afedpg"), batch_sizes=(4,),
    seeds=2, out={out!r}, cache_dir={cache!r}, progress=False))
print("WALL", time.time() - t0)
"""


def startup() -> int:
    import subprocess
    import tempfile

    tmp = tempfile.mkdtemp(prefix="jnigt_startup_")
    cache = os.path.join(tmp, "cache")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])
    )
    for label in ("first run (empty cache)", "second run (cached)"):
        t = time.perf_counter()
        code = STARTUP.format(out=os.path.join(tmp, "out"), cache=cache)
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        inner = float(res.stdout.strip().split("WALL")[-1])
        print(
            f"{label}: {time.perf_counter() - t:.1f} s process wall ({inner:.1f} s after interpreter start)"
        )
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="inverted_pendulum")
    p.add_argument("--backend", default="spring")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--ks", default="16,64")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--eval-episodes", type=int, default=4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--seq-runs", type=int, default=4, help="sequential runs timed (scaled to K)")
    p.add_argument("--loop-runs", type=int, default=2, help="event-loop runs timed (scaled to K)")
    p.add_argument("--startup", action="store_true", help="measure first/second-run start-up times only")
    a = p.parse_args(argv)
    if a.startup:
        return startup()
    cfg = TrainConfig(
        env=a.env,
        backend=a.backend,
        method="rennala",
        num_agents=a.agents,
        step_model="sqrt",
        comm_model="zero",
        horizon=a.horizon,
        batch_size=a.batch,
        eval_episodes=a.eval_episodes,
    )
    trainer = Trainer(cfg, num_devices=1)
    runner = EqualTimeRunner(trainer)
    t_first = float(trainer.next_time(trainer.init(0)))
    times = time_grid(a.rounds * t_first * 1.0001, 2)
    H, M = a.horizon, a.batch
    per_run_traj = a.rounds * M + 2 * a.eval_episodes
    print(
        f"{a.env} ({a.backend}) H={H} M={M} n={a.agents} rounds={a.rounds} eval_episodes={a.eval_episodes}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cpus; reps={a.reps} (best of)"
    )
    # the event loop and the sequential baseline do not depend on K
    t = time.perf_counter()
    one = runner([0], cfg.learning_rate, cfg.momentum, times)
    print(
        f"  K=1 program: compile + first call {time.perf_counter() - t:.1f} s; rounds done {one.rounds[0, -1]}"
    )
    assert int(one.rounds[0, -1]) == a.rounds, one.rounds
    seq_one = (
        _best(
            lambda: [
                runner([s], cfg.learning_rate, cfg.momentum, times).eval_return for s in range(a.seq_runs)
            ],
            a.reps,
        )
        / a.seq_runs
    )
    loop = RennalaEventLoop(
        trainer.policy, trainer.env, trainer.timing.step_time, trainer.timing.comm_time, H, cfg.discount, M
    )
    t = time.perf_counter()
    loop.run(0, cfg.learning_rate, cfg.momentum, 1)
    print(f"  event loop: compile + first round {time.perf_counter() - t:.1f} s")
    loop_one = (
        _best(
            lambda: [loop.run(s, cfg.learning_rate, cfg.momentum, a.rounds)[0] for s in range(a.loop_runs)],
            a.reps,
        )
        / a.loop_runs
    )
    rows = []
    for K in [int(k) for k in a.ks.split(",")]:
        seeds = np.arange(K)
        t = time.perf_counter()
        res = runner(seeds, cfg.learning_rate, cfg.momentum, times)
        compile_s = time.perf_counter() - t
        assert np.all(res.rounds[:, -1] == a.rounds)
        t_sweep = _best(lambda: runner(seeds, cfg.learning_rate, cfg.momentum, times).eval_return, a.reps)
        raw = _raw_rollout(trainer.env, K * M, H)
        jax.block_until_ready(raw(jax.random.PRNGKey(0)))
        t_raw = _best(lambda: raw(jax.random.PRNGKey(1)), a.reps)
        steps = K * per_run_traj * H
        sweep_sps = steps / t_sweep
        raw_sps = K * M * H / t_raw
        seq_s, loop_s = seq_one * K, loop_one * K
        loop_sps = K * a.rounds * M * H / loop_s
        rows.append((K, t_sweep, sweep_sps, raw_sps, seq_s, loop_s))
        print(
            f"K={K:3d}: sweep {t_sweep:.2f} s ({sweep_sps:,.0f} env steps/s; compile+first {compile_s:.1f} s) | "
            f"raw Brax {raw_sps:,.0f} steps/s -> sweep/raw {sweep_sps / raw_sps:.2f}x | "
            f"sequential {seq_s:.2f} s (from {a.seq_runs} runs) -> {seq_s / t_sweep:.1f}x slower | "
            f"event loop {loop_s:.1f} s (from {a.loop_runs} runs, {loop_sps:,.0f} steps/s) -> "
            f"{loop_s / t_sweep:.1f}x slower",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
