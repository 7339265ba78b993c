"""Acceptance criteria evaluated on the results model, and the verdict."""

from __future__ import annotations

import math

from harness.plan.criteria import Criterion, criterion_id
from harness.results.criteria import evaluate
from harness.results.measure import NOT_MEASURED
from harness.results.model import (
    AttackPoint,
    AttackResult,
    CleanMetrics,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
)


def document() -> ResultsDocument:
    def model(robust: float) -> ModelResult:
        return ModelResult("ab", CleanMetrics(0.9, None, 0.9, None, 20, ()),
                           {"pgd": AttackResult("pgd_linf", "linf", "fixed_epsilon", {},
                                                (AttackPoint(0.004, robust, 0.5, 0.5, 0.3, 0, 20),))})
    return ResultsDocument(PlanRef("p", "0" * 64), models={"naive": model(0.25), "hardened": model(0.6)})


def test_each_criterion_is_measured_and_judged():
    criteria = [Criterion("clean", "clean_accuracy", ">=", 0.8),
                Criterion("floor", "robust_accuracy", ">=", 0.5, attack="pgd", epsilon=0.004),
                Criterion("gain", "robust_accuracy", ">=", 0.3, model="change", attack="pgd", epsilon=0.004),
                Criterion("rate", "attack_success_rate", "<=", 0.2, model="hardened", attack="pgd", epsilon=0.004),
                Criterion("sens", "clean_sensitivity", ">=", 0.5)]
    results = evaluate(criteria, document())
    assert [(r.id, r.passed) for r in results] == [("clean", True), ("floor", False), ("gain", True),
                                                   ("rate", False), ("sens", False)]
    assert math.isclose(results[2].measured, 0.35) and results[0].note is None
    assert results[4].measured is None and results[4].note == NOT_MEASURED  # undefined: counts as failed
    assert Verdict.of(results) == Verdict(passed=False, n_passed=2, n_criteria=5)
    assert Verdict.of(()) == Verdict(passed=True, n_passed=0, n_criteria=0)


def test_results_carry_the_criterion_definition():
    c = Criterion("floor", "robust_accuracy", ">=", 0.5, attack="pgd", epsilon=0.004, description="why")
    (result,) = evaluate([c], document())
    assert (result.metric, result.model, result.attack, result.epsilon, result.op, result.threshold,
            result.description) == ("robust_accuracy", "naive", "pgd", 0.004, ">=", 0.5, "why")


def test_nan_never_passes():
    assert not Criterion("x", "clean_accuracy", ">=", 0.0).holds(float("nan"))


def test_criterion_ids_read_like_the_plan():
    assert criterion_id("robust_accuracy", ">=", 0.6, "naive", "pgd_linf", 0.004) == \
        "pgd_linf[eps=0.004]::robust_accuracy>=0.60"
    assert criterion_id("median_min_epsilon", ">=", 0.0005, "change", "fmn", None) == \
        "change::fmn::median_min_epsilon>=0.0005"
