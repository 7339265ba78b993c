"""Adversarial examples: clean image, adversarial image and the amplified perturbation, per saved example.

Volumes show three orthogonal mid-planes through the ROI centre, and the maximum-intensity projection of |δ|
amplified, along the same three axes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.formatting import eps_text, pct
from harness.report import plots
from harness.report.inputs import ROLES, ReportInput
from harness.report.saved_examples import Examples

TITLE = "Adversarial examples"


def nice_factor(raw: float) -> float:
    """Round an amplification factor down to 1, 2 or 5 × a power of ten."""
    if raw <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for step in (5, 2, 1):
        if step * power <= raw:
            return float(step * power)
    return float(power)


def model_examples(report: ReportInput, ex: Examples) -> dict[str, Any]:
    """One model's examples as image data URIs with their predictions."""
    delta = ex.adversarial - ex.clean
    largest = float(np.abs(delta).max()) if delta.size else 0.0
    scale_to = max(ex.epsilon, largest) if ex.epsilon > 0 else largest
    volume = delta.ndim == 5  # |δ| from black: ε maps to white, not to mid-grey + 0.5
    factor = nice_factor((1.0 if volume else 0.5) / scale_to) if scale_to > 0 else 1.0
    items = []
    for i in range(len(ex.labels)):
        perturbation = (plots.projections(np.clip(factor * np.abs(delta[i]), 0.0, 1.0)) if volume
                        else np.clip(0.5 + factor * delta[i], 0.0, 1.0))
        flipped = int(ex.adv_pred[i]) != int(ex.labels[i]) and int(ex.clean_pred[i]) == int(ex.labels[i])
        items.append({
            "sample_id": ex.sample_ids[i] if i < len(ex.sample_ids) else f"#{i}",
            "label": report.class_name(ex.labels[i]),
            "clean_uri": plots.data_uri(plots.image_png(ex.clean[i])),
            "adv_uri": plots.data_uri(plots.image_png(ex.adversarial[i])),
            "pert_uri": plots.data_uri(plots.image_png(perturbation, *((504, 768) if volume else ()))),
            "clean_pred": report.class_name(ex.clean_pred[i]), "clean_conf": pct(float(ex.clean_conf[i])),
            "adv_pred": report.class_name(ex.adv_pred[i]), "adv_conf": pct(float(ex.adv_conf[i])),
            "linf": report.eps_native(float(np.abs(delta[i]).max())),
            "flipped": flipped,
            "in_bound": bool(ex.within_bound[i]) if ex.within_bound is not None else True,
        })
    return {"role": ex.role, "attack": ex.attack_id, "plugin": ex.attack, "eps": eps_text(ex.epsilon),
            "native": report.native_text(ex.epsilon), "factor": f"{factor:g}", "shown": items,
            "full_scale": report.eps_native(0.5 / factor),
            "n_flipped": sum(1 for it in items if it["flipped"]),
            "volume": volume, "per_row": 1}


def build(report: ReportInput) -> dict[str, Any]:
    """Each model's saved examples, naive first."""
    return {"models": [model_examples(report, report.examples[role]) for role in ROLES if role in report.examples]}
