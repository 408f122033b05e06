"""Environment tests: registry, LQR, mirrored observations, per-agent physics."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jnigt_envs
from jnigt_envs import LQR, MirroredObservation, PerAgentPhysics, make_env, random_physics


# ----------------------------------------------------------------------------- registry
def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        make_env("cartpole3000")
    for n in ("hopper", "walker2d", "humanoid", "reacher", "lqr", "fast", "mirrored_hopper"):
        assert n in str(e.value)


def test_registry_unknown_backend_lists_backends():
    with pytest.raises(ValueError) as e:
        make_env("hopper", backend="bullet")
    for b in ("generalized", "positional", "spring", "mjx"):
        assert b in str(e.value)


def test_registry_builds_ours():
    assert isinstance(make_env("lqr", noise_std=0.0), LQR)
    env = make_env("mirrored_lqr")
    assert isinstance(env, MirroredObservation) and env.observation_size == 3
    assert make_env("fast").action_size == 1
    assert set(jnigt_envs.ENV_NAMES) >= {
        "ant",
        "halfcheetah",
        "hopper",
        "humanoid",
        "inverted_pendulum",
        "inverted_double_pendulum",
        "pusher",
        "reacher",
        "walker2d",
    }


# ----------------------------------------------------------------------------- LQR
def test_lqr_dynamics_and_reward():
    A, B = np.array([[1.0, 0.1], [0.0, 1.0]]), np.array([[0.0], [0.1]])
    env = LQR(A=A, B=B, noise_std=0.0, init_std=0.0, s0_mean=(1.0, -1.0))
    s = env.reset(jax.random.PRNGKey(0))
    chex.assert_trees_all_close(s.obs, jnp.array([1.0, -1.0]))
    n = env.step(s, jnp.array([2.0]))
    chex.assert_trees_all_close(n.obs, jnp.array([0.9, -0.8]), atol=1e-6)
    chex.assert_trees_all_close(n.reward, -(2.0 + 0.1 * 4.0), atol=1e-6)
    assert float(n.done) == 0.0


def test_lqr_riccati_gain_is_optimal_linear_controller():
    env = LQR(noise_std=0.0)
    K = env.riccati_gain(0.95)
    # J(-K) >= J(-K + perturbation) for the deterministic part of the exact objective
    std = jnp.array([1e-3])
    j = lambda W: float(env.exact_objective(jnp.asarray(W, jnp.float32), jnp.zeros(1), std, 200, 0.95))
    base = j(-K)
    for d in ([[0.05, 0.0]], [[0.0, 0.05]], [[-0.05, 0.0]], [[0.0, -0.05]]):
        assert base >= j(-K + np.array(d)) - 1e-5


def test_lqr_validation():
    with pytest.raises(ValueError, match="A"):
        LQR(A=np.ones((2, 3)))
    with pytest.raises(ValueError, match="noise_std"):
        LQR(noise_std=-1.0)
    with pytest.raises(ValueError, match="discount"):
        LQR().riccati_gain(2.0)


# ----------------------------------------------------------------------------- mirrored
def test_mirrored_observation_per_agent():
    env = MirroredObservation(LQR(noise_std=0.0))
    key = jax.random.PRNGKey(0)
    s0, s1 = jax.vmap(env.reset_agent, in_axes=(None, 0))(key, jnp.array([0, 1])).obs
    inner = LQR(noise_std=0.0).reset(key).obs
    chex.assert_trees_all_close(s0, jnp.concatenate([inner, jnp.array([0.0])]))
    chex.assert_trees_all_close(s1, jnp.concatenate([-inner, jnp.array([1.0])]))
    st = jax.vmap(env.reset_agent, in_axes=(None, 0))(key, jnp.array([0, 1]))
    nx = jax.vmap(env.step)(st, jnp.ones((2, 1)))
    np.testing.assert_array_equal(np.asarray(nx.info["agent_id"]), [0, 1])
    chex.assert_trees_all_close(nx.obs[0, :2], -nx.obs[1, :2])
    np.testing.assert_array_equal(np.asarray(nx.obs[:, 2]), [0.0, 1.0])
    assert env.reset(key).info["agent_id"] == 0


# ----------------------------------------------------------------------------- per-agent physics
@pytest.fixture(scope="module")
def pendulum():
    return make_env("inverted_pendulum", backend="spring")


def test_per_agent_physics_sys_differs(pendulum):
    env = PerAgentPhysics(pendulum, {"mass": [1.0, 2.0], "gear": [1.0, 3.0], "gravity": [1.0, 1.5]})
    s0, s1 = env.agent_sys(0), env.agent_sys(1)
    chex.assert_trees_all_close(s1.link.inertia.mass, 2.0 * s0.link.inertia.mass)
    chex.assert_trees_all_close(s1.actuator.gear, 3.0 * s0.actuator.gear)
    chex.assert_trees_all_close(s1.gravity, 1.5 * s0.gravity)
    chex.assert_trees_all_close(s0.link.inertia.mass, pendulum.sys.link.inertia.mass)
    with pytest.raises(ValueError, match="scales"):
        PerAgentPhysics(pendulum, {"mass": [1.0, 2.0], "gear": [1.0]})
    with pytest.raises(ValueError, match="colour"):
        PerAgentPhysics(pendulum, {"colour": [1.0]})
    r = random_physics(pendulum, 5, jax.random.PRNGKey(0), spread=0.2)
    assert r.num_agents == 5 and all(np.all(np.abs(v - 1) <= 0.2) for v in r.scales.values())


def test_per_agent_physics_dynamics_differ(pendulum):
    env = PerAgentPhysics(pendulum, {"mass": [1.0, 1.0, 3.0], "gear": [1.0, 3.0, 1.0]})

    @jax.jit
    def two_steps(agent_ids):
        st = jax.vmap(env.reset_agent, in_axes=(None, 0))(jax.random.PRNGKey(0), agent_ids)
        act = jnp.ones((agent_ids.shape[0], 1))
        st = jax.vmap(env.step)(st, act)
        return jax.vmap(env.step)(st, act)

    out = two_steps(jnp.array([0, 1, 2, 0]))
    obs = np.asarray(out.obs)
    np.testing.assert_allclose(obs[0], obs[3])  # same agent, same key: same state
    assert np.max(np.abs(obs[1] - obs[0])) > 1e-4  # stronger actuator
    assert np.max(np.abs(obs[2] - obs[0])) > 1e-4  # heavier bodies
    np.testing.assert_array_equal(np.asarray(out.info["agent_id"]), [0, 1, 2, 0])
    # agent 0 equals the unwrapped env
    ref = pendulum.step(pendulum.step(pendulum.reset(jax.random.PRNGKey(0)), jnp.ones(1)), jnp.ones(1))
    np.testing.assert_allclose(obs[0], np.asarray(ref.obs), rtol=1e-4, atol=1e-5)
