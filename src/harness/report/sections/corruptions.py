"""Natural corruptions: per corruption a severity-vs-accuracy plot and table for each model, the corruption errors,
and whether the hardened model is more or less robust to them than the naive one."""

from __future__ import annotations

from typing import Any

from harness.data.severities import SEVERITY_LEVELS
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.results.formatting import num, severity_text
from harness.results.metrics import CORRUPTION_POINT, metrics_in
from harness.results.model import CorruptionResult

TITLE = "Natural corruptions"


def corruption_block(report: ReportInput, corruption_id: str) -> dict[str, Any]:
    """One corruption: its plugin and parameter, the accuracy plot, and per severity every metric of each model."""
    first = report.corruption(corruption_id)
    assert first is not None
    by_role = {role: found for role in report.roles if (found := report.corruption_result(role, corruption_id))}
    levels = sorted({p.severity for result in by_role.values() for p in result.points})
    values = {p.severity: p.value for result in by_role.values() for p in result.points}
    rows = [{"severity": level, "name": _name(by_role, level), "value": severity_text(values[level], first.unit),
             "cells": [[m.unit.table(getattr(p, m.field)) if (p := result.find(level)) else "–"
                        for m in metrics_in(CORRUPTION_POINT)] for result in by_role.values()]}
            for level in levels]
    curves = [plots.Curve(role, [float(p.severity) for p in result.points], [p.accuracy for p in result.points],
                          report.model(role).clean.accuracy)  # type: ignore[union-attr]
              for role, result in by_role.items()]
    plot = plots.data_uri(plots.severity_plot(corruption_id, curves, {level: f"{values[level]:g}" for level in levels}))
    return {"id": corruption_id, "label": report.corruption_label(corruption_id), "modality": first.modality,
            "parameter": first.parameter, "unit": first.unit, "roles": list(by_role),
            "params": ", ".join(f"{k}: {v}" for k, v in first.params.items()), "plot": plot, "rows": rows,
            "ce": [num(result.corruption_error, 2) for result in by_role.values()]}


def _name(by_role: dict[str, CorruptionResult], level: int) -> str:
    return next((p.name for result in by_role.values() if (p := result.find(level))), "")


def hardened_change(report: ReportInput) -> dict[str, Any] | None:
    """Hardened minus naive accuracy per corruption and severity, and how many points rose, fell or held."""
    if not {"naive", "hardened"} <= set(report.roles):
        return None
    rows, changes = [], []
    for corruption_id in report.corruption_ids:
        naive = report.corruption_result("naive", corruption_id)
        hardened = report.corruption_result("hardened", corruption_id)
        cells = []
        for level in SEVERITY_LEVELS:
            a = naive.find(level) if naive else None
            b = hardened.find(level) if hardened else None
            if a is None or b is None or a.accuracy is None or b.accuracy is None:
                cells.append({"text": "", "css": ""})
                continue
            change = b.accuracy - a.accuracy
            changes.append(change)
            cells.append({"text": f"{100 * change:+.1f}", "css": "up" if change > 0 else "down" if change < 0 else ""})
        rows.append({"id": corruption_id, "cells": cells})
    if not changes:
        return None
    return {"levels": SEVERITY_LEVELS, "rows": rows, "sentence": change_sentence(report, changes)}


def change_sentence(report: ReportInput, changes: list[float]) -> str:
    """Whether adversarial fine-tuning helped or hurt natural robustness, in one sentence."""
    plugin = report.run.defence.plugin if report.run.defence else "the defence"
    up, down = sum(c > 0 for c in changes), sum(c < 0 for c in changes)
    mean = sum(changes) / len(changes)
    verdict = "neither clearly helped nor hurt"
    if up > down and mean > 0:
        verdict = "helped"
    elif down > up and mean < 0:
        verdict = "hurt"
    return (f"Hardening by {plugin} {verdict} natural robustness here: accuracy on corrupted images rose at {up} and "
            f"fell at {down} of {len(changes)} (corruption, severity) points, by {100 * mean:+.1f} percentage points "
            "on average.")


def build(report: ReportInput) -> dict[str, Any] | None:
    """The corruption summary, one block per corruption and the hardened-vs-naive table; None without corruptions."""
    if not report.corruption_ids:
        return None
    blocks = [corruption_block(report, corruption_id) for corruption_id in report.corruption_ids]
    context = (report.manifest.get("corruptions") or {}).get("context") or {}
    mce = [(role, num(model.mean_corruption_error, 2)) for role in report.roles if (model := report.model(role))]
    dataset = report.run.dataset
    return {"blocks": blocks, "roles": report.roles, "columns": [m.column for m in metrics_in(CORRUPTION_POINT)],
            "mce": mce, "change": hardened_change(report), "n_test": dataset.n_test if dataset else None,
            "context": _context_text(context)}


def _context_text(context: dict[str, Any]) -> list[tuple[str, str]]:
    units = context.get("native_units") or {}
    return [("modality", context.get("modality") or "not stated"),
            ("native units", f"1.0 = {units['per_unit']:g} {units['unit']}" if units else "not given"),
            ("native value of intensity 0", f"{context['native_offset']:g} {units.get('unit', '')}".strip()
             if context.get("native_offset") is not None else "not given"),
            ("pixel spacing", f"{context['pixel_spacing_mm']:.3g} mm" if context.get("pixel_spacing_mm")
             else "not given"),
            ("seed", str(context.get("seed", "n/a")))]
