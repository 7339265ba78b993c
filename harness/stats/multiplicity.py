"""Holm's step-down adjustment of the confidence level of several confidence-bound criteria.

With m bounds at family-wise level 1 − α, Holm (1979) judges every remaining criterion at level 1 − α/r, r the
number not yet passed; those that pass leave the family and the rest are judged again at the (lower) new level,
until none passes. This is Holm's procedure on the p-values the bounds invert, without computing them; the
family-wise error stays at α under any dependence between the criteria.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

ADJUSTMENTS = ("holm", "none")


def adjusted_levels(passes_at: Sequence[Callable[[float], bool]], confidence: float,
                    adjustment: str = "holm") -> list[float]:
    """The confidence level each criterion is judged at; `passes_at[i](level)` says whether criterion i's bound
    clears its threshold at that level (it must not pass at a higher level without passing at a lower one)."""
    if adjustment not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {adjustment!r} (known: {', '.join(ADJUSTMENTS)})")
    alpha = 1.0 - confidence
    if adjustment == "none":
        return [confidence] * len(passes_at)
    levels: list[float] = [confidence] * len(passes_at)
    remaining = list(range(len(passes_at)))
    while remaining:
        level = 1.0 - alpha / len(remaining)
        passed = [i for i in remaining if passes_at[i](level)]
        for i in passed or remaining:
            levels[i] = level
        if not passed:
            break
        remaining = [i for i in remaining if i not in passed]
    return levels
