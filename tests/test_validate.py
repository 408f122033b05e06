"""jnigt.validate, and NumPy numbers accepted wherever Python ones are (one validator per kind of argument)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jnigt
import jnigt_envs
from jnigt import distributed, validate
from jnigt.gradients import GaussianPolicy, gpomdp_gradient, make_policy, trajectory_gradient


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: validate.integer("n", np.int64(3)), 3),
        (lambda: validate.integers("h", [np.int64(8), 4]), (8, 4)),
        (lambda: validate.integers("h", np.array([2, 3])), (2, 3)),
        (lambda: validate.integers("h", ()), ()),
        (lambda: validate.probability("discount", np.float32(0.5)), 0.5),
        (lambda: validate.optional_positive("x", None), None),
        (lambda: validate.optional_positive("x", np.int64(2)), 2.0),
        (lambda: validate.flag("f", np.bool_(True)), True),
        (lambda: validate.text("env", "lqr"), "lqr"),
    ],
)
def test_validators_accept_and_convert(call, expected):
    got = call()
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (
            lambda: validate.integers("hidden_sizes", 64),
            TypeError,
            r"hidden_sizes must be a sequence of ints >= 1",
        ),
        (lambda: validate.integers("hidden_sizes", "64"), TypeError, "sequence of ints"),
        (lambda: validate.integers("hidden_sizes", [8, 0]), ValueError, r"got \[8, 0\]"),
        (lambda: validate.integers("hidden_sizes", [8, 1.5]), TypeError, "sequence of ints"),
        (lambda: validate.integers("hidden_sizes", np.ones((2, 2), int)), TypeError, "sequence of ints"),
        (lambda: validate.probability("discount", 1.5), ValueError, r"discount must be in \[0.0, 1.0\]"),
        (lambda: validate.probability("discount", True), TypeError, "discount must be a number"),
        (lambda: validate.flag("state_dependent_std", 1), TypeError, "must be True or False"),
        (lambda: validate.text("env", 3), TypeError, "env must be a str, got 3"),
        (
            lambda: validate.one_of("charge", "steps", ("horizon", "taken")),
            ValueError,
            "charge must be one of",
        ),
    ],
)
def test_validators_refuse_in_one_line(call, err, match):
    with pytest.raises(err, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_numpy_ints_are_accepted_wherever_an_int_is():
    i = np.int64
    env = jnigt_envs.LQR()
    pol = GaussianPolicy(obs_size=i(2), action_size=i(1), hidden_sizes=(i(4),), min_std=i(0), init_std=i(1))
    assert (pol.obs_size, pol.hidden_sizes, pol.min_std) == (2, (4,), 0.0) and type(pol.obs_size) is int
    assert pol == GaussianPolicy(obs_size=2, action_size=1, hidden_sizes=(4,), min_std=0.0, init_std=1.0)
    # the checks run while tracing: eval_shape traces without compiling
    pol = make_policy(env, hidden_sizes=(i(4),))
    key = jax.random.PRNGKey(1)
    params = jax.eval_shape(pol.init, key)
    tg = jax.eval_shape(lambda p: trajectory_gradient(pol, env, p, key, 0, i(3), np.float32(0.9)), params)
    assert tg.steps.shape == ()
    ids = jnp.zeros(2, jnp.int32)
    pg = jax.eval_shape(lambda p: gpomdp_gradient(pol, env, p, key, ids, i(1), i(3), 0.9), params)
    assert pg.counts.shape == (1,)
    j = jax.eval_shape(lambda: env.exact_objective(jnp.zeros((1, 2)), jnp.zeros(1), jnp.ones(1), i(3), 0.9))
    assert j.shape == ()
    assert np.isfinite(env.riccati_gain(np.float32(0.9))).all()
    het = jnigt_envs.HeterogeneousLQR(jnigt_envs.two_lqr_systems())
    assert het.agent_weights(i(4)).sum() == pytest.approx(1.0)
    assert distributed.make_agent_mesh(i(1)).size == 1
    for opt in (
        jnigt.rennala(optax.sgd(0.1), i(2), i(3)),
        jnigt.malenia(optax.sgd(0.1), i(2), num_agents=i(3), drop_after=i(2)),
        jnigt.synchronized(optax.sgd(0.1), i(1), i(3)),
    ):
        assert opt.init({"w": jnp.zeros(2)}).rounds == 0
    from jnigt.experiments import sweep, tuning

    assert sweep.time_grid(i(4), i(3)).tolist() == [0.0, 2.0, 4.0]
    tuning.TuningGrid((0.1,), (0.5,), (i(2),), i(1), i(1))
