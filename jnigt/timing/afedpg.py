"""The AFedPG clock (docs/algorithms.md#afedpg): no rounds, a stream of server updates.

Every agent computes one trajectory at a time and uploads its gradient; the server updates whenever a
gradient reaches it, in ``(time, agent)`` order, and the agent restarts at the new point while the others
keep computing at their stale points. ``afedpg_init``/``afedpg_next`` are the jittable clock (``horizon``
static); ``afedpg_block_size`` replays it in NumPy, outside ``jit``, to size the batches the trainer samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnigt import validate
from jnigt.timing.models import Timing
from jnigt.timing.rounds import trajectory_durations


class AfedpgClock(NamedTuple):
    """AFedPG state: ``next_finish[i]`` = absolute time agent i's current gradient reaches the server
    (its trajectory's finish time plus the upload ``kappa_i``); inf if the agent is dead."""

    next_finish: jax.Array


def afedpg_init(timing: Timing, horizon: int, key, steps=None) -> AfedpgClock:
    """All agents start at time 0: ``next_finish_i = c_i f_i + kappa_i`` (``f`` from ``trajectory_durations``;
    ``steps`` int ``[n]``: the steps ``L_i`` of each agent's first trajectory, ``c_i = L_i h_i``, charge "taken")."""
    steps = None if steps is None else jnp.asarray(steps)[:, None]
    dur = trajectory_durations(timing, horizon, key, 1, steps)[:, 0]
    return AfedpgClock(dur + jnp.asarray(timing.comm_time, jnp.float32))


def afedpg_next(timing: Timing, horizon: int, clock: AfedpgClock, key, steps=None):
    """Next AFedPG server update (docs/algorithms.md#afedpg).

    Events are ordered by the time a gradient reaches the server: ``i = argmin next_finish`` (ties: lowest
    index), ``t = next_finish_i`` = finish + ``kappa_i`` upload. The server updates at ``t``; agent i receives
    the new point then and restarts: ``next_finish_i <- (t + c_i f) + kappa_i`` with ``f`` = row i of
    ``trajectory_durations(., key, 1)``. The others keep computing at their stale points. ``steps`` (int
    scalar, charge "taken"): the steps ``L`` of the trajectory agent i starts at ``t``, so ``c_i = L h_i``.

    Returns ``(agent int32, t float32, new_clock, comm = kappa_i float32)``: ``t`` is the SERVER update time,
    already including the upload ``kappa_i`` (do not add ``comm`` again); it is non-decreasing from one call to
    the next, and ``min(new_clock.next_finish)`` is the time of the following update.
    """
    nf = clock.next_finish
    agent = jnp.argmin(nf).astype(jnp.int32)
    t = nf[agent]
    kappa = jnp.asarray(timing.comm_time, jnp.float32)[agent]
    if steps is not None:
        steps = jnp.broadcast_to(jnp.asarray(steps), (nf.shape[0], 1))
    dur = trajectory_durations(timing, horizon, key, 1, steps)[agent, 0]
    new = nf.at[agent].set((t + dur) + kappa)
    return agent, t.astype(jnp.float32), AfedpgClock(new), kappa


def afedpg_block_size(timing: Timing, horizon: int, arrivals: int | None = None, fill: float = 0.95) -> int:
    """B, how many AFedPG arrivals to sample in one batch (fixed times; NumPy, outside ``jit``).

    Along the server's schedule (the clock above in float32, ``arrivals`` updates, default ``50 n``), a
    block is the longest run of arrivals from different agents: each gradient in it starts from a point
    that is known when the block begins. Blocks are cut at B; B is the largest cap whose blocks are on
    average at least ``fill`` full (a batch costs its B trajectories whatever the block holds). About the
    number of arrivals between two of the fastest agent's: 5 at n = 10 with h_i = kappa_i = sqrt(i), n with
    equal times. Only speed depends on B: any B >= 1 gives the same numbers (docs/algorithms.md#afedpg).
    """
    n = timing.num_agents
    s = 50 * n if arrivals is None else validate.integer("arrivals", arrivals, 1)
    cost = np.asarray(timing.step_time, np.float32)
    if timing.time_unit == "step":
        cost = cost * np.float32(horizon)
    kappa = np.asarray(timing.comm_time, np.float32)
    nf = (cost + kappa).astype(np.float32)
    if not np.any(np.isfinite(nf)):
        return 1
    agents = np.empty(s, np.int64)
    for j in range(s):  # afedpg_next, event by event
        a = int(np.argmin(nf))
        agents[j] = a
        nf[a] = np.float32(np.float32(nf[a] + cost[a]) + kappa[a])

    def blocks(cap):
        lengths, start = [], 0
        while start < s:
            seen, end = set(), start
            while end < s and end - start < cap and agents[end] not in seen:
                seen.add(agents[end])
                end += 1
            lengths.append(end - start)
            start = end
        return np.asarray(lengths[:-1] or lengths)  # the last block is cut by the end of the schedule

    cap = int(np.ceil(blocks(n).mean()))
    while cap > 1 and blocks(cap).mean() < fill * cap:
        cap -= 1
    return cap
