"""Host-side planning, in plain Python/NumPy before anything is traced: can a round ever close under a
timing, and how many gradient slots does Malenia's round need (docs/algorithms.md#malenia)."""

from __future__ import annotations

import numpy as np

from jnigt import rules, validate
from jnigt.timing.models import Timing

#: Largest Malenia plan (gradient slots per round, summed over agents) ``malenia_max_per_agent`` accepts.
MAX_PLAN_SLOTS = 10**7


def _dead_agents(timing: Timing):
    return [int(i) for i in np.flatnonzero(~np.isfinite(np.asarray(timing.step_time)))]


def reachable(timing: Timing, batch_size: int) -> None:
    """Raises ValueError if a batch of ``batch_size`` can never fill (batch_size < 1, all agents dead) or is
    beyond what a round can hold (``batch_size > MAX_PLAN_SLOTS``: every round samples at least batch_size
    trajectories, and Rennala's vectorised close searches an ``[min(n, M), M]`` grid)."""
    m = validate.integer("batch_size", batch_size, 1)
    if m > MAX_PLAN_SLOTS:
        raise ValueError(
            f"batch_size={m} is above the cap of {MAX_PLAN_SLOTS} gradients per round "
            f"(num_agents={timing.num_agents})."
        )
    if len(_dead_agents(timing)) == timing.num_agents:
        raise ValueError(
            "timing: a batch can never fill: every agent has infinite step time (all agents dead)."
        )


def check_progress(timing: Timing, waits_for_every_agent: bool, name: str = "this method") -> None:
    """Raises ValueError if rounds can never close under ``timing``.

    A method that waits for every agent (Malenia, synchronized) needs every agent alive; one that takes
    whatever arrives (Rennala, AFedPG) needs one live agent. ``name`` is used in the message.
    """
    dead = _dead_agents(timing)
    if waits_for_every_agent and dead:
        raise ValueError(
            f"{name} can never close a round: agent(s) {dead} have infinite step time (timing.step_time)."
        )
    if len(dead) == timing.num_agents:
        raise ValueError(
            f"{name} can never make progress: every agent has infinite step time (timing.step_time)."
        )


def _plan_too_large(batch_size: int, n: int, estimate: int, cap: int) -> ValueError:
    return ValueError(
        f"Malenia round plan too large: batch_size={batch_size} with num_agents={n} needs an estimated "
        f"{estimate} gradient slots per round (sum_i M_i), above the cap of {cap}; lower batch_size or the "
        "spread of step times."
    )


def malenia_max_per_agent(
    timing: Timing, horizon: int, batch_size: int, max_slots: int = MAX_PLAN_SLOTS
) -> np.ndarray:
    """Exact per-agent counts ``M_i`` (int64 ``[n]``) at Malenia's close for FIXED times (jitter ignored), NumPy.

    Same float32 arrival times ``A_ij = f32(c_i * j)`` as ``arrival_times``, same rule
    (:func:`jnigt.rules.malenia_ready`) and the same ``(time, agent)`` tie-break, so
    ``malenia_round(..., max_per_agent=counts.max() + 1)`` closes when ``jitter = 0`` (the spare column shows
    that no agent has a further arrival before the close; without it an agent whose last counted arrival
    precedes the close marks the round as not closed). Under jitter add slack and
    check ``isfinite(round.duration)`` (inf = the buffers ran out).

    Bounded: a bisection on the close time (each step O(n): ``M_i(t) = #{j : A_ij <= t}`` in closed form)
    that also jumps to the next arrival, at most ~1100 steps (the bits of a float64), then an O(n) tie-break
    among the agents arriving exactly at the close. Raises ValueError when the plan would hold more than
    ``max_slots`` gradients in total (``sum_i M_i >= batch_size`` always, so ``batch_size > max_slots`` is
    refused at once).
    """
    m = validate.integer("batch_size", batch_size, 1)
    validate.integer("horizon", horizon, 1)
    cap = validate.integer("max_slots", max_slots, 1)
    dead = _dead_agents(timing)
    if dead:
        raise ValueError(f"Malenia can never close a round: agent(s) {dead} have infinite step time.")
    n = timing.num_agents
    if m > cap:  # the harmonic mean is <= the arithmetic mean, so sum_i M_i >= n * (M / n) = M
        raise _plan_too_large(m, n, m, cap)
    cost = np.asarray(timing.step_time, np.float32)
    if timing.time_unit == "step":
        cost = cost * np.float32(horizon)
    close = _close_time(cost, m)
    before, at = _counts_at(cost, close, strict=True), _counts_at(cost, close)
    estimate = int(at.sum())
    if estimate > cap:
        raise _plan_too_large(m, n, estimate, cap)
    return _tie_break(before, at, m).astype(np.int64)


def _arrival(cost, j):
    """``A_ij = f32(c_i * j)`` as ``arrival_times`` computes it, as float64; ``j = 0`` gives 0."""
    return (cost * np.asarray(j, np.float64).astype(np.float32)).astype(np.float64)


def _counts_at(cost, t, strict=False):
    """``M_i(t) = #{j >= 1 : A_ij <= t}`` (``< t`` if strict), exact despite the float32 rounding of A."""
    q = np.floor(np.minimum(t / cost.astype(np.float64), 2.0**53))
    le = (lambda a: a < t) if strict else (lambda a: a <= t)
    for _ in range(3):  # the rounding of A moves the count by at most one or two
        q = np.where(le(_arrival(cost, q + 1)), q + 1, q)
        q = np.where((q > 0) & ~le(_arrival(cost, q)), q - 1, q)
    return q


def _ready(counts, m: int) -> bool:
    """Malenia's rule (:func:`jnigt.rules.malenia_ready`) on the counts ``[n]``."""
    inv = float(np.sum(1.0 / np.maximum(counts, 1.0)))
    return bool(rules.malenia_ready(inv, float(counts.min()), counts.size, m))


def _close_time(cost, m: int) -> float:
    """The first arrival time at which Malenia's rule holds: bisection on ``(lo, hi]``, jumping to the next
    arrival after ``lo`` at every step; ``hi`` starts where every agent has ``ceil(M/n)`` arrivals (then the
    harmonic mean is ``>= M/n``)."""
    n = cost.size
    hi = float(np.max(_arrival(cost, np.full(n, -(-m // n)))))
    lo = 0.0
    for _ in range(4096):
        nxt = float(np.min(_arrival(cost, _counts_at(cost, lo) + 1)))  # the first arrival after lo
        if nxt >= hi or _ready(_counts_at(cost, nxt), m):
            return min(nxt, hi)
        lo = nxt
        mid = 0.5 * (lo + hi)
        if _ready(_counts_at(cost, mid), m):
            hi = mid
        else:
            lo = mid
    # Unreachable: the loop shrinks (lo, hi] to one arrival long before.
    raise RuntimeError("malenia_max_per_agent: the close-time search did not converge.")  # pragma: no cover


def _tie_break(before, at, m: int):
    """The counts at the close: the agents arriving exactly at it (``at > before``) count in index order, and
    the first prefix of them that satisfies the rule closes the round."""
    n = before.size
    tied = np.flatnonzero(at > before)
    inv = np.sum(1.0 / np.maximum(before, 1.0)) + np.cumsum(
        1.0 / at[tied] - 1.0 / np.maximum(before[tied], 1.0)
    )
    zeros = np.sum(before == 0) - np.cumsum(before[tied] == 0)
    ok = np.flatnonzero(rules.malenia_ready(inv, np.where(zeros == 0, 1, 0), n, m))
    last = ok[0] if ok.size else tied.size - 1
    counts = before.copy()
    counts[tied[: last + 1]] = at[tied[: last + 1]]
    return counts
