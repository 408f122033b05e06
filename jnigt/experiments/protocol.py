"""The paper's tuning protocol on one panel, as data (docs/algorithms.md#experiments). Writes nothing:
:mod:`jnigt.experiments.files` writes, :func:`jnigt.experiments.compare.run_panel` composes the two.

  1. ``T_end = panel.rounds x`` the reference method's first-round time (:func:`end_time`); one grid of
     ``panel.grid_points`` times in ``[0, T_end]`` for every method and run (:mod:`.sweep`);
  2. :func:`tune`: per method, per batch size M (one compile each, :class:`Runners`), the whole
     (alpha, eta) grid x tuning seeds runs vmapped (:func:`sweep_grid`); the point with the best score
     is chosen (:func:`jnigt.experiments.tuning.select`);
  3. :func:`report`: the chosen point runs the fresh report seeds; :func:`summarize` (statistics,
     :mod:`.stats`) and the figure use only those runs.

:func:`run` does the three for every method of a panel and returns a :class:`PanelResult`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

from jnigt.experiments import cache, stats, tuning
from jnigt.experiments.panels import LABELS, Panel
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns, time_grid
from jnigt.training import Trainer, memory
from jnigt.training.config import TrainConfig

DEFAULT_LEARNING_RATE = 2.0**-5
DEFAULT_MOMENTUM = 0.1


def make_config(
    panel: Panel, method: str, batch_size: int, learning_rate=DEFAULT_LEARNING_RATE, momentum=DEFAULT_MOMENTUM
):
    """The TrainConfig of ``method`` on ``panel`` with batch M = M_init = ``batch_size``."""
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
    import jnigt_envs

    env = jnigt_envs.make_env(panel.env, backend=panel.backend)
    if panel.physics_spread > 0:
        env = jnigt_envs.random_physics(
            env, panel.num_agents, jax.random.key(panel.physics_seed), spread=panel.physics_spread
        )
    return env


def make_trainer(panel: Panel, method: str, batch_size: int, env=None, **kw):
    """A single-device Trainer of ``method`` on ``panel`` (the runner vmaps over runs)."""
    config = make_config(panel, method, batch_size, **kw)
    return Trainer(config, num_devices=1, env=env if env is not None else make_env(panel))


def fill_runs_per_call(trainer, runs: int, limit: int | None = None) -> int:
    """Runs per vmapped call of ``trainer``'s (method, M): all ``runs`` when the memory estimate allows
    (one run = one round's estimate, :func:`jnigt.training.memory.check_round_memory`), else the fewest
    calls that fit in ``limit`` (default: 80% of the available memory; :func:`jnigt.training.memory.runs_per_call`)."""
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
    t = float(jax.jit(lambda s: trainer.next_time(trainer.init(s)))(np.int32(0)))
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"the reference method's first round never ends (time {t}); check the timing")
    return rounds * t * (1 + 1e-6)


class Runners:
    """The compiled runners of one panel: one ``EqualTimeRunner`` per (method, M), built on first use, and
    its runs per call, fixed at its first call so that tuning and report share its one compile.

    Runs per call: ``runs_per_call`` when given; else with ``fill`` all the runs of the first call that
    fit in memory (:func:`fill_runs_per_call`); else ``default_runs`` (None: all the runs of the first call).
    """

    def __init__(
        self,
        panel: Panel,
        runs_per_call: int | None = None,
        fill: bool = False,
        default_runs: int | None = None,
        fast_compile: bool = False,
    ):
        self.panel = panel
        self.env = make_env(panel)
        self.runs_per_call, self.fill, self.default_runs = runs_per_call, fill, default_runs
        self.fast_compile = fast_compile
        self.runners: dict[tuple[str, int], EqualTimeRunner] = {}
        #: runs per call by (method, M), once fixed
        self.calls: dict[tuple[str, int], int] = {}

    def __call__(self, method: str, batch: int) -> EqualTimeRunner:
        if (method, batch) not in self.runners:
            trainer = make_trainer(self.panel, method, batch, env=self.env)
            self.runners[method, batch] = EqualTimeRunner(
                trainer, fast_compile=self.fast_compile, program_key=repr(self.panel)
            )
        return self.runners[method, batch]

    def per_call(self, method: str, batch: int, runs: int) -> int:
        if (method, batch) not in self.calls:
            if self.fill and not self.runs_per_call:
                self.calls[method, batch] = fill_runs_per_call(self(method, batch).trainer, runs)
            else:
                self.calls[method, batch] = int(self.runs_per_call or self.default_runs or runs)
        return self.calls[method, batch]

    def precompile(self, first_calls: dict[tuple[str, int], int], times, log=print) -> None:
        """Compile the program of every (method, M) of ``first_calls`` (the runs of its first call, which
        fix its runs per call) before anything runs: traced here, compiled in threads, since XLA releases
        the GIL while it compiles, so one program compiles while the next is traced. Says
        ``compiling <method> M=<M>`` for each program not compiled yet. Same programs, same numbers."""
        jobs = []
        with ThreadPoolExecutor(max_workers=max(1, len(first_calls))) as pool:
            for (method, batch), runs in first_calls.items():
                k = self.per_call(method, batch, runs)
                runner = self(method, batch)
                args = runner.call_args(k, times)
                if runner.is_compiled(*args):
                    continue
                if log is not None:
                    once = " (first run only)" if cache.is_on() else ""
                    log(f"  compiling {LABELS[method]} M={batch}, {k} runs per call{once}")
                jobs.append((runner, args, pool.submit(runner.lower(*args).compile, runner.compiler_options)))
            for runner, args, job in jobs:
                runner.add_compiled(args, job.result())

    def run(self, method, batch, seeds, learning_rates, momenta, times, progress=None) -> GridRuns:
        """The runs ``seeds`` x (``learning_rates``, ``momenta``) of (method, M) on ``times``."""
        c = self.per_call(method, batch, np.size(seeds))
        return self(method, batch).run_chunked(seeds, learning_rates, momenta, times, c, progress)


def sweep_grid(
    panel: Panel, method: str, grid: tuning.TuningGrid, runners: Runners, times, progress=None
) -> tuple[dict[int, GridRuns], list[dict]]:
    """Every (alpha, eta) point x tuning seed of ``method``, per batch size M in vmapped calls.
    Returns (the runs by M, one tuning row per point, :func:`jnigt.experiments.tuning.grid_row`)."""
    hp = grid.hyper_points()
    seeds = np.array(grid.tuning_seeds)
    lrs = np.repeat([a for a, _ in hp], len(seeds))
    moms = np.repeat([e for _, e in hp], len(seeds))
    runs, rows = {}, []
    for batch in grid.batches(method):
        runs[batch] = runners.run(method, batch, np.tile(seeds, len(hp)), lrs, moms, times, progress)
        for a, e in hp:
            pt = runs[batch].where(a, e)
            rows.append(tuning.grid_row(panel.name, method, batch, a, e, times, pt.eval_return, pt.diverged))
    return runs, rows


def tune(
    panel: Panel, method: str, grid: tuning.TuningGrid, runners: Runners, times, progress=None
) -> tuple[list[dict], dict]:
    """(the tuning rows of ``method``, the chosen row, marked ``chosen``). A grid of one point runs
    nothing: its row has no seeds and a NaN score."""
    hp = grid.hyper_points()
    if len(hp) * len(grid.batches(method)) > 1:
        rows = sweep_grid(panel, method, grid, runners, times, progress)[1]
        return rows, tuning.select(rows)[method]
    (a, e), batch = hp[0], grid.batches(method)[0]
    row = dict(
        panel=panel.name,
        method=method,
        batch_size=batch,
        learning_rate=a,
        momentum=e,
        seeds=0,
        score=math.nan,
        median_final_return=math.nan,
        diverged_runs=0,
        chosen=True,
    )
    if progress is not None:
        progress.update(len(grid.tuning_seeds))
    return [row], row


def report(
    method: str, chosen: dict, grid: tuning.TuningGrid, runners: Runners, times, progress=None
) -> GridRuns:
    """The fresh report seeds of ``method`` at its ``chosen`` point."""
    fresh = np.array(grid.fresh_seeds)
    batch, lr, mom = chosen["batch_size"], chosen["learning_rate"], chosen["momentum"]
    return runners.run(method, batch, fresh, lr, mom, times, progress)


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


@dataclasses.dataclass
class PanelResult:
    """What :func:`run` found on one panel; ``files``: what :func:`jnigt.experiments.compare.run_panel`
    wrote, by kind (empty from :func:`run`)."""

    panel: Panel
    times: np.ndarray
    threshold: float
    report: dict[str, GridRuns]
    tuning_rows: list[dict]
    chosen: dict[str, dict]
    summary: list[dict]
    files: dict[str, str]
    wall_s: dict[str, float]
    t_end: float = math.nan


def first_call_runs(grid: tuning.TuningGrid, method: str) -> int:
    """The runs of the first call :func:`run` makes for each batch size M of ``method``: the whole tuning
    grid x tuning seeds, or the report seeds when the grid has one point (:func:`tune` runs nothing)."""
    hp = grid.hyper_points()
    if len(hp) * len(grid.batches(method)) > 1:
        return len(hp) * len(grid.tuning_seeds)
    return grid.report_seeds


def planned_runs(panel: Panel, grid: tuning.TuningGrid) -> int:
    """Runs :func:`run` makes on ``panel`` (grids of one point counted as run: the progress total)."""
    per_m = len(grid.hyper_points()) * len(grid.tuning_seeds)
    return sum(len(grid.batches(m)) * per_m + grid.report_seeds for m in panel.methods)


def run(panel: Panel, grid: tuning.TuningGrid, runners: Runners, progress=None, log=print) -> PanelResult:
    """Tune every method of ``panel`` on ``grid``, report each chosen point on fresh seeds, summarize.
    Every method's program is compiled first (:meth:`Runners.precompile`); ``progress`` (a tqdm bar
    counting runs, or None) is reset after that, so that its rate and ETA count running only."""
    t_end = end_time(runners(panel.reference, grid.batches(panel.reference)[0]).trainer, panel.rounds)
    times = time_grid(t_end, panel.grid_points)
    thr = stats.threshold(panel.env, panel.horizon)
    runners.precompile(
        {(m, b): first_call_runs(grid, m) for m in panel.methods for b in grid.batches(m)}, times, log
    )
    if progress is not None:  # a tqdm bar: its rate and ETA count the runs, not the compiles before them
        progress.reset()
    tuning_rows, chosen, reports, walls = [], {}, {}, {}
    for m in panel.methods:
        t0 = time.time()
        rows, chosen[m] = tune(panel, m, grid, runners, times, progress)
        tuning_rows.extend(rows)
        reports[m] = r = report(m, chosen[m], grid, runners, times, progress)
        walls[m] = time.time() - t0
        best = chosen[m]
        log(
            f"  {panel.name} {LABELS[m]:18s} M={best['batch_size']} alpha={best['learning_rate']:g} "
            f"eta={best['momentum']:g}: median final return {np.median(r.eval_return[:, -1]):.4g} "
            f"at T_end={t_end:.4g} ({walls[m]:.1f} s wall)"
            + (f"; {int(r.diverged.sum())} report runs diverged" if r.diverged.any() else "")
        )
    summary = summarize(panel, reports, thr, walls)
    return PanelResult(panel, times, thr, reports, tuning_rows, chosen, summary, {}, walls, t_end)
