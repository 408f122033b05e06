"""The aggregators under shard_map and pmap on 8 host CPU devices (see conftest)."""

import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import jnigt

N_DEV = 8
N_AGENTS = 16


def _mesh():
    return jax.make_mesh((N_DEV,), ("agents",), axis_types=(jax.sharding.AxisType.Auto,))


def _data(rounds=3, seed=0):
    rng = np.random.default_rng(seed)
    grads = {
        "w": rng.normal(size=(rounds, N_AGENTS, 4, 3)).astype(np.float32),
        "b": rng.normal(size=(rounds, N_AGENTS, 3)).astype(np.float32),
    }
    counts = rng.integers(0, 4, size=(rounds, N_AGENTS)).astype(np.int32)
    counts[:, 0] = np.maximum(counts[:, 0], 1)
    counts[1, :] = 2  # every agent present in round 1 (Malenia can close)
    grads["b"][2, 5] = np.nan  # one poisoned agent, on device 2
    return grads, counts


def _params():
    return {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}


def _run(opt, grads, counts, step_fn):
    params = _params()
    state = opt.init(params)
    for r in range(counts.shape[0]):
        g = jax.tree.map(lambda x: x[r], grads)
        params, state = step_fn(params, state, g, counts[r])
        jax.block_until_ready(params)
    return params, state


def _single_step(opt):
    @jax.jit
    def step(params, state, g, c):
        upd, state = opt.update(g, state, params, counts=c)
        return optax.apply_updates(params, upd), state

    return step


METHODS = {
    "rennala": lambda axis, n: jnigt.rennala(
        jnigt.nigt(0.1, 0.5), batch_size=12, init_batch_size=20, axis_name=axis
    ),
    "rennala_adam": lambda axis, n: jnigt.rennala(optax.adam(0.1), batch_size=12, axis_name=axis),
    "malenia": lambda axis, n: jnigt.malenia(
        jnigt.nigt(0.1, 0.5), batch_size=16, num_agents=n, axis_name=axis
    ),
    "malenia_drop": lambda axis, n: jnigt.malenia(
        jnigt.nigt(0.1, 0.5), batch_size=16, num_agents=n, axis_name=axis, drop_after=1
    ),
    "synchronized": lambda axis, n: jnigt.synchronized(
        optax.sgd(0.1), per_agent=1, num_agents=n, axis_name=axis
    ),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_shard_map_equals_single_device(method):
    grads, counts = _data()
    p1, s1 = _run(
        METHODS[method](None, N_AGENTS), grads, counts, _single_step(METHODS[method](None, N_AGENTS))
    )
    opt8 = METHODS[method]("agents", N_AGENTS // N_DEV)
    # the multi-device wrapper keeps device-local per-agent state; build it from a per-device init
    p8, s8 = _run_sharded(opt8, grads, counts)
    chex.assert_trees_all_close(p8, p1, atol=1e-5, rtol=1e-5)
    assert int(s8.rounds) == int(s1.rounds) and int(s1.rounds) >= 1
    assert int(jnp.sum(s8.dropped)) == int(s1.dropped) == 1


def _run_sharded(opt, grads, counts):
    mesh = _mesh()

    def body(g, c):
        # the whole run inside one shard_map: a scan over rounds (collectives stay in one program)
        params = _params()
        state = opt.init(params)

        def round_(carry, xs):
            params, state = carry
            g_r, c_r = xs
            upd, state = opt.update(g_r, state, params, counts=c_r)
            return (optax.apply_updates(params, upd), state), None

        (params, state), _ = jax.lax.scan(round_, (params, state), (g, c))
        return params, state.rounds, state.dropped[None]

    f = jax.jit(
        jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(P(None, "agents"), P(None, "agents")),
            out_specs=(P(), P(), P("agents")),
        )
    )
    params, rounds, dropped = f(grads, counts)
    return params, jnigt.AggregatorState(
        acc=None,
        counts=None,
        rounds=rounds,
        closed=None,
        dropped=dropped,
        starved=None,
        active=None,
        inner_state=None,
    )


def test_pmap_equals_single_device():
    grads, counts = _data()
    opt1 = METHODS["rennala"](None, N_AGENTS)
    p1, _ = _run(opt1, grads, counts, _single_step(opt1))
    opt = METHODS["rennala"]("agents", N_AGENTS // N_DEV)

    def body(g, c):
        params = _params()
        state = opt.init(params)

        def round_(carry, xs):
            params, state = carry
            upd, state = opt.update(xs[0], state, params, counts=xs[1])
            return (optax.apply_updates(params, upd), state), None

        (params, _), _ = jax.lax.scan(round_, (params, state), (g, c))
        return params

    per_dev = lambda x: x.reshape(x.shape[0], N_DEV, -1, *x.shape[2:]).swapaxes(0, 1)
    out = jax.pmap(body, axis_name="agents")(jax.tree.map(per_dev, grads), per_dev(counts))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], out), p1, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], out), jax.tree.map(lambda x: x[-1], out))


def _count_psums(jaxpr, big):
    """(psums over a gradient-sized operand, small psums) in a jaxpr, through sub-jaxprs."""
    n_big = n_small = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "psum" or eqn.primitive.name.startswith("psum"):
            if any(np.prod(v.aval.shape) >= big for v in eqn.invars):
                n_big += 1
            else:
                n_small += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            b, s = _count_psums(sub, big)
            n_big, n_small = n_big + b, n_small + s
    return n_big, n_small


@pytest.mark.parametrize("method", ["rennala", "malenia", "synchronized"])
def test_one_gradient_psum_per_update(method):
    opt = METHODS[method]("agents", 2)
    params = _params()
    state = opt.init(params)
    g = jax.tree.map(lambda x: jnp.zeros((2,) + x.shape), params)
    mesh = _mesh()

    def f(g, c):
        return opt.update(g, state, params, counts=c)[0]

    jaxpr = jax.make_jaxpr(
        jax.shard_map(
            f,
            mesh=mesh,
            in_specs=(P("agents"), P("agents")),
            out_specs=P(),
        )
    )(jax.tree.map(lambda x: jnp.tile(x, (N_DEV,) + (1,) * (x.ndim - 1)), g), jnp.ones(2 * N_DEV, jnp.int32))
    n_big, n_small = _count_psums(jaxpr.jaxpr, big=12)
    assert n_big == 1, (n_big, n_small)
