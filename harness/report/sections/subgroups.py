"""Subgroups: every metric per subgroup of the test split with its interval (table), and a forest plot."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text
from harness.plan.metrics import CLEAN, METRICS, metrics_in
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.report.sections.results import cell
from harness.results.model import WORST_CASE
from harness.results.uncertainty import shown

TITLE = "Subgroups"
ROBUST = METRICS["robust_accuracy"]


def headline(report: ReportInput, role: str) -> tuple[str, float] | None:
    """The attack and ε the table's robust column shows: the first attack's grid ε closest to the cutoff."""
    for attack_id in report.attack_ids_of_kind("fixed_epsilon") or report.attack_ids:
        point = report.point_near_cutoff(role, attack_id)
        if point is not None:
            return attack_id, point.epsilon
    return None


def role_block(report: ReportInput, role: str) -> dict[str, Any] | None:
    """One model's subgroup table and plot."""
    model = report.model(role)
    if model is None or not model.subgroups:
        return None
    at = headline(report, role)
    rows, plotted = [], []
    for attribute, values in model.subgroups.items():
        for value, sub in values.items():
            attack = None if at is None else sub.worst_case if at[0] == WORST_CASE else sub.attacks.get(at[0])
            robust = cell(ROBUST, attack.find(at[1])) if attack is not None else None
            rows.append({"attribute": attribute, "value": value, "n": sub.clean.n,
                         "clean": [cell(m, sub.clean) for m in metrics_in(CLEAN)], "robust": robust})
            plotted.append((f"{attribute}={value} (n={sub.clean.n})", sub.clean.accuracy,
                            shown(sub.clean.intervals.get("accuracy"))))
    plot = plots.subgroup_plot(plotted, "accuracy without attack")
    return {"role": role, "rows": rows, "plot": plot and plots.data_uri(plot),
            "robust_label": f"accuracy under {report.attack_name(at[0])} at ε = {eps_text(at[1])}" if at else None}


def build(report: ReportInput) -> dict[str, Any] | None:
    """One block per model with subgroups; None when the plan named none."""
    blocks = [block for role in report.roles if (block := role_block(report, role))]
    if not blocks:
        return None
    return {"blocks": blocks, "clean_columns": [m.label for m in metrics_in(CLEAN)]}
