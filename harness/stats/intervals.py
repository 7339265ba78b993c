"""Binomial confidence intervals (Wilson score, Clopper–Pearson exact, Jeffreys) from statsmodels."""

from __future__ import annotations

from dataclasses import dataclass

from statsmodels.stats.proportion import proportion_confint

# plan name → statsmodels' method name
METHODS = {"wilson": "wilson", "clopper_pearson": "beta", "jeffreys": "jeffreys"}
METHOD_NAMES = {"wilson": "Wilson score", "clopper_pearson": "Clopper–Pearson exact", "jeffreys": "Jeffreys"}
DEFAULT_METHOD = "wilson"
DEFAULT_CONFIDENCE = 0.95


def two_sided_level(one_sided: float) -> float:
    """The two-sided level whose interval ends are one-sided bounds at `one_sided` (0.95 → 0.90)."""
    return 2.0 * one_sided - 1.0


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval [low, high] at a confidence level, and the method that gave it."""

    low: float
    high: float
    confidence: float
    method: str

    def bound(self, side: str) -> float:
        """The 'lower' or 'upper' end."""
        return self.low if side == "lower" else self.high


def binomial_interval(successes: float, n: float, method: str = DEFAULT_METHOD,
                      confidence: float = DEFAULT_CONFIDENCE) -> Interval | None:
    """The interval of a proportion successes/n (None when n is 0); proper at 0 and n for every method.

    Non-integer counts are allowed (an effective sample size, see harness.stats.clustered). Jeffreys takes the
    modification of Brown, Cai & DasGupta (2001): the lower end is 0 at 0 successes and the upper end 1 at n, so
    the interval never excludes the proportion observed.
    """
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r} (known: {', '.join(METHODS)})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n <= 0:
        return None
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method=METHODS[method])
    # exact at the edges (Wilson's closed form gives 0.9999999999999999 at n of n; Jeffreys needs the modification)
    low, high = (0.0 if successes <= 0 else low), (1.0 if successes >= n else high)
    return Interval(low=float(max(0.0, low)), high=float(min(1.0, high)), confidence=confidence, method=method)
