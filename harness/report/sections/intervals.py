"""How to read the intervals: the method, level, clustering, multiple-comparison rule and what a bound gate means."""

from __future__ import annotations

from typing import Any

from harness.formatting import level_text
from harness.report.inputs import ReportInput
from harness.stats.intervals import METHOD_NAMES
from harness.stats.paired import TEST_NAME

TITLE = "How to read the intervals"


def build(report: ReportInput) -> dict[str, Any] | None:
    """The paragraph's facts; None for runs written before intervals (nothing to explain)."""
    statistics = report.run.document.statistics
    if statistics is None:
        return None
    bounded = [c for c in report.run.criteria if c.bounded]
    return {"method": METHOD_NAMES.get(statistics.interval, statistics.interval),
            "level": level_text(statistics.confidence), "alpha": level_text(1 - statistics.confidence),
            "clustered": statistics.clustered,
            "n_groups": statistics.n_groups, "resamples": statistics.bootstrap_resamples,
            "seed": statistics.bootstrap_seed, "holm": statistics.multiple_comparisons == "holm",
            "n_bounded": len(bounded), "paired_test": TEST_NAME if report.run.document.comparisons else None,
            "subgroups": list(statistics.subgroups)}
