"""Issue 25's leftovers: indicator values with meaning and unit, criteria thresholds with units, the MRI noise
reference of the limitations, and the results id in the run history."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from baseline_runs import load, write_run
from synthetic_run import write_synthetic_run

from harness.cli.main import main
from harness.plan.metrics import COUNT, EPSILON, RATE, SCORE
from harness.report.load import load_report
from harness.report.sections import criteria, indicators, limitations
from harness.results.history import list_runs, record_run
from harness.results.model import IndicatorCheck
from harness.storage.hashing import file_sha256


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_report(write_synthetic_run(tmp_path_factory.mktemp("units") / "run", n_test=30,
                                                examples=False))


# -- 1. indicator values ---------------------------------------------------------------------------------------

def test_an_indicator_value_states_what_it_is_and_on_how_many_images():
    check = IndicatorCheck("unbounded_budget", "", True, 0.028, 0.05, "", quantity="accuracy under the unbounded "
                           "attacks", on_subset=True)
    assert indicators.value_text(check, 32) == "accuracy under the unbounded attacks 0.028 on 32 images"
    again = IndicatorCheck.from_json(check.to_json())
    assert (again.quantity, again.on_subset) == ("accuracy under the unbounded attacks", True)
    over_results = IndicatorCheck("monotone", "", True, 0.0, 0.05, "", quantity="largest rise")
    assert indicators.value_text(over_results, 32) == "largest rise 0"  # not measured on the probe subset
    old = IndicatorCheck.from_json({"id": "noise_vs_attack", "passed": True, "value": 0.8063, "threshold": 0.9})
    assert indicators.value_text(old, 16) == "measured value 0.8063"  # results from before: never a bare number
    assert indicators.value_text(IndicatorCheck("x", "", True, None, None, ""), 16) == "n/a (not computed)"


def test_every_indicator_check_names_its_quantity():
    from harness.attacks.indicators import gradients, iterative, monotone, more_iterations, noise, unbounded

    checks = [m.CHECK for m in (gradients, iterative, monotone, more_iterations, noise, unbounded)]
    assert all(c.quantity for c in checks), [c.id for c in checks if not c.quantity]
    entry = noise.CHECK.result(True, 0.8063, 0.9, "detail").to_json()
    assert entry["quantity"] == "fooling rate of random noise" and entry["on_subset"] is True
    assert IndicatorCheck.from_json(entry).quantity == "fooling rate of random noise"


def test_the_report_indicator_table_has_no_bare_number(synthetic):
    built = indicators.build(synthetic)
    values = [c["value"] for m in built["models"] for c in m["checks"]]
    assert values and all(re.match(r"[A-Za-zn]", v) for v in values), values
    assert "accuracy drop under the stronger attacks 0.156 on 16 images" in values


# -- 2. criteria thresholds -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "value", "unit", "change", "written", "expected"), [
    (">=", 0.9, RATE, False, "0.9", "≥ 0.9 (90%)"),
    (">=", 0.656, RATE, False, "0.656", "≥ 0.656 (65.6%)"),
    (">=", -0.05, RATE, True, "-0.05", "≥ -0.05 (-5 percentage points)"),
    ("<=", 0, COUNT, False, "0", "≤ 0 images"),
    ("<=", 1, COUNT, False, "1", "≤ 1 image"),
    (">=", 0.004, EPSILON, False, "0.004 (6 HU)", "≥ 0.004 (6 HU)"),
    (">=", 0.004, EPSILON, False, "0.004", "≥ 0.004 (on the [0,1] pixel scale)"),
    (">=", 0.8, SCORE, False, "0.8", "≥ 0.8"),
])
def test_a_threshold_states_its_direction_and_unit(op, value, unit, change, written, expected):
    assert criteria.threshold_text(op, value, unit, change, written) == expected


def test_the_report_criteria_thresholds_carry_units(synthetic):
    rows = criteria.build(synthetic)["rows"]
    rates = [r["threshold"] for r, c in zip(rows, synthetic.run.criteria, strict=True)
             if c.metric.endswith("accuracy") and c.model != "change"]
    assert rates and all(t.endswith("%)") and t[0] in "≥≤" for t in rates), rates


# -- 3. the noise reference of the limitations -------------------------------------------------------------------

def _eps_report(modality, native=None, cutoff=0.016):
    return SimpleNamespace(cutoff=cutoff, native=native, modality=modality, native_text=lambda e: "x",
                           native_note=lambda: "note")


def test_the_limitations_relate_eps_to_mri_noise():
    text = limitations.epsilon_limits(_eps_report("MRI"))
    assert "1.6% of the images' [0,1] intensity range" in text and "SNR of roughly 20–40" in text
    assert "2.5–5% of the white-matter signal" in text and "order of magnitude from MRI practice" in text
    assert "the attack is smaller than that noise" in text
    assert "comparable to or larger" in limitations.epsilon_limits(_eps_report("MRI", cutoff=0.06))


def test_the_limitations_say_plainly_when_the_modality_has_no_reference():
    assert "knows no reference noise level for US images" in limitations.epsilon_limits(_eps_report("US"))
    native = SimpleNamespace(per_unit=255.0, unit="grey levels")
    assert "knows no reference noise level for MG images" in limitations.epsilon_limits(_eps_report("MG", native))
    assert "modality not stated" in limitations.epsilon_limits(_eps_report(None, native))
    ct = SimpleNamespace(per_unit=1500.0, unit="HU")
    assert "σ 10–40 HU" in limitations.epsilon_limits(_eps_report("CT", ct))


# -- 4. the results id in the run history ------------------------------------------------------------------------

def test_the_history_records_the_results_id_and_harness_runs_shows_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    run_dir = write_run(runs / "plan-20260101-000000-bbbbbbbb")
    record_run(runs, load(run_dir))
    (entry,) = list_runs(runs)
    digest = file_sha256(run_dir / "results.json")
    assert entry.results_sha256 == digest == entry.metrics["results_sha256"]
    assert main(["runs", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "results id" in out and digest[:8] in out
    assert main(["runs", "--out", str(runs), "--json"]) == 0
    assert f'"results_sha256": "{digest}"' in capsys.readouterr().out


def test_a_history_entry_recorded_before_the_results_id_still_reads(tmp_path):
    import json
    import sqlite3

    runs = tmp_path / "runs"
    record_run(runs, load(write_run(runs / "plan-1")))
    with sqlite3.connect(runs / "history.sqlite") as connection:  # as an older harness wrote it: no results id
        metrics = json.loads(connection.execute("SELECT metrics FROM runs").fetchone()[0])
        metrics.pop("results_sha256")
        connection.execute("UPDATE runs SET metrics = ?", [json.dumps(metrics)])
    (entry,) = list_runs(runs)
    assert entry.results_sha256 is None and entry.passed
