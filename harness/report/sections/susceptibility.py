"""Part of Results: drop the images whose minimal flipping epsilon is below the cutoff; what accuracy is left?"""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, pct
from harness.report.inputs import ReportInput

TITLE = None  # continues Results


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def fixed_columns(report: ReportInput) -> list[dict[str, Any]]:
    """Each fixed-epsilon attack at its grid epsilon closest to the cutoff (where samples.csv has it)."""
    columns = []
    for attack_id in report.attack_ids_of_kind("fixed_epsilon"):
        point = report.point_near_cutoff("naive", attack_id) or report.point_near_cutoff("hardened", attack_id)
        if point is not None and report.samples:  # samples.csv has a column for every planned epsilon
            columns.append({"attack": attack_id, "epsilon": point.epsilon,
                            "eps": report.eps_native(point.epsilon, point)})
    return columns


def removal(report: ReportInput, role: str, attack_id: str, columns: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What removing one model's susceptible images (by one minimal attack) leaves."""
    samples = report.samples_for(role, attack_id)
    if not samples:
        return None
    removed = {s.sample_id for s in samples if s.min_epsilon is not None and s.min_epsilon < report.cutoff}
    kept = [s for s in samples if s.sample_id not in removed]
    wrong_removed = sum(1 for s in samples if s.sample_id in removed and not s.clean_correct)
    measures = [{"what": "accuracy without attack", "all": pct(_mean([s.clean_correct for s in samples])),
                 "kept": pct(_mean([s.clean_correct for s in kept]))}]
    kept_ids = {s.sample_id for s in kept}
    for column in columns:
        fooled = {s.sample_id: s.success[column["epsilon"]] for s in report.samples_for(role, column["attack"])
                  if column["epsilon"] in s.success}
        measures.append({"what": f"accuracy under {column['attack']} at ε = {column['eps']}",
                         "all": pct(_mean([not hit for hit in fooled.values()])),
                         "kept": pct(_mean([not hit for sid, hit in fooled.items() if sid in kept_ids]))})
    return {"role": role, "attack": attack_id, "n": len(samples), "removed": len(removed),
            "removed_wrong": wrong_removed, "removed_flipped": len(removed) - wrong_removed,
            "removed_positive": sum(1 for s in samples if s.sample_id in removed and s.label == report.positive_class),
            "kept": len(kept), "measures": measures}


def build(report: ReportInput) -> dict[str, Any]:
    """One row per model and minimal attack with the images removed and the accuracy before and after."""
    minimal = report.attack_ids_of_kind("minimal")
    columns = fixed_columns(report)
    rows = [row for role in report.roles for attack_id in minimal
            if (row := removal(report, role, attack_id, columns)) is not None]
    return {"rows": rows, "has_minimal": bool(minimal), "cutoff": eps_text(report.cutoff),
            "cutoff_native": report.native_text(report.cutoff),
            "positive": report.class_name(report.positive_class)}
