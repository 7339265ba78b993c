"""Appendix: the resolved test plan, exactly as run."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput

TITLE = "Resolved test plan"
APPENDIX = True


def build(report: ReportInput) -> dict[str, Any]:
    """The plan's YAML and its sha256."""
    return {"plan_yaml": report.plan_yaml, "plan_sha": report.plan_sha256 or "n/a"}
