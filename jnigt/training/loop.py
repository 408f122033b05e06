"""One trainer for every method: pure, jittable, vmappable steps of simulated asynchronous training.

The method (``jnigt.training.methods``) owns its round timing, slot layout, state and step; the
Trainer builds the environment, policy, clock and optimizer of a :class:`TrainConfig`, and gives
every method the same API: ``init``, ``step``, ``next_time``, ``evaluate``, ``eval_params`` and
``run_chunk`` (``eval_every`` steps in one jitted ``lax.scan``, plus the evaluation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnigt.distributed import make_agent_mesh, replicate
from jnigt.gradients import gpomdp, obs_norm
from jnigt.training import build, memory, methods
from jnigt.training.config import TrainConfig
from jnigt.training.methods import Context
from jnigt.training.state import TrainState
from jnigt.transforms import nigt_eval_params
from jnigt.transforms.nigt import find_nigt_state


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


#: ``fold_in`` tag of the initial rollout's key (a stream no other part of a run uses)
OBS_STATS_STREAM = 0x0B5


class SimulatedClockError(ValueError):
    """The simulated clock became infinite (a round that can never close)."""


class Trainer:
    """Builds a :class:`TrainConfig`'s environment, policy, clock, optimizer and method.

    ``num_devices``: devices on the ``agents`` mesh axis (default: all); ``use_pmap``: map with
    ``jax.pmap`` instead of ``jax.shard_map``; ``env``: an environment to use instead of
    ``config.env`` (e.g. a wrapped one).
    """

    def __init__(self, config: TrainConfig, num_devices: int | None = None, use_pmap: bool = False, env=None):
        from jnigt_envs import make_env

        self.config = c = config
        self.env = env if env is not None else make_env(c.env, backend=c.backend)
        self.policy = build.make_policy(c, self.env)
        self.num_params = sum(
            x.size for x in jax.tree.leaves(jax.eval_shape(self.policy.init, jax.random.key(0)))
        )
        self.timing = build.make_timing(c, self.num_params)
        self.use_pmap = use_pmap
        mesh = make_agent_mesh(num_devices)
        module = methods.get(c.method)
        #: the method's slots and accumulators per device (``jnigt.training.methods.Plan``)
        self.plan = module.plan(c, mesh.devices.size, lambda: self.timing)
        # refuse, before anything is compiled, rounds that cannot fit in memory
        memory.check_round_memory(
            c,
            obs_size=self.env.observation_size,
            action_size=self.env.action_size,
            num_params=self.num_params,
            plan=self.plan,
            num_devices=mesh.devices.size,
        )
        ctx = Context(
            config=c,
            env=self.env,
            policy=self.policy,
            timing=self.timing,
            inner=self._optimizer(None, None),
            mesh=mesh,
            use_pmap=use_pmap,
        )
        self.method = module.build(ctx, self.plan)
        self.mesh = self.method.mesh
        self.num_devices = self.mesh.devices.size
        self._step = jax.jit(lambda s: self.method.steps(s, 1))
        self._next_time = jax.jit(self.method.next_time)
        self._evaluate = jax.jit(self._evaluate_impl)
        self._chunk = jax.jit(self._chunk_impl)
        self._obs_stats = jax.jit(
            lambda p, k: obs_norm.initial_stats(
                self.policy, self.env, p, k, c.num_agents, c.horizon, c.obs_norm_episodes
            )
        )

    def _optimizer(self, learning_rate, momentum):
        c = self.config
        lr = c.learning_rate if learning_rate is None else learning_rate
        if c.optimizer == "nigt" and momentum is None:
            momentum = c.momentum
        return build.make_optimizer(c.optimizer, lr, momentum)

    # ------------------------------------------------------------------ public, pure
    def init(self, seed, learning_rate=None, momentum=None) -> TrainState:
        """The state before the first step: theta_0 = policy.init(split(key(seed))[1]).

        Pure in ``seed`` (int or int32 scalar), ``learning_rate`` and ``momentum`` (floats or float
        scalars; None = the config's value), so ``jax.vmap(trainer.init)(seeds, lrs, moms)`` builds
        independent runs; the hyperparameters live in the optimizer state. With ``obs_norm="initial"``
        the observation statistics come from ``obs_norm_episodes`` trajectories of theta_0 with key
        ``fold_in(key(seed), OBS_STATS_STREAM)`` (not charged to the simulated clock).
        """
        traced = _is_traced(seed, learning_rate, momentum)
        put = (lambda t: t) if traced else (lambda t: replicate(t, self.mesh))
        key, pkey = jax.random.split(jax.random.key(seed))
        params = self.policy.init(pkey)
        obs_stats = None
        if self.config.obs_norm == "initial":
            stats_key = jax.random.fold_in(jax.random.key(seed), OBS_STATS_STREAM)
            obs_stats = put(self._obs_stats(params, stats_key))
        inner = self._optimizer(learning_rate, momentum)
        params, opt_state, method_state, key = self.method.init(params, key, inner, put, obs_stats)
        zero_f, zero_i = jnp.zeros([], jnp.float32), jnp.zeros([], jnp.int32)
        eval_key, zero_f, zero_i = put((jax.random.key(seed + 1), zero_f, zero_i))
        return TrainState(
            params, opt_state, key, eval_key, zero_f, zero_i, zero_i, zero_i, method_state, obs_stats
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

    def eval_params(self, state: TrainState):
        """theta_t (not theta~): the point to evaluate and deploy (docs/algorithms.md#nigt)."""
        opt_state = self.method.inner_state(state.opt_state)
        return (
            nigt_eval_params(state.params, opt_state)
            if find_nigt_state(opt_state) is not None
            else state.params
        )

    def evaluate(self, state: TrainState, key=None) -> jax.Array:
        """Mean undiscounted return of theta_t over ``config.eval_episodes`` episodes (episode e run
        by agent e mod n). ``key`` defaults to ``fold_in(state.eval_key, state.round)``."""
        return self._evaluate(state, key)

    def run_chunk(self, state: TrainState) -> tuple[TrainState, dict, jax.Array]:
        """``eval_every`` steps in one jitted ``lax.scan``, then the evaluation; compiled once.

        Returns ``(state, metrics [eval_every], eval_return)``. Outside a trace, raises
        :class:`SimulatedClockError` (a ValueError) if the clock became infinite.
        """
        state, metrics, ret = self._chunk(state)
        if not _is_traced(state.time) and not np.all(np.isfinite(np.asarray(state.time))):
            raise SimulatedClockError(f"{self.config.method}: {self.method.stalled}")
        return state, metrics, ret

    # ------------------------------------------------------------------ implementation
    def _evaluate_impl(self, state: TrainState, key=None):
        c = self.config
        params = self.eval_params(state)
        if key is None:
            key = jax.random.fold_in(state.eval_key, state.round)
        keys = jax.random.split(key, c.eval_episodes)
        agents = jnp.arange(c.eval_episodes) % c.num_agents
        rewards = jax.vmap(
            lambda k, a: gpomdp.rollout(self.policy, self.env, params, k, a, c.horizon, state.obs_stats)[2]
        )(keys, agents)
        return jnp.mean(jnp.sum(rewards, axis=1))

    def _chunk_impl(self, state: TrainState):
        state, metrics = self.method.steps(state, self.config.eval_every)
        return state, metrics, self._evaluate_impl(state)
