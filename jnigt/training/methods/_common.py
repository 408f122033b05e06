"""What every method module shares: its plan, the build context, the interface, the metrics of a step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from jnigt import timing as timing_lib
from jnigt.gradients import gpomdp
from jnigt.training.state import TrainState
from jnigt.transforms.nigt import find_nigt_state, overflow_safe_norm

#: Metrics every step reports (scalars): see :meth:`jnigt.training.Trainer.step`. ``grad_norm`` is the
#: norm of the step's direction (:func:`direction_norm`): ||d_t||, NIGT's momentum buffer, when the
#: inner optimizer is NIGT (AFedPG's server included), else the norm of the server's update.
METRIC_NAMES = (
    "time",
    "env_steps",
    "grads_used",
    "grads_dropped",
    "wasted_time",
    "comms",
    "closed",
    "grad_norm",
    "train_return",
)


class Plan(NamedTuple):
    """What one round of a method holds per device, known before anything is traced: the memory
    estimate (:func:`jnigt.training.memory.check_round_memory`) and the method's build read the same plan.

    slots: trajectories a device samples in one round (charge "taken": ``ceil(n / d) * candidates``);
    accumulators: gradient sums the aggregator keeps per device (Malenia: one per local agent);
    candidates: charge "taken": trajectories every agent samples before the round's close is known
    (0 under charge "horizon"); max_per_agent: Malenia's arrivals per agent on the clock (0: none).
    """

    slots: int
    accumulators: int = 1
    candidates: int = 0
    max_per_agent: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
    """What a method is built from: the config, the environment and policy, the simulated clock,
    the inner optimizer (hyperparameters from the config), the agents mesh and how to map over it."""

    config: Any
    env: Any
    policy: Any
    timing: timing_lib.Timing
    inner: optax.GradientTransformation
    mesh: jax.sharding.Mesh
    use_pmap: bool = False

    def trajectory_gradients(self, params, keys, agent_ids, obs_stats=None):
        """GPOMDP gradient of one trajectory per (key, agent), vmapped (docs/algorithms.md#gpomdp);
        ``obs_stats``: the state's observation statistics (docs/algorithms.md#obs-norm)."""
        c = self.config
        return jax.vmap(
            lambda k, a: gpomdp.trajectory_gradient(
                self.policy, self.env, params, k, a, c.horizon, c.discount, obs_stats
            )
        )(keys, agent_ids)


class Method(Protocol):
    """One method: its round timing, slot layout, state and step, behind one interface.

    ``init(params, key, inner, place, obs_stats=None) -> (params, opt_state, method_state, key)``: the
      optimizer and method state for the starting ``params`` (``inner``: the inner optimizer, whose
      hyperparameters may be traced); ``place`` places host values on the mesh (identity under a trace);
      ``obs_stats``: the observation normaliser of the run (for trajectories sampled at init).
    ``steps(state, length) -> (state, metrics [length])``: ``length`` steps (rounds; AFedPG: arrivals)
      in one ``lax.scan``; pure.
    ``next_time(state) -> scalar``: the time at which the next step will end (consistent with steps).
    ``inner_state(opt_state)``: the state holding the inner optimizer's (for theta_t).
    ``stall_message``: the error message when the clock becomes infinite.
    ``advance``: None (the equal-time runner steps one at a time), or ``advance(state, carry, more, record)``
      running steps while ``more`` holds (AFedPG along its known schedule: arrivals in blocks).
    """

    mesh: jax.sharding.Mesh
    stall_message: str
    advance: Callable | None

    def init(self, params, key, inner, place: Callable, obs_stats=None) -> tuple: ...

    def steps(self, state: TrainState, length: int) -> tuple[TrainState, dict]: ...

    def next_time(self, state: TrainState) -> jax.Array: ...

    def inner_state(self, opt_state) -> Any: ...


def direction_norm(opt_state, updates) -> jax.Array:
    """The ``grad_norm`` metric: ||d_t|| (NIGT's momentum buffer) when the optimizer is NIGT, else the
    update's norm (both by ``overflow_safe_norm``: the plain norm wherever it is finite)."""
    nigt = find_nigt_state(opt_state)
    return overflow_safe_norm(nigt.momentum_buffer if nigt is not None else updates)


def step_metrics(state: TrainState, *, used, dropped, wasted, closed, norm, train_return) -> dict:
    """The per-step metrics dict (after the step): names in :data:`METRIC_NAMES`."""
    return dict(
        time=state.time,
        env_steps=state.env_steps,
        grads_used=jnp.asarray(used, jnp.int32),
        grads_dropped=jnp.asarray(dropped, jnp.int32),
        wasted_time=jnp.asarray(wasted, jnp.float32),
        comms=state.comms,
        closed=jnp.asarray(closed, bool),
        grad_norm=norm,
        train_return=jnp.asarray(train_return, jnp.float32),
    )
