"""Acceptance criteria as a plan states them, and the id each criterion gets (metrics: harness.results.metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.results.formatting import eps_label, threshold_label

MODEL_ROLES = ("naive", "hardened", "change")
BOUNDS = ("lower", "upper")  # `bound: lower` goes with `min`, `bound: upper` with `max`
WORST = "worst"  # `subgroup: worst`: every subgroup must clear the threshold; the worst one is reported


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
    bound: str | None = None  # None: the point estimate is judged; 'lower' or 'upper': that confidence bound
    subgroup: Mapping[str, str] | str | None = None  # {attribute: value}, 'worst', or None (every test image)

    def holds(self, measured: float) -> bool:
        """Whether a measured value satisfies the criterion (NaN never does)."""
        if measured != measured:
            return False
        return measured >= self.threshold if self.op == ">=" else measured <= self.threshold


def criterion_id(metric: str, op: str, threshold: float, model: str, attack: str | None,
                 epsilon: float | None, bound: str | None = None,
                 subgroup: Mapping[str, str] | str | None = None) -> str:
    """A readable id such as 'pgd_linf[eps=0.004]::robust_accuracy>=0.60', or with a bound and a subgroup
    'subgroup[manufacturer=GE]::pgd_linf[eps=0.004]::lower(robust_accuracy)>=0.60'."""
    parts = []
    if model != "naive":
        parts.append(model)
    if subgroup is not None:
        what = subgroup if isinstance(subgroup, str) else ",".join(f"{k}={v}" for k, v in subgroup.items())
        parts.append(f"subgroup[{what}]")
    if attack:
        parts.append(f"{attack}[eps={eps_label(epsilon)}]" if epsilon is not None else attack)
    measured = f"{bound}({metric})" if bound else metric
    parts.append(f"{measured}{op}{threshold_label(threshold)}")
    return "::".join(parts)
