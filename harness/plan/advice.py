"""Warnings about a valid plan that probably does not say what its author meant (`harness validate` prints them):
criteria without a rationale, and an ε grid that looks like percent."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.plan.schema import Plan

PERCENT_LIKE = 0.1  # ε above this on [0,1] images changes a pixel by more than a tenth of its range


def missing_rationales(plan: Plan) -> list[str]:
    """One line per acceptance criterion without a `description:` (its rationale, printed in the report)."""
    return [f"acceptance criterion {c.id} has no rationale: add 'description:' saying why this threshold (the report "
            "lists it)" for c in plan.acceptance if not (c.description or "").strip()]


def _native(plan: Plan, eps: float) -> str:
    """ε in HU for a plan whose data set names a CT window width (the common case), else ''."""
    width = getattr(plan.dataset.params, "window_width", None)
    if isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0:
        return f" = {eps * width:g} HU with window_width {width:g}"
    return ""


def percent_like_epsilons(plan: Plan) -> list[str]:
    """One line per L∞ attack whose ε grid has values above 0.1 on [0,1] images (ε written as percent?); L2 budgets
    grow with the image size and are left alone."""
    out = []
    for spec in plan.attacks:
        if spec.norm != "linf":
            continue
        large = [e for e in spec.epsilons if e > PERCENT_LIKE]
        if large:
            eps = max(large)
            out.append(f"attack {spec.id}: ε {eps:g} is {eps * 100:g} % of the [0,1] pixel range"
                       f"{_native(plan, eps)}; ε is a fraction of the range, not a percent (the study's "
                       "0.004 is 0.4 %)")
    return out


def plan_warnings(plan: Plan) -> list[str]:
    """Every warning about the plan, in order."""
    return [*percent_like_epsilons(plan), *missing_rationales(plan)]
