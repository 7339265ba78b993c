"""Confidence intervals on a run's metrics (harness.stats applied to the metric registry), and bounds at any level.

Every proportion in METRICS gets its binomial interval (the plan's method and level) from its per-sample counts;
where patients contribute several test images it also gets the cluster-adjusted interval (design effect from a
seeded patient-cluster bootstrap), which gates then use. ROC AUC gets a DeLong interval. What is stored
(successes of n, design effect, standard error) recomputes the bound at another level, as Holm's adjustment needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.plan.metrics import Outcomes, Scope, metrics_in
from harness.results.model import MetricInterval, PatientInterval, StatisticsSettings
from harness.stats.auc import delong_auc, normal_interval
from harness.stats.clustered import ClusterBootstrap, adjusted_interval
from harness.stats.intervals import DEFAULT_CONFIDENCE, DEFAULT_METHOD, METHOD_NAMES, binomial_interval


@dataclass(frozen=True)
class IntervalSettings:
    """How a run computes intervals: method, level, and the test split's patient-cluster bootstrap (None when no
    patient has several test images)."""

    method: str = DEFAULT_METHOD
    confidence: float = DEFAULT_CONFIDENCE
    bootstrap: ClusterBootstrap | None = None

    @classmethod
    def for_split(cls, method: str, confidence: float, group_ids: Sequence[str], resamples: int,
                  seed: int) -> IntervalSettings:
        """Settings for one test split: the bootstrap is drawn only when some patient has several images."""
        bootstrap = ClusterBootstrap.draw(group_ids, resamples, seed)
        return cls(method, confidence, bootstrap if bootstrap.clustered else None)

    def subset(self, mask: np.ndarray) -> IntervalSettings:
        """The same settings for some of the test images (a subgroup): the same resamples of their patients."""
        return IntervalSettings(self.method, self.confidence, self.bootstrap and self.bootstrap.subset(mask))

    def summary(self, multiple_comparisons: str, subgroups: Sequence[str] = ()) -> StatisticsSettings:
        """The `statistics` section of results.json."""
        boot = self.bootstrap
        return StatisticsSettings(interval=self.method, confidence=self.confidence,
                                  multiple_comparisons=multiple_comparisons,
                                  bootstrap_resamples=boot.n_resamples if boot else None,
                                  bootstrap_seed=boot.seed if boot else None,
                                  n_groups=boot.n_groups if boot else None, subgroups=tuple(subgroups))


def proportion_interval(successes: np.ndarray, members: np.ndarray,
                        settings: IntervalSettings) -> MetricInterval | None:
    """The binomial interval of one proportion, with its cluster-adjusted interval when patients repeat."""
    successes, members = np.asarray(successes, dtype=bool), np.asarray(members, dtype=bool)
    k, n = int(np.count_nonzero(successes & members)), int(np.count_nonzero(members))
    interval = binomial_interval(k, n, settings.method, settings.confidence)
    if interval is None:
        return None
    clustered = None
    boot = settings.bootstrap
    if boot is not None:
        adjusted = adjusted_interval(k, n, boot.design_effect(successes, members), settings.method,
                                     settings.confidence)
        clustered = PatientInterval(low=adjusted.interval.low, high=adjusted.interval.high,
                                    design_effect=adjusted.design_effect,
                                    n_groups=int(np.unique(boot.codes[members]).size))
    return MetricInterval(low=interval.low, high=interval.high, method=settings.method,
                          confidence=settings.confidence, successes=k, n=n, clustered=clustered)


def metric_intervals(scope: Scope, outcomes: Outcomes, settings: IntervalSettings) -> dict[str, MetricInterval]:
    """The interval of every metric of a scope that has one, by the field that stores the metric."""
    out: dict[str, MetricInterval] = {}
    for metric in metrics_in(scope):
        found: MetricInterval | None = None
        if metric.interval == "binomial" and metric.counts is not None:
            found = proportion_interval(*metric.counts(outcomes), settings)
        elif metric.interval == "delong" and outcomes.positive_scores is not None:
            auc = delong_auc(outcomes.positive, outcomes.positive_scores, settings.confidence)
            found = None if auc is None else MetricInterval(low=auc.low, high=auc.high, method=auc.method,
                                                            confidence=settings.confidence, se=auc.se)
        if found is not None:
            out[metric.field] = found
    return out


def bound_at(interval: MetricInterval, estimate: float, side: str, confidence: float,
             clustered: bool = True) -> float | None:
    """The 'lower' or 'upper' end of the interval recomputed at another two-sided level (the cluster-adjusted one
    when recorded and `clustered`); None when the record cannot be recomputed."""
    if interval.method == "delong":
        return None if interval.se is None else normal_interval(estimate, interval.se, confidence)[
            0 if side == "lower" else 1]
    if interval.successes is None or interval.n is None:
        return None
    if clustered and interval.clustered is not None:
        found = adjusted_interval(interval.successes, interval.n, interval.clustered.design_effect,
                                  interval.method, confidence)
        return None if found is None else found.interval.bound(side)
    plain = binomial_interval(interval.successes, interval.n, interval.method, confidence)
    return None if plain is None else plain.bound(side)


def describe(interval: MetricInterval, clustered: bool = True) -> str:
    """How an interval was computed, in words: 'Wilson score', 'Wilson score, patient-clustered, design effect
    2.10)' or 'DeLong'."""
    if interval.method == "delong":
        return "DeLong"
    text = METHOD_NAMES.get(interval.method, interval.method)
    if clustered and interval.clustered is not None:
        text += f", patient-clustered, design effect {interval.clustered.design_effect:.2f}"
    return text


def shown(interval: MetricInterval | None, clustered: bool = True) -> tuple[float, float] | None:
    """The (low, high) a table shows: the cluster-adjusted interval where recorded, else the plain one."""
    if interval is None:
        return None
    if clustered and interval.clustered is not None:
        return interval.clustered.low, interval.clustered.high
    return interval.low, interval.high
