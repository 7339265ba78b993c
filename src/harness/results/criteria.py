"""Evaluate acceptance criteria against the results document and form the verdict."""

from __future__ import annotations

from harness.plan.criteria import ANY_CORRUPTION, Criterion
from harness.results.metrics import METRICS
from harness.results.model import CriterionResult, ResultsDocument

NOT_MEASURED = "not measured (undefined on this data)"


def measure(results: ResultsDocument, criterion: Criterion) -> float | None:
    """The measured value of the criterion's metric for its model role ('change' is hardened minus naive)."""
    return METRICS[criterion.metric].measure(results, criterion.model, criterion.attack, criterion.epsilon,
                                             corruption=criterion.corruption, severity=criterion.severity)


def corruption_ids(results: ResultsDocument) -> list[str]:
    """Every corruption id any model ran, in the order they first appear."""
    return list(dict.fromkeys(cid for model in results.models.values() for cid in model.corruptions))


def measure_worst(results: ResultsDocument, criterion: Criterion) -> tuple[float | None, str | None]:
    """For `corruption: any`: the value of the corruption that comes closest to failing (the largest for a 'max'
    criterion, the smallest for a 'min' one) and a note naming it; (None, None) when none was measured."""
    metric = METRICS[criterion.metric]
    values = {cid: value for cid in corruption_ids(results)
              if (value := metric.measure(results, criterion.model, corruption=cid,
                                          severity=criterion.severity)) is not None}
    if not values:
        return None, None
    pick = max if criterion.op == "<=" else min
    worst = pick(values, key=values.__getitem__)
    return values[worst], f"worst of {len(values)} corruptions: {worst}"


def evaluate(criteria: list[Criterion], results: ResultsDocument) -> tuple[CriterionResult, ...]:
    """One result per criterion: its definition, measured value, threshold and pass/fail (unmeasured fails)."""
    out = []
    for c in criteria:
        note = None
        if c.corruption == ANY_CORRUPTION:
            value, note = measure_worst(results, c)
        else:
            value = measure(results, c)
        out.append(CriterionResult(id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon,
                                   op=c.op, threshold=c.threshold, description=c.description, measured=value,
                                   passed=value is not None and c.holds(value),
                                   note=note if value is not None else NOT_MEASURED, corruption=c.corruption,
                                   severity=c.severity))
    return tuple(out)
