"""The verdict rule of jnigt.experiments.results on constructed panels (no training)."""

import math

import pytest

from jnigt.experiments import results


def _row(label, med, lo, hi, ratio=(math.nan, math.nan, math.nan)):
    return dict(
        label=label,
        median_final_return=med,
        q20_final_return=lo,
        q80_final_return=hi,
        ttt_ratio=ratio[0],
        ttt_ratio_lo90=ratio[1],
        ttt_ratio_hi90=ratio[2],
    )


@pytest.mark.parametrize(
    "rows, expected",
    [
        # the reference's median above every baseline's 80% quantile
        ([_row("R", 50, 45, 55), _row("S", 30, 25, 40), _row("A", 35, 30, 44)], "holds"),
        # a baseline's median above the reference's 80% quantile: clearly ahead
        ([_row("R", 30, 25, 35), _row("A", 50, 45, 55)], "does not hold"),
        # overlapping bands, undefined ratios
        ([_row("R", 40, 30, 50), _row("A", 42, 32, 52)], "inconclusive"),
        # bands overlap but every ratio interval (reference / baseline) lies below 1
        ([_row("R", 40, 30, 50), _row("A", 42, 32, 52, (0.5, 0.3, 0.8))], "holds"),
        ([_row("R", 40, 30, 50), _row("A", 42, 32, 52, (2.0, 1.2, 3.0))], "does not hold"),
        # an undefined ratio (median times infinite) says nothing, whatever its bootstrap interval
        ([_row("R", 40, 30, 50), _row("A", 42, 32, 52, (math.nan, 0.0, 0.0))], "inconclusive"),
        ([_row("R", 40, 30, 50), _row("A", 42, 32, 52, (math.inf, 2.0, math.inf))], "inconclusive"),
    ],
)
def test_best_claim(rows, expected):
    assert results.verdict("best", rows, initial=10.0) == expected


def test_alike_claim_and_no_learning():
    alike = [_row("R", 40, 35, 45), _row("S", 41, 36, 46)]
    assert results.verdict("alike", alike, 10.0) == "holds"
    apart = [_row("R", 30, 28, 32), _row("S", 50, 48, 52)]
    assert results.verdict("alike", apart, 10.0) == "does not hold"
    # nobody improves by more than 10% on the initial return: no verdict either way
    assert results.verdict("best", apart, 49.0) == "inconclusive (no learning)"
    assert results.verdict(None, apart, 10.0) == "-"
