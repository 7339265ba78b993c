"""Evaluate acceptance criteria against the results document and form the verdict.

A criterion judges its metric's point estimate, or with `bound: lower|upper` the end of the metric's two-sided
confidence interval (cluster-adjusted where patients repeat). Bound criteria form one family: with
`multiple_comparisons: holm` their levels are adjusted by Holm's step-down procedure (harness.stats.multiplicity).
A criterion on a subgroup reads the subgroup's results; `subgroup: worst` requires every subgroup with a value to
clear the threshold (an intersection-union test, which needs no adjustment across subgroups) and reports the worst.
A regression gate (`baseline:`) is judged against its approved run by harness.results.baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.plan.criteria import ANY_CORRUPTION, WORST, Criterion
from harness.plan.metrics import METRICS
from harness.results.baselines import judge_against
from harness.results.measure import NOT_MEASURED, measure
from harness.results.model import CriterionResult, MetricInterval, ModelResult, ResultsDocument
from harness.results.uncertainty import bound_at, describe
from harness.stats.intervals import DEFAULT_CONFIDENCE
from harness.stats.multiplicity import adjusted_levels

if TYPE_CHECKING:
    from harness.results.samples import SampleOutcome
    from harness.results.view import RunResults

NO_INTERVAL = "no confidence interval was computed for this value"


@dataclass(frozen=True)
class Candidate:
    """One value a criterion may be judged on: the whole test split's, or one subgroup's."""

    value: float | None
    interval: MetricInterval | None
    subgroup: Mapping[str, str] | None = None
    corruption: str | None = None  # for `corruption: any`, the corruption this value was measured under


@dataclass(frozen=True)
class Judgement:
    """The outcome of a criterion at one confidence level."""

    passed: bool
    chosen: Candidate | None
    bound: float | None = None


def corruption_ids(results: ResultsDocument) -> list[str]:
    """Every corruption id any model ran, in the order they first appear."""
    return list(dict.fromkeys(cid for model in results.models.values() for cid in model.corruptions))


def _read(model: ModelResult, criterion: Criterion, subgroup: Mapping[str, str] | None,
          corruption: str | None = None) -> Candidate:
    metric = METRICS[criterion.metric]
    where = {"corruption": corruption or criterion.corruption, "severity": criterion.severity}
    return Candidate(metric.read(model, criterion.attack, criterion.epsilon, **where),
                     metric.read_interval(model, criterion.attack, criterion.epsilon, **where), subgroup, corruption)


def _whole_split(results: ResultsDocument, criterion: Criterion, corruption: str | None = None) -> Candidate:
    """The value on every test image ('change' has no interval)."""
    model = results.models.get(criterion.model)
    if model is None or criterion.model == "change":
        return Candidate(measure(results, criterion, corruption), None, None, corruption)
    return _read(model, criterion, None, corruption)


def candidates(results: ResultsDocument, criterion: Criterion) -> list[Candidate]:
    """What the criterion may be judged on: the whole split, the named subgroup, every subgroup (worst), or every
    corruption of the run (`corruption: any`, the worst)."""
    if criterion.corruption == ANY_CORRUPTION:
        return [_whole_split(results, criterion, cid) for cid in corruption_ids(results)] or [Candidate(None, None)]
    if criterion.subgroup is None:
        return [_whole_split(results, criterion)]
    model = results.models.get(criterion.model)
    if model is None:
        return [Candidate(None, None, None if criterion.subgroup == WORST else criterion.subgroup)]
    if criterion.subgroup == WORST:
        return [_read(sub, criterion, {attribute: value}) for attribute, values in model.subgroups.items()
                for value, sub in values.items()]
    (attribute, value), = criterion.subgroup.items()
    sub = model.subgroups.get(attribute, {}).get(value)
    return [Candidate(None, None, criterion.subgroup) if sub is None else _read(sub, criterion, criterion.subgroup)]


def judge(criterion: Criterion, found: list[Candidate], level: float) -> Judgement:
    """Judge the worst measured candidate (by its bound at `level`, or by its estimate)."""
    measured = [c for c in found if c.value is not None]
    if not measured:
        return Judgement(False, found[0] if found else None)
    if criterion.bound is None:
        scored = [(c.value, c) for c in measured]
    else:
        scored = [(None if c.interval is None else bound_at(c.interval, c.value, criterion.bound, level), c)
                  for c in measured]
        missing = [c for score, c in scored if score is None]
        if missing:
            return Judgement(False, missing[0])
    worse = min if criterion.op == ">=" else max
    score, chosen = worse(scored, key=lambda pair: pair[0])
    return Judgement(criterion.holds(score), chosen, score if criterion.bound else None)


def evaluate(criteria: list[Criterion], results: ResultsDocument, approved: Mapping[str, RunResults] | None = None,
             samples: Sequence[SampleOutcome] = ()) -> tuple[CriterionResult, ...]:
    """One result per criterion: its definition, measured value, the bound and level judged when it names one,
    threshold and pass/fail (unmeasured fails). The level and adjustment come from results.statistics.

    A regression gate is judged against its approved run in `approved` (by criterion id, from
    harness.results.baselines.resolve_baselines); `samples` are this run's per-image outcomes, for its paired test.
    """
    settings = results.statistics
    confidence = settings.confidence if settings else DEFAULT_CONFIDENCE
    adjustment = settings.multiple_comparisons if settings else "none"
    found = [candidates(results, c) for c in criteria]
    bounded = [i for i, c in enumerate(criteria) if c.bound is not None]
    levels = dict(zip(bounded, adjusted_levels(
        [lambda level, i=i: judge(criteria[i], found[i], level).passed for i in bounded], confidence, adjustment),
        strict=True))
    out = []
    for i, c in enumerate(criteria):
        if c.baseline is not None:
            if approved is None or c.id not in approved:
                raise ValueError(f"criterion {c.id!r} is a regression gate but no approved run was resolved for it")
            out.append(judge_against(c, results, approved[c.id], samples))
            continue
        level = levels.get(i, confidence)
        verdict = judge(c, found[i], level)
        chosen = verdict.chosen
        value = chosen.value if chosen else None
        note = None
        if value is None:
            note = NOT_MEASURED
        elif c.bound is not None and verdict.bound is None:
            note = NO_INTERVAL
        elif c.corruption == ANY_CORRUPTION:
            note = f"worst of {sum(f.value is not None for f in found[i])} corruptions: {chosen.corruption}"
        out.append(CriterionResult(
            id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon, op=c.op,
            threshold=c.threshold, description=c.description, measured=value, passed=verdict.passed, note=note,
            judged_on=c.bound or "estimate", bound_value=verdict.bound,
            confidence=level if c.bound else None,
            interval=describe(chosen.interval) if c.bound and chosen and chosen.interval else None,
            subgroup=chosen.subgroup if chosen else None, subgroup_rule=WORST if c.subgroup == WORST else None,
            corruption=c.corruption, severity=c.severity))
    return tuple(out)
