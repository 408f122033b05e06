"""Simulated time for asynchronous aggregation, vectorised and jittable (docs/algorithms.md#simulated-time).

Model. Agent i needs ``h_i`` seconds per unit of work; ``Timing.time_unit`` says which unit:

* ``"step"`` (default): ``h_i`` per environment step. ``Timing.charge`` says which steps: ``"horizon"``
  (default) charges the full horizon, ``H * h_i * f``, also after early termination; ``"taken"`` charges the
  ``L <= H`` steps the trajectory took, ``L * h_i * f`` (the arrivals then depend on the sampled
  trajectories: ``arrival_times(..., steps=L)`` and the ``*_from_arrivals`` rounds);
* ``"trajectory"``: ``h_i`` per trajectory (one gradient), whatever ``H``: it costs ``h_i * f``.

``f`` is a per-trajectory jitter factor (``f = 1`` when ``jitter = 0``; otherwise lognormal with
``log f ~ N(-jitter^2/2, jitter^2)``, i.e. mean 1 -- choice). ``kappa_i`` is agent i's communication time.
``h_i = inf`` marks a dead agent: it never delivers.

This package is the public face; one idea per module:

* :mod:`jnigt.timing.models`: the step and communication models, ``Timing`` (a pytree: ``step_time`` and
  ``comm_time`` are leaves, the rest static) and ``make_timing``; the checks of a timing, once, when it is
  built (``check_charge``, ``check_times``);
* :mod:`jnigt.timing.rounds`: the jitted rounds of Rennala, Malenia and synchronized (a common start, the
  ``(time, agent)`` order of events, the stop rules of :mod:`jnigt.rules`);
* :mod:`jnigt.timing.afedpg`: the AFedPG clock, which has no rounds and yields server update times
  (docs/algorithms.md#afedpg);
* :mod:`jnigt.timing.planning`: plain Python/NumPy checks and plans run before anything is traced
  (``reachable``, ``check_progress``, ``malenia_max_per_agent``).

The slot layout of a round's gradients (``slots_from_counts``) belongs to the training layer,
:mod:`jnigt.training.slots`; ``jnigt.timing.slots_from_counts`` still finds it.
"""

from jnigt.rules import HARMONIC_RTOL
from jnigt.timing.afedpg import AfedpgClock, afedpg_block_size, afedpg_init, afedpg_next
from jnigt.timing.models import (
    ALLREDUCE_COSTS,
    CHARGES,
    COMM_MODELS,
    DETERMINISTIC_STEP_MODELS,
    STEP_MODELS,
    TIME_UNITS,
    Timing,
    check_charge,
    check_times,
    comm_time,
    comm_times,
    make_timing,
    step_times,
    trajectory_cost,
)
from jnigt.timing.planning import MAX_PLAN_SLOTS, check_progress, malenia_max_per_agent, reachable
from jnigt.timing.rounds import (
    Round,
    arrival_times,
    malenia_from_arrivals,
    malenia_round,
    rennala_from_arrivals,
    rennala_round,
    synchronized_from_arrivals,
    synchronized_round,
    trajectory_durations,
)

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
    "check_times",
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
    "AfedpgClock",
    "afedpg_init",
    "afedpg_next",
    "afedpg_block_size",
    "reachable",
    "check_progress",
]


def __getattr__(name: str):
    # Imported on first use: jnigt.training imports this package.
    if name == "slots_from_counts":
        from jnigt.training.slots import slots_from_counts

        return slots_from_counts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
