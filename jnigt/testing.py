"""Exact references for tests: close-time oracles and the NumPy event-heap simulation.

Slow, simple and independent of the vectorised clock (:mod:`jnigt.timing`); the stop rules come from
:mod:`jnigt.rules`. See docs/algorithms.md#simulated-time.

Oracles (fixed times, float64, one round started at 0 with every agent reset). ``h`` holds per-agent times
(any order, ``inf`` = dead agent) and agent i's j-th arrival is ``(j * H) * h_i``; pass ``horizon = 1`` for
``time_unit = "trajectory"`` (a trajectory costs ``h_i``).

Heap reference: :func:`heap_round` pops ``(time, agent)`` events from given arrival times until a rule holds,
exactly as the authors' group's NumPy simulators of Rennala/Malenia SGD do; :func:`afedpg_heap` replays the
AFedPG server clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from jnigt import rules, validate

__all__ = [
    "MAX_EVENTS",
    "rennala_close_time",
    "rennala_round_counts",
    "malenia_close_time",
    "synchronized_close_time",
    "heap_round",
    "rennala_rule",
    "malenia_rule",
    "synchronized_rule",
    "wasted_time",
    "afedpg_heap",
]

#: Largest batch the event-by-event oracles accept (they pop one event per gradient).
MAX_EVENTS = 10**7


def _batch(name: str, value) -> int:
    v = validate.integer(name, value, 1)
    if v > MAX_EVENTS:
        raise ValueError(f"{name}={v} is above the oracles' limit of {MAX_EVENTS} events")
    return v


# --------------------------------------------------------------------------------------------- oracles


def rennala_close_time(h, horizon, batch_size) -> float:
    """Close time of one Rennala round (docs/algorithms.md#rennala)::

        the batch_size-th smallest value of (j * H) * h_i over j = 1, 2, ... and agents i

    computed with a heap over the agents' next arrivals, O(M log n). inf if no agent is alive.
    """
    hs = validate.sorted_times("h", h)
    H = validate.positive("horizon", horizon)
    M = _batch("batch_size", batch_size)
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
    """The exact rule (no slack): :func:`jnigt.rules.malenia_ready` with ``rtol = 0``, refined with Fractions
    when ``n^2`` and ``M sum_i 1/c_i`` agree to 1e-9."""
    s = float(np.sum(1.0 / np.maximum(counts, 1)))
    if counts.min() < 1 or abs(n * n - M * s) > 1e-9 * n * n:
        return bool(rules.malenia_ready(s, int(counts.min()), n, M, rtol=0.0))
    exact = sum((Fraction(1, int(ci)) for ci in counts), Fraction(0))
    return n * n >= M * exact


def malenia_close_time(h, horizon, batch_size) -> float:
    """Close time of one Malenia round (docs/algorithms.md#malenia)::

        min t such that every c_i(t) >= 1 and ((1/n) sum_i 1/c_i(t))^(-1) >= batch_size / n,
        c_i(t) = #{j >= 1 : j * H * h_i <= t}

    inf if any agent is dead. Exact (the rule without slack) and bounded: bisection on t (the rule is
    monotone in t) that also jumps to the next arrival after the lower end; every answer is an arrival time.
    """
    hs = validate.sorted_times("h", h)
    H = validate.positive("horizon", horizon)
    M = _batch("batch_size", batch_size)
    n = hs.size
    if not np.all(np.isfinite(hs)):
        return math.inf
    # every agent with ceil(M/n) gradients is enough: harmonic mean >= min count >= M/n
    per = max(1, -(-M // n))
    hi = float(np.max(per * H * hs))
    lo = 0.0
    for _ in range(4096):
        nxt = float(np.min((_counts_at(lo, hs, H) + 1) * H * hs))
        if nxt >= hi or _malenia_ready(_counts_at(nxt, hs, H), n, M):
            return min(nxt, hi)
        lo = nxt
        mid = 0.5 * (lo + hi)
        if _malenia_ready(_counts_at(mid, hs, H), n, M):
            hi = mid
        else:
            lo = mid
    raise RuntimeError("malenia_close_time: the bisection did not converge")  # pragma: no cover


def synchronized_close_time(h, horizon, per_agent) -> float:
    """Close time of a synchronized round, every agent computing per_agent trajectories
    (docs/algorithms.md#synchronized)::

        per_agent * H * max_i h_i
    """
    hs = validate.sorted_times("h", h)
    H = validate.positive("horizon", horizon)
    p = validate.integer("per_agent", per_agent, 1)
    return float(p * H * hs[-1])


# ---------------------------------------------------------------------------------------- heap reference


def heap_round(arrivals, rule: Callable[[np.ndarray], bool]):
    """Event-by-event round: pops ``(time, agent)`` from ``arrivals [n, K]`` (row i = agent i's arrival times,
    non-decreasing) until ``rule(counts)`` holds. Returns ``(counts int64 [n], close)``, or ``(counts, None)``
    if the rule never holds within the given arrivals. Ties in time go to the lower agent."""
    arrivals = np.asarray(arrivals)
    n, k = arrivals.shape
    counts = np.zeros(n, np.int64)
    heap = [(float(arrivals[i, 0]), i) for i in range(n)]
    heapq.heapify(heap)
    while heap:
        t, i = heapq.heappop(heap)
        if t == np.inf:
            break
        counts[i] += 1
        if rule(counts):
            return counts, t
        if counts[i] < k:
            heapq.heappush(heap, (float(arrivals[i, counts[i]]), i))
    return counts, None


def rennala_rule(batch_size: int) -> Callable[[np.ndarray], bool]:
    return lambda c: bool(rules.rennala_ready(int(np.sum(c)), batch_size))


def malenia_rule(batch_size: int) -> Callable[[np.ndarray], bool]:
    """The clock's rule, with its ``HARMONIC_RTOL`` slack."""
    return lambda c: bool(rules.malenia_ready_counts(np.asarray(c), batch_size))


def synchronized_rule(per_agent: int) -> Callable[[np.ndarray], bool]:
    return lambda c: bool(rules.synchronized_ready(int(np.min(c)), per_agent))


def wasted_time(arrivals, counts, close) -> float:
    """``sum_i (close - last_i)``, ``last_i`` = agent i's last counted arrival (0 if none)."""
    arrivals = np.asarray(arrivals, np.float64)
    last = [arrivals[i, c - 1] if c > 0 else 0.0 for i, c in enumerate(counts)]
    return float(sum(close - x for x in last))


def afedpg_heap(first: Sequence[float], durations, kappa: Sequence[float]):
    """AFedPG server clock (docs/algorithms.md#afedpg), event by event in float32.

    ``first [n]``: the agents' first trajectory durations; ``durations [S, n]``: row s holds the duration of
    the trajectory an agent starts after update s; ``kappa [n]``: upload times. A gradient reaches the server
    at finish + kappa_i; events pop in ``(server time, agent)`` order; the agent restarts at the server time.
    Returns ``(agents int [S], server times float32 [S])``.
    """
    kappa = np.asarray(kappa, np.float32)
    first = np.asarray(first, np.float32)
    durations = np.asarray(durations, np.float32)
    heap = [(np.float32(first[i] + kappa[i]), i) for i in range(first.size)]
    heapq.heapify(heap)
    agents, times = [], []
    for row in durations:
        t, i = heapq.heappop(heap)
        agents.append(i)
        times.append(t)
        heapq.heappush(heap, (np.float32(np.float32(t + row[i]) + kappa[i]), i))
    return np.asarray(agents), np.asarray(times, np.float32)
