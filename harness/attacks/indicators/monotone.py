"""(a) Robust accuracy must not rise with ε: the results' points, minimal-ε quantiles, and raw re-runs on the subset.

The sweep never attacks an image again once it is broken, so its curve cannot rise even when the attack itself
fails at larger ε. The raw re-run attacks each subset image the sweep broke at a smaller ε again at every larger
ε, each ε on its own: if the attack loses images it had broken, the raw curve rises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.attacks.indicators.context import SUBSET_SIZE, CheckInfo, CheckResult, Context, allowance, plugin_fooled
from harness.results.model import AttackResult
from harness.stats.chance import exceeds_chance

SECTION_TOLERANCE = 1e-9  # the results section is monotone by construction
RAW_MONOTONE_TOLERANCE = 0.05  # subset re-runs of stochastic attacks may wobble by a few images
CHECK = CheckInfo(
    "monotone",
    "Robust accuracy never rises with epsilon (results, minimal-epsilon quantiles, raw subset re-runs).",
    "A larger budget contains every smaller one, so accuracy that rises with ε by more than a few images means the "
    "attack fails at larger ε.",
    "robust accuracy rises with epsilon",
    "largest rise of robust accuracy with ε (fraction of images)", on_subset=False)


def raw_runs_then_monotone(ctx: Context, attacks: Mapping[str, AttackResult]) -> CheckResult:
    """Raw per-ε accuracy on the subset (the sweep's outcomes plus re-attacks of earlier-broken images), then
    the monotonicity check."""
    raw = {spec.id: (spec.epsilons, raw_accuracy(ctx, spec)) for spec in ctx.specs
           if spec.id in ctx.sweep and len(ctx.subset)}  # no clean-correct image: nothing to measure
    return check_monotone(attacks, raw, len(ctx.subset))


def raw_accuracy(ctx: Context, spec: Any) -> np.ndarray:
    """Subset accuracy at each ε with that ε run on its own: images the sweep broke at a smaller ε are attacked
    again at this ε; the rest keep the sweep's outcome (the sweep attacked them at this ε)."""
    broken = ctx.sweep[spec.id]
    first = np.where(broken.any(axis=0), broken.argmax(axis=0), len(spec.epsilons))
    accuracy = []
    for k, eps in enumerate(spec.epsilons):
        earlier = np.flatnonzero(first < k)
        lost = 0
        if len(earlier):
            lost = int((~plugin_fooled(ctx, spec, spec.params, [eps], earlier, f"raw:{k}")[0]).sum())
        accuracy.append((int((~broken[k]).sum()) + lost) / len(ctx.subset))
    return np.asarray(accuracy)


def check_monotone(attacks: Mapping[str, AttackResult],
                   raw: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                   n_subset: int = SUBSET_SIZE) -> CheckResult:
    """Robust accuracy must not rise with ε: the results' points, minimal-ε quantiles, raw subset values."""
    problems, worst, concerns, rules = [], 0.0, [], []
    for attack_id, summary in attacks.items():
        points = sorted(summary.points, key=lambda p: p.epsilon)
        pairs = [(p.epsilon, p.robust_accuracy) for p in points if p.robust_accuracy is not None]
        rise, where = _largest_rise(pairs)
        worst = max(worst, rise)
        if rise > SECTION_TOLERANCE:
            problems.append(f"{attack_id}: robust accuracy rises by {rise:.3f} at ε={where:g}")
            concerns.append((attack_id, where))
        found = summary.min_epsilon
        quantiles = [0 if found is None else getattr(found, f"p{q}") for q in (10, 25, 50, 75, 90)]
        values = [np.inf if v is None else v for v in quantiles]
        if any(b < a for a, b in zip(values, values[1:], strict=False)):
            problems.append(f"{attack_id}: minimal-ε quantiles are not increasing")
            concerns.append((attack_id, None))
            worst = max(worst, 1.0)
    raw_worst, tolerance = 0.0, allowance(RAW_MONOTONE_TOLERANCE, n_subset, 1.5)
    for attack_id, (epsilons, accuracy) in (raw or {}).items():
        rise, where = _largest_rise(sorted(zip(epsilons, accuracy, strict=True)))
        raw_worst = max(raw_worst, rise)
        chance = exceeds_chance(round(rise * n_subset), n_subset, RAW_MONOTONE_TOLERANCE)
        if rise > 0:
            rules.append(f"{attack_id} at ε={where:g}: images lost {chance.rule()}")
        if rise > tolerance and chance.beyond_chance:
            problems.append(f"{attack_id} (subset, each ε run alone): accuracy rises by {rise:.3f} at ε={where:g}")
            concerns.append((attack_id, where))
    passed = not problems
    detail = "; ".join(problems) if problems else (
        f"largest rise {worst:.3g} in the results, {raw_worst:.3g} in {len(raw or {})} raw subset re-runs")
    return CHECK.result(passed, max(worst, raw_worst), tolerance, detail, concerns=concerns,
                        rule="; ".join(rules) or None)


def _largest_rise(pairs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The largest increase of accuracy between consecutive ε, and the ε where it happens."""
    rise, where = 0.0, 0.0
    for (_, a), (eps, b) in zip(pairs, pairs[1:], strict=False):
        if b - a > rise:
            rise, where = float(b - a), float(eps)
    return rise, where
