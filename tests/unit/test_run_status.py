"""A run's status: running → passed | failed | error | interrupted, recorded atomically with the exit code, the stage
and the error line; a run directory nobody runs in reads interrupted; the report says how a run stopped."""

from __future__ import annotations

import json

import fake_plugins
import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.errors import AttackError, DataError
from harness.plan.schema import load_plan_text
from harness.report.load import load_report
from harness.report.sections import cover, summary
from harness.results import status
from harness.results.model import PlanRef, ResultsDocument, Verdict
from harness.results.view import RunResults
from harness.run.runner import RunConfig, Runner
from harness.storage.filelock import file_lock
from harness.storage.rundir import run_in_progress, run_lock_path


def runner(tmp_path, overrides=()):
    registry = fake_registry()
    plan = load_plan_text(VALID, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None))


def stopped(tmp_path, error, overrides=()):
    """Run until `error`; the runner (its run directory and results) and the two JSON files it wrote."""
    run = runner(tmp_path, overrides)
    with pytest.raises(error):
        run.run()
    read = json.loads((run.run_dir / "results.json").read_text())
    return run, read, json.loads((run.run_dir / "manifest.json").read_text())


def test_the_state_machine_allows_only_its_transitions():
    for final in status.FINAL:
        status.check_transition(status.RUNNING, final)
    status.check_transition(status.PASSED, status.ERROR)  # e.g. the report failed after the verdict
    for current, new in ((status.ERROR, status.PASSED), (status.INTERRUPTED, status.FAILED),
                         (status.PASSED, status.FAILED), (status.FAILED, status.RUNNING)):
        with pytest.raises(ValueError, match=f"cannot go from '{current}' to '{new}'"):
            status.check_transition(current, new)
    document = ResultsDocument(plan=PlanRef("p", "0" * 64))
    with pytest.raises(ValueError, match="without a verdict"):
        document.finished()
    assert document.__class__(plan=document.plan, verdict=Verdict(False, 1, 2)).finished().exit_code == 1


def test_a_passing_run_ends_passed_with_exit_code_0_in_results_and_manifest(tmp_path):
    result = runner(tmp_path).run()
    results = json.loads((result.run_dir / "results.json").read_text())
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert (results["status"], results["exit_code"], "stage" in results, "error" in results) == ("passed", 0, False,
                                                                                                  False)
    assert manifest["status"] == {"status": "passed", "stage": None, "error": None, "exit_code": 0}
    assert manifest["process"]["pid"] > 0 and manifest["process"]["host"]
    assert RunResults.load(result.run_dir).status == "passed" and not run_in_progress(result.run_dir)
    failing = runner(tmp_path / "f", ["acceptance.1.attack=shift_big", "acceptance.1.epsilon=0.2"]).run()
    assert (failing.status, failing.exit_code) == ("failed", 1)


def test_a_bad_data_run_reads_error_with_its_line_stage_and_exit_code(tmp_path):
    run, results, manifest = stopped(tmp_path, DataError, ["dataset.fail=data"])
    assert results["status"] == "error" and results["exit_code"] == 2 and results["stage"] == "dataset"
    assert results["error"] == "toy data set: simulated unreadable file" and results["verdict"] is None
    assert manifest["status"] == {"status": "error", "stage": "dataset", "exit_code": 2,
                                  "error": "toy data set: simulated unreadable file"}
    view = RunResults.load(run.run_dir)
    assert (view.status, view.stage, view.exit_code) == ("error", "dataset", 2)


def test_an_internal_error_reads_error_with_exit_code_3(tmp_path):
    _, results, _ = stopped(tmp_path, RuntimeError, ["dataset.fail=internal"])
    assert (results["status"], results["exit_code"]) == ("error", 3)
    assert results["error"] == "internal error: RuntimeError: simulated bug"


def test_an_attack_that_fails_records_its_stage(tmp_path, monkeypatch):
    def broken(self, model, images, labels, epsilons, params):
        raise AttackError("shift: simulated failure")

    monkeypatch.setattr(fake_plugins.Shift, "run", broken)
    _, results, _ = stopped(tmp_path, AttackError)
    assert (results["status"], results["stage"], results["exit_code"]) == ("error", "naive:attack:shift", 2)
    assert results["models"]["naive"]["clean"]["accuracy"] == 1.0  # what was measured before is kept


def test_ctrl_c_reads_interrupted_with_exit_code_130(tmp_path, monkeypatch):
    def interrupted(self, model, images, labels, epsilons, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(fake_plugins.Shift, "run", interrupted)
    _, results, _ = stopped(tmp_path, KeyboardInterrupt)
    assert (results["status"], results["stage"], results["exit_code"]) == ("interrupted", "naive:attack:shift", 130)


def test_a_run_nobody_runs_in_reads_interrupted_and_a_held_one_running(tmp_path, monkeypatch):
    def killed(self, model, images, labels, epsilons, params):
        raise SystemExit(9)  # not caught by the runner: nothing is recorded, as with SIGKILL

    monkeypatch.setattr(fake_plugins.Shift, "run", killed)
    run = runner(tmp_path)
    with pytest.raises(SystemExit):
        run.run()
    assert json.loads((run.run_dir / "results.json").read_text())["status"] == "running"
    assert RunResults.load(run.run_dir).status == "interrupted"
    with file_lock(run_lock_path(run.run_dir), timeout=0):  # as the live process holds it
        assert run_in_progress(run.run_dir) and RunResults.load(run.run_dir).status == "running"
    report = load_report(run.run_dir)
    assert report.verdict_word() == ("INTERRUPTED", "none")
    assert cover.build(report)["verdict_detail"].startswith(
        "INTERRUPTED at stage naive:attack:shift (the process ended without recording why, e.g. it was killed)")


def test_the_report_of_a_failed_run_says_error_at_stage_with_the_line(tmp_path):
    run, _, _ = stopped(tmp_path, DataError, ["dataset.fail=data"])
    report = load_report(run.run_dir)
    assert report.verdict_word() == ("ERROR", "fail")
    detail = cover.build(report)["verdict_detail"]
    assert detail == "ERROR at stage dataset: toy data set: simulated unreadable file; no verdict was formed"
    assert "ERROR at stage dataset" in " ".join(summary.build(report)["sentences"])


def test_a_run_directory_in_use_cannot_be_resumed(tmp_path):
    done = runner(tmp_path).run()
    registry = fake_registry()
    plan = load_plan_text(VALID, [], registry=registry, base_dir=tmp_path)
    again = Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None),
                   resume_dir=done.run_dir)
    with file_lock(run_lock_path(done.run_dir), timeout=0), pytest.raises(Exception, match="a harness process is "
                                                                           "running in it now"):
        again.run()
