"""Theoretical time complexities of the paper (SPEC section 5), as a small numpy calculator.

Everything here is pure numpy (matplotlib is imported only inside :func:`plot_predicted_times`), so the module
can be used without JAX.  All formulas are *up to constants and logarithmic factors*, exactly as in
"Asynchronous Policy Gradient Aggregation for Efficient Distributed Reinforcement Learning"
(Tyurin, Spiridonov, Rudenko; arXiv 2509.24305):

* :func:`rennala_nigt_time` -- Theorem 4.4 (homogeneous, Rennala NIGT).
* :func:`malenia_nigt_time` -- Theorem 5.1 (heterogeneous, Malenia NIGT).
* :func:`table1` -- the homogeneous comparison of Table 1 (computation / communication, D, L and 1/(1-gamma)
  dropped) and :func:`lower_bound_communication` (only the published kappa * eps^(-12/7) term).
* :func:`rennala_close_time`, :func:`malenia_close_time`, :func:`synchronized_close_time` -- exact round
  close times for fixed per-agent step times (SPEC section 4).
* :func:`theory_hyperparameters` -- the theory-driven alpha, eta, M, M_init, H.
* :func:`predicted_times`, :func:`format_table`, :func:`plot_predicted_times`, :func:`theory_main` --
  the comparison across methods and numbers of agents, and the ``jnigt theory`` command.

Conventions
-----------
``h`` is the array of per-agent times per environment step (any order: every function sorts it ascending
internally).  ``inf`` is allowed for dead agents; zero, negative or NaN times are rejected.  ``kappa`` is the
scalar communication time the theorems use (choice: the cost of one AllReduce = ``max_i kappa_i``, see
:func:`comm_time`).
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import numpy as np

__all__ = [
    "Constants",
    "Table1Row",
    "TABLE1_METHODS",
    "TABLE1_NOTES",
    "PREDICTED_METHODS",
    "STEP_MODELS",
    "COMM_MODELS",
    "harmonic_prefix",
    "rennala_nigt_time",
    "rennala_optimal_m",
    "malenia_nigt_time",
    "table1",
    "lower_bound_communication",
    "rennala_close_time",
    "rennala_round_counts",
    "malenia_close_time",
    "synchronized_close_time",
    "theory_hyperparameters",
    "step_times",
    "comm_times",
    "comm_time",
    "predicted_times",
    "format_table",
    "plot_predicted_times",
    "theory_main",
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

#: Which entries of Table 1 are bounds rather than the method's complexity.
TABLE1_NOTES = {
    "synchronous_nigt": "computation is a lower bound",
    "afedpg": "communication is a lower bound (>= kappa eps^-3)",
}

PREDICTED_METHODS = (
    "rennala_nigt",
    "malenia_nigt",
    "synchronous_nigt",
    "afedpg",
    "rennala_pg",
    "synchronous_vanilla_pg",
)

STEP_MODELS = ("equal", "sqrt", "decreasing")
COMM_MODELS = ("zero", "sqrt", "sqrt_d")


# ----------------------------------------------------------------------------------------------- validation


def _check_eps(eps) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a positive number, got {eps!r}") from None
    if not (e > 0) or not math.isfinite(e):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return e


def _check_kappa(kappa) -> float:
    try:
        k = float(kappa)
    except (TypeError, ValueError):
        raise ValueError(f"kappa must be a number >= 0, got {kappa!r}") from None
    if math.isnan(k) or k < 0:
        raise ValueError(f"kappa must be a number >= 0 (inf allowed), got {kappa!r}")
    return k


def _check_h(h) -> np.ndarray:
    try:
        arr = np.asarray(h, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"h must be a 1-D array of positive per-agent times, got {h!r}") from None
    if arr.size == 0:
        raise ValueError(
            "h must be a non-empty array of positive per-agent times (inf allowed for dead agents)"
        )
    if np.any(np.isnan(arr)) or np.any(arr <= 0):
        raise ValueError(f"h must contain only times > 0 (inf allowed for dead agents); got {arr.tolist()!r}")
    return np.sort(arr)


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


def _check_positive(name: str, value, integer: bool = False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (v > 0) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if integer:
        if v != int(v):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return int(v)
    return v


def _check_model(name: str, model, allowed: Sequence[str]) -> str:
    if model not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {model!r}")
    return model


def _ceil(x: float) -> int:
    """ceil that ignores float noise of relative size 1e-9 (so 1/0.1**2 = 99.99999999999999 gives 100)."""
    return int(math.ceil(x - 1e-9 * abs(x)))


# ------------------------------------------------------------------------------------------------ theorems


def harmonic_prefix(h) -> np.ndarray:
    """Harmonic means of the m fastest times: ``((1/m) sum_{i<=m} 1/h_i)^(-1)`` for m = 1..n.

    ``h`` is sorted ascending first.  Dead agents (h_i = inf) contribute 1/h_i = 0; a prefix made only of dead
    agents has harmonic mean inf.
    """
    hs = _check_h(h)
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
    hs = _check_h(h)
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

    Which entries are bounds is recorded in :data:`TABLE1_NOTES`.
    """
    hs = _check_h(h)
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


def _malenia_table_row(hs: np.ndarray, kappa: float, eps: float) -> Table1Row:
    """Theorem 5.1 in the Table-1 convention (choice): D, L, sigma, 1/(1-gamma) dropped and the dominated
    terms removed exactly as Table 1 does for Rennala NIGT (eps^-1.5 <= eps^-2, 1/(n eps^2) <= 1/(n eps^3.5))::

        computation  h_n eps^-2 + mean_i(h_i) / (n eps^3.5),   communication  kappa eps^-2,   AllReduce yes
    """
    n = hs.size
    comp = float(hs[-1] * eps**-2 + np.mean(hs) / (n * eps**3.5))
    return Table1Row(comp, 0.0 if kappa == 0 else kappa * eps**-2, True)


# ------------------------------------------------------------------------------------------- close times


def rennala_close_time(h, horizon, batch_size) -> float:
    """Close time of one Rennala round started at 0 with fixed times (SPEC section 4)::

        the batch_size-th smallest value of j * H * h_i over j = 1, 2, ... and agents i

    computed exactly with a heap over the agents' next arrivals (event time ``(j * H) * h_i``).
    Dead agents (inf) never arrive; inf if fewer than batch_size gradients can ever arrive.
    """
    hs = _check_h(h)
    H = _check_positive("horizon", horizon)
    M = _check_positive("batch_size", batch_size, integer=True)
    heap = [(H * float(hi), 1, float(hi)) for hi in hs if math.isfinite(hi)]
    if not heap:
        return math.inf
    heapq.heapify(heap)
    t = math.inf
    for _ in range(M):
        t, j, hi = heapq.heappop(heap)
        heapq.heappush(heap, ((j + 1) * H * hi, j + 1, hi))
    return float(t)


def _counts_at(t: float, hs: np.ndarray, H: float) -> np.ndarray:
    """#{j >= 1 : (j * H) * h_i <= t} per agent, consistent with the float event times used everywhere."""
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.floor(t / (H * hs))
        q = np.where(np.isfinite(q), q, 0.0)
        # correct the float division by one step either way
        q = np.where((q + 1) * H * hs <= t, q + 1, q)
        q = np.where((q > 0) & (q * H * hs > t), q - 1, q)
    return q.astype(np.int64)


def rennala_round_counts(h, horizon, batch_size) -> np.ndarray:
    """Gradients each agent contributes to a Rennala round: ``#{j : j * H * h_i <= close}`` (order of ``h``).

    Ties at the close time are all counted, so the sum can exceed batch_size.
    """
    arr = np.asarray(h, dtype=float).reshape(-1)
    t = rennala_close_time(arr, horizon, batch_size)
    if not math.isfinite(t):
        return np.zeros(arr.size, dtype=np.int64)
    return _counts_at(t, arr, float(horizon))


def _malenia_ready(counts: np.ndarray, n: int, M: int) -> bool:
    """every count >= 1 and ((1/n) sum 1/c_i)^(-1) >= M/n, i.e. n^2 >= M * sum_i 1/c_i (exact near the edge)."""
    if np.any(counts < 1):
        return False
    s = float(np.sum(1.0 / counts))
    lhs, rhs = float(n * n), M * s
    if abs(lhs - rhs) > 1e-9 * lhs:
        return lhs > rhs
    exact = sum((Fraction(1, int(ci)) for ci in counts), Fraction(0))
    return n * n >= M * exact


def malenia_close_time(h, horizon, batch_size) -> float:
    """Close time of one Malenia round started at 0 with fixed times (SPEC section 3)::

        min t such that every c_i(t) >= 1 and ((1/n) sum_i 1/c_i(t))^(-1) >= batch_size / n,
        c_i(t) = #{j >= 1 : j * H * h_i <= t}

    inf if any agent is dead.  Exact: bisection on t (the condition is monotone in t) until the next arrival
    after the lower end satisfies it; every answer is an arrival time ``(j * H) * h_i``.
    """
    hs = _check_h(h)
    H = _check_positive("horizon", horizon)
    M = _check_positive("batch_size", batch_size, integer=True)
    n = hs.size
    if not np.all(np.isfinite(hs)):
        return math.inf
    # every agent with ceil(M/n) gradients is enough: harmonic mean >= min count >= M/n
    per = max(1, -(-M // n))
    hi = float(np.max(per * H * hs))
    lo = 0.0
    for _ in range(400):
        counts = _counts_at(lo, hs, H)
        nxt_all = (counts + 1) * H * hs
        nxt = float(np.min(nxt_all))
        if _malenia_ready(_counts_at(nxt, hs, H), n, M):
            return nxt
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _malenia_ready(_counts_at(mid, hs, H), n, M):
            hi = mid
        else:
            lo = mid
    # fallback (should not happen): walk the arrivals one by one from lo
    t = lo
    while True:
        counts = _counts_at(t, hs, H)
        t = float(np.min((counts + 1) * H * hs))
        if _malenia_ready(_counts_at(t, hs, H), n, M):
            return t


def synchronized_close_time(h, horizon, per_agent) -> float:
    """Close time of a synchronized round: every agent computes per_agent trajectories::

    per_agent * H * max_i h_i
    """
    hs = _check_h(h)
    H = _check_positive("horizon", horizon)
    p = _check_positive("per_agent", per_agent, integer=True)
    return float(p * H * hs[-1])


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


# ------------------------------------------------------------------------------------------- timing models


def _check_n(n) -> int:
    try:
        ok = int(n) == n and int(n) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"n must be a positive integer (number of agents), got {n!r}")
    return int(n)


def step_times(n, model: str = "equal") -> np.ndarray:
    """Per-agent time per environment step h_i, i = 1..n::

    'equal'      h_i = 1
    'sqrt'       h_i = sqrt(i)
    'decreasing' h_i = sqrt(n + 1 - i)
    """
    n = _check_n(n)
    _check_model("step_model", model, STEP_MODELS)
    i = np.arange(1, n + 1, dtype=float)
    if model == "equal":
        return np.ones(n)
    if model == "sqrt":
        return np.sqrt(i)
    return np.sqrt(n + 1 - i)


def comm_times(n, model: str = "zero", num_params: int | None = None) -> np.ndarray:
    """Per-agent communication times kappa_i, i = 1..n::

    'zero'    kappa_i = 0
    'sqrt'    kappa_i = sqrt(i)
    'sqrt_d'  kappa_i = sqrt(i) * d^(1/4), d = num_params (required)
    """
    n = _check_n(n)
    _check_model("comm_model", model, COMM_MODELS)
    i = np.arange(1, n + 1, dtype=float)
    if model == "zero":
        return np.zeros(n)
    if model == "sqrt":
        return np.sqrt(i)
    if num_params is None:
        raise ValueError("num_params must be given (a positive integer d) when comm_model is 'sqrt_d'")
    d = _check_positive("num_params", num_params, integer=True)
    return np.sqrt(i) * d**0.25


def comm_time(n, model: str = "zero", num_params: int | None = None) -> float:
    """Scalar kappa used by the theorems: ``max_i kappa_i`` of :func:`comm_times`.

    Choice: an AllReduce waits for the slowest link, so one communication round costs max_i kappa_i
    (= 0, sqrt(n), sqrt(n) d^(1/4) for 'zero', 'sqrt', 'sqrt_d').
    """
    return float(np.max(comm_times(n, model, num_params)))


# ------------------------------------------------------------------------------------------- comparison

FORMULAS = ("theorem", "table")


def _predicted_for_h(
    hs: np.ndarray, kappa: float, eps: float, c: Constants, formulas: str
) -> dict[str, float]:
    scale = 1.0 / (1.0 - c.gamma)
    rows = table1(hs, kappa, eps)
    out = {name: row.computation * scale + row.communication for name, row in rows.items()}
    if formulas == "theorem":
        out["rennala_nigt"] = rennala_nigt_time(hs, kappa, eps, c)
        out["malenia_nigt"] = malenia_nigt_time(hs, kappa, eps, c)
    else:
        row = _malenia_table_row(hs, kappa, eps)
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

    For n in n_values: h = step_times(n, step_model), kappa = comm_time(n, comm_model, num_params), and

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
    _check_model("step_model", step_model, STEP_MODELS)
    _check_model("comm_model", comm_model, COMM_MODELS)
    _check_model("formulas", formulas, FORMULAS)
    ns = [_check_n(n) for n in n_values]
    if not ns:
        raise ValueError("n_values must contain at least one positive integer")
    out: dict[str, list[float]] = {name: [] for name in PREDICTED_METHODS}
    for n in ns:
        vals = _predicted_for_h(
            step_times(n, step_model), comm_time(n, comm_model, num_params), eps, c, formulas
        )
        for name in PREDICTED_METHODS:
            out[name].append(vals[name])
    return out


_LABELS = {
    "rennala_nigt": "Rennala NIGT",
    "malenia_nigt": "Malenia NIGT",
    "synchronous_nigt": "Synchronous NIGT",
    "afedpg": "AFedPG",
    "rennala_pg": "Rennala PG",
    "synchronous_vanilla_pg": "Synchronous vanilla PG",
}


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "inf"


def format_table(
    n: int,
    step_model: str,
    comm_model: str,
    eps,
    c: Constants = Constants(),
    num_params: int | None = None,
    formulas: str = "theorem",
) -> str:
    """Readable text table of every method for one timing model, number of agents n and eps.

    Columns: Table 1 computation and communication (D, L, 1/(1-gamma) dropped; '>=' marks a lower bound),
    AllReduce, and the predicted total of :func:`predicted_times`.  Footer: kappa, the Rennala optimal m,
    the theory hyperparameters and the lower-bound communication term.
    """
    eps = _check_eps(eps)
    c = _check_constants(c)
    n = _check_n(n)
    h = step_times(n, step_model)
    kappa = comm_time(n, comm_model, num_params)
    _check_model("formulas", formulas, FORMULAS)
    rows = dict(table1(h, kappa, eps))
    rows["malenia_nigt"] = _malenia_table_row(np.sort(h), kappa, eps)
    totals = _predicted_for_h(np.sort(h), kappa, eps, c, formulas)

    header = ("method", "computation", "communication", "AllReduce", "predicted total")
    lines_data = []
    for name in PREDICTED_METHODS:
        row = rows[name]
        comp = _fmt(row.computation)
        comm = _fmt(row.communication)
        if name == "synchronous_nigt":
            comp = ">= " + comp
        if name == "afedpg":
            comm = ">= " + comm
        label = _LABELS[name] + (" *" if name == "malenia_nigt" else "")
        lines_data.append((label, comp, comm, "yes" if row.uses_allreduce else "no", _fmt(totals[name])))
    widths = [max(len(r[k]) for r in [header] + lines_data) for k in range(len(header))]

    def line(r):
        return "  ".join(s.ljust(w) if k == 0 else s.rjust(w) for k, (s, w) in enumerate(zip(r, widths)))

    hp = theory_hyperparameters(eps, c)
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
        f"Rennala NIGT optimal m (fastest agents used): {rennala_optimal_m(h, eps, c)} of {n}",
        f"lower bound, communication term: kappa eps^(-12/7) = {_fmt(lower_bound_communication(kappa, eps))}",
        "theory hyperparameters: "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items()),
    ]
    return "\n".join(out)


def _log_n_values(max_agents: int, points: int = 30) -> list[int]:
    max_agents = _check_n(max_agents)
    return sorted({int(round(x)) for x in np.logspace(0, math.log10(max_agents), points)} | {1, max_agents})


def plot_predicted_times(
    path,
    n_values: Iterable[int],
    step_model: str,
    comm_model: str,
    eps,
    c: Constants = Constants(),
    num_params: int | None = None,
    formulas: str = "theorem",
    title: str | None = None,
):
    """Draw the predicted time of every method against the number of agents (log-log) into a PNG at path.

    Uses matplotlib's Agg canvas directly (no pyplot state).  Non-positive or infinite values are not drawn.
    Returns path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ns = [_check_n(n) for n in n_values]
    data = predicted_times(ns, step_model, comm_model, eps, c, num_params, formulas)
    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name in PREDICTED_METHODS:
        y = np.asarray(data[name], dtype=float)
        ok = np.isfinite(y) & (y > 0)
        ax.plot(np.asarray(ns)[ok], y[ok], marker="o", markersize=3, label=_LABELS[name])
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


# ---------------------------------------------------------------------------------------------------- CLI


def _build_parser(prog: str = "jnigt theory") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Print the predicted times (SPEC section 5: Theorems 4.4, 5.1 and Table 1 of arXiv "
        "2509.24305; constants and log factors dropped) and optionally plot them against the number of agents.",
    )
    p.add_argument("--agents", type=int, default=10, help="number of agents n for the table (default 10)")
    p.add_argument(
        "--step",
        choices=STEP_MODELS,
        default="sqrt",
        help="step-time model: equal h_i=1, sqrt h_i=sqrt(i), decreasing h_i=sqrt(n+1-i) (default sqrt)",
    )
    p.add_argument(
        "--comm",
        choices=COMM_MODELS,
        default="sqrt",
        help="communication model: zero, sqrt kappa_i=sqrt(i), sqrt_d kappa_i=sqrt(i) d^(1/4); "
        "kappa = max_i kappa_i (default sqrt)",
    )
    p.add_argument(
        "--num-params",
        type=int,
        default=None,
        help="number of policy parameters d (required for --comm sqrt_d)",
    )
    p.add_argument("--eps", type=float, default=0.1, help="target gradient norm eps > 0 (default 0.1)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount factor in [0, 1) (default 0.99)")
    p.add_argument("--L-g", dest="L_g", type=float, default=1.0, help="smoothness constant L_g (default 1)")
    p.add_argument(
        "--L-h", dest="L_h", type=float, default=1.0, help="Hessian-Lipschitz constant L_h (default 1)"
    )
    p.add_argument("--D", dest="D", type=float, default=1.0, help="initial gap D (default 1)")
    p.add_argument("--sigma", type=float, default=1.0, help="gradient noise sigma (default 1)")
    p.add_argument(
        "--formulas",
        choices=FORMULAS,
        default="theorem",
        help="theorem: Rennala/Malenia NIGT from Theorems 4.4/5.1; table: all in Table 1 form "
        "(default theorem)",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also draw predicted time vs number of agents (log-log) into this PNG file",
    )
    p.add_argument(
        "--max-agents",
        type=int,
        default=1000,
        help="largest number of agents on the plot's x axis (default 1000)",
    )
    return p


def theory_main(argv: Sequence[str] | None = None) -> int:
    """``jnigt theory``: print the comparison table, optionally draw the plot.  Returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        c = _check_constants(
            Constants(L_g=args.L_g, L_h=args.L_h, D=args.D, sigma=args.sigma, gamma=args.gamma)
        )
        print(format_table(args.agents, args.step, args.comm, args.eps, c, args.num_params, args.formulas))
        if args.plot:
            plot_predicted_times(
                args.plot,
                _log_n_values(args.max_agents),
                args.step,
                args.comm,
                args.eps,
                c,
                args.num_params,
                args.formulas,
            )
            print(f"plot written to {args.plot}")
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(theory_main())
