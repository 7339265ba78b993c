"""Volumes end to end (issue 27): a tiny 3-D CT plan through the CLI: training on N×C×D×H×W, attacks with the
bound check, minimal ε, indicators, 3-D corruptions, a manifest with input_shape [C, D, H, W] and voxel spacing,
and a report whose examples are orthogonal planes with an amplified |δ| MIP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import PLANS

from harness.cli import main
from harness.results.view import RunResults

TINY = PLANS / "tiny_volumes.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    code = main(["run", str(TINY), "--out", str(out), "--cache-dir", str(tmp_path_factory.mktemp("cache")),
                 "--threads", "1", "--no-progress", "--quiet"])
    assert code == 0
    (directory,) = [p for p in out.iterdir() if p.is_dir()]
    return directory


def test_manifest_records_the_volume_shape_spacing_and_memory_per_batch(run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset"]["input_shape"] == [1, 16, 16, 16]
    assert manifest["dataset"]["voxel_spacing_mm"] == [2.0, 2.0, 2.0]
    assert manifest["batch_size"]["requested"] == "auto" and manifest["batch_size"]["used"] >= 1
    assert manifest["batch_size"]["input_mib_per_batch"] > 0
    assert manifest["corruptions"]["context"]["voxel_spacing_mm"] == [2.0, 2.0, 2.0]


def test_attacks_minimal_epsilon_indicators_and_corruptions_ran_on_volumes(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    naive = results["models"]["naive"]
    pgd = {p["epsilon"]: p for p in naive["attacks"]["pgd_linf"]["points"]}
    assert pgd[0.004]["epsilon_native"] == "6 HU" and pgd[0.004]["bound_violations"] == 0
    assert naive["attacks"]["fmn_linf"]["kind"] == "minimal"
    assert naive["indicators"]["checks"]
    assert set(naive["corruptions"]) == {"ct_noise", "ct_blur", "ct_ring", "slice_thickness"}
    assert [len(c["points"]) for c in naive["corruptions"].values()] == [5, 5, 5, 4]
    assert RunResults.load(run_dir).status in ("passed", "failed")


def test_report_shows_orthogonal_planes_the_delta_mip_and_the_voxel_spacing(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "three orthogonal mid-planes through the ROI centre" in html
    assert re.search(r"maximum-intensity projection of \|adversarial − clean\|.*amplified ×\d", html)
    assert "C × D × H × W" in html and "2 × 2 × 2 mm (D × H × W)" in html
    assert (run_dir / "report.pdf").stat().st_size > 0
