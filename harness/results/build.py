"""Build the typed results from evaluation outcomes: clean metrics, attack points, minimal-epsilon summaries, and
corruption points with their corruption errors."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.plan.metrics import CLEAN, CLEAN_MACRO, CORRUPTION_POINT, POINT, POINT_MACRO, Outcomes, compute
from harness.registry.units import NativeUnits
from harness.results.attack_outcome import AttackOutcome
from harness.results.model import (
    QUANTILES,
    AttackPoint,
    AttackResult,
    CleanMetrics,
    CorruptionPoint,
    CorruptionResult,
    MinEpsilonSummary,
    WorstCase,
)
from harness.results.uncertainty import IntervalSettings, metric_intervals


@dataclass(frozen=True)
class _Union:
    """The per-image union of several attacks' outcomes, in the shape attack_points reads."""

    epsilons: list[float]
    success: np.ndarray
    violations: np.ndarray



def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def clean_metrics(labels: np.ndarray, logits: np.ndarray, positive_class: int,
                  intervals: IntervalSettings | None = None) -> CleanMetrics:
    """Clean metrics on one split from its logits: every CLEAN metric, its interval, the confusion matrix and n."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = logits.argmax(axis=1)
    correct = predictions == labels
    outcomes = Outcomes(labels, positive_class, correct, correct, softmax(logits)[:, positive_class])
    k = logits.shape[1]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return CleanMetrics(**compute(CLEAN, outcomes), **compute(CLEAN_MACRO, outcomes), n=int(len(labels)),
                        confusion_matrix=confusion.tolist(),
                        intervals=metric_intervals(CLEAN, outcomes, intervals) if intervals else {})


def attack_points(outcome: AttackOutcome | _Union, labels: np.ndarray, clean_correct: np.ndarray, positive_class: int,
                  native: NativeUnits | None, intervals: IntervalSettings | None = None) -> tuple[AttackPoint, ...]:
    """Every POINT metric and its interval per epsilon: an image counts as correct under attack only if it was
    correct without."""
    labels = np.asarray(labels)
    clean_correct = np.asarray(clean_correct, dtype=bool)
    points = []
    for k, eps in enumerate(outcome.epsilons):
        outcomes = Outcomes(labels, positive_class, clean_correct, clean_correct & ~outcome.success[k])
        points.append(AttackPoint(epsilon=eps, epsilon_native=native.describe(eps) if native else None,
                                  n=int(len(labels)), bound_violations=int(outcome.violations[k]),
                                  intervals=metric_intervals(POINT, outcomes, intervals) if intervals else {},
                                  **compute(POINT, outcomes), **compute(POINT_MACRO, outcomes)))
    return tuple(points)


def worst_case(outcomes: Mapping[str, AttackOutcome], labels: np.ndarray, clean_correct: np.ndarray,
               positive_class: int, native: NativeUnits | None, intervals: IntervalSettings | None = None,
               probes: Mapping[float, tuple[str, np.ndarray]] | None = None,
               upper_bounds: Iterable[str] = (), norm: str = "linf",
               clean_starts: Mapping[str, AttackOutcome] | None = None) -> WorstCase | None:
    """Per ε of any attack, the per-image worst case: an image counts as broken when any attack run at that ε or a
    smaller one broke it (or a probe in `probes`: ε → (probe name, which test images it broke), or a clean-start run
    in `clean_starts`: name → outcome); None without attacks. An image is robust only if every one of them failed on
    it. All outcomes must be of `norm`."""
    labels = np.asarray(labels)
    broken: dict[float, np.ndarray] = {}
    names: dict[float, list[str]] = {}
    for attack_id, outcome in outcomes.items():
        for k, eps in enumerate(outcome.epsilons):
            eps = float(eps)
            broken[eps] = broken.get(eps, np.zeros(len(labels), dtype=bool)) | np.asarray(outcome.success[k], bool)
            names.setdefault(eps, []).append(attack_id)
    for name, outcome in (clean_starts or {}).items():
        for k, eps in enumerate(outcome.epsilons):
            if float(eps) in broken:
                broken[float(eps)] |= np.asarray(outcome.success[k], bool)
                names[float(eps)].append(name)
    for eps, (name, hit) in (probes or {}).items():
        if float(eps) in broken and np.asarray(hit).any():
            broken[float(eps)] |= np.asarray(hit, dtype=bool)
            names[float(eps)].append(name)
    if not broken:
        return None
    grid = sorted(broken)
    for smaller, eps in zip(grid, grid[1:], strict=False):  # an adversarial within a smaller ε is one within ε
        broken[eps] |= broken[smaller]
        names[eps] = list(dict.fromkeys([*names[smaller], *names[eps]]))
    union = _Union(epsilons=sorted(broken), success=np.stack([broken[e] for e in sorted(broken)]),
                   violations=np.zeros(len(broken), dtype=np.int64))
    points = tuple(replace(p, bound_violations=None) for p in attack_points(union, labels, clean_correct,
                                                                           positive_class, native, intervals))
    return WorstCase(points=points, attacks={e: tuple(names[e]) for e in sorted(broken)},
                     upper_bounds=tuple(upper_bounds), norm=norm,
                     probes=tuple(dict.fromkeys(name for name, _ in (probes or {}).values())),
                     clean_starts=tuple(clean_starts or ()))


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN or Infinity: such values become null."""
    return float(value) if math.isfinite(value) else None


def min_epsilon_summary(min_eps: np.ndarray) -> MinEpsilonSummary:
    """Quantiles of per-image minimal epsilons that change the model's decision (inf where none was found)."""
    found = np.isfinite(min_eps)
    quantiles = {f"p{q}": _finite_or_none(float(np.quantile(min_eps, q / 100, method="lower"))) if len(min_eps)
                 else None for q in QUANTILES}
    return MinEpsilonSummary(n=int(len(min_eps)), n_not_found=int((~found).sum()),
                             mean_found=_finite_or_none(float(min_eps[found].mean())) if found.any() else None,
                             **quantiles)


def attack_result(attack: str, norm: str, kind: str, params: Mapping[str, Any], outcome: AttackOutcome,
                  labels: np.ndarray, clean_correct: np.ndarray, positive_class: int,
                  native: NativeUnits | None, intervals: IntervalSettings | None = None) -> AttackResult:
    """One attack's result on one model from its per-sample outcome."""
    return AttackResult(attack=attack, norm=norm, kind=kind, params=params,
                        points=attack_points(outcome, labels, clean_correct, positive_class, native, intervals),
                        min_epsilon=None if outcome.min_epsilon is None else min_epsilon_summary(outcome.min_epsilon))


def corruption_result(plugin: Any, params: Mapping[str, Any], severities: list[int], predictions: np.ndarray,
                      labels: np.ndarray, clean_accuracy: float | None, positive_class: int,
                      intervals: IntervalSettings | None = None) -> CorruptionResult:
    """One corruption's result on one model from its predictions per severity (int [n_severities, N]).

    `params` are the plan's parameters; the severity parameter is left out (each point gives its value).
    Accuracy counts every image classified correctly after the corruption; relative_drop is the share of the
    clean accuracy lost; the corruption error is the mean error over the severities run divided by the clean
    error (1.0: no worse than clean; None when the clean error is 0).
    """
    labels = np.asarray(labels)
    points = []
    for k, level in enumerate(severities):
        correct = np.asarray(predictions[k]) == labels
        outcomes = Outcomes(labels, positive_class, correct, correct)
        metrics = compute(CORRUPTION_POINT, outcomes)
        accuracy = metrics["accuracy"]
        drop = None if not clean_accuracy or accuracy is None else (clean_accuracy - accuracy) / clean_accuracy
        severity = plugin.severities[level - 1]
        points.append(CorruptionPoint(severity=level, name=severity.name, value=severity.value, n=int(len(labels)),
                                      relative_drop=drop, **metrics,
                                      intervals=metric_intervals(CORRUPTION_POINT, outcomes, intervals)
                                      if intervals else {}))
    errors = [1.0 - p.accuracy for p in points if p.accuracy is not None]
    clean_error = None if clean_accuracy is None else 1.0 - clean_accuracy
    ce = float(np.mean(errors)) / clean_error if errors and clean_error else None
    return CorruptionResult(corruption=plugin.name, modality=plugin.modality, parameter=plugin.parameter,
                            unit=plugin.unit, params={k: v for k, v in params.items() if k != plugin.parameter},
                            points=tuple(points), corruption_error=ce)


def mean_corruption_error(results: Iterable[CorruptionResult]) -> float | None:
    """The mean of the corruption errors (None when there are none, or any is undefined)."""
    errors = [r.corruption_error for r in results]
    return float(np.mean(errors)) if errors and all(e is not None for e in errors) else None
