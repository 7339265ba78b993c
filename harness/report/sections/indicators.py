"""Part of Results: the attack-failure indicators of each model (are the robustness figures credible?)."""

from __future__ import annotations

import re
from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import cell
from harness.results.model import IndicatorCheck

TITLE = None  # continues Results
COUNT = re.compile(r"\b(\d+) of (\d+)\b")  # 'benign 0 of 18' in a check's detail and flipped-by list


def threshold_sentence(check: IndicatorCheck) -> str | None:
    """What the threshold means: the check's own explanation, else one sentence tying it to the rule the check's
    description states, with the side of it a passing value lies on (None for a check with no value)."""
    if check.explanation:
        return check.explanation
    if not isinstance(check.value, (int, float)) or not isinstance(check.threshold, (int, float)):
        return None
    threshold = cell(check.threshold)
    if check.value == check.threshold:
        outcome = "passes" if check.passed else "fails"
        return f"The value equals the threshold {threshold} set by the rule above and {outcome}."
    side = "at most" if (check.value < check.threshold) == check.passed else "at least"
    return f"Passes at values {side} {threshold}, the threshold set by the rule above."


def threshold_text(check: IndicatorCheck) -> str:
    """The threshold with the side a passing value lies on ('≤ 0.05', '≥ 0.9'), read from the value and verdict."""
    threshold = cell(check.threshold)
    if not isinstance(check.value, (int, float)) or not isinstance(check.threshold, (int, float)):
        return threshold
    below = check.value < check.threshold or (check.value == check.threshold and check.passed)
    return f"{'≤' if below == check.passed else '≥'} {threshold}"


def value_text(check: IndicatorCheck, n_subset: int) -> str:
    """The value with its meaning and unit ('accuracy under the unbounded attacks 0.028 on 32 images'); a check
    from results written before checks stated their quantity reads 'measured value 0.028'; no value reads 'n/a'."""
    if check.value is None:
        return "n/a (not computed)"
    text = f"{check.quantity or 'measured value'} {cell(check.value)}"
    if check.on_subset and n_subset:
        text += f" on {n_subset} image{'s' if n_subset != 1 else ''}"
    return text


def compact_counts(text: str | None) -> str | None:
    """Per-class counts written short: 'benign 18 of 18, malignant 0 of 14' becomes 'benign 18/18, malignant 0/14'."""
    return None if text is None else COUNT.sub(r"\1/\2", text)


def build(report: ReportInput) -> dict[str, Any] | None:
    """Each model's checks with verdict, value, threshold and detail; left out when none were computed."""
    models = []
    for role in report.roles:
        indicators = report.model(role).indicators  # type: ignore[union-attr]
        if indicators is None:
            continue
        n = indicators.n_subset
        checks = [{"id": c.id, "description": c.description, "passed": c.passed, "value": value_text(c, n),
                   "threshold": threshold_text(c), "detail": compact_counts(c.detail),
                   "explanation": threshold_sentence(c), "flipped_by": compact_counts(c.flipped_by), "rule": c.rule}
                  for c in indicators.checks]
        models.append({"role": role, "credible": indicators.credible, "checks": checks, "subset": indicators.subset,
                       "n_subset": indicators.n_subset})
    return {"models": models} if models else None
