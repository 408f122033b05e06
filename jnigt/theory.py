"""Theoretical time complexities of the paper, as a small NumPy calculator. See docs/algorithms.md#theory.

All formulas are *up to constants and logarithmic factors*, exactly as in "Asynchronous Policy Gradient
Aggregation for Efficient Distributed Reinforcement Learning" (Tyurin, Spiridonov, Rudenko; arXiv 2509.24305):

* :func:`rennala_nigt_time` -- Theorem 4.4 (homogeneous, Rennala NIGT), :func:`rennala_optimal_m` its m.
* :func:`malenia_nigt_time` -- Theorem 5.1 (heterogeneous, Malenia NIGT).
* :func:`table1` -- the homogeneous comparison of Table 1 (computation / communication, D, L and 1/(1-gamma)
  dropped), :func:`malenia_table_row` (Theorem 5.1 in that convention) and :func:`lower_bound_communication`
  (only the published kappa * eps^(-12/7) term).
* :func:`theory_hyperparameters` -- the theory-driven alpha, eta, M, M_init, H.
* :func:`predicted_times`, :func:`predicted_totals` -- the comparison across methods and numbers of agents.
* :func:`round_time` -- the quantity inside the theorems: simulated time of ONE round (AFedPG: one server
  update) for given per-trajectory costs ``c_i`` (:func:`trajectory_costs`), with a proven bracket of the
  exact clock's value; :func:`rennala_round_time`, :func:`malenia_round_time`,
  :func:`synchronized_round_time`, :func:`afedpg_update_time` are its parts.

The timing models (``h_i``, ``kappa_i``) come from :mod:`jnigt.timing`; the text table is
:func:`jnigt.report.format_table`, the plot :func:`jnigt.plotting.plot_predicted_times`, the command
``jnigt theory`` lives in ``jnigt.cli``; exact round close times for tests are in :mod:`jnigt.testing`.

Conventions
-----------
``h`` is the array of per-agent times per environment step (any order: every function sorts it ascending
internally).  ``inf`` is allowed for dead agents; zero, negative or NaN times are rejected.  ``kappa`` is the
scalar communication time the theorems use (choice: the cost of one AllReduce = ``max_i kappa_i``, see
:func:`jnigt.timing.comm_time`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from jnigt import timing, validate

__all__ = [
    "Constants",
    "Table1Row",
    "TABLE1_METHODS",
    "TABLE1_LOWER_BOUNDS",
    "TABLE1_NOTES",
    "PREDICTED_METHODS",
    "METHOD_LABELS",
    "FORMULAS",
    "harmonic_prefix",
    "rennala_nigt_time",
    "rennala_optimal_m",
    "malenia_nigt_time",
    "table1",
    "malenia_table_row",
    "lower_bound_communication",
    "theory_hyperparameters",
    "predicted_totals",
    "predicted_times",
    "RoundTime",
    "trajectory_costs",
    "rennala_round_time",
    "malenia_round_time",
    "synchronized_round_time",
    "afedpg_update_time",
    "round_inputs",
    "round_time",
]


@dataclass(frozen=True)
class Constants:
    """Problem constants of the theorems.

    L_g: smoothness constant of J; L_h: Hessian-Lipschitz constant; D: initial gap J* - J(theta_0);
    sigma: standard deviation of one trajectory gradient; gamma: discount factor (in [0, 1)).
    """

    L_g: float = 1.0
    L_h: float = 1.0
    D: float = 1.0
    sigma: float = 1.0
    gamma: float = 0.99


class Table1Row(NamedTuple):
    """One row of Table 1: computation time, communication time, whether the method uses AllReduce."""

    computation: float
    communication: float
    uses_allreduce: bool


TABLE1_METHODS = ("synchronous_vanilla_pg", "synchronous_nigt", "rennala_pg", "afedpg", "rennala_nigt")

#: Which entry of Table 1 ("computation" or "communication") is a lower bound rather than the method's
#: complexity.
TABLE1_LOWER_BOUNDS = {"synchronous_nigt": "computation", "afedpg": "communication"}

#: The same in words (AFedPG's with its bound).
TABLE1_NOTES = {name: f"{entry} is a lower bound" for name, entry in TABLE1_LOWER_BOUNDS.items()}
TABLE1_NOTES["afedpg"] += " (>= kappa eps^-3)"

PREDICTED_METHODS = (
    "rennala_nigt",
    "malenia_nigt",
    "synchronous_nigt",
    "afedpg",
    "rennala_pg",
    "synchronous_vanilla_pg",
)

#: Display names of the methods (tables, plots).
METHOD_LABELS = {
    "rennala_nigt": "Rennala NIGT",
    "malenia_nigt": "Malenia NIGT",
    "synchronous_nigt": "Synchronous NIGT",
    "afedpg": "AFedPG",
    "rennala_pg": "Rennala PG",
    "synchronous_vanilla_pg": "Synchronous vanilla PG",
}

#: ``predicted_times`` modes: Theorems 4.4/5.1 with the constants, or every method in Table 1 form.
FORMULAS = ("theorem", "table")


# ----------------------------------------------------------------------------------------------- validation


def _check_eps(eps) -> float:
    return validate.positive("eps", eps)


def _check_kappa(kappa) -> float:
    try:
        k = float(kappa)
    except (TypeError, ValueError):
        raise ValueError(f"kappa must be a number >= 0, got {kappa!r}") from None
    if math.isnan(k) or k < 0:
        raise ValueError(f"kappa must be a number >= 0 (inf allowed), got {kappa!r}")
    return k


def _check_constants(c) -> Constants:
    if not isinstance(c, Constants):
        raise ValueError(f"c must be a jnigt.theory.Constants, got {type(c).__name__}")
    for name in ("L_g", "L_h", "D", "sigma"):
        v = getattr(c, name)
        if not (v > 0) or not math.isfinite(v):
            raise ValueError(f"c.{name} must be a finite number > 0, got {v!r}")
    if not (0 <= c.gamma < 1):
        raise ValueError(f"c.gamma must be in [0, 1), got {c.gamma!r}")
    return c


def _ceil(x: float) -> int:
    """ceil that ignores float noise of relative size 1e-9 (so 1/0.1**2 = 99.99999999999999 gives 100)."""
    return int(math.ceil(x - 1e-9 * abs(x)))


# ------------------------------------------------------------------------------------------------ theorems


def harmonic_prefix(h) -> np.ndarray:
    """Harmonic means of the m fastest times: ``((1/m) sum_{i<=m} 1/h_i)^(-1)`` for m = 1..n.

    ``h`` is sorted ascending first.  Dead agents (h_i = inf) contribute 1/h_i = 0; a prefix made only of dead
    agents has harmonic mean inf.
    """
    hs = validate.sorted_times("h", h)
    m = np.arange(1, hs.size + 1, dtype=float)
    with np.errstate(divide="ignore"):
        return m / np.cumsum(1.0 / hs)


def _nigt_terms(eps: float, c: Constants):
    """A = L_g D/eps^2 + sqrt(L_h) D/eps^1.5 (iterations), B = sigma^2/eps^2 + sigma^2 sqrt(L_h) D/eps^3.5."""
    a = c.L_g * c.D / eps**2 + math.sqrt(c.L_h) * c.D / eps**1.5
    b = c.sigma**2 / eps**2 + c.sigma**2 * math.sqrt(c.L_h) * c.D / eps**3.5
    return a, b


def _rennala_bracket(h, eps: float, c: Constants) -> np.ndarray:
    hm = harmonic_prefix(h)
    a, b = _nigt_terms(eps, c)
    m = np.arange(1, hm.size + 1, dtype=float)
    with np.errstate(invalid="ignore"):
        return hm * (a + b / m)


def rennala_nigt_time(h, kappa, eps, c: Constants = Constants()) -> float:
    """Time of Rennala NIGT to an eps-stationary point (Theorem 4.4), constants and logs dropped::

        kappa * (L_g D/eps^2 + sqrt(L_h) D/eps^1.5)
          + 1/(1-gamma) * min_{m in 1..n} [ ((1/m) sum_{i<=m} 1/h_i)^(-1)
                * ( L_g D/eps^2 + sqrt(L_h) D/eps^1.5 + sigma^2/(m eps^2) + sigma^2 sqrt(L_h) D/(m eps^3.5) ) ]

    with h sorted ascending.
    """
    eps = _check_eps(eps)
    kappa = _check_kappa(kappa)
    c = _check_constants(c)
    a, _ = _nigt_terms(eps, c)
    comp = float(np.min(_rennala_bracket(h, eps, c)))
    comm = kappa * a if kappa > 0 else 0.0
    return comm + comp / (1.0 - c.gamma)


def rennala_optimal_m(h, eps, c: Constants = Constants()) -> int:
    """The minimising m of Theorem 4.4 (1-based number of fastest agents worth using)::

        argmin_{m in 1..n} ((1/m) sum_{i<=m} 1/h_i)^(-1)
            * ( L_g D/eps^2 + sqrt(L_h) D/eps^1.5 + sigma^2/(m eps^2) + sigma^2 sqrt(L_h) D/(m eps^3.5) )

    Ties go to the smallest m.  Independent of kappa and gamma.
    """
    eps = _check_eps(eps)
    c = _check_constants(c)
    return int(np.argmin(_rennala_bracket(h, eps, c))) + 1


def malenia_nigt_time(h, kappa, eps, c: Constants = Constants()) -> float:
    """Time of Malenia NIGT to an eps-stationary point (Theorem 5.1), constants and logs dropped::

        kappa * (L_g D/eps^2 + sqrt(L_h) D/eps^1.5)
          + 1/(1-gamma) * [ h_n (L_g D/eps^2 + sqrt(L_h) D/eps^1.5)
                + ((1/n) sum_i h_i) ( sigma^2/(n eps^2) + sigma^2 sqrt(L_h) D/(n eps^3.5) ) ]

    with h_n = max_i h_i.  Every agent must contribute, so one dead agent makes it inf.
    """
    hs = validate.sorted_times("h", h)
    eps = _check_eps(eps)
    kappa = _check_kappa(kappa)
    c = _check_constants(c)
    a, b = _nigt_terms(eps, c)
    n = hs.size
    comp = hs[-1] * a + float(np.mean(hs)) * b / n
    comm = kappa * a if kappa > 0 else 0.0
    return float(comm + comp / (1.0 - c.gamma))


def table1(h, kappa, eps) -> dict[str, Table1Row]:
    """Homogeneous comparison of Table 1 (computation, communication, uses AllReduce); D, L, 1/(1-gamma) dropped.

    With hm_m = ((1/m) sum_{i<=m} 1/h_i)^(-1) (h ascending)::

        synchronous_vanilla_pg : max_i h_i (eps^-2 + 1/(n eps^4))           | kappa (eps^-2 + 1/(n eps^4)) | yes
        synchronous_nigt       : max_i h_i / (n eps^3.5)   (lower bound)     | kappa eps^-3.5               | yes
        rennala_pg             : min_m hm_m (eps^-2 + 1/(m eps^4))           | kappa eps^-2                 | yes
        afedpg                 : hm_n (n^(4/3) eps^(-7/3) + 1/(n eps^3.5))   | >= kappa eps^-3 (lower bound)| no
        rennala_nigt           : min_m hm_m (eps^-2 + 1/(m eps^3.5))         | kappa eps^-2                 | yes

    Which entries are bounds is recorded in :data:`TABLE1_LOWER_BOUNDS` (in words: :data:`TABLE1_NOTES`).
    """
    hs = validate.sorted_times("h", h)
    eps = _check_eps(eps)
    kappa = _check_kappa(kappa)
    n = hs.size
    hm = harmonic_prefix(hs)
    m = np.arange(1, n + 1, dtype=float)
    hmax = hs[-1]

    def k(x):  # kappa * x with 0 * anything = 0
        return 0.0 if kappa == 0 else kappa * x

    with np.errstate(invalid="ignore"):
        rows = {
            "synchronous_vanilla_pg": Table1Row(
                float(hmax * (eps**-2 + 1.0 / (n * eps**4))), k(eps**-2 + 1.0 / (n * eps**4)), True
            ),
            "synchronous_nigt": Table1Row(float(hmax / (n * eps**3.5)), k(eps**-3.5), True),
            "rennala_pg": Table1Row(float(np.min(hm * (eps**-2 + 1.0 / (m * eps**4)))), k(eps**-2), True),
            "afedpg": Table1Row(
                float(hm[-1] * (n ** (4.0 / 3.0) * eps ** (-7.0 / 3.0) + 1.0 / (n * eps**3.5))),
                k(eps**-3),
                False,
            ),
            "rennala_nigt": Table1Row(float(np.min(hm * (eps**-2 + 1.0 / (m * eps**3.5)))), k(eps**-2), True),
        }
    return rows


def lower_bound_communication(kappa, eps) -> float:
    """Communication term of the homogeneous lower bound: ``kappa * eps^(-12/7)``.

    Only this term is published; the computation part of the lower bound is deliberately not provided.
    """
    eps = _check_eps(eps)
    kappa = _check_kappa(kappa)
    return 0.0 if kappa == 0 else kappa * eps ** (-12.0 / 7.0)


def malenia_table_row(h, kappa, eps) -> Table1Row:
    """Theorem 5.1 in the Table-1 convention (choice): D, L, sigma, 1/(1-gamma) dropped and the dominated
    terms removed exactly as Table 1 does for Rennala NIGT (eps^-1.5 <= eps^-2, 1/(n eps^2) <= 1/(n eps^3.5))::

        computation  h_n eps^-2 + mean_i(h_i) / (n eps^3.5),   communication  kappa eps^-2,   AllReduce yes
    """
    hs = validate.sorted_times("h", h)
    kappa = _check_kappa(kappa)
    eps = _check_eps(eps)
    n = hs.size
    comp = float(hs[-1] * eps**-2 + np.mean(hs) / (n * eps**3.5))
    return Table1Row(comp, 0.0 if kappa == 0 else kappa * eps**-2, True)


# ------------------------------------------------------------------------------------------ hyperparameters


def theory_hyperparameters(eps, c: Constants = Constants()) -> dict:
    """Theory-driven hyperparameters (up to constants)::

        alpha          = min(eps/L_g, sqrt(eps/L_h))
        eta            = alpha * sqrt(L_h/eps), clipped to (0, 1]
        batch_size     = max(1, ceil(eta sigma^2 / eps^2))           (M)
        init_batch_size= max(1, ceil(sigma^2 / eps^2))               (M_init)
        horizon        = max(1, ceil(log(1/eps) / (1 - gamma)))      (H)

    The ceilings ignore float noise of relative size 1e-9.
    """
    eps = _check_eps(eps)
    c = _check_constants(c)
    alpha = min(eps / c.L_g, math.sqrt(eps / c.L_h))
    eta = min(1.0, alpha * math.sqrt(c.L_h / eps))
    return dict(
        alpha=float(alpha),
        eta=float(eta),
        batch_size=max(1, _ceil(eta * c.sigma**2 / eps**2)),
        init_batch_size=max(1, _ceil(c.sigma**2 / eps**2)),
        horizon=max(1, _ceil(math.log(1.0 / eps) / (1.0 - c.gamma))),
    )


# ------------------------------------------------------------------------------------------- comparison


def predicted_totals(
    h, kappa, eps, c: Constants = Constants(), formulas: str = "theorem"
) -> dict[str, float]:
    """Predicted total time of every method in PREDICTED_METHODS for one ``h`` and ``kappa`` (see
    :func:`predicted_times` for the two ``formulas``)."""
    hs = validate.sorted_times("h", h)
    kappa = _check_kappa(kappa)
    eps = _check_eps(eps)
    c = _check_constants(c)
    validate.one_of("formulas", formulas, FORMULAS)
    scale = 1.0 / (1.0 - c.gamma)
    rows = table1(hs, kappa, eps)
    out = {name: row.computation * scale + row.communication for name, row in rows.items()}
    if formulas == "theorem":
        out["rennala_nigt"] = rennala_nigt_time(hs, kappa, eps, c)
        out["malenia_nigt"] = malenia_nigt_time(hs, kappa, eps, c)
    else:
        row = malenia_table_row(hs, kappa, eps)
        out["malenia_nigt"] = row.computation * scale + row.communication
    return {name: float(out[name]) for name in PREDICTED_METHODS}


def predicted_times(
    n_values: Iterable[int],
    step_model: str,
    comm_model: str,
    eps,
    c: Constants = Constants(),
    num_params: int | None = None,
    formulas: str = "theorem",
) -> dict[str, list[float]]:
    """Predicted total time (computation + communication) of each method for each number of agents n.

    For n in n_values: h = jnigt.timing.step_times(n, step_model), kappa = jnigt.timing.comm_time(n,
    comm_model, num_params) (deterministic step models only: equal, sqrt, decreasing), and

    * formulas='theorem' (default): rennala_nigt = Theorem 4.4 and malenia_nigt = Theorem 5.1 with the
      constants c; the other methods are their Table 1 rows, total = computation / (1 - gamma) + communication
      (choice: Table 1 drops D, L, sigma, so they are effectively 1 there).
    * formulas='table': every method in the Table 1 convention (computation / (1 - gamma) + communication),
      including rennala_nigt's Table 1 row and malenia_nigt as h_n eps^-2 + mean(h)/(n eps^3.5) with
      communication kappa eps^-2 (Theorem 5.1 with the same dropping).  Use this for like-for-like curves.

    Bounds are used as values (synchronous_nigt's computation lower bound, AFedPG's kappa eps^-3).
    Returns {method: [time for each n]} for the methods in PREDICTED_METHODS.
    """
    eps = _check_eps(eps)
    c = _check_constants(c)
    validate.one_of("step_model", step_model, timing.DETERMINISTIC_STEP_MODELS)
    validate.one_of("comm_model", comm_model, timing.COMM_MODELS)
    validate.one_of("formulas", formulas, FORMULAS)
    ns = [validate.integer("n", n, 1) for n in n_values]
    if not ns:
        raise ValueError("n_values must contain at least one positive integer")
    out: dict[str, list[float]] = {name: [] for name in PREDICTED_METHODS}
    for n in ns:
        vals = predicted_totals(
            timing.step_times(n, step_model), timing.comm_time(n, comm_model, num_params), eps, c, formulas
        )
        for name in PREDICTED_METHODS:
            out[name].append(vals[name])
    return out


# ------------------------------------------------------------------------------------- time per round


class RoundTime(NamedTuple):
    """Predicted simulated time of one round (AFedPG: one server update).

    compute: the closed form (the quantity inside the theorems); comm: what the round is charged for
    communication (``max_i kappa_i`` per AllReduce; 0 for AFedPG, whose uploads are inside ``compute``);
    lower, upper: a proven bracket of the exact clock's compute time (fixed times); exact: lower == upper.
    """

    compute: float
    comm: float
    lower: float
    upper: float
    exact: bool

    @property
    def total(self) -> float:
        """compute + comm: the predicted advance of the clock per round."""
        return self.compute + self.comm


def trajectory_costs(h, horizon=1, time_unit: str = "step") -> np.ndarray:
    """Per-trajectory costs ``c_i`` (float64 ``[n]``, order of ``h``): ``H h_i`` for ``time_unit="step"``,
    ``h_i`` for ``"trajectory"`` (docs/algorithms.md#simulated-time). ``inf`` (dead agent) stays inf."""
    validate.sorted_times("h", h)
    H = validate.integer("horizon", horizon, 1)
    validate.one_of("time_unit", time_unit, timing.TIME_UNITS)
    arr = np.asarray(h, dtype=float).reshape(-1)
    return arr * H if time_unit == "step" else arr.copy()


def rennala_round_time(c, batch_size) -> float:
    """Rennala's time to collect M gradients (the Rennala SGD bound, inside Theorem 4.4)::

        B = min_{m in 1..n} ((1/m) sum_{i<=m} 1/c_i)^(-1) (1 + M/m),     c ascending

    Bracket (proof): the exact close ``t*`` (the M-th smallest ``j c_i``) satisfies ``B/2 <= t* <= B``.
    Upper: at ``t = B`` with the minimising m, ``sum_{i<=m} floor(t/c_i) >= t sum_{i<=m} 1/c_i - m = M``.
    Lower: with ``m = #{i : c_i <= t*}``, ``t* >= c_m >= hm_m`` and ``M <= t* sum_{i<=m} 1/c_i = t* m/hm_m``,
    so ``t* >= max(hm_m, hm_m M/m) >= B/2``.
    """
    M = validate.integer("batch_size", batch_size, 1)
    hm = harmonic_prefix(c)
    m = np.arange(1, hm.size + 1, dtype=float)
    with np.errstate(invalid="ignore"):
        return float(np.nanmin(hm * (1.0 + M / m)))


def malenia_round_time(c, batch_size) -> float:
    """Malenia's round time (the per-iteration form of Theorem 5.1)::

        B = c_n + ((1/n) sum_i c_i) M/n,     c_n = max_i c_i

    Bracket (proof): with ``L = max(c_n, mean(c) M/n)`` the exact close ``t*`` satisfies
    ``B/2 <= L <= t* <= 2L <= 2B``. Lower: every agent needs one arrival (``t* >= c_n``) and
    ``1/M_i >= c_i/t*``, so the harmonic rule ``sum_i 1/M_i <= n^2/M`` needs ``t* >= mean(c) M/n``. Upper: at
    ``t = 2L`` every ``t/c_i >= 2``, so ``M_i >= t/c_i - 1 >= t/(2 c_i)`` and ``sum_i 1/M_i <= 2 sum_i c_i/t <=
    n^2/M``. inf if an agent is dead.
    """
    cs = validate.sorted_times("c", c)
    M = validate.integer("batch_size", batch_size, 1)
    return float(cs[-1] + np.mean(cs) * M / cs.size)


def synchronized_round_time(c, batch_size) -> float:
    """Synchronized NIGT's round time, exact: ``max_i c_i * ceil(M/n)`` (docs/algorithms.md#synchronized)."""
    cs = validate.sorted_times("c", c)
    M = validate.integer("batch_size", batch_size, 1)
    return float(cs[-1] * -(-M // cs.size))


def afedpg_update_time(c, kappa) -> float:
    """AFedPG's steady time per server update: ``(sum_i 1/(c_i + kappa_i))^(-1)`` (``kappa`` per agent).

    With fixed times agent i's gradients reach the server at ``j (c_i + kappa_i)``, j = 1, 2, ...
    (docs/algorithms.md#afedpg), so ``N(T) = sum_i floor(T/(c_i + kappa_i))`` updates happen by ``T`` and
    ``T S - n < N(T) <= T S`` with ``S = sum_i 1/(c_i + kappa_i)``: the time per update ``T/N(T)`` lies in
    ``[1/S, T/(T S - n))``, which tends to ``1/S`` (exact in the limit of many arrivals).
    """
    cs = np.asarray(c, dtype=float).reshape(-1)
    validate.sorted_times("c", cs)
    k = np.asarray(kappa, dtype=float).reshape(-1)
    if k.shape != cs.shape or np.any(~np.isfinite(k)) or np.any(k < 0):
        raise ValueError(f"kappa must hold one finite time >= 0 per agent ({cs.size}); got {k.tolist()!r}")
    rate = float(np.sum(1.0 / (cs + k)))
    return 1.0 / rate if rate > 0 else math.inf


def round_inputs(c, kappa, batch_size) -> tuple[np.ndarray, np.ndarray, int]:
    """The checked inputs of a round time: ``c`` sorted ascending, ``kappa`` (float ``[n]``, order of the
    given ``c``) and ``M``; ValueError / TypeError naming the input otherwise."""
    cs = validate.sorted_times("c", c)
    k = np.asarray(kappa, dtype=float).reshape(-1)
    if k.shape != cs.shape or np.any(~np.isfinite(k)) or np.any(k < 0):
        raise ValueError(f"kappa must hold one finite time >= 0 per agent ({cs.size}); got {k.tolist()!r}")
    return cs, k, validate.integer("batch_size", batch_size, 1)


def round_time(method: str, c, kappa, batch_size) -> RoundTime:
    """Predicted time of one round of ``method`` (a name of ``jnigt.training.methods.METHODS``) with
    per-trajectory costs ``c`` (:func:`trajectory_costs`), per-agent communication ``kappa`` and batch
    ``M = batch_size``: the method module's ``round_time``.

    rennala: ``rennala_round_time``, bracket ``[B/2, B]``; malenia: ``malenia_round_time``, bracket
    ``[max(c_n, mean(c) M/n), 2 max(...)]``; synchronized: exact; each charged ``comm = max_i kappa_i``
    (one AllReduce). afedpg: ``afedpg_update_time`` per server update, uploads included (``comm = 0``);
    ``lower = upper = 1/S`` is its many-arrival limit (see there for a finite horizon).
    """
    # the method modules call this module's formulas, so the registry is imported here, not at the top
    from jnigt.training.methods import get

    return get(method).round_time(c, kappa, batch_size)
