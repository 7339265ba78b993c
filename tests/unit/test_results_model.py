"""The typed results model: JSON round trips, reading a v1 run directory, samples.csv, and RunResults."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plan.epsilons import EpsilonGrid
from harness.results.model import (
    AttackResult,
    CleanMetrics,
    IndicatorCheck,
    Indicators,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
)
from harness.results.samples import SampleOutcome, read_samples, samples_csv
from harness.results.view import RunResults
from harness.storage.atomic import write_json_atomic

REFERENCE = Path(__file__).parent / "data" / "ct_nodule_v1"  # the default plan's run, written before the model


def reference() -> dict:
    return json.loads((REFERENCE / "results.json").read_text())


def test_reference_results_round_trip_byte_identical(tmp_path):
    raw = reference()  # schema v1: a finished run's status was 'complete'; v2 says passed (exit 0) or failed
    document = ResultsDocument.from_json(raw)
    assert ResultsDocument.from_json(document.to_json()) == document
    assert document.status == "passed" and document.exit_code == 0
    assert document.to_json() == {**raw, "schema_version": 2, "status": "passed", "exit_code": 0}
    write_json_atomic(tmp_path / "results.json", document.to_json())
    write_json_atomic(tmp_path / "again.json", ResultsDocument.from_json(document.to_json()).to_json())
    assert (tmp_path / "results.json").read_bytes() == (tmp_path / "again.json").read_bytes()


def test_reference_results_read_typed():
    document = ResultsDocument.from_json(reference())
    naive = document.model("naive")
    assert document.status == "passed" and document.plan.name == "ct_nodule"
    assert document.verdict == Verdict(passed=True, n_passed=4, n_criteria=4)
    assert naive.clean.n == 122 and naive.clean.confusion_matrix == ((55, 3), (10, 54))
    assert list(naive.attacks) == ["bim_linf", "fgsm", "fmn_linf", "pgd_linf"]  # as results.json lists them
    pgd = naive.attack("pgd_linf")
    assert pgd.grid == EpsilonGrid.of([0.0001, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.02])
    assert pgd.point(0.004).robust_accuracy == pytest.approx(0.6557, abs=1e-4)
    assert pgd.point(0.004).epsilon_native == "6 HU" and pgd.min_epsilon is None
    fmn = naive.attack("fmn_linf").min_epsilon
    assert fmn is not None and fmn.median == fmn.p50 == document.criteria[3].measured
    assert naive.indicators is not None and naive.indicators.credible and len(naive.indicators.checks) == 6
    assert document.dataset is not None and document.dataset.native_units.describe(0.004) == "6 HU"


def test_model_is_read_only():
    document = ResultsDocument.from_json(reference())
    with pytest.raises(FrozenInstanceError):
        document.status = "tampered"  # type: ignore[misc]
    with pytest.raises(TypeError):
        document.models["x"] = document.model("naive")  # type: ignore[index]
    with pytest.raises(TypeError):
        document.model("naive").attack("pgd_linf").params["steps"] = 1  # type: ignore[index]


def test_missing_pieces_name_what_exists():
    naive = ResultsDocument.from_json(reference()).model("naive")
    with pytest.raises(KeyError, match=r"attack 'nope' was not run on the naive model \(run: bim_linf, fgsm"):
        naive.attack("nope", "naive")
    with pytest.raises(KeyError, match=r"did not run at epsilon 0.003 \(grid: 0.0001, 0.0005, 0.001"):
        naive.attack("pgd_linf").point(0.003)
    with pytest.raises(KeyError, match=r"model 'hardened' was not evaluated in this run \(evaluated: naive\)"):
        ResultsDocument.from_json(reference()).model("hardened")


def test_optional_fields_stay_out_of_the_json_until_set():
    check = IndicatorCheck("gradients", "finite gradients", True, 1.0, 0.9, "0 of 32")
    assert set(check.to_json()) == {"id", "description", "passed", "value", "threshold", "detail"}
    explained = replace(check, explanation="90% of inputs need a usable gradient", flipped_by="pgd_linf at ε=1")
    assert explained.to_json()["explanation"].startswith("90%") and explained.to_json()["flipped_by"]
    assert IndicatorCheck.from_json(explained.to_json()) == explained
    model = ModelResult("ab", CleanMetrics(1.0, None, 1.0, None, 3, [[3, 0], [0, 0]]))
    assert "indicators" not in model.to_json()
    indicators = Indicators(False, (check,), ("noise",), 32, "subset")
    assert ModelResult.from_json(replace(model, indicators=indicators).to_json()).indicators == indicators


def test_a_running_document_round_trips():
    document = ResultsDocument(PlanRef("p", "0" * 64))
    assert document.to_json()["dataset"] == {} and document.to_json()["verdict"] is None
    assert "defence" not in document.to_json()
    assert ResultsDocument.from_json(document.to_json()) == document


@pytest.mark.parametrize(("change", "message"), [({"schema": "other"}, "not a harness results document"),
                                                 ({"schema_version": 99}, "schema version 99")])
def test_other_documents_and_versions_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        ResultsDocument.from_json({**reference(), **change})


def test_reference_samples_round_trip_byte_identical():
    grid = ResultsDocument.from_json(reference()).model("naive").attack("pgd_linf").grid
    samples = read_samples(REFERENCE / "samples.csv", grid)
    assert len(samples) == 4 * 122
    assert samples_csv(list(samples), grid) == (REFERENCE / "samples.csv").read_text()
    fmn = [s for s in samples if s.attack == "fmn_linf"]
    assert all(s.min_epsilon is not None for s in fmn)
    first = samples[1]
    assert first.fooled_at(0.001) and not first.fooled_at(0.0005)


def test_sample_rows_keep_infinite_and_missing_minimal_epsilons():
    hit = SampleOutcome("naive", "fmn", "s1", 1, 0, False, {0.004: True}, math.inf)
    fixed = SampleOutcome("naive", "pgd", "s2", 0, 0, True, {0.002: False}, None)
    text = samples_csv([hit, fixed], EpsilonGrid.of([0.002, 0.004]))
    assert text.splitlines()[1:] == ["naive,fmn,s1,1,0,0,,1,inf", "naive,pgd,s2,0,0,1,0,,"]
    with pytest.raises(KeyError, match="did not run at epsilon 0.004"):
        fixed.fooled_at(0.004)


def test_run_results_load_and_errors(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        RunResults.load(tmp_path / "nope")
    with pytest.raises(HarnessError, match="results.json not found"):
        RunResults.load(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema": "harness.results", "schema_version": 1}))
    with pytest.raises(HarnessError, match="not a valid harness results document"):
        RunResults.load(tmp_path)
    for name in ("results.json", "samples.csv"):
        (tmp_path / name).write_bytes((REFERENCE / name).read_bytes())
    run = RunResults.load(tmp_path)
    assert run.manifest == {} and run.passed and run.robust_accuracy("fgsm", 0.004) == run.point("fgsm", 0.004,
                                                                                                  "naive").robust_accuracy
    assert run.min_epsilon("fmn_linf").n == 122 and len(run.samples_for("fmn_linf")) == 122
    assert run.raw["models"]["naive"]["clean"]["n"] == 122
    with pytest.raises(HarnessError, match="manifest.json not found"):
        RunResults.load(tmp_path, require_manifest=True)


def test_attack_result_from_outcomes_matches_per_sample_counts():
    from harness.results.attack_outcome import AttackOutcome
    from harness.results.build import attack_result

    labels = np.array([0, 0, 1, 1, 1])
    clean_correct = np.array([True, True, True, False, True])
    success = np.array([[False, True, False, True, False], [True, True, True, True, True]])
    outcome = AttackOutcome([0.002, 0.004], success, np.array([0, 2]), np.array([0.003, 0.001, 0.004, 0.0, np.inf]))
    result = attack_result("pgd", "linf", "minimal", {"steps": 3}, outcome, labels, clean_correct, 1, None)
    low, high = result.points
    assert (low.robust_accuracy, low.robust_sensitivity, low.robust_specificity) == (3 / 5, 2 / 3, 1 / 2)
    assert low.attack_success_rate == 1 / 4 and high.attack_success_rate == 1.0 and high.bound_violations == 2
    assert result.min_epsilon is not None and result.min_epsilon.n_not_found == 1
    assert AttackResult.from_json(result.to_json()) == result
