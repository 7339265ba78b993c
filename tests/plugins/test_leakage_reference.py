"""Leakage checks for external evaluation (issue 29, item 3): `harness fingerprint-data` writes exact and perceptual
signatures of a training split; a test-only folder with planted copies of ../shared/datasets training images is
checked against it (or against the training folder itself) and every planted copy is reported on the cover, in
results.json and the report, and by a `leaked_images` criterion; without a reference the cover says so."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_plugins import Brightness
from model_files import save_torchscript
from PIL import Image
from support import SHARED_DATASETS, require_shared

from harness.cli.main import main
from harness.data.fingerprints import NOT_PROVIDED, read_fingerprint
from harness.errors import PlanError
from harness.plan.schema import load_plan_text

N_PLANTED = 6  # 4 byte copies, 1 re-saved as PNG (pixel-identical), 1 re-encoded JPEG (a near duplicate)

PLAN = """\
harness: 1
name: external
seed: 0
device: cpu
batch_size: 16
dataset: {{plugin: image_folder, path: test_only, split: all_test, image_size: 64, channels: 1}}
model: {{plugin: torchscript, path: model.ts, normalization: none}}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {{enabled: false}}
{leakage}
acceptance:
  - metric: clean_accuracy
    min: 0.0
{criterion}
"""


def mias() -> Path:
    return require_shared(SHARED_DATASETS / "mias_roi_crops")


def rows(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def write_test_only_folder(root: Path, out: Path) -> None:
    """The real test split's images plus N_PLANTED copies of train images, in class folders (tmp_path only)."""
    table = rows(root)
    for row in [r for r in table if r["split"] == "test"]:
        folder = out / ("benign", "malignant")[int(row["label"])]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / row["path"], folder / f"t_{Path(row['path']).name}")
    train = [r for r in table if r["split"] == "train"][::7][:N_PLANTED]
    for k, row in enumerate(train):
        target = out / ("benign", "malignant")[int(row["label"])] / f"planted_{k}"
        if k < 4:
            shutil.copy(root / row["path"], target.with_suffix(".jpg"))
        elif k == 4:
            Image.open(root / row["path"]).save(target.with_suffix(".png"))
        else:
            Image.open(root / row["path"]).save(target.with_suffix(".jpg"), quality=95)


def run(tmp_path: Path, leakage: str, criterion: str = "", report: bool = True) -> tuple[int, Path, str]:
    (tmp_path / "plan.yaml").write_text(PLAN.format(leakage=leakage, criterion=criterion))
    code = main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "runs"), "--cache-dir",
                 str(tmp_path / "cache")] + ([] if report else ["--no-report"]))
    (run_dir,) = (tmp_path / "runs").glob("external*")
    pdf = "" if not report else " ".join(subprocess.run(["pdftotext", str(run_dir / "report.pdf"), "-"],
                                                        capture_output=True, text=True, check=True).stdout.split())
    return code, run_dir, pdf


@pytest.fixture
def external(tmp_path: Path) -> Path:
    write_test_only_folder(mias(), tmp_path / "test_only")
    save_torchscript(Brightness(), torch.rand(2, 1, 64, 64), tmp_path / "model.ts")
    return tmp_path


def test_planted_training_copies_are_found_through_a_fingerprint_file(external: Path, capsys) -> None:
    fp = external / "train.fp"
    assert main(["fingerprint-data", str(mias()), "--out", str(fp), "--split", "train", "--image-size", "64",
                 "--channels", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    fingerprint = read_fingerprint(fp, "train.fp")
    assert len(fingerprint) == sum(r["split"] == "train" for r in rows(mias()))
    assert fingerprint.image_shape == (1, 64, 64) and b"mdb" not in fp.read_bytes()  # no ids or names inside
    code, run_dir, pdf = run(external, "leakage: {reference: train.fp}", "  - metric: leaked_images\n    max: 0")
    results = json.loads((run_dir / "results.json").read_text())
    leak = results["dataset"]["leakage"]
    assert (leak["leaked_images"], leak["exact_duplicates"], leak["near_duplicates"]) == (N_PLANTED, 5, 1)
    assert leak["reference"] == "train.fp" and "thumbnail correlation ≥ 0.998" in leak["method"]
    assert results["models"]["naive"]["leaked_images"] == N_PLANTED
    gate = next(c for c in results["criteria"] if c["metric"] == "leaked_images")
    assert gate["measured"] == N_PLANTED and not gate["passed"] and code == 1
    assert any("training-data leakage: 6 test images duplicate an image of the training data" in w
               for w in results["warnings"])
    assert "Training-data leakage training-data leakage: 6 test images" in pdf
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset"]["leakage"]["training_data"]["leaked_images"] == N_PLANTED


def test_planted_copies_are_found_against_the_training_folder_itself(external: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRAIN_DATA", str(mias()))
    code, run_dir, _ = run(external, "leakage: {reference: '${TRAIN_DATA}', splits: [train]}", report=False)
    leak = json.loads((run_dir / "results.json").read_text())["dataset"]["leakage"]
    assert (leak["leaked_images"], leak["exact_duplicates"], leak["near_duplicates"]) == (N_PLANTED, 5, 1)
    assert leak["reference"] == "${TRAIN_DATA}" and "as loaded correlate" in leak["method"]


def test_without_a_reference_the_cover_says_leakage_was_not_checked(external: Path) -> None:
    code, run_dir, pdf = run(external, "", "  - metric: leaked_images\n    max: 0")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["dataset"]["leakage"]["summary"] == NOT_PROVIDED
    assert NOT_PROVIDED in pdf
    gate = next(c for c in results["criteria"] if c["metric"] == "leaked_images")
    assert gate["measured"] is None and not gate["passed"]


def test_a_leakage_reference_must_exist_and_take_known_keys(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="key 'leakage.reference'.*does not exist"):
        load_plan_text(PLAN.format(leakage="leakage: {reference: nowhere.fp}", criterion=""), base_dir=tmp_path)
    with pytest.raises(PlanError, match="key 'leakage.splits'"):
        load_plan_text(PLAN.format(leakage="leakage: {reference: ., splits: [dev]}", criterion=""),
                       base_dir=tmp_path)
    plan = load_plan_text(PLAN.format(leakage="leakage: {reference: ., check: error}", criterion=""),
                          base_dir=tmp_path)
    assert plan.leakage == "error" and plan.leakage_reference.written == "."


def small_folder(root: Path, n: int = 4, size: tuple[int, int] = (20, 20)) -> None:
    rng = np.random.default_rng(1)
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(root / label / f"{i}.png")


def test_fingerprint_data_takes_the_plans_pixel_settings_and_a_shape_mismatch_names_the_fix(tmp_path, capsys):
    small_folder(tmp_path / "train_images")
    small_folder(tmp_path / "test_only")
    save_torchscript(Brightness(), torch.rand(2, 1, 64, 64), tmp_path / "model.ts")
    (tmp_path / "plan.yaml").write_text(PLAN.format(leakage="", criterion=""))
    assert main(["fingerprint-data", str(tmp_path / "train_images"), "--out", str(tmp_path / "a.fp"), "--plan",
                 str(tmp_path / "plan.yaml")]) == 0
    assert read_fingerprint(tmp_path / "a.fp", "a.fp").image_shape == (1, 64, 64)  # the plan's image_size
    assert main(["fingerprint-data", str(tmp_path / "train_images"), "--out", str(tmp_path / "b.fp")]) == 0
    capsys.readouterr()
    (tmp_path / "plan.yaml").write_text(PLAN.format(leakage="leakage: {reference: b.fp}", criterion=""))
    code = main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "runs"), "--no-report"])
    error = capsys.readouterr().err
    assert code == 2 and "leakage reference b.fp holds images of shape 1×20×20" in error
    assert "harness fingerprint-data DATA --plan PLAN" in error
