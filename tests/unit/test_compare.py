"""Comparing two runs: differences per metric, the paired McNemar test, refusals, and `harness compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from baseline_runs import PGD_PARAMS, load, outcomes, write_run

from harness.cli.main import main
from harness.errors import DataError, HarnessError
from harness.plan.metrics import METRICS
from harness.results.compare import compare_runs, decisions_by_sample, paired_test
from harness.stats.paired import exact_mcnemar


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """The harness.stats p-value for `only_a` and `only_b` discordant images."""
    return exact_mcnemar([True] * only_a + [False] * only_b, [False] * only_a + [True] * only_b).p_value


def test_the_paired_test_counts_the_metrics_population_only(tmp_path):
    right_a, fooled = outcomes(20, 16, 6)
    right_b = right_a.copy()
    right_b[[0, 2, 4]] = False  # three negatives (even ids are benign) lost
    right_b[[17, 19]] = True  # two positives gained
    a = load(write_run(tmp_path / "a", right=right_a, fooled=fooled))
    b = load(write_run(tmp_path / "b", right=right_b, fooled=fooled & right_b))
    clean_a, clean_b = decisions_by_sample(a.samples, "naive"), decisions_by_sample(b.samples, "naive")
    accuracy = paired_test(METRICS["clean_accuracy"], clean_a, clean_b, 1)
    sensitivity = paired_test(METRICS["clean_sensitivity"], clean_a, clean_b, 1)
    specificity = paired_test(METRICS["clean_specificity"], clean_a, clean_b, 1)
    assert (accuracy.n_pairs, accuracy.only_a, accuracy.only_b) == (20, 3, 2)
    assert (sensitivity.n_pairs, sensitivity.only_a, sensitivity.only_b) == (10, 0, 2)
    assert (specificity.n_pairs, specificity.only_a, specificity.only_b) == (10, 3, 0)
    assert accuracy.p_value == mcnemar_exact(3, 2) == 1.0 and "McNemar" in accuracy.test
    assert paired_test(METRICS["clean_auc"], clean_a, clean_b, 1) is None  # not a proportion of test images
    robust = decisions_by_sample(a.samples, "naive", "pgd", 0.004)
    assert sum(ok for _, _, ok in robust.values()) == 10  # 16 right, 6 fooled
    robust_b = decisions_by_sample(b.samples, "naive", "pgd", 0.004)
    success = METRICS["attack_success_rate"]  # counts the clean-correct images, which differ: no pairing
    assert paired_test(success, robust, robust_b, 1, "pgd", 0.004) is None
    assert paired_test(success, robust, robust, 1, "pgd", 0.004).n_pairs == 16


def test_runs_are_compared_per_metric_with_paired_tests(tmp_path):
    a = load(write_run(tmp_path / "a", n_right=16, n_fooled=6))
    b = load(write_run(tmp_path / "b", n_right=14, n_fooled=6, weights="bb" * 32, params={**PGD_PARAMS, "steps": 20}))
    comparison = compare_runs(a, b)
    rows = {(r.metric, r.attack, r.epsilon): r for r in comparison.rows}
    clean = rows[("clean_accuracy", None, None)]
    assert (clean.a, clean.b) == (0.8, 0.7) and clean.difference == pytest.approx(-0.1)
    assert (clean.paired.only_a, clean.paired.only_b) == (2, 0) and clean.paired.p_value == mcnemar_exact(2, 0)
    robust = rows[("robust_accuracy", "pgd", 0.004)]
    assert (robust.a, robust.b) == (0.5, 0.4) and (robust.paired.only_a, robust.paired.only_b) == (2, 0)
    assert (robust.paired.attack, robust.paired.epsilon) == ("pgd", 0.004)
    assert rows[("clean_auc", None, None)].paired is None
    assert comparison.n_images == 20 and comparison.b.weights_sha256["naive"] == "bb" * 32
    assert comparison.notes == ("naive: attack pgd ran with other parameters (steps 10 vs 20)",)
    document = comparison.to_json()
    assert document["schema"] == "harness.comparison" and len(document["metrics"]) == len(comparison.rows)
    json.dumps(document, allow_nan=False)


def test_runs_on_different_test_images_are_refused(tmp_path):
    a = load(write_run(tmp_path / "a"))
    other_ids = load(write_run(tmp_path / "b", ids=[f"other{i}" for i in range(20)]))
    with pytest.raises(DataError, match="different test images .20 and 20 sample ids, 0 in common.*salt"):
        compare_runs(a, other_ids)
    fewer = load(write_run(tmp_path / "c", n=18, n_right=14, data="ee" * 32))
    with pytest.raises(DataError, match=r"20 and 18 sample ids, 18 in common\): a paired comparison needs the same "
                                        r"test set$"):
        compare_runs(a, fewer)


def test_unfinished_runs_and_runs_without_samples_are_refused(tmp_path):
    a = load(write_run(tmp_path / "a"))
    with pytest.raises(HarnessError, match="unfinished run .status 'interrupted'.: only a run that passed or failed"):
        compare_runs(a, load(write_run(tmp_path / "b", status="running")))
    (write_run(tmp_path / "c") / "samples.csv").unlink()
    with pytest.raises(HarnessError, match="samples.csv is missing"):
        compare_runs(a, load(tmp_path / "c"))


def test_harness_compare_prints_and_writes_json_and_markdown(tmp_path, capsys):
    a = write_run(tmp_path / "run-a", n_right=16)
    b = write_run(tmp_path / "run-b", n_right=14)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "clean_accuracy" in out and "-10.0 pp" in out and "comparison written to" in out
    written = json.loads((b / "comparisons" / "run-a.json").read_text())
    assert written["a"]["run_dir"] == str(a) and written["n_images"] == 20
    text = (b / "comparisons" / "run-a.md").read_text()
    assert text.startswith("# run-b compared with run-a")
    assert "| clean_accuracy |  |  | 80.0% | 70.0% | -10.0 pp | 2 | 0 | 0.5 |" in text
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "run-a.md").is_file()


def test_harness_compare_refuses_in_one_line_with_exit_2(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", ids=[f"x{i}" for i in range(20)])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("harness: error: ") and "different test images" in err
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (b / "comparisons").exists()


def test_clean_outcomes_are_read_from_any_attack_row(tmp_path):
    run = load(write_run(tmp_path / "a", n_right=3, n=4))
    assert decisions_by_sample(run.samples, "naive") == {"id000": (0, True, True), "id001": (1, True, True),
                                                         "id002": (0, True, True), "id003": (1, False, False)}
    assert decisions_by_sample(run.samples, "hardened") == {}
    assert np.isclose(run.clean_metrics().accuracy, 0.75)
