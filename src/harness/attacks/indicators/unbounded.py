"""(b) An attack with the whole pixel box as its budget must fool (almost) every image."""

from __future__ import annotations

from typing import Any

import torch

from harness.attacks.indicators.context import CheckInfo, Context
from harness.attacks.indicators.probes import fooled, pgd_linf

UNBOUNDED_EPSILON = 1.0  # the whole [0,1] box: every non-constant classifier can be fooled
UNBOUNDED_MAX_ACCURACY = 0.05
UNBOUNDED_STEPS, UNBOUNDED_RESTARTS = 40, 2
CHECK = CheckInfo("unbounded_budget",
                  f"PGD L∞ at ε={UNBOUNDED_EPSILON:g} (the whole pixel box) drives accuracy to "
                  f"≤ {UNBOUNDED_MAX_ACCURACY:g}.",
                  "unbounded attack does not reach ~0% accuracy (gradient masking or broken attack)")


def check_unbounded(ctx: Context) -> dict[str, Any]:
    """Own L∞ PGD at ε = 1 (the whole box) must leave ≤ 5% accuracy on the subset."""
    if not len(ctx.subset):
        return CHECK.not_applicable("no clean-correct test images")
    hits = []
    for k, x, y in ctx.chunks():
        adv = pgd_linf(ctx.model, x, y, UNBOUNDED_EPSILON, UNBOUNDED_STEPS, UNBOUNDED_RESTARTS,
                       ctx.generator("unbounded", k))
        hits.append(fooled(ctx.model, x, adv, y, "linf", UNBOUNDED_EPSILON))
    survived = ~torch.cat(hits)
    accuracy = float(survived.float().mean())
    return CHECK.result(accuracy <= UNBOUNDED_MAX_ACCURACY, accuracy, UNBOUNDED_MAX_ACCURACY,
                        f"accuracy {accuracy:.3f} on {len(ctx.subset)} images after PGD L∞ ε={UNBOUNDED_EPSILON:g} "
                        f"({UNBOUNDED_STEPS} steps, {UNBOUNDED_RESTARTS} restarts, cross-entropy); still correct by "
                        f"class: {ctx.by_class(survived)}")
