"""Evaluate acceptance criteria against the results document and form the verdict.

A criterion on a proportion is judged on its one-sided confidence bound (the lower for `min`, the upper for `max`;
cluster-adjusted where patients repeat) at the plan's level, 95 % by default; `judge: estimate` judges the point
estimate instead and is recorded as a deviation. Other metrics are judged on their estimate unless the plan names a
bound. Bound criteria form one family: with `multiple_comparisons: holm` their one-sided levels are adjusted by
Holm's step-down procedure (harness.stats.multiplicity).
A criterion on an attack is INCONCLUSIVE, not passed, when an attack-failure indicator of its model failed for that
attack at the ε it judges and its outcome is the one a failed attack can fake (a pass on robustness, or a failure
of a criterion that requires fragility); the verdict is then inconclusive unless another criterion failed.
A criterion on a subgroup reads the subgroup's results; `subgroup: worst` requires every subgroup with a value to
clear the threshold (an intersection-union test, which needs no adjustment across subgroups) and reports the worst.
A regression gate (`baseline:`) is judged against its approved run by harness.results.baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.formatting import eps_label
from harness.plan.criteria import ANY_ATTACK, ANY_CORRUPTION, ESTIMATE_DEVIATION, WORST, Criterion
from harness.plan.metrics import METRICS
from harness.results.baselines import judge_against
from harness.results.measure import NOT_MEASURED, measure
from harness.results.model import CriterionResult, MetricInterval, ModelResult, ResultsDocument
from harness.results.uncertainty import bound_at, describe
from harness.stats.intervals import DEFAULT_CONFIDENCE, two_sided_level
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
    where = {"corruption": corruption or criterion.corruption, "severity": criterion.severity,
             "radius": criterion.radius, "sigma": criterion.sigma}
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
    if criterion.class_name is not None:
        model = results.models.get(criterion.model)
        one = None if model is None else model.classes.get(criterion.class_name)
        return [Candidate(None, None) if one is None else _read(one, criterion, None)]
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
    """Judge the worst measured candidate (by its one-sided bound at `level`, or by its estimate)."""
    measured = [c for c in found if c.value is not None]
    if not measured:
        return Judgement(False, found[0] if found else None)
    if criterion.bound is None:
        scored = [(c.value, c) for c in measured]
    else:
        two_sided = two_sided_level(level)  # a one-sided bound at `level` is an end of this two-sided interval
        scored = [(None if c.interval is None else bound_at(c.interval, c.value, criterion.bound, two_sided), c)
                  for c in measured]
        missing = [c for score, c in scored if score is None]
        if missing:
            return Judgement(False, missing[0])
    worse = min if criterion.op == ">=" else max
    score, chosen = worse(scored, key=lambda pair: pair[0])
    return Judgement(criterion.holds(score), chosen, score if criterion.bound else None)


def credibility(results: ResultsDocument, criterion: Criterion, passed: bool) -> str | None:
    """'inconclusive: <indicator>, <detail>' when an attack-failure indicator of the criterion's model failed for
    its attack at its ε and the outcome is one a failed attack can fake; else None."""
    if criterion.attack is None:
        return None
    metric = METRICS[criterion.metric]
    favourable = (criterion.op == ">=") == metric.higher_is_better  # a failed attack overstates robustness
    if passed != favourable:
        return None
    attack = None if criterion.attack == ANY_ATTACK else criterion.attack
    for role in (("naive", "hardened") if criterion.model == "change" else (criterion.model,)):
        model = results.models.get(role)
        indicators = model.indicators if model else None
        for check in indicators.checks if indicators else ():
            if not check.passed and check.concerns_point(attack, criterion.epsilon):
                where = f"{role}: " if criterion.model == "change" else ""
                return f"inconclusive: {check.id}, {where}{check.detail}"
    return None
def epsilon_radius_note(results: ResultsDocument, criterion: Criterion) -> str | None:
    """How a certification criterion's L∞ ε became an L2 radius: 'ε 0.004 (L∞) → r = ε·√d = 0.004·√4096 = 0.256'."""
    model = results.models.get("naive" if criterion.model == "change" else criterion.model)
    found = model and model.certification
    if not found or criterion.epsilon is None:
        return None
    return (f"ε {eps_label(criterion.epsilon)} (L∞) → L2 radius ε·√d = {eps_label(criterion.epsilon)}·√"
            f"{found.dimension} = {found.radius_of(criterion.epsilon):.4g}")


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
        inconclusive = credibility(results, c, verdict.passed) if value is not None else None
        if c.sigma is not None and c.epsilon is not None:  # certification at an L∞ ε: the conversion, printed
            note = "; ".join(filter(None, [epsilon_radius_note(results, c), note]))
        out.append(CriterionResult(
            id=c.id, metric=c.metric, model=c.model, attack=c.attack, epsilon=c.epsilon, op=c.op,
            threshold=c.threshold, description=c.description, measured=value,
            passed=verdict.passed and inconclusive is None, note=note, inconclusive=inconclusive,
            deviation=ESTIMATE_DEVIATION if c.estimate_chosen else None,
            judged_on=c.bound or "estimate", bound_value=verdict.bound,
            confidence=level if c.bound else None,
            interval=describe(chosen.interval) if c.bound and chosen and chosen.interval else None,
            subgroup=chosen.subgroup if chosen else None, subgroup_rule=WORST if c.subgroup == WORST else None,
            corruption=c.corruption, severity=c.severity))
    return tuple(out)
