"""Evaluate acceptance criteria against a results document and form the verdict."""

from __future__ import annotations

from typing import Any

from harness.attacks.indicators import indicator_criterion_value
from harness.plan.criteria import Criterion

_CLEAN = {"clean_accuracy": "accuracy", "clean_sensitivity": "sensitivity",
          "clean_specificity": "specificity", "clean_auc": "roc_auc"}


def _point(model: dict[str, Any], attack: str, epsilon: float) -> dict[str, Any] | None:
    for point in model.get("attacks", {}).get(attack, {}).get("points", []):
        if abs(point["epsilon"] - epsilon) <= 1e-12:
            return point
    return None


def measure_for_model(results: dict[str, Any], role: str, criterion: Criterion) -> float | None:
    """The measured value of a criterion's metric for one model role, or None if it was not measured."""
    model = results.get("models", {}).get(role)
    if model is None:
        return None
    metric = criterion.metric
    if metric == "attack_credible":
        return indicator_criterion_value(model)
    if metric in _CLEAN:
        return model.get("clean", {}).get(_CLEAN[metric])
    if metric == "median_min_epsilon":
        return model.get("attacks", {}).get(criterion.attack, {}).get("min_epsilon", {}).get("median")
    point = _point(model, criterion.attack, criterion.epsilon)
    return None if point is None else point.get(metric)


def measure(results: dict[str, Any], criterion: Criterion) -> float | None:
    """The measured value for the criterion's model role ('change' is hardened minus naive)."""
    if criterion.model == "change":
        naive = measure_for_model(results, "naive", criterion)
        hardened = measure_for_model(results, "hardened", criterion)
        return None if naive is None or hardened is None else hardened - naive
    return measure_for_model(results, criterion.model, criterion)


def evaluate(criteria: list[Criterion], results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per criterion: id, definition, measured value, threshold and pass/fail."""
    out = []
    for c in criteria:
        value = measure(results, c)
        out.append({"id": c.id, "metric": c.metric, "model": c.model, "attack": c.attack, "epsilon": c.epsilon,
                    "op": c.op, "threshold": c.threshold, "description": c.description, "measured": value,
                    "passed": value is not None and c.holds(value),
                    "note": None if value is not None else "not measured (undefined on this data)"})
    return out


def verdict(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall verdict: passed only when every criterion passed."""
    n_passed = sum(1 for e in entries if e["passed"])
    return {"passed": n_passed == len(entries), "n_passed": n_passed, "n_criteria": len(entries)}
