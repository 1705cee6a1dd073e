"""Uncertainty of test figures: Wilson intervals against an independent root-finding of their defining equation and
against published values; McNemar's exact test against binomial tails worked out by hand."""

from __future__ import annotations

import math

import pytest

from mnist_lib import stats


def wilson_by_bisection(correct: int, total: int, z: float) -> tuple[float, float]:
    """The two p where |share - p| = z * sqrt(p (1 - p) / total): the Wilson interval's definition, solved numerically."""
    share = correct / total

    def gap(p: float) -> float:
        return abs(share - p) - z * math.sqrt(p * (1 - p) / total)

    def root(low: float, high: float) -> float:
        for _ in range(200):
            middle = (low + high) / 2
            if (gap(low) > 0) == (gap(middle) > 0):
                low = middle
            else:
                high = middle
        return (low + high) / 2

    return (0.0 if correct == 0 else root(0.0, share)), (1.0 if correct == total else root(share, 1.0))


@pytest.mark.parametrize(("correct", "total"), [(9963, 10000), (9961, 10000), (97, 100), (0, 30), (30, 30), (1, 2)])
def test_wilson_interval_solves_its_defining_equation(correct, total):
    low, high = stats.wilson_interval(correct, total)
    expected = wilson_by_bisection(correct, total, 1.959963984540054)
    assert low == pytest.approx(expected[0], abs=1e-9) and high == pytest.approx(expected[1], abs=1e-9)
    assert low <= correct / total <= high


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Statistics in Medicine 17, table II: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    assert stats.wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert stats.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    low, high = stats.wilson_interval(9963, 10000)  # 37 errors in 10,000: about 99.49% to 99.73%
    assert (round(low * 100, 2), round(high * 100, 2)) == (99.49, 99.73)


@pytest.mark.parametrize(("correct", "total"), [(-1, 10), (11, 10), (0, 0), (1.5, 10)])
def test_impossible_counts_are_refused(correct, total):
    with pytest.raises(ValueError, match="need 0 <= correct <= total"):
        stats.wilson_interval(correct, total)


@pytest.mark.parametrize(("first", "second", "p_value"), [
    (0, 0, 1.0),  # the models agree on every image
    (1, 0, 1.0),  # 2 * P(X <= 0 | n=1) = 2 * 1/2
    (5, 0, 2 / 32),  # 2 * (1/2)^5
    (10, 2, 2 * (1 + 12 + 66) / 4096),  # 2 * P(X <= 2 | n=12)
    (2, 10, 2 * (1 + 12 + 66) / 4096),  # symmetric
    (6, 6, 1.0),  # 2 * P(X <= 6 | n=12) > 1: capped
])
def test_mcnemar_exact_p_value_is_the_doubled_binomial_tail(first, second, p_value):
    assert stats.mcnemar_exact(first, second) == pytest.approx(p_value, rel=1e-12)


def test_mcnemar_exact_handles_thousands_of_disagreements_without_underflow():
    p_value = stats.mcnemar_exact(1100, 900)  # normal approximation: z = 200 / sqrt(2000) = 4.47, p about 7.7e-6
    assert 5e-6 < p_value < 1.1e-5
