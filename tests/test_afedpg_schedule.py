"""AFedPG along its known schedule (docs/algorithms.md#afedpg): under charge "horizon" without jitter the
equal-time runner samples a block of arrivals in one batch (Afedpg.fill, Afedpg.advance_in_blocks). Checked
against the one-at-a-time path (same arrivals, keys, env steps; parameters within float rounding: a vmapped
gradient is compiled with another summation order) and against the event heap of jnigt.testing."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnigt import testing as ref
from jnigt import timing as T
from jnigt.experiments import EqualTimeRunner, time_grid
from jnigt.training import TrainConfig, Trainer

LQR = dict(
    env="lqr",
    backend=None,
    policy="linear",
    method="afedpg",
    num_agents=4,
    horizon=6,
    discount=0.9,
    eval_episodes=2,
    learning_rate=0.1,
    momentum=0.3,
    step_model="sqrt",
    comm_model="sqrt",
)


def test_block_size_follows_the_schedule():
    sqrt = lambda n: T.make_timing(n, "sqrt", "sqrt")
    assert T.afedpg_block_size(sqrt(10), 100) == 5  # ~ arrivals between two of the fastest agent's
    assert T.afedpg_block_size(sqrt(100), 100) == 19
    assert T.afedpg_block_size(T.make_timing(10, "equal"), 100) == 10  # all n arrive together
    assert T.afedpg_block_size(T.make_timing(1, "sqrt"), 100) == 1
    assert T.afedpg_block_size(T.make_timing(3, "sqrt", dead=3), 100) == 1
    # charge "taken" and jitter make the schedule depend on trajectories or seeds: one arrival at a time
    for kw in ({"charge": "taken"}, {"jitter": 0.3}, {}):
        tr = Trainer(TrainConfig(**LQR, **kw), num_devices=1)
        assert (tr.rounds.advance is None) == bool(kw) and tr.rounds.block == (0 if kw else 2)


@pytest.mark.parametrize("block", [2, 4])
def test_blocks_make_the_arrivals_of_one_at_a_time(block):
    """16 arrivals in blocks (block 4 > the schedule's blocks of about 2: the cut at a repeated agent
    matters) against Afedpg.steps: the same agents, server times, env steps and key; parameters equal up
    to float rounding."""
    tr = Trainer(TrainConfig(**LQR), num_devices=1)
    st0 = tr.init(0)
    seq, m_seq = jax.jit(lambda s: tr.rounds.steps(s, 16))(st0)
    method = dataclasses.replace(tr.rounds, block=block)

    def record(c, m, old, new):
        i, times, steps = c
        return i + 1, times.at[i].set(m["time"]), steps.at[i].set(m["env_steps"])

    zeros = (jnp.int32(0), jnp.zeros(16), jnp.zeros(16, jnp.int32))
    st, (i, times, steps) = jax.jit(lambda s: method.advance(s, zeros, lambda st, c: c[0] < 16, record))(st0)
    assert int(i) == 16 and int(st.round) == 16
    np.testing.assert_array_equal(times, m_seq["time"])
    np.testing.assert_array_equal(steps, m_seq["env_steps"])
    chex.assert_trees_all_equal(jax.random.key_data(st.key), jax.random.key_data(seq.key))
    chex.assert_trees_all_equal(st.method.next_finish, seq.method.next_finish)
    chex.assert_trees_all_close(
        (st.params, st.method.stale), (seq.params, seq.method.stale), rtol=1e-5, atol=1e-6
    )
    stale_moved = [
        float(jnp.max(jnp.abs(s - p)))
        for s, p in zip(jax.tree.leaves(st.method.stale), jax.tree.leaves(st0.params))
    ]
    assert max(stale_moved) > 1e-3  # the agents really hold different, stale points


def test_runner_in_blocks_equals_one_at_a_time_and_the_event_heap():
    """K = 2 vmapped runs on a 6-point grid: records equal to the one-at-a-time runner (eval returns
    within float rounding), and each grid point counts the event heap's server updates ending by it."""
    cfg = TrainConfig(**LQR)
    blocks = Trainer(cfg, num_devices=1)
    single = Trainer(cfg, num_devices=1)
    single.rounds = dataclasses.replace(single.rounds, block=0)
    times = time_grid(float(blocks.next_time(blocks.init(0))) * 12, 6)
    args = ([0, 1], [0.1, 0.05], [0.3, 0.5], times)
    got = EqualTimeRunner(blocks, fast_compile=True)(*args)
    want = EqualTimeRunner(single, fast_compile=True)(*args)
    for name in ("rounds", "env_steps", "grads_used", "comms"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_allclose(got.eval_return, want.eval_return, rtol=1e-4)
    n, H = cfg.num_agents, cfg.horizon
    h = T.step_times(n, "sqrt").astype(np.float32)
    s = int(got.rounds[0, -1]) + n
    _, server = ref.afedpg_heap(H * h, np.tile(H * h, (s, 1)), T.comm_times(n, "sqrt"))
    np.testing.assert_array_equal(got.rounds[0], np.searchsorted(server, times, side="right"))
    assert got.rounds[0, -1] > 4 * blocks.rounds.block  # many blocks, cut by grid points in between
