"""The theory on LQR with exact gradients, as one resumable study: ``jnigt reproduce --study theory-lqr``.

The instance (docs/algorithms.md#theory; jnigt/experiments/lqr_exact.py): env ``lqr`` (the default system,
open-loop stable), the linear policy mu = W s + b with a fixed exploration std, W_0 = 0 and b_0 = 0,
horizon H, discount gamma. Every run records the exact ||grad J_H(theta_t)|| at every time of its grid
(``lqr_exact.exact_records`` inside the equal-time program; the grid is log-spaced, :func:`log_grid`, so
every eps of the ladder is resolved to the same factor), and every statement below is about that record: the time to eps is the
first grid time from which ||grad J_H|| stays below eps up to the end of the grid (``lqr_exact.time_to_eps``).

Stages, each written to ``<out>/`` when it finishes and read back (never recomputed) by a rerun; ``plan.json``
holds the :class:`Design` the files were computed under, and a folder holding another plan is refused:

  1. ``instance.json``: J*_H and theta* (float64 Newton), the Riccati gap, ||grad J_H(theta_0)||, sigma^2
     at theta_0 (single-trajectory GPOMDP against the exact gradient), L_g, L_h and D on the segment
     theta_0 -> theta* (``lqr_exact.gradient_variance``, ``lqr_exact.smoothness``).
  2. per scenario (n agents, h_i equal or sqrt(i), kappa = 0) and method: **tune** (``tune_<s>_<m>.csv``,
     ``chosen_<s>_<m>.json``) over the design's (alpha, eta, M) grid on ``tune_seeds`` seeds, scored by
     :func:`tuning_score`; then **report** (``report_<s>_<m>.npz``): the chosen point on ``report_seeds``
     fresh seeds (the same seeds for every method: ratios are paired by seed).
  3. the crossover map (``map_<s>_<m>_r<j>.npz``): every ratio r = kappa / (H h_1) of ``map_ratios``
     (kappa_i = r H h_1 for every agent: one AllReduce costs r trajectories of the fastest agent) at the
     chosen hyperparameters of the scenario, on ``map_seeds`` seeds. The per-agent times are traced
     arguments (``EqualTimeRunner(traced_times=True)``): one compile per (method, M, n) serves every cell.
     A cell's grid ends at ``map_budget`` x the scenario's T_end scaled by the method's time per step at
     that cell over its time per step at kappa = 0 (:func:`step_time`), so each method gets the same number
     of steps in every cell (Rennala's and Synchronized's iterates do not depend on kappa at all).
  4. the heterogeneous panels (``hetero_<p>.json``, ``hetero_<p>_<m>.npz``): env ``lqr_hetero`` (agent i runs
     system i mod 2), Malenia NIGT and AFedPG; their ||grad J|| floor (median over the last 20% of the grid)
     beside ||grad J|| at the stationary point of the arrival-rate-weighted objective
     (``lqr_exact.arrival_rate_weights``), where AFedPG is predicted to settle.

then ``results.md``, ``time_to_eps.csv``, ``rates.csv``, ``map.csv`` and the heat maps ``map_<pair>.png``.

Tuning protocol (stated once, the same for every method and scenario): every point of the grid (alpha x eta,
x M for the aggregating methods; AFedPG steps once per gradient, its M is fixed) on seeds 0..tune_seeds-1;
score = mean over the eps ladder of log(median time to eps), a median that is not reached counting as
2 T_end; the lowest score wins; an alpha chosen on an edge of the grid adds the next alpha beyond that edge
(for every eta and M) and re-selects, at most ``max_extensions`` times (eta and M on an edge are reported). Report seeds are ``REPORT_SEED`` + k, never tuned on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable

import numpy as np

from jnigt import theory
from jnigt import timing as timing_lib
from jnigt.experiments import lqr_exact
from jnigt.experiments.study import (
    Spent,
    _atomic_write,
    claim_plan,
    extend_alphas,
    load_runs,
    save_json,
    save_runs,
)
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns
from jnigt.training import TrainConfig, Trainer, methods

SIZES = ("tiny", "cpu")
#: the methods of the time-to-eps study and the map; the heterogeneous panels' methods
METHODS = ("rennala", "afedpg", "synchronized")
HETERO_METHODS = ("malenia", "afedpg")
#: first report seed (tuning uses 0, 1, ...)
REPORT_SEED = 1000
#: the share of the grid's points (the last ones) whose median ||grad J|| is a run's floor (heterogeneous)
FLOOR_WINDOW = 0.2
PAIRS = (("rennala", "afedpg"), ("rennala", "synchronized"))


@dataclasses.dataclass(frozen=True)
class Design:
    """What one size of the study runs. ``eps_fractions``: the eps ladder as fractions of
    ||grad J_H(theta_0)||, descending; ``map_eps``: the two of them the map reports. ``gradients``: the
    budget of a scenario, T_end = gradients / S with S = sum_i 1 / (H h_i) (the time the n agents need to
    compute that many trajectories; every method gets the same T_end); ``map_budget``: a map cell's share
    of it (the map's eps are the ladder's larger ones). ``batch_factors``: the M grid of the aggregating
    methods as multiples of n (AFedPG's M is n: unused by its steps). ``hetero``: (name, n, h model) of
    the heterogeneous panels, ``hetero_gradients`` their budget, M = ``hetero_batch_factor`` x n."""

    agents: tuple[int, ...]
    step_models: tuple[str, ...] = ("equal", "sqrt")
    horizon: int = 16
    discount: float = 0.9
    std: float = 1.0
    eps_fractions: tuple[float, ...] = tuple(0.5 * 2.0**-k for k in range(9))
    map_eps: tuple[float, float] = (0.125, 0.03125)
    learning_rates: tuple[float, ...] = (0.01, 0.02, 0.04)
    afedpg_learning_rates: tuple[float, ...] = (0.0025, 0.005, 0.01)
    momenta: tuple[float, ...] = (0.1, 0.3)
    batch_factors: tuple[int, ...] = (1, 4)
    tune_seeds: int = 2
    max_extensions: int = 2
    report_seeds: int = 10
    gradients: int = 100000
    grid_points: int = 61
    map_ratios: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    map_seeds: int = 10
    map_budget: float = 0.1
    hetero: tuple[tuple[str, int, str], ...] = (("n2_h1_10", 2, "1,10"), ("n10_sqrt", 10, "sqrt"))
    hetero_gradients: int = 100000
    hetero_batch_factor: int = 2
    runs_per_call: int = 10
    vars_seeds: int = 1024

    def scenarios(self) -> list[tuple[str, int, str]]:
        return [(f"n{n}_{h}", n, h) for n in self.agents for h in self.step_models]

    def alphas(self, method: str) -> tuple[float, ...]:
        return self.learning_rates if methods.get(method).BATCHES else self.afedpg_learning_rates

    def batch_sizes(self, method: str, n: int) -> tuple[int, ...]:
        return tuple(f * n for f in self.batch_factors) if methods.get(method).BATCHES else (n,)


DESIGNS = {
    "tiny": Design(
        agents=(2,),
        step_models=("sqrt",),
        horizon=8,
        eps_fractions=(0.5, 0.3, 0.2, 0.1, 0.07, 0.05),
        map_eps=(0.3, 0.1),
        learning_rates=(0.01, 0.04),
        afedpg_learning_rates=(0.01,),
        momenta=(0.3,),
        batch_factors=(2,),
        tune_seeds=2,
        report_seeds=3,
        gradients=400,
        grid_points=10,
        map_ratios=(0.0, 1e-2, 1.0, 100.0),
        map_seeds=3,
        hetero=(("n2_h1_10", 2, "1,10"),),
        hetero_gradients=400,
        map_budget=1.0,
        runs_per_call=4,
        vars_seeds=64,
    ),
    "cpu": Design(agents=(10, 100)),
}


#: decades of time the grid spans below T_end
GRID_DECADES = 3.0


def log_grid(t_end: float, points: int) -> np.ndarray:
    """0, then ``points - 1`` log-spaced times from T_end / 10^GRID_DECADES to T_end (float32): a time to eps
    is resolved to a constant factor, 10^(GRID_DECADES / (points - 2)), at every eps of the ladder."""
    if not (t_end > 0 and math.isfinite(t_end)) or points < 3:
        raise ValueError(f"t_end, points: need t_end > 0 finite and points >= 3 (got {t_end!r}, {points!r})")
    logs = np.linspace(math.log10(t_end) - GRID_DECADES, math.log10(t_end), int(points) - 1)
    return np.concatenate([[0.0], 10.0**logs]).astype(np.float32)


def step_times(n: int, model: str) -> np.ndarray:
    """h_i of a scenario: a model name of ``jnigt.timing.step_times`` or comma-separated numbers."""
    if "," in model:
        h = np.asarray([float(x) for x in model.split(",")])
        if h.size != n:
            raise ValueError(f"step model {model!r}: needs {n} numbers")
        return h
    return timing_lib.step_times(n, model)


# ----------------------------------------------------------------------------------------- files
class Files:
    def __init__(self, out: str):
        self.out = out

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)


def claim(out: str, size: str, design: Design) -> None:
    """``plan.json`` in a new folder; a folder computed under another plan is refused."""
    plan = json.loads(json.dumps(dict(study="theory-lqr", size=size, design=dataclasses.asdict(design))))
    claim_plan(out, plan, "a theory-lqr study", "size or design")


def _json(path: str, make: Callable[[], dict], log, what: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    spent = Spent()
    obj = make()
    save_json(path, obj)
    log(f"  {what} done {spent}")
    return obj


def _runs(path: str, make: Callable[[], GridRuns], log, what: str) -> GridRuns:
    if os.path.exists(path):
        return load_runs(path)
    spent = Spent()
    runs = make()
    save_runs(path, runs)
    log(f"  {what} done {spent}")
    return runs


# ------------------------------------------------------------------------------------ trainers
def config(design: Design, method: str, n: int, step: str, batch_size: int, env: str = "lqr", comm=0.0):
    return TrainConfig(
        env=env,
        backend=None,
        policy="linear",
        fixed_std=design.std,
        mean_init="zeros",
        obs_norm="off",
        method=method,
        num_agents=n,
        step_model=step,
        comm_model=comm,
        horizon=design.horizon,
        discount=design.discount,
        batch_size=batch_size,
        learning_rate=design.learning_rates[0],
        momentum=design.momenta[0],
        eval_episodes=1,
    )


class Runners:
    """One traced-times runner per (method, M, n, h model), built when first asked (a resumed study
    whose stages are done compiles nothing)."""

    def __init__(self, design: Design, j_star: float, fast_compile: bool):
        self.design, self.j_star, self.fast = design, j_star, fast_compile
        self._cache: dict = {}

    def get(self, method: str, batch_size: int, n: int, step: str) -> EqualTimeRunner:
        key = (method, batch_size, n, step)
        if key not in self._cache:
            tr = Trainer(config(self.design, method, n, step, batch_size), num_devices=1)
            self._cache[key] = EqualTimeRunner(
                tr,
                fast_compile=self.fast,
                extra_records=lqr_exact.exact_records(tr, self.j_star),
                traced_times=True,
            )
        return self._cache[key]


# ------------------------------------------------------------------------------------ stage 1
def instance(design: Design) -> dict:
    """J*, theta*, ||grad J(theta_0)||, sigma^2, L_g, L_h, D of the instance (module docstring)."""
    import jax
    import jax.numpy as jnp

    tr = Trainer(config(design, "rennala", 1, "equal", 1), num_devices=1)
    star = lqr_exact.stationary_point(tr)
    p = lqr_exact.problem(tr)
    params0 = tr.eval_params(tr.init(0))
    theta0 = np.asarray(p.flatten(params0), np.float64)
    g0 = float(jnp.linalg.norm(jax.grad(p.objective)(jnp.asarray(theta0, jnp.float32))))
    sigma2, se = lqr_exact.gradient_variance(tr, params0, design.vars_seeds)
    consts = lqr_exact.smoothness(tr, theta0, star.theta)
    return dict(
        j_star=star.value,
        theta_star=star.theta.tolist(),
        grad_norm_at_star=star.grad_norm,
        float32_floor=star.float32_floor,
        riccati_gap=star.riccati_gap,
        hessian_eigs=star.hessian_eigs.tolist(),
        grad_norm_0=g0,
        sigma2=sigma2,
        sigma2_se=se,
        **consts,
    )


# ------------------------------------------------------------------------------------ stage 2
def t_end(design: Design, n: int, step: str) -> float:
    """The scenario's T_end: ``gradients`` trajectories at the n agents' full rate (kappa = 0)."""
    c = theory.trajectory_costs(step_times(n, step), design.horizon)
    return float(design.gradients / np.sum(1.0 / c))


def tuning_score(times, ttes) -> float:
    """Mean over the eps ladder of log(median time to eps), unreached = 2 T_end (``ttes`` [K, E])."""
    med = lqr_exact.quantiles(ttes, (0.5,))[0]
    return float(np.mean(np.log(np.minimum(med, 2.0 * float(times[-1])))))


def _tune(design, runners, name, n, step, method, eps, files, log) -> dict:
    """Tuning of one method and scenario (module docstring); an alpha chosen on an edge of the grid adds
    the next alpha beyond it (the grid's ratio, ``study.extend_alphas``), at most ``max_extensions`` times."""
    times = log_grid(t_end(design, n, step), design.grid_points)
    h = step_times(n, step)
    seeds = np.arange(design.tune_seeds)
    rows = []

    def run(alphas):
        for m in design.batch_sizes(method, n):
            hp = [(a, e) for a in alphas for e in design.momenta]
            runs = runners.get(method, m, n, step).run_chunked(
                np.tile(seeds, len(hp)),
                np.repeat([a for a, _ in hp], seeds.size),
                np.repeat([e for _, e in hp], seeds.size),
                times,
                design.runs_per_call,
                step_time=h,
                comm_time=np.zeros(n),
            )
            for a, e in hp:
                point = runs.where(a, e)
                tte = lqr_exact.time_to_eps(times, point.extra["exact_grad_norm"], eps)
                rows.append(
                    dict(
                        batch_size=m,
                        learning_rate=a,
                        momentum=e,
                        score=tuning_score(times, tte),
                        diverged=int(point.diverged.sum()),
                        reached_smallest=int(np.isfinite(tte[:, -1]).sum()),
                    )
                )

    alphas = list(design.alphas(method))
    run(alphas)
    best = lambda: min(rows, key=lambda r: (r["score"], r["learning_rate"]))
    extensions = 0
    while extensions < design.max_extensions and len(alphas) > 1:
        beyond = extend_alphas(alphas, best()["learning_rate"])
        if beyond is None:
            break
        alphas.append(beyond)
        run([beyond])
        extensions += 1
    _write_csv(files.path(f"tune_{name}_{method}.csv"), rows)
    edge = lambda v, grid: len(grid) > 1 and v in (min(grid), max(grid))
    chosen = best()
    return dict(
        chosen,
        t_end=float(times[-1]),
        alphas_tried=sorted(alphas),
        extensions=extensions,
        alpha_on_edge=edge(chosen["learning_rate"], alphas),
        eta_on_edge=edge(chosen["momentum"], design.momenta),
        m_on_edge=edge(chosen["batch_size"], design.batch_sizes(method, n)),
    )


def _report(design, runners, n, step, chosen, method, comm=None, t_scale=1.0) -> GridRuns:
    times = log_grid(t_end(design, n, step) * t_scale, design.grid_points)
    runner = runners.get(method, int(chosen["batch_size"]), n, step)
    seeds = REPORT_SEED + np.arange(design.report_seeds if comm is None else design.map_seeds)
    return runner.run_chunked(
        seeds,
        chosen["learning_rate"],
        chosen["momentum"],
        times,
        design.runs_per_call,
        step_time=step_times(n, step),
        comm_time=np.zeros(n) if comm is None else comm,
    )


# ------------------------------------------------------------------------------------ stage 3
def step_time(design: Design, method: str, n: int, step: str, batch_size: int, r: float) -> float:
    """Time per step at kappa_i = r H h_1 with fixed times: the method module's ``fixed_step_time``
    (Rennala's round as ``jnigt.timing.rennala_round`` closes it, Synchronized's ``max_i c_i ceil(M / n)``,
    each plus the AllReduce max_i kappa_i; AFedPG's time per update ``jnigt.theory.afedpg_update_time``)."""
    c = theory.trajectory_costs(step_times(n, step), design.horizon)
    return methods.get(method).fixed_step_time(c, map_comm(design, n, step, r), batch_size)


def map_comm(design: Design, n: int, step: str, r: float) -> np.ndarray:
    return np.full(n, r * design.horizon * float(np.min(step_times(n, step))))


# ------------------------------------------------------------------------------------ stage 4
def _hetero(design, name, n, step, fast, files, log) -> dict:
    """Weighted stationary point and both methods' tuned report runs of one heterogeneous panel."""
    import jax
    import jax.numpy as jnp

    m_agg = design.hetero_batch_factor * n
    trainers = {}

    def trainer(method):
        if method not in trainers:
            m = m_agg if methods.get(method).BATCHES else n
            cfg = config(design, method, n, step, m, env="lqr_hetero")
            trainers[method] = Trainer(cfg, num_devices=1)
        return trainers[method]

    def point():
        base = trainer("malenia")
        star = lqr_exact.stationary_point(base)
        w = lqr_exact.arrival_rate_weights(base.timing, design.horizon)
        weighted = lqr_exact.stationary_point(base, weights=w)
        p = lqr_exact.problem(base)
        theta0 = jnp.asarray(p.flatten(base.eval_params(base.init(0))), jnp.float32)
        return dict(
            j_star=star.value,
            theta_star=star.theta.tolist(),
            float32_floor=star.float32_floor,
            weights=w.tolist(),
            theta_weighted=weighted.theta.tolist(),
            predicted_afedpg_floor=lqr_exact.gradient_norm(base, weighted.theta),
            grad_norm_0=float(jnp.linalg.norm(jax.grad(p.objective)(theta0))),
        )

    info = _json(files.path(f"hetero_{name}.json"), point, log, f"hetero {name}: stationary points")
    c = theory.trajectory_costs(step_times(n, step), design.horizon)
    times = log_grid(float(design.hetero_gradients / np.sum(1.0 / c)), design.grid_points)
    runners = {}

    def runner(method):
        if method not in runners:
            tr = trainer(method)
            records = lqr_exact.exact_records(tr, info["j_star"])
            runners[method] = EqualTimeRunner(tr, fast_compile=fast, extra_records=records)
        return runners[method]

    out = {}
    for method in HETERO_METHODS:

        def tune(method=method):
            seeds = np.arange(design.tune_seeds)
            hp = [(a, e) for a in design.alphas(method) for e in design.momenta]
            runs = runner(method).run_chunked(
                np.tile(seeds, len(hp)),
                np.repeat([a for a, _ in hp], seeds.size),
                np.repeat([e for _, e in hp], seeds.size),
                times,
                design.runs_per_call,
            )
            rows = [
                dict(learning_rate=a, momentum=e, median_floor=float(np.median(floors(runs.where(a, e)))))
                for a, e in hp
            ]
            _write_csv(files.path(f"hetero_tune_{name}_{method}.csv"), rows)
            return min(rows, key=lambda r: (r["median_floor"], r["learning_rate"]))

        ch = _json(
            files.path(f"hetero_chosen_{name}_{method}.json"), tune, log, f"hetero {name} {method} tune"
        )
        out[method] = _runs(
            files.path(f"hetero_{name}_{method}.npz"),
            lambda method=method, ch=ch: runner(method).run_chunked(
                REPORT_SEED + np.arange(design.report_seeds),
                ch["learning_rate"],
                ch["momentum"],
                times,
                design.runs_per_call,
            ),
            log,
            f"hetero {name} {method} report",
        )
    return dict(info=info, runs=out, chosen={m: None for m in HETERO_METHODS})


def floors(runs: GridRuns) -> np.ndarray:
    """Per run: the median ||grad J|| over the last FLOOR_WINDOW of the grid (NaN, diverged: inf)."""
    g = runs.extra["exact_grad_norm"]
    k = max(1, int(round(FLOOR_WINDOW * g.shape[1])))
    f = np.median(g[:, -k:], axis=1)
    return np.where(np.isfinite(f) & ~runs.diverged, f, np.inf)


# ------------------------------------------------------------------------------------ the study
def run(size: str, out: str, log=print, fast_compile: bool | None = None) -> dict:
    """The whole study at ``size`` into ``out`` (module docstring); returns what results.md reports."""
    if size not in DESIGNS:
        raise ValueError(f"--size: the theory-lqr study has sizes {', '.join(DESIGNS)} (got {size!r})")
    design = DESIGNS[size]
    fast = size == "tiny" if fast_compile is None else fast_compile
    os.makedirs(out, exist_ok=True)
    claim(out, size, design)
    files = Files(out)
    t0 = time.time()
    log(f"theory-lqr {size}: instance")
    inst = _json(files.path("instance.json"), lambda: instance(design), log, "instance")
    g0 = inst["grad_norm_0"]
    eps = g0 * np.asarray(design.eps_fractions)
    runners = Runners(design, inst["j_star"], fast)
    scen = design.scenarios()
    chosen, reports, maps = {}, {}, {}
    for name, n, step in scen:
        for method in METHODS:
            log(f"theory-lqr {size}: scenario {name} {method} [{time.time() - t0:.0f} s]")
            ch = _json(
                files.path(f"chosen_{name}_{method}.json"),
                lambda: _tune(design, runners, name, n, step, method, eps, files, log),
                log,
                f"tune {name} {method}",
            )
            chosen[name, method] = ch
            reports[name, method] = _runs(
                files.path(f"report_{name}_{method}.npz"),
                lambda: _report(design, runners, n, step, ch, method),
                log,
                f"report {name} {method}",
            )
    for name, n, step in scen:
        for method in METHODS:
            log(f"theory-lqr {size}: map {name} {method} [{time.time() - t0:.0f} s]")
            ch = chosen[name, method]
            m = int(ch["batch_size"])
            base = step_time(design, method, n, step, m, 0.0)
            for j, r in enumerate(design.map_ratios):
                scale = design.map_budget * step_time(design, method, n, step, m, r) / base
                maps[name, method, j] = _runs(
                    files.path(f"map_{name}_{method}_r{j}.npz"),
                    lambda: _report(
                        design, runners, n, step, ch, method, map_comm(design, n, step, r), scale
                    ),
                    log,
                    f"map {name} {method} r={r:g}",
                )
    hetero = {}
    for name, n, step in design.hetero:
        log(f"theory-lqr {size}: heterogeneous {name} [{time.time() - t0:.0f} s]")
        hetero[name] = _hetero(design, name, n, step, fast, files, log)
    log(f"theory-lqr {size}: analysis [{time.time() - t0:.0f} s]")
    from jnigt.experiments import theory_lqr_report

    return theory_lqr_report.write(out, size, design, inst, chosen, reports, maps, hetero)


def _write_csv(path: str, rows: list[dict]) -> None:
    import csv

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    _atomic_write(path, write)
