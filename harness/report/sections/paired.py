"""Paired comparison of the naive and hardened models on the same test images: exact McNemar per attack and ε."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, pct
from harness.report.inputs import ReportInput

TITLE = "Paired comparison: naive and hardened"


def build(report: ReportInput) -> dict[str, Any] | None:
    """One row per condition (without attack, then each attack and ε); None when the run compared nothing."""
    comparisons = report.run.document.comparisons
    if not comparisons:
        return None
    rows = [{"attack": c.attack or "none", "eps": "–" if c.epsilon is None else eps_text(c.epsilon),
             "native": "–" if c.epsilon is None else report.native_text(c.epsilon) or "–", "n": c.n_pairs,
             "both": c.both, "only_a": c.only_a, "only_b": c.only_b, "neither": c.neither,
             "difference": pct(c.difference), "p": f"{c.p_value:.3g}"} for c in comparisons]
    return {"a": comparisons[0].a, "b": comparisons[0].b, "test": comparisons[0].test, "rows": rows}
