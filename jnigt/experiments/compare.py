"""Equal-time comparison of methods on one panel: the protocol (:mod:`.protocol`: tune, select, report),
then its files (:mod:`.files`), the theory cross-check (:mod:`.crosscheck`) and the figure (:mod:`.plots`).

``run_panel(panel, grid, out_dir)`` writes in ``out_dir``: ``<panel>_tuning.csv`` (whole grid),
``<panel>_chosen.json``, ``<panel>_curves.csv`` (every report run at every grid time),
``<panel>_summary.csv`` (one row per method), ``<panel>_theory.csv`` (predicted against measured time
per round), ``<panel>.png``; a line per panel is appended to ``summary.jsonl``.
"""

from __future__ import annotations

import dataclasses
import os

from jnigt.experiments import crosscheck, files, plots, protocol, reproducible, tuning
from jnigt.experiments.files import CURVE_COLUMNS, SUMMARY_COLUMNS, write_rows  # noqa: F401 (study.py's names)
from jnigt.experiments.panels import LABELS, Panel
from jnigt.experiments.protocol import PanelResult, end_time, make_env, make_trainer  # noqa: F401 (as above)
from jnigt.experiments.sweep import GridRuns, time_grid


def _bar(total: int, desc: str, progress: bool, **kw):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not progress, **kw)


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
    :func:`.protocol.fill_runs_per_call`), the same for tuning and report, so they share one compile per
    (method, M). ``fast_compile``: see ``EqualTimeRunner`` (used at size tiny)."""
    runners = protocol.Runners(
        panel, runs_per_call, fill, default_runs=grid.report_seeds, fast_compile=fast_compile
    )
    bar = _bar(protocol.planned_runs(panel, grid), panel.name, progress, leave=False)
    res = protocol.run(panel, grid, runners, bar, log)
    bar.close()
    paths = files.panel_paths(out_dir, panel.name)
    files.write_tuning(paths["tuning"], res.tuning_rows)
    settings = dict(
        panel=dataclasses.asdict(panel),
        t_end=res.t_end,
        threshold=res.threshold,
        runs_per_call={f"{m} M={b}": c for (m, b), c in runners.calls.items()},
        machine=reproducible.machine(),
    )
    files.write_json(paths["chosen"], tuning.choices(res.chosen, grid, settings))
    files.write_curves(paths["curves"], res.report.values(), panel.name)
    files.write_rows(paths["summary"], res.summary, SUMMARY_COLUMNS)
    reference = runners(panel.reference, grid.batches(panel.reference)[0]).trainer
    paths["theory"] = crosscheck.write(panel, res.summary, out_dir, timing=reference.timing)
    plots.plot_curves(
        res.times,
        {LABELS[m]: r.eval_return for m, r in res.report.items()},
        paths["figure"],
        title=f"{panel.title} (tuned per method; T_end={res.t_end:.4g})",
        threshold=res.threshold,
    )
    files.append_jsonl(os.path.join(out_dir, "summary.jsonl"), dict(panel=panel.name, rows=res.summary))
    return dataclasses.replace(res, files=paths)


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
    runners = protocol.Runners(panel, runs_per_call)
    bar = _bar(
        len(grid.batches(method)) * len(grid.hyper_points()) * grid.tune_seeds, f"sweep {method}", progress
    )
    first = runners(method, grid.batches(method)[0]).trainer
    times = time_grid(t_end or end_time(first, panel.rounds), panel.grid_points)
    runs, rows = protocol.sweep_grid(panel, method, grid, runners, times, bar)
    bar.close()
    best = tuning.select(rows)
    name = os.path.join(out_dir, f"{panel.name}_{method}")
    files.write_tuning(f"{name}_grid.csv", rows)
    extra = dict(t_end=float(times[-1]), machine=reproducible.machine())
    files.write_json(f"{name}_best.json", tuning.choices(best, grid, extra))
    files.write_curves(f"{name}_curves.csv", runs.values(), panel.name)
    return runs, rows
