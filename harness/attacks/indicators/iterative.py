"""(c) Iterative attacks must be at least as strong as single-step ones at each ε."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness.attacks.indicators.context import CheckInfo, CheckResult, Context, allowance
from harness.attacks.indicators.probes import fast_gradient, fooled
from harness.results.model import AttackResult

ITERATIVE_TOLERANCE = 0.02  # on the full test split
ITERATIVE_SUBSET_TOLERANCE = 0.05
CHECK = CheckInfo(
    "iterative_vs_single_step",
    "Iterative attacks (PGD/BIM) are at least as strong as single-step FGSM at each ε "
    f"(tolerance {ITERATIVE_TOLERANCE:g} plus one image).",
    "An iterative attack takes the single-step attack's direction first and then improves on it, so being weaker "
    "by more than the tolerance means it is misconfigured or not converging.",
    "iterative attack weaker than single-step FGSM",
    "largest excess of iterative over FGSM accuracy (fraction of the test set)", on_subset=False)


def check_iterative(attacks: Mapping[str, AttackResult], registry: Any, ctx: Context | None = None) -> CheckResult:
    """Iterative accuracy ≤ single-step accuracy (+ tolerance) at each common ε: from the results, else against
    the indicators' own FGSM on the subset. Which attack is which comes from the plugins' `iterative` flag."""
    fixed = {aid: s for aid, s in attacks.items() if s.kind == "fixed_epsilon"}
    single = {aid: s for aid, s in fixed.items() if not _iterative(registry, s)}
    iterative = {aid: s for aid, s in fixed.items() if aid not in single}
    if not iterative:
        return CHECK.not_applicable("the plan has no iterative fixed-ε attack")
    gaps, notes, n_test = [], [], 0
    for iid, it in iterative.items():
        for sid, sg in single.items():
            if sg.norm != it.norm:
                continue
            ref = {p.epsilon: p.robust_accuracy for p in sg.points}
            for p in it.points:
                base = ref.get(p.epsilon)
                if base is not None and p.robust_accuracy is not None:
                    gaps.append((p.robust_accuracy - base, f"{iid} vs {sid} at ε={p.epsilon:g}", iid, p.epsilon))
                    n_test = max(n_test, int(p.n or 0))
    tolerance = ITERATIVE_TOLERANCE + (1 / n_test if n_test else 0)  # and one image
    if not gaps and ctx is not None:  # no single-step attack in the plan: compare with a one-step attack
        gaps = _subset_iterative_gaps(ctx, iterative)
        tolerance = allowance(ITERATIVE_SUBSET_TOLERANCE, len(ctx.subset), 1.5)
        notes.append(f"plan has no single-step attack of the same norm; own FGSM on {len(ctx.subset)} images")
    if not gaps:
        return CHECK.not_applicable("no single-step attack to compare with")
    gap, where, attack_id, eps = max(gaps)
    detail = "; ".join([*notes, f"largest excess of iterative over single-step accuracy {gap:+.3f} ({where})"])
    return CHECK.result(gap <= tolerance, gap, tolerance, detail, concerns=[(attack_id, eps)])


def _iterative(registry: Any, summary: AttackResult) -> bool:
    """Whether the attack of a result is iterative, by its plugin's declaration."""
    name = summary.attack
    return bool(registry.has("attack", name) and registry.get("attack", name).iterative)


def _subset_iterative_gaps(ctx: Context, iterative: dict[str, Any]) -> list[tuple[float, str, str, float]]:
    gaps = []
    for spec in ctx.specs:
        if spec.id not in iterative or spec.id not in ctx.sweep:
            continue
        for eps, acc in zip(spec.epsilons, ctx.accuracy(spec), strict=True):
            hits = torch.cat([fooled(ctx.model, x, fast_gradient(ctx.model, x, y, eps, spec.norm), y, spec.norm, eps)
                              for _, x, y, _ in ctx.chunks()])
            gaps.append((float(acc) - (1.0 - float(hits.float().mean())), f"{spec.id} vs FGSM at ε={eps:g}", spec.id,
                         eps))
    return gaps
