"""Acceptance criteria as a plan states them, and the id each criterion gets (metrics: harness.results.metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.results.formatting import eps_label, threshold_label

MODEL_ROLES = ("naive", "hardened", "change")


@dataclass(frozen=True)
class Criterion:
    """One pre-registered acceptance criterion: metric (of a model, attack, epsilon) compared to a threshold."""

    id: str
    metric: str
    op: str  # ">=" or "<="
    threshold: float
    model: str = "naive"  # naive | hardened | change (hardened minus naive)
    attack: str | None = None
    epsilon: float | None = None
    description: str = ""

    def holds(self, measured: float) -> bool:
        """Whether a measured value satisfies the criterion (NaN never does)."""
        if measured != measured:
            return False
        return measured >= self.threshold if self.op == ">=" else measured <= self.threshold


def criterion_id(metric: str, op: str, threshold: float, model: str, attack: str | None,
                 epsilon: float | None) -> str:
    """A readable id such as 'pgd_linf[eps=0.004]::robust_accuracy>=0.60'."""
    parts = []
    if model != "naive":
        parts.append(model)
    if attack:
        parts.append(f"{attack}[eps={eps_label(epsilon)}]" if epsilon is not None else attack)
    parts.append(f"{metric}{op}{threshold_label(threshold)}")
    return "::".join(parts)
