"""Intended use and scope: the plan's own words."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput

TITLE = "Intended use and scope"


def build(report: ReportInput) -> dict[str, Any]:
    """The plan's intended use and description, as plain text."""
    return {"intended_use": report.plan.intended_use.strip(), "description": report.plan.description.strip()}
