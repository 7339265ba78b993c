"""The device's operating point: a declared threshold, or one chosen on the validation split for a sensitivity.

Scores are the binary logit margin of the logits view (positive logit − other logit, before any threshold):
P(positive) ≥ τ exactly when the score ≥ logit(τ). The threshold is kept as a logit, so the decision the harness
forms is the one chosen, and recorded as the probability τ = σ(logit) with how it was chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.attacks.heads import logit_to_threshold, threshold_to_logit
from harness.errors import DataError


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold a binary model decides at, and how it was chosen."""

    threshold: float  # τ: positive when P(positive) ≥ τ
    threshold_logit: float  # logit(τ): the shift of the positive column in the logits view
    method: str  # 'declared' or 'sensitivity'
    target_sensitivity: float | None = None
    split: str | None = None  # where it was chosen
    split_sensitivity: float | None = None  # achieved there
    split_specificity: float | None = None
    split_n: int | None = None

    def describe(self) -> str:
        """One line for the report and the log."""
        if self.method == "declared":
            return f"threshold {self.threshold:.4g} on P(positive), declared in the plan"
        return (f"threshold {self.threshold:.4g} on P(positive), chosen on the {self.split} split ({self.split_n} "
                f"images) for sensitivity ≥ {self.target_sensitivity:g}: there sensitivity "
                f"{self.split_sensitivity:.3f}, specificity {self.split_specificity:.3f}")

    def to_json(self) -> dict[str, Any]:
        """As recorded in results.json and the manifest."""
        return {"threshold": self.threshold, "threshold_logit": self.threshold_logit, "method": self.method,
                "target_sensitivity": self.target_sensitivity, "split": self.split,
                "split_sensitivity": self.split_sensitivity, "split_specificity": self.split_specificity,
                "split_n": self.split_n, "description": self.describe()}


def declared_point(threshold: float) -> OperatingPoint:
    """A threshold the plan declares."""
    return OperatingPoint(threshold=threshold, threshold_logit=threshold_to_logit(threshold), method="declared")


def binary_scores(logits: np.ndarray, positive_class: int) -> np.ndarray:
    """Positive logit − other logit per image (float64) of a two-column logits view."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, positive_class] - logits[:, 1 - positive_class]


def choose_point(logits: np.ndarray, labels: np.ndarray, positive_class: int, target: float,
                 split: str) -> OperatingPoint:
    """The highest threshold whose sensitivity on `split` is at least `target` (midway to the next lower score,
    so no image sits on it); DataError when the split has no positive images."""
    scores = binary_scores(logits, positive_class)
    positive = np.asarray(labels) == positive_class
    n_positive = int(positive.sum())
    if n_positive == 0:
        raise DataError(f"decision.sensitivity: the {split} split has no positive images to choose a threshold on")
    k = max(1, math.ceil(target * n_positive - 1e-9))
    kth = float(np.sort(scores[positive])[::-1][k - 1])
    lower = scores[scores < kth]
    cut = (kth + float(lower.max())) / 2 if lower.size else kth - 1.0
    decided = scores > cut
    negatives = ~positive
    specificity = float((~decided & negatives).sum() / negatives.sum()) if negatives.any() else float("nan")
    return OperatingPoint(threshold=logit_to_threshold(cut), threshold_logit=cut, method="sensitivity",
                          target_sensitivity=target, split=split,
                          split_sensitivity=float((decided & positive).sum() / n_positive),
                          split_specificity=specificity, split_n=int(len(scores)))
