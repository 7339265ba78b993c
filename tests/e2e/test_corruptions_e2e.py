"""Corruptions end to end: a tiny CT plan with built-in corruptions for a naive and a hardened model through the CLI
(results, report, resume), and corruption criteria as pytest gates (ids, failure lines, node-id selection)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_plugins import DARKEN_GATES_SECTION
from support import PLANS
from test_pytest_plugin import PLAN, gate_dir, run_dirs  # noqa: F401 - gate_dir is a fixture

from harness.results.view import RunResults

pytest_plugins = ["pytester"]
TINY = PLANS / "tiny_corruptions.yaml"


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          env=None, check=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    out = tmp_path_factory.mktemp("runs")
    done = _harness("run", str(TINY), "--out", str(out), "--threads", "1", "--no-progress", cwd=out)
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return RunResults.load(run_dir)


def test_both_models_are_judged_on_every_corruption_and_severity(tiny_run):
    for role in ("naive", "hardened"):
        assert sorted(tiny_run.corruptions(role)) == ["ct_blur", "ct_noise", "ct_quantum_noise", "jpeg"]
        assert [p.severity for p in tiny_run.corruption("ct_noise", role).points] == [1, 3, 5]
        assert tiny_run.corruption("ct_blur", role).unit == "mm FWHM"
        assert tiny_run.model(role).mean_corruption_error is not None
    noise = tiny_run.corruption_point("ct_noise", 5)
    assert (noise.value, noise.name, noise.n) == (90.0, "severe", tiny_run.dataset.n_test)
    context = tiny_run.manifest["corruptions"]["context"]
    assert context["modality"] == "CT" and context["native_offset"] == -1350.0
    assert context["pixel_spacing_mm"] == pytest.approx(1.4)  # nominal 0.7 mm at 64 pixels, image_size 32
    change = tiny_run.criterion("change::ct_blur[severity=5]::accuracy>=-1.00")
    assert change.measured == pytest.approx(tiny_run.corruption_point("ct_blur", 5, "hardened").accuracy
                                            - tiny_run.corruption_point("ct_blur", 5).accuracy)


def test_report_has_the_profile_corruption_pages_and_native_unit_captions(tiny_run):
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext (poppler-utils) is needed; install.sh installs it"
    text = subprocess.run([pdftotext, "-layout", str(tiny_run.run_dir / "report.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "2. Robustness profile" in text and "Hardened against naive" in text
    assert "hardening by iterative_adversarial_training changed accuracy by" in " ".join(text.split())
    reading_order = " ".join(subprocess.run([pdftotext, str(tiny_run.run_dir / "report.pdf"), "-"], check=True,
                                            capture_output=True, text=True).stdout.split())
    for caption in ("12 HU (σ)", "43 HU (σ at water)", "4 mm FWHM", "60 JPEG quality"):  # captions may wrap
        assert caption in reading_order, caption


def test_an_interrupted_run_resumes_to_the_same_corruption_results(tiny_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run.run_dir, partial)
    results = json.loads((partial / "results.json").read_text())
    del results["models"]["hardened"]["corruptions"]  # as if stopped during the hardened model's corruptions
    (partial / "results.json").write_text(json.dumps(results))
    checkpoint = partial / "checkpoints" / "corruptions" / "hardened__ct_blur.npz"
    checkpoint.unlink()
    done = _harness("run", str(TINY), "--resume", str(partial), "--threads", "1", "--no-progress", "--no-report",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    resumed = RunResults.load(partial)
    assert resumed.document.models == tiny_run.document.models
    assert (partial / "corruption_samples.csv").read_text() == \
        (tiny_run.run_dir / "corruption_samples.csv").read_text()


GATES = PLAN.replace("name: toy_plan", "name: corruption_gates") + DARKEN_GATES_SECTION


def test_corruption_criteria_are_pytest_gates(gate_dir: pytest.Pytester) -> None:  # noqa: F811
    (gate_dir.path / "gates.yaml").write_text(GATES)
    collected = gate_dir.runpytest_subprocess("gates.yaml", "--collect-only", "-q")
    assert [line for line in collected.stdout.lines if line.startswith("gates.yaml::")][4:] == [
        "gates.yaml::darken[severity=3]::accuracy>=0.50",
        "gates.yaml::any_corruption[severity=4]::relative_drop<=0.05",
        "gates.yaml::mean_corruption_error<=100.00"]
    result = gate_dir.runpytest_subprocess("gates.yaml", "--harness-out", "out")
    (run_dir,) = run_dirs(gate_dir.path / "out")
    run = RunResults.load(run_dir)
    drops = {cid: run.corruption_point(cid, 4).relative_drop for cid in ("darken", "darken_steady")}
    worst = max(drops, key=drops.__getitem__)
    assert (f"any_corruption[severity=4]::relative_drop<=0.05: measured {drops[worst]:.3f} (worst of 2 corruptions: "
            f"{worst}) > 0.05 (run directory: out/{run_dir.name})") in result.stdout.lines
    assert ("mean_corruption_error<=100.00: not measured (undefined on this data); required <= 100.00 "
            f"(run directory: out/{run_dir.name})") in result.stdout.lines  # the clean error is 0
    passed = sum(c.passed for c in run.criteria)
    result.assert_outcomes(passed=passed, failed=len(run.criteria) - passed)
    one = gate_dir.runpytest_subprocess("gates.yaml::darken[severity=3]::accuracy>=0.50", "--harness-out", "out2")
    selected = run.criterion("darken[severity=3]::accuracy>=0.50").passed  # judged on its one-sided lower bound
    one.assert_outcomes(passed=int(selected), failed=1 - int(selected))  # that criterion alone ran
