"""Sample-size honesty: can a bound criterion on a proportion be decided at all with n samples?

A `min` criterion judged on a lower bound can pass only if even the best outcome, n successes of n, has a lower
bound at or above `min`; a `max` criterion on an upper bound only if 0 of n has an upper bound at or below `max`.
"""

from __future__ import annotations

from harness.stats.intervals import binomial_interval

SEARCH_LIMIT = 10_000_000


def can_pass(n: int, threshold: float, side: str, method: str, confidence: float) -> bool:
    """Whether the best possible outcome with n samples clears the threshold on its bound ('lower' or 'upper')."""
    best = binomial_interval(n if side == "lower" else 0, n, method, confidence)
    if best is None:
        return False
    return best.low >= threshold if side == "lower" else best.high <= threshold


def smallest_decidable_n(threshold: float, side: str, method: str, confidence: float) -> int | None:
    """The smallest n at which the criterion can pass; None when no n up to ten million suffices."""
    if not can_pass(SEARCH_LIMIT, threshold, side, method, confidence):
        return None
    low, high = 0, 1
    while not can_pass(high, threshold, side, method, confidence):
        low, high = high, high * 2
    while high - low > 1:  # can_pass is monotone in n: low fails, high passes
        middle = (low + high) // 2
        low, high = (low, middle) if can_pass(middle, threshold, side, method, confidence) else (middle, high)
    return high
