"""Evaluate acceptance criteria against the results document and form the verdict."""

from __future__ import annotations

from harness.plan.criteria import Criterion
from harness.results.metrics import METRICS
from harness.results.model import CriterionResult, ResultsDocument

NOT_MEASURED = "not measured (undefined on this data)"


def measure(results: ResultsDocument, criterion: Criterion) -> float | None:
    """The measured value of the criterion's metric for its model role ('change' is hardened minus naive)."""
    return METRICS[criterion.metric].measure(results, criterion.model, criterion.attack, criterion.epsilon)


def evaluate(criteria: list[Criterion], results: ResultsDocument) -> tuple[CriterionResult, ...]:
    """One result per criterion: its definition, measured value, threshold and pass/fail (unmeasured fails)."""
    out = []
    for c in criteria:
        value = measure(results, c)
        out.append(CriterionResult(id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon,
                                   op=c.op, threshold=c.threshold, description=c.description, measured=value,
                                   passed=value is not None and c.holds(value),
                                   note=None if value is not None else NOT_MEASURED))
    return tuple(out)
