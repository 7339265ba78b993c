"""On the CT phantom: intervals on every proportion in results.json and the report, and a `bound: lower` criterion
that fails where the same criterion on the point estimate passes, with the bound in pytest's failure line."""

from __future__ import annotations

import json

import pytest
from support import PLANS

from harness.report import render_report
from harness.results.view import RunResults

pytest_plugins = ["pytester"]

PROPORTIONS = {"clean": ("accuracy", "sensitivity", "specificity"),
               "point": ("robust_accuracy", "robust_sensitivity", "robust_specificity", "attack_success_rate")}
CRITERIA = """acceptance:
  - metric: clean_accuracy
    min: 0.6
    judge: estimate
  - metric: clean_accuracy
    min: 0.6
    bound: lower
"""


def test_bound_flips_pass_to_fail_on_the_phantom(pytester: pytest.Pytester) -> None:
    plan = (PLANS / "tiny_phantom.yaml").read_text().split("acceptance:")[0] + CRITERIA
    (pytester.path / "phantom.yaml").write_text(plan)
    result = pytester.runpytest_subprocess("phantom.yaml", "--harness-out", "out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    run_dir = next(p for p in (pytester.path / "out").iterdir() if p.is_dir())  # beside it: history.sqlite
    run = RunResults.load(run_dir)
    point, lower = run.criteria
    assert point.passed and not lower.passed and point.measured == lower.measured >= 0.6
    assert lower.bound_value < 0.6 and lower.confidence == 0.95
    failure = [line for line in result.stdout.lines if line.startswith("lower(clean_accuracy)>=0.60: measured")]
    assert failure and f"lower 95% bound {lower.bound_value:.3f}" in failure[0] and "< 0.60" in failure[0]

    raw = json.loads((run_dir / "results.json").read_text())
    naive = raw["models"]["naive"]
    for name in PROPORTIONS["clean"]:
        interval = naive["clean"]["intervals"][name]
        assert interval["low"] <= naive["clean"][name] <= interval["high"] and interval["method"] == "wilson"
    assert naive["clean"]["intervals"]["roc_auc"]["method"] == "delong"
    for attack in naive["attacks"].values():
        for point_json in attack["points"]:
            for name in PROPORTIONS["point"]:
                if point_json[name] is not None:
                    interval = point_json["intervals"][name]
                    assert interval["low"] <= point_json[name] <= interval["high"]
    assert raw["statistics"]["cluster_bootstrap"]["n_groups"] > 0  # phantom patients have 1-3 nodules

    render_report(run_dir)
    html = (run_dir / "report.html").read_text()
    clean = run.model("naive").clean.intervals["accuracy"].clustered
    assert f"{100 * clean.low:.1f}%–{100 * clean.high:.1f}%" in html
    assert "How to read the intervals" in html and "lower 95% bound" in html
