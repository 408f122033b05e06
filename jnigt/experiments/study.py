"""The convergence study: the protocol of docs/algorithms.md#convergence-study, as resumable stages.

Per panel (a :class:`jnigt.experiments.panels.Panel` whose ``rounds`` fixes T_end, set from the pilot
before any report run), per method, in order:

  1. **tune**: every (alpha, eta) of the design's grid x ``tune_seeds`` seeds (0, 1, ...) at the
     panel's T_end, scored by :func:`jnigt.experiments.tuning.score`. A choice of alpha on the edge of
     the grid adds one more grid step beyond that edge (for every eta) and re-selects, at most
     ``max_extensions`` times; a choice of eta on the edge of {0.001, 0.01, 0.1} is recorded as such.
     File ``<panel>/tune_<method>.csv`` and ``<panel>/chosen_<method>.json``.
  2. **report**: the chosen point on fresh seeds ``REPORT_SEED_OFFSET + k``: ``report_seeds`` for a
     baseline, ``pool_seeds`` (>= 2 x report_seeds) for the reference, whose first ``report_seeds``
     are paired by seed with the baselines' and whose whole pool serves the A/A calibration (random
     halvings). File ``<panel>/report_<method>.npz``.

Every stage's file is written atomically when the stage ends; a stage whose file exists is never run
again, so a study killed at any point restarts where it stopped and loses at most the stage it was in.
``<panel>/plan.json`` holds what the files were computed under (panel, design); a folder holding a
different plan is refused rather than mixed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from jnigt.experiments import compare, stats, tuning
from jnigt.experiments import convergence_stats as cs
from jnigt.experiments.panels import LABELS, Panel, panels_for
from jnigt.experiments.plots import plot_curves
from jnigt.experiments.results import CLAIMS
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns, eval_key, time_grid

#: The paper's momentum grid (the eta of docs/algorithms.md#nigt).
PAPER_MOMENTA = (0.001, 0.01, 0.1)


@dataclasses.dataclass(frozen=True)
class StudyDesign:
    """Seeds, evaluation and grid of the study (the same for every method of a panel).

    ``learning_rates`` is the initial alpha grid (log-spaced, ascending); an edge choice extends it by
    one step of the grid's own ratio. ``eval_episodes`` and ``grid_points`` override the panel's.
    ``runs_per_call``: every call of a method's compiled program holds this many runs (the last call
    padded), so each method compiles once for its tuning, extensions and report.
    """

    learning_rates: tuple[float, ...] = tuple(2.0**k for k in (-10, -8, -6, -4, -2))
    momenta: tuple[float, ...] = PAPER_MOMENTA
    batch_size: int = 20
    tune_seeds: int = 3
    report_seeds: int = 10
    pool_seeds: int = 20
    eval_episodes: int = 16
    grid_points: int = 25
    max_extensions: int = 2
    runs_per_call: int = 10

    def __post_init__(self):
        lr = self.learning_rates
        if len(lr) < 2 or any(b <= a for a, b in zip(lr, lr[1:])) or lr[0] <= 0:
            raise ValueError(f"learning_rates: must be >= 2 ascending positive values (got {lr!r})")
        if self.pool_seeds < 2 * self.report_seeds:
            raise ValueError(
                f"pool_seeds: must be >= 2 x report_seeds = {2 * self.report_seeds} (got {self.pool_seeds})"
            )
        tuning.TuningGrid(lr, self.momenta, (self.batch_size,), self.tune_seeds, self.pool_seeds)

    def seeds_for(self, method: str, reference: str) -> np.ndarray:
        """Report seeds of ``method``: the pool for the reference, the first ``report_seeds`` otherwise."""
        k = self.pool_seeds if method == reference else self.report_seeds
        return tuning.REPORT_SEED_OFFSET + np.arange(k)


def panel_for_study(panel: Panel, design: StudyDesign) -> Panel:
    """``panel`` with the design's evaluation episodes and grid points."""
    return dataclasses.replace(panel, eval_episodes=design.eval_episodes, grid_points=design.grid_points)


# ------------------------------------------------------------------------------------------- files
def _atomic_write(path: str, write: Callable[[str], None]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)
    return path


def save_runs(path: str, runs: GridRuns) -> str:
    """``runs`` as one .npz (every field; written atomically)."""
    fields = {f.name: getattr(runs, f.name) for f in dataclasses.fields(runs) if f.name != "extra"}
    fields.update({f"extra/{k}": v for k, v in runs.extra.items()})

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in fields.items()})

    return _atomic_write(path, write)


def load_runs(path: str) -> GridRuns:
    with np.load(path) as z:
        kw = {f.name: z[f.name] for f in dataclasses.fields(GridRuns) if f.name in z.files}
        kw["extra"] = {k[len("extra/") :]: z[k] for k in z.files if k.startswith("extra/")}
    kw["method"], kw["batch_size"] = str(kw["method"]), int(kw["batch_size"])
    return GridRuns(**kw)


def save_json(path: str, obj) -> str:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False, default=float)

    return _atomic_write(path, write)


def _plan(panel: Panel, design: StudyDesign) -> dict:
    p = dataclasses.asdict(panel)
    p["grid"] = None if panel.grid is None else dataclasses.asdict(panel.grid)
    return json.loads(json.dumps(dict(panel=p, design=dataclasses.asdict(design))))


def claim_plan(folder: str, plan: dict, what: str, changed: str) -> None:
    """Write ``plan`` as ``<folder>/plan.json`` in a new folder; refuse a folder computed under another plan,
    naming ``what`` it holds and what may have ``changed``."""
    path = os.path.join(folder, "plan.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != plan:
            raise ValueError(
                f"out: {folder} holds {what} under another plan ({changed} changed); pick a new --out or "
                "remove that folder"
            )
        return
    save_json(path, plan)


def claim_folder(folder: str, panel: Panel, design: StudyDesign) -> None:
    """Write ``plan.json`` in a new folder; refuse a folder computed under another plan."""
    claim_plan(folder, _plan(panel, design), f"a study of {panel.name}", "panel or design")


# ----------------------------------------------------------------------------------------- tuning
def extend_alphas(alphas: Sequence[float], chosen: float) -> float | None:
    """The alpha one grid step beyond the edge ``chosen`` sits on (ratio of the two nearest grid
    values), or None when ``chosen`` is inside the grid."""
    a = sorted(alphas)
    if math.isclose(chosen, a[0], rel_tol=1e-9):
        return a[0] * a[0] / a[1]
    if math.isclose(chosen, a[-1], rel_tol=1e-9):
        return a[-1] * a[-1] / a[-2]
    return None


def tune(run_point, panel: str, method: str, design: StudyDesign, times) -> tuple[dict, list[dict]]:
    """Step 1 of the protocol for one method. ``run_point(alphas, etas, seeds)`` runs the flat lists of
    runs and returns their GridRuns. Returns (the chosen row with its ``median_curve`` over the tuning
    seeds, ``alphas_tried``, ``extensions``, ``alpha_on_edge``, ``eta_on_edge``; every grid row)."""
    seeds = np.arange(design.tune_seeds)
    rows: list[dict] = []
    curves = {}

    def run(alphas):
        hp = [(a, e) for a in alphas for e in design.momenta]
        runs = run_point(
            np.repeat([a for a, _ in hp], seeds.size),
            np.repeat([e for _, e in hp], seeds.size),
            np.tile(seeds, len(hp)),
        )
        for a, e in hp:
            point = runs.where(a, e)
            curves[a, e] = np.median(point.eval_return, axis=0)
            rows.append(
                tuning.grid_row(
                    panel, method, design.batch_size, a, e, times, point.eval_return, point.diverged
                )
            )

    alphas = list(design.learning_rates)
    run(alphas)
    extensions = 0
    while True:
        best = tuning.select(rows)[method]
        beyond = extend_alphas(alphas, best["learning_rate"])
        if beyond is None or extensions >= design.max_extensions:
            break
        alphas.append(beyond)
        run([beyond])
        extensions += 1
        for r in rows:
            r["chosen"] = False
    chosen = dict(
        best,
        median_curve=[float(x) for x in curves[best["learning_rate"], best["momentum"]]],
        alphas_tried=sorted(alphas),
        extensions=extensions,
        alpha_on_edge=extend_alphas(alphas, best["learning_rate"]) is not None,
        eta_on_edge=best["momentum"] in (min(design.momenta), max(design.momenta)),
    )
    return chosen, rows


# ------------------------------------------------------------------------------------------ stages
@dataclasses.dataclass
class PanelFiles:
    folder: str

    def tune_csv(self, method):
        return os.path.join(self.folder, f"tune_{method}.csv")

    def chosen(self, method):
        return os.path.join(self.folder, f"chosen_{method}.json")

    def report(self, method):
        return os.path.join(self.folder, f"report_{method}.npz")


def report_runs(runner, panel: Panel, design: StudyDesign, method: str, chosen: dict, times) -> GridRuns:
    """Stage 2 of ``method``: its report seeds (:meth:`StudyDesign.seeds_for`) at the ``chosen``
    hyperparameters, in calls of ``design.runs_per_call`` runs (``runner``: the method's EqualTimeRunner)."""
    seeds = design.seeds_for(method, panel.reference)
    return runner.run_chunked(
        seeds, chosen["learning_rate"], chosen["momentum"], times, runs_per_call=design.runs_per_call
    )


def run_panel_study(
    panel: Panel,
    design: StudyDesign,
    out_dir: str,
    make_runner: Callable[[str], object],
    times,
    log=print,
    report: bool = True,
) -> dict[str, GridRuns]:
    """Stages 1-2 of every method of ``panel`` into ``out_dir/<panel>/``; finished stages are read back,
    never recomputed. ``make_runner(method)`` gives the method's EqualTimeRunner at the design's batch
    size (compiled lazily: a panel whose stages are all done compiles nothing). ``report=False`` runs
    stage 1 only (the pilot). Returns the report runs by method."""
    files = PanelFiles(os.path.join(out_dir, panel.name))
    claim_folder(files.folder, panel, design)
    runners: dict[str, object] = {}

    def runner(m):
        if m not in runners:
            runners[m] = make_runner(m)
        return runners[m]

    out = {}
    for m in panel.methods:
        if os.path.exists(files.chosen(m)):
            with open(files.chosen(m)) as f:
                chosen = json.load(f)
        else:

            def run_point(alphas, etas, seeds, m=m):
                return runner(m).run_chunked(seeds, alphas, etas, times, runs_per_call=design.runs_per_call)

            spent = Spent()
            chosen, rows = tune(run_point, panel.name, m, design, times)
            tuning.write_table(files.tune_csv(m), rows)
            save_json(files.chosen(m), chosen)
            log(
                f"  {panel.name} {m}: alpha={chosen['learning_rate']:g} eta={chosen['momentum']:g} "
                f"(extensions {chosen['extensions']}, alpha on edge {chosen['alpha_on_edge']}, "
                f"eta on edge {chosen['eta_on_edge']}) {spent}"
            )
        if not report:
            continue
        if os.path.exists(files.report(m)):
            out[m] = load_runs(files.report(m))
            continue
        spent = Spent()
        runs = report_runs(runner(m), panel, design, m, chosen, times)
        save_runs(files.report(m), runs)
        out[m] = runs
        log(f"  {panel.name} {m}: {runs.seeds.size} report runs done {spent}")
    return out


class Spent:
    """Wall-clock and CPU seconds (this process, all its threads) since it was made, for the log: the
    study's budget is counted in CPU seconds, which the machine's load changes less than wall-clock.
    With panels run at once (:func:`in_parallel`) a stage's CPU figure holds every panel running then."""

    def __init__(self):
        self.wall, self.cpu = time.time(), time.process_time()

    def __str__(self) -> str:
        return f"[{time.time() - self.wall:.0f} s wall, {time.process_time() - self.cpu:.0f} s CPU]"


# ------------------------------------------------------------------------------- the pilot's rules
#: A median curve has settled by grid time t_J when, over the last ``SETTLE_WINDOW`` of [0, t_J], its
#: least-squares line changes by less than ``SETTLE_TOLERANCE`` of the curve's range over [0, t_J]. The
#: fitted change, not max - min, so that evaluation noise on a flat tail does not count as change (the
#: max - min form never let a 2-seed median of 16-episode evaluations settle in the first pilot panels).
SETTLE_WINDOW = 0.2
SETTLE_TOLERANCE = 0.05


def settled(median) -> bool:
    """Whether a median curve (on an equally spaced grid from 0) has settled (see :data:`SETTLE_WINDOW`):
    the least-squares line through its last ``SETTLE_WINDOW`` of grid points changes, across them, by
    less than ``SETTLE_TOLERANCE`` of the curve's range."""
    y = np.asarray(median, float)
    if y.size < 2 or not np.all(np.isfinite(y)):
        return False
    span = np.max(y) - np.min(y)
    if span == 0:
        return True
    tail = y[int(np.floor((1 - SETTLE_WINDOW) * (y.size - 1))) :]
    if tail.size < 2:
        return False
    slope = np.polyfit(np.arange(tail.size), tail, 1)[0]
    return bool(abs(slope) * (tail.size - 1) < SETTLE_TOLERANCE * span)


def run_length(times, medians: dict[str, np.ndarray], threshold: float) -> dict:
    """The pilot's choice of T_end from each method's best median curve on a long grid ``times``
    (equally spaced from 0): the smallest grid time t_J at which the median of SOME method has crossed
    ``threshold`` and, cut at t_J, has settled (:func:`settled`). Returns ``dict(t_end, method, index)``;
    ``t_end`` is None (the panel is too short to decide at this budget) when no method's median
    crosses and settles on the grid."""
    t = np.asarray(times, float)
    best = None
    for m, med in medians.items():
        med = np.asarray(med, float)
        hit = np.flatnonzero(med >= threshold)
        if hit.size == 0:
            continue
        for j in range(max(int(hit[0]), 1), t.size):
            if settled(med[: j + 1]):
                if best is None or j < best[1]:
                    best = (m, j)
                break
    if best is None:
        return dict(t_end=None, method=None, index=None)
    return dict(t_end=float(t[best[1]]), method=best[0], index=int(best[1]))


def study_threshold(stated: float, initial_returns, plateau: float) -> dict:
    """The threshold rule of the study, applied once per panel before its report runs.

    ``stated`` = :func:`jnigt.experiments.stats.threshold` of the environment; ``initial_returns`` =
    the evaluation return at t = 0 of every seed the study will run (report seeds included: their
    initial policies are evaluated before training); ``plateau`` = the best pilot median's final value.
    The stated value is kept when every initial return is below it and ``plateau`` reaches it.
    Otherwise it is replaced, once, by the midpoint ``(max initial + plateau) / 2`` (above every initial
    policy, below the best plateau). When ``plateau <= max initial`` nothing learnt in the pilot and
    the threshold is None (the panel is reported as not learning). Returns ``dict(threshold, rule)``."""
    r0 = float(np.max(np.asarray(initial_returns, float)))
    if r0 < stated <= plateau:
        return dict(threshold=float(stated), rule="stated")
    if not plateau > r0:
        return dict(
            threshold=None, rule=f"no learning: best pilot plateau {plateau:.4g} <= max initial {r0:.4g}"
        )
    why = "met at t = 0 by an initial policy" if r0 >= stated else "not reached by any pilot median"
    return dict(threshold=0.5 * (r0 + plateau), rule=f"midpoint: stated {stated:.4g} {why}")


def initial_returns(trainer, seeds) -> np.ndarray:
    """Evaluation return at t = 0 (grid point 0's evaluation keys) of the initial policy of each seed,
    as the equal-time runner records it, without training: one small vmapped program."""
    import jax

    def one(seed):
        return trainer.evaluate(trainer.init(seed), eval_key(seed, 0))

    return np.asarray(jax.jit(jax.vmap(one))(np.asarray(seeds, np.int32)), float)


def pilot_panel(
    panel: Panel,
    design: StudyDesign,
    out_dir: str,
    make_runner: Callable[[str], object],
    times,
    stated_threshold: float,
    round_time: float,
    log=print,
    study_design: StudyDesign | None = None,
) -> dict:
    """The pilot of one panel on a long grid ``times``: stage 1 (tune) of every method, then the
    threshold rule (:func:`study_threshold`, on the initial returns of every seed of ``study_design``
    (default ``design``): its tuning seeds and the reference's whole report pool) and the run length (:func:`run_length`) from each method's chosen median. Writes (and
    on a rerun reads back) ``<out_dir>/<panel>/pilot.json``: threshold, rule, t_end, rounds (T_end in
    reference first-round times, rounded up), per method the chosen point and its median curve."""
    study_design = study_design or design
    path = os.path.join(out_dir, panel.name, "pilot.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    run_panel_study(panel, design, out_dir, make_runner, times, log, report=False)
    files = PanelFiles(os.path.join(out_dir, panel.name))
    chosen = {}
    for m in panel.methods:
        with open(files.chosen(m)) as f:
            chosen[m] = json.load(f)
    medians = {m: np.asarray(c["median_curve"]) for m, c in chosen.items()}
    seeds = np.concatenate(
        [np.arange(study_design.tune_seeds), study_design.seeds_for(panel.reference, panel.reference)]
    )
    init = initial_returns(make_runner(panel.reference).trainer, seeds)
    plateau = max(float(v[-1]) for v in medians.values())
    thr = study_threshold(stated_threshold, init, plateau)
    length = run_length(times, medians, thr["threshold"]) if thr["threshold"] is not None else {}
    t_end = length.get("t_end")
    out = dict(
        panel=panel.name,
        t_pilot=float(times[-1]),
        max_initial_return=float(np.max(init)),
        **thr,
        t_end=t_end,
        rounds=None if t_end is None else int(math.ceil(t_end / round_time)),
        settled_method=length.get("method"),
        chosen={m: {k: chosen[m][k] for k in ("learning_rate", "momentum", "score")} for m in panel.methods},
        medians={m: [float(x) for x in v] for m, v in medians.items()},
        times=[float(x) for x in times],
    )
    save_json(path, out)
    log(f"  pilot {panel.name}: threshold {thr['threshold']} ({thr['rule']}), rounds {out['rounds']}")
    return out


# ------------------------------------------------------------------------------------------ panels
#: The study's seeds, evaluation and grid (docs/algorithms.md#convergence-study), by size.
DESIGNS = {
    "cpu": StudyDesign(),
    "full": StudyDesign(learning_rates=tuple(2.0**-k for k in range(10, 0, -1))),
    "tiny": StudyDesign(
        learning_rates=(2.0**-6, 2.0**-2),
        momenta=(0.1,),
        batch_size=4,
        tune_seeds=1,
        eval_episodes=2,
        grid_points=4,
        max_extensions=1,
    ),
}
#: The pilot's coarse grid: 3 alphas (a factor 8 apart; an edge choice extends once) x eta 0.1 x 2 seeds
#: per method, on a grid PILOT_FACTOR x longer than the reproduction's.
PILOT_ALPHAS = {
    "cpu": (2.0**-10, 2.0**-7, 2.0**-4),
    "full": (2.0**-10, 2.0**-6, 2.0**-2),
    "tiny": (2.0**-6, 2.0**-2),
}
PILOT_DESIGNS = {
    size: dataclasses.replace(
        d,
        learning_rates=PILOT_ALPHAS[size],
        momenta=(0.1,),
        tune_seeds=min(2, d.tune_seeds),
        max_extensions=1,
        grid_points=41 if size != "tiny" else d.grid_points,
        runs_per_call=len(PILOT_ALPHAS[size]) * min(2, d.tune_seeds),  # one call: every point's seeds
    )
    for size, d in DESIGNS.items()
}
PILOT_FACTOR = 10
#: Panels beyond the equal-time reproduction's: scenario (b) charged per gradient too (both units for the
#: main environment's (b) and (c)).
EXTRA_PANELS = ("main_b_trajectory",)
#: Panels of the equal-time reproduction left out of the study at a size, with the reason.
LEFT_OUT = {
    "cpu": {
        "humanoid_c": "cannot learn at CPU size (gradient noise; docs/results/equal_time.md): --size full"
    }
}


def study_panels(size: str) -> dict[str, Panel]:
    """The study's panels at ``size``: the reproduction's panels (:func:`jnigt.experiments.panels.
    panels_for`) less :data:`LEFT_OUT`, plus ``main_b_trajectory`` (``main_b`` charged per gradient)."""
    table = panels_for(size)
    out = {k: v for k, v in table.items() if k not in LEFT_OUT.get(size, {})}
    b = table["main_b"]
    out["main_b_trajectory"] = dataclasses.replace(
        b, name="main_b_trajectory", title=f"{b.title}, time per trajectory", time_unit="trajectory"
    )
    return out


# ------------------------------------------------------------------------------------------ driver
def _runner_factory(panel: Panel, design: StudyDesign, fast_compile: bool):
    env = compare.make_env(panel)
    cache: dict[str, object] = {}

    def make_runner(method):
        if method not in cache:
            trainer = compare.make_trainer(panel, method, design.batch_size, env=env)
            cache[method] = EqualTimeRunner(trainer, fast_compile=fast_compile, program_key=repr(panel))
        return cache[method]

    return make_runner


def pilot(
    panels: Sequence[Panel],
    design: StudyDesign,
    out_dir: str,
    pilot_factor: float,
    log=print,
    fast_compile: bool = False,
    study_design: StudyDesign | None = None,
) -> dict[str, dict]:
    """The pilot of every panel: stage 1 on ``design`` (a coarse grid) up to T_pilot = ``pilot_factor``
    x the panel's ``rounds`` reference rounds; the initial returns for the threshold rule over the seeds
    of ``study_design``. Files in ``<out_dir>/<panel>/``. Returns each panel's pilot.json."""
    out = {}
    for p in panels:
        p = panel_for_study(p, design)
        make_runner = _runner_factory(p, design, fast_compile)
        round_time = compare.end_time(make_runner(p.reference).trainer, 1)
        times = time_grid(round_time * p.rounds * pilot_factor, design.grid_points)
        stated = stats.threshold(p.env, p.horizon)
        out[p.name] = pilot_panel(
            p, design, out_dir, make_runner, times, stated, round_time, log, study_design
        )
    return out


def in_parallel(work: Callable[[Panel], object], panels: Sequence[Panel], jobs: int) -> None:
    """``work(panel)`` for every panel, ``jobs`` panels at once, in threads of this process: XLA compiles
    and runs outside the GIL, so two panels on a 2-core machine take little more wall-clock than one. Each
    panel writes only its own folders and every stage file is written atomically, so the files are those
    of one panel after another (a study's numbers never depend on ``jobs``). The first error is raised
    once the panels already running stop; those not started are cancelled."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="panel") as pool:
        futures = [pool.submit(work, p) for p in panels]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()
            raise failed[0].exception()


def panel_setup(panel: Panel, design: StudyDesign, plan: dict, fast_compile: bool = False):
    """The study's ``(panel, make_runner, times)`` for ``panel`` at the run length its pilot fixed
    (``plan``: its pilot.json): the design's evaluation and grid, ``rounds`` reference rounds."""
    p = dataclasses.replace(panel_for_study(panel, design), rounds=int(plan["rounds"]))
    make_runner = _runner_factory(p, design, fast_compile)
    times = time_grid(compare.end_time(make_runner(p.reference).trainer, p.rounds), design.grid_points)
    return p, make_runner, times


def study(
    panels: Sequence[Panel],
    design: StudyDesign,
    out_dir: str,
    plans: dict[str, dict],
    log=print,
    fast_compile: bool = False,
    missing: Sequence[str] = (),
) -> dict[str, dict]:
    """Stages 1-2 of every panel at the run length and threshold its pilot fixed (``plans[name]``: a
    pilot.json), then the statistics of each panel (:func:`analyze`) and ``<out_dir>/results.md`` over
    the panels given (``missing``: the study's panels left out of this run, named in results.md as not
    in it). A panel whose pilot found no run length is skipped as "too short to decide".
    Returns per panel ``dict(panel, threshold, times, report, result)`` or ``dict(skipped)``."""
    out = {}
    for p in panels:
        plan = plans[p.name]
        if plan.get("rounds") is None:
            out[p.name] = dict(skipped=f"too short to decide: {plan.get('rule')}; pilot t_end None")
            log(f"  {p.name}: {out[p.name]['skipped']}")
            continue
        p, make_runner, times = panel_setup(p, design, plan, fast_compile)
        report = run_panel_study(p, design, out_dir, make_runner, times, log)
        result = analyze(p, design, out_dir, plan["threshold"], times, report, CLAIMS.get(p.name))
        out[p.name] = dict(panel=p, threshold=plan["threshold"], times=times, report=report, result=result)
        log(f"  {p.name}: {result['verdict']} (A/A false rate {result['aa_rate']:.3f})")
    done = [v["result"] for v in out.values() if "result" in v]
    skipped = {k: v["skipped"] for k, v in out.items() if "skipped" in v}
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(results_markdown(done, skipped, missing))
    return out


# ---------------------------------------------------------------------------------------- analysis
SUMMARY_COLUMNS = [
    "panel",
    "method",
    "label",
    "learning_rate",
    "momentum",
    "alpha_on_edge",
    "eta_on_edge",
    "seeds",
    "t_end",
    "threshold",
    "seeds_reached",
    "median_time",
    "ratio",
    "ratio_lo90",
    "ratio_hi90",
    "p_faster_holm",
    "p_slower_holm",
    "median_final_return",
    "iqm_final_return",
    "median_auc",
]


def analyze(
    panel: Panel, design: StudyDesign, out_dir: str, threshold: float, times, report, claim=None
) -> dict:
    """Statistics of one finished panel (:mod:`jnigt.experiments.convergence_stats`, the protocol of
    docs/algorithms.md#convergence-study): the paired verdict on the first ``report_seeds`` seeds of
    every method, the reference's A/A rate on its whole pool, the detectable ratio, secondary statistics.
    ``claim``: (kind, words) of :data:`jnigt.experiments.results.CLAIMS`, None for a panel beyond the
    paper. Writes ``<panel>/summary.csv``, ``<panel>/curves.csv`` and ``<panel>/<panel>.png``; returns
    one results row."""
    folder = os.path.join(out_dir, panel.name)
    ref, k = panel.reference, design.report_seeds
    paired = {m: report[m].take(np.arange(k)) for m in panel.methods}
    reach = {m: cs.first_reach(times, r.eval_return, threshold) for m, r in paired.items()}
    medians = {m: np.median(r.eval_return, axis=0) for m, r in paired.items()}
    crossed = [m for m, v in medians.items() if np.any(v >= threshold)]
    kind = claim[0] if claim else "best"
    decision = cs.decide(kind, reach)
    pool = cs.first_reach(times, report[ref].eval_return, threshold)
    aa = cs.aa_calibration(pool, kind)
    detect = cs.detectable_ratio(pool, k, num_tests=max(1, len(panel.methods) - 1))
    if not crossed:
        verdict = "too short to decide (no median crosses the threshold)"
    elif claim is None:
        verdict = "-"
    else:
        verdict = decision.verdict
    rows = []
    for m in panel.methods:
        with open(os.path.join(folder, f"chosen_{m}.json")) as f:
            ch = json.load(f)
        sec = cs.secondary_scores(times, paired[m].eval_return)
        est, lo, hi = stats.bootstrap_ratio(reach[ref].as_inf(), reach[m].as_inf(), level=0.9)
        comp = next((c for c in decision.comparisons if c.other == m and c.method == ref), None)
        rows.append(
            dict(
                panel=panel.name,
                method=m,
                label=LABELS[m],
                learning_rate=ch["learning_rate"],
                momentum=ch["momentum"],
                alpha_on_edge=ch["alpha_on_edge"],
                eta_on_edge=ch["eta_on_edge"],
                seeds=k,
                t_end=float(times[-1]),
                threshold=threshold,
                seeds_reached=int(np.sum(reach[m].reached)),
                median_time=stats.median_inf(reach[m].as_inf()),
                ratio=est,
                ratio_lo90=lo,
                ratio_hi90=hi,
                p_faster_holm=comp.p_faster_holm if comp else math.nan,
                p_slower_holm=comp.p_slower_holm if comp else math.nan,
                median_final_return=float(np.median(sec["final"])),
                iqm_final_return=cs.iqm(sec["final"])[0],
                median_auc=float(np.median(sec["auc"])),
            )
        )
    compare.write_rows(os.path.join(folder, "summary.csv"), rows, SUMMARY_COLUMNS)
    curves = [row for r in report.values() for row in r.rows(panel=panel.name)]
    compare.write_rows(os.path.join(folder, "curves.csv"), curves, compare.CURVE_COLUMNS)
    plot_curves(
        times,
        {f"{LABELS[m]}": paired[m].eval_return for m in panel.methods},
        os.path.join(folder, f"{panel.name}.png"),
        title=f"{panel.title} (tuned per method; {k} paired seeds; T_end={times[-1]:.4g})",
        threshold=threshold,
    )
    return dict(
        panel=panel.name,
        claim=claim[1] if claim else "(beyond the paper)",
        kind=kind,
        verdict=verdict,
        aa_rate=aa.rate,
        aa_lo=aa.lo,
        aa_hi=aa.hi,
        aa_splits=aa.comparisons,
        detectable_ratio=detect,
        settled=bool(crossed) and any(settled(v) for v in medians.values()),
        rows=rows,
    )


def _g(x) -> str:
    x = float(x)
    return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.3g}")


def results_markdown(
    results: Sequence[dict], skipped: dict[str, str] | None = None, missing: Sequence[str] = ()
) -> str:
    """The study's one results table (docs/results/convergence/results.md is this, generated); ``missing``:
    panels of the study this table does not cover (said at the top: the table is then partial)."""
    lines = [
        "# Convergence study: results",
        "",
    ]
    if missing:
        lines += [
            f"**Partial: {len(missing)} of the study's panels are not in this table** ({', '.join(missing)}; "
            "not run yet, or left out of the command that wrote it). No statement about all panels follows.",
            "",
        ]
    lines += [
        "Generated by `jnigt.experiments.study.results_markdown`; the protocol and the statistics are in",
        "docs/algorithms.md#convergence-study. Primary statistic: each run's time to the panel's threshold,",
        f"censored at T_end; paired censored signed-rank test per baseline, Holm-corrected, one-sided level "
        f"{cs.ALPHA} per direction. Ratio = median time of the reference / of the method, paired bootstrap 90% "
        "interval (inf where the method's median never reaches). A/A: the same rule on random halvings of "
        "the reference's pool (false-verdict rate, Clopper-Pearson 95% interval). Detectable: the time "
        "ratio the test detects with 80% power at this number of seeds (lognormal model).",
        "",
        "| panel | claim | method | alpha | eta | reached | median time | ratio [90%] | p (Holm) faster / slower "
        "| median final | verdict | A/A false rate | detectable |",
        "|" + "---|" * 13,
    ]
    for r in results:
        for i, row in enumerate(r["rows"]):
            head = (r["panel"], r["claim"]) if i == 0 else ("", "")
            tail = (
                (
                    r["verdict"],
                    f"{r['aa_rate']:.3f} [{r['aa_lo']:.3f}, {r['aa_hi']:.3f}]",
                    _g(r["detectable_ratio"]),
                )
                if i == 0
                else ("", "", "")
            )
            edge = "*" if row["alpha_on_edge"] else ""
            lines.append(
                f"| {head[0]} | {head[1]} | {row['label']} | {row['learning_rate']:.3g}{edge} | {row['momentum']:g}"
                f"{'*' if row['eta_on_edge'] else ''} | {row['seeds_reached']}/{row['seeds']} | "
                f"{_g(row['median_time'])} | {_g(row['ratio'])} [{_g(row['ratio_lo90'])}, {_g(row['ratio_hi90'])}] | "
                f"{_g(row['p_faster_holm'])} / {_g(row['p_slower_holm'])} | {_g(row['median_final_return'])} | "
                f"{tail[0]} | {tail[1]} | {tail[2]} |"
            )
    for name, why in (skipped or {}).items():
        lines.append(f"| {name} | | | | | | | | | | {why} | | |")
    lines += ["", "`*`: the chosen value sits on an edge of its grid after the allowed extensions."]
    lines += [
        "",
        "## Which time unit reproduces the shapes of the paper's figures",
        "",
    ] + time_unit_statement(results)
    return "\n".join(lines) + "\n"


#: The main environment's panels by the unit h_i is charged in; (a) is the same in both (h_i = 1, kappa_i = 0:
#: the units differ by the time scale H only).
TIME_UNITS = {
    "per environment step": ("main_a", "main_b", "main_c"),
    "per gradient (trajectory)": ("main_a", "main_b_trajectory", "main_c_trajectory"),
}


def time_unit_statement(results: Sequence[dict]) -> list[str]:
    """Per time unit of :data:`TIME_UNITS`, whether the verdicts reproduce the paper's shapes: (a) all alike
    (any verdict but "does not hold": the rule cannot confirm equality beyond "no difference detected")
    and (b), (c) Rennala NIGT clearly fastest ("holds" in both); a unit with a panel not in ``results`` is
    undecided."""
    verdicts = {r["panel"]: r["verdict"] for r in results}
    out = []
    for unit, (a, b, c) in TIME_UNITS.items():
        have = [p for p in (a, b, c) if p in verdicts]
        said = ", ".join(f"{p}: {verdicts[p]}" for p in have)
        if len(have) < 3:
            out.append(
                f"- h_i charged {unit}: undecided, {3 - len(have)} of its panels not in this table ({said or 'none'})."
            )
            continue
        shapes = verdicts[a] != "does not hold" and verdicts[b] == verdicts[c] == "holds"
        out.append(
            f"- h_i charged {unit}: {'reproduces' if shapes else 'does not reproduce'} the paper's shapes "
            f"((a) all alike, (b) and (c) Rennala NIGT clearly fastest): {said}."
        )
    return out
