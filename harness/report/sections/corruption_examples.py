"""Corruption examples: one test image, clean and at each severity of each corruption, with each model's prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.formatting import pct, severity_text
from harness.registry.severities import SEVERITY_LEVELS
from harness.report import plots
from harness.report.inputs import ROLES, ReportInput
from harness.report.saved_corruption_examples import CorruptionExamples

TITLE = "Corruption examples"


def _predictions(report: ReportInput, examples: dict[str, CorruptionExamples], row: int | None,
                 slot: int | None) -> list[dict[str, Any]]:
    """Each model's prediction on one image of the strip (row None: the clean image), marked when it differs from
    that model's clean prediction."""
    out = []
    for role, ex in examples.items():
        if row is None:
            pred, conf = ex.clean_pred, ex.clean_conf
        elif row < len(ex.ids) and ex.ran[row, slot]:
            pred, conf = int(ex.preds[row, slot]), float(ex.confs[row, slot])
        else:
            continue
        out.append({"role": role, "text": f"{report.class_name(pred)} {pct(conf, 0)}",
                    "changed": row is not None and pred != ex.clean_pred})
    return out


def build(report: ReportInput) -> dict[str, Any] | None:
    """One strip row per corruption: the clean image, then severities 1-5 (blank where not run)."""
    examples = {role: report.corruption_examples[role] for role in ROLES if role in report.corruption_examples}
    if not examples:
        return None
    first = next(iter(examples.values()))
    rows = []
    for i, corruption_id in enumerate(first.ids):
        result = report.corruption(corruption_id)
        values = {p.severity: p.value for p in result.points} if result else {}
        unit = result.unit if result else ""
        cells = []
        for slot, level in enumerate(SEVERITY_LEVELS):
            if not first.ran[i, slot]:
                cells.append(None)
                continue
            cells.append({"uri": plots.data_uri(plots.image_png(first.images[i, slot], min_side=96, max_side=128)),
                          "value": severity_text(values[level], unit) if level in values else f"severity {level}",
                          "predictions": _predictions(report, examples, i, slot)})
        rows.append({"id": corruption_id, "cells": cells})
    clean = {"uri": plots.data_uri(plots.image_png(np.asarray(first.clean), min_side=96, max_side=128)),
             "predictions": _predictions(report, examples, None, None)}
    return {"rows": rows, "clean": clean, "label": report.class_name(first.label), "sample_id": first.sample_id,
            "levels": list(SEVERITY_LEVELS), "roles": list(examples),
            "rule": first.rule or "the first test image of the positive class (runs made before the rule below)"}
