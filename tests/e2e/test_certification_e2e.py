"""Certification end to end: a tiny CT plan (32×32 phantom, a plain and a noise-trained model, σ 0.12 and 0.25,
n = 100) through the CLI, the properties every certified curve must have, the report section, and the ART
benchmark when ART is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import PLANS

from harness.results.certification import NOISE_TRAINED, PLAIN
from harness.results.view import RunResults

pytestmark = pytest.mark.slow
TINY = PLANS / "tiny_certification.yaml"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    out = tmp_path_factory.mktemp("runs")
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(TINY), "--out", str(out), "--threads", "1",
                           "--no-progress"], cwd=out, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "ε 0.008 (L∞) is covered by the L2 radius ε·√d = 0.008·√1024 = 0.256" in done.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return RunResults.load(run_dir)


def test_certified_accuracy_is_non_increasing_and_never_above_the_smoothed_clean_accuracy(tiny_run):
    for role in ("naive", "hardened"):
        result = tiny_run.document.models[role].certification
        assert result is not None and result.n_images == 24 and result.dimension == 1024
        for found in result.sigmas:
            radii = [p.radius for p in found.points]
            assert len([r for r in radii if r > 0]) >= 3 and max(radii) >= 0.256
            values = [p.certified_accuracy for p in found.points]
            assert all(a >= b for a, b in zip(values, values[1:], strict=False))
            assert max(values) <= found.smoothed_accuracy
            assert all(p.intervals["certified_accuracy"].method == "wilson" for p in found.points)
            assert found.find(epsilon=0.008).radius == pytest.approx(0.256)
    naive, hardened = (tiny_run.document.models[r].certification for r in ("naive", "hardened"))
    assert (naive.model_kind, hardened.model_kind, hardened.training_sigma) == (PLAIN, NOISE_TRAINED, 0.25)

    def best(result):
        return max(s.find(epsilon=0.008).certified_accuracy for s in result.sigmas)

    assert best(hardened) > best(naive)  # noise training pays off at r = 0.256


def test_the_report_explains_the_guarantee_for_the_smoothed_classifier(tiny_run):
    html = (tiny_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "Certified robustness (randomized smoothing)" in html
    assert "no L2 perturbation of norm less than R changes the prediction of" in html
    assert "noise-trained (Gaussian noise augmentation at σ = 0.25)" in html
    assert "ε 0.008 (12 HU) → r = 0.256" in html
    assert "Training with noise made the smoothed classifier both accurate and certifiable." in html
    assert (tiny_run.run_dir / "certification_samples.csv").read_text().count("\n") == 1 + 2 * 2 * 24


def test_the_art_benchmark_agrees_with_the_harness():
    pytest.importorskip("art", reason="ART is a bench-only install (pip install adversarial-robustness-toolbox)")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "certification_art.py"), "--images", "6",
                           "--n", "400"], capture_output=True, text=True, check=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| linear")]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    ours, theirs, exact = float(cells[4]), float(cells[5]), float(cells[7])
    assert ours < exact and theirs < exact and abs(ours - theirs) < 0.05
