"""What a humanoid run costs on this machine: compile time of one Trainer chunk and steady seconds per
step (Rennala/Synchronized round, AFedPG arrival), spring backend, n = 10, M = 20, scenario (c).

Sizes the ``humanoid_c`` panel of size cpu (jnigt.experiments.panels). One Trainer per case,
``run_chunk`` = ``eval_every`` steps + the evaluation in one jitted lax.scan; the first call is the
compile (plus one chunk), the steady time is the median of ``--chunks`` further chunks.

    PYTHONPATH=.:.pp python scripts/bench_humanoid.py --horizons 50,100 --out runs/bench_humanoid.json

``--panel-calls humanoid_c`` instead times what ``jnigt reproduce`` does per call: one vmapped
``EqualTimeRunner`` call of the panel's runs-per-call (5) runs to a fraction of T_end, twice (the
first includes the compile), per method; the steady part scales to the whole panel.

    PYTHONPATH=.:.pp python scripts/bench_humanoid.py --panel-calls humanoid_c --fraction 0.2
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

from jnigt.training import TrainConfig, Trainer, methods  # noqa: E402


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


def bench_panel_calls(name: str, fraction: float, methods) -> list[dict]:
    """Per method: wall of one EqualTimeRunner call of 5 runs to ``fraction`` x T_end, first (compile) and
    second (steady); ``panel_estimate_s`` = compile + steady / fraction x the panel's calls of 5 runs."""
    from jnigt.experiments import panels, protocol
    from jnigt.experiments.sweep import EqualTimeRunner, time_grid

    panel = panels.panels_for("cpu")[name]
    grid = panel.grid
    env = protocol.make_env(panel)
    t_end = None
    out = []
    for m in methods or panel.methods:
        runner = EqualTimeRunner(protocol.make_trainer(panel, m, grid.batches(m)[0], env=env))
        if t_end is None:
            t_end = protocol.end_time(runner.trainer, panel.rounds)
        times = time_grid(fraction * t_end, max(2, round(fraction * panel.grid_points)))
        c = grid.report_seeds
        seeds = np.arange(c)
        walls = []
        for _ in range(2):
            t0 = time.perf_counter()
            runs = runner(seeds, np.full(c, 2.0**-6), np.full(c, 0.1), times)
            walls.append(time.perf_counter() - t0)
        tuning_runs = len(grid.hyper_points()) * grid.tune_seeds
        calls = -(-tuning_runs // c) + -(-grid.report_seeds // c)
        r = dict(
            panel=name,
            method=m,
            runs_per_call=c,
            fraction=fraction,
            first_call_s=round(walls[0], 1),
            steady_call_s=round(walls[1], 1),
            steps_by_fraction=float(np.median(runs.rounds[:, -1])),
            calls=calls,
            panel_estimate_s=round(walls[0] - walls[1] + calls * walls[1] / fraction, 0),
            load_avg=os.getloadavg(),
        )
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="humanoid")
    p.add_argument("--horizons", default="50,100")
    p.add_argument("--methods", default="rennala,afedpg")
    p.add_argument("--chunks", type=int, default=3)
    p.add_argument("--eval-episodes", type=int, default=8)
    p.add_argument("--out", default="runs/bench_humanoid.json")
    p.add_argument("--panel-calls", default=None, help="a cpu panel name: time its vmapped calls instead")
    p.add_argument("--fraction", type=float, default=0.2)
    a = p.parse_args(argv)
    if a.panel_calls:
        rows = bench_panel_calls(a.panel_calls, a.fraction, [m for m in a.methods.split(",") if m])
        with open(a.out, "w") as f:
            json.dump(dict(rows=rows, cpu_count=os.cpu_count(), jax=jax.__version__), f, indent=1)
        return 0
    rows = []
    for horizon in (int(x) for x in a.horizons.split(",")):
        for method in a.methods.split(","):
            every = 5 if methods.get(method).BATCHES else 20  # AFedPG: one arrival per step
            r = bench(method, horizon, every, a.chunks, a.eval_episodes, a.env)
            print(json.dumps(r), flush=True)
            rows.append(r)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(dict(rows=rows, cpu_count=os.cpu_count(), jax=jax.__version__), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
