"""The exact McNemar test on paired binary outcomes (the same images under two conditions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

TEST_NAME = "exact McNemar test (two-sided binomial test on the discordant pairs)"


@dataclass(frozen=True)
class McNemarResult:
    """The 2×2 table of paired outcomes and the exact two-sided p-value from its discordant cells."""

    n_pairs: int
    both: int  # correct under A and B
    only_a: int  # correct under A only (discordant)
    only_b: int  # correct under B only (discordant)
    neither: int
    p_value: float
    test: str = TEST_NAME


def exact_mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemarResult:
    """Pair outcome i of A with outcome i of B; p = 1 when no pair is discordant."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length ({a.size} and {b.size})")
    both, only_a = int(np.count_nonzero(a & b)), int(np.count_nonzero(a & ~b))
    only_b, neither = int(np.count_nonzero(~a & b)), int(np.count_nonzero(~a & ~b))
    p_value = 1.0 if only_a + only_b == 0 else float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
    return McNemarResult(n_pairs=int(a.size), both=both, only_a=only_a, only_b=only_b, neither=neither,
                         p_value=min(1.0, p_value))
