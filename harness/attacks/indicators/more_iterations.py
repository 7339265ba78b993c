"""(d) At each iterative attack's largest ε, stronger attacks (the plugin strengthened, converging APGD, trivial
perturbations within ε) must not break many images the plan's attack left standing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.attacks.indicators.context import CheckInfo, CheckResult, Context, allowance, plugin_fooled
from harness.attacks.indicators.probes import (
    CONVERGING,
    CONVERGING_STEPS,
    converging_attacks,
    trivial_names,
    trivial_perturbations,
)
from harness.stats.chance import exceeds_chance

MORE_ITERATIONS_MAX_DROP = 0.05
STEPS_FACTOR, MORE_RESTARTS = 5, 2
CHECK = CheckInfo(
    "more_iterations",
    f"At each iterative attack's largest ε, stronger attacks (the attack with {STEPS_FACTOR}× the steps and "
    f"{MORE_RESTARTS} restarts where its plugin allows; APGD on cross-entropy, {CONVERGING_STEPS} adaptive "
    "steps; PGD on the margin loss with small fixed steps; trivial perturbations within ε) lower its accuracy by ≤ "
    f"{MORE_ITERATIONS_MAX_DROP:g} (at least 1.5 images).",
    "If stronger or simpler attacks break noticeably more images at the same ε, the plan's attack has not "
    "converged and its robust accuracy overstates the model's robustness.",
    "the attack is too weak for this model: stronger or trivial attacks break more images at its largest ε "
    "(attack not converged; an attack-side failure, not model robustness)",
    "accuracy drop under the stronger attacks (fraction of images)")


def check_more_iterations(ctx: Context) -> CheckResult:
    """For each iterative plan attack: the images left standing at its largest ε that any stronger probe breaks."""
    iterative = [s for s in ctx.specs if s.id in ctx.sweep and ctx.plugin(s).iterative]
    if not iterative or not len(ctx.subset):
        return CHECK.not_applicable("the plan has no iterative fixed-ε attack or no clean-correct test images")
    drops = []
    for spec in iterative:
        k = spec.epsilons.index(max(spec.epsilons))
        standing = np.flatnonzero(~ctx.sweep[spec.id][k])
        hits = _stronger(ctx, spec, spec.epsilons[k], standing)
        extra = np.zeros(len(ctx.subset), dtype=bool)
        for hit in hits.values():
            extra |= hit
        drops.append((float(extra.mean()), spec, spec.epsilons[k], hits, extra))
    drop, spec, eps, hits, extra = max(drops, key=lambda d: d[0])
    threshold = allowance(MORE_ITERATIONS_MAX_DROP, len(ctx.subset), 1.5)
    base = float(ctx.accuracy(spec)[spec.epsilons.index(eps)])
    named = [name for name, hit in hits.items() if hit.any()]
    detail = (f"{spec.id} at ε={eps:g}: accuracy {base:.3f} → {base - drop:.3f} on {len(ctx.subset)} images with "
              f"stronger attacks ({', '.join(hits)})")
    detail += (f"; broken by {', '.join(named)}: {ctx.by_class(extra)}" if named else "; none breaks another image")
    chance = exceeds_chance(int(extra.sum()), len(ctx.subset), MORE_ITERATIONS_MAX_DROP)
    result = CHECK.result(not chance.beyond_chance, drop, threshold, detail, ctx.flipped_by(hits),
                          concerns=[(spec.id, eps)], rule=f"images the stronger attacks break: {chance.rule()}")
    for _, probed, at, _, broken in drops:  # the worst case over attacks counts what the probes broke
        key = (probed.norm, float(at))
        result.broken[key] = result.broken.get(key, np.zeros(len(ctx.subset), dtype=bool)) | broken
    return result


def _stronger(ctx: Context, spec: Any, eps: float, standing: np.ndarray) -> dict[str, np.ndarray]:
    """Per stronger probe, which subset images it breaks among those `standing` (subset-length masks)."""
    masks: dict[str, np.ndarray] = {}
    stronger = ctx.plugin(spec).strengthen(spec.params, STEPS_FACTOR, MORE_RESTARTS)
    if stronger is not None:
        name = f"{spec.id} ×{STEPS_FACTOR} steps, {MORE_RESTARTS} restarts"
        masks[name] = np.zeros(len(ctx.subset), dtype=bool)
        if len(standing):
            masks[name][standing] = plugin_fooled(ctx, spec, stronger, [eps], standing, "more")[0]
    means = ctx.class_means()
    for name in (*CONVERGING, *trivial_names(means)):
        masks[name] = np.zeros(len(ctx.subset), dtype=bool)
    for k, x, y, rows in ctx.chunks(standing):
        probes = {**converging_attacks(ctx.model, x, y, eps, spec.norm, ctx.generator("more", spec.id, k)),
                  **trivial_perturbations(ctx.model, x, y, eps, spec.norm, means)}
        for name, hit in probes.items():
            masks[name][rows] = _host(hit)
    return masks


def _host(hit: torch.Tensor) -> np.ndarray:
    return hit.cpu().numpy().astype(bool)
