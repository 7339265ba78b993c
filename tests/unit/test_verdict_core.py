"""The verdict issue's core behaviour on the fake plugins: the per-image worst case over attacks recorded by the
runner, and proportions judged on their one-sided bound by default (tests/plugins/test_verdict.py has the rest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.plan.schema import load_plan_text
from harness.results.build import clean_metrics
from harness.results.criteria import evaluate
from harness.results.model import ModelResult, PlanRef, ResultsDocument
from harness.results.uncertainty import IntervalSettings
from harness.run.runner import RunConfig, Runner


def test_the_runner_records_the_worst_case_and_criteria_can_name_any_attack(tmp_path):
    text = VALID + "  - {metric: robust_accuracy, attack: any, epsilon: 0.01, min: 0.0}\n"
    registry = fake_registry()
    plan = load_plan_text(text, registry=registry, base_dir=tmp_path)
    assert plan.acceptance[-1].id == "any[eps=0.01]::robust_accuracy>=0.00"
    run = Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()
    worst = run.model("naive").worst_case
    assert worst is not None and dict(worst.attacks)[0.01] == ("shift",)
    assert dict(worst.attacks)[0.2] == ("shift", "shift_big")
    criterion = run.criteria[-1]
    assert criterion.measured == worst.find(0.01).robust_accuracy == run.model("naive").attack("shift").point(
        0.01).robust_accuracy
    assert json.loads((run.run_dir / "results.json").read_text())["models"]["naive"]["worst_case"]["label"] == \
        "worst case of 2 attacks"


def test_proportions_are_judged_on_their_one_sided_bound_by_default():
    text = VALID.replace("  - metric: clean_accuracy\n    min: 0.75\n", "  - metric: clean_accuracy\n    min: 0.75\n"
                         "  - {metric: clean_accuracy, min: 0.7, judge: estimate}\n"
                         "  - {metric: attack_success_rate, attack: shift, epsilon: 0.004, max: 0.5}\n"
                         "  - {metric: clean_auc, min: 0.5}\n")
    plan = load_plan_text(text, registry=fake_registry())
    clean, estimate, success, auc, robust = plan.acceptance
    assert (clean.bound, clean.estimate_chosen, clean.id) == ("lower", False, "clean_accuracy>=0.75")
    assert (estimate.bound, estimate.estimate_chosen, estimate.id) == (None, True, "estimate(clean_accuracy)>=0.70")
    assert success.bound == "upper" and robust.bound == "lower"
    assert auc.bound is None and not auc.estimate_chosen  # not a proportion: its estimate, no deviation
    with pytest.raises(Exception, match="judge: estimate judges the point estimate, so it takes no 'bound'"):
        load_plan_text(text.replace("judge: estimate", "judge: estimate, bound: lower"),
                       registry=fake_registry())
    # the example: 0.852 of 122 passes `>= 0.80` on its estimate, not on its one-sided 95 % lower bound
    labels = np.array([0, 1] * 61)
    logits = np.zeros((122, 2))
    logits[np.arange(122), labels] = 1.0
    logits[:18] = logits[:18, ::-1]  # 18 wrong: 104 of 122 correct
    metrics = clean_metrics(labels, logits, 1, IntervalSettings())
    assert metrics.accuracy == pytest.approx(0.852, abs=1e-3)
    document = ResultsDocument(plan=PlanRef("p", "0" * 64), statistics=IntervalSettings().summary("none"),
                               models={"naive": ModelResult(weights_sha256=None, clean=metrics)})
    first = load_plan_text(VALID.replace("min: 0.75", "min: 0.8"), registry=fake_registry()).acceptance[0]
    (judged,) = evaluate([first], document)
    assert not judged.passed and judged.measured > 0.8 > judged.bound_value and judged.confidence == 0.95
    assert judged.bound_value == pytest.approx(metrics.intervals["accuracy"].low, abs=0.03)  # near the 90 % end
