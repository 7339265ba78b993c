"""(e) The loss gradient w.r.t. the input must be finite and non-zero (else: gradient masking)."""

from __future__ import annotations

import torch

from harness.attacks.indicators.context import CheckInfo, CheckResult, Context
from harness.attacks.indicators.probes import input_gradient
from harness.stats.chance import exceeds_chance

GRADIENT_MIN_NORM, GRADIENT_MIN_FRACTION = 1e-12, 0.9
CHECK = CheckInfo(
    "gradients",
    f"The loss gradient w.r.t. the input is finite and non-zero for ≥ {GRADIENT_MIN_FRACTION:.0%} of inputs.",
    f"Gradient attacks follow the input gradient, so zero or non-finite gradients on more than "
    f"{1 - GRADIENT_MIN_FRACTION:.0%} of images mean gradient masking: gradient-based robust accuracy then says "
    "little about robustness.",
    "zero or non-finite input gradients (gradient masking)",
    "fraction of inputs with a finite, non-zero gradient")


def check_gradients(ctx: Context) -> CheckResult:
    """The cross-entropy input gradient must be finite with norm > 1e-12 for ≥ 90% of the subset."""
    if not len(ctx.subset):
        return CHECK.not_applicable("no clean-correct test images")
    ok = []
    for _, x, y, _ in ctx.chunks():
        grad = input_gradient(ctx.model, x, y).flatten(1).double()
        ok.append(torch.isfinite(grad).all(1) & (grad.norm(dim=1) > GRADIENT_MIN_NORM))
    fraction = float(torch.cat(ok).double().mean())
    bad = len(ctx.subset) - int(round(fraction * len(ctx.subset)))
    chance = exceeds_chance(bad, len(ctx.subset), 1 - GRADIENT_MIN_FRACTION)
    return CHECK.result(not chance.beyond_chance, fraction, GRADIENT_MIN_FRACTION,
                        f"{bad} of {len(ctx.subset)} inputs have a zero or non-finite gradient",
                        rule=f"zero or non-finite gradients: {chance.rule()}")
