"""Per-round predictions of jnigt.theory against the exact heap references of jnigt.testing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jnigt import testing, theory

CASES = [
    np.ones(10),
    np.sqrt(np.arange(1, 11)),
    np.sqrt(np.arange(10, 0, -1)),
    np.array([1.0, 10.0]),
    np.array([1.0, 1.0, 100.0, 100.0]),
    np.array([3.0]),
] + [np.random.default_rng(s).uniform(1.0, 10.0, size=1 + s % 7) for s in range(12)]


@pytest.mark.parametrize("h", CASES, ids=lambda h: f"n{h.size}")
@pytest.mark.parametrize("horizon,batch", [(1, 1), (1, 20), (7, 13), (100, 50)])
def test_synchronized_round_time_is_exact(h, horizon, batch):
    c = theory.trajectory_costs(h, horizon)
    per = math.ceil(batch / h.size)
    exact = testing.synchronized_close_time(h, horizon, per)
    assert theory.synchronized_round_time(c, batch) == pytest.approx(exact, rel=1e-12)
    r = theory.round_time("synchronized", c, np.zeros(h.size), batch)
    assert r.exact and r.lower == r.upper == r.compute


@pytest.mark.parametrize("h", CASES, ids=lambda h: f"n{h.size}")
@pytest.mark.parametrize("horizon,batch", [(1, 1), (1, 20), (7, 13), (100, 50), (1, 997)])
def test_rennala_bound_brackets_exact_close(h, horizon, batch):
    c = theory.trajectory_costs(h, horizon)
    bound = theory.rennala_round_time(c, batch)
    exact = testing.rennala_close_time(h, horizon, batch)
    assert bound / 2 * (1 - 1e-12) <= exact <= bound * (1 + 1e-12)
    r = theory.round_time("rennala", c, np.zeros(h.size), batch)
    assert (r.lower, r.upper, r.exact) == (bound / 2, bound, False)


def test_rennala_bound_values_and_dead_agents():
    # one agent: B = c (1 + M), t* = M c; two equal agents, M = 2: B = min(3, 2) = 2, t* = 1 = B/2 (lower end)
    assert theory.rennala_round_time([1.0], 5) == 6.0
    assert testing.rennala_close_time([1.0], 1, 5) == 5.0
    assert theory.rennala_round_time([1.0, 1.0], 2) == 2.0
    assert testing.rennala_close_time([1.0, 1.0], 1, 2) == 1.0
    h = np.array([1.0, 2.0, np.inf])
    assert theory.rennala_round_time(h, 9) == theory.rennala_round_time(h[:2], 9)


@pytest.mark.parametrize("h", CASES, ids=lambda h: f"n{h.size}")
@pytest.mark.parametrize("horizon,batch", [(1, 1), (1, 20), (7, 13), (100, 50)])
def test_malenia_bracket_holds(h, horizon, batch):
    c = theory.trajectory_costs(h, horizon)
    exact = testing.malenia_close_time(h, horizon, batch)
    r = theory.round_time("malenia", c, np.zeros(h.size), batch)
    assert r.compute == theory.malenia_round_time(c, batch)
    assert r.compute / 2 <= r.lower * (1 + 1e-12) and r.upper <= 2 * r.compute * (1 + 1e-12)
    assert r.lower * (1 - 1e-12) <= exact <= r.upper * (1 + 1e-12)


def test_malenia_hetero_panel_value():
    # the hetero panel: c = (100, 1000), M = 20: the rule needs M_2 = 6, so t* = 6000; B = 1000 + 550 * 10
    c = theory.trajectory_costs([1.0, 10.0], 100)
    assert testing.malenia_close_time([1.0, 10.0], 100, 20) == 6000.0
    assert theory.malenia_round_time(c, 20) == 6500.0
    assert math.isinf(theory.malenia_round_time([1.0, np.inf], 3))


@pytest.mark.parametrize("seed", range(4))
def test_afedpg_update_time_is_the_steady_rate(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    c = rng.uniform(1.0, 10.0, n)
    kappa = rng.uniform(0.0, 3.0, n)
    arrivals = 4000
    _, times = testing.afedpg_heap(c, np.tile(c, (arrivals, 1)), kappa)
    per = theory.afedpg_update_time(c, kappa)
    measured = float(times[-1]) / arrivals
    # exact bracket [1/S, (1 + n/K)/S], float32 clock
    assert per * (1 - 1e-5) <= measured <= per * (1 + n / arrivals) * (1 + 1e-5)
    assert measured == pytest.approx(per, rel=2e-3)
    r = theory.round_time("afedpg", c, kappa, 20)
    assert (r.compute, r.comm, r.total) == (per, 0.0, per)


def test_afedpg_dead_agents_and_comm_charge():
    assert theory.afedpg_update_time([2.0, np.inf], [1.0, 0.0]) == 3.0
    r = theory.round_time("rennala", [1.0, 4.0], [0.5, 2.0], 3)
    assert r.comm == 2.0 and r.total == r.compute + 2.0


def test_trajectory_costs_units():
    np.testing.assert_array_equal(theory.trajectory_costs([1.0, 4.0], 50), [50.0, 200.0])
    np.testing.assert_array_equal(theory.trajectory_costs([1.0, 4.0], 50, "trajectory"), [1.0, 4.0])
    assert theory.trajectory_costs(np.array([2.0]), np.int64(3))[0] == 6.0


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda: theory.round_time("adam", [1.0], [0.0], 2), ValueError, "method"),
        (lambda: theory.round_time("rennala", [1.0, 2.0], [0.0], 2), ValueError, "kappa"),
        (lambda: theory.round_time("rennala", [1.0], [-1.0], 2), ValueError, "kappa"),
        (lambda: theory.round_time("rennala", [1.0], [0.0], True), TypeError, "batch_size"),
        (lambda: theory.round_time("rennala", [1.0], [0.0], 2.0), TypeError, "batch_size"),
        (lambda: theory.rennala_round_time([0.0], 2), ValueError, "times > 0"),
        (lambda: theory.trajectory_costs([1.0], 0), ValueError, "horizon"),
        (lambda: theory.trajectory_costs([1.0], 2, "episode"), ValueError, "time_unit"),
        (lambda: theory.afedpg_update_time([1.0], [np.inf]), ValueError, "kappa"),
    ],
)
def test_round_time_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
