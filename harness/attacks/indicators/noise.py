"""(f) Random noise of the attack's norm and ε must be much weaker than the attack."""

from __future__ import annotations

import torch

from harness.attacks.indicators.context import CheckInfo, CheckResult, Context
from harness.attacks.indicators.probes import fooled, random_noise

NOISE_DRAWS, NOISE_MARGIN, BARELY_SUCCEEDS = 5, 0.1, 0.1
CHECK = CheckInfo(
    "noise_vs_attack", "Random noise of the same norm and ε is much weaker than the attack.",
    f"An attack that uses the model should beat random noise of the same size by a wide margin (the smaller of "
    f"{NOISE_MARGIN * 100:g} points and half its own success rate); if it does not, it is not exploiting the model.",
    "random noise about as effective as the attack",
    "fooling rate of random noise")


def check_noise(ctx: Context) -> CheckResult:
    """Random noise at the strongest attack's largest ε must fool far fewer images than the attack."""
    candidates = [(float(ctx.accuracy(s)[s.epsilons.index(max(s.epsilons))]), i) for i, s in enumerate(ctx.specs)
                  if s.id in ctx.sweep]
    if not candidates or not len(ctx.subset):
        return CHECK.not_applicable("no fixed-ε attack or no clean-correct test images")
    accuracy, index = min(candidates)
    spec = ctx.specs[index]
    eps, attack = max(spec.epsilons), 1.0 - accuracy
    if attack < BARELY_SUCCEEDS:
        return CHECK.result(True, None, None,
                            f"skipped: {spec.id} succeeds on only {attack:.1%} of the subset at ε={eps:g}")
    per_chunk = []
    for k, x, y, _ in ctx.chunks():
        generator = ctx.generator("noise", k)
        hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(NOISE_DRAWS):
            hit |= fooled(ctx.model, x, random_noise(x, eps, spec.norm, generator), y, spec.norm, eps)
        per_chunk.append(hit)
    hits = torch.cat(per_chunk)
    noise = float(hits.float().mean())
    threshold = max(attack - NOISE_MARGIN, attack / 2)
    broken = ctx.sweep[spec.id][spec.epsilons.index(eps)]
    return CHECK.result(noise <= threshold, noise, threshold,
                        f"random {spec.norm} noise (any of {NOISE_DRAWS} draws) fools {noise:.1%} "
                        f"({ctx.by_class(hits)}), {spec.id} fools {attack:.1%} at ε={eps:g}",
                        ctx.flipped_by({"random noise": hits, spec.id: broken}), concerns=[(spec.id, eps)])
