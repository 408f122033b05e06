"""jnigt.flax_utils.AggregatorTrainState: flax training through a jnigt aggregator."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jnigt
from jnigt.flax_utils import AggregatorTrainState


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(8)(x)))


def _data(n_agents=3, per_agent=4, steps=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, n_agents, per_agent, 2)).astype(np.float32)
    y = (x[..., :1] * 2.0 - x[..., 1:]).astype(np.float32)
    counts = rng.integers(1, per_agent + 1, size=(steps, n_agents)).astype(np.int32)
    return x, y, counts


def test_flax_train_state_matches_the_plain_optax_path():
    model = _Net()
    x, y, counts = _data()
    params = model.init(jax.random.key(0), x[0, 0])["params"]

    @jax.jit
    def grad_sums(p, xs, ys, c):
        # agent i's sum of its first c_i per-example gradients
        def one(xi, yi, ci):
            def loss(p):
                err = (model.apply({"params": p}, xi) - yi)[:, 0] ** 2
                return jnp.sum(jnp.where(jnp.arange(xi.shape[0]) < ci, err, 0.0))

            return jax.grad(loss)(p)

        return jax.vmap(one)(xs, ys, c)

    tx = jnigt.rennala(jnigt.nigt(0.05, 0.5), batch_size=5)
    state = AggregatorTrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @jax.jit
    def flax_step(state, xs, ys, c):
        return state.apply_gradients(grads=grad_sums(state.params, xs, ys, c), counts=c)

    p_ref, s_ref = params, tx.init(params)
    ref_update = jax.jit(tx.update)
    for t in range(x.shape[0]):
        state = flax_step(state, x[t], y[t], counts[t])
        g = grad_sums(p_ref, x[t], y[t], counts[t])
        upd, s_ref = ref_update(g, s_ref, p_ref, counts=counts[t])
        p_ref = optax.apply_updates(p_ref, upd)
        chex.assert_trees_all_close(state.params, p_ref, atol=1e-6)
    assert int(state.step) == int(s_ref.rounds) >= 2

    def mse(p):
        return float(jnp.mean((model.apply({"params": p}, x.reshape(-1, 2)) - y.reshape(-1, 1)) ** 2))

    assert mse(state.eval_params()) < 0.7 * mse(params)  # it trains
    chex.assert_trees_all_close(state.eval_params(), jnigt.nigt_eval_params(p_ref, s_ref), atol=1e-6)
    with pytest.raises(TypeError, match="counts="):
        state.apply_gradients(grads=grad_sums(state.params, x[0], y[0], counts[0]))


@pytest.mark.parametrize(
    "wrap, name",
    [
        (lambda agg: optax.apply_if_finite(agg, 3), "optax.apply_if_finite"),
        (
            lambda agg: optax.conditionally_transform(agg, lambda step: step >= 0),
            "optax.conditionally_transform",
        ),
        (lambda agg: optax.chain(optax.MultiSteps(agg, 2)), "optax.MultiSteps"),
    ],
)
def test_create_refuses_an_aggregator_inside_a_fallback_wrapper(wrap, name):
    # recognised from the state the wrapper's init returns, before any update is traced
    params = {"w": jnp.zeros(2)}
    agg = jnigt.rennala(jnigt.nigt(0.1, 0.5), batch_size=2)
    with pytest.raises(TypeError, match=rf"^{name} cannot wrap a jnigt aggregator.*put it inside"):
        AggregatorTrainState.create(apply_fn=None, params=params, tx=wrap(agg))
    # inside, around the inner optimizer, it is accepted and steps as usual
    inside = jnigt.rennala(optax.apply_if_finite(jnigt.nigt(0.1, 0.5), 3), batch_size=2)
    state = AggregatorTrainState.create(apply_fn=None, params=params, tx=inside)
    state = state.apply_gradients(grads={"w": jnp.ones((2, 2))}, counts=jnp.array([1, 1]))
    assert int(state.step) == 1
