"""Equal-time comparison of methods on one panel, with the paper's tuning protocol.

``run_panel(panel, grid, out_dir)``:
  1. ``T_end = panel.rounds x`` the reference method's first-round time; one grid of
     ``panel.grid_points`` times in ``[0, T_end]`` for every method and run (:mod:`.sweep`);
  2. per method, per batch size M (one compile each), the whole (alpha, eta) grid x tuning seeds runs
     vmapped; the point with the best score is chosen (:mod:`.tuning`);
  3. the chosen point runs the fresh report seeds; statistics (:mod:`.stats`) and the figure use only
     those runs.
Files written in ``out_dir``: ``<panel>_tuning.csv`` (whole grid), ``<panel>_chosen.json``,
``<panel>_curves.csv`` (every report run at every grid time), ``<panel>_summary.csv`` (one row per
method), ``<panel>_theory.csv`` (predicted against measured time per round, :mod:`.crosscheck`),
``<panel>.png``; a line per panel is appended to ``summary.jsonl``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from jnigt.experiments import reproducible, stats, tuning
from jnigt.experiments.panels import LABELS, Panel
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns, time_grid

DEFAULT_LEARNING_RATE = 2.0**-5
DEFAULT_MOMENTUM = 0.1


def make_config(
    panel: Panel, method: str, batch_size: int, learning_rate=DEFAULT_LEARNING_RATE, momentum=DEFAULT_MOMENTUM
):
    """The TrainConfig of ``method`` on ``panel`` with batch M = M_init = ``batch_size``."""
    from jnigt.training.config import TrainConfig

    kw = dict(
        env=panel.env,
        backend=panel.backend,
        method=method,
        optimizer="nigt",
        num_agents=panel.num_agents,
        step_model=panel.step_model,
        comm_model=panel.comm_model,
        horizon=panel.horizon,
        learning_rate=float(learning_rate),
        momentum=float(momentum),
        batch_size=int(batch_size),
        init_batch_size=int(batch_size),
        eval_episodes=panel.eval_episodes,
        policy=panel.policy,
        seed=0,
    )
    # the Panel fields left None take TrainConfig's default
    kw.update({f: getattr(panel, f) for f in ("time_unit", "discount") if getattr(panel, f) is not None})
    return TrainConfig(**kw)


def make_env(panel: Panel):
    """The panel's environment; per-agent physics when ``panel.physics_spread > 0``."""
    import jax

    from jnigt_envs import make_env as make
    from jnigt_envs import random_physics

    env = make(panel.env, backend=panel.backend)
    if panel.physics_spread > 0:
        env = random_physics(
            env, panel.num_agents, jax.random.key(panel.physics_seed), spread=panel.physics_spread
        )
    return env


def make_trainer(panel: Panel, method: str, batch_size: int, env=None, **kw):
    """A single-device Trainer of ``method`` on ``panel`` (the runner vmaps over runs)."""
    from jnigt.training import Trainer

    config = make_config(panel, method, batch_size, **kw)
    return Trainer(config, num_devices=1, env=env if env is not None else make_env(panel))


def fill_runs_per_call(trainer, runs: int, limit: int | None = None) -> int:
    """Runs per vmapped call of ``trainer``'s (method, M): all ``runs`` when the memory estimate allows
    (one run = one round's estimate, :func:`jnigt.training.memory.check_round_memory`), else the fewest
    calls that fit in ``limit`` (default: 80% of the available memory; :func:`jnigt.training.memory.runs_per_call`)."""
    from jnigt.training import memory

    env = trainer.env
    per_run = memory.check_round_memory(
        trainer.config,
        obs_size=env.observation_size,
        action_size=env.action_size,
        num_params=trainer.num_params,
        plan=trainer.plan,
        limit=2**62,
    )
    return memory.runs_per_call(runs, per_run, limit)


def end_time(trainer, rounds: int) -> float:
    """``rounds`` x the first step's end time of ``trainer`` at seed 0 (its default hyperparameters),
    times ``1 + 1e-6`` so that float32 rounding of the summed round times cannot drop the last round."""
    import jax

    t = float(jax.jit(lambda s: trainer.next_time(trainer.init(s)))(np.int32(0)))
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"the reference method's first round never ends (time {t}); check the timing")
    return rounds * t * (1 + 1e-6)


@dataclasses.dataclass
class PanelResult:
    panel: Panel
    times: np.ndarray
    threshold: float
    report: dict[str, GridRuns]
    tuning_rows: list[dict]
    chosen: dict[str, dict]
    summary: list[dict]
    files: dict[str, str]
    wall_s: dict[str, float]


SUMMARY_COLUMNS = [
    "panel",
    "env",
    "n",
    "step_model",
    "comm_model",
    "time_unit",
    "method",
    "label",
    "batch_size",
    "learning_rate",
    "momentum",
    "seeds",
    "t_end",
    "median_return_half",
    "median_final_return",
    "q20_final_return",
    "q80_final_return",
    "threshold",
    "seeds_reached",
    "median_time_to_threshold",
    "reference",
    "ttt_ratio",
    "ttt_ratio_lo90",
    "ttt_ratio_hi90",
    "median_rounds",
    "median_grads_used",
    "median_comms",
    "median_env_steps",
    "wall_s",
]
CURVE_COLUMNS = ["panel", "method", "batch_size", "learning_rate", "momentum", "seed", "time"] + [
    "eval_return",
    "rounds",
    "env_steps",
    "grads_used",
    "comms",
]


def summarize(
    panel: Panel, report: dict[str, GridRuns], thr: float, wall_s: dict[str, float] | None = None
) -> list[dict]:
    """One row per method: returns at T_end/2 and T_end (median, 20-80%), time to the fixed threshold,
    reference / method time-to-threshold ratio with its bootstrap 90% interval, work done by T_end."""
    ref = panel.reference
    ttt = {m: stats.time_to_threshold(r.times, r.eval_return, thr) for m, r in report.items()}
    out = []
    for m, r in report.items():
        half = (len(r.times) - 1) // 2
        final = r.eval_return[:, -1]
        est, lo, hi = stats.bootstrap_ratio(ttt[ref], ttt[m]) if ref in ttt else (math.nan,) * 3
        out.append(
            dict(
                panel=panel.name,
                env=panel.env,
                n=panel.num_agents,
                step_model=panel.step_model,
                comm_model=panel.comm_model,
                time_unit=panel.time_unit or "step",
                method=m,
                label=LABELS[m],
                batch_size=r.batch_size,
                learning_rate=float(r.learning_rates[0]),
                momentum=float(r.momenta[0]),
                seeds=len(r.seeds),
                t_end=float(r.times[-1]),
                median_return_half=float(np.median(r.eval_return[:, half])),
                median_final_return=float(np.median(final)),
                q20_final_return=float(np.quantile(final, 0.2)),
                q80_final_return=float(np.quantile(final, 0.8)),
                threshold=thr,
                seeds_reached=int(np.sum(np.isfinite(ttt[m]))),
                median_time_to_threshold=stats.median_inf(ttt[m]),
                reference=LABELS[ref],
                ttt_ratio=est,
                ttt_ratio_lo90=lo,
                ttt_ratio_hi90=hi,
                median_rounds=float(np.median(r.rounds[:, -1])),
                median_grads_used=float(np.median(r.grads_used[:, -1])),
                median_comms=float(np.median(r.comms[:, -1])),
                median_env_steps=float(np.median(r.env_steps[:, -1])),
                wall_s=round((wall_s or {}).get(m, 0.0), 1),
            )
        )
    return out


def read_rows(path: str) -> list[dict]:
    """The rows of a CSV file written by :func:`write_rows` (values as strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: str, rows: Sequence[dict], columns: Sequence[str]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def run_panel(
    panel: Panel,
    grid: tuning.TuningGrid,
    out_dir: str,
    runs_per_call: int | None = None,
    progress: bool = True,
    log=print,
    fast_compile: bool = False,
    fill: bool = False,
) -> PanelResult:
    """Tune every method of ``panel`` on ``grid``, report the chosen points on fresh seeds, write the
    files listed in the module docstring. ``runs_per_call``: runs per compiled call (default: the
    number of report seeds; ``fill``: all tuning runs of one (method, M) that fit in memory,
    :func:`fill_runs_per_call`), the same for tuning and report, so they share one compile per (method, M).
    ``fast_compile``: see ``EqualTimeRunner`` (used at size tiny)."""
    from tqdm.auto import tqdm

    env = make_env(panel)
    runners: dict[tuple[str, int], EqualTimeRunner] = {}

    def runner(method, batch):
        if (method, batch) not in runners:
            runners[method, batch] = EqualTimeRunner(
                make_trainer(panel, method, batch, env=env), fast_compile=fast_compile
            )
        return runners[method, batch]

    calls: dict[tuple[str, int], int] = {}

    def per_call(method, batch, runs):
        """Fixed at the first call of (method, M): tuning and report share its one compile."""
        if (method, batch) not in calls:
            fit = fill and not runs_per_call
            calls[method, batch] = (
                fill_runs_per_call(runner(method, batch).trainer, runs)
                if fit
                else int(runs_per_call or grid.report_seeds)
            )
        return calls[method, batch]

    t_end = end_time(runner(panel.reference, grid.batches(panel.reference)[0]).trainer, panel.rounds)
    times = time_grid(t_end, panel.grid_points)
    thr = stats.threshold(panel.env, panel.horizon)
    hp = grid.hyper_points()
    seeds = np.array(grid.tuning_seeds)
    total = sum(len(grid.batches(m)) * len(hp) * len(seeds) + grid.report_seeds for m in panel.methods)
    bar = tqdm(total=total, desc=f"{panel.name}", unit="run", disable=not progress, leave=False)
    tuning_rows, chosen, report, walls = [], {}, {}, {}
    for m in panel.methods:
        t0 = time.time()
        rows = []
        single = len(hp) * len(grid.batches(m)) == 1
        for batch in grid.batches(m):
            if single:  # nothing to choose: no tuning runs
                a, e = hp[0]
                rows.append(
                    dict(
                        panel=panel.name,
                        method=m,
                        batch_size=batch,
                        learning_rate=a,
                        momentum=e,
                        seeds=0,
                        score=math.nan,
                        median_final_return=math.nan,
                        diverged_runs=0,
                        chosen=False,
                    )
                )
                bar.update(len(hp) * len(seeds))
                continue
            lrs = np.repeat([a for a, _ in hp], len(seeds))
            moms = np.repeat([e for _, e in hp], len(seeds))
            c = per_call(m, batch, lrs.size)
            runs = runner(m, batch).run_chunked(np.tile(seeds, len(hp)), lrs, moms, times, c, bar)
            for a, e in hp:
                pt = runs.where(a, e)
                rows.append(tuning.grid_row(panel.name, m, batch, a, e, times, pt.eval_return, pt.diverged))
        best = rows[0] if single else tuning.select(rows)[m]
        best["chosen"] = True
        chosen[m] = best
        tuning_rows.extend(rows)
        fresh = np.array(grid.fresh_seeds)
        c = per_call(m, best["batch_size"], fresh.size)
        report[m] = runner(m, best["batch_size"]).run_chunked(
            fresh, best["learning_rate"], best["momentum"], times, c, bar
        )
        walls[m] = time.time() - t0
        log(
            f"  {panel.name} {LABELS[m]:18s} M={best['batch_size']} alpha={best['learning_rate']:g} "
            f"eta={best['momentum']:g}: median final return {np.median(report[m].eval_return[:, -1]):.4g} "
            f"at T_end={t_end:.4g} ({walls[m]:.1f} s wall)"
            + (f"; {int(report[m].diverged.sum())} report runs diverged" if report[m].diverged.any() else "")
        )
    bar.close()
    summary = summarize(panel, report, thr, walls)
    files = dict(
        tuning=os.path.join(out_dir, f"{panel.name}_tuning.csv"),
        chosen=os.path.join(out_dir, f"{panel.name}_chosen.json"),
        curves=os.path.join(out_dir, f"{panel.name}_curves.csv"),
        summary=os.path.join(out_dir, f"{panel.name}_summary.csv"),
        figure=os.path.join(out_dir, f"{panel.name}.png"),
    )
    tuning.write_table(files["tuning"], tuning_rows)
    tuning.write_chosen(
        files["chosen"],
        chosen,
        grid,
        dict(
            panel=dataclasses.asdict(panel),
            t_end=t_end,
            threshold=thr,
            runs_per_call={f"{m} M={b}": c for (m, b), c in calls.items()},
            machine=reproducible.machine(),
        ),
    )
    write_rows(
        files["curves"], [row for r in report.values() for row in r.rows(panel=panel.name)], CURVE_COLUMNS
    )
    write_rows(files["summary"], summary, SUMMARY_COLUMNS)
    from jnigt.experiments import crosscheck

    ref_timing = runner(panel.reference, grid.batches(panel.reference)[0]).trainer.timing
    files["theory"] = crosscheck.write(panel, summary, out_dir, timing=ref_timing)
    from jnigt.experiments.plots import plot_curves

    plot_curves(
        times,
        {LABELS[m]: r.eval_return for m, r in report.items()},
        files["figure"],
        title=f"{panel.title} (tuned per method; T_end={t_end:.4g})",
        threshold=thr,
    )
    with open(os.path.join(out_dir, "summary.jsonl"), "a") as f:
        f.write(json.dumps(dict(panel=panel.name, rows=summary), default=float) + "\n")
    return PanelResult(panel, times, thr, report, tuning_rows, chosen, summary, files, walls)


def run_sweep(
    panel: Panel,
    method: str,
    grid: tuning.TuningGrid,
    out_dir: str,
    t_end: float | None = None,
    runs_per_call: int | None = None,
    progress: bool = True,
) -> tuple[dict[int, GridRuns], list[dict]]:
    """A hyperparameter sweep of one method: per batch size (one compile each), every (alpha, eta) x
    tuning seed in vmapped calls on one equal-time grid (``T_end`` default: ``panel.rounds`` first
    rounds of ``method``). Writes ``<panel>_<method>_grid.csv`` (score per point, best marked),
    ``<panel>_<method>_curves.csv`` and ``<panel>_<method>_best.json``. Returns (runs by M, grid rows)."""
    from tqdm.auto import tqdm

    env = make_env(panel)
    hp = grid.hyper_points()
    seeds = np.array(grid.tuning_seeds)
    bar = tqdm(
        total=len(grid.batches(method)) * len(hp) * len(seeds),
        desc=f"sweep {method}",
        unit="run",
        disable=not progress,
    )
    out, rows, times = {}, [], None
    for batch in grid.batches(method):
        r = EqualTimeRunner(make_trainer(panel, method, batch, env=env))
        if times is None:
            times = time_grid(t_end or end_time(r.trainer, panel.rounds), panel.grid_points)
        lrs = np.repeat([a for a, _ in hp], len(seeds))
        moms = np.repeat([e for _, e in hp], len(seeds))
        out[batch] = r.run_chunked(
            np.tile(seeds, len(hp)), lrs, moms, times, int(runs_per_call or len(lrs)), bar
        )
        for a, e in hp:
            pt = out[batch].where(a, e)
            rows.append(tuning.grid_row(panel.name, method, batch, a, e, times, pt.eval_return, pt.diverged))
    bar.close()
    best = tuning.select(rows)
    name = f"{panel.name}_{method}"
    tuning.write_table(os.path.join(out_dir, f"{name}_grid.csv"), rows)
    extra = dict(t_end=float(times[-1]), machine=reproducible.machine())
    tuning.write_chosen(os.path.join(out_dir, f"{name}_best.json"), best, grid, extra)
    write_rows(
        os.path.join(out_dir, f"{name}_curves.csv"),
        [row for r in out.values() for row in r.rows(panel=panel.name)],
        CURVE_COLUMNS,
    )
    return out, rows
