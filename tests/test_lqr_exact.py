"""Exact stationarity on LQR (jnigt/experiments/lqr_exact.py): the exact records on the equal-time grid,
time to eps, rate fits, the heterogeneous LQR and the arrival-rate-weighted stationary point."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnigt.experiments import lqr_exact
from jnigt.experiments.sweep import EqualTimeRunner, concat
from jnigt.training import TrainConfig, Trainer
from jnigt_envs import LQR, HeterogeneousLQR, linear_policy_to_wbs, make_env


def _config(**kw):
    base = dict(
        env="lqr",
        backend=None,
        policy="linear",
        fixed_std=0.5,
        mean_init="zeros",
        num_agents=2,
        step_model="equal",
        horizon=8,
        discount=0.9,
        batch_size=2,
        learning_rate=0.05,
        momentum=0.5,
        rounds=10,
        eval_every=10,
        eval_episodes=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def _fd_grad(env, W, b, std, horizon, discount, h=1e-6):
    """Central finite differences of env.exact_objective over (W, b), float64."""
    with jax.enable_x64(True):
        x = np.concatenate([np.asarray(W, np.float64).reshape(-1), np.asarray(b, np.float64)])
        nw = np.asarray(W).size
        shape = np.asarray(W).shape

        def f(x):
            return float(
                env.exact_objective(
                    x[:nw].reshape(shape), x[nw:], np.asarray(std, np.float64), horizon, discount, jnp.float64
                )
            )

        g = np.zeros_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = (f(x + e) - f(x - e)) / (2 * h)
        return g, f(x)


def test_fixed_std_policy_has_mean_parameters_only_and_starts_at_zero():
    from jnigt.training.build import make_policy

    policy = make_policy(_config(), LQR())
    params = policy.init(jax.random.key(3))
    assert set(params["params"]) == {"mean"}
    W, b, std = linear_policy_to_wbs(policy, params)
    chex.assert_trees_all_equal((W, b, std), (jnp.zeros((1, 2)), jnp.zeros(1), jnp.full(1, 0.5)))
    with pytest.raises(ValueError, match="fixed_std"):
        TrainConfig(fixed_std=0.0)
    with pytest.raises(ValueError, match="fixed_std"):
        lqr_exact.problem(Trainer(_config(fixed_std=None), num_devices=1))


def test_exact_records_on_the_grid_equal_finite_differences():
    tr = Trainer(_config(), num_devices=1)
    exact = lqr_exact.exact_records(tr, j_star=-1.0)
    p = lqr_exact.problem(tr)

    def records(params):  # the exact records, and theta_t itself to check them against
        theta = p.flatten(params)
        return {**exact(params), **{f"theta_{i}": theta[i] for i in range(theta.size)}}

    runner = EqualTimeRunner(tr, fast_compile=True, extra_records=records)
    times = np.array([0.0, 24.0, 60.0], np.float32)
    runs = runner(np.array([0, 1]), 0.05, 0.5, times)
    assert runs.extra["exact_grad_norm"].shape == (2, 3)
    assert runs.take(np.array([1])).extra["exact_gap"].shape == (1, 3)
    both = concat([runs, runs.take(np.array([1]))])
    np.testing.assert_array_equal(both.extra["exact_gap"][2], runs.extra["exact_gap"][1])
    assert both.rows()[-1]["exact_grad_norm"] == runs.extra["exact_grad_norm"][1, -1]
    thetas = np.stack([runs.extra[f"theta_{i}"] for i in range(3)], -1)  # [K, G, 3]: b, W^T
    assert np.all(thetas[:, 0] == 0) and np.all(thetas[:, -1] != 0)  # W_0 = 0, b_0 = 0; then it moves
    with jax.enable_x64(True):
        f = jax.jit(
            lambda x: tr.env.exact_objective(x[None, 1:], x[:1], jnp.full(1, 0.5), 8, 0.9, jnp.float64)
        )
        for theta in thetas.reshape(-1, 3).astype(np.float64):
            fd = [(f(theta + e) - f(theta - e)) / 2e-6 for e in 1e-6 * np.eye(3)]
            i, j = np.argwhere(np.all(thetas == theta.astype(np.float32), -1))[0]
            np.testing.assert_allclose(runs.extra["exact_grad_norm"][i, j], np.linalg.norm(fd), rtol=1e-4)
            np.testing.assert_allclose(runs.extra["exact_gap"][i, j], -1.0 - f(theta), rtol=1e-5)
    assert np.all(runs.extra["exact_grad_norm"][:, -1] < runs.extra["exact_grad_norm"][:, 0])  # it learns


def test_time_to_eps_is_the_first_time_the_curve_stays_below():
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    curves = np.array(
        [
            [9.0, 5.0, 0.5, 0.5, 0.5],  # reaches 1 at t=2, stays
            [9.0, 0.5, 5.0, 0.5, 0.5],  # dips below 1 at t=1, leaves, back at t=3
            [9.0, 5.0, 0.5, 0.5, 5.0],  # leaves again at the end: never stays
            [9.0, 0.5, np.nan, 0.5, 0.5],  # NaN counts as not below
        ]
    )
    t = lqr_exact.time_to_eps(times, curves, [10.0, 1.0, 0.1])
    np.testing.assert_array_equal(t[:, 0], [0.0, 0.0, 0.0, 3.0])  # the NaN blocks even eps = 10
    np.testing.assert_array_equal(t[:, 1], [2.0, 3.0, np.inf, 3.0])
    np.testing.assert_array_equal(t[:, 2], [np.inf] * 4)
    q = lqr_exact.quantiles(t[:, 1], (0.0, 0.5, 1.0))
    np.testing.assert_array_equal(q, [2.0, 3.0, np.inf])
    np.testing.assert_array_equal(lqr_exact.quantiles([1.0, 3.0, np.inf], (0.5, 0.75)), [3.0, np.inf])
    with pytest.raises(ValueError, match="values"):
        lqr_exact.time_to_eps(times, curves[:, :3], [1.0])


def test_fit_rate_recovers_synthetic_power_laws():
    eps = np.logspace(-1, -3, 7)
    rng = np.random.default_rng(0)
    for slope in (2.0, 3.5):
        times = 5.0 * eps[None] ** -slope * np.exp(0.3 * rng.standard_normal((12, eps.size)))
        r = lqr_exact.fit_rate(eps, times, bootstrap=400)
        assert r.lo < slope < r.hi and abs(r.slope - slope) < 0.15 and r.hi - r.lo < 0.5
    exact = lqr_exact.fit_rate(eps, np.tile(eps**-3.0, (4, 1)), bootstrap=50)
    np.testing.assert_allclose([exact.slope, exact.lo, exact.hi], 3.0, rtol=1e-9)
    # runs that never got there (inf) drop the smallest eps from the fit
    times = np.tile(eps**-2.0, (5, 1))
    times[:3, -1] = np.inf
    r = lqr_exact.fit_rate(eps, times, bootstrap=50)
    assert r.eps.size == eps.size - 1 and abs(r.slope - 2.0) < 1e-9


def test_theory_rates_and_ratios():
    from jnigt import theory

    c = theory.Constants(L_g=10.0, L_h=10.0, D=10.0, sigma=30.0, gamma=0.0)
    eps = np.logspace(0, -2, 6)
    h = np.full(10, 8.0)
    for method, (comp, _) in lqr_exact.THEORY_EXPONENTS.items():
        s = lqr_exact.predicted_rate(method, h, 0.0, eps, c)
        assert min(comp) - 0.05 <= s <= max(comp) + 0.05, (method, s)
    ratios = lqr_exact.predicted_ratios(h, 0.0, eps, c)
    t = theory.predicted_totals(h, 0.0, eps[0], c)
    np.testing.assert_allclose(ratios["rennala/afedpg"][0], t["rennala_nigt"] / t["afedpg"])
    assert ratios["rennala/synchronized"].shape == eps.shape


def _scalar(a, b, q=1.0, r=0.1):
    return LQR(A=[[a]], B=[[b]], Q=[[q]], R=[[r]], noise_std=0.1, init_std=1.0)


def test_heterogeneous_lqr_objective_is_the_mean_of_the_agents_and_samples_each_system():
    sys0, sys1 = LQR(), LQR(B=((0.5,), (0.0,)), noise_std=0.2)
    het = HeterogeneousLQR([sys0, sys1])
    W, b, std = jnp.array([[-0.3, -0.7]]), jnp.array([0.1]), jnp.array([0.4])

    @jax.jit
    def values():
        singles = [s.exact_objective(W, b, std, 6, 0.9) for s in (sys0, sys1)]
        three = het.exact_objective(W, b, std, 6, 0.9, num_agents=3)  # agents 0, 1, 2 run systems 0, 1, 0
        weighted = het.exact_objective(W, b, std, 6, 0.9, weights=[3.0, 1.0])
        return singles, three, weighted

    (j0, j1), three, weighted = values()
    np.testing.assert_allclose(three, (2 * j0 + j1) / 3, rtol=1e-6)
    np.testing.assert_allclose(weighted, 0.75 * j0 + 0.25 * j1, rtol=1e-6)

    # agent i runs system i mod 2: the same first step as that system alone
    @jax.jit
    def first_steps(key, action):
        het_steps = jax.vmap(lambda a: het.step(het.reset_agent(key, a), action))(jnp.array([0, 1, 3]))
        one = [s.step(s.reset(key), action) for s in (sys0, sys1, sys1)]
        return (het_steps.obs, het_steps.reward), (
            jnp.stack([s.obs for s in one]),
            jnp.stack([s.reward for s in one]),
        )

    got, want = first_steps(jax.random.key(5), jnp.array([0.3]))
    chex.assert_trees_all_close(got, want, rtol=1e-6)
    assert isinstance(make_env("lqr_hetero"), HeterogeneousLQR)
    with pytest.raises(ValueError, match="same sizes"):
        HeterogeneousLQR([LQR(), _scalar(0.5, 1.0)])


def test_arrival_rate_weighted_stationary_point_of_two_scalar_agents():
    sys0, sys1 = _scalar(0.9, 0.5), _scalar(0.5, -1.0)
    cfg = _config(step_model=(1.0, 10.0), horizon=2, fixed_std=0.3)
    tr = Trainer(cfg, num_devices=1, env=HeterogeneousLQR([sys0, sys1]))
    w = lqr_exact.arrival_rate_weights(tr.timing, 2)
    np.testing.assert_allclose(w, [10 / 11, 1 / 11])  # 1 / (2 h_i)

    # by hand, H = 2, bias 0 (J is even in it): J_i(W) = -[q v0 + r (W^2 v0 + s^2)
    #   + g (q S1 + r (W^2 S1 + s^2))],  S1 = (a + b W)^2 v0 + b^2 s^2 + nu^2
    def poly(sys):
        a, b, q, r = sys.A[0, 0], sys.B[0, 0], sys.Q[0, 0], sys.R[0, 0]
        v0, s2, nu2, g = 1.0, 0.09, 0.01, 0.9
        P = np.polynomial.Polynomial
        S1 = P([a, b]) ** 2 * v0 + b * b * s2 + nu2
        return -(q * v0 + r * (P([0, 0, v0]) + s2) + g * (q * S1 + r * (P([0, 0, 1]) * S1 + s2)))

    def argmax(J):
        roots = [x.real for x in J.deriv().roots() if abs(x.imag) < 1e-9]
        return max(roots, key=J)

    want_w = argmax(w[0] * poly(sys0) + w[1] * poly(sys1))
    want_u = argmax(0.5 * poly(sys0) + 0.5 * poly(sys1))
    assert abs(want_w - want_u) > 0.1  # the weighting matters here
    for weights, want in ((w, want_w), (None, want_u)):
        point = lqr_exact.stationary_point(tr, weights=weights)
        bias, W = point.theta  # leaves in tree order: bias, kernel
        np.testing.assert_allclose([bias, W], [0.0, want], atol=1e-8)
    # the uniform objective's gradient at the weighted point: |dJ/dW| of the polynomial (dJ/db = 0 there)
    floor = lqr_exact.gradient_norm(tr, [0.0, want_w])
    np.testing.assert_allclose(floor, abs((0.5 * poly(sys0) + 0.5 * poly(sys1)).deriv()(want_w)), rtol=1e-8)
    assert floor > 0.01
