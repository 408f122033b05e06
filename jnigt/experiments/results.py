"""The results table of a reproduction: per panel, the paper's claim, each method's returns and
time-to-threshold ratio, and a verdict by a stated rule (docs/algorithms.md#experiments).

The paper reports curves only (no numbers): with equal times all methods alike; with uneven times or
costly communication Rennala NIGT clearly fastest (less so on Walker2d and Hopper); heterogeneous,
Malenia NIGT much higher than AFedPG. :data:`CLAIMS` maps each panel to one of two kinds of claim:

* ``"best"``: the reference (the panel's first method) beats every baseline. Verdict **holds** when
  the reference's median final return is above every baseline's 80% quantile, or the lower end of
  every time-to-threshold ratio's 90% interval is above 1; **does not hold** when some baseline's
  median final return is above the reference's 80% quantile (the baseline is clearly ahead) or some
  ratio's upper end is below 1; otherwise **inconclusive**.
* ``"alike"``: no method clearly ahead. **holds** when every median final return lies inside every
  other method's 20-80% band, **does not hold** when some method's median lies outside another's
  band on both sides (mutual), otherwise **inconclusive**.

A panel where no method improves its median final return on the initial policy's by more than 10%
of its magnitude is **inconclusive (no learning)** whatever the rule says.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from jnigt.experiments.files import read_rows
from jnigt.training import methods

#: Panel -> (kind, the paper's claim in words). Panels not listed (beyond the paper) have no claim.
CLAIMS: dict[str, tuple[str, str]] = {
    "main_a": ("alike", "equal times: all methods alike"),
    "main_b": ("best", "Rennala NIGT clearly fastest"),
    "main_c": ("best", "Rennala NIGT clearly fastest"),
    "main_c_trajectory": ("best", "Rennala NIGT clearly fastest"),
    "main_b_trajectory": ("best", "Rennala NIGT clearly fastest"),
    "humanoid_c": ("best", "Rennala NIGT clearly fastest"),
    "reacher_c": ("best", "Rennala NIGT clearly fastest"),
    "walker2d_c": ("best", "Rennala NIGT fastest, less clearly"),
    "hopper_c": ("best", "Rennala NIGT fastest, less clearly"),
    "n100_a": ("alike", "equal times: all methods alike"),
    "n100_c": ("best", "Rennala NIGT clearly fastest"),
    "decreasing": ("best", "Rennala NIGT clearly fastest"),
    "hetero": ("best", "Malenia NIGT much higher than AFedPG"),
}

LEARNING_GAIN = 0.10


def initial_return(curves: Sequence[dict]) -> float:
    """Median eval return at simulated time 0 over the report runs of ``<panel>_curves.csv``."""
    vals = [float(r["eval_return"]) for r in curves if float(r["time"]) == 0.0]
    return float(np.median(vals)) if vals else math.nan


def verdict(claim: str | None, rows: Sequence[dict], initial: float) -> str:
    """The verdict of one panel (rows: its summary rows, reference first) by the rule of the module."""
    med = [float(r["median_final_return"]) for r in rows]
    lo = [float(r["q20_final_return"]) for r in rows]
    hi = [float(r["q80_final_return"]) for r in rows]
    if not math.isfinite(initial) or max(med) - initial <= LEARNING_GAIN * max(abs(initial), 1e-9):
        return "inconclusive (no learning)"
    if claim is None:
        return "-"
    if claim == "alike":
        inside = all(lo[j] <= med[i] <= hi[j] for i in range(len(med)) for j in range(len(med)))
        if inside:
            return "holds"
        apart = any(
            (med[i] > hi[j] and med[j] < lo[i]) for i in range(len(med)) for j in range(len(med)) if i != j
        )
        return "does not hold" if apart else "inconclusive"
    base = range(1, len(rows))
    # a ratio counts only where it is defined: a finite, positive estimate (both medians reached)
    defined = [0.0 < float(rows[j]["ttt_ratio"]) < math.inf for j in base]
    ratios_lo = [float(rows[j]["ttt_ratio_lo90"]) if d else math.nan for j, d in zip(base, defined)]
    ratios_hi = [float(rows[j]["ttt_ratio_hi90"]) if d else math.nan for j, d in zip(base, defined)]
    if all(med[0] > hi[j] for j in base) or all(r < 1 for r in ratios_hi):
        return "holds"
    if any(med[j] > hi[0] for j in base) or any(r > 1 for r in ratios_lo):
        return "does not hold"
    return "inconclusive"


def _g(x) -> str:
    x = float(x)
    return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.4g}")


def _alpha(a) -> str:
    e = math.log2(float(a))
    return f"2^{round(e)}" if abs(e - round(e)) < 1e-3 else _g(a)


def panel_rows(folder: str, panel: str) -> tuple[list[dict], float, list[dict]]:
    """(summary rows, initial return, theory rows) of one panel in ``folder``."""
    summary = read_rows(os.path.join(folder, f"{panel}_summary.csv"))
    initial = initial_return(read_rows(os.path.join(folder, f"{panel}_curves.csv")))
    theory_path = os.path.join(folder, f"{panel}_theory.csv")
    theory = read_rows(theory_path) if os.path.exists(theory_path) else []
    return summary, initial, theory


def results_markdown(folder: str, panels: Sequence[str]) -> str:
    """Two markdown tables of the panels in ``folder``: per panel (claim, best method, verdict) and per
    method (chosen hyperparameters, returns, time to threshold, ratio, work done, theory check)."""
    short = [
        "| panel | paper's claim | median final return (initial) | verdict |",
        "|---|---|---|---|",
    ]
    long = [
        "| panel | method | M, alpha, eta | median return at T_end/2 | median final [20%, 80%] | "
        "reached, median time to threshold | ratio ref/method [90%] | rounds / grads / comms | "
        "time per round: measured, predicted | T_end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in panels:
        rows, initial, theory = panel_rows(folder, p)
        kind, text = CLAIMS.get(p, (None, "- (beyond the paper)"))
        ranked = sorted(rows, key=lambda r: -float(r["median_final_return"]))
        finals = ", ".join(f"{r['label']} {_g(r['median_final_return'])}" for r in ranked)
        short.append(f"| {p} | {text} | {finals} ({_g(initial)}) | {verdict(kind, rows, initial)} |")
        th = {r["method"]: r for r in theory}
        for i, r in enumerate(rows):
            m = r["batch_size"] if methods.get(r["method"]).BATCHES else "-"
            ratio = (
                "-"
                if i == 0
                else f"{_g(r['ttt_ratio'])} [{_g(r['ttt_ratio_lo90'])}, {_g(r['ttt_ratio_hi90'])}]"
            )
            t = th.get(r["method"])
            tt = f"{_g(t['measured'])}, {_g(t['predicted'])}" if t else "-"
            long.append(
                f"| {p if i == 0 else ''} | {r['label']} | {m}, {_alpha(r['learning_rate'])}, {_g(r['momentum'])} "
                f"| {_g(r['median_return_half'])} | {_g(r['median_final_return'])} "
                f"[{_g(r['q20_final_return'])}, {_g(r['q80_final_return'])}] "
                f"| {r['seeds_reached']}/{r['seeds']}, {_g(r['median_time_to_threshold'])} | {ratio} "
                f"| {_g(r['median_rounds'])} / {_g(r['median_grads_used'])} / {_g(r['median_comms'])} "
                f"| {tt} | {_g(r['t_end'])} |"
            )
    return "\n".join(short) + "\n\n" + "\n".join(long) + "\n"


def write_results(folder: str, panels: Sequence[str]) -> str:
    """Writes ``<folder>/results.md`` (:func:`results_markdown`) and returns its path."""
    path = os.path.join(folder, "results.md")
    with open(path, "w") as f:
        f.write(results_markdown(folder, panels))
    return path
