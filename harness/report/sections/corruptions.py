"""Natural corruptions: one small-multiples figure of accuracy against severity for every corruption, one compact table
(corruption × severity, each model's accuracy with its interval), the corruption errors, and whether the hardened
model is more or less robust to them than the naive one."""

from __future__ import annotations

from typing import Any

from harness.formatting import interval_text, num, pct
from harness.registry.severities import SEVERITY_LEVELS
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.results.model import CorruptionPoint
from harness.results.uncertainty import shown

TITLE = "Natural corruptions"
SAME_DROP = 0.01  # mean relative drops closer than this (one point) count as unchanged by hardening


def _cell(point: CorruptionPoint | None) -> dict[str, str] | None:
    """One table cell: accuracy, its interval, sensitivity and specificity (None: severity not run)."""
    if point is None:
        return None
    return {"accuracy": pct(point.accuracy),
            "interval": interval_text(shown(point.intervals.get("accuracy")), lambda v: pct(v, 0)),
            "detail": f"se {pct(point.sensitivity, 0)} · sp {pct(point.specificity, 0)}"}


def corruption_row(report: ReportInput, corruption_id: str) -> dict[str, Any]:
    """One corruption: its parameter, each severity's value in its unit, and per model a cell per severity and CE."""
    first = report.corruption(corruption_id)
    assert first is not None
    by_role = {role: found for role in report.roles if (found := report.corruption_result(role, corruption_id))}
    values = {p.severity: p.value for result in by_role.values() for p in result.points}
    return {"id": corruption_id, "label": report.corruption_label(corruption_id), "modality": first.modality,
            "parameter": first.parameter, "unit": first.unit,
            "params": ", ".join(f"{k}: {v}" for k, v in first.params.items()),
            "level_values": [f"{values[level]:g}" if level in values else "" for level in SEVERITY_LEVELS],
            "models": [{"role": role, "ce": num(result.corruption_error, 2),
                        "cells": [_cell(result.find(level)) for level in SEVERITY_LEVELS]}
                       for role, result in by_role.items()]}


def _panel(report: ReportInput, corruption_id: str) -> plots.SeverityPanel:
    """A corruption's panel of the small-multiples figure: each model's accuracy with its interval band."""
    first = report.corruption(corruption_id)
    assert first is not None
    by_role = {role: found for role in report.roles if (found := report.corruption_result(role, corruption_id))}
    curves = [plots.Curve(role, [float(p.severity) for p in result.points], [p.accuracy for p in result.points],
                          report.model(role).clean.accuracy,  # type: ignore[union-attr]
                          [shown(p.intervals.get("accuracy")) for p in result.points])
              for role, result in by_role.items()]
    values = {p.severity: p.value for result in by_role.values() for p in result.points}
    return plots.SeverityPanel(f"{corruption_id}\n{first.unit}", curves,
                               {level: f"{value:g}" for level, value in values.items()})


def paired_points(report: ReportInput) -> list[tuple[CorruptionPoint, CorruptionPoint]]:
    """(naive, hardened) points of every corruption and severity both models ran, with accuracies."""
    pairs = []
    for corruption_id in report.corruption_ids:
        naive = report.corruption_result("naive", corruption_id)
        hardened = report.corruption_result("hardened", corruption_id)
        for before in naive.points if naive and hardened else ():
            after = hardened.find(before.severity)  # type: ignore[union-attr]
            if after is not None and before.accuracy is not None and after.accuracy is not None:
                pairs.append((before, after))
    return pairs


def hardening_sentence(report: ReportInput) -> str | None:
    """Whether adversarial fine-tuning helped or hurt natural robustness beyond what it did to clean accuracy."""
    pairs = paired_points(report)
    naive, hardened = report.model("naive"), report.model("hardened")
    if not pairs or naive is None or hardened is None:
        return None
    changes = [after.accuracy - before.accuracy for before, after in pairs]  # type: ignore[operator]
    mean = sum(changes) / len(changes)
    plugin = report.run.defence.plugin if report.run.defence else "the defence"
    text = (f"On natural corruptions, hardening by {plugin} changed accuracy by {100 * mean:+.1f} percentage points "
            f"on average (higher at {sum(c > 0 for c in changes)}, lower at {sum(c < 0 for c in changes)} of "
            f"{len(changes)} corruption and severity points)")
    if naive.clean.accuracy is not None and hardened.clean.accuracy is not None:
        text += f", against {100 * (hardened.clean.accuracy - naive.clean.accuracy):+.1f} on clean images"
    drops = [[point.relative_drop for point in side if point.relative_drop is not None] for side in zip(*pairs,
                                                                                                         strict=True)]
    if not all(drops):
        return text + "."
    before, after = (sum(d) / len(d) for d in drops)
    effect = "helped" if after < before - SAME_DROP else "hurt" if after > before + SAME_DROP else "did not change"
    return (text + f". Relative to each model's own clean accuracy, the naive model loses {pct(before)} and the "
            f"hardened model {pct(after)} on average, so hardening {effect} natural robustness beyond its effect on "
            "clean accuracy.")


def hardened_change(report: ReportInput) -> dict[str, Any] | None:
    """Hardened minus naive accuracy per corruption and severity, with the sentence that reads it."""
    sentence = hardening_sentence(report)
    if sentence is None:
        return None
    rows = []
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
            cells.append({"text": f"{100 * change:+.1f}", "css": "up" if change > 0 else "down" if change < 0 else ""})
        rows.append({"id": corruption_id, "cells": cells})
    return {"levels": SEVERITY_LEVELS, "rows": rows, "sentence": sentence}


def build(report: ReportInput) -> dict[str, Any] | None:
    """The corruption summary, one block per corruption and the hardened-vs-naive table; None without corruptions."""
    if not report.corruption_ids:
        return None
    rows = [corruption_row(report, corruption_id) for corruption_id in report.corruption_ids]
    plot = plots.data_uri(plots.severity_panels([_panel(report, c) for c in report.corruption_ids]))
    context = report.manifest.corruptions.get("context") or {}
    mce = [(role, num(model.mean_corruption_error, 2)) for role in report.roles if (model := report.model(role))]
    dataset = report.run.dataset
    return {"rows": rows, "plot": plot, "roles": report.roles, "levels": SEVERITY_LEVELS,
            "level_names": [_level_name(report, level) for level in SEVERITY_LEVELS],
            "mce": mce, "change": hardened_change(report), "n_test": dataset.n_test if dataset else None,
            "context": _context_text(context)}


def _level_name(report: ReportInput, level: int) -> str:
    """A severity's name ('moderate') from the first point that ran it."""
    return next((p.name for c in report.corruption_ids for role in report.roles
                 if (result := report.corruption_result(role, c)) and (p := result.find(level))), "")


def _context_text(context: dict[str, Any]) -> list[tuple[str, str]]:
    units = context.get("native_units") or {}
    return [("modality", context.get("modality") or "not stated"),
            ("native units", f"1.0 = {units['per_unit']:g} {units['unit']}" if units else "not given"),
            ("native value of intensity 0", f"{context['native_offset']:g} {units.get('unit', '')}".strip()
             if context.get("native_offset") is not None else "not given"),
            ("pixel spacing", f"{context['pixel_spacing_mm']:.3g} mm" if context.get("pixel_spacing_mm")
             else "not given"),
            ("seed", str(context.get("seed", "n/a")))]
