"""Property-based tests of the aggregators (hypothesis): random counts, non-finite patterns and call
sequences against a NumPy model built on jnigt.rules. The state stays finite, every delivered gradient
is accounted for, and a round closes exactly when its rule says."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jnigt
from jnigt import rules

N, D = 3, 2  # agents, parameter size
SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@functools.cache
def _jitted(kind, batch, drop_after):
    if kind == "rennala":
        opt = jnigt.rennala(optax.sgd(1.0), batch, init_batch_size=batch + 1)
    elif kind == "malenia":
        opt = jnigt.malenia(optax.sgd(1.0), batch, num_agents=N, drop_after=drop_after)
    else:
        opt = jnigt.synchronized(optax.sgd(1.0), batch, num_agents=N)
    return opt, jax.jit(opt.update)


class Model:
    """The aggregators' documented behaviour, in NumPy, with the rules of jnigt.rules."""

    def __init__(self, kind, batch, drop_after):
        self.kind, self.batch, self.drop_after = kind, batch, drop_after
        self.tracked = kind != "rennala"
        self.acc = np.zeros((N, D))
        self.counts = np.zeros(N, np.int64)
        self.rounds = self.dropped = 0
        self.starved = np.zeros(N, np.int64)
        self.active = np.ones(N, bool)

    def step(self, g, c, finite):
        use = finite & self.active
        if self.tracked:
            good = use & (c > 0)
            starving = ~finite & self.active & good.any()
            self.starved = np.where(good, 0, self.starved + starving)
            if self.drop_after is not None:
                newly = self.active & (self.starved >= self.drop_after)
                self.active = self.active & ~newly
        self.dropped += int(np.sum(np.where(use, 0, c)))
        self.acc += np.where(use[:, None], g, 0.0)
        self.counts += np.where(use, c, 0)
        if self.drop_after is not None:
            self.dropped += int(np.sum(np.where(self.active, 0, self.counts)))
            self.acc[~self.active] = 0.0
            self.counts[~self.active] = 0
        if self.kind == "rennala":
            close = rules.rennala_ready(self.counts.sum(), self.batch + 1 if self.rounds == 0 else self.batch)
            agg = self.acc.sum(0) / max(self.counts.sum(), 1)
        elif self.kind == "malenia":
            act = self.counts[self.active]
            close = act.size > 0 and rules.malenia_ready_counts(act, self.batch, rtol=2 * rules.HARMONIC_RTOL)
            agg = (self.acc[self.active] / np.maximum(act, 1)[:, None]).sum(0) / max(act.size, 1)
        else:
            close = rules.synchronized_ready(self.counts.min(), self.batch)
            agg = self.acc.sum(0) / max(self.counts.sum(), 1)
        update = -agg if close else np.zeros(D)
        closed_total = int(self.counts.sum()) if close else 0
        if close:
            self.rounds += 1
            self.acc[:] = 0.0
            self.counts[:] = 0
        return bool(close), update, closed_total


calls = st.lists(
    st.tuples(
        st.lists(st.integers(0, 4), min_size=N, max_size=N),  # counts
        st.lists(st.sampled_from(["ok", "ok", "ok", "nan", "inf"]), min_size=N, max_size=N),
        st.integers(0, 2**31 - 1),  # values' seed
    ),
    min_size=1,
    max_size=12,
)


def _check(kind, batch, drop_after, sequence):
    opt, update = _jitted(kind, batch, drop_after)
    model = Model(kind, batch, drop_after)
    state = opt.init(jnp.zeros(D))
    delivered = used = 0
    for counts, pattern, seed in sequence:
        c = np.asarray(counts, np.int32)
        g = np.random.default_rng(seed).normal(size=(N, D)).astype(np.float32) * np.maximum(c, 1)[:, None]
        bad = np.array([p != "ok" for p in pattern])
        for i, p in enumerate(pattern):
            if p != "ok":
                g[i, seed % D] = np.nan if p == "nan" else -np.inf
        out, state = update(jnp.asarray(g), state, counts=jnp.asarray(c))
        closed, expected, closed_total = model.step(g.astype(np.float64), c.astype(np.int64), ~bad)
        delivered += int(c.sum())
        used += closed_total
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state)), state
        assert bool(state.closed) == closed, (counts, pattern, model.counts, state)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-5)
        assert int(state.rounds) == model.rounds and int(state.dropped) == model.dropped
        np.testing.assert_array_equal(
            np.asarray(state.counts).reshape(-1)[: N if model.tracked else 1],
            model.counts if model.tracked else [model.counts.sum()],
        )
        if model.tracked:
            np.testing.assert_array_equal(np.asarray(state.starved), model.starved)
            np.testing.assert_array_equal(np.asarray(state.active), model.active)
        # every delivered gradient is in a closed round, in the open round or dropped
        assert delivered == used + int(np.sum(state.counts)) + int(state.dropped)


@SETTINGS
@given(batch=st.sampled_from([1, 4, 9]), sequence=calls)
def test_rennala_property(batch, sequence):
    _check("rennala", batch, None, sequence)


@SETTINGS
@given(batch=st.sampled_from([2, 3, 6]), drop_after=st.sampled_from([None, 2]), sequence=calls)
# agent 1 delivers once, then only NaN: dropped mid-round, its earlier gradient counted as dropped
@example(
    batch=6, drop_after=2, sequence=[([1, 1, 1], ["ok"] * 3, 0)] + [([1, 1, 1], ["ok", "nan", "ok"], 1)] * 2
)
def test_malenia_property(batch, drop_after, sequence):
    _check("malenia", batch, drop_after, sequence)


@SETTINGS
@given(batch=st.sampled_from([1, 2]), sequence=calls)
def test_synchronized_property(batch, sequence):
    _check("synchronized", batch, None, sequence)
