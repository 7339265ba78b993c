"""Approval: signature block for the review board."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput

TITLE = "Approval"


def build(report: ReportInput) -> dict[str, Any]:
    """Nothing from the run: the template holds the signature table."""
    return {}
