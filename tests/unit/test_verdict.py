"""A verdict a reviewer can sign: criteria judged on one-sided bounds by default, INCONCLUSIVE where an attack-failure
indicator shows the judged attack failed (its own exit code, on the console, the cover and in pytest), the worst case
over attacks per image, and a warning for predictions that cannot be a classifier's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from attack_toys import one_torch_thread  # noqa: F401 (a fixture)
from fake_plugins import fake_registry
from rich.console import Console
from test_indicators import OVERSHOOT_PLAN, Overshoot, overshoot_split

from harness.attacks.indicators import PROBE_BREAKS, compute_indicators
from harness.attacks.sweep import AttackOutcome, predict_logits, run_attack
from harness.cli.closing import closing_lines
from harness.cli.exit_codes import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from harness.cli.tables import print_summary
from harness.plan.schema import load_plan_text
from harness.pytest_plugin.messages import failure_message
from harness.registry.manager import default_registry
from harness.report.context import build_context
from harness.report.load import load_report
from harness.report.render import render_html
from harness.report.synthetic import write_synthetic_run
from harness.results.build import attack_result, clean_metrics, worst_case
from harness.results.criteria import evaluate
from harness.results.metrics import METRICS
from harness.results.model import (
    WORST_CASE,
    CleanMetrics,
    DatasetSummary,
    Indicators,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
)
from harness.results.uncertainty import IntervalSettings
from harness.results.view import RunResults
from harness.results.warnings import collect
from harness.run.runner import RunConfig, Runner
from harness.stats.chance import exceeds_chance

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _acceptance(epsilon: float) -> str:
    return OVERSHOOT_PLAN + textwrap.dedent(f"""\
        acceptance:
          - metric: clean_accuracy
            min: 0.8
          - metric: robust_accuracy
            attack: pgd_linf
            epsilon: {epsilon}
            min: 0.3
        """)


def _document(text: str) -> tuple[ResultsDocument, list]:
    """The overshoot toy (its PGD's steps jump across a narrow benign band and never flip a malignant image at
    ε = 0.5) evaluated like the runner does: clean metrics, the sweep, the indicators, the worst case."""
    registry = default_registry()
    plan = load_plan_text(text, registry=registry)
    model, split = Overshoot().eval(), overshoot_split()
    logits = predict_logits(model, split, 64, CPU)
    prediction, labels = logits.argmax(1), np.asarray(split.labels)
    intervals = IntervalSettings()
    result = ModelResult(weights_sha256=None, clean=clean_metrics(labels, logits, 1, intervals))
    outcomes = {}
    for spec in plan.attacks:
        outcomes[spec.id] = run_attack(model, split, spec, registry.get("attack", spec.attack), prediction, 64, CPU,
                                       plan.seed, "naive")
        result = result.with_attack(spec.id, attack_result(spec.attack, spec.norm, spec.kind, spec.params_dict(),
                                                           outcomes[spec.id], labels, prediction == labels, 1, None,
                                                           intervals))
    found = compute_indicators(model, split, result.to_json(), plan, registry, CPU, 16, plan.seed,
                               class_names=["benign", "malignant"], outcomes=outcomes)
    probes = {}
    for entry in found[PROBE_BREAKS]:
        hit = np.zeros(len(labels), dtype=bool)
        hit[entry["indices"]] = True
        probes[entry["epsilon"]] = ("probes", hit)
    result = ModelResult(weights_sha256=None, clean=result.clean, attacks=result.attacks,
                         indicators=Indicators.from_json(found))
    result = ModelResult(weights_sha256=None, clean=result.clean, attacks=result.attacks,
                         indicators=result.indicators,
                         worst_case=worst_case(outcomes, labels, prediction == labels, 1, None, intervals, probes))
    document = ResultsDocument(plan=PlanRef(plan.name, plan.sha256), models={"naive": result},
                               dataset=DatasetSummary("overshoot", ("benign", "malignant"), 1, None, len(labels)),
                               statistics=intervals.summary("holm"))
    criteria = evaluate(plan.acceptance, document)
    return document.__class__(**{**document.__dict__, "criteria": criteria, "verdict": Verdict.of(criteria)}), \
        list(plan.acceptance)


@pytest.fixture(scope="module")
def judged() -> ResultsDocument:
    return _document(_acceptance(0.5))[0]


def test_a_broken_attack_at_a_judged_epsilon_makes_the_criterion_and_the_verdict_inconclusive(judged, tmp_path):
    clean, robust = judged.criteria
    assert clean.passed and clean.inconclusive is None
    # on its numbers PGD "passes" (every malignant image survives, half the images), but stronger probes break them
    assert robust.measured == 0.5 and robust.bound_value >= 0.3
    assert not robust.passed and robust.outcome == "inconclusive"
    indicator = robust.inconclusive.split(", ")[0].removeprefix("inconclusive: ")
    failed = {c.id for c in judged.model("naive").indicators.checks if not c.passed}
    assert robust.inconclusive.startswith("inconclusive: ") and indicator in failed and "ε=0.5" in robust.inconclusive
    assert "more_iterations" in failed  # the stronger probes break what PGD left standing
    verdict = judged.verdict
    assert verdict.inconclusive and verdict.outcome == "inconclusive" and not verdict.passed
    finished = judged.finished()
    assert finished.status == "inconclusive" and finished.exit_code == EXIT_INCONCLUSIVE == 4
    assert json.loads(json.dumps(finished.to_json()))["verdict"]["outcome"] == "inconclusive"
    assert ResultsDocument.from_json(finished.to_json()) == finished
    # pytest's outcome for the criterion: a failure that says why
    message = failure_message(robust, "runs/x")
    assert message.startswith(f"{robust.id}: inconclusive: {indicator}, ")
    # the console: the table and the closing lines
    view = RunResults(tmp_path, finished, {})
    console = Console(record=True, width=200)
    print_summary(console, view)
    table = console.export_text()
    assert "INCONCLUSIVE" in table
    lines = closing_lines(view)
    assert "harness: verdict INCONCLUSIVE (1 of 2 criteria passed, 1 inconclusive)" in lines
    assert f"harness: {robust.id}: {robust.inconclusive}" in lines
    # the failed attack's number is marked as an upper bound; the worst case, which counts the probes, is the headline
    assert "≤50.0%" in table and "worst case of" in table
    model = finished.model("naive")
    assert model.upper_bound("pgd_linf", 0.5) and not model.upper_bound("pgd_linf", 0.1)
    assert METRICS["robust_accuracy"].read(model, WORST_CASE, 0.5) < 0.5


def test_the_same_broken_attack_at_an_unjudged_epsilon_is_a_warning_only():
    document, _ = _document(_acceptance(0.1))
    assert not document.model("naive").indicators.credible  # the indicator still fails, at ε = 0.5
    assert all(c.inconclusive is None for c in document.criteria)
    assert document.verdict.outcome == document.finished().status
    assert document.finished().exit_code in (0, 1)


def test_the_run_command_exits_with_the_inconclusive_code(judged, tmp_path, monkeypatch, capsys):
    from harness.cli.main import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(_acceptance(0.5))
    monkeypatch.setattr(Runner, "run", lambda self: RunResults(tmp_path, judged.finished(), {}))
    assert main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-report", "--no-progress"]) == 4
    assert "verdict INCONCLUSIVE" in capsys.readouterr().out
    assert (EXIT_PASS, EXIT_FAIL) == (0, 1)
    from harness.cli.main import DESCRIPTION

    assert "4 inconclusive" in DESCRIPTION


def _cover(run_dir: Path) -> str:
    import html
    import re

    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", render_html(build_context(load_report(run_dir))))).split())
    return text[:text.index("Contents")]


def test_the_cover_names_an_inconclusive_verdict_and_warns_of_unjudged_failures(tmp_path):
    run_dir = tmp_path / "run"
    write_synthetic_run(run_dir)
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    for model in data["models"].values():
        if model.get("indicators"):
            model["indicators"]["credible"] = False
    data["criteria"][0].update(passed=False, inconclusive="inconclusive: more_iterations, pgd_linf at ε=0.02: 9 of 32")
    data["verdict"].update(passed=False, n_passed=len(data["criteria"]) - 1, n_inconclusive=1)
    for c in data["criteria"][1:]:
        c["passed"] = True
    data["status"], data["exit_code"] = "inconclusive", 4
    path.write_text(json.dumps(data))
    cover = _cover(run_dir)
    assert "INCONCLUSIVE" in cover and "inconclusive: more_iterations, pgd_linf at ε=0.02" in cover
    # an indicator failure no criterion judges: a warning, not a verdict change
    data["criteria"][0].update(passed=True, inconclusive=None)
    data["verdict"].update(passed=True, n_passed=len(data["criteria"]), n_inconclusive=0)
    data["status"], data["exit_code"] = "passed", 0
    path.write_text(json.dumps(data))
    cover = _cover(run_dir)
    assert "PASS" in cover and "the failed indicators concern no ε a criterion judges" in cover


def test_one_image_of_32_never_decides_an_indicator():
    assert not exceeds_chance(1, 32, 0.05).beyond_chance
    assert not exceeds_chance(2, 32, 0.05).beyond_chance
    assert exceeds_chance(5, 32, 0.05).beyond_chance
    assert "5 of 32, one-sided exact binomial test" in exceeds_chance(5, 32, 0.05).rule()


# ------------------------------------------------------------------------------------------------ worst case


def test_two_attacks_breaking_disjoint_images_give_their_union_per_image():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    clean = np.array([1, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    a = AttackOutcome([0.01, 0.02], np.array([[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]], bool),
                      np.zeros(2, int), None)
    b = AttackOutcome([0.02, 0.04], np.array([[0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0, 0, 0]], bool),
                      np.zeros(2, int), None)
    probe = np.zeros(8, dtype=bool)
    probe[5] = True
    found = worst_case({"a": a, "b": b}, labels, clean, 1, None, IntervalSettings(), {0.04: ("probe", probe)})
    assert [p.epsilon for p in found.points] == [0.01, 0.02, 0.04]
    assert dict(found.attacks) == {0.01: ("a",), 0.02: ("a", "b"), 0.04: ("a", "b", "probe")}
    assert found.label == "worst case of 2 attacks and the indicators' probes"
    # ε = 0.02: a breaks images 0 and 1, b breaks 2 and 3: four of the seven clean-correct images fall
    by_eps = {p.epsilon: p for p in found.points}
    assert by_eps[0.02].robust_accuracy == (clean & ~np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)).mean() == 3 / 8
    assert by_eps[0.02].robust_accuracy < min(0.75, 0.625)  # below either attack's own number
    # ε = 0.04: b's images 2, 3, 4, the probe's image 5, and a's 0 and 1 (broken within 0.02, so within 0.04)
    assert by_eps[0.04].robust_accuracy == 1 / 8
    assert by_eps[0.02].intervals["robust_accuracy"].successes == 3
    model = ModelResult(weights_sha256=None, clean=CleanMetrics(1.0, 1.0, 1.0, None, 8, ((4, 0), (0, 4))),
                        worst_case=found)
    assert ModelResult.from_json(json.loads(json.dumps(model.to_json()))) == model
    assert METRICS["robust_accuracy"].read(model, WORST_CASE, 0.02) == 3 / 8


def test_the_runner_records_the_worst_case_and_criteria_can_name_any_attack(tmp_path):
    from test_plan import VALID

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


# ------------------------------------------------------------------------------------------------ judging


def test_proportions_are_judged_on_their_one_sided_bound_by_default():
    from test_plan import VALID

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


# ------------------------------------------------------------------------------------------------ predictions


def _with_clean(matrix: list[list[int]]) -> ResultsDocument:
    n = sum(map(sum, matrix))
    correct = sum(matrix[k][k] for k in range(len(matrix)))
    clean = CleanMetrics(correct / n, None, None, None, n, tuple(map(tuple, matrix)))
    return ResultsDocument(plan=PlanRef("p", "0" * 64), models={"naive": ModelResult(None, clean)},
                           dataset=DatasetSummary("d", ("benign", "malignant"), 1, None, n))


def test_a_model_that_predicts_one_class_is_warned_with_its_likely_causes():
    (warning,) = [w for w in collect(_with_clean([[0, 15], [0, 8]]), {}).warnings if w.startswith("naive: the model")]
    assert warning.startswith("naive: the model predicts 'malignant' for every one of the 23 test images")
    assert "normalisation" in warning and "class order" in warning
    low = collect(_with_clean([[10, 5], [5, 3]]), {}).warnings  # 13 of 23 correct: the majority share is 15/23
    assert any("not above the majority class's share of the test split (0.652)" in w for w in low)
    assert not any("no working classifier" in w for w in collect(_with_clean([[14, 1], [1, 7]]), {}).warnings)


def test_harness_runs_lists_an_inconclusive_run_as_such(judged, tmp_path, capsys):
    from harness.cli.main import main
    from harness.storage.history import record_run

    out = tmp_path / "runs"
    run_dir = out / "overshoot-1"
    run_dir.mkdir(parents=True)
    record_run(out, RunResults(run_dir, judged.finished(), {"started_at": "2026-12-06T10:00:00Z"}))
    capsys.readouterr()
    assert main(["runs", "--out", str(out)]) == 0
    assert "INCONCLUSIVE 1/2" in capsys.readouterr().out


def test_the_report_leads_with_the_worst_case_and_marks_a_failed_attack_as_an_upper_bound(tmp_path):
    run_dir = tmp_path / "run"
    write_synthetic_run(run_dir)
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    naive = data["models"]["naive"]
    points = naive["attacks"]["pgd_linf"]["points"]
    cutoff = min((p["epsilon"] for p in points), key=lambda e: abs(e - 0.004))
    naive["worst_case"] = {"label": "worst case of 2 attacks", "norm": "linf",
                           "points": [{**p, "robust_accuracy": 0.1234} for p in points],
                           "attacks": [{"epsilon": p["epsilon"], "attacks": ["pgd_linf", "fgsm"]} for p in points]}
    checks = naive["indicators"]["checks"]
    checks[0].update(passed=False, concerns=[{"attack": "pgd_linf", "epsilon": cutoff}],
                     rule=exceeds_chance(9, 32, 0.05).rule())
    path.write_text(json.dumps(data))
    html = render_html(build_context(load_report(run_dir)))
    cover = _cover(run_dir)
    assert "accuracy under worst case of 2 attacks at ε" in cover and "12.3%" in cover
    assert "≤ " in cover  # pgd_linf's own number at the cutoff is only an upper bound
    assert "Under attack: worst case of 2 attacks" in html
    import html as html_lib
    import re

    text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert "rule: 9 of 32, one-sided exact binomial test against a tolerated 5%" in text  # subset size and rule
    from harness.report.sections.robustness_profile import profile_rows

    labels = [row.label for row in profile_rows(load_report(run_dir))]
    assert labels[1].startswith("worst case of 2 attacks, ε = ")  # the profile's first row under attack
    assert any(label.startswith("pgd_linf") and label.endswith("(upper bound: the attack failed)")
               for label in labels)
