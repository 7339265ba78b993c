"""The metric registry: each metric a result stores or a criterion names, in one entry.

An entry says how the metric is computed from per-sample outcomes, where the results model stores it (scope and
field), how it is named and written, and so how a criterion measures it (which attack and epsilon, or which
corruption and severity, it needs; 'change' is hardened minus naive). Adding a metric is one entry in METRICS,
plus a field on the result it is stored in (CleanMetrics, AttackPoint or CorruptionPoint in
harness.results.model) when it is a new stored value. The registry sits in the plan layer because a plan's criteria
name metrics and are checked against it; harness.results computes and stores the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from harness.formatting import eps_text, num, pct, trimmed
from harness.plan.criteria import ANY_ATTACK as WORST_CASE  # the attack name of the worst case over attacks


class StoredModel(Protocol):
    """One model's stored results as a scope reads them (harness.results.model.ModelResult; the results layer sits
    above the plan, so the registry names the shape, not the class)."""

    @property
    def clean(self) -> Any: ...
    @property
    def attacks(self) -> Any: ...
    @property
    def indicators(self) -> Any: ...
    @property
    def corruptions(self) -> Any: ...
    @property
    def worst_case(self) -> Any: ...
    @property
    def certification(self) -> Any: ...


class StoredResults(Protocol):
    """A run's stored results as `Metric.measure` reads them (harness.results.model.ResultsDocument)."""

    @property
    def models(self) -> Any: ...


@dataclass(frozen=True)
class Outcomes:
    """Per-sample outcomes of one model, without attack or under one attack at one epsilon."""

    labels: np.ndarray  # int, (N,)
    positive_class: int
    clean_correct: np.ndarray  # bool, (N,): classified correctly without attack
    correct: np.ndarray  # bool, (N,): correct in the condition measured (without attack, or still under attack)
    positive_scores: np.ndarray | None = None  # clean probability of the positive class (for ROC AUC)

    @property
    def positive(self) -> np.ndarray:
        """Which samples belong to the positive class."""
        return np.asarray(self.labels) == self.positive_class


Proportion = tuple[np.ndarray, np.ndarray]  # per sample: (counted as a success, counted in the denominator)


def ratio(proportion: Proportion) -> float | None:
    """successes / members of a proportion; None with no members."""
    successes, members = proportion
    denominator = int(np.count_nonzero(members))
    return int(np.count_nonzero(successes & members)) / denominator if denominator else None


def accuracy_counts(o: Outcomes) -> Proportion:
    """Every sample counts; a success is a correct one."""
    return np.asarray(o.correct, dtype=bool), np.ones(len(o.labels), dtype=bool)


def sensitivity_counts(o: Outcomes) -> Proportion:
    """Positive samples count; a success is a correct one."""
    return np.asarray(o.correct, dtype=bool) & o.positive, o.positive


def specificity_counts(o: Outcomes) -> Proportion:
    """The other samples count; a success is a correct one."""
    return np.asarray(o.correct, dtype=bool) & ~o.positive, ~o.positive


def success_counts(o: Outcomes) -> Proportion:
    """Samples correct without attack count; a success is one the attack fooled."""
    clean = np.asarray(o.clean_correct, dtype=bool)
    return clean & ~np.asarray(o.correct, dtype=bool), clean


def accuracy(o: Outcomes) -> float | None:
    """Share of samples classified correctly."""
    return ratio(accuracy_counts(o))


def sensitivity(o: Outcomes) -> float | None:
    """Recall of the positive class."""
    return ratio(sensitivity_counts(o))


def specificity(o: Outcomes) -> float | None:
    """Recall of the other classes."""
    return ratio(specificity_counts(o))


def macro_sensitivity(o: Outcomes) -> float | None:
    """Mean over the classes present of each class's recall (balanced accuracy); None for fewer than 3 classes,
    where sensitivity and specificity say it."""
    labels, correct = np.asarray(o.labels), np.asarray(o.correct, dtype=bool)
    present = np.unique(labels)
    if len(present) < 3:
        return None
    return float(np.mean([correct[labels == c].mean() for c in present]))


def roc_auc(o: Outcomes) -> float | None:
    """One-vs-rest ROC AUC of the positive class; None when only one class is present."""
    positive = o.positive
    if o.positive_scores is None or positive.all() or not positive.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, o.positive_scores))


def success_rate(o: Outcomes) -> float | None:
    """Share of the clean-correct samples the attack fooled."""
    return ratio(success_counts(o))


@dataclass(frozen=True)
class Unit:
    """How values of a metric are written: in result tables, in the console's criteria table, in the report's."""

    name: str
    table: Callable[[float | None], str]
    fixed: Callable[[float | None], str]
    short: Callable[[float | None], str]


RATE = Unit("rate", pct, num, trimmed)
SCORE = Unit("score", num, num, trimmed)
EPSILON = Unit("epsilon", eps_text, eps_text, eps_text)
FLAG = Unit("flag", trimmed, num, trimmed)  # 1.0 yes, 0.0 no
COUNT = Unit("count", *(lambda value: "n/a" if value is None else f"{value:.0f}",) * 3)  # whole images


@dataclass(frozen=True)
class Target:
    """What a measurement names besides the model role: an attack and epsilon, or a corruption and severity."""

    attack: str | None = None
    epsilon: float | None = None
    corruption: str | None = None
    severity: int | None = None
    radius: float | None = None  # certification: an L2 radius (or `epsilon`, the L∞ ε whose radius is ε·√d)
    sigma: float | None = None  # certification: the noise level


@dataclass(frozen=True)
class Scope:
    """Which result of a model holds a metric, and what a criterion on it must name."""

    name: str
    needs_attack: bool
    needs_epsilon: bool
    locate: Callable[[StoredModel, Target], Any]  # (model, what the criterion names) → the result, or None
    attack_kind: str | None = None  # the kind of attack required, if any
    per_model: bool = False  # True: measured on one model only, never as 'change'
    needs_corruption: bool = False
    needs_severity: bool = False
    certified: bool = False  # a certification result: a criterion names a σ of the plan
    needs_radius: bool = False  # and a radius (or an ε converted to one)


def _corruption_point(model: StoredModel, target: Target) -> Any:
    corruption = model.corruptions.get(target.corruption) if target.corruption else None
    return None if corruption is None or target.severity is None else corruption.find(target.severity)


def _attack_point(model: StoredModel, t: Target) -> Any:
    """The point of one attack at ε, or of the worst case over attacks (`attack: any`)."""
    if t.attack == WORST_CASE:
        return model.worst_case.find(t.epsilon) if model.worst_case and t.epsilon is not None else None
    return model.attacks[t.attack].find(t.epsilon) if t.attack in model.attacks else None


CLEAN = Scope("clean", False, False, lambda model, t: model.clean)
POINT = Scope("point", True, True, _attack_point)
MIN_EPSILON = Scope("min_epsilon", True, False, lambda model, t: (
    model.attacks[t.attack].min_epsilon if t.attack in model.attacks else None), attack_kind="minimal")
INDICATORS = Scope("indicators", False, False, lambda model, t: model.indicators, per_model=True)
CORRUPTION_POINT = Scope("corruption_point", False, False, _corruption_point, needs_corruption=True,
                         needs_severity=True)
CORRUPTION = Scope("corruption", False, False, lambda model, t: model.corruptions.get(t.corruption),
                   needs_corruption=True)
# Multi-class summaries: stored with the clean metrics and the attack points, shown in the per-class table
CLEAN_MACRO = Scope("clean_macro", False, False, lambda model, t: model.clean)
POINT_MACRO = Scope("point_macro", True, True, POINT.locate)
DATA = Scope("data", False, False, lambda model, t: model, per_model=True)  # the model's data checks
CORRUPTION_SUMMARY = Scope("corruption_summary", False, False, lambda model, t: model if model.corruptions else None)


def _smoothed(model: StoredModel, target: Target) -> Any:
    return None if model.certification is None else model.certification.find(target.sigma)


def _certified_point(model: StoredModel, target: Target) -> Any:
    found = _smoothed(model, target)
    return None if found is None else found.find(target.radius, target.epsilon)


SMOOTHED = Scope("smoothed", False, False, _smoothed, certified=True)
CERTIFIED_POINT = Scope("certified_point", False, False, _certified_point, certified=True, needs_radius=True)


@dataclass(frozen=True)
class Metric:
    """One metric: its name in plans, where it is stored, how it is computed, named and written."""

    name: str  # what a criterion names: 'robust_accuracy'
    scope: Scope
    field: str  # the attribute of the scope's result that stores it
    unit: Unit
    label: str  # in tables and prose: 'sensitivity'
    column: str  # a narrow table header: 'sens.'
    compute: Callable[[Outcomes], float | None] | None = None  # None: read from a summary computed elsewhere
    counts: Callable[[Outcomes], Proportion] | None = None  # proportions: per-sample successes and members
    interval: str | None = None  # 'binomial' (proportions, clustered where patients repeat) or 'delong' (AUC)
    higher_is_better: bool = True  # the direction a regression gate's `max_drop` is measured in

    @property
    def has_interval(self) -> bool:
        """Whether results carry a confidence interval for this metric (and criteria may name a bound)."""
        return self.interval is not None

    @property
    def needs_attack(self) -> bool:
        """Whether a criterion on this metric names an attack."""
        return self.scope.needs_attack

    @property
    def needs_epsilon(self) -> bool:
        """Whether a criterion on this metric names an epsilon of the attack's grid."""
        return self.scope.needs_epsilon

    @property
    def needs_corruption(self) -> bool:
        """Whether a criterion on this metric names a corruption of the plan (or 'any')."""
        return self.scope.needs_corruption

    @property
    def needs_severity(self) -> bool:
        """Whether a criterion on this metric names a severity (1-5) the corruption ran at."""
        return self.scope.needs_severity

    def read(self, model: StoredModel, attack: str | None = None, epsilon: float | None = None, *,
             corruption: str | None = None, severity: int | None = None, radius: float | None = None,
             sigma: float | None = None) -> float | None:
        """The stored value for one model, or None where it was not measured."""
        holder = self.scope.locate(model, Target(attack, epsilon, corruption, severity, radius, sigma))
        value = None if holder is None else getattr(holder, self.field)
        return None if value is None else float(value)

    def read_interval(self, model: StoredModel, attack: str | None = None, epsilon: float | None = None, *,
                      corruption: str | None = None, severity: int | None = None, radius: float | None = None,
                      sigma: float | None = None) -> Any:
        """The stored confidence interval (a harness.results.model.MetricInterval) for one model, or None (no interval
        for this metric or this run)."""
        holder = self.scope.locate(model, Target(attack, epsilon, corruption, severity, radius, sigma))
        intervals = getattr(holder, "intervals", None) or {}
        return intervals.get(self.field)

    def measure(self, results: StoredResults, role: str, attack: str | None = None, epsilon: float | None = None,
                *, corruption: str | None = None, severity: int | None = None, radius: float | None = None,
                sigma: float | None = None) -> float | None:
        """The value for a model role; 'change' is hardened minus naive; None where either was not measured."""
        where = {"corruption": corruption, "severity": severity, "radius": radius, "sigma": sigma}
        if role == "change":
            naive, hardened = (self.measure(results, r, attack, epsilon, **where) for r in ("naive", "hardened"))
            return None if naive is None or hardened is None else hardened - naive
        model = results.models.get(role)
        return None if model is None else self.read(model, attack, epsilon, **where)


def _registry(*metrics: Metric) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


METRICS: dict[str, Metric] = _registry(
    Metric("clean_accuracy", CLEAN, "accuracy", RATE, "accuracy", "accuracy", accuracy, accuracy_counts, "binomial"),
    Metric("clean_sensitivity", CLEAN, "sensitivity", RATE, "sensitivity", "sensitivity", sensitivity,
           sensitivity_counts, "binomial"),
    Metric("clean_specificity", CLEAN, "specificity", RATE, "specificity", "specificity", specificity,
           specificity_counts, "binomial"),
    Metric("clean_auc", CLEAN, "roc_auc", SCORE, "ROC AUC", "ROC AUC", roc_auc, interval="delong"),
    Metric("clean_macro_sensitivity", CLEAN_MACRO, "macro_sensitivity", RATE,
           "macro sensitivity (balanced accuracy)", "macro sens.", macro_sensitivity),
    Metric("robust_accuracy", POINT, "robust_accuracy", RATE, "accuracy", "accuracy", accuracy, accuracy_counts,
           "binomial"),
    Metric("robust_sensitivity", POINT, "robust_sensitivity", RATE, "sensitivity", "sens.", sensitivity,
           sensitivity_counts, "binomial"),
    Metric("robust_specificity", POINT, "robust_specificity", RATE, "specificity", "spec.", specificity,
           specificity_counts, "binomial"),
    Metric("attack_success_rate", POINT, "attack_success_rate", RATE, "attack success rate", "success", success_rate,
           success_counts, "binomial", higher_is_better=False),
    Metric("robust_macro_sensitivity", POINT_MACRO, "robust_macro_sensitivity", RATE,
           "macro sensitivity (balanced accuracy)", "macro sens.", macro_sensitivity),
    Metric("median_min_epsilon", MIN_EPSILON, "median", EPSILON, "median minimal ε", "median min ε"),
    Metric("attack_credible", INDICATORS, "credible", FLAG, "attack results credible", "credible"),
    Metric("leaked_images", DATA, "leaked_images", COUNT, "test images duplicating training images", "leaked",
           higher_is_better=False),
    Metric("accuracy", CORRUPTION_POINT, "accuracy", RATE, "accuracy", "accuracy", accuracy, accuracy_counts,
           "binomial"),
    Metric("sensitivity", CORRUPTION_POINT, "sensitivity", RATE, "sensitivity", "sens.", sensitivity,
           sensitivity_counts, "binomial"),
    Metric("specificity", CORRUPTION_POINT, "specificity", RATE, "specificity", "spec.", specificity,
           specificity_counts, "binomial"),
    Metric("relative_drop", CORRUPTION_POINT, "relative_drop", RATE, "relative drop in accuracy", "rel. drop",
           higher_is_better=False),
    Metric("corruption_error", CORRUPTION, "corruption_error", SCORE, "corruption error (× clean error)", "CE",
           higher_is_better=False),
    Metric("mean_corruption_error", CORRUPTION_SUMMARY, "mean_corruption_error", SCORE, "mean corruption error",
           "mCE", higher_is_better=False),
    # randomized smoothing (harness.certification): intervals are computed there, on the certified images
    Metric("certified_accuracy", CERTIFIED_POINT, "certified_accuracy", RATE, "certified accuracy", "certified",
           interval="binomial"),
    Metric("smoothed_accuracy", SMOOTHED, "smoothed_accuracy", RATE, "smoothed clean accuracy", "smoothed acc.",
           interval="binomial"),
    Metric("abstention_rate", SMOOTHED, "abstention_rate", RATE, "abstention rate", "abstained",
           interval="binomial", higher_is_better=False),
)


def metrics_in(scope: Scope) -> list[Metric]:
    """The metrics a scope's result stores, in registry order."""
    return [metric for metric in METRICS.values() if metric.scope is scope]


def compute(scope: Scope, outcomes: Outcomes) -> dict[str, float | None]:
    """Every computed metric of a scope, by the field that stores it."""
    return {metric.field: metric.compute(outcomes) for metric in metrics_in(scope) if metric.compute is not None}
