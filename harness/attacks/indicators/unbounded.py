"""(b) Converging attacks with the whole pixel box as their budget must fool (almost) every image; images only a
trivial perturbation flips are an attack-side failure, never evidence of robustness."""

from __future__ import annotations

import torch

from harness.attacks.indicators.context import CheckInfo, CheckResult, Context
from harness.attacks.indicators.probes import (
    CONVERGING,
    CONVERGING_STEPS,
    SMALL_STEP,
    SMALL_STEPS,
    converging_attacks,
    trivial_perturbations,
)
from harness.stats.chance import exceeds_chance

UNBOUNDED_EPSILON = 1.0  # the whole [0,1] box: every classifier that uses its input can be fooled
UNBOUNDED_MAX_ACCURACY = 0.05
TOO_WEAK = ("the attack is too weak for this model: trivial perturbations flip images that the gradient attacks "
            "cannot at the unbounded budget (an attack-side failure, or masked gradients; not model robustness)")
CHECK = CheckInfo(
    "unbounded_budget",
    f"Attacks that converge at any budget, L∞ at ε={UNBOUNDED_EPSILON:g} (the whole pixel box) from the clean image "
    f"(APGD on cross-entropy, {CONVERGING_STEPS} adaptive steps; PGD on the margin loss, {SMALL_STEPS} steps of "
    f"{SMALL_STEP:g}), drive accuracy to ≤ {UNBOUNDED_MAX_ACCURACY:g}; trivial "
    "perturbations (all-white, all-black, each class's mean image) run beside them.",
    "With the whole pixel box as budget every classifier that uses its input can be fooled, so more than "
    f"{UNBOUNDED_MAX_ACCURACY:.0%} of images surviving attacks that converge at any budget means the attack, not the "
    "model, has failed.",
    "unbounded attack does not reach ~0% accuracy, and no trivial perturbation flips the survivors either "
    "(gradient masking, a model that ignores its input, or a broken attack)",
    "accuracy under the unbounded attacks")


def check_unbounded(ctx: Context) -> CheckResult:
    """Converging gradient attacks and trivial perturbations at ε = 1; passes when the gradient attacks leave ≤ 5%."""
    if not len(ctx.subset):
        return CHECK.not_applicable("no clean-correct test images")
    means = ctx.class_means()
    parts: dict[str, list[torch.Tensor]] = {}
    for k, x, y, _ in ctx.chunks():
        gradient = converging_attacks(ctx.model, x, y, UNBOUNDED_EPSILON, "linf", ctx.generator("unbounded", k))
        trivial = trivial_perturbations(ctx.model, x, y, UNBOUNDED_EPSILON, "linf", means)
        for name, hit in {**gradient, **trivial}.items():
            parts.setdefault(name, []).append(hit)
    hits = {name: torch.cat(chunks) for name, chunks in parts.items()}
    gradient = torch.stack([hits[name] for name in CONVERGING]).any(0)
    trivial = torch.stack([hit for name, hit in hits.items() if name not in CONVERGING]).any(0)
    survived = ~gradient
    accuracy = float(survived.float().mean())
    chance = exceeds_chance(int(survived.sum()), len(ctx.subset), UNBOUNDED_MAX_ACCURACY)
    passed = not chance.beyond_chance  # more survivors than the tolerated 5 % explain by chance
    detail = (f"accuracy {accuracy:.3f} on {len(ctx.subset)} images after {', '.join(CONVERGING)} at "
              f"L∞ ε={UNBOUNDED_EPSILON:g} (each on the images the ones before left); still correct by class: "
              f"{ctx.by_class(survived)}")
    only_trivial = trivial & survived
    if bool(only_trivial.any()):
        names = [name for name, hit in hits.items() if name not in CONVERGING and bool((hit & survived).any())]
        detail += (f"; the attack is too weak for this model: {', '.join(names)} flipped "
                   f"{ctx.by_class(only_trivial)} that the gradient attacks could not (an attack-side failure, "
                   "not model robustness)")
    elif not passed:
        detail += "; no trivial perturbation flips them either"
    return CHECK.result(passed, accuracy, UNBOUNDED_MAX_ACCURACY, detail, ctx.flipped_by(hits),
                        TOO_WEAK if bool(only_trivial.any()) else None, rule=f"survivors: {chance.rule()}")
