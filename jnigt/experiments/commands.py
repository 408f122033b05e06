"""Command-line entry functions (``jnigt sweep``, ``jnigt compare``, ``jnigt reproduce``, ``jnigt crosscheck``): typed option
dataclasses for tyro, one function each returning an exit code. Each turns JAX's persistent
compilation cache on (``--cache-dir``, ``$JNIGT_JAX_CACHE``, else ``~/.cache/jnigt/jax``; ``--no-cache``
or ``JNIGT_JAX_CACHE=off`` to switch it off: :func:`jnigt.experiments.cache.setup`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time

from jnigt.experiments import (
    cache,
    compare,
    crosscheck,
    files,
    panels,
    protocol,
    reproducible,
    study,
    theory_lqr,
    tuning,
)
from jnigt.experiments import results as results_lib


@dataclasses.dataclass
class CommonArgs:
    out: str = "runs/experiments"
    """output folder (CSV, JSON, PNG); each command has its own default (runs/sweep, runs/compare, runs/paper)"""
    cache_dir: str | None = None
    """JAX persistent compilation cache folder (default: $JNIGT_JAX_CACHE, else ~/.cache/jnigt/jax)"""
    no_cache: bool = False
    """switch the persistent compilation cache off (or JNIGT_JAX_CACHE=off)"""
    progress: bool = True
    """tqdm progress bars"""
    runs_per_call: int | None = None
    """runs per compiled call (default: sweep all runs of a batch size at once; compare and reproduce the
    report seeds, reproduce --size full all runs of one (method, M) that fit in memory)"""
    verbose: bool = False
    """show the traceback of an error"""


@dataclasses.dataclass
class ProblemArgs:
    env: str = "inverted_pendulum"
    backend: str | None = "spring"
    num_agents: int = 10
    step_model: str = "sqrt"
    comm_model: str = "zero"
    horizon: int = 64
    rounds: int = 20
    """T_end = rounds x the first round time of the reference (first) method"""
    grid_points: int = 25
    """evaluation times, equally spaced in [0, T_end]"""
    eval_episodes: int = 8
    time_unit: str | None = None
    """None (the TrainConfig default), "step" or "trajectory\""""

    def panel(self, name: str, methods: tuple[str, ...]) -> panels.Panel:
        return panels.Panel(
            name=name,
            title=f"{self.env} (H={self.horizon}), n={self.num_agents}, h={self.step_model}, kappa={self.comm_model}",
            env=self.env,
            num_agents=self.num_agents,
            step_model=self.step_model,
            comm_model=self.comm_model,
            methods=methods,
            horizon=self.horizon,
            rounds=self.rounds,
            grid_points=self.grid_points,
            # "none" means no backend, as in ``jnigt train`` (tyro also reads ``None``)
            backend=None if str(self.backend).lower() == "none" else self.backend,
            eval_episodes=self.eval_episodes,
            time_unit=self.time_unit,
        )


@dataclasses.dataclass
class SweepArgs(CommonArgs, ProblemArgs):
    """One method, K = len(learning_rates) x len(momenta) x seeds runs vmapped in one program per batch size."""

    method: str = "rennala"
    learning_rates: tuple[float, ...] = (2.0**-7, 2.0**-5, 2.0**-3)
    momenta: tuple[float, ...] = (0.1,)
    batch_sizes: tuple[int, ...] = (20,)
    seeds: int = 2
    out: str = "runs/sweep"


@dataclasses.dataclass
class CompareArgs(CommonArgs, ProblemArgs):
    """Methods compared at equal simulated time; tuned per method over the grid (one point: no tuning)."""

    methods: tuple[str, ...] = ("rennala", "synchronized", "afedpg")
    """first = reference of the time-to-threshold ratios"""
    learning_rates: tuple[float, ...] = (2.0**-5,)
    momenta: tuple[float, ...] = (0.1,)
    batch_sizes: tuple[int, ...] = (20,)
    tune_seeds: int = 2
    seeds: int = 5
    """fresh report seeds"""
    out: str = "runs/compare"


@dataclasses.dataclass
class ReproduceArgs(CommonArgs):
    """The paper's panels (jnigt.experiments.panels) at one size, tuned and reported."""

    size: str = "cpu"
    """tiny | cpu | full. Run time: tiny minutes on a CPU; cpu measured in docs/results/equal_time.md;
    full on one GPU: estimated, not measured, in docs/results/full_run_estimate.txt (docs/experiments.md)"""
    panels: tuple[str, ...] = ()
    """panel names (default: all of the size)"""
    out: str = "runs/paper"
    study: str = "equal-time"
    """equal-time (the reproduction's panels) | pilot | convergence (the pilot, then the convergence study
    of docs/algorithms.md#convergence-study; killed, the same command resumes where it stopped) |
    theory-lqr (the theory against exact gradients on LQR, sizes tiny | cpu: jnigt/experiments/theory_lqr.py;
    resumable the same way)"""
    jobs: int = 1
    """pilot and convergence studies: panels run at once, in threads (2 on a 2-core machine); the files do
    not depend on it"""


@dataclasses.dataclass
class CrosscheckArgs:
    """Theory cross-check of finished panels: predicted (jnigt.theory.round_time) against measured
    simulated time per round, from <dir>/<panel>_chosen.json and <panel>_summary.csv. Prints the table
    and checks that <dir>'s <panel>_theory.csv and theory_crosscheck.md match it (exit 1 if not); writes
    files only with --write."""

    dir: str = "docs/results/equal_time"
    """folder of panel results (what jnigt reproduce wrote)"""
    write: bool = False
    """write <panel>_theory.csv and theory_crosscheck.md into --out"""
    out: str | None = None
    """with --write: where to write (default: --dir)"""
    verbose: bool = False
    """show the traceback of an error"""


def _start(args: CommonArgs) -> str | None:
    os.makedirs(args.out, exist_ok=True)
    return cache.setup(args.cache_dir, args.no_cache)


def sweep_command(args: SweepArgs) -> int:
    """``jnigt sweep``: writes <out>/sweep_<method>_{grid.csv,curves.csv,best.json}."""
    where = _start(args)
    grid = tuning.TuningGrid(
        tuple(args.learning_rates), tuple(args.momenta), tuple(args.batch_sizes), args.seeds, 1
    )
    panel = args.panel("sweep", (args.method,))
    t0 = time.time()
    _, rows = compare.run_sweep(
        panel, args.method, grid, args.out, runs_per_call=args.runs_per_call, progress=args.progress
    )
    for r in rows:
        print(
            f"M={r['batch_size']} alpha={r['learning_rate']:g} eta={r['momentum']:g}: score {r['score']:.4g}"
            f"{'  <- best' if r['chosen'] else ''}"
        )
    print(
        f"{len(rows)} points x {args.seeds} seeds in {time.time() - t0:.1f} s (cache: {where}); files in {args.out}"
    )
    return 0


def compare_command(args: CompareArgs) -> int:
    """``jnigt compare``: writes <out>/compare_{tuning.csv,chosen.json,curves.csv,summary.csv}, compare.png."""
    where = _start(args)
    grid = tuning.TuningGrid(
        tuple(args.learning_rates), tuple(args.momenta), tuple(args.batch_sizes), args.tune_seeds, args.seeds
    )
    res = compare.run_panel(
        args.panel("compare", tuple(args.methods)), grid, args.out, args.runs_per_call, progress=args.progress
    )
    _print_summary(res)
    print(f"(cache: {where})")
    return 0


def _print_summary(res: protocol.PanelResult) -> None:
    for r in res.summary:
        print(
            f"  {r['label']:18s} final {r['median_final_return']:.4g} [{r['q20_final_return']:.4g}, "
            f"{r['q80_final_return']:.4g}]  ttt {r['median_time_to_threshold']:.4g}  ratio {r['ttt_ratio']:.3g} "
            f"[{r['ttt_ratio_lo90']:.3g}, {r['ttt_ratio_hi90']:.3g}]"
        )
    for k, v in res.files.items():
        print(f"  {k}: {os.path.abspath(v)}")


def reproduce(size: str, names=(), out: str = "runs/paper", runs_per_call=None, progress=True) -> dict:
    """Run panels of ``size`` (default all). Writes <out>/panels.md (the table), <out>/summary.csv and
    <out>/theory_crosscheck.md (predicted against measured time per round of the panels run) and
    <out>/results.md (claims, returns, ratios and verdicts: :mod:`jnigt.experiments.results`). Returns
    {name: PanelResult}."""
    table = panels.panels_for(size)
    names = tuple(names) or tuple(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"panels: unknown {unknown}; valid panels: {', '.join(table)}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "panels.md"), "w") as f:
        f.write(panels.panel_table(size) + "\n")
    grid = tuning.GRIDS[size]
    results, rows, walls = {}, [], {}
    for n in names:
        t0 = time.time()
        res = compare.run_panel(
            table[n],
            table[n].grid or grid,
            out,
            runs_per_call,
            progress=progress,
            fast_compile=size == "tiny",
            fill=panels.SCALES[size].fill,
        )
        walls[n] = time.time() - t0
        print(f"{n}: {walls[n]:.1f} s", flush=True)
        _print_summary(res)
        results[n] = res
        rows.extend(res.summary)
        files.write_rows(os.path.join(out, "summary.csv"), rows, files.SUMMARY_COLUMNS)
    if results:
        crosscheck.write_markdown(
            [x for r in results.values() for x in crosscheck.read(r.files["theory"])], out
        )
        results_lib.write_results(out, list(results))
    files.write_json(
        os.path.join(out, "walls.json"),
        dict(size=size, wall_s=walls, machine=reproducible.machine()),
    )
    return results


STUDIES = ("equal-time", "pilot", "convergence", "theory-lqr")


def convergence(
    size: str, names=(), out: str = "runs/convergence", phase: str = "convergence", log=print, jobs: int = 1
) -> dict:
    """The convergence study at ``size`` (:mod:`jnigt.experiments.study`): the pilot into ``<out>/pilot``
    (its decisions in ``<out>/pilot/<panel>/pilot.json``), then, for ``phase="convergence"``, stages 1-2
    and the statistics of every panel into ``<out>/<panel>/`` and ``<out>/results.md``. Finished stages
    are read back, never recomputed. ``jobs > 1`` runs the pilot and stages 1-2 of that many panels at
    once (:func:`jnigt.experiments.study.in_parallel`), then reads them back in panel order for the
    statistics. Returns the pilot's decisions, or the study's results."""
    table = study.study_panels(size)
    names = tuple(names) or tuple(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        left = {k: v for k, v in study.LEFT_OUT.get(size, {}).items() if k in unknown}
        why = "; ".join(f"{k}: {v}" for k, v in left.items())
        raise ValueError(
            f"panels: unknown {unknown}{' (' + why + ')' if why else ''}; valid panels: {', '.join(table)}"
        )
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "machines.jsonl"), "a") as f:  # one line per invocation (a resume may move)
        f.write(json.dumps(dict(started=time.strftime("%Y-%m-%dT%H:%M:%S"), **reproducible.machine())) + "\n")
    chosen = [table[n] for n in names]
    tiny = size == "tiny"
    design = study.DESIGNS[size]

    def pilot(ps):
        pilot_out = os.path.join(out, "pilot")
        pilot_design = study.PILOT_DESIGNS[size]
        return study.pilot(
            ps, pilot_design, pilot_out, study.PILOT_FACTOR, log=log, fast_compile=tiny, study_design=design
        )

    def stages(p):  # one panel's pilot and, for the study, its stages 1-2 (files only)
        plan = pilot([p])[p.name]
        if phase != "pilot" and plan.get("rounds") is not None:
            q, make_runner, times = study.panel_setup(p, design, plan, tiny)
            study.run_panel_study(q, design, out, make_runner, times, log)

    if jobs > 1:
        study.in_parallel(stages, chosen, jobs)
    plans = pilot(chosen)
    if phase == "pilot":
        return plans
    missing = [n for n in table if n not in names]
    return study.study(chosen, design, out, plans, log=log, fast_compile=tiny, missing=missing)


def reproduce_command(args: ReproduceArgs) -> int:
    """``jnigt reproduce``: the paper's panels at ``--size`` (``--study``: which study)."""
    if args.study not in STUDIES:
        raise ValueError(f"--study: must be one of {', '.join(STUDIES)} (got {args.study!r})")
    if args.jobs < 1 or (args.jobs != 1 and args.study not in ("pilot", "convergence")):
        raise ValueError(
            f"--jobs: a whole number >= 1, above 1 only for --study pilot or convergence "
            f"(got {args.jobs} with --study {args.study})"
        )
    if args.study == "theory-lqr":
        if args.size not in theory_lqr.SIZES:
            raise ValueError(
                f"--size: the theory-lqr study has sizes {', '.join(theory_lqr.SIZES)} (got {args.size!r})"
            )
        where = _start(args)
        print(f"reproduce: theory-lqr study, size={args.size} out={args.out} cache={where}", flush=True)
        theory_lqr.run(args.size, args.out, log=lambda *a: print(*a, flush=True))
        print(f"files in {args.out}")
        return 0
    if args.size not in panels.SIZES:
        raise ValueError(f"--size: must be one of {', '.join(panels.SIZES)} (got {args.size!r})")
    if args.study != "equal-time":
        where = _start(args)
        print(
            f"reproduce: {args.study} study, size={args.size} out={args.out} jobs={args.jobs} cache={where}",
            flush=True,
        )
        spent = study.Spent()
        log = lambda *a: print(*a, flush=True)  # noqa: E731
        convergence(args.size, args.panels, args.out, args.study, log=log, jobs=args.jobs)
        print(f"files in {args.out} (this invocation: {str(spent)[1:-1]})")
        return 0
    where = _start(args)
    print(f"reproduce: size={args.size} out={args.out} cache={where}")
    print(panels.panel_table(args.size))
    reproduce(args.size, args.panels, args.out, args.runs_per_call, args.progress)
    return 0


def _same_file(fresh: str, stored: str) -> bool:
    """Whether ``stored`` holds what ``fresh`` holds: CSV rows equal up to the 6 digits written (rel. 1e-5)."""
    if not os.path.isfile(stored):
        return False
    if not fresh.endswith(".csv"):
        with open(fresh) as a, open(stored) as b:
            return a.read() == b.read()

    def same(x: str, y: str) -> bool:
        try:
            return x == y or math.isclose(float(x), float(y), rel_tol=1e-5)
        except ValueError:
            return False

    a, b = files.read_rows(fresh), files.read_rows(stored)
    return len(a) == len(b) and all(
        r.keys() == q.keys() and all(same(r[k], q[k]) for k in r) for r, q in zip(a, b)
    )


def crosscheck_command(args: CrosscheckArgs) -> int:
    """``jnigt crosscheck``: prints the cross-check of ``--dir`` and compares it with the files there
    (0: they match, 1: they differ); ``--write``: writes <panel>_theory.csv per panel and
    theory_crosscheck.md into ``--out`` (default ``--dir``)."""
    if args.write:
        out = args.out or args.dir
        os.makedirs(out, exist_ok=True)
        crosscheck.crosscheck_folder(args.dir, out)
        print(f"files in {out}")
        return 0
    if args.out is not None:
        raise ValueError("--out: says where --write writes; add --write (without it nothing is written)")
    with tempfile.TemporaryDirectory() as fresh:
        crosscheck.crosscheck_folder(args.dir, fresh)
        names = sorted(os.listdir(fresh))
        stale = [n for n in names if not _same_file(os.path.join(fresh, n), os.path.join(args.dir, n))]
    if stale:
        print(f"differ from what {args.dir} holds: {', '.join(stale)} (--write rewrites them)")
        return 1
    print(f"the {len(names)} files in {args.dir} match (nothing written)")
    return 0
