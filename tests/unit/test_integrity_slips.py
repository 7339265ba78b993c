"""Issue 29, item 5: a failed baseline is refused unless `allow_failed: true` (and then the report says so); no
sample-size warning about subgroups for a criterion that is not subgrouped."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_plan import VALID
from test_regression_gates import GATE_LINE, gates, plan_of, run

from harness.errors import PlanError
from harness.plan.criteria import Criterion
from harness.report.load import load_report
from harness.report.sections import baselines as baselines_section
from harness.results.baselines import check_baselines
from harness.results.sample_size import undecidable_warnings


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("failed")
    approved = run(VALID, base).run_dir
    raw = json.loads((approved / "results.json").read_text())
    failed = shutil.copytree(approved, base / "failed-run")
    (failed / "results.json").write_text(json.dumps({**raw, "status": "failed",
                                                     "verdict": {**raw["verdict"], "passed": False}}))
    return failed


def test_a_failed_baseline_is_refused_naming_the_way_to_accept_it(failed_run):
    with pytest.raises(PlanError) as caught:
        check_baselines(plan_of(gates(f"{{metric: clean_accuracy, baseline: {failed_run}, max_drop: 0.02}}"),
                                failed_run.parent))
    line = caught.value.one_line()
    assert line.startswith(f"plan.yaml:{GATE_LINE}, key 'acceptance.2.baseline': baseline ")
    assert "did not pass (its verdict: failed), so it is not an approved run" in line
    assert "allow_failed: true" in line


def test_a_failed_baseline_accepted_with_allow_failed_is_reported(failed_run):
    result = run(gates(f"{{metric: clean_accuracy, baseline: {{run: {failed_run}, allow_failed: true}}, "
                       "max_drop: 0.02}"), failed_run.parent)
    gate = result.criteria[2]
    assert gate.baseline.allow_failed and gate.baseline.run.passed is False
    assert any("a run that did not pass (accepted by allow_failed: true)" in w for w in result.warnings)
    stored = json.loads((result.run_dir / "results.json").read_text())["criteria"][2]["baseline"]
    assert stored["allow_failed"] is True
    section = baselines_section.build(load_report(result.run_dir))
    assert section["runs"][0]["verdict"].startswith("FAIL: this approved run did not pass; the plan accepts it")
    with pytest.raises(PlanError, match="expected {run: PATH, allow_failed: true|false}"):
        plan_of(gates(f"{{metric: clean_accuracy, baseline: {{run: {failed_run}, allow: true}}, max_drop: 0.02}}"),
                failed_run.parent)


def test_no_subgroup_sample_size_warning_for_a_criterion_that_is_not_subgrouped():
    labels = np.array([1] * 40 + [0] * 40)
    metadata = {"tumour": ["glioma"] * 40 + ["notumor"] * 40}  # notumor has no positives
    plain = Criterion(id="sens", metric="clean_sensitivity", op=">=", threshold=0.8, model="naive")
    assert undecidable_warnings([plain], "wilson", 0.95, labels, 1, metadata) == []
    worst = Criterion(id="sens_worst", metric="clean_sensitivity", op=">=", threshold=0.8, model="naive",
                      subgroup="worst")
    warned = undecidable_warnings([worst], "wilson", 0.95, labels, 1, metadata)
    assert all("notumor" not in w for w in warned)  # a subgroup without positives has no sensitivity to decide
