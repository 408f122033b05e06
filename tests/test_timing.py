"""Tests for jnigt.timing: vectorised rounds against an event-by-event heap simulation."""

import heapq
import importlib.util
import pathlib
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

try:
    from jnigt import timing as T
except Exception:  # pragma: no cover - package __init__ may be mid-edit; load the module directly.
    _path = pathlib.Path(__file__).resolve().parents[1] / "jnigt" / "timing.py"
    _spec = importlib.util.spec_from_file_location("jnigt_timing_direct", _path)
    T = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = T
    _spec.loader.exec_module(T)

H = 5
N = 6


# ----------------------------------------------------------------------------------------------------------
# Reference: plain-Python event heap of (finish_time, agent); all agents reset at the round start.
# ----------------------------------------------------------------------------------------------------------
def heap_round(arrivals, rule):
    """Pops (time, agent) events until rule(counts) holds; returns (counts, close) or (counts, None)."""
    arrivals = np.asarray(arrivals)
    n, k = arrivals.shape
    counts = [0] * n
    heap = [(float(arrivals[i, 0]), i) for i in range(n)]
    heapq.heapify(heap)
    while heap:
        t, i = heapq.heappop(heap)
        if t == np.inf:
            break
        counts[i] += 1
        if rule(counts):
            return np.array(counts), t
        if counts[i] < k:
            heapq.heappush(heap, (float(arrivals[i, counts[i]]), i))
    return np.array(counts), None


def rennala_rule(batch_size):
    return lambda c: sum(c) >= batch_size


def malenia_rule(n, batch_size):
    thr = n * n / batch_size * (1 + T.HARMONIC_RTOL)
    return lambda c: min(c) >= 1 and sum(1.0 / x for x in c) <= thr


def sync_rule(per_agent):
    return lambda c: min(c) >= per_agent


def ref_wasted(arrivals, counts, close):
    arrivals = np.asarray(arrivals, np.float64)
    last = [arrivals[i, c - 1] if c > 0 else 0.0 for i, c in enumerate(counts)]
    return float(sum(close - x for x in last))


def random_timing(rng, jitter, n=N, allow_dead=False):
    kind = rng.integers(4)
    if kind == 0:  # heavy ties
        h = rng.integers(1, 4, size=n).astype(float)
    elif kind == 1:
        h = rng.uniform(1.0, 10.0, size=n)
    elif kind == 2:  # all equal
        h = np.full(n, rng.choice([1.0, 0.5, 3.0]))
    else:  # dyadic values with exact cross-agent ties (1 vs 2 vs 4)
        h = rng.choice([0.5, 1.0, 2.0, 4.0], size=n)
    if allow_dead and rng.random() < 0.3:
        h[rng.integers(n)] = np.inf
    kappa = rng.uniform(0.0, 3.0, size=n)
    return T.Timing(step_time=h, comm_time=kappa, jitter=jitter)


def check_round(rnd, arrivals, ref_counts, ref_close):
    np.testing.assert_array_equal(np.asarray(rnd.counts), ref_counts)
    np.testing.assert_allclose(float(rnd.duration), ref_close, rtol=1e-6)
    np.testing.assert_allclose(
        float(rnd.wasted), ref_wasted(arrivals, ref_counts, ref_close), rtol=1e-4, atol=1e-3
    )


# ----------------------------------------------------------------------------------------------------------
# Vectorised rounds == heap simulation
# ----------------------------------------------------------------------------------------------------------
class RoundsMatchHeapTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 0.4)
    def test_rennala(self, jitter):
        batch = 9
        rng = np.random.default_rng(1)
        fn = self.variant(lambda t, k: (T.rennala_round(t, H, batch, k), T.arrival_times(t, H, k, batch)))
        for case in range(20):
            timing = random_timing(rng, jitter, allow_dead=True)
            rnd, arr = fn(timing, jax.random.key(case))
            counts, close = heap_round(arr, rennala_rule(batch))
            assert close is not None
            check_round(rnd, arr, counts, close)
            assert int(rnd.counts.sum()) == batch
            assert np.all(np.asarray(rnd.counts)[~np.isfinite(timing.step_time)] == 0)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 0.4)
    def test_malenia(self, jitter):
        batch, k = 24, 48
        rng = np.random.default_rng(2)
        fn = self.variant(
            lambda t, key: (T.malenia_round(t, H, batch, key, k), T.arrival_times(t, H, key, k))
        )
        for case in range(20):
            timing = random_timing(rng, jitter)
            rnd, arr = fn(timing, jax.random.key(100 + case))
            counts, close = heap_round(arr, malenia_rule(N, batch))
            arr_np = np.asarray(arr)
            if close is None or any(c == k and arr_np[i, k - 1] < close for i, c in enumerate(counts)):
                # Rule not met within k arrivals per agent, or an agent ran out of buffer: duration = inf.
                assert float(rnd.duration) == np.inf
                continue
            check_round(rnd, arr, counts, close)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 0.4)
    def test_synchronized(self, jitter):
        per_agent = 3
        rng = np.random.default_rng(3)
        fn = self.variant(
            lambda t, k: (T.synchronized_round(t, H, per_agent, k), T.arrival_times(t, H, k, per_agent))
        )
        for case in range(10):
            timing = random_timing(rng, jitter)
            rnd, arr = fn(timing, jax.random.key(200 + case))
            counts, close = heap_round(arr, sync_rule(per_agent))
            check_round(rnd, arr, counts, close)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 0.4)
    def test_afedpg_arrival_order(self, jitter):
        steps = 50
        rng = np.random.default_rng(4)
        h = rng.integers(1, 4, size=N).astype(float)  # ties
        h[-1] = np.inf  # one dead agent never arrives
        timing = T.Timing(step_time=h, comm_time=rng.choice([0.0, 1.0, 2.5], size=N), jitter=jitter)
        keys = jax.random.split(jax.random.key(5), steps + 1)

        def run(t, ks):
            def step(clock, key):
                agent, at, clock, comm = T.afedpg_next(t, H, clock, key)
                return clock, (agent, at, comm)

            return jax.lax.scan(step, T.afedpg_init(t, H, ks[0]), ks[1:])[1]

        agents, times, comms = self.variant(run)(timing, keys)
        # Reference heap in float32 with the same per-trajectory durations.
        kappa = np.asarray(timing.comm_time, np.float32)
        init = np.asarray(T.trajectory_durations(timing, H, keys[0], 1))[:, 0]
        heap = [(init[i], i) for i in range(N)]
        heapq.heapify(heap)
        for s in range(steps):
            t, i = heapq.heappop(heap)
            assert int(agents[s]) == i, (s, int(agents[s]), i)
            np.testing.assert_allclose(float(times[s]), float(t), rtol=1e-6)
            assert float(comms[s]) == kappa[i]
            dur = np.asarray(T.trajectory_durations(timing, H, keys[s + 1], 1))[:, 0]
            heapq.heappush(heap, (np.float32(np.float32(t + kappa[i]) + dur[i]), i))
        assert N - 1 not in np.asarray(agents)
        assert np.all(np.diff(np.asarray(times)) >= 0)


# ----------------------------------------------------------------------------------------------------------
# SPEC formulas and special timings
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "timing",
    [
        T.make_timing(7, "sqrt"),
        T.make_timing(7, "decreasing"),
        T.make_timing(7, "random", seed=3),
        T.make_timing(7, "sqrt", stragglers=2),
    ],
)
def test_rennala_fixed_close_equals_spec_formula(timing):
    batch = 11
    rnd = T.rennala_round(timing, H, batch, None)
    j = np.arange(1, batch + 1)
    times = (j[None, :] * H * timing.step_time[:, None]).reshape(-1)
    close = np.sort(times)[batch - 1]
    np.testing.assert_allclose(float(rnd.duration), close, rtol=1e-6)
    expected = [(j * H * h <= close * (1 + 1e-9)).sum() for h in timing.step_time]
    np.testing.assert_array_equal(np.asarray(rnd.counts), expected)


def test_rennala_ties_go_to_lower_agent():
    timing = T.make_timing(4)  # all h_i = 1: every agent finishes at H, 2H, ...
    rnd = T.rennala_round(timing, H, 6, None)
    np.testing.assert_array_equal(np.asarray(rnd.counts), [2, 2, 1, 1])
    assert float(rnd.duration) == 2 * H
    # Agents 2 and 3 finished at H; they lose 2H - H each. Agents 0 and 1 lose nothing.
    assert float(rnd.wasted) == 2 * H


def test_stragglers_and_dead_placement():
    timing = T.make_timing(6, "equal", stragglers=2, dead=1, straggler_factor=100.0)
    np.testing.assert_array_equal(timing.step_time, [1, 1, 1, 100, 100, np.inf])
    rnd = T.rennala_round(timing, H, 6, None)
    np.testing.assert_array_equal(np.asarray(rnd.counts), [2, 2, 2, 0, 0, 0])
    assert float(rnd.duration) == 2 * H
    assert float(rnd.wasted) == 3 * 2 * H  # two stragglers and the dead agent idle the whole round


def test_dead_agents():
    timing = T.make_timing(3, "equal", dead=1)
    assert float(T.synchronized_round(timing, H, 2, None).duration) == np.inf
    assert float(T.malenia_round(timing, H, 3, None, 8).duration) == np.inf
    with pytest.raises(ValueError, match=r"Malenia can never close a round: agent\(s\) \[2\]"):
        T.validate_method(timing, "malenia")
    with pytest.raises(ValueError, match=r"\[2\]"):
        T.validate_method(timing, "synchronized")
    with pytest.raises(ValueError, match=r"\[2\]"):
        T.malenia_max_per_agent(timing, H, 3)
    T.validate_method(timing, "rennala")
    T.validate_method(timing, "afedpg")
    T.reachable(timing, 10)
    all_dead = T.make_timing(2, dead=2)
    for method in ("rennala", "afedpg"):
        with pytest.raises(ValueError, match="infinite step time"):
            T.validate_method(all_dead, method)
    with pytest.raises(ValueError, match="all agents dead"):
        T.reachable(all_dead, 1)
    with pytest.raises(ValueError, match="batch_size"):
        T.reachable(timing, 0)


def test_allreduce_cost():
    kw = dict(step=[1.0, 1.0, 50.0], comm=[1.0, 2.0, 7.0])
    rounds = {
        c: T.rennala_round(T.make_timing(3, **kw, allreduce_cost=c), H, 4, None) for c in T.ALLREDUCE_COSTS
    }
    np.testing.assert_array_equal(np.asarray(rounds["max"].counts), [2, 2, 0])
    assert float(rounds["max"].comm) == 7.0
    assert float(rounds["arrived"].comm) == 2.0
    assert float(rounds["none"].comm) == 0.0


def test_malenia_max_per_agent_sizes_the_buffer():
    timing = T.make_timing(2, [1.0, 10.0])  # the paper's heterogeneous setting
    counts = T.malenia_max_per_agent(timing, H, 20)
    rnd = T.malenia_round(timing, H, 20, None, int(counts.max()))
    np.testing.assert_array_equal(np.asarray(rnd.counts), counts)
    assert np.isfinite(float(rnd.duration))
    # 1/M_0 + 1/M_1 <= 2^2 / 20 first holds at M_1 = 6, M_0 = 60 (time 300).
    np.testing.assert_array_equal(counts, [60, 6])
    assert float(rnd.duration) == 300.0
    too_small = T.malenia_round(timing, H, 20, None, int(counts.max()) - 1)
    assert float(too_small.duration) == np.inf


def test_slots_from_counts():
    ids, valid = T.slots_from_counts(jnp.array([2, 0, 3]), 7)
    np.testing.assert_array_equal(np.asarray(ids), [0, 0, 2, 2, 2, 0, 0])
    np.testing.assert_array_equal(np.asarray(valid), [1, 1, 1, 1, 1, 0, 0])
    ids, valid = jax.jit(T.slots_from_counts, static_argnums=1)(jnp.array([1, 1]), 2)
    np.testing.assert_array_equal(np.asarray(ids), [0, 1])
    assert bool(valid.all())


def test_jitter_mean_one_and_fixed_when_zero():
    timing = T.make_timing(2, [1.0, 2.0], jitter=0.5)
    d = np.asarray(T.trajectory_durations(timing, H, jax.random.key(0), 20000))
    np.testing.assert_allclose(d.mean(axis=1), [H, 2 * H], rtol=0.03)
    assert np.all(d > 0)
    fixed = T.trajectory_durations(T.make_timing(2, [1.0, 2.0]), H, None, 3)
    np.testing.assert_array_equal(np.asarray(fixed), [[H] * 3, [2 * H] * 3])


def test_no_retrace_for_new_timing_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(t, k):
        return T.rennala_round(t, H, 5, k).duration

    for seed in range(3):
        f(T.make_timing(4, "random", "sqrt", seed=seed), jax.random.key(seed))


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_agents=0), "num_agents"),
        (dict(num_agents=3, step="fast"), r"step must be one of \('equal', 'sqrt', 'decreasing', 'random'\)"),
        (dict(num_agents=2, step=[1.0, -1.0]), "step times must be > 0"),
        (dict(num_agents=2, step=[1.0, 2.0, 3.0]), "step sequence must have num_agents=2"),
        (dict(num_agents=2, comm="slow"), r"comm must be one of \('zero', 'sqrt', 'sqrt_d'\)"),
        (dict(num_agents=2, comm=-1.0), "comm times must be finite and >= 0"),
        (dict(num_agents=2, comm="sqrt_d"), "requires num_params"),
        (dict(num_agents=2, comm="sqrt_d", num_params=0), "num_params"),
        (dict(num_agents=2, jitter=-0.1), "jitter"),
        (dict(num_agents=2, allreduce_cost="sum"), "allreduce_cost must be one of"),
        (dict(num_agents=2, stragglers=-1), "stragglers"),
        (dict(num_agents=2, stragglers=2, dead=1), "stragglers \\+ dead"),
        (dict(num_agents=2, straggler_factor=0.0), "straggler_factor"),
    ],
)
def test_make_timing_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        T.make_timing(**kwargs)


def test_timing_direct_validation_and_models():
    with pytest.raises(ValueError, match="step_time"):
        T.Timing(step_time=np.array([0.0]), comm_time=np.array([0.0]))
    with pytest.raises(ValueError, match="comm_time"):
        T.Timing(step_time=np.array([1.0]), comm_time=np.array([np.inf]))
    with pytest.raises(ValueError, match="method must be one of"):
        T.validate_method(T.make_timing(2), "fedavg")
    t = T.make_timing(4, "sqrt", "sqrt_d", num_params=16)
    np.testing.assert_allclose(t.comm_time, np.sqrt(np.arange(1, 5)) * 2.0)
    np.testing.assert_allclose(T.make_timing(4, "decreasing").step_time, np.sqrt([4, 3, 2, 1]))
    r = T.make_timing(50, "random", seed=1).step_time
    assert r.min() >= 1 and r.max() <= 10
    assert T.make_timing(3, comm=0.5).num_agents == 3


def test_malenia_exact_harmonic_tie_closes():
    # n = M: harmonic mean 1 >= M/n = 1 holds exactly at counts (1, 1, 1); float32 rounding must not block it.
    timing = T.make_timing(3, [1.0, 2.0, 3.0])
    rnd = T.malenia_round(timing, H, 3, None, 4)
    np.testing.assert_array_equal(np.asarray(rnd.counts), [3, 1, 1])
    assert float(rnd.duration) == 3 * H
