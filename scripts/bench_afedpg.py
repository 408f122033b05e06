"""AFedPG along its known schedule against Rennala NIGT in the equal-time runner (env steps per second).

For each n in ``--agents``: K runs vmapped (jnigt.experiments.EqualTimeRunner) of Rennala NIGT (M =
``--batch``), AFedPG one arrival at a time (``block = 0``, the path before arrivals were batched) and
AFedPG in blocks (``block`` from jnigt.timing.afedpg_block_size; docs/algorithms.md#afedpg), all to the
same T_end = ``--rounds`` x Rennala's first round time, on the grid (0, T_end). Env steps per second, over
the wall time of one call (best of ``--reps`` interleaved calls, after a first call that compiles):
"taken" = the runs' training env steps at T_end (the runner's ``env_steps``: steps before termination);
"simulated" = trajectories x H (``grads_used`` x H: a terminated episode's masked steps cost the same, as
in scripts/bench_sweep.py). The two differ when the methods' policies end episodes at different times. The
evaluation episodes (2 x ``--eval-episodes`` per run) cost the same in every program and are not counted.
It also checks that AFedPG's two paths made the same server updates (rounds, gradients used) and reports
the gaps of their env steps and eval returns.

    nice python scripts/bench_afedpg.py                       # inverted_pendulum spring, H=100, n=10,100, K=8
    python scripts/bench_afedpg.py --params-probe 40,152,160  # only the probe below, at these widths

``--params-probe W,...``: the cost of one batch of W trajectory gradients (``gpomdp.trajectory_gradient``
vmapped, n = max of ``--agents``) when they share one parameter vector (a Rennala round of one run)
against one vector per trajectory (an AFedPG block: each gradient at its agent's own stale point), same
values, per trajectory (relative to the shared case at the largest width): at equal width the ratio
is what AFedPG pays for its stale points, across widths what a narrower batch costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from jnigt.experiments import EqualTimeRunner, time_grid  # noqa: E402
from jnigt.gradients import gpomdp  # noqa: E402
from jnigt.training import TrainConfig, Trainer  # noqa: E402


def _runs(trainers, seeds, times, reps):
    """Each program compiled by a first call, then ``reps`` rounds of one call per program (interleaved, so
    a change of the machine's load hits every program alike); the best wall time of each."""
    runners = {k: EqualTimeRunner(tr) for k, tr in trainers.items()}
    call = lambda r: r(seeds, r.trainer.config.learning_rate, r.trainer.config.momentum, times)
    compile_s, best, res = {}, dict.fromkeys(runners, np.inf), {}
    for k, r in runners.items():
        t = time.perf_counter()
        call(r)
        compile_s[k] = time.perf_counter() - t
    for _ in range(reps):
        for k, r in runners.items():
            t = time.perf_counter()
            res[k] = call(r)
            best[k] = min(best[k], time.perf_counter() - t)
    return {k: (res[k], best[k], compile_s[k]) for k in runners}


def params_probe(a, widths: list[int], reps: int = 20) -> None:
    """Time W trajectory gradients with shared against per-trajectory parameters (same values)."""
    n = max(int(x) for x in a.agents.split(","))
    cfg = TrainConfig(env=a.env, backend=a.backend, num_agents=n, horizon=a.horizon, method="afedpg")
    tr = Trainer(cfg, num_devices=1)
    params = tr.init(0).params
    grad = lambda p, k, i: (
        gpomdp.trajectory_gradient(tr.policy, tr.env, p, k, i, a.horizon, cfg.discount).grad
    )
    shared = jax.jit(lambda p, ks, ids: jax.vmap(lambda k, i: grad(p, k, i))(ks, ids))
    own = jax.jit(lambda ps, ks, ids: jax.vmap(grad)(ps, ks, ids))
    calls = {}
    for w in widths:
        keys, agents = jax.random.split(jax.random.key(0), w), jnp.arange(w) % n
        per = jax.tree.map(lambda x, w=w: jnp.broadcast_to(x, (w, *x.shape)) + 0.0, params)
        calls[w, "shared parameters"] = (shared, params, keys, agents)
        calls[w, "one vector per trajectory"] = (own, per, keys, agents)
    best = dict.fromkeys(calls, np.inf)
    for f, *args in calls.values():
        jax.block_until_ready(f(*args))
    for _ in range(reps):  # interleaved, best of reps
        for key, (f, *args) in calls.items():
            t = time.perf_counter()
            jax.block_until_ready(f(*args))
            best[key] = min(best[key], time.perf_counter() - t)
    ref = best[max(widths), "shared parameters"] / max(widths)
    print(f"params probe: batches of trajectory gradients, H={a.horizon}, n={n}, best of {reps}")
    for (w, name), t in best.items():
        print(f"  W={w:5d} {name:26s} {t * 1e3:7.1f} ms  per trajectory {t / w / ref:4.2f}x", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="inverted_pendulum")
    p.add_argument("--backend", default="spring")
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--batch", type=int, default=20, help="Rennala's M")
    p.add_argument("--agents", default="10,100")
    p.add_argument("--runs", type=int, default=8, help="K, runs vmapped in one call")
    p.add_argument("--rounds", type=int, default=10, help="T_end in Rennala rounds")
    p.add_argument("--eval-episodes", type=int, default=2)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--params-probe", default="", metavar="W,...", help="only the probe, at these widths")
    a = p.parse_args(argv)
    print(
        f"{a.env} ({a.backend}) H={a.horizon} M={a.batch} K={a.runs} h_i = kappa_i = sqrt(i); "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cpus; best of {a.reps}; "
        f"load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    if a.params_probe:
        params_probe(a, [int(w) for w in a.params_probe.split(",")])
        return 0
    seeds = np.arange(a.runs)
    for n in [int(x) for x in a.agents.split(",")]:
        base = dict(
            env=a.env,
            backend=a.backend,
            num_agents=n,
            step_model="sqrt",
            comm_model="sqrt",
            horizon=a.horizon,
            batch_size=a.batch,
            eval_episodes=a.eval_episodes,
        )
        rennala = Trainer(TrainConfig(**base, method="rennala"), num_devices=1)
        times = time_grid(a.rounds * float(rennala.next_time(rennala.init(0))) * 1.0001, 2)
        afedpg = Trainer(TrainConfig(**base, method="afedpg"), num_devices=1)
        one_at_a_time = Trainer(TrainConfig(**base, method="afedpg"), num_devices=1)
        one_at_a_time.rounds = dataclasses.replace(one_at_a_time.rounds, block=0)
        blocks = f"AFedPG blocks of {afedpg.rounds.block}"
        trainers = {"Rennala NIGT": rennala, "AFedPG one at a time": one_at_a_time, blocks: afedpg}
        rows = _runs(trainers, seeds, times, a.reps)
        print(f"n={n}: T_end={times[-1]:.1f} (simulated s); env steps taken / simulated (trajectories x H)")
        ref = None
        for label, (res, wall, compile_s) in rows.items():
            taken = float(np.sum(res.env_steps[:, -1])) / wall
            simulated = float(np.sum(res.grads_used[:, -1])) * a.horizon / wall
            ref = ref or (taken, simulated)
            print(
                f"  {label:22s} {int(res.rounds[0, -1]):5d} steps/run {wall:6.2f} s  taken {taken:9,.0f}/s "
                f"{taken / ref[0]:4.2f}x  simulated {simulated:9,.0f}/s {simulated / ref[1]:4.2f}x Rennala  "
                f"(compile + first call {compile_s:.0f} s)",
                flush=True,
            )
        seq, blk = rows["AFedPG one at a time"][0], rows[blocks][0]
        same = np.array_equal(seq.rounds, blk.rounds) and np.array_equal(seq.grads_used, blk.grads_used)
        gap = float(np.max(np.abs(seq.eval_return - blk.eval_return)))
        steps_gap = int(np.max(np.abs(seq.env_steps - blk.env_steps)))
        print(
            f"  AFedPG paths: same server updates {same}; max gaps: env steps taken {steps_gap}, eval return "
            f"{gap:.3g} (float rounding of the vmapped gradients, grown over the run: docs/algorithms.md#afedpg)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
