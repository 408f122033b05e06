"""The jitted aggregation rounds: who delivers how many gradients before a round closes, and when
(docs/algorithms.md#simulated-time; the stop rules come from :mod:`jnigt.rules`).

Rounds (Rennala, Malenia, synchronized) start at a common time 0 with every agent reset (work at the old
point is discarded). Agent i's j-th arrival in a round is ``A[i, j] = sum_{l<=j} c_i f_il`` with ``c_i`` the
trajectory cost and ``f`` the jitter factors of :mod:`jnigt.timing.models` (``arrival_times``; under
``charge="taken"`` the caller passes the steps ``L_il`` each trajectory took, ``c_il = L_il h_i``, and uses the
``*_from_arrivals`` rounds). All events are ordered by ``(time, agent)``: ties in time go to the lower agent
index, exactly like popping a heap of ``(time, agent)`` tuples.

A round's ``duration`` excludes communication; ``comm`` is what its single AllReduce is charged
(``Timing.allreduce_cost``). A caller advances its clock by ``duration + comm``.

``horizon``, ``batch_size``, ``max_per_agent`` and ``per_agent`` are static Python ints; ``Timing`` is a
pytree, so these functions run inside ``jax.jit``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnigt import rules
from jnigt.timing.models import Timing


def _traj_time(timing: Timing, horizon: int):
    """float32 ``[n]``: ``jnigt.timing.trajectory_cost`` as the jitted clock computes it."""
    h = jnp.asarray(timing.step_time, jnp.float32)
    return h * jnp.float32(horizon) if timing.time_unit == "step" else h


class Round(NamedTuple):
    """Outcome of one aggregation round (times relative to the round start).

    counts: int32 ``[n]`` gradients agent i delivers (``M_i``; the delay mask as counts).
    duration: float32 time to the close event (the last counted arrival). ``inf`` if the round cannot close
      (dead agents, or Malenia's rule not met within ``max_per_agent`` arrivals per agent).
    comm: float32 AllReduce charge per ``Timing.allreduce_cost``.
    wasted: float32 agent-seconds of discarded work, ``sum_i (duration - last_i)`` where ``last_i`` is the
      finish time of agent i's last counted trajectory (0 if ``M_i = 0``, so idle-contributing and dead agents
      waste the whole round).
    """

    counts: jax.Array
    duration: jax.Array
    comm: jax.Array
    wasted: jax.Array


def _jitter_factors(jitter: float, key, shape):
    if jitter == 0:
        return jnp.ones(shape, jnp.float32)
    if key is None:
        raise ValueError("a PRNG key is required when jitter > 0.")
    z = jax.random.normal(key, shape, jnp.float32)
    return jnp.exp(jitter * z - 0.5 * jitter * jitter)


def trajectory_durations(timing: Timing, horizon: int, key, max_per_agent: int, steps=None) -> jax.Array:
    """float32 ``[n, K]``: duration of agent i's j-th trajectory, ``c_ij * f_ij`` with ``c_ij`` = ``H h_i``
    (time_unit "step") or ``h_i`` ("trajectory"); given ``steps`` (int ``[n, K]``, the steps ``L_ij`` each
    trajectory took: ``charge="taken"``), ``c_ij = L_ij h_i``. The factors ``f`` depend on ``key`` only."""
    n = timing.num_agents
    f = _jitter_factors(timing.jitter, key, (n, max_per_agent))
    if steps is None:
        return _traj_time(timing, horizon)[:, None] * f
    h = jnp.asarray(timing.step_time, jnp.float32)
    return (h[:, None] * jnp.asarray(steps, jnp.float32)) * f


def arrival_times(timing: Timing, horizon: int, key, max_per_agent: int, steps=None) -> jax.Array:
    """float32 ``[n, K]``: ``A[i, j]`` = finish time of agent i's (j+1)-th trajectory in a round.

    Fixed times: ``(j + 1) * c_i`` (one rounding; docs/algorithms.md#simulated-time); jitter, or ``steps``
    given (int ``[n, K]``, ``charge="taken"``): the cumulative sum of ``trajectory_durations`` (same key,
    same factors). Rows are non-decreasing; dead rows are inf.
    """
    if steps is not None:
        return jnp.cumsum(trajectory_durations(timing, horizon, key, max_per_agent, steps), axis=1)
    if timing.jitter == 0:
        j = jnp.arange(1, max_per_agent + 1, dtype=jnp.float32)
        return _traj_time(timing, horizon)[:, None] * j[None, :]
    return jnp.cumsum(trajectory_durations(timing, horizon, key, max_per_agent), axis=1)


def _allreduce_charge(timing: Timing, counts):
    kappa = jnp.asarray(timing.comm_time, jnp.float32)
    if timing.allreduce_cost == "max":
        return jnp.max(kappa)
    if timing.allreduce_cost == "arrived":
        return jnp.max(jnp.where(counts > 0, kappa, 0.0))
    return jnp.zeros((), jnp.float32)


def _finish(timing, arrivals, counts, close) -> Round:
    """Assembles a Round from arrivals [n, K], counts [n] and the close time."""
    last = jnp.take_along_axis(arrivals, jnp.maximum(counts - 1, 0)[:, None], axis=1)[:, 0]
    last = jnp.where(counts > 0, last, 0.0)
    wasted = jnp.sum(close - last)
    return Round(
        counts=counts.astype(jnp.int32),
        duration=close.astype(jnp.float32),
        comm=_allreduce_charge(timing, counts),
        wasted=wasted.astype(jnp.float32),
    )


def rennala_round(timing: Timing, horizon: int, batch_size: int, key) -> Round:
    """Rennala: closes at the ``M``-th arrival overall (``M = batch_size``, :func:`jnigt.rules.rennala_ready`);
    exactly M gradients count.

    The M smallest of ``A[i, j]`` (``j < M``) in ``(time, agent)`` order (:func:`rennala_from_arrivals`).
    Fixed times: the same search on the closed-form rows ``j c_i``.
    """
    m = int(batch_size)
    if timing.jitter != 0:
        return rennala_from_arrivals(timing, arrival_times(timing, horizon, key, m), m)
    first = _traj_time(timing, horizon)
    return _rennala_search(
        timing, first, lambda cand: first[cand][:, None] * jnp.arange(1, m + 1, dtype=jnp.float32)[None, :], m
    )


def rennala_from_arrivals(timing: Timing, arrivals, batch_size: int) -> Round:
    """:func:`rennala_round` from given arrivals ``[n, K]`` (``K >= M``; only the first M columns matter: no
    agent delivers more than M in a round).

    Only the ``k = min(n, M)`` agents with the earliest first arrival can contribute (any other agent's first
    arrival comes after k others), so the search runs on their ``[k, M]`` rows: ``lax.top_k`` of ``-A``
    flattened agent-major, whose ties go to the lower flat index, i.e. the lower agent. The cost is
    O(n + M^2), not O(n M). ``counts_i`` = how many are agent i's.
    """
    m = int(batch_size)
    if arrivals.shape[1] < m:
        raise ValueError(f"rennala_from_arrivals needs K >= batch_size={m} columns; got {arrivals.shape[1]}")
    arrivals = arrivals[:, :m]
    return _rennala_search(timing, arrivals[:, 0], lambda cand: arrivals[cand], m)


def _rennala_search(timing: Timing, first, rows_of, m: int) -> Round:
    n = timing.num_agents
    k = min(n, m)
    _, cand = jax.lax.top_k(-first, k)
    cand = jnp.sort(cand)  # agent-major order keeps the (time, agent) tie-break
    rows = rows_of(cand)
    neg, idx = jax.lax.top_k(-rows.reshape(-1), m)
    close = -neg[m - 1]
    cand_counts = jnp.bincount(idx // m, length=k).astype(jnp.int32)
    counts = jnp.zeros((n,), jnp.int32).at[cand].add(cand_counts)
    last = jnp.take_along_axis(rows, jnp.maximum(cand_counts - 1, 0)[:, None], axis=1)[:, 0]
    last = jnp.where(cand_counts > 0, last, 0.0)
    return Round(
        counts=counts,
        duration=close.astype(jnp.float32),
        comm=_allreduce_charge(timing, counts),
        wasted=(n * close - jnp.sum(last)).astype(jnp.float32),
    )


def malenia_round(timing: Timing, horizon: int, batch_size: int, key, max_per_agent: int) -> Round:
    """Malenia: closes at the first event (in ``(time, agent)`` order) after which every ``M_i >= 1`` and
    ``((1/n) sum_i 1/M_i)^(-1) >= M/n`` (:func:`jnigt.rules.malenia_ready_counts`, ``HARMONIC_RTOL`` slack).

    Events are the ``n * K`` arrivals (``K = max_per_agent``), sorted stably by time in agent-major order. The
    counts after event e, ``M_i(e) = #{j : (A_ij, i) <= (t_e, a_e)}``, grow with e, so the rule is monotone:
    a binary search over e (``ceil(log2(nK + 1))`` steps, each n ``searchsorted``) finds the close event.

    ``duration = inf`` (counts then meaningless) signals that the buffers ran out: the rule never holds within
    K arrivals per agent, or some agent used up its K arrivals strictly before the close (its true count is
    unknown). Size K with :func:`malenia_max_per_agent` (exact for fixed times; add slack under jitter) and
    check ``isfinite(duration)``.
    """
    return malenia_from_arrivals(timing, arrival_times(timing, horizon, key, int(max_per_agent)), batch_size)


def malenia_from_arrivals(timing: Timing, arrivals, batch_size: int) -> Round:
    """:func:`malenia_round` from given arrivals ``[n, K]`` (rows non-decreasing); ``duration = inf`` when
    the K columns run out before the close."""
    counts, close = _malenia_search(arrivals, int(batch_size))
    return _finish(timing, arrivals, counts, close)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def _malenia_search(arrivals, batch_size: int):
    """(counts [n], close) of Malenia's close event given arrivals [n, K] (binary search, see malenia_round)."""
    n, k = arrivals.shape
    flat = arrivals.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    t_sorted = flat[order]
    a_sorted = (order // k).astype(jnp.int32)
    agent_ids = jnp.arange(n, dtype=jnp.int32)
    num_events = n * k

    def counts_at(e):
        t, a = t_sorted[e], a_sorted[e]
        left = jax.vmap(lambda row: jnp.searchsorted(row, t, side="left"))(arrivals)
        right = jax.vmap(lambda row: jnp.searchsorted(row, t, side="right"))(arrivals)
        return jnp.where(agent_ids <= a, right, left).astype(jnp.int32)

    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) // 2
        ok = rules.malenia_ready_counts(counts_at(jnp.minimum(mid, num_events - 1)), batch_size)
        active = lo < hi
        return jnp.where(active & ~ok, mid + 1, lo), jnp.where(active & ok, mid, hi)

    steps = max(1, math.ceil(math.log2(num_events + 1)))
    lo, _ = jax.lax.fori_loop(0, steps, body, (jnp.int32(0), jnp.int32(num_events)))
    e = jnp.minimum(lo, num_events - 1)
    counts = counts_at(e)
    t_close = t_sorted[e]
    # An agent that used up its K arrivals strictly before the close might have delivered more: the true
    # counts (and maybe an earlier close) are unknown, so report the round as not closed.
    saturated = jnp.any((counts == k) & (arrivals[:, k - 1] < t_close))
    close = jnp.where((lo < num_events) & ~saturated, t_close, jnp.inf)
    return counts, close


def synchronized_round(timing: Timing, horizon: int, per_agent: int, key) -> Round:
    """Synchronized: every agent delivers ``per_agent`` gradients (choice: ``ceil(M/n)``,
    :func:`jnigt.rules.synchronized_ready`); closes at ``max_i A[i, per_agent - 1]``."""
    p = int(per_agent)
    return synchronized_from_arrivals(timing, arrival_times(timing, horizon, key, p), p)


def synchronized_from_arrivals(timing: Timing, arrivals, per_agent: int) -> Round:
    """:func:`synchronized_round` from given arrivals ``[n, K]`` (``K >= per_agent``)."""
    n, p = timing.num_agents, int(per_agent)
    counts = jnp.full((n,), p, jnp.int32)
    return _finish(timing, arrivals, counts, jnp.max(arrivals[:, p - 1]))
