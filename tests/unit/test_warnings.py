"""Warnings from one list of checks reach results.json, the console (also when a run stops) and the report."""

from __future__ import annotations

import json

import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.cli.closing import closing_lines
from harness.cli.main import main
from harness.errors import DataError
from harness.plan.schema import load_plan_text
from harness.report.load import load_report
from harness.report.sections import warnings as warnings_section
from harness.results import warnings
from harness.results.manifest import Manifest
from harness.results.model import CleanMetrics, DatasetSummary, ModelResult, PlanRef, ResultsDocument
from harness.run.runner import RunConfig, Runner

MANIFEST = {"dataset": {"provenance": {
    "counts": {"test": {"benign": 1, "malignant": 1}},
    "skipped": [{"file": f"file {k:08x}", "reason": "not a DICOM file"} for k in range(5)]},
    "leakage": {"summary": "data leakage across splits: 2 test images have an exact duplicate in train"}}}


def tiny_document(labels_present=(0, 1)) -> ResultsDocument:
    rows = [[1, 0] if 0 in labels_present else [0, 0], [0, 1] if 1 in labels_present else [0, 0]]
    one_class = len(labels_present) == 1
    clean = CleanMetrics(accuracy=1.0, sensitivity=None if 1 not in labels_present else 1.0,
                         specificity=None if 0 not in labels_present else 1.0, roc_auc=None if one_class else 0.0,
                         n=len(labels_present), confusion_matrix=rows)
    return ResultsDocument(plan=PlanRef("p", "0" * 64), dataset=DatasetSummary(
        "toy", ("benign", "malignant"), 1, None, len(labels_present))).with_model(
        "naive", ModelResult(weights_sha256=None, clean=clean))


def test_each_check_words_what_the_data_show():
    document = warnings.collect(tiny_document(), MANIFEST)
    skipped, small, leak = document.warnings
    assert skipped.startswith("data: 5 files were skipped as unusable (on_error: skip) and are in no split: "
                              "file 00000000: not a DICOM file; file 00000001")
    assert skipped.endswith("; and 2 more (all are listed in the manifest and the report)")
    assert small == ("data: the test split is small: 2 images (benign 1, malignant 1); one image moves accuracy by "
                     "50 percentage points and a per-class rate by up to 100, so a criterion can pass or fail by "
                     "chance (warned below 30 test images or 10 of a class)")
    assert leak == "data: data leakage across splits: 2 test images have an exact duplicate in train"


def test_undefined_metrics_name_the_missing_class():
    document = warnings.collect(tiny_document(labels_present=(0,)), {})
    assert ("naive: clean sensitivity, ROC AUC cannot be computed: the test split has no 'malignant' images; "
            "criteria on them count as failed") in document.warnings


def test_collect_never_repeats_a_message():
    once = warnings.collect(tiny_document(), MANIFEST)
    assert warnings.collect(once, MANIFEST) == once
    extra = warnings.collect(once, MANIFEST, (*warnings.CHECKS, lambda results, manifest: ["another", "another"]))
    assert extra.warnings == (*once.warnings, "another")


def toy_runner(tmp_path, overrides=()):
    registry = fake_registry()
    plan = load_plan_text(VALID, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None))


def test_a_run_records_warnings_in_results_and_shows_them_on_the_console_and_in_the_report(tmp_path):
    result = toy_runner(tmp_path, ["dataset.n=12"]).run()  # 4 test images
    small = next(w for w in result.warnings if w.startswith("data: the test split is small: 4 images"))
    assert small in json.loads((result.run_dir / "results.json").read_text())["warnings"]
    assert f"harness: warning: {small}" in closing_lines(result)
    assert small in warnings_section.build(load_report(result.run_dir))["warnings"]


def test_warnings_found_before_an_error_are_printed_before_it(tmp_path, monkeypatch, capsys):
    def failing_run(self):
        self.results = warnings.collect(tiny_document(), MANIFEST)  # what the runner had found when it stopped
        raise DataError("simulated")

    monkeypatch.setattr(Runner, "run", failing_run)
    monkeypatch.setattr("harness.registry.manager.default_registry", fake_registry)
    plan = tmp_path / "plan.yaml"
    plan.write_text(VALID)
    assert main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-report"]) == 2
    printed = capsys.readouterr()
    assert "harness: warning: data: 5 files were skipped" in printed.out
    assert printed.err.strip() == "harness: error: simulated"


@pytest.mark.parametrize("check", warnings.CHECKS)
def test_every_check_is_quiet_on_an_empty_run(check):
    assert list(check(ResultsDocument(plan=PlanRef("p", "0" * 64)), Manifest())) == []
