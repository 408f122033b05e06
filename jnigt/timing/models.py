"""Simulated time for asynchronous aggregation, vectorised and jittable. See docs/algorithms.md#simulated-time.

Model. Agent i needs ``h_i`` seconds per unit of work; ``Timing.time_unit`` says which unit:

* ``"step"`` (default): ``h_i`` per environment step. ``Timing.charge`` says which steps: ``"horizon"``
  (default) charges the full horizon, ``H * h_i * f``, also after early termination; ``"taken"`` charges the
  ``L <= H`` steps the trajectory took, ``L * h_i * f`` (the arrivals then depend on the sampled
  trajectories: ``arrival_times(..., steps=L)`` and the ``*_from_arrivals`` rounds);
* ``"trajectory"``: ``h_i`` per trajectory (one gradient), whatever ``H``: it costs ``h_i * f``.

``f`` is a per-trajectory jitter factor (``f = 1`` when ``jitter = 0``; otherwise lognormal with
``log f ~ N(-jitter^2/2, jitter^2)``, i.e. mean 1 -- choice). ``kappa_i`` is agent i's communication time.
``h_i = inf`` marks a dead agent: it never delivers.

Aggregation rounds (Rennala, Malenia, synchronized) start at a common time 0 with every agent reset (work at
the old point is discarded). Agent i's j-th arrival in a round is ``A[i, j] = sum_{l<=j} c_i f_il`` with
``c_i`` the trajectory cost above (``arrival_times``). All events are ordered by ``(time, agent)``: ties in
time go to the lower agent index, exactly like popping a heap of ``(time, agent)`` tuples. The stop rules
come from :mod:`jnigt.rules`.

A round's ``duration`` excludes communication; ``comm`` is what its single AllReduce is charged
(``Timing.allreduce_cost``). A caller advances its clock by ``duration + comm``. AFedPG has no rounds: its
clock (``afedpg_init``/``afedpg_next``) yields server update times directly (docs/algorithms.md#afedpg).

Jittable functions take ``horizon``, ``batch_size``, ``max_per_agent``, ``per_agent``, ``num_slots`` as static
Python ints. ``Timing`` is a pytree (``step_time``/``comm_time`` are leaves; ``jitter``, ``allreduce_cost``,
``time_unit``, ``charge`` are static), so it can be passed straight into ``jax.jit``. Validation and planning
(``make_timing``, ``check_progress``, ``reachable``, ``malenia_max_per_agent``) are plain Python/NumPy and
run outside ``jit``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnigt import rules, validate
from jnigt.rules import HARMONIC_RTOL

__all__ = [
    "HARMONIC_RTOL",
    "DETERMINISTIC_STEP_MODELS",
    "STEP_MODELS",
    "COMM_MODELS",
    "ALLREDUCE_COSTS",
    "TIME_UNITS",
    "CHARGES",
    "MAX_PLAN_SLOTS",
    "check_charge",
    "step_times",
    "comm_times",
    "comm_time",
    "Timing",
    "make_timing",
    "trajectory_cost",
    "Round",
    "trajectory_durations",
    "arrival_times",
    "rennala_round",
    "rennala_from_arrivals",
    "malenia_round",
    "malenia_from_arrivals",
    "malenia_max_per_agent",
    "synchronized_round",
    "synchronized_from_arrivals",
    "slots_from_counts",
    "AfedpgClock",
    "afedpg_init",
    "afedpg_next",
    "afedpg_block_size",
    "reachable",
    "check_progress",
]

#: Step-time models with a closed form (usable by the theory calculator) and all models.
DETERMINISTIC_STEP_MODELS = ("equal", "sqrt", "decreasing")
STEP_MODELS = DETERMINISTIC_STEP_MODELS + ("random",)
COMM_MODELS = ("zero", "sqrt", "sqrt_d")
ALLREDUCE_COSTS = ("max", "arrived", "none")
TIME_UNITS = ("step", "trajectory")
#: What a trajectory is charged under time_unit "step": the full horizon H, or the L <= H steps it took.
CHARGES = ("horizon", "taken")

#: Largest Malenia plan (gradient slots per round, summed over agents) ``malenia_max_per_agent`` accepts.
MAX_PLAN_SLOTS = 10**7


# ------------------------------------------------------------------------------------------ timing models


def step_times(n, model: str = "equal", seed: int = 0) -> np.ndarray:
    """Per-agent time per unit of work ``h_i``, i = 1..n (float64 ``[n]``)::

    'equal'      h_i = 1
    'sqrt'       h_i = sqrt(i)
    'decreasing' h_i = sqrt(n + 1 - i)
    'random'     h_i ~ U[1, 10], drawn with numpy's default_rng(seed)
    """
    n = validate.integer("n", n, 1)
    validate.one_of("step_model", model, STEP_MODELS)
    i = np.arange(1, n + 1, dtype=float)
    if model == "equal":
        return np.ones(n)
    if model == "sqrt":
        return np.sqrt(i)
    if model == "decreasing":
        return np.sqrt(n + 1 - i)
    return np.random.default_rng(seed).uniform(1.0, 10.0, size=n)


def comm_times(n, model: str = "zero", num_params: int | None = None) -> np.ndarray:
    """Per-agent communication times ``kappa_i``, i = 1..n (float64 ``[n]``)::

    'zero'    kappa_i = 0
    'sqrt'    kappa_i = sqrt(i)
    'sqrt_d'  kappa_i = sqrt(i) * d^(1/4), d = num_params (required)
    """
    n = validate.integer("n", n, 1)
    validate.one_of("comm_model", model, COMM_MODELS)
    i = np.arange(1, n + 1, dtype=float)
    if model == "zero":
        return np.zeros(n)
    if model == "sqrt":
        return np.sqrt(i)
    if num_params is None:
        raise ValueError("comm_model='sqrt_d' requires num_params (the number of policy parameters d).")
    d = validate.integer("num_params", num_params, 1)
    return np.sqrt(i) * d**0.25


def comm_time(n, model: str = "zero", num_params: int | None = None) -> float:
    """Scalar ``kappa`` of one AllReduce: ``max_i kappa_i`` of :func:`comm_times` (choice: an AllReduce waits for
    the slowest link), i.e. 0, sqrt(n), sqrt(n) d^(1/4) for 'zero', 'sqrt', 'sqrt_d'."""
    return float(np.max(comm_times(n, model, num_params)))


# ------------------------------------------------------------------------------------------------ Timing


def _is_concrete(x) -> bool:
    return isinstance(x, (list, tuple, np.ndarray, numbers.Real))


@dataclasses.dataclass(frozen=True, eq=False)
class Timing:
    """Per-agent timing.

    Attributes:
      step_time: ``[n]`` seconds per unit of work ``h_i > 0``; ``np.inf`` = dead agent.
      comm_time: ``[n]`` communication time ``kappa_i >= 0`` (finite).
      jitter: sigma of the lognormal per-trajectory factor (mean 1); 0 = fixed times.
      allreduce_cost: charge of a closed AllReduce round: ``"max"`` = ``max_i kappa_i`` over all agents
        (default, docs/algorithms.md#simulated-time), ``"arrived"`` = max over agents with ``M_i >= 1``,
        ``"none"`` = 0.
      time_unit: ``"step"`` = ``h_i`` per environment step (a trajectory costs ``H h_i``), ``"trajectory"`` =
        ``h_i`` per trajectory (a trajectory costs ``h_i``).
      charge: ``"horizon"`` (default) = a trajectory costs its full horizon ``H h_i`` even when the episode
        terminated early; ``"taken"`` = it costs the ``L`` steps it took, ``L h_i`` (time_unit "step" only).
    """

    step_time: np.ndarray
    comm_time: np.ndarray
    jitter: float = 0.0
    allreduce_cost: str = "max"
    time_unit: str = "step"
    charge: str = "horizon"

    def __post_init__(self):
        validate.one_of("time_unit", self.time_unit, TIME_UNITS)
        check_charge(self.charge, self.time_unit)
        # Leaves may be tracers or placeholders when JAX unflattens the pytree: only check concrete inputs.
        if _is_concrete(self.step_time) and _is_concrete(self.comm_time):
            step = np.asarray(self.step_time, dtype=np.float64).reshape(-1)
            comm = np.asarray(self.comm_time, dtype=np.float64).reshape(-1)
            _check_arrays(step, comm, self.jitter, self.allreduce_cost)
            object.__setattr__(self, "step_time", step)
            object.__setattr__(self, "comm_time", comm)

    @property
    def num_agents(self) -> int:
        return int(np.shape(self.step_time)[0])


jax.tree_util.register_dataclass(
    Timing,
    data_fields=["step_time", "comm_time"],
    meta_fields=["jitter", "allreduce_cost", "time_unit", "charge"],
)


def check_charge(charge, time_unit: str = "step") -> str:
    """``charge`` is one of :data:`CHARGES`, and ``"taken"`` only with ``time_unit="step"`` (a trajectory's
    steps mean nothing when ``h_i`` is charged per trajectory). Returns ``charge``."""
    validate.one_of("charge", charge, CHARGES)
    if charge == "taken" and time_unit != "step":
        raise ValueError(
            f"charge='taken' (a trajectory costs the steps it took) needs time_unit='step'; got "
            f"time_unit={time_unit!r}, where h_i is charged per trajectory: use charge='horizon'"
        )
    return charge


def _check_arrays(step, comm, jitter, allreduce_cost):
    if step.size < 1:
        raise ValueError("step_time must hold at least one agent (num_agents >= 1).")
    if comm.shape != step.shape:
        raise ValueError(
            f"comm_time must have one entry per agent: got {comm.size} entries for {step.size} agents."
        )
    if np.any(np.isnan(step)) or np.any(step <= 0):
        raise ValueError(f"step_time must be > 0 (np.inf allowed for a dead agent); got {step.tolist()}.")
    if np.any(~np.isfinite(comm)) or np.any(comm < 0):
        raise ValueError(f"comm_time must be finite and >= 0; got {comm.tolist()}.")
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, numbers.Real)
        or not math.isfinite(jitter)
        or jitter < 0
    ):
        raise ValueError(f"jitter must be a finite float >= 0 (0 = fixed times); got {jitter!r}.")
    validate.one_of("allreduce_cost", allreduce_cost, ALLREDUCE_COSTS)


def make_timing(
    num_agents: int,
    step: str | Sequence[float] = "equal",
    comm: str | float | Sequence[float] = "zero",
    *,
    num_params: int | None = None,
    jitter: float = 0.0,
    stragglers: int = 0,
    straggler_factor: float = 100.0,
    dead: int = 0,
    allreduce_cost: str = "max",
    time_unit: str = "step",
    charge: str = "horizon",
    seed: int = 0,
) -> Timing:
    """Builds a ``Timing`` from the paper's models (i = 1..n).

    step: ``"equal"`` h_i = 1; ``"sqrt"`` h_i = sqrt(i); ``"decreasing"`` h_i = sqrt(n + 1 - i);
      ``"random"`` h_i ~ U[1, 10] (``seed``); or a sequence of n floats.
    comm: ``"zero"``; ``"sqrt"`` kappa_i = sqrt(i); ``"sqrt_d"`` kappa_i = sqrt(i) * num_params^(1/4);
      a float (same for all); or a sequence of n floats.
    dead: the last ``dead`` agents get h_i = inf. stragglers: the ``stragglers`` agents just before the dead ones
      (the last ones when ``dead = 0``) get h_i *= straggler_factor. Requires stragglers + dead <= n.
    time_unit: ``"step"`` (h_i per environment step, default) or ``"trajectory"`` (h_i per gradient).
    charge: ``"horizon"`` (default, a trajectory costs ``H h_i``) or ``"taken"`` (it costs ``L h_i``, ``L`` the
      steps it took; time_unit "step" only).
    """
    n = validate.integer("num_agents", num_agents, 1)
    validate.one_of("time_unit", time_unit, TIME_UNITS)
    check_charge(charge, time_unit)
    if isinstance(step, str):
        if step not in STEP_MODELS:
            raise ValueError(f"step must be one of {STEP_MODELS} or a sequence of {n} floats; got {step!r}.")
        h = step_times(n, step, seed)
    else:
        h = np.asarray(step, dtype=np.float64).reshape(-1)
        if h.shape != (n,):
            raise ValueError(f"step sequence must have num_agents={n} entries; got {h.size}.")
        if np.any(np.isnan(h)) or np.any(h <= 0):
            raise ValueError(f"step times must be > 0 (np.inf = dead agent); got {h.tolist()}.")

    if isinstance(comm, str):
        if comm not in COMM_MODELS:
            raise ValueError(
                f"comm must be one of {COMM_MODELS}, a float or a sequence of {n} floats; got {comm!r}."
            )
        if comm == "sqrt_d" and num_params is None:
            raise ValueError("comm='sqrt_d' requires num_params (the number of policy parameters d).")
        kappa = comm_times(n, comm, num_params)
    elif isinstance(comm, numbers.Real) and not isinstance(comm, bool):
        kappa = np.full(n, float(comm))
    else:
        kappa = np.asarray(comm, dtype=np.float64).reshape(-1)
        if kappa.shape != (n,):
            raise ValueError(f"comm sequence must have num_agents={n} entries; got {kappa.size}.")
    if np.any(~np.isfinite(kappa)) or np.any(kappa < 0):
        raise ValueError(f"comm times must be finite and >= 0; got {kappa.tolist()}.")

    stragglers = validate.integer("stragglers", stragglers, 0)
    dead = validate.integer("dead", dead, 0)
    if stragglers + dead > n:
        raise ValueError(f"stragglers + dead must be <= num_agents={n}; got {stragglers} + {dead}.")
    validate.positive("straggler_factor", straggler_factor)
    h = h.copy()
    if stragglers:
        h[n - dead - stragglers : n - dead] *= straggler_factor
    if dead:
        h[n - dead :] = np.inf
    return Timing(
        step_time=h,
        comm_time=kappa,
        jitter=jitter,
        allreduce_cost=allreduce_cost,
        time_unit=time_unit,
        charge=charge,
    )


def trajectory_cost(timing: Timing, horizon: int) -> np.ndarray:
    """float64 ``[n]``: the fixed cost of one trajectory, ``H h_i`` (time_unit "step") or ``h_i``
    ("trajectory"). NumPy, for planning outside ``jit``."""
    h = np.asarray(timing.step_time, np.float64)
    return h * float(horizon) if timing.time_unit == "step" else h


def _traj_time(timing: Timing, horizon: int):
    """float32 ``[n]``: :func:`trajectory_cost` as the jitted clock computes it."""
    h = jnp.asarray(timing.step_time, jnp.float32)
    return h * jnp.float32(horizon) if timing.time_unit == "step" else h


# ------------------------------------------------------------------------------------------------ rounds


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


def slots_from_counts(counts, num_slots: int):
    """Agent-major slot layout: agent i repeated ``counts[i]`` times, then padding.

    Returns ``(agent_ids int32 [num_slots], valid bool [num_slots])``; ``valid`` marks the first
    ``sum(counts)`` slots; padded slots hold agent 0. Counts beyond ``num_slots`` are truncated.
    """
    counts = jnp.asarray(counts, jnp.int32)
    n = counts.shape[0]
    ids = jnp.repeat(jnp.arange(n, dtype=jnp.int32), counts, total_repeat_length=num_slots)
    valid = jnp.arange(num_slots) < jnp.sum(counts)
    return jnp.where(valid, ids, 0).astype(jnp.int32), valid


# ------------------------------------------------------------------------------------------------ AFedPG


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


# -------------------------------------------------------------------------------------- checks, planning


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
    d64 = cost.astype(np.float64)

    def arrival(j):  # f32(c_i * j) as arrival_times computes it, as float64; j = 0 -> 0
        return (cost * np.asarray(j, np.float64).astype(np.float32)).astype(np.float64)

    def counts_at(t, strict=False):
        """#{j >= 1 : A_ij <= t} (``< t`` if strict), exact despite the float32 rounding of A."""
        q = np.floor(np.minimum(t / d64, 2.0**53))
        le = (lambda a: a < t) if strict else (lambda a: a <= t)
        for _ in range(3):  # the rounding of A moves the count by at most one or two
            q = np.where(le(arrival(q + 1)), q + 1, q)
            q = np.where((q > 0) & ~le(arrival(q)), q - 1, q)
        return q

    def ready(c):
        inv = float(np.sum(1.0 / np.maximum(c, 1.0)))
        return bool(rules.malenia_ready(inv, float(c.min()), n, m))

    per = -(-m // n)  # every agent with ceil(M/n) arrivals: the harmonic mean is >= M/n
    hi = float(np.max(arrival(np.full(n, per))))
    lo = 0.0
    close = None
    for _ in range(4096):
        nxt = float(np.min(arrival(counts_at(lo) + 1)))  # the first arrival after lo
        if nxt >= hi or ready(counts_at(nxt)):
            close = min(nxt, hi)
            break
        lo = nxt
        mid = 0.5 * (lo + hi)
        if ready(counts_at(mid)):
            hi = mid
        else:
            lo = mid
    if close is None:  # pragma: no cover - the loop shrinks (lo, hi] to one arrival long before
        raise RuntimeError("malenia_max_per_agent: the close-time search did not converge.")
    before = counts_at(close, strict=True)
    at = counts_at(close)
    estimate = int(at.sum())
    if estimate > cap:
        raise _plan_too_large(m, n, estimate, cap)
    # Tie-break: the agents arriving exactly at the close count in index order; the first prefix that
    # satisfies the rule closes the round.
    tied = np.flatnonzero(at > before)
    inv = np.sum(1.0 / np.maximum(before, 1.0)) + np.cumsum(
        1.0 / at[tied] - 1.0 / np.maximum(before[tied], 1.0)
    )
    zeros = np.sum(before == 0) - np.cumsum(before[tied] == 0)
    ok = np.flatnonzero(rules.malenia_ready(inv, np.where(zeros == 0, 1, 0), n, m))
    last = ok[0] if ok.size else tied.size - 1
    counts = before.copy()
    counts[tied[: last + 1]] = at[tied[: last + 1]]
    return counts.astype(np.int64)
