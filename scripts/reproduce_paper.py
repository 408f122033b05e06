"""Reproduce the paper's homogeneous experiments (SPEC section 6, project issue 6 part 3).

Rennala NIGT, Synchronized NIGT and AFedPG on the three timing scenarios

    (a) h_i = 1,       kappa_i = 0                    step_model='equal', comm_model='zero'
    (b) h_i = sqrt(i), kappa_i = sqrt(i)              step_model='sqrt',  comm_model='sqrt'
    (c) h_i = sqrt(i), kappa_i = sqrt(i) * d^(1/4)    step_model='sqrt',  comm_model='sqrt_d'

for n agents, several seeds. Outputs under --out (default runs/paper):

    <out>/runs/<env>/<scenario>/n<n>/<method>/seed<k>/     metrics.jsonl + config.json (jnigt.training.train)
    <out>/figures/<env>_<scenario>_n<n>.png                return vs simulated time, median + 20-80% band
    <out>/summary.csv                                      one row per env x scenario x n x method

Every method gets the same gradient budget: the aggregating methods run ``rounds`` rounds of batch M;
AFedPG's "round" is ONE arrival (one gradient), so it runs ``rounds * M`` arrivals and evaluates every
``eval_every * M`` arrivals.

Hyperparameters (chosen from the paper's grids; eta in {0.001, 0.01, 0.1}, alpha in {2^-10, ..., 2^-1},
M = M_init in {20, 30, 50}; no grid search was run here, one point of the grid is used for every method):

    eta   (NIGT momentum, TrainConfig.momentum)       = 0.1
    alpha (step size, TrainConfig.learning_rate)      = 2^-5 = 0.03125  (NIGT steps along d/||d||)
    M = M_init (batch_size, init_batch_size)          = 20
    discount 0.99, policy MLP (64, 64)

Sizes (--size):
    tiny  env 'fast', horizon 8, 4 rounds, 1 seed, n=4, scenario (b) only -- for the test (< 60 s).
    cpu   (default) spring backend, 2 seeds, 20-30 rounds: inverted_pendulum n=10 scenarios (a), (b), (c) and
          n=100 scenario (c); reacher n=10 (b); a short hopper run n=10 (b). Sized (see SIZES) to take about
          an hour on the shared 2-core CPU; compilation (~1-2 min per run) dominates.
    full  the paper's size for a GPU: humanoid, reacher, walker2d, hopper; n=10 and 100; 5 seeds; horizon
          1000; 500 rounds. Not run on the CPU machine.

Time to threshold: for each run, the simulated time of the first evaluation whose return is >= the
threshold (inf if never); the CSV holds the median over seeds (inf when more than half of the seeds never
reach it). The threshold is stated per environment below; ``None`` means "auto": halfway between the lowest
median first evaluation and the highest median final evaluation over the methods of that panel (the value
used is written to the CSV). ``ref_ttt_ratio`` = the reference method's (column ``reference``: Rennala NIGT
here) time-to-threshold / this method's (< 1: Rennala NIGT is faster; 0 when only Rennala NIGT reaches it;
inf when only this method does; nan when neither does).

Usage:
    PYTHONPATH=. python scripts/reproduce_paper.py [--size tiny|cpu|full] [--out runs/paper] [--seeds K]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))

from jnigt.training.methods import METHODS as ALL_METHODS  # noqa: E402
from jnigt.training.methods import label  # noqa: E402

# Hyperparameters from the paper's grids (see the module docstring).
ETA = 0.1  # NIGT momentum eta
ALPHA = 2.0**-5  # step size alpha
BATCH = 20  # M = M_init

SCENARIOS = {
    "a": dict(step_model="equal", comm_model="zero", label="(a) h_i=1, kappa_i=0"),
    "b": dict(step_model="sqrt", comm_model="sqrt", label="(b) h_i=sqrt(i), kappa_i=sqrt(i)"),
    "c": dict(step_model="sqrt", comm_model="sqrt_d", label="(c) h_i=sqrt(i), kappa_i=sqrt(i) d^(1/4)"),
}

METHODS = ("rennala", "synchronized", "afedpg")
LABELS = {m: label(m) for m in ALL_METHODS}  # figure labels, defined once in jnigt.training.methods


@dataclasses.dataclass(frozen=True)
class EnvRun:
    """One environment's experiment: which n, how long, which threshold."""

    env: str
    backend: str | None
    horizon: int
    rounds: int  # aggregator rounds (AFedPG: rounds * batch arrivals)
    eval_every: int  # aggregator rounds between evaluations
    ns: Sequence[int]
    seeds: int
    threshold: float | None = None  # None = auto (see module docstring)
    eval_episodes: int = 8
    scenarios: Sequence[str] = ("a", "b", "c")


SIZES: dict[str, list[EnvRun]] = {
    "tiny": [
        EnvRun(
            "fast",
            None,
            horizon=8,
            rounds=4,
            eval_every=2,
            ns=(4,),
            seeds=1,
            threshold=None,
            eval_episodes=2,
            scenarios=("b",),
        )
    ],
    # cpu: sized from measured wall times on the shared 2-core machine (2026-11, load ~4-8 from other jobs):
    # inverted_pendulum, H=64, n=10: ~1.5-2 min compile per run (dominant) + ~1-3 s per Rennala round of
    # M=20 trajectories. The full 3 scenarios x 2 n x 3 envs x 5 seeds (270 runs) would take many hours here,
    # so cpu runs 37 runs: all scenarios for inverted_pendulum n=10, the costly-communication scenario (c)
    # at n=100, scenario (b) on reacher and a short hopper run, 2 seeds, plus the
    # heterogeneous script. Expect roughly an hour.
    "cpu": [
        EnvRun(
            "inverted_pendulum",
            "spring",
            horizon=64,
            rounds=30,
            eval_every=10,
            ns=(10,),
            seeds=2,
            threshold=None,
            scenarios=("a", "b", "c"),
        ),
        EnvRun(
            "inverted_pendulum",
            "spring",
            horizon=64,
            rounds=30,
            eval_every=10,
            ns=(100,),
            seeds=2,
            threshold=None,
            scenarios=("c",),
        ),
        EnvRun(
            "reacher",
            "spring",
            horizon=50,
            rounds=30,
            eval_every=10,
            ns=(10,),
            seeds=2,
            threshold=None,
            scenarios=("b",),
        ),
        EnvRun(
            "hopper",
            "spring",
            horizon=64,
            rounds=20,
            eval_every=10,
            ns=(10,),
            seeds=2,
            threshold=None,
            scenarios=("b",),
        ),
    ],
    "full": [
        EnvRun(
            e,
            "spring",
            horizon=1000,
            rounds=500,
            eval_every=25,
            ns=(10, 100),
            seeds=5,
            threshold=None,
            eval_episodes=16,
        )
        for e in ("humanoid", "reacher", "walker2d", "hopper")
    ],
}


def make_config(
    env: EnvRun,
    method: str,
    n: int,
    seed: int,
    step_model: str,
    comm_model: str,
    batch: int = BATCH,
    eta: float = ETA,
    alpha: float = ALPHA,
    afedpg_scale: int | None = None,
):
    from jnigt.training.config import TrainConfig

    # AFedPG: one arrival per "round"; rounds * afedpg_scale arrivals (default M) = the same gradient budget
    scale = (afedpg_scale or batch) if method == "afedpg" else 1
    return TrainConfig(
        env=env.env,
        backend=env.backend,
        method=method,
        optimizer="nigt",
        num_agents=n,
        step_model=step_model,
        comm_model=comm_model,
        horizon=env.horizon,
        discount=0.99,
        learning_rate=alpha,
        momentum=eta,
        batch_size=batch,
        init_batch_size=batch,
        rounds=env.rounds * scale,
        eval_every=env.eval_every * scale,
        eval_episodes=env.eval_episodes,
        seed=seed,
    )


def run_one(config, out_dir: str) -> list[dict]:
    """Train (or reuse a finished run in out_dir) and return the metric rows."""
    from jnigt.training.run import train

    done = os.path.join(out_dir, "DONE")
    if os.path.exists(done):
        with open(os.path.join(out_dir, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    # out_dir=None: no orbax checkpoints (each costs seconds on this CPU); metrics.jsonl and config.json are
    # written here in jnigt.training.run's format so that jnigt.plotting reads them.
    from jnigt.training.run import CONFIG_FILE, METRICS_FILE

    _, _, rows = train(config, None, num_devices=1, progress=False, tensorboard=False)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=1, sort_keys=True)
    with open(os.path.join(out_dir, METRICS_FILE), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(done, "w") as f:
        f.write("ok\n")
    return rows


# ------------------------------------------------------------------------------------------ summaries


def eval_curve(rows: list[dict]):
    ev = [r for r in rows if "eval_return" in r]
    return np.array([r["time"] for r in ev], float), np.array([r["eval_return"] for r in ev], float)


def time_to_threshold(t: np.ndarray, y: np.ndarray, threshold: float) -> float:
    hit = np.nonzero(y >= threshold)[0]
    return float(t[hit[0]]) if hit.size else math.inf


def median_inf(values: Sequence[float]) -> float:
    """Median that keeps inf honest: inf when more than half of the values are inf."""
    v = np.sort(np.asarray(values, float))
    if v.size == 0:
        return math.nan
    if v.size % 2:
        return float(v[v.size // 2])
    lo, hi = v[v.size // 2 - 1], v[v.size // 2]
    if math.isinf(hi):
        return math.inf
    return float(0.5 * (lo + hi))


def auto_threshold(curves_by_method: dict[str, list[tuple]]) -> float:
    firsts = [np.median([y[0] for _, y in runs]) for runs in curves_by_method.values() if runs]
    finals = [np.median([y[-1] for _, y in runs]) for runs in curves_by_method.values() if runs]
    lo, hi = min(firsts), max(finals)
    return float(lo + 0.5 * (hi - lo))


def report_outputs(csv_path: str, rows: list[dict], pngs: list[str]) -> int:
    """Write the final CSV and print where the CSV and figures are; exit code 0."""
    write_csv(csv_path, rows)
    print(f"CSV: {os.path.abspath(csv_path)}")
    for p in pngs:
        print(f"figure: {os.path.abspath(p)}")
    return 0


CSV_COLUMNS = [
    "env",
    "scenario",
    "step_model",
    "comm_model",
    "n",
    "method",
    "label",
    "seeds",
    "rounds",
    "gradients",
    "median_final_return",
    "q20_final_return",
    "q80_final_return",
    "median_final_time",
    "threshold",
    "threshold_rule",
    "seeds_reached",
    "median_time_to_threshold",
    "reference",
    "ref_ttt_ratio",
    "wall_s",
]


def summarize_panel(
    env: str,
    scenario: str,
    step_model: str,
    comm_model: str,
    n: int,
    runs: dict[str, list[list[dict]]],
    threshold: float | None,
    reference: str,
    walls: dict[str, float],
) -> list[dict]:
    """CSV rows for one panel (env x scenario x n); ``runs[method]`` = list of per-seed metric rows."""
    curves = {m: [eval_curve(r) for r in rs] for m, rs in runs.items()}
    if threshold is None:
        thr, rule = (
            auto_threshold(curves),
            "auto: halfway from lowest median first eval to highest median final eval",
        )
    else:
        thr, rule = float(threshold), "stated"
    ttt = {m: median_inf([time_to_threshold(t, y, thr) for t, y in cs]) for m, cs in curves.items()}
    out = []
    for m, cs in curves.items():
        finals = np.array([y[-1] for _, y in cs])
        ref, mine = ttt.get(reference, math.nan), ttt[m]
        if math.isinf(ref) and math.isinf(mine):
            ratio = math.nan
        elif mine == 0:
            ratio = math.nan
        else:
            ratio = ref / mine
        out.append(
            dict(
                env=env,
                scenario=scenario,
                step_model=step_model,
                comm_model=comm_model,
                n=n,
                method=m,
                label=LABELS[m],
                seeds=len(cs),
                rounds=runs[m][0][-1]["round"],
                gradients=int(sum(r.get("grads_used", 0) for r in runs[m][0])),
                median_final_return=float(np.median(finals)),
                q20_final_return=float(np.quantile(finals, 0.2)),
                q80_final_return=float(np.quantile(finals, 0.8)),
                median_final_time=float(np.median([t[-1] for t, _ in cs])),
                threshold=thr,
                threshold_rule=rule,
                seeds_reached=int(sum(math.isfinite(time_to_threshold(t, y, thr)) for t, y in cs)),
                median_time_to_threshold=mine,
                reference=LABELS[reference],
                ref_ttt_ratio=ratio,
                wall_s=round(walls.get(m, 0.0), 1),
            )
        )
    return out


def write_csv(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def run_panel(
    env: EnvRun,
    scenario: str,
    step_model: str,
    comm_model: str,
    n: int,
    methods: Sequence[str],
    seeds: int,
    out: str,
    title: str,
    reference: str,
    log=print,
    afedpg_scale: int | None = None,
):
    """Train every method x seed of one panel, draw its PNG, return (csv rows, png path)."""
    from jnigt.plotting import plot_runs

    panel_dir = os.path.join(out, "runs", env.env, scenario, f"n{n}")
    runs, walls = {}, {}
    for m in methods:
        runs[m], walls[m] = [], 0.0
        for s in range(seeds):
            cfg = make_config(env, m, n, s, step_model, comm_model, afedpg_scale=afedpg_scale)
            t0 = time.time()
            rows = run_one(cfg, os.path.join(panel_dir, m, f"seed{s}"))
            dt = time.time() - t0
            walls[m] += dt
            t, y = eval_curve(rows)
            log(
                f"  {env.env} {scenario} n={n} {LABELS[m]:18s} seed {s}: final return {y[-1]:.4g} "
                f"at simulated time {t[-1]:.4g} ({dt:.1f} s wall)"
            )
            runs[m].append(rows)
    png = os.path.join(out, "figures", f"{env.env}_{scenario}_n{n}.png")
    plot_runs([os.path.join(panel_dir, m) for m in methods], png, x="time", title=title)
    rows = summarize_panel(
        env.env, scenario, step_model, comm_model, n, runs, env.threshold, reference, walls
    )
    return rows, png


def _parse(argv, description, default_out):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", choices=("tiny", "cpu", "full"), default="cpu")
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    p.add_argument("--seeds", type=int, default=None, help="override the number of seeds of the size")
    p.add_argument("--envs", default=None, help="comma-separated subset of the size's environments")
    return p.parse_args(argv)


def enable_compile_cache(out: str) -> None:
    """Persistent XLA cache under <out>/.jax_cache: seeds of one config share the training chunk's compile."""
    import jax

    try:
        jax.config.update("jax_compilation_cache_dir", os.path.abspath(os.path.join(out, ".jax_cache")))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    except Exception as exc:  # pragma: no cover - older/newer jax without these options
        print(f"(no persistent compilation cache: {exc})")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(
        argv,
        "Rennala NIGT vs Synchronized NIGT vs AFedPG on the paper's timing scenarios.",
        os.path.join("runs", "paper"),
    )
    envs = SIZES[args.size]
    if args.envs:
        keep = set(args.envs.split(","))
        envs = [e for e in envs if e.env in keep]
    enable_compile_cache(args.out)
    print(f"reproduce_paper: size={args.size} out={args.out} eta={ETA} alpha={ALPHA} M=M_init={BATCH}")
    for e in envs:
        print(
            f"  {e.env} ({e.backend}): H={e.horizon} rounds={e.rounds} (AFedPG {e.rounds * BATCH} arrivals) "
            f"eval_every={e.eval_every} n={list(e.ns)} seeds={args.seeds or e.seeds} "
            f"scenarios={list(e.scenarios)}"
        )
    if args.size == "full":
        print("  (full size is meant for a GPU machine)")
    sys.stdout.flush()
    all_rows, pngs = [], []
    csv_path = os.path.join(args.out, "summary.csv")
    t_start = time.time()
    for e in envs:
        for sc in e.scenarios:
            spec = SCENARIOS[sc]
            for n in e.ns:
                title = f"{e.env}, n={n}, {spec['label']}"
                rows, png = run_panel(
                    e,
                    sc,
                    spec["step_model"],
                    spec["comm_model"],
                    n,
                    METHODS,
                    args.seeds or e.seeds,
                    args.out,
                    title,
                    "rennala",
                    log=lambda s: print(s, flush=True),
                )
                all_rows.extend(rows)
                pngs.append(png)
                write_csv(csv_path, all_rows)  # partial results survive an interrupted run
                print(f"[{time.time() - t_start:.0f} s] figure {png}", flush=True)
    return report_outputs(csv_path, all_rows, pngs)


if __name__ == "__main__":
    sys.exit(main())
