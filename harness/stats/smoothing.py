"""The statistics of randomized smoothing (Cohen, Rosenfeld & Kolter 2019): the one-sided Clopper–Pearson lower
bound of the top class's probability under noise, the binomial test PREDICT abstains by, and the certified radius.

The lower bound is harness.stats.intervals' Clopper–Pearson interval (statsmodels), taken one-sided: the lower end
of the two-sided interval at level 1 − 2α is the one-sided lower bound at level 1 − α, as in Cohen et al.'s code.
"""

from __future__ import annotations

import math

from scipy.stats import norm
from statsmodels.stats.proportion import binom_test

from harness.stats.intervals import binomial_interval


def lower_confidence_bound(successes: int, n: int, alpha: float) -> float:
    """One-sided (1 − α) Clopper–Pearson lower bound of a proportion successes/n (0.0 when n is 0)."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    found = binomial_interval(successes, n, "clopper_pearson", 1 - 2 * alpha)
    return 0.0 if found is None else found.low


def binomial_p_value(successes: int, n: int) -> float:
    """Two-sided exact binomial test of successes/n against 1/2 (1.0 when n is 0)."""
    return 1.0 if n <= 0 else float(min(1.0, binom_test(successes, n, prop=0.5, alternative="two-sided")))


def gaussian_radius(sigma: float, p_lower: float) -> float:
    """The certified L2 radius σ·Φ⁻¹(p_A) of a lower bound p_A > 1/2 on the top class's probability (0 otherwise)."""
    if p_lower <= 0.5:
        return 0.0
    return float(sigma * norm.ppf(p_lower)) if p_lower < 1 else math.inf


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius n samples can certify: every sample on the top class gives p_A = α^(1/n)."""
    return gaussian_radius(sigma, lower_confidence_bound(n, n, alpha))
