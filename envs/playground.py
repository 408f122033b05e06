"""MuJoCo Playground environments as brax envs: ``make_env("playground:CartpoleBalance")``.

Optional: ``pip install 'jnigt[playground]'`` (the ``playground`` package, module ``mujoco_playground``).
Only the DeepMind Control Suite environments are allowed (they ship their XML files); Playground's
locomotion and manipulation environments need the MuJoCo Menagerie assets, a download, and are refused.

How a Playground env maps onto jnigt's rollout (``jnigt.gradients.gpomdp.rollout``, docs/algorithms.md#gpomdp):

- :class:`PlaygroundEnv` wraps the RAW Playground env (never ``wrap_for_brax_training``): no auto-reset, no
  vmap, no EpisodeWrapper. ``reset(key)`` / ``step(state, action)`` return a brax ``State`` with
  ``pipeline_state`` = Playground's ``mjx.Data`` and the same ``obs``, ``reward``, ``done``, ``metrics``,
  ``info``, so jnigt's wrappers (``MirroredObservation``, ``PerAgentPhysics``) apply unchanged.
- Termination: Playground's ``done`` (a float, 1.0 when the episode ends; the DM Control Suite tasks end
  only when the physics state becomes NaN) is brax's ``done``: the step that sets it is the last alive step
  of jnigt's trajectory. Its reward (NaN for a NaN state) is kept: a blow-up reaches the return, not a 0.
- Truncation: jnigt's ``horizon`` is the episode length. Playground's ``episode_length`` (and the
  ``info['truncation']`` that brax's EpisodeWrapper would add) belong to the training wrapper, which is not
  used: a Playground env truncates nothing. ``action_repeat`` other than 1 is refused (every DM Control Suite
  task has 1; one jnigt step is one control step of ``dt = ctrl_dt``).
- Observations must be flat arrays (``observation_size`` an int); dict observations (``vision``) are refused.

``backend`` selects MJX's implementation: ``"jax"`` (default: MJX in pure JAX, no Warp messages, faster than
Warp on a CPU) or ``"warp"`` (Playground's own default: MuJoCo Warp kernels, meant for a GPU). Warp's
banner and module-load messages are silenced (``warp.config.log_level``) when jnigt builds a Warp env.

Per-agent physics: with ``backend="jax"`` the MJX model is a pytree of JAX arrays, so
``jnigt_envs.PerAgentPhysics`` scales ``body_mass``, ``body_inertia``, ``geom_friction``, ``opt.gravity`` and
``actuator_gear`` per agent through :attr:`PlaygroundEnv.sys` (Playground's own domain randomisation swaps the
model the same way). Quantities MuJoCo derives from them when the model is compiled (``body_subtreemass``,
``dof_invweight0``, ...) keep their base values, as for the brax envs. With ``backend="warp"`` per-agent physics
is refused (not tried: whether the Warp kernels read a per-agent model under vmap is untested).
"""

from __future__ import annotations

from typing import Any

import jax
from brax.envs.base import Env, State

from jnigt import validate

PREFIX = "playground:"
IMPLS = ("jax", "warp")
DEFAULT_IMPL = "jax"
INSTALL = "pip install 'jnigt[playground]'"


def _suite():
    """Playground's DM Control Suite module (one line naming the pip command when it is missing)."""
    try:
        from mujoco_playground import dm_control_suite
    except ImportError as e:
        raise ImportError(
            f"playground envs need MuJoCo Playground ({e}); install it with: {INSTALL}"
        ) from None
    return dm_control_suite


def playground_names() -> tuple[str, ...]:
    """The allowed names after ``playground:``: Playground's DM Control Suite environments."""
    return tuple(_suite().ALL_ENVS)


class PlaygroundEnv(Env):
    """A raw MuJoCo Playground env (``mujoco_playground.MjxEnv``) behind brax's Env interface (see module doc)."""

    def __init__(self, env: Any, name: str = ""):
        from mujoco_playground import MjxEnv

        if not isinstance(env, MjxEnv):
            raise TypeError(f"env must be a mujoco_playground MjxEnv, got {type(env).__name__}")
        self._env = env
        self.name = name
        repeat = getattr(env, "_config", {}).get("action_repeat", 1)
        if repeat != 1:
            raise ValueError(
                f"action_repeat: only 1 is supported (one jnigt step = one control step), got {repeat!r}"
            )
        self._obs_size = validate.integer(
            f"{name or 'env'}: observation_size (flat observations)", env.observation_size
        )
        self._impl = env.mjx_model.impl.value

    def reset(self, rng: jax.Array) -> State:
        s = self._env.reset(rng)
        return State(
            pipeline_state=s.data, obs=s.obs, reward=s.reward, done=s.done, metrics=s.metrics, info=s.info
        )

    def step(self, state: State, action: jax.Array) -> State:
        from mujoco_playground import State as PlaygroundState

        s = PlaygroundState(
            data=state.pipeline_state,
            obs=state.obs,
            reward=state.reward,
            done=state.done,
            metrics=state.metrics,
            info=state.info,
        )
        n = self._env.step(s, action)
        return State(
            pipeline_state=n.data, obs=n.obs, reward=n.reward, done=n.done, metrics=n.metrics, info=n.info
        )

    @property
    def observation_size(self) -> int:
        return self._obs_size

    @property
    def action_size(self) -> int:
        return int(self._env.action_size)

    @property
    def backend(self) -> str:
        return f"mjx-{self._impl}"

    @property
    def dt(self) -> float:
        """Control time step (seconds) of one ``step``."""
        return float(self._env.dt)

    @property
    def playground_env(self) -> Any:
        """The wrapped Playground env."""
        return self._env

    @property
    def sys(self) -> Any:
        """The MJX model that ``step`` uses (``jnigt_envs.PerAgentPhysics`` swaps it per agent); backend jax only."""
        if self._impl != "jax":
            raise ValueError(
                f"per-agent physics of playground envs needs backend 'jax' (the MJX model as JAX arrays), "
                f"got backend {self._impl!r}"
            )
        return self._env.unwrapped._mjx_model

    @sys.setter
    def sys(self, model: Any) -> None:
        self._env.unwrapped._mjx_model = model


def make_playground_env(name: str, backend: str | None = None, **config_overrides: Any) -> PlaygroundEnv:
    """``PlaygroundEnv`` of ``name`` = ``"playground:<DM Control Suite env>"``.

    backend: MJX implementation, one of IMPLS (None -> 'jax'). ``config_overrides`` go to
    ``mujoco_playground.registry.load(..., config_overrides=...)`` (e.g. ``ctrl_dt``); ``impl`` is set by
    ``backend`` only.
    """
    if not isinstance(name, str) or not name.startswith(PREFIX):
        raise ValueError(f"env: a playground env name is {PREFIX}<name>, got {name!r}")
    if backend is not None and backend not in IMPLS:
        raise ValueError(
            f"backend: playground envs take an MJX implementation, one of {', '.join(IMPLS)} or None "
            f"(-> {DEFAULT_IMPL}; brax's backends do not apply: pass backend=None, --backend none); got {backend!r}"
        )
    if "impl" in config_overrides:
        raise ValueError(f"impl: set the MJX implementation with backend= ({', '.join(IMPLS)}), not impl=")
    task = name[len(PREFIX) :]
    names = playground_names()
    if task not in names:
        raise ValueError(
            f"env: unknown playground env {task!r}; allowed (DM Control Suite, no asset download): "
            f"{', '.join(names)}"
        )
    from mujoco_playground import registry

    settings = registry.get_default_config(task)
    for key in config_overrides:
        if key.split(".")[0] not in settings:
            raise ValueError(
                f"{key}: not a setting of {name}; settings: {', '.join(sorted(settings.keys()))}"
            )
    if config_overrides.get("vision"):
        raise ValueError(
            "vision: pixel (dict) observations are not supported; jnigt's policies take flat arrays"
        )
    impl = backend or DEFAULT_IMPL
    if impl == "warp":
        import warp

        # Warp's banner and its line per kernel module loaded are INFO messages; warnings stay on
        warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
    env = registry.load(task, config_overrides={**config_overrides, "impl": impl})
    return PlaygroundEnv(env, name=name)
