"""The per-sample outcome of one attack on one split: what the sweep produces and the results are built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AttackOutcome:
    """Per-sample results of one attack on one split."""

    epsilons: list[float]
    success: np.ndarray  # bool [n_eps, N]: misclassified by a valid adversarial within epsilon (or clean)
    violations: np.ndarray  # int [n_eps]: adversarials outside their bound or [0,1], not counted
    min_epsilon: np.ndarray | None  # float [N], minimal attacks: smallest norm that changes the decision (inf: none)
