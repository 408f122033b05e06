"""Figures (matplotlib, PNG): return against simulated time for one or many runs, and the theory's
predicted times against the number of agents.

Runs with the same label (method+optimizer, plus env) are treated as seeds: the median is drawn
with a shaded 20%-80% band, on a common grid of the x axis. matplotlib is imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from jnigt import theory, validate
from jnigt.training import methods


def find_runs(paths: Sequence[str]) -> list[str]:
    """Run folders (holding metrics.jsonl) among ``paths`` and their sub-folders."""
    found = []
    for p in paths:
        if os.path.exists(os.path.join(p, "metrics.jsonl")):
            found.append(p)
        elif os.path.isdir(p):
            found.extend(find_runs(sorted(os.path.join(p, c) for c in os.listdir(p))))
    return found


def load_run(path: str):
    with open(os.path.join(path, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    config = {}
    if os.path.exists(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    return config, rows


def label_of(config: dict) -> str:
    """A run's label: "Rennala NIGT", ... (``jnigt.training.label``), else "method+optimizer";
    " (Ray)" for a run on real Ray agents (its time is wall-clock seconds)."""
    name = methods.label(config.get("method"), config.get("optimizer"))
    return name + " (Ray)" if config.get("executor") == "ray" else name


def curves(paths: Sequence[str], x: str = "time") -> dict[str, list[tuple]]:
    """label -> list of (x values, eval returns), one per run (rows with an evaluation only)."""
    out = defaultdict(list)
    for run in find_runs(paths):
        config, rows = load_run(run)
        ev = [r for r in rows if "eval_return" in r]
        if ev:
            out[label_of(config)].append(
                (np.array([r[x] for r in ev], float), np.array([r["eval_return"] for r in ev], float))
            )
    return dict(out)


def plot_runs(paths: Sequence[str], out: str, x: str = "time", title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(paths, x)
    if not data:
        raise ValueError(f"no run with metrics.jsonl under {list(paths)}")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs in sorted(data.items()):
        if len(runs) == 1:
            ax.plot(runs[0][0], runs[0][1], label=label)
            continue
        lo, hi = max(r[0][0] for r in runs), min(r[0][-1] for r in runs)
        grid = np.linspace(lo, hi, 100)
        ys = np.stack([np.interp(grid, r[0], r[1]) for r in runs])
        ax.plot(grid, np.median(ys, axis=0), label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(grid, np.quantile(ys, 0.2, axis=0), np.quantile(ys, 0.8, axis=0), alpha=0.25)
    ax.set_xlabel({"time": "simulated time (s)", "env_steps": "environment steps", "round": "round"}[x])
    ax.set_ylabel("evaluation return of theta_t")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_predicted_times(
    path,
    n_values: Iterable[int],
    step_model: str,
    comm_model: str,
    eps,
    c: theory.Constants | None = None,
    num_params: int | None = None,
    formulas: str = "theorem",
    title: str | None = None,
):
    """Draw the predicted time (:func:`jnigt.theory.predicted_times`, docs/algorithms.md#theory) of every method
    against the number of agents (log-log) into a PNG at path.

    Uses matplotlib's Agg canvas directly (no pyplot state).  Non-positive or infinite values are not drawn.
    Returns path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ns = [validate.integer("n", n, 1) for n in n_values]
    c = theory.Constants() if c is None else c
    data = theory.predicted_times(ns, step_model, comm_model, eps, c, num_params, formulas)
    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name in theory.PREDICTED_METHODS:
        y = np.asarray(data[name], dtype=float)
        ok = np.isfinite(y) & (y > 0)
        ax.plot(np.asarray(ns)[ok], y[ok], marker="o", markersize=3, label=theory.METHOD_LABELS[name])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of agents n")
    ax.set_ylabel("predicted time (constants dropped)")
    ax.set_title(title or f"step={step_model}, comm={comm_model}, eps={float(eps):g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path
