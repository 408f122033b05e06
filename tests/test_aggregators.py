"""Rennala, Malenia and the synchronised rule as Optax wrappers (single device)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jnigt


def _params():
    return {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}


def _contrib(rng, n, scale=1.0):
    return {
        "w": jnp.asarray(rng.normal(size=(n, 2, 3)) * scale, jnp.float32),
        "b": jnp.asarray(rng.normal(size=(n, 3)) * scale, jnp.float32),
    }


class RennalaTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_multisteps_with_one_agent(self):
        k, steps = 3, 10
        rng = np.random.default_rng(0)
        grads = [_contrib(rng, 1) for _ in range(steps)]
        ours = jnigt.rennala(optax.adam(0.1), batch_size=k)
        ref = optax.MultiSteps(optax.adam(0.1), every_k_schedule=k)
        p_ours, p_ref = _params(), _params()
        s_ours, s_ref = ours.init(p_ours), ref.init(p_ref)
        upd_ours, upd_ref = self.variant(ours.update), self.variant(ref.update)
        for g in grads:
            u, s_ours = upd_ours(g, s_ours, p_ours, counts=jnp.ones(1, jnp.int32))
            p_ours = optax.apply_updates(p_ours, u)
            u, s_ref = upd_ref(jax.tree.map(lambda x: x[0], g), s_ref, p_ref)
            p_ref = optax.apply_updates(p_ref, u)
            chex.assert_trees_all_close(p_ours, p_ref, atol=1e-6)
            assert bool(jnigt.has_updated(s_ours)) == bool(
                optax.MultiSteps(optax.adam(0.1), k).has_updated(s_ref)
            )
        assert int(s_ours.rounds) == steps // k

    @chex.variants(with_jit=True, without_jit=True)
    def test_pooled_mean_and_init_batch(self):
        # first round needs 5 gradients, later rounds 2
        opt = jnigt.rennala(optax.sgd(1.0), batch_size=2, init_batch_size=5)
        update = self.variant(opt.update)
        p = jnp.zeros(2)
        s = opt.init(p)
        g1 = jnp.array([[1.0, 0.0], [3.0, 3.0]])  # sums of 1 and 2 gradients
        u, s = update(g1, s, p, counts=jnp.array([1, 2]))
        chex.assert_trees_all_close(u, jnp.zeros(2))
        assert int(s.counts) == 3 and not bool(s.closed)
        g2 = jnp.array([[2.0, 6.0], [0.0, 0.0]])
        u, s = update(g2, s, p, counts=jnp.array([2, 0]))
        # pooled mean = (1+3+2, 0+3+6) / 5; sgd(1.0) returns -mean
        chex.assert_trees_all_close(u, -jnp.array([6.0, 9.0]) / 5)
        assert bool(s.closed) and int(s.rounds) == 1 and int(s.counts) == 0
        u, s = update(jnp.array([[4.0, 2.0]]), s, p, counts=jnp.array([2]))
        chex.assert_trees_all_close(u, -jnp.array([2.0, 1.0]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_non_finite_agent_is_dropped_and_counted(self):
        opt = jnigt.rennala(jnigt.nigt(0.1, 0.5), batch_size=2)
        update = self.variant(opt.update)
        p = jnp.zeros(2)
        s = opt.init(p)
        g = jnp.array([[1.0, 0.0], [jnp.nan, 1.0], [0.0, 1.0]])
        u, s = update(g, s, p, counts=jnp.array([1, 1, 1]))
        chex.assert_tree_all_finite((u, s))
        assert int(s.dropped) == 1 and int(s.rounds) == 1
        # the step follows the mean of the two finite gradients, (0.5, 0.5)
        chex.assert_trees_all_close(u, -0.2 * jnp.array([1.0, 1.0]) / jnp.sqrt(2.0), atol=1e-6)
        # an all-NaN call changes nothing but the dropped count
        u, s2 = update(jnp.full((3, 2), jnp.inf), s, p, counts=jnp.array([1, 1, 1]))
        chex.assert_trees_all_close(u, jnp.zeros(2))
        chex.assert_trees_all_close(s2.inner_state, s.inner_state)
        assert int(s2.dropped) == 4 and int(s2.counts) == 0

    def test_inner_state_untouched_until_round_closes(self):
        opt = jnigt.rennala(optax.adam(0.1), batch_size=10)
        p = _params()
        s0 = opt.init(p)
        _, s1 = opt.update(_contrib(np.random.default_rng(1), 4), s0, p, counts=jnp.full(4, 2))
        chex.assert_trees_all_close(s1.inner_state, s0.inner_state)


class MaleniaTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_fast_agent_gets_no_extra_weight(self):
        # agent i's gradients all equal g_i; the fast agent delivers 50, the slow one 2.
        g = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
        counts = jnp.array([50, 2])
        sums = jnp.asarray(g * np.asarray(counts)[:, None])
        mal = jnigt.malenia(optax.sgd(1.0), batch_size=2, num_agents=2)
        u, s = self.variant(mal.update)(sums, mal.init(jnp.zeros(2)), counts=counts)
        assert bool(s.closed)
        chex.assert_trees_all_close(u, -jnp.array([0.5, 0.5]))  # unbiased for (J_0 + J_1) / 2
        ren = jnigt.rennala(optax.sgd(1.0), batch_size=2)
        u_ren, _ = ren.update(sums, ren.init(jnp.zeros(2)), counts=counts)
        chex.assert_trees_all_close(u_ren, -jnp.array([50.0, 2.0]) / 52)  # Rennala is biased here

    @chex.variants(with_jit=True, without_jit=True)
    def test_harmonic_rule_and_accumulation(self):
        mal = jnigt.malenia(optax.sgd(1.0), batch_size=4, num_agents=2)
        update = self.variant(mal.update)
        s = mal.init(jnp.zeros(1))
        # counts (1, 3): harmonic mean 1.5 < 4/2 -> open
        u, s = update(jnp.array([[2.0], [3.0]]), s, counts=jnp.array([1, 3]))
        assert not bool(s.closed)
        chex.assert_trees_all_close(s.counts, jnp.array([1, 3]))
        # agent 0 adds one more: counts (2, 3): harmonic mean 2.4 >= 2 -> close
        u, s = update(jnp.array([[4.0], [0.0]]), s, counts=jnp.array([1, 0]))
        assert bool(s.closed)
        chex.assert_trees_all_close(u, -jnp.array([(6.0 / 2 + 3.0 / 3) / 2]))
        # a missing agent keeps the round open however many the other sends
        u, s = update(jnp.array([[0.0], [100.0]]), s, counts=jnp.array([0, 100]))
        assert not bool(s.closed)

    def test_malenia_around_an_optax_chain(self):
        mal = jnigt.malenia(optax.chain(optax.sgd(0.5), optax.scale(1.0)), batch_size=2, num_agents=3)
        u, s = mal.update(
            _contrib(np.random.default_rng(0), 3), mal.init(_params()), counts=jnp.ones(3, jnp.int32)
        )
        chex.assert_trees_all_equal_shapes(u, _params())
        assert bool(s.closed)


class SynchronizedTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_waits_for_every_agent(self):
        opt = jnigt.synchronized(optax.sgd(1.0), per_agent=2, num_agents=3)
        update = self.variant(opt.update)
        s = opt.init(jnp.zeros(1))
        u, s = update(jnp.array([[6.0], [2.0], [1.0]]), s, counts=jnp.array([5, 2, 1]))
        assert not bool(s.closed)
        u, s = update(jnp.array([[0.0], [0.0], [3.0]]), s, counts=jnp.array([0, 0, 1]))
        assert bool(s.closed)
        chex.assert_trees_all_close(u, -jnp.array([12.0 / 9]))


class BadArgumentsTest(chex.TestCase):
    def test_constructor_arguments(self):
        with pytest.raises(ValueError, match="batch_size"):
            jnigt.rennala(optax.sgd(0.1), 0)
        with pytest.raises(ValueError, match="init_batch_size"):
            jnigt.rennala(optax.sgd(0.1), 3, init_batch_size=-1)
        with pytest.raises(TypeError, match="batch_size"):
            jnigt.malenia(optax.sgd(0.1), 2.5, num_agents=2)
        with pytest.raises(ValueError, match="num_agents"):
            jnigt.malenia(optax.sgd(0.1), 2, num_agents=0)
        with pytest.raises(ValueError, match="per_agent"):
            jnigt.synchronized(optax.sgd(0.1), 0, num_agents=2)
        with pytest.raises(TypeError, match="axis_name"):
            jnigt.rennala(optax.sgd(0.1), 2, axis_name=3)

    def test_update_arguments(self):
        opt = jnigt.rennala(optax.sgd(0.1), 2)
        p = _params()
        s = opt.init(p)
        g = _contrib(np.random.default_rng(0), 3)
        with pytest.raises(TypeError, match="counts"):
            opt.update(g, s, p)
        with pytest.raises(ValueError, match="counts must have shape"):
            opt.update(g, s, p, counts=jnp.ones(2, jnp.int32))
        with pytest.raises(TypeError, match="counts must be an integer"):
            opt.update(g, s, p, counts=jnp.ones(3))
        with pytest.raises(ValueError, match="counts must be non-negative"):
            opt.update(g, s, p, counts=jnp.array([1, -1, 1]))
        with pytest.raises(ValueError, match="same leading agent axis"):
            opt.update({"w": g["w"], "b": g["b"][:2]}, s, p, counts=jnp.ones(3, jnp.int32))
        with pytest.raises(ValueError, match="shape of the params"):
            opt.update({"w": g["w"][:, :1], "b": g["b"]}, s, p, counts=jnp.ones(3, jnp.int32))
        mal = jnigt.malenia(optax.sgd(0.1), 2, num_agents=4)
        with pytest.raises(ValueError, match="num_agents=4"):
            mal.update(g, mal.init(p), p, counts=jnp.ones(3, jnp.int32))
        # the shape checks also hold under jit, before XLA sees anything
        with pytest.raises(ValueError, match="counts must have shape"):
            jax.jit(opt.update)(g, s, p, counts=jnp.ones(2, jnp.int32))
