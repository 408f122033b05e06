"""What a humanoid run costs on this machine: compile time of one Trainer chunk and steady seconds per
step (Rennala/Synchronized round, AFedPG arrival), spring backend, n = 10, M = 20, scenario (c).

Sizes the ``humanoid_c`` panel of size cpu (jnigt.experiments.panels). One Trainer per case,
``run_chunk`` = ``eval_every`` steps + the evaluation in one jitted lax.scan; the first call is the
compile (plus one chunk), the steady time is the median of ``--chunks`` further chunks.

    PYTHONPATH=.:.pp python scripts/bench_humanoid.py --horizons 50,100 --out runs/bench_humanoid.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jnigt.training import TrainConfig, Trainer  # noqa: E402


def bench(method: str, horizon: int, every: int, chunks: int, eval_episodes: int, env: str) -> dict:
    config = TrainConfig(
        env=env,
        backend="spring",
        method=method,
        num_agents=10,
        step_model="sqrt",
        comm_model="sqrt_d",
        horizon=horizon,
        batch_size=20,
        eval_every=every,
        rounds=every * (chunks + 1),
        eval_episodes=eval_episodes,
    )
    t0 = time.perf_counter()
    trainer = Trainer(config, num_devices=1)
    state = trainer.init(0)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, _, ret = trainer.run_chunk(state)
    jax.block_until_ready(ret)
    first_s = time.perf_counter() - t0
    walls = []
    for _ in range(chunks):
        t0 = time.perf_counter()
        state, _, ret = trainer.run_chunk(state)
        jax.block_until_ready(ret)
        walls.append(time.perf_counter() - t0)
    steady = float(np.median(walls))
    return dict(
        env=env,
        method=method,
        horizon=horizon,
        steps_per_chunk=every,
        eval_episodes=eval_episodes,
        build_s=round(build_s, 2),
        first_chunk_s=round(first_s, 2),
        compile_s=round(first_s - steady, 2),
        steady_chunk_s=round(steady, 3),
        s_per_step=round(steady / every, 4),
        chunk_walls=[round(w, 3) for w in walls],
        sim_time=float(state.time),
        load_avg=os.getloadavg(),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="humanoid")
    p.add_argument("--horizons", default="50,100")
    p.add_argument("--methods", default="rennala,afedpg")
    p.add_argument("--chunks", type=int, default=3)
    p.add_argument("--eval-episodes", type=int, default=8)
    p.add_argument("--out", default="runs/bench_humanoid.json")
    a = p.parse_args(argv)
    rows = []
    for horizon in (int(x) for x in a.horizons.split(",")):
        for method in a.methods.split(","):
            every = 20 if method == "afedpg" else 5  # AFedPG: one arrival per step
            r = bench(method, horizon, every, a.chunks, a.eval_episodes, a.env)
            print(json.dumps(r), flush=True)
            rows.append(r)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(dict(rows=rows, cpu_count=os.cpu_count(), jax=jax.__version__), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
