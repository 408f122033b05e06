"""Statistics of the convergence study: time to a fixed threshold, censored at T_end, compared paired
by seed, with verdicts whose false-verdict rate is calibrated by A/A comparisons.
See docs/algorithms.md#experiments.

**Primary statistic** (:func:`first_reach`). A run's time to the threshold is the first grid time at
which its return is ``>= threshold``; a run that never gets there by ``T_end = times[-1]`` is censored at
``T_end`` (not reached). A run already at or above the threshold at ``times[0]`` reaches it at
``times[0]`` (time 0, an event; the study's threshold rule avoids such runs, the functions accept them).
A non-finite return (a diverged run) never counts as reaching. Times are grid times: no interpolation,
so two runs that reach at the same grid point are tied.

**Pairing.** Run k of every method uses report seed k, and runs at one seed share the initial
parameters and the evaluation keys: run k of one method and run k of another form a pair, and the seed
is the independent unit. Every two-method function here takes runs aligned by seed.

**The rank test** (:func:`paired_rank_test`). Per pair a Gehan score: ``+1`` when run a is known to
reach first (a reaches, before b reaches or no later than b's censoring time), ``-1`` the other way,
``0`` when the order is unknown or tied (both censored, or both reach at one grid time). The pairs with
a nonzero score are weighted by the rank (ties averaged) of ``|log t_a - log t_b|``; the statistic is
``S = sum score * rank``, a signed-rank statistic for censored pairs. Under H0 "both methods have the
same distribution given the seed", the two runs of a pair are exchangeable; swapping them negates the
score and keeps the rank, so the null distribution of ``S`` is that of the random sign flips (the
p-values of ``scipy.stats.permutation_test(..., permutation_type="samples")``, for many samples at
once): exact up to :data:`EXACT_PAIRS` pairs, above that a seeded Monte Carlo of
:data:`MONTE_CARLO_FLIPS` flips (still a valid p-value).
The test is exact whatever the correlation within pairs; a positive one only adds power.

**Verdicts** (:func:`decide`), at one-sided level :data:`ALPHA` per direction:

* ``"best"`` (the reference, first method, is faster than every baseline): one rank test per baseline,
  Holm-corrected over the baselines separately for "faster" and for "slower" p-values. **holds** when
  every Holm-adjusted "faster" p-value is below ALPHA; **does not hold** when some Holm-adjusted
  "slower" p-value is; otherwise **no difference detected** (state :func:`detectable_ratio` with it).
* ``"alike"`` (no method faster than another): a rank test per pair of methods, Holm over the pairs
  per direction. **does not hold** when some adjusted p-value (either direction) is below ALPHA;
  **holds** when not, and every pair's paired bootstrap ``1 - 2 ALPHA`` (95%) interval of the ratio of
  median times (:func:`jnigt.experiments.stats.bootstrap_ratio`, censored runs as ``inf``) lies inside
  ``[1/margin, margin]`` (two one-sided tests at ALPHA in interval form; :data:`MARGIN`); otherwise
  **no difference detected**.

For identical methods a "best" verdict is false when it says holds or does not hold, an "alike" one
when it says does not hold; both are at most ``2 ALPHA = 5%`` by construction (Holm, exact tests).
An exact test on n pairs cannot give a p-value below 2^-n, so a verdict other than "no difference
detected" needs at least :func:`min_pairs` informative pairs (7 for two baselines at ALPHA; 5 seeds
can never decide).
:func:`aa_calibration` measures the rate. The final return and the area under the curve are
secondary statistics only (:func:`secondary_scores`, :func:`iqm`, :func:`improvement_probability`,
rliable); :func:`km_table` gives the Kaplan-Meier curve of the time to threshold (lifelines);
:func:`logrank` is lifelines' (unpaired) log-rank test as a cross-check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import warnings

import numpy as np
from scipy import stats as sps

from jnigt.experiments.stats import bootstrap_ratio

#: One-sided level per direction: the false-verdict rate for identical methods is at most 2 ALPHA = 5%,
#: half the study's 10% bound, so a pool's A/A estimate has room below it.
ALPHA = 0.025
#: Equivalence margin of "alike": ratios of median times to threshold inside [1/MARGIN, MARGIN].
MARGIN = 1.5
#: Up to this many pairs the sign-flip null distribution is enumerated exactly (2^n flips).
EXACT_PAIRS = 14
#: Above EXACT_PAIRS, this many random sign flips (seeded) estimate the p-value.
MONTE_CARLO_FLIPS = 9999
#: The A/A calibration's minimum pool of runs and number of random halvings.
MIN_POOL, MIN_SPLITS = 20, 200

VERDICTS = ("holds", "does not hold", "no difference detected")


@dataclasses.dataclass(frozen=True)
class Censored:
    """Times to threshold of K runs: ``time[k]`` is the time run k reached the threshold when
    ``reached[k]``, else its censoring time (it had not reached by then); ``t_end`` the study's T_end."""

    time: np.ndarray
    reached: np.ndarray
    t_end: float

    def __post_init__(self):
        t, e = np.asarray(self.time, float), np.asarray(self.reached, bool)
        if t.ndim != 1 or t.shape != e.shape or t.size == 0:
            raise ValueError(f"time and reached must be 1-d of one length >= 1, got {t.shape}, {e.shape}")
        if np.any(~np.isfinite(t)) or np.any(t < 0) or np.any(t > self.t_end):
            raise ValueError(f"time must be finite, in [0, t_end={self.t_end}]; got {t.tolist()}")
        object.__setattr__(self, "time", t)
        object.__setattr__(self, "reached", e)

    def __len__(self) -> int:
        return self.time.size

    def take(self, index) -> Censored:
        """The runs at ``index``."""
        return Censored(self.time[index], self.reached[index], self.t_end)

    def as_inf(self) -> np.ndarray:
        """Times with the censored runs as ``inf`` (the input of the median-ratio bootstrap)."""
        return np.where(self.reached, self.time, np.inf)


def first_reach(times, y, thr: float) -> Censored:
    """Per run (row of ``y [K, G]``, grid ``times [G]``), the first grid time with ``y >= thr``
    (``times[0]`` when it starts there); runs that never get there are censored at ``times[-1]``."""
    t = np.asarray(times, float)
    y = np.asarray(y, float)
    if y.ndim != 2 or y.shape[1] != t.size or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(
            f"y must be [runs, grid points] on increasing times [G >= 2]; got {y.shape}, {t.shape}"
        )
    with np.errstate(invalid="ignore"):
        hit = y >= thr  # NaN compares False: a diverged run does not reach
    reached = hit.any(axis=1)
    return Censored(np.where(reached, t[np.argmax(hit, axis=1)], t[-1]), reached, float(t[-1]))


def _scores(ta, ea, tb, eb) -> np.ndarray:
    """Gehan scores of aligned pairs: +1 a known first, -1 b known first, 0 unknown or tied."""
    a_first = ea & np.where(eb, ta < tb, ta <= tb)
    b_first = eb & np.where(ea, tb < ta, tb <= ta)
    return a_first.astype(int) - b_first.astype(int)


def _signed_ranks(ta, ea, tb, eb) -> np.ndarray:
    """``score * rank of |log t_a - log t_b|`` over the pairs with a nonzero score (rows [..., K])."""
    s = _scores(ta, ea, tb, eb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.nan_to_num(np.abs(np.log(ta) - np.log(tb)), nan=0.0)
    mag = np.where(s != 0, mag, -1.0)  # uninformative pairs rank below all others, then get weight 0
    ranks = sps.rankdata(mag, axis=-1) - np.sum(s == 0, axis=-1, keepdims=True)
    return np.where(s != 0, s * ranks, 0.0)


def _flip_pvalues(v: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """P(S0 >= S) and P(S0 <= S) for ``S = v.sum(-1)`` under random sign flips of each ``v[..., k]``
    (rows ``v [R, n]``): all 2^n flips up to :data:`EXACT_PAIRS` pairs, else :data:`MONTE_CARLO_FLIPS`
    random ones (``numpy.random.default_rng(seed)``) plus the observed one, ``(1 + count) / (1 + B)``.
    The p-values of ``scipy.stats.permutation_test(..., permutation_type="samples")``, for all rows at
    once (tests/test_convergence_stats.py checks them against it)."""
    n = v.shape[-1]
    if n <= EXACT_PAIRS:
        signs, extra = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1), 0
    else:
        signs, extra = np.random.default_rng(seed).choice([-1, 1], (MONTE_CARLO_FLIPS, n)), 1
    null = v @ signs.T
    obs = v.sum(axis=-1, keepdims=True)
    tol = 1e-9 * np.maximum(1.0, np.abs(obs))  # sums of averaged ranks: equal up to rounding
    pg = (np.sum(null >= obs - tol, axis=-1) + extra) / (signs.shape[0] + extra)
    pl = (np.sum(null <= obs + tol, axis=-1) + extra) / (signs.shape[0] + extra)
    return pg, pl


@dataclasses.dataclass(frozen=True)
class RankTest:
    """:func:`paired_rank_test` of run a against run b: pairs a wins / loses / ties (uninformative),
    the statistic ``S`` and the one-sided p-values of "a faster" and "a slower"."""

    wins: int
    losses: int
    ties: int
    statistic: float
    p_faster: float
    p_slower: float


def _check_paired(a: Censored, b: Censored) -> None:
    if len(a) != len(b):
        raise ValueError(f"runs must be paired by seed (one run per seed each); got {len(a)} and {len(b)}")


def paired_rank_test(a: Censored, b: Censored, seed: int = 0) -> RankTest:
    """The censored signed-rank test of the module docstring for runs aligned by seed."""
    _check_paired(a, b)
    s = _scores(a.time, a.reached, b.time, b.reached)
    v = _signed_ranks(a.time, a.reached, b.time, b.reached)
    pf, ps = _flip_pvalues(v[None], seed)
    wins, losses = int(np.sum(s > 0)), int(np.sum(s < 0))
    return RankTest(wins, losses, len(a) - wins - losses, float(v.sum()), float(pf[0]), float(ps[0]))


def min_pairs(num_tests: int = 1, alpha: float = ALPHA) -> int:
    """The fewest informative pairs with which Holm over ``num_tests`` tests can reject all of them:
    the smallest exact p-value is 2^-n, and Holm's first step needs it below ``alpha / num_tests``."""
    return math.floor(math.log2(num_tests / alpha)) + 1


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest of m is ``max_{j <= i} (m - j + 1) p_(j)``,
    capped at 1 (rejecting those below alpha keeps the family-wise error at most alpha)."""
    p = np.asarray(pvalues, float).ravel()
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    out = np.empty_like(p)
    out[order] = adj
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One pair of :func:`decide`: ``method`` against ``other``; ``ratio`` = median time of ``method`` /
    median time of ``other`` with its paired bootstrap ``1 - 2 alpha`` interval (95% at ALPHA; the one
    the equivalence check uses); ``*_holm``: Holm-adjusted p-values."""

    method: str
    other: str
    test: RankTest
    p_faster_holm: float
    p_slower_holm: float
    ratio: float
    ratio_lo: float
    ratio_hi: float


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str
    verdict: str
    comparisons: tuple[Comparison, ...]


def decide(
    kind: str, runs: dict[str, Censored], alpha: float = ALPHA, margin: float = MARGIN, seed: int = 0
) -> Decision:
    """The verdict of the module docstring. ``runs``: method -> its runs aligned by seed, the
    reference first (``"best"``); ``kind`` ``"best"`` or ``"alike"``."""
    if kind not in ("best", "alike"):
        raise ValueError(f"kind must be 'best' or 'alike', got {kind!r}")
    if len(runs) < 2:
        raise ValueError(f"runs: need >= 2 methods, got {list(runs)}")
    if not 0 < alpha < 0.5 or not margin > 1:
        raise ValueError(f"alpha must be in (0, 0.5) and margin > 1; got {alpha!r}, {margin!r}")
    names = list(runs)
    pairs = [(names[0], m) for m in names[1:]] if kind == "best" else list(itertools.combinations(names, 2))
    tests = [paired_rank_test(runs[a], runs[b], seed) for a, b in pairs]
    pf = holm([t.p_faster for t in tests])
    ps = holm([t.p_slower for t in tests])
    comps = []
    for (a, b), t, f, s in zip(pairs, tests, pf, ps):
        est, lo, hi = bootstrap_ratio(runs[a].as_inf(), runs[b].as_inf(), level=1 - 2 * alpha, seed=seed)
        comps.append(Comparison(a, b, t, float(f), float(s), est, lo, hi))
    if kind == "best":
        if np.all(pf < alpha):
            verdict = "holds"
        elif np.any(ps < alpha):
            verdict = "does not hold"
        else:
            verdict = "no difference detected"
    elif np.any(pf < alpha) or np.any(ps < alpha):
        verdict = "does not hold"
    elif all(1 / margin <= c.ratio_lo and c.ratio_hi <= margin for c in comps):
        verdict = "holds"
    else:
        verdict = "no difference detected"
    return Decision(kind, verdict, tuple(comps))


def is_false_for_identical(kind: str, verdict: str) -> bool:
    """Whether ``verdict`` is false when the methods compared are identical."""
    return verdict != "no difference detected" if kind == "best" else verdict == "does not hold"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A/A rate: ``false`` of ``comparisons`` verdicts false, ``rate`` with its Clopper-Pearson 95%
    interval ``[lo, hi]``; ``verdicts``: count of each verdict."""

    kind: str
    comparisons: int
    false: int
    rate: float
    lo: float
    hi: float
    verdicts: dict[str, int]


def aa_calibration(
    pool: Censored,
    kind: str,
    num_splits: int = MIN_SPLITS,
    seed: int = 0,
    alpha: float = ALPHA,
    margin: float = MARGIN,
) -> Calibration:
    """False-verdict rate of :func:`decide` on two copies of one method: ``num_splits`` random halvings
    of ``pool`` (runs of one method on distinct seeds; ``numpy.random.default_rng(seed)``), each half
    playing one method, the two halves paired in the order drawn.

    The halves have disjoint seeds, so their pairs are unrelated and exactly exchangeable; the rule is
    applied as it stands (the paired test, the paired bootstrap), which calibrates the paired rule
    itself, at zero within-pair correlation. The unpaired log-rank test would calibrate another rule;
    pairing a run with itself (same seed) would give identical runs and a trivially zero rate. The
    halvings reuse one pool, so the interval is that of this pool's rate, not of a new pool's.
    """
    if len(pool) < MIN_POOL or num_splits < MIN_SPLITS:
        raise ValueError(
            f"aa_calibration needs a pool of >= {MIN_POOL} runs and >= {MIN_SPLITS} splits; "
            f"got {len(pool)} runs, {num_splits} splits"
        )
    rng = np.random.default_rng(seed)
    half = len(pool) // 2
    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(num_splits):
        p = rng.permutation(len(pool))
        runs = {"A": pool.take(p[:half]), "B": pool.take(p[half : 2 * half])}
        counts[decide(kind, runs, alpha=alpha, margin=margin, seed=seed).verdict] += 1
    false = sum(c for v, c in counts.items() if is_false_for_identical(kind, v))
    ci = sps.binomtest(false, num_splits).proportion_ci(confidence_level=0.95, method="exact")
    return Calibration(kind, num_splits, false, false / num_splits, float(ci.low), float(ci.high), counts)


def detectable_ratio(
    pool: Censored,
    num_seeds: int,
    num_tests: int = 1,
    alpha: float = ALPHA,
    power: float = 0.8,
    reps: int = 200,
    seed: int = 0,
) -> float:
    """The largest time ratio r < 1 (reference / baseline) that the rank test detects with probability
    ``power`` at ``num_seeds`` pairs, each of ``num_tests`` tests at ``alpha / num_tests`` (Bonferroni,
    no weaker than Holm's first step). nan when ``pool`` has fewer than 2 runs that reach.

    Model: a lognormal time fitted to ``pool`` with its censoring (``lifelines.LogNormalFitter``; times
    0 count as half the smallest positive time); baseline times drawn from it, reference times the same
    law scaled by r, independent within a pair (zero correlation: a positive one makes the test more
    powerful, so the value is conservative), censored at ``pool.t_end``; ratios r = 1.05^-j, j = 1..94
    (down to 0.01), common random numbers across r; 0 when none is detected. A pool without spread
    (all runs at one grid time) fits a tiny sigma and gives a ratio near 1.
    """
    from lifelines import LogNormalFitter
    from lifelines.exceptions import StatisticalWarning

    if int(np.sum(pool.reached)) < 2:
        return math.nan
    pos = pool.time[pool.time > 0]
    floor = 0.5 * (pos.min() if pos.size else pool.t_end)
    with warnings.catch_warnings():  # only the point estimates are used, not their variances
        warnings.simplefilter("ignore", StatisticalWarning)
        fit = LogNormalFitter().fit(np.maximum(pool.time, floor), pool.reached)
    rng = np.random.default_rng(seed)
    zb, za = rng.standard_normal((2, reps, num_seeds))
    tb = np.exp(fit.mu_ + fit.sigma_ * zb)
    eb = tb <= pool.t_end
    for j in range(1, 95):
        r = 1.05**-j
        ta = np.exp(fit.mu_ + math.log(r) + fit.sigma_ * za)
        ea = ta <= pool.t_end
        v = _signed_ranks(np.minimum(ta, pool.t_end), ea, np.minimum(tb, pool.t_end), eb)
        pf, _ = _flip_pvalues(v, seed)
        if np.mean(pf < alpha / num_tests) >= power:
            return r
    return 0.0


def logrank(a: Censored, b: Censored) -> float:
    """Two-sided p-value of lifelines' log-rank test of a against b (unpaired: a cross-check only)."""
    from lifelines.statistics import logrank_test

    return float(logrank_test(a.time, b.time, a.reached, b.reached).p_value)


def km_table(runs: Censored, level: float = 0.9) -> dict[str, np.ndarray]:
    """Kaplan-Meier estimate of the fraction of seeds that reached the threshold by each time
    (lifelines ``KaplanMeierFitter``, ``level`` pointwise interval): arrays ``time``, ``reached``,
    ``lo``, ``hi`` (a step function, constant after each time)."""
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter(alpha=1 - level).fit(runs.time, runs.reached)
    s = km.survival_function_.to_numpy()[:, 0]
    ci = km.confidence_interval_.to_numpy()
    return dict(
        time=km.survival_function_.index.to_numpy(float), reached=1 - s, lo=1 - ci[:, 1], hi=1 - ci[:, 0]
    )


def secondary_scores(times, y) -> dict[str, np.ndarray]:
    """Per run: ``final`` return (at T_end) and ``auc``, the mean over time of its curve
    ``(1/T) int y dt`` (trapezoid rule; ``-inf`` when the curve is non-finite anywhere). Secondary."""
    t = np.asarray(times, float)
    y = np.asarray(y, float)
    if y.ndim != 2 or y.shape[1] != t.size or t.size < 2:
        raise ValueError(f"y must be [runs, grid points] on times [G >= 2]; got {y.shape}, {t.shape}")
    auc = np.trapezoid(y, t, axis=1) / (t[-1] - t[0])
    return dict(final=y[:, -1], auc=np.where(np.all(np.isfinite(y), axis=1), auc, -np.inf))


def _matrix(x) -> np.ndarray:
    x = np.asarray(x, float)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"scores must be [runs >= 2] or [runs >= 2, panels], got shape {x.shape}")
    return x


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """rliable 1.2.0 draws its bootstrap indices from numpy's global RNG (``np.random.choice`` in
    ``rliable/library.py``) whatever random_state it is given: seed it, and restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm(scores, level: float = 0.9, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean of ``scores`` ``[runs]`` or ``[runs, panels]`` (for an aggregate over panels,
    normalise each panel first) with rliable's stratified bootstrap ``level`` interval (runs resampled
    within each panel). Returns ``(estimate, low, high)``."""
    from rliable import library, metrics

    x = _matrix(scores)
    with _numpy_global_seed(seed):
        est, ci = library.get_interval_estimates(
            {"x": x},
            lambda s: np.array([metrics.aggregate_iqm(s)]),
            reps=reps,
            confidence_interval_size=level,
        )
    return float(est["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def improvement_probability(
    x, y, level: float = 0.9, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """rliable's probability of improvement P(X > Y) (mean over panels) of scores ``x`` over ``y``
    (``[runs]`` or ``[runs, panels]``, run k of both at seed k) with a paired stratified bootstrap
    ``level`` interval: per panel, seeds resampled with replacement, the same seeds for both methods
    (``numpy.random.default_rng(seed)``). Returns ``(estimate, low, high)``."""
    from rliable import metrics

    x, y = _matrix(x), _matrix(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must be paired by seed (one shape); got {x.shape} and {y.shape}")
    k, p = x.shape
    idx = np.random.default_rng(seed).integers(0, k, (reps, k, p))
    col = np.arange(p)
    samples = [metrics.probability_of_improvement(x[i, col], y[i, col]) for i in idx]
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a])
    return float(metrics.probability_of_improvement(x, y)), float(lo), float(hi)
