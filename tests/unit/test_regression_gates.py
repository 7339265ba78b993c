"""Regression gates (`baseline:` + `max_drop`): plan validation, resolution against the data and the run history,
judging, and how the result is shown (pytest line, closing lines, report section), with the fake plugins."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from baseline_runs import write_run
from fake_plugins import fake_registry
from test_plan import VALID

from harness.cli.closing import closing_lines
from harness.errors import PlanError
from harness.plan.schema import load_plan_text
from harness.pytest_plugin.messages import failure_message
from harness.report.context import build_context
from harness.report.load import load_report
from harness.report.render import render_html
from harness.report.sections import baselines as baselines_section
from harness.results.baselines import baseline_outcome, check_baselines
from harness.results.history import list_runs
from harness.run.runner import RunConfig, Runner
from harness.stats.paired import exact_mcnemar

GATE_LINE = 23  # the line of the first extra criterion's `baseline:` key in VALID + gates(...)


def gates(*items: str) -> str:
    """VALID with extra acceptance entries (YAML flow mappings)."""
    return VALID + "".join(f"  - {item}\n" for item in items)


def plan_of(text: str, base: Path, overrides: list[str] | None = None):
    return load_plan_text(text, overrides, registry=fake_registry(), base_dir=base, source="plan.yaml")


def run(text: str, base: Path, overrides: list[str] | None = None):
    plan = plan_of(text, base, overrides)
    return Runner(plan, fake_registry(), RunConfig(out_root=base / "runs", progress=False, echo=lambda m: None)).run()


@pytest.fixture(scope="module")
def approved(tmp_path_factory) -> Path:
    """A finished, passing run of the toy plan, recorded in runs/history.sqlite."""
    base = tmp_path_factory.mktemp("gates")
    result = run(VALID, base)
    assert result.passed
    return result.run_dir


def test_a_gate_names_its_approved_run_in_its_id_and_takes_max_drop(approved):
    plan = plan_of(gates(f"{{metric: robust_accuracy, attack: shift_big, epsilon: 0.2, baseline: {approved}, "
                         "max_drop: 0.02}", "{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.05}",
                         "{metric: attack_success_rate, attack: shift, epsilon: 0.01, baseline: latest-pass, "
                         "max_drop: 0}"), approved.parent)
    robust, clean, success = plan.acceptance[2:]
    assert robust.id == f"shift_big[eps=0.2]::robust_accuracy>={approved.name}-0.02"
    assert (robust.op, robust.threshold, robust.baseline.path, robust.baseline.max_drop) == (">=", None, approved,
                                                                                              0.02)
    assert robust.baseline.key == "acceptance.2.baseline" and robust.baseline.line == GATE_LINE
    assert clean.id == "clean_accuracy>=latest-pass-0.05" and clean.baseline.path is None
    assert success.id == "shift[eps=0.01]::attack_success_rate<=latest-pass+0.00" and success.op == "<="
    with_alpha = plan_of(gates("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02, alpha: 0.05}"),
                         approved.parent).acceptance[2]
    assert with_alpha.id == "clean_accuracy>=latest-pass-0.02@p<0.05" and with_alpha.baseline.alpha == 0.05
    relative = plan_of(gates(f"{{metric: clean_accuracy, baseline: runs/{approved.name}, max_drop: 0}}"),
                       approved.parent.parent)
    assert relative.acceptance[2].baseline.path == approved  # relative to the plan's folder


@pytest.mark.parametrize(("entry", "message"), [
    ("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02, min: 0.5}",
     r"acceptance.2.min': a regression gate \('baseline'\) takes 'max_drop' \(and 'alpha'\), not 'min'$"),
    ("{metric: clean_accuracy, baseline: latest-pass}", r"key 'acceptance.2': a baseline criterion needs 'max_drop'"),
    ("{metric: clean_accuracy, max_drop: 0.02}", r"key 'acceptance.2.max_drop': 'max_drop' needs a 'baseline'"),
    ("{metric: clean_accuracy, baseline: latest-pass, max_drop: -0.1}", r"max_drop must be a number >= 0"),
    ("{metric: clean_accuracy, baseline: 3, max_drop: 0.1}", r"expected a run directory or latest-pass, got 3"),
    ("{metric: clean_accuracy, alpha: 0.05}", r"key 'acceptance.2.alpha': 'alpha' needs a 'baseline'"),
    ("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02, alpha: 1.5}", r"alpha must be between 0 and 1"),
    ("{metric: clean_auc, baseline: latest-pass, max_drop: 0.02, alpha: 0.05}",
     r"clean_auc has no paired test, so a gate on it takes no 'alpha'"),
    ("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02, bound: lower}",
     r"acceptance.2.bound': a regression gate \('baseline'\) takes 'max_drop' \(and 'alpha'\), not 'bound'"),
])
def test_malformed_gates_are_plan_errors(tmp_path, entry, message):
    with pytest.raises(PlanError, match=message):
        plan_of(gates(entry), tmp_path)


def test_bad_baseline_directories_are_refused_at_validation_naming_them(approved, tmp_path):
    def refused(baseline: Path, entry: str = "{{metric: clean_accuracy, baseline: {path}, max_drop: 0.02}}",
                overrides: list[str] | None = None) -> str:
        with pytest.raises(PlanError) as caught:
            check_baselines(plan_of(gates(entry.format(path=baseline)), tmp_path, overrides))
        line = caught.value.one_line()
        assert line.startswith(f"plan.yaml:{GATE_LINE}, key 'acceptance.2.baseline': baseline ") and "\n" not in line
        return line

    assert refused(tmp_path / "nope").endswith(f"baseline run directory {tmp_path / 'nope'} does not exist")
    unfinished = shutil.copytree(approved, tmp_path / "unfinished")
    raw = json.loads((unfinished / "results.json").read_text())
    (unfinished / "results.json").write_text(json.dumps({**raw, "status": "running", "verdict": None}))
    assert f"{unfinished} is an unfinished run (status 'interrupted')" in refused(unfinished)
    (tmp_path / "empty").mkdir()
    assert "results.json not found" in refused(tmp_path / "empty")
    robust = "{{metric: robust_accuracy, attack: shift, epsilon: 0.004, baseline: {path}, max_drop: 0.02}}"
    assert ("ran attack shift with other parameters (approved vs this plan: steps 2 vs 3): their results are not "
            "comparable") in refused(approved, robust, ["attacks.shift.steps=3"])
    assert refused(approved, robust.replace("0.004", "0.05"), ["attacks.shift.epsilons=[0.004, 0.05]"]).endswith(
        "has no value of robust_accuracy for the naive model under shift at epsilon 0.05")
    assert refused(write_run(tmp_path / "pgd-only"), robust).endswith("did not run attack shift on the naive model")


def test_a_sandboxed_plan_keeps_its_baseline_inside(approved, tmp_path):
    with pytest.raises(PlanError, match="acceptance.2.baseline': path .* outside the sandbox"):
        plan_of("sandbox: true\n" + gates(f"{{metric: clean_accuracy, baseline: {approved}, max_drop: 0}}"), tmp_path)


def test_the_same_model_passes_its_gates_with_no_drop_and_is_recorded(approved):
    base = approved.parent.parent
    result = run(gates(f"{{metric: robust_accuracy, attack: shift_big, epsilon: 0.2, baseline: {approved}, "
                       "max_drop: 0}", "{metric: clean_accuracy, baseline: latest-pass, max_drop: 0}"), base)
    assert result.passed
    robust, clean = result.criteria[2:]
    assert robust.baseline.run.run_dir == str(approved) and robust.baseline.spec == str(approved)
    assert (robust.baseline.approved, robust.measured, robust.baseline.drop, robust.threshold) == (0.0, 0.0, 0.0, 0.0)
    assert clean.baseline.spec == "latest-pass" and clean.baseline.run.run_dir == str(approved)
    n_test = result.dataset.n_test
    assert (clean.baseline.paired.n_pairs, clean.baseline.paired.only_a, clean.baseline.paired.only_b) == (n_test, 0, 0)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    relative = f"runs/{approved.name}"  # the manifest names paths under the plan's folder relative to it
    assert [b["spec"] for b in manifest["baselines"]] == [relative, "latest-pass"]
    assert manifest["baselines"][1]["run"]["run_dir"] == relative
    assert [e.path for e in list_runs(base / "runs")][:2] == [result.run_dir, approved]


def test_a_weaker_model_fails_its_gate_and_every_display_names_the_approved_run(approved, tmp_path):
    base = approved.parent.parent
    result = run(gates(f"{{metric: clean_accuracy, baseline: {approved}, max_drop: 0.02}}"), base,
                 ["model.threshold=0.7"])  # brighter cut-off: some bright squares become 'dark'
    gate = result.criteria[2]
    assert not gate.passed and not result.passed
    n_test = result.dataset.n_test
    lost = round((1.0 - gate.measured) * n_test)
    assert gate.baseline.approved == 1.0 and gate.baseline.drop == pytest.approx(1.0 - gate.measured)
    assert gate.threshold == pytest.approx(0.98) and lost > 0
    assert (gate.baseline.paired.only_a, gate.baseline.paired.only_b) == (lost, 0)
    p_value = exact_mcnemar([True] * lost, [False] * lost).p_value
    expected = (f"clean_accuracy>={approved.name}-0.02: measured {gate.measured:.3f}, approved 1.000 ({approved}), "
                f"drop {gate.baseline.drop:.3f} > 0.020; paired on {n_test} images: {lost} right only in the "
                f"approved run, 0 only in this run, exact McNemar p = {p_value:.3g}")
    assert failure_message(gate, "runs/x") == f"{expected} (run directory: runs/x)"
    assert f"harness: failed {expected}" in closing_lines(result)
    stored = json.loads((result.run_dir / "results.json").read_text())["criteria"][2]["baseline"]
    assert stored["run"]["weights_sha256"] == {"naive": "f" * 64} and stored["max_drop"] == 0.02
    section = baselines_section.build(load_report(result.run_dir))
    assert [r["name"] for r in section["runs"]] == [approved.name]
    (row,) = section["rows"]
    assert (row["approved"], row["verdict"], row["paired"]["a_only"]) == ("1", "FAIL", lost)
    assert baselines_section.build(load_report(approved)) is None  # no gates: no section
    html = render_html(build_context(load_report(result.run_dir)))
    assert re.search(r"\d+\. Comparison with the approved run", html) and f"against {approved.name}" in html
    assert "Comparison with the approved run" not in render_html(build_context(load_report(approved)))


def test_baselines_are_checked_against_the_loaded_data_and_latest_pass_needs_a_passing_run(approved, tmp_path):
    other_data = write_run(tmp_path / "other-data", data="ee" * 32)
    with pytest.raises(PlanError, match=rf"plan.yaml:{GATE_LINE}, key 'acceptance.2.baseline': baseline "
                                        rf"{other_data.name} was measured on another data set \(content sha256 "
                                        r"eeeeeeeeeeee, this run's 000000000000\)"):
        run(gates(f"{{metric: clean_accuracy, baseline: {other_data}, max_drop: 0.02}}"), tmp_path)
    with pytest.raises(PlanError, match=r"latest-pass: no passing run of plan 'toy_plan' on this data \(content "
                                        r"sha256 000000000000\) is recorded in .*history.sqlite: approve a run first"):
        run(gates("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02}"), tmp_path / "fresh")


def test_latest_pass_whose_directory_is_gone_is_an_error_not_a_fallback(tmp_path):
    first = run(VALID, tmp_path)
    second = run(VALID, tmp_path, ["seed=4"])
    shutil.rmtree(second.run_dir)
    with pytest.raises(PlanError, match=rf"the newest passing run of plan 'toy_plan' on this data, "
                                        rf"runs/{second.run_dir.name} \(recorded in .*\), no longer exists"):
        run(gates("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02}"), tmp_path)
    assert first.run_dir.is_dir()


def test_latest_pass_whose_run_no_longer_reads_passed_is_an_error(tmp_path):
    approved = run(VALID, tmp_path).run_dir  # recorded as passed; then, say, its report failed (passed -> error)
    raw = json.loads((approved / "results.json").read_text())
    (approved / "results.json").write_text(json.dumps({**raw, "status": "error", "exit_code": 1}))
    with pytest.raises(PlanError, match=rf"the newest passing run of plan 'toy_plan' on this data, "
                                        rf"runs/{approved.name} \(recorded in .*\), now has status 'error'"):
        run(gates("{metric: clean_accuracy, baseline: latest-pass, max_drop: 0.02}"), tmp_path)


def test_a_gate_without_the_approved_runs_samples_is_judged_without_a_paired_test(approved, tmp_path):
    copy = shutil.copytree(approved, tmp_path / "no-samples")
    (copy / "samples.csv").unlink()
    result = run(gates(f"{{metric: clean_accuracy, baseline: {copy}, max_drop: 0}}"), tmp_path)
    gate = result.criteria[2]
    assert gate.passed and gate.baseline.paired is None
    assert gate.baseline.paired_note == f"no paired test: {copy / 'samples.csv'} is missing: comparing runs image " \
                                        "by image needs their samples.csv"


@pytest.mark.parametrize("alpha", [1e-9, 0.5])  # 1e-9: no drop on this test set is that significant
def test_with_alpha_a_drop_beyond_max_drop_fails_only_when_the_paired_test_is_significant(approved, alpha):
    base = approved.parent.parent
    result = run(gates(f"{{metric: clean_accuracy, baseline: {approved}, max_drop: 0.02, alpha: {alpha:.10f}}}"), base,
                 ["model.threshold=0.8"])  # every bright square becomes 'dark'
    gate = result.criteria[2]
    paired = gate.baseline.paired
    assert gate.baseline.drop > 0.02 and paired.only_a > 0 and gate.baseline.alpha == alpha
    assert gate.passed == (paired.p_value >= alpha)
    assert gate.passed == (alpha < 0.5)
    expected = "<" if paired.p_value < alpha else ">="
    assert baseline_outcome(gate).endswith(f"exact McNemar p = {paired.p_value:.3g} {expected} alpha {alpha:g}")


def test_a_run_the_history_cannot_record_keeps_its_status_and_says_so(tmp_path):
    (tmp_path / "runs").mkdir()
    with sqlite3.connect(tmp_path / "runs" / "history.sqlite") as connection:
        connection.execute("PRAGMA user_version = 7")  # a history this harness cannot read
    result = run(VALID, tmp_path)
    assert result.status == "passed"
    stored = json.loads((result.run_dir / "results.json").read_text())
    assert stored["status"] == "passed" and any(
        w.startswith("the run was not recorded in the run history: the run history ") and "schema version 7" in w
        for w in stored["warnings"])
