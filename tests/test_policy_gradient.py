"""Policy and GPOMDP gradient tests: exactness on LQR, per-agent bookkeeping, a real Brax env."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jnigt_envs
from jnigt.gradients import (
    GaussianPolicy,
    gpomdp_gradient,
    make_policy,
    rollout,
    trajectory_gradient,
)

H, GAMMA, N = 10, 0.8, 50_000
LQR_KW = dict(init_std=0.3, s0_mean=(1.0, 0.0))


# ----------------------------------------------------------------------------- policy
def test_policy_shapes_and_log_prob():
    pol = GaussianPolicy(obs_size=3, action_size=2, action_scale=2.0)
    params = pol.init(jax.random.PRNGKey(0))
    obs = jnp.ones((5, 3))
    a, u = pol.sample(params, obs, jax.random.PRNGKey(1))
    chex.assert_shape([a, u], (5, 2))
    assert jnp.all(jnp.abs(a) <= 2.0)
    chex.assert_trees_all_close(a, 2.0 * jnp.tanh(u))
    mu, std = pol.distribution(params, obs)
    ref = jnp.sum(-0.5 * ((u - mu) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi), -1)
    chex.assert_trees_all_close(pol.log_prob(params, obs, u), ref, rtol=1e-5)
    chex.assert_shape(pol.mean_action(params, obs), (5, 2))
    # state-independent std
    pol2 = GaussianPolicy(3, 2, state_dependent_std=False, init_std=0.7)
    p2 = pol2.init(jax.random.PRNGKey(0))
    _, std2 = pol2.distribution(p2, obs)
    chex.assert_trees_all_close(std2, jnp.full((5, 2), 0.7), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(obs_size=0, action_size=1), "obs_size"),
        (dict(obs_size=2, action_size=1, hidden_sizes=(4, -1)), "hidden_sizes"),
        (dict(obs_size=2, action_size=1, activation="sigmoidz"), "activation"),
        (dict(obs_size=2, action_size=1, action_scale=-1.0), "action_scale"),
        (dict(obs_size=2, action_size=1, min_std=-1.0), "min_std"),
    ],
)
def test_policy_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GaussianPolicy(**kwargs)


def test_make_policy_reads_env_sizes():
    env = jnigt_envs.LQR()
    pol = make_policy(env, hidden_sizes=(8,))
    assert (pol.obs_size, pol.action_size) == (2, 1)


# ----------------------------------------------------------------------------- LQR ground truth
@pytest.fixture(scope="module")
def lqr_setup():
    env = jnigt_envs.LQR(**LQR_KW)
    pol = GaussianPolicy(2, 1, hidden_sizes=(), action_scale=None, state_dependent_std=False)
    params = jnigt_envs.wbs_to_linear_policy_params(pol, [[-0.3, -0.5]], [0.2], [0.5])
    _, exact = env.exact_policy_objective_and_grad(pol, params, H, GAMMA)
    return env, pol, params, exact


def _correct(pol, env, params, key):
    # ascent direction g = -grad
    return jax.tree.map(jnp.negative, trajectory_gradient(pol, env, params, key, 0, H, GAMMA).grad)


def _wrong_discount(pol, env, params, key):
    """Deliberately wrong: reward-to-go weighted gamma^(h-t) instead of gamma^h."""
    obs, u, r, alive = rollout(pol, env, params, key, 0, H)
    t = jnp.arange(H)
    w = jnp.where(t[None, :] >= t[:, None], GAMMA ** (t[None, :] - t[:, None]), 0.0)  # [t, h]
    rtg = (w @ r) * alive
    return jax.grad(lambda p: jnp.sum(rtg * pol.log_prob(p, obs, u)))(params)


def _wrong_sign(pol, env, params, key):
    """Deliberately wrong: the loss gradient reported as the ascent direction."""
    return trajectory_gradient(pol, env, params, key, 0, H, GAMMA).grad


@pytest.fixture(scope="module")
def mc_samples(lqr_setup):
    """N per-trajectory samples of each estimator, computed in ONE jitted vmapped call."""
    env, pol, params, _ = lqr_setup
    ests = {"correct": _correct, "wrong_discount": _wrong_discount, "wrong_sign": _wrong_sign}
    keys = jax.random.split(jax.random.PRNGKey(42), N)
    fn = jax.jit(jax.vmap(lambda k: {n: e(pol, env, params, k) for n, e in ests.items()}))
    return fn(keys)


def _passes_unbiasedness_check(samples, exact):
    """|MC mean - exact| <= 4.5 * sd / sqrt(N) + 1e-3 for every coordinate."""
    ok = True
    for s, e in zip(jax.tree.leaves(samples), jax.tree.leaves(exact)):
        s = np.asarray(s, np.float64)
        mean, sd = s.mean(0), s.std(0, ddof=1)
        bound = 4.5 * sd / np.sqrt(N) + 1e-3
        ok &= bool(np.all(np.abs(mean - np.asarray(e)) <= bound))
    return ok


def test_gpomdp_unbiased_on_lqr(lqr_setup, mc_samples):
    assert _passes_unbiasedness_check(mc_samples["correct"], lqr_setup[3])


@pytest.mark.parametrize("wrong", ["wrong_discount", "wrong_sign"])
def test_check_rejects_wrong_estimators(lqr_setup, mc_samples, wrong):
    assert not _passes_unbiasedness_check(mc_samples[wrong], lqr_setup[3])


def test_exact_lqr_gradient_matches_finite_differences(lqr_setup):
    env, pol, params, _ = lqr_setup
    W, b, std = jnigt_envs.linear_policy_to_wbs(pol, params)
    _, (gW, gb, gs) = env.exact_objective_and_grad(W, b, std, H, GAMMA)
    eps = 1e-2
    f = lambda W, b, s: float(env.exact_objective(W, b, s, H, GAMMA))
    fd_b = (f(W, b + eps, std) - f(W, b - eps, std)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(gb)[0], fd_b, rtol=1e-2)
    # the Riccati controller beats the test policy (deterministic part)
    K = env.riccati_gain(GAMMA)
    assert K.shape == (1, 2)
    j_opt = f(-K, jnp.zeros(1), std)
    assert j_opt >= f(W, b, std)


# ----------------------------------------------------------------------------- per-agent bookkeeping
def test_per_agent_sums_match_loop():
    env = jnigt_envs.MirroredObservation(jnigt_envs.LQR())
    pol = make_policy(env, hidden_sizes=(8,))
    params = pol.init(jax.random.PRNGKey(0))
    agent_ids = jnp.array([0, 1, 1, 0, 1, 2, 0], jnp.int32)
    valid = jnp.array([True, True, False, True, True, True, True])
    num_agents, key = 4, jax.random.PRNGKey(3)
    f = jax.jit(gpomdp_gradient, static_argnames=("policy", "env", "num_agents", "horizon"))
    out = f(
        policy=pol,
        env=env,
        params=params,
        key=key,
        agent_ids=agent_ids,
        num_agents=num_agents,
        horizon=6,
        discount=0.95,
        valid=valid,
    )
    keys = jax.random.split(key, len(agent_ids))
    tg = jax.jit(trajectory_gradient, static_argnums=(0, 1, 5))
    sums = [jax.tree.map(jnp.zeros_like, params) for _ in range(num_agents)]
    counts = np.zeros(num_agents, np.int32)
    steps, rets = 0, []
    for b in range(len(agent_ids)):
        r = tg(pol, env, params, keys[b], agent_ids[b], 6, 0.95)
        rets.append(r.ret)
        if valid[b]:
            a = int(agent_ids[b])
            sums[a] = jax.tree.map(jnp.add, sums[a], r.grad)
            counts[a] += 1
            steps += int(r.steps)
    expected = jax.tree.map(lambda *xs: jnp.stack(xs), *sums)
    chex.assert_trees_all_close(out.grad_sums, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(out.counts), counts)
    assert int(out.env_steps) == steps == 6 * int(valid.sum())
    chex.assert_trees_all_close(out.returns, jnp.stack(rets), rtol=1e-5)
    chex.assert_shape(out.counts, (num_agents,))
    assert out.counts.dtype == jnp.int32


def test_termination_masks_steps_and_no_retrace():
    env = jnigt_envs.make_env("fast")
    pol = make_policy(env)
    params = pol.init(jax.random.PRNGKey(0))
    f = jax.jit(
        chex.assert_max_traces(gpomdp_gradient, n=1),
        static_argnames=("policy", "env", "num_agents", "horizon"),
    )
    for i in range(2):
        out = f(
            policy=pol,
            env=env,
            params=params,
            key=jax.random.PRNGKey(i),
            agent_ids=jnp.zeros(4, jnp.int32),
            num_agents=1,
            horizon=5,
            discount=0.9,
        )
    assert int(out.env_steps) == 20
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(out.grad_sums))


def test_validation_errors():
    env = jnigt_envs.LQR()
    pol = make_policy(env)
    params = pol.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="horizon"):
        trajectory_gradient(pol, env, params, key, 0, 0, 0.9)
    with pytest.raises(ValueError, match="discount"):
        trajectory_gradient(pol, env, params, key, 0, 3, 1.5)
    with pytest.raises(ValueError, match="num_agents"):
        gpomdp_gradient(pol, env, params, key, jnp.zeros(2, jnp.int32), 0, 3, 0.9)
    with pytest.raises(ValueError, match="valid"):
        gpomdp_gradient(pol, env, params, key, jnp.zeros(2, jnp.int32), 1, 3, 0.9, valid=jnp.ones(3, bool))


# ----------------------------------------------------------------------------- real physics
def test_inverted_pendulum_spring_finite():
    env = jnigt_envs.make_env("inverted_pendulum", backend="spring")
    pol = make_policy(env)
    params = pol.init(jax.random.PRNGKey(0))
    out = jax.jit(gpomdp_gradient, static_argnums=(0, 1, 5, 6))(
        pol, env, params, jax.random.PRNGKey(1), jnp.array([0, 1, 0, 1], jnp.int32), 2, 8, 0.99
    )
    assert jax.tree.structure(out.grad_sums) == jax.tree.structure(params)
    for g, p in zip(jax.tree.leaves(out.grad_sums), jax.tree.leaves(params)):
        chex.assert_shape(g, (2,) + p.shape)
        assert bool(jnp.all(jnp.isfinite(g)))
    assert 4 <= int(out.env_steps) <= 32
    np.testing.assert_array_equal(np.asarray(out.counts), [2, 2])
