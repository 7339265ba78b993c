"""Appendix: the test plan as written (plan.source.yaml, comments kept), then the command-line overrides."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import reduce_command

TITLE = "Test plan as written"
APPENDIX = True


def build(report: ReportInput) -> dict[str, Any]:
    """The plan file verbatim with its sha256 and whether the copy still matches it; the resolved plan for runs
    made before the harness kept the plan file."""
    return {"source": report.plan_source, "file_sha": report.plan_file_sha256 or "n/a",
            "verified": report.plan_source_verified, "copy_sha": report.plan_source_sha256,
            "copy_name": report.plan.copy or "plan.source.yaml",
            "overrides": [reduce_command([o]) for o in report.overrides],
            "resolved_yaml": None if report.plan_source is not None else report.plan_yaml,
            "resolved_sha": report.plan.resolved_yaml_sha256}
