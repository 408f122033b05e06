"""Text report of the theory calculator: one table of every method's predicted time.

See docs/algorithms.md#theory for the formulas (computed by :mod:`jnigt.theory`).
"""

from __future__ import annotations

import math

from jnigt import theory, timing, validate

__all__ = ["format_table"]


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "inf"


def format_table(
    n: int,
    step_model: str,
    comm_model: str,
    eps,
    c: theory.Constants | None = None,
    num_params: int | None = None,
    formulas: str = "theorem",
) -> str:
    """Readable text table of every method for one timing model, number of agents n and eps.

    Columns: Table 1 computation and communication (D, L, 1/(1-gamma) dropped; '>=' marks a lower bound),
    AllReduce, and the predicted total of :func:`jnigt.theory.predicted_times` (``c`` defaults to
    ``jnigt.theory.Constants()``).  Footer: kappa, the Rennala optimal m,
    the theory hyperparameters and the lower-bound communication term.
    """
    eps = validate.positive("eps", eps)
    c = theory.Constants() if c is None else c
    n = validate.integer("n", n, 1)
    validate.one_of("step_model", step_model, timing.DETERMINISTIC_STEP_MODELS)
    h = timing.step_times(n, step_model)
    kappa = timing.comm_time(n, comm_model, num_params)
    validate.one_of("formulas", formulas, theory.FORMULAS)
    rows = dict(theory.table1(h, kappa, eps))
    rows["malenia_nigt"] = theory.malenia_table_row(h, kappa, eps)
    totals = theory.predicted_totals(h, kappa, eps, c, formulas)

    header = ("method", "computation", "communication", "AllReduce", "predicted total")
    lines_data = []
    for name in theory.PREDICTED_METHODS:
        row = rows[name]
        bound = theory.TABLE1_LOWER_BOUNDS.get(name)
        comp = (">= " if bound == "computation" else "") + _fmt(row.computation)
        comm = (">= " if bound == "communication" else "") + _fmt(row.communication)
        label = theory.METHOD_LABELS[name] + ("" if name in theory.TABLE1_METHODS else " *")
        lines_data.append((label, comp, comm, "yes" if row.uses_allreduce else "no", _fmt(totals[name])))
    widths = [max(len(r[k]) for r in [header] + lines_data) for k in range(len(header))]

    def line(r):
        return "  ".join(s.ljust(w) if k == 0 else s.rjust(w) for k, (s, w) in enumerate(zip(r, widths)))

    hp = theory.theory_hyperparameters(eps, c)
    out = [
        "Predicted time to an eps-stationary point (constants and log factors dropped)",
        f"n={n} step={step_model} comm={comm_model} eps={eps:g} kappa=max_i kappa_i={_fmt(kappa)} "
        f"gamma={c.gamma:g} formulas={formulas}",
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
    ]
    out += [line(r) for r in lines_data]
    out += [
        "",
        "computation/communication: Table 1 form (D, L, 1/(1-gamma) dropped); '>=' marks a lower bound.",
        "* Malenia NIGT is not in Table 1: Theorem 5.1 with the same terms dropped.",
        "predicted total: computation/(1-gamma) + communication"
        + (
            "; Rennala/Malenia NIGT from Theorems 4.4/5.1 with the constants."
            if formulas == "theorem"
            else "."
        ),
        f"Rennala NIGT optimal m (fastest agents used): {theory.rennala_optimal_m(h, eps, c)} of {n}",
        f"lower bound, communication term: kappa eps^(-12/7) = {_fmt(theory.lower_bound_communication(kappa, eps))}",
        "theory hyperparameters: "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items()),
    ]
    return "\n".join(out)
