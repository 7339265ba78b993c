"""(d) The plan's attacks, strengthened (more steps, restarts), must not do much better on the subset."""

from __future__ import annotations

from typing import Any

from harness.attacks.indicators.context import CheckInfo, Context, allowance, plugin_robust_accuracy

MORE_ITERATIONS_MAX_DROP = 0.05
STEPS_FACTOR, MORE_RESTARTS = 5, 3
CHECK = CheckInfo("more_iterations",
                  f"{STEPS_FACTOR}× the steps and {MORE_RESTARTS} restarts lower the plan's PGD accuracy at its "
                  f"largest ε by ≤ {MORE_ITERATIONS_MAX_DROP:g} (at least 1.5 images).",
                  "more PGD steps/restarts lower accuracy (attack not converged)")


def check_more_iterations(ctx: Context) -> dict[str, Any]:
    """Each attack its plugin can strengthen (`strengthen(params, steps_factor, restarts)`), at its largest ε."""
    drops = []
    for spec in ctx.specs:
        if spec.id not in ctx.raw:
            continue
        stronger = ctx.plugin(spec).strengthen(spec.params, STEPS_FACTOR, MORE_RESTARTS)
        if stronger is None:
            continue
        eps = max(spec.epsilons)
        strong = float(plugin_robust_accuracy(ctx, spec, stronger, [eps], "more")[0])
        base = float(ctx.raw[spec.id][spec.epsilons.index(eps)])
        drops.append((base - strong, f"{spec.id} at ε={eps:g}: {base:.3f} → {strong:.3f} with "
                                     f"{stronger.steps} steps × {MORE_RESTARTS} restarts"))
    if not drops:
        return CHECK.not_applicable("the plan has no PGD-style attack (with steps and restarts)")
    drop, detail = max(drops)
    threshold = allowance(MORE_ITERATIONS_MAX_DROP, len(ctx.subset), 1.5)
    return CHECK.result(drop <= threshold, drop, threshold, f"{detail} (on {len(ctx.subset)} images)")
