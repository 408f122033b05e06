"""Statistics of return-against-simulated-time curves that share one time grid.

Every function takes curves as an array ``y[K, G]`` (K runs = seeds, G grid points) on a grid
``times[G]`` common to all methods of a comparison (see :mod:`jnigt.experiments.sweep`), so no
interpolation between runs is ever needed. See docs/algorithms.md#experiments.

Thresholds are FIXED per environment (:data:`THRESHOLDS`), never derived from the curves being
compared: ``threshold(env, horizon) = THRESHOLDS[env] * horizon`` (a mean reward per step over the
horizon; returns are undiscounted sums over ``horizon`` steps, so a per-step value keeps one table
valid for every horizon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Mean reward per step whose return (``value * horizon``) counts as "solved enough" for time to
#: threshold. Values stated here, chosen once from the reward scale of each environment (not tuned on
#: any comparison):
#:   inverted_pendulum: reward 1 per step while the pole is up -> 0.8 = upright for 80% of the horizon.
#:   inverted_double_pendulum: reward ~9 per upright step -> 4.5.
#:   hopper, walker2d: healthy reward 1 + forward velocity - control cost -> 1.0 (alive and not falling back).
#:   humanoid: healthy reward 5 + forward velocity -> 5.0 (alive the whole horizon).
#:   reacher: minus distance and control costs, ~ -0.5 per step at random -> -0.2.
#:   halfcheetah, ant: forward velocity - control cost (ant +1 healthy) -> 0.5, 1.0.
#:   pusher: minus distances, ~ -1 per step at random -> -0.5.
#:   fast (brax's toy env, reward grows with the distance travelled): 0.5.
#:   lqr (minus quadratic cost): -1.0.
#:   playground:CartpoleSwingup (DM Control reward in [0, 1], about 0.02 at random): 0.5 = up about half the time.
#: ``mirrored_<env>`` uses the value of ``<env>``.
THRESHOLDS: dict[str, float] = {
    "inverted_pendulum": 0.8,
    "inverted_double_pendulum": 4.5,
    "hopper": 1.0,
    "walker2d": 1.0,
    "humanoid": 5.0,
    "reacher": -0.2,
    "halfcheetah": 0.5,
    "ant": 1.0,
    "pusher": -0.5,
    "fast": 0.5,
    "lqr": -1.0,
    "playground:CartpoleSwingup": 0.5,
}


def threshold(env: str, horizon: int) -> float:
    """Fixed return threshold of ``env`` at ``horizon``: ``THRESHOLDS[env] * horizon``."""
    base = env[len("mirrored_") :] if env.startswith("mirrored_") else env
    if base not in THRESHOLDS:
        raise ValueError(f"env: no stated threshold for {env!r}; known: {', '.join(sorted(THRESHOLDS))}")
    return float(THRESHOLDS[base]) * int(horizon)


def _curves(y) -> np.ndarray:
    y = np.asarray(y, float)
    if y.ndim != 2 or y.shape[0] < 1:
        raise ValueError(f"curves must be an array [runs, grid points] with runs >= 1, got shape {y.shape}")
    return y


def median_band(y, lo: float = 0.2, hi: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise median and the ``lo``-``hi`` quantile band over runs: three arrays ``[G]``.

    A non-finite return (a diverged run) propagates as NaN into the median of its grid point.
    """
    y = _curves(y)
    return np.median(y, axis=0), np.quantile(y, lo, axis=0), np.quantile(y, hi, axis=0)


def area_under_median(times, y) -> float:
    """Tuning criterion: mean over time of the median curve, ``(1/T) int_0^T median_k y_k(t) dt``
    (trapezoid rule on the grid). ``-inf`` when the median is non-finite anywhere (diverged)."""
    t = np.asarray(times, float)
    med = np.median(_curves(y), axis=0)
    if med.shape != t.shape or t.size < 2:
        raise ValueError(f"times must have one entry per grid point (>= 2); got {t.shape} for {med.shape}")
    if not np.all(np.isfinite(med)):
        return -math.inf
    return float(np.trapezoid(med, t) / (t[-1] - t[0]))


def time_to_threshold(times, y, thr: float) -> np.ndarray:
    """Per run: the first simulated time its curve reaches ``thr``, linearly interpolated between the
    last grid point below and the first at or above (``times[0]`` if it starts above); ``inf`` if never.

    Args: times [G]; y [K, G] or [G]. Returns [K] (or a scalar array for one curve).
    """
    t = np.asarray(times, float)
    single = np.ndim(y) == 1
    y = _curves(np.atleast_2d(y))
    out = np.full(y.shape[0], np.inf)
    for k, row in enumerate(y):
        hit = np.flatnonzero(row >= thr)
        if hit.size == 0:
            continue
        j = hit[0]
        if j == 0:
            out[k] = t[0]
        else:
            y0, y1 = row[j - 1], row[j]
            frac = (thr - y0) / (y1 - y0) if np.isfinite(y0) and y1 > y0 else 1.0
            out[k] = t[j - 1] + frac * (t[j] - t[j - 1])
    return out[0] if single else out


def median_inf(values: Sequence[float]) -> float:
    """Median that keeps ``inf`` honest: ``inf`` when at least half of the values are ``inf``
    (the median of an even count is the mean of the middle pair, ``inf`` if either is)."""
    v = np.asarray(values, float).ravel()
    return math.nan if v.size == 0 else float(_median_inf_rows(v[None])[0])


def _median_inf_rows(v: np.ndarray) -> np.ndarray:
    """:func:`median_inf` of each row of ``v [R, K]`` (K >= 1) -> ``[R]``."""
    v = np.sort(v, axis=1)
    k = v.shape[1]
    if k % 2:
        return v[:, k // 2]
    lo, hi = v[:, k // 2 - 1], v[:, k // 2]
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(hi), np.inf, 0.5 * (lo + hi))


def ttt_ratio(ref: float, other: float) -> float:
    """``ref / other`` for times to threshold (< 1: the reference is faster). Only the reference reaches
    it: 0; only ``other``: inf; neither (or both at time 0): nan."""
    return float(_ratio(np.float64(ref), np.float64(other)))


def _ratio(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """:func:`ttt_ratio` elementwise."""
    ri, oi = np.isinf(ref), np.isinf(other)
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = ref / other
    return np.select(
        [ri & oi, ri, oi, (other == 0) & (ref == 0), other == 0],
        [np.nan, np.inf, 0.0, np.nan, np.inf],
        plain,
    )


def bootstrap_ratio(
    ref_ttt, other_ttt, level: float = 0.9, num_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Ratio of median times to threshold ``median(ref) / median(other)`` (see :func:`ttt_ratio`) with a
    PAIRED bootstrap ``level`` interval. Returns ``(estimate, low, high)``.

    ``ref_ttt[k]`` and ``other_ttt[k]`` must be the runs of the two methods at the same seed k: runs of
    different methods at one seed share the initial parameters and the evaluation keys, so they are
    dependent, and the unit that is independent (and resampled) is the seed. Each resample draws K seed
    indices with replacement (``numpy.random.default_rng(seed)``) and takes both methods' runs at those
    seeds; resampling the methods independently would ignore the dependence and, with the positive
    correlation a shared start gives, widen the interval (docs/algorithms.md#experiments). Interval =
    the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (inverted CDF, so ``inf`` and 0 stay exact)
    of the resampled ratios that are not NaN.
    """
    ref, other = np.asarray(ref_ttt, float).ravel(), np.asarray(other_ttt, float).ravel()
    if ref.size == 0 or ref.size != other.size:
        raise ValueError(
            f"ref_ttt and other_ttt must hold one run per seed of the same seeds (paired), got "
            f"{ref.size} and {other.size} runs"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    est = ttt_ratio(median_inf(ref), median_inf(other))
    idx = np.random.default_rng(seed).integers(0, ref.size, (num_resamples, ref.size))
    samples = _ratio(_median_inf_rows(ref[idx]), _median_inf_rows(other[idx]))
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return est, math.nan, math.nan
    a = (1 - level) / 2
    low, high = np.quantile(samples, [a, 1 - a], method="inverted_cdf")
    return est, float(low), float(high)


def values_at(times, y, at: Sequence[float]) -> np.ndarray:
    """Returns at given grid times: ``y[:, index of each time in times]`` -> [K, len(at)].
    Every ``at`` must be a grid point (equal-time comparison: no interpolation)."""
    t = np.asarray(times, float)
    y = _curves(y)
    idx = []
    for a in at:
        hit = np.flatnonzero(np.isclose(t, a, rtol=1e-6, atol=1e-9))
        if hit.size == 0:
            raise ValueError(f"at: {a} is not a point of the time grid {t.tolist()}")
        idx.append(int(hit[0]))
    return y[:, idx]
