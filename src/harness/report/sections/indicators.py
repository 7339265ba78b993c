"""Part of Results: the attack-failure indicators of each model (are the robustness figures credible?)."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import cell

TITLE = None  # continues Results


def build(report: ReportInput) -> dict[str, Any] | None:
    """Each model's checks with verdict, value, threshold and detail; left out when none were computed."""
    models = []
    for role in report.roles:
        indicators = report.model(role).indicators  # type: ignore[union-attr]
        if indicators is None:
            continue
        checks = [{"id": c.id, "description": c.description, "passed": c.passed, "value": cell(c.value),
                   "threshold": cell(c.threshold), "detail": c.detail, "explanation": c.explanation,
                   "flipped_by": c.flipped_by} for c in indicators.checks]
        models.append({"role": role, "credible": indicators.credible, "checks": checks, "subset": indicators.subset})
    return {"models": models} if models else None
