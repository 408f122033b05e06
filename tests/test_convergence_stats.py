"""The convergence study's statistics (jnigt.experiments.convergence_stats): censored times to threshold,
the paired rank test, Holm, the verdict rule, A/A calibration, the paired bootstrap, KM and rliable.
Pure numpy / scipy / lifelines / rliable: no JAX computation."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from jnigt.experiments import convergence_stats as cs
from jnigt.experiments import stats

C = cs.Censored
E, N = True, False  # reached (event) / not reached (censored)


def _c(times, reached, t_end=100.0):
    return C(np.asarray(times, float), np.asarray(reached, bool), t_end)


def test_first_reach_is_the_first_grid_time_at_or_above_and_censors_at_t_end():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array(
        [
            [0.0, 1.0, 5.0, 6.0],  # first >= 4 at t = 2 (no interpolation)
            [4.0, 1.0, 1.0, 1.0],  # at the threshold at t = 0: reaches at time 0
            [0.0, 1.0, 2.0, 3.0],  # never: censored at T_end = 3
            [0.0, np.nan, np.nan, np.nan],  # diverged: never reaches
            [0.0, 1.0, 2.0, 4.0],  # exactly at the threshold at T_end: reached at 3
            [0.0, np.nan, 9.0, 9.0],  # NaN then above: reaches at 2
        ]
    )
    got = cs.first_reach(t, y, 4.0)
    np.testing.assert_array_equal(got.time, [2.0, 0.0, 3.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(got.reached, [E, E, N, N, E, E])
    assert got.t_end == 3.0
    with pytest.raises(ValueError, match="increasing times"):
        cs.first_reach(t[::-1], y, 4.0)


def test_gehan_scores_of_censored_pairs():
    # (a, b): a known first +1, b known first -1, unknown or tied 0
    cases = [
        ((1, E), (2, E), 1),
        ((2, E), (1, E), -1),
        ((2, E), (2, E), 0),  # tied at one grid time
        ((10, E), (10, N), 1),  # a reached at T_end, b had not
        ((10, N), (10, E), -1),
        ((10, N), (10, N), 0),  # both censored
        ((2, E), (10, N), 1),
        ((5, E), (3, N), 0),  # b censored before a's time: order unknown
    ]
    for (ta, ea), (tb, eb), want in cases:
        got = cs._scores(np.array([ta], float), np.array([ea]), np.array([tb], float), np.array([eb]))
        assert got[0] == want, ((ta, ea), (tb, eb))


def test_rank_test_all_wins_is_exact_one_in_two_to_the_n():
    ref = _c(np.arange(1, 11), [E] * 10)
    base = _c(3 * np.arange(1, 11), [E] * 10)
    t = cs.paired_rank_test(ref, base)
    assert (t.wins, t.losses, t.ties) == (10, 0, 0)
    assert t.p_faster == 2.0**-10 and t.p_slower == 1.0
    back = cs.paired_rank_test(base, ref)
    assert back.p_slower == 2.0**-10 and back.p_faster == 1.0 and back.statistic == -t.statistic


def test_rank_test_ties_and_censored_pairs_are_uninformative():
    # 5 wins of distinct size, 3 pairs both censored, 2 pairs tied at one grid time
    ref = _c([1, 1, 1, 1, 1, 100, 100, 100, 7, 9], [E] * 5 + [N] * 3 + [E, E])
    base = _c([2, 3, 4, 5, 6, 100, 100, 100, 7, 9], [E] * 5 + [N] * 3 + [E, E])
    t = cs.paired_rank_test(ref, base)
    assert (t.wins, t.losses, t.ties) == (5, 0, 5)
    assert t.p_faster == 1 / 32  # the 5 informative pairs alone
    none = _c([100] * 6, [N] * 6)
    t = cs.paired_rank_test(none, none)
    assert (t.ties, t.statistic, t.p_faster, t.p_slower) == (6, 0.0, 1.0, 1.0)


def test_rank_test_hand_computed_with_censoring_and_rank_ties():
    # informative pairs: win |log 2|, win log 4, loss log 2, win log 5 (base censored at T_end = 10)
    # -> ranks 1.5, 3, 1.5, 4; S = 1.5 + 3 - 1.5 + 4 = 7; of the 16 sign flips of (1.5, 1.5, 3, 4),
    # three give S0 >= 7 (10, 7, 7) and one gives S0 > 7
    ref = _c([1, 1, 4, 2, 10, 3], [E, E, E, E, N, E], t_end=10.0)
    base = _c([2, 4, 2, 10, 10, 3], [E, E, E, N, N, E], t_end=10.0)
    t = cs.paired_rank_test(ref, base)
    assert (t.wins, t.losses, t.ties, t.statistic) == (3, 1, 2, 7.0)
    assert t.p_faster == pytest.approx(3 / 16) and t.p_slower == pytest.approx(15 / 16)
    with pytest.raises(ValueError, match="paired by seed"):
        cs.paired_rank_test(ref, base.take(slice(0, 5)))


def test_flip_pvalues_agree_with_scipy_permutation_test():
    rng = np.random.default_rng(0)
    v = rng.integers(-4, 5, (4, 9)).astype(float)
    pg, pl = cs._flip_pvalues(v, seed=0)

    def ref(row, alt, n):
        r = sps.permutation_test(
            (row,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples", n_resamples=n,
            alternative=alt, vectorized=True, rng=np.random.default_rng(1),
        )  # fmt: skip
        return r.pvalue

    for i in range(4):
        assert pg[i] == pytest.approx(ref(v[i], "greater", np.inf)) and pl[i] == pytest.approx(
            ref(v[i], "less", np.inf)
        )
    big = rng.normal(size=(1, 24))  # above EXACT_PAIRS: Monte Carlo, close to scipy's own
    pg, pl = cs._flip_pvalues(big, seed=0)
    assert abs(pg[0] - ref(big[0], "greater", 9999)) < 0.03 and abs(pl[0] - ref(big[0], "less", 9999)) < 0.03
    assert cs._flip_pvalues(np.arange(1.0, 25.0)[None], 0)[0][0] == 1 / (cs.MONTE_CARLO_FLIPS + 1)


def test_holm_on_known_pvalues():
    np.testing.assert_allclose(cs.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(cs.holm([0.5, 0.001]), [0.5, 0.002])
    np.testing.assert_allclose(cs.holm([0.6, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(cs.holm([0.02]), [0.02])
    # two baselines at 2.5%: 2^-7 = 0.0078 < 0.0125 <= 2^-6
    assert cs.min_pairs(2) == 7 and cs.min_pairs(1) == 6
    r, b = _wins_but_one(7, n=10)
    n6 = {k: c.take(slice(0, 6)) for k, c in (("r", r), ("b", b))}  # 6 pairs all won: p = 1/64
    assert (
        cs.decide("best", {"ref": n6["r"], "b1": n6["b"], "b2": n6["b"]}).verdict == "no difference detected"
    )
    assert cs.decide("best", {"ref": n6["r"], "b1": n6["b"]}).verdict == "holds"


def _wins_but_one(loss_rank: int, n: int = 10) -> tuple:
    """ref at 10; base slower by exp(k/10) at pair k except pair ``loss_rank`` (faster): ranks 1..n."""
    ref = _c([10.0] * n, [E] * n)
    f = np.exp(np.arange(1, n + 1) / 10)
    f[loss_rank - 1] = 1 / f[loss_rank - 1]
    return ref, _c(10.0 * f, [E] * n)


def test_best_verdicts_with_holm_over_baselines():
    ref = _c(np.arange(1, 11), [E] * 10)
    slow, slower = _c(2 * np.arange(1, 11), [E] * 10), _c(3 * np.arange(1, 11), [E] * 10)
    d = cs.decide("best", {"ref": ref, "b1": slow, "b2": slower})
    assert d.verdict == "holds"
    assert [(c.method, c.other) for c in d.comparisons] == [("ref", "b1"), ("ref", "b2")]
    assert d.comparisons[0].ratio == pytest.approx(0.5) and d.comparisons[0].ratio_hi < 1
    assert cs.decide("best", {"ref": ref, "b1": slow, "same": ref}).verdict == "no difference detected"
    assert cs.decide("best", {"ref": slow, "b1": ref}).verdict == "does not hold"
    censored = _c([100] * 10, [N] * 10)
    d = cs.decide("best", {"ref": censored, "b1": censored})
    assert d.verdict == "no difference detected" and math.isnan(d.comparisons[0].ratio)
    # one loss at rank 7 of 10: raw p = 19/1024 < ALPHA, but against two such baselines Holm doubles it
    r, b = _wins_but_one(7)
    assert cs.paired_rank_test(r, b).p_faster == 19 / 1024 < cs.ALPHA
    assert cs.decide("best", {"ref": r, "b1": b}).verdict == "holds"
    d = cs.decide("best", {"ref": r, "b1": b, "b2": b})
    assert d.verdict == "no difference detected"
    assert d.comparisons[0].p_faster_holm == pytest.approx(2 * 19 / 1024)


def test_alike_verdicts():
    ref = _c(np.arange(10, 20), [E] * 10)
    d = cs.decide("alike", {"a": ref, "b": ref, "c": ref})
    assert d.verdict == "holds" and len(d.comparisons) == 3
    assert all((c.ratio, c.ratio_lo, c.ratio_hi) == (1.0, 1.0, 1.0) for c in d.comparisons)
    far = _c(3 * np.arange(10, 20), [E] * 10)
    assert cs.decide("alike", {"a": ref, "b": ref, "c": far}).verdict == "does not hold"
    # wins and losses alternate by a factor 2: no difference, but the ratio is not pinned inside 1.5
    noisy = _c(np.arange(10, 20) * np.tile([2.0, 0.5], 5), [E] * 10)
    d = cs.decide("alike", {"a": ref, "b": noisy})
    assert d.verdict == "no difference detected"
    assert cs.decide("alike", {"a": ref, "b": noisy}, margin=3.0).verdict == "holds"
    with pytest.raises(ValueError, match="kind"):
        cs.decide("faster", {"a": ref, "b": ref})


def _synthetic_pool(seed: int, k: int = 20) -> C:
    """Lognormal times snapped up to a 26-point grid (ties), censored at T_end (about a third)."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 50.0, 26)
    t = np.exp(rng.normal(3.5, 0.6, k))
    reached = t <= grid[-1]
    snapped = grid[np.minimum(np.searchsorted(grid, t), grid.size - 1)]
    return C(np.where(reached, snapped, grid[-1]), reached, float(grid[-1]))


def test_aa_calibration_of_identical_methods_stays_within_its_bound():
    pool = _synthetic_pool(3)
    assert 2 <= np.sum(~pool.reached) <= 12 and len(np.unique(pool.time)) < len(pool)  # censoring, ties
    for kind in ("best", "alike"):
        cal = cs.aa_calibration(pool, kind, num_splits=200, seed=1)
        assert cal.comparisons == 200 == sum(cal.verdicts.values())
        assert cal.lo <= cal.rate <= cal.hi and cal.rate <= 0.10, cal
    # the calibration can fail: a rule at one-sided 0.2 per direction is far above 10%
    loose = cs.aa_calibration(pool, "best", num_splits=200, seed=1, alpha=0.2)
    assert loose.lo > 0.10, loose
    with pytest.raises(ValueError, match=">= 20 runs"):
        cs.aa_calibration(pool.take(slice(0, 10)), "best")


def test_paired_bootstrap_respects_the_seed_pairing():
    # strongly seed-correlated runs: the seed sets the scale, the reference is twice as fast at each
    rng = np.random.default_rng(0)
    base = np.exp(3.0 + 1.0 * rng.standard_normal(10))
    ref = 0.5 * base * np.exp(0.05 * rng.standard_normal(10))
    est, lo, hi = stats.bootstrap_ratio(ref, base)
    assert 0.4 < lo <= est <= hi < 0.6
    # the same values matched to other seeds: what resampling the methods independently would see
    _, lo_x, hi_x = stats.bootstrap_ratio(ref[rng.permutation(10)], base)
    assert math.log(hi / lo) < 0.25 * math.log(hi_x / lo_x)
    assert stats.bootstrap_ratio(base, base)[1:] == (1.0, 1.0)  # a method against itself: exactly 1
    with pytest.raises(ValueError, match="paired"):
        stats.bootstrap_ratio(ref, base[:9])


def test_km_table_fraction_reached():
    km = cs.km_table(_c([1, 2, 2, 3, 4, 4], [E, E, E, E, N, N], t_end=4.0))
    np.testing.assert_allclose(km["time"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(km["reached"], [0, 1 / 6, 1 / 2, 2 / 3, 2 / 3])
    assert np.all(km["lo"] <= km["reached"] + 1e-12) and np.all(km["reached"] <= km["hi"] + 1e-12)


def test_logrank_cross_check():
    a = _c(np.arange(1, 11), [E] * 10)
    assert cs.logrank(a, a) == pytest.approx(1.0)
    assert cs.logrank(a, _c([100] * 10, [N] * 10)) < 1e-3


def test_detectable_ratio_shrinks_with_spread_and_grows_with_seeds():
    tight, wide = _c(np.linspace(20, 24, 10), [E] * 10), _c(np.geomspace(5, 80, 10), [E] * 10)
    r_tight, r_wide = cs.detectable_ratio(tight, 10, reps=100), cs.detectable_ratio(wide, 10, reps=100)
    assert 0 < r_wide < r_tight < 1
    assert r_wide < cs.detectable_ratio(wide, 30, reps=100) < 1
    assert math.isnan(cs.detectable_ratio(_c([100] * 10, [N] * 10), 10))


def test_secondary_scores_iqm_and_probability_of_improvement():
    t = np.array([0.0, 1.0, 2.0])
    sc = cs.secondary_scores(t, np.array([[0.0, 1.0, 2.0], [0.0, np.nan, 3.0]]))
    np.testing.assert_array_equal(sc["final"], [2.0, 3.0])
    assert sc["auc"][0] == pytest.approx(1.0) and sc["auc"][1] == -math.inf
    x = np.random.default_rng(0).normal(size=(10, 3))
    state = np.random.get_state()[1].copy()
    est, lo, hi = cs.iqm(x, reps=100, seed=2)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # numpy's global RNG restored
    assert est == pytest.approx(sps.trim_mean(x, 0.25, axis=None)) and lo < est < hi
    assert cs.iqm(x, reps=100, seed=2) == (est, lo, hi)  # seeded
    assert cs.improvement_probability(x, x, reps=100) == (0.5, 0.5, 0.5)
    assert cs.improvement_probability(x + 10, x, reps=100) == (1.0, 1.0, 1.0)
    est, lo, hi = cs.improvement_probability(x[:, 0] + 0.5, x[:, 0], reps=100)
    u = sps.mannwhitneyu(x[:, 0] + 0.5, x[:, 0], alternative="greater").statistic / 100
    assert est == pytest.approx(u) and lo <= est <= hi
