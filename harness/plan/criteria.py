"""Acceptance criteria as a plan states them, and the id each criterion gets (metrics: harness.plan.metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.formatting import eps_label, threshold_label

MODEL_ROLES = ("naive", "hardened", "change")
ANY_ATTACK = "any"  # `attack: any` in a criterion: the per-image worst case over every attack run at its ε
ANY_CORRUPTION = "any"  # `corruption: any` in a criterion: every corruption of the plan must meet it
BOUNDS = ("lower", "upper")  # `bound: lower` goes with `min`, `bound: upper` with `max`
JUDGE_BOUND, JUDGE_ESTIMATE = "bound", "estimate"  # `judge:` of a criterion; a proportion is judged on its bound
JUDGES = (JUDGE_BOUND, JUDGE_ESTIMATE)
ESTIMATE_DEVIATION = ("judged on the point estimate (judge: estimate), a deviation from the default: a proportion "
                      "is judged on its one-sided confidence bound")
WORST = "worst"  # `subgroup: worst`: every subgroup must clear the threshold; the worst one is reported
LATEST_PASS = "latest-pass"  # `baseline: latest-pass`: the newest passing run of the plan on the same data


@dataclass(frozen=True)
class BaselineRef:
    """A regression gate's approved run as the plan names it (a run directory, or `latest-pass`), how far the metric
    may fall below the approved value, and optionally the significance the paired test must reach to fail it."""

    spec: str  # as written: 'latest-pass' or the path
    path: Path | None  # the run directory, resolved against the plan's folder; None for latest-pass
    max_drop: float  # how far the metric may fall below the approved run's value
    key: str  # the plan key, for errors: 'acceptance.3.baseline'
    line: int | None = None
    source: str | None = None
    alpha: float | None = None  # fail only when the exact McNemar p is below alpha too (None: the drop alone)
    allow_failed: bool = False  # `baseline: {run: PATH, allow_failed: true}`: an approved run that failed is accepted

    @property
    def label(self) -> str:
        """How criterion ids name the approved run: 'latest-pass' or the run directory's name."""
        return LATEST_PASS if self.path is None else self.path.name


@dataclass(frozen=True)
class Criterion:
    """One pre-registered acceptance criterion: metric (of a model, attack, epsilon) compared to a threshold, or
    to an approved run's value less `max_drop` (a regression gate: `baseline` set, `threshold` None)."""

    id: str
    metric: str
    op: str  # ">=" or "<="
    threshold: float | None
    model: str = "naive"  # naive | hardened | change (hardened minus naive)
    attack: str | None = None
    epsilon: float | None = None
    description: str = ""
    bound: str | None = None  # None: the point estimate is judged; 'lower' or 'upper': that one-sided bound
    estimate_chosen: bool = False  # `judge: estimate` on a proportion: a deviation from judging its bound
    subgroup: Mapping[str, str] | str | None = None  # {attribute: value}, 'worst', or None (every test image)
    corruption: str | None = None  # a corruption id of the plan, or 'any'
    severity: int | None = None
    baseline: BaselineRef | None = None
    class_name: str | None = None  # `class:` one class of the data set, judged one-vs-rest (its recall, ...)
    radius: float | None = None  # certified_accuracy at an L2 radius (or at `epsilon`'s radius ε·√d)
    sigma: float | None = None  # certification metrics: the noise level of the smoothed classifier

    def holds(self, measured: float) -> bool:
        """Whether a measured value satisfies a fixed-threshold criterion (NaN never does)."""
        if measured != measured or self.threshold is None:
            return False
        return measured >= self.threshold if self.op == ">=" else measured <= self.threshold


def _scope(model: str, attack: str | None, epsilon: float | None, subgroup: Mapping[str, str] | str | None = None,
           corruption: str | None = None, severity: int | None = None, class_name: str | None = None) -> list[str]:
    """The leading parts of an id: the model role unless naive, the class, the subgroup, the attack and epsilon,
    then the corruption and severity."""
    parts = []
    if model != "naive":
        parts.append(model)
    if class_name is not None:
        parts.append(f"class[{class_name}]")
    if subgroup is not None:
        what = subgroup if isinstance(subgroup, str) else ",".join(f"{k}={v}" for k, v in subgroup.items())
        parts.append(f"subgroup[{what}]")
    if attack:
        parts.append(f"{attack}[eps={eps_label(epsilon)}]" if epsilon is not None else attack)
    if corruption:
        name = "any_corruption" if corruption == ANY_CORRUPTION else corruption
        parts.append(f"{name}[severity={severity}]" if severity is not None else name)
    return parts


def criterion_id(metric: str, op: str, threshold: float, model: str, attack: str | None,
                 epsilon: float | None, bound: str | None = None, subgroup: Mapping[str, str] | str | None = None,
                 corruption: str | None = None, severity: int | None = None, class_name: str | None = None,
                 radius: float | None = None, sigma: float | None = None) -> str:
    """A readable id such as 'pgd_linf[eps=0.004]::robust_accuracy>=0.60', with a bound and a subgroup
    'subgroup[manufacturer=GE]::pgd_linf[eps=0.004]::lower(robust_accuracy)>=0.60' (a bound only when the plan
    names it; 'estimate(...)' for `judge: estimate`), or on a corruption
    'ct_noise[severity=3]::accuracy>=0.80' ('any_corruption[severity=3]::…' for `corruption: any`), or on a
    smoothed classifier 'smoothed[sigma=0.25,eps=0.004]::certified_accuracy>=0.50' (or 'radius=0.5')."""
    measured = f"{bound}({metric})" if bound else metric
    if sigma is not None:  # certification: the ε (if any) belongs to the smoothed classifier, not to an attack
        at = "" if epsilon is None and radius is None else (
            f",eps={eps_label(epsilon)}" if epsilon is not None else f",radius={radius:g}")
        return "::".join([*_scope(model, None, None, subgroup), f"smoothed[sigma={sigma:g}{at}]",
                          f"{measured}{op}{threshold_label(threshold)}"])
    return "::".join([*_scope(model, attack, epsilon, subgroup, corruption, severity, class_name),
                      f"{measured}{op}{threshold_label(threshold)}"])


def baseline_criterion_id(metric: str, op: str, baseline: BaselineRef, model: str, attack: str | None,
                          epsilon: float | None) -> str:
    """A regression gate's id, naming the approved run: 'pgd_linf[eps=0.004]::robust_accuracy>=latest-pass-0.02',
    with '@p<0.05' when the gate also needs the paired test's significance."""
    sign = "-" if op == ">=" else "+"
    significance = "" if baseline.alpha is None else f"@p<{baseline.alpha:g}"
    return "::".join([*_scope(model, attack, epsilon),
                      f"{metric}{op}{baseline.label}{sign}{threshold_label(baseline.max_drop)}{significance}"])
