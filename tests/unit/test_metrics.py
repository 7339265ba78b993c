"""The metric registry: each metric's computation, where it is stored, how it is written and measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.results.build import clean_metrics
from harness.results.certification import CertifiedPoint, SigmaResult
from harness.results.metrics import (
    CERTIFIED_POINT,
    CLEAN,
    CORRUPTION,
    CORRUPTION_POINT,
    CORRUPTION_SUMMARY,
    INDICATORS,
    METRICS,
    MIN_EPSILON,
    POINT,
    SMOOTHED,
    Outcomes,
    accuracy,
    compute,
    roc_auc,
    sensitivity,
    specificity,
    success_rate,
)
from harness.results.model import (
    AttackPoint,
    AttackResult,
    CleanMetrics,
    CorruptionPoint,
    CorruptionResult,
    Indicators,
    MinEpsilonSummary,
    ModelResult,
    PlanRef,
    ResultsDocument,
)

LABELS = np.array([0, 0, 0, 1, 1])
CLEAN_CORRECT = np.array([True, True, False, True, True])


def test_rates_count_the_positive_class_and_the_rest():
    o = Outcomes(LABELS, 1, CLEAN_CORRECT, np.array([True, False, False, True, False]))
    assert (accuracy(o), sensitivity(o), specificity(o)) == (2 / 5, 1 / 2, 1 / 3)
    assert success_rate(o) == 2 / 4  # of the four clean-correct images, two were fooled


def test_undefined_rates_are_none_not_zero():
    only_negatives = Outcomes(np.array([0, 0]), 1, np.array([True, True]), np.array([True, False]))
    assert sensitivity(only_negatives) is None and specificity(only_negatives) == 0.5
    assert roc_auc(only_negatives) is None  # single class (and no scores)
    nothing_correct = Outcomes(LABELS, 1, np.zeros(5, bool), np.zeros(5, bool))
    assert success_rate(nothing_correct) is None


def test_clean_metrics_from_logits():
    logits = np.array([[2.0, 0.0], [1.0, 0.5], [0.0, 1.0], [0.2, 0.1], [0.0, 3.0]])
    clean = clean_metrics(LABELS, logits, positive_class=1)
    assert (clean.accuracy, clean.sensitivity, clean.specificity) == (3 / 5, 1 / 2, 2 / 3)
    assert clean.roc_auc == pytest.approx(5 / 6)
    assert clean.confusion_matrix == ((2, 1), (1, 1)) and clean.n == 5


def test_every_entry_is_stored_where_its_scope_says():
    holders = {CLEAN: CleanMetrics, POINT: AttackPoint, MIN_EPSILON: MinEpsilonSummary, INDICATORS: Indicators,
               CORRUPTION_POINT: CorruptionPoint, CORRUPTION: CorruptionResult, CORRUPTION_SUMMARY: ModelResult,
               SMOOTHED: SigmaResult, CERTIFIED_POINT: CertifiedPoint}
    for metric in METRICS.values():
        holder = holders[metric.scope]
        fields = {f.name for f in dataclasses.fields(holder)}
        assert metric.field in fields or isinstance(getattr(holder, metric.field, None), property), metric.name
        assert metric.label and metric.column and metric.unit.name
    computed = compute(POINT, Outcomes(LABELS, 1, CLEAN_CORRECT, CLEAN_CORRECT))
    assert set(computed) == {"robust_accuracy", "robust_sensitivity", "robust_specificity", "attack_success_rate"}


def _document(naive_acc: float, hardened_acc: float | None = None) -> ResultsDocument:
    def model(acc: float, credible: bool) -> ModelResult:
        point = AttackPoint(0.004, acc, None, None, 0.5, 0, 10)
        summary = MinEpsilonSummary(10, 0, 0.005, 0.001, 0.002, 0.003, 0.004, 0.005)
        return ModelResult("ab", CleanMetrics(0.9, 0.8, 1.0, 0.95, 10, ()),
                           {"pgd": AttackResult("pgd_linf", "linf", "fixed_epsilon", {}, (point,)),
                            "fmn": AttackResult("fmn_linf", "linf", "minimal", {}, (), summary)},
                           Indicators(credible, (), (), 10, "subset"))
    models = {"naive": model(naive_acc, True)}
    if hardened_acc is not None:
        models["hardened"] = model(hardened_acc, False)
    return ResultsDocument(PlanRef("p", "0" * 64), models=models)


def test_measure_reads_the_stored_value_of_each_scope():
    document = _document(0.25, 0.75)
    assert METRICS["clean_auc"].measure(document, "naive") == 0.95
    assert METRICS["robust_accuracy"].measure(document, "hardened", "pgd", 0.004) == 0.75
    assert METRICS["median_min_epsilon"].measure(document, "naive", "fmn") == 0.003
    assert METRICS["attack_credible"].measure(document, "naive") == 1.0
    assert METRICS["attack_credible"].measure(document, "hardened") == 0.0
    assert METRICS["robust_accuracy"].measure(document, "change", "pgd", 0.004) == 0.5


def test_measure_is_none_where_nothing_was_measured():
    document = _document(0.25)
    assert METRICS["robust_accuracy"].measure(document, "naive", "pgd", 0.008) is None  # not on the grid
    assert METRICS["robust_accuracy"].measure(document, "naive", "nope", 0.004) is None
    assert METRICS["robust_sensitivity"].measure(document, "naive", "pgd", 0.004) is None  # undefined on the data
    assert METRICS["median_min_epsilon"].measure(document, "naive", "pgd") is None  # not a minimal attack
    assert METRICS["robust_accuracy"].measure(document, "change", "pgd", 0.004) is None  # no hardened model


def test_units_write_values_as_console_and_report_did():
    rate, eps, auc = METRICS["robust_accuracy"].unit, METRICS["median_min_epsilon"].unit, METRICS["clean_auc"].unit
    assert (rate.table(0.6557), rate.fixed(0.6557), rate.short(0.8)) == ("65.6%", "0.656", "0.8")
    assert (eps.fixed(0.006827205), eps.short(0.006827205)) == ("0.006827", "0.006827")
    assert (auc.table(0.916), auc.table(None), rate.short(None)) == ("0.916", "n/a", "n/a")


def test_plan_validation_takes_its_rules_from_the_registry():
    from harness.errors import PlanError
    from harness.plan.schema import load_plan_text
    from harness.registry.manager import default_registry

    plan = """
harness: 1
name: t
dataset: {plugin: phantom_ct, n_patients: 40}
model: {plugin: train, architecture: small_cnn, epochs: 1}
epsilons: [0.004]
attacks: [{attack: fgsm}]
acceptance: [{metric: %s, min: 0}]
"""
    registry = default_registry()
    with pytest.raises(PlanError, match="median_min_epsilon needs a minimal-perturbation attack"):
        load_plan_text(plan % "median_min_epsilon, attack: fgsm", registry=registry)
    with pytest.raises(PlanError, match="attack_credible applies to one model"):
        load_plan_text(plan.replace("model: {", "defence: {plugin: pgd_adversarial_training, epsilon: 0.004}\nmodel: {")
                       % "attack_credible, model: change", registry=registry)
    with pytest.raises(PlanError, match=r"epsilon 0.0040001 is not in the grid of attack 'fgsm' \(0.004\)"):
        load_plan_text(plan % "robust_accuracy, attack: fgsm, epsilon: 0.0040001", registry=registry)
    accepted = load_plan_text(plan % "robust_accuracy, attack: fgsm, epsilon: 4.0e-3", registry=registry)
    assert accepted.acceptance[0].epsilon == 0.004
