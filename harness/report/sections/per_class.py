"""The Results section's additions for the device's decision: the operating point, and for K classes a per-class
table (one-vs-rest sensitivity and specificity with intervals, robust sensitivity near the cutoff ε, macro
sensitivity). A helper of sections/results.py, not a section of its own."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text
from harness.plan.epsilons import EpsilonGrid
from harness.plan.metrics import METRICS
from harness.report.inputs import ReportInput
from harness.results.model import WORST_CASE, AttackPoint, ModelResult

SENSITIVITY, SPECIFICITY = METRICS["clean_sensitivity"], METRICS["clean_specificity"]
ROBUST_SENSITIVITY, MACRO = METRICS["robust_sensitivity"], METRICS["clean_macro_sensitivity"]
ROBUST_MACRO = METRICS["robust_macro_sensitivity"]


def _near_cutoff(model: ModelResult, attack_id: str, cutoff: float) -> AttackPoint | None:
    """A model's point of an attack (or of its worst case over attacks) at the grid epsilon closest to the cutoff."""
    attack = model.worst_case if attack_id == WORST_CASE else model.attacks.get(attack_id)
    eps = None if attack is None else EpsilonGrid.of([p.epsilon for p in attack.points]).closest(cutoff)
    return None if eps is None else attack.find(eps)  # type: ignore[union-attr]


def operating_points(report: ReportInput) -> list[dict[str, str]]:
    """Per model that decides at a threshold: its role and how the threshold was chosen."""
    out = []
    for role in report.roles:
        point = report.model(role).operating_point  # type: ignore[union-attr]
        if point:
            out.append({"role": role, "text": str(point.get("description") or f"threshold {point['threshold']}")})
    return out


def per_class(report: ReportInput, cell: Any) -> dict[str, Any] | None:
    """The per-class table of each model with per-class results; None for two-class runs."""
    blocks = []
    for role in report.roles:
        model = report.model(role)
        if model is None or not model.classes:
            continue
        rows = []
        names = report.class_names  # the data set's class order: the confusion matrix's (results.json sorts keys)
        ordered = [n for n in names if n in model.classes] + [n for n in model.classes if n not in names]
        for name in ordered:
            one, k = model.classes[name], names.index(name) if name in names else None
            n = sum(model.clean.confusion_matrix[k]) if k is not None and k < len(model.clean.confusion_matrix) \
                else None
            robust = [cell(ROBUST_SENSITIVITY, _near_cutoff(one, attack_id, report.cutoff))
                      for attack_id in report.attack_ids]
            rows.append({"name": name, "n": n, "sensitivity": cell(SENSITIVITY, one.clean),
                         "specificity": cell(SPECIFICITY, one.clean), "robust": robust})
        macro_robust = [cell(ROBUST_MACRO, report.point_near_cutoff(role, attack_id))
                        for attack_id in report.attack_ids]
        blocks.append({"role": role, "rows": rows, "macro": cell(MACRO, model.clean), "macro_robust": macro_robust})
    if not blocks:
        return None
    return {"blocks": blocks,
            "attacks": ["the worst case" if a == WORST_CASE else report.attack_label(a) for a in report.attack_ids],
            "cutoff": eps_text(report.cutoff)}
