"""Paths as written, not as resolved (issue 29, item 2): the manifest, results, resolved plan, report and error lines
name data and model locations as the plan wrote them (${DATA_DIR}/…, or relative to the plan's folder), never by
the absolute path of a folder that may be named after a patient or study, unless `record_paths: absolute`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_plugins import Brightness
from model_files import save_torchscript
from PIL import Image

from harness.cli.main import main
from harness.plan.paths import PathRecorder

PLAN = """\
harness: 1
name: paths
seed: 0
device: cpu
batch_size: 8
{extra}
dataset: {{plugin: image_folder, path: '{data}', split: all_test, image_size: 16}}
model: {{plugin: torchscript, path: '{model}', normalization: none}}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {{enabled: false}}
acceptance:
  - metric: clean_accuracy
    min: 0.0
"""


def study(root: Path) -> Path:
    """A study folder named after a patient: images in class folders and the vendor's model."""
    rng = np.random.default_rng(0)
    for label, mean in (("a", 60), ("b", 190)):
        (root / "images" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.clip(rng.normal(mean, 20, (16, 16)), 0, 255).astype(np.uint8)).save(
                root / "images" / label / f"{i}.png")
    save_torchscript(Brightness(), torch.rand(2, 1, 16, 16), root / "model.ts")
    return root


def run(tmp_path: Path, capsys, data: str, model: str, extra: str = "", report: bool = True) -> tuple[int, str]:
    plans = tmp_path / "plans"
    plans.mkdir(exist_ok=True)
    (plans / "plan.yaml").write_text(PLAN.format(data=data, model=model, extra=extra))
    code = main(["run", str(plans / "plan.yaml"), "--out", str(tmp_path / "runs"), "--cache-dir",
                 str(tmp_path / "cache")] + ([] if report else ["--no-report"]))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def outputs(tmp_path: Path) -> dict[str, str]:
    found = {str(p): p.read_bytes().decode("utf-8", errors="replace") for p in (tmp_path / "runs").rglob("*")
             if p.is_file()}
    for pdf in (tmp_path / "runs").rglob("report.pdf"):
        found[f"{pdf} (text)"] = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                                check=True).stdout
    return found


def test_a_study_folder_named_after_a_patient_reaches_no_output(tmp_path, capsys, monkeypatch):
    root = study(tmp_path / "Study_DOE^JANE")
    monkeypatch.setenv("DATA_DIR", str(root))
    code, console = run(tmp_path, capsys, "${DATA_DIR}/images", "${DATA_DIR}/model.ts")
    assert code in (0, 1), console
    texts = {**outputs(tmp_path), "console": console}
    for name, text in texts.items():
        assert "DOE^JANE" not in text and str(root) not in text, name
    (manifest,) = [json.loads(t) for n, t in texts.items() if n.endswith("manifest.json")]
    assert manifest["dataset"]["provenance"]["source"] == "${DATA_DIR}/images"
    assert manifest["plan"]["resolved"]["model"]["path"] == "${DATA_DIR}/model.ts"
    (resolved,) = [t for n, t in texts.items() if n.endswith("plan.resolved.yaml")]
    assert "${DATA_DIR}/images" in resolved


def test_error_lines_name_the_file_as_the_plan_wrote_it(tmp_path, capsys, monkeypatch):
    root = study(tmp_path / "Study_DOE^JANE")
    monkeypatch.setenv("DATA_DIR", str(root))
    code, console = run(tmp_path, capsys, "${DATA_DIR}/missing", "${DATA_DIR}/model.ts", report=False)
    assert code == 2
    (error,) = [line for line in console.splitlines() if line.startswith("harness: error:")]
    assert "data path ${DATA_DIR}/missing does not exist" in error and "DOE" not in error
    (results,) = [json.loads(t) for n, t in outputs(tmp_path).items() if n.endswith("results.json")]
    assert "${DATA_DIR}/missing" in results["error"] and "DOE" not in results["error"]


def test_paths_relative_to_the_plan_stay_relative_and_absolute_is_opt_in(tmp_path, capsys):
    root = study(tmp_path / "data")
    code, console = run(tmp_path, capsys, "../data/images", "../data/model.ts", report=False)
    assert code in (0, 1), console
    (manifest,) = [json.loads(t) for n, t in outputs(tmp_path).items() if n.endswith("manifest.json")]
    text = json.dumps(manifest)
    assert str(root) not in text and manifest["dataset"]["provenance"]["source"] == "../data/images"
    second = tmp_path / "second"
    second.mkdir()
    code, console = run(second, capsys, str(root / "images"), str(root / "model.ts"), "record_paths: absolute",
                        report=False)
    manifests = [json.loads(t) for n, t in outputs(second).items() if n.endswith("manifest.json")]
    assert manifests[0]["plan"]["record_paths"] == "absolute" and str(root) in json.dumps(manifests[0])


@pytest.mark.parametrize(("text", "expected"), [
    ("/x/Study_DOE/images/a.png", "${DATA_DIR}/images/a.png"), ("/plans/sub/f", "sub/f"), ("/plans", "."),
    ("/plansX/f", "/plansX/f"), ("../data", "../data")])
def test_the_recorder_rewrites_variables_and_the_plan_folder(text, expected):
    assert PathRecorder(Path("/plans"), {"DATA_DIR": "/x/Study_DOE"}).text(text) == expected
    assert PathRecorder(Path("/plans"), {"DATA_DIR": "/x/Study_DOE"}, "absolute").text(text) == text


def test_validate_names_a_missing_file_as_the_plan_wrote_it(tmp_path, capsys, monkeypatch):
    root = study(tmp_path / "Study_DOE^JANE")
    monkeypatch.setenv("DATA_DIR", str(root))
    (tmp_path / "plan.yaml").write_text(PLAN.format(data="${DATA_DIR}/missing", model="${DATA_DIR}/model.ts",
                                                    extra=""))
    assert main(["validate", str(tmp_path / "plan.yaml")]) == 2
    error = capsys.readouterr().err
    assert "not found: ${DATA_DIR}/missing" in error and "DOE" not in error
