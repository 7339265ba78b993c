"""ROC AUC with a DeLong interval (DeLong, DeLong & Clarke-Pearson 1988; the fast form of Sun & Xu 2014).

DeLong, not a bootstrap: it is deterministic (no seed), exact for the empirical AUC, cheap on any n, and the
default of pROC, the reference implementation reviewers know. Its normal approximation is clipped to [0, 1];
where one class has fewer than two samples the variance is undefined and no interval is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class AucInterval:
    """The empirical AUC, its DeLong standard error and the two-sided interval at a confidence level."""

    auc: float
    se: float
    low: float
    high: float
    confidence: float
    method: str = "delong"


def normal_interval(estimate: float, se: float, confidence: float) -> tuple[float, float]:
    """estimate ± z·se, clipped to [0, 1]."""
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    return max(0.0, estimate - z * se), min(1.0, estimate + z * se)


def delong_auc(positive: np.ndarray, scores: np.ndarray, confidence: float = 0.95) -> AucInterval | None:
    """The AUC of `scores` for the `positive` samples against the others, with its DeLong interval."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    x, y = scores[positive], scores[~positive]
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return None
    ranks = rankdata(np.concatenate([x, y]))  # midranks: ties count one half
    rx, ry = rankdata(x), rankdata(y)
    auc = float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (ranks[:m] - rx) / n  # per positive: share of negatives scored below it
    v01 = 1.0 - (ranks[m:] - ry) / m  # per negative: share of positives scored above it
    se = float(np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n))
    low, high = normal_interval(auc, se, confidence)
    return AucInterval(auc=auc, se=se, low=low, high=high, confidence=confidence)
