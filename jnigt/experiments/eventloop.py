"""A plain Python event loop of Rennala NIGT: the baseline the vmapped sweep is measured against.

The textbook simulation (the event heap of docs/algorithms.md#rennala): a ``heapq`` of (finish time,
agent); every round all agents start at the round's start time; pop arrivals one at a time, each
computes ONE jitted single-trajectory GPOMDP gradient at the current point, until ``M`` gradients are
in; the round closes at the M-th arrival, the AllReduce costs ``max_i kappa_i``, the pooled mean goes
through the same ``jnigt.nigt`` update. Fixed times only (no jitter). Python drives every arrival and
every update, so this is the per-event cost that one jitted, vmapped program removes.
"""

from __future__ import annotations

import heapq

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnigt.gradients import gpomdp
from jnigt.transforms import nigt, nigt_eval_params


class RennalaEventLoop:
    """Rennala NIGT driven by a Python heap. One instance compiles its two jitted pieces once."""

    def __init__(self, policy, env, step_time, comm_time, horizon: int, discount: float, batch_size: int):
        self.policy, self.env = policy, env
        self.step_time = np.asarray(step_time, float)
        self.comm_time = np.asarray(comm_time, float)
        self.horizon, self.batch = int(horizon), int(batch_size)

        def arrive(grad_sum, steps, params, key, agent):
            tg = gpomdp.trajectory_gradient(policy, env, params, key, agent, self.horizon, discount)
            return jax.tree.map(jnp.add, grad_sum, tg.grad), steps + tg.steps

        # one jitted call per arrival: the trajectory, its gradient, and the running sum
        self._arrive = jax.jit(arrive)
        self._apply = {}

    def _update_fn(self, learning_rate: float, momentum: float):
        """The jitted NIGT step of the pooled mean, one compile per (alpha, eta)."""
        key = (float(learning_rate), float(momentum))
        if key not in self._apply:
            opt = nigt(*key)

            def apply(params, opt_state, grad_sum):
                mean = jax.tree.map(lambda g: g / self.batch, grad_sum)
                upd, opt_state = opt.update(mean, opt_state, params)
                return optax.apply_updates(params, upd), opt_state

            self._apply[key] = (opt, jax.jit(apply))
        return self._apply[key]

    def run(self, seed: int, learning_rate: float, momentum: float, rounds: int):
        """Run ``rounds`` rounds. Returns (theta_t, simulated time, env steps, trajectories)."""
        key = jax.random.key(seed)
        key, pkey = jax.random.split(key)
        params = self.policy.init(pkey)
        opt, apply = self._update_fn(learning_rate, momentum)
        opt_state = opt.init(params)
        traj = self.horizon * self.step_time
        t, env_steps, trajectories = 0.0, jnp.zeros([], jnp.int32), 0
        for r in range(rounds):
            heap = [(t + traj[i], i) for i in range(len(traj)) if np.isfinite(traj[i])]
            heapq.heapify(heap)
            rkey = jax.random.fold_in(key, r)
            grad_sum, got, per_agent = optax.tree.zeros_like(params), 0, np.zeros(len(traj), int)
            while got < self.batch:
                finish, i = heapq.heappop(heap)
                k = jax.random.fold_in(jax.random.fold_in(rkey, i), per_agent[i])
                grad_sum, env_steps = self._arrive(grad_sum, env_steps, params, k, jnp.int32(i))
                per_agent[i] += 1
                got += 1
                heapq.heappush(heap, (finish + traj[i], i))
            trajectories += got
            t = finish + float(np.max(self.comm_time))
            params, opt_state = apply(params, opt_state, grad_sum)
        return nigt_eval_params(params, opt_state), t, int(env_steps), trajectories
