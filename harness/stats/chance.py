"""Whether a count of images exceeds what a tolerated rate explains by chance (one-sided exact binomial test)."""

from __future__ import annotations

from dataclasses import dataclass

from statsmodels.stats.proportion import binom_test

CHANCE_ALPHA = 0.05  # a count is beyond chance when P(X >= count | n, rate) < 0.05


@dataclass(frozen=True)
class ChanceTest:
    """k of n images against a tolerated rate: the one-sided exact binomial p-value and the decision."""

    k: int
    n: int
    rate: float
    p_value: float
    alpha: float = CHANCE_ALPHA

    @property
    def beyond_chance(self) -> bool:
        """True when the count is too high for the tolerated rate (p < alpha)."""
        return self.p_value < self.alpha

    def rule(self) -> str:
        """The rule in words, with this count: 'k of n, one-sided exact binomial test against 5 %: p = 0.48 (fails
        when p < 0.05)'."""
        return (f"{self.k} of {self.n}, one-sided exact binomial test against a tolerated {self.rate:.0%}: "
                f"p = {self.p_value:.3g} (fails when p < {self.alpha:g})")


def exceeds_chance(k: int, n: int, rate: float, alpha: float = CHANCE_ALPHA) -> ChanceTest:
    """Test k of n against `rate` (H0: the true rate is at most `rate`); n = 0 never exceeds."""
    p = float(binom_test(k, n, rate, alternative="larger")) if n and k else 1.0
    return ChanceTest(int(k), int(n), float(rate), p, alpha)
