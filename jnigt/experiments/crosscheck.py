"""Theory cross-check of a panel: the time per round that :func:`jnigt.theory.round_time` predicts against
the simulated time per round the panel measured. See docs/algorithms.md#theory.

Measured: with ``R`` = the median number of steps (rounds; AFedPG: server updates) completed by ``T_end``
(``median_rounds`` of ``<panel>_summary.csv``), the fixed round time ``r`` of a method satisfies
``T_end/(R+1) < r <= T_end/R``; ``measured = T_end/R``, ``measured_lo = T_end/(R+1)``. AFedPG's updates are
not periodic: ``T_end/R`` lies in ``[1/S, T_end/(T_end S - n))`` (:func:`jnigt.theory.afedpg_update_time`),
which is AFedPG's bracket here.

Predicted: ``compute + comm`` of :func:`jnigt.theory.round_time` with ``c_i`` from the panel's timing
(``H h_i`` or ``h_i``) and the method's chosen batch size; ``lower``/``upper`` bracket the exact clock
(``+ comm``). ``consistent`` says whether ``[measured_lo, measured]`` meets ``[lower, upper]``.
Fixed times only (the panels have no jitter); the first round (M_init) is assumed to equal the others.

Files: ``<panel>_theory.csv`` (one row per method, :data:`COLUMNS`) beside the summary; for a folder of
results, :func:`crosscheck_folder` also writes ``theory_crosscheck.md`` (every panel, one table).
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Sequence

import numpy as np

from jnigt import theory
from jnigt.experiments.files import read_json, read_rows, write_rows
from jnigt.experiments.panels import LABELS, Panel
from jnigt.experiments.protocol import make_config, make_env
from jnigt.experiments.tuning import TuningGrid
from jnigt.training import build, methods

COLUMNS = [
    "panel",
    "method",
    "label",
    "unit",
    "batch_size",
    "t_end",
    "rounds",
    "measured",
    "measured_lo",
    "predicted",
    "compute",
    "comm",
    "lower",
    "upper",
    "exact",
    "ratio",
    "consistent",
]
#: the numeric columns (every column from t_end on but the two flags)
_FLOAT_COLUMNS = [c for c in COLUMNS[COLUMNS.index("t_end") :] if c not in ("exact", "consistent")]


def panel_timing(panel: Panel, method: str | None = None, batch_size: int = 20):
    """The simulated clock (``jnigt.timing.Timing``) of ``method`` (default: the reference) on ``panel``,
    built as the Trainer builds it (``d`` = the policy's parameter count for ``sqrt_d``), without compiling."""
    import jax

    config = make_config(panel, method or panel.reference, batch_size)
    policy = build.make_policy(config, make_env(panel))
    num_params = sum(x.size for x in jax.tree.leaves(jax.eval_shape(policy.init, jax.random.key(0))))
    return build.make_timing(config, num_params)


def predict(panel: Panel, timing, method: str, batch_size: int) -> theory.RoundTime:
    """:func:`jnigt.theory.round_time` of ``method`` with ``panel``'s horizon and ``timing``."""
    c = theory.trajectory_costs(timing.step_time, panel.horizon, timing.time_unit)
    return theory.round_time(method, c, timing.comm_time, int(batch_size))


def rows(panel: Panel, summary: Sequence[dict], timing=None) -> list[dict]:
    """One cross-check row per method of ``summary`` (rows of ``<panel>_summary.csv``: method, batch_size,
    t_end, median_rounds). ``timing`` defaults to :func:`panel_timing`."""
    timing = panel_timing(panel) if timing is None else timing
    out = []
    for s in summary:
        m = s["method"]
        p = predict(panel, timing, m, int(float(s["batch_size"])))
        t_end, r = float(s["t_end"]), float(s["median_rounds"])
        measured = t_end / r if r > 0 else math.inf
        lo = t_end / (r + 1)
        method = methods.get(m)
        lower, upper = method.bracket_at(p, t_end, timing.num_agents)
        out.append(
            dict(
                panel=panel.name,
                method=m,
                label=LABELS[m],
                unit="round" if method.BATCHES else "update",
                batch_size=int(float(s["batch_size"])),
                t_end=t_end,
                rounds=r,
                measured=measured,
                measured_lo=lo,
                predicted=p.total,
                compute=p.compute,
                comm=p.comm,
                lower=lower,
                upper=upper,
                exact=p.exact,
                ratio=measured / p.total,
                consistent=bool(lo <= upper * (1 + 1e-5) and measured >= lower * (1 - 1e-5)),
            )
        )
    return out


def write(panel: Panel, summary: Sequence[dict], out_dir: str, timing=None) -> str:
    """Writes ``<out_dir>/<panel>_theory.csv`` (:func:`rows`) and returns its path."""
    return write_rows(
        os.path.join(out_dir, f"{panel.name}_theory.csv"), rows(panel, summary, timing), COLUMNS
    )


def planned_env_steps(panel: Panel, grid, timing=None) -> dict[str, float]:
    """Env steps ``jnigt reproduce`` will simulate on ``panel`` with ``grid`` (training rollouts; the
    evaluations are left out), predicted from :func:`jnigt.theory.round_time` (fixed times)::

        T_end = panel.rounds x (reference round time at M = the reference's first batch size)
        per method and M: runs x (T_end / round time) x trajectories per round x H

    with runs = (alpha, eta) points x tuning seeds (+ the report seeds once), trajectories per round M
    (Rennala, Malenia), n ceil(M/n) (Synchronized), 1 (AFedPG update). Rennala's and Malenia's round times
    are their bounds (the exact close is up to 2x shorter, so more rounds). Returns {method: env steps}."""
    timing = panel_timing(panel) if timing is None else timing
    n = timing.num_agents
    t_end = panel.rounds * predict(panel, timing, panel.reference, grid.batches(panel.reference)[0]).total
    out = {}
    for m in panel.methods:
        steps = 0.0
        for k, batch in enumerate(grid.batches(m)):
            runs = len(grid.hyper_points()) * grid.tune_seeds + (grid.report_seeds if k == 0 else 0)
            per_round = methods.get(m).trajectories_per_round(batch, n)
            steps += runs * t_end / predict(panel, timing, m, batch).total * per_round * panel.horizon
        out[m] = steps
    return out


def load_panel(chosen_json: str) -> Panel:
    """The :class:`Panel` recorded in a ``<panel>_chosen.json``."""
    d = read_json(chosen_json)["panel"]
    d["methods"] = tuple(d["methods"])
    if d.get("grid"):
        d["grid"] = TuningGrid(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["grid"].items()})
    known = set(Panel.__dataclass_fields__)
    return Panel(**{k: v for k, v in d.items() if k in known})


def format_markdown(all_rows: Sequence[dict]) -> str:
    """Markdown table of cross-check rows."""

    def f(x):
        return f"{x:.4g}" if isinstance(x, float) else str(x)

    head = "| panel | method | per | M | rounds by T_end | measured T_end/R | predicted | bracket | ratio | in bracket |"
    out = [head, "|" + "---|" * 10]
    for r in all_rows:
        bracket = "exact" if r["exact"] else f"[{f(r['lower'])}, {f(r['upper'])}]"
        if r["unit"] == "update":  # not periodic: the bracket holds by T_end
            bracket = f"[{f(r['lower'])}, {f(r['upper'])}) by T_end"
        out.append(
            f"| {r['panel']} | {r['label']} | {r['unit']} | {r['batch_size']} | {f(r['rounds'])} | "
            f"{f(r['measured'])} | {f(r['predicted'])} | {bracket} | {r['ratio']:.3f} | "
            f"{'yes' if r['consistent'] else 'NO'} |"
        )
    return "\n".join(out)


def write_markdown(all_rows: Sequence[dict], out_dir: str, log=print) -> str:
    """Writes ``<out_dir>/theory_crosscheck.md`` (:func:`format_markdown`), logs it with a count of the
    rows inside their bracket, and returns its path."""
    table = format_markdown(all_rows)
    path = os.path.join(out_dir, "theory_crosscheck.md")
    with open(path, "w") as f:
        f.write(table + "\n")
    log(table)
    ok = int(np.sum([r["consistent"] for r in all_rows]))
    log(f"{ok} of {len(all_rows)} rows inside the predicted bracket")
    return path


def read(path: str) -> list[dict]:
    """Rows of a ``<panel>_theory.csv`` with their numbers and flags parsed."""
    out = []
    for r in read_rows(path):
        r = dict(r)
        for k in _FLOAT_COLUMNS:
            r[k] = float(r[k])
        r["batch_size"] = int(r["batch_size"])
        r["exact"] = r["exact"] == "True"
        r["consistent"] = r["consistent"] == "True"
        out.append(r)
    return out


def crosscheck_folder(folder: str, out_dir: str | None = None, log=print) -> list[dict]:
    """Cross-checks every panel in ``folder`` that has both ``<panel>_chosen.json`` and
    ``<panel>_summary.csv``: writes ``<panel>_theory.csv`` per panel and ``theory_crosscheck.md`` into
    ``out_dir`` (default ``folder``). Returns all rows."""
    out_dir = folder if out_dir is None else out_dir
    all_rows = []
    for chosen in sorted(glob.glob(os.path.join(folder, "*_chosen.json"))):
        name = os.path.basename(chosen)[: -len("_chosen.json")]
        summary = os.path.join(folder, f"{name}_summary.csv")
        if not os.path.exists(summary):
            continue
        panel = load_panel(chosen)
        r = rows(panel, read_rows(summary))
        write_rows(os.path.join(out_dir, f"{name}_theory.csv"), r, COLUMNS)
        all_rows.extend(r)
    if not all_rows:
        raise ValueError(f"dir: no <panel>_chosen.json with a <panel>_summary.csv in {folder!r}")
    write_markdown(all_rows, out_dir, log)
    return all_rows
