"""Observation normalisation, docs/algorithms.md#obs-norm.

The policy sees ``normalise(stats, s) = clip((s - mean) / std, -OBS_CLIP, OBS_CLIP)`` instead of s; the
estimator is unchanged (GPOMDP for the policy pi(u | normalise(s))). ``initial_stats`` fixes mean and std
from a rollout of the initial policy (which sees raw observations), over alive steps only, with std
floored at ``OBS_STD_FLOOR`` so that constant coordinates map to 0 instead of blowing up.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

#: normalisation modes of ``TrainConfig.obs_norm``: off (the policy sees raw observations) | initial
OBS_NORMS = ("off", "initial")
#: normalised observations are clipped to [-OBS_CLIP, OBS_CLIP]
OBS_CLIP = 10.0
#: the smallest std used (a coordinate that never moves is divided by this, after centring: 0)
OBS_STD_FLOOR = 1e-2


class ObsStats(NamedTuple):
    """Fixed observation statistics: mean and std, float32 ``[obs_size]`` (std >= OBS_STD_FLOOR)."""

    mean: jax.Array
    std: jax.Array


def normalise(stats: ObsStats | None, obs: jax.Array) -> jax.Array:
    """clip((obs - mean) / std, -OBS_CLIP, OBS_CLIP) over the last axis; ``obs`` itself when stats is None."""
    if stats is None:
        return obs
    return jnp.clip((obs - stats.mean) / stats.std, -OBS_CLIP, OBS_CLIP).astype(obs.dtype)


def masked_stats(obs: jax.Array, alive: jax.Array) -> ObsStats:
    """Mean and floored std of ``obs [..., obs_size]`` over the steps where ``alive [...]`` is true.

    mean = sum(alive * s) / N, std = max(sqrt(sum(alive * (s - mean)^2) / N), OBS_STD_FLOOR),
    N = sum(alive) (at least 1).
    """
    obs = obs.reshape(-1, obs.shape[-1]).astype(jnp.float32)
    w = alive.reshape(-1, 1).astype(jnp.float32)
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.sum(w * obs, axis=0) / n
    var = jnp.sum(w * (obs - mean) ** 2, axis=0) / n
    return ObsStats(mean=mean, std=jnp.maximum(jnp.sqrt(var), OBS_STD_FLOOR))


def initial_stats(
    policy: Any, env: Any, params: Any, key: jax.Array, num_agents: int, horizon: int, episodes: int
) -> ObsStats:
    """Statistics of ``episodes`` trajectories of ``params`` (raw observations), episode e run by agent
    e mod num_agents with key split(key, episodes)[e]; pure, jittable and vmappable."""
    from jnigt.gradients.gpomdp import rollout

    keys = jax.random.split(key, episodes)
    agents = jnp.arange(episodes, dtype=jnp.int32) % num_agents
    obs, _, _, alive = jax.vmap(lambda k, a: rollout(policy, env, params, k, a, horizon))(keys, agents)
    return masked_stats(obs, alive)
