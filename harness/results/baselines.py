"""Regression gates (criteria with `baseline:`): their approved runs opened, checked and resolved, and the gates
judged against them.

A path baseline is checked when the plan is loaded (the directory exists and holds a finished run that measured the
criterion's metric with the same attack); every baseline is checked again once the data set is loaded (the same
data content hash), and `latest-pass` is resolved then from the run history of the output directory. A gate passes
when the metric is at most `max_drop` worse than the approved value; with `alpha`, a larger drop fails only when the
paired exact McNemar test on the images both runs measured also gives p < alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, PlanError
from harness.formatting import eps_label
from harness.plan.criteria import BaselineRef, Criterion
from harness.plan.metrics import METRICS
from harness.results.compare import (
    decisions_by_sample,
    finished,
    identify,
    paired_test,
    parameter_differences,
    run_samples,
)
from harness.results.history import history_path, latest_pass
from harness.results.measure import NOT_MEASURED, measure
from harness.results.model import (
    BaselineResult,
    CriterionResult,
    DatasetSummary,
    Json,
    PairedComparison,
    ResultsDocument,
)
from harness.results.status import PASSED
from harness.results.view import RunResults

if TYPE_CHECKING:
    from harness.plan.schema import AttackSpec, Plan
    from harness.results.samples import SampleOutcome

DROP_TOLERANCE = 1e-12  # float rounding of differences of shares, never a margin
PAIR_NAMES = ("approved", "this run")


def plan_error(ref: BaselineRef, message: str) -> PlanError:
    """A PlanError at the criterion's `baseline` key."""
    return PlanError(message, key=ref.key, line=ref.line, source=ref.source)


def open_approved(path: Path, allow_failed: bool = False) -> RunResults:
    """A finished run directory that passed (HarnessError naming it when missing, unreadable, unfinished, or failed
    without `allow_failed`)."""
    if not path.is_dir():
        raise HarnessError(f"baseline run directory {path} does not exist")
    try:
        run = finished(RunResults.load(path))
    except HarnessError as exc:
        raise HarnessError(f"baseline {exc.one_line()}") from None
    if run.status != PASSED and not allow_failed:
        raise HarnessError(f"baseline {path} did not pass (its verdict: {run.status}), so it is not an approved run; "
                           "name a run that passed, or accept it explicitly with baseline: {run: "
                           f"{path.name}, allow_failed: true}} (the report then says so)")
    return run


def approved_value(run: RunResults, criterion: Criterion, attack: AttackSpec | None) -> float:
    """The approved run's value of the criterion's metric (HarnessError when it did not measure it, or measured it
    with another attack or attack parameters than the plan's)."""
    roles = ("naive", "hardened") if criterion.model == "change" else (criterion.model,)
    for role in roles:
        if role not in run.model_roles:
            raise HarnessError(f"baseline {run.run_dir} did not evaluate the {role} model")
        if attack is not None:
            if attack.id not in run.attacks(role):
                raise HarnessError(f"baseline {run.run_dir} did not run attack {attack.id} on the {role} model")
            recorded = run.attack(attack.id, role)
            if recorded.attack != attack.attack:
                raise HarnessError(f"baseline {run.run_dir} ran attack {attack.id} as {recorded.attack}, this plan "
                                   f"as {attack.attack}: their results are not comparable")
            differing = parameter_differences(recorded.params, attack.params_dict())
            if differing:
                raise HarnessError(f"baseline {run.run_dir} ran attack {attack.id} with other parameters (approved "
                                   f"vs this plan: {differing}): their results are not comparable")
    value = measure(run.document, criterion)
    if value is None:
        where = f" under {criterion.attack}" if criterion.attack else ""
        where += f" at epsilon {eps_label(criterion.epsilon)}" if criterion.epsilon is not None else ""
        raise HarnessError(f"baseline {run.run_dir} has no value of {criterion.metric} for the {criterion.model} "
                           f"model{where}")
    return value


def check_approved(ref: BaselineRef, criterion: Criterion, attacks: Mapping[str, AttackSpec]) -> None:
    """Plan validation of a path baseline: a finished run that measured the criterion (PlanError otherwise)."""
    assert ref.path is not None
    try:
        approved_value(open_approved(ref.path, ref.allow_failed), criterion, attacks.get(criterion.attack or ""))
    except HarnessError as exc:
        raise plan_error(ref, exc.one_line()) from None


def check_baselines(plan: Plan) -> Plan:
    """Plan validation of every path baseline (`harness validate`, `harness run`, the pytest plugin): PlanError at
    the criterion's `baseline` key unless it is a finished run that measured the criterion; the plan otherwise."""
    attacks = {spec.id: spec for spec in plan.attacks}
    for criterion in plan.acceptance:
        if criterion.baseline is not None and criterion.baseline.path is not None:
            check_approved(criterion.baseline, criterion, attacks)
    return plan


def resolve_baselines(plan: Plan, dataset: DatasetSummary | None, out_root: Path) -> dict[str, RunResults]:
    """The approved run of every regression gate, by criterion id, checked against the data just loaded: the same
    data content hash; `latest-pass` is the newest passing run of the plan on that data in out_root's history."""
    data_sha256 = dataset.content_sha256 if dataset else None
    attacks = {spec.id: spec for spec in plan.attacks}
    opened: dict[Path, RunResults] = {}
    approved = {}
    for criterion in plan.acceptance:
        ref = criterion.baseline
        if ref is None:
            continue
        path = ref.path or _latest_pass(ref, plan.name, data_sha256, out_root)
        try:
            run = opened[path] if path in opened else open_approved(path, ref.allow_failed)
            opened[path] = run
            approved_value(run, criterion, attacks.get(criterion.attack or ""))
        except HarnessError as exc:
            raise plan_error(ref, exc.one_line()) from None
        if identify(run).data_sha256 != data_sha256:
            raise plan_error(ref, f"baseline {path} was measured on another data set (content sha256 "
                                  f"{_short(identify(run).data_sha256)}, this run's {_short(data_sha256)})")
        approved[criterion.id] = run
    return approved


def _latest_pass(ref: BaselineRef, plan_name: str, data_sha256: str | None, out_root: Path) -> Path:
    """The run directory `latest-pass` names (PlanError when the history has none, or it is gone or no longer
    reads passed: never a silent fall back to an older approval)."""
    history = history_path(out_root)
    try:
        entry = latest_pass(out_root, plan_name, data_sha256)
    except HarnessError as exc:
        raise plan_error(ref, exc.one_line()) from None
    if entry is None:
        raise plan_error(ref, f"latest-pass: no passing run of plan '{plan_name}' on this data (content sha256 "
                              f"{_short(data_sha256)}) is recorded in {history}: approve a run first (a passing run "
                              "of the plan without its baseline criteria), or name a run directory")
    newest = (f"latest-pass: the newest passing run of plan '{plan_name}' on this data, {entry.path} (recorded in "
              f"{history})")
    if not entry.path.is_dir():
        raise plan_error(ref, f"{newest}, no longer exists")
    try:
        status = RunResults.load(entry.path).status
    except HarnessError as exc:
        raise plan_error(ref, f"{newest}, cannot be read: {exc.one_line()}") from None
    if status != PASSED:
        raise plan_error(ref, f"{newest}, now has status '{status}'")
    return entry.path


def approved_manifest(criteria: Iterable[Criterion], approved: Mapping[str, RunResults]) -> list[Json]:
    """The manifest's `baselines`: per regression gate, the approved run it was judged against."""
    return [{"criterion": c.id, "spec": c.baseline.spec, "max_drop": c.baseline.max_drop,
             "run": identify(approved[c.id]).to_json()}
            for c in criteria if c.baseline is not None and c.id in approved]


def _short(sha256: Any) -> str:
    return str(sha256)[:12] if sha256 else "none"


def judge_against(c: Criterion, results: ResultsDocument, approved_run: RunResults,
                  samples: Sequence[SampleOutcome]) -> CriterionResult:
    """A regression gate: this run's value may be worse than the approved run's by at most max_drop (in the metric's
    direction; with alpha, a larger drop fails only when the paired test's p is below alpha). The threshold recorded
    is the approved value less (or, lower being better, plus) max_drop."""
    ref = c.baseline
    assert ref is not None
    approved = measure(approved_run.document, c)
    if approved is None:
        raise ValueError(f"the approved run {approved_run.run_dir} has no value for criterion {c.id!r}")
    value = measure(results, c)
    direction = 1.0 if METRICS[c.metric].higher_is_better else -1.0
    drop = None if value is None else direction * (approved - value) + 0.0  # + 0.0: no negative zero
    within = drop is not None and (drop <= ref.max_drop or math.isclose(drop, ref.max_drop, rel_tol=0,
                                                                         abs_tol=DROP_TOLERANCE))
    paired, paired_note = _paired(c, results, approved_run, samples)
    passed = within
    if drop is not None and not within and ref.alpha is not None:
        passed = paired is not None and paired.p_value >= ref.alpha  # no paired test: the drop alone decides
    return CriterionResult(id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon, op=c.op,
                           threshold=approved - direction * ref.max_drop, description=c.description, measured=value,
                           passed=passed, note=None if value is not None else NOT_MEASURED, judged_on="estimate",
                           baseline=BaselineResult(spec=ref.spec, run=identify(approved_run), approved=approved,
                                                   max_drop=ref.max_drop, drop=drop, paired=paired,
                                                   paired_note=paired_note, alpha=ref.alpha,
                                                   allow_failed=ref.allow_failed))


def _paired(c: Criterion, results: ResultsDocument, approved_run: RunResults,
            samples: Sequence[SampleOutcome]) -> tuple[PairedComparison | None, str | None]:
    """The exact McNemar test of the approved run (a) against this run (b) on the images the metric counts in both,
    or why there is none."""
    metric = METRICS[c.metric]
    if metric.counts is None:
        return None, f"{c.metric} is not a proportion of test images: no paired test"
    if c.model == "change":
        return None, "a hardened − naive change has no paired test"
    try:
        approved_samples = run_samples(approved_run)
    except HarnessError as exc:
        return None, f"no paired test: {exc.one_line()}"
    a = decisions_by_sample(approved_samples, c.model, c.attack, c.epsilon)
    b = decisions_by_sample(samples, c.model, c.attack, c.epsilon)
    if not a or not b:
        return None, "no per-image outcomes in " + ("the approved run" if not a else "this run") + ": no paired test"
    positive = results.dataset.positive_class if results.dataset else 1
    paired = paired_test(metric, a, b, positive, c.attack, c.epsilon, PAIR_NAMES)
    if paired is None:
        if set(a) != set(b) or any(a[i][0] != b[i][0] for i in a):
            return None, ("the approved run's test images carry other ids or labels (another de-identification "
                          "salt?): no paired test")
        return None, f"{c.metric} counts other images in each run: no paired test"
    return paired, None


def baseline_outcome(entry: CriterionResult, show: Callable[[str], str] = str) -> str:
    """'measured 0.612, approved 0.656 (runs/…), drop 0.044 > 0.020; paired on 122 images: 9 right only in the
    approved run, 4 only in this run, exact McNemar p = 0.27' for a regression gate's result."""
    baseline = entry.baseline
    assert baseline is not None
    unit = METRICS[entry.metric].unit if entry.metric in METRICS else None
    fixed = unit.fixed if unit else (lambda value: f"{value:.4g}")
    word = "drop" if entry.op == ">=" else "rise"
    measured = (entry.note or "not measured") if entry.measured is None else f"measured {fixed(entry.measured)}"
    text = f"{measured}, approved {fixed(baseline.approved)} ({show(baseline.run.run_dir)})"
    if baseline.drop is not None:
        beyond = baseline.drop > baseline.max_drop and not math.isclose(baseline.drop, baseline.max_drop, rel_tol=0,
                                                                         abs_tol=DROP_TOLERANCE)
        text += f", {word} {fixed(baseline.drop)} {'>' if beyond else '<='} {fixed(baseline.max_drop)}"
    p = baseline.paired
    if p is not None:
        text += (f"; paired on {p.n_pairs} images: {p.only_a} right only in the approved run, {p.only_b} only in this "
                 f"run, exact McNemar p = {p.p_value:.3g}")
        if baseline.alpha is not None:
            text += f" {'<' if p.p_value < baseline.alpha else '>='} alpha {baseline.alpha:g}"
    elif baseline.alpha is not None:
        text += f"; {baseline.paired_note or 'no paired test'}"
    return text
