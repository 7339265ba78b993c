"""Results: clean metrics per model, and per attack the accuracy under attack against epsilon (plot and table)."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, interval_text
from harness.plan.epsilons import EpsilonGrid
from harness.plan.metrics import CLEAN, POINT, Metric, metrics_in
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.report.sections.per_class import operating_points, per_class
from harness.results.model import AttackPoint, CleanMetrics
from harness.results.uncertainty import shown

TITLE = "Results"


def cell(metric: Metric, holder: CleanMetrics | AttackPoint | None) -> dict[str, str]:
    """A table cell: the value and, below it, its confidence interval ('' where none was recorded)."""
    if holder is None:
        return {"value": "–", "interval": ""}
    bounds = shown(holder.intervals.get(metric.field))
    return {"value": metric.unit.table(getattr(holder, metric.field)),
            "interval": interval_text(bounds, metric.unit.table)}


def clean_rows(report: ReportInput) -> list[dict[str, Any]]:
    """One row per model: test images, every clean metric with its interval and the confusion matrix."""
    rows = []
    for role in report.roles:
        clean = report.model(role).clean  # type: ignore[union-attr]
        rows.append({"role": role, "n": clean.n, "values": [cell(m, clean) for m in metrics_in(CLEAN)],
                     "confusion": clean.confusion_matrix})
    return rows


def attack_table(report: ReportInput, attack_id: str) -> dict[str, Any]:
    """One attack: per epsilon every point metric of each model and the bound violations, and its curves."""
    attack = report.attack(attack_id)
    by_role = {role: found for role in report.roles if (found := report.attack_result(role, attack_id))}
    rows = []
    for eps in EpsilonGrid.of(*(a.grid for a in by_role.values())):
        points = [by_role[role].find(eps) if role in by_role else None for role in report.roles]
        first = next(p for p in points if p is not None)
        cells = [[cell(m, p) for m in metrics_in(POINT)] for p in points]
        for role_cells, role in zip(cells, report.roles, strict=True):
            if report.upper_bound(role, attack_id, eps) and role_cells[0]["value"] != "–":
                role_cells[0]["value"] = f"≤ {role_cells[0]['value']}"  # an upper bound only: the attack failed
        rows.append({"eps": eps_text(eps), "native": report.native_text(eps, first) or "–",
                     "cells": cells,
                     "violations": sum(p.bound_violations or 0 for p in points if p),
                     "at_cutoff": eps == report.cutoff})
    curves = [plots.Curve(role, [p.epsilon for p in a.points], [p.robust_accuracy for p in a.points],
                          report.model(role).clean.accuracy,  # type: ignore[union-attr]
                          [shown(p.intervals.get("robust_accuracy")) for p in a.points])
              for role, a in by_role.items() if a.points]
    return {"id": attack_id, "label": report.attack_label(attack_id), "norm": attack.norm if attack else None,
            "kind": attack.kind if attack else None, "curves": curves, "rows": rows}


def accuracy_figure(report: ReportInput, attacks: list[dict[str, Any]]) -> str | None:
    """One figure with a panel per attack (accuracy against ε), as a data URI; None when nothing ran."""
    panels = [(a["id"], a["norm"] or "linf", a["curves"]) for a in attacks if a["curves"]]
    if not panels:
        return None
    native = report.native
    return plots.data_uri(plots.accuracy_panels(panels, report.cutoff, native.per_unit if native else None,
                                                native.unit if native else None))


def build(report: ReportInput) -> dict[str, Any]:
    """The clean table, the accuracy-against-ε figure and one table per attack."""
    attacks = [attack_table(report, attack_id) for attack_id in report.attack_ids]
    return {"roles": report.roles, "clean_columns": [m.label for m in metrics_in(CLEAN)],
            "point_columns": [m.column for m in metrics_in(POINT)], "clean": clean_rows(report),
            "class_names": report.class_names, "positive_class": report.class_name(report.positive_class),
            "attacks": attacks, "figure": accuracy_figure(report, attacks),
            "cutoff": eps_text(report.cutoff), "cutoff_native": report.native_text(report.cutoff),
            "native_unit": report.native.unit if report.native else None,
            "operating_points": operating_points(report), "per_class": per_class(report, cell)}
