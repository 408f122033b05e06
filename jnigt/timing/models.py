"""The timing models (docs/algorithms.md#simulated-time) and the ``Timing`` they make, checked here once.

Agent i needs ``h_i`` seconds per unit of work (``step_times``) and ``kappa_i`` seconds to communicate
(``comm_times``); ``h_i = inf`` marks a dead agent. ``Timing.time_unit`` says what a unit is: an environment
step (a trajectory of horizon H costs ``c_i = H h_i``; under ``charge="taken"`` the ``L <= H`` steps it took,
``L h_i``) or a trajectory (``c_i = h_i``). Every trajectory's cost is multiplied by a lognormal factor with
mean 1, ``log f ~ N(-jitter^2/2, jitter^2)`` (``f = 1`` when ``jitter = 0``).

The checks of a timing, each in one place, run in plain Python/NumPy when a ``Timing`` is built (never
inside ``jit``): :func:`check_charge` (``charge="taken"`` needs ``time_unit="step"``) and
:func:`check_times` (the per-agent step and communication times). ``TrainConfig`` calls
:func:`check_charge` too, so a bad configuration fails before anything is built.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import jax
import numpy as np

from jnigt import validate

#: Step-time models with a closed form (usable by the theory calculator) and all models.
DETERMINISTIC_STEP_MODELS = ("equal", "sqrt", "decreasing")
STEP_MODELS = DETERMINISTIC_STEP_MODELS + ("random",)
COMM_MODELS = ("zero", "sqrt", "sqrt_d")
ALLREDUCE_COSTS = ("max", "arrived", "none")
TIME_UNITS = ("step", "trajectory")
#: What a trajectory is charged under time_unit "step": the full horizon H, or the L <= H steps it took.
CHARGES = ("horizon", "taken")


# ------------------------------------------------------------------------------------------ models


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


# ------------------------------------------------------------------------------------------ checks


def check_charge(charge, time_unit: str = "step") -> str:
    """``charge`` is one of :data:`CHARGES`, and ``"taken"`` only with ``time_unit="step"`` (a trajectory's
    steps mean nothing when ``h_i`` is charged per trajectory). Returns ``charge``."""
    validate.one_of("charge", charge, CHARGES)
    if charge == "taken" and time_unit != "step":
        raise ValueError(
            f"charge: 'taken' (a trajectory costs the steps it took) needs time_unit='step'; got "
            f"time_unit={time_unit!r}, where h_i is charged per trajectory: use charge='taken' with "
            "time_unit='step', or charge='horizon'"
        )
    return charge


def check_times(step_time, comm_time) -> tuple[np.ndarray, np.ndarray]:
    """The per-agent times as float64 ``[n]`` arrays, checked: at least one agent, one ``kappa_i`` per agent,
    ``h_i > 0`` (``inf`` = a dead agent) and ``kappa_i`` finite and ``>= 0``."""
    step = np.asarray(step_time, dtype=np.float64).reshape(-1)
    comm = np.asarray(comm_time, dtype=np.float64).reshape(-1)
    if step.size < 1:
        raise ValueError("step_time must hold at least one agent (num_agents >= 1).")
    if comm.shape != step.shape:
        raise ValueError(
            f"comm_time must have one entry per agent: got {comm.size} entries for {step.size} agents."
        )
    if np.any(np.isnan(step)) or np.any(step <= 0):
        raise ValueError(f"step times must be > 0 (np.inf = a dead agent); got step_time={step.tolist()}.")
    if np.any(~np.isfinite(comm)) or np.any(comm < 0):
        raise ValueError(f"comm times must be finite and >= 0; got comm_time={comm.tolist()}.")
    return step, comm


def _check_jitter(jitter) -> None:
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, numbers.Real)
        or not math.isfinite(jitter)
        or jitter < 0
    ):
        raise ValueError(f"jitter must be a finite float >= 0 (0 = fixed times); got {jitter!r}.")


# ------------------------------------------------------------------------------------------ Timing


def _is_concrete(x) -> bool:
    return isinstance(x, (list, tuple, np.ndarray, numbers.Real))


@dataclasses.dataclass(frozen=True, eq=False)
class Timing:
    """Per-agent timing, a pytree: ``step_time`` and ``comm_time`` are leaves, the rest is static, so a
    ``Timing`` passes straight into ``jax.jit`` and new times do not retrace.

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
            step, comm = check_times(self.step_time, self.comm_time)
            _check_jitter(self.jitter)
            validate.one_of("allreduce_cost", self.allreduce_cost, ALLREDUCE_COSTS)
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


def _per_agent(name: str, spec, n: int, models: Sequence[str], of_model) -> np.ndarray:
    """float64 ``[n]`` of a model name (``of_model(spec)``), n numbers or (comm only) one number for all."""
    one_number = name == "comm"
    if isinstance(spec, str):
        if spec not in models:
            also = ", a float or a" if one_number else " or a"
            raise ValueError(f"{name} must be one of {models}{also} sequence of {n} floats; got {spec!r}.")
        return of_model(spec)
    if one_number and isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return np.full(n, float(spec))
    times = np.asarray(spec, dtype=np.float64).reshape(-1)
    if times.shape != (n,):
        raise ValueError(f"{name} sequence must have num_agents={n} entries; got {times.size}.")
    return times


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

    step: a model of :func:`step_times` (``"equal"``, ``"sqrt"``, ``"decreasing"``, ``"random"`` with
      ``seed``) or a sequence of n floats.
    comm: a model of :func:`comm_times` (``"zero"``, ``"sqrt"``, ``"sqrt_d"`` with ``num_params``), a float
      (the same for all) or a sequence of n floats.
    dead: the last ``dead`` agents get h_i = inf. stragglers: the ``stragglers`` agents just before the dead ones
      (the last ones when ``dead = 0``) get h_i *= straggler_factor. Requires stragglers + dead <= n.
    jitter, allreduce_cost, time_unit, charge: the fields of :class:`Timing`.
    """
    n = validate.integer("num_agents", num_agents, 1)
    h = _per_agent("step", step, n, STEP_MODELS, lambda m: step_times(n, m, seed))
    kappa = _per_agent("comm", comm, n, COMM_MODELS, lambda m: comm_times(n, m, num_params))
    h, kappa = check_times(h, kappa)  # before the stragglers and dead agents below can hide a bad entry
    stragglers = validate.integer("stragglers", stragglers, 0)
    dead = validate.integer("dead", dead, 0)
    if stragglers + dead > n:
        raise ValueError(f"stragglers + dead must be <= num_agents={n}; got {stragglers} + {dead}.")
    validate.positive("straggler_factor", straggler_factor)
    h = h.copy()
    h[n - dead - stragglers : n - dead] *= straggler_factor
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
    """float64 ``[n]``: the fixed cost of one trajectory, ``c_i = H h_i`` (time_unit "step") or ``h_i``
    ("trajectory"). NumPy, for planning outside ``jit``."""
    h = np.asarray(timing.step_time, np.float64)
    return h * float(horizon) if timing.time_unit == "step" else h
