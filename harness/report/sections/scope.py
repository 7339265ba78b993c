"""Intended use and scope: the plan's own words."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.subject import subject_of

TITLE = "Intended use and scope"


def build(report: ReportInput) -> dict[str, Any]:
    """The plan's intended use (its `subject:`, else the top-level key) and description, as plain text."""
    subject = subject_of(report)
    stated = subject.intended_use if subject and subject.intended_use else report.plan.intended_use
    return {"intended_use": (stated or "").strip(), "description": report.plan.description.strip()}
