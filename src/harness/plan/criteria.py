"""The metrics an acceptance criterion may name, and the id each criterion gets."""

from __future__ import annotations

from dataclasses import dataclass

# metric -> (needs an attack, needs an epsilon)
METRICS: dict[str, tuple[bool, bool]] = {
    "clean_accuracy": (False, False),
    "clean_sensitivity": (False, False),
    "clean_specificity": (False, False),
    "clean_auc": (False, False),
    "robust_accuracy": (True, True),
    "robust_sensitivity": (True, True),
    "robust_specificity": (True, True),
    "attack_success_rate": (True, True),
    "median_min_epsilon": (True, False),
    "attack_credible": (False, False),  # 1 when every attack-failure indicator passed, else 0
}
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
        parts.append(f"{attack}[eps={epsilon:g}]" if epsilon is not None else attack)
    value = f"{threshold:.2f}" if round(threshold, 2) == threshold else f"{threshold:g}"
    parts.append(f"{metric}{op}{value}")
    return "::".join(parts)
