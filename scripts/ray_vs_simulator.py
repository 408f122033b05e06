"""Real Ray agents against the simulated clock, with the same emulated h_i.

For every env, number of agents n and method (Rennala, Malenia, Synchronized NIGT), one real run
(``jnigt.executors.ray.train_ray``, agents sleeping h_i * time_scale per trajectory, h_i = sqrt(i))
is compared with the simulator (``jnigt.timing.rennala_round`` / ``malenia_round`` /
``synchronized_round``, same h_i, fixed times) on

  * the per-agent share of the gradients used per round (total variation distance between the
    mean real counts and the simulated counts, both normalised),
  * the time per round (median real round_seconds / simulated duration * time_scale),
  * Rennala's speed-up over Synchronized NIGT (per-round time ratio; both use batch size M),

and on what explains the gap: the real seconds an agent computes one gradient (sleep excluded).
The first round of every run is left out (first-call effects); actors are warmed up (JIT) before
timing. Results go to stdout (a table) and ``--out`` (JSON).

    PYTHONPATH=$PWD:$PWD/.pp python scripts/ray_vs_simulator.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

METHODS = ("rennala", "malenia", "synchronized")


def simulated(n: int, horizon_units: int, batch_size: int, method: str):
    """(counts [n], duration in units of h) of one round with fixed times h_i = sqrt(i)."""
    from jnigt import timing as T

    t = T.make_timing(n, "sqrt")
    if method == "rennala":
        r = T.rennala_round(t, horizon_units, batch_size, None)
    elif method == "malenia":
        k = int(T.malenia_max_per_agent(t, horizon_units, batch_size).max()) + 1
        r = T.malenia_round(t, horizon_units, batch_size, None, k)
    else:
        r = T.synchronized_round(t, horizon_units, math.ceil(batch_size / n), None)
    return np.asarray(r.counts, float), float(r.duration)


def tv(p, q):
    p, q = np.asarray(p, float), np.asarray(q, float)
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=["lqr", "inverted_pendulum"])
    ap.add_argument("--agents", nargs="+", type=int, default=[4, 8])
    ap.add_argument(
        "--time-scales", nargs="+", type=float, default=[1e-3, 1e-2], help="seconds per unit of h"
    )
    ap.add_argument("--slowdown", default="trajectory", choices=("trajectory", "step"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--out", default="runs/ray_vs_simulator.json")
    args = ap.parse_args(argv)

    import ray

    from jnigt.executors.ray import make_agents, train_ray
    from jnigt.training import TrainConfig

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    results = []
    try:
        for env in args.envs:
            pool = make_agents(max(args.agents))  # one warm pool per env, reused by every run
            for n in args.agents:
                for scale in args.time_scales:
                    per_round = {}
                    for method in METHODS:
                        cfg = TrainConfig(
                            env=env,
                            backend=None if env == "lqr" else "spring",
                            policy="linear" if env == "lqr" else "mlp",
                            hidden_sizes=(32, 32),
                            method=method,
                            num_agents=n,
                            step_model="sqrt",
                            horizon=args.horizon,
                            batch_size=args.batch_size,
                            rounds=args.rounds,
                            eval_every=args.rounds,
                            eval_episodes=2,
                            learning_rate=0.05 if env == "lqr" else 2.0**-5,
                        )
                        t0 = time.perf_counter()
                        run = train_ray(cfg, slowdown=args.slowdown, time_scale=scale, agents=pool[:n])
                        rows = run.rows[2:]  # skip the round-0 evaluation row and the first round
                        real_counts = np.mean([r["agent_counts"] for r in rows], axis=0)
                        real_t = float(np.median([r["round_seconds"] for r in rows]))
                        units = 1 if args.slowdown == "trajectory" else args.horizon
                        sim_counts, sim_d = simulated(n, units, args.batch_size, method)
                        sim_t = sim_d * scale
                        per_round[method] = (real_t, sim_t)
                        res = dict(
                            env=env,
                            n=n,
                            time_scale=scale,
                            method=method,
                            real_round_s=real_t,
                            sim_round_s=sim_t,
                            time_ratio=real_t / sim_t,
                            real_counts=[round(float(x), 2) for x in real_counts],
                            sim_counts=[int(x) for x in sim_counts],
                            counts_tv=tv(real_counts, sim_counts),
                            compute_ms=1e3 * float(np.median([r["compute_seconds"] for r in rows])),
                            stale_per_round=float(np.mean([r["grads_stale"] for r in rows])),
                            wall_s=time.perf_counter() - t0,
                        )
                        results.append(res)
                        print(
                            f"{env:18s} n={n} scale={scale:g} {method:12s} round real {1e3 * real_t:7.2f} ms "
                            f"sim {1e3 * sim_t:7.2f} ms ratio {res['time_ratio']:5.2f}  counts TV "
                            f"{res['counts_tv']:.3f} real {res['real_counts']} sim {res['sim_counts']}  "
                            f"compute {res['compute_ms']:.2f} ms",
                            flush=True,
                        )
                    (rr, rs), (sr, ss) = per_round["rennala"], per_round["synchronized"]
                    sp = dict(
                        env=env,
                        n=n,
                        time_scale=scale,
                        method="speedup",
                        real_speedup=sr / rr,
                        sim_speedup=ss / rs,
                        speedup_ratio=(sr / rr) / (ss / rs),
                    )
                    results.append(sp)
                    print(
                        f"{env:18s} n={n} scale={scale:g} Rennala speed-up over Synchronized: real "
                        f"{sp['real_speedup']:.2f}x sim {sp['sim_speedup']:.2f}x (ratio {sp['speedup_ratio']:.2f})",
                        flush=True,
                    )
            for a in pool:
                ray.kill(a)
    finally:
        ray.shutdown()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(args=vars(args), results=results), f, indent=1)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
