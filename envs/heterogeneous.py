"""Heterogeneous multi-agent environments (docs/algorithms.md#gpomdp, #experiments).

Each wrapper implements ``reset_agent(rng, agent_id)`` which stores ``agent_id`` (int32) in
``state.info['agent_id']``; ``step(state, action)`` reads it, so a batch of agents runs under one ``jax.vmap``.
``reset(rng)`` is ``reset_agent(rng, 0)`` (plain Brax interface).

- MirroredObservation: the paper's construction. Agent i observes ((-1)^i s, i): agent 0 sees (s, 0),
  agent 1 sees (-s, 1). The dynamics are shared; the optimal policies differ.
- PerAgentPhysics: physically different agents. Per-agent multiplicative scales of Brax System parameters
  (link masses and inertias, geom friction, gravity, actuator gear) are stored with a leading num_agents axis,
  gathered with agent_id and swapped into the pipeline for that agent's reset/step (the mechanism of
  brax's DomainRandomizationVmapWrapper).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State, Wrapper

from jnigt import validate


def _agent_info(state: State, agent_id: jax.Array) -> State:
    return state.replace(info={**state.info, "agent_id": jnp.asarray(agent_id, jnp.int32)})


class MirroredObservation(Wrapper):
    """Agent i observes concat((-1)^i * s, [i]); observation_size = inner + 1."""

    def __init__(self, env: Env):
        if not isinstance(env, Env):
            raise TypeError(f"env must be a brax Env, got {type(env).__name__}")
        super().__init__(env)
        self._inner_obs_size = validate.integer("env.observation_size", env.observation_size)

    def _observe(self, obs: jax.Array, agent_id: jax.Array) -> jax.Array:
        sign = 1.0 - 2.0 * jnp.mod(agent_id, 2).astype(obs.dtype)
        flag = agent_id.astype(obs.dtype)[None]
        return jnp.concatenate([sign * obs, flag], axis=-1)

    def reset_agent(self, rng: jax.Array, agent_id) -> State:
        agent_id = jnp.asarray(agent_id, jnp.int32)
        if hasattr(self.env, "reset_agent"):  # compose with other heterogeneous wrappers
            state = self.env.reset_agent(rng, agent_id)
        else:
            state = self.env.reset(rng)
        state = _agent_info(state, agent_id)
        return state.replace(obs=self._observe(state.obs, agent_id))

    def reset(self, rng: jax.Array) -> State:
        return self.reset_agent(rng, 0)

    def step(self, state: State, action: jax.Array) -> State:
        agent_id = state.info["agent_id"]
        nstate = self.env.step(state, action)
        nstate = _agent_info(nstate, agent_id)
        return nstate.replace(obs=self._observe(nstate.obs, agent_id))

    @property
    def observation_size(self) -> int:
        return self._inner_obs_size + 1


# Scale key -> System paths it multiplies (those that exist on the system are used).
_SCALE_PATHS = {
    "mass": ("link.inertia.mass", "link.inertia.i", "body_mass", "body_inertia"),
    "friction": ("geom_friction",),
    "gravity": ("gravity", "opt.gravity"),
    "gear": ("actuator.gear", "actuator_gear"),
}
SCALE_KEYS = tuple(_SCALE_PATHS)


def _get_path(obj: Any, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class PerAgentPhysics(Wrapper):
    """Agent i runs the inner PipelineEnv with System parameters scaled by ``scales[key][i]``.

    scales: mapping from any of ('mass', 'friction', 'gravity', 'gear') to a 1-D array [num_agents] of positive
    multiplicative factors (all the same length). Works under jit/vmap: the per-agent values are a batched
    constant indexed with the traced agent_id.
    """

    def __init__(self, env: Env, scales: Mapping[str, Any]):
        if not isinstance(env, Env):
            raise TypeError(f"env must be a brax Env, got {type(env).__name__}")
        sys = getattr(env.unwrapped, "sys", None)
        if sys is None:
            raise ValueError("env must be a brax PipelineEnv (with a .sys System); got one without sys")
        if not isinstance(scales, Mapping) or not scales:
            raise ValueError(f"scales must be a non-empty dict with keys in {SCALE_KEYS}, got {scales!r}")
        super().__init__(env)
        n = None
        values: dict[str, np.ndarray] = {}
        for k, v in scales.items():
            if k not in _SCALE_PATHS:
                raise ValueError(f"scales has unknown key {k!r}; valid keys: {SCALE_KEYS}")
            arr = np.asarray(v, np.float32)
            if arr.ndim != 1 or arr.size == 0 or not np.all(arr > 0):
                raise ValueError(f"scales[{k!r}] must be a 1-D array of positive factors, got {v!r}")
            if n is not None and arr.shape[0] != n:
                raise ValueError(
                    f"all scales must have the same length (num_agents); scales[{k!r}] has {arr.shape[0]}"
                )
            n = arr.shape[0]
            values[k] = arr
        self.num_agents = int(n)
        self.scales = values
        self._base_sys = sys
        # batched replacement values, leading axis num_agents
        self._batched: dict[str, np.ndarray] = {}
        for k, arr in values.items():
            for path in _SCALE_PATHS[k]:
                base = _get_path(sys, path)
                if base is None or not hasattr(base, "shape"):
                    continue
                base = np.asarray(base)
                self._batched[path] = (arr.reshape((n,) + (1,) * base.ndim) * base[None]).astype(base.dtype)

    def agent_sys(self, agent_id) -> Any:
        """The System of agent ``agent_id`` (traced agent_id allowed)."""
        agent_id = jnp.asarray(agent_id, jnp.int32)
        return self._base_sys.tree_replace({p: jnp.asarray(v)[agent_id] for p, v in self._batched.items()})

    @contextlib.contextmanager
    def _with_sys(self, sys):
        env = self.env.unwrapped
        old = env.sys
        try:
            env.sys = sys
            yield
        finally:
            env.sys = old

    def reset_agent(self, rng: jax.Array, agent_id) -> State:
        agent_id = jnp.asarray(agent_id, jnp.int32)
        with self._with_sys(self.agent_sys(agent_id)):
            reset = self.env.reset_agent if hasattr(self.env, "reset_agent") else None
            state = reset(rng, agent_id) if reset is not None else self.env.reset(rng)
        return _agent_info(state, agent_id)

    def reset(self, rng: jax.Array) -> State:
        return self.reset_agent(rng, 0)

    def step(self, state: State, action: jax.Array) -> State:
        agent_id = state.info["agent_id"]
        with self._with_sys(self.agent_sys(agent_id)):
            nstate = self.env.step(state, action)
        return _agent_info(nstate, agent_id)


def random_physics(
    env: Env, num_agents: int, key: jax.Array, spread: float = 0.2, keys=("mass", "friction", "gear")
) -> PerAgentPhysics:
    """PerAgentPhysics with factors ~ Uniform[1 - spread, 1 + spread] per agent for each key in ``keys``."""
    num_agents = validate.integer("num_agents", num_agents)
    spread = validate.real("spread", spread, low=0.0, high=1.0, high_open=True)
    for k in keys:
        if k not in _SCALE_PATHS:
            raise ValueError(f"keys has unknown entry {k!r}; valid keys: {SCALE_KEYS}")
    ks = jax.random.split(key, len(keys))
    scales = {
        k: np.asarray(jax.random.uniform(kk, (num_agents,), minval=1 - spread, maxval=1 + spread))
        for k, kk in zip(keys, ks)
    }
    return PerAgentPhysics(env, scales)
