"""A criterion's measured value, read from a results document through the metric registry (the criteria and the
regression gates both measure through it)."""

from __future__ import annotations

from harness.plan.criteria import Criterion
from harness.plan.metrics import METRICS
from harness.results.model import ResultsDocument

NOT_MEASURED = "not measured (undefined on this data)"


def measure(results: ResultsDocument, criterion: Criterion, corruption: str | None = None) -> float | None:
    """The measured value of the criterion's metric for its model role ('change' is hardened minus naive);
    `corruption` names the one corruption measured for a criterion on 'any'."""
    return METRICS[criterion.metric].measure(results, criterion.model, criterion.attack, criterion.epsilon,
                                             corruption=corruption or criterion.corruption,
                                             severity=criterion.severity, radius=criterion.radius,
                                             sigma=criterion.sigma)
