"""Evaluate acceptance criteria against the results document and form the verdict."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from harness.plan.criteria import Criterion
from harness.results.metrics import METRICS
from harness.results.model import BaselineResult, CriterionResult, PairedTest, ResultsDocument

if TYPE_CHECKING:
    from harness.results.samples import SampleOutcome
    from harness.results.view import RunResults

NOT_MEASURED = "not measured (undefined on this data)"
DROP_TOLERANCE = 1e-12  # float rounding of differences of shares, never a margin


def measure(results: ResultsDocument, criterion: Criterion) -> float | None:
    """The measured value of the criterion's metric for its model role ('change' is hardened minus naive)."""
    return METRICS[criterion.metric].measure(results, criterion.model, criterion.attack, criterion.epsilon)


def evaluate(criteria: list[Criterion], results: ResultsDocument, approved: Mapping[str, RunResults] | None = None,
             samples: Sequence[SampleOutcome] = ()) -> tuple[CriterionResult, ...]:
    """One result per criterion: its definition, measured value, threshold and pass/fail (unmeasured fails).

    A regression gate (`baseline`) is judged against its approved run in `approved` (by criterion id, from
    harness.results.baselines.resolve_baselines); `samples` are this run's per-image outcomes, for its paired test.
    """
    out = []
    for c in criteria:
        if c.baseline is not None:
            if approved is None or c.id not in approved:
                raise ValueError(f"criterion {c.id!r} is a regression gate but no approved run was resolved for it")
            out.append(judge_against(c, results, approved[c.id], samples))
            continue
        value = measure(results, c)
        out.append(CriterionResult(id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon,
                                   op=c.op, threshold=c.threshold, description=c.description, measured=value,
                                   passed=value is not None and c.holds(value),
                                   note=None if value is not None else NOT_MEASURED))
    return tuple(out)


def judge_against(c: Criterion, results: ResultsDocument, approved_run: RunResults,
                  samples: Sequence[SampleOutcome]) -> CriterionResult:
    """A regression gate: this run's value may be worse than the approved run's by at most max_drop (in the metric's
    direction); the threshold recorded is the approved value less (or, lower being better, plus) max_drop."""
    from harness.results.compare import identify

    assert c.baseline is not None
    metric = METRICS[c.metric]
    approved = measure(approved_run.document, c)
    if approved is None:
        raise ValueError(f"the approved run {approved_run.run_dir} has no value for criterion {c.id!r}")
    value = measure(results, c)
    direction = 1.0 if metric.higher_is_better else -1.0
    drop = None if value is None else direction * (approved - value) + 0.0  # + 0.0: no negative zero
    max_drop = c.baseline.max_drop
    passed = drop is not None and (drop <= max_drop or math.isclose(drop, max_drop, rel_tol=0, abs_tol=DROP_TOLERANCE))
    paired, paired_note = _paired(c, results, approved_run, samples)
    return CriterionResult(id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon, op=c.op,
                           threshold=approved - direction * max_drop, description=c.description, measured=value,
                           passed=passed, note=None if value is not None else NOT_MEASURED,
                           baseline=BaselineResult(spec=c.baseline.spec, run=identify(approved_run), approved=approved,
                                                   max_drop=max_drop, drop=drop, paired=paired,
                                                   paired_note=paired_note))


def _paired(c: Criterion, results: ResultsDocument, approved_run: RunResults,
            samples: Sequence[SampleOutcome]) -> tuple[PairedTest | None, str | None]:
    """The exact McNemar test of the approved run (A) against this run (B) on their shared test images, or why not."""
    from harness.errors import HarnessError
    from harness.results.compare import correct_by_sample, paired_test, run_samples

    metric = METRICS[c.metric]
    if metric.paired_population is None:
        return None, f"{c.metric} is not a share of correctly classified images: no paired test"
    if c.model == "change":
        return None, "a hardened − naive change has no paired test"
    try:
        approved_samples = run_samples(approved_run)
    except HarnessError as exc:
        return None, f"no paired test: {exc.one_line()}"
    a = correct_by_sample(approved_samples, c.model, c.attack, c.epsilon)
    b = correct_by_sample(samples, c.model, c.attack, c.epsilon)
    if not a or not b:
        return None, "no per-image outcomes in " + ("the approved run" if not a else "this run") + ": no paired test"
    positive = results.dataset.positive_class if results.dataset else 1
    paired = paired_test(metric, a, b, positive)
    if paired is None:
        return None, ("the approved run's test images carry other ids or labels (another de-identification salt?): "
                      "no paired test")
    return paired, None


def baseline_outcome(entry: CriterionResult, show: Callable[[str], str] = str) -> str:
    """'measured 0.612, approved 0.656 (runs/…), drop 0.044 > 0.02; paired: 9 images lost, 4 gained, exact McNemar
    p = 0.27' for a regression gate's result."""
    baseline = entry.baseline
    assert baseline is not None
    unit = METRICS[entry.metric].unit if entry.metric in METRICS else None
    fixed = unit.fixed if unit else (lambda value: f"{value:.4g}")
    word = "drop" if entry.op == ">=" else "rise"
    measured = (entry.note or "not measured") if entry.measured is None else f"measured {fixed(entry.measured)}"
    text = f"{measured}, approved {fixed(baseline.approved)} ({show(baseline.run.run_dir)})"
    if baseline.drop is not None:
        verb = "<=" if entry.passed else ">"
        text += f", {word} {fixed(baseline.drop)} {verb} {fixed(baseline.max_drop)}"
    if baseline.paired is not None:
        p = baseline.paired
        text += (f"; paired on {p.n} images: {p.a_only} right only in the approved run, {p.b_only} only in this "
                 f"run, exact McNemar p = {p.p_value:.3g}")
    return text
