"""The simulator (jnigt.timing) against the exact close times (jnigt.testing) and the theory's bounds.

1. Fixed times (jitter = 0): the measured Rennala / Malenia / synchronized round durations equal the exact
   close-time formulas ``testing.rennala_close_time`` / ``malenia_close_time`` / ``synchronized_close_time``
   for several n, batch sizes M, horizons H and step-time models (equal, sqrt, decreasing, random,
   stragglers 100x slower, a dead agent for Rennala).

2. The bound tested. With h sorted ascending, S_m = sum_{i<=m} 1/h_i and hm_m = (S_m / m)^(-1) (harmonic
   mean of the m fastest), the Rennala close time T_R (the M-th arrival) satisfies, for FIXED times,

       H * max(h_1, M / S_n)  <=  T_R  <=  min_m  min( H * h_m * ceil(M/m),  hm_m * H * (1 + M/m) ).

   Proof of the upper bounds: (i) by time H h_m ceil(M/m) each of the m fastest agents has finished
   ceil(M/m) trajectories, i.e. >= M arrivals; (ii) agent i has floor(t / (H h_i)) >= t / (H h_i) - 1
   arrivals by time t, so the m fastest have >= t S_m / H - m >= M once t >= H (M + m) / S_m
   = hm_m H (1 + M/m). Lower bounds: nothing arrives before H h_1, and by time t there are at most
   t S_n / H arrivals. (ii) is the simulated-time analogue of Theorem 4.4's min_m hm_m (... + 1/m ...) term.

3. Random times (jitter > 0, per-trajectory lognormal factors with mean 1): the bound is not a per-round
   guarantee, but by Wald's identity the expected number of arrivals of agent i by time t is still
   >= t / (H h_i) - 1. We test that the MEAN measured Rennala round time over 1000 rounds stays below the
   fixed-time bound (ii) times (1 + 0.1) (a 10% tolerance for jitter <= 0.5) and above the lower bound
   H M / S_n times (1 - 0.1).

4. ``jnigt theory`` through ``jnigt.cli.main`` prints the comparison table.
"""

import math

import jax
import numpy as np
import pytest

from jnigt import testing as oracle
from jnigt import timing as T

HORIZONS = (64,)  # H = 5 is covered by test_short_horizon

# jitted once per (n, H, M) shape; the Timing pytree's leaves are traced, so models of one n share a compile
rennala_round = jax.jit(T.rennala_round, static_argnums=(1, 2))
synchronized_round = jax.jit(T.synchronized_round, static_argnums=(1, 2))


def _timings():
    cases = [("equal-n1", T.make_timing(1, "equal"))]
    for n, model in (
        (3, "equal"),
        (3, "random"),
        (10, "equal"),
        (10, "sqrt"),
        (10, "decreasing"),
        (37, "sqrt"),
        (37, "random"),
    ):
        cases.append((f"{model}-n{n}", T.make_timing(n, model, seed=n)))
    cases.append(("stragglers-n10", T.make_timing(10, "sqrt", stragglers=2)))
    cases.append(("stragglers-equal-n8", T.make_timing(8, "equal", stragglers=3)))
    cases.append(("explicit-1,10", T.make_timing(2, [1.0, 10.0])))
    return cases


CASES = _timings()
IDS = [c[0] for c in CASES]


def _bounds(h, H, M):
    hs = np.sort(np.asarray(h, float))
    hs = hs[np.isfinite(hs)]
    m = np.arange(1, hs.size + 1)
    s = np.cumsum(1.0 / hs)
    ceil_bound = np.min(H * hs * np.ceil(M / m))
    harmonic_bound = np.min((m / s) * H * (1.0 + M / m))
    lower = H * max(hs[0], M / s[-1])
    return lower, ceil_bound, harmonic_bound


@pytest.mark.parametrize("name,timing", CASES, ids=IDS)
def test_fixed_rennala_round_equals_close_time_and_within_bounds(name, timing):
    for H in HORIZONS:
        for M in (1, 7, 50):
            measured = float(rennala_round(timing, H, M, None).duration)
            exact = oracle.rennala_close_time(timing.step_time, H, M)
            assert measured == pytest.approx(exact, rel=1e-6), (name, H, M)
            lower, ceil_bound, harmonic_bound = _bounds(timing.step_time, H, M)
            assert lower * (1 - 1e-6) <= measured <= min(ceil_bound, harmonic_bound) * (1 + 1e-6), (
                name,
                H,
                M,
            )


MALENIA_CASES = [
    c
    for c in CASES
    if c[0] in ("equal-n3", "random-n3", "sqrt-n10", "decreasing-n10", "stragglers-n10", "explicit-1,10")
]


@pytest.mark.parametrize("name,timing", MALENIA_CASES, ids=[c[0] for c in MALENIA_CASES])
def test_fixed_malenia_round_equals_close_time(name, timing):
    for H in HORIZONS:
        for M in (1, 20):
            k = int(T.malenia_max_per_agent(timing, H, M).max()) + 1
            rnd = T.malenia_round(timing, H, M, None, k)  # eager: K differs per case
            exact = oracle.malenia_close_time(timing.step_time, H, M)
            assert float(rnd.duration) == pytest.approx(exact, rel=1e-6), (name, H, M)
            # Malenia waits for every agent at least once, so never closes before Rennala
            assert exact >= oracle.rennala_close_time(timing.step_time, H, M) * (1 - 1e-9)


@pytest.mark.parametrize("name,timing", CASES, ids=IDS)
def test_fixed_synchronized_round_equals_close_time(name, timing):
    n = timing.num_agents
    for H in HORIZONS:
        for M in (1, 20, 50):
            per_agent = math.ceil(M / n)
            measured = float(synchronized_round(timing, H, per_agent, None).duration)
            exact = oracle.synchronized_close_time(timing.step_time, H, per_agent)
            assert measured == pytest.approx(exact, rel=1e-6), (name, H, M)
            # the synchronized round is never faster than Rennala's for the same batch
            assert exact >= oracle.rennala_close_time(timing.step_time, H, M) * (1 - 1e-6)


def test_short_horizon():
    timing = T.make_timing(10, "sqrt")
    for M in (1, 20):
        measured = float(rennala_round(timing, 5, M, None).duration)
        assert measured == pytest.approx(oracle.rennala_close_time(timing.step_time, 5, M), rel=1e-6)
    k = int(T.malenia_max_per_agent(timing, 5, 20).max()) + 1
    assert float(T.malenia_round(timing, 5, 20, None, k).duration) == pytest.approx(
        oracle.malenia_close_time(timing.step_time, 5, 20), rel=1e-6
    )
    assert float(synchronized_round(timing, 5, 2, None).duration) == pytest.approx(
        oracle.synchronized_close_time(timing.step_time, 5, 2), rel=1e-6
    )


def test_dead_agent_rennala_matches_theory():
    timing = T.make_timing(6, "sqrt", dead=2)
    for M in (1, 9, 30):
        measured = float(rennala_round(timing, 10, M, None).duration)
        assert measured == pytest.approx(oracle.rennala_close_time(timing.step_time, 10, M), rel=1e-6)
        _, ceil_bound, harmonic_bound = _bounds(timing.step_time, 10, M)
        assert measured <= min(ceil_bound, harmonic_bound) * (1 + 1e-6)


def test_fixed_counts_match_theory_counts_without_ties():
    timing = T.make_timing(10, "sqrt")
    for M in (7, 20, 50):
        counts = np.asarray(rennala_round(timing, 64, M, None).counts)
        expected = oracle.rennala_round_counts(timing.step_time, 64, M)
        if expected.sum() == M:  # no tie at the close: both count exactly the same arrivals
            np.testing.assert_array_equal(counts, expected)
        assert counts.sum() == M


@pytest.mark.parametrize("n,model,jitter", [(10, "sqrt", 0.3), (10, "equal", 0.5), (37, "decreasing", 0.5)])
def test_jittered_mean_rennala_round_within_bound(n, model, jitter):
    H, M, rounds = 20, 20, 1000
    timing = T.make_timing(n, model, jitter=jitter)
    keys = jax.random.split(jax.random.key(n), rounds)
    durations = np.asarray(jax.jit(jax.vmap(lambda k: T.rennala_round(timing, H, M, k).duration))(keys))
    assert np.all(np.isfinite(durations)) and np.all(durations > 0)
    mean = float(durations.mean())
    lower, _, harmonic_bound = _bounds(timing.step_time, H, M)
    assert mean <= 1.1 * harmonic_bound, (mean, harmonic_bound)
    assert mean >= 0.9 * H * M / np.sum(1.0 / timing.step_time), mean
    # and the jittered mean is close to the fixed-time close (jitter only spreads the arrivals)
    fixed = oracle.rennala_close_time(timing.step_time, H, M)
    assert abs(mean - fixed) <= 0.25 * fixed, (mean, fixed)


def test_theory_cli_prints_table(capsys):
    from jnigt.cli import main

    assert main(["theory", "--agents", "10", "--step", "sqrt", "--comm", "sqrt", "--eps", "0.1"]) == 0
    out = capsys.readouterr().out
    for label in ("Rennala NIGT", "Malenia NIGT", "Synchronous NIGT", "AFedPG", "predicted total"):
        assert label in out
    assert "n=10 step=sqrt comm=sqrt" in out
    assert (
        main(
            [
                "theory",
                "--agents",
                "100",
                "--step",
                "equal",
                "--comm",
                "sqrt_d",
                "--num-params",
                "4000",
                "--eps",
                "0.05",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "n=100 step=equal comm=sqrt_d" in out and "Rennala NIGT optimal m" in out
