"""A seeded patient-cluster bootstrap for proportions, and the cluster-adjusted interval it gives.

When one patient contributes several images, their outcomes are correlated and an interval that counts images as
independent is too narrow. The bootstrap resamples whole patients (groups) with replacement and measures the
variance of the proportion across resamples; its ratio to the binomial variance p(1-p)/n is the design effect
(floored at 1: clustering is never taken to narrow an interval). The cluster-adjusted interval is the binomial
interval at the effective sample size n / design effect (Korn & Graubard 1998), which stays proper at 0 and 1,
unlike a percentile bootstrap interval, which collapses to a point there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats.intervals import Interval, binomial_interval

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class ClusterBootstrap:
    """Resamples of the groups of one set of samples: how often each group is drawn in each resample."""

    codes: np.ndarray  # int (N,): each sample's group index
    draws: np.ndarray  # int (n_resamples, n_groups): times each group is drawn per resample
    seed: int

    @property
    def n_groups(self) -> int:
        """How many distinct groups (patients) the samples come from."""
        return int(self.draws.shape[1])

    @property
    def n_resamples(self) -> int:
        """How many bootstrap resamples were drawn."""
        return int(self.draws.shape[0])

    @property
    def clustered(self) -> bool:
        """Whether some group holds more than one sample (otherwise the bootstrap adds nothing)."""
        return self.n_groups < len(self.codes)

    @classmethod
    def draw(cls, group_ids: Sequence[str], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> ClusterBootstrap:
        """Draw `n_resamples` resamples of the groups, with replacement, from a seeded generator."""
        _, codes = np.unique(np.asarray([str(g) for g in group_ids]), return_inverse=True)
        n_groups = int(codes.max()) + 1 if len(codes) else 0
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples) if n_groups \
            else np.zeros((n_resamples, 0), dtype=np.int64)
        return cls(codes=codes.astype(np.int64), draws=draws, seed=seed)

    def subset(self, mask: np.ndarray) -> ClusterBootstrap:
        """The same resamples restricted to some samples (groups without them simply contribute nothing)."""
        return ClusterBootstrap(codes=self.codes[np.asarray(mask, dtype=bool)], draws=self.draws, seed=self.seed)

    def design_effect(self, successes: np.ndarray, members: np.ndarray) -> float | None:
        """Bootstrap variance of sum(successes)/sum(members) over the binomial variance, at least 1.

        None when the proportion is 0 or 1 (no variance to compare) or fewer than two groups hold members.
        """
        successes, members = np.asarray(successes, dtype=bool), np.asarray(members, dtype=bool)
        n_groups = self.n_groups
        per_group = np.bincount(self.codes, weights=members.astype(float), minlength=n_groups)
        hits = np.bincount(self.codes, weights=(successes & members).astype(float), minlength=n_groups)
        n = per_group.sum()
        if n == 0 or np.count_nonzero(per_group) < 2:
            return None
        p = hits.sum() / n
        if p in (0.0, 1.0):
            return None
        totals = self.draws @ per_group
        kept = totals > 0
        resampled = (self.draws[kept] @ hits) / totals[kept]
        return max(1.0, float(np.var(resampled, ddof=1)) / (p * (1 - p) / n))


@dataclass(frozen=True)
class ClusteredInterval:
    """A binomial interval at the effective sample size n / design effect."""

    interval: Interval
    design_effect: float  # 1.0 where it could not be estimated (proportion 0 or 1)
    n_effective: float


def adjusted_interval(successes: int, n: int, design_effect: float | None, method: str,
                      confidence: float) -> ClusteredInterval | None:
    """The interval of successes/n as if from n / design_effect independent samples (None when n is 0)."""
    effect = 1.0 if design_effect is None else max(1.0, design_effect)
    n_effective = n / effect
    interval = binomial_interval(successes / effect, n_effective, method, confidence) if n else None
    return None if interval is None else ClusteredInterval(interval, effect, n_effective)
