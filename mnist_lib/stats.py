"""How sure a test figure is: binomial confidence intervals for an accuracy, McNemar's exact test for two models."""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

CI_METHOD = "Wilson score interval"


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion of `correct` out of `total` (good near 0 and 1, where the normal
    approximation's p +- z sqrt(p(1-p)/n) leaves [0, 1] or shrinks to nothing)."""
    if not (isinstance(total, int) and total > 0 and isinstance(correct, int) and 0 <= correct <= total):
        raise ValueError(f"need 0 <= correct <= total and total > 0, got correct={correct!r}, total={total!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided p-value of McNemar's exact test: of the images exactly one of two models gets right, `only_first`
    went to the first and `only_second` to the second; under "equally accurate" each is a fair coin's toss.
    1.0 when the models never disagree."""
    if min(only_first, only_second) < 0:
        raise ValueError(f"counts must not be negative, got {only_first} and {only_second}")
    total, fewer = only_first + only_second, min(only_first, only_second)
    if total == 0:
        return 1.0
    tail = Fraction(sum(math.comb(total, k) for k in range(fewer + 1)), 2**total)
    return float(min(Fraction(1), 2 * tail))
