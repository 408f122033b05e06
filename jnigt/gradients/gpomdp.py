"""GPOMDP (reward-to-go REINFORCE) gradients, docs/algorithms.md#gpomdp.

For one trajectory tau = (s_0, u_0, r_0, ..., s_{H-1}, u_{H-1}, r_{H-1}) sampled with pi_theta:

    g_H(tau, theta) = sum_{t<H} ( sum_{h=t}^{H-1} gamma^h r_h ) grad_theta log pi_theta(u_t | s_t)

(the discount counts from time 0), an unbiased estimate of grad J_H(theta), J_H = E[sum_{t<H} gamma^t r_t].
Steps after the episode terminates are masked (reward 0, no log-prob term).

It is computed as the gradient of the surrogate sum_t stop_gradient(R_t) * log pi_theta(u_t | s_t) on a
trajectory sampled with stop_gradient(theta), so the environment is never differentiated. Everything returned
is the gradient of the LOSS -J, i.e. ``grad = -g``, ready for optax-style minimising transformations.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

from jnigt import validate

from .obs_norm import ObsStats, normalise
from .policy import GaussianPolicy

Params = Any


@chex.dataclass(frozen=True)
class TrajectoryGradient:
    """One trajectory: grad = -g_H (loss gradient), ret = sum_t r_t (undiscounted), steps = env steps taken."""

    grad: Params
    ret: jax.Array
    steps: jax.Array


@chex.dataclass(frozen=True)
class PolicyGradient:
    """Per-agent sums of loss gradients over a batch of B trajectories at one parameter point.

    grad_sums: pytree, each leaf [num_agents, ...] = sum of -g_H over that agent's valid trajectories.
    counts:    int32 [num_agents], valid trajectories per agent.
    returns:   [B] undiscounted per-trajectory returns (all trajectories, valid or not).
    env_steps: int32 scalar, env steps summed over valid trajectories.
    """

    grad_sums: Params
    counts: jax.Array
    returns: jax.Array
    env_steps: jax.Array


def _strip_weak_type(tree):
    """Make every leaf a strongly typed array (as brax does before its scans)."""

    def f(x):
        x = jnp.asarray(x)
        return jnp.astype(x, x.dtype)

    return jax.tree.map(f, tree)


def _cast_like(new, old):
    """Cast ``new`` leaves to the dtypes of ``old`` (keeps a scan carry type-stable)."""
    return jax.tree.map(lambda n, o: jnp.astype(jnp.asarray(n), jnp.asarray(o).dtype), new, old)


def reset_env(env: Any, rng: jax.Array, agent_id: jax.Array):
    """env.reset_agent(rng, agent_id) for heterogeneous envs, else env.reset(rng)."""
    if hasattr(env, "reset_agent"):
        return env.reset_agent(rng, agent_id)
    return env.reset(rng)


def _check_static(policy, env, horizon, discount):
    if not isinstance(policy, GaussianPolicy):
        raise TypeError(f"policy must be a GaussianPolicy, got {type(policy).__name__}")
    if not (hasattr(env, "step") and (hasattr(env, "reset") or hasattr(env, "reset_agent"))):
        raise TypeError(f"env must be a Brax-style env with reset/step, got {type(env).__name__}")
    validate.integer("horizon", horizon)
    if not isinstance(discount, jax.Array):
        validate.probability("discount", discount)


def rollout(
    policy: GaussianPolicy,
    env: Any,
    params: Params,
    key: jax.Array,
    agent_id,
    horizon: int,
    obs_stats: ObsStats | None = None,
):
    """Sample one trajectory of H steps (lax.scan). Returns (obs [H, ...], u [H, A], reward [H], alive [H]).

    alive_t = 1 iff no earlier step terminated (the terminating step itself is alive).
    Rewards, obs and u of dead steps are zeroed. With ``obs_stats`` the policy sees, and ``obs`` holds,
    ``jnigt.gradients.obs_norm.normalise(obs_stats, s_t)`` (docs/algorithms.md#obs-norm); None: raw s_t.
    """
    reset_key, act_key = jax.random.split(key)
    agent_id = jnp.asarray(agent_id, jnp.int32)
    state = _strip_weak_type(reset_env(env, reset_key, agent_id))

    def body(carry, k):
        state, alive = carry
        seen = normalise(obs_stats, state.obs)
        action, u = policy.sample(params, seen, k)
        nstate = env.step(state, action)
        nstate = _cast_like(nstate, state)
        reward = jnp.where(alive, nstate.reward, 0.0).astype(jnp.float32)
        obs = jnp.where(alive, seen, 0.0)
        u = jnp.where(alive, u, 0.0)
        new_alive = jnp.logical_and(alive, jnp.logical_not(nstate.done.astype(bool)))
        return (nstate, new_alive), (obs, u, reward, alive)

    keys = jax.random.split(act_key, horizon)
    _, (obs, us, rewards, alive) = jax.lax.scan(body, (state, jnp.array(True)), keys)
    return obs, us, rewards, alive


def trajectory_gradient(
    policy: GaussianPolicy,
    env: Any,
    params: Params,
    key: jax.Array,
    agent_id,
    horizon: int,
    discount: float,
    obs_stats: ObsStats | None = None,
) -> TrajectoryGradient:
    """Loss gradient -g_H of one trajectory (reset, then H steps), plus its return and step count.

    ``obs_stats``: the policy is pi(u | normalise(obs_stats, s)) (docs/algorithms.md#obs-norm); None = raw s.
    """
    _check_static(policy, env, horizon, discount)
    sampling_params = jax.lax.stop_gradient(params)
    obs, us, rewards, alive = rollout(policy, env, sampling_params, key, agent_id, horizon, obs_stats)
    weights = jnp.asarray(discount, jnp.float32) ** jnp.arange(horizon, dtype=jnp.float32)
    disc = weights * rewards
    # reward-to-go with the discount counted from time 0: R_t = sum_{h>=t} gamma^h r_h
    rtg = jax.lax.stop_gradient(jnp.cumsum(disc[::-1])[::-1] * alive)

    def loss(p):
        logp = policy.log_prob(p, obs, us)  # [H]
        return -jnp.sum(rtg * logp)

    grad = jax.grad(loss)(params)
    return TrajectoryGradient(
        grad=grad,
        ret=jnp.sum(rewards),
        steps=jnp.sum(alive).astype(jnp.int32),
    )


def gpomdp_gradient(
    policy: GaussianPolicy,
    env: Any,
    params: Params,
    key: jax.Array,
    agent_ids: jax.Array,
    num_agents: int,
    horizon: int,
    discount: float,
    valid: jax.Array | None = None,
) -> PolicyGradient:
    """B = len(agent_ids) trajectories at the same params, summed per agent with segment_sum.

    Trajectory b uses key jax.random.split(key, B)[b] and agent agent_ids[b]. ``valid`` (bool [B], optional)
    masks trajectories out of grad_sums, counts and env_steps (they are still computed: fixed shapes).
    Jittable with policy, env, num_agents, horizon static.
    """
    _check_static(policy, env, horizon, discount)
    validate.integer("num_agents", num_agents)
    agent_ids = jnp.asarray(agent_ids)
    if agent_ids.ndim != 1:
        raise ValueError(f"agent_ids must be 1-D [B], got shape {agent_ids.shape}")
    if not jnp.issubdtype(agent_ids.dtype, jnp.integer):
        raise TypeError(f"agent_ids must be integers, got dtype {agent_ids.dtype}")
    b = agent_ids.shape[0]
    if valid is None:
        valid = jnp.ones((b,), bool)
    else:
        valid = jnp.asarray(valid)
        if valid.shape != (b,):
            raise ValueError(f"valid must have shape ({b},) like agent_ids, got {valid.shape}")
        valid = valid.astype(bool)
    agent_ids = agent_ids.astype(jnp.int32)

    keys = jax.random.split(key, b)
    tg = jax.vmap(lambda k, a: trajectory_gradient(policy, env, params, k, a, horizon, discount))(
        keys, agent_ids
    )

    return sum_per_segment(tg, agent_ids, valid, num_agents)


def sum_per_segment(
    tg: TrajectoryGradient, segment_ids: jax.Array, valid: jax.Array, num_segments: int
) -> PolicyGradient:
    """Sums a batch of trajectory gradients ([B] leading axis) into ``num_segments`` rows.

    grad_sums[s] = sum of tg.grad[b] over valid b with segment_ids[b] = s; counts[s] = how many.
    Invalid trajectories go to an extra dropped segment (no multiply, so NaNs there cannot leak).
    """
    seg = jnp.where(valid, segment_ids, num_segments)
    grad_sums = jax.tree.map(
        lambda g: jax.ops.segment_sum(g, seg, num_segments=num_segments + 1)[:num_segments], tg.grad
    )
    counts = jax.ops.segment_sum(valid.astype(jnp.int32), seg, num_segments=num_segments + 1)[:num_segments]
    env_steps = jnp.sum(jnp.where(valid, tg.steps, 0)).astype(jnp.int32)
    return PolicyGradient(grad_sums=grad_sums, counts=counts, returns=tg.ret, env_steps=env_steps)
