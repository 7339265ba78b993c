"""Confidence intervals as results.json stores them: per metric, with what recomputes them at another level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


def _present(**values: Any) -> Json:
    """The optional keys that have a value (None leaves the key out)."""
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class PatientInterval:
    """The cluster-adjusted interval of a proportion whose patients have several images (harness.stats.clustered)."""

    low: float
    high: float
    design_effect: float  # bootstrap variance over binomial variance (1.0 where it could not be estimated)
    n_groups: int  # patients the images come from

    def to_json(self) -> Json:
        """The `clustered` entry of an interval."""
        return {"low": self.low, "high": self.high, "design_effect": self.design_effect, "n_groups": self.n_groups}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PatientInterval:
        """Read a `clustered` entry."""
        return cls(low=raw["low"], high=raw["high"], design_effect=raw["design_effect"], n_groups=raw["n_groups"])


@dataclass(frozen=True)
class MetricInterval:
    """A metric's two-sided confidence interval and what recomputes it at another level: the counts of a
    proportion (successes of n, and the design effect when clustered) or the standard error of a DeLong AUC."""

    low: float
    high: float
    method: str  # wilson | clopper_pearson | jeffreys (proportions) or delong (AUC)
    confidence: float
    successes: int | None = None
    n: int | None = None
    se: float | None = None
    clustered: PatientInterval | None = None

    def to_json(self) -> Json:
        """One entry of `intervals` (counts, standard error and clustered interval only when set)."""
        return {"low": self.low, "high": self.high, "method": self.method, "confidence": self.confidence,
                **_present(successes=self.successes, n=self.n, se=self.se,
                           clustered=self.clustered and self.clustered.to_json())}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MetricInterval:
        """Read one entry of `intervals`."""
        clustered = raw.get("clustered")
        return cls(low=raw["low"], high=raw["high"], method=raw["method"], confidence=raw["confidence"],
                   successes=raw.get("successes"), n=raw.get("n"), se=raw.get("se"),
                   clustered=PatientInterval.from_json(clustered) if clustered else None)


Intervals = Mapping[str, MetricInterval]  # by the field of the metric they belong to ('accuracy', 'roc_auc', ...)


def intervals_json(intervals: Intervals) -> Json:
    """The optional `intervals` key of a metrics object (left out when there are none)."""
    return {"intervals": {name: i.to_json() for name, i in intervals.items()}} if intervals else {}


def read_intervals(raw: Mapping[str, Any]) -> Intervals:
    """The `intervals` of a metrics object (empty for documents written before intervals)."""
    return {name: MetricInterval.from_json(i) for name, i in (raw.get("intervals") or {}).items()}
