"""The simulated executor: a :class:`~jnigt.training.learner.Learner` whose agents are simulated.

The method (``jnigt.training.methods``) owns its round timing, slot layout, state and step; the
Trainer adds to the learner's ``init``, ``evaluate`` and ``eval_params`` the simulated steps: ``step``,
``next_time`` and ``run_chunk`` (``eval_every`` steps in one jitted ``lax.scan``, plus the evaluation).
"""

from __future__ import annotations

import jax
import numpy as np

from jnigt.training import memory
from jnigt.training.learner import OBS_STATS_STREAM, Learner, is_traced
from jnigt.training.state import TrainState

__all__ = ["OBS_STATS_STREAM", "SimulatedClockError", "Trainer"]


class SimulatedClockError(ValueError):
    """The simulated clock became infinite (a round that can never close)."""


class Trainer(Learner):
    """Builds a :class:`TrainConfig`'s environment, policy, clock, optimizer and method
    (:class:`~jnigt.training.learner.Learner`) and steps it on the simulated clock.

    ``num_devices``: devices on the ``agents`` mesh axis (default: all); ``use_pmap``: map with
    ``jax.pmap`` instead of ``jax.shard_map``; ``env``: an environment to use instead of
    ``config.env`` (e.g. a wrapped one).
    """

    def __init__(self, config, num_devices: int | None = None, use_pmap: bool = False, env=None):
        super().__init__(config, num_devices, use_pmap, env)
        self._step = jax.jit(lambda s: self.rounds.steps(s, 1))
        self._next_time = jax.jit(self.rounds.next_time)
        self._chunk = jax.jit(self._chunk_impl)

    def _check(self, mesh) -> None:
        # refuse, before anything is planned or compiled, rounds that cannot fit in memory
        memory.check_round_memory(
            self.config,
            obs_size=self.env.observation_size,
            action_size=self.env.action_size,
            num_params=self.num_params,
            plan=self.plan,
            num_devices=mesh.devices.size,
        )

    def step(self, state: TrainState) -> tuple[TrainState, dict]:
        """One step: an aggregation round (AFedPG: one arrival at the server).

        Returns the new state and scalar metrics: time (server time after the step, monotone),
        env_steps, grads_used, grads_dropped, wasted_time, comms, closed, grad_norm, train_return.
        """
        state, metrics = self._step(state)
        return state, jax.tree.map(lambda x: x[0], metrics)

    def next_time(self, state: TrainState) -> jax.Array:
        """The simulated time at which the next ``step(state)`` ends (``step(state)[1]["time"]``)."""
        return self._next_time(state)

    def run_chunk(self, state: TrainState) -> tuple[TrainState, dict, jax.Array]:
        """``eval_every`` steps in one jitted ``lax.scan``, then the evaluation; compiled once.

        Returns ``(state, metrics [eval_every], eval_return)``. Outside a trace, raises
        :class:`SimulatedClockError` (a ValueError) if the clock became infinite.
        """
        state, metrics, ret = self._chunk(state)
        if not is_traced(state.time) and not np.all(np.isfinite(np.asarray(state.time))):
            raise SimulatedClockError(f"{self.config.method}: {self.rounds.stall_message}")
        return state, metrics, ret

    def _chunk_impl(self, state: TrainState):
        state, metrics = self.rounds.steps(state, self.config.eval_every)
        return state, metrics, self._evaluate_impl(state)
