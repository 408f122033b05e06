"""NIGT against docs/algorithms.md#nigt, step by step."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jnigt


def _grad(theta):
    # loss f(theta) = 0.5 * sum(a * theta^2) + b . theta  (so J = -f)
    a = np.array([1.0, 3.0, 0.5])
    b = np.array([0.2, -0.1, 0.3])
    return a * theta + b


def _spec_loop(theta0, alpha, eta, steps):
    """NIGT written as the paper writes it (ascent on J = -f), in numpy."""
    theta_prev, theta = None, np.array(theta0, np.float64)
    d = None
    thetas, tildes = [], []
    for t in range(steps):
        if t == 0:
            tilde = theta.copy()
            d = -_grad(tilde)
        else:
            tilde = theta + ((1 - eta) / eta) * (theta - theta_prev)
            d = (1 - eta) * d + eta * (-_grad(tilde))
        tildes.append(tilde)
        n = np.linalg.norm(d)
        theta_prev, theta = theta, theta + (alpha * d / n if n > 0 else 0.0)
        thetas.append(theta)
    return thetas, tildes


class NigtTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_spec_loop_and_recovers_theta(self):
        alpha, eta, steps = 0.1, 0.3, 8
        theta0 = np.array([1.0, -2.0, 0.5], np.float32)
        opt = jnigt.nigt(alpha, eta)
        update = self.variant(opt.update)
        params = {"w": jnp.asarray(theta0)}
        state = opt.init(params)
        thetas, tildes = _spec_loop(theta0, alpha, eta, steps)
        for t in range(steps):
            # the caller's params are theta~_t
            chex.assert_trees_all_close(params["w"], tildes[t], atol=1e-5)
            g = {"w": jnp.asarray(_grad(np.asarray(params["w"], np.float64)), jnp.float32)}
            upd, state = update(g, state, params)
            params = optax.apply_updates(params, upd)
            chex.assert_trees_all_close(jnigt.nigt_eval_params(params, state)["w"], thetas[t], atol=1e-5)

    def test_hand_computed_two_steps(self):
        # theta0 = 0, g0 = (3, 4) -> d0 = (3, 4), ||d0|| = 5, Delta1 = -alpha (0.6, 0.8).
        # eta = 0.5, c = 1: update1 = 2 Delta1 = (-0.12, -0.16) with alpha = 0.1.
        opt = jnigt.nigt(0.1, 0.5)
        params = jnp.zeros(2)
        state = opt.init(params)
        upd, state = opt.update(jnp.array([3.0, 4.0]), state)
        chex.assert_trees_all_close(upd, jnp.array([-0.12, -0.16]), atol=1e-7)
        params = params + upd
        chex.assert_trees_all_close(
            jnigt.nigt_eval_params(params, state), jnp.array([-0.06, -0.08]), atol=1e-7
        )
        # g1 = (0, -4): d1 = 0.5 (3, 4) + 0.5 (0, -4) = (1.5, 0); Delta2 = (-0.1, 0)
        # update2 = 2 Delta2 - Delta1 = (-0.2 + 0.06, 0 + 0.08)
        upd, state = opt.update(jnp.array([0.0, -4.0]), state)
        chex.assert_trees_all_close(upd, jnp.array([-0.14, 0.08]), atol=1e-7)
        chex.assert_trees_all_close(
            jnigt.nigt_eval_params(params + upd, state), jnp.array([-0.16, -0.08]), atol=1e-7
        )

    def test_momentum_one_is_normalised_sgd(self):
        opt = jnigt.nigt(0.5, 1.0)
        state = opt.init(jnp.zeros(2))
        for g in ([3.0, 4.0], [-1.0, 0.0], [0.0, 2.0]):
            g = jnp.array(g)
            upd, state = opt.update(g, state)
            chex.assert_trees_all_close(upd, -0.5 * g / jnp.linalg.norm(g), atol=1e-7)

    def test_zero_gradient_gives_zero_step_not_nan(self):
        opt = jnigt.nigt(0.1, 1.0)
        upd, state = opt.update(jnp.zeros(3), opt.init(jnp.zeros(3)))
        chex.assert_trees_all_close(upd, jnp.zeros(3))
        chex.assert_tree_all_finite(state)

    def test_schedule_learning_rate(self):
        sched = optax.piecewise_constant_schedule(1.0, {1: 0.5})
        opt = jnigt.nigt(sched, 1.0)
        state = opt.init(jnp.zeros(1))
        u0, state = opt.update(jnp.ones(1), state)
        u1, state = opt.update(jnp.ones(1), state)
        chex.assert_trees_all_close((u0, u1), (-jnp.ones(1), -0.5 * jnp.ones(1)))

    def test_eval_params_through_wrappers(self):
        opt = optax.chain(optax.clip_by_global_norm(1.0), jnigt.nigt(0.1, 0.5))
        state = opt.init(jnp.zeros(2))
        upd, state = opt.update(jnp.array([3.0, 4.0]), state)
        chex.assert_trees_all_close(jnigt.nigt_eval_params(upd, state), jnp.array([-0.06, -0.08]), atol=1e-7)
        with pytest.raises(ValueError, match="NigtState"):
            jnigt.nigt_eval_params(jnp.zeros(2), optax.sgd(0.1).init(jnp.zeros(2)))

    def test_bad_arguments_name_the_argument(self):
        for bad in (0.0, 1.5, -0.1):
            with pytest.raises(ValueError, match="momentum"):
                jnigt.nigt(0.1, bad)
        with pytest.raises(TypeError, match="momentum"):
            jnigt.nigt(0.1, "0.5")
        with pytest.raises(ValueError, match="learning_rate"):
            jnigt.nigt(-1.0, 0.5)
        with pytest.raises(TypeError, match="learning_rate"):
            jnigt.nigt(None, 0.5)
