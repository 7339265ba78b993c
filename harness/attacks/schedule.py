"""How a fixed-ε sweep visits its ε grid for one batch: every ε in turn, or a bisection for each image's breaking ε.

A schedule calls `attack_at(k, rows)` (attack the batch rows `rows` at the k-th ε, return which of them a valid
adversarial broke and how many adversarials were out of bounds) and returns per ε which images are broken.
Either way, an adversarial valid at ε_k lies inside every larger ball, so an image broken at ε_k counts as broken
at every ε ≥ ε_k and robust accuracy cannot rise with ε.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

AttackAt = Callable[[int, np.ndarray], tuple[np.ndarray, int]]  # (ε index, rows) → (broken per row, violations)


def ascending(n_eps: int, wrong_clean: np.ndarray, attack_at: AttackAt) -> tuple[np.ndarray, np.ndarray]:
    """Every ε from the smallest; only images not yet broken are attacked again (up to n_ε attacks per image).

    Returns (broken [n_ε, rows], violations [n_ε]).
    """
    broken = wrong_clean.copy()
    success = np.zeros((n_eps, len(wrong_clean)), dtype=bool)
    violations = np.zeros(n_eps, dtype=np.int64)
    for k in range(n_eps):
        active = np.flatnonzero(~broken)
        if len(active):
            hit, violations[k] = attack_at(k, active)
            broken[active[hit]] = True
        success[k] = broken
    return success, violations


def bisect(n_eps: int, wrong_clean: np.ndarray, attack_at: AttackAt) -> tuple[np.ndarray, np.ndarray]:
    """Each image's breaking ε found by bisection on the grid: at most ⌈log2(n_ε + 1)⌉ attacks per image.

    Assumption: an attack that fails on an image at ε fails at every smaller ε of the grid (the image's
    robustness is monotone in ε). Successes are certain (the adversarial is valid at every larger ε); failures
    at the ε below a failed attack are inferred, not attacked. Where the assumption does not hold (a stochastic
    attack that would succeed at a smaller ε by chance), bisection reports the image robust there. Each ε is
    attacked at most once per batch, so per-ε seeds stay unique.
    """
    rows = len(wrong_clean)
    low = np.full(rows, -1)  # largest ε index assumed to resist
    high = np.where(wrong_clean, 0, n_eps)  # smallest ε index known to break (n_ε: none found)
    violations = np.zeros(n_eps, dtype=np.int64)
    while True:
        open_rows = np.flatnonzero(low + 1 < high)
        if not len(open_rows):
            break
        middle = (low[open_rows] + high[open_rows]) // 2
        for k in np.unique(middle):
            chosen = open_rows[middle == k]
            hit, bad = attack_at(int(k), chosen)
            violations[k] += bad
            high[chosen[hit]] = k
            low[chosen[~hit]] = k
    success = np.arange(n_eps)[:, None] >= high[None, :]
    return success, violations


SCHEDULES: dict[str, Callable[[int, np.ndarray, AttackAt], tuple[np.ndarray, np.ndarray]]] = {
    "ascending": ascending, "bisect": bisect}
