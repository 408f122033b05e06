"""MuJoCo Playground envs through jnigt_envs.make_env (envs/playground.py): names and backends refused in one
line, Playground's termination and truncation mapped onto jnigt's rollout, per-agent physics, a short training.

The ``playground`` extra is part of the ``test`` extra (pyproject.toml), so these tests run, never skip.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State, Wrapper

import jnigt_envs
from jnigt.gradients import gpomdp
from jnigt.gradients.policy import make_policy
from jnigt.training import TrainConfig, Trainer
from jnigt_envs.playground import PlaygroundEnv

NAME = "playground:CartpoleBalance"
H = 6


@pytest.fixture(scope="module")
def env():
    # episode_length 3 < H: Playground's own episode length must not cut jnigt's trajectories
    return jnigt_envs.make_env(NAME, episode_length=3)


def test_bad_names_backends_and_missing_package_are_one_line(monkeypatch):
    with pytest.raises(
        ValueError, match=r"unknown playground env 'Go1JoystickFlatTerrain'; allowed .*CartpoleBalance"
    ):
        jnigt_envs.make_env("playground:Go1JoystickFlatTerrain")  # locomotion: needs the Menagerie download
    with pytest.raises(ValueError, match=r"^backend: .*jax, warp or None.*got 'spring'$"):
        jnigt_envs.make_env(NAME, backend="spring")
    with pytest.raises(ValueError, match="^impl: set the MJX implementation with backend="):
        jnigt_envs.make_env(NAME, impl="warp")
    with pytest.raises(
        ValueError, match=r"^episode_lenght: not a setting of playground:CartpoleBalance; settings: .*"
    ):
        jnigt_envs.make_env(NAME, episode_lenght=3)
    with pytest.raises(ValueError, match="^vision: pixel"):
        jnigt_envs.make_env(NAME, vision=True)
    with pytest.raises(ValueError, match="^action_repeat: only 1"):
        jnigt_envs.make_env(NAME, action_repeat=2)
    with pytest.raises(ValueError, match=r"or playground:<DM Control Suite env>"):
        jnigt_envs.make_env("CartpoleBalance")
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # as if not installed
    with pytest.raises(ImportError, match=r"install it with: pip install 'jnigt\[playground\]'$"):
        jnigt_envs.make_env(NAME)


class _NaNAtStep(Wrapper):
    """Agent 1's physics state becomes NaN just before its step number ``at``; the other agents are left alone."""

    def __init__(self, env, at):
        super().__init__(env)
        self.at = at

    def reset_agent(self, rng, agent_id):
        s = self.env.reset_agent(rng, agent_id)
        return s.replace(info={**s.info, "t": jnp.int32(0)})

    def step(self, state, action):
        t = state.info["t"]
        data = state.pipeline_state
        poison = jnp.logical_and(state.info["agent_id"] == 1, t == self.at)
        data = data.replace(qvel=jnp.where(poison, jnp.nan, data.qvel))
        n = self.env.step(state.replace(pipeline_state=data), action)
        return n.replace(info={**n.info, "t": t + 1})


def test_interface_termination_truncation_and_per_agent_physics(env):
    assert isinstance(env, Env) and isinstance(env, PlaygroundEnv)
    assert (env.observation_size, env.action_size, env.backend) == (5, 1, "mjx-jax")
    state = jax.eval_shape(env.reset, jax.random.key(0))
    assert isinstance(state, State) and state.obs.shape == (5,) and state.done.shape == ()
    assert "truncation" not in state.info  # no EpisodeWrapper: jnigt's horizon is the only truncation

    # agents 0 and 1: the base physics (scale 1); agent 2: 4x the masses, 1/4 of the actuator gear
    phys = jnigt_envs.PerAgentPhysics(env, {"mass": [1.0, 1.0, 4.0], "gear": [1.0, 1.0, 0.25]})
    assert set(phys._batched) == {"body_mass", "body_inertia", "actuator_gear"}
    base_mass = np.asarray(env.sys.body_mass)
    np.testing.assert_allclose(np.asarray(phys.agent_sys(2).body_mass), 4.0 * base_mass)
    policy = make_policy(env, hidden_sizes=(4,))
    params = policy.init(jax.random.key(1))
    at = 2
    wrapped = _NaNAtStep(phys, at)
    keys = jnp.stack([jax.random.key(2)] * 3)
    obs, u, rewards, alive = jax.jit(jax.vmap(lambda k, a: gpomdp.rollout(policy, wrapped, params, k, a, H)))(
        keys, jnp.arange(3)
    )
    obs, rewards, alive = np.asarray(obs), np.asarray(rewards), np.asarray(alive)
    # agent 0: never terminates; H = 6 steps alive although Playground's episode_length is 3
    assert alive[0].all() and np.all(np.isfinite(rewards[0])) and np.all(rewards[0] > 0)
    # agent 1: Playground sets done on the NaN state at step `at`; that step is the last alive one
    np.testing.assert_array_equal(alive[1], np.arange(H) <= at)
    np.testing.assert_array_equal(rewards[1, :at], rewards[0, :at])  # same key, same physics before
    assert np.isnan(rewards[1, at])  # the blow-up reaches the return (not hidden as a 0)
    np.testing.assert_array_equal(rewards[1, at + 1 :], 0.0)
    np.testing.assert_array_equal(obs[1, at + 1 :], 0.0)
    # agent 2: same key, other physics: the same first observation, then a different trajectory
    np.testing.assert_array_equal(obs[2, 0], obs[0, 0])
    assert alive[2].all() and np.max(np.abs(obs[2] - obs[0])) > 1e-2
    assert np.asarray(env.sys.body_mass).tolist() == base_mass.tolist()  # the base model is restored


def test_warp_backend_refuses_per_agent_physics():
    warp_env = jnigt_envs.make_env(NAME, backend="warp")
    assert warp_env.backend == "mjx-warp"
    with pytest.raises(ValueError, match="^per-agent physics of playground envs needs backend 'jax'"):
        jnigt_envs.PerAgentPhysics(warp_env, {"mass": [1.0, 2.0]})


def test_short_training_on_cartpole_balance():
    cfg = TrainConfig(
        env=NAME,
        backend=None,
        hidden_sizes=(8,),
        horizon=4,
        batch_size=4,
        num_agents=2,
        rounds=2,
        eval_every=2,
    )
    trainer = Trainer(cfg, num_devices=1)
    assert isinstance(trainer.env, PlaygroundEnv)
    state0 = state = trainer.init(cfg.seed)
    returns = []
    for _ in range(2):
        state, metrics = trainer.step(state)
        returns.append(float(metrics["train_return"]))
    assert all(0.0 < r <= cfg.horizon for r in returns)  # CartpoleBalance: a reward in [0, 1] per step
    assert int(state.round) == 2 and int(state.env_steps) > 0
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, state0.params)
    assert max(jax.tree.leaves(moved)) > 0
