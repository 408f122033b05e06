"""Tests of jnigt.theory (docs/algorithms.md#theory), the close-time oracles of jnigt.testing, the report and
the ``jnigt theory`` command: hand-computed values, brute force, validation."""

import heapq
import math
from fractions import Fraction

import numpy as np
import pytest

from jnigt import report, timing
from jnigt import testing as oracle
from jnigt import theory as th
from jnigt.cli import main, theory_main
from jnigt.theory import Constants

ONE = Constants(L_g=1.0, L_h=1.0, D=1.0, sigma=1.0, gamma=0.0)  # 1/(1-gamma) = 1


# --------------------------------------------------------------------------------------------- theorems


def test_harmonic_prefix_sorts_and_matches_hand_values():
    # sorted h = [1, 1, 100]: m=1 -> 1; m=2 -> (1/2 (1+1))^-1 = 1; m=3 -> (1/3 (1+1+0.01))^-1 = 3/2.01
    np.testing.assert_allclose(th.harmonic_prefix([100, 1, 1]), [1.0, 1.0, 3 / 2.01])
    # dead agents contribute 0: h = [2, inf] -> [2, 2/(1/2)] = [2, 4]
    np.testing.assert_allclose(th.harmonic_prefix([np.inf, 2.0]), [2.0, 4.0])
    assert np.isinf(th.harmonic_prefix([np.inf])[0])


def test_rennala_nigt_time_hand_computed():
    # eps = 1, all constants 1: A = L_g D/eps^2 + sqrt(L_h) D/eps^1.5 = 2,
    # B = sigma^2/eps^2 + sigma^2 sqrt(L_h) D/eps^3.5 = 2.
    # h = [1, 2]: hm = [1, (1/2 (1 + 1/2))^-1 = 4/3].
    # m=1: 1 * (2 + 2/1) = 4 ; m=2: 4/3 * (2 + 2/2) = 4 -> min 4 (tie -> m* = 1).
    # kappa = 3: 3 * A + min = 6 + 4 = 10 (gamma = 0).
    assert th.rennala_nigt_time([2, 1], 3.0, 1.0, ONE) == pytest.approx(10.0)
    assert th.rennala_optimal_m([2, 1], 1.0, ONE) == 1
    # gamma = 0.5 doubles the computation part: 6 + 2 * 4 = 14
    c = Constants(gamma=0.5)
    assert th.rennala_nigt_time([1, 2], 3.0, 1.0, c) == pytest.approx(14.0)
    # kappa = 0: only the computation part
    assert th.rennala_nigt_time([1, 2], 0.0, 1.0, ONE) == pytest.approx(4.0)


def test_rennala_optimal_m_skips_the_slow_agent():
    # h = [1, 1, 100], eps = 0.1, constants 1:
    # A = 100 + 10^1.5 = 131.62, B = 100 + 10^3.5 = 3262.28
    # m=1: 1 * (131.62 + 3262.28)        = 3393.90
    # m=2: 1 * (131.62 + 3262.28/2)      = 1762.76   <- min
    # m=3: (3/2.01) * (131.62 + 3262.28/3) = 1819.48
    eps = 0.1
    a = 100 + 10**1.5
    b = 100 + 10**3.5
    assert th.rennala_optimal_m([1, 1, 100], eps, ONE) == 2
    assert th.rennala_optimal_m([100, 1, 1], eps, ONE) == 2  # order does not matter
    assert th.rennala_nigt_time([1, 1, 100], 0.0, eps, ONE) == pytest.approx(a + b / 2)
    assert a + b / 2 == pytest.approx(1762.76, abs=0.01)
    assert (3 / 2.01) * (a + b / 3) == pytest.approx(1819.48, abs=0.01)
    # with equal times every agent helps: m* = n
    assert th.rennala_optimal_m([1, 1, 1], eps, ONE) == 3


def test_one_very_slow_agent():
    # h = [1]*9 + [h_n]: with h_n = 10, m=9 gives 131.62 + 3262.28/9 = 494.10 while m=10 gives
    # (10/9.1)(131.62 + 326.23) = 503.13, so Rennala ignores the slow agent; h_n -> 1e6 changes nothing.
    eps, kappa = 0.1, 1.0
    h10 = [1.0] * 9 + [10.0]
    h1e6 = [1.0] * 9 + [1e6]
    r10 = th.rennala_nigt_time(h10, kappa, eps)
    r1e6 = th.rennala_nigt_time(h1e6, kappa, eps)
    assert r1e6 == pytest.approx(r10, rel=1e-9)
    assert th.rennala_optimal_m(h10, eps) == th.rennala_optimal_m(h1e6, eps) == 9
    # even a dead agent
    assert th.rennala_nigt_time([1.0] * 9 + [np.inf], kappa, eps) == pytest.approx(r10, rel=1e-9)
    # synchronized methods scale with max h: factor 1e5
    t10 = th.table1(h10, kappa, eps)
    t1e6 = th.table1(h1e6, kappa, eps)
    for name in ("synchronous_nigt", "synchronous_vanilla_pg"):
        assert t1e6[name].computation / t10[name].computation == pytest.approx(1e5)
    assert oracle.synchronized_close_time(h1e6, 5, 3) / oracle.synchronized_close_time(
        h10, 5, 3
    ) == pytest.approx(1e5)
    # Rennala NIGT's Table 1 row is also unchanged
    assert t1e6["rennala_nigt"].computation == pytest.approx(t10["rennala_nigt"].computation)
    # Malenia NIGT must wait for everyone: grows with h_n
    assert th.malenia_nigt_time(h1e6, kappa, eps) > 1e4 * th.malenia_nigt_time(h10, kappa, eps)
    assert math.isinf(th.malenia_nigt_time([1.0] * 9 + [np.inf], kappa, eps))


def test_malenia_nigt_time_hand_computed():
    # eps = 1, constants 1, gamma = 0: A = 2, B = 2. h = [1, 3], n = 2, kappa = 1:
    # kappa A + h_n A + mean(h) B / n = 2 + 3*2 + 2*2/2 = 10
    assert th.malenia_nigt_time([3, 1], 1.0, 1.0, ONE) == pytest.approx(10.0)
    # gamma = 0.75 multiplies the bracket by 4: 2 + 4 * 8 = 34
    assert th.malenia_nigt_time([3, 1], 1.0, 1.0, Constants(gamma=0.75)) == pytest.approx(34.0)


def test_table1_hand_computed():
    # h = [1, 3], n = 2, kappa = 2, eps = 1: hm = [1, (1/2 (1 + 1/3))^-1 = 1.5]
    t = th.table1([3, 1], 2.0, 1.0)
    assert set(t) == set(th.TABLE1_METHODS)
    # sync vanilla: 3 (1 + 1/2) = 4.5 | 2 (1 + 1/2) = 3
    assert t["synchronous_vanilla_pg"] == pytest.approx((4.5, 3.0, True))
    # sync NIGT: 3 / 2 = 1.5 | 2 * 1 = 2
    assert t["synchronous_nigt"] == pytest.approx((1.5, 2.0, True))
    # Rennala PG: min(1 (1 + 1), 1.5 (1 + 1/2)) = 2 | 2
    assert t["rennala_pg"] == pytest.approx((2.0, 2.0, True))
    # AFedPG: 1.5 (2^(4/3) + 1/2) | 2 * 1, no AllReduce
    assert t["afedpg"] == pytest.approx((1.5 * (2 ** (4 / 3) + 0.5), 2.0, False))
    assert t["afedpg"].uses_allreduce is False
    # Rennala NIGT: min(1 (1 + 1), 1.5 (1 + 1/2)) = 2 | 2
    assert t["rennala_nigt"] == pytest.approx((2.0, 2.0, True))
    assert "lower bound" in th.TABLE1_NOTES["synchronous_nigt"]
    assert "lower bound" in th.TABLE1_NOTES["afedpg"]

    # eps = 0.5: eps^-2 = 4, eps^-3.5 = 11.3137, eps^-4 = 16
    t = th.table1([1, 3], 2.0, 0.5)
    # Rennala NIGT: m=1: 4 + 11.3137 = 15.3137 ; m=2: 1.5 (4 + 5.6569) = 14.485
    assert t["rennala_nigt"].computation == pytest.approx(1.5 * (4 + 0.5**-3.5 / 2))
    # Rennala PG: m=1: 4 + 16 = 20 ; m=2: 1.5 (4 + 8) = 18
    assert t["rennala_pg"].computation == pytest.approx(18.0)
    assert t["rennala_pg"].communication == pytest.approx(8.0)
    assert t["synchronous_nigt"].communication == pytest.approx(2 * 0.5**-3.5)
    assert t["afedpg"].communication == pytest.approx(16.0)


def test_lower_bound_communication():
    assert th.lower_bound_communication(2.0, 0.5) == pytest.approx(2 * 2 ** (12 / 7))
    assert th.lower_bound_communication(0.0, 0.5) == 0.0
    # it is below Rennala NIGT's communication kappa eps^-2 for eps < 1
    assert th.lower_bound_communication(1.0, 0.1) < th.table1([1], 1.0, 0.1)["rennala_nigt"].communication


# ------------------------------------------------------------------------------------------- close times


def _brute_rennala(h, H, M):
    cands = sorted(j * H * hi for hi in h if math.isfinite(hi) for j in range(1, M + 1))
    return cands[M - 1] if len(cands) >= M else math.inf


def _brute_malenia(h, H, M):
    """Event-by-event simulation with exact Fractions for the harmonic-mean test."""
    n = len(h)
    counts = [0] * n
    heap = [(H * hi, i, 1) for i, hi in enumerate(h)]
    heapq.heapify(heap)
    while True:
        t, i, j = heapq.heappop(heap)
        counts[i] = j
        heapq.heappush(heap, ((j + 1) * H * h[i], i, j + 1))
        if min(counts) >= 1 and n * n >= M * sum(Fraction(1, c) for c in counts):
            return t


def test_rennala_close_time_hand_and_brute_force():
    # h = [1, 2, 3], H = 1: arrivals 1, 2, 2, 3, 3, 4, ... -> 5th smallest is 3
    assert oracle.rennala_close_time([1, 2, 3], 1, 5) == 3.0
    assert oracle.rennala_round_counts([1, 2, 3], 1, 5).tolist() == [3, 1, 1]
    assert oracle.rennala_close_time([1, 2, 3], 1, 1) == 1.0
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 7))
        h = list(rng.uniform(0.1, 5.0, size=n))
        if rng.random() < 0.3:
            h = list(rng.integers(1, 5, size=n).astype(float))  # many ties
        H = int(rng.integers(1, 20))
        M = int(rng.integers(1, 40))
        assert oracle.rennala_close_time(h, H, M) == _brute_rennala(h, H, M)
        counts = oracle.rennala_round_counts(h, H, M)
        assert counts.sum() >= M
    # dead agents never arrive
    assert oracle.rennala_close_time([1.0, np.inf], 2, 3) == 6.0
    assert math.isinf(oracle.rennala_close_time([np.inf], 2, 3))


def test_malenia_close_time_equal_times():
    # equal times: all counts equal c at c H h; harmonic mean c >= M/n -> close = ceil(M/n) H h
    for n, M, H, h in [(3, 7, 10, 1.0), (4, 4, 5, 2.5), (5, 1, 3, 0.7), (2, 9, 1, 3.0), (10, 100, 7, 1.3)]:
        assert oracle.malenia_close_time([h] * n, H, M) == pytest.approx(math.ceil(M / n) * H * h, rel=1e-12)


def test_malenia_close_time_hand_and_brute_force():
    # h = [1, 10], H = 1, M = 4, n = 2: need 1/c1 + 1/c2 <= n^2/M = 1.
    # t=10: (10, 1) -> 1.1 > 1 ; t=20: (20, 2) -> 0.55 -> close at 20
    assert oracle.malenia_close_time([1, 10], 1, 4) == 20.0
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(1, 6))
        if rng.random() < 0.4:
            h = list(rng.integers(1, 6, size=n).astype(float))
        else:
            h = list(rng.uniform(0.2, 6.0, size=n))
        H = int(rng.integers(1, 10))
        M = int(rng.integers(1, 60))
        assert oracle.malenia_close_time(h, H, M) == _brute_malenia(h, H, M)
    # a dead agent means the round never closes
    assert math.isinf(oracle.malenia_close_time([1.0, np.inf], 1, 2))


def test_malenia_close_time_large_gap_is_fast():
    # 1e6x straggler with M > n^2: the straggler needs 2 gradients -> close = 2 H 1e6;
    # event-by-event would take ~4e6 steps, the bisection is immediate.
    n = 3
    h = [1.0, 1.0, 1e6]
    M = n * n + 1  # count 1 for the straggler: sum 1/c >= 1 > n^2/M
    assert oracle.malenia_close_time(h, 1, M) == 2e6


def test_synchronized_close_time():
    assert oracle.synchronized_close_time([1, 4, 2], 10, 3) == 120.0


# ---------------------------------------------------------------------------------------- hyperparameters


def test_theory_hyperparameters():
    # eps = 0.1, constants 1: alpha = min(0.1, sqrt(0.1)) = 0.1; eta = 0.1 sqrt(10) = 0.3162;
    # M = ceil(0.3162 * 100) = 32; M_init = 100; H = ceil(ln(10)/0.01) = ceil(230.26) = 231
    hp = th.theory_hyperparameters(0.1)
    assert hp["alpha"] == pytest.approx(0.1)
    assert hp["eta"] == pytest.approx(math.sqrt(0.1))
    assert hp["batch_size"] == 32
    assert hp["init_batch_size"] == 100
    assert hp["horizon"] == 231
    # large eps: alpha = min(2/1, sqrt(2)) = sqrt(2), eta = sqrt(2) sqrt(1/2) = 1; M = max(1, ceil(1/4)) = 1
    hp = th.theory_hyperparameters(2.0)
    assert hp["eta"] == pytest.approx(1.0)
    assert hp["batch_size"] == 1 and hp["init_batch_size"] == 1 and hp["horizon"] == 1
    # eta clipped to 1 when L_h is large: alpha = min(0.1/1, sqrt(0.1/100)) = 0.0316, eta = 0.0316 * sqrt(1000) = 1
    hp = th.theory_hyperparameters(0.1, Constants(L_h=100.0))
    assert 0 < hp["eta"] <= 1.0


# ------------------------------------------------------------------------------------------- timing models


def test_step_and_comm_models():
    np.testing.assert_allclose(timing.step_times(3, "equal"), [1, 1, 1])
    np.testing.assert_allclose(timing.step_times(3, "sqrt"), np.sqrt([1, 2, 3]))
    np.testing.assert_allclose(timing.step_times(3, "decreasing"), np.sqrt([3, 2, 1]))
    assert timing.comm_time(4, "zero") == 0.0
    assert timing.comm_time(4, "sqrt") == pytest.approx(2.0)
    assert timing.comm_time(4, "sqrt_d", num_params=16) == pytest.approx(4.0)
    np.testing.assert_allclose(timing.comm_times(4, "sqrt_d", num_params=16), 2 * np.sqrt([1, 2, 3, 4]))


def test_predicted_times():
    ns = [1, 10, 100]
    out = th.predicted_times(ns, "sqrt", "sqrt", 0.1)
    assert set(out) == set(th.PREDICTED_METHODS)
    assert all(len(v) == 3 and all(x > 0 for x in v) for v in out.values())
    # theorem mode uses the theorems directly
    h, k = timing.step_times(10, "sqrt"), timing.comm_time(10, "sqrt")
    assert out["rennala_nigt"][1] == pytest.approx(th.rennala_nigt_time(h, k, 0.1))
    assert out["malenia_nigt"][1] == pytest.approx(th.malenia_nigt_time(h, k, 0.1))
    row = th.table1(h, k, 0.1)["afedpg"]
    assert out["afedpg"][1] == pytest.approx(row.computation / (1 - 0.99) + row.communication)
    # table mode: Rennala NIGT is never worse than Rennala PG (eps^-3.5 <= eps^-4, same communication)
    tab = th.predicted_times(ns, "sqrt", "sqrt", 0.1, formulas="table")
    for a, b in zip(tab["rennala_nigt"], tab["rennala_pg"]):
        assert a <= b
    # with costly communication (kappa_i = sqrt(i) d^(1/4)) Rennala NIGT beats synchronous NIGT, whose
    # communication is kappa eps^-3.5 against kappa eps^-2 (n = 100, d = 1e4: 8.8e4 < 3.5e5)
    big = th.predicted_times([100], "sqrt", "sqrt_d", 0.1, num_params=10_000)
    assert big["rennala_nigt"][0] < big["synchronous_nigt"][0]
    assert big["rennala_nigt"][0] < big["afedpg"][0]


def test_format_table():
    s = report.format_table(10, "sqrt", "sqrt", 0.1)
    for label in (
        "Rennala NIGT",
        "Malenia NIGT",
        "Synchronous NIGT",
        "AFedPG",
        "Rennala PG",
        "Synchronous vanilla PG",
        "optimal m",
        "12/7",
    ):
        assert label in s
    assert ">=" in s


# -------------------------------------------------------------------------------------------------- CLI


def test_theory_main_prints_table_and_writes_png(tmp_path, capsys):
    png = tmp_path / "pred.png"
    rc = theory_main(
        [
            "--agents",
            "10",
            "--step",
            "sqrt",
            "--comm",
            "sqrt",
            "--eps",
            "0.1",
            "--plot",
            str(png),
            "--max-agents",
            "100",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "Rennala NIGT" in out and "AFedPG" in out and "n=10" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_theory_main_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        theory_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--agents", "--step", "--comm", "--eps", "--plot", "--max-agents", "--num-params", "--gamma"):
        assert opt in out


def test_theory_main_bad_eps_exits_with_message(capsys):
    assert main(["theory", "--eps", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jnigt: error:") and "eps" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: th.rennala_nigt_time([1, 2], 1.0, 0.0), "eps"),
        (lambda: th.rennala_nigt_time([1, 2], 1.0, -0.1), "eps"),
        (lambda: th.malenia_nigt_time([], 1.0, 0.1), "h must be a non-empty"),
        (lambda: th.table1([1, 0], 1.0, 0.1), "h must contain only times > 0"),
        (lambda: th.harmonic_prefix([1, -2]), "h must contain only times > 0"),
        (lambda: th.rennala_optimal_m([1, float("nan")], 0.1), "h must"),
        (lambda: th.rennala_nigt_time([1, 2], -1.0, 0.1), "kappa must be a number >= 0"),
        (lambda: th.table1([1, 2], -1.0, 0.1), "kappa"),
        (lambda: th.lower_bound_communication(-1.0, 0.1), "kappa"),
        (
            lambda: timing.step_times(3, "linear"),
            r"step_model must be one of equal, sqrt, decreasing, random",
        ),
        (lambda: timing.comm_time(3, "cubic"), r"comm_model must be one of zero, sqrt, sqrt_d"),
        (
            lambda: th.predicted_times([1], "random", "zero", 0.1),
            "step_model must be one of equal, sqrt, decreasing;",
        ),
        (lambda: timing.comm_time(3, "sqrt_d"), "num_params"),
        (lambda: th.predicted_times([1], "sqrt", "zero", 0.1, formulas="x"), "formulas"),
        (lambda: th.predicted_times([0], "sqrt", "zero", 0.1), "n must be an int >= 1"),
        (lambda: oracle.rennala_close_time([1], 0, 3), "horizon"),
        (lambda: oracle.malenia_close_time([1], 1, 0), "batch_size"),
        (lambda: oracle.synchronized_close_time([1], 1, 0), "per_agent"),
        (lambda: oracle.rennala_close_time([1], 1, 10**8), "above the oracles' limit"),
        (lambda: th.theory_hyperparameters(0.1, Constants(gamma=1.0)), "gamma"),
    ],
)
def test_validation_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: oracle.synchronized_close_time([1], 1, 1.5), "per_agent"),
        (lambda: oracle.malenia_close_time([1], 1, True), "batch_size"),
        (lambda: th.predicted_times([np.float64(2.0)], "sqrt", "zero", 0.1), "n must be an int"),
        (lambda: timing.comm_time(3, "sqrt_d", num_params=1.5), "num_params"),
    ],
)
def test_wrong_types_raise_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_numpy_integers_accepted():
    assert oracle.synchronized_close_time([1.0, 2.0], np.int64(3), np.int32(2)) == 12.0
    assert timing.comm_time(np.int64(4), "sqrt_d", num_params=np.int32(16)) == pytest.approx(4.0)
    assert th.predicted_times([np.int64(3)], "sqrt", "zero", 0.1)["rennala_nigt"][0] > 0
