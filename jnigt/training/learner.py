"""The learner of a :class:`TrainConfig`: what every executor shares, whoever samples the gradients.

A :class:`Learner` builds the config's environment and policy (``jnigt.training.build``), the clock the
method is planned on, the inner optimizer (``optax.inject_hyperparams``) and the method
(``jnigt.training.methods``), and gives them four operations:

- ``init(seed)``: the :class:`TrainState` before the first step (theta_0, the method's optimizer state,
  the observation statistics with ``obs_norm="initial"``);
- ``update(state, grads, agent, count)``: one contribution to the server (an arriving gradient, or an
  agent's sum of ``count`` gradients) through the method's own aggregator (AFedPG: its server step);
- ``eval_params(state)``: theta_t, the point to evaluate and deploy (docs/algorithms.md#nigt);
- ``evaluate(state)``: the mean return of theta_t over ``eval_episodes`` episodes.

The simulated :class:`~jnigt.training.Trainer` (jnigt/training/loop.py) adds the simulated clock's steps;
the Ray executor (jnigt/executors/ray.py) calls ``update`` on every real arrival.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnigt.distributed import make_agent_mesh, replicate
from jnigt.gradients import gpomdp, obs_norm
from jnigt.training import build, methods
from jnigt.training.config import TrainConfig
from jnigt.training.methods import Context
from jnigt.training.methods._common import direction_norm
from jnigt.training.state import TrainState
from jnigt.transforms import nigt_eval_params
from jnigt.transforms.nigt import find_nigt_state

#: ``fold_in`` tag of the initial rollout's key (a stream no other part of a run uses)
OBS_STATS_STREAM = 0x0B5


def is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


class Update(NamedTuple):
    """What one contribution did: ``closed`` (the server stepped), ``dropped`` (gradients refused as
    non-finite) and ``grad_norm`` (the metric of that name: ``jnigt.training.methods.METRIC_NAMES``)."""

    closed: jax.Array
    dropped: jax.Array
    grad_norm: jax.Array


class Learner:
    """A :class:`TrainConfig`'s environment, policy, clock, inner optimizer and method.

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
        self._check(mesh)
        ctx = Context(
            config=c,
            env=self.env,
            policy=self.policy,
            timing=self.timing,
            inner=self._optimizer(None, None),
            mesh=mesh,
            use_pmap=use_pmap,
        )
        #: the method built on this run (``jnigt.training.methods.Method``): its rounds' init, steps and
        #: clock (``config.method`` is its name, ``TrainState.method`` its own state)
        self.rounds = module.build(ctx, self.plan)
        self.mesh = self.rounds.mesh
        self.num_devices = self.mesh.devices.size
        self._evaluate = jax.jit(self._evaluate_impl)
        self._update = jax.jit(self._update_impl)
        self._obs_stats = jax.jit(
            lambda p, k: obs_norm.initial_stats(
                self.policy, self.env, p, k, c.num_agents, c.horizon, c.obs_norm_episodes
            )
        )

    def _check(self, mesh) -> None:
        """Refuse, before the method is built, what this executor cannot run on ``mesh`` (nothing here)."""

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
        scalars; None = the config's value), so ``jax.vmap(learner.init)(seeds, lrs, moms)`` builds
        independent runs; the hyperparameters live in the optimizer state. With ``obs_norm="initial"``
        the observation statistics come from ``obs_norm_episodes`` trajectories of theta_0 with key
        ``fold_in(key(seed), OBS_STATS_STREAM)`` (not charged to the clock).
        """
        traced = is_traced(seed, learning_rate, momentum)
        place = (lambda t: t) if traced else (lambda t: replicate(t, self.mesh))
        key, pkey = jax.random.split(jax.random.key(seed))
        params = self.policy.init(pkey)
        obs_stats = None
        if self.config.obs_norm == "initial":
            stats_key = jax.random.fold_in(jax.random.key(seed), OBS_STATS_STREAM)
            obs_stats = place(self._obs_stats(params, stats_key))
        inner = self._optimizer(learning_rate, momentum)
        params, opt_state, method_state, key = self.rounds.init(params, key, inner, place, obs_stats)
        zero_f, zero_i = jnp.zeros([], jnp.float32), jnp.zeros([], jnp.int32)
        eval_key, zero_f, zero_i = place((jax.random.key(seed + 1), zero_f, zero_i))
        return TrainState(
            params, opt_state, key, eval_key, zero_f, zero_i, zero_i, zero_i, method_state, obs_stats
        )

    def update(self, state: TrainState, grads, agent, count=1) -> tuple[TrainState, Update]:
        """Agent ``agent``'s contribution: ``grads`` (params-shaped) is the sum of its ``count`` newest
        gradients (one arrival: its gradient, count 1), applied through the method's aggregator
        (``method.server_update``; AFedPG: the server step of the simulated AFedPG). Returns the state
        with the new params and optimizer state, ``round`` and ``comms`` one higher when the round closed
        (time and env_steps are the caller's), and what the call did."""
        return self._update(state, grads, agent, count)

    def eval_params(self, state: TrainState):
        """theta_t (not theta~): the point to evaluate and deploy (docs/algorithms.md#nigt)."""
        opt_state = self.rounds.inner_state(state.opt_state)
        return (
            nigt_eval_params(state.params, opt_state)
            if find_nigt_state(opt_state) is not None
            else state.params
        )

    def evaluate(self, state: TrainState, key=None) -> jax.Array:
        """Mean undiscounted return of theta_t over ``config.eval_episodes`` episodes (episode e run
        by agent e mod n). ``key`` defaults to ``fold_in(state.eval_key, state.round)``."""
        return self._evaluate(state, key)

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

    def _update_impl(self, state: TrainState, grads, agent, count):
        # per-agent contributions [n, ...]: the agent's row holds its sum, the others nothing
        n = self.config.num_agents
        rows = jax.tree.map(lambda g: jnp.zeros((n,) + g.shape, g.dtype).at[agent].set(g), grads)
        counts = jnp.zeros((n,), jnp.int32).at[agent].set(count)
        before = self.rounds.inner_state(state.opt_state)
        upd, opt_state = self.rounds.server_update(rows, state.opt_state, state.params, counts, state.round)
        after = self.rounds.inner_state(opt_state)
        closed = after.closed
        state = state._replace(
            params=optax.apply_updates(state.params, upd),
            opt_state=opt_state,
            round=state.round + closed.astype(state.round.dtype),
            comms=state.comms + closed.astype(state.comms.dtype),
        )
        return state, Update(closed, after.dropped - before.dropped, direction_norm(after.inner_state, upd))
