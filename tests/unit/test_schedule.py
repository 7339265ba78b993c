"""Fixed-ε schedules: the ascending sweep and the bisection, checked against each other."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attacks.schedule import ascending, bisect


def threshold_attack(breaking: np.ndarray, calls: list[tuple[int, list[int]]]):
    """An exactly monotone attack: row r breaks at ε index k iff k ≥ breaking[r]."""
    def attack_at(k: int, rows: np.ndarray) -> tuple[np.ndarray, int]:
        calls.append((k, rows.tolist()))
        return breaking[rows] <= k, 0
    return attack_at


@pytest.mark.parametrize("n_eps", [1, 2, 5, 7, 20])
def test_bisect_equals_ascending_for_a_monotone_attack_with_log_many_attacks(n_eps: int) -> None:
    rng = np.random.default_rng(n_eps)
    breaking = rng.integers(0, n_eps + 1, 200)  # n_eps: never breaks
    wrong_clean = rng.random(200) < 0.1
    slow, fast = [], []
    expected, _ = ascending(n_eps, wrong_clean, threshold_attack(breaking, slow))
    got, violations = bisect(n_eps, wrong_clean, threshold_attack(breaking, fast))
    assert np.array_equal(got, expected) and violations.tolist() == [0] * n_eps
    per_image = np.zeros(200, dtype=int)
    for _, rows in fast:
        per_image[rows] += 1
    assert per_image.max() <= int(np.ceil(np.log2(n_eps + 1)))
    assert per_image[wrong_clean].max(initial=0) == 0  # clean-misclassified images are never attacked
    assert len({k for k, _ in fast}) == len(fast)  # each ε attacked at most once per batch (one seed per ε)
    assert sum(len(r) for _, r in fast) <= sum(len(r) for _, r in slow)


def test_bisect_infers_robustness_below_a_failure() -> None:
    # image 0 breaks only at ε index 0 (a lucky random start), never at larger ε: ascending finds it, bisection
    # (which starts at the middle of the grid and infers the smaller ε) does not
    lucky = {(0, 0)}

    def attack_at(k: int, rows: np.ndarray) -> tuple[np.ndarray, int]:
        return np.array([(k, int(r)) in lucky or (int(r) == 1 and k >= 2) for r in rows]), 0

    wrong_clean = np.zeros(2, dtype=bool)
    exhaustive, _ = ascending(4, wrong_clean, attack_at)
    bisected, _ = bisect(4, wrong_clean, attack_at)
    assert exhaustive[:, 0].tolist() == [True, True, True, True]
    assert bisected[:, 0].tolist() == [False, False, False, False]  # the assumption does not hold: robust reported
    assert bisected[:, 1].tolist() == exhaustive[:, 1].tolist() == [False, False, True, True]
